/*
 * t-aligned.c - the contract of the rest of the allocation interface:
 * os_posix_memalign, os_aligned_alloc, os_memalign, os_reallocarray and
 * os_malloc_usable_size.
 *
 *  - a bad alignment is refused with EINVAL and an impossible size with
 *    ENOMEM, leaving *memptr (posix_memalign) untouched;
 *  - every valid alignment from sizeof(void *) to 4 MiB is honoured for
 *    sizes from 0 to 2 MiB, on the heap or in a mapping as the size says,
 *    and the slack used to find the boundary is given back: no more than
 *    one alignment's worth of space is held (a heap block's lead becomes a
 *    free block, a mapping's lead and tail pages are unmapped);
 *  - aligned blocks are ordinary blocks: os_free, os_realloc and
 *    os_malloc_usable_size take them;
 *  - os_reallocarray refuses an overflowing product with ENOMEM and leaves
 *    the block alone, and otherwise acts as os_realloc;
 *  - os_malloc_usable_size is at least the size asked for, on every path
 *    (thread cache, heap, mapping, after a resize), and every usable byte
 *    may be written without touching a neighbour.
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
#include <stdio.h>
#include <string.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

/* Header and smallest chunk of a heap block (see src/chunk.h). */
#define HEADER ((size_t)16)
#define CHUNK_MIN (2 * HEADER)

static const size_t base_align = alignof(max_align_t);
static size_t page, mmap_at;

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

/* Hides a constant from the compiler, which would reject impossible sizes
   written out at a call. */
static size_t opaque(size_t x)
{
	volatile size_t v = x;
	return v;
}

/* ---- the used blocks of the heap -------------------------------------- */

#define MAX_BLOCKS 8192

struct snap {
	struct hv_block b[MAX_BLOCKS];
	size_t n;      /* all blocks */
	bool overflow; /* more than MAX_BLOCKS */
};

/* Every heap block, once the calling thread's cache has been given back:
   what is USED then is exactly what the program holds. */
static void take_snap(struct snap *s)
{
	hv_flush_cache();
	size_t n = hv_blocks(s->b, MAX_BLOCKS);
	s->overflow = n > MAX_BLOCKS;
	s->n = n > MAX_BLOCKS ? MAX_BLOCKS : n;
}

static const struct hv_block *snap_find(const struct snap *s, const void *payload)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->b[i].payload == payload)
			return &s->b[i];
	return NULL;
}

static size_t snap_used(const struct snap *s)
{
	size_t n = 0;
	for (size_t i = 0; i < s->n; i++)
		n += !s->b[i].is_free;
	return n;
}

static struct snap before, after;

/* Heap blocks whose lead (the space before the boundary) was seen given
   back as a free block of its own or merged into one. */
static size_t leads_seen;

/* ---- one aligned block ------------------------------------------------- */

static char problem[512];

#define FAIL(...) \
	do { \
		snprintf(problem, sizeof(problem), __VA_ARGS__); \
		return problem; \
	} while (0)

/* Checks a block just returned for (ALIGN, SIZE): placement, alignment,
   usable size, the space held, the heap around it.  BEFORE and MI were
   taken just before the call.  NULL when all is well. */
