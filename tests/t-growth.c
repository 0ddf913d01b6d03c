/*
 * t-growth.c - how the heap grows and gives memory back.
 *
 *  - the very first small request grows the break once by at least
 *    128 KiB, and later small requests are carved from that chunk with no
 *    further growth until it is used up;
 *  - when nothing fits and the top block is free, the new block starts at
 *    the top block and the heap grows only by what is missing (rounded up
 *    to a page) plus the top pad; a block below the top grows in place;
 *  - free space at the top beyond the trim threshold goes back with a
 *    negative sbrk, and none below it;
 *  - large free runs inside the heap have their pages released, whatever
 *    the order in which their parts were freed;
 *  - a thread's arena, which grows in mappings, grows in place too: its
 *    heap stays one segment however many small blocks it holds (up to
 *    the segment's reservation of address space);
 *  - but where threads keep blocks, the page work that frees of blocks of
 *    kept sizes cause waits: their pages stay resident, and free space at
 *    the top stays, while no more than the documented limit of it waits
 *    in an arena, until the last thread of the arena exits, or until
 *    os_malloc_trim.  With OSMEM_CACHE_MAX=0 it is all done at once.
 *
 * Each scenario runs in a child forked before this program ever calls the
 * allocator, so it starts from an empty heap.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include "heapview.h"
#include "tap.h"
#include "tutil.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define HDR ((size_t)16)
#define GUARD ((size_t)2000)

static size_t payload_for(size_t chunk) { return chunk - HDR; }
static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

struct snapshot {
	uintptr_t brk;
	size_t brk_bytes;
	size_t nsegs;
	uintptr_t last_end;
};

static struct snapshot snap(void)
{
	struct hv_segment s[256];
	struct snapshot x;
	x.brk = (uintptr_t)sbrk(0);
	x.brk_bytes = hv_brk_bytes();
	x.nsegs = hv_segments(s, 256);
	x.last_end = x.nsegs ? s[x.nsegs - 1].end : 0;
	return x;
}

static bool same(struct snapshot a, struct snapshot b)
{
	return a.brk == b.brk && a.brk_bytes == b.brk_bytes && a.nsegs == b.nsegs &&
	       a.last_end == b.last_end;
}

static void first_request(void *arg)
{
	(void)arg;
	struct hv_segment s[8];
	uintptr_t brk0 = (uintptr_t)sbrk(0);
	t_is(hv_segments(s, 8), 0, "no heap segment before the first request");

	void *p = os_malloc(100);
	uintptr_t brk1 = (uintptr_t)sbrk(0);
	size_t n = hv_segments(s, 8);
	t_ok(p != NULL, "os_malloc(100) succeeds");
	t_is(n, 1, "the first request made one segment");
	t_ok(n == 1 && s[0].from_brk && s[0].end - s[0].base >= 128 * KiB,
	     "grown with brk, %zu bytes (at least 128 KiB)", n ? (size_t)(s[0].end - s[0].base) : 0);
	t_ok(brk1 - brk0 >= 128 * KiB, "the break moved by %zu bytes (at least 128 KiB)",
	     (size_t)(brk1 - brk0));
	t_ok(n == 1 && s[0].end == brk1 && s[0].base >= brk0,
	     "the segment is the new memory between the old and new break");
	t_ok(n == 1 && (uintptr_t)p > s[0].base && (uintptr_t)p < s[0].end,
	     "and the block was carved from it");
	t_ok(hv_brk_bytes() >= 128 * KiB, "the heap counts %zu bytes from brk", hv_brk_bytes());

	/* More small blocks, of the cached sizes: all from the same chunk. */
	struct snapshot before = snap();
	static void *tiny[64];
	for (int i = 0; i < 64; i++)
		tiny[i] = os_malloc((size_t)(16 + 16 * (i % 8)));
	bool inside = true;
	for (int i = 0; i < 64; i++)
		if ((uintptr_t)tiny[i] <= s[0].base || (uintptr_t)tiny[i] >= s[0].end)
			inside = false;
	t_ok(same(before, snap()) && inside, "64 more small requests: no growth, all in the chunk");

	/* Heap-sized blocks until the chunk is used up: growth only then. */
	size_t cs = 3024, served = 0, wrong = 0;
	size_t room = tu_largest_free();
	bool grew = false;
	static void *blk[200];
	int nb = 0;
	while (nb < 200 && !grew) {
		/* Kept blocks go back to the heap before it grows, so they
		   count as free here. */
		hv_flush_cache();
		size_t largest = tu_largest_free();
		struct snapshot b = snap();
		blk[nb++] = os_malloc(payload_for(cs));
		grew = !same(b, snap());
		if (grew != (largest < cs)) {
			if (!wrong)
				t_diag("request %d: largest free block %zu, grew %d", nb, largest, grew);
			wrong++;
		}
		if (!grew)
			served++;
	}
	t_is(wrong, 0, "the heap grew exactly when no free block could hold the request");
	t_ok(grew && served >= room / cs,
	     "%zu blocks of %zu bytes were served from the first chunk before it grew (room for %zu)",
	     served, cs, room / cs);
	for (int i = 0; i < nb; i++)
		os_free(blk[i]);
	for (int i = 0; i < 64; i++)
		os_free(tiny[i]);
	os_free(p);
	t_null(hv_verify(), "heap consistent");
}

