/*
 * t-soak.c - a million random operations per seed, and afterwards the
 * allocator has given back what it took.
 *
 * Blocks of 1 byte to 4 MiB (log-uniform: as many tiny blocks as huge
 * ones) are allocated with os_malloc, os_calloc and os_aligned_alloc,
 * resized with os_realloc and freed in random order over a table of slots.
 * Each block's ends carry a pattern keyed by its id, checked when it is
 * resized and freed; os_heap_check() runs every so often.  Once every
 * block is freed and the thread cache flushed, the heap (brk and mapped
 * segments) is back to its starting size, give or take a page and the trim
 * threshold (free memory below that is kept on purpose), and no mapping
 * of a large block is left.
 *
 * Then threads: two rounds of four threads (on two cores) allocate,
 * resize and free blocks of 1 byte to 64 KiB, and now and then of 128 KiB
 * to 1 MiB, and hand about a third of them to another thread through a
 * mailbox, which frees them: frees into arenas other threads own.  The
 * second round starts after the first has exited and takes over its
 * arenas and the blocks left in the mailboxes.  Once every block is
 * freed, the bytes in use are back where they were, and the resident size
 * grew by no more than what libosmem documents it keeps: per segment, its
 * free end (trim threshold and top pad); per arena, the free pages
 * left waiting (32 times the trim threshold, only while a thread uses the
 * arena), and the main thread's kept blocks (1 MiB), with 4 MiB for the
 * threads' stacks and the C library.  os_malloc_trim(0)
 * then brings it back to within the trim threshold of where it was.
 *
 * make check runs one seed; OSMEM_SOAK_SEEDS=N runs seeds 1..N and
 * OSMEM_SOAK_OPS sets the operations per seed.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include "heapview.h"
#include "tap.h"
#include "tutil.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOTS 512
#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
#define MAX_SIZE (4 * MiB)
/* Bytes at each end of a block that carry its pattern. */
#define EDGE 64

struct slot {
	unsigned char *p;
	size_t size;
	uint64_t id;
};

static struct slot slots[SLOTS];
static uint64_t next_id = 1;

struct tally {
	unsigned long damaged, misaligned, nonzero, failed, check_failed;
};

/* 1 byte to 4 MiB, log-uniform: an octave at random, then a size in it. */
static size_t pick_size(struct tu_rng *r)
{
	unsigned octave = (unsigned)tu_rng_below(r, 22);
	size_t lo = (size_t)1 << octave;
	return lo + (size_t)tu_rng_below(r, lo);
}

static void mark(struct slot *s, bool fill, unsigned long *damaged)
{
	size_t n = s->size, head = n < EDGE ? n : EDGE;
	size_t tail = n > 2 * EDGE ? n - EDGE : head;
	for (size_t i = 0; i < head; i++) {
		if (fill)
			s->p[i] = tu_pattern_byte(s->id, i);
		else if (s->p[i] != tu_pattern_byte(s->id, i))
			goto bad;
	}
	for (size_t i = tail; i < n; i++) {
		if (fill)
			s->p[i] = tu_pattern_byte(s->id, i);
		else if (s->p[i] != tu_pattern_byte(s->id, i))
			goto bad;
	}
	return;
bad:
	(*damaged)++;
}

static void adopt(struct slot *s, void *p, size_t n, size_t align, struct tally *t)
{
	if ((uintptr_t)p % (align > alignof(max_align_t) ? align : alignof(max_align_t)))
		t->misaligned++;
	s->p = p;
	s->size = n;
	s->id = next_id++;
	mark(s, true, NULL);
}

static void drop(struct slot *s, struct tally *t)
{
	if (!s->p)
		return;
	mark(s, false, &t->damaged);
	os_free(s->p);
	s->p = NULL;
}

