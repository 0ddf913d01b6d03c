/*
 * cache.c - the slow paths of the per-thread caches (see cache.h).
 *
 * Lists are bounded per class; a full list gives half of itself back to
 * the heap in one locked batch, an empty one fetches half a list's worth.
 * The cache itself is a heap chunk, found through one initial-exec TLS
 * pointer, and is returned when its thread exits.  A list may hold blocks
 * of several arenas (a thread frees what others allocated): each goes
 * back to its own arena.
 *
 * SPDX-License-Identifier: MIT
 */
#include "cache.h"
#include "arena.h"

#include <pthread.h>
#include <string.h>

/* Per-class bound: about 8 KiB of blocks, between 8 and 64 of them, so a
   thread holds at most about 520 KiB in its cache. */
static unsigned class_cap(unsigned cls)
{
	unsigned cap = 8192u / (unsigned)cache_class_size(cls);
	return cap < 8u ? 8u : cap > 64u ? 64u : cap;
}

__thread struct tcache *osmem_my_cache;

/* A cache must be emptied when its thread exits, or its blocks are lost
   to the heap.  A pthread key with a destructor says when; the key is
   made once, at initialisation.  A program may have taken every key by
   then (there are PTHREAD_KEYS_MAX): the C library's list of destructors
   for thread-local objects, which takes no key, is used instead.  It is
   not the first choice because adding to it allocates with the C
   library's malloc, which makes that malloc set up an arena (and reserve
   its address space) in every thread that uses libosmem.  Without either,
   threads go without caches rather than borrow a key that is not ours. */
static pthread_key_t cache_key;
static bool cache_key_made;
#ifdef HAVE___CXA_THREAD_ATEXIT_IMPL
int __cxa_thread_atexit_impl(void (*dtor)(void *), void *obj, void *dso_symbol);
extern void *__dso_handle __attribute__((__visibility__("hidden")));
#endif
/* Every live cache, for os_mallinfo; guarded by live_lock, which is never
   held together with an arena's lock. */
static struct tcache live_caches = { .next = &live_caches, .prev = &live_caches };
static osmem_lock_t live_lock = OSMEM_LOCK_INIT;

/* OSMEM_CHECK=2: a cached block's bytes past its two words hold the fill
   from its free until it is reused. */
static void fill_freed(struct chunk *c, unsigned cls)
{
	memset((char *)chunk_payload(c) + 16, OSMEM_FREED_FILL, cache_class_size(cls) - CHUNK_HEADER - 16);
}

static void verify_freed(struct chunk *c, unsigned cls)
{
	const unsigned char *p = (const unsigned char *)chunk_payload(c) + 16;
	for (size_t i = 0; i < cache_class_size(cls) - CHUNK_HEADER - 16; i++)
		if (p[i] != OSMEM_FREED_FILL)
			osmem_fatal("os_malloc", "write after free detected", chunk_payload(c));
}

static void push(struct tcache *t, unsigned cls, struct chunk *c)
{
	if (unlikely(osmem_g.opt.check_level > 1))
		fill_freed(c, cls);
	cache_push(t, cls, c);
}

/* Takes the first chunk of a non-empty list, checking that what the list
   says is a cached chunk of ours: a write after free shows up here.  The
   segment it lies in goes to *SEG. */
static struct chunk *pop(struct tcache *t, unsigned cls, const struct segment **seg)
{
	struct chunk *c = cache_open_next(&t->head[cls]);
	uint64_t *w = cache_words(c);
	if (((uintptr_t)c & (OSMEM_ALIGN - 1)) || !(*seg = heap_segment_of(w)) || !cache_holds(c))
		osmem_fatal("os_malloc", "corrupted thread cache (write after free?)", w);
	/* The link to the next block is checked before the block is handed
	   out, so that a write over it is blamed on this block. */
	struct chunk *next = cache_open_next(&w[0]);
	if (next && (((uintptr_t)next & (OSMEM_ALIGN - 1)) || !heap_segment_of(chunk_payload(next))))
		osmem_fatal("os_malloc", "corrupted thread cache (write after free?)", w);
	if (unlikely(osmem_g.opt.check_level > 1))
		verify_freed(c, cls);
	t->head[cls] = cache_seal_next(&t->head[cls], next);
	__atomic_store_n(&w[1], 0, __ATOMIC_RELAXED);
	cache_count_add(t, cls, -1);
	return c;
}

