/*
 * osmem.h - the public interface of libosmem.
 *
 * libosmem is a general-purpose memory allocator: blocks below the mmap
 * threshold (128 KiB by default) come from a best-fit heap grown with brk,
 * larger ones from private anonymous mappings.  Every function here may be
 * called from any thread.  See os_malloc(3) and libosmem(3).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_H
#define OSMEM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Allocator attributes, where the compiler understands them. */
#if defined(__GNUC__) || defined(__clang__)
# define OSMEM_MALLOC_ATTR __attribute__((__malloc__))
# define OSMEM_WUR __attribute__((__warn_unused_result__))
# define OSMEM_ALLOC_SIZE(n) __attribute__((__alloc_size__ n))
# define OSMEM_NOTHROW __attribute__((__nothrow__))
#else
# define OSMEM_MALLOC_ATTR
# define OSMEM_WUR
# define OSMEM_ALLOC_SIZE(n)
# define OSMEM_NOTHROW
#endif

/* Allocate at least SIZE bytes aligned for any object type; os_malloc(0)
   returns a unique pointer.  NULL with errno ENOMEM when it cannot. */
void *os_malloc(size_t size)
	OSMEM_NOTHROW OSMEM_MALLOC_ATTR OSMEM_ALLOC_SIZE((1)) OSMEM_WUR;

/* Release a block from os_malloc, os_calloc or os_realloc.  NULL is a
   no-op; errno is preserved.  Misuse (double free, foreign pointer) aborts. */
void os_free(void *ptr) OSMEM_NOTHROW;

/* Allocate NMEMB * SIZE zero-filled bytes; NULL with errno ENOMEM if the
   product overflows or the memory cannot be had. */
void *os_calloc(size_t nmemb, size_t size)
	OSMEM_NOTHROW OSMEM_MALLOC_ATTR OSMEM_ALLOC_SIZE((1, 2)) OSMEM_WUR;

/* Resize PTR to SIZE bytes, keeping the first min(old, new) bytes.  NULL
   PTR acts as os_malloc; SIZE 0 frees PTR and returns NULL.  On failure
   returns NULL with errno ENOMEM and PTR is left intact. */
void *os_realloc(void *ptr, size_t size)
	OSMEM_NOTHROW OSMEM_ALLOC_SIZE((2)) OSMEM_WUR;

/* Like os_realloc(PTR, NMEMB * SIZE), but fails with ENOMEM, leaving PTR
   intact, when the product overflows. */
void *os_reallocarray(void *ptr, size_t nmemb, size_t size)
	OSMEM_NOTHROW OSMEM_ALLOC_SIZE((2, 3)) OSMEM_WUR;

/* Store in *MEMPTR a block of SIZE bytes aligned to ALIGNMENT, a power of
   two multiple of sizeof(void *).  Returns 0, EINVAL for a bad alignment or
   ENOMEM; *MEMPTR is only written on success. */
int os_posix_memalign(void **memptr, size_t alignment, size_t size)
	OSMEM_NOTHROW OSMEM_WUR;

/* SIZE bytes aligned to ALIGNMENT, a power of two; NULL with errno EINVAL
   for a bad alignment or ENOMEM. */
void *os_aligned_alloc(size_t alignment, size_t size)
	OSMEM_NOTHROW OSMEM_MALLOC_ATTR OSMEM_ALLOC_SIZE((2)) OSMEM_WUR;

/* The same as os_aligned_alloc, under its traditional name. */
void *os_memalign(size_t alignment, size_t size)
	OSMEM_NOTHROW OSMEM_MALLOC_ATTR OSMEM_ALLOC_SIZE((2)) OSMEM_WUR;

/* The number of usable bytes in block PTR (at least what was asked for);
   0 for NULL. */
size_t os_malloc_usable_size(void *ptr) OSMEM_NOTHROW;

/* Counters describing the allocator's memory, from os_mallinfo(). */
struct os_mallinfo {
	size_t heap_bytes;        /* heap obtained with brk */
	size_t heap_mapped_bytes; /* heap segments mapped because brk failed */
	size_t mapped_bytes;      /* large blocks in mappings of their own */
	size_t mapped_blocks;     /* number of those blocks */
	size_t mapped_cache_bytes; /* freed mappings kept for reuse */
	size_t in_use_bytes;      /* bytes of live blocks, headers included */
	size_t peak_in_use_bytes; /* the most in_use_bytes has ever been */
	size_t free_bytes;        /* heap bytes in free blocks */
	size_t free_blocks;       /* number of free heap blocks */
	size_t cached_bytes;      /* freed blocks held in per-thread caches */
	size_t cached_blocks;     /* number of those blocks */
	size_t released_bytes;    /* free heap bytes whose pages were given back
	                             to the kernel: mapped, not resident */
};

/* A snapshot of the counters above.  Fields are only ever appended, and
   each new layout comes with a new symbol: programs built against an
   earlier osmem.h call the function under the name they were built with
   and get the fields they know. */
#if defined(__GNUC__) || defined(__clang__)
struct os_mallinfo os_mallinfo(void) __asm__("os_mallinfo_v2") OSMEM_NOTHROW;
#else
struct os_mallinfo os_mallinfo_v2(void);
# define os_mallinfo() os_mallinfo_v2()
#endif

/* A short human-readable summary of os_mallinfo() on standard error. */
void os_malloc_stats(void) OSMEM_NOTHROW;

/* Verify every heap segment, free list, the calling thread's cache and
   every mapping.  Returns 0 when all is consistent; otherwise reports the
   first problem on standard error and aborts. */
int os_heap_check(void) OSMEM_NOTHROW;

#ifdef __cplusplus
}
#endif

#endif /* OSMEM_H */
