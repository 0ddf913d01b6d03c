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

/* ---- free space and growth --------------------------------------------- */

void osmem_heap_init(struct arena *h)
{
	osmem_bins_init(&h->bins);
	h->segs.owner = h;
}

/* The free chunk that serves CS bytes best, taken out of the free space
   (its size in *SIZE): from the bins, or the top when no smaller class
   can serve; NULL when the heap must grow. */
static inline struct chunk *take_best_fit(struct arena *h, size_t cs, size_t *size)
{
	struct chunk *top = h->top;
	/* With every free chunk in the top (a heap that grows and shrinks at
	   its end, the common case) the bins need not be asked. */
	struct chunk *c = likely(!h->bins.map_words)
	                          ? NULL
	                          : osmem_bins_take_best(&h->bins, cs, top ? h->top_size : 0, size);
	if (c) {
		h->stats.free_bytes -= *size;
		h->stats.free_chunks--;
		return c;
	}
	if (!top || h->top_size < cs)
		return NULL;
	*size = h->top_size;
	osmem_free_take(h, top, *size, "os_malloc");
	return top;
}

/* A new segment is about to become the newest: the old top becomes an
   ordinary free chunk, whose pages go back if it is large. */
static void top_retire(struct arena *h)
{
	struct chunk *top = h->top;
	if (top) {
		size_t size = h->top_size;
		osmem_bin_insert(&h->bins, top, size);
		h->top = NULL;
		osmem_release_pages(top, size, (uintptr_t)top, (uintptr_t)top + size);
	}
}

/* Makes the run that the segments grew free space of H: merged with the
   chunk before it when that is free (an extended segment), and the new
   top. */
static void take_growth(struct arena *h, enum segment_grown how, const struct segment_growth *g)
{
	struct chunk *run = g->run;
	size_t size = g->size;
	if (how == SEGMENT_ADDED) {
		top_retire(h);
	} else {
		uint64_t v;
		unseal(&run->prev_tag, &v);
		struct chunk *last = chunk_at(run, (size_t)0 - (size_t)v);
		enum chunk_state st;
		size_t last_size = v ? osmem_read_chunk_size(last, &st, "os_malloc") : 0;
		if (v && st == CHUNK_FREE) {
			osmem_free_take(h, last, last_size, "os_malloc");
			chunk_wipe(run);
			run = last;
			size += last_size;
			chunk_set_prev(chunk_at(run, size), size);
		}
	}
	osmem_free_put(h, run, size);
}

static bool release_if_empty(struct arena *h, struct segment *seg, struct chunk *last, size_t size,
                             bool pressure);

/* Why a segment's free end is trimmed: after a free, by the settings;
   after a free whose page work may wait, once the space waiting adds up
   (see below); settling what such frees left waiting, by the settings
   alone; because the program asked
   (os_malloc_trim), down to its pad; or under
   memory pressure, everything, and every arena's segments are cut or
   unmapped, not only the main arena's. */
enum trim_why { TRIM_AFTER_FREE, TRIM_AFTER_SMALL_FREE, TRIM_SETTLE, TRIM_ASKED, TRIM_PRESSURE };
static void trim(struct arena *h, struct segment *seg, struct chunk *last, enum trim_why why,
                 size_t pad);

/* Free space of at least CS bytes, made by growing the heap; false when
   the kernel gives nothing. */
