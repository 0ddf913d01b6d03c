/*
 * mapcache.c - freed mappings kept as free extents, for the next large
 * blocks.
 *
 * Mapping a large block costs an mmap, a munmap and a page fault for every
 * page touched.  Instead, the pages of a freed block's mapping stay mapped
 * here as a free extent, and a later request takes the head of the extent
 * that fits it best: the block gets pages that are mapped, and often
 * already in memory, with no system call.  What the request does not need
 * stays cached as an extent of its own (munmap and mremap work on any
 * range of pages, so a mapping can be cut anywhere on a page boundary),
 * and a freed block merges with the cached extents on either side of it,
 * so that a program that frees a block and asks for one of another size
 * finds the space again.  When no extent is large enough, the largest one
 * is grown with mremap, which keeps its pages.
 *
 * The fit is the best one, but for the block freed last: while its
 * mapping starts an extent that holds the request, the request takes it
 * instead, since its first pages, the ones programs touch most, are the
 * likeliest to be in memory still (large-xl: a sixth fewer system calls,
 * 10830 against 13205, and 3% fewer page faults).
 *
 * An extent's pages need not all be in memory.  To make room, the cache
 * gives back the pages at the end of its oldest extents with
 * madvise(MADV_DONTNEED) and keeps their range mapped, as cold bytes: a
 * later block takes them with no system call, and the kernel hands it
 * zeroed pages where it writes.  Unmapping them instead would cost a
 * munmap now and an mmap or mremap later, and the kernel's work of taking
 * down and building again the page tables over them.  Kept cold, the
 * address space also lets freed blocks merge into extents that later
 * requests fit (large-xl, four live blocks of 5 to 25 MiB, 40000
 * operations: 10932 system calls and 2.08 page faults an operation when
 * cut ranges were unmapped, 5449 and 1.67 with them kept cold).
 *
 * The bounds, which make the memory kept honest:
 *  - the cached bytes, those that may still have pages in memory, never
 *    exceed OSMEM_MAP_CACHE (osmem_g.opt.map_cache; 52 MiB by default, 0
 *    turns the cache off);
 *  - nor do the cold bytes, which hold address space and no memory: past
 *    that, the oldest cold ranges are unmapped;
 *  - at most MAPCACHE_EXTENTS extents, the oldest unmapped first;
 *  - every cached byte is unmapped once it has been seen cached for
 *    osmem_g.opt.map_cache_lifetime_ns (one second).  The clock is read
 *    only where time is spent anyway: when a large request finds nothing
 *    cached and maps memory, when a resize calls mremap, and when the
 *    program inspects the cache (os_mallinfo, os_malloc_info) or trims;
 *    never on a path that reuses cached memory, so a warm workload reads
 *    no clock.  An extent is stamped the first time the clock is read
 *    after it was cached, and unmapped at the first reading a lifetime
 *    after that: between one and two lifetimes in a program that keeps
 *    allocating, at once in one that inspects.  Nothing is given back
 *    in between: libosmem runs no thread and takes no signal of its
 *    own.
 * Everything here runs under the mapping registry's lock (mapped.c).
 *
 * SPDX-License-Identifier: MIT
 */
#include "mapped.h"

#include <limits.h>
#include <time.h>

#define MAPCACHE_EXTENTS 16

/* Invariants:
 *  - ext[0..count) are the cached extents, in no order; each is a whole
 *    number of pages of one or more former mappings, mapped and owned by
 *    no block and no other extent;
 *  - no two extents are adjacent in memory: a put merges them;
 *  - an extent's last cold bytes have no page in memory (given back, and
 *    not handed out since); what lies before them may;
 *  - bytes is the sum of the extents' lengths less their cold bytes, and
 *    cold the sum of their cold bytes; each is <= opt.map_cache whenever
 *    the lock is let go (the limit may only drop below them at run time,
 *    in the tests, until the next put);
 *  - warm is the base of the mapping freed last while an extent starts
 *    there and nothing has been carved from it since, else 0;
 *  - an extent's since is UNSEEN until the clock is next read, then no
 *    later than that reading; a merged extent is as young as its newest
 *    part.  oldest is no later than any seen extent's since (LLONG_MAX
 *    when there is none), so that one comparison tells when nothing
 *    has expired. */
