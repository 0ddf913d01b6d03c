/*
 * reclaim.c - the last resort before ENOMEM.
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
#include "reclaim.h"

#include "arena.h"
#include "cache.h"
#include "mapped.h"

void osmem_reclaim(void)
{
	osmem_cache_flush();
	osmem_cache_ask_all_to_drain();
	osmem_mapped_release_cache();
	for (unsigned i = 0; i < osmem_arena_count(); i++) {
		struct arena *h = &osmem_arenas[i];
		arena_lock(h);
		osmem_heap_reclaim(h);
		arena_unlock(h);
	}
}
