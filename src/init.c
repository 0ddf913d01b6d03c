/*
 * init.c - starting what reaches every layer: the fork handlers, which
 * take every lock of every layer, and the key that tells the thread
 * caches when their threads exit.
 *
 * The entry points start it on their slow paths, before anything else is
 * done (osmem_ensure_started); the settings below it start themselves.
 *
 * SPDX-License-Identifier: MIT
 */
#include "init.h"

#include "arena.h"
#include "cache.h"
#include "mapped.h"

#include <pthread.h>

bool osmem_started;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

/* Fork: take every lock so that no other thread holds one at the moment of
   the fork, and in the child make them usable again.  The segment table's
   lock is only ever taken inside an arena's, so holding every arena is
   enough for it to be free. */
static void fork_prepare(void)
{
	osmem_mapped_lock();
	osmem_arenas_lock_all();
	osmem_cache_fork_prepare();
}

static void fork_parent(void)
{
	osmem_cache_fork_parent();
	osmem_arenas_unlock_all();
	osmem_mapped_unlock();
}

static void fork_child(void)
{
	osmem_arenas_reset_after_fork(osmem_cache_fork_child());
	osmem_mapped_after_fork_child();
}

void osmem_start_slow(void)
{
	osmem_ensure_init();
	pthread_mutex_lock(&start_lock);
	if (!osmem_started) {
		osmem_cache_init();
		pthread_atfork(fork_prepare, fork_parent, fork_child);
		__atomic_store_n(&osmem_started, true, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&start_lock);
}
