/*
 * tutil.h - helpers shared by libosmem's C tests: a seeded PRNG, data
 * patterns keyed by a block id, page residency, and test points checked in
 * a forked child (for a fresh heap, resource limits or a crash that must
 * not take the whole program down).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_TUTIL_H
#define OSMEM_TUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "heapview.h"

/* ---- test points that also work in a child --------------------------- */

/* Like tap_ok, but inside tu_child() the result travels to the parent,
   which records it as its own test point. */
bool t_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void t_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* N test points skipped for reason WHY (which must not hold a newline). */
void t_skip(int n, const char *why);
#define t_is(got, want, name) \
	t_ok((long long)(got) == (long long)(want), "%s (got %lld, want %lld)", (name), \
	     (long long)(got), (long long)(want))
#define t_null(err, name) t_ok((err) == NULL, "%s%s%s", (name), (err) ? ": " : "", \
                               (err) ? (err) : "")

/* Runs FN(ARG) in a forked child.  Every t_ok there becomes a test point
   of the parent prefixed with NAME, followed by one more point saying the
   child exited with status 0 (a crash, an abort or a hang of more than
   TIMEOUT seconds fails it).  Returns true when the child and all its
   points passed. */
bool tu_child(const char *name, unsigned timeout, void (*fn)(void *), void *arg);
/* True inside tu_child. */
bool tu_in_child(void);

/* Forks, runs FN(ARG) in the child (exit status = its return value), and
   returns the wait status, or -1 if the child could not be started. */
int tu_fork_wait(int (*fn)(void *), void *arg, unsigned timeout);

/* N, hidden from the compiler, so that absurd sizes passed on purpose do
   not trip its allocation-size warnings. */
static inline size_t tu_opaque(size_t n)
{
	volatile size_t v = n;
	return v;
}

/* ---- pseudo-random numbers ------------------------------------------- */

/* xoshiro256**, seeded through splitmix64. */
struct tu_rng {
	uint64_t s[4];
};
void tu_rng_seed(struct tu_rng *r, uint64_t seed);
uint64_t tu_rng_next(struct tu_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t tu_rng_below(struct tu_rng *r, uint64_t n);
/* The seed from environment variable VAR (decimal or 0x hex), else one
   drawn from the clock and pid; printed as a TAP comment either way. */
uint64_t tu_seed(const char *var);
uint64_t tu_mix64(uint64_t x);

/* ---- data patterns ---------------------------------------------------- */

/* Byte I of the pattern of block ID (any I: the pattern is a function of
   the absolute offset, so a moved or resized block can be checked). */
static inline uint8_t tu_pattern_byte(uint64_t id, size_t i)
{
	uint64_t w = tu_mix64(id ^ ((uint64_t)(i >> 3) * 0x9e3779b97f4a7c15ull));
	return (uint8_t)(w >> ((i & 7u) * 8u));
}
/* Writes bytes [FROM, TO) of ID's pattern at P + FROM. */
void tu_fill(void *p, size_t from, size_t to, uint64_t id);
/* The first offset in [FROM, TO) where P differs from ID's pattern, or
   (size_t)-1 when all match. */
size_t tu_check(const void *p, size_t from, size_t to, uint64_t id);
/* The first non-zero offset of P[0..N), or (size_t)-1. */
size_t tu_nonzero(const void *p, size_t n);
#define TU_NONE ((size_t)-1)

/* ---- memory as the kernel sees it ------------------------------------- */

/* Whether the page holding P is mapped at all (mincore). */
bool tu_page_mapped(const void *p);
/* How many of the pages in [P, P+LEN) (widened to whole pages) are resident;
   -1 when some page is not mapped. */
long tu_resident_pages(const void *p, size_t len);
/* Whether /proc/self/maps lists a mapping containing P. */
bool tu_in_proc_maps(const void *p);
/* The process's total virtual memory in bytes (/proc/self/statm), 0 if
   unknown. */
size_t tu_vm_bytes(void);
/* The process's resident memory in bytes (/proc/self/statm), 0 if
   unknown. */
size_t tu_rss_bytes(void);
/* Lowers RLIMIT_AS to the current size plus SLACK bytes (children only);
   false if it cannot. */
bool tu_limit_address_space(size_t slack);
/* True when the test runs under valgrind, which needs address space of its
   own beside the program's: a test that lowers RLIMIT_AS and then uses up
   what is left would starve it. */
bool tu_under_valgrind(void);

/* ---- block sets ---------------------------------------------------------- */

struct tu_span {
	uintptr_t lo, hi; /* [lo, hi) */
};
/* Sorts SPANS and returns the index of the first that overlaps its
   predecessor, or (size_t)-1 when none overlap. */
size_t tu_first_overlap(struct tu_span *spans, size_t n);

/* ---- heap layouts ------------------------------------------------------- */

/* Allocates N blocks of SIZE bytes that follow each other directly on the
   heap (each block's chunk starts where the previous one ends), freeing the
   blocks it had to skip.  False when it cannot find such a run. */
bool tu_alloc_run(void **out, size_t n, size_t size);

/* The last block of the newest heap segment (the top of the heap). */
bool tu_top_block(struct hv_block *out);
/* The segment holding address P; false if none. */
bool tu_segment_of(const void *p, struct hv_segment *out);
/* The largest free heap block, 0 if none. */
size_t tu_largest_free(void);

/* write(2) all of [P, P+N) to FD, retrying after interruptions. */
void tu_write_all(int fd, const char *p, size_t n);

/* ---- os_malloc_info's document ---------------------------------------- */

/* The document os_malloc_info writes, in memory the C library owns (free
   it with free), and its return value and errno in *RC and *ERR; NULL
   when no memory stream can be opened. */
char *tu_info_document(int *rc, int *err);
/* The number after the first "KEY": at or after FROM, or (size_t)-1 (also
   when FROM is NULL). */
size_t tu_number_after(const char *from, const char *key);

#endif
