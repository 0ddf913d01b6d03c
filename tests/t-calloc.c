/*
 * t-calloc.c - the contract of os_calloc.
 *
 *  - every byte reads as zero, including when the block reuses memory a
 *    previous block dirtied: in the thread-cache range, the heap range and
 *    the mapped range, after splitting, after a shrinking realloc, after
 *    the heap top was given back and regrown, and when the heap's segment
 *    starts in a page someone else wrote below and above the break, and
 *    for every size around the one from which blocks are cleared with
 *    wide stores, without a byte written past the block;
 *  - NMEMB * SIZE overflowing gives NULL with errno ENOMEM;
 *  - zero elements or zero size behave like os_malloc(0).
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
#include <sys/mman.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

enum { K = 12 };

static bool overlaps(const void *p, size_t n, void *const *blocks, size_t nblocks, size_t bsize)
{
	uintptr_t a = (uintptr_t)p, b = a + n;
	for (size_t i = 0; i < nblocks; i++) {
		uintptr_t lo = (uintptr_t)blocks[i], hi = lo + bsize;
		if (a < hi && lo < b)
			return true;
	}
	return false;
}

/* K blocks of SIZE filled with 0xff and freed, then K os_calloc of SIZE:
   all zero, and at least one of them reuses the dirtied memory (else the
   check proved nothing). */
static void dirty_then_calloc(size_t size, const char *range, bool expect_reuse)
{
	void *dirty[K], *clean[K];
	for (int i = 0; i < K; i++) {
		dirty[i] = os_malloc(size);
		if (dirty[i])
			memset(dirty[i], 0xff, size);
	}
	for (int i = 0; i < K; i++)
		os_free(dirty[i]);
	size_t bad = 0, nulls = 0, reused = 0;
	for (int i = 0; i < K; i++) {
		clean[i] = os_calloc(1, size);
		if (!clean[i]) {
			nulls++;
			continue;
		}
		size_t at = tu_nonzero(clean[i], size);
		if (at != TU_NONE) {
			if (!bad)
				t_diag("os_calloc(1, %zu) = %p: byte %zu is 0x%02x", size, clean[i], at,
				       ((unsigned char *)clean[i])[at]);
			bad++;
		}
		if (overlaps(clean[i], size, dirty, K, size))
			reused++;
		/* Dirty it too, so the next size starts from dirt again. */
		memset(clean[i], 0xff, size);
	}
	t_ok(nulls == 0 && bad == 0, "%s: os_calloc(1, %zu) after dirty frees reads zero (%zu of %d not)",
	     range, size, bad, K);
	if (expect_reuse)
		t_ok(reused > 0, "%s: and reused the dirtied memory (%zu of %d blocks)", range, reused, K);
	for (int i = 0; i < K; i++)
		os_free(clean[i]);
}

static void test_dirty_reuse(void)
{
	const size_t cache_sizes[] = { 1, 16, 24, 100, 500, 1000, hv_cache_max_payload() };
	const size_t heap_sizes[] = { hv_cache_max_payload() + 1, 2000, 4096, 10000, 65536,
	                              hv_mmap_threshold() - 1 };
	const size_t mapped_sizes[] = { hv_mmap_threshold(), 300 * KiB, MiB };
	for (size_t i = 0; i < sizeof(cache_sizes) / sizeof(cache_sizes[0]); i++)
		dirty_then_calloc(cache_sizes[i], "cache range", true);
	for (size_t i = 0; i < sizeof(heap_sizes) / sizeof(heap_sizes[0]); i++)
		dirty_then_calloc(heap_sizes[i], "heap range", true);
	/* A mapping freed and mapped again may or may not land at the same
	   place; either way it must read as zero. */
	for (size_t i = 0; i < sizeof(mapped_sizes) / sizeof(mapped_sizes[0]); i++)
		dirty_then_calloc(mapped_sizes[i], "mapped range", false);
	t_null(hv_verify(), "heap consistent after the calloc rounds");
}

