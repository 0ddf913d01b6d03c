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
 * The main arena's mapped segments (made when sbrk fails) are trimmed like
 * the break, their free tail unmapped, and one that empties goes back
 * whole.  The other arenas' segments keep their size for the life of the
 * process, and trimming gives their free pages back with madvise instead:
 * those arenas grow and shrink with their threads, and a segment given
 * back would soon be made again in a new slot of the table, which has
 * SEGMENT_MAX of them and never reuses one (lookups read it without a
 * lock).
 *
 * SPDX-License-Identifier: MIT
 */
#include "heap.h"

#include <string.h>

/* The preallocated chunk: the first small request asks for this much. */
#define SEGMENT_MIN ((size_t)128 * 1024)
/* mmap-backed segments start here and double up to the cap. */
#define MAP_SEGMENT_FIRST ((size_t)1 << 20)
#define MAP_SEGMENT_CAP ((size_t)64 << 20)

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

static void count_bytes(struct heap *h, const struct segment *seg, intptr_t delta)
{
	if (seg->from_brk)
		h->stats.brk_bytes += (size_t)delta;
	else
		h->stats.mapped_bytes += (size_t)delta;
}

/* Makes [lo, hi) a new segment holding one free chunk; returns that chunk,
   or NULL when the memory cannot be used (the caller gives it back). */
static struct chunk *segment_add(struct heap *h, uintptr_t lo, uintptr_t hi, bool from_brk)
{
	uintptr_t base = osmem_align_up(lo, OSMEM_ALIGN), end = osmem_align_down(hi, OSMEM_ALIGN);
	if (end < base + CHUNK_MIN + CHUNK_HEADER)
		return NULL;
	assert(base % OSMEM_ALIGN == 0 && end % OSMEM_ALIGN == 0);
	osmem_lock(&osmem_segments.lock);
	unsigned n = osmem_segments.nsegs;
	if (n == SEGMENT_MAX) {
		osmem_unlock(&osmem_segments.lock);
		return NULL;
	}
	osmem_top_retire(h);
	struct segment *seg = &osmem_segments.segs[n];
	seg->heap = h;
	seg->base = base;
	seg->end = end;
	/* Only whole pages new to the process are zero: the break may start
	   mid-page, after bytes someone else wrote, and those are cleared. */
	uintptr_t page_end = osmem_align_up(base, osmem_g.page_size);
	memset((void *)base, 0, (page_end < end ? page_end : end) - base);
	seg->fresh_from = base;
	seg->from_brk = from_brk;

	struct chunk *first = (struct chunk *)base;
	size_t size = end - CHUNK_HEADER - base;
	chunk_set_prev(first, 0);
	chunk_set_prev(fence_of(seg), size);
	chunk_set_tag(fence_of(seg), 0, CHUNK_FENCE);
	widen_bounds_locked(base, end);
	__atomic_store_n(&osmem_segments.nsegs, n + 1, __ATOMIC_RELEASE);
	osmem_unlock(&osmem_segments.lock);
	h->newest = seg;
	count_bytes(h, seg, (intptr_t)(end - base));
	osmem_free_put(h, first, size);
	return first;
}

/* The chunk just below SEG's fence, and whether it is free. */
static struct chunk *segment_last(const struct segment *seg, bool *is_free, size_t *size)
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

/* Grows brk segment SEG at its top by at least MISSING bytes; the top of
   the segment is then one free chunk, merged with the last one if that was
   free.  False when the break is no longer ours or will not move. */
