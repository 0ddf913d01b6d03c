/*
 * fuzz-ops.c - a libFuzzer harness driving libosmem through a sequence of
 * calls decoded from its input, checked against a shadow model.
 *
 * The input is read as records of five bytes:
 *
 *   byte 0: bits 0-2 the operation, bits 3-5 the size class, bits 6-7 spare
 *           bits mixed into the size;  operation 7 with size class 5 frees
 *           the slot's block on a new thread, and with size class 6 or 7
 *           has a new thread allocate the slot's block (of class 2 or 6)
 *           and exit, so that the block outlives the thread and its arena
 *           has to be adopted or drained;
 *   byte 1: the slot (one of NSLOTS);
 *   bytes 2-3: a 16-bit value the size class turns into a byte count;
 *   byte 4: the alignment exponent of the aligned operations.
 *
 * Every slot remembers its block, the size asked for, the usable size and
 * the seed of the pattern written into it.  After every operation the
 * harness checks what the allocator promises:
 *  - a block is aligned for any object type (or to the alignment asked for)
 *    and has at least the bytes asked for;
 *  - no two live blocks overlap, usable bytes included;
 *  - os_calloc memory reads as zero, and a block keeps its contents until it
 *    is freed, across os_realloc up to the smaller of the two sizes;
 *  - requests that cannot be met return NULL with errno ENOMEM (EINVAL for
 *    a bad alignment) and leave everything else as it was;
 *  - os_heap_check() passes every few operations and at the end;
 *  - os_malloc_trim, which some check operations call first, changes no
 *    live block.
 * Each input ends by freeing every block, after which the bytes in use and
 * the mapped blocks are back where they were before the first input.
 *
 * A broken promise is reported on standard error and aborts, which
 * libFuzzer records as a crash with the input that caused it.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NSLOTS 48
#define RECORD 5
#define CHECK_EVERY 16
#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
/* Bytes at either end of a block that are always filled and checked;
   between them only a few bytes per page, so that large blocks stay cheap. */
#define EDGE 2048
#define STRIDE 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct slot {
	unsigned char *p;
	size_t size;    /* bytes asked for */
	size_t usable;  /* os_malloc_usable_size at allocation */
	size_t align;   /* alignment asked for, 0 for none */
	uint32_t seed;  /* of the pattern in the block */
};

static struct slot slots[NSLOTS];
static uint32_t next_seed = 1;
static size_t base_in_use, base_mapped_blocks, base_mapped_bytes;
static bool have_base;

static _Noreturn void fail(const char *what, size_t slot, size_t a, size_t b)
{
	fprintf(stderr, "fuzz-ops: %s (slot %zu, %zu, %zu)\n", what, slot, a, b);
	fflush(stderr);
	abort();
}

static inline uint8_t pattern(uint32_t seed, size_t i)
{
	uint32_t x = seed ^ (uint32_t)(i >> 2) * 0x9e3779b1u;
	x ^= x >> 15;
	x *= 0x85ebca6bu;
	x ^= x >> 13;
	return (uint8_t)(x >> ((i & 3u) * 8u));
}

/* The offsets of a block of N bytes that carry the pattern: all of them
   for a small block, else both edges and one word per page in between.
   Calls FN(i) for each and stops at the first that returns false. */
#define FOR_EACH_CHECKED(n, i, body)                                         \
	do {                                                                 \
		size_t n_ = (n);                                             \
		if (n_ <= 2 * EDGE + STRIDE) {                               \
			for (size_t i = 0; i < n_; i++)                      \
				body;                                        \
		} else {                                                     \
			for (size_t i = 0; i < EDGE; i++)                    \
				body;                                        \
			for (size_t k_ = EDGE; k_ + 8 <= n_ - EDGE; k_ += STRIDE) \
				for (size_t i = k_; i < k_ + 8; i++)         \
					body;                                \
			for (size_t i = n_ - EDGE; i < n_; i++)              \
				body;                                        \
		}                                                            \
	} while (0)

