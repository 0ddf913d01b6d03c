/*
 * pairs.c - workloads that allocate a block and free it straight away:
 * one fixed size, calloc of random sizes, and large blocks; and very large
 * blocks, of which a few are kept live.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"

/* Blocks at or above this size take far longer per pair on some
   allocators (a system call each), so they get fewer repetitions. */
#define BIG_BLOCK ((size_t)128 * 1024)

/* malloc(ARG) and free it again, in a loop; one byte of each block is
   written so that the block is really used. */
void bench_pairs(long arg, double scale, struct bench_result *res)
{
	size_t size = (size_t)arg;
	uint64_t n = bench_scaled(size >= BIG_BLOCK ? 100000 : 20000000, scale);
	uint64_t t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		char *p = BENCH_MALLOC(size);
		BENCH_CHECK(p, "pairs", size);
		p[0] = (char)i;
		BENCH_KEEP(p);
		BENCH_FREE(p);
	}
	res->ns = bench_now_ns() - t0;
	res->ops = n;
}

/* calloc of 256 B to 4 KiB and free; a byte in the middle is read, and
   must be zero. */
void bench_calloc(long arg, double scale, struct bench_result *res)
{
	(void)arg;
	struct rng r;
	rng_seed(&r, 0xca110c);
	uint64_t n = bench_scaled(3000000, scale);
	unsigned bad = 0;
	uint64_t t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		size_t size = rng_range(&r, 256, 4096);
		char *p = BENCH_CALLOC(1, size);
		BENCH_CHECK(p, "calloc", size);
		bad |= (unsigned char)p[size / 2];
		p[0] = 1;
		BENCH_KEEP(p);
		BENCH_FREE(p);
	}
	res->ns = bench_now_ns() - t0;
	res->ops = n;
	if (bad) {
		fprintf(stderr, "bench: calloc returned memory that was not zero\n");
		exit(3);
	}
}

/* malloc of 128 KiB to 16 MiB (each power of two in that range equally
   likely), touching the first, middle and last page, then free. */
void bench_large(long arg, double scale, struct bench_result *res)
{
	(void)arg;
	struct rng r;
	rng_seed(&r, 0x1a59e);
	uint64_t n = bench_scaled(40000, scale);
	uint64_t t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		size_t low = BIG_BLOCK << rng_below(&r, 7);
		size_t size = low + rng_below(&r, low);
		char *p = BENCH_MALLOC(size);
		BENCH_CHECK(p, "large", size);
		p[0] = 1;
		p[size / 2] = 2;
		p[size - 1] = 3;
		BENCH_KEEP(p);
		BENCH_FREE(p);
	}
	res->ns = bench_now_ns() - t0;
	res->ops = n;
}

/* Very large blocks, of 5 to 25 MiB (any size in that range equally
   likely), such as a program's image or file buffers.  Four of them are
   live at a time, as such buffers are seldom alone; each operation frees
   one of the four at random and allocates a new block in its place,
   touching its first, middle and last page.  Filling the four and freeing
   them at the end are not timed. */
#define XL_MIN ((size_t)5 << 20)
#define XL_MAX ((size_t)25 << 20)
#define XL_LIVE 4

static void touch_xl(char *p, size_t size, uint64_t i)
{
	p[0] = (char)i;
	p[size / 2] = (char)i;
	p[size - 1] = (char)i;
}

void bench_large_xl(long arg, double scale, struct bench_result *res)
{
	(void)arg;
	struct rng r;
	rng_seed(&r, 0x1a59e5);
	char *live[XL_LIVE];
	for (size_t k = 0; k < XL_LIVE; k++) {
		size_t size = rng_range(&r, XL_MIN, XL_MAX);
		live[k] = BENCH_MALLOC(size);
		BENCH_CHECK(live[k], "large-xl", size);
		touch_xl(live[k], size, k);
	}
	uint64_t n = bench_scaled(40000, scale);
	uint64_t t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		size_t k = rng_below(&r, XL_LIVE);
		size_t size = rng_range(&r, XL_MIN, XL_MAX);
		BENCH_FREE(live[k]);
		char *p = BENCH_MALLOC(size);
		BENCH_CHECK(p, "large-xl", size);
		touch_xl(p, size, i);
		BENCH_KEEP(p);
		live[k] = p;
	}
	res->ns = bench_now_ns() - t0;
	res->ops = n;
	for (size_t k = 0; k < XL_LIVE; k++)
		BENCH_FREE(live[k]);
}
