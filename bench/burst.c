/*
 * burst.c - bursts of blocks of one size, allocated and then all freed.
 *
 * Each burst picks a count of 25 to 1600 and a size of 16 B to 1 KiB,
 * allocates that many blocks of that size, writing a byte of each, and
 * then frees them all: in half of the bursts in the order they were
 * allocated, in the other half in reverse.  This is what a parser or a
 * request handler does with its temporary nodes, and it holds more blocks
 * of one size at once than a small per-thread list of free blocks keeps,
 * so that the allocator's path behind such a list is timed as well.  One
 * malloc with its free is one operation; bursts run until the operation
 * count is reached, so the last one may carry it a little over.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"

#define OPS 10000000
#define MIN_COUNT 25
#define MAX_COUNT 1600
#define MIN_SIZE 16
#define MAX_SIZE 1024

/* Static, so that the bookkeeping is no allocation of the workload. */
static unsigned char *burst[MAX_COUNT];

void bench_burst(long arg, double scale, struct bench_result *res)
{
	(void)arg;
	struct rng r;
	rng_seed(&r, 0xb0257);
	uint64_t want = bench_scaled(OPS, scale), ops = 0;
	uint64_t t0 = bench_now_ns();
	while (ops < want) {
		size_t count = rng_range(&r, MIN_COUNT, MAX_COUNT);
		size_t size = rng_range(&r, MIN_SIZE, MAX_SIZE);
		int reverse = (int)rng_below(&r, 2);
		for (size_t i = 0; i < count; i++) {
			unsigned char *p = BENCH_MALLOC(size);
			BENCH_CHECK(p, "burst", size);
			p[0] = (unsigned char)i;
			burst[i] = p;
		}
		if (reverse)
			for (size_t i = count; i-- > 0;)
				BENCH_FREE(burst[i]);
		else
			for (size_t i = 0; i < count; i++)
				BENCH_FREE(burst[i]);
		ops += count;
	}
	res->ns = bench_now_ns() - t0;
	res->ops = ops;
}
