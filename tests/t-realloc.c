/*
 * t-realloc.c - the contract of os_realloc.
 *
 *  - os_realloc(NULL, n) is os_malloc(n);
 *  - os_realloc(p, 0) frees p and returns NULL;
 *  - the first min(old, new) bytes survive every transition: within the
 *    heap growing (in place and moving) and shrinking, heap to mapping,
 *    mapping to mapping (mremap) both ways, mapping to heap, and across
 *    the mmap threshold;
 *  - a heap block grown by os_realloc gets up to a quarter (at least 32
 *    bytes) more room, which later small appends use in place; a small
 *    shrink keeps the block;
 *  - a request that cannot be met returns NULL with errno ENOMEM and leaves
 *    the block as it was, still valid.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include "heapview.h"
#include "tap.h"
#include "tutil.h"

#include <errno.h>
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

static bool in_heap(const void *p)
{
	struct hv_block b;
	return hv_find(p, &b) && !b.is_free;
}

static bool aligned(const void *p) { return (uintptr_t)p % alignof(max_align_t) == 0; }

static void test_null_ptr(void)
{
	const size_t sizes[] = { 0, 1, 100, 5000, 200 * KiB };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		void *p = os_realloc(NULL, n);
		bool good = p && aligned(p);
		if (good) {
			tu_fill(p, 0, n, 7 + i);
			good = tu_check(p, 0, n, 7 + i) == TU_NONE;
		}
		t_ok(good, "os_realloc(NULL, %zu) gives a usable aligned block", n);
		os_free(p);
	}
	void *z[32];
	struct tu_span s[32];
	size_t nz = 0;
	for (int i = 0; i < 32; i++) {
		z[i] = os_realloc(NULL, 0);
		if (z[i])
			s[nz++] = (struct tu_span){ (uintptr_t)z[i], (uintptr_t)z[i] + 1 };
	}
	t_ok(nz == 32 && tu_first_overlap(s, nz) == TU_NONE,
	     "os_realloc(NULL, 0) gives unique non-NULL pointers like os_malloc(0)");
	for (int i = 0; i < 32; i++)
		os_free(z[i]);
	errno = EDOM;
	void *p = os_realloc(NULL, tu_opaque(SIZE_MAX));
	t_ok(p == NULL && errno == ENOMEM, "os_realloc(NULL, SIZE_MAX) fails with ENOMEM");
}

static void test_size_zero_frees(void)
{
	/* Thread-cache sized: once the cache is flushed the block is free. */
	void *p = os_malloc(100);
	void *r = os_realloc(p, 0);
	hv_flush_cache();
	struct hv_block b;
	t_ok(r == NULL && (!hv_find(p, &b) || b.is_free),
	     "os_realloc(small, 0) returns NULL and frees the block");

	void *lo = os_malloc(3000);
	p = os_malloc(5000);
	void *hi = os_malloc(3000);
	r = os_realloc(p, 0);
	hv_flush_cache();
	t_ok(r == NULL && (!hv_find(p, &b) || b.is_free),
	     "os_realloc(heap block, 0) returns NULL and frees the block");
	os_free(lo);
	os_free(hi);

	t_null(hv_verify(), "heap consistent");
}

/* In a child without the cache of freed mappings, so that the free is
   seen: the mapping goes away. */
static void size_zero_unmaps(void *arg)
{
	(void)arg;
	hv_map_cache_off();
	void *p = os_malloc(MiB);
	t_ok(tu_page_mapped(p), "a mapped block is mapped");
	void *r = os_realloc(p, 0);
	t_ok(r == NULL && !tu_page_mapped(p), "os_realloc(mapped block, 0) returns NULL and unmaps it");
}

/* Resizes a block of OLD bytes holding pattern ID to NEW bytes; checks the
   kept bytes and refills the whole block.  Returns the new block. */
static void *resize(void *p, size_t old, size_t new, uint64_t id, const char *what)
{
	void *q = os_realloc(p, new);
	size_t keep = old < new ? old : new;
	if (!q) {
		t_ok(false, "%s: os_realloc(%zu -> %zu) failed", what, old, new);
		return p;
	}
	size_t at = tu_check(q, 0, keep, id);
	t_ok(at == TU_NONE && aligned(q), "%s: %zu -> %zu keeps the first %zu bytes%s", what, old,
	     new, keep, at == TU_NONE ? "" : " (damaged)");
	tu_fill(q, 0, new, id);
	return q;
}

