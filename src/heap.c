/*
 * heap.c - carving, freeing with coalescing, and resizing in place.
 *
 * bins.c finds the free chunk that fits best; this file splits it to size,
 * and on free merges a block with its free neighbours at once, through
 * the boundary tags of chunk.h, before handing the result back to bins.c.
 * Growing and trimming the heap is segment.c's job.
 *
 * SPDX-License-Identifier: MIT
 */
#include "heap.h"

#include <string.h>

/* ---- reading headers safely -------------------------------------------- */

/* Walks SEG from its base to tell apart, for a header that failed its
   check, a pointer the heap never handed out, a block already freed and
   merged, and a damaged header.  Only ever runs on the way to abort(). */
void osmem_report_bad_header(const struct segment *seg, const struct chunk *bad, const char *func)
{
	const void *p = chunk_payload(bad);
	uintptr_t a = seg->base, target = (uintptr_t)bad;
	uintptr_t end = __atomic_load_n(&seg->end, __ATOMIC_RELAXED);
	while (a < end) {
		uint64_t v;
		const struct chunk *c = (const struct chunk *)a;
		if (!unseal(&c->tag, &v))
			break;
		size_t size = tag_size(v);
		if (a == target)
			break;
		if (tag_state(v) == CHUNK_FENCE || size == 0)
			break;
		if (target > a && target < a + size)
			osmem_fatal(func, tag_state(v) == CHUNK_FREE ? "double free detected"
			                                              : "invalid pointer", p);
		a += size;
	}
	if (a == target)
		osmem_fatal(func, "corrupted block header", p);
	osmem_fatal(func, "invalid pointer", p);
}

/* A header that carries a valid check value but is no live block's. */
void osmem_report_bad_tag(const struct chunk *c, uint64_t value, const char *func)
{
	const void *p = chunk_payload(c);
	switch (tag_state(value)) {
	case CHUNK_USED:
		osmem_fatal(func, "corrupted block header", p);
	case CHUNK_FREE:
		osmem_fatal(func, "double free detected", p);
	default:
		osmem_fatal(func, "invalid pointer", p);
	}
}

/* A live block whose own boundary tag, or the one after it, is damaged:
   the latter is what an overflow past the end of its payload breaks. */
void osmem_report_bad_neighbours(const struct chunk *c, const char *func)
{
	uint64_t v;
	if (!unseal(&c->prev_tag, &v))
		osmem_fatal(func, "corrupted block header", chunk_payload(c));
	osmem_fatal(func, "heap overflow: header after the block is corrupted", chunk_payload(c));
}

/* ---- carving ------------------------------------------------------------ */

/* Hands out the first CS bytes of free chunk F (already out of its bin),
   returning the rest to the bins when it can hold a chunk of its own.
   *DIRTY gets how many payload bytes may be non-zero (for os_calloc). */
/* OSMEM_CHECK=2: the free bytes about to be handed out must still be as
   free left them: the fill, or zero (released or wiped memory).  Bytes at
   or above fresh_from were never handed out and are zero by the segment's
   invariant; they are not read (valgrind takes new brk memory as
   undefined). */
static void verify_freed(const struct segment *seg, struct chunk *f, size_t cs)
{
	const unsigned char *p = (const unsigned char *)chunk_payload(f) + 16;
	const unsigned char *end = (const unsigned char *)f + cs;
	if ((uintptr_t)end > seg->fresh_from)
		end = (const unsigned char *)seg->fresh_from;
	for (; p < end; p++)
		if (*p != OSMEM_FREED_FILL && *p != 0)
			osmem_fatal("os_malloc", "write after free detected", chunk_payload(f));
}

