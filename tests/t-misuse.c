/*
 * t-misuse.c - misuse and heap damage are caught, reported in one line and
 * end the program with SIGABRT, never with a crash elsewhere or silently.
 *
 * Every case runs in a fresh process (death.h): it sets the stage, notes
 * the pointer the report must name and commits the misuse.  The parent
 * checks that the child died of SIGABRT with exactly one line on standard
 * error, "osmem: FUNC(): PROBLEM (ptr=0x...)".  Covered:
 *  - double free of a cached small block, of a heap block, of a mapped
 *    block, right away and after other allocations, after the freed
 *    block was merged into a free neighbour, and while it waits to be
 *    handed back to another thread's arena;
 *  - os_free and os_realloc of pointers the allocator never handed out:
 *    inside a block (aligned and misaligned), on the stack, in a global,
 *    from the C library's malloc, in a foreign mapping;
 *  - os_realloc of freed blocks, in the words os_heap_check(3) gives for
 *    each kind of block;
 *  - overflow past the end of a block, caught when the block goes back to
 *    the heap: at its free, or for a block its thread keeps, when the
 *    thread empties its lists (os_malloc_trim, thread exit); underflow
 *    before it, caught when the block is freed;
 *  - writes after free into a free heap block's links, into a cached
 *    block's links, and (OSMEM_CHECK=2) into the middle of a cached block;
 *  - os_heap_check() on a damaged header.
 * And the other side: os_heap_check() returns 0 on a healthy heap with
 * live, cached, free and mapped blocks, at every OSMEM_CHECK level.
 *
 * The program links libosmem statically under its os_ names, so plain
 * malloc here is the C library's.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include "death.h"
#include "tap.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

/* A payload in the thread-cache range, one above it that lives on the
   heap, and one large enough for a mapping of its own. */
#define SMALL ((size_t)64)
#define HEAP ((size_t)4096)
/* Above the default OSMEM_CACHE_MAX: freed, it goes back to the heap at
   once instead of being kept by the thread. */
#define UNKEPT ((size_t)40 * KiB)
#define LARGE MiB

static const char os_free_s[] = "os_free", os_realloc_s[] = "os_realloc",
                  os_malloc_s[] = "os_malloc", os_heap_check_s[] = "os_heap_check",
                  os_calloc_s[] = "os_calloc";

/* Keeps the compiler from reasoning about a pointer after a misuse. */
static void *launder(void *p)
{
	__asm__ volatile("" : "+r"(p));
	return p;
}

/* Blocks that sit between and after the ones a case plays with, so that
   nothing merges with the top of the heap or with each other by accident. */
static void *keep[16];
static size_t nkeep;
static void guard(void)
{
	keep[nkeep++ % 16] = os_malloc(HEAP);
}

static void realloc_and_use(void *p, size_t n)
{
	void *q = os_realloc(p, n);
	/* Not reached: the library aborts.  Keep the result alive. */
	dt_check(q != NULL, "os_realloc returned");
}

/* ---- double free --------------------------------------------------- */

static void free_twice_small(void)
{
	char *p = os_malloc(SMALL);
	dt_note_ptr(p);
	os_free(p);
	os_free(launder(p));
}

static void free_twice_heap(void)
{
	char *p = os_malloc(HEAP);
	guard();
	dt_note_ptr(p);
	os_free(p);
	os_free(launder(p));
}

static void free_twice_mapped(void)
{
	char *p = os_malloc(LARGE);
	dt_note_ptr(p);
	os_free(p);
	os_free(launder(p));
}

/* Other sizes come and go between the two frees; none of them can reuse
   the freed block (different cache classes, or larger than it). */
static void churn(size_t min)
{
	static const size_t sizes[] = { 24, 100, 200, 500, 1000, 2000, 3000, 8000, 20000,
		                        100000, 300000, 2 * MiB };
	void *p[sizeof(sizes) / sizeof(sizes[0])];
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			p[i] = sizes[i] > min ? os_malloc(sizes[i]) : NULL;
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i += 2)
			os_free(p[i]);
		for (size_t i = 1; i < sizeof(sizes) / sizeof(sizes[0]); i += 2)
			os_free(p[i]);
	}
}

