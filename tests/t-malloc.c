/*
 * t-malloc.c - the contract of os_malloc and os_free.
 *
 *  - every block is aligned for any object type and has at least the bytes
 *    asked for, none of them shared with another live block;
 *  - os_malloc(0) returns unique, freeable pointers;
 *  - requests that cannot be met (above PTRDIFF_MAX, or refused by the
 *    kernel) return NULL with errno ENOMEM and leave the allocator usable;
 *  - os_free(NULL) does nothing, and os_free never changes errno, whichever
 *    path the block takes (thread cache, heap, trim, mapping).
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include "heapview.h"
#include "tap.h"
#include "tutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

static const size_t align = alignof(max_align_t);

/* Sizes around every interesting boundary: tiny, the cache limit, the
   exact size classes, page sizes, the mmap threshold and beyond. */
static size_t sizes[512];
static size_t nsizes;

static void add_size(size_t n)
{
	if (nsizes < sizeof(sizes) / sizeof(sizes[0]))
		sizes[nsizes++] = n;
}

static void make_sizes(void)
{
	for (size_t n = 0; n <= 64; n++)
		add_size(n);
	for (size_t p = 128; p <= 4 * MiB; p *= 2) {
		add_size(p - 17);
		add_size(p - 16);
		add_size(p - 1);
		add_size(p);
		add_size(p + 1);
		add_size(p + 16);
	}
	size_t cache = hv_cache_max_payload(), mmap_at = hv_mmap_threshold();
	for (size_t d = 0; d < 3; d++) {
		add_size(cache - 1 + d);
		add_size(mmap_at - 1 + d);
	}
	add_size(1000);
	add_size(3 * KiB + 7);
	add_size(100 * KiB + 3);
	add_size(300 * KiB + 5);
}

static void test_alignment_and_usable_bytes(void)
{
	static void *p[512];
	size_t misaligned = 0, failed = 0;
	for (size_t i = 0; i < nsizes; i++) {
		p[i] = os_malloc(sizes[i]);
		if (!p[i]) {
			failed++;
			continue;
		}
		if ((uintptr_t)p[i] % align)
			misaligned++;
		tu_fill(p[i], 0, sizes[i], i + 1);
	}
	t_is(failed, 0, "every size from 0 to 4 MiB is granted");
	t_ok(misaligned == 0, "all %zu blocks are aligned to %zu (%zu are not)", nsizes, align,
	     misaligned);

	/* Every block was filled in full before any was checked: a block
	   shorter than asked, or two blocks sharing bytes, shows up here. */
	size_t damaged = 0;
	for (size_t i = 0; i < nsizes; i++) {
		if (p[i] && tu_check(p[i], 0, sizes[i], i + 1) != TU_NONE) {
			if (!damaged)
				t_diag("block of %zu bytes at %p damaged", sizes[i], p[i]);
			damaged++;
		}
	}
	t_is(damaged, 0, "all requested bytes of all live blocks are usable and unshared");

	struct tu_span spans[512];
	size_t n = 0;
	for (size_t i = 0; i < nsizes; i++)
		if (p[i])
			spans[n++] = (struct tu_span){ (uintptr_t)p[i],
			                               (uintptr_t)p[i] + (sizes[i] ? sizes[i] : 1) };
	t_ok(tu_first_overlap(spans, n) == TU_NONE, "no two live blocks overlap");
	t_null(hv_verify(), "heap consistent with all blocks live");

	for (size_t i = 0; i < nsizes; i++)
		os_free(p[i]);
	t_null(hv_verify(), "heap consistent after freeing them");
}

