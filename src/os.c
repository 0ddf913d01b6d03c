/*
 * os.c - the system calls libosmem makes, and nothing else.
 *
 * Keeping them in one place keeps the rest of the allocator free of errno
 * juggling and makes the system-call pattern easy to read off.
 *
 * SPDX-License-Identifier: MIT
 */
#include "internal.h"
#include "lock.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Every wrapper leaves errno as it found it: failures are reported by
   return value, and os_free must never change errno. */

struct osmem_os_calls osmem_os_calls;

static inline void count_call(size_t *counter)
{
	__atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

/* sbrk, or NULL (not (void *)-1) when the break cannot move. */
void *osmem_os_sbrk(intptr_t increment)
{
	int saved = errno;
	if (increment < 0)
		count_call(&osmem_os_calls.shrink);
	void *old = sbrk(increment);
	errno = saved;
	return old == (void *)-1 ? NULL : old;
}

void *osmem_os_map(size_t len)
{
	int saved = errno;
	count_call(&osmem_os_calls.map);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	errno = saved;
	return p == MAP_FAILED ? NULL : p;
}

#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

void *osmem_os_reserve(size_t len)
{
	int saved = errno;
	count_call(&osmem_os_calls.map);
	void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	errno = saved;
	return p == MAP_FAILED ? NULL : p;
}

bool osmem_os_commit(void *addr, size_t len)
{
	int saved = errno;
	int r = mprotect(addr, len, PROT_READ | PROT_WRITE);
	errno = saved;
	return r == 0;
}

void osmem_os_decommit(void *addr, size_t len)
{
	int saved = errno;
	count_call(&osmem_os_calls.unmap);
	/* A fresh inaccessible mapping in place of the pages: they go, and
	   their charge against the commit limit with them; the range stays
	   reserved. */
	mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	errno = saved;
}

void osmem_os_unmap(void *addr, size_t len)
{
	int saved = errno;
	count_call(&osmem_os_calls.unmap);
	munmap(addr, len);
	errno = saved;
}

/* Resize a mapping, moving it if need be; NULL when the kernel cannot. */
void *osmem_os_remap(void *addr, size_t old_len, size_t new_len)
{
#if defined(HAVE_MREMAP) && defined(HAVE_DECL_MREMAP_MAYMOVE_FLAG)
	int saved = errno;
	count_call(&osmem_os_calls.remap);
	void *p = mremap(addr, old_len, new_len, MREMAP_MAYMOVE);
	errno = saved;
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
	count_call(&osmem_os_calls.release);
	__atomic_add_fetch(&osmem_os_calls.released_bytes, len, __ATOMIC_RELAXED);
	madvise(addr, len, MADV_DONTNEED);
	errno = saved;
#else
	(void)addr; (void)len;
#endif
}

bool osmem_os_advise_huge(void *addr, size_t len)
{
#if defined(HAVE_MADVISE) && defined(HAVE_DECL_MADV_HUGEPAGE_FLAG)
	int saved = errno;
	count_call(&osmem_os_calls.advise);
	int r = madvise(addr, len, MADV_HUGEPAGE);
	errno = saved;
	return r == 0;
#else
	(void)addr; (void)len;
	return false;
#endif
}

/* The slow halves of lock.h: sleep until the lock is free and take it in
   the "waiters" state, or wake one sleeper.  A short spin first catches a
   holder that is about to let go. */
void osmem_lock_wait(osmem_lock_t *l)
{
	for (int spin = 0; spin < 64; spin++) {
		int expected = 0;
		if (__atomic_load_n(&l->state, __ATOMIC_RELAXED) == 0 &&
		    __atomic_compare_exchange_n(&l->state, &expected, 1, false, __ATOMIC_ACQUIRE,
		                                __ATOMIC_RELAXED))
			return;
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	}
	int saved = errno;
	while (__atomic_exchange_n(&l->state, 2, __ATOMIC_ACQUIRE) != 0)
		syscall(SYS_futex, &l->state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
	errno = saved;
}

void osmem_lock_wake(osmem_lock_t *l)
{
	int saved = errno;
	syscall(SYS_futex, &l->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	errno = saved;
}
