/*
 * aligned.c - the entry points for blocks with a stricter alignment.
 *
 * An aligned block is an ordinary block whose payload happens to sit on
 * the requested boundary, so os_free, os_realloc and
 * os_malloc_usable_size need nothing special for it.  The slack needed to
 * find the boundary is given back: on the heap as free chunks, in a
 * mapping as unmapped pages.
 *
 * SPDX-License-Identifier: MIT
 */
#include <osmem.h>

#include "arena.h"
#include "init.h"
#include "mapped.h"
#include "reclaim.h"

#include <errno.h>

/* SIZE bytes aligned to ALIGN (a power of two, more than OSMEM_ALIGN)
   from the heap, or NULL. */
static void *heap_aligned(size_t align, size_t size)
{
	struct arena *h = my_arena();
	arena_lock(h);
	struct chunk *c = osmem_heap_alloc_aligned(h, chunk_size_for(size), align);
	arena_unlock(h);
	return c ? chunk_payload(c) : NULL;
}

/* The usual way: large ones in a fresh mapping, others from the heap, or
   a mapping when the heap cannot grow.  A fresh mapping, never a reused
   one, keeps the promise of no more than one alignment's worth of waste. */
static void *aligned_once(size_t align, size_t size)
{
	size_t need = align > OSMEM_ALIGN ? size + align : size;
	if (need >= osmem_g.opt.mmap_threshold)
		return osmem_mapped_alloc(size, align, true);
	void *p = heap_aligned(align, size);
	return p ? p : osmem_mapped_alloc(size, align, true);
}

/* SIZE bytes aligned to ALIGN (a power of two), or NULL: errno is not set
   here, the callers report in their own ways.  As for os_malloc, what is
   held for reuse is given back before giving up, and a large block may
   come from the heap's free space. */
static void *alloc_aligned(size_t align, size_t size)
{
	osmem_ensure_started();
	if (align > OSMEM_MAX_REQUEST || size > OSMEM_MAX_REQUEST - align)
		return NULL;
	if (align < OSMEM_ALIGN)
		align = OSMEM_ALIGN;
	/* Every block has that alignment: os_malloc, with its own last
	   resort, serves those below the threshold. */
	if (align == OSMEM_ALIGN && size < osmem_g.opt.mmap_threshold)
		return os_malloc(size);
	void *p = aligned_once(align, size);
	if (likely(p != NULL))
		return p;
	osmem_reclaim();
	p = aligned_once(align, size);
	if (!p)
		p = align > OSMEM_ALIGN ? heap_aligned(align, size) : os_malloc(size);
	return p;
}

static bool is_power_of_two(size_t x) { return x && !(x & (x - 1)); }

OSMEM_PUBLIC int os_posix_memalign(void **memptr, size_t alignment, size_t size)
{
	if (!is_power_of_two(alignment) || alignment % sizeof(void *))
		return EINVAL;
	int saved = errno;
	void *p = alloc_aligned(alignment, size);
	errno = saved;
	if (!p)
		return ENOMEM;
	*memptr = p;
	return 0;
}

OSMEM_PUBLIC void *os_aligned_alloc(size_t alignment, size_t size)
{
	if (!is_power_of_two(alignment)) {
		errno = EINVAL;
		return NULL;
	}
	void *p = alloc_aligned(alignment, size);
	if (!p)
		errno = ENOMEM;
	return p;
}

OSMEM_PUBLIC void *os_memalign(size_t alignment, size_t size)
{
	return os_aligned_alloc(alignment, size);
}
