/*
 * cache.c - the slow paths of the blocks a thread keeps (see cache.h).
 *
 * The lists of exact sizes are refilled in batches, cut from the heap
 * under one lock; a request for a range list that is empty gets a chunk
 * of exactly its size from the heap.  A thread that would keep more than
 * its bound gives back all but the newest few blocks of each list (see
 * cache.h).  Blocks go back to the arena they came from: their own
 * thread's under its lock, another's on its remote list (arena.h).  The
 * cache itself is a heap chunk, found through one initial-exec TLS
 * pointer, and is returned when its thread exits.
 *
 * SPDX-License-Identifier: MIT
 */
#include "cache.h"
#include "arena.h"

#include <pthread.h>
#include <string.h>

/* The cache of a thread that has none (see osmem_my_cache): every list
   empty, and a segment of no bytes, which the inline free finds no block
   in. */
static const struct segment no_segment;
static struct segment *const no_newest = NULL;
static struct tcache cache_none = {
	.own = &no_segment, .arena_newest = &no_newest
};

/* T's view of its arena's newest segment, brought up to date. */
static inline void cache_see_newest(struct tcache *t)
{
	const struct segment *s = __atomic_load_n(t->arena_newest, __ATOMIC_ACQUIRE);
	t->own = s ? s : &no_segment;
}

__thread struct tcache *osmem_my_cache = &cache_none;

/* The calling thread's own cache, for the slow paths: NULL before its
   first one, CACHE_GONE once the thread is exiting, when its exit could
   not be watched for, or when caches are off (OSMEM_CACHE_MAX=0). */
#define CACHE_GONE ((struct tcache *)(uintptr_t)1)
static __thread struct tcache *thread_cache;

static inline bool cache_live(const struct tcache *t)
{
	return likely((uintptr_t)t > (uintptr_t)CACHE_GONE);
}

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
/* Every live cache, for os_mallinfo and osmem_reclaim; guarded by
   live_lock, which is never held together with an arena's lock. */
static struct tcache live_caches = { .next = &live_caches, .prev = &live_caches };
static osmem_lock_t live_lock = OSMEM_LOCK_INIT;

/* How many blocks of an exact list one refill cuts from the heap: about
   8 KiB of them, between 4 and 64. */
static unsigned refill_count(size_t cs)
{
	size_t n = 8192u / cs;
	return n < 4u ? 4u : n > 64u ? 64u : (unsigned)n;
}

/* OSMEM_CHECK=2: a kept block's bytes past its two words hold the fill
   from its free until it is reused. */
static void fill_freed(struct chunk *c, size_t cs)
{
	memset((char *)chunk_payload(c) + 16, OSMEM_FREED_FILL, cs - CHUNK_HEADER - 16);
}

static void verify_freed(struct chunk *c, size_t cs)
{
	const unsigned char *p = (const unsigned char *)chunk_payload(c) + 16;
	for (size_t i = 0; i < cs - CHUNK_HEADER - 16; i++)
		if (p[i] != OSMEM_FREED_FILL)
			osmem_fatal("os_malloc", "write after free detected", chunk_payload(c));
}

static _Noreturn OSMEM_COLD void corrupted(const void *at)
{
	osmem_fatal("os_malloc", "corrupted thread cache (write after free?)", at);
}

/* The inline free's last block goes into its list, as the next inline
   free would put it there, so that the slow paths find every kept block
   in a list.  Its check word is looked at first: a write after its free
   is reported here, before a link overwrites it. */
static void settle_last(struct tcache *t)
{
	size_t size = t->last_size;
	if (!size)
		return;
	struct chunk *c = t->last;
	if (cache_words(c)[0] != cache_last_check(t) || !cache_holds(c))
		corrupted(chunk_payload(c));
	cache_last_to_list(t, cache_list_of_kept(size));
	__atomic_store_n(&t->last_size, 0, __ATOMIC_RELAXED);
}

/* The first chunk of non-empty list I, checked: a kept USED chunk of a
   heap segment, of the list's sizes; its size goes to *SIZE. */
static struct chunk *peek(const struct tcache *t, unsigned i, size_t *size)
{
	struct chunk *c = (struct chunk *)(uintptr_t)(t->head[i] ^ t->key);
	uint64_t v;
	/* The mark (cache_holds) is what vouches for C: only a kept block
	   carries it, and it cannot be forged by a stray write. */
	if (((uintptr_t)c & (OSMEM_ALIGN - 1)) || !cache_holds(c) || !unseal(&c->tag, &v) ||
	    tag_state(v) != CHUNK_USED || cache_list_of_chunk(tag_size(v)) != i)
		corrupted(chunk_payload(c));
	*size = tag_size(v);
	return c;
}

/* Takes C, of SIZE bytes, the checked first chunk of list I, off it; the
   freed mark stays until the caller clears it.  The link that becomes the
   head is checked here, as cache_fast_alloc does, so that a head is
   always aligned. */
static void unlink_head(struct tcache *t, unsigned i, struct chunk *c, size_t size)
{
	if (unlikely(osmem_g.opt.check_level > 1))
		verify_freed(c, size);
	uint64_t next = cache_words(c)[0];
	if (next & (OSMEM_ALIGN - 1))
		corrupted(chunk_payload(c));
	t->head[i] = next;
	cache_count_set(t, i, t->count[i] - 1u, t->kept - size);
}

