/*
 * t-random.c - a million random operations, every result checked.
 *
 * os_malloc, os_calloc, os_realloc (to a size, from NULL, to 0) and
 * os_free on up to 1024 live blocks, sizes log-uniform from 0 to 1 MiB.
 * Every block carries a pattern keyed by its id (in full for small blocks,
 * at its head, its tail and at regular strides for large ones), checked
 * before every resize and free, and across resizes for the bytes that must
 * survive; os_calloc blocks must read zero.  Every block must be aligned
 * and must not overlap any other live block (kept in an address-sorted
 * table).  Every few thousand steps the heap is walked (hv_verify), and
 * every live block is looked up in it: blocks below the mmap threshold are
 * used heap blocks big enough for their size, larger ones are not on the
 * heap at all.  The run happens on a thread of its own; once it has exited
 * and everything is freed, no used block may remain on the heap.
 *
 * The seed is printed; OSMEM_TEST_SEED repeats a run, OSMEM_TEST_OPS
 * changes its length.
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

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

enum {
	SLOTS = 1024,
	VERIFY_EVERY = 4096,   /* steps between heap walks */
	LOOKUP_EVERY = 65536,  /* steps between full lookups of live blocks */
	HEAD = 1024,           /* bytes patterned at the start of every block */
	TAIL = 256,            /* and at its end */
	STRIDE = 64 * 1024,    /* and a window every STRIDE bytes */
	WINDOW = 64,
	ZERO_FULL = 16 * 1024, /* os_calloc blocks up to this are checked in full */
	MAX_DIAG = 10,
};

struct slot {
	unsigned char *p;
	size_t n;
	uint64_t id;
	bool live;
};

struct stats {
	unsigned long long ops, mallocs, callocs, reallocs, frees, realloc_null, realloc_zero;
	unsigned long long nulls, misaligned, damaged, not_zero, overlaps, misplaced, walks,
		bad_walks, lookups;
};

static struct slot slots[SLOTS];
static struct stats st;
static unsigned long long ops_wanted = 1000000;
static uint64_t seed;
static int diags;
static size_t thr;

static void complain(const char *what, unsigned long long op, const struct slot *s, size_t at)
{
	if (diags++ < MAX_DIAG)
		tap_diag("step %llu: %s (block id %llu, %zu bytes at %p, offset %zu)", op, what,
		         (unsigned long long)s->id, s->n, (void *)s->p, at);
}

/* ---- the patterned parts of a block ------------------------------------ */

/* Calls FN on every patterned range of a block of N bytes, clipped to
   [0, LIMIT). */
static size_t for_ranges(size_t n, size_t limit, const struct slot *s,
                         size_t (*fn)(const struct slot *, size_t, size_t))
{
	size_t end = n < limit ? n : limit;
	size_t bad;
#define RANGE(a, b)                                                  \
	do {                                                         \
		size_t lo_ = (a), hi_ = (b) < end ? (b) : end;       \
		if (lo_ < hi_ && (bad = fn(s, lo_, hi_)) != TU_NONE) \
			return bad;                                  \
	} while (0)
	RANGE(0, HEAD);
	if (n > HEAD) {
		for (size_t w = STRIDE; w + WINDOW <= n; w += STRIDE)
			RANGE(w, w + WINDOW);
		RANGE(n - (n - HEAD < TAIL ? n - HEAD : TAIL), n);
	}
#undef RANGE
	return TU_NONE;
}

static size_t fill_range(const struct slot *s, size_t lo, size_t hi)
{
	tu_fill(s->p, lo, hi, s->id);
	return TU_NONE;
}

static size_t check_range(const struct slot *s, size_t lo, size_t hi)
{
	return tu_check(s->p, lo, hi, s->id);
}

static size_t zero_range(const struct slot *s, size_t lo, size_t hi)
{
	size_t at = tu_nonzero(s->p + lo, hi - lo);
	return at == TU_NONE ? TU_NONE : lo + at;
}

/* ---- live blocks by address --------------------------------------------- */

struct span {
	uintptr_t lo, hi;
};
static struct span by_addr[SLOTS];
static size_t nlive;

static size_t lower_bound(uintptr_t lo)
{
	size_t a = 0, b = nlive;
	while (a < b) {
		size_t m = (a + b) / 2;
		if (by_addr[m].lo < lo)
			a = m + 1;
		else
			b = m;
	}
	return a;
}

/* Adds [P, P + max(N, 1)); false if it overlaps a live block. */
static bool track(const void *p, size_t n)
{
	uintptr_t lo = (uintptr_t)p, hi = lo + (n ? n : 1);
	size_t i = lower_bound(lo);
	bool clash = (i > 0 && by_addr[i - 1].hi > lo) || (i < nlive && by_addr[i].lo < hi);
	memmove(&by_addr[i + 1], &by_addr[i], (nlive - i) * sizeof(by_addr[0]));
	by_addr[i] = (struct span){ lo, hi };
	nlive++;
	return !clash;
}

