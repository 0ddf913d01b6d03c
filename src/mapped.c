/*
 * mapped.c - large blocks, each in a private anonymous mapping of its own.
 *
 * The registry is an open-addressing hash set of the payload addresses of
 * every live mapped block, kept in memory mapped for it.  A pointer is only
 * treated as a mapped block after the registry has vouched for it, so a
 * block freed twice, or a pointer the allocator never handed out, is
 * reported without reading memory that may no longer be mapped.  A short
 * ring of recently unmapped addresses turns "not a block" into "double
 * free" when that is what happened.
 *
 * The spare: a program that frees a large block and asks for one of the
 * same size again (a buffer per request, say) would pay a hash removal,
 * an extent put, an extent take and a hash insertion per pair.  So a block
 * freed while the cache of freed mappings is empty becomes the spare
 * instead: it stays in the registry, its key marked freed (SLOT_FREED, so
 * that lookups of it fail and a second free is still caught), and the
 * next request for exactly its mapping length takes it back by clearing
 * the mark, with its header as it was.  Anything else (another free, a
 * request of another length, a resize, anything that reads the clock or
 * inspects the cache) first turns the spare into an ordinary cached
 * extent, so the cache behaves as mapcache.c describes, with the spare
 * counted in its bytes and its limit.
 *
 * SPDX-License-Identifier: MIT
 */
#include "mapped.h"
#include "lock.h"

#include <string.h>

#define SLOT_EMPTY ((uintptr_t)0)
#define SLOT_GONE ((uintptr_t)1)
/* Set in the slot of the spare (keys are payload addresses, aligned). */
#define SLOT_FREED ((uintptr_t)1)
#define RECENT_COUNT 64u
/* Beside the offset in a MAPPED chunk's prev_tag (offsets are multiples
   of 16): the mapping was advised to use transparent huge pages (see
   osmem_mapped_remap).  Such a mapping is never cached: its range would
   fault in huge pages for whatever block took it next, which may touch
   three pages of twenty megabytes. */
#define PREV_HUGE ((uint64_t)1)

static struct {
	osmem_lock_t lock;
	uintptr_t *slots; /* capacity is a power of two */
	size_t cap;
	size_t used;      /* live entries plus SLOT_GONE markers */
	size_t live;
	size_t bytes;     /* bytes of live mappings */
	uintptr_t recent[RECENT_COUNT];
	unsigned recent_next;
	/* The spare (see above): its key, marked, and its mapping; LEN 0
	   when there is none.  Not counted in LIVE or BYTES. */
	struct {
		uintptr_t key;
		uintptr_t *slot; /* its slot, found again when the table grows */
		char *base;
		size_t len;
	} spare;
} reg = { .lock = OSMEM_LOCK_INIT };

void osmem_mapped_lock(void) { osmem_lock(&reg.lock); }
void osmem_mapped_unlock(void) { osmem_unlock(&reg.lock); }

/* Whether a slot's value is the key of a live block: not empty, not a
   marker, not the spare. */
static inline bool slot_is_live(uintptr_t v)
{
	return v > SLOT_GONE && !(v & SLOT_FREED);
}

static size_t slot_hash(uintptr_t key, size_t cap)
{
	return (size_t)(((uint64_t)key >> 4) * 0x9e3779b97f4a7c15ull >> 32) & (cap - 1);
}

/* The slot holding KEY, or NULL. */
static inline uintptr_t *registry_find(uintptr_t key)
{
	if (!reg.cap)
		return NULL;
	for (size_t i = slot_hash(key, reg.cap);; i = (i + 1) & (reg.cap - 1)) {
		if (reg.slots[i] == key)
			return &reg.slots[i];
		if (reg.slots[i] == SLOT_EMPTY)
			return NULL;
	}
}

/* Stores KEY; true when it took a slot that had never been used. */
static bool registry_put(uintptr_t *slots, size_t cap, uintptr_t key)
{
	size_t i = slot_hash(key, cap);
	while (slots[i] != SLOT_EMPTY && slots[i] != SLOT_GONE)
		i = (i + 1) & (cap - 1);
	bool was_empty = slots[i] == SLOT_EMPTY;
	slots[i] = key;
	return was_empty;
}

