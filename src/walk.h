/*
 * walk.h - whole-process checks (walk.c, stats.c).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_WALK_H
#define OSMEM_WALK_H

#include "heap.h"

/* osmem_heap_verify for every arena in turn, each under its own lock
   (which the caller must not hold). */
const char *osmem_arenas_verify(osmem_visit_fn visit, void *arg, const void **at) OSMEM_HIDDEN;

/* stats.c: verifies the heap, the calling thread's cache and the
   mappings; reports the first problem as a misuse of FUNC and aborts. */
void osmem_check_everything(const char *func) OSMEM_HIDDEN;

#endif /* OSMEM_WALK_H */
