/*
 * t-mapcache.c - the cache of freed mappings, kept as free extents.
 *
 *  - a large block freed stays mapped, and a smaller one asked for next is
 *    the head of that extent, with no system call; the rest of the extent
 *    serves the request after that;
 *  - freed blocks merge with the cached extents on either side;
 *  - the mapping freed last is taken before a better fit, once;
 *  - os_realloc of a mapped block shrinks into the cache and grows back
 *    out of it in place, with no system call;
 *  - the cached bytes never exceed OSMEM_MAP_CACHE, nor the extents their
 *    count; a block larger than the limit is unmapped at once;
 *  - past the limit, the pages at an extent's end are given back and its
 *    range stays mapped and cached, cold: a later request takes it with
 *    no system call; cold bytes are bounded by the limit too;
 *  - a lifetime after os_mallinfo (or a large request that maps) has seen
 *    a cached byte, the next of them gives it back to the kernel; frees
 *    and reuses of cached memory read no clock;
 *  - os_calloc memory is zero even when the cache holds dirty pages;
 *  - the mapping of an over-aligned block is cached whole and reused.
 *
 * Each scenario runs in a child, starting with an empty cache.  Lifetimes
 * are set through the test view: an hour where reuse is asserted, so that
 * a slow machine cannot make the test fail, and a millisecond where
 * expiry is.
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
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Every clock reading of the process comes here, the library's included,
   so that the test can count them. */
static unsigned long clock_reads;

int clock_gettime(clockid_t id, struct timespec *ts)
{
	__atomic_add_fetch(&clock_reads, 1, __ATOMIC_RELAXED);
	return (int)syscall(SYS_clock_gettime, id, ts);
}

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
#define HDR ((size_t)16)
#define HOUR_NS (3600ll * 1000000000ll)

static size_t map_len(size_t n)
{
	size_t page = hv_page_size();
	return (n + HDR + page - 1) / page * page;
}

static size_t cached(void) { return os_mallinfo().mapped_cache_bytes; }

static uintptr_t base_of(const void *p) { return (uintptr_t)p - HDR; }

static bool no_calls_since(struct hv_map_calls c0)
{
	struct hv_map_calls c = hv_map_calls();
	return c.map == c0.map && c.unmap == c0.unmap && c.remap == c0.remap;
}

/* The cached bytes whose pages were given back, from the extents. */
static size_t cold_bytes(void)
{
	struct hv_extent e[16];
	size_t n = hv_map_cache_extents(e, 16), sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += e[i].cold;
	return sum;
}

