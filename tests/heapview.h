/*
 * heapview.h - a test-only view of libosmem's heap.
 *
 * Tests link the allocator statically together with this view, so they can
 * see blocks, their state and the segments without strace, and check
 * splitting, coalescing, best fit and growth at the top exactly.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_HEAPVIEW_H
#define OSMEM_HEAPVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hv_block {
	const void *payload;
	size_t size; /* whole chunk: 16-byte header included */
	bool is_free;
};

struct hv_segment {
	uintptr_t base, end;
	bool from_brk;
};

/* Heap blocks of every segment, in address order within a segment. */
size_t hv_blocks(struct hv_block *out, size_t max);
size_t hv_segments(struct hv_segment *out, size_t max);
/* The block whose payload is P; false if P is no heap block. */
bool hv_find(const void *p, struct hv_block *out);
/* Returns the calling thread's cached blocks to the heap, where they
   coalesce; the page work that causes may wait. */
void hv_drain_cache(void);
/* Returns the calling thread's cached blocks to the heap (they coalesce),
   and does what the heap leaves waiting after frees: the pages of large
   free chunks go back, and the top is trimmed beyond the trim threshold. */
void hv_flush_cache(void);
/* The bytes the calling thread keeps for itself. */
size_t hv_my_kept_bytes(void);
/* Asks every other thread to empty its cache on its next slow path, as a
   request about to fail does. */
void hv_ask_all_to_drain(void);
/* Blocks waiting on the remote lists of all arenas. */
size_t hv_remote_blocks(void);
/* os_free, then hv_flush_cache: the block is back in the heap and
   coalesced at once, as every free is with OSMEM_CACHE_MAX=0, and its
   pages are given back as the textbook allocator gives them.  Tests of
   the heap's exact layout free with this. */
void hv_free_now(void *p);
/* NULL when every heap invariant holds, else the first problem. */
const char *hv_verify(void);

size_t hv_page_size(void);
size_t hv_top_pad(void);
size_t hv_trim_threshold(void);
size_t hv_mmap_threshold(void);
size_t hv_cache_max_payload(void);
/* OSMEM_CACHE_MAX: the largest payload a thread cache keeps; 0 when the
   caches are off and every free coalesces at once. */
size_t hv_cache_max(void);
/* How many bytes of resident free pages an arena's small frees may leave
   waiting before they are given back (ledger.h). */
size_t hv_waiting_limit(void);
/* Bytes of heap obtained with brk / with mmap-backed segments. */
size_t hv_brk_bytes(void);
size_t hv_map_segment_bytes(void);
/* Turns the cache of freed mappings off (as OSMEM_MAP_CACHE=0 would), so
   that os_free of a large block unmaps it at once. */
void hv_map_cache_off(void);

/* The cache of freed mappings: its limit in bytes, its extents, and how
   long it keeps them (the default is a second; tests shorten or lengthen
   it).  hv_map_cache_empty() unmaps everything cached. */
struct hv_extent {
	uintptr_t base;
	size_t len;
	size_t cold; /* the bytes at its end whose pages were given back */
};
size_t hv_map_cache_limit(void);
size_t hv_map_cache_extents(struct hv_extent *out, size_t max);
void hv_map_cache_lifetime(long long ns);
void hv_map_cache_empty(void);

/* mmap, munmap and mremap calls made by libosmem so far, and the bytes
   of the ranges it has given back with madvise. */
struct hv_map_calls {
	size_t map, unmap, remap;
	size_t released_bytes;
	size_t advise; /* mappings advised to use huge pages */
};
struct hv_map_calls hv_map_calls(void);
/* OSMEM_HUGE_GROW in force. */
size_t hv_huge_grow(void);

#endif