static bool segment_extend(struct heap *h, struct segment *seg, size_t missing)
{
	if (!seg->from_brk)
		return false;
	size_t grow = osmem_align_up(missing, osmem_g.page_size) + osmem_g.opt.top_pad;
	uintptr_t old_end = seg->end;
	if ((uintptr_t)osmem_os_sbrk(0) != old_end)
		return false;
	void *got = osmem_os_sbrk((intptr_t)grow);
	if (!got)
		return false;
	if ((uintptr_t)got != old_end) {
		/* Someone moved the break between our two calls: what we got is
		   ours all the same, but it is not contiguous. */
		if (!segment_add(h, (uintptr_t)got, (uintptr_t)got + grow, true))
			osmem_os_sbrk(-(intptr_t)grow);
		return false;
	}

	bool last_free;
	size_t last_size;
	struct chunk *last = segment_last(seg, &last_free, &last_size);
	struct chunk *old_fence = fence_of(seg);
	struct chunk *top;
	size_t top_size;
	if (last_free) {
		osmem_free_take(h, last, last_size, "os_malloc");
		chunk_wipe(old_fence);
		top = last;
		top_size = last_size + grow;
	} else {
		top = old_fence; /* its prev_tag already names LAST */
		top_size = grow;
	}
	uintptr_t new_end = old_end + grow;
	struct chunk *fence = (struct chunk *)(new_end - CHUNK_HEADER);
	chunk_set_prev(fence, top_size);
	chunk_set_tag(fence, 0, CHUNK_FENCE);
	__atomic_store_n(&seg->end, new_end, __ATOMIC_RELEASE);
	osmem_free_put(h, top, top_size);
	/* The new pages are zero; the rest of the page the old end was in
	   may hold what someone else wrote there, so it is cleared. */
	uintptr_t fresh = osmem_align_up(old_end, osmem_g.page_size);
	if (fresh > new_end)
		fresh = new_end;
	memset((void *)old_end, 0, fresh - old_end);
	if (seg->fresh_from > old_end)
		seg->fresh_from = old_end;
	widen_bounds(seg->base, new_end);
	count_bytes(h, seg, (intptr_t)grow);
	return true;
}

bool osmem_segment_extend_in_place(struct heap *h, struct chunk *last, size_t missing)
{
	return segment_extend(h, heap_segment_find(h, (uintptr_t)last), missing);
}

/* A mapped segment of the main arena that is free from end to end (LAST,
   of SIZE bytes, is its only chunk) goes back whole.  Its slot stays,
   empty (end == base), so lookups that run without the lock never see it
   move. */
static bool release_if_empty(struct heap *h, struct segment *seg, struct chunk *last, size_t size,
                             bool pressure)
{
	if (seg->from_brk || (!h->uses_brk && !pressure) || (uintptr_t)last != seg->base)
		return false;
	size_t len = seg->end - seg->base;
	osmem_free_take(h, last, size, "os_free");
	__atomic_store_n(&seg->end, seg->base, __ATOMIC_RELEASE);
	if (h->newest == seg)
		h->newest = NULL;
	osmem_os_unmap((void *)seg->base, len);
	count_bytes(h, seg, -(intptr_t)len);
	return true;
}

/* A free chunk of at least CS bytes, in its bin, made by growing the heap. */
struct chunk *osmem_segment_grow(struct heap *h, size_t cs)
{
	struct segment *newest = h->newest;
	if (newest && newest->from_brk) {
		struct segment *seg = newest;
		bool last_free;
		size_t last_size;
		struct chunk *last = segment_last(seg, &last_free, &last_size);
		size_t missing = last_free ? cs - last_size : cs;
		if (segment_extend(h, seg, missing))
			return last_free ? last : chunk_at(last, last_size);
	}

	/* The newest segment is kept when it empties, for growth like this
	   one; it is too small, so a mapped one of the main arena that is
	   empty goes back. */
	if (newest && !newest->from_brk && newest->end > newest->base) {
		bool last_free;
		size_t last_size;
		struct chunk *last = segment_last(newest, &last_free, &last_size);
		if (last_free)
			release_if_empty(h, newest, last, last_size, false);
	}

	/* A new segment: room for the chunk, a fence and alignment slack, and
	   a quarter of the heap so far, so that a program that keeps moving
	   the break under us ends up with few, large segments. */
	size_t need = cs + CHUNK_HEADER + OSMEM_ALIGN;
	size_t len = SEGMENT_MIN;
	size_t quarter = (h->stats.brk_bytes + h->stats.mapped_bytes) / 4;
	if (len < quarter)
		len = quarter;
	if (len < need)
		len = need;
	len = osmem_align_up(len, osmem_g.page_size);
	void *got = h->uses_brk ? osmem_os_sbrk((intptr_t)len) : NULL;
	if (got) {
		struct chunk *c = segment_add(h, (uintptr_t)got, (uintptr_t)got + len, true);
		if (c)
			return c;
		osmem_os_sbrk(-(intptr_t)len);
		return NULL;
	}

