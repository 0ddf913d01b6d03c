/*
 * mapcache.c - a few recently freed mappings kept for reuse.
 *
 * Mapping a large block costs an mmap, a munmap and a page fault for every
 * page touched.  A program that frees a large block and soon asks for one
 * of a similar size gets the old mapping back instead, pages still in
 * place (resized with mremap when it is much larger, or smaller).  The
 * cache is bounded: at most MAPCACHE_SLOTS mappings and OSMEM_MAP_CACHE bytes (32 MiB by default, 0 turns it off), and a mapping
 * not reused within MAPCACHE_LIFETIME_NS is given back at the next large
 * operation.  All of it runs under the mapping registry's lock.
 *
 * SPDX-License-Identifier: MIT
 */
#include "mapped.h"

#include <time.h>

#define MAPCACHE_SLOTS 8
#define MAPCACHE_LIFETIME_NS 1000000000ll

static struct {
	struct {
		void *base; /* NULL: slot empty */
		size_t len;
		long long freed_at;
	} slot[MAPCACHE_SLOTS];
	size_t bytes;
} cache;

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void drop(int i)
{
	osmem_os_unmap(cache.slot[i].base, cache.slot[i].len);
	cache.bytes -= cache.slot[i].len;
	cache.slot[i].base = NULL;
}

/* The cached mapping that best serves LEN bytes: the smallest that holds
   them, else the largest of those that do not. */
static int best_for(size_t len)
{
	int fit = -1, under = -1;
	for (int i = 0; i < MAPCACHE_SLOTS; i++) {
		size_t l = cache.slot[i].len;
		if (!cache.slot[i].base)
			continue;
		if (l >= len && (fit < 0 || l < cache.slot[fit].len))
			fit = i;
		if (l < len && (under < 0 || l > cache.slot[under].len))
			under = i;
	}
	return fit >= 0 ? fit : under;
}

void *osmem_mapcache_take(size_t len, size_t *got)
{
	int i = best_for(len);
	if (i < 0)
		return NULL;
	void *base = cache.slot[i].base;
	size_t have = cache.slot[i].len;
	cache.bytes -= have;
	cache.slot[i].base = NULL;
	/* A mapping of up to four times the size is used as it is, pages in
	   place.  One much larger is cut down with mremap, so a small block
	   does not pin memory it never uses; one too small is grown with
	   mremap, which keeps the pages at its start.  Either is cheaper than
	   a new mapping and its page faults. */
	if (have < len || have / 4 > len) {
		void *moved = osmem_os_remap(base, have, len);
		if (!moved) {
			osmem_os_unmap(base, have);
			return NULL;
		}
		base = moved;
		have = len;
	}
	*got = have;
	return base;
}

bool osmem_mapcache_put(void *base, size_t len)
{
	size_t cap = osmem_g.opt.map_cache;
	if (len > cap)
		return false;
	long long t = now_ns();
	int free_slot = -1, oldest = -1;
	for (int i = 0; i < MAPCACHE_SLOTS; i++) {
		if (!cache.slot[i].base)
			free_slot = i;
		else if (oldest < 0 || cache.slot[i].freed_at < cache.slot[oldest].freed_at)
			oldest = i;
	}
	/* Make room by giving back the oldest mappings first. */
	while (cache.bytes + len > cap || free_slot < 0) {
		drop(oldest);
		free_slot = oldest;
		oldest = -1;
		for (int i = 0; i < MAPCACHE_SLOTS; i++)
			if (cache.slot[i].base &&
			    (oldest < 0 || cache.slot[i].freed_at < cache.slot[oldest].freed_at))
				oldest = i;
		if (oldest < 0 && cache.bytes + len > cap)
			return false;
	}
	cache.slot[free_slot].base = base;
	cache.slot[free_slot].len = len;
	cache.slot[free_slot].freed_at = t;
	cache.bytes += len;
	return true;
}

void osmem_mapcache_expire(void)
{
	if (!cache.bytes)
		return;
	long long t = now_ns();
	for (int i = 0; i < MAPCACHE_SLOTS; i++)
		if (cache.slot[i].base && t - cache.slot[i].freed_at > MAPCACHE_LIFETIME_NS)
			drop(i);
}

size_t osmem_mapcache_bytes(void)
{
	return cache.bytes;
}
