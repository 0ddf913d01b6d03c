/*
 * bins.c - where the free chunks are kept, and best fit among them (see
 * bins.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "bins.h"

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
static unsigned bin_find_from(const struct bins *bs, unsigned b)
{
	unsigned w = b / 64u;
	uint64_t m = bs->map[w] & (~(uint64_t)0 << (b % 64u));
	if (m)
		return w * 64u + (unsigned)__builtin_ctzll(m);
	uint64_t words = bs->map_words & (~(uint64_t)1 << w);
	if (!words)
		return BIN_COUNT;
	w = (unsigned)__builtin_ctzll(words);
	return w * 64u + (unsigned)__builtin_ctzll(bs->map[w]);
}

static void bin_mark(struct bins *bs, unsigned b)
{
	bs->map[b / 64u] |= (uint64_t)1 << (b % 64u);
	bs->map_words |= (uint64_t)1 << (b / 64u);
}

static void bin_unmark(struct bins *bs, unsigned b)
{
	bs->map[b / 64u] &= ~((uint64_t)1 << (b % 64u));
	if (!bs->map[b / 64u])
		bs->map_words &= ~((uint64_t)1 << (b / 64u));
}

/* ---- sealed list links -------------------------------------------------
 * A link is stored XORed with a secret and its own address.  A freed block
 * that the program writes to therefore decodes to an address that fails the
 * checks in link_target, and the write is reported, never followed. */

static inline uint64_t link_seal(uint64_t key, const uint64_t *where, const struct free_links *to)
{
	return (uint64_t)(uintptr_t)to ^ key ^ ((uint64_t)(uintptr_t)where >> 4);
}

static inline struct free_links *link_open(uint64_t key, const uint64_t *where)
{
	return (struct free_links *)(uintptr_t)(*where ^ key ^ ((uint64_t)(uintptr_t)where >> 4));
}

/* The key is read once per operation: the links are plain 64-bit stores,
   after which the compiler would have to read a global key again. */
static inline uint64_t link_key(void) { return osmem_g.link_secret; }

static inline struct free_links *links_of(struct chunk *c)
{
	return (struct free_links *)chunk_payload(c);
}

static inline bool is_sentinel(const struct bins *bs, const struct free_links *l)
{
	return l >= &bs->lists[0] && l < &bs->lists[BIN_COUNT];
}

static _Noreturn OSMEM_COLD void bad_link(const char *func, const uint64_t *where)
{
	osmem_fatal(func, "corrupted free list", where);
}

/* A decoded link must be a sentinel or lie within the heap's bounds,
   aligned; that is enough to read it, and the back-link checks of
   osmem_bin_remove, or the header checks of its users, tell whether it is really
   a free chunk's.  A damaged link decodes to a random address, which the
   bounds turn away with overwhelming odds. */
static inline struct free_links *link_target(const struct bins *bs, uint64_t key,
                                             const uint64_t *where, const char *func)
{
	struct free_links *l = link_open(key, where);
	if (unlikely(!is_sentinel(bs, l) && !heap_bounds_hold(l)))
		bad_link(func, where);
	return l;
}

void osmem_bins_init(struct bins *bs)
{
	uint64_t key = link_key();
	for (unsigned i = 0; i < BIN_COUNT; i++) {
		struct free_links *s = &bs->lists[i];
		s->next = link_seal(key, &s->next, s);
		s->prev = link_seal(key, &s->prev, s);
	}
}

void osmem_bin_insert(struct bins *bs, struct chunk *c, size_t size)
{
	unsigned b = bin_of(size);
	struct free_links *head = &bs->lists[b];
	struct free_links *node = links_of(c);
	uint64_t key = link_key();
	struct free_links *first = link_open(key, &head->next);
	node->next = link_seal(key, &node->next, first);
	node->prev = link_seal(key, &node->prev, head);
	first->prev = link_seal(key, &first->prev, node);
	head->next = link_seal(key, &head->next, node);
	bin_mark(bs, b);
}

void osmem_bin_remove(struct bins *bs, struct chunk *c, const char *func)
{
	struct free_links *node = links_of(c);
	uint64_t key = link_key();
	struct free_links *next = link_target(bs, key, &node->next, func);
	struct free_links *prev = link_target(bs, key, &node->prev, func);
	if (unlikely(link_open(key, &next->prev) != node || link_open(key, &prev->next) != node))
		bad_link(func, chunk_payload(c));
	next->prev = link_seal(key, &next->prev, prev);
	prev->next = link_seal(key, &prev->next, next);
	if (next == prev && is_sentinel(bs, next)) {
		bin_unmark(bs, (unsigned)(next - bs->lists));
	}
}

/* Checks every bin list against the bitmap, the classes and its own back
   links; EXPECTED is the number of free chunks the heap walk found. */
const char *osmem_bins_verify(const struct bins *bs, size_t expected, const void **at)
{
	size_t seen = 0;
	uint64_t key = link_key();
	for (unsigned b = 0; b < BIN_COUNT; b++) {
		const struct free_links *head = &bs->lists[b], *prev = head;
		const struct free_links *l = link_open(key, &head->next);
		bool marked = (bs->map[b / 64u] >> (b % 64u)) & 1u;
		*at = head;
		if ((l == head) == marked)
			return "bin bitmap does not match the free lists";
		while (l != head) {
			uint64_t v;
			*at = l;
			if (((uintptr_t)l & (OSMEM_ALIGN - 1)) || !heap_segment_of(l) ||
			    !unseal(&chunk_of(l)->tag, &v) || tag_state(v) != CHUNK_FREE ||
			    link_open(key, &l->prev) != prev)
				return "corrupted free list";
			if (bin_of(tag_size(v)) != b)
				return "free block in the wrong bin";
			if (++seen > expected)
				return "free lists hold more blocks than the heap";
			prev = l;
			l = link_open(key, &l->next);
			if (!is_sentinel(bs, l) && !heap_segment_of(l))
				return "corrupted free list";
		}
		if (link_open(key, &head->prev) != prev)
			return "corrupted free list";
	}
	*at = NULL;
	return seen == expected ? NULL : "free lists hold fewer blocks than the heap";
}

