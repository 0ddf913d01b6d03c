/*
 * t-race.c - four threads share one allocator, hand blocks to each other
 * and read its counters, and nothing is lost, damaged or double-counted.
 *
 * Each thread mixes os_malloc, os_calloc, os_realloc, os_free,
 * os_aligned_alloc, os_malloc_usable_size and os_mallinfo over blocks of
 * its own, and trades blocks through a shared array with atomic
 * exchanges, so that many blocks are freed or resized by a thread other
 * than the one that allocated them; a few are large enough for mappings of
 * their own.  Every block carries its id and size in its first 16 bytes
 * and a pattern after them, checked whenever a thread takes it over,
 * resizes or frees it.  At the end, once the threads have exited and their
 * caches gone back to the heap, the heap checks clean and the bytes in use
 * and the mappings are what they were before.
 *
 * Built and run under ThreadSanitizer by tests/tsan.sh, where a data race
 * in the allocator is a failure.  OSMEM_RACE_ITERS sets the operations per
 * thread.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include "tap.h"
#include "tutil.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NTHREADS 4
#define OWN 64
#define SHARED 64
#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
/* Large blocks carry the pattern near their ends only. */
#define EDGE 1024

struct hdr {
	uint64_t id;
	uint64_t size;
};

static _Atomic(void *) shared[SHARED];
static _Atomic uint64_t next_id = 1;
static _Atomic unsigned long bad_blocks, bad_calloc, bad_align, bad_info, failed_allocs;
static unsigned long iters = 100000;

static void pattern_range(unsigned char *p, size_t from, size_t to, uint64_t id, bool fill,
                          bool *ok_)
{
	for (size_t i = from; i < to; i++) {
		uint8_t b = tu_pattern_byte(id, i);
		if (fill)
			p[i] = b;
		else if (p[i] != b)
			*ok_ = false;
	}
}

/* Fills (or checks) the pattern of block P of N bytes: all of it when
   small, both ends when large. */
static bool pattern(void *p, size_t n, uint64_t id, bool fill)
{
	bool ok_ = true;
	if (n <= 4 * EDGE + sizeof(struct hdr)) {
		pattern_range(p, sizeof(struct hdr), n, id, fill, &ok_);
	} else {
		pattern_range(p, sizeof(struct hdr), EDGE, id, fill, &ok_);
		pattern_range(p, n - EDGE, n, id, fill, &ok_);
	}
	return ok_;
}

static void stamp(void *p, size_t n)
{
	struct hdr *h = p;
	h->id = atomic_fetch_add(&next_id, 1);
	h->size = n;
	pattern(p, n, h->id, true);
}

static bool intact(const void *p)
{
	const struct hdr *h = p;
	return pattern((void *)(uintptr_t)p, (size_t)h->size, h->id, false);
}

static size_t pick_size(struct tu_rng *r)
{
	uint64_t k = tu_rng_below(r, 100);
	if (k < 70)
		return sizeof(struct hdr) + tu_rng_below(r, 1024);
	if (k < 95)
		return sizeof(struct hdr) + tu_rng_below(r, 32 * KiB);
	if (k < 99)
		return 64 * KiB + tu_rng_below(r, 256 * KiB);
	return MiB + tu_rng_below(r, MiB);
}

static void release(void *p)
{
	if (!p)
		return;
	if (!intact(p))
		atomic_fetch_add(&bad_blocks, 1);
	os_free(p);
}

static void *fresh(struct tu_rng *r)
{
	size_t n = pick_size(r);
	void *p;
	switch (tu_rng_below(r, 8)) {
	case 0: {
		p = os_calloc(1, n);
		if (p && tu_nonzero(p, n < 4096 ? n : 4096) != TU_NONE)
			atomic_fetch_add(&bad_calloc, 1);
		break;
	}
	case 1: {
		size_t a = (size_t)64 << tu_rng_below(r, 7);
		p = os_aligned_alloc(a, n);
		if (p && (uintptr_t)p % a)
			atomic_fetch_add(&bad_align, 1);
		break;
	}
	default:
		p = os_malloc(n);
		break;
	}
	if (!p) {
		atomic_fetch_add(&failed_allocs, 1);
		return NULL;
	}
	if ((uintptr_t)p % alignof(max_align_t) || os_malloc_usable_size(p) < n)
		atomic_fetch_add(&bad_align, 1);
	stamp(p, n);
	return p;
}

