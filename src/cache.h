/*
 * cache.h - the blocks a thread keeps for itself (cache.c).
 *
 * Deferred coalescing: a thread keeps the small blocks it frees, up to
 * OSMEM_CACHE_MAX bytes each (32 KiB by default), in lists of its own and
 * serves its next requests from them with no lock, no atomic
 * read-modify-write and no search.  The heap sees a kept block as USED.
 * Kept blocks go back to the heap, where they coalesce, when the thread
 * keeps too many bytes, when it exits, before its arena would grow while
 * it keeps more than CACHE_KEPT_BEFORE_GROWTH (the lists of the largest
 * blocks, until it keeps half as much at most: the bytes are mostly
 * there, and the small blocks, the most often asked for, stay) and before
 * a request fails (all of them).  So a thread's arena may grow while the
 * thread keeps up to CACHE_KEPT_BEFORE_GROWTH bytes, as glibc's heap does
 * while its thread caches hold up to 7 blocks of each of 64 sizes.
 *
 * Lists: list I (0 < I <= CACHE_EXACT_LISTS - 1) holds chunks of exactly
 * (I + 1) * 16 bytes, payloads of up to 1 KiB; a request of N bytes looks
 * in list (N + 15) / 16, and only on its slow path, when that list is
 * empty even after the thread took back its remote frees, in the lists up
 * to a sixteenth larger (take_neighbour in cache.c; a list that borrowed
 * so 16 times is refilled instead).  Above that, each list holds chunks of
 * a range of sizes, four ranges per doubling (cache_range_of); a request
 * takes the first block of its own range's list when that is large enough,
 * else the first of the next range's, whose blocks all are.  Such a block
 * may be up to a half larger than asked for; the excess stays with it and
 * is given back when it returns to the heap.  Four ranges per doubling, as
 * jemalloc's size classes: with eight, the two lists a request looks at
 * held blocks up to a quarter larger only, and a program asking for many
 * sizes found both empty more often.  An exact list is refilled from the
 * heap in batches that start at four blocks and double with each refill
 * (struct tcache's FILL), so that only sizes asked for in runs hold many
 * blocks.
 *
 * The last block: the inline free leaves the block it frees in a slot of
 * its own (LAST), and puts the one that was there into its list.  A
 * request of an exact list's size takes it back first; one above 1 KiB
 * takes it when the two lists it looks at have nothing for it, and it is
 * of their ranges and large enough (cache_fast_alloc_ranged says why).  A
 * free's list is known only once the block's header has been read, so a
 * request that read the list right after the free would wait for that
 * read; the slot is found at a fixed place, and the list a free writes
 * to is that of the block freed before, whose header was read long ago.
 * A program that frees and allocates one size in turn never takes a
 * block from its lists, nor puts one in.  The slot's block carries the
 * freed mark, and its word 0 a check value (its address ^ KEY) in place
 * of a link.
 *
 * Blocks of other threads' arenas are kept only while the thread keeps
 * at most CACHE_FOREIGN_MAX bytes in all: a thread that frees what others
 * allocate (a consumer) would otherwise hold their memory up to its whole
 * bound, which its producers then have to allocate anew (with 256 KiB,
 * prodcons's peak RSS was up to 1.27 times glibc's).
 *
 * The bound: a thread keeps at most CACHE_KEPT_MAX bytes of blocks, chunk
 * headers included (struct tcache's KEPT).  A free that would pass it
 * gives back, in one batch per arena, every list's blocks but those it
 * got last: half of each list, CACHE_OVERFLOW_KEEP blocks at most.  So
 * the thread keeps a few blocks of every size it was using, and its next
 * requests of those sizes still find them; giving back everything sent
 * the next few hundred requests of a program of many sizes to the heap,
 * which carved again what had just been merged (batch: 131521 blocks
 * given back and 52932 heap requests in 2*10^6 steps, against 72692 and
 * 40154 now).  Not more than CACHE_OVERFLOW_KEEP of a list: a thread that
 * frees many blocks of one size, then of another (burst), would keep
 * half a list of a size it no longer asks for, which keeps its
 * neighbours apart in the heap.  The thread goes on keeping
 * the blocks of its own arena; but blocks of other arenas then go
 * straight back to their arenas until its next request that its lists
 * cannot serve: a thread that frees that many of other threads' blocks
 * without allocating (a consumer) would otherwise hold up to the bound of
 * their memory all the time.
 *
 * Emptying: the bound is in bytes, but a few hundred small blocks kept
 * here and there in a heap that is otherwise free keep every page they
 * lie in, and the free runs between them, too short to give back, keep
 * theirs: a program that allocated 32 MiB of 16-byte blocks and freed
 * them all in random order stayed at 67 MB resident, held by 16023 kept
 * blocks of 32 bytes.  So when a thread gives blocks back to its arena
 * and finds that the arena holds less than an eighth of what it spans
 * (of CACHE_EMPTYING_SPAN at least: a small heap costs little whatever
 * it holds), the arena is emptying: its free pages go back at once,
 * those of the runs that form later too, and its threads keep at most
 * CACHE_EMPTYING_KEPT bytes, so that the blocks freed last pin a few
 * hundred pages at most.  It stops when a thread next allocates from
 * it, and starts again only once it has shrunk by half once more, or
 * grown to a quarter of its span and shrunk again (see_emptying in
 * cache.c).
 *
 * A kept chunk's first two payload words:
 *   word 0: the next chunk in its list, XORed with the thread's key (a
 *           stray write turns into a misaligned pointer, caught at once,
 *           most of the time; slow paths check the target fully);
 *   word 1: a mark derived from the chunk's address and a process secret,
 *           which says "this block has been freed" without a search, so a
 *           second free is caught even from another thread.
 * The same two words serve a block on an arena's remote list (arena.h).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_CACHE_H
#define OSMEM_CACHE_H

#include "heap.h"

/* Exact lists: chunk sizes 32 .. 1040 bytes (list 0 stays empty). */
#define CACHE_EXACT_LISTS 65u
#define CACHE_EXACT_MAX_CHUNK ((size_t)CACHE_EXACT_LISTS * 16u)
#define CACHE_EXACT_MAX_PAYLOAD (CACHE_EXACT_MAX_CHUNK - CHUNK_HEADER)
/* Range lists: chunk sizes above 1040 bytes up to CACHE_MAX_CHUNK. */
#define CACHE_MAX_CHUNK ((size_t)32 * 1024 + CHUNK_HEADER)
#define CACHE_MAX_PAYLOAD (CACHE_MAX_CHUNK - CHUNK_HEADER)
#define CACHE_RANGE_LISTS 21u
#define CACHE_CLASSES (CACHE_EXACT_LISTS + CACHE_RANGE_LISTS)
/* Blocks a thread frees into another thread's arena travel in batches of
   up to this many, or this many bytes (struct outgoing). */
