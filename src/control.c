/*
 * control.c - the program's say over the allocator's settings at run
 * time: os_mallopt.  (os_malloc_trim, which gives memory back now, is in
 * reclaim.c, beside the last resort before ENOMEM that does the same.)
 *
 * SPDX-License-Identifier: MIT
 */
#include <osmem.h>

#include "arena.h"
#include "cache.h"
#include "init.h"
#include "mapped.h"

/* Settings that shape what an arena or a thread cache is made with: they
   may change only while no arena has been handed out, that is before the
   first allocation of a block below the mmap threshold. */
static bool before_first_allocation(void)
{
	return osmem_arena_count() == 0;
}

static void set(size_t *setting, size_t value)
{
	__atomic_store_n(setting, value, __ATOMIC_RELAXED);
}

OSMEM_PUBLIC int os_mallopt(int param, int value)
{
	osmem_ensure_started();
	if (value < 0)
		return 0;
	size_t v = (size_t)value;
	struct osmem_options *opt = &osmem_g.opt;
	switch (param) {
	case OSMEM_M_MMAP_THRESHOLD:
		/* A thread's inline paths serve the sizes of its exact lists
		   without looking at the threshold: once they may exist, the
		   threshold cannot go below them. */
		if (v > OSMEM_MMAP_THRESHOLD_MAX ||
		    (!before_first_allocation() && v <= CACHE_EXACT_MAX_PAYLOAD))
			return 0;
		set(&opt->mmap_threshold, v);
		return 1;
	case OSMEM_M_TRIM_THRESHOLD:
		set(&opt->trim_threshold, v);
		return 1;
	case OSMEM_M_TOP_PAD:
		if (v > OSMEM_MMAP_THRESHOLD_MAX)
			return 0;
		set(&opt->top_pad, v);
		return 1;
	case OSMEM_M_MAP_CACHE:
		osmem_mapped_set_cache_limit(v, v);
		return 1;
	case OSMEM_M_CHECK:
		if (v > 2 || !before_first_allocation())
			return 0;
		__atomic_store_n(&opt->check_level, (int)v, __ATOMIC_RELAXED);
		return 1;
	case OSMEM_M_ARENAS:
		if (v < 1 || v > OSMEM_ARENAS_MAX || !before_first_allocation())
			return 0;
		set(&opt->arenas, v);
		return 1;
	case OSMEM_M_HUGE_GROW:
		set(&opt->huge_grow, v);
		return 1;
	case OSMEM_M_CACHE_MAX:
		if (!before_first_allocation())
			return 0;
		set(&opt->cache_max, v);
		return 1;
	default:
		return 0;
	}
}