static void free_twice_small_later(void)
{
	char *p = os_malloc(SMALL);
	dt_note_ptr(p);
	os_free(p);
	churn(0);
	os_free(launder(p));
}

static void free_twice_heap_later(void)
{
	char *p = os_malloc(HEAP);
	guard();
	dt_note_ptr(p);
	os_free(p);
	churn(HEAP);
	os_free(launder(p));
}

static void free_twice_mapped_later(void)
{
	char *p = os_malloc(LARGE);
	void *other = os_malloc(3 * LARGE);
	dt_note_ptr(p);
	os_free(p);
	churn(0);
	os_free(other);
	os_free(launder(p));
}

/* A hundred other large blocks come and go before the second free. */
static void free_twice_mapped_much_later(void)
{
	char *p = os_malloc(LARGE);
	dt_note_ptr(p);
	os_free(p);
	for (size_t i = 0; i < 100; i++)
		os_free(os_malloc(2 * LARGE + i * 4096));
	os_free(launder(p));
}

/* A block of another thread's arena, too large for this thread to keep:
   freed, it waits among this thread's outgoing blocks for their run to be
   handed over, and a second free is still caught there. */
static sem_t owner_ready, owner_done;
static char *owner_block;

static void *owner_allocates_and_waits(void *arg)
{
	(void)arg;
	owner_block = os_malloc(UNKEPT);
	sem_post(&owner_ready);
	sem_wait(&owner_done); /* never posted: the owner lives on */
	return NULL;
}

/* Gives this thread its cache and arena, then starts OWNER_FN in a thread
   of its own and waits until it posts OWNER_READY. */
static pthread_t start_owner(void *(*owner_fn)(void *))
{
	pthread_t t;
	sem_init(&owner_ready, 0, 0);
	sem_init(&owner_done, 0, 0);
	os_free(os_malloc(SMALL));
	dt_check(pthread_create(&t, NULL, owner_fn, NULL) == 0, "owner thread started");
	sem_wait(&owner_ready);
	return t;
}

static void free_twice_outgoing(void)
{
	start_owner(owner_allocates_and_waits);
	dt_check(owner_block != NULL, "the owner allocated");
	dt_note_ptr(owner_block);
	os_free(owner_block);
	os_free(launder(owner_block));
}

/* A block of another thread's arena, too large for this thread to keep,
   freed here and handed over to its owner's list of remote frees, then
   written to: the owner's next request that its lists cannot serve
   takes the list back and finds the damage. */
static char *remote_block;

static void *owner_takes_back(void *arg)
{
	(void)arg;
	os_free(os_malloc(SMALL)); /* the owner gets its cache and arena */
	remote_block = os_malloc(UNKEPT);
	sem_post(&owner_ready);
	sem_wait(&owner_done);
	void *q = os_malloc(3 * SMALL); /* a size none of its lists holds */
	dt_check(q != NULL, "os_malloc returned");
	return NULL;
}

static void waf_remote_list(void)
{
	pthread_t t = start_owner(owner_takes_back);
	dt_note_ptr(remote_block);
	os_free(remote_block);
	/* A request that this thread's lists cannot serve hands its
	   outgoing blocks over. */
	dt_check(os_malloc(UNKEPT) != NULL, "os_malloc returned");
	memset(launder(remote_block), 0x41, 16);
	sem_post(&owner_done);
	pthread_join(t, NULL);
}

/* Two blocks of another thread's arena, which this thread does not keep
   (it keeps more than 128 KiB of its own): once the first has gone out,
   the second is freed on the short path for blocks of the arena last
   freed into (cache.c, osmem_cache_free_foreign), which must still catch
   a second free of it, and a pointer into it that no block starts at. */
static char *pair_block[2];

static void *owner_of_two(void *arg)
{
	(void)arg;
	os_free(os_malloc(SMALL)); /* the owner gets its cache and arena */
	pair_block[0] = os_malloc(SMALL);
	pair_block[1] = os_malloc(SMALL);
	sem_post(&owner_ready);
	sem_wait(&owner_done); /* never posted: the owner lives on */
	return NULL;
}

static void free_one_of_two(void)
{
	start_owner(owner_of_two);
	dt_check(pair_block[0] && pair_block[1], "the owner allocated");
	static void *own[48];
	for (int i = 0; i < 48; i++)
		dt_check((own[i] = os_malloc(4000)) != NULL, "os_malloc returned");
	for (int i = 0; i < 48; i++)
		os_free(own[i]);
	os_free(pair_block[0]);
}

