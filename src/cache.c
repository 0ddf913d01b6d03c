/*
 * cache.c - per-thread caches of small blocks.
 *
 * A cached chunk keeps two words at the start of its payload:
 *   word 0: the next chunk in the same list, sealed like a heap link;
 *   word 1: a mark derived from the chunk's address and a secret, which
 *           says "this block has been freed" without a search, so a second
 *           free of it is caught even from another thread.
 * Lists are bounded per class and in bytes; a full list gives half of
 * itself back to the heap in one locked batch, an empty one fetches a
 * batch.  The cache itself is a heap chunk, found through one
 * initial-exec TLS pointer, and is returned when its thread exits.
 *
 * SPDX-License-Identifier: MIT
 */
#include "cache.h"
#include "heap.h"

#include <pthread.h>
#include <string.h>

struct tcache {
	uint64_t head[CACHE_CLASSES]; /* sealed pointer to the first payload */
	uint16_t count[CACHE_CLASSES];
	size_t bytes;
	struct tcache *next, *prev;   /* all live caches, under the heap lock */
};

/* Per-class bound: about 8 KiB of blocks, between 8 and 64 of them. */
static inline unsigned class_cap(unsigned cls)
{
	unsigned cap = 8192u / (CHUNK_MIN + 16u * cls);
	return cap < 8u ? 8u : cap > 64u ? 64u : cap;
}
#define CACHE_MAX_BYTES ((size_t)256 * 1024)

/* The calling thread's cache: NULL before its first small request, and
   CACHE_GONE once the thread is exiting (from then on it uses the heap). */
#define CACHE_GONE ((struct tcache *)(uintptr_t)1)
static __thread struct tcache *my_cache;
static pthread_key_t cache_key;
static struct tcache live_caches = { .next = &live_caches, .prev = &live_caches };

static inline unsigned class_of(size_t cs) { return (unsigned)(cs / 16u) - 2u; }
static inline size_t class_size(unsigned cls) { return CHUNK_MIN + 16u * cls; }

static inline uint64_t cached_mark(const struct chunk *c)
{
	return osmem_g.cache_secret ^ ((uint64_t)(uintptr_t)c * 0x9e3779b97f4a7c15ull);
}

static inline uint64_t *cache_words(struct chunk *c) { return (uint64_t *)chunk_payload(c); }

static inline uint64_t seal_next(const uint64_t *where, const struct chunk *to)
{
	return (uint64_t)(uintptr_t)to ^ osmem_g.cache_secret ^ ((uint64_t)(uintptr_t)where >> 4);
}

static inline struct chunk *open_next(const uint64_t *where)
{
	return (struct chunk *)(uintptr_t)(*where ^ osmem_g.cache_secret ^
	                                   ((uint64_t)(uintptr_t)where >> 4));
}

bool osmem_cache_holds(const struct chunk *c)
{
	return __atomic_load_n(&((const uint64_t *)chunk_payload(c))[1], __ATOMIC_RELAXED) ==
	       cached_mark(c);
}

/* OSMEM_CHECK=2: the bytes of a cached block past its two words are filled
   with this on free and must still hold it when the block is reused. */
#define FREED_FILL 0xdb

static void fill_freed(struct chunk *c, unsigned cls)
{
	memset((char *)chunk_payload(c) + 16, FREED_FILL, class_size(cls) - CHUNK_HEADER - 16);
}

static void verify_freed(struct chunk *c, unsigned cls)
{
	const unsigned char *p = (const unsigned char *)chunk_payload(c) + 16;
	for (size_t i = 0; i < class_size(cls) - CHUNK_HEADER - 16; i++)
		if (p[i] != FREED_FILL)
			osmem_fatal("os_malloc", "write after free detected", chunk_payload(c));
}

static inline void push(struct tcache *t, unsigned cls, struct chunk *c)
{
	uint64_t *w = cache_words(c);
	if (unlikely(osmem_g.opt.check_level > 1))
		fill_freed(c, cls);
	w[0] = seal_next(&w[0], open_next(&t->head[cls]));
	__atomic_store_n(&w[1], cached_mark(c), __ATOMIC_RELAXED);
	t->head[cls] = seal_next(&t->head[cls], c);
	t->count[cls]++;
	t->bytes += class_size(cls);
}

/* Takes the first chunk of a non-empty list, checking that what the list
   says is a cached chunk of ours: a write after free shows up here. */
static inline struct chunk *pop(struct tcache *t, unsigned cls)
{
	struct chunk *c = open_next(&t->head[cls]);
	uint64_t *w = cache_words(c);
	if (unlikely(((uintptr_t)c & (OSMEM_ALIGN - 1)) || !heap_segment_of(w) ||
	             __atomic_load_n(&w[1], __ATOMIC_RELAXED) != cached_mark(c)))
		osmem_fatal("os_malloc", "corrupted thread cache (write after free?)", w);
	if (unlikely(osmem_g.opt.check_level > 1))
		verify_freed(c, cls);
	t->head[cls] = seal_next(&t->head[cls], open_next(&w[0]));
	__atomic_store_n(&w[1], 0, __ATOMIC_RELAXED);
	t->count[cls]--;
	t->bytes -= class_size(cls);
	return c;
}