#define CACHE_OUT_BLOCKS 64u
#define CACHE_OUT_BYTES ((size_t)64 * 1024)
/* How far ahead in a batch a block points, for its receiver to fetch. */
#define CACHE_OUT_AHEAD 8u
/* Runs a thread gathers at once, each for one arena. */
#define CACHE_OUT_RUNS 4u
/* What one thread may keep, in bytes of chunks. */
#define CACHE_KEPT_MAX ((size_t)1 << 20)
/* The most blocks of a list that stay kept when the bound is passed. */
#define CACHE_OVERFLOW_KEEP 8u
/* What it may keep while its arena is emptying, and the least an arena
   spans for that to be looked at (see "Emptying" above). */
#define CACHE_EMPTYING_KEPT ((size_t)32 * 1024)
#define CACHE_EMPTYING_SPAN ((size_t)8 << 20)
/* Kept bytes that do not go back to the heap before it grows. */
#define CACHE_KEPT_BEFORE_GROWTH (CACHE_KEPT_MAX / 4)
/* Kept bytes up to which a thread keeps other arenas' blocks too. */
#define CACHE_FOREIGN_MAX (CACHE_KEPT_MAX / 8)

/* The range list of a chunk of CS bytes (CACHE_EXACT_MAX_CHUNK < CS <=
   CACHE_MAX_CHUNK): the one whose lower bound is the largest at or below
   CS.  Bounds are (4 + m) << (e - 2) for e >= 10, m in 0..3. */