/* Shapes the free top block to exactly TOP bytes; returns the block cut
   off below it (to free later), or NULL. */
static void *shape_top(size_t top)
{
	struct hv_block t;
	if (!tu_top_block(&t) || !t.is_free || t.size < top + 32)
		return NULL;
	void *x = os_malloc(payload_for(t.size - top));
	if (!tu_top_block(&t) || !t.is_free || t.size != top) {
		os_free(x);
		return NULL;
	}
	return x;
}

static void grow_at_top(void *arg)
{
	(void)arg;
	size_t page = hv_page_size(), pad = hv_top_pad();
	void *g = os_malloc(GUARD);
	const size_t tops[] = { 20 * KiB + 48, 8 * KiB, 40 * KiB + 16 };
	const size_t wants[] = { 60 * KiB, 100 * KiB + 32, 48 * KiB };
	for (int i = 0; i < 3; i++) {
		void *x = shape_top(tops[i]);
		struct hv_block t;
		if (!t_ok(x && tu_top_block(&t) && t.size == tops[i], "free top block shaped to %zu bytes",
		          tops[i]))
			continue;
		t_ok(tu_largest_free() == tops[i], "and no free block is larger");
		struct snapshot b = snap();
		size_t cs = wants[i], missing = cs - tops[i];
		void *p = os_malloc(payload_for(cs));
		struct snapshot a = snap();
		size_t grown = a.last_end - b.last_end, expect = round_up(missing, page) + pad;
		t_ok(p == t.payload, "a %zu-byte block starts at the free top block", cs);
		t_ok(a.nsegs == b.nsegs && grown == expect,
		     "the segment grew by %zu bytes: what was missing (%zu) rounded to a page, plus the "
		     "top pad (want %zu)", grown, missing, expect);
		t_ok(a.brk - b.brk == expect && a.brk_bytes - b.brk_bytes == expect,
		     "the break and the heap's brk bytes moved by the same amount");
		t_ok(grown < cs + pad, "less than the request plus the top pad (%zu)", cs + pad);
		t_null(hv_verify(), "heap consistent");
		os_free(p);
		os_free(x);
	}

	/* os_realloc of the block right below a free top: it grows in place,
	   taking the top and what is missing. */
	void *x = shape_top(12 * KiB + 32);
	struct hv_block xb = { 0 }, t = { 0 };
	bool have = x && hv_find(x, &xb) && tu_top_block(&t) && t.payload == (char *)x + xb.size;
	if (t_ok(have, "a block right below a free top block of %zu bytes", t.size)) {
		tu_fill(x, 0, xb.size - 16, 5);
		size_t cs = xb.size + t.size + 40 * KiB, missing = cs - xb.size - t.size;
		struct snapshot b = snap();
		void *q = os_realloc(x, payload_for(cs));
		struct snapshot a = snap();
		size_t expect = round_up(missing, page) + pad;
		t_ok(q == x, "os_realloc to %zu bytes keeps it in place", cs);
		t_ok(a.nsegs == b.nsegs && a.last_end - b.last_end == expect,
		     "the segment grew by %zu bytes (want %zu: the missing %zu rounded, plus the pad)",
		     (size_t)(a.last_end - b.last_end), expect, missing);
		t_ok(q && tu_check(q, 0, xb.size - 16, 5) == TU_NONE, "and the block kept its bytes");
		t_null(hv_verify(), "heap consistent");
		os_free(q ? q : x);
	}
	os_free(g);
}

