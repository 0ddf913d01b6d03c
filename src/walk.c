/*
 * walk.c - walks every arena (heapwalk.c does one) and verifies every
 * invariant in chunk.h, bins.h and heap.h.  It backs the tests' view of
 * the heap and OSMEM_CHECK=2, and never changes anything.
 *
 * SPDX-License-Identifier: MIT
 */
#include "walk.h"

#include "arena.h"

const char *osmem_arenas_verify(osmem_visit_fn visit, void *arg, const void **at)
{
	const char *err = NULL;
	*at = NULL;
	for (unsigned i = 0; !err && i < osmem_arena_count(); i++) {
		struct arena *h = &osmem_arenas[i];
		arena_lock(h);
		err = osmem_heap_verify(h, visit, arg, at);
		arena_unlock(h);
	}
	return err;
}
