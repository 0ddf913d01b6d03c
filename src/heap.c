/*
 * heap.c - best fit, splitting and coalescing on the brk heap.
 *
 * Free chunks live in circular doubly linked lists, one per size class,
 * with a sentinel per class in osmem_heap.bins.  A bitmap marks the classes
 * that are not empty, so the smallest class that can serve a request is a
 * count-trailing-zeros away.  Boundary tags (chunk.h) make merging with
 * both neighbours O(1).  Growing and trimming the heap is segment.c's job.
 *
 * SPDX-License-Identifier: MIT
 */
#include "heap.h"
#include "walk.h"

#include <string.h>

struct heap osmem_heap = {
	.lock = OSMEM_LOCK_INIT,
};

/* ---- size classes ----------------------------------------------------- */

static inline unsigned floor_log2(size_t n) { return 63u - (unsigned)__builtin_clzl(n); }

static unsigned bin_of(size_t size)
{
	if (size < BIN_EXACT_LIMIT)
		return (unsigned)(size >> 4);
	unsigned fl = floor_log2(size);
	unsigned sl = (unsigned)(size >> (fl - 3)) & 7u;
	unsigned idx = 32u + (fl - 9u) * 8u + sl;
	return idx < BIN_COUNT ? idx : BIN_COUNT - 1;
}

/* Every chunk in a bin at or above this index is at least SIZE bytes. */
static unsigned first_bin_holding_at_least(size_t size)
{
	unsigned b = bin_of(size);
	if (size < BIN_EXACT_LIMIT)
		return b;
	return b + 1 < BIN_COUNT ? b + 1 : b;
}

/* The first non-empty bin at or above B, or BIN_COUNT: at most two
   count-trailing-zeros, one in B's bitmap word, one in the summary of
   which words are not empty. */
static unsigned bin_find_from(unsigned b)
{
	unsigned w = b / 64u;
	uint64_t m = osmem_heap.binmap[w] & (~(uint64_t)0 << (b % 64u));
	if (m)
		return w * 64u + (unsigned)__builtin_ctzll(m);
	uint64_t words = osmem_heap.binmap_words & (~(uint64_t)1 << w);
	if (!words)
		return BIN_COUNT;
	w = (unsigned)__builtin_ctzll(words);
	return w * 64u + (unsigned)__builtin_ctzll(osmem_heap.binmap[w]);
}

static void bin_mark(unsigned b)
{
	osmem_heap.binmap[b / 64u] |= (uint64_t)1 << (b % 64u);
	osmem_heap.binmap_words |= (uint64_t)1 << (b / 64u);
}

static void bin_unmark(unsigned b)
{
	osmem_heap.binmap[b / 64u] &= ~((uint64_t)1 << (b % 64u));
	if (!osmem_heap.binmap[b / 64u])
		osmem_heap.binmap_words &= ~((uint64_t)1 << (b / 64u));
}

/* ---- sealed list links -------------------------------------------------
 * A link is stored XORed with a secret and its own address.  A freed block
 * that the program writes to therefore decodes to an address that fails the
 * checks in link_target, and the write is reported, never followed. */

static inline uint64_t link_seal(const uint64_t *where, const struct free_links *to)
{
	return (uint64_t)(uintptr_t)to ^ osmem_g.link_secret ^ ((uint64_t)(uintptr_t)where >> 4);
}

static inline struct free_links *link_open(const uint64_t *where)
{
	return (struct free_links *)(uintptr_t)(*where ^ osmem_g.link_secret ^
	                                        ((uint64_t)(uintptr_t)where >> 4));
}

static inline struct free_links *links_of(struct chunk *c)
{
	return (struct free_links *)chunk_payload(c);
}

static inline bool is_sentinel(const struct free_links *l)
{
	return l >= &osmem_heap.bins[0] && l < &osmem_heap.bins[BIN_COUNT];
}

/* A decoded link must be a sentinel or lie within the heap's bounds,
   aligned; that is enough to read it, and the back-link checks of
   bin_remove, or the header checks of its users, tell whether it is really
   a free chunk's.  A damaged link decodes to a random address, which the
   bounds turn away with overwhelming odds. */