static const char *check_fresh(void *p, size_t align, size_t size, const struct os_mallinfo *mi)
{
	if (!p)
		FAIL("no block");
	if ((uintptr_t)p % align || (uintptr_t)p % base_align)
		FAIL("%p is not aligned", p);
	size_t usable = os_malloc_usable_size(p);
	if (usable < size)
		FAIL("usable size %zu", usable);

	struct hv_block hb;
	bool on_heap = hv_find(p, &hb);
	if (on_heap && size >= mmap_at)
		FAIL("on the heap, though at least the mmap threshold");
	if (!on_heap && size + max_size(align, base_align) < mmap_at)
		FAIL("not on the heap, though far below the mmap threshold");

	if (on_heap) {
		if (hb.is_free)
			FAIL("the heap says the block is free");
		if (hb.size - HEADER != usable)
			FAIL("usable size %zu, chunk size %zu", usable, hb.size);
		/* The heap rounds to 16 bytes and leaves tails too short to
		   stand alone; beyond that, any space kept is alignment slack. */
		if (usable - size >= max_size(align, base_align) + CHUNK_MIN)
			FAIL("%zu bytes kept for %zu asked", usable, size);

		/* The slack went back to the heap: the only new used block is
		   this one, and no block the program held moved or changed. */
		take_snap(&after);
		if (before.overflow || after.overflow)
			FAIL("more than %d heap blocks", MAX_BLOCKS);
		if (snap_used(&after) != snap_used(&before) + 1)
			FAIL("%zu used heap blocks before, %zu after", snap_used(&before),
			     snap_used(&after));
		for (size_t i = 0; i < before.n; i++) {
			if (before.b[i].is_free)
				continue;
			const struct hv_block *a = snap_find(&after, before.b[i].payload);
			if (!a || a->is_free || a->size != before.b[i].size)
				FAIL("used block %p changed", before.b[i].payload);
		}
		/* In particular the space just before it, when there is any,
		   is free, or was already a block of the program's. */
		for (size_t i = 0; i < after.n; i++) {
			const struct hv_block *pb = &after.b[i];
			if ((uintptr_t)pb->payload + pb->size != (uintptr_t)p)
				continue;
			if (!pb->is_free && !snap_find(&before, pb->payload))
				FAIL("the %zu bytes before it are held", pb->size);
			const struct hv_block *was = snap_find(&before, pb->payload);
			if (pb->is_free && (!was || was->size != pb->size))
				leads_seen++;
		}
	} else {
		struct os_mallinfo now = os_mallinfo();
		if (now.mapped_blocks != mi->mapped_blocks + 1)
			FAIL("%zu mapped blocks, was %zu", now.mapped_blocks, mi->mapped_blocks);
		size_t held = now.mapped_bytes - mi->mapped_bytes;
		/* A header before the payload and rounding to whole pages at
		   either end: less than two pages more than asked. */
		if (held < size || held - size >= 2 * page)
			FAIL("a mapping of %zu bytes for %zu", held, size);
		if (usable - size >= page)
			FAIL("usable size %zu in a mapping", usable);
	}
	const char *err = hv_verify();
	if (err)
		FAIL("heap: %s", err);
	return NULL;
}

/* After the checks: every usable byte is the program's, os_free takes the
   block back, and nothing stays held. */
static const char *check_free(void *p, size_t id)
{
	size_t usable = os_malloc_usable_size(p);
	tu_fill(p, 0, usable, id);
	if (tu_check(p, 0, usable, id) != TU_NONE)
		FAIL("usable bytes do not keep what was written");
	bool on_heap = hv_find(p, &(struct hv_block){ 0 });
	struct os_mallinfo mi = os_mallinfo();
	os_free(p);
	if (on_heap) {
		struct hv_block hb;
		hv_flush_cache();
		if (hv_find(p, &hb) && !hb.is_free)
			FAIL("still held after os_free");
	} else if (os_mallinfo().mapped_blocks != mi.mapped_blocks - 1) {
		FAIL("the mapping is still there after os_free");
	}
	const char *err = hv_verify();
	if (err)
		FAIL("heap after os_free: %s", err);
	return NULL;
}

/* os_realloc moves or resizes an aligned block like any other and keeps
   its contents. */
static const char *check_realloc(void *p, size_t size, size_t id)
{
	tu_fill(p, 0, size, id);
	size_t bigger = size * 2 + 1000;
	void *q = os_realloc(p, bigger);
	if (!q)
		FAIL("os_realloc to %zu failed", bigger);
	if (tu_check(q, 0, size, id) != TU_NONE)
		FAIL("contents lost growing to %zu", bigger);
	if (os_malloc_usable_size(q) < bigger)
		FAIL("usable size %zu after growing to %zu", os_malloc_usable_size(q), bigger);
	tu_fill(q, size, bigger, id);
	size_t smaller = size / 2 + 1;
	void *r = os_realloc(q, smaller);
	if (!r)
		FAIL("os_realloc to %zu failed", smaller);
	if (tu_check(r, 0, smaller, id) != TU_NONE)
		FAIL("contents lost shrinking to %zu", smaller);
	os_free(r);
	const char *err = hv_verify();
	if (err)
		FAIL("heap after os_realloc: %s", err);
	return NULL;
}

/* ---- the three entry points --------------------------------------------- */