static inline unsigned cache_range_of(size_t cs)
{
	unsigned e = 63u - (unsigned)__builtin_clzll(cs);
	return CACHE_EXACT_LISTS + (e - 10u) * 4u + (unsigned)((cs >> (e - 2u)) & 3u);
}

/* The smallest chunk list I holds. */
static inline size_t cache_class_size(unsigned i)
{
	if (i < CACHE_EXACT_LISTS)
		return i ? ((size_t)i + 1u) * 16u : CHUNK_MIN;
	unsigned r = i - CACHE_EXACT_LISTS;
	return (size_t)(4u + r % 4u) << (r / 4u + 8u);
}

/* The list a kept chunk of CS bytes goes to. */
static inline unsigned cache_list_of_chunk(size_t cs)
{
	return cs <= CACHE_EXACT_MAX_CHUNK ? (unsigned)(cs >> 4) - 1u : cache_range_of(cs);
}

/* The same for a CS known to lie in CHUNK_MIN .. CACHE_MAX_CHUNK, looked
   up: one load from a table of 2 KiB (filled by osmem_cache_init), where
   the formula costs the inline paths a branch that a program using
   blocks on both sides of CACHE_EXACT_MAX_CHUNK in no order mispredicts
   every other time, or without the branch a dozen instructions.  (batch
   went from 30 to 27 ns an operation, and pairs-16 from 4.4 to 4.2.)
   Only for sizes the caller has bounded: a size read from a header that
   is being checked uses the formula. */
extern uint8_t osmem_cache_list_of[CACHE_MAX_CHUNK / 16 + 1] OSMEM_HIDDEN;
static inline unsigned cache_list_of_kept(size_t cs)
{
	return osmem_cache_list_of[cs >> 4];
}

/* A thread's kept blocks.  Written only by its thread; os_mallinfo reads
   COUNT and KEPT from others (relaxed atomic stores, plain moves). */
struct tcache {
	/* The block freed last by the inline free, in no list yet (see "The
	   last block" above), and its size: LAST_SIZE is 0 when there is
	   none.  Its size, not its list, is what the inline paths compare:
	   a request of an exact list's size is served by it when the sizes
	   are equal, so the free need not work out its list before the
	   request that follows can tell (the list is found on the next
	   free, when the block goes into it).  os_mallinfo reads LAST_SIZE
	   from other threads. */
	struct chunk *last;
	size_t last_size;
	size_t taken;                      /* bytes taken by the inline requests
	                                      (see KEPT) */
	uint64_t head[CACHE_CLASSES];      /* first chunk of each list ^ KEY */
	/* The blocks in each list, and one more entry, always 0, so that
	   the inline path may read the counts of lists R and R + 1 in one
	   load for the last list too. */
	uint32_t count[CACHE_CLASSES + 1];
	/* How many blocks the next refill of exact list I cuts: it starts
	   small, doubles with each refill up to refill_count (cache.c), and
	   halves when the thread's cache overflows, so that a list holds
	   many blocks only while its size is asked for in runs. */
	uint8_t fill[CACHE_EXACT_LISTS];
	/* How many requests of exact list I took a larger list's block since
	   the list was last refilled, up to BORROW_MAX (cache.c). */
	uint8_t borrowed[CACHE_EXACT_LISTS];
	/* The bytes of all kept chunks are KEPT - TAKEN (cache_kept), so
	   that cache_fast_alloc writes a word of its own: modulo 2^64, as
	   both only ever grow on the inline paths. */
	size_t kept;
	size_t bound;                      /* what it may keep: CACHE_KEPT_MAX, or
	                                      CACHE_EMPTYING_KEPT (see "Emptying") */
	bool keeps_foreign;                /* keeps blocks of other arenas: not
	                                      after an overflow, until the thread
	                                      next allocates (osmem_cache_free) */
	uint64_t key;                      /* encodes the links; per thread */
	size_t max_chunk;                  /* the largest chunk kept: OSMEM_CACHE_MAX
	                                      and its header, to CACHE_MAX_CHUNK */
	/* The newest segment of the thread's arena as the thread last saw
	   it, where a block that the inline free may take must lie: so it
	   checks a block's address with two compares instead of a search of
	   the segment table.  Never NULL (an empty segment stands in), and
	   looked at again on the slow paths (cache_see_newest), since
	   another thread of the arena may add one. */
	const struct segment *own;
	struct segment *const *arena_newest; /* &arena->segs.newest */
	struct arena *arena;               /* the thread's arena */
	/* Blocks the thread freed into other threads' arenas, not yet
	   handed over: up to CACHE_OUT_RUNS runs, each for one arena (TO)
	   and ready for osmem_arena_give_run, FIRST the last freed, each
	   block marked freed (so a second free is still caught) and linked
	   to the one freed before it.  A run is handed over when it holds
	   CACHE_OUT_BLOCKS or CACHE_OUT_BYTES, when a block for a fifth
	   arena needs its place (the run that place held goes), and all of
	   them whenever the thread's kept blocks are given back (drain_all:
	   thread exit, os_malloc_trim, a request about to fail) and on the
	   thread's slow path of os_malloc.  One atomic operation then moves
	   a run, where one per block made the receiver and the sender fight
	   over its list's head; one run for all arenas was handed over
	   whenever the next block was another arena's, a block or two at a
	   time in a program whose threads free each other's blocks in turn
	   (xfree).  And a run built by one thread can say, in each block of
	   48 bytes or more (word 2), which block comes CACHE_OUT_AHEAD
	   places further on, so that the receiver fetches that far ahead
	   as it walks them instead of missing on every block in turn
	   (osmem_arena_remote_step in arena.h).  COUNT and BYTES are read by
	   os_mallinfo from other threads. */
	struct outgoing {
		struct arena *to;
		struct chunk *first, *last;
		uint32_t count;
		size_t bytes;
		struct chunk *recent[CACHE_OUT_AHEAD];
	} out[CACHE_OUT_RUNS];
	unsigned out_evict;                /* the run a fifth arena's block
	                                      sends next */
	/* The segment of the block of another arena that the thread last
	   sent out (or NULL), where osmem_cache_free_foreign looks first. */
	const struct segment *foreign;
	bool drain_asked;                  /* set by another thread that ran out of
	                                      memory: empty the cache on the next
	                                      slow path (atomic; see osmem_reclaim) */
	struct tcache *next, *prev;        /* all live caches (cache.c's live_lock) */
};

