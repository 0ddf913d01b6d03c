/*
 * t-kept.c - the blocks a thread keeps when it frees them (deferred
 * coalescing), and blocks freed into another thread's arena.
 *
 *  - a freed 4 KiB block is kept: still in use as far as the heap is
 *    concerned, counted in os_mallinfo's cached_bytes, and the next
 *    request of its size gets it back; so does a freed 64-byte block,
 *    though others of its size are kept; and every size up to 32 KiB
 *    goes to the list a request of its size looks at; a request whose
 *    list is empty borrows a block up to a sixteenth larger, 16 times,
 *    and then has its list refilled;
 *  - before the heap grows, the thread's kept blocks go back and merge when
 *    it keeps more than a quarter of its bound: a request that only their
 *    merged space can hold is served there, and the break does not move;
 *    those of its largest sizes go, until it keeps half as much; with
 *    fewer kept, the heap grows and they stay kept;
 *  - the blocks a thread keeps never pass 1 MiB, and what it frees past
 *    that goes back to the heap; of each list, the blocks freed last stay
 *    kept, half of it and 8 at most, and are handed out first;
 *  - OSMEM_M_CACHE_MAX sets the largest block kept, and 0 keeps none;
 *  - a thread that exits leaves nothing kept;
 *  - a block freed into an arena that another, living thread owns waits on
 *    that arena's list of remote frees, and os_malloc_trim takes it back
 *    and merges it; so does the owner's next request, which keeps small
 *    ones in its own lists instead;
 *  - a thread keeps other arenas' blocks only up to an eighth of its
 *    bound; those it does not keep reach their arena's remote list in
 *    runs of 64, counted as held meanwhile, and the rest of a run when
 *    the thread empties its lists;
 *  - the arena of a thread that exited goes to the next new thread;
 *  - with OSMEM_CACHE_MAX=0 too, a second thread gets an arena of its own.
 *
 * Each scenario runs in a child forked before this program ever calls the
 * allocator.  With OSMEM_CACHE_MAX=0 in the environment nothing is kept,
 * and the scenarios that are about kept blocks are skipped.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include "heapview.h"
#include "tap.h"
#include "tutil.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
#define HDR ((size_t)16)
#define BLOCK (4 * KiB)
#define SMALL_BLOCK ((size_t)64)
#define CHUNK (BLOCK + HDR)
/* The per-thread bound documented in os_malloc(3). */
#define KEPT_MAX MiB
/* The largest payload of the lists of one size; above, lists of ranges. */
#define EXACT_MAX KiB
/* A block served one at a time from the heap, never in a batch, so that
   it keeps the blocks on either side of it apart. */
#define GUARD ((size_t)2000)

static bool keeps_nothing(void)
{
	if (hv_cache_max() != 0)
		return false;
	t_skip(1, "OSMEM_CACHE_MAX=0: nothing is kept");
	return true;
}

static bool is_block(const void *p, size_t size, bool is_free)
{
	struct hv_block b;
	return hv_find(p, &b) && b.size == size && b.is_free == is_free;
}

static void kept_and_reused(void *arg)
{
	(void)arg;
	void *g0 = os_malloc(BLOCK), *a = os_malloc(BLOCK), *g1 = os_malloc(BLOCK);
	if (keeps_nothing())
		return;
	struct os_mallinfo before = os_mallinfo();
	os_free(a);
	struct os_mallinfo after = os_mallinfo();
	t_ok(is_block(a, CHUNK, false), "a freed 4 KiB block stays in use in the heap");
	t_ok(after.cached_blocks == before.cached_blocks + 1 &&
	         after.cached_bytes == before.cached_bytes + CHUNK,
	     "and is counted as kept (%zu -> %zu blocks, %zu -> %zu bytes)", before.cached_blocks,
	     after.cached_blocks, before.cached_bytes, after.cached_bytes);
	t_ok(after.free_blocks == before.free_blocks, "no free heap block appeared");
	void *b = os_malloc(BLOCK);
	t_ok(b == a, "the next 4 KiB request gets it back (%p, was %p)", b, a);
	t_ok(os_mallinfo().cached_blocks == before.cached_blocks, "and it is no longer counted");
	os_free(b);
	os_free(g0);
	os_free(g1);
	hv_flush_cache();
	t_null(hv_verify(), "heap consistent");
}

/* A small block freed is the next one handed out for its size, even when
   the thread keeps others of that size: the one freed last is the one
   most likely still in the processor's cache. */
static void small_reused_first(void *arg)
{
	(void)arg;
	void *b[8];
	for (int i = 0; i < 8; i++)
		b[i] = os_malloc(SMALL_BLOCK);
	if (keeps_nothing())
		return;
	/* Others of the size kept, in its list... */
	for (int i = 0; i < 6; i++)
		os_free(b[i]);
	/* ...and then this one. */
	os_free(b[6]);
	void *p = os_malloc(SMALL_BLOCK);
	t_ok(p == b[6], "a freed %zu-byte block is the next one of its size (%p, was %p)",
	     SMALL_BLOCK, p, b[6]);
	os_free(p);
	os_free(b[7]);
	hv_flush_cache();
	t_null(hv_verify(), "heap consistent");
}