enum api { POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN };
static const char *const api_name[] = { "os_posix_memalign", "os_aligned_alloc",
	                                "os_memalign" };

static void *call(enum api api, size_t align, size_t size)
{
	void *p = NULL;
	switch (api) {
	case POSIX_MEMALIGN:
		if (os_posix_memalign(&p, align, size) != 0)
			return NULL;
		return p;
	case ALIGNED_ALLOC:
		return os_aligned_alloc(align, size);
	case MEMALIGN:
		return os_memalign(align, size);
	}
	return NULL;
}

static const size_t sizes[] = { 0, 1, 100, 5000, 100000, 300000, 2 * MiB };

static void test_success(enum api api)
{
	size_t first = api == POSIX_MEMALIGN ? sizeof(void *) : 1;
	size_t id = 1000 * (size_t)(api + 1);
	for (size_t align = first; align <= 4 * MiB; align *= 2) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			size_t size = sizes[i];
			const char *err;
			id++;

			/* A live block just before the free space, of a size
			   beyond the thread cache, so that the space seldom
			   starts on the boundary and there is a lead to give
			   back. */
			void *spacer = os_malloc(hv_cache_max_payload() + 16 * (id % 9));
			take_snap(&before);
			struct os_mallinfo mi = os_mallinfo();
			void *p = call(api, align, size);
			err = check_fresh(p, align, size, &mi);
			if (!err)
				err = check_free(p, id);
			else if (p)
				os_free(p);
			os_free(spacer);

			if (!err) {
				p = call(api, align, size);
				err = p ? check_realloc(p, size, id) : "no second block";
			}
			ok(!err, "%s(%zu, %zu): aligned, usable, slack given back, freed, resized%s%s",
			   api_name[api], align, size, err ? ": " : "", err ? err : "");
		}
	}
}

/* Alignments that are not a power of two, or (for posix_memalign) not a
   multiple of sizeof(void *). */
static void test_einval(void)
{
	size_t bad[] = { 0, 3, 5, 6, 12, 24, 48, 100, 3 * KiB, SIZE_MAX, SIZE_MAX / 2 };
	size_t nbad = sizeof(bad) / sizeof(bad[0]);
	for (size_t i = 0; i < nbad; i++) {
		void *sentinel = &bad[i];
		void *p = sentinel;
		int r = os_posix_memalign(&p, bad[i], 64);
		ok(r == EINVAL && p == sentinel, "os_posix_memalign(%zu): EINVAL, *memptr untouched "
		   "(got %d)", bad[i], r);
	}
	/* Powers of two below sizeof(void *): valid for aligned_alloc, not
	   for posix_memalign. */
	for (size_t a = 1; a < sizeof(void *); a *= 2) {
		void *sentinel = &a;
		void *p = sentinel;
		int r = os_posix_memalign(&p, a, 64);
		ok(r == EINVAL && p == sentinel, "os_posix_memalign(%zu), below sizeof(void *): "
		   "EINVAL, *memptr untouched (got %d)", a, r);
	}
	for (size_t i = 0; i < nbad; i++) {
		for (int api = ALIGNED_ALLOC; api <= MEMALIGN; api++) {
			errno = 0;
			void *p = api == ALIGNED_ALLOC ? os_aligned_alloc(bad[i], 64)
			                               : os_memalign(bad[i], 64);
			int e = errno;
			ok(!p && e == EINVAL, "%s(%zu): NULL with EINVAL (got %p, errno %d)",
			   api_name[api], bad[i], p, e);
			os_free(p);
		}
	}
	/* The size does not matter when the alignment is wrong. */
	void *p = &p;
	int r = os_posix_memalign(&p, 24, 0);
	ok(r == EINVAL && p == (void *)&p, "os_posix_memalign(24, 0): EINVAL (got %d)", r);
	errno = 0;
	void *q = os_aligned_alloc(48, opaque(SIZE_MAX));
	ok(!q && errno == EINVAL, "os_aligned_alloc(48, SIZE_MAX): EINVAL, not ENOMEM");
}

/* Sizes no address space can hold, including ones where size + alignment
   would wrap around. */