static struct free_links *link_target(const uint64_t *where, const char *func)
{
	struct free_links *l = link_open(where);
	if (!is_sentinel(l) && !heap_bounds_hold(l))
		osmem_fatal(func, "corrupted free list", where);
	return l;
}

void osmem_bins_init(void)
{
	for (unsigned i = 0; i < BIN_COUNT; i++) {
		struct free_links *s = &osmem_heap.bins[i];
		s->next = link_seal(&s->next, s);
		s->prev = link_seal(&s->prev, s);
	}
}

static void bin_insert(struct chunk *c, size_t size)
{
	unsigned b = bin_of(size);
	struct free_links *head = &osmem_heap.bins[b];
	struct free_links *node = links_of(c);
	struct free_links *first = link_open(&head->next);
	node->next = link_seal(&node->next, first);
	node->prev = link_seal(&node->prev, head);
	first->prev = link_seal(&first->prev, node);
	head->next = link_seal(&head->next, node);
	bin_mark(b);
}

static void bin_remove(struct chunk *c, const char *func)
{
	struct free_links *node = links_of(c);
	struct free_links *next = link_target(&node->next, func);
	struct free_links *prev = link_target(&node->prev, func);
	if (link_open(&next->prev) != node || link_open(&prev->next) != node)
		osmem_fatal(func, "corrupted free list", chunk_payload(c));
	next->prev = link_seal(&next->prev, prev);
	prev->next = link_seal(&prev->next, next);
	if (next == prev && is_sentinel(next)) {
		bin_unmark((unsigned)(next - osmem_heap.bins));
	}
}

static void release_pages(struct chunk *c, size_t size, uintptr_t lo, uintptr_t hi);

/* ---- free chunks: the top, or a bin ------------------------------------
 * The free chunk that ends the newest segment is the top: it is kept out
 * of the bins, so carving from it and merging into it (the common case for
 * a growing heap) costs no list work. */

static bool ends_newest_segment(const struct chunk *c, size_t size)
{
	unsigned n = osmem_heap.nsegs;
	return n && (uintptr_t)c + size + CHUNK_HEADER == osmem_heap.segs[n - 1].end;
}

void osmem_free_put(struct chunk *c, size_t size)
{
	chunk_set_tag(c, size, CHUNK_FREE);
	if (ends_newest_segment(c, size)) {
		osmem_heap.top = c;
		osmem_heap.top_size = size;
	} else {
		bin_insert(c, size);
	}
	osmem_heap.stats.free_bytes += size;
	osmem_heap.stats.free_chunks++;
}

void osmem_free_take(struct chunk *c, size_t size, const char *func)
{
	if (c == osmem_heap.top)
		osmem_heap.top = NULL;
	else
		bin_remove(c, func);
	osmem_heap.stats.free_bytes -= size;
	osmem_heap.stats.free_chunks--;
}

/* A new segment is about to become the newest: the old top becomes an
   ordinary free chunk. */
void osmem_top_retire(void)
{
	struct chunk *top = osmem_heap.top;
	if (top) {
		size_t size = osmem_heap.top_size;
		bin_insert(top, size);
		osmem_heap.top = NULL;
		release_pages(top, size, (uintptr_t)top, (uintptr_t)top + size);
	}
}

/* Checks every bin list against the bitmap, the classes and its own back
   links; EXPECTED is the number of free chunks the heap walk found. */
const char *osmem_bins_verify(size_t expected, const void **at)
{
	size_t seen = 0;
	for (unsigned b = 0; b < BIN_COUNT; b++) {
		struct free_links *head = &osmem_heap.bins[b], *prev = head;
		struct free_links *l = link_open(&head->next);
		bool marked = (osmem_heap.binmap[b / 64u] >> (b % 64u)) & 1u;
		*at = head;
		if ((l == head) == marked)
			return "bin bitmap does not match the free lists";
		while (l != head) {
			uint64_t v;
			*at = l;
			if (((uintptr_t)l & (OSMEM_ALIGN - 1)) || !heap_segment_of(l) ||
			    !unseal(&chunk_of(l)->tag, &v) || tag_state(v) != CHUNK_FREE ||
			    link_open(&l->prev) != prev)
				return "corrupted free list";
			if (bin_of(tag_size(v)) != b)
				return "free block in the wrong bin";
			if (++seen > expected)
				return "free lists hold more blocks than the heap";
			prev = l;
			l = link_open(&l->next);
			if (!is_sentinel(l) && !heap_segment_of(l))
				return "corrupted free list";
		}
		if (link_open(&head->prev) != prev)
			return "corrupted free list";
	}
	*at = NULL;
	return seen == expected ? NULL : "free lists hold fewer blocks than the heap";
}

