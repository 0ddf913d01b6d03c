/*
 * osmem.c - the public entry points.
 *
 * Arguments are checked and errno is set here; requests are then routed:
 * below the mmap threshold through the calling thread (cache.h: first the
 * blocks it keeps, without a lock, then its arena), at or above it to
 * mappings.  A freed heap block is kept by the thread when it may be, or
 * goes back to the arena it came from: under that arena's lock, or onto
 * its list of remote frees when another thread owns it.
 *
 * SPDX-License-Identifier: MIT
 */
#include <osmem.h>

#include "arena.h"
#include "cache.h"
#include "init.h"
#include "mapped.h"
#include "reclaim.h"
#include "walk.h"

#include <errno.h>
#include <string.h>

/* A heap block of N bytes (any size), or NULL: from what the calling
   thread keeps, or its arena.  With ZERO, the bytes read as zero; memory
   known to be fresh from the kernel is not cleared again. */
static inline void *heap_block(size_t n, bool zero)
{
	size_t dirty = 0;
	struct chunk *c = osmem_thread_alloc(chunk_size_for(n), zero ? &dirty : NULL);
	void *p = c ? chunk_payload(c) : NULL;
	if (p && zero) {
		osmem_clear(p, dirty < n ? dirty : n);
		if (dirty < n)
			osmem_mark_defined((char *)p + dirty, n - dirty);
	}
	return p;
}

/* N bytes (N <= OSMEM_MAX_REQUEST) the usual way: small ones from the
   heap, large ones in a mapping; NULL when the kernel would not give the
   memory. */
static inline void *alloc_once(size_t n, bool zero)
{
	if (unlikely(n >= osmem_g.opt.mmap_threshold))
		return osmem_mapped_alloc(n, OSMEM_ALIGN, zero);
	void *p = heap_block(n, zero);
	/* A heap that cannot grow (no break, no mappings for segments, or
	   every segment slot taken) still leaves the mappings: a small block
	   in a mapping of its own beats failing. */
	return likely(p != NULL) ? p : osmem_mapped_alloc(n, OSMEM_ALIGN, true);
}

/* The kernel refused: everything held for reuse is given back
   (osmem_reclaim) and the request is tried once more; a large request may
   then still be served by free space in the heap, which can hold a block
   of any size (it is freed like any other heap block). */
static OSMEM_COLD void *alloc_after_reclaim(size_t n, bool zero)
{
	osmem_reclaim();
	void *p = alloc_once(n, zero);
	if (!p && n >= osmem_g.opt.mmap_threshold)
		p = heap_block(n, zero);
	return p;
}

/* N bytes, or NULL with errno ENOMEM. */
static void *alloc_block(size_t n, bool zero)
{
	if (unlikely(n > OSMEM_MAX_REQUEST))
		goto fail;
	void *p = alloc_once(n, zero);
	if (likely(p != NULL))
		return p;
	p = alloc_after_reclaim(n, zero);
	if (p)
		return p;
fail:
	errno = ENOMEM;
	return NULL;
}

/* Aborts unless P could be a block: heap blocks and mapped blocks alike
   are aligned to OSMEM_ALIGN. */
static inline void check_alignment(const void *p, const char *func)
{
	if (unlikely((uintptr_t)p & (OSMEM_ALIGN - 1)))
		osmem_fatal(func, "invalid pointer", p);
}

/* The size of heap block P, which must be live, after the checks of its
   own header.  A function of its own, though always inlined (it is on
   os_realloc's fast path), so that the read of the freed mark has a name
   that valgrind reports and tests/valgrind.supp can give. */
static inline __attribute__((__always_inline__)) size_t
live_block_size(const struct segment *seg, const void *p, const char *func, const char *freed_msg)
{
	struct chunk *c = chunk_of(p);
	size_t size = osmem_heap_check_header(seg, c, func);
	/* Kept by a thread, or on an arena's remote list. */
	if (unlikely(cache_holds(c)))
		osmem_fatal(func, freed_msg, p);
	return size;
}

/* The checked size of heap block P, which must be live: its header and,
   with OSMEM_CHECK=1, the boundary tags around it. */
static size_t heap_block_size(const struct segment *seg, const void *p, const char *func,
                              const char *freed_msg)
{
	size_t size = live_block_size(seg, p, func, freed_msg);
	osmem_heap_check_neighbours(chunk_of(p), size, func);
	return size;
}