/* Hands kept chunk C out again. */
static struct chunk *hand_out(struct chunk *c)
{
	__atomic_store_n(&cache_words(c)[1], 0, __ATOMIC_RELAXED);
	return c;
}

static void push(struct tcache *t, unsigned i, struct chunk *c, size_t cs)
{
	if (unlikely(osmem_g.opt.check_level > 1))
		fill_freed(c, cs);
	cache_push(t, i, c, cs);
}

/* Chunks taken off a thread's lists on their way back to the heap: those
   of the thread's own arena go into its heap as they come, joined with
   their neighbours in OWN, under the arena's lock, taken at the first
   (LOCKED); the others are linked through their first word, their arena
   in the second, for give_back. */
struct drained {
	struct heap_batch own;
	bool locked;
	struct chunk *others;
};

/* Takes the first N chunks of list I off it, into D. */
static void take_off(struct tcache *t, unsigned i, unsigned n, struct drained *d)
{
	/* Most kept blocks lie in the newest segment of the thread's arena:
	   two compares then spare a search for their arena. */
	const struct segment *own = t->own;
	uintptr_t own_lo = own->base;
	uintptr_t own_hi = __atomic_load_n(&own->end, __ATOMIC_RELAXED);
	unsigned left = t->count[i];
	size_t bytes = 0;
	/* The checks of peek and unlink_head, block by block; the list's
	   count and the kept bytes are written once, at the end. */
	while (n-- && left) {
		struct chunk *c = (struct chunk *)(uintptr_t)(t->head[i] ^ t->key);
		uint64_t v;
		if (((uintptr_t)c & (OSMEM_ALIGN - 1)) || !cache_holds(c) || !unseal(&c->tag, &v) ||
		    tag_state(v) != CHUNK_USED || cache_list_of_chunk(tag_size(v)) != i)
			corrupted(chunk_payload(c));
		size_t size = tag_size(v);
		/* Lists are long and cold by the time they are drained: the
		   next block's header is fetched while this one is checked. */
		if (left > 1)
			__builtin_prefetch((const void *)(uintptr_t)(cache_words(c)[0] ^ t->key));
		/* The boundary tags the inline free left unread (cache.h): an
		   overflow past the block is reported before the heap rewrites
		   them. */
		osmem_heap_check_neighbours(c, size, "os_free");
		if (unlikely(osmem_g.opt.check_level > 1))
			verify_freed(c, size);
		uint64_t *w = cache_words(c);
		if (w[0] & (OSMEM_ALIGN - 1))
			corrupted(chunk_payload(c));
		t->head[i] = w[0];
		left--;
		bytes += size;
		struct arena *h = t->arena;
		if ((uintptr_t)c < own_lo || (uintptr_t)c >= own_hi) {
			const struct segment *seg = heap_segment_of(chunk_payload(c));
			if (!seg)
				corrupted(chunk_payload(c));
			h = seg->arena;
		}
		if (h == t->arena) {
			/* Into the heap while its lines are at hand, rather
			   than linked and walked once more: the size comes
			   from the checked header, and the heap does not
			   check it again.  (A drained list is longer than the
			   processor's nearest cache.) */
			if (!d->locked) {
				arena_lock(h);
				d->locked = true;
			}
			__atomic_store_n(&w[1], 0, __ATOMIC_RELAXED);
			osmem_heap_batch_add_checked(h, &d->own, c, size, "os_free");
		} else {
			/* (The mark is set again when they are given.) */
			w[0] = (uint64_t)(uintptr_t)d->others;
			w[1] = (uint64_t)(uintptr_t)h;
			d->others = c;
		}
	}
	cache_count_set(t, i, left, t->kept - bytes);
}

/* Takes every chunk of list I into D. */
static void take_list(struct tcache *t, unsigned i, struct drained *d)
{
	if (t->count[i])
		take_off(t, i, t->count[i], d);
}

/* Takes the chunks of list I past its first KEEP into D.  The first KEEP,
   the ones freed last, are walked to find where the rest start, each
   checked as it is passed: aligned, and carrying the freed mark. */
static void take_older(struct tcache *t, unsigned i, unsigned keep, struct drained *d)
{
	unsigned n = t->count[i];
	if (n <= keep)
		return;
	if (!keep) {
		take_off(t, i, n, d);
		return;
	}
	uint64_t first = t->head[i], next = first;
	uint64_t *last_kept = NULL;
	for (unsigned k = 0; k < keep; k++) {
		struct chunk *c = (struct chunk *)(uintptr_t)(next ^ t->key);
		if (((uintptr_t)c & (OSMEM_ALIGN - 1)) || !cache_holds(c))
			corrupted(chunk_payload(c));
		last_kept = cache_words(c);
		next = last_kept[0];
	}
	/* The rest as a list of its own, drained whole; its end (the link of
	   its last chunk) then ends the kept part. */
	t->head[i] = next;
	__atomic_store_n(&t->count[i], n - keep, __ATOMIC_RELAXED); /* (os_mallinfo) */
	take_off(t, i, n - keep, d);
	last_kept[0] = t->head[i];
	t->head[i] = first;
	__atomic_store_n(&t->count[i], keep, __ATOMIC_RELAXED);
}