/* Makes room for one more entry; false when no memory can be had. */
static bool registry_reserve(void)
{
	if ((reg.used + 1) * 2 <= reg.cap)
		return true;
	size_t cap = reg.cap ? reg.cap : osmem_g.page_size / sizeof(uintptr_t);
	if ((reg.live + 1) * 4 > cap)
		cap *= 2;
	uintptr_t *slots = osmem_os_map(cap * sizeof(uintptr_t));
	if (!slots)
		return false;
	for (size_t i = 0; i < reg.cap; i++)
		if (reg.slots[i] > SLOT_GONE)
			registry_put(slots, cap, reg.slots[i]);
	if (reg.slots)
		osmem_os_unmap(reg.slots, reg.cap * sizeof(uintptr_t));
	reg.slots = slots;
	reg.cap = cap;
	reg.used = reg.live + (reg.spare.len != 0);
	if (reg.spare.len)
		reg.spare.slot = registry_find(reg.spare.key | SLOT_FREED);
	return true;
}

static void registry_add(uintptr_t key, size_t bytes)
{
	if (registry_put(reg.slots, reg.cap, key))
		reg.used++;
	reg.live++;
	reg.bytes += bytes;
	osmem_usage_add(bytes);
}

/* A slot just before an empty one ends every probe chain through it, so
   it can be emptied, and with it the markers just before it: no live key
   lies beyond them.  Otherwise markers pile up under a stream of
   allocations and frees at changing addresses, and each rebuild of the
   table they force costs an mmap and an munmap. */
static void registry_unlink(uintptr_t *slot)
{
	size_t mask = reg.cap - 1, i = (size_t)(slot - reg.slots);
	if (reg.slots[(i + 1) & mask] == SLOT_EMPTY) {
		do {
			reg.slots[i] = SLOT_EMPTY;
			reg.used--;
			i = (i - 1) & mask;
		} while (reg.slots[i] == SLOT_GONE);
	} else {
		*slot = SLOT_GONE;
	}
}

static void registry_drop(uintptr_t *slot, size_t bytes)
{
	registry_unlink(slot);
	reg.live--;
	reg.bytes -= bytes;
	osmem_usage_sub(bytes);
}

/* A live block's mapping went from OLD to NEW bytes where it is. */
static void registry_resize(size_t old, size_t new)
{
	reg.bytes = reg.bytes - old + new;
	if (new > old)
		osmem_usage_add(new - old);
	else
		osmem_usage_sub(old - new);
}

/* P is no live block: says what it is, and aborts. */
static OSMEM_COLD _Noreturn void registry_refuse(const void *p, const char *func,
                                                 const char *freed_msg)
{
	if (((uintptr_t)p & SLOT_FREED) == 0 && registry_find((uintptr_t)p | SLOT_FREED))
		osmem_fatal(func, freed_msg, p); /* the spare */
	for (unsigned i = 0; i < RECENT_COUNT; i++)
		if (reg.recent[i] == (uintptr_t)p)
			osmem_fatal(func, freed_msg, p);
	osmem_fatal(func, "invalid pointer", p);
}

/* The slot of live block P; aborts with the right message if there is
   none.  (Inline, with the reports out of line: a program that frees and
   asks for a large block in turn spends a good part of each pair here.) */
static inline uintptr_t *registry_vouch(const void *p, const char *func, const char *freed_msg)
{
	uintptr_t *slot = registry_find((uintptr_t)p);
	if (unlikely(!slot))
		registry_refuse(p, func, freed_msg);
	return slot;
}

static OSMEM_COLD _Noreturn void bad_mapped_header(const void *p, const char *func)
{
	osmem_fatal(func, "corrupted block header", p);
}

/* The chunk of a vouched-for block, its header checked; HUGE says
   whether its mapping was advised to use huge pages. */
static inline struct chunk *mapped_chunk(const void *p, size_t *size, size_t *offset,
                                         bool *huge, const char *func)
{
	struct chunk *c = chunk_of(p);
	uint64_t tag, prev;
	if (unlikely(!unseal(&c->tag, &tag) || tag_state(tag) != CHUNK_MAPPED ||
	             !unseal(&c->prev_tag, &prev)))
		bad_mapped_header(p, func);
	*size = tag_size(tag);
	*offset = (size_t)(prev & ~PREV_HUGE);
	*huge = prev & PREV_HUGE;
	return c;
}

