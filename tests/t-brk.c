/*
 * t-brk.c - sharing the program break.
 *
 *  - the C library's malloc and raw sbrk calls interleaved with libosmem:
 *    nobody's data is damaged, and libosmem starts a new segment when it
 *    finds the break moved instead of growing over someone else's memory;
 *  - libosmem lowers the break only when the break is its own segment's
 *    end: memory sbrk'd by someone else above it stays;
 *  - when the break cannot move (a mapping in the way), small requests are
 *    served from mmap-backed heap segments instead of failing;
 *  - however often the break moves under it, requests keep being granted.
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

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

static size_t nsegs(void)
{
	struct hv_segment s[1];
	return hv_segments(s, 0);
}

/* The region [P, P+N) overlaps no libosmem heap segment. */
static bool outside_heap(const void *p, size_t n)
{
	struct hv_segment s[256];
	size_t ns = hv_segments(s, 256);
	for (size_t i = 0; i < ns && i < 256; i++)
		if ((uintptr_t)p < s[i].end && s[i].base < (uintptr_t)p + n)
			return false;
	return true;
}

struct owned {
	void *p;
	size_t n;
	uint64_t id;
	int kind; /* 0 libosmem, 1 C library, 2 raw sbrk */
};

static void interleave(void *arg)
{
	(void)arg;
	enum { ROUNDS = 24, MAXO = 1024 };
	static struct owned o[MAXO];
	size_t no = 0;
	struct tu_rng rng;
	tu_rng_seed(&rng, 42);
	size_t segs_at_start = 0;
	bool new_seg_on_move = true;
	int moves_seen = 0;

	for (int r = 0; r < ROUNDS && no + 16 < MAXO; r++) {
		/* libosmem: heap-sized blocks, enough to need growth now and then. */
		for (int i = 0; i < 4; i++) {
			size_t n = 2000 + (size_t)tu_rng_below(&rng, 30000);
			void *p = os_malloc(n);
			if (!p)
				continue;
			tu_fill(p, 0, n, no);
			o[no] = (struct owned){ p, n, no, 0 };
			no++;
		}
		if (r == 0)
			segs_at_start = nsegs();
		/* The C library: blocks below its mmap threshold come from brk. */
		for (int i = 0; i < 3; i++) {
			size_t n = 1000 + (size_t)tu_rng_below(&rng, 40000);
			void *p = malloc(n);
			if (!p)
				continue;
			tu_fill(p, 0, n, no);
			o[no] = (struct owned){ p, n, no, 1 };
			no++;
		}
		/* Raw sbrk, of odd sizes too. */
		size_t n = 100 + (size_t)tu_rng_below(&rng, 9000);
		void *raw = sbrk((intptr_t)n);
		if (raw != (void *)-1) {
			tu_fill(raw, 0, n, no);
			o[no] = (struct owned){ raw, n, no, 2 };
			no++;
		}

		/* The break has moved: requests that need growth must open a
		   new segment above it.  Requests just below the mmap threshold
		   use up the free space first (new segments are made large, a
		   quarter of the heap), until one of them makes the heap grow. */
		size_t before = nsegs(), bn = hv_mmap_threshold() - 4096;
		for (int k = 0; k < 512 && nsegs() == before && no + 16 < MAXO; k++) {
			void *big = os_malloc(bn);
			if (!big)
				break;
			tu_fill(big, 0, bn, no);
			o[no] = (struct owned){ big, bn, no, 0 };
			no++;
		}
		if (nsegs() != before) {
			moves_seen++;
			if (nsegs() != before + 1 || !outside_heap(raw, n))
				new_seg_on_move = false;
		}

		/* Free some of each side. */
		for (int i = 0; i < 3 && no; i++) {
			size_t k = (size_t)tu_rng_below(&rng, no);
			if (o[k].kind == 2)
				continue;
			if (tu_check(o[k].p, 0, o[k].n, o[k].id) != TU_NONE)
				t_diag("block %zu (kind %d) damaged before free", k, o[k].kind);
			if (o[k].kind == 0)
				os_free(o[k].p);
			else
				free(o[k].p);
			o[k] = o[--no];
		}
	}

	size_t damaged[3] = { 0, 0, 0 }, count[3] = { 0, 0, 0 };
	for (size_t i = 0; i < no; i++) {
		count[o[i].kind]++;
		if (tu_check(o[i].p, 0, o[i].n, o[i].id) != TU_NONE)
			damaged[o[i].kind]++;
	}
	t_ok(damaged[0] == 0, "%zu libosmem blocks intact (%zu damaged)", count[0], damaged[0]);
	t_ok(damaged[1] == 0, "%zu C library blocks intact (%zu damaged)", count[1], damaged[1]);
	t_ok(damaged[2] == 0, "%zu raw sbrk regions intact (%zu damaged)", count[2], damaged[2]);
	size_t inside = 0;
	for (size_t i = 0; i < no; i++)
		if (o[i].kind != 0 && !outside_heap(o[i].p, o[i].n))
			inside++;
	t_is(inside, 0, "no C library block or raw region lies inside a libosmem segment");
	t_ok(moves_seen >= ROUNDS / 2 && new_seg_on_move,
	     "each time the break had moved (%d checked), growth started a new segment above it",
	     moves_seen);
	t_ok(nsegs() > segs_at_start, "the heap has %zu segments (%zu at the start)", nsegs(),
	     segs_at_start);
	t_null(hv_verify(), "heap consistent");
	for (size_t i = 0; i < no; i++) {
		if (o[i].kind == 0)
			os_free(o[i].p);
		else if (o[i].kind == 1)
			free(o[i].p);
	}
	t_null(hv_verify(), "heap consistent after freeing everything");
}