/* Every size a thread keeps, 16 bytes to 32 KiB: a block freed before
   another of its size goes into the list that a request of its size
   looks at, and the one freed last waits in the slot; both come back in
   turn: the slot first up to 1 KiB, the list first above.  (The inline
   paths look a kept block's list up in a table: an entry that named a
   wrong list would send the first block where no request of its size
   looks.) */
static void every_size_listed(void *arg)
{
	(void)arg;
	if (keeps_nothing())
		return;
	unsigned wrong = 0;
	size_t first_wrong = 0;
	for (size_t n = 16; n <= 32 * KiB; n += 16) {
		/* A list above 1 KiB holds a range of sizes, and a request
		   takes a block of its own list or the next before the slot's:
		   none of the earlier rounds' blocks may be left there. */
		if (n > EXACT_MAX)
			hv_drain_cache();
		void *a = os_malloc(n), *g1 = os_malloc(GUARD);
		void *b = os_malloc(n), *g2 = os_malloc(GUARD);
		os_free(a);
		os_free(b);
		void *p = os_malloc(n), *q = os_malloc(n);
		bool slot_first = n <= EXACT_MAX;
		if (p != (slot_first ? b : a) || q != (slot_first ? a : b)) {
			if (!wrong++)
				first_wrong = n;
		}
		os_free(p);
		os_free(q);
		os_free(g1);
		os_free(g2);
	}
	t_ok(wrong == 0, "each of 2048 sizes: the block freed last and the one before, in the "
	     "order of its size (%u wrong, first at %zu bytes)", wrong, first_wrong);
	hv_flush_cache();
	t_null(hv_verify(), "heap consistent");
}

/* Above 1 KiB a kept block serves a smaller request, from its own
   quarter of a doubling or the next, so up to half as large again as the
   request (os_malloc(3)); a larger one is left for requests it fits
   better.  Both lists a request looks at are tried through their heads
   and through the block freed last, which comes after both heads. */
static void larger_block_reused(void *arg)
{
	(void)arg;
	if (keeps_nothing())
		return;
	/* Chunks of 2048 (the request), 2896 (two fifths larger: the next
	   quarter) and 3296 (three fifths larger: the one after). */
	const size_t want = 2048 - HDR, near = 2896 - HDR, far = 3296 - HDR;
	void *n1 = os_malloc(near), *g1 = os_malloc(GUARD);
	void *f1 = os_malloc(far), *g2 = os_malloc(GUARD);
	void *n2 = os_malloc(near), *g3 = os_malloc(GUARD);
	os_free(f1);
	void *p = os_malloc(want);
	t_ok(p != f1, "a block three fifths larger is not handed out for the request");
	os_free(n1);
	void *q = os_malloc(want);
	t_ok(q == n1, "one two fifths larger, freed last, is (%p, was %p)", q, n1);
	os_free(n2);
	os_free(p); /* into the slot: N2 now waits in its list */
	void *r = os_malloc(want);
	t_ok(r == n2, "the one two fifths larger comes from its list before the slot is looked at "
	     "(%p, was %p)", r, n2);
	void *s = os_malloc(want);
	t_ok(s == p, "then the block freed last, of the request's own size (%p, was %p)", s, p);
	os_free(q);
	os_free(r);
	os_free(s);
	os_free(g1);
	os_free(g2);
	os_free(g3);
	hv_flush_cache();
	t_null(hv_verify(), "heap consistent");
}

/* A request whose list is empty takes a kept block of a list or two up
   when it is at most a sixteenth larger, rather than cut a new one from
   the heap; never one larger still, and never one of the next list up
   for a chunk below 256 bytes, which would be more than a sixteenth.
   Which list a block came from shows in its usable size. */
static void neighbour_taken(void *arg)
{
	(void)arg;
	if (keeps_nothing())
		return;
	/* Chunks of 512 (the request) and 544, a sixteenth larger, two
	   lists up. */
	void *n = os_malloc(544 - HDR);
	os_free(n);
	void *p = os_malloc(512 - HDR);
	t_ok(os_malloc_usable_size(p) == 544 - HDR,
	     "a block a sixteenth larger is handed out (%zu bytes usable, want %zu)",
	     os_malloc_usable_size(p), 544 - HDR);
	/* Chunks of 768 and 832, a twelfth larger. */
	void *f = os_malloc(832 - HDR);
	os_free(f);
	void *q = os_malloc(768 - HDR);
	t_ok(os_malloc_usable_size(q) == 768 - HDR, "not one a twelfth larger (%zu bytes usable)",
	     os_malloc_usable_size(q));
	/* Chunks of 240 and 256: one list up, but a fifteenth larger. */
	void *s = os_malloc(256 - HDR);
	os_free(s);
	void *r = os_malloc(240 - HDR);
	t_ok(os_malloc_usable_size(r) == 240 - HDR,
	     "nor one list up for a chunk of 240 bytes (%zu bytes usable)", os_malloc_usable_size(r));
	os_free(p);
	os_free(q);
	os_free(r);
	hv_flush_cache();
	t_null(hv_verify(), "heap consistent");
}