static void free_twice_foreign(void)
{
	free_one_of_two();
	dt_note_ptr(pair_block[1]);
	os_free(pair_block[1]);
	os_free(launder(pair_block[1]));
}

static void free_interior_foreign(void)
{
	free_one_of_two();
	dt_note_ptr(pair_block[1] + 64);
	os_free(launder(pair_block[1] + 64));
}

/* B is freed, then A before it: A absorbs B and B's header is gone. */
static void free_twice_merged_into_prev(void)
{
	char *a = os_malloc(HEAP), *b = os_malloc(HEAP);
	guard();
	dt_note_ptr(b);
	os_free(b);
	os_free(a);
	os_free(launder(b));
}

/* B is freed, then C after it: B absorbs C and C's header is gone. */
static void free_twice_merged_into_next(void)
{
	char *b = os_malloc(HEAP), *c = os_malloc(HEAP);
	guard();
	dt_note_ptr(c);
	os_free(b);
	os_free(c);
	os_free(launder(c));
}

/* Double free is caught even with the boundary-tag checks turned off. */
static void free_twice_check0(void)
{
	free_twice_small();
}

/* ---- pointers the allocator never handed out ------------------------ */

static _Alignas(64) char a_global[64];

static void *foreign_mapping(void)
{
	char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		abort();
	return m + 16;
}

static void free_interior_small(void)
{
	char *p = os_malloc(SMALL);
	dt_note_ptr(p + 16);
	os_free(p + 16);
}

static void free_interior_heap(void)
{
	char *p = os_malloc(HEAP);
	guard();
	dt_note_ptr(p + 16);
	os_free(p + 16);
}

static void free_misaligned(void)
{
	char *p = os_malloc(HEAP);
	dt_note_ptr(p + 8);
	os_free(p + 8);
}

static void free_interior_mapped(void)
{
	char *p = os_malloc(LARGE);
	dt_note_ptr(p + 4096);
	os_free(p + 4096);
}

static void free_stack(void)
{
	_Alignas(64) char on_stack[64];
	os_free(launder(os_malloc(SMALL)));
	dt_note_ptr(on_stack);
	os_free(launder(on_stack));
}

static void free_global(void)
{
	os_free(launder(os_malloc(SMALL)));
	dt_note_ptr(a_global);
	os_free(launder(a_global));
}

static void free_libc(void)
{
	os_free(launder(os_malloc(SMALL)));
	void *p = malloc(SMALL);
	dt_note_ptr(p);
	os_free(p);
}

static void free_foreign_mapping(void)
{
	os_free(launder(os_malloc(SMALL)));
	void *p = foreign_mapping();
	dt_note_ptr(p);
	os_free(p);
}

static void realloc_interior_small(void)
{
	char *p = os_malloc(SMALL);
	dt_note_ptr(p + 16);
	realloc_and_use(p + 16, 2 * SMALL);
}

static void realloc_interior_heap(void)
{
	char *p = os_malloc(HEAP);
	guard();
	dt_note_ptr(p + 16);
	realloc_and_use(p + 16, 2 * HEAP);
}

static void realloc_misaligned(void)
{
	char *p = os_malloc(HEAP);
	dt_note_ptr(p + 8);
	realloc_and_use(p + 8, 2 * HEAP);
}

static void realloc_stack(void)
{
	_Alignas(64) char on_stack[64];
	os_free(launder(os_malloc(SMALL)));
	dt_note_ptr(on_stack);
	realloc_and_use(launder(on_stack), 128);
}

static void realloc_global(void)
{
	os_free(launder(os_malloc(SMALL)));
	dt_note_ptr(a_global);
	realloc_and_use(launder(a_global), 128);
}

static void realloc_libc(void)
{
	os_free(launder(os_malloc(SMALL)));
	void *p = malloc(SMALL);
	dt_note_ptr(p);
	realloc_and_use(p, 128);
}

static void realloc_foreign_mapping(void)
{
	os_free(launder(os_malloc(SMALL)));
	void *p = foreign_mapping();
	dt_note_ptr(p);
	realloc_and_use(p, 128);
}

