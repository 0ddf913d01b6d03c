/*
 * t-hugegrow.c - mapped blocks that os_realloc grows past OSMEM_HUGE_GROW.
 *
 *  - such a block's mapping is advised to use transparent huge pages
 *    (the kernel shows "hg" among the flags of its mapping), once, and
 *    grows by whole huge pages, ending on a huge-page boundary; its bytes
 *    survive every move;
 *  - a block grown to less than the threshold, a block asked for at once
 *    with os_malloc, and any block once os_mallopt has set
 *    OSMEM_M_HUGE_GROW to 0 are not advised;
 *  - an advised block is unmapped when freed and its tail when it shrinks,
 *    never cached, so no later block inherits the advice;
 *  - a request that still fits its last huge page leaves it in place;
 *  - os_malloc_info counts advised blocks and their bytes.
 *
 * The test does not assert that the kernel backs the block with huge
 * pages (that depends on its settings and on free memory); it says how
 * many it did.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include "heapview.h"
#include "tap.h"
#include "tutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

/* What one page-table page maps, as mapped.c computes it. */
static size_t huge_unit(void) { return hv_page_size() * (hv_page_size() / sizeof(void *)); }

static size_t cached(void) { return os_mallinfo().mapped_cache_bytes; }

/* The flags and AnonHugePages of the mapping holding P, from smaps; false
   when no mapping holds it. */
static bool mapping_of(const void *p, bool *advised, size_t *huge_kib)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return false;
	char line[512];
	bool inside = false, found = false;
	*advised = false;
	*huge_kib = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char dash;
		if (sscanf(line, "%lx%c%lx ", &lo, &dash, &hi) == 3 && dash == '-') {
			if (found)
				break;
			inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
			found = inside;
			continue;
		}
		if (!inside)
			continue;
		size_t kib;
		if (sscanf(line, "AnonHugePages: %zu kB", &kib) == 1)
			*huge_kib = kib;
		if (strncmp(line, "VmFlags:", 8) == 0)
			*advised = strstr(line, " hg") != NULL;
	}
	fclose(f);
	return found;
}

/* The number after "KEY": in os_malloc_info's document, or (size_t)-1. */
static size_t info_number(const char *key)
{
	int rc = -1, err;
	char *doc = tu_info_document(&rc, &err);
	size_t v = doc && rc == 0 ? tu_number_after(doc, key) : (size_t)-1;
	free(doc);
	return v;
}

static bool advised(const void *p)
{
	bool hg;
	size_t kib;
	return mapping_of(p, &hg, &kib) && hg;
}

/* A block of N bytes filled with ID's pattern. */
static char *filled(size_t n, uint64_t id)
{
	char *p = os_malloc(n);
	if (p)
		tu_fill(p, 0, n, id);
	return p;
}

/* Grows P, whose first FROM bytes hold ID's pattern, to TO bytes by an
   eighth at a time, as a growing buffer would, writing each new part;
   NULL if a realloc fails or the bytes are not kept. */
static char *grow(char *p, size_t from, size_t to, uint64_t id)
{
	if (!p)
		return NULL;
	for (size_t n = from; n < to;) {
		size_t next = n + n / 8 < to ? n + n / 8 : to;
		char *q = os_realloc(p, next);
		if (!q || tu_check(q, 0, n, id) != TU_NONE)
			return NULL;
		tu_fill(q, n, next, id);
		p = q;
		n = next;
	}
	return p;
}

/* An empty cache that keeps what it gets. */
static void start(void)
{
	os_free(os_malloc(256 * KiB));
	hv_map_cache_empty();
	hv_map_cache_lifetime(3600ll * 1000000000ll);
}

