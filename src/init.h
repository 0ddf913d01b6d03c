/*
 * init.h - starting the allocator from its entry points (init.c).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_INIT_H
#define OSMEM_INIT_H

#include "internal.h"

extern bool osmem_started OSMEM_HIDDEN;
void osmem_start_slow(void) OSMEM_HIDDEN;

/* Called by every entry point before it does anything but its inline
   fast path: the settings, the fork handlers and the thread-exit key are
   then in place. */
static inline void osmem_ensure_started(void)
{
	if (unlikely(!__atomic_load_n(&osmem_started, __ATOMIC_ACQUIRE)))
		osmem_start_slow();
}

#endif /* OSMEM_INIT_H */