/* A block of N bytes dirtied, freed, and asked for again with os_calloc,
   for every N across the size from which blocks are cleared with wide
   stores, and sizes up to the largest a thread keeps: all N bytes read as
   zero, and the block just after it, dirtied too, is untouched (the
   wide stores end exactly at N, unaligned). */
static void test_clear_sizes(void)
{
	size_t sizes[260], ns = 0;
	for (size_t n = 1990; n <= 2200; n++)
		sizes[ns++] = n;
	const size_t more[] = { 2999, 3000, 3001, 4095, 4096, 4097, 8191, 10000, 16383, 24577,
	                        hv_cache_max_payload() };
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
		sizes[ns++] = more[i];
	size_t bad = 0, damaged = 0, reused = 0;
	for (size_t i = 0; i < ns; i++) {
		size_t n = sizes[i];
		unsigned char *a = os_malloc(n), *after = os_malloc(64);
		if (!a || !after) {
			bad++;
			break;
		}
		memset(a, 0xff, n);
		memset(after, 0x5a, 64);
		os_free(a);
		unsigned char *c = os_calloc(n, 1);
		if (!c || tu_nonzero(c, n) != TU_NONE) {
			if (!bad)
				t_diag("os_calloc(%zu, 1) = %p does not read zero", n, (void *)c);
			bad++;
		}
		reused += c == a;
		for (size_t k = 0; k < 64; k++)
			if (after[k] != 0x5a) {
				if (!damaged)
					t_diag("os_calloc(%zu, 1) = %p wrote byte %zu of the next block", n,
					       (void *)c, k);
				damaged++;
				break;
			}
		os_free(c);
		os_free(after);
	}
	t_ok(bad == 0, "os_calloc of %zu sizes around the wide clear reads zero", ns);
	t_is(damaged, 0, "and leaves the block after it alone");
	t_ok(reused > ns / 2, "and mostly reused the dirtied block (%zu of %zu)", reused, ns);
	t_null(hv_verify(), "heap consistent after them");
}

/* A big dirty block freed, then os_calloc of smaller blocks until several
   have been split from it (best fit takes smaller free blocks first). */
static void test_split_remainders(void)
{
	enum { MAXC = 400 };
	static void *c[MAXC];
	size_t bs = 100 * KiB, cs = 5000;
	void *guard_lo = os_malloc(3000);
	void *big = os_malloc(bs);
	void *guard_hi = os_malloc(3000);
	memset(big, 0xee, bs);
	os_free(big);
	size_t n = 0, bad = 0, inside = 0;
	while (n < MAXC && inside < 6) {
		c[n] = os_calloc(cs, 1);
		if (!c[n] || tu_nonzero(c[n], cs) != TU_NONE)
			bad++;
		else if ((uintptr_t)c[n] >= (uintptr_t)big && (uintptr_t)c[n] < (uintptr_t)big + bs)
			inside++;
		n++;
	}
	t_is(bad, 0, "os_calloc blocks split from a dirty free block read zero");
	t_ok(inside == 6, "and %zu of them came from that block", inside);
	for (size_t i = 0; i < n; i++)
		os_free(c[i]);
	os_free(guard_lo);
	os_free(guard_hi);
}

/* The tail a shrinking os_realloc gives back is dirty. */
static void test_after_shrink(void)
{
	void *guard_lo = os_malloc(3000);
	char *p = os_malloc(48 * KiB);
	void *guard_hi = os_malloc(3000);
	memset(p, 0xdd, 48 * KiB);
	char *q = os_realloc(p, 4 * KiB);
	t_ok(q == p, "shrinking os_realloc stays in place");
	/* Nearly the whole tail: no other free block left by the tests
	   before is a better fit. */
	void *c = os_calloc(1, 43 * KiB);
	t_ok(c && tu_nonzero(c, 43 * KiB) == TU_NONE, "os_calloc from the released tail reads zero");
	t_ok((uintptr_t)c > (uintptr_t)q && (uintptr_t)c < (uintptr_t)q + 48 * KiB,
	     "and it was placed in that tail");
	os_free(c);
	os_free(q);
	os_free(guard_lo);
	os_free(guard_hi);
}

