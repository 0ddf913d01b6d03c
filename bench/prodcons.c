/*
 * prodcons.c - blocks allocated in one thread and freed in another.
 *
 * A producer thread allocates blocks of 16 B to 1 KiB, writes them and
 * passes them through a bounded single-producer single-consumer ring of
 * pointers (lock-free, 1024 slots) to the main thread, which checks and
 * frees them.  One block is one operation; the time runs until the last
 * block has been freed.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>

#define RING 1024u
#define BLOCKS 1000000

static struct {
	alignas(64) _Atomic uint64_t head; /* next slot the producer fills */
	alignas(64) _Atomic uint64_t tail; /* next slot the consumer empties */
	alignas(64) unsigned char *slot[RING];
	uint64_t count;
} ring;

static void *producer(void *arg)
{
	(void)arg;
	struct rng r;
	rng_seed(&r, 0x9d0c);
	uint64_t head = 0, tail_seen = 0;
	for (uint64_t i = 0; i < ring.count; i++) {
		size_t size = rng_range(&r, 16, 1024);
		unsigned char *p = BENCH_MALLOC(size);
		BENCH_CHECK(p, "prodcons", size);
		p[0] = (unsigned char)i;
		p[size - 1] = (unsigned char)i;
		unsigned spins = 0;
		while (head - tail_seen == RING) {
			tail_seen = atomic_load_explicit(&ring.tail, memory_order_acquire);
			if (head - tail_seen == RING)
				bench_pause(&spins);
		}
		ring.slot[head % RING] = p;
		atomic_store_explicit(&ring.head, ++head, memory_order_release);
	}
	return NULL;
}

void bench_prodcons(long arg, double scale, struct bench_result *res)
{
	(void)arg;
	pthread_t thread;
	ring.count = bench_scaled(BLOCKS, scale);
	atomic_store(&ring.head, 0);
	atomic_store(&ring.tail, 0);

	uint64_t t0 = bench_now_ns();
	if (pthread_create(&thread, NULL, producer, NULL) != 0) {
		fprintf(stderr, "bench: cannot create a thread\n");
		exit(2);
	}
	uint64_t tail = 0, head_seen = 0;
	for (uint64_t i = 0; i < ring.count; i++) {
		unsigned spins = 0;
		while (tail == head_seen) {
			head_seen = atomic_load_explicit(&ring.head, memory_order_acquire);
			if (tail == head_seen)
				bench_pause(&spins);
		}
		unsigned char *p = ring.slot[tail % RING];
		atomic_store_explicit(&ring.tail, ++tail, memory_order_release);
		if (p[0] != (unsigned char)i) {
			fprintf(stderr, "bench: prodcons: block %llu arrived damaged\n",
			        (unsigned long long)i);
			exit(3);
		}
		BENCH_FREE(p);
	}
	res->ns = bench_now_ns() - t0;
	res->ops = ring.count;
	pthread_join(thread, NULL);
}
