/*
 * segment.h - the memory the heap lives in (segment.c).
 *
 * A segment is one contiguous run of heap memory: a run of chunks (see
 * chunk.h) ended by a fence, obtained with sbrk or, when the break cannot
 * move, with mmap.  This layer gets memory from the kernel and gives it
 * back; it hands what it grew to the heap as a run of bytes, and never
 * looks at which chunks are free or where they are kept.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_SEGMENT_H
#define OSMEM_SEGMENT_H

#include "chunk.h"
#include "lock.h"

/* The arena that owns a segment; opaque here. */
struct arena;

/* Segments are only ever appended to the table below, and a valid block
   never lies outside the segment it was carved from, so lookups need no
   lock (see heap_segment_of).  A mapped segment given back whole keeps its
   slot with end == base, matching nothing. */
struct segment {
	uintptr_t base;       /* first chunk */
	uintptr_t end;        /* one past the fence; read without the lock */
	uintptr_t fresh_from; /* see below */
	uintptr_t limit;      /* a mapped segment's reserved address space
	                         ends here: it grows in place up to it
	                         (end <= limit; a brk segment's is its end) */
	struct arena *arena;  /* the owner, set before the slot is published */
	bool from_brk;        /* grown with sbrk, else an anonymous mapping */
};
/* fresh_from: every payload byte of a free chunk at or above this address
   is zero, except the 16 bytes of its links.  Everything above it came
   from the kernel and has never been handed out, so os_calloc need not
   clear it again.  Written under the owner's lock. */

#define SEGMENT_MAX 256u

/* The segments of every arena, in the order they were made.  A segment's
   fields are the owner's (under its lock); the table's slots and bounds
   are appended to under the table's own lock, taken inside an arena's. */
struct segment_table {
	osmem_lock_t lock;
	unsigned nsegs;            /* published with release order */
	uintptr_t lowest, highest; /* bounds of all segments, ever */
	struct segment segs[SEGMENT_MAX];
};

extern struct segment_table osmem_segments OSMEM_HIDDEN;

/* The segment holding address P, or NULL.  Lock-free. */
static inline const struct segment *heap_segment_of(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	unsigned n = __atomic_load_n(&osmem_segments.nsegs, __ATOMIC_ACQUIRE);
	while (n--) {
		const struct segment *s = &osmem_segments.segs[n];
		if (a > s->base && a < __atomic_load_n(&s->end, __ATOMIC_RELAXED))
			return s;
	}
	return NULL;
}

/* A cheap test that P lies somewhere between the lowest and the highest
   address any arena has ever used: enough to dereference a decoded link
   whose target is checked next, not to prove P is a block. */
static inline bool heap_bounds_hold(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	return !(a & (OSMEM_ALIGN - 1)) && a > __atomic_load_n(&osmem_segments.lowest, __ATOMIC_RELAXED) &&
	       a < __atomic_load_n(&osmem_segments.highest, __ATOMIC_RELAXED);
}

/* The segment holding heap chunk address A, newest first, for an arena
   whose lock is held.  Every chunk lies in one; not finding it means the
   heap's own bookkeeping is broken. */
static inline struct segment *osmem_segment_find(uintptr_t a)
{
	for (unsigned i = __atomic_load_n(&osmem_segments.nsegs, __ATOMIC_ACQUIRE); i--;) {
		struct segment *s = &osmem_segments.segs[i];
		/* Another arena's segment may be cut or given back meanwhile,
		   under its own lock: its end is read atomically. */
		if (a >= s->base && a < __atomic_load_n(&s->end, __ATOMIC_RELAXED))
			return s;
	}
	osmem_fatal("osmem", "internal error: block outside every heap segment", (void *)a);
}

/* The segments of arena OWNER that hold memory, in the order they were
   made: from slot *I on, the next one, or NULL; *I is left past it.
   Start with *I = 0.  With OWNER's lock held (its segments change only
   under it; other arenas' slots are only looked at). */
static inline struct segment *osmem_segment_next_of(const struct arena *owner, unsigned *i)
{
	unsigned n = __atomic_load_n(&osmem_segments.nsegs, __ATOMIC_ACQUIRE);
	while (*i < n) {
		struct segment *s = &osmem_segments.segs[(*i)++];
		/* Another arena's, or given back. */
		if (s->arena == owner && __atomic_load_n(&s->end, __ATOMIC_RELAXED) != s->base)
			return s;
	}
	return NULL;
}

/* The segments of one arena, and what they add up to.  Part of the arena,
   and guarded by its lock. */
