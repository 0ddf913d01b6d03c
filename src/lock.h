/*
 * lock.h - the allocator's mutex: one word and a futex.
 *
 * The heap lock is taken once per heap operation or thread-cache batch,
 * so its uncontended cost matters: here it is one compare-and-swap to take
 * and one exchange to release.  A waiter sleeps in the kernel instead of
 * spinning, which matters on a machine with fewer cores than threads.
 * The states: 0 free, 1 held, 2 held with (possibly) sleeping waiters.
 * After fork() the child, which has one thread, simply resets the word.
 *
 * A process that has never started a second thread needs no lock at all,
 * and the two atomic instructions are a good part of a heap operation's
 * cost; the C library says when that is so.  Only the one thread can
 * start another, and not while it is inside the allocator, so "single"
 * cannot turn false between a lock and its unlock.  It might turn true
 * again there (should the C library ever notice that threads have
 * exited), so unlock does not trust it: a word that is held is released
 * whatever the flag says.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_LOCK_H
#define OSMEM_LOCK_H

#include "internal.h"

typedef struct {
	int state;
} osmem_lock_t;

#define OSMEM_LOCK_INIT { 0 }

void osmem_lock_wait(osmem_lock_t *l) OSMEM_HIDDEN;
void osmem_lock_wake(osmem_lock_t *l) OSMEM_HIDDEN;

static inline void osmem_lock(osmem_lock_t *l)
{
	if (osmem_single_threaded())
		return;
	int expected = 0;
	if (unlikely(!__atomic_compare_exchange_n(&l->state, &expected, 1, false,
	                                          __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)))
		osmem_lock_wait(l);
}

static inline void osmem_unlock(osmem_lock_t *l)
{
	if (osmem_single_threaded() && !__atomic_load_n(&l->state, __ATOMIC_RELAXED))
		return;
	if (unlikely(__atomic_exchange_n(&l->state, 0, __ATOMIC_RELEASE) == 2))
		osmem_lock_wake(l);
}

static inline void osmem_lock_reset(osmem_lock_t *l)
{
	__atomic_store_n(&l->state, 0, __ATOMIC_RELAXED);
}

#endif /* OSMEM_LOCK_H */