static void test_heap_transitions(void)
{
	/* Growing in place into a free neighbour: a run g0 p nb g1 of
	   adjacent blocks, nb freed. */
	void *run[4];
	if (!t_ok(tu_alloc_run(run, 4, 3000), "four adjacent heap blocks"))
		return;
	void *g0 = run[0], *p = run[1], *g1 = run[3];
	hv_free_now(run[2]);
	tu_fill(p, 0, 3000, 1);
	void *q = resize(p, 3000, 5500, 1, "heap grow into a free neighbour");
	t_ok(q == p, "and it stayed in place");

	/* Growing when the neighbour is in use: it must move. */
	void *r = resize(q, 5500, 12000, 1, "heap grow past a used neighbour");
	hv_flush_cache();
	t_ok(r != q && !in_heap(q), "and it moved, freeing the old block");

	/* Shrinking in place, the tail becoming free. */
	void *s = resize(r, 12000, 3000, 1, "heap shrink");
	struct hv_block b = { 0 };
	bool found = hv_find(s, &b);
	t_ok(s == r && found && b.size < 12000, "and it stayed in place, smaller (%zu)", b.size);

	/* Through the thread-cache sizes. */
	void *t = resize(s, 3000, 10, 1, "heap to tiny");
	t = resize(t, 10, 100, 1, "tiny grow");
	t = resize(t, 100, 1000, 1, "tiny grow");
	t = resize(t, 1000, 20, 1, "tiny shrink");
	t = resize(t, 20, 1, 1, "tiny shrink");
	t = resize(t, 1, 1500, 1, "tiny to heap");
	os_free(t);
	os_free(g0);
	os_free(g1);
	t_null(hv_verify(), "heap consistent after the heap transitions");
}

/* A heap block that os_realloc grows gets up to a quarter more room than
   asked for, from a free neighbour or where it moves to, and keeps it
   while later requests stay within it. */
static void test_growth_room(void)
{
	void *run[4];
	if (!t_ok(tu_alloc_run(run, 4, 3000), "four adjacent heap blocks"))
		return;
	struct hv_block pb = { 0 }, nb = { 0 };
	hv_find(run[1], &pb);
	hv_find(run[2], &nb);
	hv_free_now(run[2]);
	void *p = run[1];
	tu_fill(p, 0, 3000, 7);

	/* Into the free neighbour: room taken, the rest left free. */
	size_t want = 3500, room = want + want / 4;
	void *q = resize(p, 3000, want, 7, "grow into a free neighbour");
	size_t usable = os_malloc_usable_size(q);
	struct hv_block b = { 0 }, rest = { 0 };
	bool found = hv_find(q, &b) && hv_find((char *)q + b.size, &rest);
	t_ok(q == p && usable >= room && usable < room + 32,
	     "it stays and takes %zu usable bytes (want %zu to %zu)", usable, room, room + 31);
	t_ok(found && rest.is_free && b.size + rest.size == pb.size + nb.size,
	     "what it did not take stays free after it (%zu bytes)", rest.size);
	size_t u = os_malloc_usable_size(q);
	for (size_t n = want; n <= usable; n += 40) {
		void *r = os_realloc(q, n);
		if (r != q || os_malloc_usable_size(r) != u)
			break;
		want = n;
	}
	t_ok(want + 40 > usable, "growing within the room keeps block and size (up to %zu of %zu)",
	     want, usable);
	tu_fill(q, 0, want, 7);

	/* Moving: run[3] is in use right after it. */
	void *m = resize(q, want, 8000, 7, "grow past a used neighbour");
	usable = os_malloc_usable_size(m);
	t_ok(m != q && usable >= 9000, "it moves, with room: %zu usable bytes for 8000", usable);
	int stayed = 0;
	for (size_t n = 8001; n <= 8900; n += 9)
		stayed += os_realloc(m, n) == m;
	t_ok(stayed == 100, "100 small appends after it keep it in place (%d did)", stayed);

	/* Shrinking a little keeps the size; shrinking a lot gives the tail
	   back. */
	u = os_malloc_usable_size(m);
	void *s1 = os_realloc(m, u - u / 16);
	t_ok(s1 == m && os_malloc_usable_size(s1) == u, "shrinking by 1/16 keeps the block as it is");
	void *s2 = resize(s1, u - u / 16, u / 2, 7, "shrink by half");
	t_ok(s2 == m && os_malloc_usable_size(s2) < u / 2 + u / 8 + 32,
	     "shrinking by half gives the tail back (%zu usable)", os_malloc_usable_size(s2));

	/* No room that would cross the mmap threshold: the block stays on
	   the heap. */
	size_t thr = hv_mmap_threshold(), near = thr - thr / 16;
	void *h = resize(s2, u / 2, near, 7, "grow to just below the threshold");
	t_ok(in_heap(h) && os_malloc_usable_size(h) < thr,
	     "it stays a heap block, below the threshold (%zu usable)", os_malloc_usable_size(h));
	os_free(h);
	os_free(run[0]);
	os_free(run[3]);
	t_null(hv_verify(), "heap consistent after growing with room");
}