static void one_op(struct tu_rng *r, struct tally *t)
{
	struct slot *s = &slots[tu_rng_below(r, SLOTS)];
	uint64_t k = tu_rng_below(r, 100);
	if (!s->p) {
		size_t n = pick_size(r);
		void *p;
		size_t align = 0;
		if (k < 10) {
			p = os_calloc(1, n);
			/* Both ends, where the pattern of a former block would be. */
			if (p && (tu_nonzero(p, n < EDGE ? n : EDGE) != TU_NONE ||
			          tu_nonzero((char *)p + (n > EDGE ? n - EDGE : 0),
			                     n < EDGE ? n : EDGE) != TU_NONE))
				t->nonzero++;
		} else if (k < 15) {
			align = (size_t)32 << tu_rng_below(r, 8);
			p = os_aligned_alloc(align, n);
		} else {
			p = os_malloc(n);
		}
		if (!p) {
			t->failed++;
			return;
		}
		adopt(s, p, n, align, t);
	} else if (k < 60) {
		drop(s, t);
	} else {
		size_t n = pick_size(r);
		mark(s, false, &t->damaged);
		unsigned char *q = os_realloc(s->p, n);
		if (!q) {
			t->failed++;
			return;
		}
		/* The first bytes must have moved with the block. */
		size_t keep = n < s->size ? n : s->size;
		keep = keep < EDGE ? keep : EDGE;
		for (size_t i = 0; i < keep; i++)
			if (q[i] != tu_pattern_byte(s->id, i)) {
				t->damaged++;
				break;
			}
		adopt(s, q, n, 0, t);
	}
}

/* ---- threads ------------------------------------------------------------ */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
# define RSS_MEANINGFUL 0
#elif defined(__has_feature)
# if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#  define RSS_MEANINGFUL 0
# endif
#endif
#ifndef RSS_MEANINGFUL
# define RSS_MEANINGFUL 1
#endif

#define THREADS 4
#define THREAD_SLOTS 256
#define BOX_SIZE 64

/* Blocks handed to thread I wait in boxes[I] until it frees them. */
static struct mailbox {
	pthread_mutex_t lock;
	unsigned count;
	struct slot held[BOX_SIZE];
} boxes[THREADS];

struct worker {
	unsigned no;
	unsigned long ops;
	uint64_t next_id;
	struct tally t;
};

/* 1 byte to 64 KiB, log-uniform, and one block in 64 of 128 KiB to 1 MiB
   (a mapping of its own). */
static size_t pick_thread_size(struct tu_rng *r)
{
	if (tu_rng_below(r, 64) == 0)
		return 128 * KiB + (size_t)tu_rng_below(r, 896 * KiB);
	unsigned octave = (unsigned)tu_rng_below(r, 16);
	size_t lo = (size_t)1 << octave;
	return lo + (size_t)tu_rng_below(r, lo);
}

static void empty_box(struct mailbox *b, struct tally *t)
{
	struct slot got[BOX_SIZE];
	pthread_mutex_lock(&b->lock);
	unsigned n = b->count;
	memcpy(got, b->held, n * sizeof(got[0]));
	b->count = 0;
	pthread_mutex_unlock(&b->lock);
	for (unsigned i = 0; i < n; i++)
		drop(&got[i], t);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct slot own[THREAD_SLOTS];
	memset(own, 0, sizeof(own));
	struct tu_rng r;
	tu_rng_seed(&r, 1000 + w->no);
	for (unsigned long i = 0; i < w->ops; i++) {
		struct slot *s = &own[tu_rng_below(&r, THREAD_SLOTS)];
		uint64_t k = tu_rng_below(&r, 100);
		if (!s->p) {
			size_t n = pick_thread_size(&r);
			void *p = k < 10 ? os_calloc(n, 1) : os_malloc(n);
			if (!p) {
				w->t.failed++;
				continue;
			}
			if (k < 10 && tu_nonzero(p, n < EDGE ? n : EDGE) != TU_NONE)
				w->t.nonzero++;
			s->p = p;
			s->size = n;
			s->id = w->next_id++;
			mark(s, true, NULL);
		} else if (k < 35) {
			drop(s, &w->t);
		} else if (k < 70) {
			/* To another thread, which will free it. */
			struct mailbox *b = &boxes[(w->no + 1 + tu_rng_below(&r, THREADS - 1)) % THREADS];
			pthread_mutex_lock(&b->lock);
			bool sent = b->count < BOX_SIZE;
			if (sent)
				b->held[b->count++] = *s;
			pthread_mutex_unlock(&b->lock);
			if (sent)
				s->p = NULL;
			else
				drop(s, &w->t);
		} else {
			size_t n = pick_thread_size(&r);
			mark(s, false, &w->t.damaged);
			unsigned char *q = os_realloc(s->p, n);
			if (!q) {
				w->t.failed++;
				continue;
			}
			size_t keep = n < s->size ? n : s->size;
			for (size_t j = 0; j < keep && j < EDGE; j++)
				if (q[j] != tu_pattern_byte(s->id, j)) {
					w->t.damaged++;
					break;
				}
			s->p = q;
			s->size = n;
			s->id = w->next_id++;
			mark(s, true, NULL);
		}
		if (i % 64 == 63)
			empty_box(&boxes[w->no % THREADS], &w->t);
	}
	for (size_t i = 0; i < THREAD_SLOTS; i++)
		drop(&own[i], &w->t);
	return NULL;
}