/* ---- realloc of a freed block ----------------------------------------- */

static void realloc_freed_small(void)
{
	char *p = os_malloc(SMALL);
	dt_note_ptr(p);
	os_free(p);
	realloc_and_use(launder(p), 2 * SMALL);
}

/* Kept by the thread when freed, like a small block. */
static void realloc_freed_kept(void)
{
	char *p = os_malloc(HEAP);
	guard();
	dt_note_ptr(p);
	os_free(p);
	realloc_and_use(launder(p), 2 * HEAP);
}

static void realloc_freed_heap(void)
{
	char *p = os_malloc(UNKEPT);
	guard();
	dt_note_ptr(p);
	os_free(p);
	realloc_and_use(launder(p), 2 * UNKEPT);
}

static void realloc_freed_mapped(void)
{
	char *p = os_malloc(LARGE);
	dt_note_ptr(p);
	os_free(p);
	realloc_and_use(launder(p), 2 * LARGE);
}

/* ---- overflow and underflow -------------------------------------------- */

/* One byte past the usable end lands in the next block's header.  A
   block the thread keeps is checked when it goes back to the heap, which
   os_malloc_trim makes it do; one it does not keep, at once. */
static void overflow_one(size_t n)
{
	volatile unsigned char *p = launder(os_malloc(n));
	guard();
	size_t usable = os_malloc_usable_size((void *)p);
	p[usable] ^= 1;
	dt_note_ptr((void *)p);
	os_free((void *)p);
	os_malloc_trim(0);
}

static void overflow_small(void) { overflow_one(SMALL); }
static void overflow_small_odd(void) { overflow_one(SMALL + 5); }
static void overflow_heap(void) { overflow_one(HEAP); }
static void overflow_heap_odd(void) { overflow_one(3 * KiB + 7); }

static void overflow_unkept(void)
{
	volatile unsigned char *p = launder(os_malloc(UNKEPT));
	guard();
	p[os_malloc_usable_size((void *)p)] ^= 1;
	dt_note_ptr((void *)p);
	os_free((void *)p);
	/* Not reached: the report comes from the free itself. */
	_exit(0);
}

/* A kept block is checked too when its thread exits and empties its
   lists. */
static void *overflow_and_exit(void *arg)
{
	volatile unsigned char *p = launder(os_malloc(SMALL));
	(void)arg;
	guard();
	p[os_malloc_usable_size((void *)p)] ^= 1;
	dt_note_ptr((void *)p);
	os_free((void *)p);
	return NULL;
}

static void overflow_thread_exit(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, overflow_and_exit, NULL) == 0)
		pthread_join(t, NULL);
}

/* N bytes just before the block: its own header. */
static void underflow(size_t size, size_t n)
{
	volatile unsigned char *p = launder(os_malloc(size));
	guard();
	for (size_t i = 1; i <= n; i++)
		p[-(ptrdiff_t)i] ^= 0xa5;
	dt_note_ptr((void *)p);
	os_free((void *)p);
}

static void underflow_small_1(void) { underflow(SMALL, 1); }
static void underflow_small_8(void) { underflow(SMALL, 8); }
static void underflow_small_16(void) { underflow(SMALL, 16); }
static void underflow_heap_1(void) { underflow(HEAP, 1); }
static void underflow_heap_4(void) { underflow(HEAP, 4); }
static void underflow_heap_9(void) { underflow(HEAP, 9); }
static void underflow_heap_16(void) { underflow(HEAP, 16); }

/* ---- write after free -------------------------------------------------- */

/* A freed heap block with used neighbours, so it stays a block of its own
   in its bin; its first 16 bytes (the list links) are then overwritten. */
static char *scribbled_free_block(void)
{
	char *a = os_malloc(UNKEPT), *b = os_malloc(UNKEPT), *c = os_malloc(UNKEPT);
	guard();
	dt_note_ptr(b);
	os_free(b);
	memset(launder(b), 0x41, 16);
	(void)a;
	(void)c;
	return b;
}

static void waf_free_list_malloc(void)
{
	scribbled_free_block();
	void *q = os_malloc(UNKEPT);
	dt_check(q != NULL, "os_malloc returned");
}

static void waf_free_list_check(void)
{
	scribbled_free_block();
	os_heap_check();
}