static void test_mapped_transitions(void)
{
	size_t thr = hv_mmap_threshold();
	void *p = os_malloc(5000);
	tu_fill(p, 0, 5000, 2);
	void *q = resize(p, 5000, 300 * KiB, 2, "heap to mapping");
	t_ok(!in_heap(q) && tu_in_proc_maps(q), "and the block is a mapping now");

	void *r = resize(q, 300 * KiB, 2 * MiB, 2, "mapping grow (mremap)");
	t_ok(!in_heap(r), "and still a mapping");
	r = resize(r, 2 * MiB, 8 * MiB + 3, 2, "mapping grow (mremap)");
	r = resize(r, 8 * MiB + 3, thr + 5, 2, "mapping shrink (mremap)");
	t_ok(!in_heap(r), "and still a mapping");

	void *s = resize(r, thr + 5, 1000, 2, "mapping to heap");
	t_ok(in_heap(s), "and the block is on the heap now");
	os_free(s);

	/* Right at the threshold, both ways. */
	p = os_malloc(thr - 1);
	tu_fill(p, 0, thr - 1, 3);
	t_ok(in_heap(p), "a block of threshold - 1 bytes is on the heap");
	q = resize(p, thr - 1, thr, 3, "threshold - 1 -> threshold");
	t_ok(!in_heap(q), "and the block of threshold bytes is a mapping");
	r = resize(q, thr, thr - 1, 3, "threshold -> threshold - 1");
	t_ok(in_heap(r), "and back on the heap");
	os_free(r);

	/* A long walk over many sizes, one block. */
	const size_t walk[] = { 0, 1, 17, 1024, 1025, 4096, 70000, thr - 16, thr + 16, 3 * MiB,
	                        500 * KiB, 50000, 64, 2 * MiB, 2, 131071, 131072, 0 };
	size_t n = sizeof(walk) / sizeof(walk[0]);
	void *w = os_malloc(walk[0]);
	int bad = 0;
	for (size_t i = 1; i < n; i++) {
		void *x = os_realloc(w, walk[i] ? walk[i] : 1);
		size_t prev = walk[i - 1] ? walk[i - 1] : 1, cur = walk[i] ? walk[i] : 1;
		size_t keep = prev < cur ? prev : cur;
		if (!x) {
			bad++;
			break;
		}
		if (i > 1 && tu_check(x, 0, keep, 4) != TU_NONE)
			bad++;
		tu_fill(x, 0, cur, 4);
		w = x;
	}
	t_is(bad, 0, "a block walked through 17 sizes across heap and mappings keeps its bytes");
	os_free(w);
	t_null(hv_verify(), "heap consistent after the mapping transitions");
}

struct victim {
	size_t size;
	const char *kind;
};

/* Failing requests leave the block untouched and valid. */
static void test_failure_keeps_block(void)
{
	const struct victim victims[] = {
		{ 100, "cached-size block" },
		{ 5000, "heap block" },
		{ MiB, "mapped block" },
	};
	const struct {
		size_t n;
		const char *name;
	} bigs[] = {
		{ SIZE_MAX, "SIZE_MAX" },
		{ SIZE_MAX - 4096, "SIZE_MAX - 4096" },
		{ (size_t)PTRDIFF_MAX + 1, "PTRDIFF_MAX + 1" },
		{ (size_t)PTRDIFF_MAX, "PTRDIFF_MAX" },
		{ (size_t)1 << 56, "2^56" },
	};
	for (size_t v = 0; v < sizeof(victims) / sizeof(victims[0]); v++) {
		size_t n = victims[v].size;
		void *p = os_malloc(n);
		tu_fill(p, 0, n, 10 + v);
		for (size_t i = 0; i < sizeof(bigs) / sizeof(bigs[0]); i++) {
			errno = EDOM;
			void *q = os_realloc(p, bigs[i].n);
			int e = errno;
			t_ok(q == NULL && e == ENOMEM, "os_realloc(%s, %s) fails with ENOMEM (errno %d)",
			     victims[v].kind, bigs[i].name, e);
			if (q)
				p = q; /* keep the test going */
		}
		t_ok(tu_check(p, 0, n, 10 + v) == TU_NONE, "the %s is intact after the failures",
		     victims[v].kind);
		void *g = os_realloc(p, n + 1);
		t_ok(g && tu_check(g, 0, n, 10 + v) == TU_NONE, "and can still be resized");
		os_free(g ? g : p);
	}
	t_null(hv_verify(), "heap consistent after the failed resizes");
}