static void fill(struct slot *s)
{
	s->seed = next_seed++;
	unsigned char *p = s->p;
	uint32_t seed = s->seed;
	FOR_EACH_CHECKED(s->size, i, p[i] = pattern(seed, i));
}

/* Checks the pattern of S over its first LIMIT bytes. */
static void verify(const struct slot *s, size_t limit, size_t idx)
{
	const unsigned char *p = s->p;
	uint32_t seed = s->seed;
	size_t n = s->size;
	/* Only offsets that were checked positions of the block's own size
	   and lie below LIMIT. */
	FOR_EACH_CHECKED(n, i, if (i < limit && p[i] != pattern(seed, i))
	                           fail("block contents changed", idx, i, n));
}

static void verify_zero(const unsigned char *p, size_t n, size_t idx)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			fail("os_calloc memory is not zero", idx, i, n);
}

/* A fresh block P of N bytes for slot IDX: its promises, then its pattern. */
static void adopt(size_t idx, void *p, size_t n, size_t align)
{
	struct slot *s = &slots[idx];
	uintptr_t a = (uintptr_t)p;
	if (a % alignof(max_align_t))
		fail("block is not aligned for any object", idx, a, n);
	if (align && a % align)
		fail("block is not aligned as asked", idx, a, align);
	size_t usable = os_malloc_usable_size(p);
	if (usable < n)
		fail("usable size is below the size asked for", idx, usable, n);
	for (size_t j = 0; j < NSLOTS; j++) {
		const struct slot *o = &slots[j];
		if (j == idx || !o->p)
			continue;
		uintptr_t lo = (uintptr_t)o->p, hi = lo + (o->usable ? o->usable : 1);
		if (a < hi && lo < a + (usable ? usable : 1))
			fail("two live blocks overlap", idx, j, a);
	}
	s->p = p;
	s->size = n;
	s->usable = usable;
	s->align = align;
	fill(s);
}

static void release(size_t idx)
{
	struct slot *s = &slots[idx];
	if (!s->p)
		return;
	verify(s, s->size, idx);
	errno = 12345;
	os_free(s->p);
	if (errno != 12345)
		fail("os_free changed errno", idx, (size_t)errno, 0);
	s->p = NULL;
}

/* Byte counts: a class picks the range, V (and the spare bits) the point. */
static size_t size_of(unsigned cls, unsigned v, unsigned spare)
{
	static const size_t edges[] = {
		0, 1, 15, 16, 17, 24, 1008, 1024, 1025, 1040, 2048, 4095, 4096, 4097,
		65536, 128 * KiB - 17, 128 * KiB - 16, 128 * KiB - 1, 128 * KiB,
		128 * KiB + 1, 256 * KiB, MiB, 4 * MiB,
	};
	switch (cls) {
	case 0: return v % 65;
	case 1: return v % 1100;
	case 2: return v % (16 * KiB);
	case 3: return v;
	case 4: return 64 * KiB + (size_t)v * 4;             /* across the mmap threshold */
	case 5: return edges[(v + spare) % (sizeof(edges) / sizeof(edges[0]))] + (v >> 14);
	case 6: return (size_t)v * 32 + spare;               /* up to 2 MiB */
	default:                                                /* cannot be met */
		switch (spare) {
		case 0: return SIZE_MAX - v;
		case 1: return (size_t)PTRDIFF_MAX + v;
		case 2: return (size_t)PTRDIFF_MAX - v;
		default: return ((size_t)1 << 62) + v;
		}
	}
}

static bool impossible(size_t n) { return n >= ((size_t)1 << 46); }

static void expect_enomem(void *p, size_t idx, size_t n)
{
	if (p)
		fail("an impossible request succeeded", idx, n, 0);
	if (errno != ENOMEM)
		fail("a failed request did not set ENOMEM", idx, n, (size_t)errno);
}