/* Only the first word (the cache link): the block itself is handed out
   again, and the damage is caught when the list is next followed. */
/* Requests of SMALL bytes until the thread's list of that size comes to
   the block freed last (cache.h: a request takes the blocks freed before
   the ones on the list's other side). */
static void allocate_through_list(void)
{
	for (int i = 0; i < 256; i++)
		dt_check(os_malloc(SMALL) != NULL, "os_malloc returned");
}

static void waf_cache_link(void)
{
	uint64_t *p = os_malloc(SMALL);
	os_free(p);
	*(volatile uint64_t *)launder(p) ^= 0x5a5a5a5a5a5a5a5aull;
	allocate_through_list();
}

/* Both words: the allocation that would take the block is refused. */
static void waf_cache_words(void)
{
	char *p = os_malloc(SMALL);
	dt_note_ptr(p);
	os_free(p);
	memset(launder(p), 0x41, 16);
	allocate_through_list();
}

/* OSMEM_CHECK=2: a byte in the middle of a cached block. */
static void waf_cache_middle_check2(void)
{
	char *p = os_malloc(SMALL);
	dt_note_ptr(p);
	os_free(p);
	((volatile char *)launder(p))[SMALL / 2] = 1;
	void *q = os_malloc(SMALL);
	dt_check(q != NULL, "os_malloc returned");
}

/* OSMEM_CHECK=2: a byte in the middle of a freed heap block, found when
   the block is handed out again. */
static void waf_heap_middle_check2(void)
{
	char *p = os_malloc(HEAP);
	guard();
	dt_note_ptr(p);
	os_free(p);
	((volatile char *)launder(p))[HEAP / 2] = 1;
	void *q = os_malloc(HEAP);
	dt_check(q != NULL, "os_malloc returned");
}

/* OSMEM_CHECK=2 verifies the heap on every call, a calloc whose size
   overflows included: a damaged header is reported there, before the
   ENOMEM. */
static void calloc_overflow_check2(void)
{
	volatile unsigned char *p = launder(os_malloc(HEAP));
	guard();
	p[-1] ^= 0xa5;
	dt_note_ptr((void *)p);
	volatile size_t half = SIZE_MAX / 2; /* (hidden from the compiler's size checks) */
	void *q = os_calloc(half, 3);
	dt_check(q == NULL, "os_calloc returned NULL");
}

/* ---- os_heap_check ------------------------------------------------------- */

static void heap_check_header(void)
{
	volatile unsigned char *p = launder(os_malloc(HEAP));
	guard();
	p[-1] ^= 0xa5;
	dt_note_ptr((void *)p);
	os_heap_check();
}

static void heap_check_small_header(void)
{
	volatile unsigned char *p = launder(os_malloc(SMALL));
	guard();
	p[-3] ^= 0xa5;
	dt_note_ptr((void *)p);
	os_heap_check();
}

/* A healthy heap: live small, cached, free heap and mapped blocks. */
static void heap_check_healthy(void)
{
	void *live[8], *gone[8];
	for (int i = 0; i < 8; i++) {
		live[i] = os_malloc(SMALL * (size_t)(i + 1));
		gone[i] = os_malloc(SMALL * (size_t)(i + 1));
	}
	char *h[6];
	for (int i = 0; i < 6; i++)
		h[i] = os_malloc(UNKEPT + (size_t)i * 1000);
	void *big = os_malloc(LARGE), *big_aligned = os_aligned_alloc(64 * KiB, LARGE);
	void *aligned = os_aligned_alloc(256, 3000);
	for (int i = 0; i < 8; i++)
		os_free(gone[i]); /* into the thread cache */
	os_free(h[1]);            /* free heap blocks, not merged */
	os_free(h[3]);
	struct os_mallinfo mi = os_mallinfo();
	/* OSMEM_CHECK=2 may keep no cache at all. */
	const char *level = getenv("OSMEM_CHECK");
	dt_check(mi.cached_blocks >= 8 || (level && strcmp(level, "2") == 0),
	         "freed small blocks sit in the thread cache (%zu)", mi.cached_blocks);
	dt_check(mi.free_blocks >= 2, "free heap blocks exist (%zu)", mi.free_blocks);
	dt_check(mi.mapped_blocks == 2, "two mapped blocks (%zu)", mi.mapped_blocks);
	dt_check(os_heap_check() == 0, "os_heap_check() returns 0 with live, cached, free "
	                               "and mapped blocks");
	for (int i = 0; i < 8; i++)
		os_free(live[i]);
	os_free(h[0]);
	os_free(h[2]);
	os_free(h[4]);
	os_free(h[5]);
	os_free(big);
	os_free(big_aligned);
	os_free(aligned);
	dt_check(os_heap_check() == 0, "os_heap_check() returns 0 once all is freed");
}