static void trim_top(void *arg)
{
	(void)arg;
	size_t page = hv_page_size(), pad = hv_top_pad(), thr = hv_trim_threshold();
	void *g = os_malloc(GUARD);
	void *b[3];
	for (int i = 0; i < 3; i++)
		b[i] = os_malloc(100 * KiB);
	struct snapshot hi = snap();
	for (int i = 2; i >= 0; i--)
		os_free(b[i]);
	struct snapshot lo = snap();
	struct hv_block t;
	bool have_top = tu_top_block(&t) && t.is_free;
	t_ok(lo.brk < hi.brk, "freeing 300 KiB at the top lowered the break by %zu bytes",
	     (size_t)(hi.brk - lo.brk));
	t_ok(hi.brk_bytes - lo.brk_bytes == hi.brk - lo.brk && lo.last_end == lo.brk,
	     "by exactly what the heap gave up, and the heap still ends at the break");
	t_ok(have_top && t.size <= thr, "the free top block left (%zu bytes) is within the trim "
	     "threshold (%zu)", have_top ? t.size : 0, thr);
	t_ok(have_top && t.size <= pad + page + 48, "about the top pad is kept (%zu, pad %zu)",
	     have_top ? t.size : 0, pad);
	t_null(hv_verify(), "heap consistent");

	/* Below the threshold nothing is given back. */
	struct snapshot before = snap();
	void *p = os_malloc(50 * KiB);
	os_free(p);
	t_ok(same(before, snap()), "a 50 KiB block taken from the top and freed: no sbrk either way");

	os_free(g);
	t_null(hv_verify(), "heap consistent");
}

/* The pages strictly inside the free block at P (header and links kept). */
static long resident_inside(const void *p, size_t size)
{
	size_t page = hv_page_size();
	uintptr_t lo = round_up((uintptr_t)p + 16, page);
	uintptr_t hi = ((uintptr_t)p - HDR + size) / page * page;
	return hi > lo ? tu_resident_pages((void *)lo, hi - lo) : 0;
}

