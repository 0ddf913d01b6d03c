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

#ifdef __cplusplus
}
#endif

#endif /* OSMEM_H */
