/*
 * t-arena.c - threads get arenas of their own, blocks go back to the arena
 * they came from whichever thread frees them, and arenas do not pile up.
 *
 * The program's first thread is given the main arena, the brk heap; the
 * next thread another arena, which grows in mappings.  Blocks are 4 KiB,
 * which a thread keeps when it frees them; the tests return a thread's
 * kept blocks (hv_flush_cache) where they look at where blocks went: a
 * block of another arena goes onto that arena's list of remote frees,
 * and its owner takes it back, and coalesces it, on its next slow path.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include "heapview.h"
#include "tap.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BLOCK 4096
/* Two neighbouring blocks merged: both chunks, less one header. */
#define TWO_MERGED (2 * (BLOCK + 16) - 16)
#define SHORT_LIVED 10000

/* The segment holding P: its index, or -1. */
static int segment_of(const void *p, struct hv_segment *seg)
{
	struct hv_segment segs[256];
	size_t n = hv_segments(segs, 256);
	for (size_t i = 0; i < n && i < 256; i++)
		if ((uintptr_t)p > segs[i].base && (uintptr_t)p < segs[i].end) {
			*seg = segs[i];
			return (int)i;
		}
	return -1;
}

/* The second thread: told what to do through two semaphores. */
static sem_t go, done;
static void *main_blocks[3]; /* allocated by the main thread */
static void *own[3];         /* allocated by the second thread */
static struct hv_segment own_seg;
static int own_seg_index = -1;
static void *own_merged;
static void *big_blocks[200];
static unsigned long resident_after = (unsigned long)-1; /* until measured */

static unsigned long resident_pages(uintptr_t lo, uintptr_t hi)
{
	size_t page = hv_page_size();
	size_t n = (hi - lo) / page;
	unsigned char vec[4096];
	unsigned long count = 0;
	for (size_t done_pages = 0; done_pages < n;) {
		size_t k = n - done_pages < sizeof(vec) ? n - done_pages : sizeof(vec);
		if (mincore((void *)(lo + done_pages * page), k * page, vec) != 0)
			return (unsigned long)-1;
		for (size_t i = 0; i < k; i++)
			count += vec[i] & 1u;
		done_pages += k;
	}
	return count;
}

static void *second_thread(void *arg)
{
	(void)arg;
	/* Step 1: blocks of our own; free the main thread's. */
	for (int i = 0; i < 3; i++)
		own[i] = os_malloc(BLOCK);
	own_seg_index = segment_of(own[0], &own_seg);
	os_free(main_blocks[0]);
	os_free(main_blocks[1]);
	hv_flush_cache();
	sem_post(&done);

	/* Step 2: the main thread has freed own[0] and own[1]; their space
	   must have merged in our arena. */
	sem_wait(&go);
	own_merged = os_malloc(TWO_MERGED);
	os_free(own_merged);
	os_free(own[2]);

	/* Step 3: a lot of memory in our arena, all touched, then freed:
	   the free pages go back to the kernel. */
	for (int i = 0; i < 200; i++) {
		big_blocks[i] = os_malloc(BLOCK);
		memset(big_blocks[i], 0x5a, BLOCK);
	}
	for (int i = 0; i < 200; i++)
		os_free(big_blocks[i]);
	hv_flush_cache();
	struct hv_segment seg;
	if (segment_of(big_blocks[0], &seg) >= 0) {
		/* What trimming keeps: the free chunk's header and links and
		   the top pad, to the next page. */
		uintptr_t lo = (seg.base + 48 + hv_top_pad() + hv_page_size() - 1) &
		               ~(uintptr_t)(hv_page_size() - 1);
		uintptr_t hi = (seg.end - 16) & ~(uintptr_t)(hv_page_size() - 1);
		resident_after = lo < hi ? resident_pages(lo, hi) : (unsigned long)-1;
	}
	sem_post(&done);
	return NULL;
}

static void *short_lived(void *arg)
{
	(void)arg;
	void *a = os_malloc(BLOCK);
	void *b = os_malloc(100);
	if (a)
		memset(a, 1, BLOCK);
	os_free(b);
	os_free(a);
	return NULL;
}

