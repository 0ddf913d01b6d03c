/*
 * t-control.c - os_malloc_trim gives memory back now, and os_mallopt
 * changes what the allocator does next.
 *
 * Each case runs in a child of its own.  The first ones run before this
 * program has allocated anything with libosmem, so that the settings that
 * may only change before the first allocation can.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include "heapview.h"
#include "tap.h"
#include "tutil.h"

#include <string.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

/* t_is evaluates its first argument twice: calls go through these. */
static void opt_is(int param, int value, int want, const char *name)
{
	int got = os_mallopt(param, value);
	t_is(got, want, name);
}

/* ---- settings that shape arenas and caches, before any allocation ---- */

static void early_settings(void *arg)
{
	(void)arg;
	opt_is(OSMEM_M_CACHE_MAX, 0, 1, "OSMEM_M_CACHE_MAX 0 before the first allocation");
	opt_is(OSMEM_M_ARENAS, 1, 1, "OSMEM_M_ARENAS 1 before the first allocation");
	opt_is(OSMEM_M_MMAP_THRESHOLD, 512, 1,
	       "OSMEM_M_MMAP_THRESHOLD below the cached sizes, before the first allocation");
	opt_is(OSMEM_M_MMAP_THRESHOLD, (int)(128 * KiB), 1, "and back");

	/* With no caching, a freed block merges with its free neighbour at
	   once: the textbook allocator. */
	char *a = os_malloc(64), *b = os_malloc(64), *guard = os_malloc(64);
	os_free(a);
	os_free(b);
	struct hv_block blk = { 0 };
	bool found = hv_find(a, &blk);
	t_ok(found && blk.is_free && blk.size >= 2 * 80,
	     "with OSMEM_M_CACHE_MAX 0, two freed neighbours are one free block at once (%zu bytes)",
	     blk.size);
	t_is(os_mallinfo().cached_blocks, 0, "and no block is cached");
	os_free(guard);

	opt_is(OSMEM_M_CACHE_MAX, 1024, 0, "OSMEM_M_CACHE_MAX refused after the first allocation");
	opt_is(OSMEM_M_ARENAS, 2, 0, "OSMEM_M_ARENAS refused after the first allocation");
	opt_is(OSMEM_M_CHECK, 2, 0, "OSMEM_M_CHECK refused after the first allocation");
	opt_is(OSMEM_M_MMAP_THRESHOLD, 512, 0, "OSMEM_M_MMAP_THRESHOLD below the cached sizes refused after the first allocation");
}

/* ---- settings that take effect at any time ------------------------------ */

static void runtime_settings(void *arg)
{
	(void)arg;
	os_free(os_malloc(100)); /* the first allocation is behind us */
	struct hv_block blk;

	opt_is(12345, 1, 0, "an unknown parameter is refused");
	opt_is(OSMEM_M_TRIM_THRESHOLD, -1, 0, "a negative value is refused");
	opt_is(OSMEM_M_CHECK, 3, 0, "a check level above 2 is refused");
	opt_is(OSMEM_M_MMAP_THRESHOLD, 64 << 20, 0, "a threshold above 32 MiB is refused");

	opt_is(OSMEM_M_MMAP_THRESHOLD, (int)MiB, 1, "the mmap threshold raised to 1 MiB");
	void *p = os_malloc(512 * KiB);
	t_ok(p && hv_find(p, &blk), "a block of 512 KiB then comes from the heap");
	os_free(p);
	opt_is(OSMEM_M_MMAP_THRESHOLD, (int)(64 * KiB), 1, "and lowered to 64 KiB");
	p = os_malloc(100 * KiB);
	t_ok(p && !hv_find(p, &blk), "a block of 100 KiB then gets a mapping of its own");
	os_free(p);

	opt_is(OSMEM_M_MAP_CACHE, (int)(64 * MiB), 1, "the map cache set to 64 MiB");
	os_free(os_malloc(MiB));
	t_ok(os_mallinfo().mapped_cache_bytes >= MiB, "a freed 1 MiB mapping is kept");
	opt_is(OSMEM_M_MAP_CACHE, 0, 1, "the map cache set to 0");
	t_is(os_mallinfo().mapped_cache_bytes, 0, "what it kept is unmapped at once");
	os_free(os_malloc(MiB));
	t_is(os_mallinfo().mapped_cache_bytes, 0, "and a freed mapping is no longer kept");

	opt_is(OSMEM_M_TOP_PAD, 0, 1, "the top pad set to 0");
	opt_is(OSMEM_M_MMAP_THRESHOLD, (int)(128 * KiB), 1, "the mmap threshold set back to 128 KiB");
	opt_is(OSMEM_M_TRIM_THRESHOLD, (int)(64 * MiB), 1, "the trim threshold set to 64 MiB");
	size_t heap0 = hv_brk_bytes();
	void *big[40];
	for (int i = 0; i < 40; i++)
		big[i] = os_malloc(100 * KiB - 64);
	for (int i = 40; i--;)
		os_free(big[i]);
	t_ok(hv_brk_bytes() >= heap0 + 3 * MiB,
	     "with a trim threshold of 64 MiB, 4 MiB freed at the top stay (%zu -> %zu bytes)", heap0,
	     hv_brk_bytes());
	opt_is(OSMEM_M_TRIM_THRESHOLD, (int)(128 * KiB), 1, "the trim threshold set back");
	void *q = os_malloc(100 * KiB - 64);
	os_free(q);
	t_ok(hv_brk_bytes() < heap0 + MiB, "and the next free at the top trims the heap (%zu bytes)",
	     hv_brk_bytes());
}

