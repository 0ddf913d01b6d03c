/*
 * arena.c - which arena a thread allocates from, and remote frees.
 *
 * Each thread allocates from an arena of its own whenever it can: a
 * thread is given, on its first heap operation, the first arena that no
 * thread uses (the program's first thread gets the main one, and with it
 * the brk heap), and keeps it.  An arena whose thread has exited is
 * adopted by the next thread that needs one, with what it holds.  Arenas
 * are made on demand, up to ARENAS_PER_CPU per CPU (or OSMEM_ARENAS);
 * once every one has a user, further threads share them in turn, under
 * their locks.  Arenas are never destroyed.
 *
 * A thread takes its own arena's lock only on its slow paths (it is then
 * uncontended, as nobody else allocates there), and blocks it frees into
 * arenas that others use travel on their remote lists (arena.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "arena.h"

#include <unistd.h>

struct arena osmem_arenas[ARENA_MAX] = {
	[0] = { .lock = OSMEM_LOCK_INIT, .segs = { .owner = &osmem_arenas[0], .uses_brk = true } },
};

__thread struct arena *osmem_my_arena;

static osmem_lock_t choose_lock = OSMEM_LOCK_INIT;
static unsigned arenas_ready;  /* arenas 0 .. arenas_ready-1 are in use */
static unsigned arenas_limit;  /* how many there may be; set on first use */
static unsigned next_shared;   /* the arena the next thread shares, once
                                  every arena has a user */

static unsigned limit_for_this_machine(void)
{
	if (osmem_g.opt.arenas)
		return (unsigned)osmem_g.opt.arenas;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (cpus < 1)
		cpus = 1;
	unsigned n = (unsigned)cpus * ARENAS_PER_CPU;
	return n < ARENA_MAX ? n : ARENA_MAX;
}

/* How many threads each arena was handed to and still has: a thread with
   a cache gives its arena back when it exits (osmem_arena_leave); one
   without (OSMEM_CACHE_MAX=0, or no way to learn of its exit) keeps it for
   good.  A new thread gets an arena no thread has, or a new one, and
   shares only past the limit.  Guarded by CHOOSE_LOCK. */
static unsigned handed[ARENA_MAX];

struct arena *osmem_arena_choose(void)
{
	osmem_ensure_init();
	osmem_lock(&choose_lock);
	if (!arenas_limit)
		arenas_limit = limit_for_this_machine();
	struct arena *h = NULL;
	for (unsigned i = 0; i < arenas_ready && !h; i++)
		if (!handed[i])
			h = &osmem_arenas[i];
	if (!h && arenas_ready < arenas_limit) {
		/* Arenas are made in index order; all but the main one start
		   as zeros, unlocked and without brk. */
		h = &osmem_arenas[arenas_ready];
		osmem_heap_init(h);
		__atomic_store_n(&arenas_ready, arenas_ready + 1, __ATOMIC_RELEASE);
	}
	if (!h) {
		h = &osmem_arenas[next_shared];
		next_shared = (next_shared + 1) % arenas_ready;
	}
	handed[h - osmem_arenas]++;
	osmem_unlock(&choose_lock);
	osmem_my_arena = h;
	return h;
}

/* Users are counted under the choosing lock, so that two new threads are
   not both given the one free arena. */
void osmem_arena_join(struct arena *h)
{
	osmem_lock(&choose_lock);
	__atomic_store_n(&h->users, h->users + 1, __ATOMIC_RELAXED);
	osmem_unlock(&choose_lock);
}

void osmem_arena_leave(struct arena *h)
{
	osmem_lock(&choose_lock);
	unsigned users = h->users - 1;
	__atomic_store_n(&h->users, users, __ATOMIC_RELAXED);
	handed[h - osmem_arenas]--;
	osmem_unlock(&choose_lock);
	/* Blocks pushed while it was leaving would otherwise wait for the
	   next user.  And an arena left without threads does now the page
	   work its frees left waiting: nobody may come to reuse the space. */
	arena_lock(h);
	osmem_arena_collect(h);
	if (!users)
		osmem_heap_settle(h);
	arena_unlock(h);
}

