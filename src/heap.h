/*
 * heap.h - the best-fit heap of small blocks, grown with brk.
 *
 * The heap is made of arenas, each a list of segments, each segment a run
 * of chunks (see chunk.h) ended by a fence.  Free chunks sit in size-class
 * bins; a bitmap of non-empty bins finds the smallest class that fits
 * without scanning.  Each arena is guarded by a lock of its own; the
 * per-thread caches in front of them take a lock once per batch, not once
 * per block.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_HEAP_H
#define OSMEM_HEAP_H

#include "chunk.h"
#include "lock.h"

/* A free chunk keeps its list links at the start of its payload.  Both are
   stored sealed (see link_seal in bins.c) so that a stray write over a freed
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

/* A segment is one contiguous run of heap memory, owned by one arena.
   Segments are only ever appended to the table below, and a valid block
   never lies outside the segment it was carved from, so lookups need no
   lock (see heap_segment_of).  A mapped segment given back whole keeps its
   slot with end == base, matching nothing. */
struct heap;
struct segment {
	uintptr_t base;       /* first chunk */
	uintptr_t end;        /* one past the fence; read without the lock */
	uintptr_t fresh_from; /* see below */
	struct heap *heap;    /* the owner, set before the slot is published */
	bool from_brk;        /* grown with sbrk, else an anonymous mapping */
};
/* fresh_from: every payload byte of a free chunk at or above this address
   is zero, except the 16 bytes of its links.  Everything above it came
   from the kernel and has never been handed out, so os_calloc need not
   clear it again.  Written under the owner's lock. */

#define SEGMENT_MAX 256u

/* The segments of every arena, in the order they were made.  A segment's
   fields are the owner's (under its lock); the table's slots and bounds
   are appended to under the table's own lock, taken inside an arena's. */
struct segment_table {
	osmem_lock_t lock;
	unsigned nsegs;            /* published with release order */
	uintptr_t lowest, highest; /* bounds of all segments, ever */
	struct segment segs[SEGMENT_MAX];
};

extern struct segment_table osmem_segments OSMEM_HIDDEN;

struct heap_stats {
	size_t brk_bytes;    /* bytes of segments obtained with sbrk */
	size_t mapped_bytes; /* bytes of segments obtained with mmap */
	size_t used_bytes;   /* bytes of USED chunks, headers included */
	size_t free_bytes;   /* bytes of FREE chunks, headers included */
	size_t free_chunks;
};

/* An arena: a best-fit heap of its own, with its own lock, bins, top and
   segments, so that threads using different arenas never wait for each
   other.  Arena 0, the main one, grows with sbrk; the others grow in
   anonymous mappings, whose free pages they give back with madvise, and
   leave the break alone (see segment.c).  Each thread allocates from the arena it
   was given on first use (arena.c); a block goes back to the arena of the
   segment it lies in, whichever thread frees it.  Every field below is
   guarded by LOCK.  Coalescing, best fit and growth at the top are exact
   within an arena. */
struct heap {
	osmem_lock_t lock;
	bool uses_brk;                     /* arena 0 only */
	uint64_t binmap[BIN_WORDS];
	uint64_t binmap_words;             /* bit w: binmap[w] is not zero */
	struct free_links bins[BIN_COUNT]; /* sentinels of circular lists */
	struct segment *newest;            /* the arena's newest segment */
	struct chunk *top;                 /* free chunk ending the newest segment */
	size_t top_size;
	size_t next_map_segment;           /* size of the next mmap-backed one */
	struct heap_stats stats;
	intptr_t usage_pending;            /* see heap_usage_change */
	unsigned debug_ticks;              /* configure --enable-debug */
} __attribute__((__aligned__(64)));

static inline void heap_lock(struct heap *h) { osmem_lock(&h->lock); }
/* The arena is consistent whenever its lock is let go: the place for the
   debug build's periodic walk. */
static inline void heap_unlock(struct heap *h)
{
	osmem_debug_tick(h);
	osmem_unlock(&h->lock);
}

/* The bytes in use that the process-wide counters of internal.h (behind
   os_mallinfo's peak) have not yet been told of.  Once there are threads,
   an arena passes its changes on only when they add up to
   HEAP_USAGE_BATCH either way, so that threads working in different
   arenas do not contend for one cache line on every operation; the peak
   is then exact to within that much per arena.  Before, every change goes
   through at once.  With H's lock held. */