static struct {
	struct extent {
		uintptr_t base;
		size_t len;
		size_t cold;
		long long since;
	} ext[MAPCACHE_EXTENTS];
	unsigned count;
	size_t bytes;
	size_t cold;
	long long oldest;
	uintptr_t warm;
} cache = { .oldest = LLONG_MAX };

/* The since of an extent cached after the clock was last read. */
#define UNSEEN LLONG_MAX

/* The coarse clock is read in user space, without a system call, and its
   few milliseconds of resolution are plenty for a lifetime of a second. */
static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void recompute_oldest(void)
{
	cache.oldest = LLONG_MAX;
	/* (An UNSEEN since is LLONG_MAX too, and so never the oldest.) */
	for (unsigned i = 0; i < cache.count; i++)
		if (cache.ext[i].since < cache.oldest)
			cache.oldest = cache.ext[i].since;
}

/* Forgets extent I (its memory is the caller's now); the last extent takes
   its place. */
static void remove_extent(unsigned i)
{
	if (cache.ext[i].base == cache.warm)
		cache.warm = 0;
	cache.bytes -= cache.ext[i].len - cache.ext[i].cold;
	cache.cold -= cache.ext[i].cold;
	cache.ext[i] = cache.ext[--cache.count];
}

static void unmap_extent(unsigned i)
{
	osmem_os_unmap((void *)cache.ext[i].base, cache.ext[i].len);
	remove_extent(i);
}

enum extent_kind { ANY_EXTENT, WITH_WARM, WITH_COLD };

/* The oldest extent of KIND: any, one with bytes that are not cold, or one
   with cold bytes (there must be one). */
static unsigned oldest_extent(enum extent_kind kind)
{
	int o = -1;
	for (unsigned i = 0; i < cache.count; i++) {
		const struct extent *e = &cache.ext[i];
		bool is_kind = kind == ANY_EXTENT || (kind == WITH_WARM ? e->len > e->cold : e->cold != 0);
		if (is_kind && (o < 0 || e->since < cache.ext[o].since))
			o = (int)i;
	}
	return (unsigned)o;
}

/* Gives back pages until at most LIMIT bytes are cached: the oldest
   extents first, each from the end of what is not cold yet, where its
   pages are the least likely to be in memory (blocks are taken from the
   head).  The range stays mapped and cached, cold.  Then cold bytes past
   LIMIT are unmapped, the oldest first. */
static void cool_to(size_t limit)
{
	while (cache.bytes > limit) {
		struct extent *e = &cache.ext[oldest_extent(WITH_WARM)];
		size_t warm = e->len - e->cold, cut = cache.bytes - limit;
		if (cut > warm)
			cut = warm;
		osmem_os_release((void *)(e->base + warm - cut), cut);
		e->cold += cut;
		cache.bytes -= cut;
		cache.cold += cut;
	}
	while (cache.cold > limit) {
		unsigned o = oldest_extent(WITH_COLD);
		struct extent *e = &cache.ext[o];
		if (e->cold == e->len) {
			unmap_extent(o);
		} else {
			e->len -= e->cold;
			cache.cold -= e->cold;
			osmem_os_unmap((void *)(e->base + e->len), e->cold);
			e->cold = 0;
		}
	}
	recompute_oldest();
}

/* Unmaps pages until at most LIMIT bytes, cold or not, are cached: the
   oldest extents first, each cut from its end. */
static void unmap_to(size_t limit)
{
	while (cache.bytes + cache.cold > limit) {
		unsigned o = oldest_extent(ANY_EXTENT);
		struct extent *e = &cache.ext[o];
		size_t excess = cache.bytes + cache.cold - limit;
		if (excess < e->len) {
			size_t cold = excess < e->cold ? excess : e->cold;
			e->len -= excess;
			e->cold -= cold;
			cache.cold -= cold;
			cache.bytes -= excess - cold;
			osmem_os_unmap((void *)(e->base + e->len), excess);
		} else {
			unmap_extent(o);
		}
	}
	recompute_oldest();
}

static void expire_at(long long now)
{
	long long lifetime = osmem_g.opt.map_cache_lifetime_ns;
	/* What was cached since the last reading is seen now. */
	for (unsigned i = 0; i < cache.count; i++)
		if (cache.ext[i].since == UNSEEN)
			cache.ext[i].since = now;
	if (now < cache.oldest)
		cache.oldest = now;
	if (now - cache.oldest <= lifetime)
		return;
	for (unsigned i = cache.count; i-- > 0;)
		if (now - cache.ext[i].since > lifetime)
			unmap_extent(i);
	recompute_oldest();
}