/* ---- reading headers safely -------------------------------------------- */

/* The size of free or used chunk C, which the caller reached through a
   boundary tag; anything else means the heap is damaged. */
static size_t neighbour_size(const struct chunk *c, enum chunk_state *st, const char *func)
{
	uint64_t v;
	if (!unseal(&c->tag, &v))
		osmem_fatal(func, "corrupted block header", chunk_payload(c));
	*st = tag_state(v);
	if (*st != CHUNK_USED && *st != CHUNK_FREE && *st != CHUNK_FENCE)
		osmem_fatal(func, "corrupted block header", chunk_payload(c));
	return tag_size(v);
}

/* Verifies that the chunk after C (of SIZE bytes) names C as its neighbour:
   an overflow past the end of C's payload breaks exactly this word. */
static struct chunk *next_checked(const struct chunk *c, size_t size, const char *func)
{
	struct chunk *n = chunk_at(c, size);
	uint64_t v;
	if (!unseal(&n->prev_tag, &v) || v != size)
		osmem_fatal(func, "heap overflow: header after the block is corrupted",
		            chunk_payload(c));
	return n;
}

/* Walks SEG from its base to tell apart, for a header that failed its
   check, a pointer the heap never handed out, a block already freed and
   merged, and a damaged header.  Only ever runs on the way to abort(). */
static _Noreturn void report_bad_header(const struct segment *seg, const struct chunk *bad,
                                        const char *func)
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

size_t osmem_heap_check_block(const struct segment *seg, const struct chunk *c, const char *func)
{
	const void *p = chunk_payload(c);
	uint64_t v;
	if (!unseal(&c->tag, &v))
		report_bad_header(seg, c, func);
	switch (tag_state(v)) {
	case CHUNK_USED:
		break;
	case CHUNK_FREE:
		osmem_fatal(func, "double free detected", p);
	default:
		osmem_fatal(func, "invalid pointer", p);
	}
	size_t size = tag_size(v);
	if (size < CHUNK_MIN || (uintptr_t)c + size > __atomic_load_n(&seg->end, __ATOMIC_RELAXED) - CHUNK_HEADER)
		osmem_fatal(func, "corrupted block header", p);
	if (osmem_g.opt.check_level == 0)
		return size;
	if (!unseal(&c->prev_tag, &v))
		osmem_fatal(func, "corrupted block header", p);
	next_checked(c, size, func);
	return size;
}

/* ---- carving ------------------------------------------------------------ */

/* Hands out the first CS bytes of free chunk F (already out of its bin),
   returning the rest to the bins when it can hold a chunk of its own.
   *DIRTY gets how many payload bytes may be non-zero (for os_calloc). */
static struct chunk *carve(struct chunk *f, size_t fsize, size_t cs, size_t *dirty)
{
	size_t rest = fsize - cs;
	if (rest >= CHUNK_MIN) {
		struct chunk *r = chunk_at(f, cs);
		chunk_set_prev(r, cs);
		chunk_set_prev(chunk_at(r, rest), rest);
		osmem_free_put(r, rest);
	} else {
		cs = fsize;
	}
	chunk_set_tag(f, cs, CHUNK_USED);

	struct segment *seg = osmem_segment_find((uintptr_t)f);
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

	osmem_heap.stats.used_bytes += cs;
	osmem_usage_add(cs);
	return f;
}

/* How many chunks of a ranged class are looked at for a fit before moving
   on to the next class up, where everything fits.  Keeps malloc O(1); a
   longer look finds tighter fits but costs more than it saves. */
#define FIT_SCAN_LIMIT 2

