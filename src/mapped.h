/*
 * mapped.h - large blocks in mappings of their own (mapped.c).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_MAPPED_H
#define OSMEM_MAPPED_H

#include "chunk.h"

/* A block of at least N bytes aligned to ALIGN (a power of two, at least
   OSMEM_ALIGN); NULL when the kernel refuses.  FRESH asks for a new
   mapping of just the size needed, never a reused one: it then reads as
   zero and wastes less than a page. */
void *osmem_mapped_alloc(size_t n, size_t align, bool fresh) OSMEM_HIDDEN;
/* P must be a live mapped block, else the program is told and aborted. */
void osmem_mapped_free(void *p, const char *func) OSMEM_HIDDEN;
size_t osmem_mapped_usable(const void *p, const char *func) OSMEM_HIDDEN;
/* Resizes mapped block P to hold N bytes without copying it: in place,
   or moved by mremap.  NULL when the kernel cannot (P is then untouched,
   and the caller may copy it to a new block). */
void *osmem_mapped_remap(void *p, size_t n, const char *func) OSMEM_HIDDEN;
bool osmem_mapped_can_remap(void) OSMEM_HIDDEN;
void osmem_mapped_stats(size_t *blocks, size_t *bytes, size_t *cached) OSMEM_HIDDEN;
/* Unmaps every freed mapping kept for reuse. */
void osmem_mapped_release_cache(void) OSMEM_HIDDEN;
/* Keeps at most LIMIT bytes of freed mappings from now on, and unmaps
   what is kept beyond KEEP bytes (or beyond LIMIT, if lower) now. */
void osmem_mapped_set_cache_limit(size_t limit, size_t keep) OSMEM_HIDDEN;
/* With the lock held: how many live blocks have mappings advised to use
   huge pages (OSMEM_HUGE_GROW), and the bytes of those mappings. */
void osmem_mapped_huge(size_t *blocks, size_t *bytes) OSMEM_HIDDEN;
/* NULL when every live mapping's header is intact, else the problem. */
const char *osmem_mapped_verify(const void **at) OSMEM_HIDDEN;

/* mapcache.c, with the registry's lock held.  Extents are whole pages. */
/* Caches the freed pages [ADDR, ADDR+LEN); false when they are not kept
   (the caller unmaps them). */
bool osmem_mapcache_put(void *addr, size_t len) OSMEM_HIDDEN;
/* Exactly LEN bytes of mapped pages, not zeroed, from the cache; NULL when
   it has none to offer. */
void *osmem_mapcache_take(size_t len) OSMEM_HIDDEN;
/* Takes the LEN bytes at ADDR if they are cached; false otherwise. */
bool osmem_mapcache_take_at(void *addr, size_t len) OSMEM_HIDDEN;
/* Unmaps what has been seen cached for longer than its lifetime.  Reads
   the clock: called only where time is spent anyway (mapcache.c). */
void osmem_mapcache_expire(void) OSMEM_HIDDEN;
size_t osmem_mapcache_bytes(void) OSMEM_HIDDEN;
/* Unmaps what is cached beyond LIMIT bytes, cold ones counted too, the
   oldest first. */
void osmem_mapcache_trim(size_t limit) OSMEM_HIDDEN;
/* The I-th cached extent and the cold bytes at its end, for the tests and
   os_malloc_info; false past the last. */
bool osmem_mapcache_extent(unsigned i, void **base, size_t *len, size_t *cold) OSMEM_HIDDEN;

/* With the lock held: the block kept registered for reuse by a request
   of its size (mapped.c's spare) becomes an ordinary cached extent, as
   everything that looks at the cache's extents needs. */
void osmem_mapped_spare_flush(void) OSMEM_HIDDEN;
void osmem_mapped_lock(void) OSMEM_HIDDEN;
void osmem_mapped_unlock(void) OSMEM_HIDDEN;
void osmem_mapped_after_fork_child(void) OSMEM_HIDDEN;

#endif /* OSMEM_MAPPED_H */