/* Releases heap chunk C of SIZE bytes in SEG, which its caller checked. */
static void release_checked_chunk(const struct segment *seg, struct chunk *c, size_t size,
                                  const char *func)
{
	if (size <= CACHE_MAX_CHUNK && osmem_cache_free(c, size, seg))
		return;
	osmem_thread_release(seg->arena, c, size, func);
}

/* A heap block's own header is checked here; the boundary tags around
   it where it goes back into the heap, which for a block kept by a thread
   or passed to its arena's owner is later (cache.h, cache_fast_free). */
static void release_block(void *p, const char *func)
{
	check_alignment(p, func);
	const struct segment *seg = heap_segment_of(p);
	if (likely(seg != NULL)) {
		size_t size = live_block_size(seg, p, func, "double free detected");
		release_checked_chunk(seg, chunk_of(p), size, func);
		return;
	}
	osmem_mapped_free(p, func);
}

/* OSMEM_CHECK=2: the whole heap is verified on every call.  The inline
   paths are then off (see cache.h's osmem_my_cache), so none skips it. */
static inline void expensive_checks(const char *func)
{
	if (unlikely(osmem_g.opt.check_level > 1))
		osmem_check_everything(func);
}

/* The slow paths of os_malloc and os_free, kept out of line so that the
   inline paths need no stack frame: they end in a tail call. */
static __attribute__((noinline)) void *malloc_slow(size_t size)
{
	void *p = cache_fast_alloc_ranged(size);
	if (p)
		return p;
	osmem_ensure_started();
	expensive_checks("os_malloc");
	return alloc_block(size, false);
}

static __attribute__((noinline)) void free_slow(void *ptr)
{
	if (osmem_cache_free_foreign(ptr))
		return;
	osmem_ensure_started();
	expensive_checks("os_free");
	release_block(ptr, "os_free");
}

OSMEM_PUBLIC void *os_malloc(size_t size)
{
	void *p = cache_fast_alloc(size);
	if (likely(p != NULL))
		return p;
	return malloc_slow(size);
}

/* The heap and the mappings never change errno on this path: every system
   call wrapper in os.c preserves it. */
OSMEM_PUBLIC void os_free(void *ptr)
{
	if (likely(cache_fast_free(ptr)) || !ptr)
		return;
	free_slow(ptr);
}

static __attribute__((noinline)) void *calloc_slow(size_t n)
{
	osmem_ensure_started();
	expensive_checks("os_calloc");
	return alloc_block(n, true);
}

/* As os_malloc, the inline paths first, which find a block only once the
   thread has a cache of its own (started, and no whole-heap checks); and
   one test of the size picks the lists to look in, where trying the exact
   lists first cost the larger requests a second test of their size. */
OSMEM_PUBLIC void *os_calloc(size_t nmemb, size_t size)
{
	size_t n;
	/* An overflow is a request larger than any: the slow path, which
	   still verifies the heap under OSMEM_CHECK=2, answers ENOMEM. */
	if (unlikely(__builtin_mul_overflow(nmemb, size, &n)))
		return calloc_slow(SIZE_MAX);
	/* A cached block has been used: it is cleared, as alloc_block would. */
	void *p = n <= CACHE_EXACT_MAX_PAYLOAD ? cache_fast_alloc(n) : cache_fast_alloc_ranged(n);
	if (likely(p != NULL))
		return osmem_clear(p, n);
	return calloc_slow(n);
}

/* Releases block P, which os_realloc has checked: a heap block of SEG
   whose chunk is SIZE bytes, or with SEG NULL a mapped one (which the
   registry vouches for again as it is unmapped). */
static void release_known_block(const struct segment *seg, void *p, size_t size, const char *func)
{
	if (seg)
		release_checked_chunk(seg, chunk_of(p), size, func);
	else
		osmem_mapped_free(p, func);
}

/* A block that os_realloc grows is usually grown again: strings and arrays
   are appended to a little at a time.  So a growing heap block that has
   to move, or to take a free neighbour, gets up to a quarter more than was
   asked for, at least 32 bytes, and keeps it while later requests stay
   within it: a run of small appends then moves the block a few times
   instead of at every 16 bytes.  A block that shrinks by less than that keeps its size too.
   Large blocks need none of this: they grow with mremap or the map cache,
   without copying. */
static size_t growth_room(size_t n)
{
	size_t room = n + (n / 4 > 32 ? n / 4 : 32);
	return room < osmem_g.opt.mmap_threshold ? room : n;
}

/* True when a heap chunk of HAVE bytes can stay as it is for a request
   whose chunk size is CS. */