/* With the lock of T's arena H held, after T gave blocks back to H
   (ALLOCATING false) or allocated from it: whether H is emptying
   (cache.h), and so what T may keep.  It starts when H holds less than
   an eighth of what it spans, and half of what it held when it last
   stopped, if it has not grown to a quarter since; H's free pages then
   go back, above a top pad at the end of each segment, and the runs
   that form later give theirs back as they form (release_or_note in
   heap.c).  It stops when a thread allocates from H again: a program
   that has shrunk and goes on working at its new size must not pay a
   system call, and the faults after it, on every block it merges.
   Nor does it start again for that program, until it has either grown
   or shrunk by half once more. */
static void see_emptying(struct tcache *t, struct arena *h, bool allocating)
{
	size_t used = h->stats.used_bytes, kept = cache_kept(t);
	size_t spans = used + h->stats.free_bytes + h->top_size;
	size_t holds = used > kept ? used - kept : 0;
	if (holds > spans / 4)
		h->emptied_at = 0;
	if (allocating) {
		if (h->emptying) {
			h->emptying = false;
			h->emptied_at = holds + 1;
		}
	} else if (!h->emptying && spans >= CACHE_EMPTYING_SPAN && holds < spans / 8 &&
	           (!h->emptied_at || holds < h->emptied_at / 2)) {
		h->emptying = true;
		osmem_heap_give_back(h, osmem_g.opt.top_pad);
	}
	__atomic_store_n(&t->bound, h->emptying ? CACHE_EMPTYING_KEPT : CACHE_KEPT_MAX,
	                 __ATOMIC_RELAXED);
}

/* Gives the chunks of D back: those of the thread's own arena under its
   lock, taken once, neighbours joining before they reach the bins; the
   others to their arenas (osmem_arena_give_run).  No lock is held on entry
   or on return. */
static void give_back(struct tcache *t, struct drained *d)
{
	if (d->locked) {
		/* (A thread's lists are runs already, a list being filled in
		   the order blocks are freed: joined as they came, they were
		   not sorted.) */
		osmem_heap_batch_end(t->arena, &d->own, "os_free");
		osmem_arena_collect(t->arena);
		see_emptying(t, t->arena, false);
		arena_unlock(t->arena);
		d->locked = false;
	}
	/* The others go in runs of chunks of one arena, one atomic operation
	   a run (a consumer's blocks mostly come from one producer). */
	struct arena *run_arena = NULL;
	struct chunk *first = NULL, *last = NULL;
	while (d->others) {
		struct chunk *c = d->others;
		uint64_t *w = cache_words(c);
		d->others = (struct chunk *)(uintptr_t)w[0];
		struct arena *h = (struct arena *)(uintptr_t)w[1];
		__atomic_store_n(&w[1], cache_mark(c), __ATOMIC_RELAXED);
		if (h == run_arena) {
			osmem_arena_link_remote(last, c);
			last = c;
			continue;
		}
		if (first)
			osmem_arena_give_run(run_arena, first, last);
		run_arena = h;
		first = last = c;
	}
	if (first)
		osmem_arena_give_run(run_arena, first, last);
}

/* Hands outgoing run O over to its arena. */
static void send_run(struct outgoing *o)
{
	if (!o->first)
		return;
	osmem_arena_give_run(o->to, o->first, o->last);
	o->first = o->last = NULL;
	o->to = NULL;
	__atomic_store_n(&o->count, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&o->bytes, 0, __ATOMIC_RELAXED);
}

/* Hands all of T's outgoing blocks over to their arenas. */
static void send_out(struct tcache *t)
{
	for (unsigned i = 0; i < CACHE_OUT_RUNS; i++)
		send_run(&t->out[i]);
}

/* T's run for arena H: the one it has, else an empty one, else the one
   OUT_EVICT names, handed over first. */
static struct outgoing *run_for(struct tcache *t, const struct arena *h)
{
	struct outgoing *empty = NULL;
	for (unsigned i = 0; i < CACHE_OUT_RUNS; i++) {
		struct outgoing *o = &t->out[i];
		if (o->to == h)
			return o;
		if (!o->first && !empty)
			empty = o;
	}
	if (empty)
		return empty;
	struct outgoing *o = &t->out[t->out_evict];
	t->out_evict = (t->out_evict + 1u) % CACHE_OUT_RUNS;
	send_run(o);
	return o;
}

/* Adds C, USED, of SIZE bytes and marked freed, to T's outgoing blocks
   for arena H. */
static void send_later(struct tcache *t, struct arena *h, struct chunk *c, size_t size)
{
	struct outgoing *o = run_for(t, h);
	if (o->bytes + size > CACHE_OUT_BYTES)
		send_run(o);
	uint32_t n = o->count;
	uint64_t *w = cache_words(c);
	osmem_arena_link_remote(c, o->first);
	if (size >= REMOTE_HINT_MIN) {
		/* The block freed CACHE_OUT_AHEAD blocks ago comes that far
		   after C in the run; a hint only, never followed. */
		struct chunk **slot = &o->recent[n % CACHE_OUT_AHEAD];
		w[2] = n >= CACHE_OUT_AHEAD ? (uint64_t)(uintptr_t)*slot : 0;
		*slot = c;
	}
	if (!o->first)
		o->last = c;
	o->first = c;
	o->to = h;
	__atomic_store_n(&o->count, n + 1u, __ATOMIC_RELAXED);
	__atomic_store_n(&o->bytes, o->bytes + size, __ATOMIC_RELAXED);
	/* (So what waits is always less than CACHE_OUT_BYTES, even when one
	   block is larger than that.) */
	if (n + 1u == CACHE_OUT_BLOCKS || o->bytes >= CACHE_OUT_BYTES)
		send_run(o);
}

