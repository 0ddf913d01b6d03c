/*
 * info.c - os_malloc_info: the allocator's memory as one JSON document.
 *
 * Everything is read first into a snapshot on the stack, each arena under
 * its own lock and nothing else held, and only then printed.  Printing may
 * allocate (a stream's buffer), and under the drop-in that is libosmem's
 * own malloc: no lock of the allocator may be held then, and the heap must
 * not change under a walk.  Since only the snapshot is printed, the
 * document is well-formed whatever other threads do meanwhile.  Each part
 * (an arena, the caches, the mappings) is read under the lock that guards
 * it and agrees with itself; the parts are read one after the other, so
 * while other threads allocate they may disagree by what happened between
 * two of them.
 *
 * SPDX-License-Identifier: MIT
 */
#include <osmem.h>

#include "arena.h"
#include "cache.h"
#include "init.h"
#include "mapped.h"

#include <errno.h>
#include <inttypes.h>

/* Room for the extents of the freed-mapping cache: more than it ever
   holds (MAPCACHE_EXTENTS in mapcache.c), so that none is left out. */
#define INFO_EXTENTS 64u

struct arena_info {
	bool uses_brk;
	size_t brk_bytes, mapped_bytes, segments;
	size_t used_bytes, free_bytes, free_chunks, top_bytes, released_bytes;
};

struct settings_info {
	size_t mmap_threshold, trim_threshold, top_pad, map_cache, huge_grow, arenas, cache_max;
	long long map_cache_lifetime_ns;
	int check_level;
};

struct info {
	struct os_mallinfo totals;
	size_t bin_count[BIN_COUNT], bin_bytes[BIN_COUNT];
	size_t cached[CACHE_CLASSES];
	unsigned arenas;
	struct arena_info arena[ARENA_MAX];
	size_t mapped_blocks, mapped_bytes, map_cache_bytes, map_cache_limit;
	size_t huge_blocks, huge_bytes; /* mapped blocks advised to use huge pages */
	unsigned extents;
	struct {
		uintptr_t base;
		size_t len, cold;
	} extent[INFO_EXTENTS];
	struct settings_info opt;
};

static void take_arena(struct arena *h, struct info *in, struct arena_info *a)
{
	arena_lock(h);
	unsigned slot = 0;
	while (osmem_segment_next_of(h, &slot))
		a->segments++;
	a->uses_brk = h->segs.uses_brk;
	a->brk_bytes = h->segs.brk_bytes;
	a->mapped_bytes = h->segs.mapped_bytes;
	a->used_bytes = h->stats.used_bytes;
	a->free_bytes = h->stats.free_bytes;
	a->free_chunks = h->stats.free_chunks;
	a->top_bytes = h->top ? h->top_size : 0;
	a->released_bytes = osmem_heap_released_bytes(h);
	/* Bounded by the arena's own count, so that a damaged list cannot
	   keep us walking with the lock held. */
	osmem_bins_census(&h->bins, in->bin_count, in->bin_bytes, h->stats.free_chunks);
	arena_unlock(h);
}

static void take_mapped(struct info *in)
{
	size_t cached; /* read again below, with the extents */
	osmem_mapped_stats(&in->mapped_blocks, &in->mapped_bytes, &cached);
	/* The cache's size, limit and extents in one hold of the lock, so
	   that the extents add up to the size.  (osmem_mapped_stats has just
	   unmapped the expired ones.) */
	osmem_mapped_lock();
	osmem_mapped_spare_flush();
	in->map_cache_bytes = osmem_mapcache_bytes();
	in->map_cache_limit = __atomic_load_n(&osmem_g.opt.map_cache, __ATOMIC_RELAXED);
	osmem_mapped_huge(&in->huge_blocks, &in->huge_bytes);
	void *base;
	size_t len, cold;
	while (in->extents < INFO_EXTENTS && osmem_mapcache_extent(in->extents, &base, &len, &cold)) {
		in->extent[in->extents].base = (uintptr_t)base;
		in->extent[in->extents].len = len;
		in->extent[in->extents].cold = cold;
		in->extents++;
	}
	osmem_mapped_unlock();
}

