/*
 * t-threads.c - many threads allocating, and freeing each other's blocks.
 *
 * Worker threads allocate blocks of every kind (thread-cache sizes, heap
 * sizes, mappings; os_malloc, os_calloc, os_realloc), fill them with a
 * pattern keyed by a unique id, and pass them to each other through rings; every
 * thread takes blocks out of its ring, checks the pattern, sometimes
 * resizes them, and frees them, so most blocks are freed by a thread that
 * did not allocate them.  At the end every block has come back: once the
 * threads have exited (returning their caches) the heap holds no used
 * block at all.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include "heapview.h"
#include "tap.h"
#include "tutil.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KiB ((size_t)1024)

enum { NTHREADS = 6, OPS = 200000, RING = 2048, HEAD = 4096 };

static pthread_barrier_t start;

struct item {
	unsigned char *p;
	size_t n;
	uint64_t id;
	int owner;
};

/* One ring per thread: a thread puts its blocks into the rings of the
   others and takes from its own, so blocks change threads by design. */
struct ring {
	pthread_mutex_t lock;
	struct item slot[RING];
	size_t head, count;
};
static struct ring rings[NTHREADS];

struct worker {
	int index;
	uint64_t seed;
	/* results */
	size_t allocated, freed, foreign_frees, reallocs, callocs;
	size_t null_results, misaligned, damaged, not_zero;
};

/* Large blocks are patterned at both ends only: enough to catch a block
   handed out twice or moved without its bytes, without touching every
   page of every mapping. */
static void pattern(struct item *it)
{
	if (it->n <= 2 * HEAD) {
		tu_fill(it->p, 0, it->n, it->id);
	} else {
		tu_fill(it->p, 0, HEAD, it->id);
		tu_fill(it->p, it->n - HEAD, it->n, it->id);
	}
}

static bool pattern_ok(const struct item *it, size_t upto)
{
	size_t n = it->n < upto ? it->n : upto;
	if (it->n <= 2 * HEAD)
		return tu_check(it->p, 0, n, it->id) == TU_NONE;
	if (tu_check(it->p, 0, n < HEAD ? n : HEAD, it->id) != TU_NONE)
		return false;
	return n < it->n || tu_check(it->p, it->n - HEAD, it->n, it->id) == TU_NONE;
}

static size_t pick_size(struct tu_rng *r)
{
	uint64_t k = tu_rng_below(r, 100);
	if (k < 70)
		return (size_t)tu_rng_below(r, 1025);              /* thread cache */
	if (k < 97)
		return 1025 + (size_t)tu_rng_below(r, 64 * KiB);   /* heap */
	return 128 * KiB + (size_t)tu_rng_below(r, 384 * KiB); /* mapping */
}

static bool ring_put(struct ring *rg, const struct item *it)
{
	bool ok = false;
	pthread_mutex_lock(&rg->lock);
	if (rg->count < RING) {
		rg->slot[(rg->head + rg->count) % RING] = *it;
		rg->count++;
		ok = true;
	}
	pthread_mutex_unlock(&rg->lock);
	return ok;
}

static bool ring_take(struct ring *rg, struct item *it)
{
	bool ok = false;
	pthread_mutex_lock(&rg->lock);
	if (rg->count) {
		*it = rg->slot[rg->head];
		rg->head = (rg->head + 1) % RING;
		rg->count--;
		ok = true;
	}
	pthread_mutex_unlock(&rg->lock);
	return ok;
}

