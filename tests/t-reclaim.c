/*
 * t-reclaim.c - memory comes back, and ENOMEM means it is really gone.
 *
 *  - blocks freed by the program go back to the kernel: resident memory
 *    returns to within a few MiB of where it started, whatever the block
 *    size and the order of the frees, and also when the C library's
 *    malloc (or anyone calling sbrk) has moved the break above the heap,
 *    so that the heap cannot shrink;
 *  - with the address space limited (RLIMIT_AS), a request fails only
 *    once nothing libosmem holds for reuse could serve it: the small
 *    blocks that thread caches keep, the free heap top, the freed
 *    mappings kept for reuse, the segments of arenas whose threads have
 *    gone;
 *  - a program that has taken every pthread key keeps them to itself,
 *    and thread caches are still emptied when their threads exit.
 *
 * Each case runs in a child of its own, once in one thread and once with
 * two threads allocating and freeing at the same time.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include "heapview.h"
#include "tap.h"
#include "tutil.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

/* The sanitizers keep shadow memory for every byte the program touched,
   resident whatever the allocator gives back: resident memory tells
   nothing about libosmem there. */
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
/* ThreadSanitizer's own allocator needs address space for every thread's
   state, which the cases that use up the address space leave it none of. */
#if defined(__SANITIZE_THREAD__)
# define UNDER_TSAN 1
#elif defined(__has_feature)
# if __has_feature(thread_sanitizer)
#  define UNDER_TSAN 1
# endif
#endif
#ifndef UNDER_TSAN
# define UNDER_TSAN 0
#endif

/* Resident memory that may remain after everything is freed: the
   per-thread caches, the heap's top pad and trim threshold, and the pages
   that hold the allocator's own state. */
#define RSS_SLACK (8 * MiB)

/* Arrays of pointers live in mappings of their own, so that neither
   allocator's memory is counted for them, and they are gone before
   resident memory is measured. */
