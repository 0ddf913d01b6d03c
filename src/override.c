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
