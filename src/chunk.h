/*
 * chunk.h - the layout of a block and its sealed header.
 *
 * Every block, on the heap or in its own mapping, is a chunk: a 16-byte
 * header followed by the payload the caller sees.
 *
 *      chunk -> +--------------------------------------------+
 *               | prev_tag: size of the chunk just below      |  8 bytes
 *               | tag:      size of this chunk | state         |  8 bytes
 *    payload -> +--------------------------------------------+
 *               | free chunk: sealed next / prev links        |
 *               | cached chunk: cache link, cache mark        |
 *               | used chunk: the caller's bytes              |
 *               +--------------------------------------------+
 *
 * Invariants (checked by the walker in walk.c):
 *  - chunk addresses and sizes are multiples of OSMEM_ALIGN; a heap chunk
 *    is at least CHUNK_MIN bytes, so a free one always has room for links;
 *  - each header word holds a 48-bit value and a 16-bit check value computed
 *    from the value, the word's own address and a per-process secret; a
 *    word whose check fails was not written by libosmem;
 *  - on the heap, chunk + size is the next chunk, whose prev_tag equals
 *    size (a boundary tag: coalescing needs no search), and a segment ends
 *    in a FENCE chunk of size 0 whose prev_tag names the last real chunk;
 *  - the first chunk of a segment has prev_tag 0;
 *  - no two FREE chunks are adjacent: freeing coalesces at once;
 *  - a MAPPED chunk's prev_tag is the distance from the start of its
 *    mapping to the chunk (non-zero only for over-aligned blocks), with
 *    bit 0 set when the mapping was advised to use huge pages (mapped.c).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_CHUNK_H
#define OSMEM_CHUNK_H

#include "internal.h"

struct chunk {
	uint64_t prev_tag;
	uint64_t tag;
};

#define CHUNK_HEADER ((size_t)sizeof(struct chunk))
#define CHUNK_MIN (2 * CHUNK_HEADER)
_Static_assert(sizeof(struct chunk) == 16, "the header is two words");
_Static_assert(CHUNK_HEADER % 16 == 0 && OSMEM_ALIGN <= CHUNK_HEADER,
               "payloads are aligned because headers are");

/* The state kept in the low bits of a tag; sizes are multiples of 16. */
enum chunk_state {
	CHUNK_USED = 1,   /* handed out, or held in a thread cache */
	CHUNK_FREE = 2,   /* in a heap bin */
	CHUNK_MAPPED = 3, /* a large block in its own mapping */
	CHUNK_FENCE = 4,  /* the end marker of a heap segment */
};
#define TAG_STATE_MASK ((uint64_t)0xf)
#define TAG_VALUE_MASK (((uint64_t)1 << 48) - 1)
#define TAG_MAX_SIZE (TAG_VALUE_MASK & ~TAG_STATE_MASK)

/* A sealed word W at address WHERE holds a 48-bit value and 16 check
   bits chosen so that

       top 16 bits of ((W ^ WHERE ^ secret) * SEAL_K) == 0.

   One multiplication by an odd constant carries every lower input bit
   into the top 16 bits of the product, so a changed value, a word moved
   to another address or a guessed secret fail the test with odds of 1 in
   2^16 at best, as a separate hash of the value would; but checking a
   word takes no unpacking: an XOR, a multiplication and a shift, cheap
   enough for every free.  The check bits are found when the word is
   written: the top 16 bits of the product are those of the lower 48
   bits' product plus the check bits times SEAL_K, modulo 2^16, and SEAL_K
   is odd, so it has an inverse there. */
#define SEAL_K 0x9e3779b97f4a7c15ull
#define SEAL_K_INVERSE_16 0x733du /* (SEAL_K * this) % 2^16 == 1 */
_Static_assert(((SEAL_K & 0xffffu) * SEAL_K_INVERSE_16 & 0xffffu) == 1, "the inverse");

