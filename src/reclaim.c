/*
 * reclaim.c - giving back what is held for reuse: on request
 * (os_malloc_trim), and as the last resort before ENOMEM.
 *
 * A program that asks for memory the kernel will not give (an RLIMIT_AS,
 * a container's limit, an address space that is full) must not be told
 * ENOMEM while libosmem sits on memory it does not use.  Blocks kept in a
 * thread cache pin the heap where they lie, a free heap top below the
 * trim threshold and freed mappings kept for reuse take address space,
 * and an arena's mapped segments stay mapped when they empty.  Here all of
 * that goes back, so that the request can be tried again.
 *
 * Another thread's cache cannot be emptied from here: its lists are its
 * own, read and written without any lock or atomic instruction on its
 * fast paths.  It is asked to empty them itself, on its next slow path;
 * until then it holds at most the per-thread bound of its cache.
 *
 * SPDX-License-Identifier: MIT
 */
#include <osmem.h>

#include "reclaim.h"

#include "arena.h"
#include "cache.h"
#include "init.h"
#include "mapped.h"

/* Gives back the calling thread's cached blocks, the freed mappings, and
   then, in every arena in turn under its own lock, what its segments hold
   free: under PRESSURE everything (osmem_heap_reclaim), else down to PAD
   bytes at each segment's end and the pages inside free runs
   (osmem_heap_give_back). */
static void give_back(bool pressure, size_t pad)
{
	osmem_cache_flush();
	osmem_mapped_release_cache();
	for (unsigned i = 0; i < osmem_arena_count(); i++) {
		struct arena *h = &osmem_arenas[i];
		arena_lock(h);
		osmem_arena_collect(h);
		if (pressure)
			osmem_heap_reclaim(h);
		else
			osmem_heap_give_back(h, pad);
		arena_unlock(h);
	}
}

void osmem_reclaim(void)
{
	osmem_cache_ask_all_to_drain();
	give_back(true, 0);
}

/* The system calls that give memory back, counted over the whole
   process. */
static size_t calls_that_give_back(void)
{
	return __atomic_load_n(&osmem_os_calls.unmap, __ATOMIC_RELAXED) +
	       __atomic_load_n(&osmem_os_calls.release, __ATOMIC_RELAXED) +
	       __atomic_load_n(&osmem_os_calls.shrink, __ATOMIC_RELAXED);
}

OSMEM_PUBLIC int os_malloc_trim(size_t pad)
{
	osmem_ensure_started();
	size_t before = calls_that_give_back();
	give_back(false, pad);
	/* (Another thread's call may be counted too: then memory did go
	   back, only not all of it through this call.) */
	return calls_that_give_back() != before;
}