static void release_interior(void *arg)
{
	(void)arg;
	const size_t bs = 60 * KiB;
	void *r[6];
	if (!t_ok(tu_alloc_run(r, 6, payload_for(bs)), "six adjacent 60 KiB blocks"))
		return;
	for (int i = 0; i < 6; i++)
		tu_fill(r[i], 0, payload_for(bs), (uint64_t)i + 1);
	long spanned = (long)(round_up((uintptr_t)r[4] - HDR, hv_page_size()) -
	                      ((uintptr_t)r[1] - HDR) / hv_page_size() * hv_page_size()) /
	               (long)hv_page_size();
	t_ok(tu_resident_pages((char *)r[1] - HDR, 3 * bs) == spanned,
	     "all %ld pages of the middle three are resident once written", spanned);

	/* Outer two first, then the middle one joins them into 180 KiB. */
	os_free(r[1]);
	os_free(r[3]);
	os_free(r[2]);
	struct hv_block b = { 0 };
	bool found = hv_find(r[1], &b);
	t_ok(found && b.is_free && b.size == 3 * bs, "one free run of 180 KiB inside the heap");
	long res = resident_inside(r[1], b.size);
	t_is(res, 0, "none of its inner pages is resident any more");
	t_ok(tu_check(r[0], 0, payload_for(bs), 1) == TU_NONE &&
	     tu_check(r[4], 0, payload_for(bs), 5) == TU_NONE,
	     "the blocks on either side still hold their data");
	t_null(hv_verify(), "heap consistent");

	/* Reused after the release: fully writable. */
	void *q[4];
	int nq = 0;
	bool reused = false;
	while (nq < 4 && !reused) {
		q[nq] = os_malloc(payload_for(2 * bs));
		reused = q[nq] == r[1];
		nq++;
	}
	t_ok(reused, "the run is reused for a 120 KiB request");
	if (reused) {
		tu_fill(r[1], 0, payload_for(2 * bs), 99);
		t_ok(tu_check(r[1], 0, payload_for(2 * bs), 99) == TU_NONE, "and holds new data");
	}
	while (nq)
		os_free(q[--nq]);

	os_free(r[0]);
	os_free(r[4]);
	os_free(r[5]);
	t_null(hv_verify(), "heap consistent after freeing everything");
}

struct pieces {
	size_t size;    /* of each block, header included */
	int count;      /* blocks making up the run */
	bool backwards; /* freed right to left */
};

/* A run of blocks freed one after another: once the run is large, all its
   pages must be released, not only those free when it first became large,
   and not leaving behind the pages that held the headers of the pieces. */
static void release_piecewise(void *arg)
{
	const struct pieces *pc = arg;
	enum { MAXP = 130 };
	static void *b[MAXP + 2];
	int n = pc->count;
	if (!t_ok(n + 2 <= MAXP && tu_alloc_run(b, (size_t)n + 2, payload_for(pc->size)),
	          "%d adjacent blocks of %zu bytes", n + 2, pc->size))
		return;
	for (int i = 0; i < n + 2; i++)
		memset(b[i], 0x33, payload_for(pc->size));
	for (int k = 0; k < n; k++)
		hv_free_now(b[pc->backwards ? n - k : k + 1]);
	struct hv_block blk = { 0 };
	bool found = hv_find(b[1], &blk);
	size_t run = (size_t)n * pc->size;
	t_ok(found && blk.is_free && blk.size == run, "they form one free run of %zu KiB", run / KiB);
	long res = resident_inside(b[1], run);
	t_ok(res == 0, "freed %s: none of its inner pages is resident (%ld of %zu are)",
	     pc->backwards ? "right to left" : "left to right", res, run / hv_page_size());
	t_ok(((unsigned char *)b[0])[0] == 0x33 &&
	     ((unsigned char *)b[n + 1])[payload_for(pc->size) - 1] == 0x33,
	     "the blocks on either side keep their data");
	t_null(hv_verify(), "heap consistent");
	os_free(b[0]);
	os_free(b[n + 1]);
}

/* ---- page work that small frees leave waiting ---------------------------- */

#define SMALL ((size_t)4096) /* a payload threads keep */
enum { RUN = 64 };

static bool keeping(void) { return hv_cache_max() >= SMALL; }

/* Frees N blocks with os_free, and has the thread give what it kept back
   to the heap, without the page work that waits being done. */
static void free_small(void **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		os_free(v[i]);
	hv_drain_cache();
}

/* Resident pages inside the free run that starts at block P, or -1 when
   P starts no free block. */
static long run_resident(const void *p)
{
	struct hv_block b = { 0 };
	if (!hv_find(p, &b) || !b.is_free)
		return -1;
	return resident_inside(p, b.size);
}