static bool grow(struct arena *h, size_t cs)
{
	/* The newest segment is kept when it empties, for growth like this
	   one.  If it is mapped, cannot be extended and is free from end to
	   end, it goes back before a new one is made. */
	struct segment *newest = h->segs.newest;
	if (newest && !newest->from_brk && newest->end > newest->base) {
		bool last_free;
		size_t last_size;
		struct chunk *last = osmem_segment_last(newest, &last_free, &last_size);
		if (last_free)
			release_if_empty(h, newest, last, last_size, false);
	}
	struct segment_growth g;
	enum segment_grown how = osmem_segment_grow(&h->segs, cs, &g);
	if (how == SEGMENT_NOT_GROWN)
		return false;
	take_growth(h, how, &g);
	return true;
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

static struct chunk *carve(struct arena *h, struct chunk *f, size_t fsize, size_t cs,
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
		if (unlikely(h->ledger.used) && rest >= osmem_g.opt.trim_threshold)
			osmem_ledger_move(&h->ledger, h, f, r, cs);
	} else {
		cs = fsize;
	}
	/* What the note on F carried is handed out with it, resident. */
	if (unlikely(h->ledger.used))
		osmem_ledger_take(&h->ledger, f);
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

struct chunk *osmem_heap_alloc_run(struct arena *h, size_t cs, size_t most, size_t *got)
{
	size_t size;
	struct chunk *f = take_best_fit(h, cs, &size);
	if (!f)
		return NULL;
	f = carve(h, f, size, size >= most ? most : size / cs * cs, NULL);
	uint64_t v;
	unseal(&f->tag, &v);
	*got = tag_size(v);
	return f;
}

struct chunk *osmem_heap_alloc_fit(struct arena *h, size_t cs, size_t *dirty)
{
	size_t size;
	struct chunk *f = take_best_fit(h, cs, &size);
	return f ? carve(h, f, size, cs, dirty) : NULL;
}

struct chunk *osmem_heap_alloc(struct arena *h, size_t cs, size_t *dirty)
{
	size_t size;
	struct chunk *f;
	/* Growth that someone else's use of the break left too short is kept
	   as free space, and the heap grows again. */
	while (!(f = take_best_fit(h, cs, &size)))
		if (!grow(h, cs))
			return NULL;
	return carve(h, f, size, cs, dirty);
}

/* A USED chunk of at least CS bytes whose payload is aligned to ALIGN (a
   power of two above OSMEM_ALIGN): carved from a larger chunk, with the
   space before the aligned payload and after the block given back. */
struct chunk *osmem_heap_alloc_aligned(struct arena *h, size_t cs, size_t align)
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

/* OSMEM_CHECK=2: fill a block being freed, but only below fresh_from:
   the tail a resize gives back may never have been handed out, and fresh
   memory must stay zero (see struct segment). */
static void fill_freed(struct arena *h, struct chunk *c, size_t size)
{
	const struct segment *seg = heap_segment_find(h, (uintptr_t)c);
	uintptr_t lo = (uintptr_t)chunk_payload(c), hi = (uintptr_t)c + size;
	if (hi > seg->fresh_from)
		hi = seg->fresh_from;
	if (hi > lo)
		memset((void *)lo, OSMEM_FREED_FILL, hi - lo);
}

/* Free chunk C of SIZE bytes, inside a segment, may have resident pages in
   [LO, HI) that the invariant of osmem_release_pages says go back: they
   do at once when they are many, and are otherwise noted in the ledger,
   so that space freed and soon reused is not faulted in again.  (The
   released bytes os_mallinfo reports count chunks of the trim threshold
   and more only: these smaller ones are missing from it.) */
static void release_or_note(struct arena *h, struct chunk *c, size_t size, uintptr_t lo,
                            uintptr_t hi)
{
	if (size < osmem_g.opt.trim_threshold || !osmem_pages_within(c, size, &lo, &hi))
		return;
	if (hi - lo >= osmem_ledger_limit())
		osmem_os_release((void *)lo, hi - lo);
	else
		osmem_ledger_note(&h->ledger, h, c, hi - lo);
}

/* Returns USED chunk C to the heap, merging it with free neighbours, after
   the same checks a free from the program gets (osmem_heap_check_block). */
void osmem_heap_release(struct arena *h, struct chunk *c, const char *func)
{
	size_t size = osmem_heap_check_block(heap_segment_find(h, (uintptr_t)c), c, func);
	osmem_heap_release_checked(h, c, size, func);
}

static void release_chunk(struct arena *h, struct chunk *c, size_t size, const char *func,
                          bool defer);

/* The same for a chunk of SIZE bytes that osmem_heap_check_block passed
   without the lock: only a free that raced with ours is looked for again,
   which cannot happen before there is a second thread.  A block of a size
   a thread may keep (OSMEM_CACHE_MAX) leaves the page work its free
   causes waiting (see ledger.h and trim): such frees come often, and
   alone give back little.  Larger blocks, and every block when threads
   keep none, give their pages back at once, as the textbook allocator
   does; so does every block of an arena that no thread uses, where
   nobody would come back to do the work that waits. */
void osmem_heap_release_checked(struct arena *h, struct chunk *c, size_t size, const char *func)
{
	release_chunk(h, c, size, func,
	              size - CHUNK_HEADER <= osmem_g.opt.cache_max &&
	                      __atomic_load_n(&h->users, __ATOMIC_RELAXED) != 0);
}

void osmem_heap_release_at_once(struct arena *h, struct chunk *c, const char *func)
{
	size_t size = osmem_heap_check_block(heap_segment_find(h, (uintptr_t)c), c, func);
	release_chunk(h, c, size, func, false);
}

/* Returns C, USED and checked, to the heap; with DEFER, the pages it
   frees may wait. */
static void release_chunk(struct arena *h, struct chunk *c, size_t size, const char *func,
                          bool defer)
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
	uintptr_t freed_lo = resident_lo, freed_hi = resident_hi;
	size_t big = osmem_g.opt.trim_threshold;
	h->stats.used_bytes -= size;
	heap_usage_change(h, -(intptr_t)size);

	if (!unseal(&c->prev_tag, &v))
		osmem_fatal(func, "corrupted block header", chunk_payload(c));
	size_t prev_size = (size_t)v;
	if (prev_size) {
		struct chunk *p = chunk_at(c, (size_t)0 - prev_size);
		enum chunk_state st;
		size_t psize = osmem_read_chunk_size(p, &st, func);
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
	size_t nsize = osmem_read_chunk_size(n, &nst, func);
	struct chunk *merged_next = NULL;
	if (nst == CHUNK_FREE) {
		merged_next = n;
		osmem_free_take(h, n, nsize, func);
		chunk_wipe_free(n);
		/* Wiping N's header and links touched its first page too. */
		resident_hi += nsize < big ? nsize : CHUNK_MIN;
		freed_hi += CHUNK_MIN;
		size += nsize;
		n = chunk_at(c, size);
		nsize = osmem_read_chunk_size(n, &nst, func);
	}
	chunk_set_prev(n, size);
	osmem_free_put(h, c, size);
	if (merged_next)
		osmem_ledger_move(&h->ledger, h, merged_next, c, 0);

	if (nst == CHUNK_FENCE) {
		/* Trimming has work only above the threshold, or when a whole
		   mapped segment other than the newest is free (it may go back). */
		struct segment *seg = heap_segment_find(h, (uintptr_t)c);
		if (size > osmem_g.opt.trim_threshold ||
		    ((uintptr_t)c == seg->base && !seg->from_brk && seg != h->segs.newest))
			trim(h, seg, c, defer ? TRIM_AFTER_SMALL_FREE : TRIM_AFTER_FREE, 0);
	} else if (h->emptying) {
		/* An emptying arena (struct arena) gives free pages back at once,
		   whatever the chunk's size: the blocks that kept its runs apart
		   are being freed one by one, and no other moment comes to give
		   their pages back.  Invariant while it empties: a free chunk's
		   whole pages past its header and links are not resident (they
		   all went back when it started, osmem_heap_give_back).  So only
		   the pages of the block just freed, and of the header of a
		   neighbour merged into it, can be.  Giving back the whole merged
		   chunk each time cost a program that freed its objects one by
		   one at exit a system call on nearly every free, for pages given
		   back long before (python3: 85007 madvise calls, 41808 now). */
		osmem_release_pages_within(c, size, freed_lo, freed_hi);
	} else if (defer) {
		release_or_note(h, c, size, resident_lo, resident_hi);
	} else {
		osmem_release_pages(c, size, resident_lo, resident_hi);
	}
}

static void batch_join(struct arena *h, struct heap_batch *b, struct chunk *c, size_t size,
                       const char *func);

void osmem_heap_batch_add(struct arena *h, struct heap_batch *b, struct chunk *c, const char *func)
{
	batch_join(h, b, c, osmem_heap_check_block(heap_segment_find(h, (uintptr_t)c), c, func), func);
}

/* Adds USED chunk C of SIZE bytes, checked, to B. */
static void batch_join(struct arena *h, struct heap_batch *b, struct chunk *c, size_t size,
                       const char *func)
{
	/* Joining writes nothing but the wiped header: the run's own header
	   and the boundary tag after it are written once, when it ends. */
	if (b->lo && (uintptr_t)b->lo + b->size == (uintptr_t)c) {
		/* C follows the run: the run grows over it. */
		b->size += size;
		chunk_wipe(c);
		return;
	}
	if (b->lo && (uintptr_t)c + size == (uintptr_t)b->lo) {
		/* C precedes the run: it grows over the run. */
		chunk_wipe(b->lo);
		b->lo = c;
		b->size += size;
		return;
	}
	osmem_heap_batch_end(h, b, func);
	b->lo = c;
	b->size = size;
}

void osmem_heap_batch_end(struct arena *h, struct heap_batch *b, const char *func)
{
	if (b->lo) {
		chunk_set_tag(b->lo, b->size, CHUNK_USED);
		chunk_set_prev(chunk_at(b->lo, b->size), b->size);
		release_chunk(h, b->lo, b->size, func, true);
	}
	b->lo = NULL;
	b->size = 0;
}

/* Lists of chunks for osmem_heap_release_list: linked through the first
   word of their payload. */
static inline struct chunk **list_link(struct chunk *c)
{
	return (struct chunk **)chunk_payload(c);
}

/* Lists A and B, each in address order, as one. */
static struct chunk *merge_by_address(struct chunk *a, struct chunk *b)
{
	struct chunk *head = NULL, **tail = &head;
	while (a && b) {
		struct chunk *c;
		if ((uintptr_t)a < (uintptr_t)b) {
			c = a;
			a = *list_link(a);
		} else {
			c = b;
			b = *list_link(b);
		}
		*tail = c;
		tail = list_link(c);
	}
	*tail = a ? a : b;
	return head;
}

/* Takes the longest run of chunks in address order, rising or falling,
   off the front of *LIST; returns it rising.  Chunks given back together
   mostly come in such runs (a burst freed forwards or backwards), which
   then cost one pass instead of a sort. */
static struct chunk *take_run(struct chunk **list)
{
	struct chunk *head = *list, *c = *list_link(head);
	if (c && (uintptr_t)c < (uintptr_t)head) {
		struct chunk *rising = head, *prev = head;
		*list_link(head) = NULL;
		while (c && (uintptr_t)c < (uintptr_t)prev) {
			struct chunk *next = *list_link(c);
			*list_link(c) = rising;
			rising = prev = c;
			c = next;
		}
		*list = c;
		return rising;
	}
	struct chunk *tail = head;
	while (c && (uintptr_t)c > (uintptr_t)tail) {
		tail = c;
		c = *list_link(c);
	}
	*list_link(tail) = NULL;
	*list = c;
	return head;
}

/* LIST in address order: a bottom-up natural merge sort, PARTS[i]
   holding the merge of 2^i runs, so no recursion and no allocation. */
static struct chunk *sort_by_address(struct chunk *list)
{
	struct chunk *parts[64] = { NULL };
	unsigned top = 0;
	while (list) {
		struct chunk *run = take_run(&list);
		unsigned i = 0;
		for (; parts[i]; i++) {
			run = merge_by_address(parts[i], run);
			parts[i] = NULL;
		}
		parts[i] = run;
		if (i >= top)
			top = i + 1;
	}
	struct chunk *all = NULL;
	for (unsigned i = 0; i < top; i++)
		all = merge_by_address(parts[i], all);
	return all;
}

void osmem_heap_release_list(struct arena *h, struct chunk *list, const char *func)
{
	struct heap_batch batch = { NULL, 0 };
	for (struct chunk *c = sort_by_address(list), *next; c; c = next) {
		next = *list_link(c);
		osmem_heap_batch_add(h, &batch, c, func);
	}
	osmem_heap_batch_end(h, &batch, func);
}

void osmem_heap_batch_add_checked(struct arena *h, struct heap_batch *b, struct chunk *c,
                                  size_t size, const char *func)
{
	batch_join(h, b, c, size, func);
}

/* ---- resizing in place -------------------------------------------------- */

/* Grows the segment that LAST ends by at least MISSING bytes where it
   is, LAST then ending in free space.  False when it cannot (memory got
   elsewhere is kept as free space all the same). */
static bool extend_in_place(struct arena *h, struct chunk *last, size_t missing)
{
	struct segment_growth g;
	struct segment *seg = heap_segment_find(h, (uintptr_t)last);
	enum segment_grown how = osmem_segment_extend(&h->segs, seg, missing, &g);
	if (how != SEGMENT_NOT_GROWN)
		take_growth(h, how, &g);
	return how == SEGMENT_EXTENDED;
}

/* Shrinks or grows USED chunk C to at least CS and, when a free neighbour
   has the room, at most ROOM bytes (ROOM >= CS), without moving it, using
   that neighbour or the top of the heap; the top grows only by what CS
   lacks.  False when it cannot. */
bool osmem_heap_resize(struct arena *h, struct chunk *c, size_t cs, size_t room, const char *func)
{
	uint64_t v;
	unseal(&c->tag, &v);
	size_t size = tag_size(v);
	assert(room >= cs && room % OSMEM_ALIGN == 0);

	if (cs > size) {
		struct chunk *n = chunk_at(c, size);
		enum chunk_state st;
		size_t nsize = osmem_read_chunk_size(n, &st, func);
		size_t have = size + (st == CHUNK_FREE ? nsize : 0);
		if (have < cs) {
			/* The heap top: a fence right after us or after our free
			   neighbour lets the segment grow by what is missing. */
			struct chunk *last = st == CHUNK_FREE ? n : c;
			struct chunk *after = st == CHUNK_FREE ? chunk_at(n, nsize) : n;
			enum chunk_state ast;
			osmem_read_chunk_size(after, &ast, func);
			if (ast != CHUNK_FENCE || !extend_in_place(h, last, cs - have))
				return false;
			nsize = osmem_read_chunk_size(n, &st, func);
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
			osmem_ledger_move(&h->ledger, h, n, r, keep - size);
		} else {
			osmem_ledger_take(&h->ledger, n);
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

/* ---- giving memory back ------------------------------------------------- *
 * The main arena's segments are trimmed at their ends: the break lowered,
 * or, for the mapped segments made when sbrk failed, the free tail
 * unmapped, and one that empties goes back whole.  The other arenas'
 * segments keep their size while the process runs, and trimming gives
 * their free pages back with madvise instead: those arenas grow and
 * shrink with their threads, and a segment given back would soon be made
 * again in a new slot of the segment table, which has SEGMENT_MAX of them
 * and never reuses one (lookups read it without a lock).  Under memory
 * pressure (a request is about to fail) every arena's segments are cut
 * or unmapped all the same: the address space is what is short. */

/* A mapped segment whose last chunk LAST, of SIZE bytes, is its only one
   goes back whole, if its arena may give it back.  Its slot stays, empty
   (end == base), so lookups that run without the lock never see it move. */
static bool release_if_empty(struct arena *h, struct segment *seg, struct chunk *last, size_t size,
                             bool pressure)
{
	if (seg->from_brk || (!h->segs.uses_brk && !pressure) || (uintptr_t)last != seg->base)
		return false;
	osmem_free_take(h, last, size, "os_free");
	osmem_ledger_take(&h->ledger, last);
	osmem_segment_unmap(&h->segs, seg);
	return true;
}


/* LAST, free, ends SEG: gives back what lies beyond what WHY keeps, PAD
   bytes at most for TRIM_ASKED. */
static void trim(struct arena *h, struct segment *seg, struct chunk *last, enum trim_why why,
                 size_t pad)
{
	bool pressure = why == TRIM_PRESSURE;
	uint64_t v;
	unseal(&last->tag, &v);
	size_t size = tag_size(v);
	if ((pressure || seg != h->segs.newest) && release_if_empty(h, seg, last, size, pressure))
		return;
	bool after_free = why == TRIM_AFTER_FREE || why == TRIM_AFTER_SMALL_FREE;
	if (after_free || why == TRIM_SETTLE) {
		size_t thr = osmem_g.opt.trim_threshold;
		if (size <= thr)
			return;
		/* Free space at the end is resident, like the pages the ledger
		   notes, and waits with them: it goes back once it and the
		   notes add up to more than the ledger's limit.  A heap whose
		   end rises and falls by less than that then does not pay a
		   system call, and a page fault per page growing back, on
		   every cycle. */
		if (why == TRIM_AFTER_SMALL_FREE && size - thr + h->ledger.total <= osmem_ledger_limit())
			return;
		pad = osmem_g.opt.top_pad;
	} else if (pressure) {
		pad = 0;
	}
	if (pad > size)
		return;
	uintptr_t keep_end = osmem_align_up((uintptr_t)last + CHUNK_MIN + pad + CHUNK_HEADER,
	                                    osmem_g.page_size);
	if (keep_end >= seg->end || seg->end - keep_end < osmem_g.page_size)
		return;
	/* After a free, pages are given back with madvise, where the segment
	   cannot shrink, only once more than the trim threshold of them may
	   be resident: otherwise every free at the top would cost a system
	   call. */
	size_t slack = after_free || why == TRIM_SETTLE ? osmem_g.opt.trim_threshold : 0;
	if (!h->segs.uses_brk && !pressure) {
		osmem_segment_release_tail(seg, keep_end, slack);
		return;
	}
	if (!osmem_segment_cut(&h->segs, seg, last, keep_end, slack, pressure))
		return;
	osmem_free_take(h, last, size, "os_free");
	osmem_free_put(h, last, keep_end - CHUNK_HEADER - (uintptr_t)last);
}

/* Trims every segment of H whose last chunk is free, for WHY. */
static void trim_every_segment(struct arena *h, enum trim_why why, size_t pad)
{
	unsigned i = 0;
	for (struct segment *seg; (seg = osmem_segment_next_of(h, &i));) {
		bool last_free;
		size_t last_size;
		struct chunk *last = osmem_segment_last(seg, &last_free, &last_size);
		if (last_free)
			trim(h, seg, last, why, pad);
	}
}

void osmem_heap_reclaim(struct arena *h)
{
	trim_every_segment(h, TRIM_PRESSURE, 0);
	osmem_ledger_release_all(&h->ledger, h);
}

void osmem_heap_settle(struct arena *h)
{
	osmem_ledger_release_all(&h->ledger, h);
	trim_every_segment(h, TRIM_SETTLE, 0);
}

void osmem_heap_give_back(struct arena *h, size_t pad)
{
	trim_every_segment(h, TRIM_ASKED, pad);
	osmem_bins_release_pages(&h->bins, h->stats.free_chunks);
	osmem_ledger_clear(&h->ledger);
}

size_t osmem_heap_released_bytes(const struct arena *h)
{
	/* Binned chunks of at least the trim threshold had their pages given
	   back when they became free (osmem_release_pages); the top's pages
	   above fresh_from have not been touched since they were mapped,
	   grown or given back (see struct segment). */
	size_t released = osmem_bins_released(&h->bins, osmem_g.opt.trim_threshold,
	                                      h->stats.free_chunks);
	/* Less what the ledger says may still be resident. */
	released = released > h->ledger.total ? released - h->ledger.total : 0;
	const struct segment *seg = h->segs.newest;
	if (h->top && seg) {
		size_t page = osmem_g.page_size;
		uintptr_t lo = (uintptr_t)h->top + CHUNK_MIN;
		if (lo < seg->fresh_from)
			lo = seg->fresh_from;
		lo = osmem_align_up(lo, page);
		uintptr_t hi = osmem_align_down(seg->end - CHUNK_HEADER, page);
		if (hi > lo)
			released += hi - lo;
	}
	return released;
}