static inline uint64_t seal(const void *where, uint64_t value)
{
	uint64_t mix = (uint64_t)(uintptr_t)where ^ osmem_g.seal_secret;
	uint64_t low = (value ^ mix) & TAG_VALUE_MASK;
	uint64_t need = (uint64_t)(-(((low * SEAL_K) >> 48) * SEAL_K_INVERSE_16)) & 0xffffu;
	return value | ((need ^ (mix >> 48)) << 48);
}

/* Returns false when WORD does not carry a valid check value. */
static inline bool unseal(const uint64_t *word, uint64_t *value)
{
	uint64_t w = __atomic_load_n(word, __ATOMIC_RELAXED);
	*value = w & TAG_VALUE_MASK;
	return ((w ^ (uint64_t)(uintptr_t)word ^ osmem_g.seal_secret) * SEAL_K) >> 48 == 0;
}

static inline struct chunk *chunk_of(const void *payload)
{
	return (struct chunk *)((uintptr_t)payload - CHUNK_HEADER);
}

static inline void *chunk_payload(const struct chunk *c)
{
	return (void *)((uintptr_t)c + CHUNK_HEADER);
}

static inline struct chunk *chunk_at(const struct chunk *c, size_t offset)
{
	return (struct chunk *)((uintptr_t)c + offset);
}

/* Header words are read without the heap lock by the thread that owns the
   block (its own tag, and the boundary tags on either side), while the
   heap may rewrite a neighbour's prev_tag under the lock; so every header
   word is accessed atomically.  Relaxed order is enough: the words are
   self-checking and the lock orders everything else. */
static inline void seal_store(uint64_t *word, uint64_t value)
{
	__atomic_store_n(word, seal(word, value), __ATOMIC_RELAXED);
}

static inline void chunk_set_tag(struct chunk *c, size_t size, enum chunk_state st)
{
	seal_store(&c->tag, (uint64_t)size | (uint64_t)st);
}

static inline void chunk_set_prev(struct chunk *c, size_t prev_size)
{
	seal_store(&c->prev_tag, (uint64_t)prev_size);
}

/* Erase a header that is no longer a chunk boundary, so that a stale
   pointer to it fails its check instead of passing for a live block. */
static inline void chunk_wipe(struct chunk *c)
{
	__atomic_store_n(&c->prev_tag, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->tag, 0, __ATOMIC_RELAXED);
}

/* Wipe a free chunk that is being merged into the one before it: its
   header and its list links, the only bytes of it libosmem ever wrote. */
static inline void chunk_wipe_free(struct chunk *c)
{
	chunk_wipe(c);
	uint64_t *links = (uint64_t *)chunk_payload(c);
	links[0] = 0;
	links[1] = 0;
}

static inline size_t tag_size(uint64_t value) { return (size_t)(value & ~TAG_STATE_MASK); }
static inline enum chunk_state tag_state(uint64_t value) { return (enum chunk_state)(value & TAG_STATE_MASK); }

/* The chunk size that serves a request of N bytes (N <= OSMEM_MAX_REQUEST). */
static inline size_t chunk_size_for(size_t n)
{
	size_t cs = osmem_align_up(n + CHUNK_HEADER, OSMEM_ALIGN);
	return cs < CHUNK_MIN ? CHUNK_MIN : cs;
}

/* The size of a free or used chunk C, reached through a boundary tag or a
   list; anything else means the heap is damaged, and FUNC is reported. */
static inline size_t osmem_read_chunk_size(const struct chunk *c, enum chunk_state *st,
                                           const char *func)
{
	uint64_t v;
	if (!unseal(&c->tag, &v))
		osmem_fatal(func, "corrupted block header", chunk_payload(c));
	*st = tag_state(v);
	if (*st != CHUNK_USED && *st != CHUNK_FREE && *st != CHUNK_FENCE)
		osmem_fatal(func, "corrupted block header", chunk_payload(c));
	return tag_size(v);
}

#endif /* OSMEM_CHUNK_H */
