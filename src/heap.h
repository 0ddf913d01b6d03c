/*
 * heap.h - the best-fit heap of small blocks, grown with brk.
 *
 * The heap is a list of segments, each a run of chunks (see chunk.h) ended
 * by a fence.  Free chunks sit in size-class bins; a bitmap of non-empty
 * bins finds the smallest class that fits without scanning.  All of it is
 * guarded by one lock; the per-thread caches in front of it take that lock
 * once per batch, not once per block.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_HEAP_H
#define OSMEM_HEAP_H

#include "chunk.h"
#include "lock.h"

/* A free chunk keeps its list links at the start of its payload.  Both are
   stored sealed (see link_seal in heap.c) so that a stray write over a freed
   block is noticed instead of steering the allocator. */
struct free_links {
	uint64_t next;
	uint64_t prev;
};

/* Size classes: exact 16-byte classes below 512 bytes, then eight classes
   per power of two, so a class never spans more than a factor of 1.125.
   Sizes of 2^37 and more share the last bin. */
#define BIN_EXACT_LIMIT 512u
#define BIN_COUNT 256u
#define BIN_WORDS (BIN_COUNT / 64u)
_Static_assert(BIN_WORDS <= 64, "one summary word covers the bitmap");

/* A segment is one contiguous run of heap memory.  Segments are only ever
   appended, and a valid block never lies outside the segment it was carved
   from, so lookups need no lock (see heap_segment_of).  A mapped segment
   given back whole keeps its slot with end == base, matching nothing. */
struct segment {
	uintptr_t base;       /* first chunk */
	uintptr_t end;        /* one past the fence; read without the lock */
	uintptr_t fresh_from; /* see below */
	bool from_brk;        /* grown with sbrk, else an anonymous mapping */
};
/* fresh_from: every payload byte of a free chunk at or above this address
   is zero, except the 16 bytes of its links.  Everything above it came
   from the kernel and has never been handed out, so os_calloc need not
   clear it again. */

#define SEGMENT_MAX 256u

struct heap_stats {
	size_t brk_bytes;    /* bytes of segments obtained with sbrk */
	size_t mapped_bytes; /* bytes of segments obtained with mmap */
	size_t used_bytes;   /* bytes of USED chunks, headers included */
	size_t free_bytes;   /* bytes of FREE chunks, headers included */
	size_t free_chunks;
};

struct heap {
	osmem_lock_t lock;
	uint64_t binmap[BIN_WORDS];
	uint64_t binmap_words;             /* bit w: binmap[w] is not zero */
	struct free_links bins[BIN_COUNT]; /* sentinels of circular lists */
	struct segment segs[SEGMENT_MAX];
	unsigned nsegs;                    /* published with release order */
	uintptr_t lowest, highest;         /* bounds of all segments, ever */
	struct chunk *top;                 /* free chunk ending the newest segment */
	size_t top_size;
	size_t next_map_segment;           /* size of the next mmap-backed one */
	struct heap_stats stats;
};

extern struct heap osmem_heap OSMEM_HIDDEN;

static inline void heap_lock(void) { osmem_lock(&osmem_heap.lock); }
/* The heap is consistent whenever the lock is let go: the place for the
   debug build's periodic walk. */
static inline void heap_unlock(void)
{
	osmem_debug_tick();
	osmem_unlock(&osmem_heap.lock);
}

/* The segment holding address P, or NULL.  Lock-free. */
static inline const struct segment *heap_segment_of(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	unsigned n = __atomic_load_n(&osmem_heap.nsegs, __ATOMIC_ACQUIRE);
	while (n--) {
		const struct segment *s = &osmem_heap.segs[n];
		if (a > s->base && a < __atomic_load_n(&s->end, __ATOMIC_RELAXED))
			return s;
	}
	return NULL;
}

/* A cheap test that P lies somewhere between the lowest and the highest
   address the heap has ever used: enough to dereference a decoded link
   whose target is checked next, not to prove P is a block. */
static inline bool heap_bounds_hold(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	return !(a & (OSMEM_ALIGN - 1)) && a > __atomic_load_n(&osmem_heap.lowest, __ATOMIC_RELAXED) &&
	       a < __atomic_load_n(&osmem_heap.highest, __ATOMIC_RELAXED);
}

/* The size of free or used chunk C, which the caller reached through a
   boundary tag; anything else means the heap is damaged. */
static inline size_t osmem_chunk_size_checked(const struct chunk *c, enum chunk_state *st,
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

/* heap.c: with the heap lock held. */
struct chunk *osmem_heap_alloc(size_t cs, size_t *dirty) OSMEM_HIDDEN;
struct chunk *osmem_heap_alloc_aligned(size_t cs, size_t align) OSMEM_HIDDEN;
void osmem_heap_release(struct chunk *c, const char *func) OSMEM_HIDDEN;
void osmem_heap_release_checked(struct chunk *c, size_t size, const char *func) OSMEM_HIDDEN;
bool osmem_heap_resize(struct chunk *c, size_t cs, const char *func) OSMEM_HIDDEN;
/* heap.c: checks a block handed to free/realloc; returns its chunk size.
   Lock-free; aborts with a message on misuse or damage. */
size_t osmem_heap_check_block(const struct segment *seg, const struct chunk *c,
                              const char *func) OSMEM_HIDDEN;
/* Seals the empty bins with the secret; once, at start-up. */
void osmem_bins_init(void) OSMEM_HIDDEN;

/* segment.c: with the heap lock held. */
struct chunk *osmem_segment_grow(size_t cs) OSMEM_HIDDEN;
bool osmem_segment_extend_in_place(struct chunk *last, size_t missing) OSMEM_HIDDEN;
void osmem_segment_trim(struct segment *seg, struct chunk *last) OSMEM_HIDDEN;

/* The segment holding heap chunk address A (heap lock held), newest
   first.  Every chunk lies in one; not finding it means the heap's own
   bookkeeping is broken. */
static inline struct segment *osmem_segment_find(uintptr_t a)
{
	for (unsigned i = osmem_heap.nsegs; i--;) {
		struct segment *s = &osmem_heap.segs[i];
		if (a >= s->base && a < s->end)
			return s;
	}
	osmem_fatal("osmem", "internal error: block outside every heap segment", (void *)a);
}

/* bins.c: a chunk becomes free (to the top or a bin), or stops being;
   and the free chunk that serves CS bytes best, already taken out (its
   size in *SIZE), or NULL when the heap must grow. */
struct chunk *osmem_free_best_fit(size_t cs, size_t *size) OSMEM_HIDDEN;
void osmem_free_put(struct chunk *c, size_t size) OSMEM_HIDDEN;
void osmem_free_take(struct chunk *c, size_t size, const char *func) OSMEM_HIDDEN;
void osmem_top_retire(void) OSMEM_HIDDEN;
/* heap.c: gives back the pages of [LO, HI) inside free chunk C, if C is
   large enough for that to be worth it. */
void osmem_release_pages(struct chunk *c, size_t size, uintptr_t lo, uintptr_t hi) OSMEM_HIDDEN;

#endif /* OSMEM_HEAP_H */