static void test_enomem(void)
{
	const size_t aligns[] = { sizeof(void *), 16, 64, 4 * KiB, 64 * KiB, MiB, 4 * MiB,
		                  (size_t)1 << 40, SIZE_MAX / 2 + 1 };
	for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
		size_t a = aligns[i];
		const size_t huge[] = { SIZE_MAX, SIZE_MAX - a + 1, SIZE_MAX - 2 * a + 1,
			                (size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX,
			                (size_t)PTRDIFF_MAX - a, (size_t)PTRDIFF_MAX - 4 * KiB,
			                a == SIZE_MAX / 2 + 1 ? 1 : (size_t)PTRDIFF_MAX - 16 * MiB };
		size_t bad_posix = 0, bad_aligned = 0, bad_memalign = 0, untouched = 0;
		for (size_t j = 0; j < sizeof(huge) / sizeof(huge[0]); j++) {
			void *sentinel = &bad_posix;
			void *p = sentinel;
			int r = os_posix_memalign(&p, a, huge[j]);
			if (r != ENOMEM) {
				bad_posix++;
				tap_diag("os_posix_memalign(%zu, %zu) returned %d", a, huge[j], r);
			}
			if (p != sentinel) {
				untouched++;
				if (r == 0)
					os_free(p);
			}
			errno = 0;
			void *q = os_aligned_alloc(a, huge[j]);
			if (q || errno != ENOMEM) {
				bad_aligned++;
				tap_diag("os_aligned_alloc(%zu, %zu) returned %p, errno %d", a, huge[j],
				         q, errno);
				os_free(q);
			}
			errno = 0;
			q = os_memalign(a, huge[j]);
			if (q || errno != ENOMEM) {
				bad_memalign++;
				tap_diag("os_memalign(%zu, %zu) returned %p, errno %d", a, huge[j], q,
				         errno);
				os_free(q);
			}
		}
		ok(bad_posix == 0 && untouched == 0,
		   "os_posix_memalign(%zu, huge sizes): ENOMEM, *memptr untouched", a);
		ok(bad_aligned == 0, "os_aligned_alloc(%zu, huge sizes): NULL with ENOMEM", a);
		ok(bad_memalign == 0, "os_memalign(%zu, huge sizes): NULL with ENOMEM", a);
	}
	/* And everything still works. */
	void *p = NULL;
	int r = os_posix_memalign(&p, 4 * KiB, 10000);
	ok(r == 0 && p && (uintptr_t)p % (4 * KiB) == 0,
	   "os_posix_memalign works after the failures");
	os_free(p);
	ok(hv_verify() == NULL, "heap consistent after the failures");
}

/* Aligned blocks live among ordinary ones: none overlaps another, and
   freeing them in any order leaves a consistent heap. */
static void test_mixed(void)
{
	enum { N = 400 };
	static void *p[N];
	static size_t len[N];
	struct tu_rng rng;
	tu_rng_seed(&rng, tu_seed("OSMEM_TEST_SEED"));
	for (size_t i = 0; i < N; i++) {
		len[i] = tu_rng_below(&rng, 3000);
		if (i % 3 == 0)
			p[i] = os_malloc(len[i]);
		else
			p[i] = os_aligned_alloc((size_t)32 << tu_rng_below(&rng, 9), len[i]);
		if (p[i])
			tu_fill(p[i], 0, len[i], i + 1);
	}
	size_t missing = 0, damaged = 0;
	struct tu_span spans[N];
	for (size_t i = 0; i < N; i++) {
		if (!p[i]) {
			missing++;
			continue;
		}
		if (tu_check(p[i], 0, len[i], i + 1) != TU_NONE)
			damaged++;
		spans[i] = (struct tu_span){ (uintptr_t)p[i], (uintptr_t)p[i] + len[i] + 1 };
	}
	ok(missing == 0 && damaged == 0, "%d interleaved plain and aligned blocks keep their "
	   "contents (%zu missing, %zu damaged)", N, missing, damaged);
	ok(missing || tu_first_overlap(spans, N) == TU_NONE, "no two of them overlap");
	for (size_t i = 0; i < N; i++) {
		size_t j = (size_t)tu_rng_below(&rng, N - i) + i;
		void *t = p[i];
		p[i] = p[j];
		p[j] = t;
		os_free(p[i]);
	}
	ok(hv_verify() == NULL, "heap consistent after freeing them in random order");
}