struct chunk *osmem_heap_alloc(size_t cs, size_t *dirty)
{
	unsigned b = bin_of(cs);
	if (cs >= BIN_EXACT_LIMIT && (osmem_heap.binmap[b / 64u] >> (b % 64u)) & 1u) {
		/* Best fit within the request's own class, boundedly. */
		struct free_links *head = &osmem_heap.bins[b];
		struct free_links *l = link_target(&head->next, "os_malloc");
		for (int i = 0; i < FIT_SCAN_LIMIT && l != head; i++) {
			struct chunk *c = chunk_of(l);
			enum chunk_state st;
			size_t size = neighbour_size(c, &st, "os_malloc");
			if (st != CHUNK_FREE)
				osmem_fatal("os_malloc", "corrupted free list", l);
			if (size >= cs) {
				osmem_free_take(c, size, "os_malloc");
				return carve(c, size, cs, dirty);
			}
			l = link_target(&l->next, "os_malloc");
		}
	}
	b = bin_find_from(first_bin_holding_at_least(cs));
	struct chunk *top = osmem_heap.top;
	size_t top_size = osmem_heap.top_size;
	/* The top serves when it fits and no smaller class can. */
	if (top && top_size >= cs && (b == BIN_COUNT || bin_of(top_size) < b)) {
		osmem_free_take(top, top_size, "os_malloc");
		return carve(top, top_size, cs, dirty);
	}
	if (b < BIN_COUNT) {
		struct free_links *head = &osmem_heap.bins[b];
		struct chunk *c = chunk_of(link_target(&head->next, "os_malloc"));
		enum chunk_state st;
		size_t size = neighbour_size(c, &st, "os_malloc");
		if (st != CHUNK_FREE || size < cs)
			osmem_fatal("os_malloc", "corrupted free list", chunk_payload(c));
		osmem_free_take(c, size, "os_malloc");
		return carve(c, size, cs, dirty);
	}
	struct chunk *f = osmem_segment_grow(cs);
	if (!f)
		return NULL;
	enum chunk_state st;
	size_t size = neighbour_size(f, &st, "os_malloc");
	osmem_free_take(f, size, "os_malloc");
	return carve(f, size, cs, dirty);
}

/* A USED chunk of at least CS bytes whose payload is aligned to ALIGN (a
   power of two above OSMEM_ALIGN): carved from a larger chunk, with the
   space before the aligned payload and after the block given back. */
struct chunk *osmem_heap_alloc_aligned(size_t cs, size_t align)
{
	struct chunk *c = osmem_heap_alloc(cs + align + CHUNK_MIN, NULL);
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
		osmem_heap_release(c, "os_aligned_alloc");
		c = a;
	}
	osmem_heap_resize(c, cs, "os_aligned_alloc");
	return c;
}

/* ---- freeing ------------------------------------------------------------ */

/* Invariant: a free chunk inside the heap (not the top) of at least the
   trim threshold has had the pages inside it given back to the kernel.
   When a free makes or grows such a chunk, the pages of the parts that
   were not yet given back, [LO, HI), are; parts that were already that
   large were released when they became free. */
static void release_pages(struct chunk *c, size_t size, uintptr_t lo, uintptr_t hi)
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

/* Returns USED chunk C to the heap, merging it with free neighbours. */
void osmem_heap_release(struct chunk *c, const char *func)
{
	uint64_t v;
	if (!unseal(&c->tag, &v))
		osmem_fatal(func, "corrupted block header", chunk_payload(c));
	if (tag_state(v) != CHUNK_USED)
		osmem_fatal(func, tag_state(v) == CHUNK_FREE ? "double free detected"
		                                             : "invalid pointer",
		            chunk_payload(c));
	next_checked(c, tag_size(v), func);
	osmem_heap_release_checked(c, tag_size(v), func);
}

/* The same for a chunk of SIZE bytes that osmem_heap_check_block passed
   without the lock: only a free that raced with ours is looked for again. */