/* Gives back every block T keeps but the newest half of each list, and
   MOST of a list at most: with MOST 0 all of them (drain_all), with
   CACHE_OVERFLOW_KEEP on passing the bound (cache.h). */
static void drain_keeping(struct tcache *t, unsigned most)
{
	struct drained d = { { NULL, 0 }, false, NULL };
	send_out(t);
	settle_last(t);
	for (unsigned i = 0; i < CACHE_CLASSES; i++) {
		unsigned keep = t->count[i] / 2;
		take_older(t, i, keep < most ? keep : most, &d);
	}
	give_back(t, &d);
}

static void drain_all(struct tcache *t)
{
	drain_keeping(t, 0);
}

/* Gives back whole lists, the largest blocks first, until the thread
   keeps at most KEEP bytes: the bytes are mostly in the large blocks, and
   the small ones, the most often asked for, stay. */
static void drain_largest(struct tcache *t, size_t keep)
{
	struct drained d = { { NULL, 0 }, false, NULL };
	settle_last(t);
	for (unsigned i = CACHE_CLASSES; i-- > 0 && cache_kept(t) > keep;)
		take_list(t, i, &d);
	give_back(t, &d);
}

static void cache_destroy(void *arg)
{
	struct tcache *t = arg;
	if (!cache_live(t))
		return;
	thread_cache = CACHE_GONE;
	osmem_my_cache = &cache_none;
	drain_all(t);
	osmem_lock(&live_lock);
	t->prev->next = t->next;
	t->next->prev = t->prev;
	osmem_unlock(&live_lock);
	osmem_arena_leave(t->arena);
	struct arena *h = osmem_segment_find((uintptr_t)chunk_of(t))->arena;
	arena_lock(h);
	osmem_heap_release(h, chunk_of(t), "os_free");
	arena_unlock(h);
}

uint8_t osmem_cache_list_of[CACHE_MAX_CHUNK / 16 + 1];
_Static_assert(CACHE_CLASSES <= 256, "a list's index fits osmem_cache_list_of");

void osmem_cache_init(void)
{
	for (size_t i = CHUNK_MIN / 16; i <= CACHE_MAX_CHUNK / 16; i++)
		osmem_cache_list_of[i] = (uint8_t)cache_list_of_chunk(i * 16);
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

/* Whether the inline paths may serve this thread: not with OSMEM_CHECK=2,
   which verifies the whole heap on every call, and not when some of the
   exact lists' sizes must not be kept (a small OSMEM_CACHE_MAX or mmap
   threshold): the slow paths then decide block by block. */
static bool inline_paths_allowed(void)
{
	return osmem_g.opt.check_level <= 1 && osmem_g.opt.cache_max >= CACHE_EXACT_MAX_PAYLOAD &&
	       osmem_g.opt.mmap_threshold > CACHE_EXACT_MAX_PAYLOAD;
}

/* Creates the calling thread's cache; NULL if it cannot have one. */
static struct tcache *cache_create(void)
{
	/* OSMEM_CACHE_MAX=0: no caches at all, and no memory spent on one;
	   the thread goes to the heap as a thread that is exiting does. */
	if (!osmem_g.opt.cache_max) {
		thread_cache = CACHE_GONE;
		return NULL;
	}
	struct arena *h = my_arena();
	arena_lock(h);
	struct chunk *c = osmem_heap_alloc(h, chunk_size_for(sizeof(struct tcache)), NULL);
	arena_unlock(h);
	if (!c)
		return NULL;
	struct tcache *t = chunk_payload(c);
	memset(t, 0, sizeof(*t));
	t->key = osmem_g.cache_secret ^ ((uint64_t)(uintptr_t)t * 0x9e3779b97f4a7c15ull);
	t->key &= ~(uint64_t)(OSMEM_ALIGN - 1); /* an aligned chunk decodes aligned */
	t->arena = h;
	t->arena_newest = &h->segs.newest;
	cache_see_newest(t);
	t->keeps_foreign = true;
	t->bound = CACHE_KEPT_MAX;
	t->max_chunk = osmem_g.opt.cache_max < CACHE_MAX_PAYLOAD
	                       ? (osmem_g.opt.cache_max + CHUNK_HEADER) & ~(size_t)(OSMEM_ALIGN - 1)
	                       : CACHE_MAX_CHUNK;
	osmem_arena_join(h);
	osmem_lock(&live_lock);
	t->next = live_caches.next;
	t->prev = &live_caches;
	live_caches.next->prev = t;
	live_caches.next = t;
	osmem_unlock(&live_lock);
	thread_cache = t;
	if (inline_paths_allowed())
		osmem_my_cache = t;
	if (unlikely(!watch_thread_exit(t))) {
		cache_destroy(t);
		return NULL;
	}
	return t;
}

static inline struct tcache *cache_get(void)
{
	struct tcache *t = thread_cache;
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
		drain_all(t);
	}
}

