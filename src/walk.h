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

struct heap;
/* With H's lock held: NULL when every invariant of arena H holds, else the
   first problem found, with the block concerned in *AT (or NULL).  VISIT
   sees the chunks of H's segments. */
const char *osmem_heap_verify(const struct heap *h, osmem_visit_fn visit, void *arg,
                              const void **at) OSMEM_HIDDEN;
/* The same for every arena in turn, each under its own lock (which the
   caller must not hold). */
const char *osmem_heaps_verify(osmem_visit_fn visit, void *arg, const void **at) OSMEM_HIDDEN;

/* stats.c: verifies the heap, the calling thread's cache and the
   mappings; reports the first problem as a misuse of FUNC and aborts. */
void osmem_check_everything(const char *func) OSMEM_HIDDEN;

#endif /* OSMEM_WALK_H */
