/*
 * heap.h - the best-fit heap of small blocks, grown with brk (heap.c).
 *
 * The heap is made of arenas, each a list of segments (segment.h), each
 * segment a run of chunks (chunk.h) ended by a fence.  Free chunks sit in
 * size-class bins (bins.h), but for the top.  Each arena is guarded by a
 * lock of its own; the per-thread caches in front of them take a lock
 * once per batch, not once per block.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_HEAP_H
#define OSMEM_HEAP_H

#include "bins.h"
#include "ledger.h"
#include "lock.h"
#include "segment.h"

struct heap_stats {
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
struct arena {
	osmem_lock_t lock;
	struct bins bins;                  /* every free chunk but the top */
	struct segment_list segs;          /* the arena's segments */
	struct chunk *top;                 /* free chunk ending the newest segment */
	size_t top_size;
	struct heap_stats stats;
	struct ledger ledger;              /* free chunks with pages to give back */
	intptr_t usage_pending;            /* see heap_usage_change */
	/* The arena holds little of what it spans: its threads freed most of
	   what they had, and have not allocated from it since.  Free runs
	   then give their pages back as they form, whatever their size, and
	   its threads keep few blocks.  EMPTIED_AT is one more than what it
	   held when it last stopped emptying, 0 once it has grown again.
	   Both are set by the thread caches under LOCK (cache.c,
	   see_emptying). */
	bool emptying;
	size_t emptied_at;
	unsigned debug_ticks;              /* configure --enable-debug */
	/* Not guarded by LOCK, and on a line of their own, since other
	   threads write them (arena.h): */
	uint64_t remote __attribute__((__aligned__(64))); /* blocks freed by
	                                      threads that do not use the arena */
	unsigned users;                    /* threads that allocate from it */
} __attribute__((__aligned__(64)));

static inline void arena_lock(struct arena *h) { osmem_lock(&h->lock); }
/* The arena is consistent whenever its lock is let go: the place for the
   debug build's periodic walk. */
static inline void arena_unlock(struct arena *h)
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
static inline void heap_usage_flush(struct arena *h)
{
	intptr_t d = h->usage_pending;
	h->usage_pending = 0;
	if (d > 0)
		osmem_usage_add((size_t)d);
	else if (d < 0)
		osmem_usage_sub((size_t)-d);
}

static inline void heap_usage_change(struct arena *h, intptr_t delta)
{
	h->usage_pending += delta;
	if (osmem_single_threaded() || h->usage_pending > HEAP_USAGE_BATCH ||
	    h->usage_pending < -HEAP_USAGE_BATCH)
		heap_usage_flush(h);
}

/* heap.c: with H's lock held.  A USED chunk of CS bytes, from the free
   chunk that fits best, the heap growing when none does; NULL when it
   cannot.  With DIRTY, how many of its payload bytes may not be zero. */
struct chunk *osmem_heap_alloc(struct arena *h, size_t cs, size_t *dirty) OSMEM_HIDDEN;
/* The same from free space only, never growing the heap (NULL then). */
struct chunk *osmem_heap_alloc_fit(struct arena *h, size_t cs, size_t *dirty) OSMEM_HIDDEN;
/* From free space only, never growing the heap (NULL then): the free
   chunk that fits CS bytes best, carved to MOST bytes if it holds that
   many, else to as many whole blocks of CS bytes as it holds; its size in
   *GOT (carving may round up). */
struct chunk *osmem_heap_alloc_run(struct arena *h, size_t cs, size_t most, size_t *got) OSMEM_HIDDEN;
struct chunk *osmem_heap_alloc_aligned(struct arena *h, size_t cs, size_t align) OSMEM_HIDDEN;
void osmem_heap_release(struct arena *h, struct chunk *c, const char *func) OSMEM_HIDDEN;
/* The same, with the pages it frees given back at once whatever its size:
   for an arena no thread uses, where nobody would do the waiting work. */
void osmem_heap_release_at_once(struct arena *h, struct chunk *c, const char *func) OSMEM_HIDDEN;

/* USED chunks going back to one arena together (a thread's kept blocks,
   an arena's remote frees): neighbours are joined into one USED chunk as
   they come, so that a run of N blocks freed side by side reaches the
   bins, and coalesces with its free neighbours, once instead of N times.
   Each chunk gets the checks of osmem_heap_release when it is added.
   Invariant: LO is NULL or the first of USED chunks that span SIZE bytes
   together, not yet released, whose inner headers are wiped; LO's own tag
   and the boundary tag after the run still name the chunks they named
   before, and are set to the run's size when it ends (osmem_heap_batch_end,
   or an add that does not join).  The arena's lock is held from the first
   osmem_heap_batch_add to osmem_heap_batch_end. */
struct heap_batch {
	struct chunk *lo;
	size_t size;
};
void osmem_heap_batch_add(struct arena *h, struct heap_batch *b, struct chunk *c,
                          const char *func) OSMEM_HIDDEN;
/* The same for USED chunk C of SIZE bytes whose header and boundary tags
   the caller has checked (a thread's kept blocks, as they are drained). */
void osmem_heap_batch_add_checked(struct arena *h, struct heap_batch *b, struct chunk *c,
                                  size_t size, const char *func) OSMEM_HIDDEN;
void osmem_heap_batch_end(struct arena *h, struct heap_batch *b, const char *func) OSMEM_HIDDEN;
/* Releases the USED chunks of LIST (an arena's remote frees), linked
   through the first word of their payload, through one heap_batch, in
   address order first, so that blocks freed side by side join up
   whatever order they came in (a sort that costs one pass over runs
   already in order). */