/* What the inline paths below see as the calling thread's cache: its own
   once it has one, else an empty one that lets every request and every
   free fall through to the slow paths (before the thread's first slow
   path, once it is exiting, with OSMEM_CACHE_MAX=0, and with
   OSMEM_CHECK=2, whose whole-heap checks nothing may skip). */
extern __thread struct tcache *osmem_my_cache OSMEM_HIDDEN;

static inline uint64_t cache_mark(const struct chunk *c)
{
	return osmem_g.mark_secret ^ (uint64_t)(uintptr_t)c;
}

static inline uint64_t *cache_words(const struct chunk *c) { return (uint64_t *)chunk_payload(c); }

/* True when C is kept by some thread, or waits on a remote list: freeing
   it again is a double free. */
static inline bool cache_holds(const struct chunk *c)
{
	return __atomic_load_n(&cache_words(c)[1], __ATOMIC_RELAXED) == cache_mark(c);
}

/* The bytes the calling thread keeps, for its own use. */
static inline size_t cache_kept(const struct tcache *t)
{
	return t->kept - t->taken;
}

static inline void cache_count_set(struct tcache *t, unsigned i, uint32_t n, size_t kept)
{
	__atomic_store_n(&t->count[i], n, __ATOMIC_RELAXED);
	__atomic_store_n(&t->kept, kept, __ATOMIC_RELAXED);
}

/* Links C, which carries the freed mark already, at the head of list I
   and counts it there; the kept bytes are the caller's to add. */
static inline void cache_link_head(struct tcache *t, unsigned i, struct chunk *c)
{
	cache_words(c)[0] = t->head[i];
	t->head[i] = (uint64_t)(uintptr_t)c ^ t->key;
	__atomic_store_n(&t->count[i], t->count[i] + 1u, __ATOMIC_RELAXED);
}

static inline void cache_push(struct tcache *t, unsigned i, struct chunk *c, size_t cs)
{
	__atomic_store_n(&cache_words(c)[1], cache_mark(c), __ATOMIC_RELAXED);
	cache_link_head(t, i, c);
	__atomic_store_n(&t->kept, t->kept + cs, __ATOMIC_RELAXED);
}