static void advised_when_grown(void *arg)
{
	(void)arg;
	start();
	size_t from = hv_huge_grow(), top = from * 2;
	t_ok(from == 8 * MiB, "OSMEM_HUGE_GROW is 8 MiB by default (%zu)", from);
	struct hv_map_calls c0 = hv_map_calls();
	char *p = grow(filled(1 * MiB, 1), 1 * MiB, from - 1 * MiB, 1);
	t_ok(p != NULL, "a block grows to below the threshold with its bytes kept");
	t_ok(p && !advised(p), "and its mapping is not advised");
	p = grow(p, from - 1 * MiB, top, 1);
	t_ok(p != NULL, "it grows on to twice the threshold with its bytes kept");
	if (!p)
		return;
	bool hg;
	size_t huge_kib;
	t_ok(mapping_of(p, &hg, &huge_kib) && hg, "its mapping is advised to use huge pages");
	t_is(hv_map_calls().advise - c0.advise, 1, "once");
	uintptr_t end = (uintptr_t)p + os_malloc_usable_size(p);
	t_is(end % huge_unit(), 0, "its mapping ends on a huge-page boundary");
	t_diag("the kernel backs %zu KiB of it with huge pages", huge_kib);
	t_is(info_number("huge_blocks"), 1, "os_malloc_info counts it");
	t_is(info_number("huge_bytes"), os_malloc_usable_size(p) + 16, "with its mapping's bytes");

	/* A request that still fits the last huge page moves nothing. */
	struct hv_map_calls c1 = hv_map_calls();
	size_t usable = os_malloc_usable_size(p);
	char *q = os_realloc(p, usable - huge_unit() / 2);
	t_ok(q == p && os_malloc_usable_size(q) == usable, "shrinking within its last huge page keeps it");
	q = os_realloc(p, usable);
	struct hv_map_calls c2 = hv_map_calls();
	t_ok(q == p && c2.remap == c1.remap && c2.map == c1.map && c2.unmap == c1.unmap,
	     "and growing back into it, with no system call");
	t_is(tu_check(q, 0, top, 1), TU_NONE, "its bytes are intact");
	os_free(q);
}

static void not_cached(void *arg)
{
	(void)arg;
	start();
	size_t from = hv_huge_grow();
	char *p = grow(filled(1 * MiB, 2), 1 * MiB, from + 4 * MiB, 2);
	t_ok(p && advised(p), "a block grown past the threshold is advised");
	if (!p)
		return;
	size_t usable = os_malloc_usable_size(p);
	char *tail = p + usable - hv_page_size();
	char *q = os_realloc(p, from / 2);
	t_ok(q != NULL && tu_check(q, 0, from / 2, 2) == TU_NONE, "shrunk, it keeps its bytes");
	t_is(cached(), 0, "its tail is not cached");
	t_ok(q != p || !tu_page_mapped(tail), "but unmapped");
	t_ok(q && advised(q), "and the block stays advised");

	char *edge = q;
	os_free(q);
	t_is(cached(), 0, "freed, it is not cached either");
	t_is(info_number("huge_blocks"), 0, "nor counted");
	t_ok(!tu_page_mapped(edge), "it is unmapped");

	/* Blocks of every kind asked for afterwards are not advised. */
	char *a = os_malloc(from * 2);
	t_ok(a && !advised(a), "a block of twice the threshold from os_malloc is not advised");
	os_free(a);
	char *b = os_malloc(from * 2);
	t_ok(b && !advised(b), "nor one that reuses its cached pages");
	os_free(b);
}

static void off(void *arg)
{
	(void)arg;
	start();
	t_ok(os_mallopt(OSMEM_M_HUGE_GROW, 0) == 1, "OSMEM_M_HUGE_GROW set to 0");
	t_is(hv_huge_grow(), 0, "and in force");
	struct hv_map_calls c0 = hv_map_calls();
	char *p = grow(filled(1 * MiB, 3), 1 * MiB, 20 * MiB, 3);
	t_ok(p != NULL, "a block then grows to 20 MiB with its bytes kept");
	t_ok(p && !advised(p), "its mapping is not advised");
	t_is(hv_map_calls().advise, c0.advise, "no advice is asked for");
	os_free(p);
	t_ok(cached() > 0, "and freed, it is cached as any mapping is");
}

int main(void)
{
	tap_diag("libosmem: blocks grown past OSMEM_HUGE_GROW");
	if (tu_under_valgrind())
		tap_skip_all("valgrind reports its own view of the mappings");
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[256];
	bool flags = false;
	while (f && fgets(line, sizeof line, f))
		flags |= strncmp(line, "VmFlags:", 8) == 0;
	if (f)
		fclose(f);
	if (!flags || access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0)
		tap_skip_all("the kernel has no transparent huge pages, or does not show its flags");
	tu_child("advised", 60, advised_when_grown, NULL);
	tu_child("not cached", 60, not_cached, NULL);
	tu_child("off", 60, off, NULL);
	return tap_done();
}