/* Someone else's sbrk right above libosmem's heap must survive libosmem
   freeing everything below it. */
static void foreign_top(void *arg)
{
	(void)arg;
	void *g = os_malloc(2000);
	void *b[3];
	for (int i = 0; i < 3; i++)
		b[i] = os_malloc(100 * KiB);
	struct hv_block top;
	struct hv_segment seg;
	bool ok = tu_top_block(&top) && tu_segment_of(top.payload, &seg);
	t_ok(ok && seg.end == (uintptr_t)sbrk(0), "libosmem's heap ends at the break");

	const size_t mine = 4096;
	unsigned char *raw = sbrk((intptr_t)mine);
	if (!t_ok(raw != (void *)-1 && (uintptr_t)raw == seg.end,
	          "sbrk(4096) by the program right above the heap"))
		return;
	memset(raw, 0x5c, mine);
	for (int i = 2; i >= 0; i--)
		os_free(b[i]);
	ok = tu_top_block(&top) && top.is_free;
	t_ok(ok && top.size > hv_trim_threshold(),
	     "libosmem's free top (%zu bytes) is above the trim threshold", ok ? top.size : 0);
	t_ok((uintptr_t)sbrk(0) >= (uintptr_t)raw + mine,
	     "the break was not lowered below the program's region");
	size_t bad = 0;
	for (size_t i = 0; i < mine; i++)
		if (raw[i] != 0x5c)
			bad++;
	t_is(bad, 0, "the program's region is intact");
	memset(raw, 0xc5, mine);
	t_ok(raw[0] == 0xc5 && raw[mine - 1] == 0xc5, "and still writable");
	t_null(hv_verify(), "heap consistent");

	/* Once the program gives its region back, the break is libosmem's
	   end again and the free top can be trimmed. */
	sbrk(-(intptr_t)mine);
	uintptr_t brk = (uintptr_t)sbrk(0);
	void *p = os_malloc(100 * KiB);
	os_free(p);
	t_ok((uintptr_t)sbrk(0) < brk, "after the program lowers its break, libosmem trims again");

	/* The same with the C library growing the break above the heap. */
	for (int i = 0; i < 3; i++)
		b[i] = os_malloc(100 * KiB);
	uintptr_t heap_end = (uintptr_t)sbrk(0);
	enum { NG = 8 };
	unsigned char *gl[NG];
	size_t gn = 60 * KiB;
	for (int i = 0; i < NG; i++) {
		gl[i] = malloc(gn);
		if (gl[i])
			memset(gl[i], 0x6d, gn);
	}
	/* Under a sanitizer, malloc is the sanitizer's and uses mappings. */
	bool moved = (uintptr_t)sbrk(0) > heap_end;
	for (int i = 2; i >= 0; i--)
		os_free(b[i]);
	if (moved) {
		t_ok(moved, "the C library grew the break above libosmem's heap");
		t_ok((uintptr_t)sbrk(0) >= heap_end, "libosmem did not lower the break under it");
	} else {
		t_skip(2, "the C library's malloc does not use the break here");
	}
	bad = 0;
	for (int i = 0; i < NG; i++) {
		if (!gl[i] || gl[i][0] != 0x6d || gl[i][gn - 1] != 0x6d)
			bad++;
		else
			memset(gl[i], 0x7e, gn);
	}
	t_is(bad, 0, "the C library's blocks are intact and writable");
	for (int i = 0; i < NG; i++)
		free(gl[i]);
	os_free(g);
	t_null(hv_verify(), "heap consistent");
}