/* The check value in word 0 of the block in T's slot (in place of a
   link), which tells a write after its free. */
static inline uint64_t cache_last_check(const struct tcache *t)
{
	return (uint64_t)(uintptr_t)t->last ^ t->key;
}

/* Puts the block in T's slot, of list J, at the head of that list; the
   kept bytes already count it. */
static inline void cache_last_to_list(struct tcache *t, unsigned j)
{
	cache_link_head(t, j, t->last);
}

/* Hands out the block in T's slot, of SIZE bytes; NULL when its check
   value is damaged (the slow path reports it). */
static inline void *cache_take_last(struct tcache *t, size_t size)
{
	uint64_t *w = cache_words(t->last);
	if (unlikely(w[0] != cache_last_check(t)))
		return NULL;
	__atomic_store_n(&t->last_size, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&w[1], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&t->taken, t->taken + size, __ATOMIC_RELAXED);
	return w;
}

/* A block of N bytes (N <= 1 KiB) from the calling thread's own lists, or
   NULL: the last block freed when it is of that size, else the first of
   the size's list.  The head of a list is always
   a checked address: a link is looked at when its block is taken, before
   it becomes the head, so a write after free that damages it is caught on
   the allocation that takes the damaged block (the slow path reports it),
   never by following it.  KEY's low bits are zero, so a misaligned link is
   one whose stored value is misaligned. */
static inline void *cache_fast_alloc(size_t n)
{
	struct tcache *t = osmem_my_cache;
	if (unlikely(n > CACHE_EXACT_MAX_PAYLOAD))
		return NULL;
	unsigned i = (unsigned)((n + 15u) >> 4);
	/* (List 0's 16 bytes are no chunk's size: an empty slot's 0 and
	   os_malloc(0) match nothing.) */
	if (t->last_size == ((size_t)i + 1u) * 16u)
		return cache_take_last(t, ((size_t)i + 1u) * 16u);
	uint32_t count = t->count[i];
	if (unlikely(!count))
		return NULL;
	uint64_t *w = cache_words((struct chunk *)(uintptr_t)(t->head[i] ^ t->key));
	uint64_t next = w[0];
	if (unlikely(next & (OSMEM_ALIGN - 1)))
		return NULL;
	t->head[i] = next;
	__atomic_store_n(&w[1], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&t->count[i], count - 1u, __ATOMIC_RELAXED);
	__atomic_store_n(&t->taken, t->taken + ((size_t)i + 1u) * 16u, __ATOMIC_RELAXED);
	return w;
}

/* Takes the first chunk of ranged list R when it holds at least CS bytes
   (any chunk does when AT_LEAST is set: the list's lower bound is above
   CS); NULL otherwise.  The same checks as cache_fast_alloc, and the
   header's seal, since the size is read from it. */
static inline void *cache_take_ranged(struct tcache *t, unsigned r, size_t cs, bool at_least)
{
	if (!t->count[r])
		return NULL;
	struct chunk *c = (struct chunk *)(uintptr_t)(t->head[r] ^ t->key);
	uint64_t *w = cache_words(c);
	uint64_t next = w[0], v;
	if (unlikely((next & (OSMEM_ALIGN - 1)) || !unseal(&c->tag, &v) ||
	             tag_state(v) != CHUNK_USED))
		return NULL;
	size_t size = tag_size(v);
	if (!at_least && size < cs)
		return NULL;
	t->head[r] = next;
	__atomic_store_n(&w[1], 0, __ATOMIC_RELAXED);
	cache_count_set(t, r, t->count[r] - 1u, t->kept - size);
	return w;
}

/* A block of N bytes, 1 KiB < N <= the thread's largest kept size, from
   its ranged lists without a lock, or NULL: the head of the list for N
   when it is large enough, else that of the next list, else the last block
   freed when it is of one of those lists and large enough.  The lists come
   before the slot here, unlike in cache_fast_alloc: the slot's size is
   that of the block the program freed just before, whose header the free
   may still be waiting for, and a test of it that the processor cannot
   predict (programs that free and allocate blocks of many sizes) then
   stalls the request until that read is done.  The lists' heads were read
   long before.  (batch: 23.7 -> 20.2 ns an operation, pairs-4k, which the
   slot always serves, 5.8 -> 6.0; with the slot tested between the two
   lists, batch took 21.5, and without the one test of both counts,
   pairs-4k took 6.6.)  Anything unusual (a damaged link or header) is left
   to the slow path, which reports it. */