/* ---- os_reallocarray ------------------------------------------------------ */

static void test_reallocarray(void)
{
	const struct {
		size_t nmemb, size;
		const char *name;
	} overflow[] = {
		{ SIZE_MAX, 2, "SIZE_MAX * 2" },
		{ 2, SIZE_MAX, "2 * SIZE_MAX" },
		{ SIZE_MAX / 2 + 1, 2, "(SIZE_MAX / 2 + 1) * 2" },
		{ (size_t)1 << (sizeof(size_t) * 4), (size_t)1 << (sizeof(size_t) * 4),
		  "2^(bits/2) * 2^(bits/2)" },
		{ SIZE_MAX / 3 + 1, 3, "(SIZE_MAX / 3 + 1) * 3" },
		{ (size_t)PTRDIFF_MAX, 1, "PTRDIFF_MAX * 1 (no overflow, too big)" },
		{ SIZE_MAX / 3, 3, "SIZE_MAX / 3 * 3 (no overflow, too big)" },
	};
	const size_t olds[] = { 100, 5000, 300 * KiB };
	for (size_t k = 0; k < sizeof(olds) / sizeof(olds[0]); k++) {
		size_t old = olds[k];
		void *p = os_malloc(old);
		if (!ok(p != NULL, "os_malloc(%zu) for os_reallocarray", old))
			continue;
		tu_fill(p, 0, old, 77 + k);
		for (size_t i = 0; i < sizeof(overflow) / sizeof(overflow[0]); i++) {
			errno = 0;
			void *q = os_reallocarray(p, overflow[i].nmemb, overflow[i].size);
			int e = errno;
			ok(!q && e == ENOMEM, "os_reallocarray(%zu-byte block, %s): NULL with ENOMEM "
			   "(got %p, errno %d)", old, overflow[i].name, q, e);
			if (q)
				p = q;
		}
		ok(tu_check(p, 0, old, 77 + k) == TU_NONE && os_malloc_usable_size(p) >= old,
		   "the %zu-byte block is untouched by the failures", old);
		/* Still a valid block: it can be resized and freed. */
		void *q = os_reallocarray(p, 2, old);
		ok(q && tu_check(q, 0, old, 77 + k) == TU_NONE,
		   "the %zu-byte block can still be resized after the failures", old);
		os_free(q ? q : p);
	}
	ok(hv_verify() == NULL, "heap consistent after the refused os_reallocarray calls");

	/* Growth one element at a time and by doubling, from the cache to the
	   heap to a mapping: the elements stay. */
	uint32_t *a = NULL;
	size_t n = 0, lost = 0;
	for (size_t want = 1; want <= 200000; want = want < 64 ? want + 1 : want * 2) {
		uint32_t *b = os_reallocarray(a, want, sizeof(*b));
		if (!b) {
			lost = SIZE_MAX;
			break;
		}
		a = b;
		for (size_t i = 0; i < n && !lost; i++)
			if (a[i] != (uint32_t)(i * 2654435761u))
				lost = i + 1;
		for (; n < want; n++)
			a[n] = (uint32_t)(n * 2654435761u);
	}
	ok(lost == 0, "os_reallocarray growth from 1 to %zu elements keeps them all", n);
	/* Shrinking keeps the prefix. */
	uint32_t *b = a ? os_reallocarray(a, 1000, sizeof(*b)) : NULL;
	lost = 0;
	for (size_t i = 0; b && i < 1000; i++)
		if (b[i] != (uint32_t)(i * 2654435761u))
			lost++;
	ok(b && lost == 0, "os_reallocarray shrinking to 1000 elements keeps them");
	os_free(b ? b : a);

	/* A NULL block: os_reallocarray allocates. */
	void *m = os_reallocarray(NULL, 10, 16);
	ok(m && os_malloc_usable_size(m) >= 160 && (uintptr_t)m % base_align == 0,
	   "os_reallocarray(NULL, 10, 16) allocates 160 bytes");
	if (m)
		memset(m, 0x5a, 160);
	os_free(m);
	void *big = os_reallocarray(NULL, 1000, 1000);
	ok(big && os_malloc_usable_size(big) >= 1000000,
	   "os_reallocarray(NULL, 1000, 1000) allocates a mapped block");
	if (big)
		memset(big, 0x5a, 1000000);
	os_free(big);
	void *z = os_reallocarray(NULL, 0, 16);
	ok(z != NULL, "os_reallocarray(NULL, 0, 16) returns a block, as os_malloc(0) does");
	os_free(z);
	errno = 0;
	void *o = os_reallocarray(NULL, opaque(SIZE_MAX), 2);
	ok(!o && errno == ENOMEM, "os_reallocarray(NULL, SIZE_MAX, 2): NULL with ENOMEM");

	/* A zero product frees, as os_realloc(p, 0) does. */
	void *f = os_malloc(MiB);
	struct os_mallinfo mi = os_mallinfo();
	void *g = f ? os_reallocarray(f, 0, 8) : f;
	ok(f && !g && os_mallinfo().mapped_blocks == mi.mapped_blocks - 1,
	   "os_reallocarray(p, 0, 8) releases the block and returns NULL");
	ok(hv_verify() == NULL, "heap consistent after os_reallocarray");
}

