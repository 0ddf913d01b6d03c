/*
 * t-inspect.c - what the allocator tells about itself, and the tunables.
 *
 *  - os_mallinfo: the heap is there after the first small block; a large
 *    block is one more mapping of about its size, and freeing it takes the
 *    mapping back; bytes in use grow by at least what is asked and come
 *    back; the peak covers the high-water mark; freed heap blocks show up
 *    in the free counters, exactly;
 *  - os_malloc_stats writes a few lines, each starting with "osmem: ";
 *  - OSMEM_STATS=1 prints that summary when the program ends, and nothing
 *    is printed without it;
 *  - OSMEM_MMAP_THRESHOLD moves the line between heap and mappings, with
 *    k and m suffixes; malformed or out-of-range values of the tunables
 *    give exactly one warning line and the default, never a crash;
 *  - OSMEM_CHECK accepts 0, 1 and 2 silently and warns about anything else.
 * Every case runs in a fresh exec of this program (death.h), so each one
 * reads its own environment and starts from an untouched heap.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include "death.h"
#include "heapview.h"
#include "tap.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

/* In a child: "KEY=VALUE" on standard output, for the parent to read. */
static void say(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const char *key, const char *fmt, ...)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "%s=", key);
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	line[n++] = '\n';
	if (write(STDOUT_FILENO, line, (size_t)n) != n)
		abort();
}

/* In the parent: the value of KEY the child said, or NULL. */
static const char *heard(const struct dt_result *r, const char *key, char *buf, size_t len)
{
	size_t kl = strlen(key);
	for (const char *p = r->out; *p;) {
		const char *nl = strchr(p, '\n');
		size_t ll = nl ? (size_t)(nl - p) : strlen(p);
		if (ll > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
			size_t vl = ll - kl - 1 < len - 1 ? ll - kl - 1 : len - 1;
			memcpy(buf, p + kl + 1, vl);
			buf[vl] = '\0';
			return buf;
		}
		p += ll + (nl != NULL);
	}
	return NULL;
}

/* ---- os_mallinfo ------------------------------------------------------- */

static void *touch(void *p, size_t n)
{
	if (p)
		memset(p, 0x5a, n);
	return p;
}