void osmem_heap_release_checked(struct chunk *c, size_t size, const char *func)
{
	uint64_t v;
	if (__atomic_load_n(&c->tag, __ATOMIC_RELAXED) != seal(&c->tag, (uint64_t)size | CHUNK_USED))
		osmem_fatal(func, "double free detected", chunk_payload(c));
	struct chunk *n = chunk_at(c, size);
	/* The range whose pages may still be resident after the merges. */
	uintptr_t resident_lo = (uintptr_t)c, resident_hi = (uintptr_t)c + size;
	size_t big = osmem_g.opt.trim_threshold;
	osmem_heap.stats.used_bytes -= size;
	osmem_usage_sub(size);

	if (!unseal(&c->prev_tag, &v))
		osmem_fatal(func, "corrupted block header", chunk_payload(c));
	size_t prev_size = (size_t)v;
	if (prev_size) {
		struct chunk *p = chunk_at(c, (size_t)0 - prev_size);
		enum chunk_state st;
		size_t psize = neighbour_size(p, &st, func);
		if (psize != prev_size)
			osmem_fatal(func, "corrupted block header", chunk_payload(p));
		if (st == CHUNK_FREE) {
			osmem_free_take(p, psize, func);
			chunk_wipe(c);
			if (psize < big)
				resident_lo = (uintptr_t)p;
			c = p;
			size += psize;
		}
	}

	enum chunk_state nst;
	size_t nsize = neighbour_size(n, &nst, func);
	if (nst == CHUNK_FREE) {
		osmem_free_take(n, nsize, func);
		chunk_wipe_free(n);
		/* Wiping N's header and links touched its first page too. */
		resident_hi += nsize < big ? nsize : CHUNK_MIN;
		size += nsize;
		n = chunk_at(c, size);
		nsize = neighbour_size(n, &nst, func);
	}
	chunk_set_prev(n, size);
	osmem_free_put(c, size);

	if (nst == CHUNK_FENCE) {
		osmem_segment_trim(osmem_segment_find((uintptr_t)c), c);
	} else {
		release_pages(c, size, resident_lo, resident_hi);
	}
}

/* ---- resizing in place -------------------------------------------------- */

/* Shrinks or grows USED chunk C to CS bytes without moving it, using a free
   neighbour or the top of the heap.  False when it cannot. */
bool osmem_heap_resize(struct chunk *c, size_t cs, const char *func)
{
	uint64_t v;
	unseal(&c->tag, &v);
	size_t size = tag_size(v);

	if (cs > size) {
		struct chunk *n = chunk_at(c, size);
		enum chunk_state st;
		size_t nsize = neighbour_size(n, &st, func);
		size_t have = size + (st == CHUNK_FREE ? nsize : 0);
		if (have < cs) {
			/* The heap top: a fence right after us or after our free
			   neighbour lets the segment grow by what is missing. */
			struct chunk *last = st == CHUNK_FREE ? n : c;
			struct chunk *after = st == CHUNK_FREE ? chunk_at(n, nsize) : n;
			enum chunk_state ast;
			neighbour_size(after, &ast, func);
			if (ast != CHUNK_FENCE || !osmem_segment_extend_in_place(last, cs - have))
				return false;
			nsize = neighbour_size(n, &st, func);
		}
		/* N is now free and big enough together with C. */
		osmem_free_take(n, nsize, func);
		chunk_wipe_free(n);
		chunk_set_tag(c, size + nsize, CHUNK_USED);
		chunk_set_prev(chunk_at(c, size + nsize), size + nsize);
		size += nsize;
		osmem_heap.stats.used_bytes += nsize;
		osmem_usage_add(nsize);
	}

	if (size - cs >= CHUNK_MIN) {
		/* Give the tail back: make it a used chunk of its own and free it,
		   which merges it with whatever free space follows. */
		struct chunk *t = chunk_at(c, cs);
		chunk_set_tag(c, cs, CHUNK_USED);
		chunk_set_prev(t, cs);
		chunk_set_tag(t, size - cs, CHUNK_USED);
		chunk_set_prev(chunk_at(t, size - cs), size - cs);
		osmem_heap_release(t, func);
		size = cs;
	}
	/* The block now owns bytes the caller will write: they are no longer
	   known to be zero. */
	struct segment *seg = osmem_segment_find((uintptr_t)c);
	if (seg->fresh_from < (uintptr_t)c + size)
		seg->fresh_from = (uintptr_t)c + size;
	return true;
}