/* Returns the first N chunks of list CLS to their arenas, holding one
   arena's lock at a time and changing it only when the arena changes. */
static void drain(struct tcache *t, unsigned cls, unsigned n)
{
	struct arena *locked = NULL;
	while (n-- && t->count[cls]) {
		const struct segment *seg;
		struct chunk *c = pop(t, cls, &seg);
		if (seg->arena != locked) {
			if (locked)
				arena_unlock(locked);
			locked = seg->arena;
			arena_lock(locked);
		}
		osmem_heap_release(locked, c, "os_free");
	}
	if (locked)
		arena_unlock(locked);
}

static void cache_destroy(void *arg)
{
	struct tcache *t = arg;
	if (!cache_live(t))
		return;
	osmem_my_cache = CACHE_GONE;
	for (unsigned cls = 0; cls < CACHE_CLASSES; cls++)
		drain(t, cls, t->count[cls]);
	osmem_lock(&live_lock);
	t->prev->next = t->next;
	t->next->prev = t->prev;
	osmem_unlock(&live_lock);
	struct arena *h = osmem_segment_find((uintptr_t)chunk_of(t))->arena;
	arena_lock(h);
	osmem_heap_release(h, chunk_of(t), "os_free");
	arena_unlock(h);
}

void osmem_cache_init(void)
{
	cache_key_made = pthread_key_create(&cache_key, cache_destroy) == 0;
}

/* Arranges for T to be emptied when the calling thread exits; false when
   that cannot be done.  T is already the thread's cache: registering may
   allocate (under the drop-in, from libosmem), and that allocation is then
   served by T like any other. */
static bool watch_thread_exit(struct tcache *t)
{
	if (likely(cache_key_made))
		return pthread_setspecific(cache_key, t) == 0;
#ifdef HAVE___CXA_THREAD_ATEXIT_IMPL
	return __cxa_thread_atexit_impl(cache_destroy, t, &__dso_handle) == 0;
#else
	return false;
#endif
}

/* Creates the calling thread's cache; NULL if it cannot have one. */
static struct tcache *cache_create(void)
{
	/* OSMEM_CACHE_MAX=0: no caches at all, and no memory spent on one;
	   the thread goes to the heap as a thread that is exiting does. */
	if (!osmem_g.opt.cache_max) {
		osmem_my_cache = CACHE_GONE;
		return NULL;
	}
	struct arena *h = my_arena();
	arena_lock(h);
	struct chunk *c = osmem_heap_alloc(h, chunk_size_for(sizeof(struct tcache)), NULL);
	arena_unlock(h);
	struct tcache *t = NULL;
	if (c) {
		t = chunk_payload(c);
		/* OSMEM_CHECK=2 verifies on every call, so nothing may bypass
		   the slow path (which still caches, filling and verifying
		   freed blocks); a low mmap threshold shrinks what is cached. */
		bool expensive = osmem_g.opt.check_level > 1;
		size_t limit = CACHE_MAX_PAYLOAD + 1;
		if (limit > osmem_g.opt.cache_max + 1)
			limit = osmem_g.opt.cache_max + 1;
		if (limit > osmem_g.opt.mmap_threshold)
			limit = osmem_g.opt.mmap_threshold;
		t->fast_limit = expensive ? 0 : limit;
		t->check_neighbours = osmem_g.opt.check_level > 0;
		t->drain_asked = false;
		for (unsigned cls = 0; cls < CACHE_CLASSES; cls++) {
			t->head[cls] = cache_seal_next(&t->head[cls], NULL);
			__atomic_store_n(&t->count[cls], 0, __ATOMIC_RELAXED);
			bool kept = cache_class_size(cls) - CHUNK_HEADER <= osmem_g.opt.cache_max;
			t->cap[cls] = kept ? (uint8_t)class_cap(cls) : 0;
		}
		osmem_lock(&live_lock);
		t->next = live_caches.next;
		t->prev = &live_caches;
		live_caches.next->prev = t;
		live_caches.next = t;
		osmem_unlock(&live_lock);
	}
	if (t) {
		osmem_my_cache = t;
		if (unlikely(!watch_thread_exit(t))) {
			cache_destroy(t);
			t = NULL;
		}
	}
	return t;
}

