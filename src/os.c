/*
 * os.c - the system calls libosmem makes, and nothing else.
 *
 * Keeping them in one place keeps the rest of the allocator free of errno
 * juggling and makes the system-call pattern easy to read off.
 *
 * SPDX-License-Identifier: MIT
 */
#include "internal.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

/* sbrk, or NULL (not (void *)-1) when the break cannot move. */
void *osmem_os_sbrk(intptr_t increment)
{
	void *old = sbrk(increment);
	return old == (void *)-1 ? NULL : old;
}

void *osmem_os_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void osmem_os_unmap(void *addr, size_t len)
{
	/* munmap of a range we mapped cannot fail; errno is the caller's. */
	int saved = errno;
	munmap(addr, len);
	errno = saved;
}

/* Resize a mapping, moving it if need be; NULL when the kernel cannot. */
void *osmem_os_remap(void *addr, size_t old_len, size_t new_len)
{
#if defined(HAVE_MREMAP) && defined(HAVE_DECL_MREMAP_MAYMOVE_FLAG)
	void *p = mremap(addr, old_len, new_len, MREMAP_MAYMOVE);
	return p == MAP_FAILED ? NULL : p;
#else
	(void)addr; (void)old_len; (void)new_len;
	return NULL;
#endif
}

/* Tell the kernel it may take back the pages of [addr, addr+len); they
   read as zero afterwards.  Only a hint: failure changes nothing. */
void osmem_os_release(void *addr, size_t len)
{
#if defined(HAVE_MADVISE) && defined(HAVE_DECL_MADV_DONTNEED_FLAG)
	int saved = errno;
	madvise(addr, len, MADV_DONTNEED);
	errno = saved;
#else
	(void)addr; (void)len;
#endif
}
