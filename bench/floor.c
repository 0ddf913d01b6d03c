/*
 * floor.c - what the prodcons workload costs with an allocator that does
 * no work at all: a bound that no allocator can beat, for bench/floor.sh.
 *
 * Preloaded into bench-libc, it serves the producer thread's requests
 * (every thread but the first) from a pool of POOL_SLOTS slots taken in
 * turn, one slot a block, whatever its size, with no header; free does
 * nothing.  The
 * ring of prodcons holds 1024 blocks, so a slot comes round again only
 * after its block has been checked and freed.  Each slot starts on a
 * cache line of its own, so no two blocks share a line: packing them
 * instead made the workload slower, since the producer then writes the
 * line of a block the consumer is reading.  All other requests (the C
 * library's own, before the producer starts) come from a bump region and
 * are never reused.
 *
 * What is left is the workload itself: the producer writes the first and
 * last byte of each block and the ring slot, the consumer reads them,
 * and each cache line of a block crosses between the two cores once each
 * way per round of the pool.  No allocator does less than hand out
 * memory, so none takes less time a block than this (on the same
 * machine, in the same run).  It is not an allocator: it serves this one
 * workload and nothing else.
 *
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define POOL_SLOTS 2048u
#define SLOT_BYTES 1088u /* 17 cache lines */
#define HEADER 16u
#define BUMP_BYTES ((size_t)64 << 20)

static _Alignas(64) unsigned char pool[(size_t)POOL_SLOTS * SLOT_BYTES];
static _Alignas(64) unsigned char bump[BUMP_BYTES];
static size_t bump_used;
/* Initial-exec: the default model of a shared library calls
   __tls_get_addr on every access, which made each block 60% slower. */
static __thread unsigned next_slot __attribute__((__tls_model__("initial-exec")));
static __thread int producer __attribute__((__tls_model__("initial-exec"))); /* 0 unknown, 1 yes, -1 no */

static int is_producer(void)
{
	if (!producer)
		producer = gettid() == getpid() ? -1 : 1;
	return producer > 0;
}

/* A block of the bump region has its size in the 16 bytes before it, for
   realloc; a slot of the pool has none (writing one, in the block's first
   line, made the workload some 10% slower). */
static void *with_size(unsigned char *at, size_t n)
{
	memcpy(at, &n, sizeof(n));
	return at + HEADER;
}

static size_t size_of(const void *p)
{
	const unsigned char *b = p;
	if (b >= pool && b < pool + sizeof(pool))
		return SLOT_BYTES;
	size_t n;
	memcpy(&n, (const unsigned char *)p - HEADER, sizeof(n));
	return n;
}

static void *bump_alloc(size_t n, size_t align)
{
	size_t at = __atomic_load_n(&bump_used, __ATOMIC_RELAXED), start, end;
	do {
		start = (at + HEADER + align - 1) & ~(align - 1);
		end = start + ((n + 15) & ~(size_t)15);
		if (end < start || end > BUMP_BYTES)
			return NULL;
	} while (!__atomic_compare_exchange_n(&bump_used, &at, end, 1, __ATOMIC_RELAXED,
	                                      __ATOMIC_RELAXED));
	return with_size(bump + start - HEADER, n);
}

void *malloc(size_t n)
{
	if (n <= SLOT_BYTES && is_producer())
		return pool + (size_t)(next_slot++ % POOL_SLOTS) * SLOT_BYTES;
	return bump_alloc(n, 16);
}

void free(void *p)
{
	(void)p;
}

void *calloc(size_t count, size_t size)
{
	size_t n;
	if (__builtin_mul_overflow(count, size, &n))
		return NULL;
	/* The bump region is never reused: it is still zero. */
	return bump_alloc(n, 16);
}

void *realloc(void *p, size_t n)
{
	void *q = malloc(n);
	if (p && q) {
		size_t old = size_of(p);
		memcpy(q, p, old < n ? old : n);
	}
	return q;
}

size_t malloc_usable_size(void *p)
{
	return p ? size_of(p) : 0;
}

void *aligned_alloc(size_t align, size_t n)
{
	return bump_alloc(n, align < 16 ? 16 : align);
}

void *memalign(size_t align, size_t n)
{
	return aligned_alloc(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	void *p = aligned_alloc(align, n);
	if (!p)
		return 12; /* ENOMEM */
	*out = p;
	return 0;
}