/* Checks, maybe resizes, and frees a block taken from the ring. */
static void consume(struct worker *w, struct tu_rng *r, struct item *it)
{
	if (!pattern_ok(it, SIZE_MAX))
		w->damaged++;
	if (tu_rng_below(r, 4) == 0) {
		size_t n = pick_size(r);
		unsigned char *q = os_realloc(it->p, n ? n : 1);
		if (!q) {
			w->null_results++;
		} else {
			w->reallocs++;
			size_t keep = it->n < n ? it->n : n;
			it->p = q;
			if (!pattern_ok(it, keep))
				w->damaged++;
			it->n = n ? n : 1;
			pattern(it);
			if (!pattern_ok(it, SIZE_MAX))
				w->damaged++;
		}
	}
	if (it->owner != w->index)
		w->foreign_frees++;
	os_free(it->p);
	w->freed++;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct tu_rng r;
	tu_rng_seed(&r, w->seed);
	uint64_t serial = 0;
	pthread_barrier_wait(&start);
	for (int op = 0; op < OPS; op++) {
		if (tu_rng_below(&r, 2) == 0) {
			struct item it = { .n = pick_size(&r), .owner = w->index };
			it.id = ((uint64_t)w->index << 48) | serial++;
			bool zeroed = tu_rng_below(&r, 5) == 0;
			it.p = zeroed ? os_calloc(1, it.n) : os_malloc(it.n);
			if (!it.p) {
				w->null_results++;
				continue;
			}
			w->allocated++;
			if ((uintptr_t)it.p % alignof(max_align_t))
				w->misaligned++;
			if (zeroed) {
				w->callocs++;
				if (tu_nonzero(it.p, it.n < 2 * HEAD ? it.n : 2 * HEAD) != TU_NONE)
					w->not_zero++;
			}
			pattern(&it);
			/* To another thread: a random one, or the next with room. */
			int to = (w->index + 1 + (int)tu_rng_below(&r, NTHREADS - 1)) % NTHREADS;
			bool sent = false;
			for (int k = 0; k < NTHREADS && !sent; k++, to = (to + 1) % NTHREADS)
				sent = to != w->index && ring_put(&rings[to], &it);
			if (!sent)
				consume(w, &r, &it);
		} else {
			struct item it;
			if (ring_take(&rings[w->index], &it))
				consume(w, &r, &it);
		}
	}
	return NULL;
}

static void *drain(void *arg)
{
	struct worker *w = arg;
	struct tu_rng r;
	tu_rng_seed(&r, w->seed);
	struct item it;
	for (int i = 0; i < NTHREADS; i++)
		while (ring_take(&rings[i], &it))
			consume(w, &r, &it);
	return NULL;
}

int main(void)
{
	tap_diag("libosmem: %d threads passing blocks to each other", NTHREADS);
	uint64_t seed = tu_seed("OSMEM_TEST_SEED");
	static struct worker w[NTHREADS + 1];
	pthread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		pthread_mutex_init(&rings[i].lock, NULL);
	pthread_barrier_init(&start, NULL, NTHREADS);
	for (int i = 0; i <= NTHREADS; i++)
		w[i] = (struct worker){ .index = i, .seed = tu_mix64(seed + (uint64_t)i) };
	for (int i = 0; i < NTHREADS; i++)
		if (pthread_create(&t[i], NULL, work, &w[i]) != 0)
			tap_bail("pthread_create failed");
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	/* Whatever is left in the ring is freed by yet another thread. */
	pthread_t d;
	if (pthread_create(&d, NULL, drain, &w[NTHREADS]) != 0)
		tap_bail("pthread_create failed");
	pthread_join(d, NULL);

	struct worker sum = { 0 };
	for (int i = 0; i <= NTHREADS; i++) {
		sum.allocated += w[i].allocated;
		sum.freed += w[i].freed;
		sum.foreign_frees += w[i].foreign_frees;
		sum.reallocs += w[i].reallocs;
		sum.callocs += w[i].callocs;
		sum.null_results += w[i].null_results;
		sum.misaligned += w[i].misaligned;
		sum.damaged += w[i].damaged;
		sum.not_zero += w[i].not_zero;
	}
	ok(sum.allocated > (size_t)NTHREADS * OPS / 4, "%zu blocks allocated by %d threads",
	   sum.allocated, NTHREADS);
	is_int(sum.null_results, 0, "no allocation or resize failed");
	is_int(sum.misaligned, 0, "every block aligned");
	is_int(sum.damaged, 0, "every block held its pattern until freed, across threads and resizes");
	ok(sum.callocs > 0 && sum.not_zero == 0, "%zu os_calloc blocks read zero (%zu did not)",
	   sum.callocs, sum.not_zero);
	ok(sum.reallocs > 0, "%zu blocks resized by a thread that took them from the ring",
	   sum.reallocs);
	is_int(sum.freed, sum.allocated, "every block was freed exactly once");
	ok(sum.foreign_frees > sum.freed / 2, "%zu of %zu frees were by a thread other than the "
	   "allocating one", sum.foreign_frees, sum.freed);
	const char *err = hv_verify();
	ok(err == NULL, "heap consistent after the run%s%s", err ? ": " : "", err ? err : "");

	/* Every thread has exited: its cache went back to the heap. */
	static struct hv_block b[1 << 16];
	size_t n = hv_blocks(b, sizeof(b) / sizeof(b[0])), used = 0;
	for (size_t i = 0; i < n && i < sizeof(b) / sizeof(b[0]); i++)
		if (!b[i].is_free)
			used++;
	is_int(used, 0, "no used block is left on the heap once all threads are gone");
	return tap_done();
}
