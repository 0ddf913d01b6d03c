/*
 * cache.h - per-thread caches of small blocks (cache.c).
 *
 * A thread keeps freed chunks of up to CACHE_MAX_CHUNK bytes in lists of
 * its own and serves the next requests of those sizes from them without
 * taking the heap lock.  The heap sees cached chunks as USED; they return
 * to it, and coalesce, when a list overflows or the thread exits.
 *
 * The fast paths below are inline and only ever answer "done" or "not
 * here": anything unusual (an empty or full list, a failed check, no cache
 * yet) falls through to the out-of-line paths in cache.c, which refill,
 * drain, create the cache or report the misuse.
 *
 * A cached chunk keeps two words at the start of its payload:
 *   word 0: the next chunk in the same list, sealed with a secret and the
 *           word's own address, so that a stray write is not followed;
 *   word 1: a mark derived from the chunk's address and a secret, which
 *           says "this block has been freed" without a search, so a second
 *           free of it is caught even from another thread.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_CACHE_H
#define OSMEM_CACHE_H

#include "heap.h"

/* Chunk sizes 32, 48, ..., 1040 bytes: payloads of up to 1 KiB. */
#define CACHE_CLASSES 64u
#define CACHE_MAX_CHUNK (CHUNK_MIN + (CACHE_CLASSES - 1u) * 16u)
#define CACHE_MAX_PAYLOAD (CACHE_MAX_CHUNK - CHUNK_HEADER)

struct tcache {
	uint64_t head[CACHE_CLASSES]; /* sealed pointer to the first chunk */
	uint8_t count[CACHE_CLASSES];
	uint8_t cap[CACHE_CLASSES];   /* bound per list; 0 keeps the list empty */
	size_t fast_limit;            /* requests below this may be served inline;
	                                 0: no inline paths (OSMEM_CHECK=2) */
	bool check_neighbours;        /* OSMEM_CHECK >= 1 */
	bool drain_asked;             /* set by another thread that ran out of
	                                 memory: empty the cache on the next
	                                 slow path (atomic; see osmem_reclaim) */
	struct tcache *next, *prev;   /* all live caches (cache.c's live_lock) */
};

/* The calling thread's cache: NULL before its first small request, and
   CACHE_GONE once the thread is exiting, when its exit could not be
   watched for, or when caches are off (OSMEM_CACHE_MAX=0): from then on
   it uses the heap. */
#define CACHE_GONE ((struct tcache *)(uintptr_t)1)
extern __thread struct tcache *osmem_my_cache OSMEM_HIDDEN;

static inline bool cache_live(const struct tcache *t)
{
	return likely((uintptr_t)t > (uintptr_t)CACHE_GONE);
}

static inline unsigned cache_class_of_request(size_t n) { return n <= 16 ? 0 : (unsigned)((n - 1) >> 4); }
static inline unsigned cache_class_of_chunk(size_t cs) { return (unsigned)(cs >> 4) - 2u; }
static inline size_t cache_class_size(unsigned cls) { return CHUNK_MIN + 16u * cls; }

static inline uint64_t cache_mark(const struct chunk *c)
{
	return osmem_g.mark_secret ^ (uint64_t)(uintptr_t)c;
}

static inline uint64_t cache_seal_next(const uint64_t *where, const struct chunk *to)
{
	return (uint64_t)(uintptr_t)to ^ osmem_g.cache_secret ^ ((uint64_t)(uintptr_t)where >> 4);
}

static inline struct chunk *cache_open_next(const uint64_t *where)
{
	return (struct chunk *)(uintptr_t)(*where ^ osmem_g.cache_secret ^
	                                   ((uint64_t)(uintptr_t)where >> 4));
}

static inline uint64_t *cache_words(const struct chunk *c) { return (uint64_t *)chunk_payload(c); }

/* A list's count is written only by its thread, but os_mallinfo reads it
   from others: the writes are atomic (and as cheap as plain ones). */
static inline void cache_count_add(struct tcache *t, unsigned cls, int delta)
{
	__atomic_store_n(&t->count[cls], (uint8_t)(t->count[cls] + delta), __ATOMIC_RELAXED);
}

/* True when C sits in some thread's cache: freeing it again is a double free. */
static inline bool cache_holds(const struct chunk *c)
{
	return __atomic_load_n(&cache_words(c)[1], __ATOMIC_RELAXED) == cache_mark(c);
}

static inline void cache_push(struct tcache *t, unsigned cls, struct chunk *c)
{
	uint64_t *w = cache_words(c);
	w[0] = cache_seal_next(&w[0], cache_open_next(&t->head[cls]));
	__atomic_store_n(&w[1], cache_mark(c), __ATOMIC_RELAXED);
	t->head[cls] = cache_seal_next(&t->head[cls], c);
	cache_count_add(t, cls, 1);
}

