/*
 * bins.h - where the free chunks of an arena are kept, and best fit among
 * them (bins.c).
 *
 * Free chunks live in circular doubly linked lists, one per size class,
 * with a sentinel per class.  A bitmap marks the classes that are not
 * empty, so the smallest class that can serve a request is a
 * count-trailing-zeros away.  The bins know chunks and their sizes, not
 * the arena around them: they hand back candidates, and never call up.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_BINS_H
#define OSMEM_BINS_H

#include "segment.h"

/* A free chunk keeps its list links at the start of its payload.  Both are
   stored sealed (see link_seal in bins.c) so that a stray write over a freed
   block is noticed instead of steering the allocator. */
struct free_links {
	uint64_t next;
	uint64_t prev;
};

/* Size classes: exact 16-byte classes below 512 bytes, then eight classes
   per power of two, so a class never spans more than a factor of 1.125.
   Sizes of 2^37 and more share the last bin. */
#define BIN_EXACT_LIMIT 512u
#define BIN_COUNT 256u
#define BIN_WORDS (BIN_COUNT / 64u)
_Static_assert(BIN_WORDS <= 64, "one summary word covers the bitmap");

/* Invariants: bit b of map is set exactly when list b is not empty, and
   bit w of map_words exactly when map[w] is not zero; every chunk in list
   b is FREE and of a size whose class is b. */
struct bins {
	uint64_t map[BIN_WORDS];
	uint64_t map_words;
	struct free_links lists[BIN_COUNT]; /* sentinels of circular lists */
};

/* Seals B's empty lists with the secret; once, before B is first used. */
void osmem_bins_init(struct bins *b) OSMEM_HIDDEN;
void osmem_bin_insert(struct bins *b, struct chunk *c, size_t size) OSMEM_HIDDEN;
void osmem_bin_remove(struct bins *b, struct chunk *c, const char *func) OSMEM_HIDDEN;
/* The binned chunk that serves CS bytes best, taken out of its bin (its
   size in *SIZE); NULL when there is none, or when a free chunk of ALT
   bytes kept apart from the bins (0: none) serves as well or better. */
struct chunk *osmem_bins_take_best(struct bins *b, size_t cs, size_t alt, size_t *size) OSMEM_HIDDEN;
/* NULL when every list is consistent with the bitmap, the classes and its
   own back links and EXPECTED chunks are binned, else the first problem
   (and where, in *AT). */
const char *osmem_bins_verify(const struct bins *b, size_t expected, const void **at) OSMEM_HIDDEN;
/* The bytes in whole pages inside binned chunks of at least MIN_SIZE
   bytes (whose pages went back when they became free), looking at no
   more than MAX_CHUNKS chunks. */
size_t osmem_bins_released(const struct bins *b, size_t min_size, size_t max_chunks) OSMEM_HIDDEN;
/* The smallest chunk size of class B (the classes of bin_of in bins.c). */
size_t osmem_bin_smallest(unsigned b) OSMEM_HIDDEN;
/* Adds the number and the bytes of the binned chunks of each class to
   COUNT and BYTES, looking at no more than MAX_CHUNKS chunks. */
void osmem_bins_census(const struct bins *b, size_t count[BIN_COUNT], size_t bytes[BIN_COUNT],
                       size_t max_chunks) OSMEM_HIDDEN;
/* Gives back the pages inside every binned chunk, looking at no more than
   MAX_CHUNKS chunks. */
void osmem_bins_release_pages(const struct bins *b, size_t max_chunks) OSMEM_HIDDEN;

#endif /* OSMEM_BINS_H */
