/*
 * segment.c - getting heap memory from the kernel and giving it back.
 *
 * The heap grows with sbrk.  The break is shared with the rest of the
 * program (the C library's malloc, or code calling sbrk itself), so the
 * newest segment is extended only while the break is still exactly where
 * we left it; growth found anywhere else starts a new segment.  When sbrk
 * fails (a data-segment limit, a mapping in the way) the heap carries on
 * in anonymous mappings.  The break is lowered only when it is still our
 * own segment's end, so memory that is not ours is never released.
 *
 * Only the main arena uses the break: sbrk is not safe to call from two
 * threads at once, and a break shared by arenas could shrink for none of
 * them.  The other arenas grow in mappings.
 *
 * What it grows goes to the heap as a run of bytes (struct segment_growth);
 * which free chunks there are, and when to shrink, is the heap's business
 * (heap.c), which calls back down here to cut, unmap or release pages.
 *
 * SPDX-License-Identifier: MIT
 */
#include "segment.h"

#include <string.h>

/* The preallocated chunk: the first small request asks for this much. */
#define SEGMENT_MIN ((size_t)128 * 1024)
/* A mapped segment reserves this much address space (more for a larger
   first request) and commits it as it grows, starting at MAP_SEGMENT_FIRST
   at least: a thread's heap then stays one segment up to the reservation,
   as the main thread's does with the break, and every block of it is in
   the segment that the inline free checks with two compares (cache.h).
   Reserved pages cost neither memory nor commit charge. */
#define MAP_SEGMENT_RESERVE ((size_t)64 << 20)
#define MAP_SEGMENT_FIRST ((size_t)1 << 20)

static struct chunk *fence_of(const struct segment *seg)
{
	return (struct chunk *)(seg->end - CHUNK_HEADER);
}

struct segment_table osmem_segments = { .lock = OSMEM_LOCK_INIT };

/* Widens the bounds that heap_bounds_hold tests; they never shrink, since
   a trimmed range may be grown again.  With the table's lock held. */
static void widen_bounds_locked(uintptr_t lo, uintptr_t hi)
{
	if (!osmem_segments.lowest || lo < osmem_segments.lowest)
		__atomic_store_n(&osmem_segments.lowest, lo, __ATOMIC_RELAXED);
	if (hi > osmem_segments.highest)
		__atomic_store_n(&osmem_segments.highest, hi, __ATOMIC_RELAXED);
}

static void widen_bounds(uintptr_t lo, uintptr_t hi)
{
	osmem_lock(&osmem_segments.lock);
	widen_bounds_locked(lo, hi);
	osmem_unlock(&osmem_segments.lock);
}

static void count_bytes(struct segment_list *l, const struct segment *seg, intptr_t delta)
{
	if (seg->from_brk)
		l->brk_bytes += (size_t)delta;
	else
		l->mapped_bytes += (size_t)delta;
}

/* Makes [lo, hi) a new segment of L, the newest, holding one run; false
   when the memory cannot be used (the caller gives it back). */
static bool segment_add(struct segment_list *l, uintptr_t lo, uintptr_t hi, uintptr_t limit,
                        bool from_brk, struct segment_growth *g)
{
	uintptr_t base = osmem_align_up(lo, OSMEM_ALIGN), end = osmem_align_down(hi, OSMEM_ALIGN);
	if (end < base + CHUNK_MIN + CHUNK_HEADER)
		return false;
	assert(base % OSMEM_ALIGN == 0 && end % OSMEM_ALIGN == 0);
	osmem_lock(&osmem_segments.lock);
	unsigned n = osmem_segments.nsegs;
	if (n == SEGMENT_MAX) {
		osmem_unlock(&osmem_segments.lock);
		return false;
	}
	struct segment *seg = &osmem_segments.segs[n];
	seg->arena = l->owner;
	seg->base = base;
	seg->end = end;
	/* Only whole pages new to the process are zero: the break may start
	   mid-page, after bytes someone else wrote, and those are cleared. */
	uintptr_t page_end = osmem_align_up(base, osmem_g.page_size);
	memset((void *)base, 0, (page_end < end ? page_end : end) - base);
	seg->fresh_from = base;
	seg->limit = from_brk ? end : limit;
	seg->from_brk = from_brk;

	struct chunk *first = (struct chunk *)base;
	size_t size = end - CHUNK_HEADER - base;
	chunk_set_prev(first, 0);
	chunk_set_prev(fence_of(seg), size);
	chunk_set_tag(fence_of(seg), 0, CHUNK_FENCE);
	widen_bounds_locked(base, end);
	__atomic_store_n(&osmem_segments.nsegs, n + 1, __ATOMIC_RELEASE);
	osmem_unlock(&osmem_segments.lock);
	__atomic_store_n(&l->newest, seg, __ATOMIC_RELEASE);
	count_bytes(l, seg, (intptr_t)(end - base));
	*g = (struct segment_growth){ .seg = seg, .run = first, .size = size };
	return true;
}