void osmem_mapcache_expire(void)
{
	if (cache.count)
		expire_at(now_ns());
}

/* Hands out the first LEN bytes of extent I; the rest stays cached, and
   keeps what it had of the extent's cold end. */
static void *carve(unsigned i, size_t len)
{
	struct extent *e = &cache.ext[i];
	void *base = (void *)e->base;
	if (e->base == cache.warm)
		cache.warm = 0;
	if (e->len == len) {
		remove_extent(i);
	} else {
		size_t rest = e->len - len;
		size_t cold = e->cold < rest ? e->cold : rest;
		cache.bytes -= (e->len - e->cold) - (rest - cold);
		cache.cold -= e->cold - cold;
		e->base += len;
		e->len = rest;
		e->cold = cold;
	}
	return base;
}

void *osmem_mapcache_take(size_t len)
{
	int fit = -1, largest = -1;
	for (unsigned i = 0; i < cache.count; i++) {
		size_t l = cache.ext[i].len;
		if (l >= len && cache.ext[i].base == cache.warm)
			return carve(i, len);
		if (l >= len && (fit < 0 || l < cache.ext[fit].len))
			fit = (int)i;
		if (largest < 0 || l > cache.ext[largest].len)
			largest = (int)i;
	}
	if (fit >= 0)
		return carve((unsigned)fit, len);
	if (largest < 0)
		return NULL;
	/* Too small for the request: grown, it becomes the block's mapping
	   with its pages still in place, which beats a new mapping and
	   leaves one extent less to give back later.  mremap refuses an
	   extent that spans mappings the kernel could not merge; it then
	   stays cached, and the caller maps new pages. */
	void *grown = osmem_os_remap((void *)cache.ext[largest].base, cache.ext[largest].len, len);
	if (grown)
		remove_extent((unsigned)largest);
	return grown;
}

bool osmem_mapcache_take_at(void *addr, size_t len)
{
	for (unsigned i = 0; i < cache.count; i++) {
		if (cache.ext[i].base != (uintptr_t)addr)
			continue;
		if (cache.ext[i].len < len)
			return false;
		carve(i, len);
		return true;
	}
	return false;
}

bool osmem_mapcache_put(void *addr, size_t len)
{
	size_t limit = osmem_g.opt.map_cache;
	if (len > limit)
		return false;
	uintptr_t base = (uintptr_t)addr, end = base + len;
	long long since = UNSEEN;
	size_t cold = 0;
	/* Merge with the extents that end where this one starts and start
	   where it ends; the merged extent is as young as its newest part,
	   which was just freed, so that a block freed next to an old extent
	   gets its full lifetime (the bytes cached stay bounded all the
	   same).  Its cold end is that of the extent after the block: the
	   cold end of the one before now lies inside it, and is counted as
	   cached, which overstates what is in memory, never understates. */
	for (unsigned i = cache.count; i-- > 0;) {
		struct extent *e = &cache.ext[i];
		if (e->base + e->len == base || e->base == end) {
			if (e->base < base) {
				base = e->base;
			} else {
				end = e->base + e->len;
				cold = e->cold;
			}
			remove_extent(i);
		}
	}
	if (cache.count == MAPCACHE_EXTENTS)
		unmap_extent(oldest_extent(ANY_EXTENT));
	cache.ext[cache.count++] = (struct extent){ base, end - base, cold, since };
	cache.warm = base == (uintptr_t)addr ? base : 0;
	cache.bytes += end - base - cold;
	cache.cold += cold;
	if (since != UNSEEN && since < cache.oldest)
		cache.oldest = since;
	if (cache.bytes > limit)
		cool_to(limit);
	return true;
}

void osmem_mapcache_trim(size_t limit)
{
	unmap_to(limit);
}

size_t osmem_mapcache_bytes(void)
{
	return cache.bytes;
}

bool osmem_mapcache_extent(unsigned i, void **base, size_t *len, size_t *cold)
{
	if (i >= cache.count)
		return false;
	*base = (void *)cache.ext[i].base;
	*len = cache.ext[i].len;
	*cold = cache.ext[i].cold;
	return true;
}
