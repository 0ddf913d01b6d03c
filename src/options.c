/*
 * options.c - the OSMEM_* tunables, read once from the environment.
 *
 * Parsing never allocates and never fails: a malformed value gets one line
 * of warning on standard error and the default.
 *
 * SPDX-License-Identifier: MIT
 */
#include "internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#define KiB ((size_t)1024)

/* Parses a byte count with an optional k, m or g suffix (powers of 1024). */
static bool parse_size(const char *s, size_t *out)
{
	size_t v = 0;
	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (SIZE_MAX - 9) / 10)
			return false;
		v = v * 10 + (size_t)(*s - '0');
	}
	unsigned shift = 0;
	switch (*s) {
	case 'k': case 'K': shift = 10; s++; break;
	case 'm': case 'M': shift = 20; s++; break;
	case 'g': case 'G': shift = 30; s++; break;
	default: break;
	}
	if (*s != '\0' || (shift && v > (SIZE_MAX >> shift)))
		return false;
	*out = v << shift;
	return true;
}

static void warn_ignored(const char *name, const char *value)
{
	struct osmem_line l = { .len = 0 };
	osmem_line_put(&l, "osmem: ignoring malformed or out-of-range ");
	osmem_line_put(&l, name);
	osmem_line_put(&l, "=");
	osmem_line_put(&l, value);
	osmem_line_put(&l, "; using the default");
	osmem_line_write(&l);
}

static void read_size(const char *name, size_t *value, size_t min, size_t max)
{
	const char *s = getenv(name);
	size_t v;
	if (!s)
		return;
	if (!parse_size(s, &v) || v < min || v > max) {
		warn_ignored(name, s);
		return;
	}
	*value = v;
}

static void read_level(const char *name, int *value, int max)
{
	const char *s = getenv(name);
	if (!s)
		return;
	if (s[0] < '0' || s[0] > '0' + max || s[1] != '\0') {
		warn_ignored(name, s);
		return;
	}
	*value = s[0] - '0';
}

void osmem_options_read(struct osmem_options *opt)
{
	opt->mmap_threshold = 128 * KiB;
	opt->trim_threshold = 128 * KiB;
	opt->top_pad = 64 * KiB;
	/* The bytes of freed mappings that may stay in memory (mapcache.c
	   keeps more address space, cold).  A program that keeps four blocks
	   of 5 to 25 MiB (large-xl, against glibc in the same runs, medians
	   of 7): with 48 MiB, 1.18 times glibc's speed at 0.85 times its peak
	   RSS; 52 MiB, 1.25 at 0.94; 56 MiB, 1.3 at 1.06; 64 MiB, 1.95 at
	   1.82, as the kept pages of 64 MiB are mostly in memory.  52 leaves
	   room on both sides; it was 64 MiB, glibc's largest trim threshold,
	   before the cache kept cold ranges. */
	opt->map_cache = 52 * KiB * KiB;
	opt->map_cache_lifetime_ns = 1000000000ll;
	/* A block realloc grows is being filled, so faulting it in by 2 MiB
	   rather than 4 KiB saves 511 traps in 512 at no cost in memory
	   beyond its last partly written 2 MiB (mapped.c). */
	opt->huge_grow = 8 * KiB * KiB;
	opt->check_level = 1;
	opt->print_stats = false;
	opt->arenas = 0;
	/* The largest payload the thread caches hold (CACHE_MAX_PAYLOAD in
	   cache.h); larger values are capped there. */
	opt->cache_max = 32 * KiB;

	read_size("OSMEM_MMAP_THRESHOLD", &opt->mmap_threshold, 0, OSMEM_MMAP_THRESHOLD_MAX);
	read_size("OSMEM_TRIM_THRESHOLD", &opt->trim_threshold, 0, (size_t)PTRDIFF_MAX);
	read_size("OSMEM_TOP_PAD", &opt->top_pad, 0, OSMEM_MMAP_THRESHOLD_MAX);
	read_size("OSMEM_MAP_CACHE", &opt->map_cache, 0, (size_t)PTRDIFF_MAX);
	read_size("OSMEM_HUGE_GROW", &opt->huge_grow, 0, (size_t)PTRDIFF_MAX);
	read_size("OSMEM_ARENAS", &opt->arenas, 1, OSMEM_ARENAS_MAX);
	read_size("OSMEM_CACHE_MAX", &opt->cache_max, 0, (size_t)PTRDIFF_MAX);
	read_level("OSMEM_CHECK", &opt->check_level, 2);
	int stats = 0;
	read_level("OSMEM_STATS", &stats, 1);
	opt->print_stats = stats == 1;
	/* Far above the descriptors a program opens first, which some
	   programs count on being 3, 4, ...  When standard error is closed
	   already, the copy fails and the summary goes nowhere, rather than
	   into whatever file later takes descriptor 2. */
	opt->stats_fd = opt->print_stats ? fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100) : -1;
}