struct chunk *osmem_segment_last(const struct segment *seg, bool *is_free, size_t *size)
{
	uint64_t v;
	struct chunk *fence = fence_of(seg);
	unseal(&fence->prev_tag, &v);
	struct chunk *last = chunk_at(fence, (size_t)0 - (size_t)v);
	unseal(&last->tag, &v);
	*is_free = tag_state(v) == CHUNK_FREE;
	*size = tag_size(v);
	return last;
}

enum segment_grown osmem_segment_extend(struct segment_list *l, struct segment *seg,
                                        size_t missing, struct segment_growth *g)
{
	size_t page = osmem_g.page_size;
	size_t grow = osmem_align_up(missing, page) + osmem_g.opt.top_pad;
	uintptr_t old_end = seg->end;
	if (!seg->from_brk) {
		/* A quarter of the segment at least, so that a heap that keeps
		   growing does so in few system calls; within the reservation.
		   (A mapped segment's end is always a page boundary.) */
		size_t quarter = osmem_align_up((old_end - seg->base) / 4, page);
		if (grow < quarter)
			grow = quarter;
		if (grow > seg->limit - old_end)
			grow = seg->limit - old_end;
		if (grow < osmem_align_up(missing, page) || !osmem_os_commit((void *)old_end, grow))
			return SEGMENT_NOT_GROWN;
	} else {
		if ((uintptr_t)osmem_os_sbrk(0) != old_end)
			return SEGMENT_NOT_GROWN;
		void *got = osmem_os_sbrk((intptr_t)grow);
		if (!got)
			return SEGMENT_NOT_GROWN;
		if ((uintptr_t)got != old_end) {
			/* Someone moved the break between our two calls: what we
			   got is ours all the same, but it is not contiguous. */
			if (segment_add(l, (uintptr_t)got, (uintptr_t)got + grow, 0, true, g))
				return SEGMENT_ADDED;
			osmem_os_sbrk(-(intptr_t)grow);
			return SEGMENT_NOT_GROWN;
		}
	}

	/* The old fence becomes the header of the run: its prev_tag already
	   names the chunk before it. */
	struct chunk *run = fence_of(seg);
	uintptr_t new_end = old_end + grow;
	struct chunk *fence = (struct chunk *)(new_end - CHUNK_HEADER);
	chunk_set_prev(fence, grow);
	chunk_set_tag(fence, 0, CHUNK_FENCE);
	__atomic_store_n(&seg->end, new_end, __ATOMIC_RELEASE);
	if (seg->from_brk)
		seg->limit = new_end;
	/* The new pages are zero; the rest of the page the old end was in
	   may hold what someone else wrote there, so it is cleared. */
	uintptr_t fresh = osmem_align_up(old_end, page);
	if (fresh > new_end)
		fresh = new_end;
	memset((void *)old_end, 0, fresh - old_end);
	if (seg->fresh_from > old_end)
		seg->fresh_from = old_end;
	widen_bounds(seg->base, new_end);
	count_bytes(l, seg, (intptr_t)grow);
	*g = (struct segment_growth){ .seg = seg, .run = run, .size = grow };
	return SEGMENT_EXTENDED;
}

void osmem_segment_unmap(struct segment_list *l, struct segment *seg)
{
	assert(!seg->from_brk);
	size_t len = seg->end - seg->base;
	size_t reserved = seg->limit - seg->base;
	__atomic_store_n(&seg->end, seg->base, __ATOMIC_RELEASE);
	if (l->newest == seg)
		__atomic_store_n(&l->newest, NULL, __ATOMIC_RELEASE);
	osmem_os_unmap((void *)seg->base, reserved);
	count_bytes(l, seg, -(intptr_t)len);
}

enum segment_grown osmem_segment_grow(struct segment_list *l, size_t cs, struct segment_growth *g)
{
	struct segment *newest = l->newest;
	if (newest) {
		bool last_free;
		size_t last_size;
		osmem_segment_last(newest, &last_free, &last_size);
		size_t missing = last_free ? cs - last_size : cs;
		enum segment_grown r = osmem_segment_extend(l, newest, missing, g);
		if (r != SEGMENT_NOT_GROWN)
			return r;
	}

	/* A new segment: room for the chunk, a fence and alignment slack, and
	   a quarter of the heap so far, so that a program that keeps moving
	   the break under us ends up with few, large segments. */
	size_t need = cs + CHUNK_HEADER + OSMEM_ALIGN;
	size_t len = SEGMENT_MIN;
	size_t quarter = (l->brk_bytes + l->mapped_bytes) / 4;
	if (len < quarter)
		len = quarter;
	if (len < need)
		len = need;
	len = osmem_align_up(len, osmem_g.page_size);
	void *got = l->uses_brk ? osmem_os_sbrk((intptr_t)len) : NULL;
	if (got) {
		if (segment_add(l, (uintptr_t)got, (uintptr_t)got + len, 0, true, g))
			return SEGMENT_ADDED;
		osmem_os_sbrk(-(intptr_t)len);
		return SEGMENT_NOT_GROWN;
	}