/* But a request whose list keeps borrowing gets blocks of its own: after
   16 blocks a sixteenth larger, its list is refilled, and the requests
   that follow take blocks of their own size (the inline path serves them
   again, where borrowing goes through the slow path each time). */
static void steady_borrower_refilled(void *arg)
{
	(void)arg;
	if (keeps_nothing())
		return;
	/* One chunk of 544 kept; requests of chunks of 512 in turn. */
	void *n = os_malloc(544 - HDR);
	os_free(n);
	unsigned borrowed = 0, own_at = 0;
	for (unsigned round = 1; round <= 40 && !own_at; round++) {
		void *p = os_malloc(512 - HDR);
		size_t usable = os_malloc_usable_size(p);
		if (usable == 544 - HDR)
			borrowed++;
		else if (usable == 512 - HDR)
			own_at = round;
		os_free(p);
	}
	t_ok(borrowed >= 1, "the first requests take the block a sixteenth larger (%u did)", borrowed);
	t_ok(own_at > 0 && own_at <= 17,
	     "after 16 of them, a block of the request's own size (round %u)", own_at);
	hv_flush_cache();
	t_null(hv_verify(), "heap consistent");
}

/* The bytes a thread may keep while its heap grows (cache.h's
   CACHE_KEPT_BEFORE_GROWTH, documented in os_malloc(3)). */
#define KEPT_BEFORE_GROWTH (KEPT_MAX / 4)
/* Enough adjacent blocks to keep more than that, between two guards. */
#define RUN ((int)(KEPT_BEFORE_GROWTH / CHUNK) + 4)

/* Blocks side by side between guards, the top used up: only their merged
   space holds a request of three of them.  With more than
   KEPT_BEFORE_GROWTH bytes of them kept, they go back and merge before
   the heap grows. */
static void merged_before_growth(void *arg)
{
	(void)arg;
	static void *run[RUN];
	if (!t_ok(tu_alloc_run(run, RUN, BLOCK), "%d adjacent 4 KiB blocks", RUN))
		return;
	hv_flush_cache();
	/* Use up the free top, so that the heap has no room of its own. */
	struct hv_block top;
	void *filler = NULL;
	if (tu_top_block(&top) && top.is_free && top.size > 64)
		filler = os_malloc(top.size - HDR - 32);
	size_t need = 3 * CHUNK - HDR;
	for (int i = 1; i < RUN - 1; i++)
		os_free(run[i]);
	if (keeps_nothing())
		return;
	t_ok(os_mallinfo().cached_bytes > KEPT_BEFORE_GROWTH, "more than %zu bytes kept (%zu)",
	     KEPT_BEFORE_GROWTH, os_mallinfo().cached_bytes);
	t_ok(tu_largest_free() < 3 * CHUNK, "no free heap block holds %zu bytes (largest %zu)",
	     need, tu_largest_free());
	void *brk = sbrk(0);
	size_t brk_bytes = hv_brk_bytes();
	char *p = os_malloc(need);
	t_ok(p >= (char *)run[1] && p + need <= (char *)run[RUN - 1],
	     "a request of three of their sizes is served where they were (%p, want %p to %p)",
	     (void *)p, run[1], run[RUN - 1]);
	t_ok(sbrk(0) == brk && hv_brk_bytes() == brk_bytes, "and the heap did not grow");
	t_null(hv_verify(), "heap consistent");
	os_free(p);
	os_free(run[0]);
	os_free(run[RUN - 1]);
	os_free(filler);
}

/* Before the heap grows, the thread gives back its largest kept blocks
   only until it keeps half of what it kept: those of the smaller sizes
   stay for the requests that come next. */
#define HALF_SIZES 8
static void half_kept_before_growth(void *arg)
{
	(void)arg;
	static const size_t sizes[HALF_SIZES] = { 1536, 2048, 2560, 3072, 4096, 5120, 6144, 8192 };
	static void *b[HALF_SIZES][40];
	int n[HALF_SIZES];
	for (int k = 0; k < HALF_SIZES; k++) {
		n[k] = (int)(52 * KiB / sizes[k]);
		for (int i = 0; i < n[k]; i++)
			b[k][i] = os_malloc(sizes[k] - HDR);
	}
	void *guard = os_malloc(GUARD);
	hv_flush_cache();
	struct hv_block top;
	void *filler = NULL;
	if (tu_top_block(&top) && top.is_free && top.size > 64)
		filler = os_malloc(top.size - HDR - 32);
	for (int k = 0; k < HALF_SIZES; k++)
		for (int i = 0; i < n[k]; i++)
			os_free(b[k][i]);
	if (keeps_nothing())
		return;
	size_t kept = hv_my_kept_bytes();
	t_ok(kept > KEPT_BEFORE_GROWTH, "blocks of eight sizes kept, %zu bytes", kept);
	void *brk = sbrk(0);
	void *p = os_malloc(20 * KiB);
	size_t after = hv_my_kept_bytes();
	t_ok(p && sbrk(0) == brk, "a request only their merged space holds is served there");
	t_ok(after <= kept / 2 && after > KEPT_MAX / 8,
	     "the thread keeps half of them at most, and more than an eighth of its bound "
	     "(%zu of %zu bytes)", after, kept);
	os_free(p);
	os_free(guard);
	os_free(filler);
	hv_flush_cache();
	t_null(hv_verify(), "heap consistent");
}

