/*
 * frag.c - a phased workload that leaves holes, for the memory it costs.
 *
 * Each of two rounds:
 *   1. allocate 300000 small blocks of 16 to 256 B;
 *   2. free every other one, leaving holes no larger than 256 B;
 *   3. allocate blocks of 512 B to 4 KiB until as many bytes have been
 *      allocated as step 2 freed: none of them fits in a hole;
 *   4. free everything.
 * The live bytes peak at the end of step 3.  What matters is the peak
 * resident size per peak live byte, which main prints as rss_per_live;
 * every malloc and free is one operation for the time per operation.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"

#include <string.h>

#define SMALL 300000
#define LARGE (SMALL / 2)  /* large blocks are at least twice the largest small */
#define ROUNDS 2

static char *small[SMALL], *large[LARGE];
static uint16_t small_size[SMALL];

void bench_frag(long arg, double scale, struct bench_result *res)
{
	(void)arg;
	size_t nsmall = (size_t)bench_scaled(SMALL, scale);
	if (nsmall > SMALL)
		nsmall = SMALL;
	/* The bookkeeping arrays are the program's, not the allocator's. */
	memset(small, 0, sizeof(small));
	memset(large, 0, sizeof(large));
	memset(small_size, 0, sizeof(small_size));
	res->base_rss_kib = bench_rss_kib();

	struct rng r;
	rng_seed(&r, 0xf4a9);
	size_t live = 0, peak = 0;
	uint64_t ops = 0;
	uint64_t t0 = bench_now_ns();
	for (int round = 0; round < ROUNDS; round++) {
		for (size_t i = 0; i < nsmall; i++) {
			size_t size = rng_range(&r, 16, 256);
			small[i] = BENCH_MALLOC(size);
			BENCH_CHECK(small[i], "frag", size);
			memset(small[i], 1, size);
			small_size[i] = (uint16_t)size;
			live += size;
		}
		size_t freed = 0;
		for (size_t i = 1; i < nsmall; i += 2) {
			BENCH_FREE(small[i]);
			small[i] = NULL;
			freed += small_size[i];
		}
		live -= freed;
		size_t nlarge = 0, added = 0;
		while (added < freed && nlarge < LARGE) {
			size_t size = rng_range(&r, 512, 4096);
			large[nlarge] = BENCH_MALLOC(size);
			BENCH_CHECK(large[nlarge], "frag", size);
			memset(large[nlarge], 2, size);
			nlarge++;
			added += size;
		}
		live += added;
		if (live > peak)
			peak = live;
		for (size_t i = 0; i < nsmall; i += 2)
			BENCH_FREE(small[i]);
		for (size_t i = 0; i < nlarge; i++)
			BENCH_FREE(large[i]);
		ops += nsmall + nsmall / 2 + nlarge + (nsmall + 1) / 2 + nlarge;
		live = 0;
	}
	res->ns = bench_now_ns() - t0;
	res->ops = ops;
	res->peak_live = peak;
}