static void **ptr_array(size_t n)
{
	void *p = mmap(NULL, n * sizeof(void *), PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void ptr_array_free(void **a, size_t n)
{
	if (a)
		munmap(a, n * sizeof(void *));
}

enum order { FORWARD, REVERSE, SHUFFLED };
static const char *const order_name[] = { "in allocation order", "in reverse order",
                                          "in random order" };

static void free_all(void **v, size_t n, enum order order, uint64_t seed)
{
	if (order == SHUFFLED) {
		struct tu_rng r;
		tu_rng_seed(&r, seed);
		for (size_t i = n; i > 1; i--) {
			size_t j = (size_t)tu_rng_below(&r, i);
			void *t = v[i - 1];
			v[i - 1] = v[j];
			v[j] = t;
		}
	}
	for (size_t i = 0; i < n; i++)
		os_free(v[order == REVERSE ? n - 1 - i : i]);
}

/* Runs FN(ARG[i]) in N threads at once (N = 1: in the calling thread). */
static void run_threads(unsigned n, void *(*fn)(void *), void **args)
{
	pthread_t tid[2];
	if (n == 1) {
		fn(args[0]);
		return;
	}
	for (unsigned i = 0; i < n; i++)
		if (pthread_create(&tid[i], NULL, fn, args[i]) != 0) {
			t_ok(false, "thread %u started", i);
			return;
		}
	for (unsigned i = 0; i < n; i++)
		pthread_join(tid[i], NULL);
}

/* ---- resident memory after freeing everything ------------------------- */

struct churn {
	size_t size, bytes;
	enum order order;
	uint64_t seed;
	pthread_barrier_t *between; /* all allocated, before any free */
	void (*at_barrier)(void);   /* run by one thread at that point */
	size_t failed;
};

static void *churn(void *arg)
{
	struct churn *c = arg;
	size_t n = c->bytes / c->size;
	void **v = ptr_array(n);
	if (!v) {
		c->failed = n;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		v[i] = os_malloc(c->size);
		if (!v[i]) {
			c->failed++;
			continue;
		}
		memset(v[i], 0xa5, c->size);
	}
	if (c->between) {
		int r = pthread_barrier_wait(c->between);
		if (r == PTHREAD_BARRIER_SERIAL_THREAD && c->at_barrier)
			c->at_barrier();
		pthread_barrier_wait(c->between);
	} else if (c->at_barrier) {
		c->at_barrier();
	}
	free_all(v, n, c->order, c->seed);
	ptr_array_free(v, n);
	return NULL;
}

/* Allocates BYTES of SIZE-byte blocks in each of THREADS threads, touches
   them, frees them in ORDER, and checks that resident memory went back. */
static void rss_returns(size_t size, size_t bytes, enum order order, unsigned threads,
                        void (*at_barrier)(void))
{
	pthread_barrier_t barrier;
	struct churn c[2];
	void *args[2] = { &c[0], &c[1] };
	pthread_barrier_init(&barrier, NULL, threads);
	for (unsigned i = 0; i < threads; i++)
		c[i] = (struct churn){ .size = size, .bytes = bytes / threads, .order = order,
		                       .seed = 1 + i, .between = &barrier,
		                       .at_barrier = at_barrier };
	size_t before = tu_rss_bytes();
	run_threads(threads, churn, args);
	pthread_barrier_destroy(&barrier);
	size_t after = tu_rss_bytes();
	t_ok(c[0].failed + (threads > 1 ? c[1].failed : 0) == 0, "every request served");
	if (!RSS_MEANINGFUL) {
		t_skip(1, "resident memory includes the sanitizer's shadow");
		return;
	}
	t_ok(after <= before + RSS_SLACK,
	     "%zu MiB of %zu-byte blocks in %u thread(s), freed %s: resident %zu KiB -> %zu KiB",
	     bytes / MiB, size, threads, order_name[order], before / KiB, after / KiB);
}

struct rss_case {
	size_t size, bytes;
	enum order order;
	unsigned threads;
};

static void rss_case(void *arg)
{
	const struct rss_case *rc = arg;
	rss_returns(rc->size, rc->bytes, rc->order, rc->threads, NULL);
}

/* An arena that is emptying gives the pages of each run of free blocks
   back as it forms (os_malloc(3)): each page once, not again with every
   block that later joins its run.  Blocks freed in random order join runs
   that grow a block at a time, so giving back the whole run on each free
   gave the same pages back many times over. */
static void emptying_pages_once(void *arg)
{
	size_t size = *(const size_t *)arg;
	struct churn c = { .size = size, .bytes = 32 * MiB, .order = SHUFFLED, .seed = 11 };
	size_t before = hv_map_calls().released_bytes;
	churn(&c);
	size_t given = hv_map_calls().released_bytes - before;
	/* What the blocks span: each with its 16-byte header, in multiples of
	   16 bytes.  A page may go back more than once (that of the header of
	   a run that another joins is written again as it is wiped), hence
	   the margin. */
	size_t spans = c.bytes / size * ((size + 16 + 15) / 16 * 16);
	t_ok(c.failed == 0, "every request served");
	t_ok(given <= spans + spans / 2,
	     "%zu MiB of %zu-byte blocks freed in random order: %zu KiB of pages given back, "
	     "where they span %zu KiB",
	     c.bytes / MiB, size, given / KiB, spans / KiB);
}

/* The break moved above the heap by someone else: the heap cannot shrink
   with sbrk any more, and must give its free pages back instead. */
static void *brk_before_move, *brk_after_move;

static void move_break_with_sbrk(void)
{
	brk_before_move = sbrk(0);
	char *p = sbrk((intptr_t)(64 * KiB));
	brk_after_move = sbrk(0);
	if (p != (char *)-1)
		memset(p, 1, 64 * KiB);
}

static void *libc_blocks[4];
static void move_break_with_malloc(void)
{
	brk_before_move = sbrk(0);
	for (int i = 0; i < 4; i++) {
		libc_blocks[i] = malloc(100 * KiB);
		if (libc_blocks[i])
			memset(libc_blocks[i], 1, 100 * KiB);
	}
	brk_after_move = sbrk(0);
}

struct foreign_case {
	size_t size;
	bool with_malloc;
	unsigned threads;
};

static void foreign_break(void *arg)
{
	const struct foreign_case *fc = arg;
	/* Make sure the heap lives on the break before measuring. */
	os_free(os_malloc(64));
	rss_returns(fc->size, 100 * MiB, REVERSE, fc->threads,
	            fc->with_malloc ? move_break_with_malloc : move_break_with_sbrk);
	if (brk_after_move == brk_before_move) {
		/* A sanitizer's malloc, for one, does not use the break. */
		t_skip(1, "the C library's malloc did not move the break");
		goto out;
	}
	size_t released = os_mallinfo().released_bytes;
	t_ok(released >= 64 * MiB, "os_mallinfo reports %zu MiB released (mapped, not resident)",
	     released / MiB);
out:
	for (int i = 0; i < 4; i++)
		free(libc_blocks[i]);
}

/* ---- ENOMEM only when the memory is gone ------------------------------- */

#define LARGE (3 * MiB)
#define LARGE_MAX 512

/* Allocates LARGE blocks until the kernel refuses; returns how many, and
   frees them unless KEEP is given. */
static size_t count_large(void **keep)
{
	void **v = keep ? keep : ptr_array(LARGE_MAX);
	size_t n = 0;
	if (!v)
		return 0;
	while (n < LARGE_MAX && (v[n] = os_malloc(LARGE)) != NULL) {
		((char *)v[n])[0] = 1;
		n++;
	}
	if (!keep) {
		for (size_t i = 0; i < n; i++)
			os_free(v[i]);
		ptr_array_free(v, LARGE_MAX);
	}
	return n;
}

struct fill {
	size_t size;
	enum order order;
	pthread_barrier_t *step;
	size_t got, large;
	int err;
};

/* Small blocks until ENOMEM, all of them freed, and then as many 3 MiB
   blocks as will fit, by the same thread (so that whatever its cache
   kept is still there). */
static void *fill_free_then_large(void *arg)
{
	struct fill *f = arg;
	size_t cap = 512 * MiB / f->size;
	/* The arrays are mapped before the limit, which leaves no room. */
	void **v = ptr_array(cap), **keep = ptr_array(LARGE_MAX);
	if (f->step) {
		pthread_barrier_wait(f->step); /* ready */
		pthread_barrier_wait(f->step); /* the limit is in place */
	}
	if (v) {
		errno = 0;
		while (f->got < cap && (v[f->got] = os_malloc(f->size)) != NULL)
			f->got++;
		f->err = errno;
		free_all(v, f->got, f->order, 7);
		ptr_array_free(v, cap);
	}
	if (f->step)
		pthread_barrier_wait(f->step); /* everyone has freed everything */
	if (keep)
		f->large = count_large(keep);
	if (f->step)
		pthread_barrier_wait(f->step); /* everyone has counted */
	for (size_t i = 0; i < f->large; i++)
		os_free(keep[i]);
	ptr_array_free(keep, LARGE_MAX);
	return NULL;
}

struct limit_case {
	enum order order;
	unsigned threads;
};

static bool limit_address_space(void)
{
	return t_ok(tu_limit_address_space(256 * MiB), "RLIMIT_AS lowered to 256 MiB above current use");
}

/* Case: the address space filled with 1000-byte blocks, all freed: as
   many 3 MiB blocks fit afterwards as before. */
static void small_then_large(void *arg)
{
	const struct limit_case *lc = arg;
	pthread_t tid[2];
	pthread_barrier_t step;
	struct fill f[2] = { { .size = 1000, .order = lc->order },
	                     { .size = 1000, .order = lc->order } };
	/* Threads first: their stacks need address space. */
	if (lc->threads > 1) {
		pthread_barrier_init(&step, NULL, lc->threads + 1);
		for (unsigned i = 0; i < lc->threads; i++) {
			f[i].step = &step;
			if (pthread_create(&tid[i], NULL, fill_free_then_large, &f[i]) != 0) {
				t_ok(false, "thread started");
				_exit(1);
			}
		}
	}
	/* The threads get ready (their arrays mapped) and wait until the
	   limit is lowered and the count made here, alone, is done; the main
	   thread goes through every step with them. */
	if (lc->threads > 1)
		pthread_barrier_wait(&step);
	if (!limit_address_space())
		_exit(1);
	size_t before = count_large(NULL), got = 0, after = 0;
	if (lc->threads > 1) {
		for (int i = 0; i < 3; i++)
			pthread_barrier_wait(&step);
		for (unsigned i = 0; i < lc->threads; i++)
			pthread_join(tid[i], NULL);
		pthread_barrier_destroy(&step);
	} else {
		fill_free_then_large(&f[0]);
	}
	for (unsigned i = 0; i < lc->threads; i++) {
		got += f[i].got;
		after += f[i].large;
	}
	bool enomem = f[0].err == ENOMEM && (lc->threads == 1 || f[1].err == ENOMEM);
	t_ok(got > 100000 && enomem, "%zu blocks of 1000 bytes before ENOMEM (errno %d, %d)", got,
	     f[0].err, f[1].err);
	t_ok(after + 1 >= before,
	     "after freeing them %s: %zu blocks of 3 MiB, where %zu fitted before", order_name[lc->order],
	     after, before);
	struct os_mallinfo mi = os_mallinfo();
	t_diag("heap %zu, heap mapped %zu, free %zu, cached %zu, map cache %zu bytes", mi.heap_bytes,
	       mi.heap_mapped_bytes, mi.free_bytes, mi.cached_bytes, mi.mapped_cache_bytes);
}

struct pressure {
	void **v;
	size_t n;
	pthread_barrier_t *step;
	void *zeroed, *aligned;
};

static void *large_then_reuse(void *arg)
{
	struct pressure *p = arg;
	pthread_barrier_wait(p->step); /* the limit is in place */
	p->n = count_large(p->v);
	pthread_barrier_wait(p->step); /* everyone is out of memory */
	for (size_t i = 0; i < 5 && p->n; i++)
		os_free(p->v[--p->n]);
	pthread_barrier_wait(p->step); /* everyone freed five */
	p->zeroed = os_calloc(1, LARGE);
	p->aligned = os_aligned_alloc(4096, LARGE);
	return NULL;
}

/* Case: 3 MiB blocks until ENOMEM, five freed: the freed mappings kept
   for reuse must not stand in the way of a fresh one. */
static void freed_mappings_give_way(void *arg)
{
	unsigned threads = *(const unsigned *)arg;
	pthread_t tid[2];
	pthread_barrier_t step;
	struct pressure p[2];
	pthread_barrier_init(&step, NULL, threads + 1);
	for (unsigned i = 0; i < threads; i++) {
		p[i] = (struct pressure){ .v = ptr_array(LARGE_MAX), .step = &step };
		if (!p[i].v || pthread_create(&tid[i], NULL, large_then_reuse, &p[i]) != 0) {
			t_ok(false, "thread started");
			return;
		}
	}
	bool limited = limit_address_space();
	pthread_barrier_wait(&step);
	pthread_barrier_wait(&step);
	pthread_barrier_wait(&step);
	size_t kept = os_mallinfo().mapped_cache_bytes;
	for (unsigned i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&step);
	if (!limited)
		return;
	t_diag("%zu bytes of freed mappings kept when the requests were made", kept);
	size_t total = 0;
	for (unsigned i = 0; i < threads; i++)
		total += p[i].n + 5;
	t_ok(total > 50, "%zu blocks of 3 MiB before ENOMEM", total);
	for (unsigned i = 0; i < threads; i++) {
		const unsigned char *z = p[i].zeroed;
		t_ok(z && z[0] == 0 && z[LARGE / 2] == 0 && z[LARGE - 1] == 0,
		     "thread %u: os_calloc(1, 3 MiB) served, and zero", i);
		t_ok(p[i].aligned && (uintptr_t)p[i].aligned % 4096 == 0,
		     "thread %u: os_aligned_alloc(4096, 3 MiB) served", i);
		os_free(p[i].zeroed);
		os_free(p[i].aligned);
		while (p[i].n)
			os_free(p[i].v[--p[i].n]);
	}
}

/* Case: a request at or above the mmap threshold when mmap cannot give
   it: free heap space serves it, and it is freed like any block. */
static void large_from_heap(void *arg)
{
	(void)arg;
	/* Some 40 MiB of free heap space, below a block still in use, so
	   that the heap cannot give it back. */
	enum { N = 400 };
	void *v[N];
	for (int i = 0; i < N; i++)
		v[i] = os_malloc(100 * KiB);
	void *guard = os_malloc(100 * KiB);
	for (int i = 0; i < N; i++)
		os_free(v[i]);
	if (!limit_address_space())
		return;
	/* Use up the address space with mappings of the test's own. */
	size_t taken = 0;
	for (size_t len = 64 * MiB; len >= 4096; len /= 2)
		while (mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) !=
		       MAP_FAILED)
			taken += len;
	t_diag("%zu MiB of the address space taken by the test", taken / MiB);
	void *big = os_malloc(LARGE);
	t_ok(big != NULL, "a 3 MiB request with no address space left comes from the heap");
	if (big) {
		memset(big, 0x3c, LARGE);
		t_ok(os_malloc_usable_size(big) >= LARGE, "and holds 3 MiB");
		os_free(big);
		t_ok(os_heap_check() == 0, "and is freed to the heap");
	}
	/* The aligned functions too, at the smallest alignment as well. */
	static const size_t aligns[] = { 16, 4096 };
	for (size_t i = 0; i < 2; i++) {
		void *a = os_aligned_alloc(aligns[i], LARGE);
		t_ok(a && (uintptr_t)a % aligns[i] == 0,
		     "os_aligned_alloc(%zu, 3 MiB) with no address space left comes from the heap",
		     aligns[i]);
		if (a)
			memset(a, 0x3c, LARGE);
		os_free(a);
	}
	os_free(guard);
}

/* ---- the program's pthread keys are its own --------------------------- */

static unsigned long dtor_calls;
static void program_dtor(void *v)
{
	(void)v;
	__atomic_add_fetch(&dtor_calls, 1, __ATOMIC_RELAXED);
}

static void *small_work(void *arg)
{
	(void)arg;
	void *v[200];
	for (int i = 0; i < 200; i++)
		v[i] = os_malloc(64);
	for (int i = 0; i < 200; i++)
		os_free(v[i]);
	return NULL;
}

static void all_keys_taken(void *arg)
{
	unsigned threads = *(const unsigned *)arg;
	pthread_key_t k;
	unsigned keys = 0;
	while (pthread_key_create(&k, program_dtor) == 0)
		keys++;
	t_ok(keys > 0, "the program took the %u pthread keys that were left", keys);
	void *args[2] = { NULL, NULL };
	run_threads(threads, small_work, args);
	/* And once more, in a thread of its own when THREADS is 1. */
	pthread_t t;
	if (pthread_create(&t, NULL, small_work, NULL) == 0)
		pthread_join(t, NULL);
	t_is(__atomic_load_n(&dtor_calls, __ATOMIC_RELAXED), 0,
	     "the program's key destructors were never called");
	/* The calling thread's own cache goes; what remains was left by
	   threads that have exited. */
	hv_flush_cache();
	struct os_mallinfo mi = os_mallinfo();
	t_is(mi.cached_bytes, 0, "the caches of exited threads were emptied (bytes cached)");
}

/* The structure before released_bytes was added, as a program built
   against that osmem.h knows it, and the name it calls. */
struct mallinfo_v1 {
	size_t field[11];
};
struct mallinfo_v1 mallinfo_v1(void) __asm__("os_mallinfo");

static void older_programs(void)
{
	os_free(os_malloc(100));
	struct {
		struct mallinfo_v1 mi;
		size_t after;
	} box = { .after = 0x5a5a5a5a };
	struct os_mallinfo now = os_mallinfo();
	box.mi = mallinfo_v1();
	ok(box.after == 0x5a5a5a5a && box.mi.field[0] == now.heap_bytes &&
	   box.mi.field[10] == now.cached_blocks,
	   "programs built against the first struct os_mallinfo get its fields, and no more");
}

int main(void)
{
	/* First, before anything else has started the allocator. */
	static const unsigned one = 1, two = 2;
	tu_child("all keys taken, 1 thread", 60, all_keys_taken, (void *)&one);
	tu_child("all keys taken, 2 threads", 60, all_keys_taken, (void *)&two);

	older_programs();

	/* Resident memory comes back. */
	static const struct rss_case rss_cases[] = {
		{ 16, 100 * MiB, FORWARD, 1 },   { 16, 32 * MiB, REVERSE, 1 },
		{ 16, 32 * MiB, SHUFFLED, 1 },   { 16, 64 * MiB, FORWARD, 2 },
		{ 1000, 64 * MiB, FORWARD, 1 },  { 1000, 64 * MiB, SHUFFLED, 2 },
		{ 4000, 64 * MiB, FORWARD, 1 },  { 4000, 64 * MiB, REVERSE, 1 },
		{ 4000, 64 * MiB, SHUFFLED, 2 }, { 60000, 64 * MiB, REVERSE, 1 },
		{ 60000, 64 * MiB, SHUFFLED, 1 }, { 60000, 64 * MiB, FORWARD, 2 },
		/* Counts that are no multiple of what a thread keeps, so that
		   many blocks are kept when the last free comes: they must not
		   hold the pages around them. */
		{ 16, 32 * MiB + 256000, SHUFFLED, 1 }, { 16, 64 * MiB + 96000, SHUFFLED, 2 },
		{ 48, 48 * MiB + 480000, SHUFFLED, 1 },
	};
	for (size_t i = 0; i < sizeof(rss_cases) / sizeof(rss_cases[0]); i++)
		tu_child("resident memory returns", 120, rss_case, (void *)&rss_cases[i]);
	static const size_t emptying_sizes[] = { 48, 256, 1000 };
	for (size_t i = 0; i < sizeof(emptying_sizes) / sizeof(emptying_sizes[0]); i++)
		tu_child("an emptying arena gives each page back once", 120, emptying_pages_once,
		         (void *)&emptying_sizes[i]);

	static const struct foreign_case foreign[] = {
		{ 4000, false, 1 }, { 60000, false, 1 }, { 4000, true, 1 },
		{ 60000, true, 1 }, { 4000, false, 2 },  { 60000, false, 2 },
	};
	for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++)
		tu_child("break moved above the heap", 120, foreign_break, (void *)&foreign[i]);

	if (tu_under_valgrind() || UNDER_TSAN) {
		tap_skip(1, "the address-space limits would starve valgrind or ThreadSanitizer");
		return tap_done();
	}
	static const struct limit_case limits[] = {
		{ FORWARD, 1 }, { REVERSE, 1 }, { FORWARD, 2 }, { SHUFFLED, 2 },
	};
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
		tu_child("small blocks, then large", 120, small_then_large, (void *)&limits[i]);
	tu_child("freed mappings give way, 1 thread", 60, freed_mappings_give_way, (void *)&one);
	tu_child("freed mappings give way, 2 threads", 60, freed_mappings_give_way, (void *)&two);
	tu_child("large block from the heap", 60, large_from_heap, NULL);
	return tap_done();
}
