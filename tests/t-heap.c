/*
 * t-heap.c - where blocks go on the heap: best fit, splitting, coalescing,
 * and large blocks kept off the heap (and not holding on to the memory of
 * much larger freed ones).
 *
 * Each scenario runs in a child forked before this program ever calls the
 * allocator, so it starts from an empty heap and its layout is exact.
 * Frees go through hv_free_now, so in the default mode the block reaches
 * the heap (and coalesces) at once, as every free does with
 * OSMEM_CACHE_MAX=0; t-textbook runs this program in that mode too.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include "heapview.h"
#include "tap.h"
#include "tutil.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
#define HDR ((size_t)16)
#define GUARD ((size_t)2000)

/* The payload size whose block is exactly CHUNK bytes, header included. */
static size_t payload_for(size_t chunk) { return chunk - HDR; }

static bool block_is(const void *p, size_t size, bool is_free)
{
	struct hv_block b;
	return hv_find(p, &b) && b.size == size && b.is_free == is_free;
}

static void *at(const void *p, size_t off) { return (char *)(uintptr_t)p + off; }

static void best_fit(void *arg)
{
	(void)arg;
	void *g0 = os_malloc(GUARD);
	void *a = os_malloc(payload_for(16 * KiB));
	void *g1 = os_malloc(GUARD);
	void *b = os_malloc(payload_for(4 * KiB));
	void *g2 = os_malloc(GUARD);
	void *c = os_malloc(payload_for(8 * KiB));
	void *g3 = os_malloc(GUARD);
	hv_free_now(a);
	hv_free_now(b);
	hv_free_now(c);
	t_ok(block_is(a, 16 * KiB, true) && block_is(b, 4 * KiB, true) && block_is(c, 8 * KiB, true),
	     "three isolated free blocks of 16, 4 and 8 KiB");
	t_null(hv_verify(), "heap consistent");

	void *p = os_malloc(3584);
	t_ok(p == b, "a 3.5 KiB request takes the 4 KiB block (%p, 4 KiB block at %p)", p, b);
	void *q = os_malloc(6 * KiB);
	t_ok(q == c, "a 6 KiB request takes the 8 KiB block (%p, 8 KiB block at %p)", q, c);
	void *r = os_malloc(12 * KiB);
	t_ok(r == a, "a 12 KiB request takes the 16 KiB block (%p, 16 KiB block at %p)", r, a);
	t_null(hv_verify(), "heap consistent");

	/* Freed again and asked in the other order: still the tightest. */
	hv_free_now(p);
	hv_free_now(q);
	hv_free_now(r);
	q = os_malloc(6 * KiB);
	p = os_malloc(3584);
	r = os_malloc(10 * KiB);
	t_ok(q == c && p == b && r == a, "the same in another order (6 KiB, 3.5 KiB, 10 KiB)");
	t_null(hv_verify(), "heap consistent");
	hv_free_now(p);
	hv_free_now(q);
	hv_free_now(r);
	hv_free_now(g0);
	hv_free_now(g1);
	hv_free_now(g2);
	hv_free_now(g3);
	t_null(hv_verify(), "heap consistent after freeing everything");
}

static void splitting(void *arg)
{
	(void)arg;
	void *g0 = os_malloc(GUARD);
	void *a = os_malloc(payload_for(16 * KiB));
	void *g1 = os_malloc(GUARD);
	hv_free_now(a);

	void *p = os_malloc(payload_for(4 * KiB));
	t_ok(p == a, "a 4 KiB block is cut from the start of the free 16 KiB block");
	t_ok(block_is(p, 4 * KiB, false), "and it is exactly 4 KiB");
	t_ok(block_is(at(a, 4 * KiB), 12 * KiB, true),
	     "the remaining 12 KiB follow it as one free block");
	t_null(hv_verify(), "heap consistent");

	/* A remainder of 16 bytes cannot be a block: the whole is handed out. */
	void *q = os_malloc(payload_for(12 * KiB - 16));
	t_ok(q == at(a, 4 * KiB), "a request 16 bytes short of the 12 KiB block takes it");
	t_ok(block_is(q, 12 * KiB, false), "whole, not split (the rest could not be a block)");
	t_ok(block_is(at(q, 12 * KiB), 2016, false), "and the next block is the guard");
	t_null(hv_verify(), "heap consistent");

	/* A remainder of exactly a minimum block (32 bytes) is split off. */
	void *g2 = os_malloc(GUARD);
	void *b = os_malloc(payload_for(2048 + 32));
	void *g3 = os_malloc(GUARD);
	hv_free_now(b);
	void *r = os_malloc(payload_for(2048));
	t_ok(r == b && block_is(r, 2048, false), "a 2048-byte block is cut from a free 2080-byte one");
	t_ok(block_is(at(r, 2048), 32, true), "and the 32 bytes left over are a free block");
	t_null(hv_verify(), "heap consistent");

	hv_free_now(p);
	hv_free_now(q);
	hv_free_now(r);
	hv_free_now(g0);
	hv_free_now(g1);
	hv_free_now(g2);
	hv_free_now(g3);
	t_null(hv_verify(), "heap consistent after freeing everything");
}

