/*
 * cache.h - per-thread caches of small blocks (cache.c).
 *
 * A thread keeps freed chunks of up to CACHE_MAX_CHUNK bytes in lists of
 * its own and serves the next requests of those sizes from them without
 * taking the heap lock.  The heap sees cached chunks as USED; they return
 * to it, and coalesce, when a list overflows or the thread exits.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_CACHE_H
#define OSMEM_CACHE_H

#include "chunk.h"

/* Chunk sizes 32, 48, ..., 1040 bytes: payloads of up to 1 KiB. */
#define CACHE_CLASSES 64u
#define CACHE_MAX_CHUNK (CHUNK_MIN + (CACHE_CLASSES - 1u) * 16u)

/* A block from the calling thread's cache, or from the heap through it;
   NULL when the heap is out of memory. */
void *osmem_cache_alloc(size_t cs) OSMEM_HIDDEN;
/* Keeps checked USED chunk C of SIZE bytes in the calling thread's cache;
   false when the thread has none (the caller frees it to the heap). */
bool osmem_cache_free(struct chunk *c, size_t size) OSMEM_HIDDEN;
/* True when C sits in some thread's cache: freeing it again is a double free. */
bool osmem_cache_holds(const struct chunk *c) OSMEM_HIDDEN;
/* Returns every block of the calling thread's cache to the heap. */
void osmem_cache_flush(void) OSMEM_HIDDEN;
void osmem_cache_init(void) OSMEM_HIDDEN;
/* NULL when the calling thread's cache is consistent, else the problem. */
const char *osmem_cache_verify(const void **at) OSMEM_HIDDEN;
/* Bytes held in all thread caches, how many blocks, and the bytes of the
   caches themselves (heap lock held). */
void osmem_cache_totals(size_t *bytes, size_t *blocks, size_t *overhead) OSMEM_HIDDEN;

#endif /* OSMEM_CACHE_H */