/* The same with only a few kept: the heap grows, and they stay kept, as
   a request of a size the thread has not kept would not otherwise cycle
   them through the heap (a mix of many sizes did, each time). */
static void kept_while_heap_grows(void *arg)
{
	(void)arg;
	void *run[5];
	if (!t_ok(tu_alloc_run(run, 5, BLOCK), "five adjacent 4 KiB blocks"))
		return;
	hv_flush_cache();
	struct hv_block top;
	void *filler = NULL;
	if (tu_top_block(&top) && top.is_free && top.size > 64)
		filler = os_malloc(top.size - HDR - 32);
	for (int i = 1; i <= 3; i++)
		os_free(run[i]);
	if (keeps_nothing())
		return;
	size_t kept = os_mallinfo().cached_blocks;
	size_t brk_bytes = hv_brk_bytes();
	char *p = os_malloc(3 * CHUNK - HDR);
	t_ok(p && (p >= (char *)run[4] || p + 3 * CHUNK <= (char *)run[0]),
	     "a request of three of their sizes is served elsewhere (%p)", (void *)p);
	t_ok(hv_brk_bytes() > brk_bytes, "the heap grew (%zu -> %zu bytes)", brk_bytes,
	     hv_brk_bytes());
	t_ok(os_mallinfo().cached_blocks == kept, "and the blocks are still kept (%zu, were %zu)",
	     os_mallinfo().cached_blocks, kept);
	for (int i = 1; i <= 3; i++)
		t_ok(is_block(run[i], CHUNK, false), "block %d is still in use in the heap", i);
	os_free(p);
	os_free(run[0]);
	os_free(run[4]);
	os_free(filler);
	hv_flush_cache();
	t_null(hv_verify(), "heap consistent");
}

#define MANY 400
static void bounded(void *arg)
{
	(void)arg;
	static void *blk[MANY], *guard[MANY];
	for (int i = 0; i < MANY; i++) {
		blk[i] = os_malloc(BLOCK);
		guard[i] = os_malloc(GUARD);
	}
	hv_flush_cache();
	struct os_mallinfo before = os_mallinfo();
	size_t most = 0;
	for (int i = 0; i < MANY; i++) {
		os_free(blk[i]);
		size_t kept = os_mallinfo().cached_bytes;
		most = kept > most ? kept : most;
	}
	struct os_mallinfo after = os_mallinfo();
	if (keeps_nothing())
		return;
	t_ok(most <= KEPT_MAX, "the kept blocks never passed 1 MiB (at most %zu bytes)", most);
	t_ok(most > KEPT_MAX / 2, "and blocks were kept (%zu bytes at most)", most);
	size_t to_heap = after.free_blocks - before.free_blocks;
	t_ok(to_heap + after.cached_blocks == MANY && to_heap >= MANY - KEPT_MAX / CHUNK,
	     "the rest went back to the heap (%zu free blocks more, %zu kept)", to_heap,
	     after.cached_blocks);
	for (int i = 0; i < MANY; i++)
		os_free(guard[i]);
	hv_flush_cache();
	t_null(hv_verify(), "heap consistent");
}

/* Passing the bound gives back the older blocks of every list, and keeps
   the ones freed last: half of a list, 8 at most (cache.h). */
static void overflow_keeps_newest(void *arg)
{
	(void)arg;
	enum { S = 12 };
	static void *small[S], *blk[MANY], *guard[MANY];
	for (int i = 0; i < S; i++)
		small[i] = os_malloc(SMALL_BLOCK);
	for (int i = 0; i < MANY; i++) {
		blk[i] = os_malloc(BLOCK);
		guard[i] = os_malloc(GUARD);
	}
	hv_flush_cache();
	if (keeps_nothing())
		return;
	for (int i = 0; i < S; i++)
		os_free(small[i]);
	size_t before = os_mallinfo().cached_bytes, kept = before;
	int freed = 0;
	while (freed < MANY && kept >= before) {
		before = kept;
		os_free(blk[freed++]);
		kept = os_mallinfo().cached_bytes;
	}
	t_ok(kept < before, "the bound was passed at the %dth block of 4 KiB (kept %zu, then %zu)",
	     freed, before, kept);
	t_ok(kept <= KEPT_MAX / 2 + CHUNK, "at least half went back (%zu kept)", kept);
	bool newest_first = true;
	for (int k = 0; k < S / 2; k++)
		newest_first &= os_malloc(SMALL_BLOCK) == small[S - 1 - k];
	t_ok(newest_first, "the %d 64-byte blocks freed last stayed kept, and come back newest first",
	     S / 2);
	t_ok(!is_block(small[0], SMALL_BLOCK + HDR, false) &&
	         !is_block(small[S / 2 - 1], SMALL_BLOCK + HDR, false),
	     "the %d freed first went back to the heap", S / 2);
	for (int i = freed; i < MANY; i++)
		os_free(blk[i]);
	for (int i = 0; i < MANY; i++)
		os_free(guard[i]);
	hv_flush_cache();
	t_null(hv_verify(), "heap consistent");
}