static void coalescing(void *arg)
{
	(void)arg;
	size_t bs = 4 * KiB;
	void *run[5];
	if (!t_ok(tu_alloc_run(run, 5, payload_for(bs)), "five adjacent 4 KiB blocks"))
		return;
	void *a = run[1], *b = run[2], *c = run[3];

	hv_free_now(a);
	t_ok(block_is(a, bs, true), "freeing A: A is a free 4 KiB block");
	t_null(hv_verify(), "heap consistent");
	hv_free_now(b);
	t_ok(block_is(a, 2 * bs, true), "freeing B next to it: one free 8 KiB block at A");
	t_ok(!hv_find(b, &(struct hv_block){ 0 }), "and B is no longer a block of its own");
	t_null(hv_verify(), "heap consistent");

	void *p = os_malloc(payload_for(2 * bs));
	t_ok(p == a && block_is(p, 2 * bs, false), "an 8 KiB request reuses exactly that space");
	t_null(hv_verify(), "heap consistent");
	hv_free_now(p);
	t_ok(block_is(a, 2 * bs, true), "freed again: 8 KiB free at A");

	/* A and C first, then B in between. */
	void *run2[5];
	if (!t_ok(tu_alloc_run(run2, 5, payload_for(bs)), "five more adjacent 4 KiB blocks"))
		return;
	a = run2[1];
	b = run2[2];
	c = run2[3];
	hv_free_now(a);
	t_null(hv_verify(), "free A: heap consistent");
	hv_free_now(c);
	t_ok(block_is(a, bs, true) && block_is(c, bs, true), "free C: A and C free, apart");
	t_null(hv_verify(), "heap consistent");
	hv_free_now(b);
	t_ok(block_is(a, 3 * bs, true), "free B: A, B and C are one free 12 KiB block");
	t_ok(!hv_find(b, &(struct hv_block){ 0 }) && !hv_find(c, &(struct hv_block){ 0 }),
	     "and B and C are no longer blocks of their own");
	t_null(hv_verify(), "heap consistent");

	/* The same in the other direction: C, A, then B. */
	void *run3[5];
	if (tu_alloc_run(run3, 5, payload_for(bs))) {
		hv_free_now(run3[3]);
		hv_free_now(run3[1]);
		hv_free_now(run3[2]);
		t_ok(block_is(run3[1], 3 * bs, true), "free C, A, then B: one free 12 KiB block");
		t_null(hv_verify(), "heap consistent");
	} else {
		t_ok(false, "five more adjacent 4 KiB blocks");
	}

	/* Freeing the block below the free top merges it into the top. */
	struct hv_block top;
	void *x = os_malloc(payload_for(40 * KiB));
	bool ok = tu_top_block(&top) && top.is_free && top.payload == at(x, 40 * KiB);
	t_ok(ok, "a 40 KiB block is carved right below the free top");
	size_t top_size = top.size;
	hv_free_now(x);
	t_ok(tu_top_block(&top) && top.is_free && top.payload == x && top.size == top_size + 40 * KiB,
	     "freeing it merges it into the top block");
	t_null(hv_verify(), "heap consistent");

	for (int i = 0; i < 5; i++)
		if (i != 1 && i != 2 && i != 3) {
			hv_free_now(run[i]);
			hv_free_now(run2[i]);
			hv_free_now(run3[i]);
		}
	t_null(hv_verify(), "heap consistent after freeing everything");
}

static bool in_any_segment(const void *p, size_t n)
{
	struct hv_segment s[256];
	size_t ns = hv_segments(s, 256);
	uintptr_t lo = (uintptr_t)p, hi = lo + n;
	for (size_t i = 0; i < ns && i < 256; i++)
		if (lo < s[i].end && s[i].base < hi)
			return true;
	return false;
}