/* A block of N bytes from the calling thread's cache, or NULL. */
static inline void *cache_fast_alloc(size_t n)
{
	struct tcache *t = osmem_my_cache;
	if (!cache_live(t) || unlikely(n >= t->fast_limit))
		return NULL;
	unsigned cls = cache_class_of_request(n);
	if (unlikely(!t->count[cls]))
		return NULL;
	struct chunk *c = cache_open_next(&t->head[cls]);
	if (unlikely(!heap_bounds_hold(chunk_payload(c))))
		return NULL;
	uint64_t *w = cache_words(c);
	struct chunk *next = cache_open_next(&w[0]);
	if (unlikely(w[1] != cache_mark(c) || (next && !heap_bounds_hold(chunk_payload(next)))))
		return NULL;
	t->head[cls] = cache_seal_next(&t->head[cls], next);
	__atomic_store_n(&w[1], 0, __ATOMIC_RELAXED);
	cache_count_add(t, cls, -1);
	return w;
}

/* Whether a USED chunk C of SIZE bytes, being freed, may wait in a cache
   rather than go back to the heap at once.  Not when the chunk after it is
   free or the end of its segment: the block would then stand between free
   space and the top, where the heap could neither merge it nor shrink, and
   a cache that keeps such blocks pins the top of the heap for as long as
   it keeps them.  Only the state bits are looked at; a header that fails
   its check is then reported by the heap, down the slow path. */
static inline bool cache_may_keep(const struct chunk *c, size_t size)
{
	uint64_t next = __atomic_load_n(&chunk_at(c, size)->tag, __ATOMIC_RELAXED);
	return (next & TAG_STATE_MASK) == CHUNK_USED;
}

/* Takes heap block P into the calling thread's cache when that is simple
   and every check passes; false sends the caller down the slow path. */
static inline bool cache_fast_free(void *p)
{
	struct tcache *t = osmem_my_cache;
	if (!cache_live(t) || unlikely(!t->fast_limit || ((uintptr_t)p & (OSMEM_ALIGN - 1))) ||
	    !heap_segment_of(p))
		return false;
	struct chunk *c = chunk_of(p);
	uint64_t v;
	if (unlikely(!unseal(&c->tag, &v)))
		return false;
	size_t size = tag_size(v);
	if (tag_state(v) != CHUNK_USED || size > CACHE_MAX_CHUNK)
		return false;
	unsigned cls = cache_class_of_chunk(size);
	if (unlikely(t->count[cls] >= t->cap[cls] || cache_holds(c)) || !cache_may_keep(c, size))
		return false;
	/* The boundary tag after the block: an overflow past its end breaks
	   it.  (The block's own prev_tag is checked when it goes back to the
	   heap; a write before the block reaches its tag first.) */
	if (likely(t->check_neighbours)) {
		uint64_t pv;
		if (unlikely(!unseal(&chunk_at(c, size)->prev_tag, &pv) || pv != size))
			return false;
	}
	cache_push(t, cls, c);
	return true;
}

/* Slow paths (cache.c). */

/* A block of chunk size CS from the calling thread's cache, refilled from
   the heap when empty; NULL when the heap is out of memory. */
void *osmem_cache_alloc(size_t cs) OSMEM_HIDDEN;
/* Keeps checked USED chunk C of SIZE bytes in the calling thread's cache;
   false when the thread has none (the caller frees it to the heap). */
bool osmem_cache_free(struct chunk *c, size_t size) OSMEM_HIDDEN;
/* Returns every block of the calling thread's cache to the heap. */
void osmem_cache_flush(void) OSMEM_HIDDEN;
/* Asks every other thread to empty its cache on its next slow path: a
   thread's lists are its own, and no other thread may take from them. */
void osmem_cache_ask_all_to_drain(void) OSMEM_HIDDEN;
void osmem_cache_init(void) OSMEM_HIDDEN;
/* NULL when the calling thread's cache is consistent, else the problem. */
const char *osmem_cache_verify(const void **at) OSMEM_HIDDEN;
/* Bytes held in all thread caches, how many blocks, and the bytes of the
   caches themselves; with PER_CLASS, the blocks of each class are added
   to it. */
void osmem_cache_totals(size_t *bytes, size_t *blocks, size_t *overhead,
                        size_t per_class[CACHE_CLASSES]) OSMEM_HIDDEN;
/* The list of live caches across fork (init.c). */
void osmem_cache_fork_prepare(void) OSMEM_HIDDEN;
void osmem_cache_fork_parent(void) OSMEM_HIDDEN;
void osmem_cache_fork_child(void) OSMEM_HIDDEN;

#endif /* OSMEM_CACHE_H */