static void test_malloc_zero(void)
{
	enum { N = 300 };
	static void *z[N];
	struct tu_span spans[N + 2];
	size_t nulls = 0;
	/* Live neighbours of other sizes, so uniqueness is not only among
	   zero-sized blocks. */
	void *a = os_malloc(16), *b = os_malloc(2000);
	for (int i = 0; i < N; i++) {
		z[i] = os_malloc(0);
		if (!z[i])
			nulls++;
	}
	t_is(nulls, 0, "os_malloc(0) never returns NULL");
	size_t n = 0, misaligned = 0;
	for (int i = 0; i < N; i++) {
		if (!z[i])
			continue;
		if ((uintptr_t)z[i] % align)
			misaligned++;
		spans[n++] = (struct tu_span){ (uintptr_t)z[i], (uintptr_t)z[i] + 1 };
	}
	spans[n++] = (struct tu_span){ (uintptr_t)a, (uintptr_t)a + 16 };
	spans[n++] = (struct tu_span){ (uintptr_t)b, (uintptr_t)b + 2000 };
	t_ok(tu_first_overlap(spans, n) == TU_NONE,
	     "%d os_malloc(0) pointers are unique and distinct from other live blocks", N);
	t_is(misaligned, 0, "os_malloc(0) pointers are aligned");
	for (int i = 0; i < N; i++)
		os_free(z[i]);
	os_free(a);
	os_free(b);
	t_null(hv_verify(), "os_malloc(0) blocks free cleanly");
}

struct big {
	size_t size;
	const char *name;
};

static void test_enomem(void)
{
	const struct big bigs[] = {
		{ SIZE_MAX, "SIZE_MAX" },
		{ SIZE_MAX - 1, "SIZE_MAX - 1" },
		{ SIZE_MAX - 15, "SIZE_MAX - 15" },
		{ SIZE_MAX - 16, "SIZE_MAX - 16" },
		{ SIZE_MAX - 4095, "SIZE_MAX - 4095" },
		{ SIZE_MAX - 4096, "SIZE_MAX - 4096" },
		{ SIZE_MAX - 128 * KiB, "SIZE_MAX - 128 KiB" },
		{ SIZE_MAX / 2 + 1, "SIZE_MAX / 2 + 1" },
		{ (size_t)PTRDIFF_MAX + 1, "PTRDIFF_MAX + 1" },
		{ (size_t)PTRDIFF_MAX + 2, "PTRDIFF_MAX + 2" },
		{ (size_t)PTRDIFF_MAX + 4096, "PTRDIFF_MAX + 4096" },
		{ (size_t)PTRDIFF_MAX + 64 * MiB, "PTRDIFF_MAX + 64 MiB" },
		{ (size_t)PTRDIFF_MAX, "PTRDIFF_MAX" },
		{ (size_t)PTRDIFF_MAX - 16, "PTRDIFF_MAX - 16" },
		{ (size_t)PTRDIFF_MAX - 4096 - 16, "PTRDIFF_MAX - 4112" },
		{ (size_t)PTRDIFF_MAX - 64 * MiB, "PTRDIFF_MAX - 64 MiB" },
		{ (size_t)1 << 62, "2^62 (more than any address space)" },
		{ (size_t)1 << 56, "2^56 (more than any address space)" },
	};
	for (size_t i = 0; i < sizeof(bigs) / sizeof(bigs[0]); i++) {
		errno = EDOM;
		void *p = os_malloc(bigs[i].size);
		int e = errno;
		t_ok(p == NULL && e == ENOMEM, "os_malloc(%s) fails with ENOMEM (got %p, errno %d)",
		     bigs[i].name, p, e);
		if (p)
			os_free(p);
	}

	/* Still usable on every path. */
	void *s = os_malloc(100), *h = os_malloc(5000), *l = os_malloc(MiB);
	t_ok(s && h && l, "small, heap and mapped requests succeed after the failures");
	if (s && h && l) {
		memset(s, 1, 100);
		memset(h, 2, 5000);
		memset(l, 3, MiB);
	}
	os_free(s);
	os_free(h);
	os_free(l);
	t_null(hv_verify(), "heap consistent after the failures");
}

/* In a child whose address space is nearly full: the kernel refuses, the
   allocator says ENOMEM, and it carries on. */