/* In a child: dirty the heap top, let it be trimmed, grow it back. */
static void after_trim(void *arg)
{
	(void)arg;
	size_t bs = 120 * KiB;
	void *b[4];
	for (int i = 0; i < 4; i++) {
		b[i] = os_malloc(bs);
		memset(b[i], 0xcc, bs);
	}
	void *brk_before = sbrk(0);
	for (int i = 3; i >= 0; i--)
		os_free(b[i]);
	t_ok((uintptr_t)sbrk(0) < (uintptr_t)brk_before, "freeing the top lowered the break");
	size_t bad = 0;
	for (int i = 0; i < 4; i++) {
		b[i] = os_calloc(bs, 1);
		if (!b[i] || tu_nonzero(b[i], bs) != TU_NONE)
			bad++;
	}
	t_is(bad, 0, "os_calloc over the trimmed and regrown top reads zero");
	for (int i = 0; i < 4; i++)
		os_free(b[i]);
}

/* In a child: someone else grows the break, writes, and lowers it again to
   the middle of a page.  The bytes above the break in that page are still
   there (the kernel unmaps only whole pages), so a heap segment starting
   at that break is not fresh memory. */
struct dirty_break {
	bool heap_first; /* libosmem already has a heap when the break moves */
};

static void dirty_break(void *arg)
{
	const struct dirty_break *d = arg;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *first = NULL;
	if (d->heap_first)
		first = os_malloc(100);

	/* Start on a page boundary, so the page kept is exactly ours. */
	uintptr_t cur = (uintptr_t)sbrk(0);
	size_t lead = (page - cur % page) % page;
	unsigned char *a = sbrk((intptr_t)(lead + 4 * page));
	if (!t_ok(a != (void *)-1, "sbrk grows the break by four pages"))
		return;
	a += lead;
	memset(a, 0xab, 4 * page);
	sbrk(-(intptr_t)(4 * page - 40));
	t_ok((uintptr_t)sbrk(0) == (uintptr_t)a + 40, "the break is now 40 bytes into a dirty page");

	/* Larger than any free block a heap of one 128 KiB segment with a
	   block in use can have, and still below the mmap threshold. */
	size_t n = 128 * KiB - 1;
	unsigned char *c = os_calloc(1, n);
	if (!t_ok(c != NULL, "os_calloc(1, 128 KiB - 1) succeeds"))
		return;
	t_ok((uintptr_t)c >= (uintptr_t)a + 40 && (uintptr_t)c < (uintptr_t)a + page,
	     "the block starts in that page (%p, page at %p)", (void *)c, (void *)a);
	size_t at = tu_nonzero(c, n);
	t_ok(at == TU_NONE, "os_calloc reads zero in a segment starting mid-page%s%zu",
	     at == TU_NONE ? "" : "; first non-zero byte at offset ", at == TU_NONE ? (size_t)0 : at);
	t_ok(a[0] == 0xab && a[39] == 0xab, "the 40 bytes below the break are untouched");
	os_free(c);
	os_free(first);
	t_null(hv_verify(), "heap consistent");
}

/* In a child whose break is blocked: the heap lives in mmap-backed
   segments, and reused memory there must be cleared all the same. */