#define HEAP_USAGE_BATCH ((intptr_t)256 * 1024)
static inline void heap_usage_flush(struct heap *h)
{
	intptr_t d = h->usage_pending;
	h->usage_pending = 0;
	if (d > 0)
		osmem_usage_add((size_t)d);
	else if (d < 0)
		osmem_usage_sub((size_t)-d);
}

static inline void heap_usage_change(struct heap *h, intptr_t delta)
{
	h->usage_pending += delta;
	if (osmem_single_threaded() || h->usage_pending > HEAP_USAGE_BATCH ||
	    h->usage_pending < -HEAP_USAGE_BATCH)
		heap_usage_flush(h);
}

/* The segment holding address P, or NULL.  Lock-free. */
static inline const struct segment *heap_segment_of(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	unsigned n = __atomic_load_n(&osmem_segments.nsegs, __ATOMIC_ACQUIRE);
	while (n--) {
		const struct segment *s = &osmem_segments.segs[n];
		if (a > s->base && a < __atomic_load_n(&s->end, __ATOMIC_RELAXED))
			return s;
	}
	return NULL;
}

/* A cheap test that P lies somewhere between the lowest and the highest
   address any arena has ever used: enough to dereference a decoded link
   whose target is checked next, not to prove P is a block. */
static inline bool heap_bounds_hold(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	return !(a & (OSMEM_ALIGN - 1)) && a > __atomic_load_n(&osmem_segments.lowest, __ATOMIC_RELAXED) &&
	       a < __atomic_load_n(&osmem_segments.highest, __ATOMIC_RELAXED);
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

/* heap.c: with H's lock held. */
struct chunk *osmem_heap_alloc(struct heap *h, size_t cs, size_t *dirty) OSMEM_HIDDEN;
/* From free space only, never growing the heap (NULL then): the free
   chunk that fits CS bytes best, carved to MOST bytes if it holds that
   many, else to CS; its size in *GOT (carving may round up). */
struct chunk *osmem_heap_alloc_run(struct heap *h, size_t cs, size_t most, size_t *got) OSMEM_HIDDEN;
struct chunk *osmem_heap_alloc_aligned(struct heap *h, size_t cs, size_t align) OSMEM_HIDDEN;
void osmem_heap_release(struct heap *h, struct chunk *c, const char *func) OSMEM_HIDDEN;
void osmem_heap_release_checked(struct heap *h, struct chunk *c, size_t size,
                                const char *func) OSMEM_HIDDEN;
bool osmem_heap_resize(struct heap *h, struct chunk *c, size_t cs, size_t room,
                       const char *func) OSMEM_HIDDEN;
/* heap.c: the reports of osmem_heap_check_block, on the way to abort(). */
_Noreturn void osmem_report_bad_header(const struct segment *seg, const struct chunk *c,
                                       const char *func) OSMEM_HIDDEN OSMEM_COLD;
_Noreturn void osmem_report_bad_tag(const struct chunk *c, uint64_t value,
                                    const char *func) OSMEM_HIDDEN OSMEM_COLD;
_Noreturn void osmem_report_bad_neighbours(const struct chunk *c,
                                           const char *func) OSMEM_HIDDEN OSMEM_COLD;

/* Checks heap chunk C of SEG, handed to free or realloc: its header must
   be a live block's, and with OSMEM_CHECK=1 (the default) so must the
   boundary tags on both sides of it, where an overflow past the end of
   the payload, or into the header, shows.  Returns the chunk size.
   Lock-free; aborts with a message on misuse or damage.  Inline, as it
   runs on every free and realloc that the thread cache does not take. */
static inline size_t osmem_heap_check_block(const struct segment *seg, const struct chunk *c,
                                            const char *func)
{
	uint64_t v, pv, nv;
	if (unlikely(!unseal(&c->tag, &v)))
		osmem_report_bad_header(seg, c, func);
	size_t size = tag_size(v);
	if (unlikely(tag_state(v) != CHUNK_USED || size < CHUNK_MIN ||
	             (uintptr_t)c + size > __atomic_load_n(&seg->end, __ATOMIC_RELAXED) - CHUNK_HEADER))
		osmem_report_bad_tag(c, v, func);
	if (osmem_g.opt.check_level == 0)
		return size;
	if (unlikely(!unseal(&c->prev_tag, &pv) || !unseal(&chunk_at(c, size)->prev_tag, &nv) ||
	             nv != size))
		osmem_report_bad_neighbours(c, func);
	return size;
}
/* Seals H's empty bins with the secret; once, before H is first used. */
void osmem_bins_init(struct heap *h) OSMEM_HIDDEN;

/* segment.c: with H's lock held. */
struct chunk *osmem_segment_grow(struct heap *h, size_t cs) OSMEM_HIDDEN;
bool osmem_segment_extend_in_place(struct heap *h, struct chunk *last, size_t missing) OSMEM_HIDDEN;
void osmem_segment_trim(struct heap *h, struct segment *seg, struct chunk *last) OSMEM_HIDDEN;
/* Under memory pressure: gives back everything free at the end of each of
   H's segments, unmapping those that are free from end to end. */
void osmem_segment_reclaim(struct heap *h) OSMEM_HIDDEN;

/* The segment holding heap chunk address A, newest first, for the arena
   whose lock is held.  Every chunk lies in one; not finding it means the
   heap's own bookkeeping is broken. */
static inline struct segment *osmem_segment_find(uintptr_t a)
{
	for (unsigned i = __atomic_load_n(&osmem_segments.nsegs, __ATOMIC_ACQUIRE); i--;) {
		struct segment *s = &osmem_segments.segs[i];
		/* Another arena's segment may be cut or given back meanwhile,
		   under its own lock: its end is read atomically. */
		if (a >= s->base && a < __atomic_load_n(&s->end, __ATOMIC_RELAXED))
			return s;
	}
	osmem_fatal("osmem", "internal error: block outside every heap segment", (void *)a);
}

/* The same for arena H, whose lock is held: most chunks an arena works on
   lie in its newest segment, which is tried first. */
static inline struct segment *heap_segment_find(struct heap *h, uintptr_t a)
{
	struct segment *s = h->newest;
	if (likely(s != NULL) && a >= s->base && a < s->end)
		return s;
	return osmem_segment_find(a);
}

/* bins.c: a chunk becomes free (to the top or a bin), or stops being;
   and the free chunk that serves CS bytes best, already taken out (its
   size in *SIZE), or NULL when the heap must grow. */
struct chunk *osmem_free_best_fit(struct heap *h, size_t cs, size_t *size) OSMEM_HIDDEN;
void osmem_bin_insert(struct heap *h, struct chunk *c, size_t size) OSMEM_HIDDEN;
void osmem_bin_remove(struct heap *h, struct chunk *c, const char *func) OSMEM_HIDDEN;
void osmem_top_retire(struct heap *h) OSMEM_HIDDEN;
/* About how many free bytes of H are in pages given back to the kernel
   (still mapped, not resident).  With H's lock held. */
size_t osmem_heap_released_bytes(const struct heap *h) OSMEM_HIDDEN;

/* The free chunk that ends the arena's newest segment is the top: it is
   kept out of the bins, so carving from it and merging into it (the
   common case for a heap that grows and shrinks at its end) costs no list
   work.  These two are inline for that case. */
static inline void osmem_free_put(struct heap *h, struct chunk *c, size_t size)
{
	assert(size >= CHUNK_MIN && size % OSMEM_ALIGN == 0 && (uintptr_t)c % OSMEM_ALIGN == 0);
	chunk_set_tag(c, size, CHUNK_FREE);
	if (h->newest && (uintptr_t)c + size + CHUNK_HEADER == h->newest->end) {
		h->top = c;
		h->top_size = size;
	} else {
		osmem_bin_insert(h, c, size);
	}
	h->stats.free_bytes += size;
	h->stats.free_chunks++;
}

static inline void osmem_free_take(struct heap *h, struct chunk *c, size_t size, const char *func)
{
	if (c == h->top)
		h->top = NULL;
	else
		osmem_bin_remove(h, c, func);
	h->stats.free_bytes -= size;
	h->stats.free_chunks--;
}
/* heap.c: gives back the pages of [LO, HI) inside free chunk C, if C is
   large enough for that to be worth it. */
void osmem_release_pages(struct chunk *c, size_t size, uintptr_t lo, uintptr_t hi) OSMEM_HIDDEN;

#endif /* OSMEM_HEAP_H */