static void waiting_inside(void *arg)
{
	(void)arg;
	static void *b[RUN + 2];
	if (!t_ok(tu_alloc_run(b, RUN + 2, SMALL), "%d adjacent 4 KiB blocks", RUN + 2))
		return;
	for (int i = 0; i < RUN + 2; i++)
		memset(b[i], 0x5a, SMALL);
	long written = resident_inside(b[1], RUN * (SMALL + HDR));
	free_small(b + 1, RUN);
	struct hv_block blk = { 0 };
	bool found = hv_find(b[1], &blk);
	t_ok(found && blk.is_free && blk.size == RUN * (SMALL + HDR),
	     "the %d inner ones form one free run of %zu KiB inside the heap", RUN, blk.size / KiB);
	long res = run_resident(b[1]);
	if (keeping())
		t_ok(written > 0 && res == written,
		     "freed as blocks of a kept size, all %ld of its inner pages stay resident (%ld)",
		     written, res);
	else
		t_is(res, 0, "with OSMEM_CACHE_MAX=0 none of its inner pages is resident");
	t_is(os_malloc_trim(0), 1, "os_malloc_trim(0) says memory was released");
	t_is(run_resident(b[1]), 0, "and none of the run's inner pages is resident after it");
	t_ok(((unsigned char *)b[0])[SMALL - 1] == 0x5a && ((unsigned char *)b[RUN + 1])[0] == 0x5a,
	     "the blocks on either side keep their data");
	t_null(hv_verify(), "heap consistent");
}

/* Runs of small blocks, each between two kept guards, that add up to more
   than the limit: what waits is given back once the limit is passed. */
static void waiting_limit(void *arg)
{
	(void)arg;
	enum { PER_RUN = 160 };
	size_t run_bytes = PER_RUN * (SMALL + HDR);
	size_t runs = hv_waiting_limit() / run_bytes + 2;
	size_t n = runs * (PER_RUN + 1) + 1;
	void **v = calloc(n, sizeof(void *));
	if (!t_ok(v != NULL, "%zu runs of %d blocks of 4 KiB", runs, PER_RUN))
		return;
	for (size_t i = 0; i < n; i++) {
		v[i] = os_malloc(SMALL);
		if (!v[i]) {
			t_ok(false, "os_malloc(4096) failed");
			return;
		}
		memset(v[i], 0x77, SMALL);
	}
	for (size_t r = 0; r < runs; r++)
		for (size_t i = 0; i < PER_RUN; i++)
			os_free(v[r * (PER_RUN + 1) + 1 + i]);
	hv_drain_cache();
	long resident = 0, total = 0;
	size_t free_runs = 0;
	for (size_t r = 0; r < runs; r++) {
		void *first = v[r * (PER_RUN + 1) + 1];
		long res = run_resident(first);
		if (res < 0)
			continue;
		free_runs++;
		resident += res;
		total += (long)(run_bytes / hv_page_size());
	}
	t_is(free_runs, runs, "every run is one free block");
	long limit_pages = (long)(hv_waiting_limit() / hv_page_size());
	t_ok(resident <= limit_pages,
	     "%ld of their %ld inner pages stay resident: at most the limit, %ld pages", resident,
	     total, limit_pages);
	if (keeping())
		t_ok(resident > 0, "and some wait (%ld pages)", resident);
	else
		t_is(resident, 0, "with OSMEM_CACHE_MAX=0, none");
	t_null(hv_verify(), "heap consistent");
}

static void *waiting_block;
static long waiting_before_exit;

static void *thread_leaves_waiting(void *arg)
{
	(void)arg;
	static void *b[RUN + 2];
	if (!tu_alloc_run(b, RUN + 2, SMALL))
		return NULL;
	for (int i = 0; i < RUN + 2; i++)
		memset(b[i], 0x5a, SMALL);
	free_small(b + 1, RUN);
	waiting_block = b[1];
	waiting_before_exit = run_resident(b[1]);
	return NULL; /* the guards stay allocated, holding the run inside */
}

