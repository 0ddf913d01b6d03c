/*
 * mapped.h - large blocks in mappings of their own (mapped.c).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_MAPPED_H
#define OSMEM_MAPPED_H

#include "chunk.h"

/* A block of at least N bytes aligned to ALIGN (a power of two, at least
   OSMEM_ALIGN), zero-filled; NULL when the kernel refuses. */
void *osmem_mapped_alloc(size_t n, size_t align) OSMEM_HIDDEN;
/* P must be a live mapped block, else the program is told and aborted. */
void osmem_mapped_free(void *p, const char *func) OSMEM_HIDDEN;
size_t osmem_mapped_usable(const void *p, const char *func) OSMEM_HIDDEN;
/* Resizes mapped block P to hold N bytes without copying; NULL when the
   kernel cannot (P is then untouched). */
void *osmem_mapped_remap(void *p, size_t n, const char *func) OSMEM_HIDDEN;
bool osmem_mapped_can_remap(void) OSMEM_HIDDEN;
void osmem_mapped_stats(size_t *blocks, size_t *bytes) OSMEM_HIDDEN;
/* NULL when every live mapping's header is intact, else the problem. */
const char *osmem_mapped_verify(const void **at) OSMEM_HIDDEN;

void osmem_mapped_lock(void) OSMEM_HIDDEN;
void osmem_mapped_unlock(void) OSMEM_HIDDEN;
void osmem_mapped_after_fork_child(void) OSMEM_HIDDEN;

#endif /* OSMEM_MAPPED_H */
