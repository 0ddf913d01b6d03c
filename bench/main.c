/*
 * main.c - runs one workload and prints one line about it.
 *
 *   bench-osmem WORKLOAD      (or bench-libc WORKLOAD)
 *   bench-osmem --list        the workloads, one per line, with their unit
 *
 * BENCH_SCALE in the environment multiplies every operation count (for
 * quick trials, or for running under valgrind).  The line printed is
 *
 *   workload=NAME impl=osmem|libc ops=N ns_per_op=X peak_rss_kib=N
 *     base_rss_kib=N [peak_live_kib=N rss_per_live=R] [malloc_from=FILE]
 *
 * where base_rss_kib is the resident size before the workload's first
 * allocation and,
 * for workloads that count their live bytes, rss_per_live is
 * (peak_rss - base_rss) / peak_live: what the allocator needed per byte
 * the program held at its peak, without the program's own image.  The
 * C library build also names the file that its malloc came from, so that
 * the runner can tell that an LD_PRELOAD really took effect.
 *
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE 1 /* dladdr */
#include "bench.h"

#include <dlfcn.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Does nothing but start the allocator: the baseline subtracted from
   instruction counts by callgrind.sh. */
static void bench_noop(long arg, double scale, struct bench_result *res)
{
	(void)arg;
	(void)scale;
	void *p = BENCH_MALLOC(1);
	BENCH_KEEP(p);
	BENCH_FREE(p);
	res->ops = 0;
}

static const struct workload {
	const char *name;
	bench_fn *fn;
	long arg;
	const char *unit;
} workloads[] = {
	{ "pairs-16", bench_pairs, 16, "malloc+free of 16 B" },
	{ "pairs-64", bench_pairs, 64, "malloc+free of 64 B" },
	{ "pairs-1k", bench_pairs, 1024, "malloc+free of 1 KiB" },
	{ "pairs-4k", bench_pairs, 4096, "malloc+free of 4 KiB" },
	{ "pairs-256k", bench_pairs, 256 * 1024, "malloc+free of 256 KiB" },
	{ "batch", bench_batch, 0, "free+malloc, 4096 live of 16 B-4 KiB" },
	{ "burst", bench_burst, 0, "malloc+free, bursts of 25-1600 of one size 16 B-1 KiB" },
	{ "realloc-grow", bench_realloc_grow, 0, "realloc, one block 16 B to 64 MiB by 1/8" },
	{ "realloc-strings", bench_realloc_strings, 0, "realloc, 10000 strings +1-8 B" },
	{ "calloc", bench_calloc, 0, "calloc+free of 256 B-4 KiB" },
	{ "threads-1", bench_batch, 1, "batch in 1 thread" },
	{ "threads-2", bench_batch, 2, "batch in 2 threads (total ops)" },
	{ "prodcons", bench_prodcons, 0, "block malloc'd by one thread, freed by another" },
	{ "xfree-1", bench_xfree, 1, "malloc+free, mixed lifetimes, 16 B-4 KiB, one thread" },
	{ "xfree", bench_xfree, 4, "the same in 4 threads, 3/8 freed by another (total ops)" },
	{ "frag", bench_frag, 0, "malloc or free, phased small/large" },
	{ "large", bench_large, 0, "malloc+free of 128 KiB-16 MiB, 3 pages touched" },
	{ "large-xl", bench_large_xl, 0, "free+malloc, 4 live of 5-25 MiB, 3 pages touched" },
	{ "noop", bench_noop, 0, NULL },
};

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_out_of_memory(const char *where, size_t n)
{
	fprintf(stderr, "bench: %s: allocation of %zu bytes failed\n", where, n);
	exit(2);
}

/* A field of /proc/self/status, in KiB (0 if it cannot be read). */
static long status_kib(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t len = strlen(field);
	long kib = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, len) == 0) {
			kib = strtol(line + len, NULL, 10);
			break;
		}
	fclose(f);
	return kib;
}

long bench_rss_kib(void)
{
	return status_kib("VmRSS:");
}

/* The peak resident size of this program: VmHWM, the high-water mark of
   its own address space.  Not getrusage's ru_maxrss, which Linux carries
   over execve from the process image that ran before (the shell that
   started this one), and which was then mostly that shell's size for the
   workloads that need little memory. */
static long peak_rss_kib(void)
{
	long kib = status_kib("VmHWM:");
	if (kib <= 0) {
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		kib = (long)ru.ru_maxrss;
	}
	return kib;
}

static double scale_from_env(void)
{
	const char *s = getenv("BENCH_SCALE");
	char *end;
	if (!s || !*s)
		return 1.0;
	double v = strtod(s, &end);
	if (*end || !(v > 0.0)) {
		fprintf(stderr, "bench: BENCH_SCALE must be a positive number, not '%s'\n", s);
		exit(1);
	}
	return v;
}

static int usage(const char *prog)
{
	fprintf(stderr, "usage: %s WORKLOAD | --list\n", prog);
	return 1;
}

int main(int argc, char **argv)
{
	const size_t count = sizeof(workloads) / sizeof(workloads[0]);
	if (argc != 2)
		return usage(argv[0]);
	if (strcmp(argv[1], "--list") == 0) {
		for (size_t i = 0; i < count; i++)
			if (workloads[i].unit)
				printf("%s\t%s\n", workloads[i].name, workloads[i].unit);
		return 0;
	}
	const struct workload *w = NULL;
	for (size_t i = 0; i < count; i++)
		if (strcmp(argv[1], workloads[i].name) == 0)
			w = &workloads[i];
	if (!w) {
		fprintf(stderr, "%s: no workload '%s' (see --list)\n", argv[0], argv[1]);
		return 1;
	}

	double scale = scale_from_env();
	struct bench_result res = { 0, 0, 0, bench_rss_kib() };
	w->fn(w->arg, scale, &res);
	long base_kib = res.base_rss_kib;

	long peak_kib = peak_rss_kib();
	double ns_per_op = res.ops ? (double)res.ns / (double)res.ops : 0.0;
	printf("workload=%s impl=%s ops=%llu ns_per_op=%.2f peak_rss_kib=%ld base_rss_kib=%ld",
	       w->name, BENCH_IMPL, (unsigned long long)res.ops, ns_per_op, peak_kib, base_kib);
	if (res.peak_live) {
		double grown = (double)(peak_kib - base_kib) * 1024.0;
		printf(" peak_live_kib=%zu rss_per_live=%.3f", res.peak_live / 1024,
		       grown / (double)res.peak_live);
	}
#ifndef BENCH_OSMEM
	Dl_info info;
	void *(*volatile which)(size_t) = malloc;
	if (dladdr((void *)which, &info) && info.dli_fname) {
		const char *base = strrchr(info.dli_fname, '/');
		printf(" malloc_from=%s", base ? base + 1 : info.dli_fname);
	}
#endif
	printf("\n");
	return 0;
}