/* Cuts USED chunk C, of TOTAL bytes and at least WANT (two or more) blocks
   of class CLS, into that many used chunks; C stays for the caller and the
   others go to list CLS.  The chunk may have been rounded up by carving:
   the last block then has the excess, and goes back to the heap instead,
   since lists hold exact sizes.  With H's lock held. */
static void refill(struct tcache *t, struct arena *h, unsigned cls, struct chunk *c, size_t total,
                   unsigned want)
{
	size_t cs = cache_class_size(cls);
	struct chunk *last = chunk_at(c, (want - 1) * cs);
	size_t last_size = total - (want - 1) * cs;
	for (struct chunk *b = c; b != last; b = chunk_at(b, cs)) {
		chunk_set_tag(b, cs, CHUNK_USED);
		chunk_set_prev(chunk_at(b, cs), cs);
		cache_words(b)[1] = 0;
	}
	chunk_set_tag(last, last_size, CHUNK_USED);
	chunk_set_prev(chunk_at(last, last_size), last_size);
	cache_words(last)[1] = 0;
	for (struct chunk *b = chunk_at(c, cs); b != last; b = chunk_at(b, cs))
		push(t, cls, b);
	if (last_size == cs)
		push(t, cls, last);
	else
		osmem_heap_release(h, last, "os_malloc");
}

static inline struct tcache *cache_get(void)
{
	struct tcache *t = osmem_my_cache;
	if (cache_live(t))
		return t;
	return t == CACHE_GONE ? NULL : cache_create();
}

/* Another thread ran out of memory and asked every cache to be emptied:
   the owner does it here, on a slow path, where the lists are its own. */
static inline void drain_if_asked(struct tcache *t)
{
	if (unlikely(__atomic_load_n(&t->drain_asked, __ATOMIC_RELAXED))) {
		__atomic_store_n(&t->drain_asked, false, __ATOMIC_RELAXED);
		osmem_cache_flush();
	}
}

void *osmem_cache_alloc(size_t cs)
{
	struct tcache *t = cache_get();
	struct arena *h;
	struct chunk *c;
	if (unlikely(!t)) {
		h = my_arena();
		arena_lock(h);
		c = osmem_heap_alloc(h, cs, NULL);
		arena_unlock(h);
		return c ? chunk_payload(c) : NULL;
	}
	drain_if_asked(t);
	unsigned cls = cache_class_of_chunk(cs);
	if (t->count[cls]) {
		const struct segment *seg;
		return chunk_payload(pop(t, cls, &seg));
	}

	/* Refill: half a list's worth of blocks for one lock.  Each comes
	   from the free chunk that fits a block best, as a request would, so
	   holes are filled first; but a chunk that can hold all the blocks
	   still wanted is cut into them at once (see refill), which saves a
	   search and a split per block.  Only the block asked for may make
	   the heap grow. */
	unsigned want = t->cap[cls] / 2u, have = 0;
	h = my_arena();
	arena_lock(h);
	c = NULL;
	while (have < want) {
		size_t got;
		struct chunk *f = osmem_heap_alloc_run(h, cs, cs * (want - have), &got);
		if (!f)
			break;
		unsigned n = got >= 2 * cs ? want - have : 1;
		if (n > 1) {
			refill(t, h, cls, f, got, n);
		} else if (got != cs && c) {
			/* Carving rounded it up; only exact sizes are cached. */
			osmem_heap_release(h, f, "os_malloc");
			break;
		}
		if (c)
			push(t, cls, f);
		else
			c = f;
		have += n;
	}
	if (!c)
		c = osmem_heap_alloc(h, cs, NULL);
	arena_unlock(h);
	return c ? chunk_payload(c) : NULL;
}