static void untrack(const void *p)
{
	size_t i = lower_bound((uintptr_t)p);
	if (i < nlive && by_addr[i].lo == (uintptr_t)p) {
		memmove(&by_addr[i], &by_addr[i + 1], (nlive - i - 1) * sizeof(by_addr[0]));
		nlive--;
	}
}

/* ---- checks against the heap --------------------------------------------- */

static struct hv_block heap_blocks[1 << 17];
static struct tu_span heap_spans[1 << 17];

/* Every live block is where it belongs: a used heap block of at least its
   size below the mmap threshold, off the heap at and above it. */
static void lookup_all(unsigned long long op)
{
	size_t nb = hv_blocks(heap_blocks, sizeof(heap_blocks) / sizeof(heap_blocks[0]));
	if (nb > sizeof(heap_blocks) / sizeof(heap_blocks[0]))
		return; /* too many to look at this time */
	/* Chunks are 16-byte aligned: bit 0 of lo marks a free one. */
	for (size_t i = 0; i < nb; i++)
		heap_spans[i] = (struct tu_span){ ((uintptr_t)heap_blocks[i].payload - 16) |
		                                          (heap_blocks[i].is_free ? 1u : 0u),
		                                  (uintptr_t)heap_blocks[i].payload - 16 +
		                                          heap_blocks[i].size };
	/* Heap blocks never overlap one another either. */
	if (tu_first_overlap(heap_spans, nb) != TU_NONE) {
		st.misplaced++;
		if (diags++ < MAX_DIAG)
			tap_diag("step %llu: heap blocks overlap", op);
	}
	st.lookups++;
	for (int k = 0; k < SLOTS; k++) {
		const struct slot *s = &slots[k];
		if (!s->live)
			continue;
		uintptr_t c = (uintptr_t)s->p - 16;
		size_t a = 0, b = nb;
		while (a < b) { /* last span starting at or below c */
			size_t m = (a + b) / 2;
			if (heap_spans[m].lo <= c)
				a = m + 1;
			else
				b = m;
		}
		bool inside = a > 0 && c < heap_spans[a - 1].hi;
		bool ok;
		if (s->n < thr)
			ok = inside && heap_spans[a - 1].lo == c && /* starts there, and used */
			     heap_spans[a - 1].hi - c >= s->n + 16;
		else
			ok = !inside;
		if (!ok) {
			st.misplaced++;
			complain(s->n < thr ? "small block is not a used heap block of its size"
			                    : "large block lies on the heap",
			         op, s, 0);
		}
	}
}

/* ---- the run ------------------------------------------------------------- */

static size_t pick_size(struct tu_rng *r)
{
	unsigned b = (unsigned)tu_rng_below(r, 21); /* 0, then [2^(b-1), 2^b) */
	if (b == 0)
		return tu_rng_below(r, 8) == 0 ? MiB : 0;
	size_t base = (size_t)1 << (b - 1);
	return base + (size_t)tu_rng_below(r, base);
}

static void got_block(struct slot *s, unsigned long long op, bool zeroed)
{
	if ((uintptr_t)s->p % alignof(max_align_t)) {
		st.misaligned++;
		complain("misaligned block", op, s, 0);
	}
	if (!track(s->p, s->n)) {
		st.overlaps++;
		complain("block overlaps a live block", op, s, 0);
	}
	if (zeroed) {
		size_t at = s->n <= ZERO_FULL ? tu_nonzero(s->p, s->n)
		                              : for_ranges(s->n, SIZE_MAX, s, zero_range);
		if (at != TU_NONE) {
			st.not_zero++;
			complain("os_calloc block not zero", op, s, at);
		}
	}
	for_ranges(s->n, SIZE_MAX, s, fill_range);
}

static void verify_block(struct slot *s, unsigned long long op, size_t limit)
{
	size_t at = for_ranges(s->n, limit, s, check_range);
	if (at != TU_NONE) {
		st.damaged++;
		complain("pattern damaged", op, s, at);
	}
}