static void mallinfo_counters(void)
{
	struct os_mallinfo m0 = os_mallinfo();
	dt_check(m0.mapped_blocks == 0 && m0.mapped_bytes == 0, "no mappings before any block");

	void *first = touch(os_malloc(24), 24);
	struct os_mallinfo m1 = os_mallinfo();
	dt_check(m1.heap_bytes + m1.heap_mapped_bytes >= 128 * KiB,
	         "the heap holds at least 128 KiB after the first small block (%zu)",
	         m1.heap_bytes + m1.heap_mapped_bytes);
	dt_check(m1.in_use_bytes >= m0.in_use_bytes + 24,
	         "in_use_bytes grew by at least 24 (%zu -> %zu)", m0.in_use_bytes,
	         m1.in_use_bytes);

	/* A large block: exactly one more mapping, of about its size. */
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *big = touch(os_malloc(MiB), MiB);
	struct os_mallinfo m2 = os_mallinfo();
	dt_check(m2.mapped_blocks == m1.mapped_blocks + 1, "1 MiB block: one more mapped block "
	                                                   "(%zu -> %zu)",
	         m1.mapped_blocks, m2.mapped_blocks);
	dt_check(m2.mapped_bytes >= m1.mapped_bytes + MiB &&
	                 m2.mapped_bytes <= m1.mapped_bytes + MiB + page,
	         "1 MiB block: mapped_bytes grew by 1 MiB plus at most a page (%zu)",
	         m2.mapped_bytes - m1.mapped_bytes);
	dt_check(m2.in_use_bytes >= m1.in_use_bytes + MiB, "1 MiB block: in_use_bytes grew by "
	                                                  "at least 1 MiB (%zu)",
	         m2.in_use_bytes - m1.in_use_bytes);
	dt_check(m2.heap_bytes == m1.heap_bytes, "1 MiB block: the heap did not grow");
	os_free(big);
	struct os_mallinfo m3 = os_mallinfo();
	dt_check(m3.mapped_blocks == m1.mapped_blocks && m3.mapped_bytes == m1.mapped_bytes,
	         "freeing it takes the mapped counters back (%zu blocks, %zu bytes)", m3.mapped_blocks,
	         m3.mapped_bytes);
	dt_check(m3.in_use_bytes == m1.in_use_bytes, "in_use_bytes is back (%zu, was %zu)",
	         m3.in_use_bytes, m1.in_use_bytes);

	/* Heap blocks of several sizes: in use grows by at least their sizes
	   and comes back when they are freed. */
	static const size_t sizes[] = { 1, 100, 1000, 5000, 50000, 100000 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct os_mallinfo a = os_mallinfo();
		void *p = touch(os_malloc(sizes[i]), sizes[i]);
		struct os_mallinfo b = os_mallinfo();
		os_free(p);
		struct os_mallinfo c = os_mallinfo();
		dt_check(b.in_use_bytes >= a.in_use_bytes + sizes[i] &&
		                 c.in_use_bytes == a.in_use_bytes,
		         "%zu-byte block: in_use_bytes %zu -> %zu -> %zu", sizes[i], a.in_use_bytes,
		         b.in_use_bytes, c.in_use_bytes);
	}

	/* The peak covers a high-water mark made here. */
	void *hw[8];
	size_t high = 0;
	for (int i = 0; i < 8; i++) {
		hw[i] = touch(os_malloc(100 * KiB), 100 * KiB);
		size_t now = os_mallinfo().in_use_bytes;
		high = now > high ? now : high;
	}
	for (int i = 0; i < 8; i++)
		os_free(hw[i]);
	struct os_mallinfo m4 = os_mallinfo();
	dt_check(m4.peak_in_use_bytes >= high && high >= m4.in_use_bytes + 800 * KiB,
	         "peak_in_use_bytes (%zu) covers the high-water mark (%zu)", m4.peak_in_use_bytes,
	         high);

	/* Five 4 KiB blocks with live blocks around each: freeing them keeps
	   them in the thread's cache (or, with OSMEM_CACHE_MAX=0, makes them
	   free heap blocks at once); os_malloc_trim returns the cache, and
	   then they are five more free heap blocks of exactly their size.
	   The first os_malloc_trim starts both counts from an empty cache
	   and a top already trimmed. */
	char *blk[5], *sep[6];
	sep[0] = os_malloc(4096);
	for (int i = 0; i < 5; i++) {
		blk[i] = os_malloc(4096);
		sep[i + 1] = os_malloc(4096);
	}
	size_t chunk = os_malloc_usable_size(blk[0]) + 16;
	os_malloc_trim(0);
	struct os_mallinfo m5 = os_mallinfo();
	dt_check(m5.cached_blocks == 0 && m5.cached_bytes == 0,
	         "os_malloc_trim empties the thread's cache (%zu blocks)", m5.cached_blocks);
	for (int i = 0; i < 5; i++)
		os_free(blk[i]);
	struct os_mallinfo m6 = os_mallinfo();
	dt_check(m6.free_blocks + m6.cached_blocks == m5.free_blocks + 5,
	         "five freed 4 KiB blocks: free or cached blocks %zu -> %zu + %zu", m5.free_blocks,
	         m6.free_blocks, m6.cached_blocks);
	dt_check(m6.free_bytes + m6.cached_bytes == m5.free_bytes + 5 * chunk,
	         "five freed 4 KiB blocks: free and cached bytes grew by %zu (want %zu)",
	         m6.free_bytes + m6.cached_bytes - m5.free_bytes, 5 * chunk);
	dt_check(m6.in_use_bytes + 5 * chunk == m5.in_use_bytes,
	         "five freed 4 KiB blocks: in_use_bytes fell by their size");
	os_malloc_trim(0);
	struct os_mallinfo m7 = os_mallinfo();
	dt_check(m7.free_blocks == m5.free_blocks + 5 && m7.cached_blocks == 0,
	         "returned by os_malloc_trim: free_blocks %zu -> %zu", m5.free_blocks,
	         m7.free_blocks);
	dt_check(m7.free_bytes == m5.free_bytes + 5 * chunk,
	         "returned by os_malloc_trim: free_bytes grew by %zu (want %zu)",
	         m7.free_bytes - m5.free_bytes, 5 * chunk);
	for (int i = 0; i < 6; i++)
		os_free(sep[i]);
	os_free(first);
	dt_check(os_heap_check() == 0, "the heap checks clean");
}