/* An empty cache that keeps what it gets, and a registry already made. */
static void start(long long lifetime_ns)
{
	os_free(os_malloc(256 * KiB));
	hv_map_cache_empty();
	hv_map_cache_lifetime(lifetime_ns);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void reuse_split_merge(void *arg)
{
	(void)arg;
	start(HOUR_NS);
	size_t whole = map_len(4 * MiB), head = map_len(1 * MiB), mid = map_len(2 * MiB);
	char *p = os_malloc(4 * MiB);
	uintptr_t base = base_of(p);
	os_free(p);
	t_is(cached(), whole, "a freed 4 MiB block's whole mapping is cached");

	struct hv_map_calls c0 = hv_map_calls();
	char *q = os_malloc(1 * MiB);
	t_ok(q == p, "a 1 MiB block is the head of the cached extent (%p, was %p)", (void *)q,
	     (void *)p);
	t_ok(no_calls_since(c0), "taking it made no mmap, munmap or mremap");
	t_is(os_malloc_usable_size(q), head - HDR, "it has the usable bytes of its own pages");
	struct hv_extent e[4];
	size_t n = hv_map_cache_extents(e, 4);
	t_ok(n == 1 && e[0].base == base + head && e[0].len == whole - head,
	     "the rest stays cached as its own extent (%zu extents)", n);
	t_is(cached(), whole - head, "the cached bytes are the rest");

	char *r = os_malloc(2 * MiB);
	t_ok(base_of(r) == base + head, "the next block is the head of the rest");
	t_ok(no_calls_since(c0), "again with no system call");
	memset(q, 1, 1 * MiB);
	memset(r, 2, 2 * MiB);
	t_is(tu_nonzero(q, 0), TU_NONE, "(the blocks are usable)");

	os_free(q);
	n = hv_map_cache_extents(e, 4);
	t_ok(n == 2 && e[0].base == base && e[0].len == head &&
	     e[1].base == base + head + mid && e[1].len == whole - head - mid,
	     "freeing the first leaves two extents, around the live block (%zu)", n);
	os_free(r);
	n = hv_map_cache_extents(e, 4);
	t_ok(n == 1 && e[0].base == base && e[0].len == whole,
	     "freeing the middle merges all three into the whole mapping again (%zu)", n);
	t_is(cached(), whole, "the cached bytes are the whole mapping");
	t_ok(no_calls_since(c0), "and all of it without a system call");

	/* A request larger than anything cached grows the extent: its pages
	   stay, and nothing is left cached to be given back later. */
	c0 = hv_map_calls();
	char *big = os_malloc(6 * MiB);
	struct hv_map_calls c1 = hv_map_calls();
	t_ok(big && c1.map == c0.map && c1.remap == c0.remap + 1,
	     "a larger request grows the cached extent with one mremap");
	t_is(cached(), 0, "which leaves nothing cached");
	os_free(big);
	t_is(cached(), map_len(6 * MiB), "its mapping is cached when it is freed");
}

/* The mapping freed last serves the next request that it holds, though a
   smaller extent would fit better: its first pages are the likeliest to
   be in memory.  Once it has been carved from, the best fit is back.
   The blocks are cut from one cached mapping, so that where the kernel
   puts mappings (a sanitizer's runtime puts them elsewhere) does not
   decide which of them lie next to each other. */
static void freed_last_first(void *arg)
{
	(void)arg;
	start(HOUR_NS);
	os_free(os_malloc(12 * MiB));
	/* A, a live block, B, a live block, and the rest of the mapping:
	   the freed ones cannot merge. */
	char *a = os_malloc(6 * MiB), *s1 = os_malloc(1 * MiB);
	char *b = os_malloc(3 * MiB), *s2 = os_malloc(1 * MiB);
	t_ok(base_of(s1) == base_of(a) + map_len(6 * MiB) &&
	         base_of(b) == base_of(s1) + map_len(1 * MiB) &&
	         base_of(s2) == base_of(b) + map_len(3 * MiB),
	     "four blocks cut one after the other from a cached mapping");
	os_free(b);
	os_free(a);
	t_is(hv_map_cache_extents(NULL, 0), 3, "three extents cached, apart");
	struct hv_map_calls c0 = hv_map_calls();
	char *q = os_malloc(2 * MiB);
	t_ok(q == a, "a 2 MiB block is the head of the mapping freed last (%p; a %p, b %p)",
	     (void *)q, (void *)a, (void *)b);
	char *r = os_malloc(2 * MiB);
	t_ok(r == b, "the next is the best fit again: the 3 MiB extent (%p)", (void *)r);
	t_ok(no_calls_since(c0), "both without a system call");
	os_free(q);
	os_free(r);
	os_free(s1);
	os_free(s2);
}

static void realloc_in_place(void *arg)
{
	(void)arg;
	start(HOUR_NS);
	char *p = os_malloc(4 * MiB);
	tu_fill(p, 0, 4 * MiB, 7);
	struct hv_map_calls c0 = hv_map_calls();
	char *q = os_realloc(p, 1 * MiB);
	t_ok(q == p, "shrinking a mapped block keeps it where it is");
	t_ok(no_calls_since(c0), "with no system call");
	t_is(cached(), map_len(4 * MiB) - map_len(1 * MiB), "its tail pages are cached");
	t_is(os_malloc_usable_size(q), map_len(1 * MiB) - HDR, "the block has its new size");
	q = os_realloc(p, 3 * MiB);
	t_ok(q == p, "growing it back takes the cached pages right after it");
	t_ok(no_calls_since(c0), "again with no system call");
	t_is(cached(), map_len(4 * MiB) - map_len(3 * MiB), "what it did not need stays cached");
	t_is(tu_check(q, 0, 1 * MiB, 7), TU_NONE, "the bytes it kept are intact");
	os_free(q);
	t_is(cached(), map_len(4 * MiB), "freed, all of it is one extent again");
}

static void bound(void *arg)
{
	(void)arg;
	start(HOUR_NS);
	size_t limit = hv_map_cache_limit();
	t_ok(limit == 52 * MiB, "the default limit is 52 MiB (%zu)", limit);

	char *a = os_malloc(40 * MiB), *b = os_malloc(40 * MiB);
	os_free(a);
	t_is(cached(), map_len(40 * MiB), "one 40 MiB block fits");
	os_free(b);
	t_is(cached(), limit, "a second is cut down to the limit");
	t_is(cold_bytes(), 2 * map_len(40 * MiB) - limit, "the rest of it is kept cold");

	char *huge = os_malloc(limit + 1 * MiB);
	struct hv_map_calls c1 = hv_map_calls();
	os_free(huge);
	struct hv_map_calls c2 = hv_map_calls();
	t_ok(c2.unmap == c1.unmap + 1 && !tu_page_mapped(huge),
	     "a block larger than the limit is unmapped as soon as it is freed");
	t_ok(cached() <= limit, "the cache holds no more than the limit (%zu)", cached());

	/* Many blocks freed apart from each other: never more extents than
	   the cache has room for, never more bytes than the limit. */
	hv_map_cache_empty();
	enum { N = 64 };
	void *p[N];
	for (int i = 0; i < N; i++)
		p[i] = os_malloc(256 * KiB);
	size_t most = 0;
	for (int i = 0; i < N; i += 2) {
		os_free(p[i]);
		size_t n = hv_map_cache_extents(NULL, 0);
		if (n > most)
			most = n;
	}
	t_ok(most <= 16, "at most 16 extents are cached (saw %zu)", most);
	for (int i = 1; i < N; i += 2)
		os_free(p[i]);
	t_ok(cached() <= limit, "the bytes stay within the limit");
}

/* Past the limit, pages go back but their range stays cached, cold: a
   later block takes it with no system call, and gets pages the kernel
   zeroed where it was cold. */
static void cold_kept(void *arg)
{
	(void)arg;
	start(HOUR_NS);
	size_t limit = hv_map_cache_limit(), page = hv_page_size();
	/* The larger block is freed first, so that it is the one cut, and the
	   only extent that holds a block of its length if the two are not
	   next to each other. */
	size_t alen = limit / 2 + 8 * MiB, blen = limit / 2;
	char *a = os_malloc(alen), *b = os_malloc(blen);
	memset(a, 1, alen);
	memset(b, 2, blen);
	os_free(a);
	os_free(b);
	struct hv_extent e[4];
	size_t n = hv_map_cache_extents(e, 4), cold = 0;
	t_is(cached(), limit, "two freed blocks of more than the limit: the limit is cached");
	for (size_t i = 0; i < n; i++)
		cold += e[i].cold;
	t_is(cold, map_len(alen) + map_len(blen) - limit, "the rest is kept, cold");
	size_t i = 0;
	while (i < n && !e[i].cold)
		i++;
	char *cut = i < n ? (char *)(e[i].base + e[i].len - e[i].cold) : NULL;
	t_ok(cut && tu_page_mapped(cut) && tu_page_mapped(cut + e[i].cold - page),
	     "its range is still mapped");
	t_is(cut ? tu_resident_pages(cut, e[i].cold) : -1, 0, "with none of its pages in memory");

	struct hv_map_calls c0 = hv_map_calls();
	char *p = os_malloc(e[i].len - HDR);
	t_ok(p && base_of(p) == e[i].base, "a block the size of that extent takes it (%p)", (void *)p);
	t_ok(no_calls_since(c0), "with no mmap, munmap or mremap");
	t_is(p ? tu_nonzero(cut, e[i].cold) : 0, TU_NONE, "its cold pages read zero");
	os_free(p);
}

/* Random sizes and lifetimes of blocks; after every step the cache must
   be consistent: within its limit, its extents apart from each other and
   from every live block, and their lengths summing to the cached bytes. */
static void invariants(void *arg)
{
	(void)arg;
	start(HOUR_NS);
	struct tu_rng rng;
	tu_rng_seed(&rng, tu_seed("OSMEM_TEST_SEED"));
	enum { LIVE = 6, STEPS = 3000, MAXEXT = 64 };
	char *live[LIVE] = { 0 };
	size_t len[LIVE] = { 0 };
	/* A limit below what the live blocks span, so that the cache often
	   runs over it and keeps cold ends. */
	t_ok(os_mallopt(OSMEM_M_MAP_CACHE, (int)(12 * MiB)) == 1, "the limit set to 12 MiB");
	size_t limit = hv_map_cache_limit(), bad = 0, over = 0, sum_wrong = 0, reused = 0;
	size_t cold_over = 0, cold_resident = 0, cold_steps = 0;
	for (int step = 0; step < STEPS; step++) {
		int k = (int)tu_rng_below(&rng, LIVE);
		if (live[k]) {
			if (tu_check(live[k], 0, len[k], (uint64_t)k) != TU_NONE)
				bad++;
			if (tu_rng_below(&rng, 4) == 0) {
				size_t n = 128 * KiB + tu_rng_below(&rng, 6 * MiB);
				char *q = os_realloc(live[k], n);
				if (q) {
					live[k] = q;
					len[k] = len[k] < n ? len[k] : n;
				}
			} else {
				os_free(live[k]);
				live[k] = NULL;
			}
		} else {
			size_t n = 128 * KiB + tu_rng_below(&rng, 6 * MiB);
			struct hv_map_calls c0 = hv_map_calls();
			live[k] = os_malloc(n);
			if (!live[k])
				bad++;
			else if (no_calls_since(c0))
				reused++;
			len[k] = n < 4096 ? n : 4096;
			if (live[k])
				tu_fill(live[k], 0, len[k], (uint64_t)k);
		}
		struct hv_extent e[MAXEXT];
		size_t n = hv_map_cache_extents(e, MAXEXT), sum = 0, cold = 0;
		if (cached() > limit)
			over++;
		struct tu_span s[MAXEXT + LIVE];
		size_t ns = 0;
		for (size_t i = 0; i < n && i < MAXEXT; i++) {
			if (e[i].cold > e[i].len)
				bad++;
			/* A cold end has no page in memory. */
			else if (e[i].cold &&
			         tu_resident_pages((void *)(e[i].base + e[i].len - e[i].cold), e[i].cold))
				cold_resident++;
			sum += e[i].len - e[i].cold;
			cold += e[i].cold;
			/* One byte wider, so that adjacent extents count as
			   overlapping: they should have merged. */
			s[ns++] = (struct tu_span){ e[i].base, e[i].base + e[i].len + 1 };
			if (i && e[i - 1].base + e[i - 1].len >= e[i].base)
				bad++;
		}
		for (int i = 0; i < LIVE; i++)
			if (live[i])
				s[ns++] = (struct tu_span){ base_of(live[i]),
				                            base_of(live[i]) + os_malloc_usable_size(live[i]) + HDR };
		if (sum != cached())
			sum_wrong++;
		if (cold > limit)
			cold_over++;
		if (cold)
			cold_steps++;
		struct tu_span ext_only[MAXEXT];
		memcpy(ext_only, s, n * sizeof(s[0]));
		if (tu_first_overlap(ext_only, n) != TU_NONE)
			bad++;
		/* Extents against live blocks, exact widths this time. */
		for (size_t i = 0; i < n; i++)
			s[i].hi--;
		if (tu_first_overlap(s, ns) != TU_NONE)
			bad++;
	}
	for (int i = 0; i < LIVE; i++)
		os_free(live[i]);
	t_is(bad, 0, "no overlap, no lost bytes, no failure, extents never adjacent");
	t_is(over, 0, "the cached bytes never exceeded the limit");
	t_is(sum_wrong, 0, "the extents, less their cold ends, always summed to the cached bytes");
	t_is(cold_over, 0, "the cold bytes never exceeded the limit");
	t_is(cold_resident, 0, "no cold end ever had a page in memory");
	t_ok(cold_steps > STEPS / 8, "cold ends were kept after %zu of %d steps", cold_steps, STEPS);
	t_ok(reused > STEPS / 8, "many allocations needed no system call (%zu of about %d)", reused,
	     STEPS / 2);
}

static void lifetime(void *arg)
{
	(void)arg;
	/* A tenth of a second: far more than the few calls between a free
	   and the check that follows it take, even under valgrind, and far
	   less than the sleeps. */
	start(100000000);
	char *p = os_malloc(1 * MiB);
	os_free(p);
	t_is(cached(), map_len(1 * MiB), "a freed block is cached");
	sleep_ms(300);
	t_is(cached(), 0, "after its lifetime, os_mallinfo finds it given back");
	t_ok(!tu_page_mapped(p), "its pages are unmapped");

	/* Frees and reuses read no clock: what expired goes at the next
	   reading, here os_mallinfo's; a block freed after that is kept. */
	char *a = os_malloc(2 * MiB), *b = os_malloc(3 * MiB);
	os_free(a);
	t_is(cached(), map_len(2 * MiB), "a second freed block is cached");
	sleep_ms(300);
	t_is(cached(), 0, "after its lifetime os_mallinfo finds it given back");
	os_free(b);
	t_is(cached(), map_len(3 * MiB), "and a block freed next is kept");

	sleep_ms(300);
	char *c = os_malloc(200 * KiB);
	t_is(cached(), 0, "an allocation after the lifetime leaves nothing cached");
	os_free(c);
}

/* A warm workload of large blocks (the same size freed and asked for
   again) reads no clock: the lifetime is looked at only where a system
   call is made anyway, or when the program inspects. */
static void no_clock_when_warm(void *arg)
{
	(void)arg;
	start(HOUR_NS);
	os_free(os_malloc(1 * MiB));
	unsigned long before = __atomic_load_n(&clock_reads, __ATOMIC_RELAXED);
	bool ok = true;
	for (int i = 0; i < 1000 && ok; i++) {
		char *p = os_malloc(1 * MiB);
		ok = p != NULL;
		if (p)
			p[i] = 1;
		os_free(p);
	}
	unsigned long reads = __atomic_load_n(&clock_reads, __ATOMIC_RELAXED) - before;
	t_ok(ok, "1000 blocks of 1 MiB allocated and freed");
	t_ok(reads == 0, "reusing the cached mapping read the clock %lu times", reads);
	cached();
	t_ok(__atomic_load_n(&clock_reads, __ATOMIC_RELAXED) > before + reads,
	     "os_mallinfo reads it (and the count above would see a reading)");
}

static void calloc_is_zero(void *arg)
{
	(void)arg;
	start(HOUR_NS);
	char *p = os_malloc(3 * MiB);
	memset(p, 0xa5, 3 * MiB);
	os_free(p);
	size_t before = cached();
	char *z = os_calloc(1, 2 * MiB);
	t_ok(z && tu_nonzero(z, 2 * MiB) == TU_NONE, "os_calloc memory is zero with dirty pages cached");
	t_is(cached(), before, "the dirty pages stay cached for os_malloc");
	char *q = os_malloc(2 * MiB);
	t_ok(q == p, "and os_malloc reuses them");
	os_free(z);
	os_free(q);
	char *z2 = os_calloc(2 * MiB, 1);
	t_ok(z2 && tu_nonzero(z2, 2 * MiB) == TU_NONE, "os_calloc is zero again after that");
	os_free(z2);
}

static void aligned_mapping(void *arg)
{
	(void)arg;
	start(HOUR_NS);
	size_t before = os_mallinfo().mapped_bytes;
	void *p = NULL;
	int err = os_posix_memalign(&p, 64 * KiB, 1 * MiB);
	t_is(err, 0, "a 64 KiB-aligned 1 MiB block");
	size_t mapping = os_mallinfo().mapped_bytes - before;
	os_free(p);
	t_is(cached(), mapping, "its whole mapping, lead pages included, is cached");
	struct hv_extent e[2];
	size_t n = hv_map_cache_extents(e, 2);
	t_ok(n == 1 && e[0].len == mapping, "as one extent");
	char *q = os_malloc(512 * KiB);
	t_ok(n == 1 && base_of(q) == e[0].base, "which a later os_malloc reuses from its start");
	os_free(q);
}

static void cache_off(void *arg)
{
	(void)arg;
	start(HOUR_NS);
	hv_map_cache_off();
	struct hv_map_calls c0 = hv_map_calls();
	char *p = os_malloc(1 * MiB);
	os_free(p);
	struct hv_map_calls c1 = hv_map_calls();
	t_ok(c1.map == c0.map + 1 && c1.unmap == c0.unmap + 1,
	     "with the limit at 0, every block is an mmap and an munmap");
	t_is(cached(), 0, "and nothing is cached");
}

/* In a process of one thread the usage counters are kept without atomic
   instructions; they must count the same. */
static void usage_counts(void *arg)
{
	(void)arg;
	start(HOUR_NS);
	struct os_mallinfo a = os_mallinfo();
	char *p = os_malloc(8 * MiB);
	struct os_mallinfo b = os_mallinfo();
	t_is(b.in_use_bytes - a.in_use_bytes, map_len(8 * MiB), "a large block counts as in use");
	t_ok(b.peak_in_use_bytes >= b.in_use_bytes, "and the peak follows it");
	p = os_realloc(p, 1 * MiB);
	struct os_mallinfo c = os_mallinfo();
	t_is(c.in_use_bytes - a.in_use_bytes, map_len(1 * MiB), "shrunk in place, it counts less");
	os_free(p);
	struct os_mallinfo d = os_mallinfo();
	t_is(d.in_use_bytes, a.in_use_bytes, "freed, it no longer counts");
	t_is(d.peak_in_use_bytes, b.peak_in_use_bytes, "the peak stays");
}

int main(void)
{
	tap_diag("libosmem: the cache of freed mappings");
	tu_child("reuse", 60, reuse_split_merge, NULL);
	tu_child("freed last first", 60, freed_last_first, NULL);
	tu_child("realloc", 60, realloc_in_place, NULL);
	tu_child("bound", 60, bound, NULL);
	tu_child("cold", 60, cold_kept, NULL);
	tu_child("invariants", 120, invariants, NULL);
	tu_child("lifetime", 60, lifetime, NULL);
	tu_child("no clock when warm", 60, no_clock_when_warm, NULL);
	tu_child("calloc", 60, calloc_is_zero, NULL);
	tu_child("aligned", 60, aligned_mapping, NULL);
	tu_child("off", 60, cache_off, NULL);
	tu_child("usage", 60, usage_counts, NULL);
	return tap_done();
}
