/*
 * realloc.c - growing blocks with realloc.  One call is one operation.
 *
 * realloc-grow: one block grows from 16 B to 64 MiB by an eighth at a
 * time, as a growing buffer would; every page of the new part is written.
 * This is done 8 times, and the first malloc and last free of each round
 * are part of the time.
 *
 * realloc-strings: 10000 strings, visited in turn, each growing by 1 to
 * 8 bytes per visit for 200 rounds, each append a realloc to exactly the
 * new length.  Neighbours are live, so growing in place is the exception.
 *
 * Both check that realloc kept the contents.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"

#include <string.h>

#define GROW_FROM ((size_t)16)
#define GROW_TO ((size_t)64 << 20)
#define PAGE 4096u

static _Noreturn void lost_contents(const char *where)
{
	fprintf(stderr, "bench: %s: realloc did not keep the contents\n", where);
	exit(3);
}

void bench_realloc_grow(long arg, double scale, struct bench_result *res)
{
	(void)arg;
	uint64_t rounds = bench_scaled(8, scale), ops = 0;
	uint64_t t0 = bench_now_ns();
	for (uint64_t round = 0; round < rounds; round++) {
		size_t size = GROW_FROM;
		char *p = BENCH_MALLOC(size);
		BENCH_CHECK(p, "realloc-grow", size);
		p[0] = 'a';
		p[size - 1] = 'z';
		while (size < GROW_TO) {
			size_t next = size + size / 8;
			if (next > GROW_TO)
				next = GROW_TO;
			char *q = BENCH_REALLOC(p, next);
			BENCH_CHECK(q, "realloc-grow", next);
			ops++;
			if (q[0] != 'a' || q[size - 1] != 'z')
				lost_contents("realloc-grow");
			q[size - 1] = 0;
			for (size_t off = size; off < next; off += PAGE)
				q[off] = 1;
			q[next - 1] = 'z';
			p = q;
			size = next;
		}
		BENCH_FREE(p);
	}
	res->ns = bench_now_ns() - t0;
	res->ops = ops;
}

#define STRINGS 10000
#define ROUNDS 200

void bench_realloc_strings(long arg, double scale, struct bench_result *res)
{
	(void)arg;
	static char *str[STRINGS];
	static size_t len[STRINGS];
	struct rng r;
	rng_seed(&r, 0x57a1);
	uint64_t rounds = bench_scaled(ROUNDS, scale);

	uint64_t t0 = bench_now_ns();
	for (uint64_t round = 0; round < rounds; round++)
		for (size_t i = 0; i < STRINGS; i++) {
			size_t add = rng_range(&r, 1, 8);
			char *s = BENCH_REALLOC(str[i], len[i] + add + 1);
			BENCH_CHECK(s, "realloc-strings", len[i] + add + 1);
			for (size_t k = 0; k < add; k++)
				s[len[i] + k] = (char)('a' + (len[i] + k + i) % 26);
			len[i] += add;
			s[len[i]] = '\0';
			str[i] = s;
		}
	res->ns = bench_now_ns() - t0;
	res->ops = rounds * STRINGS;

	for (size_t i = 0; i < STRINGS; i++) {
		for (size_t k = 0; k < len[i]; k++)
			if (str[i][k] != (char)('a' + (k + i) % 26))
				lost_contents("realloc-strings");
		BENCH_FREE(str[i]);
		str[i] = NULL;
		len[i] = 0;
	}
}