static inline void *cache_fast_alloc_ranged(size_t n)
{
	struct tcache *t = osmem_my_cache;
	size_t cs = chunk_size_for(n);
	if (unlikely(cs <= CACHE_EXACT_MAX_CHUNK || cs > t->max_chunk))
		return NULL;
	unsigned r = cache_list_of_kept(cs);
	/* Both lists empty, as when a program frees and asks for one size
	   in turn, is told by one load and one test. */
	uint64_t counts;
	__builtin_memcpy(&counts, &t->count[r], sizeof(counts));
	if (counts) {
		void *p = cache_take_ranged(t, r, cs, false);
		if (!p && r + 1u < CACHE_CLASSES)
			p = cache_take_ranged(t, r + 1u, cs, true);
		if (p)
			return p;
	}
	/* The last block when it is of list R and large enough, or of list
	   R + 1: at least CS bytes, and below list R + 2's sizes. */
	size_t last = t->last_size;
	if (last >= cs && last < cache_class_size(r + 2u))
		return cache_take_last(t, last);
	return NULL;
}

/* Whether USED chunk C of SIZE bytes, in a segment that ends at
   SEG_END, may be kept rather than go back to the heap at once: not when
   it ends its segment, where keeping it would stop the segment from ever
   shrinking below it.  A block just below the free top is kept (a block
   allocated and freed again and again at the top is the commonest pattern
   there is); the top can still be trimmed above it, and what it holds is
   within the thread's bound.  Told by the segment's end (the fence is its
   last CHUNK_HEADER bytes), not by the header after C: that lies in
   another cache line, often one that another thread wrote last. */
static inline bool cache_may_keep(const struct chunk *c, size_t size, uintptr_t seg_end)
{
	return (uintptr_t)c + size < seg_end - CHUNK_HEADER;
}

/* Takes block P into the calling thread's lists when it is a block of at
   most MAX_CHUNK bytes in the newest segment of the thread's own arena,
   not the last one there, and its checks pass: its header, and not kept
   already (a double free).  False sends the caller down the slow path,
   which checks P fully (a foreign or interior pointer always goes there).

   The boundary tag after the block, where an overflow past its end shows
   (OSMEM_CHECK >= 1), is not read here: it lies in another cache line,
   which a program that frees blocks it has not touched lately misses on
   (a quarter of the time of the batch workload).  It is checked when the
   block leaves the thread's lists for the heap (take_off in cache.c: on
   overflow of the lists, before the heap grows, at os_malloc_trim and at
   thread exit), and by os_heap_check. */
static inline bool cache_fast_free(void *p)
{
	struct tcache *t = osmem_my_cache;
	/* The arena may be shared with threads that grow it meanwhile (past
	   four arenas per CPU): an older segment is still checked right,
	   since segments never move, and one given back matches nothing. */
	const struct segment *s = t->own;
	uintptr_t a = (uintptr_t)p;
	uintptr_t end = __atomic_load_n(&s->end, __ATOMIC_RELAXED);
	/* (A payload starts past the segment's base, after its header, and
	   ends at the fence at the latest.) */
	if (unlikely((a & (OSMEM_ALIGN - 1)) || a <= s->base || a >= end))
		return false;
	struct chunk *c = chunk_of(p);
	uint64_t v;
	if (unlikely(!unseal(&c->tag, &v)))
		return false;
	/* USED, and CHUNK_MIN to MAX_CHUNK bytes. */
	if (unlikely(tag_state(v) != CHUNK_USED ||
	             v - (CHUNK_MIN + CHUNK_USED) > t->max_chunk - CHUNK_MIN))
		return false;
	size_t size = v - CHUNK_USED;
	uint64_t mark = cache_mark(c);
	if (unlikely(cache_kept(t) + size > t->bound ||
	             __atomic_load_n(&cache_words(c)[1], __ATOMIC_RELAXED) == mark))
		return false;
	if (unlikely(!cache_may_keep(c, size, end)))
		return false;
	uint64_t *w = cache_words(c);
	__atomic_store_n(&w[1], mark, __ATOMIC_RELAXED);
	/* Into the slot; the block that was there into its list. */
	size_t before = t->last_size;
	if (before)
		cache_last_to_list(t, cache_list_of_kept(before));
	t->last = c;
	w[0] = cache_last_check(t);
	__atomic_store_n(&t->last_size, size, __ATOMIC_RELAXED);
	__atomic_store_n(&t->kept, t->kept + size, __ATOMIC_RELAXED);
	return true;
}

