/*
 * ledger.c - giving back the pages of noted free chunks (see ledger.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "ledger.h"

void osmem_ledger_note(struct ledger *l, const struct arena *owner, struct chunk *c, size_t bytes)
{
	unsigned i = 0;
	while (i < l->used && l->chunk[i] != c)
		i++;
	if (i == l->used) {
		if (l->used == LEDGER_SLOTS) {
			osmem_ledger_release_all(l, owner);
			i = 0;
		}
		l->chunk[i] = c;
		l->bytes[i] = 0;
		l->used++;
	}
	l->bytes[i] += bytes;
	l->total += bytes;
	if (l->total > osmem_ledger_limit())
		osmem_ledger_release_all(l, owner);
}

/* C, noted by OWNER's ledger, if it is still a free chunk of OWNER's: its
   size, else 0. */
static size_t still_free(const struct arena *owner, const struct chunk *c)
{
	const struct segment *seg = heap_segment_of(chunk_payload(c));
	uint64_t v;
	if (!seg || seg->arena != owner || !unseal(&c->tag, &v) || tag_state(v) != CHUNK_FREE)
		return 0;
	size_t size = tag_size(v);
	return (uintptr_t)c + size + CHUNK_HEADER <= seg->end ? size : 0;
}

void osmem_ledger_release_all(struct ledger *l, const struct arena *owner)
{
	for (unsigned i = 0; i < l->used; i++) {
		size_t size = still_free(owner, l->chunk[i]);
		if (size)
			osmem_release_free_pages(l->chunk[i], size);
	}
	osmem_ledger_clear(l);
}