static void large_blocks(void *arg)
{
	(void)arg;
	/* Freed mappings are unmapped at once, not kept for reuse. */
	hv_map_cache_off();
	size_t thr = hv_mmap_threshold();
	void *small = os_malloc(thr - 1);
	t_ok(small && block_is(small, (thr - 1 + HDR + 15) / 16 * 16, false),
	     "a block of threshold - 1 bytes is on the heap");
	size_t brk = hv_brk_bytes(), nblocks = hv_blocks(NULL, 0);

	const size_t sizes[] = { thr, thr + 1, MiB, 10 * MiB + 5 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		char *p = os_malloc(n);
		if (!t_ok(p != NULL, "os_malloc(%zu)", n))
			continue;
		memset(p, 0x77, n);
		t_ok(!hv_find(p, &(struct hv_block){ 0 }) && !in_any_segment(p, n),
		     "a block of %zu bytes is not on the heap", n);
		t_ok(hv_brk_bytes() == brk && hv_blocks(NULL, 0) == nblocks,
		     "and the heap did not change for it");
		t_ok(tu_in_proc_maps(p) && tu_in_proc_maps(p + n - 1),
		     "it lies in a mapping listed in /proc/self/maps");
		os_free(p);
		t_ok(!tu_page_mapped(p) && !tu_page_mapped(p + n - 1) && !tu_in_proc_maps(p),
		     "and after os_free that mapping is gone");
	}
	os_free(small);
	t_null(hv_verify(), "heap consistent");
}

/* With the default settings (freed mappings may be kept for reuse): a
   large block freed and a much smaller large block allocated must not
   leave the process holding the big block's memory on top of what a new
   big block needs.  Live after the steps: 200 KiB and 30 MiB; resident
   growth must stay close to that. */
static void large_reuse(void *arg)
{
	(void)arg;
	const size_t big = 30 * MiB, small = 200 * KiB;
	size_t rss0 = tu_rss_bytes();
	char *b = os_malloc(big);
	if (!t_ok(b != NULL, "a 30 MiB block"))
		return;
	memset(b, 1, big);
	os_free(b);
	char *s = os_malloc(small);
	memset(s, 2, small);
	char *c = os_malloc(big);
	if (!t_ok(s && c, "then a 200 KiB and another 30 MiB block"))
		return;
	memset(c, 3, big);
	size_t grown = tu_rss_bytes() - rss0;
	t_ok(grown < big + small + 2 * MiB,
	     "resident memory grew by %zu KiB for %zu KiB of live blocks", grown / KiB,
	     (big + small) / KiB);
	t_ok(s[0] == 2 && s[small - 1] == 2 && c[0] == 3 && c[big - 1] == 3, "both hold their data");
	os_free(s);
	os_free(c);
}

/* Best fit within a size class looks at a bounded number of blocks.  When
   all of those are too small, but the free block at the top of the heap
   (in the same class) would do, that block must still be used: growing
   the heap for a request that fits is a waste, and the amount "missing"
   is negative. */
static void fit_at_top_no_growth(void *arg)
{
	(void)arg;
	enum { NF = 20 };
	const size_t fsize = 64 * KiB;      /* free blocks that do not fit */
	const size_t want = fsize + 16;     /* the request's block size */
	const size_t class_end = 72 * KiB;  /* its class is [64 KiB, 72 KiB) */
	void *f[NF], *g[NF];
	for (int i = 0; i < NF; i++) {
		f[i] = os_malloc(payload_for(fsize));
		g[i] = os_malloc(GUARD);
	}

	/* Bring the free top block into [want + 16, class_end). */
	struct hv_block top;
	void *pins[8];
	int npins = 0;
	for (int tries = 0; tries < 8; tries++) {
		if (!tu_top_block(&top) || !top.is_free) {
			pins[npins++] = os_malloc(GUARD);
			continue;
		}
		if (top.size >= want + 16 && top.size < class_end)
			break;
		if (top.size >= class_end) {
			/* Cut the excess off the bottom of the top block. */
			pins[npins++] = os_malloc(payload_for(top.size - (want + 1024)));
		} else {
			/* Too small: grow the heap by a block and free it. */
			void *q = os_malloc(120 * KiB);
			os_free(q);
		}
	}
	bool have_top = tu_top_block(&top) && top.is_free;
	if (!t_ok(have_top && top.size >= want + 16 && top.size < class_end,
	          "the free top block is %zu bytes, in the class of a %zu-byte block",
	          have_top ? top.size : 0, want))
		return;
	for (int i = 0; i < NF; i++)
		os_free(f[i]);
	t_ok(block_is(f[0], fsize, true) && block_is(f[NF - 1], fsize, true),
	     "%d isolated free blocks of %zu bytes in the same class", NF, fsize);

	void *brk = sbrk(0);
	size_t brk_bytes = hv_brk_bytes();
	void *p = os_malloc(payload_for(want));
	t_ok(p == top.payload, "the request is served from the free top block (%p, top at %p)", p,
	     top.payload);
	t_ok(sbrk(0) == brk && hv_brk_bytes() == brk_bytes,
	     "without growing the heap (break moved by %td bytes, heap by %td)",
	     (char *)sbrk(0) - (char *)brk, (ptrdiff_t)(hv_brk_bytes() - brk_bytes));
	t_null(hv_verify(), "heap consistent");
	os_free(p);
	for (int i = 0; i < NF; i++)
		os_free(g[i]);
	for (int i = 0; i < npins; i++)
		os_free(pins[i]);
	t_null(hv_verify(), "heap consistent after freeing everything");
}

