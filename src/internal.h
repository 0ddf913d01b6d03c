/*
 * internal.h - types and hidden functions shared by libosmem's sources.
 *
 * Data flows one way:
 *   osmem.c (entry points) -> cache.c (per-thread cache)
 *     -> heap.c (best-fit brk heap) -> segment.c (heap growth and trimming)
 *     -> mapped.c (one mapping per large block)      -> os.c (system calls)
 * check.c (fatal errors), init.c (secret, options, fork) and walk.c (the
 * heap walker behind os_heap_check and the tests) are called from those
 * layers and call nothing above them.
 *
 * Every name here is hidden from the shared library and carries the osmem_
 * prefix, so that a static link cannot clash with a program's own names.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_INTERNAL_H
#define OSMEM_INTERNAL_H

#include <config.h>

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OSMEM_HIDDEN __attribute__((__visibility__("hidden")))
#define OSMEM_PUBLIC __attribute__((__visibility__("default")))
#define OSMEM_COLD __attribute__((__noinline__, __cold__))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* The most arenas (heaps with locks of their own) there can be. */
#define OSMEM_ARENAS_MAX 16u

/* Every block handed out is aligned for any object type. */
#define OSMEM_ALIGN ((size_t)_Alignof(max_align_t))
_Static_assert(OSMEM_ALIGN >= 16 && (OSMEM_ALIGN & (OSMEM_ALIGN - 1)) == 0,
               "chunk headers assume a power-of-two alignment of at least 16");

/* Requests above this can never be met; they fail before any arithmetic on
   them can overflow.  It leaves room for a header and page rounding. */
#define OSMEM_MAX_REQUEST ((size_t)PTRDIFF_MAX - (size_t)(1u << 26))

/* Memory the allocator knows to be zero without having written it (fresh
   pages from the kernel) is declared so to valgrind's memcheck, which
   otherwise reports reads of os_calloc memory from brk as undefined. */
#ifdef HAVE_VALGRIND_MEMCHECK_H
# include <valgrind/memcheck.h>
# define osmem_mark_defined(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#else
# define osmem_mark_defined(p, n) ((void)(p), (void)(n))
#endif

/* True while the process has never had a second thread (the C library
   keeps the flag; without it, we assume threads).  See lock.h. */
#ifdef HAVE_LIBC_SINGLE_THREADED
# include <sys/single_threaded.h>
static inline bool osmem_single_threaded(void)
{
	return __atomic_load_n(&__libc_single_threaded, __ATOMIC_RELAXED) != 0;
}
#else
static inline bool osmem_single_threaded(void) { return false; }
#endif

static inline size_t osmem_align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }
static inline size_t osmem_align_down(size_t n, size_t a) { return n & ~(a - 1); }

/* ---- settings.c: process-wide settings, read once ------------------------ */

struct osmem_options {
	size_t mmap_threshold; /* requests at or above go to their own mapping */
	size_t trim_threshold; /* free heap top above this is given back */
	size_t top_pad;        /* extra bytes asked for whenever the heap grows */
	size_t map_cache;      /* bytes of freed mappings kept for reuse */
	size_t huge_grow;      /* OSMEM_HUGE_GROW: a mapping realloc grows to
	                          this length or more asks for huge pages;
	                          0: never */
	long long map_cache_lifetime_ns; /* how long they are kept (tests shorten it) */
	size_t arenas;         /* OSMEM_ARENAS; 0: two per CPU (see arena.c) */
	size_t cache_max;      /* OSMEM_CACHE_MAX: largest payload a thread cache
	                          keeps; 0: no caching, every free coalesces */
	int check_level;       /* OSMEM_CHECK: 0 off, 1 default, 2 expensive */
	bool print_stats;      /* OSMEM_STATS: summary on standard error at exit */
	int stats_fd;          /* a copy of standard error taken at start-up, or -1 */
};

struct osmem_globals {
	bool ready;            /* set once, after everything below is valid */
	size_t page_size;
	uint64_t seal_secret;  /* keys the check values of chunk headers */
	uint64_t link_secret;  /* keys the encoding of free-list links */
	uint64_t cache_secret; /* keys the links of thread-cache lists */
	uint64_t mark_secret;  /* keys the "in a thread cache" mark */
	struct osmem_options opt;
};

extern struct osmem_globals osmem_g OSMEM_HIDDEN;

void osmem_init_slow(void) OSMEM_HIDDEN;
static inline void osmem_ensure_init(void)
{
	if (unlikely(!__atomic_load_n(&osmem_g.ready, __ATOMIC_ACQUIRE)))
		osmem_init_slow();
}
void osmem_options_read(struct osmem_options *opt) OSMEM_HIDDEN;
/* Largest mmap threshold and top pad accepted: beyond them "small" blocks
   would be larger than any sensible heap segment. */
#define OSMEM_MMAP_THRESHOLD_MAX ((size_t)32 << 20)

/* ---- settings.c: bytes in use, across the heap and the mappings ------ */

/* Updated on the locked paths only (heap carve and release, map and
   unmap): blocks held in thread caches count as in use here.  Atomic
   once the process has threads (arenas update it under different locks);
   plain before, when the atomic instructions would cost as much as the
   rest of a small free. */
struct osmem_usage {
	size_t in_use;
	size_t peak;
};
extern struct osmem_usage osmem_usage OSMEM_HIDDEN;

