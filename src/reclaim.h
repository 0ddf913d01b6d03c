/*
 * reclaim.h - what the entry points do before a request fails (reclaim.c).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_RECLAIM_H
#define OSMEM_RECLAIM_H

#include "internal.h"

/* Gives back to the kernel everything libosmem holds for reuse that it
   can: the calling thread's cached blocks (which coalesce in the heap),
   the freed mappings kept for reuse, and the free space at the end of
   every heap segment, down to the last block in use.  Other threads are
   asked to empty their caches on their next slow path.  Called with no
   lock held, by a request that the kernel has just refused memory; the
   request is then tried once more. */
void osmem_reclaim(void) OSMEM_HIDDEN;

#endif /* OSMEM_RECLAIM_H */