/* In a child whose address space is nearly full, so the kernel refuses. */
static void refused_by_kernel(void *arg)
{
	(void)arg;
	if (tu_under_valgrind()) {
		t_skip(1, "uses up the address space valgrind needs for itself");
		return;
	}
	/* Freed mappings kept for reuse would hold address space that this
	   test counts on. */
	hv_map_cache_off();
	void *h = os_malloc(5000), *m = os_malloc(MiB);
	tu_fill(h, 0, 5000, 20);
	tu_fill(m, 0, MiB, 21);
	if (!t_ok(tu_limit_address_space(32 * MiB), "RLIMIT_AS lowered to 32 MiB above current use"))
		return;
	errno = EDOM;
	void *q = os_realloc(h, 1024 * MiB);
	t_ok(q == NULL && errno == ENOMEM, "os_realloc(heap block, 1 GiB) fails with ENOMEM");
	t_ok(tu_check(h, 0, 5000, 20) == TU_NONE, "and the heap block is intact");
	errno = EDOM;
	q = os_realloc(m, 1024 * MiB);
	t_ok(q == NULL && errno == ENOMEM, "os_realloc(mapped block, 1 GiB) fails with ENOMEM");
	t_ok(tu_check(m, 0, MiB, 21) == TU_NONE, "and the mapped block is intact");
	q = os_realloc(m, 2 * MiB);
	t_ok(q && tu_check(q, 0, MiB, 21) == TU_NONE, "a modest resize of it still works");
	os_free(q ? q : m);

	/* Exhaust the heap, then ask a heap block to grow within the heap
	   range: nothing can hold it, and the block must be left as it was. */
	enum { MAXB = 4096 };
	static void *b[MAXB];
	size_t n = 0;
	while (n < MAXB && (b[n] = os_malloc(100 * KiB)) != NULL)
		n++;
	t_ok(n < MAXB, "heap exhausted after %zu blocks of 100 KiB", n);
	errno = EDOM;
	q = os_realloc(h, 120 * KiB);
	int e = errno;
	t_ok(q == NULL && e == ENOMEM, "os_realloc(heap block, 120 KiB) then fails with ENOMEM (%d)",
	     e);
	t_ok(tu_check(h, 0, 5000, 20) == TU_NONE, "and the heap block is intact");

	/* A hole that holds a request but not the room a growing block is
	   given: the move takes the hole, without the room. */
	size_t k = n / 2;
	while (k + 1 < n && !in_heap(b[k]))
		k++;
	if (t_ok(k + 1 < n, "a heap block among them to free (%zu)", k)) {
		void *hole = b[k];
		os_free(hole);
		b[k] = NULL;
		errno = EDOM;
		q = os_realloc(h, 95 * KiB);
		e = errno;
		t_ok(q == hole && e == EDOM,
		     "os_realloc(heap block, 95 KiB) takes the 100 KiB hole, errno untouched (%d)", e);
		t_ok(q && os_malloc_usable_size(q) < 95 * KiB + 95 * KiB / 8,
		     "without the room it could not have");
		t_ok(q && tu_check(q, 0, 5000, 20) == TU_NONE, "and keeps its bytes");
		if (q)
			h = q;
	}
	for (size_t i = 0; i < n; i++)
		os_free(b[i]);
	q = os_realloc(h, 120 * KiB);
	t_ok(q && tu_check(q, 0, 5000, 20) == TU_NONE, "once memory is freed the resize succeeds");
	os_free(q ? q : h);
	t_null(hv_verify(), "heap consistent");
}

int main(void)
{
	tap_diag("libosmem: os_realloc");
	test_null_ptr();
	test_size_zero_frees();
	tu_child("no mapping cache", 60, size_zero_unmaps, NULL);
	test_heap_transitions();
	test_growth_room();
	test_mapped_transitions();
	test_failure_keeps_block();
	tu_child("kernel refuses", 60, refused_by_kernel, NULL);
	return tap_done();
}