static void cache_max_setting(void *arg)
{
	(void)arg;
	if (keeps_nothing())
		return;
	t_ok(os_mallopt(OSMEM_M_CACHE_MAX, 8192) == 1, "OSMEM_M_CACHE_MAX set to 8192");
	void *g0 = os_malloc(64), *big = os_malloc(16 * KiB), *g1 = os_malloc(64);
	void *small = os_malloc(BLOCK), *g2 = os_malloc(64);
	os_free(big);
	os_free(small);
	t_ok(is_block(big, 16 * KiB + HDR, true), "a freed 16 KiB block is free in the heap at once");
	t_ok(is_block(small, CHUNK, false), "a freed 4 KiB block is kept");
	os_free(g0);
	os_free(g1);
	os_free(g2);
}

static void cache_max_zero(void *arg)
{
	(void)arg;
	t_ok(os_mallopt(OSMEM_M_CACHE_MAX, 0) == 1, "OSMEM_M_CACHE_MAX set to 0");
	void *g0 = os_malloc(64), *a = os_malloc(100), *g1 = os_malloc(64);
	void *b = os_malloc(BLOCK), *g2 = os_malloc(64);
	os_free(a);
	os_free(b);
	t_ok(is_block(a, 128, true) && is_block(b, CHUNK, true),
	     "freed blocks of 100 bytes and 4 KiB are free in the heap at once");
	t_ok(os_mallinfo().cached_blocks == 0, "and nothing is kept");
	os_free(g0);
	os_free(g1);
	os_free(g2);
}

/* ---- threads ------------------------------------------------------------ */

#define PER_THREAD 16
static void *exiting[PER_THREAD];

static void *keep_and_exit(void *arg)
{
	(void)arg;
	void *guard[PER_THREAD];
	for (int i = 0; i < PER_THREAD; i++) {
		exiting[i] = os_malloc(BLOCK);
		guard[i] = os_malloc(GUARD);
	}
	for (int i = 0; i < PER_THREAD; i++)
		os_free(exiting[i]);
	(void)guard; /* left in use, so that the freed blocks stay apart */
	return NULL;
}

static void thread_exit(void *arg)
{
	(void)arg;
	os_free(os_malloc(1));
	hv_flush_cache();
	size_t before = os_mallinfo().cached_blocks;
	pthread_t t;
	if (!t_ok(pthread_create(&t, NULL, keep_and_exit, NULL) == 0, "a thread starts"))
		return;
	pthread_join(t, NULL);
	t_ok(os_mallinfo().cached_blocks == before, "after it exits nothing of it is kept (%zu, was %zu)",
	     os_mallinfo().cached_blocks, before);
	/* Free on its own, or merged into a free neighbour (and then no
	   block of its own). */
	int free_now = 0;
	struct hv_block b;
	for (int i = 0; i < PER_THREAD; i++)
		free_now += !hv_find(exiting[i], &b) || b.is_free;
	t_ok(free_now == PER_THREAD, "the blocks it freed are free in the heap (%d of %d)", free_now,
	     PER_THREAD);
	t_ok(os_heap_check() == 0 && hv_verify() == NULL, "heap consistent");
}

static sem_t ready, go;
static void *owned[4];

static void *owner(void *arg)
{
	(void)arg;
	/* Blocks of its own arena, side by side; the last one stays in
	   use, so that the two freed below merge only with each other. */
	tu_alloc_run(owned, 4, BLOCK);
	sem_post(&ready);
	sem_wait(&go); /* alive, and making no request, meanwhile */
	return NULL;
}

/* Gives this thread a cache, and readies READY and GO for the owners it
   starts next. */
static void prepare_owners(void)
{
	os_free(os_malloc(1));
	sem_init(&ready, 0, 0);
	sem_init(&go, 0, 0);
}

/* Starts OWNER_FN (with ARG) in thread *T and waits until it has
   allocated what it frees here and posted READY; false (and a failed
   point) when the thread does not start.  The owner waits for GO before
   its next request. */
static bool owner_starts(pthread_t *t, void *(*owner_fn)(void *), void *arg)
{
	if (!t_ok(pthread_create(t, NULL, owner_fn, arg) == 0, "an owner thread starts"))
		return false;
	sem_wait(&ready);
	return true;
}