/* ---- os_malloc_usable_size ------------------------------------------------ */

static void test_usable_size(void)
{
	ok(os_malloc_usable_size(NULL) == 0, "os_malloc_usable_size(NULL) is 0");

	static size_t want[400];
	size_t nwant = 0;
	for (size_t n = 0; n <= 80; n++)
		want[nwant++] = n;
	for (size_t p2 = 128; p2 <= MiB; p2 *= 2)
		for (size_t d = 0; d < 5; d++)
			want[nwant++] = p2 - 17 + d * 8 + (d > 2);
	size_t cmax = hv_cache_max_payload();
	for (size_t d = 0; d < 3; d++) {
		want[nwant++] = cmax - 1 + d;
		want[nwant++] = mmap_at - 1 + d;
		want[nwant++] = mmap_at - HEADER - 1 + d;
	}

	size_t short_fresh = 0, short_reused = 0, from_cache = 0, heap = 0, mapped = 0;
	size_t wrong_heap = 0, wrong_map = 0, damaged = 0;
	for (size_t i = 0; i < nwant; i++) {
		size_t n = want[i];
		void *p = os_malloc(n);
		if (!p) {
			short_fresh++;
			continue;
		}
		size_t u = os_malloc_usable_size(p);
		if (u < n) {
			short_fresh++;
			tap_diag("os_malloc(%zu): usable size %zu", n, u);
		}
		struct hv_block hb;
		if (hv_find(p, &hb)) {
			heap++;
			if (hb.size - HEADER != u)
				wrong_heap++;
		} else {
			/* A mapping may be one reused from the cache of freed
			   ones, larger than asked; either way the usable bytes
			   run to its last page's end. */
			mapped++;
			if (((uintptr_t)p + u) % page)
				wrong_map++;
		}
		tu_fill(p, 0, u, i);
		if (tu_check(p, 0, u, i) != TU_NONE)
			damaged++;
		os_free(p);

		/* The same size again: small ones come back from the thread
		   cache, and must hold as much. */
		struct os_mallinfo mi = os_mallinfo();
		void *q = os_malloc(n);
		if (!q) {
			short_reused++;
			continue;
		}
		if (os_mallinfo().cached_blocks + 1 == mi.cached_blocks)
			from_cache++;
		u = os_malloc_usable_size(q);
		if (u < n) {
			short_reused++;
			tap_diag("os_malloc(%zu) again: usable size %zu", n, u);
		}
		tu_fill(q, 0, u, i);
		os_free(q);
	}
	ok(short_fresh == 0, "os_malloc_usable_size >= size for %zu sizes from 0 to 1 MiB", nwant);
	ok(short_reused == 0, "... and for the same sizes asked again (%zu from the thread cache)",
	   from_cache);
	if (hv_cache_max() == 0)
		tap_skip(1, "no thread caches (OSMEM_CACHE_MAX=0)");
	else
		ok(from_cache > 0, "some of those came from the thread cache");
	ok(heap > 0 && mapped > 0, "the sizes cover the heap (%zu) and mappings (%zu)", heap,
	   mapped);
	ok(wrong_heap == 0, "on the heap, the usable size is the chunk less its header");
	ok(wrong_map == 0, "in a mapping, the usable size runs to the end of the mapping");
	ok(damaged == 0, "every usable byte keeps what was written");

	/* Through os_realloc, between the cache, the heap and a mapping. */
	const size_t steps[] = { 100, 5000, 10, 2000, 600 * KiB, 40, 3 * MiB, 200 * KiB, 1 };
	void *p = NULL;
	size_t bad = 0, prev = 0;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		void *q = os_realloc(p, steps[i]);
		if (!q) {
			bad++;
			break;
		}
		p = q;
		size_t keep = prev < steps[i] ? prev : steps[i];
		size_t u = os_malloc_usable_size(p);
		if (u < steps[i] || tu_check(p, 0, keep, 4242) != TU_NONE) {
			bad++;
			tap_diag("after os_realloc to %zu: usable size %zu", steps[i], u);
		}
		tu_fill(p, 0, u, 4242);
		prev = u;
	}
	ok(bad == 0, "os_malloc_usable_size stays right through os_realloc, and all usable "
	   "bytes are kept");
	os_free(p);
}