static void *run(void *arg)
{
	(void)arg;
	struct tu_rng r;
	tu_rng_seed(&r, seed);
	uint64_t next_id = 1;
	for (unsigned long long op = 0; op < ops_wanted; op++) {
		struct slot *s = &slots[tu_rng_below(&r, SLOTS)];
		unsigned k = (unsigned)tu_rng_below(&r, 100);
		if (!s->live) {
			size_t n = pick_size(&r);
			bool zeroed = false;
			if (k < 60) {
				s->p = os_malloc(n);
				st.mallocs++;
			} else if (k < 85) {
				/* Split into a count and an element size both ways. */
				size_t sz = n && tu_rng_below(&r, 2) ? (size_t)1 << tu_rng_below(&r, 4) : 1;
				while (sz > 1 && n % sz)
					sz >>= 1;
				s->p = os_calloc(n / sz, sz);
				zeroed = true;
				st.callocs++;
			} else {
				s->p = os_realloc(NULL, n);
				st.realloc_null++;
			}
			if (!s->p) {
				st.nulls++;
				complain("allocation failed", op, s, n);
				continue;
			}
			s->n = n;
			s->id = next_id++;
			s->live = true;
			got_block(s, op, zeroed);
		} else if (k < 45) {
			size_t n = pick_size(&r);
			verify_block(s, op, SIZE_MAX);
			unsigned char *q = os_realloc(s->p, n ? n : 1);
			if (!q) {
				st.nulls++;
				complain("os_realloc failed", op, s, n);
				continue;
			}
			st.reallocs++;
			untrack(s->p);
			size_t keep = s->n < n ? s->n : n;
			s->p = q;
			/* The bytes that had to survive, as they were patterned. */
			verify_block(s, op, keep);
			s->n = n ? n : 1;
			got_block(s, op, false);
		} else if (k < 50) {
			verify_block(s, op, SIZE_MAX);
			untrack(s->p);
			if (os_realloc(s->p, 0) != NULL) {
				st.nulls++; /* counted as a wrong result */
				complain("os_realloc(p, 0) did not return NULL", op, s, 0);
			}
			st.realloc_zero++;
			s->live = false;
		} else {
			verify_block(s, op, SIZE_MAX);
			untrack(s->p);
			os_free(s->p);
			st.frees++;
			s->live = false;
		}
		if ((op + 1) % VERIFY_EVERY == 0) {
			const char *err = hv_verify();
			st.walks++;
			if (err) {
				st.bad_walks++;
				if (diags++ < MAX_DIAG)
					tap_diag("step %llu: heap walk: %s", op, err);
			}
		}
		if ((op + 1) % LOOKUP_EVERY == 0)
			lookup_all(op);
		st.ops++;
	}
	lookup_all(ops_wanted);
	for (int i = 0; i < SLOTS; i++)
		if (slots[i].live) {
			verify_block(&slots[i], ops_wanted, SIZE_MAX);
			untrack(slots[i].p);
			os_free(slots[i].p);
			slots[i].live = false;
		}
	return NULL;
}

int main(void)
{
	tap_diag("libosmem: random operations");
	seed = tu_seed("OSMEM_TEST_SEED");
	const char *o = getenv("OSMEM_TEST_OPS");
	if (o && *o)
		ops_wanted = strtoull(o, NULL, 10);
	thr = hv_mmap_threshold();

	pthread_t t;
	if (pthread_create(&t, NULL, run, NULL) != 0)
		tap_bail("pthread_create failed");
	pthread_join(t, NULL);

	ok(st.ops == ops_wanted && ops_wanted >= 1000000,
	   "%llu operations: %llu os_malloc, %llu os_calloc, %llu os_realloc(NULL), %llu resizes, "
	   "%llu os_realloc(p, 0), %llu os_free", st.ops, st.mallocs, st.callocs, st.realloc_null,
	   st.reallocs, st.realloc_zero, st.frees);
	ok(st.nulls == 0, "every request was granted as the contract says (%llu not)", st.nulls);
	ok(st.misaligned == 0, "every block aligned (%llu not)", st.misaligned);
	ok(st.damaged == 0, "every pattern intact before each resize and free, and the kept bytes "
	   "after each resize (%llu damaged)", st.damaged);
	ok(st.not_zero == 0, "every os_calloc block read zero (%llu did not)", st.not_zero);
	ok(st.overlaps == 0, "no block overlapped another live block (%llu did)", st.overlaps);
	ok(st.bad_walks == 0 && st.walks >= st.ops / VERIFY_EVERY,
	   "the heap walked clean %llu times (%llu walks failed)", st.walks - st.bad_walks,
	   st.bad_walks);
	ok(st.misplaced == 0 && st.lookups > 0,
	   "%llu times every live block was where it belongs (%llu misplaced)", st.lookups,
	   st.misplaced);
	const char *err = hv_verify();
	ok(err == NULL, "heap consistent at the end%s%s", err ? ": " : "", err ? err : "");
	size_t nb = hv_blocks(heap_blocks, sizeof(heap_blocks) / sizeof(heap_blocks[0])), used = 0;
	for (size_t i = 0; i < nb && i < sizeof(heap_blocks) / sizeof(heap_blocks[0]); i++)
		if (!heap_blocks[i].is_free)
			used++;
	is_int(used, 0, "no used block left on the heap once everything is freed");
	if (diags)
		tap_diag("to repeat: OSMEM_TEST_SEED=%llu", (unsigned long long)seed);
	return tap_done();
}