/* ---- os_malloc_stats and OSMEM_STATS ------------------------------------ */

static void *stats_work(void)
{
	void *a = os_malloc(100), *b = os_malloc(5000), *c = os_malloc(MiB);
	os_free(b);
	os_free(a);
	return c;
}

static void malloc_stats(void)
{
	void *c = stats_work();
	os_malloc_stats();
	os_free(c);
}

/* Leaves a block live and returns: OSMEM_STATS prints at exit. */
static void stats_at_exit(void)
{
	(void)stats_work();
}

/* True when ERR is at least MIN lines, every one starting with "osmem: ",
   and one of them mentions NEEDLE. */
static bool osmem_lines(const char *err, unsigned min, const char *needle)
{
	unsigned n = 0;
	for (const char *p = err; *p;) {
		const char *nl = strchr(p, '\n');
		if (!nl || strncmp(p, "osmem: ", 7) != 0)
			return false;
		n++;
		p = nl + 1;
	}
	return n >= min && strstr(err, needle) != NULL;
}

/* ---- tunables ------------------------------------------------------------- */

static bool in_heap(const void *p)
{
	struct hv_block b;
	return hv_find(p, &b);
}

/* Says the threshold in force and where a 100 KiB and a 512 KiB block go. */
static void threshold_probe(void)
{
	os_free(os_malloc(1));
	say("threshold", "%zu", hv_mmap_threshold());
	size_t before = os_mallinfo().mapped_blocks;
	void *a = os_malloc(100 * KiB), *b = os_malloc(512 * KiB);
	say("100k", "%s", in_heap(a) ? "heap" : "mapped");
	say("512k", "%s", in_heap(b) ? "heap" : "mapped");
	say("mappings", "%zu", os_mallinfo().mapped_blocks - before);
	os_free(a);
	os_free(b);
	dt_check(os_heap_check() == 0, "the heap checks clean");
}

/* Any allocation: options are read on the first call. */
static void first_call(void)
{
	void *p = os_malloc(10);
	dt_check(p != NULL, "os_malloc works");
	os_free(p);
	say("threshold", "%zu", hv_mmap_threshold());
	say("trim", "%zu", hv_trim_threshold());
	say("top_pad", "%zu", hv_top_pad());
	dt_check(os_heap_check() == 0, "the heap checks clean");
}

/* Where a second thread's first heap block comes from: the main arena
   (brk) or an arena of its own (mapped). */
static void *second_thread_block(void *arg)
{
	(void)arg;
	return os_malloc(4096);
}

static void arena_probe(void)
{
	void *mine = os_malloc(4096), *theirs = NULL;
	pthread_t t;
	dt_check(pthread_create(&t, NULL, second_thread_block, NULL) == 0, "a thread starts");
	pthread_join(t, &theirs);
	struct hv_segment segs[256];
	size_t n = hv_segments(segs, 256);
	const char *where = "nowhere";
	for (size_t i = 0; i < n && i < 256; i++)
		if ((uintptr_t)theirs > segs[i].base && (uintptr_t)theirs < segs[i].end)
			where = segs[i].from_brk ? "brk" : "mapped";
	say("arena", "%s", where);
	os_free(theirs);
	os_free(mine);
	dt_check(os_heap_check() == 0, "the heap checks clean");
}

static const struct dt_case cases[] = {
	DT_CASE(arena_probe),
	DT_CASE(mallinfo_counters),
	DT_CASE(malloc_stats),
	DT_CASE(stats_at_exit),
	DT_CASE(threshold_probe),
	DT_CASE(first_call),
};