static inline void osmem_usage_add(size_t n)
{
	if (osmem_single_threaded()) {
		osmem_usage.in_use += n;
		if (osmem_usage.in_use > osmem_usage.peak)
			osmem_usage.peak = osmem_usage.in_use;
		return;
	}
	size_t now = __atomic_add_fetch(&osmem_usage.in_use, n, __ATOMIC_RELAXED);
	size_t peak = __atomic_load_n(&osmem_usage.peak, __ATOMIC_RELAXED);
	while (now > peak && !__atomic_compare_exchange_n(&osmem_usage.peak, &peak, now, true,
	                                                  __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static inline void osmem_usage_sub(size_t n)
{
	if (osmem_single_threaded()) {
		osmem_usage.in_use -= n;
		return;
	}
	__atomic_sub_fetch(&osmem_usage.in_use, n, __ATOMIC_RELAXED);
}

/* configure --enable-debug: besides the assertions, an arena is walked
   whole every OSMEM_DEBUG_PERIOD-th time its lock is released, so that a
   bookkeeping mistake is caught close to where it was made.  Compiled out
   otherwise. */
struct arena;
#ifdef OSMEM_DEBUG
# define OSMEM_DEBUG_PERIOD 4096u
void osmem_debug_tick(struct arena *h) OSMEM_HIDDEN;
#else
static inline void osmem_debug_tick(struct arena *h) { (void)h; }
#endif

/* OSMEM_CHECK=2: the bytes of a freed block past its first 16 (where the
   allocator keeps its links) are filled with this, and must still hold it,
   or zero, when the memory is handed out again. */
#define OSMEM_FREED_FILL 0xdb

/* ---- clear.c: zeroing a block that has been used ----------------------- */

/* From this many bytes up, clear.c clears with stores of its own where the
   processor allows (see there); below, memset does better. */
#define OSMEM_CLEAR_WIDE ((size_t)2048)

void osmem_clear_wide(void *p, size_t n) OSMEM_HIDDEN;

/* Sets N bytes from P, which is aligned to OSMEM_ALIGN, to zero; returns P. */
static inline void *osmem_clear(void *p, size_t n)
{
	if (n < OSMEM_CLEAR_WIDE)
		return __builtin_memset(p, 0, n);
	osmem_clear_wide(p, n);
	return p;
}

/* ---- check.c: the one way out on misuse or corruption ------------------ */

/* Writes "osmem: FUNC(): PROBLEM (ptr=0x...)" to standard error with
   write(2) and aborts.  Never returns, never allocates. */
_Noreturn void osmem_fatal(const char *func, const char *problem, const void *ptr)
	OSMEM_HIDDEN __attribute__((__cold__));

/* One line of text for standard error, built without allocating. */
struct osmem_line {
	char buf[256];
	size_t len;
};
void osmem_line_put(struct osmem_line *l, const char *s) OSMEM_HIDDEN;
void osmem_line_put_dec(struct osmem_line *l, size_t v) OSMEM_HIDDEN;
void osmem_line_put_hex(struct osmem_line *l, uintptr_t v) OSMEM_HIDDEN;
/* Appends a newline and writes the line with write(2), to standard error
   or to FD. */
void osmem_line_write(struct osmem_line *l) OSMEM_HIDDEN;
void osmem_line_write_to(int fd, struct osmem_line *l) OSMEM_HIDDEN;

/* ---- os.c: the system calls, and nothing else ------------------------- */

/* How many mmap, munmap and mremap calls have been made, so that the
   tests can tell a block reused from one that cost a system call. */
struct osmem_os_calls {
	size_t map, unmap, remap;
	size_t release; /* madvise: pages given back, the range kept */
	size_t released_bytes; /* and the bytes of the ranges it was given */
	size_t shrink;  /* sbrk with a negative increment */
	size_t advise;  /* madvise(MADV_HUGEPAGE) */
};
extern struct osmem_os_calls osmem_os_calls OSMEM_HIDDEN;

void *osmem_os_sbrk(intptr_t increment) OSMEM_HIDDEN;
void *osmem_os_map(size_t len) OSMEM_HIDDEN;
/* Address space for LEN bytes, inaccessible and charged to nothing until
   committed; NULL when there is none. */
void *osmem_os_reserve(size_t len) OSMEM_HIDDEN;
/* Makes reserved [ADDR, ADDR+LEN) readable and writable (zero pages);
   false when the kernel will not (the commit limit). */
bool osmem_os_commit(void *addr, size_t len) OSMEM_HIDDEN;
/* Makes committed [ADDR, ADDR+LEN) reserved again: its pages and their
   charge go back, the addresses stay the caller's. */
void osmem_os_decommit(void *addr, size_t len) OSMEM_HIDDEN;
void osmem_os_unmap(void *addr, size_t len) OSMEM_HIDDEN;
void *osmem_os_remap(void *addr, size_t old_len, size_t new_len) OSMEM_HIDDEN;
void osmem_os_release(void *addr, size_t len) OSMEM_HIDDEN;
/* Asks for transparent huge pages where [ADDR, ADDR+LEN) is faulted in
   from now on; false when the kernel has none to give. */
bool osmem_os_advise_huge(void *addr, size_t len) OSMEM_HIDDEN;

#endif /* OSMEM_INTERNAL_H */
