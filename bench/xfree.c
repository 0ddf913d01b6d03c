/*
 * xfree.c - a server-like mix: threads that allocate blocks of mixed
 * lifetimes and free many of each other's.
 *
 * Every thread allocates one block of 16 B to 4 KiB per step (sizes
 * log-uniform: as many blocks of 16-31 B as of 2-4 KiB) and then does
 * one of three things with it, drawn from its own stream:
 *   - 3 in 8: keeps it briefly, in a queue of the last 32 such blocks,
 *     and frees the one that falls out of the queue;
 *   - 2 in 8: keeps it for long, in place of a random one of its 1024
 *     long-lived blocks, which it frees;
 *   - 3 in 8: hands it to another thread, through a mailbox that only the
 *     two of them use (a lock-free single-producer single-consumer ring).
 * Every 16 steps a thread empties its mailboxes: it frees one block it
 * received at once and puts the next one in place of one of its own
 * long-lived blocks, freeing that instead, and so on alternately; so a
 * block may be freed by the thread that allocated it or by another, soon
 * or late.  A thread that finds a mailbox full empties its own while it
 * waits, so that no two threads can wait for each other.
 *
 * "xfree" runs 4 threads (more than the 2 cores of the machine the targets
 * are set on, as a server would), "xfree-1" the same mix in the main
 * thread alone, a program that never starts a thread, whose blocks travel
 * through a mailbox to itself.  One step, a malloc and eventually its
 * free, is one operation.  The time runs from the start of the first
 * thread to the moment the last one has freed what was sent to it; the
 * blocks kept at the end are freed after that, as the fill before it is
 * not timed either.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>

#define MAX_THREADS 4
#define STEPS 4000000      /* in all, shared out among the threads */
#define LIVE 1024          /* long-lived blocks per thread */
#define SHORT 32           /* short-lived queue per thread */
#define RING 1024u         /* slots of one mailbox */
#define COLLECT_EVERY 16   /* steps between emptying the mailboxes */

/* One sender, one receiver: the sender alone writes head, the receiver
   alone writes tail, each on a cache line of its own. */
struct mailbox {
	alignas(64) _Atomic uint64_t head;
	alignas(64) _Atomic uint64_t tail;
	alignas(64) unsigned char *slot[RING];
};

struct worker {
	pthread_t thread;
	unsigned id;
	uint64_t steps;
	struct rng keep;           /* which long-lived block a received one replaces */
	uint64_t received;
	uint64_t t_start, t_end;
	size_t next_short;
	unsigned char *shortq[SHORT];
	unsigned char *live[LIVE];
};

/* Static, so that the workers' own records are no allocation.  box[to][from]. */
static struct mailbox box[MAX_THREADS][MAX_THREADS];
static struct worker workers[MAX_THREADS];
static unsigned nthreads;
static pthread_barrier_t start;
static _Atomic unsigned finished;   /* threads that have sent their last block */

/* The first byte of every block names the thread that allocated it, so
   that a receiver can tell a block that arrived damaged. */
static unsigned char tag(unsigned id)
{
	return (unsigned char)(0xa0 + id);
}

static size_t mixed_size(struct rng *r)
{
	size_t low = (size_t)16 << rng_below(r, 8);
	return low + rng_below(r, low);
}

static unsigned char *new_block(struct worker *w, struct rng *r, uint64_t i)
{
	size_t size = mixed_size(r);
	unsigned char *p = BENCH_MALLOC(size);
	BENCH_CHECK(p, "xfree", size);
	p[0] = tag(w->id);
	p[size - 1] = (unsigned char)i;
	return p;
}

/* Frees what the other threads (or, alone, this one) sent to W. */
static void collect(struct worker *w)
{
	for (unsigned from = 0; from < nthreads; from++) {
		struct mailbox *m = &box[w->id][from];
		uint64_t tail = atomic_load_explicit(&m->tail, memory_order_relaxed);
		uint64_t head = atomic_load_explicit(&m->head, memory_order_acquire);
		if (tail == head)
			continue;
		for (; tail != head; tail++) {
			unsigned char *p = m->slot[tail % RING];
			if (p[0] != tag(from)) {
				fprintf(stderr, "bench: xfree: a block from thread %u arrived damaged\n", from);
				exit(3);
			}
			if (w->received++ & 1) {
				size_t k = rng_below(&w->keep, LIVE);
				unsigned char *old = w->live[k];
				w->live[k] = p;
				p = old;
			}
			BENCH_FREE(p);
		}
		atomic_store_explicit(&m->tail, tail, memory_order_release);
	}
}

