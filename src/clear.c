/*
 * clear.c - zeroing the blocks os_calloc hands out again.
 *
 * A block that a thread kept, or that the heap reuses, has been written
 * and must be cleared; for os_calloc of a few KiB that clearing is half
 * of the call or more.  The C library's memset serves the small sizes
 * well, but from 2 KiB up (glibc's default threshold for it) it uses the
 * string instruction `rep stosb`, whose start-up costs more than the
 * clearing itself on some processors: on an AMD Zen 4, clearing 2 to
 * 4 KiB took 42 ns that way against 35 ns with plain 32-byte stores.
 * So from OSMEM_CLEAR_WIDE bytes up (internal.h), and only where the
 * processor and the kernel support AVX2, blocks are cleared with a loop
 * of 32-byte stores; everything else goes to memset.  The payloads os_calloc
 * clears this way are below the mmap threshold, so the stores stay in
 * the caches and the streaming stores memset uses for huge sizes are
 * not wanted.
 *
 * The processor is asked on the first wide clear, and the answer kept;
 * threads that ask at the same time get the same answer.
 *
 * SPDX-License-Identifier: MIT
 */
#include "internal.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>

typedef char osmem_v32 __attribute__((__vector_size__(32), __aligned__(1)));

/* N >= OSMEM_CLEAR_WIDE bytes from P.  The first 32 and the last 128
   bytes are written unaligned; the stores in between are aligned to 32
   bytes, so that none of them straddles two cache lines. */
__attribute__((__target__("avx2"))) static void clear_avx2(void *p, size_t n)
{
	const osmem_v32 zero = { 0 };
	char *c = p, *end = c + n;
	*(osmem_v32 *)c = zero;
	char *a = (char *)(((uintptr_t)c + 32) & ~(uintptr_t)31);
	for (; a + 128 <= end; a += 128) {
		/* The barrier keeps the compiler from turning the loop back
		   into a call of memset. */
		__asm__("" : : "r"(a) : "memory");
		((osmem_v32 *)a)[0] = zero;
		((osmem_v32 *)a)[1] = zero;
		((osmem_v32 *)a)[2] = zero;
		((osmem_v32 *)a)[3] = zero;
	}
	/* Less than 128 bytes are left: the last 128 are written, over
	   some that already are if need be. */
	((osmem_v32 *)end)[-4] = zero;
	((osmem_v32 *)end)[-3] = zero;
	((osmem_v32 *)end)[-2] = zero;
	((osmem_v32 *)end)[-1] = zero;
}

/* Whether the wide clear may use AVX2: unknown until the first wide clear
   asks the processor, then yes or no for good.  A flag, not a pointer to
   the chosen function, so that the allocator keeps no writable code
   pointer for a heap overflow to aim at. */
enum { WIDE_UNKNOWN, WIDE_AVX2, WIDE_MEMSET };
static int wide_kind = WIDE_UNKNOWN;

/* AVX2 is usable when the processor has it and the kernel saves the
   vector registers (XCR0 bits 1 and 2, read with xgetbv once the
   processor says it has that instruction enabled).  Asked here with cpuid
   rather than __builtin_cpu_supports, whose libgcc code comes with a
   constructor that runs, and touches its pages, in every program linked
   with libosmem, whether it ever calls os_calloc or not. */
static OSMEM_COLD int wide_kind_first(void)
{
	unsigned a, b, c, d;
	int kind = WIDE_MEMSET;
	if (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_OSXSAVE) && (c & bit_AVX)) {
		unsigned xcr0_lo, xcr0_hi;
		__asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
		if ((xcr0_lo & 6) == 6 && __get_cpuid_count(7, 0, &a, &b, &c, &d) &&
		    (b & bit_AVX2))
			kind = WIDE_AVX2;
	}
	__atomic_store_n(&wide_kind, kind, __ATOMIC_RELAXED);
	return kind;
}

void osmem_clear_wide(void *p, size_t n)
{
	int kind = __atomic_load_n(&wide_kind, __ATOMIC_RELAXED);
	if (unlikely(kind == WIDE_UNKNOWN))
		kind = wide_kind_first();
	if (kind == WIDE_AVX2)
		clear_avx2(p, n);
	else
		memset(p, 0, n);
}
#else
void osmem_clear_wide(void *p, size_t n)
{
	memset(p, 0, n);
}
#endif
