/*
 * arena.h - which arena a thread allocates from, and the blocks other
 * threads free into it (arena.c).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_ARENA_H
#define OSMEM_ARENA_H

#include "heap.h"

/* Arenas: at most ARENA_MAX, as many as the machine has CPUs times
   ARENAS_PER_CPU unless OSMEM_ARENAS says otherwise.  Only those handed to
   a thread are ever touched. */
#define ARENA_MAX OSMEM_ARENAS_MAX
#define ARENAS_PER_CPU 4u
extern struct arena osmem_arenas[ARENA_MAX] OSMEM_HIDDEN;
#define osmem_main_arena (&osmem_arenas[0])

/* The calling thread's arena (chosen on first use). */
extern __thread struct arena *osmem_my_arena OSMEM_HIDDEN;
struct arena *osmem_arena_choose(void) OSMEM_HIDDEN;
static inline struct arena *my_arena(void)
{
	struct arena *h = osmem_my_arena;
	return likely(h != NULL) ? h : osmem_arena_choose();
}
/* The calling thread, which has a cache, will tell when it exits
   (osmem_arena_leave): its arena counts it as a user, and blocks freed by
   others go to its remote list instead of taking its lock. */
void osmem_arena_join(struct arena *h) OSMEM_HIDDEN;
void osmem_arena_leave(struct arena *h) OSMEM_HIDDEN;

/* Remote frees.  A block that a thread gives back to an arena it does not
   use, while some thread does, is pushed onto that arena's REMOTE list
   with one compare-and-swap, without its lock (a thread with a cache
   gathers such blocks into runs first, and pushes a run at once: cache.h,
   struct outgoing); a user of the arena takes
   the whole list with one exchange on its next slow path, and frees each
   block into the heap there (osmem_arena_collect).  An arena nobody uses
   is freed into under its lock, so nothing waits there for a user that
   may never come; and before any ENOMEM every arena's list is collected
   (osmem_reclaim).  A block on the list keeps its "freed" mark
   (cache_holds), so freeing it again is still a double free; word 0 links
   it to the next, sealed like a free-list link. */
/* Gives a run of chunks of H, FIRST to LAST, each marked freed and linked
   to the next with osmem_arena_link_remote: one atomic operation for all
   of them (into H's heap under its lock when H has no users).  Word 2 of
   each chunk of at least REMOTE_HINT_MIN bytes may name a chunk further
   on in the run, or hold anything: the thread that takes the run
   prefetches it, and never follows it. */
#define REMOTE_HINT_MIN (CHUNK_HEADER + 4u * sizeof(uint64_t))
void osmem_arena_give_run(struct arena *h, struct chunk *first, struct chunk *last) OSMEM_HIDDEN;

/* A remote list's link in word WHERE of a chunk, to TO, sealed with the
   process's secret and the word's address, and opened again. */
static inline uint64_t arena_remote_seal(const uint64_t *where, const struct chunk *to)
{
	return (uint64_t)(uintptr_t)to ^ osmem_g.cache_secret ^ ((uint64_t)(uintptr_t)where >> 4);
}

static inline struct chunk *arena_remote_open(const uint64_t *where, uint64_t v)
{
	return (struct chunk *)(uintptr_t)(v ^ osmem_g.cache_secret ^ ((uint64_t)(uintptr_t)where >> 4));
}

/* Checks chunk C of a remote list taken off its arena: aligned, in a
   heap segment (*SEG: when not NULL on entry, the one the caller already
   found C in, which spares the search of the segment table), carrying
   the freed mark and a sealed USED header (its value in *TAG); and
   returns the next chunk of the list (NULL at its end), not yet checked.
   A run built by one thread names, in word 2 of each chunk large enough,
   a chunk further on (cache.h, struct outgoing): fetched now, it is there
   when the walk comes to it, where walking the list missed on every
   chunk in turn (the chunks were last written by another thread).  A
   hint only: a prefetch never faults, whatever it is given. */
static inline struct chunk *osmem_arena_remote_step(struct chunk *c, const struct segment **seg,
                                                    uint64_t *tag)
{
	uint64_t *w = (uint64_t *)chunk_payload(c);
	if (((uintptr_t)c & (OSMEM_ALIGN - 1)) || (!*seg && !(*seg = heap_segment_of(w))) ||
	    __atomic_load_n(&w[1], __ATOMIC_RELAXED) != (osmem_g.mark_secret ^ (uint64_t)(uintptr_t)c) ||
	    !unseal(&c->tag, tag) || tag_state(*tag) != CHUNK_USED)
		osmem_fatal("os_malloc", "corrupted remote free list (write after free?)", w);
	if (tag_size(*tag) >= REMOTE_HINT_MIN)
		__builtin_prefetch((const void *)(uintptr_t)w[2]);
	return arena_remote_open(&w[0], w[0]);
}
void osmem_arena_link_remote(struct chunk *c, struct chunk *next) OSMEM_HIDDEN;
/* The chunk that C, linked so, links to (not checked). */
struct chunk *osmem_arena_remote_next(const struct chunk *c) OSMEM_HIDDEN;
/* With H's lock held: frees every block on H's remote list. */
void osmem_arena_collect_slow(struct arena *h) OSMEM_HIDDEN;
static inline void osmem_arena_collect(struct arena *h)
{
	if (unlikely(__atomic_load_n(&h->remote, __ATOMIC_RELAXED) != 0))
		osmem_arena_collect_slow(h);
}
/* Takes H's whole remote list for a user of H that keeps the blocks for
   itself (cache.c), with H's lock held only for the exchange (H must not
   be locked on entry): its first chunk, the last freed, or NULL when
   there is none.  The caller walks it with osmem_arena_remote_step,
   which checks each chunk as osmem_arena_collect does. */
struct chunk *osmem_arena_take_remote(struct arena *h) OSMEM_HIDDEN;
/* Bytes and blocks waiting on the remote lists of every arena. */
void osmem_arena_remote_totals(size_t *bytes, size_t *blocks) OSMEM_HIDDEN;

/* Every arena that is in use, in index order, for fork and for the
   whole-heap checks: locked all at once, or visited one at a time. */
unsigned osmem_arena_count(void) OSMEM_HIDDEN;
void osmem_arenas_lock_all(void) OSMEM_HIDDEN;
void osmem_arenas_unlock_all(void) OSMEM_HIDDEN;
/* In the child of a fork: every lock free, and only the calling thread
   (with MINE, its arena, or NULL) using any arena. */
void osmem_arenas_reset_after_fork(struct arena *mine) OSMEM_HIDDEN;

#endif /* OSMEM_ARENA_H */