/* os_mallopt may change some settings at any time, with atomic stores. */
static void take_settings(struct settings_info *s)
{
	const struct osmem_options *o = &osmem_g.opt;
	s->mmap_threshold = __atomic_load_n(&o->mmap_threshold, __ATOMIC_RELAXED);
	s->trim_threshold = __atomic_load_n(&o->trim_threshold, __ATOMIC_RELAXED);
	s->top_pad = __atomic_load_n(&o->top_pad, __ATOMIC_RELAXED);
	s->map_cache = __atomic_load_n(&o->map_cache, __ATOMIC_RELAXED);
	s->map_cache_lifetime_ns = __atomic_load_n(&o->map_cache_lifetime_ns, __ATOMIC_RELAXED);
	s->huge_grow = __atomic_load_n(&o->huge_grow, __ATOMIC_RELAXED);
	s->arenas = __atomic_load_n(&o->arenas, __ATOMIC_RELAXED);
	s->cache_max = __atomic_load_n(&o->cache_max, __ATOMIC_RELAXED);
	s->check_level = __atomic_load_n(&o->check_level, __ATOMIC_RELAXED);
}

static void take_snapshot(struct info *in)
{
	in->totals = os_mallinfo();
	in->arenas = osmem_arena_count();
	for (unsigned i = 0; i < in->arenas; i++)
		take_arena(&osmem_arenas[i], in, &in->arena[i]);
	size_t bytes, blocks, overhead;
	osmem_cache_totals(&bytes, &blocks, &overhead, in->cached);
	take_mapped(in);
	take_settings(&in->opt);
}

/* ---- printing ----------------------------------------------------------- */

/* S as a JSON string: the version comes from the build, and a quote or a
   backslash in it must not break the document. */
static void print_string(FILE *f, const char *s)
{
	putc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			putc(c, f);
	}
	putc('"', f);
}

static void print_totals(FILE *f, const struct os_mallinfo *t)
{
	fprintf(f,
	        "  \"totals\": {\"heap_bytes\": %zu, \"heap_mapped_bytes\": %zu, "
	        "\"mapped_bytes\": %zu, \"mapped_blocks\": %zu, \"mapped_cache_bytes\": %zu, "
	        "\"in_use_bytes\": %zu, \"peak_in_use_bytes\": %zu, \"free_bytes\": %zu, "
	        "\"free_blocks\": %zu, \"cached_bytes\": %zu, \"cached_blocks\": %zu, "
	        "\"released_bytes\": %zu},\n",
	        t->heap_bytes, t->heap_mapped_bytes, t->mapped_bytes, t->mapped_blocks,
	        t->mapped_cache_bytes, t->in_use_bytes, t->peak_in_use_bytes, t->free_bytes,
	        t->free_blocks, t->cached_bytes, t->cached_blocks, t->released_bytes);
}

/* The heap's classes that hold free chunks, and the caches' classes that
   hold blocks: [lo, hi] in chunk bytes, headers included ("hi": null for
   the last class, which has no upper bound). */
static void print_classes(FILE *f, const struct info *in)
{
	fputs("  \"size_classes\": {\n    \"heap_free\": [", f);
	const char *sep = "";
	for (unsigned b = 0; b < BIN_COUNT; b++) {
		if (!in->bin_count[b])
			continue;
		fprintf(f, "%s\n      {\"lo\": %zu, \"hi\": ", sep, osmem_bin_smallest(b));
		if (b + 1 < BIN_COUNT)
			fprintf(f, "%zu", osmem_bin_smallest(b + 1) - 1);
		else
			fputs("null", f);
		fprintf(f, ", \"count\": %zu, \"bytes\": %zu}", in->bin_count[b], in->bin_bytes[b]);
		sep = ",";
	}
	fputs("],\n    \"thread_cached\": [", f);
	sep = "";
	for (unsigned c = 0; c < CACHE_CLASSES; c++) {
		if (!in->cached[c])
			continue;
		size_t lo = cache_class_size(c), hi = lo;
		if (c >= CACHE_EXACT_LISTS) {
			if (lo <= CACHE_EXACT_MAX_CHUNK)
				lo = CACHE_EXACT_MAX_CHUNK + OSMEM_ALIGN;
			hi = c + 1 < CACHE_CLASSES ? cache_class_size(c + 1) - 1 : CACHE_MAX_CHUNK;
		}
		fprintf(f, "%s\n      {\"lo\": %zu, \"hi\": %zu, \"count\": %zu}", sep, lo, hi,
		        in->cached[c]);
		sep = ",";
	}
	fputs("]\n  },\n", f);
}