static size_t mapping_len(size_t n, size_t offset)
{
	return osmem_align_up(offset + CHUNK_HEADER + n, osmem_g.page_size);
}

/* Makes the OFFSET-th byte of the LEN-byte mapping at BASE a live block
   and returns its payload. */
static void *register_block(char *base, size_t offset, size_t len)
{
	struct chunk *c = (struct chunk *)(void *)(base + offset);
	chunk_set_prev(c, offset);
	chunk_set_tag(c, len - offset, CHUNK_MAPPED);
	registry_add((uintptr_t)chunk_payload(c), len);
	return chunk_payload(c);
}

/* The spare becomes an ordinary cached extent (or is unmapped, when the
   cache will not keep it). */
void osmem_mapped_spare_flush(void)
{
	if (!reg.spare.len)
		return;
	assert(*reg.spare.slot == (reg.spare.key | SLOT_FREED));
	registry_unlink(reg.spare.slot);
	char *base = reg.spare.base;
	size_t len = reg.spare.len;
	reg.spare.len = 0;
	if (!osmem_mapcache_put(base, len))
		osmem_os_unmap(base, len);
}

/* The spare, of the length asked for, is live again: its payload. */
static inline void *spare_revive(void)
{
	assert(*reg.spare.slot == (reg.spare.key | SLOT_FREED));
	*reg.spare.slot = reg.spare.key;
	reg.live++;
	reg.bytes += reg.spare.len;
	osmem_usage_add(reg.spare.len);
	reg.spare.len = 0;
	return (void *)reg.spare.key;
}

/* The rest of osmem_mapped_alloc, which found no spare of LEN bytes to
   take back: with the registry's lock held, which it lets go. */
static void *map_block(size_t n, size_t len, size_t align, bool cached_ok)
{
	size_t page = osmem_g.page_size;
	if (!registry_reserve()) {
		osmem_mapped_unlock();
		return NULL;
	}
	osmem_mapped_spare_flush();
	char *base = cached_ok ? osmem_mapcache_take(len) : NULL;
	if (base) {
		void *p = register_block(base, 0, len);
		osmem_mapped_unlock();
		return p;
	}
	/* About to map: the time of a system call, where reading the clock
	   costs nothing that counts (mapcache.c).  After the take, so that
	   an extent about to be reused is not unmapped first for being
	   old. */
	osmem_mapcache_expire();
	base = osmem_os_map(len);
	if (!base) {
		osmem_mapped_unlock();
		return NULL;
	}
	/* Over-aligned blocks: the payload sits ALIGN-aligned inside the
	   mapping, and the whole pages before and after it are given back. */
	uintptr_t payload = osmem_align_up((uintptr_t)base + CHUNK_HEADER, align);
	size_t offset = payload - CHUNK_HEADER - (uintptr_t)base;
	size_t lead = osmem_align_down(offset, page);
	if (lead) {
		osmem_os_unmap(base, lead);
		base += lead;
		offset -= lead;
		len -= lead;
	}
	size_t keep = mapping_len(n, offset);
	if (keep < len) {
		osmem_os_unmap(base + keep, len - keep);
		len = keep;
	}
	void *p = register_block(base, offset, len);
	osmem_mapped_unlock();
	return p;
}

/* Taking the spare back is the short path; map_block does the rest. */
void *osmem_mapped_alloc(size_t n, size_t align, bool fresh)
{
	size_t slack = align > OSMEM_ALIGN ? align : 0;
	size_t len = mapping_len(n + slack, 0);
	/* Cached pages hold old bytes, so a FRESH request maps new ones; an
	   over-aligned one (only ever fresh) would need its lead cut off. */
	bool cached_ok = !slack && !fresh;
	osmem_mapped_lock();
	if (cached_ok && reg.spare.len == len) {
		void *p = spare_revive();
		osmem_mapped_unlock();
		return p;
	}
	return map_block(n, len, align, cached_ok);
}

/* The rest of osmem_mapped_free, for a block that does not become the
   spare: with the registry's lock held, which it lets go. */