/* Returns the first N chunks of list CLS to the heap. */
static void drain(struct tcache *t, unsigned cls, unsigned n)
{
	heap_lock();
	while (n-- && t->count[cls])
		osmem_heap_release(pop(t, cls), "os_free");
	heap_unlock();
}

static void cache_destroy(void *arg)
{
	struct tcache *t = arg;
	if (!t || t == CACHE_GONE)
		return;
	my_cache = CACHE_GONE;
	for (unsigned cls = 0; cls < CACHE_CLASSES; cls++)
		drain(t, cls, t->count[cls]);
	heap_lock();
	t->prev->next = t->next;
	t->next->prev = t->prev;
	osmem_heap_release(chunk_of(t), "os_free");
	heap_unlock();
}

void osmem_cache_init(void)
{
	pthread_key_create(&cache_key, cache_destroy);
}

/* Creates the calling thread's cache; NULL if it cannot have one. */
static struct tcache *cache_create(void)
{
	heap_lock();
	struct chunk *c = osmem_heap_alloc(chunk_size_for(sizeof(struct tcache)), NULL);
	struct tcache *t = NULL;
	if (c) {
		t = chunk_payload(c);
		for (unsigned cls = 0; cls < CACHE_CLASSES; cls++) {
			t->head[cls] = seal_next(&t->head[cls], NULL);
			t->count[cls] = 0;
		}
		t->bytes = 0;
		t->next = live_caches.next;
		t->prev = &live_caches;
		live_caches.next->prev = t;
		live_caches.next = t;
	}
	heap_unlock();
	if (t) {
		my_cache = t;
		pthread_setspecific(cache_key, t);
	}
	return t;
}

static inline struct tcache *cache_get(void)
{
	struct tcache *t = my_cache;
	if (likely((uintptr_t)t > (uintptr_t)CACHE_GONE))
		return t;
	return t == CACHE_GONE ? NULL : cache_create();
}

void *osmem_cache_alloc(size_t cs)
{
	struct tcache *t = cache_get();
	struct chunk *c;
	if (unlikely(!t)) {
		heap_lock();
		c = osmem_heap_alloc(cs, NULL);
		heap_unlock();
		return c ? chunk_payload(c) : NULL;
	}
	unsigned cls = class_of(cs);
	if (likely(t->count[cls]))
		return chunk_payload(pop(t, cls));

	/* Refill: one lock for half a list's worth of blocks. */
	unsigned want = class_cap(cls) / 2u;
	heap_lock();
	c = osmem_heap_alloc(cs, NULL);
	for (unsigned i = 1; c && i < want; i++) {
		struct chunk *more = osmem_heap_alloc(cs, NULL);
		if (!more)
			break;
		/* Carving may round a chunk up; only exact fits are cached. */
		uint64_t v;
		unseal(&more->tag, &v);
		if (tag_size(v) != cs) {
			osmem_heap_release(more, "os_malloc");
			break;
		}
		push(t, cls, more);
	}
	heap_unlock();
	return c ? chunk_payload(c) : NULL;
}

bool osmem_cache_free(struct chunk *c, size_t size)
{
	struct tcache *t = cache_get();
	if (unlikely(!t))
		return false;
	unsigned cls = class_of(size);
	unsigned cap = class_cap(cls);
	if (unlikely(t->count[cls] >= cap || t->bytes + size > CACHE_MAX_BYTES))
		drain(t, cls, t->count[cls] >= cap ? cap / 2u : t->count[cls]);
	push(t, cls, c);
	return true;
}

void osmem_cache_flush(void)
{
	struct tcache *t = my_cache;
	if ((uintptr_t)t <= (uintptr_t)CACHE_GONE)
		return;
	for (unsigned cls = 0; cls < CACHE_CLASSES; cls++)
		drain(t, cls, t->count[cls]);
}

void osmem_cache_totals(size_t *bytes, size_t *blocks, size_t *overhead)
{
	*bytes = 0;
	*blocks = 0;
	*overhead = 0;
	for (struct tcache *t = live_caches.next; t != &live_caches; t = t->next) {
		*overhead += chunk_size_for(sizeof(struct tcache));
		*bytes += __atomic_load_n(&t->bytes, __ATOMIC_RELAXED);
		for (unsigned cls = 0; cls < CACHE_CLASSES; cls++)
			*blocks += __atomic_load_n(&t->count[cls], __ATOMIC_RELAXED);
	}
}

/* The calling thread's lists: every entry a USED heap chunk of its class
   that carries the cached mark, and as many as the count says. */
const char *osmem_cache_verify(const void **at)
{
	struct tcache *t = my_cache;
	if ((uintptr_t)t <= (uintptr_t)CACHE_GONE)
		return NULL;
	for (unsigned cls = 0; cls < CACHE_CLASSES; cls++) {
		unsigned n = 0;
		for (struct chunk *c = open_next(&t->head[cls]); c; c = open_next(&cache_words(c)[0])) {
			uint64_t v;
			*at = chunk_payload(c);
			if (((uintptr_t)c & (OSMEM_ALIGN - 1)) || !heap_segment_of(*at) ||
			    !unseal(&c->tag, &v) || tag_state(v) != CHUNK_USED ||
			    tag_size(v) != class_size(cls) || !osmem_cache_holds(c) ||
			    ++n > t->count[cls])
				return "corrupted thread cache";
		}
		if (n != t->count[cls])
			return "corrupted thread cache";
	}
	*at = NULL;
	return NULL;
}
