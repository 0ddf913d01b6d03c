/*
 * batch.c - a working set of 4096 live blocks of 16 B to 4 KiB in which a
 * random block is replaced at each step: freed, and a block of a new
 * random size allocated in its place.  One step is one operation.
 *
 * With ARG 0 this runs in the main thread ("batch"); with ARG N it runs
 * in N threads at once, each with its own working set ("threads-N"), and
 * the time is the wall-clock time until the last thread is done.  Filling
 * the working set beforehand and emptying it afterwards are not timed.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"

#include <pthread.h>

#define LIVE 4096
#define STEPS 2000000
#define MIN_SIZE 16
#define MAX_SIZE 4096

#define MAX_THREADS 8

struct worker {
	pthread_t thread;
	pthread_barrier_t *start;  /* NULL when run in the main thread */
	uint64_t seed, steps;
	uint64_t t_start, t_end;
	char *slot[LIVE];
};

/* Static, so that the workers' own records are no allocation. */
static struct worker workers[MAX_THREADS];

static void *batch_worker(void *arg)
{
	struct worker *w = arg;
	struct rng r;
	rng_seed(&r, w->seed);
	for (size_t i = 0; i < LIVE; i++) {
		size_t size = rng_range(&r, MIN_SIZE, MAX_SIZE);
		w->slot[i] = BENCH_MALLOC(size);
		BENCH_CHECK(w->slot[i], "batch", size);
		w->slot[i][0] = 1;
	}
	if (w->start)
		pthread_barrier_wait(w->start);
	w->t_start = bench_now_ns();
	for (uint64_t i = 0; i < w->steps; i++) {
		size_t k = rng_below(&r, LIVE);
		size_t size = rng_range(&r, MIN_SIZE, MAX_SIZE);
		BENCH_FREE(w->slot[k]);
		char *p = BENCH_MALLOC(size);
		BENCH_CHECK(p, "batch", size);
		p[0] = (char)i;
		w->slot[k] = p;
	}
	w->t_end = bench_now_ns();
	for (size_t i = 0; i < LIVE; i++)
		BENCH_FREE(w->slot[i]);
	return NULL;
}

void bench_batch(long arg, double scale, struct bench_result *res)
{
	unsigned threads = arg > 0 ? (unsigned)arg : 1;
	pthread_barrier_t start;
	if (threads > MAX_THREADS) {
		fprintf(stderr, "bench: at most %d threads\n", MAX_THREADS);
		exit(1);
	}
	for (unsigned t = 0; t < threads; t++) {
		workers[t].seed = 0xba7c4 + t;
		workers[t].steps = bench_scaled(STEPS, scale);
		workers[t].start = arg > 0 ? &start : NULL;
	}
	if (arg == 0) {
		batch_worker(&workers[0]);
	} else {
		/* The barrier lets every thread finish its fill before any of
		   them starts the timed part. */
		pthread_barrier_init(&start, NULL, threads);
		for (unsigned t = 0; t < threads; t++)
			if (pthread_create(&workers[t].thread, NULL, batch_worker, &workers[t]) != 0) {
				fprintf(stderr, "bench: cannot create a thread\n");
				exit(2);
			}
		for (unsigned t = 0; t < threads; t++)
			pthread_join(workers[t].thread, NULL);
		pthread_barrier_destroy(&start);
	}
	uint64_t first = workers[0].t_start, last = workers[0].t_end;
	for (unsigned t = 1; t < threads; t++) {
		if (workers[t].t_start < first)
			first = workers[t].t_start;
		if (workers[t].t_end > last)
			last = workers[t].t_end;
	}
	res->ns = last - first;
	res->ops = (uint64_t)threads * workers[0].steps;
}
