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

static unsigned long env_number(const char *name, unsigned long dflt)
{
	const char *v = getenv(name);
	return v && *v ? strtoul(v, NULL, 10) : dflt;
}

int main(void)
{
	unsigned long seeds = env_number("OSMEM_SOAK_SEEDS", 1);
	unsigned long ops = env_number("OSMEM_SOAK_OPS", 1000000);
	tap_plan((int)seeds * 8);
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
	return tap_done();
}