/* Cuts USED chunk C, of TOTAL bytes and at least WANT (two or more) blocks
   of CS bytes, into that many used chunks; C stays for the caller and the
   others go to exact list I.  The chunk may have been rounded up by
   carving: the last block then has the excess, and goes back to the heap
   instead, since exact lists hold exact sizes.  With H's lock held. */
static void cut_batch(struct tcache *t, struct arena *h, unsigned i, struct chunk *c, size_t total,
                      unsigned want)
{
	size_t cs = cache_class_size(i);
	struct chunk *last = chunk_at(c, (want - 1) * cs);
	size_t last_size = total - (want - 1) * cs;
	chunk_set_tag(c, cs, CHUNK_USED);
	cache_words(c)[1] = 0;
	/* The blocks after C go onto list I as cache_push would put them,
	   the highest first out; the list's head, count and the kept bytes
	   are written once. */
	uint64_t head = t->head[i];
	unsigned pushed = 0;
	for (struct chunk *b = c; b != last;) {
		struct chunk *n = chunk_at(b, cs);
		chunk_set_prev(n, cs);
		if (n == last)
			break;
		chunk_set_tag(n, cs, CHUNK_USED);
		if (unlikely(osmem_g.opt.check_level > 1))
			fill_freed(n, cs);
		uint64_t *w = cache_words(n);
		w[0] = head;
		__atomic_store_n(&w[1], cache_mark(n), __ATOMIC_RELAXED);
		head = (uint64_t)(uintptr_t)n ^ t->key;
		pushed++;
		b = n;
	}
	chunk_set_tag(last, last_size, CHUNK_USED);
	chunk_set_prev(chunk_at(last, last_size), last_size);
	cache_words(last)[1] = 0;
	t->head[i] = head;
	cache_count_set(t, i, t->count[i] + pushed, t->kept + pushed * cs);
	if (last_size == cs)
		push(t, i, last, cs);
	else
		osmem_heap_release(h, last, "os_malloc");
}

/* A chunk of CS bytes for exact list I, whose list is empty, and a batch
   more on the list, from the free space of H (locked); NULL when there is
   none that fits.  Each block comes from the free chunk that fits a block
   best, as a request would, so holes are filled first; but a chunk that
   can hold more than one of the blocks still wanted is cut into as many
   as it holds at once, which saves a search and a split per block. */
#define FILL_MIN 4u

static struct chunk *refill(struct tcache *t, struct arena *h, unsigned i, size_t cs)
{
	unsigned most = refill_count(cs), want = t->fill[i], have = 0;
	if (want < FILL_MIN)
		want = FILL_MIN;
	if (want > most)
		want = most;
	t->fill[i] = (uint8_t)(2 * want < most ? 2 * want : most);
	t->borrowed[i] = 0;
	struct chunk *c = NULL;
	while (have < want) {
		size_t got;
		struct chunk *f = osmem_heap_alloc_run(h, cs, cs * (want - have), &got);
		if (!f)
			break;
		size_t fits = got / cs;
		unsigned n = fits < 2 ? 1u : fits < want - have ? (unsigned)fits : want - have;
		if (n > 1) {
			cut_batch(t, h, i, f, got, n);
		} else if (got != cs && c) {
			/* Carving rounded it up; only exact sizes are kept. */
			osmem_heap_release(h, f, "os_malloc");
			break;
		}
		if (c)
			push(t, i, f, cs);
		else
			c = f;
		have += n;
	}
	return c;
}

/* Hands out the checked first chunk of non-empty list I. */
static struct chunk *take_head(struct tcache *t, unsigned i)
{
	size_t size;
	struct chunk *c = peek(t, i, &size);
	unlink_head(t, i, c, size);
	return hand_out(c);
}

/* A kept chunk for a request of CS bytes, or NULL. */
static struct chunk *take_kept(struct tcache *t, size_t cs)
{
	if (cs <= CACHE_EXACT_MAX_CHUNK) {
		unsigned i = (unsigned)(cs >> 4) - 1u;
		return t->count[i] ? take_head(t, i) : NULL;
	}
	unsigned r = cache_range_of(cs);
	if (t->count[r]) {
		size_t size;
		struct chunk *c = peek(t, r, &size);
		if (size >= cs) {
			unlink_head(t, r, c, size);
			return hand_out(c);
		}
	}
	/* The next range: its blocks are all large enough, less than half
	   as large again as asked for (the excess stays with the block, and
	   goes back with it). */
	if (++r < CACHE_CLASSES && t->count[r])
		return take_head(t, r);
	return NULL;
}

