/*
 * heapwalk.c - every invariant of one arena, checked by walking it: the
 * chunks of its segments in address order, its counters, its top and its
 * bins.  The tests, os_heap_check, OSMEM_CHECK=2 and the debug build's
 * periodic check all come here.
 *
 * SPDX-License-Identifier: MIT
 */
#include "heap.h"

/* Calls VISIT for every chunk of SEG in address order; stops at the first
   broken invariant and returns its description (and where, in *AT). */
static const char *walk_segment(const struct segment *seg, osmem_visit_fn visit, void *arg,
                                size_t *free_count, size_t *free_bytes, size_t *used_bytes,
                                const void **at)
{
	uintptr_t a = seg->base, fence = seg->end - CHUNK_HEADER;
	size_t prev_size = 0;
	bool prev_free = false;
	while (a < fence) {
		struct chunk *c = (struct chunk *)a;
		uint64_t v, pv;
		*at = chunk_payload(c);
		if (!unseal(&c->tag, &v) || !unseal(&c->prev_tag, &pv))
			return "corrupted block header";
		size_t size = tag_size(v);
		enum chunk_state st = tag_state(v);
		if ((st != CHUNK_USED && st != CHUNK_FREE) || size < CHUNK_MIN ||
		    size % OSMEM_ALIGN || a + size > fence)
			return "corrupted block header";
		if (pv != prev_size)
			return "boundary tag does not match the previous block";
		if (st == CHUNK_FREE && prev_free)
			return "two adjacent free blocks (missed coalescing)";
		if (st == CHUNK_FREE) {
			(*free_count)++;
			*free_bytes += size;
		} else {
			*used_bytes += size;
		}
		if (visit)
			visit(arg, chunk_payload(c), size, st == CHUNK_FREE);
		prev_free = st == CHUNK_FREE;
		prev_size = size;
		a += size;
	}
	struct chunk *f = (struct chunk *)fence;
	uint64_t v;
	*at = chunk_payload(f);
	if (a != fence || !unseal(&f->tag, &v) || tag_state(v) != CHUNK_FENCE)
		return "segment does not end in its fence";
	if (!unseal(&f->prev_tag, &v) || v != prev_size)
		return "boundary tag does not match the previous block";
	return NULL;
}

const char *osmem_heap_verify(const struct arena *h, osmem_visit_fn visit, void *arg,
                              const void **at)
{
	size_t free_count = 0, free_bytes = 0, used_bytes = 0;
	*at = NULL;
	unsigned i = 0;
	for (const struct segment *seg; (seg = osmem_segment_next_of(h, &i));) {
		const char *err = walk_segment(seg, visit, arg, &free_count, &free_bytes, &used_bytes,
		                               at);
		if (err)
			return err;
	}
	*at = NULL;
	if (free_count != h->stats.free_chunks || free_bytes != h->stats.free_bytes)
		return "free-list totals do not match the heap";
	if (used_bytes != h->stats.used_bytes)
		return "used-byte total does not match the heap";
	const struct chunk *top = h->top;
	if (top) {
		uint64_t v;
		*at = chunk_payload(top);
		if (!h->segs.newest || !unseal(&top->tag, &v) || tag_state(v) != CHUNK_FREE ||
		    tag_size(v) != h->top_size ||
		    (uintptr_t)top + h->top_size + CHUNK_HEADER != h->segs.newest->end)
			return "top chunk does not end the newest segment";
		free_count--; /* the top is kept out of the bins */
	}
	return osmem_bins_verify(&h->bins, free_count, at);
}

#ifdef OSMEM_DEBUG
void osmem_debug_tick(struct arena *h)
{
	if (++h->debug_ticks % OSMEM_DEBUG_PERIOD)
		return;
	const void *at;
	const char *err = osmem_heap_verify(h, NULL, NULL, &at);
	if (err)
		osmem_fatal("osmem", err, at);
}
#endif