static void op_malloc(size_t idx, size_t n)
{
	release(idx);
	errno = 0;
	void *p = os_malloc(n);
	if (impossible(n))
		return expect_enomem(p, idx, n);
	if (!p)
		fail("os_malloc failed", idx, n, (size_t)errno);
	adopt(idx, p, n, 0);
}

static void op_calloc(size_t idx, size_t n, unsigned v)
{
	release(idx);
	/* Split N into a product where that is exact, to vary nmemb. */
	size_t nmemb = 1, each = n;
	unsigned d = 1u + v % 7u;
	if (!impossible(n) && n % d == 0) {
		nmemb = d;
		each = n / d;
	} else if (impossible(n)) {
		nmemb = (size_t)1 << (v % 16);
		each = n;
	}
	errno = 0;
	unsigned char *p = os_calloc(nmemb, each);
	if (impossible(n))
		return expect_enomem(p, idx, n);
	if (!p)
		fail("os_calloc failed", idx, n, (size_t)errno);
	verify_zero(p, n, idx);
	adopt(idx, p, n, 0);
}

static void op_realloc(size_t idx, size_t n)
{
	struct slot *s = &slots[idx];
	if (s->p)
		verify(s, s->size, idx);
	errno = 0;
	unsigned char *p = os_realloc(s->p, n);
	if (impossible(n)) {
		expect_enomem(p, idx, n);
		if (s->p)
			verify(s, s->size, idx);
		return;
	}
	if (n == 0 && s->p) {
		/* os_realloc(p, 0) frees p. */
		if (p)
			fail("os_realloc(p, 0) did not return NULL", idx, 0, 0);
		s->p = NULL;
		return;
	}
	if (!p)
		fail("os_realloc failed", idx, n, (size_t)errno);
	if (s->p) {
		struct slot old = *s;
		old.p = p;
		verify(&old, n < old.size ? n : old.size, idx);
	}
	s->p = NULL;
	adopt(idx, p, n, 0);
}

static void op_aligned(size_t idx, size_t n, unsigned shift, bool posix)
{
	release(idx);
	if (impossible(n) || n > 8 * MiB)
		n %= 8 * MiB;
	size_t align = (size_t)1 << (shift % 21);
	void *p = NULL;
	if (posix) {
		int rc = os_posix_memalign(&p, align, n);
		if (align % sizeof(void *)) {
			if (rc != EINVAL || p)
				fail("os_posix_memalign took a bad alignment", idx, align, (size_t)rc);
			return;
		}
		if (rc)
			fail("os_posix_memalign failed", idx, align, (size_t)rc);
	} else {
		p = os_aligned_alloc(align, n);
		if (!p)
			fail("os_aligned_alloc failed", idx, align, n);
	}
	adopt(idx, p, n, align);
}

static void op_check(size_t idx)
{
	struct slot *s = &slots[idx];
	if (s->p) {
		if (os_malloc_usable_size(s->p) != s->usable)
			fail("usable size changed", idx, os_malloc_usable_size(s->p), s->usable);
		verify(s, s->size, idx);
	}
	if (os_heap_check() != 0)
		fail("os_heap_check() did not return 0", idx, 0, 0);
}

/* ---- other threads ----------------------------------------------------- */

/* What a short-lived thread is asked to do, and what it saw. */
struct job {
	struct slot *s; /* the block to free, for free_on_thread */
	size_t n;       /* the bytes to allocate, for alloc_on_thread */
	void *p;
	int err;
};

static void *free_on_thread(void *arg)
{
	struct job *j = arg;
	errno = 12345;
	os_free(j->s->p);
	j->err = errno;
	return NULL;
}

static void *alloc_on_thread(void *arg)
{
	struct job *j = arg;
	errno = 0;
	j->p = os_malloc(j->n);
	j->err = errno;
	return NULL;
}

/* Runs FN(J) on a thread of its own, to its end; false when no thread
   could be made (the caller then does the work itself). */