static const struct dt_case cases[] = {
	DT_CASE(free_twice_small),
	DT_CASE(free_twice_heap),
	DT_CASE(free_twice_mapped),
	DT_CASE(free_twice_small_later),
	DT_CASE(free_twice_heap_later),
	DT_CASE(free_twice_mapped_later),
	DT_CASE(free_twice_mapped_much_later),
	DT_CASE(free_twice_merged_into_prev),
	DT_CASE(free_twice_merged_into_next),
	DT_CASE(free_twice_check0),
	DT_CASE(free_twice_outgoing),
	DT_CASE(free_twice_foreign),
	DT_CASE(free_interior_foreign),
	DT_CASE(free_interior_small),
	DT_CASE(free_interior_heap),
	DT_CASE(free_misaligned),
	DT_CASE(free_interior_mapped),
	DT_CASE(free_stack),
	DT_CASE(free_global),
	DT_CASE(free_libc),
	DT_CASE(free_foreign_mapping),
	DT_CASE(realloc_interior_small),
	DT_CASE(realloc_interior_heap),
	DT_CASE(realloc_misaligned),
	DT_CASE(realloc_stack),
	DT_CASE(realloc_global),
	DT_CASE(realloc_libc),
	DT_CASE(realloc_foreign_mapping),
	DT_CASE(realloc_freed_small),
	DT_CASE(realloc_freed_kept),
	DT_CASE(realloc_freed_heap),
	DT_CASE(realloc_freed_mapped),
	DT_CASE(overflow_small),
	DT_CASE(overflow_small_odd),
	DT_CASE(overflow_heap),
	DT_CASE(overflow_heap_odd),
	DT_CASE(overflow_unkept),
	DT_CASE(overflow_thread_exit),
	DT_CASE(underflow_small_1),
	DT_CASE(underflow_small_8),
	DT_CASE(underflow_small_16),
	DT_CASE(underflow_heap_1),
	DT_CASE(underflow_heap_4),
	DT_CASE(underflow_heap_9),
	DT_CASE(underflow_heap_16),
	DT_CASE(waf_free_list_malloc),
	DT_CASE(waf_free_list_check),
	DT_CASE(waf_cache_link),
	DT_CASE(waf_cache_words),
	DT_CASE(waf_remote_list),
	DT_CASE(waf_cache_middle_check2),
	DT_CASE(waf_heap_middle_check2),
	DT_CASE(calloc_overflow_check2),
	DT_CASE(heap_check_header),
	DT_CASE(heap_check_small_header),
	DT_CASE(heap_check_healthy),
};

static struct dt_result res;

/* Runs case NAME with ENV and expects the one-line report. */
static void expect(const char *name, const char *const *env, const char *func,
                   const char *problem)
{
	dt_run(name, env, &res);
	dt_expect_abort(name, &res, func, problem);
}

static void expect_clean(const char *name, const char *const *env)
{
	dt_run(name, env, &res);
	dt_relay(name, &res);
}