/* Puts a mapping right at the (page-rounded) break, so brk cannot grow. */
static void *block_break(void)
{
	size_t page = hv_page_size();
	uintptr_t at = ((uintptr_t)sbrk(0) + page - 1) / page * page;
#ifdef MAP_FIXED_NOREPLACE
	void *m = mmap((void *)at, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
	               -1, 0);
#else
	void *m = mmap((void *)at, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
#endif
	if (m == MAP_FAILED)
		return NULL;
	if ((uintptr_t)m != at) {
		munmap(m, page);
		return NULL;
	}
	return m;
}

struct blocked {
	bool heap_first; /* libosmem has a brk segment before the break is blocked */
};

static void break_blocked(void *arg)
{
	const struct blocked *bl = arg;
	void *first = bl->heap_first ? os_malloc(100) : NULL;
	void *m = block_break();
	if (!t_ok(m != NULL, "a mapping placed right at the break"))
		return;
	void *probe = sbrk(64 * KiB);
	t_ok(probe == (void *)-1, "sbrk can no longer grow the break");

	enum { N = 300 };
	static void *p[N];
	static size_t sz[N];
	size_t failed = 0;
	struct tu_rng rng;
	tu_rng_seed(&rng, 7);
	for (int i = 0; i < N; i++) {
		sz[i] = 16 + (size_t)tu_rng_below(&rng, 8000);
		p[i] = os_malloc(sz[i]);
		if (!p[i]) {
			failed++;
			continue;
		}
		tu_fill(p[i], 0, sz[i], (uint64_t)i);
	}
	t_is(failed, 0, "300 small requests (1.2 MiB) all succeed");

	struct hv_segment s[256];
	size_t ns = hv_segments(s, 256), mapped_segs = 0;
	for (size_t i = 0; i < ns && i < 256; i++)
		if (!s[i].from_brk)
			mapped_segs++;
	t_ok(mapped_segs > 0 && hv_map_segment_bytes() > 0,
	     "the heap went on in %zu mmap-backed segments (%zu bytes)", mapped_segs,
	     hv_map_segment_bytes());
	size_t in_mapped = 0, damaged = 0;
	for (int i = 0; i < N; i++) {
		struct hv_segment seg;
		if (p[i] && tu_segment_of(p[i], &seg) && !seg.from_brk)
			in_mapped++;
		if (p[i] && tu_check(p[i], 0, sz[i], (uint64_t)i) != TU_NONE)
			damaged++;
	}
	t_ok(in_mapped > 0, "%zu of the blocks lie in them", in_mapped);
	t_is(damaged, 0, "every block holds its data");
	t_ok(sbrk(0) <= m, "the break stayed below the mapping");
	t_null(hv_verify(), "heap consistent");
	for (int i = 0; i < N; i += 2)
		os_free(p[i]);
	damaged = 0;
	for (int i = 1; i < N; i += 2)
		if (p[i] && tu_check(p[i], 0, sz[i], (uint64_t)i) != TU_NONE)
			damaged++;
	t_is(damaged, 0, "after freeing half, the other half is intact");
	for (int i = 1; i < N; i += 2)
		os_free(p[i]);
	os_free(first);
	t_null(hv_verify(), "heap consistent after freeing everything");
	void *again = os_malloc(5000);
	t_ok(again != NULL, "and it still serves requests");
	os_free(again);
	munmap(m, hv_page_size());
}

/* The program moves the break between every two growths of the heap,
   hundreds of times: each growth needs a new segment, and every request
   must still be granted while the system has memory to give. */
/* With the break blocked, a heap that grows and shrinks again and again
   does so within one mapped segment: a cut keeps the segment's reserved
   range, and the next growth extends it in place, where a new segment
   each time would fill the segment table, whose slots are never reused. */
static void blocked_cycles(void *arg)
{
	(void)arg;
	void *m = block_break();
	if (!t_ok(m != NULL, "a mapping placed right at the break"))
		return;
	enum { N = 512, CYCLES = 20 };
	static void *p[N];
	size_t segs_first = 0, mapped_freed = 0, failed = 0;
	for (int round = 0; round < CYCLES; round++) {
		for (int i = 0; i < N; i++)
			if (!(p[i] = os_malloc(4 * KiB)))
				failed++;
		for (int i = 0; i < N; i++)
			os_free(p[i]);
		hv_flush_cache();
		if (round == 0)
			segs_first = hv_segments(NULL, 0);
		if (hv_map_segment_bytes() > mapped_freed)
			mapped_freed = hv_map_segment_bytes();
	}
	t_ok(failed == 0, "%d rounds of 2 MiB in 4 KiB blocks allocated and freed (%zu failed)",
	     CYCLES, failed);
	size_t segs_last = hv_segments(NULL, 0);
	t_ok(segs_last == segs_first, "the rounds after the first made no segment (%zu, then %zu)",
	     segs_first, segs_last);
	t_ok(mapped_freed < MiB, "freed, the mapped segments shrank back each time (to %zu bytes at most)",
	     mapped_freed);
	t_null(hv_verify(), "heap consistent");
}

static void many_moves(void *arg)
{
	(void)arg;
	enum { MOVES = 400 };
	static unsigned char *p[MOVES];
	const size_t n = 100 * KiB;
	size_t granted = 0, own_ok = 0;
	int first_failure = -1;
	for (int i = 0; i < MOVES; i++) {
		unsigned char *raw = sbrk(4096);
		if (raw != (void *)-1)
			raw[0] = raw[4095] = 0x99;
		p[i] = os_malloc(n);
		if (!p[i]) {
			if (first_failure < 0)
				first_failure = i;
			continue;
		}
		memset(p[i], i & 0xff, n);
		granted++;
		if (raw != (void *)-1 && raw[0] == 0x99 && raw[4095] == 0x99)
			own_ok++;
	}
	t_ok(granted == MOVES, "%zu of %d heap-sized requests granted, each after the break moved "
	     "(first refused: %d, with %zu segments)", granted, MOVES, first_failure, nsegs());
	t_is(own_ok, granted, "the program's own sbrk'd pages stay intact");
	size_t damaged = 0;
	for (int i = 0; i < MOVES; i++)
		if (p[i] && (p[i][0] != (i & 0xff) || p[i][n - 1] != (i & 0xff)))
			damaged++;
	t_is(damaged, 0, "every granted block holds its data");
	t_null(hv_verify(), "heap consistent");
	for (int i = 0; i < MOVES; i++)
		os_free(p[i]);
	t_null(hv_verify(), "heap consistent after freeing everything");
	void *q = os_malloc(n);
	t_ok(q != NULL, "and a heap-sized request is granted afterwards");
	os_free(q);
}

int main(void)
{
	tap_diag("libosmem: sharing the break");
	tu_child("interleaved", 60, interleave, NULL);
	tu_child("foreign top", 60, foreign_top, NULL);
	tu_child("many moves", 60, many_moves, NULL);
	struct blocked before = { false }, after = { true };
	tu_child("blocked break, no heap yet", 60, break_blocked, &before);
	tu_child("blocked break, brk heap first", 60, break_blocked, &after);
	tu_child("blocked break, growth in cycles", 60, blocked_cycles, NULL);
	return tap_done();
}
