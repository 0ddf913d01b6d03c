/*
 * walk.h - the heap walker (walk.c).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_WALK_H
#define OSMEM_WALK_H

#include "internal.h"

/* Called for every heap chunk, in address order within each segment. */
typedef void (*osmem_visit_fn)(void *arg, const void *payload, size_t size, bool is_free);

/* With the heap lock held: NULL when every invariant holds, else the first
   problem found, with the block concerned in *AT (or NULL). */
const char *osmem_heap_verify(osmem_visit_fn visit, void *arg, const void **at) OSMEM_HIDDEN;
/* heap.c: the bins' half of the check. */
const char *osmem_bins_verify(size_t expected, const void **at) OSMEM_HIDDEN;

#endif /* OSMEM_WALK_H */