/* Both, for a single owner. */
static bool start_owner(pthread_t *t, void *(*owner_fn)(void *))
{
	prepare_owners();
	return owner_starts(t, owner_fn, NULL);
}

static void remote_frees(void *arg)
{
	(void)arg;
	pthread_t t;
	if (!start_owner(&t, owner))
		return;
	struct hv_segment main_seg;
	t_ok(owned[0] && tu_segment_of(owned[0], &main_seg) && !main_seg.from_brk,
	     "its blocks are in an arena of its own");
	/* (Without caches no thread announces its exit, so an arena has no
	   owner to wait for, and every free goes in under its lock.) */
	if (keeps_nothing()) {
		sem_post(&go);
		pthread_join(t, NULL);
		return;
	}
	/* Freed here, and returned by this thread: onto the owner's remote
	   list, since the owner lives. */
	os_free(owned[1]);
	os_free(owned[2]);
	hv_flush_cache();
	bool waiting = is_block(owned[1], CHUNK, false) && is_block(owned[2], CHUNK, false);
	t_ok(waiting, "blocks freed into a living thread's arena wait for it, in use");
	struct os_mallinfo mi = os_mallinfo();
	t_ok(mi.cached_blocks == 2 && mi.cached_bytes == 2 * CHUNK,
	     "os_mallinfo counts them as held, not in use (%zu blocks, %zu bytes)", mi.cached_blocks,
	     mi.cached_bytes);
	os_malloc_trim(0);
	t_ok(is_block(owned[1], 2 * CHUNK, true),
	     "os_malloc_trim takes them back, merged into one free block");

	t_ok(os_heap_check() == 0 && hv_verify() == NULL, "heap consistent");
	sem_post(&go);
	pthread_join(t, NULL);
}

static void *owner_collects(void *arg)
{
	(void)arg;
	tu_alloc_run(owned, 4, BLOCK);
	sem_post(&ready);
	sem_wait(&go);
	void *big = os_malloc(40 * KiB);
	bool merged = is_block(owned[1], 2 * CHUNK, true);
	os_free(big);
	return merged ? (void *)1 : NULL;
}

static void owner_takes_back(void *arg)
{
	(void)arg;
	if (keeps_nothing())
		return;
	pthread_t t;
	if (!start_owner(&t, owner_collects))
		return;
	os_free(owned[1]);
	os_free(owned[2]);
	hv_flush_cache();
	t_ok(is_block(owned[1], CHUNK, false), "the freed blocks wait on the owner's list");
	sem_post(&go);
	void *merged = NULL;
	pthread_join(t, &merged);
	t_ok(merged != NULL, "the owner's next request that its lists cannot serve takes them "
	                     "back, merged");
}

/* Small blocks that another thread frees come back to the owner's own
   lists, not into its heap, on the owner's next slow path: a producer
   whose consumer frees its blocks gets them back as they were. */
#define SMALL_N 16
#define SMALL_SIZE ((size_t)64)
static void *small_owned[SMALL_N];
static void *owner_keeps(void *arg)
{
	(void)arg;
	for (int i = 0; i < SMALL_N; i++)
		small_owned[i] = os_malloc(SMALL_SIZE);
	sem_post(&ready);
	sem_wait(&go);
	/* A size this thread has not asked for: its lists cannot serve it. */
	void *other = os_malloc(300);
	int in_use = 0;
	for (int i = 0; i < SMALL_N; i++)
		in_use += is_block(small_owned[i], SMALL_SIZE + HDR, false);
	void *again = os_malloc(SMALL_SIZE);
	bool theirs = false;
	for (int i = 0; i < SMALL_N; i++)
		theirs |= again == small_owned[i];
	t_ok(in_use == SMALL_N,
	     "after the owner's slow path the %d blocks are still in use in the heap (%d are)",
	     SMALL_N, in_use);
	t_ok(theirs, "its next request of their size gets one of them back (%p)", again);
	t_ok(is_block(again, SMALL_SIZE + HDR, false), "still a block of its own in the heap");
	os_free(again);
	os_free(other);
	return NULL;
}

static void owner_keeps_small(void *arg)
{
	(void)arg;
	if (keeps_nothing())
		return;
	pthread_t t;
	if (!start_owner(&t, owner_keeps))
		return;
	for (int i = 0; i < SMALL_N; i++)
		os_free(small_owned[i]);
	/* What this thread kept of them goes to the owner's list now. */
	hv_flush_cache();
	sem_post(&go);
	pthread_join(t, NULL);
	hv_flush_cache();
	t_null(hv_verify(), "heap consistent");
}

/* A thread that frees another thread's blocks keeps only a little of
   them (an eighth of its bound, documented in os_malloc(3)); the rest go
   back to their arena at once, so a consumer does not hold what its
   producer has to allocate anew. */
#define FOREIGN_N 100
static void *foreign[FOREIGN_N];
static void *producer(void *arg)
{
	(void)arg;
	for (int i = 0; i < FOREIGN_N; i++)
		foreign[i] = os_malloc(BLOCK);
	return NULL;
}