static struct chunk *carve(struct heap *h, struct chunk *f, size_t fsize, size_t cs,
                           size_t *dirty)
{
	assert(fsize >= cs && cs >= CHUNK_MIN && cs % OSMEM_ALIGN == 0);
	struct segment *seg = heap_segment_find(h, (uintptr_t)f);
	if (unlikely(osmem_g.opt.check_level > 1))
		verify_freed(seg, f, fsize - cs >= CHUNK_MIN ? cs : fsize);
	size_t rest = fsize - cs;
	if (rest >= CHUNK_MIN) {
		struct chunk *r = chunk_at(f, cs);
		chunk_set_prev(r, cs);
		chunk_set_prev(chunk_at(r, rest), rest);
		osmem_free_put(h, r, rest);
	} else {
		cs = fsize;
	}
	chunk_set_tag(f, cs, CHUNK_USED);
	/* The word where a thread cache keeps its "freed" mark: free reads it,
	   so it must hold something defined (valgrind), and not a mark. */
	((uint64_t *)chunk_payload(f))[1] = 0;

	uintptr_t payload = (uintptr_t)chunk_payload(f), end = (uintptr_t)f + cs;
	if (dirty) {
		size_t len = cs - CHUNK_HEADER;
		size_t d = seg->fresh_from > payload ? seg->fresh_from - payload : 0;
		if (d < sizeof(struct free_links))
			d = sizeof(struct free_links);
		*dirty = d < len ? d : len;
	}
	if (seg->fresh_from < end)
		seg->fresh_from = end;

	h->stats.used_bytes += cs;
	heap_usage_change(h, (intptr_t)cs);
	return f;
}

struct chunk *osmem_heap_alloc_run(struct heap *h, size_t cs, size_t most, size_t *got)
{
	size_t size;
	struct chunk *f = osmem_free_best_fit(h, cs, &size);
	if (!f)
		return NULL;
	f = carve(h, f, size, size >= most ? most : cs, NULL);
	uint64_t v;
	unseal(&f->tag, &v);
	*got = tag_size(v);
	return f;
}

struct chunk *osmem_heap_alloc(struct heap *h, size_t cs, size_t *dirty)
{
	size_t size;
	struct chunk *f = osmem_free_best_fit(h, cs, &size);
	if (!f) {
		f = osmem_segment_grow(h, cs);
		if (!f)
			return NULL;
		enum chunk_state st;
		size = osmem_chunk_size_checked(f, &st, "os_malloc");
		osmem_free_take(h, f, size, "os_malloc");
	}
	return carve(h, f, size, cs, dirty);
}

/* A USED chunk of at least CS bytes whose payload is aligned to ALIGN (a
   power of two above OSMEM_ALIGN): carved from a larger chunk, with the
   space before the aligned payload and after the block given back. */
struct chunk *osmem_heap_alloc_aligned(struct heap *h, size_t cs, size_t align)
{
	struct chunk *c = osmem_heap_alloc(h, cs + align + CHUNK_MIN, NULL);
	if (!c)
		return NULL;
	uintptr_t p = (uintptr_t)chunk_payload(c);
	uintptr_t ap = osmem_align_up(p, align);
	if (ap != p) {
		/* The space before must be able to stand as a chunk. */
		if (ap - p < CHUNK_MIN)
			ap = osmem_align_up(p + CHUNK_MIN, align);
		size_t lead = ap - p;
		uint64_t v;
		unseal(&c->tag, &v);
		size_t size = tag_size(v);
		struct chunk *a = chunk_at(c, lead);
		chunk_set_tag(c, lead, CHUNK_USED);
		chunk_set_prev(a, lead);
		chunk_set_tag(a, size - lead, CHUNK_USED);
		chunk_set_prev(chunk_at(a, size - lead), size - lead);
		osmem_heap_release(h, c, "os_aligned_alloc");
		c = a;
	}
	osmem_heap_resize(h, c, cs, cs, "os_aligned_alloc");
	return c;
}

/* ---- freeing ------------------------------------------------------------ */

/* Invariant: a free chunk inside the heap (not the top) of at least the
   trim threshold has had the pages inside it given back to the kernel.
   When a free makes or grows such a chunk, the pages of the parts that
   were not yet given back, [LO, HI), are; parts that were already that
   large were released when they became free. */
