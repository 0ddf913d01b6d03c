/*
 * ledger.h - large free chunks whose pages are still resident (ledger.c).
 *
 * A free chunk inside the heap of at least the trim threshold gives the
 * pages inside it back to the kernel (osmem_release_pages).  Doing that on
 * every free that adds a few bytes to such a chunk costs a system call per
 * free, and a page fault per page when the space is handed out again: a
 * program that frees a burst of small blocks next to a large free run and
 * then allocates the same blocks again would pay both on every burst.  So
 * a free that adds less than the limit below only notes the chunk here,
 * with an estimate of the resident bytes it added; the pages go back when
 * the notes add up to more than the limit, when the program asks
 * (os_malloc_trim), and before any ENOMEM.  A chunk handed out again takes
 * its note with it, and what it carried stays resident for its new use.
 *
 * A note is a hint, not a claim: before giving pages back, the ledger
 * checks that the chunk noted still lies in a segment and still carries a
 * sealed FREE tag, and gives back only pages strictly inside it, past its
 * header and links.  A stale note (a chunk merged into the one below it,
 * or handed out without its note being taken) therefore costs nothing but
 * the check: it can never release a live block's pages.
 *
 * Invariants: slots [0, used) hold the notes, no chunk twice; TOTAL is the
 * sum of their bytes; TOTAL stays at or below osmem_ledger_limit() between
 * calls.  Every function runs with the owning arena's lock held.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_LEDGER_H
#define OSMEM_LEDGER_H

#include "segment.h"

#define LEDGER_SLOTS 16u

struct ledger {
	unsigned used;
	size_t total;
	struct chunk *chunk[LEDGER_SLOTS];
	size_t bytes[LEDGER_SLOTS];
};

/* How many resident bytes the notes of one arena may add up to: 32
   times the trim threshold (4 MiB by default), so that a program that
   sets the threshold low to give memory back eagerly gets that here too. */
static inline size_t osmem_ledger_limit(void)
{
	size_t t = osmem_g.opt.trim_threshold;
	return t > SIZE_MAX / 32 ? SIZE_MAX : 32 * t;
}

/* Notes that free chunk C of arena OWNER (C of at least the trim
   threshold) gained BYTES that may be resident; gives every noted chunk's
   pages back when that takes the notes over the limit, or when there is no
   slot left. */
void osmem_ledger_note(struct ledger *l, const struct arena *owner, struct chunk *c,
                       size_t bytes) OSMEM_HIDDEN;

/* Takes the note on C, if there is one: the bytes it carried, else 0. */
static inline size_t osmem_ledger_take(struct ledger *l, const struct chunk *c)
{
	for (unsigned i = 0; i < l->used; i++) {
		if (l->chunk[i] != c)
			continue;
		size_t b = l->bytes[i];
		l->total -= b;
		l->used--;
		l->chunk[i] = l->chunk[l->used];
		l->bytes[i] = l->bytes[l->used];
		return b;
	}
	return 0;
}

/* Free chunk FROM became part of free chunk TO (merged, or what is left
   of it after a carve): its note, if any, now names TO, less SPENT bytes
   that were handed out. */
static inline void osmem_ledger_move(struct ledger *l, const struct arena *owner,
                                     const struct chunk *from, struct chunk *to, size_t spent)
{
	if (!l->used)
		return;
	size_t b = osmem_ledger_take(l, from);
	if (b)
		osmem_ledger_note(l, owner, to, b > spent ? b - spent : osmem_g.page_size);
}

/* Gives back the pages inside every noted chunk and forgets the notes. */
void osmem_ledger_release_all(struct ledger *l, const struct arena *owner) OSMEM_HIDDEN;

/* Forgets every note, for when all free pages were just given back. */
static inline void osmem_ledger_clear(struct ledger *l)
{
	l->used = 0;
	l->total = 0;
}

#endif /* OSMEM_LEDGER_H */