static void post(struct worker *w, unsigned to, unsigned char *p)
{
	struct mailbox *m = &box[to][w->id];
	uint64_t head = atomic_load_explicit(&m->head, memory_order_relaxed);
	unsigned spins = 0;
	while (head - atomic_load_explicit(&m->tail, memory_order_acquire) == RING) {
		/* The receiver is behind, or waiting for room in a mailbox
		   of this thread's: make room here first. */
		collect(w);
		if (head - atomic_load_explicit(&m->tail, memory_order_acquire) == RING)
			bench_pause(&spins);
	}
	m->slot[head % RING] = p;
	atomic_store_explicit(&m->head, head + 1, memory_order_release);
}

static void *xfree_worker(void *arg)
{
	struct worker *w = arg;
	struct rng r;
	rng_seed(&r, 0x9f4ee + w->id);
	rng_seed(&w->keep, 0x6ee9 + w->id);
	for (size_t k = 0; k < LIVE; k++)
		w->live[k] = new_block(w, &r, k);
	for (size_t k = 0; k < SHORT; k++)
		w->shortq[k] = new_block(w, &r, k);
	w->next_short = 0;
	w->received = 0;
	if (nthreads > 1)
		pthread_barrier_wait(&start);

	w->t_start = bench_now_ns();
	for (uint64_t i = 0; i < w->steps; i++) {
		unsigned char *p = new_block(w, &r, i);
		size_t kind = rng_below(&r, 8);
		if (kind < 3) {
			unsigned char *old = w->shortq[w->next_short];
			w->shortq[w->next_short] = p;
			w->next_short = (w->next_short + 1) % SHORT;
			BENCH_FREE(old);
		} else if (kind < 5) {
			size_t k = rng_below(&r, LIVE);
			BENCH_FREE(w->live[k]);
			w->live[k] = p;
		} else {
			unsigned to = w->id;
			if (nthreads > 1)
				to = (w->id + 1 + (unsigned)rng_below(&r, nthreads - 1)) % nthreads;
			post(w, to, p);
		}
		if (i % COLLECT_EVERY == COLLECT_EVERY - 1)
			collect(w);
	}
	/* Others may still be sending: keep taking their blocks in until
	   every thread has sent its last, then take in the rest. */
	atomic_fetch_add(&finished, 1);
	unsigned spins = 0;
	while (atomic_load(&finished) < nthreads) {
		collect(w);
		bench_pause(&spins);
	}
	collect(w);
	w->t_end = bench_now_ns();

	for (size_t k = 0; k < SHORT; k++)
		BENCH_FREE(w->shortq[k]);
	for (size_t k = 0; k < LIVE; k++)
		BENCH_FREE(w->live[k]);
	return NULL;
}

void bench_xfree(long arg, double scale, struct bench_result *res)
{
	nthreads = arg > 0 ? (unsigned)arg : 1;
	if (nthreads > MAX_THREADS) {
		fprintf(stderr, "bench: xfree: at most %d threads\n", MAX_THREADS);
		exit(1);
	}
	atomic_store(&finished, 0);
	for (unsigned t = 0; t < nthreads; t++) {
		workers[t].id = t;
		workers[t].steps = bench_scaled(STEPS / nthreads, scale);
		for (unsigned from = 0; from < nthreads; from++) {
			atomic_store(&box[t][from].head, 0);
			atomic_store(&box[t][from].tail, 0);
		}
	}
	if (nthreads == 1) {
		xfree_worker(&workers[0]);
	} else {
		/* The barrier lets every thread finish its fill before any of
		   them starts the timed part. */
		pthread_barrier_init(&start, NULL, nthreads);
		for (unsigned t = 0; t < nthreads; t++)
			if (pthread_create(&workers[t].thread, NULL, xfree_worker, &workers[t]) != 0) {
				fprintf(stderr, "bench: cannot create a thread\n");
				exit(2);
			}
		for (unsigned t = 0; t < nthreads; t++)
			pthread_join(workers[t].thread, NULL);
		pthread_barrier_destroy(&start);
	}
	uint64_t first = workers[0].t_start, last = workers[0].t_end;
	for (unsigned t = 1; t < nthreads; t++) {
		if (workers[t].t_start < first)
			first = workers[t].t_start;
		if (workers[t].t_end > last)
			last = workers[t].t_end;
	}
	res->ns = last - first;
	res->ops = (uint64_t)nthreads * workers[0].steps;
}