/* Slow paths (cache.c). */

/* A USED chunk of CS bytes (any size below the mmap threshold) for the
   calling thread: from its lists when CS is small enough, else from its
   arena, consolidating before the arena grows.  DIRTY as for
   osmem_heap_alloc.  NULL when the heap is out of memory. */
struct chunk *osmem_thread_alloc(size_t cs, size_t *dirty) OSMEM_HIDDEN;
/* Takes checked USED chunk C of SIZE bytes, of heap segment SEG, into the
   calling thread's lists; false when it does not keep it (the caller
   frees it to the heap). */
bool osmem_cache_free(struct chunk *c, size_t size, const struct segment *seg) OSMEM_HIDDEN;
/* Frees heap block P of another thread's arena into the calling
   thread's outgoing run for that arena, when P lies in the segment where
   the thread last sent a block out, passes the inline free's checks
   (its header, and not freed already) and would not be kept by this
   thread; false otherwise, and the caller takes the slow path, which
   reports what is wrong.  A consumer's frees then skip the search for
   the block's segment and the checks of a block the thread might keep.
   The segment's bounds are compared here, inline, so that the frees of
   large blocks pay no call for it (pairs-256k: 10 instructions more a
   pair with the whole of it out of line). */
bool osmem_cache_send_foreign(struct tcache *t, void *p, uintptr_t end) OSMEM_HIDDEN;
static inline bool osmem_cache_free_foreign(void *p)
{
	struct tcache *t = osmem_my_cache; /* (none with OSMEM_CHECK=2) */
	const struct segment *s = t->foreign;
	if (!s)
		return false;
	uintptr_t a = (uintptr_t)p, end = __atomic_load_n(&s->end, __ATOMIC_RELAXED);
	if (a <= s->base || a >= end)
		return false;
	return osmem_cache_send_foreign(t, p, end);
}
/* Gives USED chunk C of SIZE bytes, checked, back to arena H, which it
   belongs to: on H's remote list when the calling thread uses another
   arena and H has users, else into H's heap under its lock. */
void osmem_thread_release(struct arena *h, struct chunk *c, size_t size,
                          const char *func) OSMEM_HIDDEN;
/* Returns every block the calling thread keeps to the heap. */
void osmem_cache_flush(void) OSMEM_HIDDEN;
/* Asks every other thread to empty its lists on its next slow path: a
   thread's lists are its own, and no other thread may take from them. */
void osmem_cache_ask_all_to_drain(void) OSMEM_HIDDEN;
void osmem_cache_init(void) OSMEM_HIDDEN;
/* NULL when the calling thread's lists are consistent, else the problem. */
const char *osmem_cache_verify(const void **at) OSMEM_HIDDEN;
/* Bytes kept by all threads, how many blocks, and the bytes of the caches
   themselves; with PER_CLASS, the blocks of each list are added to it. */
void osmem_cache_totals(size_t *bytes, size_t *blocks, size_t *overhead,
                        size_t per_class[CACHE_CLASSES]) OSMEM_HIDDEN;
/* The list of live caches across fork (init.c).  The child has one
   thread: the other threads' caches are gone with them (what they kept is
   lost to the child's heap, as their stacks are).  Returns the arena the
   calling thread uses with a cache, or NULL: the only one with a user. */
void osmem_cache_fork_prepare(void) OSMEM_HIDDEN;
void osmem_cache_fork_parent(void) OSMEM_HIDDEN;
struct arena *osmem_cache_fork_child(void) OSMEM_HIDDEN;

#endif /* OSMEM_CACHE_H */