int main(void)
{
	tap_plan(14);
	sem_init(&go, 0, 0);
	sem_init(&done, 0, 0);

	/* The main thread takes the main arena on its first heap block. */
	for (int i = 0; i < 3; i++)
		main_blocks[i] = os_malloc(BLOCK);
	struct hv_segment seg;
	ok(segment_of(main_blocks[0], &seg) >= 0 && seg.from_brk,
	   "the first thread's blocks come from the brk heap");
	void *main_first = main_blocks[0];

	pthread_t t;
	if (pthread_create(&t, NULL, second_thread, NULL) != 0)
		tap_bail("cannot start a thread");
	sem_wait(&done);

	ok(own_seg_index >= 0 && !own_seg.from_brk,
	   "a second thread's blocks come from another arena, in a mapping");
	ok(own_seg_index >= 0 && segment_of(main_blocks[0], &seg) != own_seg_index,
	   "the two arenas do not share a segment");

	/* The second thread freed main_blocks[0] and [1]: they went back to
	   the main arena, which took them in on this request's slow path and
	   merged them, so 8 KiB fits exactly where they were. */
	void *merged = os_malloc(TWO_MERGED);
	ok(merged == main_first, "blocks freed by another thread merge in the arena they came from "
	                         "(%p, want %p)", merged, main_first);
	os_free(merged);

	/* And the other way round. */
	void *first_own = own[0];
	os_free(own[0]);
	os_free(own[1]);
	hv_flush_cache();
	sem_post(&go);
	sem_wait(&done);
	ok(own_merged == first_own, "blocks the main thread frees merge in the second thread's arena "
	                            "(%p, want %p)", own_merged, first_own);
	/* After a free, a mapped segment's free tail may keep up to the trim
	   threshold resident before it is given back (see trim() in heap.c). */
	ok(resident_after * hv_page_size() <= hv_trim_threshold(),
	   "an arena's free pages are given back (%lu still resident)", resident_after);
	pthread_join(t, NULL);
	os_free(main_blocks[2]);
	ok(hv_verify() == NULL, "every arena is consistent: %s", hv_verify() ? hv_verify() : "yes");

	/* Many short-lived threads: arenas are shared out and reused, not
	   made anew, so segments and heap stay bounded. */
	struct hv_segment segs[256];
	size_t segs_before = hv_segments(segs, 256);
	struct os_mallinfo before = os_mallinfo();
	int failed = 0;
	for (int i = 0; i < SHORT_LIVED; i++) {
		if (pthread_create(&t, NULL, short_lived, NULL) != 0) {
			failed++;
			break;
		}
		pthread_join(t, NULL);
	}
	is_int(failed, 0, "10^4 threads started one after another");
	struct os_mallinfo after = os_mallinfo();
	size_t segs_after = hv_segments(segs, 256);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t arena_limit = (size_t)(cpus > 0 ? cpus : 1) * 4; /* ARENAS_PER_CPU */
	if (arena_limit > 16)
		arena_limit = 16;
	ok(segs_after <= segs_before + arena_limit,
	   "segments stay bounded by the arenas (%zu before, %zu after, at most %zu arenas)",
	   segs_before, segs_after, arena_limit);
	ok(after.in_use_bytes == before.in_use_bytes, "no bytes in use are left behind (%zu, was %zu)",
	   after.in_use_bytes, before.in_use_bytes);
	ok(after.cached_blocks == before.cached_blocks,
	   "the threads' caches were returned (%zu cached blocks, was %zu)", after.cached_blocks,
	   before.cached_blocks);
	ok(after.heap_mapped_bytes <= before.heap_mapped_bytes + arena_limit * (1u << 20),
	   "the arenas' mappings stay bounded (%zu bytes, was %zu)", after.heap_mapped_bytes,
	   before.heap_mapped_bytes);
	ok(os_heap_check() == 0 && hv_verify() == NULL, "the heap checks clean afterwards");

	/* Peak accounting holds up across arenas. */
	struct os_mallinfo mi = os_mallinfo();
	ok(mi.peak_in_use_bytes >= mi.in_use_bytes, "the peak is at least what is in use (%zu >= %zu)",
	   mi.peak_in_use_bytes, mi.in_use_bytes);
	return tap_done();
}