struct segment_list {
	struct arena *owner;      /* written into every segment made */
	struct segment *newest;   /* the one made or grown last; read without
	                             the lock by the inline free (cache.h), so
	                             stored with release, loaded with acquire */
	bool uses_brk;            /* the main arena only (see segment.c) */
	size_t brk_bytes;         /* bytes of segments obtained with sbrk */
	size_t mapped_bytes;      /* bytes of segments obtained with mmap */
};

/* New memory for an arena: RUN, SIZE bytes that end at SEG's fence.  The
   fence's prev_tag is SIZE, and RUN's prev_tag the size of the chunk
   before it (0 when RUN starts the segment); RUN's own tag is the
   caller's to write. */
struct segment_growth {
	struct segment *seg;
	struct chunk *run;
	size_t size;
};

enum segment_grown {
	SEGMENT_NOT_GROWN,
	SEGMENT_EXTENDED, /* RUN continues SEG's former last chunk */
	SEGMENT_ADDED,    /* SEG is new, and now the newest */
};

/* Grows SEG at its end by at least MISSING bytes.  EXTENDED when the
   break was still SEG's end, or SEG is mapped and its reservation has the
   room; ADDED when someone moved the break between our calls (what we got
   is ours all the same, as a new segment). */
enum segment_grown osmem_segment_extend(struct segment_list *l, struct segment *seg,
                                        size_t missing, struct segment_growth *g) OSMEM_HIDDEN;
/* Memory for a chunk of CS bytes: the newest segment extended, or a new
   one, with the break if L may use it, else mapped. */
enum segment_grown osmem_segment_grow(struct segment_list *l, size_t cs,
                                      struct segment_growth *g) OSMEM_HIDDEN;
/* The chunk just below SEG's fence, whether it is free, and its size. */
struct chunk *osmem_segment_last(const struct segment *seg, bool *is_free, size_t *size) OSMEM_HIDDEN;
/* Unmaps mapped segment SEG, which holds no chunk in use. */
void osmem_segment_unmap(struct segment_list *l, struct segment *seg) OSMEM_HIDDEN;
/* Cuts SEG back so that it ends at KEEP_END (page-aligned, past LAST's
   links), LAST, its last chunk, then being KEEP_END - CHUNK_HEADER - LAST
   bytes: the break is lowered, or the tail decommitted (unmapped with the
   rest of the reservation under memory PRESSURE).  False when the break
   is no longer SEG's end, or will not move: the tail's pages are then
   given back instead (osmem_segment_release_tail, with SLACK). */
bool osmem_segment_cut(struct segment_list *l, struct segment *seg, struct chunk *last,
                       uintptr_t keep_end, size_t slack, bool pressure) OSMEM_HIDDEN;
/* Gives back the pages of SEG from KEEP_END to its fence, once more than
   SLACK bytes of them may be resident; SEG keeps its size. */
void osmem_segment_release_tail(struct segment *seg, uintptr_t keep_end, size_t slack) OSMEM_HIDDEN;
/* Narrows [*LO, *HI) to the whole pages around it that lie inside free
   chunk C of SIZE bytes past its header and links, the pages that may go
   back to the kernel; false when there are none. */
static inline bool osmem_pages_within(const struct chunk *c, size_t size, uintptr_t *lo,
                                      uintptr_t *hi)
{
	size_t page = osmem_g.page_size;
	uintptr_t first = osmem_align_up((uintptr_t)c + CHUNK_MIN, page);
	uintptr_t end = osmem_align_down((uintptr_t)c + size, page);
	*lo = *lo < first ? first : osmem_align_down(*lo, page);
	*hi = *hi > end ? end : osmem_align_up(*hi, page);
	return *hi > *lo;
}

/* Gives back the pages of [LO, HI) inside free chunk C of SIZE bytes, if C
   is large enough for that to be worth it (the trim threshold). */
void osmem_release_pages(struct chunk *c, size_t size, uintptr_t lo, uintptr_t hi) OSMEM_HIDDEN;
/* The same whatever C's size: the whole pages around [LO, HI) that lie
   inside C past its header and links go back. */
void osmem_release_pages_within(struct chunk *c, size_t size, uintptr_t lo,
                                uintptr_t hi) OSMEM_HIDDEN;
/* Gives back every whole page inside free chunk C of SIZE bytes, past its
   links, whatever its size. */
void osmem_release_free_pages(struct chunk *c, size_t size) OSMEM_HIDDEN;

#endif /* OSMEM_SEGMENT_H */