static void refused_by_kernel(void *arg)
{
	(void)arg;
	if (!t_ok(tu_limit_address_space(64 * MiB), "RLIMIT_AS lowered to 64 MiB above current use"))
		return;
	errno = EDOM;
	void *p = os_malloc(1024 * MiB);
	int e = errno;
	t_ok(p == NULL && e == ENOMEM, "os_malloc(1 GiB) fails with ENOMEM (got %p, errno %d)", p, e);
	os_free(p);

	void *s = os_malloc(100), *h = os_malloc(5000), *l = os_malloc(200 * KiB);
	t_ok(s && h && l, "small, heap and mapped requests still succeed");
	if (s && h && l) {
		tu_fill(s, 0, 100, 1);
		tu_fill(h, 0, 5000, 2);
		tu_fill(l, 0, 200 * KiB, 3);
		t_ok(tu_check(s, 0, 100, 1) == TU_NONE && tu_check(h, 0, 5000, 2) == TU_NONE &&
		     tu_check(l, 0, 200 * KiB, 3) == TU_NONE, "and hold their data");
	}

	/* Exhaust the heap with blocks below the mmap threshold: it must
	   run out with ENOMEM, not crash, and recover once memory is freed. */
	if (tu_under_valgrind()) {
		/* Every address the allocator still finds, after giving back
		   what it holds, is one that valgrind needs for itself. */
		t_skip(5, "exhausting the address space starves valgrind");
		os_free(s);
		os_free(h);
		os_free(l);
		return;
	}
	enum { MAXB = 4096 };
	static void *b[MAXB];
	size_t n = 0, bs = 100 * KiB;
	errno = 0;
	while (n < MAXB && (b[n] = os_malloc(bs)) != NULL) {
		memset(b[n], 0x5a, bs);
		n++;
	}
	e = errno;
	t_ok(n < MAXB && e == ENOMEM, "heap exhausted after %zu blocks of 100 KiB, errno ENOMEM (%d)",
	     n, e);
	t_null(hv_verify(), "heap consistent when exhausted");
	size_t bad = 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char *)b[i])[0] != 0x5a || ((unsigned char *)b[i])[bs - 1] != 0x5a)
			bad++;
	t_is(bad, 0, "blocks handed out before exhaustion are intact");
	for (size_t i = 0; i < n; i++)
		os_free(b[i]);
	t_null(hv_verify(), "heap consistent after freeing them all");
	void *again = os_malloc(bs);
	t_ok(again != NULL, "a 100 KiB request succeeds again after the frees");
	os_free(again);
	os_free(s);
	os_free(h);
	os_free(l);
}

static void test_free_null(void)
{
	struct hv_block before[4096], after[4096];
	size_t nb = hv_blocks(before, 4096);
	size_t brk = hv_brk_bytes();
	errno = EDOM;
	os_free(NULL);
	t_is(errno, EDOM, "os_free(NULL) leaves errno alone");
	size_t na = hv_blocks(after, 4096);
	bool same = na == nb;
	/* Field by field: the structures' padding bytes are not compared. */
	for (size_t i = 0; same && i < nb && i < 4096; i++)
		same = before[i].payload == after[i].payload && before[i].size == after[i].size &&
		       before[i].is_free == after[i].is_free;
	t_ok(same && hv_brk_bytes() == brk, "os_free(NULL) changes nothing in the heap");
}