bool osmem_cache_free(struct chunk *c, size_t size)
{
	struct tcache *t = cache_get();
	if (unlikely(!t))
		return false;
	drain_if_asked(t);
	unsigned cls = cache_class_of_chunk(size);
	unsigned cap = t->cap[cls];
	if (!cap || !cache_may_keep(c, size))
		return false;
	if (t->count[cls] >= cap)
		drain(t, cls, cap / 2u);
	push(t, cls, c);
	return true;
}

void osmem_cache_flush(void)
{
	struct tcache *t = osmem_my_cache;
	if (!cache_live(t))
		return;
	for (unsigned cls = 0; cls < CACHE_CLASSES; cls++)
		drain(t, cls, t->count[cls]);
}

void osmem_cache_ask_all_to_drain(void)
{
	struct tcache *mine = osmem_my_cache;
	osmem_lock(&live_lock);
	for (struct tcache *t = live_caches.next; t != &live_caches; t = t->next)
		if (t != mine)
			__atomic_store_n(&t->drain_asked, true, __ATOMIC_RELAXED);
	osmem_unlock(&live_lock);
}

void osmem_cache_totals(size_t *bytes, size_t *blocks, size_t *overhead,
                        size_t per_class[CACHE_CLASSES])
{
	*bytes = 0;
	*blocks = 0;
	*overhead = 0;
	osmem_lock(&live_lock);
	for (struct tcache *t = live_caches.next; t != &live_caches; t = t->next) {
		*overhead += chunk_size_for(sizeof(struct tcache));
		for (unsigned cls = 0; cls < CACHE_CLASSES; cls++) {
			size_t n = __atomic_load_n(&t->count[cls], __ATOMIC_RELAXED);
			if (per_class)
				per_class[cls] += n;
			*blocks += n;
			*bytes += n * cache_class_size(cls);
		}
	}
	osmem_unlock(&live_lock);
}

void osmem_cache_fork_prepare(void) { osmem_lock(&live_lock); }
void osmem_cache_fork_parent(void) { osmem_unlock(&live_lock); }
void osmem_cache_fork_child(void) { osmem_lock_reset(&live_lock); }

/* The calling thread's lists: every entry a USED heap chunk of its class
   that carries the cached mark, and as many as the count says. */
const char *osmem_cache_verify(const void **at)
{
	struct tcache *t = osmem_my_cache;
	if (!cache_live(t))
		return NULL;
	for (unsigned cls = 0; cls < CACHE_CLASSES; cls++) {
		unsigned n = 0;
		for (struct chunk *c = cache_open_next(&t->head[cls]); c;
		     c = cache_open_next(&cache_words(c)[0])) {
			uint64_t v;
			*at = chunk_payload(c);
			if (((uintptr_t)c & (OSMEM_ALIGN - 1)) || !heap_segment_of(*at) ||
			    !unseal(&c->tag, &v) || tag_state(v) != CHUNK_USED ||
			    tag_size(v) != cache_class_size(cls) || !cache_holds(c) ||
			    ++n > t->count[cls])
				return "corrupted thread cache";
		}
		if (n != t->count[cls])
			return "corrupted thread cache";
	}
	*at = NULL;
	return NULL;
}
