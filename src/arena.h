/*
 * arena.h - which arena a thread allocates from (arena.c).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_ARENA_H
#define OSMEM_ARENA_H

#include "heap.h"

/* Arenas: at most HEAP_MAX, as many as the machine has CPUs times
   HEAP_PER_CPU unless OSMEM_ARENAS says otherwise.  Only those handed to
   a thread are ever touched. */
#define HEAP_MAX OSMEM_ARENAS_MAX
#define HEAP_PER_CPU 2u
extern struct heap osmem_heaps[HEAP_MAX] OSMEM_HIDDEN;
#define osmem_main_heap (&osmem_heaps[0])

/* The calling thread's arena (chosen on first use). */
extern __thread struct heap *osmem_my_heap OSMEM_HIDDEN;
struct heap *osmem_heap_choose(void) OSMEM_HIDDEN;
static inline struct heap *my_heap(void)
{
	struct heap *h = osmem_my_heap;
	return likely(h != NULL) ? h : osmem_heap_choose();
}
/* Every arena that is in use, in index order, for fork and for the
   whole-heap checks: locked all at once, or visited one at a time. */
unsigned osmem_heap_count(void) OSMEM_HIDDEN;
void osmem_heaps_lock_all(void) OSMEM_HIDDEN;
void osmem_heaps_unlock_all(void) OSMEM_HIDDEN;
void osmem_heaps_reset_locks(void) OSMEM_HIDDEN;

#endif /* OSMEM_ARENA_H */