/* ---- os_malloc_trim ------------------------------------------------------ */

/* Free runs below the trim threshold keep their pages; os_malloc_trim
   gives them back. */
static void trim_free_runs(void *arg)
{
	(void)arg;
	enum { N = 2000 };
	static char *v[N];
	size_t size = 20000;
	for (int i = 0; i < N; i++) {
		v[i] = os_malloc(size);
		if (v[i])
			memset(v[i], 0x5a, size);
	}
	for (int i = 0; i < N; i += 2)
		os_free(v[i]);
	size_t before = tu_rss_bytes();
	int r = os_malloc_trim(0);
	size_t after = tu_rss_bytes();
	t_is(r, 1, "os_malloc_trim(0) says memory was released");
	t_ok(after + 10 * MiB <= before,
	     "resident memory went down by more than 10 MiB of the 20 MiB in free runs (%zu -> %zu KiB)",
	     before / KiB, after / KiB);
	size_t bad = 0;
	for (int i = 1; i < N; i += 2)
		if (v[i][0] != 0x5a || v[i][size - 1] != 0x5a)
			bad++;
	t_is(bad, 0, "the blocks in use kept their contents");
	t_null(hv_verify(), "the heap is consistent");
	for (int i = 1; i < N; i += 2)
		os_free(v[i]);
}

/* What the caches and the map cache hold, and the heap top beyond PAD. */
static void trim_everything_held(void *arg)
{
	(void)arg;
	void *small[100];
	for (int i = 0; i < 100; i++)
		small[i] = os_malloc(48);
	for (int i = 0; i < 100; i++)
		os_free(small[i]);
	os_free(os_malloc(2 * MiB));
	struct os_mallinfo mi = os_mallinfo();
	t_ok((mi.cached_blocks > 0 || hv_cache_max() == 0) && mi.mapped_cache_bytes > 0,
	     "before: %zu blocks cached, %zu bytes of freed mappings kept", mi.cached_blocks,
	     mi.mapped_cache_bytes);
	/* A heap top just below the trim threshold: kept by the automatic
	   trim. */
	void *top = os_malloc(120 * KiB);
	os_free(top);
	size_t heap = hv_brk_bytes();
	int r = os_malloc_trim(0);
	t_is(r, 1, "os_malloc_trim(0) says memory was released");
	mi = os_mallinfo();
	t_is(mi.cached_blocks, 0, "the calling thread's cache is empty");
	t_is(mi.mapped_cache_bytes, 0, "no freed mapping is kept");
	t_ok(hv_brk_bytes() + 64 * KiB <= heap, "the heap top went back (%zu -> %zu bytes)", heap,
	     hv_brk_bytes());
	t_null(hv_verify(), "the heap is consistent");

	/* With a pad, that much stays at the top. */
	top = os_malloc(120 * KiB);
	os_free(top);
	heap = hv_brk_bytes();
	os_malloc_trim(100 * KiB);
	t_ok(hv_brk_bytes() + 64 * KiB > heap && hv_brk_bytes() <= heap,
	     "os_malloc_trim(100 KiB) keeps 100 KiB at the top (%zu -> %zu bytes)", heap,
	     hv_brk_bytes());
}

int main(void)
{
	/* First, before this program has allocated anything. */
	tu_child("early settings", 60, early_settings, NULL);
	tu_child("run-time settings", 60, runtime_settings, NULL);
	tu_child("trim free runs", 60, trim_free_runs, NULL);
	tu_child("trim what is held", 60, trim_everything_held, NULL);
	return tap_done();
}