static bool chunk_still_fits(size_t have, size_t cs)
{
	return cs <= have && have - cs < CHUNK_MIN + cs / 4;
}

/* Moves P's first KEEP usable bytes to a new block of N bytes, from the
   thread cache when it can, and releases P (see release_known_block). */
static void *move_block(const struct segment *seg, void *p, size_t keep, size_t n,
                        const char *func)
{
	size_t want = n > keep ? growth_room(n) : n;
	void *q = cache_fast_alloc(want);
	if (!q && want != n) {
		/* The room is a bonus: without memory for it, N bytes may
		   still be had, and errno tells of no failure then. */
		int saved = errno;
		q = alloc_block(want, false);
		if (!q)
			errno = saved;
	}
	if (!q)
		q = alloc_block(n, false);
	if (!q)
		return NULL;
	memcpy(q, p, keep < n ? keep : n);
	release_known_block(seg, p, keep + CHUNK_HEADER, func);
	return q;
}

/* False when the chunk after C (of SIZE bytes) is in use, so C cannot
   grow in place: read without the lock, as a hint only (a neighbour that
   is freed meanwhile just means a move that was not needed), and true for
   a header that fails its check, which the locked path then reports. */
static bool may_grow_in_place(const struct chunk *c, size_t size)
{
	uint64_t v;
	return !unseal(&chunk_at(c, size)->tag, &v) || tag_state(v) != CHUNK_USED;
}

OSMEM_PUBLIC void *os_realloc(void *ptr, size_t size)
{
	static const char func[] = "os_realloc";
	osmem_ensure_started();
	expensive_checks(func);
	if (!ptr)
		return alloc_block(size, false);
	check_alignment(ptr, func);
	const struct segment *seg = heap_segment_of(ptr);
	bool in_heap = seg != NULL;
	size_t have;
	if (in_heap) {
		/* A block that still fits is handed back after its header's
		   checks; the boundary tags around it, where an overflow
		   shows, are checked by everything that changes it, and by
		   its free. */
		struct chunk *c = chunk_of(ptr);
		size_t chunk = live_block_size(seg, ptr, func, "realloc of a freed block");
		if (size && size < osmem_g.opt.mmap_threshold && size <= OSMEM_MAX_REQUEST &&
		    chunk_still_fits(chunk, chunk_size_for(size)))
			return ptr;
		osmem_heap_check_neighbours(c, chunk, func);
		have = chunk - CHUNK_HEADER;
	} else {
		have = osmem_mapped_usable(ptr, func);
	}
	if (size == 0) {
		release_known_block(seg, ptr, have + CHUNK_HEADER, func);
		return NULL;
	}
	if (unlikely(size > OSMEM_MAX_REQUEST)) {
		errno = ENOMEM;
		return NULL;
	}
	bool want_small = size < osmem_g.opt.mmap_threshold;
	if (in_heap && want_small) {
		size_t cs = chunk_size_for(size), chunk = have + CHUNK_HEADER;
		if (cs < chunk || may_grow_in_place(chunk_of(ptr), chunk)) {
			size_t room = cs > chunk ? chunk_size_for(growth_room(size)) : cs;
			struct arena *h = seg->arena;
			arena_lock(h);
			bool done = osmem_heap_resize(h, chunk_of(ptr), cs, room, func);
			arena_unlock(h);
			if (done)
				return ptr;
		}
	} else if (!in_heap && !want_small && osmem_mapped_can_remap()) {
		void *q = osmem_mapped_remap(ptr, size, func);
		if (q)
			return q;
		/* The kernel would not resize or move the mapping (it may span
		   mappings it could not merge): a copy may still succeed. */
	}
	return move_block(seg, ptr, have, size, func);
}

OSMEM_PUBLIC void *os_reallocarray(void *ptr, size_t nmemb, size_t size)
{
	size_t n;
	if (__builtin_mul_overflow(nmemb, size, &n)) {
		errno = ENOMEM;
		return NULL;
	}
	return os_realloc(ptr, n);
}

OSMEM_PUBLIC size_t os_malloc_usable_size(void *ptr)
{
	static const char func[] = "os_malloc_usable_size";
	if (!ptr)
		return 0;
	osmem_ensure_started();
	check_alignment(ptr, func);
	const struct segment *seg = heap_segment_of(ptr);
	if (seg)
		return heap_block_size(seg, ptr, func, "block was already freed") - CHUNK_HEADER;
	return osmem_mapped_usable(ptr, func);
}