	/* No break (any more, or for this arena): continue in a reservation
	   of address space, committed as the segment grows. */
	if (len < MAP_SEGMENT_FIRST)
		len = MAP_SEGMENT_FIRST;
	size_t reserve = len > MAP_SEGMENT_RESERVE ? len : MAP_SEGMENT_RESERVE;
	got = osmem_os_reserve(reserve);
	if (!got && reserve > len) {
		/* Short of address space (RLIMIT_AS): no room to grow into. */
		reserve = len;
		got = osmem_os_reserve(reserve);
	}
	if (!got)
		return SEGMENT_NOT_GROWN;
	uintptr_t lo = (uintptr_t)got;
	if (osmem_os_commit(got, len) && segment_add(l, lo, lo + len, lo + reserve, false, g))
		return SEGMENT_ADDED;
	osmem_os_unmap(got, reserve);
	return SEGMENT_NOT_GROWN;
}

/* Pages at or above fresh_from have not been touched since they were
   mapped or last given back, so fresh_from also says where to stop, and
   moving it down to KEEP_END makes the next release of the same free
   space cost nothing.  The page holding the fence stays; the rest of it
   is cleared so that fresh_from's promise holds. */
void osmem_segment_release_tail(struct segment *seg, uintptr_t keep_end, size_t slack)
{
	size_t page = osmem_g.page_size;
	uintptr_t fence = seg->end - CHUNK_HEADER;
	uintptr_t fence_page = osmem_align_down(fence, page);
	uintptr_t touched_end = osmem_align_up(seg->fresh_from, page);
	if (touched_end > fence_page)
		touched_end = fence_page;
	if (keep_end >= touched_end || touched_end - keep_end <= slack)
		return;
	osmem_os_release((void *)keep_end, touched_end - keep_end);
	if (seg->fresh_from > fence_page)
		memset((void *)fence_page, 0, (seg->fresh_from < fence ? seg->fresh_from : fence) - fence_page);
	seg->fresh_from = keep_end;
}

bool osmem_segment_cut(struct segment_list *l, struct segment *seg, struct chunk *last,
                       uintptr_t keep_end, size_t slack, bool pressure)
{
	size_t release = seg->end - keep_end;
	if (seg->from_brk) {
		/* The break can be lowered only while it is still our end.
		   Once something else moved it (the C library's malloc, most
		   often, which shares it), what lies above is not ours: the
		   free pages are given back instead, and the heap keeps its
		   address range. */
		if ((uintptr_t)osmem_os_sbrk(0) != seg->end || !osmem_os_sbrk(-(intptr_t)release)) {
			osmem_segment_release_tail(seg, keep_end, slack);
			return false;
		}
		seg->limit = keep_end;
	} else if (pressure) {
		/* With the rest of its reservation: the address space may be
		   what is short. */
		osmem_os_unmap((void *)keep_end, seg->limit - keep_end);
		seg->limit = keep_end;
	} else {
		/* The segment may grow back into the range later, where a new
		   segment would take a slot of the table for good. */
		osmem_os_decommit((void *)keep_end, release);
	}
	struct chunk *fence = (struct chunk *)(keep_end - CHUNK_HEADER);
	chunk_set_prev(fence, keep_end - CHUNK_HEADER - (uintptr_t)last);
	chunk_set_tag(fence, 0, CHUNK_FENCE);
	__atomic_store_n(&seg->end, keep_end, __ATOMIC_RELEASE);
	count_bytes(l, seg, -(intptr_t)release);
	return true;
}

void osmem_release_free_pages(struct chunk *c, size_t size)
{
	osmem_release_pages_within(c, size, (uintptr_t)c, (uintptr_t)c + size);
}

/* Invariant: a free chunk inside the heap (not the top) of at least the
   trim threshold has had the pages inside it given back to the kernel.
   When a free makes or grows such a chunk, the pages of the parts that
   were not yet given back, [LO, HI), are; parts that were already that
   large were released when they became free. */
void osmem_release_pages(struct chunk *c, size_t size, uintptr_t lo, uintptr_t hi)
{
	if (size >= osmem_g.opt.trim_threshold)
		osmem_release_pages_within(c, size, lo, hi);
}

void osmem_release_pages_within(struct chunk *c, size_t size, uintptr_t lo, uintptr_t hi)
{
	if (osmem_pages_within(c, size, &lo, &hi))
		osmem_os_release((void *)lo, hi - lo);
}