static void waiting_thread_exit(void *arg)
{
	(void)arg;
	pthread_t th;
	if (!t_ok(pthread_create(&th, NULL, thread_leaves_waiting, NULL) == 0, "a thread started"))
		return;
	pthread_join(th, NULL);
	if (!t_ok(waiting_block != NULL, "it made a free run of %d blocks of 4 KiB", RUN))
		return;
	if (keeping())
		t_ok(waiting_before_exit > 0, "whose pages waited while it ran (%ld resident)",
		     waiting_before_exit);
	else
		t_is(waiting_before_exit, 0, "with OSMEM_CACHE_MAX=0, its pages went back at once");
	t_is(run_resident(waiting_block), 0,
	     "once the thread, the last of its arena, has exited, none is resident");
}

/* The blocks of a run freed into an orphaned arena: RUN, or more than a
   thread keeps of other arenas' blocks, so that most of them reach the
   heap at their free, not when the freeing thread's cache is emptied. */
enum { ORPHAN_MANY = 4 * RUN };
static void *orphan_run[ORPHAN_MANY + 2];
static int orphan_n;

static void *thread_allocates_run(void *arg)
{
	(void)arg;
	if (tu_alloc_run(orphan_run, (size_t)orphan_n + 2, SMALL))
		for (int i = 0; i < orphan_n + 2; i++)
			memset(orphan_run[i], 0x6b, SMALL);
	else
		orphan_run[0] = NULL;
	return NULL; /* and exits, leaving its arena to nobody */
}

/* Blocks freed into an arena that no thread uses any more: nobody would
   do the page work later, so it is done at once. */
static void waiting_orphan(void *arg)
{
	orphan_n = *(const int *)arg;
	/* This thread takes the main arena first, so that the other one gets
	   an arena of its own, which nobody adopts after it. */
	os_free(os_malloc(16));
	pthread_t th;
	if (!t_ok(pthread_create(&th, NULL, thread_allocates_run, NULL) == 0, "a thread started"))
		return;
	pthread_join(th, NULL);
	if (!t_ok(orphan_run[0] != NULL, "it allocated %d adjacent 4 KiB blocks and exited",
	          orphan_n + 2))
		return;
	free_small(orphan_run + 1, (size_t)orphan_n);
	long res = run_resident(orphan_run[1]);
	t_ok(res == 0, "freed by another thread, the inner %d form a free run with no page "
	               "resident (%ld are)", orphan_n, res);
	t_null(hv_verify(), "heap consistent");
}

static void waiting_top(void *arg)
{
	(void)arg;
	static void *b[RUN + 1];
	void *guard = os_malloc(SMALL);
	struct hv_block t;
	/* Use up the top, so that the run is made by growing the heap. */
	void *filler = NULL;
	if (tu_top_block(&t) && t.size > 2 * HDR)
		filler = os_malloc(payload_for(t.size));
	(void)filler; /* stays allocated */
	if (!t_ok(guard && tu_alloc_run(b, RUN + 1, SMALL), "%d adjacent 4 KiB blocks at the top",
	          RUN + 1))
		return;
	uintptr_t brk_full = (uintptr_t)sbrk(0);
	free_small(b, RUN + 1);
	uintptr_t brk_freed = (uintptr_t)sbrk(0);
	if (keeping())
		t_ok(brk_freed == brk_full,
		     "%zu KiB freed at the top in blocks of a kept size: the break waits", (RUN + 1) * SMALL / KiB);
	else
		t_ok(brk_freed < brk_full, "with OSMEM_CACHE_MAX=0, the break is lowered at once");
	hv_flush_cache();
	t_ok((uintptr_t)sbrk(0) < brk_full, "once what waits is done, the break is lowered (%p -> %p)",
	     (void *)brk_full, sbrk(0));
	t_null(hv_verify(), "heap consistent");
}

/* A thread's heap of many megabytes in small blocks. */
#define IN_PLACE_BLOCKS 8192
#define IN_PLACE_SIZE 1000

static void *in_place[IN_PLACE_BLOCKS];