/* Whole pages of [LO, HI). */
static size_t pages_within(uintptr_t lo, uintptr_t hi)
{
	size_t page = osmem_g.page_size;
	lo = osmem_align_up(lo, page);
	hi = osmem_align_down(hi, page);
	return hi > lo ? hi - lo : 0;
}

/* Calls VISIT for every binned chunk of class FROM and up, with its
   size, looking at no more than MAX_CHUNKS chunks (the arena's count of
   free chunks: a damaged list cannot make the walk endless).  For the
   inspection paths only: the lists are not checked as a removal does. */
static void each_binned(const struct bins *bs, unsigned from, size_t max_chunks,
                        void (*visit)(void *arg, unsigned b, struct chunk *c, size_t size),
                        void *arg)
{
	size_t seen = 0;
	uint64_t key = link_key();
	for (unsigned b = from; b < BIN_COUNT; b++) {
		const struct free_links *head = &bs->lists[b];
		for (const struct free_links *l = link_open(key, &head->next);
		     l != head && seen++ < max_chunks; l = link_open(key, &l->next)) {
			uint64_t v;
			if (!unseal(&chunk_of(l)->tag, &v))
				break;
			visit(arg, b, chunk_of(l), tag_size(v));
		}
	}
}

struct released_count {
	size_t min_size, bytes;
};

static void count_released(void *arg, unsigned b, struct chunk *c, size_t size)
{
	struct released_count *r = arg;
	(void)b;
	if (size >= r->min_size)
		r->bytes += pages_within((uintptr_t)c + CHUNK_MIN, (uintptr_t)c + size);
}

size_t osmem_bins_released(const struct bins *bs, size_t min_size, size_t max_chunks)
{
	struct released_count r = { .min_size = min_size, .bytes = 0 };
	each_binned(bs, bin_of(min_size), max_chunks, count_released, &r);
	return r.bytes;
}

size_t osmem_bin_smallest(unsigned b)
{
	if (b < BIN_EXACT_LIMIT / 16u)
		return (size_t)b * 16u;
	unsigned fl = 9u + (b - 32u) / 8u, sl = (b - 32u) % 8u;
	return (size_t)(8u + sl) << (fl - 3u);
}

struct census {
	size_t *count, *bytes;
};

static void count_class(void *arg, unsigned b, struct chunk *c, size_t size)
{
	struct census *cs = arg;
	(void)c;
	cs->count[b]++;
	cs->bytes[b] += size;
}

void osmem_bins_census(const struct bins *bs, size_t count[BIN_COUNT], size_t bytes[BIN_COUNT],
                       size_t max_chunks)
{
	struct census cs = { .count = count, .bytes = bytes };
	each_binned(bs, 0, max_chunks, count_class, &cs);
}

static void release_chunk_pages(void *arg, unsigned b, struct chunk *c, size_t size)
{
	(void)arg;
	(void)b;
	osmem_release_free_pages(c, size);
}

void osmem_bins_release_pages(const struct bins *bs, size_t max_chunks)
{
	each_binned(bs, 0, max_chunks, release_chunk_pages, NULL);
}

/* How many chunks of a ranged class are looked at for a fit before moving
   on to the next class up, where everything fits.  Keeps malloc O(1); a
   longer look finds tighter fits but costs more than it saves. */
#define FIT_SCAN_LIMIT 2

struct chunk *osmem_bins_take_best(struct bins *bs, size_t cs, size_t alt, size_t *size)
{
	if (!bs->map_words)
		return NULL;
	enum chunk_state st;
	uint64_t key = link_key();
	unsigned b = bin_of(cs);
	if (cs >= BIN_EXACT_LIMIT && (bs->map[b / 64u] >> (b % 64u)) & 1u) {
		/* Best fit within the request's own class, boundedly. */
		struct free_links *head = &bs->lists[b];
		struct free_links *l = link_target(bs, key, &head->next, "os_malloc");
		for (int i = 0; i < FIT_SCAN_LIMIT && l != head; i++) {
			struct chunk *c = chunk_of(l);
			*size = osmem_read_chunk_size(c, &st, "os_malloc");
			if (st != CHUNK_FREE)
				osmem_fatal("os_malloc", "corrupted free list", l);
			if (*size >= cs) {
				osmem_bin_remove(bs, c, "os_malloc");
				return c;
			}
			l = link_target(bs, key, &l->next, "os_malloc");
		}
	}
	b = bin_find_from(bs, first_bin_holding_at_least(cs));
	/* The chunk kept apart serves when it fits and no smaller class can. */
	if (b == BIN_COUNT || (alt >= cs && bin_of(alt) < b))
		return NULL;
	struct chunk *c = chunk_of(link_target(bs, key, &bs->lists[b].next, "os_malloc"));
	*size = osmem_read_chunk_size(c, &st, "os_malloc");
	if (st != CHUNK_FREE || *size < cs)
		osmem_fatal("os_malloc", "corrupted free list", chunk_payload(c));
	osmem_bin_remove(bs, c, "os_malloc");
	return c;
}
