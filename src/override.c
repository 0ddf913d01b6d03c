/*
 * override.c - the standard allocation names, for libosmem-malloc.so.
 *
 * Loaded with LD_PRELOAD (see osmem-run(1)), this library moves every
 * allocation of a program onto libosmem.  It must serve the very first
 * allocation the dynamic loader and the C library make, before any
 * constructor has run, so the allocator initialises itself lazily, keeps
 * its thread state in initial-exec TLS and never calls dlsym, stdio or
 * atexit.
 *
 * SPDX-License-Identifier: MIT
 */
#include <osmem.h>

#include "init.h"
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

/* Not declared by every C library version. */
void cfree(void *ptr);
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);

OSMEM_PUBLIC void *malloc(size_t size) { return os_malloc(size); }
OSMEM_PUBLIC void free(void *ptr) { os_free(ptr); }
OSMEM_PUBLIC void cfree(void *ptr) { os_free(ptr); }
OSMEM_PUBLIC void *calloc(size_t nmemb, size_t size) { return os_calloc(nmemb, size); }
OSMEM_PUBLIC void *realloc(void *ptr, size_t size) { return os_realloc(ptr, size); }

OSMEM_PUBLIC void *reallocarray(void *ptr, size_t nmemb, size_t size)
{
	return os_reallocarray(ptr, nmemb, size);
}

OSMEM_PUBLIC int posix_memalign(void **memptr, size_t alignment, size_t size)
{
	return os_posix_memalign(memptr, alignment, size);
}

/* memalign and aligned_alloc as the C library has them (glibc 2.36, and
   memalign in later versions too), for the programs built against it: an
   alignment up to OSMEM_ALIGN, 0 included, gives an ordinary block, one
   that is not a power of two is rounded up to the next, and only one
   above the largest power of two is refused, with EINVAL.
   os_aligned_alloc and os_memalign stay strict. */
static void *lenient_aligned_alloc(size_t alignment, size_t size)
{
	if (alignment <= OSMEM_ALIGN)
		return os_malloc(size);
	if (alignment & (alignment - 1)) {
		if (alignment > SIZE_MAX / 2 + 1) {
			errno = EINVAL;
			return NULL;
		}
		/* Stops at SIZE_MAX / 2 + 1 at the latest: no overflow. */
		size_t up = OSMEM_ALIGN * 2;
		while (up < alignment)
			up <<= 1;
		alignment = up;
	}
	return os_aligned_alloc(alignment, size);
}

OSMEM_PUBLIC void *aligned_alloc(size_t alignment, size_t size)
{
	return lenient_aligned_alloc(alignment, size);
}

OSMEM_PUBLIC void *memalign(size_t alignment, size_t size)
{
	return lenient_aligned_alloc(alignment, size);
}

OSMEM_PUBLIC void *valloc(size_t size)
{
	osmem_ensure_started();
	return os_aligned_alloc(osmem_g.page_size, size);
}

/* Like valloc, with the size rounded up to whole pages. */
OSMEM_PUBLIC void *pvalloc(size_t size)
{
	osmem_ensure_started();
	size_t page = osmem_g.page_size;
	if (size > OSMEM_MAX_REQUEST)
		return os_aligned_alloc(page, size); /* fails with ENOMEM */
	return os_aligned_alloc(page, osmem_align_up(size ? size : 1, page));
}

OSMEM_PUBLIC size_t malloc_usable_size(void *ptr) { return os_malloc_usable_size(ptr); }

/* C23's sized deallocation: the size is a promise we do not need. */
OSMEM_PUBLIC void free_sized(void *ptr, size_t size)
{
	(void)size;
	os_free(ptr);
}

OSMEM_PUBLIC void free_aligned_sized(void *ptr, size_t alignment, size_t size)
{
	(void)alignment;
	(void)size;
	os_free(ptr);
}

/* ---- glibc's extensions, answered with libosmem's own state ------------- *
 * Programs call these to tune and inspect the allocator that holds their
 * memory; under the drop-in that is libosmem, and glibc's answers would
 * describe a heap that holds nothing of theirs. */

OSMEM_PUBLIC int malloc_trim(size_t pad) { return os_malloc_trim(pad); }

OSMEM_PUBLIC void malloc_stats(void) { os_malloc_stats(); }

OSMEM_PUBLIC int malloc_info(int options, FILE *stream) { return os_malloc_info(options, stream); }

/* glibc's parameters that libosmem has an equivalent for are passed on,
   and the answer is libosmem's; the others (fastbin sizes, the number of
   mappings, the check action, perturbation, the arena test) mean nothing
   here and are accepted and ignored, as glibc ignores the numbers it does
   not know. */
OSMEM_PUBLIC int mallopt(int param, int value)
{
	switch (param) {
	case M_TRIM_THRESHOLD:
		return os_mallopt(OSMEM_M_TRIM_THRESHOLD, value);
	case M_TOP_PAD:
		return os_mallopt(OSMEM_M_TOP_PAD, value);
	case M_MMAP_THRESHOLD:
		return os_mallopt(OSMEM_M_MMAP_THRESHOLD, value);
	case M_ARENA_MAX:
		return os_mallopt(OSMEM_M_ARENAS, value);
	default:
		return 1;
	}
}

/* glibc's fields, filled from os_mallinfo: "arena" is the heap's whole
   size, "ordblks"/"fordblks" its free blocks, "smblks"/"fsmblks" the
   blocks kept in thread caches (what glibc's fastbins are to it),
   "hblks"/"hblkhd" the blocks in mappings of their own, "uordblks" the
   heap bytes in use; "usmblks" is 0, as in glibc, and so is "keepcost",
   which libosmem does not track apart. */
OSMEM_PUBLIC struct mallinfo2 mallinfo2(void)
{
	struct os_mallinfo mi = os_mallinfo();
	size_t heap_used = mi.in_use_bytes > mi.mapped_bytes ? mi.in_use_bytes - mi.mapped_bytes : 0;
	return (struct mallinfo2){
		.arena = mi.heap_bytes + mi.heap_mapped_bytes,
		.ordblks = mi.free_blocks,
		.smblks = mi.cached_blocks,
		.hblks = mi.mapped_blocks,
		.hblkhd = mi.mapped_bytes,
		.usmblks = 0,
		.fsmblks = mi.cached_bytes,
		.uordblks = heap_used,
		.fordblks = mi.free_bytes,
		.keepcost = 0,
	};
}

/* The same in ints, for older programs: each value stops at INT_MAX
   rather than wrapping round. */
static int saturated(size_t v) { return v > INT_MAX ? INT_MAX : (int)v; }

OSMEM_PUBLIC struct mallinfo mallinfo(void)
{
	struct mallinfo2 m = mallinfo2();
	return (struct mallinfo){
		.arena = saturated(m.arena),
		.ordblks = saturated(m.ordblks),
		.smblks = saturated(m.smblks),
		.hblks = saturated(m.hblks),
		.hblkhd = saturated(m.hblkhd),
		.usmblks = saturated(m.usmblks),
		.fsmblks = saturated(m.fsmblks),
		.uordblks = saturated(m.uordblks),
		.fordblks = saturated(m.fordblks),
		.keepcost = saturated(m.keepcost),
	};
}