	/* No break (any more, or for this arena): continue in mappings, each
	   twice the last. */
	if (h->next_map_segment < MAP_SEGMENT_FIRST)
		h->next_map_segment = MAP_SEGMENT_FIRST;
	if (len < h->next_map_segment)
		len = h->next_map_segment;
	got = osmem_os_map(len);
	if (!got)
		return NULL;
	if (h->next_map_segment < MAP_SEGMENT_CAP)
		h->next_map_segment *= 2;
	struct chunk *c = segment_add(h, (uintptr_t)got, (uintptr_t)got + len, false);
	if (!c)
		osmem_os_unmap(got, len);
	return c;
}

/* Gives back the pages of segment SEG from KEEP_END (page-aligned, inside
   its last free chunk, past that chunk's links) up to its fence, once more
   than SLACK bytes of them may be resident: the segment keeps its size
   (its pages stay in the address space), but not its memory.  Pages at
   or above fresh_from have not been touched since they were mapped or
   last given back, so fresh_from also says where to stop, and moving it
   down to KEEP_END makes the next trim of the same free space cost
   nothing.  The page holding the fence stays; the rest of it is cleared
   so that fresh_from's promise holds. */
static void release_tail_pages(struct segment *seg, uintptr_t keep_end, size_t slack)
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

/* LAST, free and just binned, ends SEG: give back what lies beyond the trim
   threshold, keeping top_pad bytes for the next growth.  Under PRESSURE
   (a request is about to fail) everything free at the end goes, and every
   arena's segments are cut or unmapped, not only the main arena's: the
   address space is what is short. */
static void trim(struct heap *h, struct segment *seg, struct chunk *last, bool pressure)
{
	uint64_t v;
	unseal(&last->tag, &v);
	size_t size = tag_size(v);
	if ((pressure || seg != h->newest) && release_if_empty(h, seg, last, size, pressure))
		return;
	if (size <= (pressure ? 0 : osmem_g.opt.trim_threshold))
		return;
	size_t pad = pressure ? 0 : osmem_g.opt.top_pad;
	uintptr_t keep_end = osmem_align_up((uintptr_t)last + CHUNK_MIN + pad + CHUNK_HEADER,
	                                    osmem_g.page_size);
	if (keep_end >= seg->end || seg->end - keep_end < osmem_g.page_size)
		return;
	size_t slack = pressure ? 0 : osmem_g.opt.trim_threshold;
	if (!h->uses_brk && !pressure) {
		release_tail_pages(seg, keep_end, slack);
		return;
	}
	size_t release = seg->end - keep_end;
	if (seg->from_brk) {
		/* The break can be lowered only while it is still our end.
		   Once something else moved it (the C library's malloc, most
		   often, which shares it), what lies above is not ours: the
		   free pages are given back instead, and the heap keeps its
		   address range. */
		if ((uintptr_t)osmem_os_sbrk(0) != seg->end || !osmem_os_sbrk(-(intptr_t)release)) {
			release_tail_pages(seg, keep_end, slack);
			return;
		}
	} else {
		osmem_os_unmap((void *)keep_end, release);
	}
	osmem_free_take(h, last, size, "os_free");
	size_t new_size = keep_end - CHUNK_HEADER - (uintptr_t)last;
	struct chunk *fence = (struct chunk *)(keep_end - CHUNK_HEADER);
	chunk_set_prev(fence, new_size);
	chunk_set_tag(fence, 0, CHUNK_FENCE);
	__atomic_store_n(&seg->end, keep_end, __ATOMIC_RELEASE);
	osmem_free_put(h, last, new_size);
	count_bytes(h, seg, -(intptr_t)release);
}

void osmem_segment_trim(struct heap *h, struct segment *seg, struct chunk *last)
{
	trim(h, seg, last, false);
}

void osmem_segment_reclaim(struct heap *h)
{
	unsigned n = __atomic_load_n(&osmem_segments.nsegs, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < n; i++) {
		struct segment *seg = &osmem_segments.segs[i];
		if (seg->heap != h || seg->end == seg->base)
			continue;
		bool last_free;
		size_t last_size;
		struct chunk *last = segment_last(seg, &last_free, &last_size);
		if (last_free)
			trim(h, seg, last, true);
	}
}