void osmem_release_pages(struct chunk *c, size_t size, uintptr_t lo, uintptr_t hi)
{
	if (size < osmem_g.opt.trim_threshold)
		return;
	/* Whole pages around [LO, HI), but only those wholly inside C past
	   its header and links. */
	size_t page = osmem_g.page_size;
	uintptr_t first = osmem_align_up((uintptr_t)c + CHUNK_MIN, page);
	uintptr_t end = osmem_align_down((uintptr_t)c + size, page);
	lo = osmem_align_down(lo, page);
	hi = osmem_align_up(hi, page);
	if (lo < first)
		lo = first;
	if (hi > end)
		hi = end;
	if (hi > lo)
		osmem_os_release((void *)lo, hi - lo);
}

/* OSMEM_CHECK=2: fill a block being freed, but only below fresh_from:
   the tail a resize gives back may never have been handed out, and fresh
   memory must stay zero (see struct segment). */
static void fill_freed(struct heap *h, struct chunk *c, size_t size)
{
	const struct segment *seg = heap_segment_find(h, (uintptr_t)c);
	uintptr_t lo = (uintptr_t)chunk_payload(c), hi = (uintptr_t)c + size;
	if (hi > seg->fresh_from)
		hi = seg->fresh_from;
	if (hi > lo)
		memset((void *)lo, OSMEM_FREED_FILL, hi - lo);
}

/* Returns USED chunk C to the heap, merging it with free neighbours, after
   the same checks a free from the program gets (osmem_heap_check_block). */
void osmem_heap_release(struct heap *h, struct chunk *c, const char *func)
{
	size_t size = osmem_heap_check_block(heap_segment_find(h, (uintptr_t)c), c, func);
	osmem_heap_release_checked(h, c, size, func);
}

/* The same for a chunk of SIZE bytes that osmem_heap_check_block passed
   without the lock: only a free that raced with ours is looked for again,
   which cannot happen before there is a second thread. */
void osmem_heap_release_checked(struct heap *h, struct chunk *c, size_t size, const char *func)
{
	uint64_t v;
	if (!osmem_single_threaded() &&
	    __atomic_load_n(&c->tag, __ATOMIC_RELAXED) != seal(&c->tag, (uint64_t)size | CHUNK_USED))
		osmem_fatal(func, "double free detected", chunk_payload(c));
	struct chunk *n = chunk_at(c, size);
	assert(size >= CHUNK_MIN && size % OSMEM_ALIGN == 0);
	if (unlikely(osmem_g.opt.check_level > 1))
		fill_freed(h, c, size);
	/* The range whose pages may still be resident after the merges. */
	uintptr_t resident_lo = (uintptr_t)c, resident_hi = (uintptr_t)c + size;
	size_t big = osmem_g.opt.trim_threshold;
	h->stats.used_bytes -= size;
	heap_usage_change(h, -(intptr_t)size);

	if (!unseal(&c->prev_tag, &v))
		osmem_fatal(func, "corrupted block header", chunk_payload(c));
	size_t prev_size = (size_t)v;
	if (prev_size) {
		struct chunk *p = chunk_at(c, (size_t)0 - prev_size);
		enum chunk_state st;
		size_t psize = osmem_chunk_size_checked(p, &st, func);
		if (psize != prev_size)
			osmem_fatal(func, "corrupted block header", chunk_payload(p));
		if (st == CHUNK_FREE) {
			osmem_free_take(h, p, psize, func);
			chunk_wipe(c);
			if (psize < big)
				resident_lo = (uintptr_t)p;
			c = p;
			size += psize;
		}
	}

	enum chunk_state nst;
	size_t nsize = osmem_chunk_size_checked(n, &nst, func);
	if (nst == CHUNK_FREE) {
		osmem_free_take(h, n, nsize, func);
		chunk_wipe_free(n);
		/* Wiping N's header and links touched its first page too. */
		resident_hi += nsize < big ? nsize : CHUNK_MIN;
		size += nsize;
		n = chunk_at(c, size);
		nsize = osmem_chunk_size_checked(n, &nst, func);
	}
	chunk_set_prev(n, size);
	osmem_free_put(h, c, size);

	if (nst == CHUNK_FENCE) {
		/* Trimming has work only above the threshold, or when a whole
		   mapped segment other than the newest is free (it may go back). */
		struct segment *seg = heap_segment_find(h, (uintptr_t)c);
		if (size > osmem_g.opt.trim_threshold ||
		    ((uintptr_t)c == seg->base && !seg->from_brk && seg != h->newest))
			osmem_segment_trim(h, seg, c);
	} else {
		osmem_release_pages(c, size, resident_lo, resident_hi);
	}
}