static void threads_phase(unsigned long ops)
{
	for (unsigned i = 0; i < THREADS; i++)
		pthread_mutex_init(&boxes[i].lock, NULL);
	hv_flush_cache();
	size_t in_use0 = os_mallinfo().in_use_bytes;
	size_t rss0 = tu_rss_bytes();
	struct tally sum = { 0 };
	unsigned started = 0;
	for (unsigned round = 0; round < 2; round++) {
		pthread_t th[THREADS];
		struct worker w[THREADS];
		unsigned n = 0;
		for (unsigned i = 0; i < THREADS; i++) {
			w[i] = (struct worker){ .no = i, .ops = ops,
			                        .next_id = ((uint64_t)(round * THREADS + i) + 1) << 40 };
			if (pthread_create(&th[i], NULL, work, &w[i]) != 0)
				break;
			n++;
		}
		started += n;
		for (unsigned i = 0; i < n; i++) {
			pthread_join(th[i], NULL);
			sum.damaged += w[i].t.damaged;
			sum.failed += w[i].t.failed;
			sum.nonzero += w[i].t.nonzero;
		}
	}
	/* What the last round left in the mailboxes: the main thread frees it. */
	for (unsigned i = 0; i < THREADS; i++)
		empty_box(&boxes[i], &sum);
	hv_flush_cache();
	struct os_mallinfo mi = os_mallinfo();
	size_t rss1 = tu_rss_bytes();
	tap_diag("threads: %u threads in 2 rounds, %lu operations each; resident %zu -> %zu KiB",
	         started, ops, rss0 / KiB, rss1 / KiB);
	is_int(started, 2 * THREADS, "every thread started");
	is_int(sum.damaged, 0, "threads: no block lost its contents, freed by whichever thread");
	is_int(sum.nonzero, 0, "threads: os_calloc memory was zero");
	is_int(sum.failed, 0, "threads: no request failed");
	is_int((unsigned long)os_heap_check(), 0, "threads: os_heap_check() passed");
	ok(mi.in_use_bytes == in_use0, "threads: the bytes in use are back (%zu, were %zu)",
	   mi.in_use_bytes, in_use0);
	/* Every heap segment may keep the trim threshold and the top pad
	   resident at its end; the main arena, whose thread runs on, may also
	   hold its waiting pages, and the main thread its kept blocks; the
	   freed mappings kept for reuse (OSMEM_MAP_CACHE) the pages of them
	   that the program touched; the rest is for the threads' stacks and
	   the C library's own use. */
	size_t thr = hv_trim_threshold(), pad = hv_top_pad();
	size_t cached_resident = 0;
	struct hv_extent ext[16];
	size_t n_ext = hv_map_cache_extents(ext, 16);
	for (size_t i = 0; i < n_ext; i++)
		cached_resident += (size_t)tu_resident_pages((void *)ext[i].base, ext[i].len) *
		                   hv_page_size();
	tap_diag("threads: the freed mappings kept hold %zu KiB resident", cached_resident / KiB);
	size_t bound = hv_segments(NULL, 0) * (thr + pad) + hv_waiting_limit() + MiB +
	               cached_resident + 4 * MiB;
	if (!RSS_MEANINGFUL || tu_under_valgrind()) {
		tap_skip(2, "resident memory includes the sanitizer's or valgrind's own");
		return;
	}
	ok(rss1 <= rss0 + bound, "threads: resident memory grew by %zu KiB, at most %zu KiB",
	   rss1 > rss0 ? (rss1 - rss0) / KiB : 0, bound / KiB);
	os_malloc_trim(0);
	size_t rss2 = tu_rss_bytes();
	ok(rss2 <= rss0 + thr + 2 * MiB,
	   "threads: after os_malloc_trim(0) it is within %zu KiB of where it was (%zu KiB more)",
	   (thr + 2 * MiB) / KiB, rss2 > rss0 ? (rss2 - rss0) / KiB : 0);
}