static void mapped_segments(void *arg)
{
	(void)arg;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t at = ((uintptr_t)sbrk(0) + page - 1) / page * page;
	void *m = mmap((void *)at, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m != (void *)at || sbrk((intptr_t)page) != (void *)-1) {
		/* A setup this environment does not allow (valgrind keeps the
		   break away from the program's mappings). */
		t_skip(1, "no mapping could be placed to block the break here");
		return;
	}
	/* Enough dirty blocks to need mmap-backed segments, freed. */
	enum { N = 400 };
	static void *d[N];
	for (int i = 0; i < N; i++) {
		d[i] = os_malloc(5000);
		if (d[i])
			memset(d[i], 0xff, 5000);
	}
	size_t in_mapped = 0;
	for (int i = 0; i < N; i++) {
		struct hv_segment seg;
		if (d[i] && tu_segment_of(d[i], &seg) && !seg.from_brk)
			in_mapped++;
	}
	t_ok(in_mapped > 0, "%zu dirty blocks lie in mmap-backed segments", in_mapped);
	for (int i = 0; i < N; i++)
		os_free(d[i]);
	const size_t sizes[] = { 100, 2000, 5000, 40000 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		dirty_then_calloc(sizes[i], "mapped segments", true);
	t_null(hv_verify(), "heap consistent");
}

static void test_overflow(void)
{
	const struct {
		size_t n, s;
		const char *name;
	} cases[] = {
		{ SIZE_MAX, SIZE_MAX, "SIZE_MAX x SIZE_MAX" },
		{ SIZE_MAX, 2, "SIZE_MAX x 2" },
		{ 2, SIZE_MAX, "2 x SIZE_MAX" },
		{ SIZE_MAX / 2 + 1, 2, "(SIZE_MAX/2 + 1) x 2" },
		{ (size_t)1 << 32, (size_t)1 << 32, "2^32 x 2^32" },
		{ ((size_t)1 << 33) + 1, ((size_t)1 << 31), "(2^33 + 1) x 2^31" },
		{ 65537, SIZE_MAX / 65536, "65537 x (SIZE_MAX / 65536)" },
		{ SIZE_MAX / 3 + 1, 3, "(SIZE_MAX/3 + 1) x 3" },
		/* No overflow, but too big all the same. */
		{ (size_t)1 << 28, (size_t)1 << 28, "2^28 x 2^28" },
		{ 1, SIZE_MAX, "1 x SIZE_MAX" },
		{ (size_t)PTRDIFF_MAX / 2 + 1, 2, "(PTRDIFF_MAX/2 + 1) x 2" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		errno = EDOM;
		void *p = os_calloc(cases[i].n, cases[i].s);
		int e = errno;
		t_ok(p == NULL && e == ENOMEM, "os_calloc(%s) fails with ENOMEM (got %p, errno %d)",
		     cases[i].name, p, e);
		os_free(p);
	}
	void *p = os_calloc(100, 100);
	t_ok(p && tu_nonzero(p, 10000) == TU_NONE, "os_calloc works after the failures");
	os_free(p);
}

static void test_zero(void)
{
	const struct {
		size_t n, s;
	} cases[] = { { 0, 0 }, { 0, 1 }, { 1, 0 }, { 0, 4096 }, { 4096, 0 }, { 0, SIZE_MAX },
	              { SIZE_MAX, 0 } };
	enum { REP = 20, NC = sizeof(cases) / sizeof(cases[0]) };
	struct tu_span spans[REP * NC];
	size_t n = 0, nulls = 0, misaligned = 0;
	static void *z[REP * NC];
	for (int r = 0; r < REP; r++)
		for (size_t i = 0; i < NC; i++) {
			void *p = os_calloc(cases[i].n, cases[i].s);
			z[r * NC + i] = p;
			if (!p) {
				nulls++;
				continue;
			}
			if ((uintptr_t)p % alignof(max_align_t))
				misaligned++;
			spans[n++] = (struct tu_span){ (uintptr_t)p, (uintptr_t)p + 1 };
		}
	t_is(nulls, 0, "os_calloc with a zero count or size never returns NULL");
	t_is(misaligned, 0, "and the pointers are aligned");
	t_ok(tu_first_overlap(spans, n) == TU_NONE, "and unique among %zu live ones", n);
	for (size_t i = 0; i < REP * NC; i++)
		os_free(z[i]);
	t_null(hv_verify(), "and they free cleanly");
}

int main(void)
{
	tap_diag("libosmem: os_calloc");
	/* These two need a process whose heap libosmem has not started yet. */
	struct dirty_break fresh = { false }, later = { true };
	tu_child("dirty break, first segment", 60, dirty_break, &fresh);
	tu_child("dirty break, new segment", 60, dirty_break, &later);

	test_dirty_reuse();
	test_clear_sizes();
	test_split_remainders();
	test_after_shrink();
	tu_child("trim and regrow", 60, after_trim, NULL);
	tu_child("mmap-backed heap", 60, mapped_segments, NULL);
	test_overflow();
	test_zero();
	return tap_done();
}