void osmem_heap_release_list(struct arena *h, struct chunk *list, const char *func) OSMEM_HIDDEN;
void osmem_heap_release_checked(struct arena *h, struct chunk *c, size_t size,
                                const char *func) OSMEM_HIDDEN;
bool osmem_heap_resize(struct arena *h, struct chunk *c, size_t cs, size_t room,
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
/* Whether V, the unsealed tag of chunk C in a segment that ends at
   SEG_END, is that of a live block: USED, and of a size that fits in the
   segment, before its fence. */
static inline bool heap_tag_is_live_block(const struct chunk *c, uint64_t v, uintptr_t seg_end)
{
	size_t size = tag_size(v);
	return tag_state(v) == CHUNK_USED && size >= CHUNK_MIN &&
	       (uintptr_t)c + size <= seg_end - CHUNK_HEADER;
}

static inline size_t osmem_heap_check_header(const struct segment *seg, const struct chunk *c,
                                             const char *func)
{
	uint64_t v;
	if (unlikely(!unseal(&c->tag, &v)))
		osmem_report_bad_header(seg, c, func);
	if (unlikely(!heap_tag_is_live_block(c, v, __atomic_load_n(&seg->end, __ATOMIC_RELAXED))))
		osmem_report_bad_tag(c, v, func);
	return tag_size(v);
}

/* The second half of osmem_heap_check_block, for a chunk of SIZE bytes
   whose header passed: the boundary tags on both sides (OSMEM_CHECK=1). */
static inline void osmem_heap_check_neighbours(const struct chunk *c, size_t size,
                                               const char *func)
{
	uint64_t pv, nv;
	if (osmem_g.opt.check_level == 0)
		return;
	if (unlikely(!unseal(&c->prev_tag, &pv) || !unseal(&chunk_at(c, size)->prev_tag, &nv) ||
	             nv != size))
		osmem_report_bad_neighbours(c, func);
}

static inline size_t osmem_heap_check_block(const struct segment *seg, const struct chunk *c,
                                            const char *func)
{
	size_t size = osmem_heap_check_header(seg, c, func);
	osmem_heap_check_neighbours(c, size, func);
	return size;
}
/* heapwalk.c: called for every chunk, in address order within each
   segment. */
typedef void (*osmem_visit_fn)(void *arg, const void *payload, size_t size, bool is_free);
/* With H's lock held: NULL when every invariant of arena H holds, else the
   first problem found, with the block concerned in *AT (or NULL).  VISIT
   sees the chunks of H's segments. */
const char *osmem_heap_verify(const struct arena *h, osmem_visit_fn visit, void *arg,
                              const void **at) OSMEM_HIDDEN;

/* Makes H ready: its bins sealed, its segments its own.  Once, before H
   is first used. */
void osmem_heap_init(struct arena *h) OSMEM_HIDDEN;
/* Does at once what frees leave waiting (see ledger.h and trim in
   heap.c): gives back the pages the ledger notes, and the free space at
   the end of each of H's segments beyond the trim threshold. */
void osmem_heap_settle(struct arena *h) OSMEM_HIDDEN;
/* Under memory pressure: gives back everything free at the end of each of
   H's segments, unmapping those that are free from end to end. */
void osmem_heap_reclaim(struct arena *h) OSMEM_HIDDEN;
/* os_malloc_trim: gives back the free space at the end of each of H's
   segments beyond PAD bytes, and the pages inside every free chunk. */
void osmem_heap_give_back(struct arena *h, size_t pad) OSMEM_HIDDEN;
/* About how many free bytes of H are in pages given back to the kernel
   (still mapped, not resident). */
size_t osmem_heap_released_bytes(const struct arena *h) OSMEM_HIDDEN;

/* The segment holding heap chunk address A, for arena H, whose lock is
   held: most chunks an arena works on lie in its newest segment, which is
   tried first. */
static inline struct segment *heap_segment_find(struct arena *h, uintptr_t a)
{
	struct segment *s = h->segs.newest;
	if (likely(s != NULL) && a >= s->base && a < s->end)
		return s;
	return osmem_segment_find(a);
}

/* The free chunk that ends the arena's newest segment is the top: it is
   kept out of the bins, so carving from it and merging into it (the
   common case for a heap that grows and shrinks at its end) costs no list
   work.  These two are inline for that case; every chunk that becomes
   free, or stops being free, goes through them. */
static inline void osmem_free_put(struct arena *h, struct chunk *c, size_t size)
{
	assert(size >= CHUNK_MIN && size % OSMEM_ALIGN == 0 && (uintptr_t)c % OSMEM_ALIGN == 0);
	chunk_set_tag(c, size, CHUNK_FREE);
	struct segment *newest = h->segs.newest;
	if (newest && (uintptr_t)c + size + CHUNK_HEADER == newest->end) {
		h->top = c;
		h->top_size = size;
	} else {
		osmem_bin_insert(&h->bins, c, size);
	}
	h->stats.free_bytes += size;
	h->stats.free_chunks++;
}

static inline void osmem_free_take(struct arena *h, struct chunk *c, size_t size, const char *func)
{
	if (c == h->top)
		h->top = NULL;
	else
		osmem_bin_remove(&h->bins, c, func);
	h->stats.free_bytes -= size;
	h->stats.free_chunks--;
}

#endif /* OSMEM_HEAP_H */