int main(int argc, char **argv)
{
	static const char *const check0[] = { "OSMEM_CHECK=0", NULL };
	static const char *const check2[] = { "OSMEM_CHECK=2", NULL };
	static const char df[] = "double free detected", inval[] = "invalid pointer",
	                  bad_header[] = "corrupted block header",
	                  overflow[] = "heap overflow: header after the block is corrupted",
	                  bad_list[] = "corrupted free list",
	                  bad_cache[] = "corrupted thread cache (write after free?)",
	                  bad_remote[] = "corrupted remote free list (write after free?)",
	                  realloc_freed[] = "realloc of a freed block";

	dt_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));

	expect("free_twice_small", NULL, os_free_s, df);
	expect("free_twice_heap", NULL, os_free_s, df);
	expect("free_twice_mapped", NULL, os_free_s, df);
	expect("free_twice_small_later", NULL, os_free_s, df);
	expect("free_twice_heap_later", NULL, os_free_s, df);
	expect("free_twice_mapped_later", NULL, os_free_s, df);
	/* Only the last 64 unmapped blocks are remembered as freed; one freed
	   longer ago is no block at all. */
	expect("free_twice_mapped_much_later", NULL, os_free_s, inval);
	expect("free_twice_merged_into_prev", NULL, os_free_s, df);
	expect("free_twice_merged_into_next", NULL, os_free_s, df);
	expect("free_twice_check0", check0, os_free_s, df);
	expect("free_twice_outgoing", NULL, os_free_s, df);
	expect("free_twice_foreign", NULL, os_free_s, df);
	expect("free_interior_foreign", NULL, os_free_s, inval);

	expect("free_interior_small", NULL, os_free_s, inval);
	expect("free_interior_heap", NULL, os_free_s, inval);
	expect("free_misaligned", NULL, os_free_s, inval);
	expect("free_interior_mapped", NULL, os_free_s, inval);
	expect("free_stack", NULL, os_free_s, inval);
	expect("free_global", NULL, os_free_s, inval);
	expect("free_libc", NULL, os_free_s, inval);
	expect("free_foreign_mapping", NULL, os_free_s, inval);

	expect("realloc_interior_small", NULL, os_realloc_s, inval);
	expect("realloc_interior_heap", NULL, os_realloc_s, inval);
	expect("realloc_misaligned", NULL, os_realloc_s, inval);
	expect("realloc_stack", NULL, os_realloc_s, inval);
	expect("realloc_global", NULL, os_realloc_s, inval);
	expect("realloc_libc", NULL, os_realloc_s, inval);
	expect("realloc_foreign_mapping", NULL, os_realloc_s, inval);

	expect("realloc_freed_small", NULL, os_realloc_s, realloc_freed);
	expect("realloc_freed_kept", NULL, os_realloc_s, realloc_freed);
	/* os_heap_check(3): only a block kept by the thread is "a freed
	   block" to os_realloc; a freed heap block reads as a double free, a
	   freed mapped block as "block was already freed". */
	expect("realloc_freed_heap", NULL, os_realloc_s, df);
	expect("realloc_freed_mapped", NULL, os_realloc_s, "block was already freed");

	expect("overflow_small", NULL, os_free_s, overflow);
	expect("overflow_small_odd", NULL, os_free_s, overflow);
	expect("overflow_heap", NULL, os_free_s, overflow);
	expect("overflow_heap_odd", NULL, os_free_s, overflow);
	expect("overflow_unkept", NULL, os_free_s, overflow);
	expect("overflow_thread_exit", NULL, os_free_s, overflow);

	expect("underflow_small_1", NULL, os_free_s, bad_header);
	expect("underflow_small_8", NULL, os_free_s, bad_header);
	expect("underflow_small_16", NULL, os_free_s, bad_header);
	expect("underflow_heap_1", NULL, os_free_s, bad_header);
	expect("underflow_heap_4", NULL, os_free_s, bad_header);
	expect("underflow_heap_9", NULL, os_free_s, bad_header);
	expect("underflow_heap_16", NULL, os_free_s, bad_header);

	expect("waf_free_list_malloc", NULL, os_malloc_s, bad_list);
	expect("waf_free_list_check", NULL, os_heap_check_s, bad_list);
	expect("waf_cache_link", NULL, os_malloc_s, bad_cache);
	expect("waf_cache_words", NULL, os_malloc_s, bad_cache);
	expect("waf_remote_list", NULL, os_malloc_s, bad_remote);
	expect("waf_cache_middle_check2", check2, os_malloc_s, "write after free detected");
	expect("waf_heap_middle_check2", check2, os_malloc_s, "write after free detected");

	expect("calloc_overflow_check2", check2, os_calloc_s, bad_header);
	expect("heap_check_header", NULL, os_heap_check_s, bad_header);
	expect("heap_check_small_header", NULL, os_heap_check_s, bad_header);

	expect_clean("heap_check_healthy", NULL);
	expect_clean("heap_check_healthy", check0);
	expect_clean("heap_check_healthy", check2);

	return dt_done();
}