static void *thread_grows_heap(void *arg)
{
	(void)arg;
	for (size_t i = 0; i < IN_PLACE_BLOCKS; i++) {
		in_place[i] = os_malloc(IN_PLACE_SIZE);
		if (!in_place[i])
			break;
		memset(in_place[i], 0x3c, IN_PLACE_SIZE);
	}
	return NULL;
}

/* A thread's arena grows in place as the main one does with the break: a
   heap split over several segments sends the frees of blocks outside
   the newest one down the slow path, which searches the segment table. */
static void grow_in_place(void *arg)
{
	(void)arg;
	/* This thread takes the main arena first, so that the other one gets
	   an arena of its own, which grows in mappings. */
	os_free(os_malloc(16));
	size_t segs_before = hv_segments(NULL, 0);
	pthread_t th;
	if (!t_ok(pthread_create(&th, NULL, thread_grows_heap, NULL) == 0, "a thread started"))
		return;
	pthread_join(th, NULL);
	if (!t_ok(in_place[IN_PLACE_BLOCKS - 1] != NULL, "it allocated %d blocks of %d bytes",
	          IN_PLACE_BLOCKS, IN_PLACE_SIZE))
		return;
	struct hv_segment first, last;
	bool found = tu_segment_of(in_place[0], &first) &&
	             tu_segment_of(in_place[IN_PLACE_BLOCKS - 1], &last);
	t_ok(found && !first.from_brk, "its blocks lie in a mapped segment");
	t_ok(found && first.base == last.base,
	     "the first and the last of %zu KiB of blocks lie in the same segment",
	     (size_t)IN_PLACE_BLOCKS * IN_PLACE_SIZE / KiB);
	size_t segs_after = hv_segments(NULL, 0);
	t_ok(segs_after == segs_before + 1, "the thread's arena has one segment (%zu made)",
	     segs_after - segs_before);
	size_t bad = 0;
	for (size_t i = 0; i < IN_PLACE_BLOCKS; i++)
		bad += ((unsigned char *)in_place[i])[0] != 0x3c ||
		       ((unsigned char *)in_place[i])[IN_PLACE_SIZE - 1] != 0x3c;
	t_is(bad, 0, "every block kept its contents");
	for (size_t i = 0; i < IN_PLACE_BLOCKS; i++)
		os_free(in_place[i]);
	t_null(hv_verify(), "heap consistent");
}

int main(void)
{
	tap_diag("libosmem: heap growth, trimming and page release");
	tu_child("first request", 60, first_request, NULL);
	tu_child("grow at the top", 60, grow_at_top, NULL);
	tu_child("trim", 60, trim_top, NULL);
	tu_child("release inside", 60, release_interior, NULL);
	const struct pieces pcs[] = {
		{ 60 * KiB, 4, false },
		{ 60 * KiB, 4, true },
		{ 4 * KiB, 64, false },
		{ 4 * KiB, 64, true },
		{ 16 * KiB + 16, 24, true },
	};
	for (size_t i = 0; i < sizeof(pcs) / sizeof(pcs[0]); i++) {
		char name[64];
		snprintf(name, sizeof(name), "release %d x %zu %s", pcs[i].count, pcs[i].size,
		         pcs[i].backwards ? "backwards" : "forwards");
		tu_child(name, 60, release_piecewise, (void *)&pcs[i]);
	}
	tu_child("small frees: pages inside wait", 60, waiting_inside, NULL);
	tu_child("small frees: the limit", 60, waiting_limit, NULL);
	tu_child("small frees: thread exit", 60, waiting_thread_exit, NULL);
	tu_child("small frees: the top", 60, waiting_top, NULL);
	static const int orphan_few = RUN, orphan_many = ORPHAN_MANY;
	tu_child("small frees: an arena nobody uses", 60, waiting_orphan, (void *)&orphan_few);
	tu_child("small frees: many into an arena nobody uses", 60, waiting_orphan,
	         (void *)&orphan_many);
	tu_child("a thread's heap grows in place", 60, grow_in_place, NULL);
	return tap_done();
}