static void consumer_keeps_little(void *arg)
{
	(void)arg;
	if (keeps_nothing())
		return;
	os_free(os_malloc(1));
	hv_flush_cache();
	pthread_t t;
	if (!t_ok(pthread_create(&t, NULL, producer, NULL) == 0, "a producer thread starts"))
		return;
	pthread_join(t, NULL);
	for (int i = 0; i < FOREIGN_N; i++)
		os_free(foreign[i]);
	size_t kept = hv_my_kept_bytes();
	t_ok(kept > 0 && kept <= KEPT_MAX / 8,
	     "of %d freed blocks of %zu bytes, the consumer keeps %zu bytes (at most %zu)", FOREIGN_N,
	     CHUNK, kept, KEPT_MAX / 8);
	hv_flush_cache();
	t_null(hv_verify(), "heap consistent");
}

/* Blocks a thread frees into a living thread's arena and does not keep
   travel in runs (cache.h, struct outgoing): one atomic operation for a
   run, where one a block made the two threads fight over the list. */
/* Makes the calling thread keep more than a quarter of its bound of its
   own blocks, so that it keeps none of other threads' (cache.h,
   CACHE_FOREIGN_MAX). */
static void keep_own_blocks(void)
{
	static void *mine[KEPT_BEFORE_GROWTH / CHUNK + 8];
	size_t n_mine = sizeof(mine) / sizeof(mine[0]);
	for (size_t i = 0; i < n_mine; i++)
		mine[i] = os_malloc(BLOCK);
	for (size_t i = 0; i < n_mine; i++)
		os_free(mine[i]);
}

#define OUT_RUN 64
#define OUT_N (OUT_RUN + 8)
static void *out_owned[OUT_N];
static void *out_big;
#define OUT_BIG ((size_t)100 * KiB)
static void *owner_of_many(void *arg)
{
	(void)arg;
	for (int i = 0; i < OUT_N; i++)
		out_owned[i] = os_malloc(SMALL_SIZE);
	out_big = os_malloc(OUT_BIG);
	sem_post(&ready);
	sem_wait(&go);
	return NULL;
}

static void remote_runs(void *arg)
{
	(void)arg;
	if (keeps_nothing())
		return;
	pthread_t t;
	if (!start_owner(&t, owner_of_many))
		return;
	keep_own_blocks();
	t_ok(hv_my_kept_bytes() > KEPT_BEFORE_GROWTH, "this thread keeps %zu bytes of its own",
	     hv_my_kept_bytes());
	struct os_mallinfo before = os_mallinfo();
	for (int i = 0; i < 10; i++)
		os_free(out_owned[i]);
	struct os_mallinfo after = os_mallinfo();
	t_is(hv_remote_blocks(), 0, "10 of the owner's blocks freed here are not on its list yet");
	t_is(after.cached_blocks - before.cached_blocks, 10, "os_mallinfo counts them as held");
	t_ok(is_block(out_owned[0], SMALL_SIZE + HDR, false) &&
	     is_block(out_owned[9], SMALL_SIZE + HDR, false), "they are in use in the owner's heap");
	t_ok(os_heap_check() == 0 && hv_verify() == NULL, "heap consistent");
	for (int i = 10; i < OUT_RUN; i++)
		os_free(out_owned[i]);
	t_is(hv_remote_blocks(), OUT_RUN, "the 64th reaches the list with the others");
	for (int i = OUT_RUN; i < OUT_N; i++)
		os_free(out_owned[i]);
	t_is(hv_remote_blocks(), OUT_RUN, "the next 8 wait for a run of their own");
	hv_flush_cache();
	t_is(hv_remote_blocks(), OUT_N, "emptying the thread's lists hands them over");
	os_free(out_big);
	t_is(hv_remote_blocks(), OUT_N + 1, "a block of 100 KiB, more than a run holds, goes at once");
	t_ok(os_heap_check() == 0 && hv_verify() == NULL, "heap consistent");
	sem_post(&go);
	pthread_join(t, NULL);
}

/* Blocks of two other threads' arenas freed here in turn: each arena's
   wait in a run of their own, rather than one run going to one arena
   and then the other at every switch. */
#define TURNS 20
static void *turn_owned[2][TURNS];

static void *owner_of_twenty(void *arg)
{
	void **mine = arg;
	for (int i = 0; i < TURNS; i++)
		mine[i] = os_malloc(SMALL_SIZE);
	sem_post(&ready);
	sem_wait(&go);
	return NULL;
}

