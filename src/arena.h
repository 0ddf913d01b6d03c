/*
 * arena.h - which arena a thread allocates from (arena.c).
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
#define ARENAS_PER_CPU 2u
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
/* Every arena that is in use, in index order, for fork and for the
   whole-heap checks: locked all at once, or visited one at a time. */
unsigned osmem_arena_count(void) OSMEM_HIDDEN;
void osmem_arenas_lock_all(void) OSMEM_HIDDEN;
void osmem_arenas_unlock_all(void) OSMEM_HIDDEN;
void osmem_arenas_reset_locks(void) OSMEM_HIDDEN;

#endif /* OSMEM_ARENA_H */