/* For a request of an exact list's size CS whose list is empty: the head
   of the next non-empty list up whose blocks are at most a sixteenth
   larger, or NULL.  A thread whose blocks come back from another thread
   (a producer) finds some of its lists empty and others full, as the
   sizes freed and asked for wander apart; each empty one cost a refill
   under the arena's lock, and the full ones overflowed back into the
   heap (prodcons: 10644 refills a million blocks, against 1788 now, and
   27 against 32 ns a block; xfree-1 30.4 to 28.2 ns, batch 25.7 to
   24.4).  The excess goes back with the block.  Not more than a
   sixteenth: with an eighth, frag's peak resident size grew by 0.9%,
   past glibc's.

   But a list that borrowed BORROW_MAX times since it was last refilled
   is asked for steadily, not wandering: its next request is refilled
   instead, so that the list has blocks of its own and its requests are
   served on the inline path again.  Borrowing sends every request to the
   slow path while the list stays empty, and it stays empty for good when
   no block of its size is kept: calloc of 256 B to 4 KiB sent 48% of its
   requests of up to 1 KiB there, and went from 37.6 to 33.7 ns a call
   with this rule.  Only while the thread keeps at most BORROW_KEPT_MAX,
   half its bound: above that, its own blocks are what is asked for, and
   frag's peak resident size grew by up to 0.2% with the rule applied
   there too. */
#define BORROW_MAX 16u
#define BORROW_KEPT_MAX (CACHE_KEPT_MAX / 2)

static struct chunk *take_neighbour(struct tcache *t, size_t cs)
{
	unsigned i = (unsigned)(cs >> 4) - 1u;
	for (unsigned k = 1; k * 16u * 16u <= cs && i + k < CACHE_EXACT_LISTS; k++)
		if (t->count[i + k])
			return take_head(t, i + k);
	return NULL;
}

/* Takes the blocks that other threads freed into T's arena and keeps
   those of the exact lists' sizes, within its bound; the others go into
   the heap as osmem_arena_collect would free them, and merge there.  A
   thread whose small blocks another thread frees (a producer) then cuts
   nothing again: they come back to its lists, where the sizes asked for
   most are, without being merged into the heap and carved out of it once
   more (prodcons: 240 to about 140 ns a block).  Larger blocks are more
   often worth merging than asked for again at their size. */
static void keep_remote_frees(struct tcache *t)
{
	struct chunk *c = osmem_arena_take_remote(t->arena), *rest = NULL;
	/* Most of them lie in the thread's newest segment, which two
	   compares tell (a newer one only sends the others to the search of
	   the segment table). */
	const struct segment *own = t->own;
	uintptr_t own_lo = own->base, own_hi = __atomic_load_n(&own->end, __ATOMIC_RELAXED);
	size_t largest = t->max_chunk < CACHE_EXACT_MAX_CHUNK ? t->max_chunk : CACHE_EXACT_MAX_CHUNK;
	/* What the thread keeps, counted here and written once at the end
	   (as cut_batch does); within the bound while KEPT <= LIMIT. */
	size_t kept = t->kept, limit = t->bound + t->taken;
	bool fill = unlikely(osmem_g.opt.check_level > 1);
	/* One walk: each chunk is checked, and kept or set aside for the
	   heap, while its line is at hand. */
	while (c) {
		uintptr_t a = (uintptr_t)chunk_payload(c);
		const struct segment *seg = a > own_lo && a < own_hi ? own : NULL;
		uint64_t v;
		struct chunk *next = osmem_arena_remote_step(c, &seg, &v);
		uint64_t *w = cache_words(c);
		size_t size = tag_size(v);
		uintptr_t seg_end = seg == own ? own_hi : __atomic_load_n(&seg->end, __ATOMIC_RELAXED);
		if (size <= largest && kept + size <= limit && cache_may_keep(c, size, seg_end)) {
			/* The freed mark in word 1 is there already: the walk
			   just checked it. */
			if (fill)
				fill_freed(c, size);
			cache_link_head(t, cache_list_of_chunk(size), c);
			kept += size;
		} else {
			__atomic_store_n(&w[1], 0, __ATOMIC_RELAXED);
			w[0] = (uint64_t)(uintptr_t)rest;
			rest = c;
		}
		c = next;
	}
	__atomic_store_n(&t->kept, kept, __ATOMIC_RELAXED);
	if (rest) {
		arena_lock(t->arena);
		osmem_heap_release_list(t->arena, rest, "os_free");
		arena_unlock(t->arena);
	}
}

/* A kept chunk for a request of CS bytes (CS <= CACHE_MAX_CHUNK), or
   NULL: of the request's own list or lists; else, when other threads
   freed blocks back to T's arena, of those, taken back first; else of a
   list up to a sixteenth larger, unless the request's list is to be
   refilled instead (see take_neighbour). */
static struct chunk *find_kept(struct tcache *t, size_t cs)
{
	struct chunk *c = take_kept(t, cs);
	if (!c && __atomic_load_n(&t->arena->remote, __ATOMIC_RELAXED)) {
		keep_remote_frees(t);
		c = take_kept(t, cs);
	}
	if (!c && cs <= CACHE_EXACT_MAX_CHUNK) {
		unsigned i = (unsigned)(cs >> 4) - 1u;
		if (t->borrowed[i] < BORROW_MAX || cache_kept(t) > BORROW_KEPT_MAX) {
			c = take_neighbour(t, cs);
			if (c && t->borrowed[i] < BORROW_MAX)
				t->borrowed[i]++;
		}
	}
	return c;
}