/* Many adjacent blocks of every kind, each written over its whole usable
   size: no header, free-list link or neighbour is touched. */
static void usable_neighbours(void *arg)
{
	(void)arg;
	enum { N = 600, ROUNDS = 4 };
	static void *p[N];
	static size_t use[N], tag[N];
	struct tu_rng rng;
	tu_rng_seed(&rng, tu_seed("OSMEM_TEST_SEED"));
	size_t next = 1, missing = 0;

	for (int round = 0; round < ROUNDS; round++) {
		for (size_t i = 0; i < N; i++) {
			if (p[i])
				continue;
			uint64_t kind = tu_rng_below(&rng, 20);
			size_t n = kind < 12   ? (size_t)tu_rng_below(&rng, 1100)
			           : kind < 17 ? (size_t)tu_rng_below(&rng, 20000)
			           : kind < 19 ? 0
			                       : 130 * KiB + (size_t)tu_rng_below(&rng, 100000);
			if (i % 7 == 3)
				p[i] = os_aligned_alloc((size_t)32 << tu_rng_below(&rng, 8), n);
			else if (i % 11 == 5)
				p[i] = os_calloc(1, n);
			else
				p[i] = os_malloc(n);
			if (!p[i]) {
				missing++;
				continue;
			}
			use[i] = os_malloc_usable_size(p[i]);
			tag[i] = next++;
			if (use[i] < n)
				missing++;
			tu_fill(p[i], 0, use[i], tag[i]);
		}
		size_t damaged = 0;
		for (size_t i = 0; i < N; i++)
			if (p[i] && tu_check(p[i], 0, use[i], tag[i]) != TU_NONE)
				damaged++;
		t_ok(missing == 0 && damaged == 0, "round %d: %d blocks filled to their usable "
		     "size keep their contents (%zu damaged)", round, N, damaged);
		t_ok(os_heap_check() == 0, "round %d: os_heap_check passes with every usable byte "
		     "written", round);
		t_null(hv_verify(), "heap walk");
		/* Free a random half, so the next round fills the gaps. */
		for (size_t i = 0; i < N; i++) {
			if (p[i] && tu_rng_below(&rng, 2)) {
				os_free(p[i]);
				p[i] = NULL;
			}
		}
		t_ok(os_heap_check() == 0, "round %d: os_heap_check passes after freeing half",
		     round);
	}
	for (size_t i = 0; i < N; i++)
		os_free(p[i]);
	t_ok(os_heap_check() == 0, "os_heap_check passes once all are freed");
}

int main(void)
{
	page = hv_page_size();
	mmap_at = hv_mmap_threshold();
	tap_diag("page %zu, mmap threshold %zu, alignment %zu", page, mmap_at, base_align);
	/* The thread cache is itself a heap block, made on the first small
	   request; make it now so that it is not taken for slack later. */
	os_free(os_malloc(1));

	test_einval();
	test_enomem();
	test_success(POSIX_MEMALIGN);
	test_success(ALIGNED_ALLOC);
	test_success(MEMALIGN);
	ok(leads_seen >= 50, "the space before an aligned heap block was given back in %zu cases",
	   leads_seen);
	test_mixed();
	test_reallocarray();
	test_usable_size();
	tu_child("usable bytes", 60, usable_neighbours, NULL);
	return tap_done();
}