static unsigned long env_number(const char *name, unsigned long dflt)
{
	const char *v = getenv(name);
	return v && *v ? strtoul(v, NULL, 10) : dflt;
}

int main(void)
{
	unsigned long seeds = env_number("OSMEM_SOAK_SEEDS", 1);
	unsigned long ops = env_number("OSMEM_SOAK_OPS", 1000000);
	tap_plan((int)seeds * 8 + 8);
	tap_diag("%lu seed(s) x %lu operations, sizes 1 B to 4 MiB", seeds, ops);

	/* The heap as it is after the first block: the starting size. */
	os_free(os_malloc(1));
	hv_flush_cache();
	size_t page = hv_page_size(), slack = page + hv_trim_threshold();
	size_t heap0 = hv_brk_bytes() + hv_map_segment_bytes();
	size_t mapped0 = os_mallinfo().mapped_bytes;

	for (unsigned long seed = 1; seed <= seeds; seed++) {
		struct tu_rng r;
		struct tally t = { 0 };
		size_t peak_heap = heap0;
		tu_rng_seed(&r, seed);
		time_t start = time(NULL);
		for (unsigned long i = 0; i < ops; i++) {
			one_op(&r, &t);
			if (i % 100000 == 99999) {
				if (os_heap_check() != 0)
					t.check_failed++;
				size_t h = hv_brk_bytes() + hv_map_segment_bytes();
				peak_heap = h > peak_heap ? h : peak_heap;
			}
		}
		for (size_t i = 0; i < SLOTS; i++)
			drop(&slots[i], &t);
		hv_flush_cache();
		struct os_mallinfo mi = os_mallinfo();
		size_t heap = hv_brk_bytes() + hv_map_segment_bytes();

		tap_diag("seed %lu: %ld s, heap %zu -> %zu bytes (peak seen %zu)", seed,
		         (long)(time(NULL) - start), heap0, heap, peak_heap);
		is_int(t.damaged, 0, "no block lost its contents");
		is_int(t.misaligned, 0, "every block was aligned as asked");
		is_int(t.nonzero, 0, "os_calloc memory was zero");
		is_int(t.failed, 0, "no request failed");
		is_int(t.check_failed + (unsigned long)os_heap_check(), 0, "os_heap_check() passed "
		                                                         "throughout and at the end");
		/* Only the newest brk segment ends at the break and can shrink:
		   when something else moved the break during the run (valgrind
		   does), the older ones keep their size, with their free pages
		   given back inside. */
		struct hv_segment segs[256];
		size_t nseg = hv_segments(segs, 256), live_brk = 0;
		for (size_t i = 0; i < nseg && i < 256; i++)
			live_brk += segs[i].from_brk && segs[i].end > segs[i].base;
		if (live_brk > 1)
			tap_skip(1, "the break moved under libosmem: older brk segments cannot shrink");
		else if (!ok(heap <= heap0 + slack, "seed %lu: the heap is back to its starting size "
		                                    "(%zu, started at %zu, slack %zu)",
		             seed, heap, heap0, slack))
			for (size_t i = 0; i < nseg && i < 256; i++)
				if (segs[i].end > segs[i].base)
					tap_diag("segment %zu: %zu bytes, %s", i,
					         (size_t)(segs[i].end - segs[i].base),
					         segs[i].from_brk ? "brk" : "mapped");
		ok(mi.mapped_bytes == mapped0 && mi.mapped_blocks == 0,
		   "seed %lu: no mapping is left (%zu bytes in %zu)", seed, mi.mapped_bytes,
		   mi.mapped_blocks);
		ok(mi.cached_blocks == 0 && mi.free_blocks <= 1 + hv_segments(NULL, 0),
		   "seed %lu: the free heap has coalesced (%zu free blocks)", seed, mi.free_blocks);
	}
	threads_phase(tu_under_valgrind() ? ops / 200 : ops / 10);
	return tap_done();
}