static bool on_thread(void *(*fn)(void *), struct job *j)
{
	pthread_t th;
	if (pthread_create(&th, NULL, fn, j) != 0)
		return false;
	pthread_join(th, NULL);
	return true;
}

/* The block of IDX is freed by a thread that did not allocate it, and
   whose own arena, if it gets one, is not the block's: a remote free. */
static void op_free_elsewhere(size_t idx)
{
	struct slot *s = &slots[idx];
	if (!s->p)
		return;
	verify(s, s->size, idx);
	struct job j = { .s = s };
	if (!on_thread(free_on_thread, &j))
		return release(idx);
	if (j.err != 12345)
		fail("os_free on another thread changed errno", idx, (size_t)j.err, 0);
	s->p = NULL;
}

/* A thread allocates the block of IDX and exits before it is used. */
static void op_alloc_elsewhere(size_t idx, size_t n)
{
	release(idx);
	struct job j = { .n = n };
	if (!on_thread(alloc_on_thread, &j))
		return op_malloc(idx, n);
	if (!j.p)
		fail("os_malloc on a thread that then exited failed", idx, n, (size_t)j.err);
	adopt(idx, j.p, n, 0);
}

static void op_trim(unsigned pad)
{
	os_malloc_trim((size_t)pad * 16);
	for (size_t i = 0; i < NSLOTS; i++)
		if (slots[i].p)
			verify(&slots[i], slots[i].size, i);
}

static void free_everything(void)
{
	for (size_t i = 0; i < NSLOTS; i++)
		release(i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!have_base) {
		struct os_mallinfo mi = os_mallinfo();
		base_in_use = mi.in_use_bytes;
		base_mapped_blocks = mi.mapped_blocks;
		base_mapped_bytes = mi.mapped_bytes;
		have_base = true;
	}
	size_t ops = 0;
	for (size_t at = 0; at + RECORD <= size; at += RECORD) {
		const uint8_t *r = data + at;
		unsigned op = r[0] & 7u, cls = (r[0] >> 3) & 7u, spare = r[0] >> 6;
		size_t idx = r[1] % NSLOTS;
		unsigned v = (unsigned)r[2] | (unsigned)r[3] << 8;
		size_t n = size_of(cls, v, spare);
		switch (op) {
		case 0: op_malloc(idx, n); break;
		case 1: op_calloc(idx, n, v); break;
		case 2: op_realloc(idx, n); break;
		case 3: release(idx); break;
		case 4: op_aligned(idx, n, r[4], false); break;
		case 5: op_aligned(idx, n, r[4], true); break;
		case 6: op_realloc(idx, n % 256); break;
		default:
			if (cls == 5) {
				op_free_elsewhere(idx);
			} else if (cls >= 6) {
				op_alloc_elsewhere(idx, size_of(cls == 6 ? 2 : 6, v, spare));
			} else {
				/* One check in four first gives back everything
				   libosmem holds for reuse: no live block may
				   notice. */
				if (spare == 3)
					op_trim(v);
				op_check(idx);
			}
			break;
		}
		if (++ops % CHECK_EVERY == 0 && os_heap_check() != 0)
			fail("os_heap_check() did not return 0", idx, ops, 0);
	}
	if (os_heap_check() != 0)
		fail("os_heap_check() did not return 0", 0, ops, 0);
	free_everything();
	if (os_heap_check() != 0)
		fail("os_heap_check() did not return 0 after freeing everything", 0, ops, 0);
	struct os_mallinfo mi = os_mallinfo();
	if (mi.in_use_bytes != base_in_use)
		fail("bytes in use did not return after freeing everything", 0, mi.in_use_bytes,
		     base_in_use);
	if (mi.mapped_blocks != base_mapped_blocks || mi.mapped_bytes != base_mapped_bytes)
		fail("mappings were left after freeing everything", 0, mi.mapped_blocks,
		     mi.mapped_bytes);
	return 0;
}