static void runs_per_arena(void *arg)
{
	(void)arg;
	if (keeps_nothing())
		return;
	prepare_owners();
	pthread_t t[2];
	for (int k = 0; k < 2; k++)
		if (!owner_starts(&t[k], owner_of_twenty, turn_owned[k]))
			return;
	struct hv_segment s0, s1;
	t_ok(tu_segment_of(turn_owned[0][0], &s0) && tu_segment_of(turn_owned[1][0], &s1) &&
	     s0.base != s1.base, "the owners allocate in arenas of their own");
	keep_own_blocks();
	for (int i = 0; i < TURNS; i++) {
		os_free(turn_owned[0][i]);
		os_free(turn_owned[1][i]);
	}
	t_is(hv_remote_blocks(), 0, "40 blocks of two owners freed in turn wait, none handed over");
	hv_flush_cache();
	t_is(hv_remote_blocks(), 2 * TURNS, "emptying the thread's lists hands them all over");
	t_ok(os_heap_check() == 0 && hv_verify() == NULL, "heap consistent");
	sem_post(&go);
	sem_post(&go);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
}

static void *ask_to_drain(void *arg)
{
	(void)arg;
	hv_ask_all_to_drain();
	return NULL;
}

/* A thread that frees other threads' blocks, and does not keep them,
   empties its cache on the next such free once another thread has asked
   (as one does before its request fails). */
static void drain_on_foreign_free(void *arg)
{
	(void)arg;
	if (keeps_nothing())
		return;
	prepare_owners();
	pthread_t t;
	if (!owner_starts(&t, owner_of_twenty, turn_owned[0]))
		return;
	keep_own_blocks();
	os_free(turn_owned[0][0]);
	os_free(turn_owned[0][1]);
	t_ok(hv_my_kept_bytes() > KEPT_BEFORE_GROWTH, "this thread keeps %zu bytes",
	     hv_my_kept_bytes());
	pthread_t asker;
	if (!t_ok(pthread_create(&asker, NULL, ask_to_drain, NULL) == 0, "another thread asks"))
		return;
	pthread_join(asker, NULL);
	os_free(turn_owned[0][2]);
	t_ok(hv_my_kept_bytes() < CHUNK, "and none after freeing the owner's next block (%zu)",
	     hv_my_kept_bytes());
	t_ok(os_heap_check() == 0 && hv_verify() == NULL, "heap consistent");
	sem_post(&go);
	pthread_join(t, NULL);
}

static void *first_block;
static void *alloc_one(void *arg)
{
	(void)arg;
	first_block = os_malloc(BLOCK);
	os_free(first_block);
	return NULL;
}

static void adoption(void *arg)
{
	(void)arg;
	/* Without caches a thread's exit goes unnoticed, and it keeps its
	   arena. */
	if (keeps_nothing())
		return;
	os_free(os_malloc(1));
	pthread_t t;
	if (!t_ok(pthread_create(&t, NULL, alloc_one, NULL) == 0, "a thread starts"))
		return;
	pthread_join(t, NULL);
	struct hv_segment a, b;
	bool had = tu_segment_of(first_block, &a);
	size_t segs = hv_segments(NULL, 0);
	if (!t_ok(pthread_create(&t, NULL, alloc_one, NULL) == 0, "another thread starts"))
		return;
	pthread_join(t, NULL);
	t_ok(had && tu_segment_of(first_block, &b) && b.base == a.base && !a.from_brk,
	     "the next thread is given the arena of the one that exited");
	t_ok(hv_segments(NULL, 0) == segs, "and no segment was added (%zu, was %zu)",
	     hv_segments(NULL, 0), segs);
}

int main(void)
{
	tap_diag("libosmem: kept blocks and remote frees");
	tu_child("kept and reused", 60, kept_and_reused, NULL);
	tu_child("small block reused first", 60, small_reused_first, NULL);
	tu_child("a larger block reused", 60, larger_block_reused, NULL);
	tu_child("every size listed", 60, every_size_listed, NULL);
	tu_child("a block a sixteenth larger", 60, neighbour_taken, NULL);
	tu_child("a steady borrower refilled", 60, steady_borrower_refilled, NULL);
	tu_child("merged before growth", 60, merged_before_growth, NULL);
	tu_child("half kept before growth", 60, half_kept_before_growth, NULL);
	tu_child("kept while the heap grows", 60, kept_while_heap_grows, NULL);
	tu_child("bounded", 60, bounded, NULL);
	tu_child("overflow keeps the newest", 60, overflow_keeps_newest, NULL);
	tu_child("OSMEM_M_CACHE_MAX", 60, cache_max_setting, NULL);
	tu_child("OSMEM_M_CACHE_MAX=0", 60, cache_max_zero, NULL);
	tu_child("thread exit", 60, thread_exit, NULL);
	tu_child("remote frees", 60, remote_frees, NULL);
	tu_child("owner takes back", 60, owner_takes_back, NULL);
	tu_child("owner keeps small remote frees", 60, owner_keeps_small, NULL);
	tu_child("a consumer keeps little", 60, consumer_keeps_little, NULL);
	tu_child("remote frees travel in runs", 60, remote_runs, NULL);
	tu_child("a run for each arena", 60, runs_per_arena, NULL);
	tu_child("drained on a free of another's block", 60, drain_on_foreign_free, NULL);
	tu_child("adoption", 60, adoption, NULL);
	return tap_done();
}