struct chunk *osmem_thread_alloc(size_t cs, size_t *dirty)
{
	/* A request larger than any kept block does not make a cache (the
	   first one then starts the heap exactly as the textbook allocator
	   does), but still has the thread's kept blocks returned before the
	   heap grows. */
	struct tcache *t = cs <= CACHE_MAX_CHUNK ? cache_get() : thread_cache;
	if (!cache_live(t))
		t = NULL;
	struct chunk *c;
	bool exact = false;
	if (t) {
		drain_if_asked(t);
		send_out(t);
		settle_last(t);
		if (cs <= CACHE_MAX_CHUNK && (c = find_kept(t, cs)) != NULL) {
			if (dirty)
				*dirty = SIZE_MAX;
			return c;
		}
		exact = cs <= CACHE_EXACT_MAX_CHUNK && cs - CHUNK_HEADER <= osmem_g.opt.cache_max;
		/* Allocating again: the thread keeps other arenas' blocks
		   again. */
		t->keeps_foreign = true;
	}
	struct arena *h = my_arena();
	arena_lock(h);
	osmem_arena_collect(h);
	if (exact) {
		/* (The blocks of a batch are not tracked as fresh.) */
		if (dirty)
			*dirty = SIZE_MAX;
		c = refill(t, h, (unsigned)(cs >> 4) - 1u, cs);
	} else {
		c = osmem_heap_alloc_fit(h, cs, dirty);
	}
	if (!c && t && cache_kept(t) > CACHE_KEPT_BEFORE_GROWTH) {
		/* Before the heap grows, the largest blocks the thread keeps
		   go back to it and coalesce, and the request is tried again.
		   Giving back everything would make a thread whose heap is
		   full cycle all its kept blocks through the heap each time;
		   the largest lists, down to half of what it keeps, keep
		   both that work and the memory held down (down to an eighth
		   of the bound, xfree-1 soon asked the heap again for the
		   sizes it had just given back: 33.7 against 30.0 ns).  A
		   thread that keeps less than CACHE_KEPT_BEFORE_GROWTH lets
		   the heap grow instead: draining such a cache gains little
		   memory, and a mix of many sizes then cycles its blocks
		   through the heap (calloc of 256 B to 4 KiB spent a third of
		   its time so). */
		arena_unlock(h);
		drain_largest(t, cache_kept(t) / 2);
		arena_lock(h);
		c = osmem_heap_alloc_fit(h, cs, dirty);
	}
	if (!c)
		c = osmem_heap_alloc(h, cs, dirty);
	if (t && h == t->arena)
		see_emptying(t, h, true);
	arena_unlock(h);
	if (t)
		cache_see_newest(t);
	return c;
}

/* Whether T keeps a block of SIZE bytes of another thread's arena, as far
   as its foreign blocks go (see "Blocks of other threads' arenas" in
   cache.h). */
static inline bool keeps_foreign_now(const struct tcache *t, size_t size)
{
	return t->keeps_foreign && cache_kept(t) + size <= CACHE_FOREIGN_MAX;
}

bool osmem_cache_free(struct chunk *c, size_t size, const struct segment *seg)
{
	struct tcache *t = cache_get();
	if (unlikely(!t))
		return false;
	drain_if_asked(t);
	cache_see_newest(t);
	settle_last(t);
	bool foreign = seg->arena != t->arena;
	if (foreign)
		t->foreign = seg;
	if (size > t->max_chunk || (foreign && !keeps_foreign_now(t, size)) ||
	    !cache_may_keep(c, size, __atomic_load_n(&seg->end, __ATOMIC_RELAXED)))
		return false;
	if (cache_kept(t) + size > t->bound) {
		drain_keeping(t, CACHE_OVERFLOW_KEEP);
		/* Half of 1 MiB, at most, is left, and a block is 32 KiB at
		   most: only an arena found emptying meanwhile needs more. */
		if (cache_kept(t) + size > t->bound)
			drain_all(t);
		for (unsigned i = 0; i < CACHE_EXACT_LISTS; i++)
			t->fill[i] /= 2;
		t->keeps_foreign = false;
		if (foreign)
			return false;
	}
	push(t, cache_list_of_chunk(size), c, size);
	return true;
}

/* The rest of osmem_cache_free_foreign (cache.h), for P in T's foreign
   segment, which ends at END. */
bool osmem_cache_send_foreign(struct tcache *t, void *p, uintptr_t end)
{
	/* (A thread asked to empty its cache does so on the slow path.) */
	if (((uintptr_t)p & (OSMEM_ALIGN - 1)) || __atomic_load_n(&t->drain_asked, __ATOMIC_RELAXED))
		return false;
	struct arena *h = t->foreign->arena;
	if (h == t->arena || !__atomic_load_n(&h->users, __ATOMIC_RELAXED))
		return false;
	struct chunk *c = chunk_of(p);
	uint64_t v;
	if (!unseal(&c->tag, &v) || !heap_tag_is_live_block(c, v, end) || cache_holds(c))
		return false;
	size_t size = tag_size(v);
	/* One the thread may keep takes the slow path, which decides. */
	if (size <= t->max_chunk && keeps_foreign_now(t, size))
		return false;
	__atomic_store_n(&cache_words(c)[1], cache_mark(c), __ATOMIC_RELAXED);
	send_later(t, h, c, size);
	return true;
}