static struct dt_result res;

/* OSMEM_MMAP_THRESHOLD=VALUE: the threshold in force, and where blocks
   of 100 and 512 KiB go. */
static void threshold(const char *value, size_t want, const char *at100k, const char *at512k)
{
	char envbuf[128], name[160], buf[64];
	const char *env[] = { envbuf, NULL };
	snprintf(envbuf, sizeof(envbuf), "OSMEM_MMAP_THRESHOLD=%s", value);
	snprintf(name, sizeof(name), "%s", envbuf);
	dt_run("threshold_probe", env, &res);
	const char *t = heard(&res, "threshold", buf, sizeof(buf));
	ok(t && strtoull(t, NULL, 10) == want, "%s: threshold %s (want %zu)", name,
	   t ? t : "unknown", want);
	const char *w = heard(&res, "100k", buf, sizeof(buf));
	ok(w && strcmp(w, at100k) == 0, "%s: a 100 KiB block is %s (want %s)", name,
	   w ? w : "unknown", at100k);
	w = heard(&res, "512k", buf, sizeof(buf));
	ok(w && strcmp(w, at512k) == 0, "%s: a 512 KiB block is %s (want %s)", name,
	   w ? w : "unknown", at512k);
	w = heard(&res, "mappings", buf, sizeof(buf));
	size_t maps = (strcmp(at100k, "mapped") == 0) + (strcmp(at512k, "mapped") == 0);
	ok(w && strtoull(w, NULL, 10) == maps, "%s: os_mallinfo counts %s mapped blocks (want %zu)",
	   name, w ? w : "no", maps);
	ok(res.err_len == 0, "%s: nothing on standard error", name);
	if (res.err_len)
		dt_diag_output(&res);
	dt_relay(name, &res);
}

/* NAME=VALUE is refused: one warning line naming it, and the default. */
static void refused(const char *var, const char *value, const char *key, size_t dflt)
{
	char envbuf[128], want[256], buf[64];
	const char *env[] = { envbuf, NULL };
	snprintf(envbuf, sizeof(envbuf), "%s=%s", var, value);
	snprintf(want, sizeof(want),
	         "osmem: ignoring malformed or out-of-range %s=%s; using the default\n", var,
	         value);
	dt_run("first_call", env, &res);
	ok(strcmp(res.err, want) == 0, "%s='%s': exactly one warning line", var, value);
	if (strcmp(res.err, want) != 0)
		dt_diag_output(&res);
	if (key) {
		const char *t = heard(&res, key, buf, sizeof(buf));
		ok(t && strtoull(t, NULL, 10) == dflt, "%s='%s': the default is kept (%s)", var,
		   value, t ? t : "unknown");
	}
	dt_relay(envbuf, &res);
}

/* NAME=VALUE is taken without a word. */
static void accepted(const char *var, const char *value, const char *key, size_t want)
{
	char envbuf[128], buf[64];
	const char *env[] = { envbuf, NULL };
	snprintf(envbuf, sizeof(envbuf), "%s=%s", var, value);
	dt_run("first_call", env, &res);
	ok(res.err_len == 0, "%s: accepted silently", envbuf);
	if (res.err_len)
		dt_diag_output(&res);
	if (key) {
		const char *t = heard(&res, key, buf, sizeof(buf));
		ok(t && strtoull(t, NULL, 10) == want, "%s: in force (%s, want %zu)", envbuf,
		   t ? t : "unknown", want);
	}
	dt_relay(envbuf, &res);
}

/* OSMEM_ARENAS=VALUE (unset for NULL): where a second thread's block
   lies, and whether the value was refused with a warning. */