/* os_free on each of its paths, with errno set to a sentinel before. */
static void free_keeps_errno(void *arg)
{
	(void)arg;
	const int sentinel = 12345;
	int bad;

	void *p = os_malloc(100);
	errno = sentinel;
	os_free(p);
	t_is(errno, sentinel, "errno kept: small block into the thread cache");

	enum { NSMALL = 200 };
	static void *q[NSMALL];
	for (int i = 0; i < NSMALL; i++)
		q[i] = os_malloc(48);
	bad = 0;
	for (int i = 0; i < NSMALL; i++) {
		errno = sentinel + i;
		os_free(q[i]);
		if (errno != sentinel + i)
			bad++;
	}
	t_is(bad, 0, "errno kept: 200 frees of one size, overflowing the cache into the heap");

	p = os_malloc(5000);
	void *guard = os_malloc(5000);
	errno = sentinel;
	os_free(p);
	t_is(errno, sentinel, "errno kept: heap block");

	p = os_malloc(MiB);
	errno = sentinel;
	os_free(p);
	t_is(errno, sentinel, "errno kept: mapped block (kept in the mapping cache)");
	/* Without the cache of freed mappings, the free unmaps at once. */
	hv_map_cache_off();
	p = os_malloc(MiB);
	errno = sentinel;
	os_free(p);
	t_is(errno, sentinel, "errno kept: mapped block, unmapped");
	t_ok(!tu_page_mapped(p), "and the mapping is gone");

	/* An interior run that grows past the trim threshold is advised. */
	size_t bs = 60 * KiB;
	void *r[4];
	if (t_ok(tu_alloc_run(r, 4, bs), "four adjacent 60 KiB blocks")) {
		for (int i = 0; i < 3; i++)
			memset(r[i], i + 1, bs);
		os_free(r[0]);
		os_free(r[2]);
		long res_before = tu_resident_pages(r[1], bs);
		errno = sentinel;
		os_free(r[1]);
		t_is(errno, sentinel, "errno kept: merging into a large interior free run");
		long res_after = tu_resident_pages(r[1], bs);
		t_ok(res_after >= 0 && res_after < res_before,
		     "and that free released pages (%ld resident before, %ld after)", res_before,
		     res_after);
		os_free(r[3]);
	}

	/* Trimming the top of the heap. */
	void *t1 = os_malloc(120 * KiB), *t2 = os_malloc(120 * KiB), *t3 = os_malloc(120 * KiB);
	os_free(t1);
	os_free(t2);
	void *brk_before = sbrk(0);
	errno = sentinel;
	os_free(t3);
	t_is(errno, sentinel, "errno kept: free that trims the top of the heap");
	t_ok((uintptr_t)sbrk(0) < (uintptr_t)brk_before,
	     "and that free lowered the break (%p -> %p)", brk_before, sbrk(0));

	errno = 0;
	os_free(guard);
	t_is(errno, 0, "errno kept when it is 0");
}

/* A thread's first os_free of a small block makes its cache, which may
   need the heap to grow; with the break blocked that growth fails over to
   a mapping, and none of it may show in errno. */
static void *block_to_free;
static int errno_after_free;

static void *free_on_new_thread(void *arg)
{
	(void)arg;
	errno = 12345;
	os_free(block_to_free);
	errno_after_free = errno;
	return NULL;
}

static void free_keeps_errno_blocked(void *arg)
{
	(void)arg;
	block_to_free = os_malloc(100);
	size_t page = hv_page_size();
	uintptr_t at = ((uintptr_t)sbrk(0) + page - 1) / page * page;
	void *m = mmap((void *)at, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m != (void *)at || sbrk((intptr_t)page) != (void *)-1) {
		/* Only a setup this environment does not allow (valgrind, for
		   one, keeps the break away from the program's mappings). */
		t_skip(3, "no mapping could be placed to block the break here");
		return;
	}
	/* Use up every free block the new thread's cache could be made of. */
	size_t f;
	int fills = 0;
	while ((f = tu_largest_free()) >= 512 && fills++ < 100000) {
		void *q = os_malloc((f < 64 * KiB ? f : 64 * KiB) - 16);
		(void)q;
	}
	struct hv_segment s[256];
	size_t before = hv_segments(s, 256);
	pthread_t t;
	if (!t_ok(pthread_create(&t, NULL, free_on_new_thread, NULL) == 0, "a second thread"))
		return;
	pthread_join(t, NULL);
	/* (The heap grows for the thread's cache, which does not exist when
	   caches are off.) */
	if (hv_cache_max() == 0)
		t_skip(1, "no thread caches (OSMEM_CACHE_MAX=0), so no growth");
	else
		t_ok(hv_segments(s, 256) > before,
		     "its first os_free had to grow the heap (into a mapping)");
	t_is(errno_after_free, 12345, "errno kept: first free on a new thread, break blocked");
}

int main(void)
{
	/* Let the C library set up stdout (and its heap) before we start. */
	tap_diag("libosmem: os_malloc and os_free");
	make_sizes();
	test_alignment_and_usable_bytes();
	test_malloc_zero();
	test_enomem();
	test_free_null();
	tu_child("free keeps errno", 60, free_keeps_errno, NULL);
	tu_child("free keeps errno, break blocked", 60, free_keeps_errno_blocked, NULL);
	tu_child("kernel refuses", 60, refused_by_kernel, NULL);
	return tap_done();
}