void osmem_arena_give_run(struct arena *h, struct chunk *first, struct chunk *last)
{
	if (!__atomic_load_n(&h->users, __ATOMIC_RELAXED)) {
		arena_lock(h);
		for (struct chunk *c = first, *next;; c = next) {
			uint64_t *w = (uint64_t *)chunk_payload(c);
			next = c == last ? NULL : arena_remote_open(&w[0], w[0]);
			__atomic_store_n(&w[1], 0, __ATOMIC_RELAXED);
			osmem_heap_release_at_once(h, c, "os_free");
			if (!next)
				break;
		}
		arena_unlock(h);
		return;
	}
	/* One compare-and-swap for the whole run: its last chunk links to
	   the head found. */
	uint64_t *tail = (uint64_t *)chunk_payload(last);
	uint64_t head = __atomic_load_n(&h->remote, __ATOMIC_RELAXED);
	do
		tail[0] = arena_remote_seal(&tail[0], (struct chunk *)(uintptr_t)head);
	while (!__atomic_compare_exchange_n(&h->remote, &head, (uint64_t)(uintptr_t)first, true,
	                                    __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

void osmem_arena_link_remote(struct chunk *c, struct chunk *next)
{
	uint64_t *w = (uint64_t *)chunk_payload(c);
	w[0] = arena_remote_seal(&w[0], next);
}

struct chunk *osmem_arena_remote_next(const struct chunk *c)
{
	const uint64_t *w = (const uint64_t *)chunk_payload(c);
	return arena_remote_open(&w[0], w[0]);
}

/* Checks each chunk of remote list C, taken off its arena, and links
   them through word 0 with plain pointers, in the list's order, the freed
   marks cleared as the heap wants them. */
static struct chunk *open_remote_list(struct chunk *c)
{
	struct chunk *list = NULL, **tail = &list;
	while (c) {
		const struct segment *seg = NULL;
		uint64_t v;
		struct chunk *next = osmem_arena_remote_step(c, &seg, &v);
		uint64_t *w = (uint64_t *)chunk_payload(c);
		__atomic_store_n(&w[1], 0, __ATOMIC_RELAXED);
		w[0] = 0;
		*tail = c;
		tail = (struct chunk **)&w[0];
		c = next;
	}
	return list;
}

void osmem_arena_collect_slow(struct arena *h)
{
	struct chunk *c = (struct chunk *)(uintptr_t)__atomic_exchange_n(&h->remote, 0, __ATOMIC_ACQUIRE);
	/* Frees from other threads arrive interleaved: sorted, those freed
	   side by side join up again. */
	osmem_heap_release_list(h, open_remote_list(c), "os_free");
}

struct chunk *osmem_arena_take_remote(struct arena *h)
{
	/* Under the lock, which osmem_arena_remote_totals holds while it
	   walks the list; once taken, the list is the caller's alone. */
	arena_lock(h);
	struct chunk *c = (struct chunk *)(uintptr_t)__atomic_exchange_n(&h->remote, 0, __ATOMIC_ACQUIRE);
	arena_unlock(h);
	return c;
}

/* Each list is walked under its arena's lock, so that no user takes it
   meanwhile; pushes only add to its front. */
void osmem_arena_remote_totals(size_t *bytes, size_t *blocks)
{
	*bytes = 0;
	*blocks = 0;
	for (unsigned i = 0; i < osmem_arena_count(); i++) {
		struct arena *h = &osmem_arenas[i];
		arena_lock(h);
		struct chunk *c = (struct chunk *)(uintptr_t)__atomic_load_n(&h->remote, __ATOMIC_ACQUIRE);
		for (; c; c = arena_remote_open((uint64_t *)chunk_payload(c), *(uint64_t *)chunk_payload(c))) {
			uint64_t v;
			unseal(&c->tag, &v);
			*bytes += tag_size(v);
			++*blocks;
		}
		arena_unlock(h);
	}
}

unsigned osmem_arena_count(void)
{
	return __atomic_load_n(&arenas_ready, __ATOMIC_ACQUIRE);
}

/* Arenas are always locked in index order, and an arena's lock is never
   taken while one of a higher index is held, so this cannot deadlock.
   The choosing lock comes first: no arena is made while all are held. */
void osmem_arenas_lock_all(void)
{
	osmem_lock(&choose_lock);
	for (unsigned i = 0; i < arenas_ready; i++)
		arena_lock(&osmem_arenas[i]);
}

void osmem_arenas_unlock_all(void)
{
	for (unsigned i = arenas_ready; i--;)
		arena_unlock(&osmem_arenas[i]);
	osmem_unlock(&choose_lock);
}

void osmem_arenas_reset_after_fork(struct arena *mine)
{
	osmem_lock_reset(&choose_lock);
	osmem_lock_reset(&osmem_segments.lock);
	for (unsigned i = 0; i < arenas_ready; i++) {
		osmem_lock_reset(&osmem_arenas[i].lock);
		osmem_arenas[i].users = &osmem_arenas[i] == mine;
		/* Only the thread that forked lives on, with its arena. */
		handed[i] = &osmem_arenas[i] == osmem_my_arena;
	}
}