/* A thread cache that runs empty refills itself with many blocks at once:
   those come from the holes that fit them best, as single requests would,
   and never from the top while the holes last.  There are more holes than
   one refill takes (at most 64 blocks, cache.c's batch). */
#define HOLES 80
static void refill_from_holes(void *arg)
{
	(void)arg;
	const size_t small = 64, chunk = 80; /* payload and block of one class */
	void *hole[HOLES], *keep[HOLES], *guard[HOLES];
	/* The thread's cache is made first (it is a heap block itself). */
	os_free(os_malloc(small));
	hv_flush_cache();
	/* Each hole is what is left of a freed block, between guards, once a
	   slightly smaller block has been carved from it: no cache is
	   involved in making them. */
	void *freed[HOLES];
	for (int i = 0; i < HOLES; i++) {
		freed[i] = os_malloc(payload_for(2000 + chunk));
		guard[i] = os_malloc(GUARD);
	}
	for (int i = 0; i < HOLES; i++)
		hv_free_now(freed[i]);
	int reused = 0;
	for (int i = 0; i < HOLES; i++) {
		keep[i] = os_malloc(payload_for(2000));
		hole[i] = at(keep[i], 2000);
		for (int j = 0; j < HOLES; j++)
			reused += keep[i] == freed[j];
	}
	t_ok(reused == HOLES, "%d smaller blocks are carved from the freed ones (%d were)", HOLES,
	     reused);
	int isolated = 0;
	for (int i = 0; i < HOLES; i++)
		isolated += block_is(hole[i], chunk, true);
	t_ok(isolated == HOLES, "%d isolated free blocks of %zu bytes (%d found)", HOLES, chunk,
	     isolated);

	void *brk = sbrk(0);
	size_t brk_bytes = hv_brk_bytes();
	size_t top = tu_largest_free();
	void *p = os_malloc(small);
	bool in_hole = false;
	for (int i = 0; i < HOLES; i++)
		in_hole |= p == hole[i];
	t_ok(in_hole, "the block asked for comes from a hole (%p)", p);
	int taken = 0;
	for (int i = 0; i < HOLES; i++)
		taken += block_is(hole[i], chunk, false);
	if (hv_cache_max() == 0)
		t_skip(1, "no thread caches (OSMEM_CACHE_MAX=0), so no refill");
	else
		t_ok(taken > 1, "the refill took more holes besides (%d of %d in use or cached)", taken,
		     HOLES);
	t_ok(tu_largest_free() == top, "the largest free block is untouched (%zu, was %zu)",
	     tu_largest_free(), top);
	t_ok(sbrk(0) == brk && hv_brk_bytes() == brk_bytes, "and the heap did not grow");
	t_null(hv_verify(), "heap consistent");
	os_free(p);
	for (int i = 0; i < HOLES; i++) {
		os_free(keep[i]);
		os_free(guard[i]);
	}
	hv_flush_cache();
	t_null(hv_verify(), "heap consistent after freeing everything");
}

int main(void)
{
	/* Set up stdout (and the C library's heap) before any child forks. */
	tap_diag("libosmem: best fit, splitting, coalescing, large blocks");
	tu_child("best fit", 60, best_fit, NULL);
	tu_child("splitting", 60, splitting, NULL);
	tu_child("coalescing", 60, coalescing, NULL);
	tu_child("large blocks", 60, large_blocks, NULL);
	tu_child("large reuse", 60, large_reuse, NULL);
	tu_child("fit at the top", 60, fit_at_top_no_growth, NULL);
	tu_child("refill from holes", 60, refill_from_holes, NULL);
	return tap_done();
}