static void unmap_block(uintptr_t *slot, struct chunk *c, size_t offset, size_t size,
                        bool huge)
{
	osmem_mapped_spare_flush();
	registry_drop(slot, offset + size);
	/* The whole mapping goes to the cache, over-aligned blocks' lead
	   included: it is all whole pages. */
	bool kept = !huge && osmem_mapcache_put((char *)c - offset, offset + size);
	osmem_mapped_unlock();
	if (!kept)
		osmem_os_unmap((char *)c - offset, offset + size);
}

void osmem_mapped_free(void *p, const char *func)
{
	osmem_mapped_lock();
	uintptr_t *slot = registry_vouch(p, func, "double free detected");
	size_t size, offset;
	bool huge;
	struct chunk *c = mapped_chunk(p, &size, &offset, &huge, func);
	reg.recent[reg.recent_next++ % RECENT_COUNT] = (uintptr_t)p;
	if (!offset && !huge && !reg.spare.len && !osmem_mapcache_bytes() &&
	    size <= __atomic_load_n(&osmem_g.opt.map_cache, __ATOMIC_RELAXED)) {
		/* The spare: still registered, marked freed. */
		*slot = (uintptr_t)p | SLOT_FREED;
		reg.spare.key = (uintptr_t)p;
		reg.spare.slot = slot;
		reg.spare.base = (char *)c;
		reg.spare.len = size;
		reg.live--;
		reg.bytes -= size;
		osmem_usage_sub(size);
		osmem_mapped_unlock();
		return;
	}
	unmap_block(slot, c, offset, size, huge);
}

size_t osmem_mapped_usable(const void *p, const char *func)
{
	osmem_mapped_lock();
	registry_vouch(p, func, "block was already freed");
	size_t size, offset;
	bool huge;
	mapped_chunk(p, &size, &offset, &huge, func);
	osmem_mapped_unlock();
	return size - CHUNK_HEADER;
}

/* A buffer that realloc grows is being filled, so from OSMEM_HUGE_GROW up
   its mapping asks for transparent huge pages: each 2 MiB of the new part
   that the program writes then costs one page fault instead of 512
   (realloc-grow in bench/, which writes every byte).  Memory it does not
   touch costs at most the rest of one huge page at its end.  The flag in
   the header (PREV_HUGE) keeps such a block out of the cache when it is
   freed or shrunk. */
static bool huge_wanted(size_t len)
{
	size_t from = __atomic_load_n(&osmem_g.opt.huge_grow, __ATOMIC_RELAXED);
	return from && len >= from;
}

/* Block C, at OFFSET in the LEN-byte mapping at BASE, has just been
   resized by realloc.  ADVISED: its mapping was advised before and was
   resized or moved whole, and the kernel kept the advice with it.
   Otherwise the mapping may be made of several (cached pages taken after
   its end), and it is advised whole if it is long enough now. */
static void advise_grown(struct chunk *c, char *base, size_t offset, size_t len, bool advised)
{
	if (!advised && (!huge_wanted(len) || !osmem_os_advise_huge(base, len)))
		return;
	chunk_set_prev(c, offset | PREV_HUGE);
}

/* The mapping length for a block growing to LEN bytes of mapping.  A huge
   page can only back an aligned range that lies wholly inside the
   mapping, so a mapping that will be advised grows by whole huge pages:
   then the part being written at its end can be one too, and when the
   kernel moves it, it places a length of whole huge pages on a huge page
   boundary.  The unit is what one page-table page maps (2 MiB with 4 KiB
   pages), and it is used only where it is at most a quarter of the
   mapping. */
static size_t huge_len(size_t len)
{
	size_t unit = osmem_g.page_size * (osmem_g.page_size / sizeof(void *));
	if (!huge_wanted(len) || unit > len / 4)
		return len;
	return osmem_align_up(len, unit);
}

