/*
 * arena.c - which arena a thread allocates from.
 *
 * One lock for the whole heap makes every thread wait for every other as
 * soon as two of them allocate blocks too large for their caches.  So the
 * heap is split into arenas (struct arena), each with its own lock: a
 * thread is given one on its first heap operation and keeps it.  Arenas
 * are handed out in turn, the first to the first thread (normally the
 * program's main thread, which thereby gets the brk heap), and there are
 * at most ARENAS_PER_CPU per CPU (or OSMEM_ARENAS): enough for threads that
 * run at the same time to rarely share one, few enough that memory freed
 * in one arena is soon reused by another thread of the same arena.  Arenas are never
 * destroyed; a thread that exits leaves its arena to the next thread that
 * is given it, so a program that starts many short-lived threads does not
 * accumulate arenas.
 *
 * SPDX-License-Identifier: MIT
 */
#include "arena.h"

#include <unistd.h>

struct arena osmem_arenas[ARENA_MAX] = {
	[0] = { .lock = OSMEM_LOCK_INIT, .segs = { .owner = &osmem_arenas[0], .uses_brk = true } },
};

__thread struct arena *osmem_my_arena;

static osmem_lock_t choose_lock = OSMEM_LOCK_INIT;
static unsigned arenas_ready;  /* arenas 0 .. arenas_ready-1 are in use */
static unsigned arenas_limit;  /* how many there may be; set on first use */
static unsigned next_choice;  /* the arena the next thread is given */

static unsigned limit_for_this_machine(void)
{
	if (osmem_g.opt.arenas)
		return (unsigned)osmem_g.opt.arenas;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (cpus < 1)
		cpus = 1;
	unsigned n = (unsigned)cpus * ARENAS_PER_CPU;
	return n < ARENA_MAX ? n : ARENA_MAX;
}

struct arena *osmem_arena_choose(void)
{
	osmem_ensure_init();
	osmem_lock(&choose_lock);
	if (!arenas_limit)
		arenas_limit = limit_for_this_machine();
	unsigned i = next_choice;
	next_choice = (next_choice + 1) % arenas_limit;
	struct arena *h = &osmem_arenas[i];
	if (i >= arenas_ready) {
		/* Arenas are made in index order, so I == arenas_ready here; all
		   but the main one start as zeros, unlocked and without brk. */
		osmem_heap_init(h);
		__atomic_store_n(&arenas_ready, i + 1, __ATOMIC_RELEASE);
	}
	osmem_unlock(&choose_lock);
	osmem_my_arena = h;
	return h;
}

unsigned osmem_arena_count(void)
{
	return __atomic_load_n(&arenas_ready, __ATOMIC_ACQUIRE);
}

/* Arenas are always locked in index order, and an arena's lock is never
   taken while one of a higher index is held, so this cannot deadlock.
   The choosing lock comes first: no arena is made while all are held. */
void osmem_arenas_lock_all(void)
{
	osmem_lock(&choose_lock);
	for (unsigned i = 0; i < arenas_ready; i++)
		arena_lock(&osmem_arenas[i]);
}

void osmem_arenas_unlock_all(void)
{
	for (unsigned i = arenas_ready; i--;)
		arena_unlock(&osmem_arenas[i]);
	osmem_unlock(&choose_lock);
}

/* In the child of a fork, which has one thread: every lock is free. */
void osmem_arenas_reset_locks(void)
{
	osmem_lock_reset(&choose_lock);
	osmem_lock_reset(&osmem_segments.lock);
	for (unsigned i = 0; i < arenas_ready; i++)
		osmem_lock_reset(&osmem_arenas[i].lock);
}