/* ---- resizing in place -------------------------------------------------- */

/* Shrinks or grows USED chunk C to at least CS and, when a free neighbour
   has the room, at most ROOM bytes (ROOM >= CS), without moving it, using
   that neighbour or the top of the heap; the top grows only by what CS
   lacks.  False when it cannot. */
bool osmem_heap_resize(struct heap *h, struct chunk *c, size_t cs, size_t room, const char *func)
{
	uint64_t v;
	unseal(&c->tag, &v);
	size_t size = tag_size(v);
	assert(room >= cs && room % OSMEM_ALIGN == 0);

	if (cs > size) {
		struct chunk *n = chunk_at(c, size);
		enum chunk_state st;
		size_t nsize = osmem_chunk_size_checked(n, &st, func);
		size_t have = size + (st == CHUNK_FREE ? nsize : 0);
		if (have < cs) {
			/* The heap top: a fence right after us or after our free
			   neighbour lets the segment grow by what is missing. */
			struct chunk *last = st == CHUNK_FREE ? n : c;
			struct chunk *after = st == CHUNK_FREE ? chunk_at(n, nsize) : n;
			enum chunk_state ast;
			osmem_chunk_size_checked(after, &ast, func);
			if (ast != CHUNK_FENCE || !osmem_segment_extend_in_place(h, last, cs - have))
				return false;
			nsize = osmem_chunk_size_checked(n, &st, func);
			room = cs;
		}
		/* N is now free and big enough together with C.  What is left of
		   it past the new end stays free where it is: the chunk after N
		   is not free (free chunks are never adjacent), so there is
		   nothing to merge it with. */
		size_t total = size + nsize;
		size_t keep = total > room && total - room >= CHUNK_MIN ? room : total;
		osmem_free_take(h, n, nsize, func);
		chunk_wipe_free(n);
		chunk_set_tag(c, keep, CHUNK_USED);
		if (keep < total) {
			struct chunk *r = chunk_at(c, keep);
			chunk_set_prev(r, keep);
			chunk_set_prev(chunk_at(r, total - keep), total - keep);
			osmem_free_put(h, r, total - keep);
		} else {
			chunk_set_prev(chunk_at(c, total), total);
		}
		h->stats.used_bytes += keep - size;
		heap_usage_change(h, (intptr_t)(keep - size));
		size = keep;
	} else if (size - cs >= CHUNK_MIN) {
		/* Give the tail back: make it a used chunk of its own and free it,
		   which merges it with whatever free space follows. */
		struct chunk *t = chunk_at(c, cs);
		chunk_set_tag(c, cs, CHUNK_USED);
		chunk_set_prev(t, cs);
		chunk_set_tag(t, size - cs, CHUNK_USED);
		chunk_set_prev(chunk_at(t, size - cs), size - cs);
		osmem_heap_release(h, t, func);
		size = cs;
	}
	/* The block now owns bytes the caller will write: they are no longer
	   known to be zero. */
	struct segment *seg = heap_segment_find(h, (uintptr_t)c);
	if (seg->fresh_from < (uintptr_t)c + size)
		seg->fresh_from = (uintptr_t)c + size;
	return true;
}