static void arenas(const char *value, const char *want, bool refused_value)
{
	char envbuf[128], buf[64];
	const char *env[] = { envbuf, NULL };
	snprintf(envbuf, sizeof(envbuf), "OSMEM_ARENAS=%s", value ? value : "");
	dt_run("arena_probe", value ? env : NULL, &res);
	const char *name = value ? envbuf : "OSMEM_ARENAS unset";
	const char *w = heard(&res, "arena", buf, sizeof(buf));
	ok(w && strcmp(w, want) == 0, "%s: a second thread's block is %s (want %s)", name,
	   w ? w : "unknown", want);
	bool warned = strstr(res.err, "ignoring malformed or out-of-range OSMEM_ARENAS") != NULL;
	ok(warned == refused_value, "%s: %s", name,
	   refused_value ? "refused with a warning" : "accepted silently");
	if (warned != refused_value)
		dt_diag_output(&res);
	dt_relay(name, &res);
}

int main(int argc, char **argv)
{
	dt_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
	const size_t dflt = 128 * KiB;

	dt_run("mallinfo_counters", NULL, &res);
	dt_relay("os_mallinfo", &res);

	dt_run("malloc_stats", NULL, &res);
	ok(osmem_lines(res.err, 3, "in use"), "os_malloc_stats: lines starting with 'osmem: ' on "
	                                      "standard error");
	if (!osmem_lines(res.err, 3, "in use"))
		dt_diag_output(&res);
	dt_relay("os_malloc_stats", &res);

	static const char *const stats1[] = { "OSMEM_STATS=1", NULL };
	static const char *const stats0[] = { "OSMEM_STATS=0", NULL };
	dt_run("stats_at_exit", stats1, &res);
	ok(osmem_lines(res.err, 3, "in use"), "OSMEM_STATS=1: the summary is printed at exit");
	if (!osmem_lines(res.err, 3, "in use"))
		dt_diag_output(&res);
	ok(strstr(res.err, "mapped 1") != NULL || strstr(res.err, "in 1 large") != NULL,
	   "OSMEM_STATS=1: the summary counts the block left mapped");
	dt_relay("OSMEM_STATS=1", &res);
	dt_run("stats_at_exit", stats0, &res);
	ok(res.err_len == 0, "OSMEM_STATS=0: nothing is printed");
	dt_relay("OSMEM_STATS=0", &res);
	dt_run("stats_at_exit", NULL, &res);
	ok(res.err_len == 0, "OSMEM_STATS unset: nothing is printed");
	dt_relay("OSMEM_STATS unset", &res);

	threshold("64k", 64 * KiB, "mapped", "mapped");
	threshold("65536", 64 * KiB, "mapped", "mapped");
	threshold("96K", 96 * KiB, "mapped", "mapped");
	threshold("1m", MiB, "heap", "heap");
	threshold("2M", 2 * MiB, "heap", "heap");
	threshold("256k", 256 * KiB, "heap", "mapped");

	static const char *const bad[] = { "12q", "-5", "", "99999999999999999999999", "1k5",
		                           "64kk", " 64k", "0x100", "33m", "1g",
		                           "18446744073709551615k" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused("OSMEM_MMAP_THRESHOLD", bad[i], "threshold", dflt);
	refused("OSMEM_TRIM_THRESHOLD", "lots", "trim", dflt);
	refused("OSMEM_TOP_PAD", "64x", "top_pad", 64 * KiB);

	accepted("OSMEM_CHECK", "0", NULL, 0);
	accepted("OSMEM_CHECK", "1", NULL, 0);
	accepted("OSMEM_CHECK", "2", NULL, 0);
	accepted("OSMEM_TRIM_THRESHOLD", "1m", "trim", MiB);
	accepted("OSMEM_TOP_PAD", "16k", "top_pad", 16 * KiB);
	refused("OSMEM_CHECK", "7", NULL, 0);
	refused("OSMEM_CHECK", "", NULL, 0);
	refused("OSMEM_CHECK", "11", NULL, 0);
	refused("OSMEM_STATS", "2", NULL, 0);

	/* OSMEM_ARENAS: with one arena, a second thread allocates from the
	   main (brk) heap; by default it gets an arena of its own. */
	arenas(NULL, "mapped", false);
	arenas("1", "brk", false);
	arenas("4", "mapped", false);
	arenas("0", "mapped", true);
	arenas("17", "mapped", true);
	arenas("two", "mapped", true);

	return tap_done();
}
