/*
 * heapview.c - see heapview.h.  Built only into the tests.
 *
 * SPDX-License-Identifier: MIT
 */
#include "heapview.h"

#include "../src/cache.h"
#include "../src/arena.h"
#include "../src/init.h"
#include "../src/mapped.h"
#include "../src/walk.h"

#include <osmem.h>

struct collect {
	struct hv_block *out;
	size_t max, n;
};

static void collect_one(void *arg, const void *payload, size_t size, bool is_free)
{
	struct collect *c = arg;
	if (c->n < c->max)
		c->out[c->n] = (struct hv_block){ payload, size, is_free };
	c->n++;
}

static void ensure_init(void)
{
	osmem_ensure_started();
}

/* Verifies every arena, showing VISIT their chunks; the first problem
   found, or NULL. */
static const char *verify_all(osmem_visit_fn visit, void *arg)
{
	const void *at;
	ensure_init();
	return osmem_arenas_verify(visit, arg, &at);
}

size_t hv_blocks(struct hv_block *out, size_t max)
{
	struct collect c = { out, max, 0 };
	verify_all(collect_one, &c);
	return c.n;
}

size_t hv_segments(struct hv_segment *out, size_t max)
{
	ensure_init();
	osmem_arenas_lock_all();
	size_t n = osmem_segments.nsegs;
	for (size_t i = 0; i < n && i < max; i++)
		out[i] = (struct hv_segment){ osmem_segments.segs[i].base, osmem_segments.segs[i].end,
		                              osmem_segments.segs[i].from_brk };
	osmem_arenas_unlock_all();
	return n;
}

struct find {
	const void *p;
	struct hv_block *out;
	bool found;
};

static void find_one(void *arg, const void *payload, size_t size, bool is_free)
{
	struct find *f = arg;
	if (payload == f->p) {
		*f->out = (struct hv_block){ payload, size, is_free };
		f->found = true;
	}
}

bool hv_find(const void *p, struct hv_block *out)
{
	struct find f = { p, out, false };
	verify_all(find_one, &f);
	return f.found;
}

void hv_drain_cache(void)
{
	ensure_init();
	osmem_cache_flush();
}

void hv_flush_cache(void)
{
	hv_drain_cache();
	/* And what the heap left waiting: pages to give back, a top to trim. */
	struct arena *h = osmem_my_arena ? osmem_my_arena : osmem_main_arena;
	arena_lock(h);
	osmem_heap_settle(h);
	arena_unlock(h);
}

size_t hv_my_kept_bytes(void)
{
	return cache_kept(osmem_my_cache);
}

void hv_ask_all_to_drain(void)
{
	osmem_cache_ask_all_to_drain();
}

size_t hv_remote_blocks(void)
{
	size_t bytes, blocks;
	ensure_init();
	osmem_arena_remote_totals(&bytes, &blocks);
	return blocks;
}

void hv_free_now(void *p)
{
	os_free(p);
	hv_flush_cache();
}

const char *hv_verify(void)
{
	return verify_all(NULL, NULL);
}

size_t hv_page_size(void) { ensure_init(); return osmem_g.page_size; }
size_t hv_top_pad(void) { ensure_init(); return osmem_g.opt.top_pad; }
size_t hv_trim_threshold(void) { ensure_init(); return osmem_g.opt.trim_threshold; }
size_t hv_mmap_threshold(void) { ensure_init(); return osmem_g.opt.mmap_threshold; }
size_t hv_cache_max_payload(void) { return CACHE_MAX_CHUNK - CHUNK_HEADER; }
size_t hv_cache_max(void) { ensure_init(); return osmem_g.opt.cache_max; }
size_t hv_waiting_limit(void) { ensure_init(); return osmem_ledger_limit(); }
size_t hv_brk_bytes(void) { return osmem_main_arena->segs.brk_bytes; }

size_t hv_map_segment_bytes(void)
{
	size_t n = 0;
	for (unsigned i = 0; i < osmem_arena_count(); i++)
		n += osmem_arenas[i].segs.mapped_bytes;
	return n;
}

void hv_map_cache_off(void)
{
	ensure_init();
	osmem_g.opt.map_cache = 0;
}

size_t hv_map_cache_limit(void)
{
	ensure_init();
	return osmem_g.opt.map_cache;
}

/* Sorted by address, so that tests can name "the first" extent. */
size_t hv_map_cache_extents(struct hv_extent *out, size_t max)
{
	size_t n = 0;
	void *base;
	size_t len, cold;
	ensure_init();
	osmem_mapped_lock();
	osmem_mapped_spare_flush();
	for (unsigned i = 0; osmem_mapcache_extent(i, &base, &len, &cold); i++, n++) {
		if (n >= max)
			continue;
		size_t j = n;
		for (; j > 0 && out[j - 1].base > (uintptr_t)base; j--)
			out[j] = out[j - 1];
		out[j] = (struct hv_extent){ (uintptr_t)base, len, cold };
	}
	osmem_mapped_unlock();
	return n;
}

void hv_map_cache_lifetime(long long ns)
{
	ensure_init();
	osmem_g.opt.map_cache_lifetime_ns = ns;
}

void hv_map_cache_empty(void)
{
	ensure_init();
	osmem_mapped_lock();
	osmem_mapped_spare_flush();
	osmem_mapcache_trim(0);
	osmem_mapped_unlock();
}

struct hv_map_calls hv_map_calls(void)
{
	return (struct hv_map_calls){
		__atomic_load_n(&osmem_os_calls.map, __ATOMIC_RELAXED),
		__atomic_load_n(&osmem_os_calls.unmap, __ATOMIC_RELAXED),
		__atomic_load_n(&osmem_os_calls.remap, __ATOMIC_RELAXED),
		__atomic_load_n(&osmem_os_calls.released_bytes, __ATOMIC_RELAXED),
		__atomic_load_n(&osmem_os_calls.advise, __ATOMIC_RELAXED),
	};
}

size_t hv_huge_grow(void)
{
	ensure_init();
	return osmem_g.opt.huge_grow;
}