static void print_arenas(FILE *f, const struct info *in)
{
	fputs("  \"arenas\": [", f);
	for (unsigned i = 0; i < in->arenas; i++) {
		const struct arena_info *a = &in->arena[i];
		fprintf(f,
		        "%s\n    {\"index\": %u, \"uses_brk\": %s, \"segments\": %zu, "
		        "\"brk_bytes\": %zu, \"mapped_bytes\": %zu, \"used_bytes\": %zu, "
		        "\"free_bytes\": %zu, \"free_blocks\": %zu, \"top_bytes\": %zu, "
		        "\"released_bytes\": %zu}",
		        i ? "," : "", i, a->uses_brk ? "true" : "false", a->segments, a->brk_bytes,
		        a->mapped_bytes, a->used_bytes, a->free_bytes, a->free_chunks, a->top_bytes,
		        a->released_bytes);
	}
	fputs("],\n", f);
}

/* Addresses as hexadecimal strings: a JSON number of 64 bits does not
   survive a parser that reads numbers as doubles. */
static void print_mapped(FILE *f, const struct info *in)
{
	fprintf(f,
	        "  \"mapped\": {\"blocks\": %zu, \"bytes\": %zu, \"huge_blocks\": %zu, "
	        "\"huge_bytes\": %zu, \"cache\": {\"bytes\": %zu, \"limit\": %zu, \"extents\": [",
	        in->mapped_blocks, in->mapped_bytes, in->huge_blocks, in->huge_bytes,
	        in->map_cache_bytes, in->map_cache_limit);
	for (unsigned i = 0; i < in->extents; i++)
		fprintf(f, "%s{\"base\": \"0x%" PRIxPTR "\", \"bytes\": %zu, \"cold\": %zu}",
		        i ? ", " : "", in->extent[i].base, in->extent[i].len, in->extent[i].cold);
	fputs("]}},\n", f);
}

static void print_settings(FILE *f, const struct info *in)
{
	const struct settings_info *o = &in->opt;
	fprintf(f,
	        "  \"settings\": {\"mmap_threshold\": %zu, \"trim_threshold\": %zu, "
	        "\"top_pad\": %zu, \"map_cache\": %zu, \"map_cache_lifetime_ns\": %lld, "
	        "\"huge_grow\": %zu, \"arenas\": %zu, \"cache_max\": %zu, \"check\": %d, "
	        "\"page_size\": %zu}\n",
	        o->mmap_threshold, o->trim_threshold, o->top_pad, o->map_cache,
	        o->map_cache_lifetime_ns, o->huge_grow, o->arenas, o->cache_max, o->check_level,
	        osmem_g.page_size);
}

OSMEM_PUBLIC int os_malloc_info(int options, FILE *stream)
{
	osmem_ensure_started();
	if (options != 0 || !stream) {
		errno = EINVAL;
		return -1;
	}
	struct info in = { .arenas = 0 };
	take_snapshot(&in);
	/* errno is cleared to tell a failure of this call's writes from a
	   stream that failed before it, and given back on success. */
	int saved = errno;
	errno = 0;
	fputs("{\n  \"version\": ", stream);
	print_string(stream, os_version());
	fputs(",\n", stream);
	print_totals(stream, &in.totals);
	print_classes(stream, &in);
	print_arenas(stream, &in);
	print_mapped(stream, &in);
	print_settings(stream, &in);
	fputs("}\n", stream);
	if (fflush(stream) != 0 || ferror(stream)) {
		/* A stream that was already in error, with nothing failing now,
		   has no errno to show. */
		if (errno == 0)
			errno = EIO;
		return -1;
	}
	errno = saved;
	return 0;
}