void *osmem_mapped_remap(void *p, size_t n, const char *func)
{
	osmem_mapped_lock();
	osmem_mapped_spare_flush();
	uintptr_t *slot = registry_vouch(p, func, "block was already freed");
	size_t size, offset;
	bool huge;
	struct chunk *c = mapped_chunk(p, &size, &offset, &huge, func);
	char *base = (char *)c - offset;
	size_t have = offset + size, len = mapping_len(n, offset);
	/* An advised block keeps whole huge pages when it shrinks too, so
	   that a request that still fits them leaves its mapping alone. */
	if (len > have || huge)
		len = huge_len(len);
	if (len == have) {
		osmem_mapped_unlock();
		return p;
	}
	/* Without a system call where the cache allows: a shrinking block's
	   tail pages are cached (unless advised to use huge pages), and a
	   growing one takes the cached pages right after its end. */
	bool in_place = len < have ? !huge && osmem_mapcache_put(base + len, have - len)
	                           : osmem_mapcache_take_at(base + have, len - have);
	if (in_place) {
		chunk_set_tag(c, len - offset, CHUNK_MAPPED);
		registry_resize(have, len);
		/* The pages taken are a mapping of their own, not advised. */
		if (len > have)
			advise_grown(c, base, offset, len, false);
		osmem_mapped_unlock();
		return p;
	}
	/* mremap works within one kernel mapping only, and a block carved
	   from cached extents may span several (the kernel merges neighbouring
	   mappings only when it can): such a block, or any block when mremap
	   fails, is left for the caller to copy. */
	osmem_mapcache_expire();
	char *moved = osmem_os_remap(base, have, len);
	if (!moved) {
		osmem_mapped_unlock();
		return NULL;
	}
	registry_drop(slot, have);
	/* The drop above left a reusable slot, so no reserve is needed. */
	p = register_block(moved, offset, len);
	/* mremap keeps the advice with the mapping, grown or shrunk. */
	if (len > have || huge)
		advise_grown(chunk_of(p), moved, offset, len, huge);
	osmem_mapped_unlock();
	return p;
}

bool osmem_mapped_can_remap(void)
{
#if defined(HAVE_MREMAP) && defined(HAVE_DECL_MREMAP_MAYMOVE_FLAG)
	return true;
#else
	return false;
#endif
}

void osmem_mapped_stats(size_t *blocks, size_t *bytes, size_t *cached)
{
	osmem_mapped_lock();
	osmem_mapped_spare_flush();
	osmem_mapcache_expire();
	*blocks = reg.live;
	*bytes = reg.bytes;
	*cached = osmem_mapcache_bytes();
	osmem_mapped_unlock();
}

void osmem_mapped_release_cache(void)
{
	osmem_mapped_set_cache_limit(osmem_g.opt.map_cache, 0);
}

void osmem_mapped_set_cache_limit(size_t limit, size_t keep)
{
	osmem_mapped_lock();
	__atomic_store_n(&osmem_g.opt.map_cache, limit, __ATOMIC_RELAXED);
	osmem_mapped_spare_flush();
	osmem_mapcache_trim(keep < limit ? keep : limit);
	osmem_mapped_unlock();
}

/* Read off the headers rather than counted as blocks change: only
   os_malloc_info asks. */
void osmem_mapped_huge(size_t *blocks, size_t *bytes)
{
	*blocks = *bytes = 0;
	for (size_t i = 0; i < reg.cap; i++) {
		if (!slot_is_live(reg.slots[i]))
			continue;
		size_t size, offset;
		bool huge;
		mapped_chunk((const void *)reg.slots[i], &size, &offset, &huge, "os_malloc_info");
		if (huge) {
			++*blocks;
			*bytes += offset + size;
		}
	}
}

/* Every registered block must carry an intact MAPPED header. */
const char *osmem_mapped_verify(const void **at)
{
	const char *err = NULL;
	osmem_mapped_lock();
	for (size_t i = 0; i < reg.cap && !err; i++) {
		if (!slot_is_live(reg.slots[i]))
			continue;
		const struct chunk *c = chunk_of((const void *)reg.slots[i]);
		uint64_t v, pv;
		*at = (const void *)reg.slots[i];
		if (!unseal(&c->tag, &v) || tag_state(v) != CHUNK_MAPPED || !unseal(&c->prev_tag, &pv))
			err = "corrupted block header";
	}
	osmem_mapped_unlock();
	return err;
}

void osmem_mapped_after_fork_child(void)
{
	osmem_lock_reset(&reg.lock);
}
