/*
 * bench.h - what the benchmark workloads share: a seeded random number
 * generator, the clock, a way to keep the compiler from optimising an
 * allocation away, and the table of workloads.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef BENCH_H
#define BENCH_H

#include "alloc.h"

#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- random numbers: splitmix64 seeds a xorshift64* stream ----------- */

struct rng {
	uint64_t s;
};

static inline uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Every stream is fixed by its seed, so every allocator sees the same
   sequence of requests. */
static inline void rng_seed(struct rng *r, uint64_t seed)
{
	r->s = splitmix64(&seed);
	if (r->s == 0)
		r->s = 1;
}

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t x = r->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* Uniform in [0, n), by multiplying rather than dividing. */
static inline size_t rng_below(struct rng *r, size_t n)
{
	return (size_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in [lo, hi]. */
static inline size_t rng_range(struct rng *r, size_t lo, size_t hi)
{
	return lo + rng_below(r, hi - lo + 1);
}

/* ---- time and the optimiser ---------------------------------------- */

uint64_t bench_now_ns(void);

/* Makes the compiler believe P is used, so that a malloc/free pair of the
   C library, which it knows about, cannot be folded away. */
#define BENCH_KEEP(p) __asm__ __volatile__("" : : "r"(p) : "memory")

/* A pointer to memory the program could not obtain: the workloads stop
   with this message rather than measure an allocator that failed. */
_Noreturn void bench_out_of_memory(const char *where, size_t n);

#define BENCH_CHECK(p, where, n) \
	do { if (!(p)) bench_out_of_memory((where), (n)); } while (0)

/* For a thread waiting on another: spins briefly, then lets the other
   run, as the machine may have fewer cores than there are threads. */
static inline void bench_pause(unsigned *spins)
{
	if (++*spins >= 64) {
		*spins = 0;
		sched_yield();
	}
}

/* ---- workloads -------------------------------------------------------- */

/* What a workload reports; main adds the peak RSS. */
struct bench_result {
	uint64_t ops;         /* operations timed */
	uint64_t ns;          /* wall-clock time of those operations */
	size_t peak_live;     /* most bytes requested and not yet freed, if kept */
	long base_rss_kib;    /* resident KiB before the allocations: set by
	                         main, refreshed by a workload that touches
	                         bookkeeping memory of its own first */
};

/* The resident set size now, in KiB; 0 where /proc cannot tell. */
long bench_rss_kib(void);

/* ARG is the workload's parameter (a size, a thread count); SCALE
   multiplies its operation count (BENCH_SCALE, 1 by default). */
typedef void bench_fn(long arg, double scale, struct bench_result *res);

/* The operation count for SCALE, never below one. */
static inline uint64_t bench_scaled(uint64_t n, double scale)
{
	double v = (double)n * scale;
	return v < 1.0 ? 1 : (uint64_t)v;
}

bench_fn bench_pairs, bench_calloc, bench_large, bench_large_xl; /* pairs.c */
bench_fn bench_batch;                                      /* batch.c */
bench_fn bench_burst;                                      /* burst.c */
bench_fn bench_realloc_grow, bench_realloc_strings;        /* realloc.c */
bench_fn bench_prodcons;                                   /* prodcons.c */
bench_fn bench_xfree;                                      /* xfree.c */
bench_fn bench_frag;                                       /* frag.c */

#endif /* BENCH_H */
