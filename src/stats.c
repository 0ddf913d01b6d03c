/*
 * stats.c - what the allocator can tell about itself: os_mallinfo,
 * os_malloc_stats, os_heap_check, and the OSMEM_STATS summary at exit.
 *
 * SPDX-License-Identifier: MIT
 */
#include <osmem.h>

#include "arena.h"
#include "cache.h"
#include "init.h"
#include "mapped.h"
#include "walk.h"

#include <string.h>
#include <unistd.h>


OSMEM_PUBLIC struct os_mallinfo os_mallinfo(void)
{
	struct os_mallinfo mi = { 0 };
	osmem_ensure_started();
	osmem_mapped_stats(&mi.mapped_blocks, &mi.mapped_bytes, &mi.mapped_cache_bytes);
	size_t used = 0;
	for (unsigned i = 0; i < osmem_arena_count(); i++) {
		struct arena *h = &osmem_arenas[i];
		arena_lock(h);
		mi.heap_bytes += h->segs.brk_bytes;
		mi.heap_mapped_bytes += h->segs.mapped_bytes;
		mi.free_bytes += h->stats.free_bytes;
		mi.free_blocks += h->stats.free_chunks;
		used += h->stats.used_bytes;
		mi.released_bytes += osmem_heap_released_bytes(h);
		heap_usage_flush(h);
		arena_unlock(h);
	}
	size_t overhead;
	osmem_cache_totals(&mi.cached_bytes, &mi.cached_blocks, &overhead, NULL);
	/* Blocks freed into another thread's arena and not yet taken back
	   by it are held the same way: freed, not yet in the heap. */
	size_t remote_bytes, remote_blocks;
	osmem_arena_remote_totals(&remote_bytes, &remote_blocks);
	mi.cached_bytes += remote_bytes;
	mi.cached_blocks += remote_blocks;
	/* The caches are counted after the arenas, and blocks move between
	   them meanwhile: the difference is only an estimate while threads
	   allocate, and never negative. */
	size_t held = mi.cached_bytes + overhead;
	mi.in_use_bytes = (used > held ? used - held : 0) + mi.mapped_bytes;
	mi.peak_in_use_bytes = __atomic_load_n(&osmem_usage.peak, __ATOMIC_RELAXED);
	return mi;
}

/* The structure as it was before released_bytes, for programs built
   against that osmem.h: they call os_mallinfo by its first name, which
   must not write past the end of the structure they know. */
struct os_mallinfo_v1 {
	size_t heap_bytes, heap_mapped_bytes, mapped_bytes, mapped_blocks, mapped_cache_bytes,
		in_use_bytes, peak_in_use_bytes, free_bytes, free_blocks, cached_bytes,
		cached_blocks;
};
_Static_assert(offsetof(struct os_mallinfo, released_bytes) == sizeof(struct os_mallinfo_v1),
               "the first layout is a prefix of the current one");

OSMEM_PUBLIC struct os_mallinfo_v1 osmem_mallinfo_v1(void) __asm__("os_mallinfo");
struct os_mallinfo_v1 osmem_mallinfo_v1(void)
{
	struct os_mallinfo mi = os_mallinfo();
	struct os_mallinfo_v1 v1;
	memcpy(&v1, &mi, sizeof(v1));
	return v1;
}

static void stat_line(int fd, const char *a, size_t x, const char *b, size_t y, const char *c)
{
	struct osmem_line l = { .len = 0 };
	osmem_line_put(&l, "osmem: ");
	osmem_line_put(&l, a);
	osmem_line_put_dec(&l, x);
	osmem_line_put(&l, b);
	osmem_line_put_dec(&l, y);
	osmem_line_put(&l, c);
	osmem_line_write_to(fd, &l);
}

static void print_summary(int fd)
{
	struct os_mallinfo mi = os_mallinfo();
	stat_line(fd, "heap ", mi.heap_bytes + mi.heap_mapped_bytes, " bytes (", mi.heap_mapped_bytes,
	          " of them mapped because brk failed)");
	stat_line(fd, "in use ", mi.in_use_bytes, " bytes, peak ", mi.peak_in_use_bytes, " bytes");
	stat_line(fd, "free ", mi.free_bytes, " bytes in ", mi.free_blocks, " heap blocks");
	stat_line(fd, "cached ", mi.cached_bytes, " bytes in ", mi.cached_blocks, " blocks");
	stat_line(fd, "mapped ", mi.mapped_bytes, " bytes in ", mi.mapped_blocks, " large blocks");
	struct osmem_line l = { .len = 0 };
	osmem_line_put(&l, "osmem: released ");
	osmem_line_put_dec(&l, mi.released_bytes);
	osmem_line_put(&l, " bytes of free heap given back to the kernel (still mapped)");
	osmem_line_write_to(fd, &l);
	stat_line(fd, "kept for reuse ", mi.mapped_cache_bytes,
	          " bytes of freed mappings (limit ", osmem_g.opt.map_cache, " bytes)");
}

OSMEM_PUBLIC void os_malloc_stats(void)
{
	print_summary(STDERR_FILENO);
}

/* The whole check behind os_heap_check and OSMEM_CHECK=2, reported as a
   misuse of FUNC when something is wrong. */
void osmem_check_everything(const char *func)
{
	const void *at;
	const char *err = osmem_arenas_verify(NULL, NULL, &at);
	if (!err)
		err = osmem_cache_verify(&at);
	if (!err)
		err = osmem_mapped_verify(&at);
	if (err)
		osmem_fatal(func, err, at);
}


OSMEM_PUBLIC int os_heap_check(void)
{
	osmem_ensure_started();
	osmem_check_everything("os_heap_check");
	return 0;
}

/* OSMEM_STATS=1: the summary when the program ends.  A destructor rather
   than atexit, which the allocator must not call; and written to a copy of
   standard error taken at start-up, since many programs close standard
   error in their own exit handlers, which run first. */
__attribute__((__destructor__)) static void print_stats_at_exit(void)
{
	if (__atomic_load_n(&osmem_g.ready, __ATOMIC_ACQUIRE) && osmem_g.opt.print_stats)
		print_summary(osmem_g.opt.stats_fd);
}