/* Resizes P, checking the bytes kept, and stamps the result anew. */
static void *resize(struct tu_rng *r, void *p)
{
	struct hdr h = *(struct hdr *)p;
	if (!intact(p))
		atomic_fetch_add(&bad_blocks, 1);
	size_t n = pick_size(r);
	unsigned char *q = os_realloc(p, n);
	if (!q) {
		atomic_fetch_add(&failed_allocs, 1);
		return p;
	}
	struct hdr *qh = (struct hdr *)(void *)q;
	/* The bytes kept that carried the pattern: the start of the block. */
	size_t keep = n < h.size ? n : (size_t)h.size;
	keep = keep < EDGE ? keep : EDGE;
	bool ok_ = qh->id == h.id && qh->size == h.size;
	pattern_range(q, sizeof(struct hdr), keep, h.id, false, &ok_);
	if (!ok_)
		atomic_fetch_add(&bad_blocks, 1);
	stamp(q, n);
	return q;
}

static void *worker(void *arg)
{
	struct tu_rng r;
	void *own[OWN] = { 0 };
	tu_rng_seed(&r, (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1);
	for (unsigned long i = 0; i < iters; i++) {
		uint64_t k = tu_rng_below(&r, 100);
		size_t s = (size_t)tu_rng_below(&r, OWN);
		if (k < 40) {
			release(own[s]);
			own[s] = fresh(&r);
		} else if (k < 55) {
			if (own[s])
				own[s] = resize(&r, own[s]);
		} else if (k < 65) {
			release(own[s]);
			own[s] = NULL;
		} else if (k < 90) {
			/* Trade with the other threads: give one, take one. */
			size_t x = (size_t)tu_rng_below(&r, SHARED);
			void *got = atomic_exchange(&shared[x], own[s]);
			own[s] = got;
			if (got && tu_rng_below(&r, 2))
				own[s] = resize(&r, got);
			else if (got && !intact(got))
				atomic_fetch_add(&bad_blocks, 1);
		} else if (k < 95) {
			/* The mapping counters are read a moment before the heap's, so
			   only bounds that hold across that moment are checked. */
			struct os_mallinfo mi = os_mallinfo();
			if (mi.in_use_bytes > mi.heap_bytes + mi.heap_mapped_bytes + mi.mapped_bytes ||
			    mi.free_bytes > mi.heap_bytes + mi.heap_mapped_bytes)
				atomic_fetch_add(&bad_info, 1);
		} else if (own[s]) {
			if (os_malloc_usable_size(own[s]) < ((struct hdr *)own[s])->size)
				atomic_fetch_add(&bad_align, 1);
		}
	}
	for (size_t s = 0; s < OWN; s++)
		release(own[s]);
	return NULL;
}

int main(void)
{
	const char *it = getenv("OSMEM_RACE_ITERS");
	if (it && *it)
		iters = strtoul(it, NULL, 10);
	tap_plan(10);
	tap_diag("%d threads x %lu operations", NTHREADS, iters);

	/* The main thread's own cache, so that the baseline includes it. */
	os_free(os_malloc(16));
	struct os_mallinfo before = os_mallinfo();

	pthread_t t[NTHREADS];
	int started = 0;
	for (int i = 0; i < NTHREADS; i++)
		started += pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1)) == 0;
	ok(started == NTHREADS, "%d threads started", started);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	for (size_t x = 0; x < SHARED; x++)
		release(atomic_exchange(&shared[x], NULL));

	is_int(atomic_load(&bad_blocks), 0, "no block lost its contents, whichever thread had it");
	is_int(atomic_load(&bad_calloc), 0, "os_calloc memory was zero");
	is_int(atomic_load(&bad_align), 0, "blocks were aligned and had their usable bytes");
	is_int(atomic_load(&bad_info), 0, "os_mallinfo snapshots were consistent");
	is_int(atomic_load(&failed_allocs), 0, "no allocation failed");
	is_int(os_heap_check(), 0, "os_heap_check() passes once the threads are gone");
	struct os_mallinfo after = os_mallinfo();
	ok(after.in_use_bytes == before.in_use_bytes, "bytes in use are back (%zu, was %zu)",
	   after.in_use_bytes, before.in_use_bytes);
	ok(after.peak_in_use_bytes > MiB, "the peak saw the threads' blocks (%zu)",
	   after.peak_in_use_bytes);
	ok(after.mapped_blocks == before.mapped_blocks && after.mapped_bytes == before.mapped_bytes,
	   "no mapping is left (%zu blocks, %zu bytes)", after.mapped_blocks, after.mapped_bytes);
	return tap_done();
}