void osmem_thread_release(struct arena *h, struct chunk *c, size_t size, const char *func)
{
	struct tcache *t = thread_cache;
	if (cache_live(t) && h != t->arena && __atomic_load_n(&h->users, __ATOMIC_RELAXED)) {
		__atomic_store_n(&cache_words(c)[1], cache_mark(c), __ATOMIC_RELAXED);
		send_later(t, h, c, size);
		return;
	}
	osmem_heap_check_neighbours(c, size, func);
	arena_lock(h);
	osmem_heap_release_checked(h, c, size, func);
	arena_unlock(h);
}

void osmem_cache_flush(void)
{
	struct tcache *t = thread_cache;
	if (cache_live(t))
		drain_all(t);
}

void osmem_cache_ask_all_to_drain(void)
{
	struct tcache *mine = thread_cache;
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
		/* TAKEN before KEPT: the thread may go on meanwhile, and
		   what it takes then is only counted as still kept, never
		   subtracted twice. */
		size_t taken = __atomic_load_n(&t->taken, __ATOMIC_ACQUIRE);
		*bytes += __atomic_load_n(&t->kept, __ATOMIC_ACQUIRE) - taken;
		/* Outgoing blocks are freed and not yet in any heap, as kept
		   ones are; they are in no list. */
		for (unsigned i = 0; i < CACHE_OUT_RUNS; i++) {
			*bytes += __atomic_load_n(&t->out[i].bytes, __ATOMIC_RELAXED);
			*blocks += __atomic_load_n(&t->out[i].count, __ATOMIC_RELAXED);
		}
		size_t last_size = __atomic_load_n(&t->last_size, __ATOMIC_RELAXED);
		unsigned last = last_size ? cache_list_of_chunk(last_size) : CACHE_CLASSES;
		for (unsigned i = 0; i < CACHE_CLASSES; i++) {
			size_t n = __atomic_load_n(&t->count[i], __ATOMIC_RELAXED) + (i == last);
			if (per_class)
				per_class[i] += n;
			*blocks += n;
		}
	}
	osmem_unlock(&live_lock);
}

void osmem_cache_fork_prepare(void) { osmem_lock(&live_lock); }
void osmem_cache_fork_parent(void) { osmem_unlock(&live_lock); }

struct arena *osmem_cache_fork_child(void)
{
	osmem_lock_reset(&live_lock);
	struct tcache *t = thread_cache;
	if (cache_live(t)) {
		t->next = t->prev = &live_caches;
		live_caches.next = live_caches.prev = t;
	} else {
		live_caches.next = live_caches.prev = &live_caches;
	}
	return cache_live(t) ? t->arena : NULL;
}

/* The calling thread's lists: every entry a kept USED heap chunk of its
   list's sizes, as many as the count says, adding up to KEPT. */
const char *osmem_cache_verify(const void **at)
{
	struct tcache *t = thread_cache;
	if (!cache_live(t))
		return NULL;
	size_t kept = 0;
	if (t->last_size) {
		/* The inline free's last block: in no list, its word 0 a check
		   value. */
		struct chunk *c = t->last;
		uint64_t v;
		*at = chunk_payload(c);
		if (((uintptr_t)c & (OSMEM_ALIGN - 1)) || !heap_segment_of(*at) ||
		    !unseal(&c->tag, &v) || tag_state(v) != CHUNK_USED ||
		    tag_size(v) != t->last_size ||
		    !cache_holds(c) ||
		    cache_words(c)[0] != cache_last_check(t))
			return "corrupted thread cache";
		kept += tag_size(v);
	}
	for (unsigned i = 0; i < CACHE_CLASSES; i++) {
		unsigned n = 0;
		uint64_t link = t->head[i];
		while (n < t->count[i]) {
			struct chunk *c = (struct chunk *)(uintptr_t)(link ^ t->key);
			uint64_t v;
			*at = chunk_payload(c);
			if (((uintptr_t)c & (OSMEM_ALIGN - 1)) || !heap_segment_of(*at) ||
			    !unseal(&c->tag, &v) || tag_state(v) != CHUNK_USED ||
			    cache_list_of_chunk(tag_size(v)) != i || !cache_holds(c))
				return "corrupted thread cache";
			kept += tag_size(v);
			link = cache_words(c)[0];
			n++;
		}
	}
	/* The outgoing blocks: each a USED chunk of its run's arena, marked
	   freed, as many and as large as counted; no two runs for one
	   arena. */
	for (unsigned i = 0; i < CACHE_OUT_RUNS; i++) {
		const struct outgoing *o = &t->out[i];
		size_t out_bytes = 0;
		uint32_t out_count = 0;
		for (struct chunk *c = o->first; c; c = c == o->last ? NULL : osmem_arena_remote_next(c)) {
			uint64_t v;
			const struct segment *seg;
			*at = chunk_payload(c);
			if (((uintptr_t)c & (OSMEM_ALIGN - 1)) || !(seg = heap_segment_of(*at)) ||
			    seg->arena != o->to || !unseal(&c->tag, &v) || tag_state(v) != CHUNK_USED ||
			    !cache_holds(c) || ++out_count > o->count)
				return "corrupted thread cache";
			out_bytes += tag_size(v);
		}
		*at = NULL;
		if (out_count != o->count || out_bytes != o->bytes)
			return "corrupted thread cache";
		for (unsigned j = 0; j < i; j++)
			if (o->first && t->out[j].first && t->out[j].to == o->to)
				return "corrupted thread cache";
	}
	return kept == cache_kept(t) ? NULL : "corrupted thread cache";
}
