/*
 * t-info.c - os_malloc_info writes one valid JSON document that agrees
 * with os_mallinfo, also while other threads allocate.
 *
 * Validity is checked twice: by python3's json.tool where python3 is
 * installed, and always by a structural check written here (strings,
 * balanced braces and brackets, no trailing comma, one value).  Its
 * numbers are checked against os_mallinfo and against each other, and a
 * stream that cannot be written must make it fail with the stream's errno.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include "heapview.h"
#include "tap.h"
#include "tutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

/* NULL when DOC is one JSON object, structurally, else the problem. */
static const char *json_shape(const char *doc)
{
	char stack[64];
	int depth = 0;
	bool in_string = false, started = false, value_ended = false;
	char last = 0; /* the last character outside strings and blanks */
	for (const char *p = doc; *p; p++) {
		char c = *p;
		if (in_string) {
			if (c == '\\' && p[1])
				p++;
			else if (c == '"')
				in_string = false;
			else if ((unsigned char)c < 0x20)
				return "control character in a string";
			continue;
		}
		if (c == ' ' || c == '\n' || c == '\t' || c == '\r')
			continue;
		if (value_ended)
			return "text after the document";
		if (!started && c != '{')
			return "does not start with {";
		started = true;
		switch (c) {
		case '"':
			in_string = true;
			break;
		case '{':
		case '[':
			if (depth == (int)sizeof(stack))
				return "nested too deep";
			stack[depth++] = c;
			break;
		case '}':
		case ']':
			if (!depth || stack[depth - 1] != (c == '}' ? '{' : '['))
				return "unbalanced braces or brackets";
			if (last == ',')
				return "trailing comma";
			if (!--depth)
				value_ended = true;
			break;
		default:
			break;
		}
		last = c;
	}
	if (in_string)
		return "unterminated string";
	return value_ended ? NULL : "unbalanced braces or brackets";
}

/* 0 when python3's json.tool accepts DOC, 1 when it refuses it, -1 when
   there is no python3 to ask. */
static int python_accepts(const char *doc)
{
	if (system("command -v python3 >/dev/null 2>&1") != 0)
		return -1;
	char path[] = "/tmp/t-info.XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	tu_write_all(fd, doc, strlen(doc));
	close(fd);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "python3 -m json.tool %s >/dev/null", path);
	int status = system(cmd);
	unlink(path);
	return status == 0 ? 0 : 1;
}

/* The first S at or after FROM, or NULL (also when FROM is NULL). */
static const char *find(const char *from, const char *s)
{
	return from ? strstr(from, s) : NULL;
}

/* Where the list of member NAME starts ("[" included) in DOC; its end is
   the first "]" after it, as its objects hold no list.  NULL if absent. */
static const char *list_of(const char *doc, const char *name, const char **end)
{
	char pattern[64];
	snprintf(pattern, sizeof(pattern), "\"%s\": [", name);
	const char *p = strstr(doc, pattern);
	*end = p ? strchr(p, ']') : NULL;
	return *end ? p : NULL;
}

/* The sum of the numbers after "KEY": in list NAME of DOC, and in *N how
   many there are; (size_t)-1 if the list is missing. */
static size_t list_sum(const char *doc, const char *name, const char *key, size_t *n)
{
	const char *end, *p = list_of(doc, name, &end);
	char pattern[64];
	snprintf(pattern, sizeof(pattern), "\"%s\": ", key);
	size_t sum = 0, count = 0;
	if (!p)
		return (size_t)-1;
	while ((p = strstr(p, pattern)) && p < end) {
		p += strlen(pattern);
		sum += (size_t)strtoull(p, NULL, 10);
		count++;
	}
	if (n)
		*n = count;
	return sum;
}

/* Whether list "heap_free" of DOC has a class whose bounds hold a chunk
   of SIZE bytes and which counts at least one chunk, its bytes within
   what its bounds allow. */
static bool heap_free_holds(const char *doc, size_t size)
{
	const char *end, *p = list_of(doc, "heap_free", &end);
	while (p && (p = strstr(p, "{\"lo\": ")) && p < end) {
		size_t lo = tu_number_after(p, "lo"), count = tu_number_after(p, "count"),
		       bytes = tu_number_after(p, "bytes");
		const char *hi_at = find(p, "\"hi\": ");
		bool open = hi_at && strncmp(hi_at + 6, "null", 4) == 0;
		size_t hi = open ? (size_t)-1 : tu_number_after(p, "hi");
		if (lo <= size && size <= hi && count >= 1 && bytes >= count * lo &&
		    (open || bytes <= count * hi))
			return true;
		p++;
	}
	return false;
}

static void single(void)
{
	void *small[50], *big = os_malloc(MiB);
	for (int i = 0; i < 50; i++)
		small[i] = os_malloc(64);
	/* A free heap chunk between two blocks in use, which stays binned:
	   after the small blocks, whose cache would otherwise be refilled
	   from it, and returned to the heap before they are freed (and
	   kept). */
	void *heap[3];
	for (int i = 0; i < 3; i++)
		heap[i] = os_malloc(5000);
	hv_free_now(heap[1]);
	for (int i = 0; i < 50; i += 2)
		os_free(small[i]);
	os_free(os_malloc(2 * MiB)); /* a freed mapping, kept */
	struct os_mallinfo mi = os_mallinfo();
	int rc, err;
	char *doc = tu_info_document(&rc, &err);
	ok(doc && rc == 0, "os_malloc_info(0, stream) returns 0");
	if (!doc)
		return;
	const char *shape = json_shape(doc);
	ok(!shape, "it writes one JSON object%s%s", shape ? ": " : "", shape ? shape : "");
	int py = tu_under_valgrind() ? -1 : python_accepts(doc);
	if (py < 0)
		tap_skip(1, "python3 is not installed (or valgrind is running)");
	else
		ok(py == 0, "python3 -m json.tool accepts it");

	const char *totals = find(doc, "\"totals\": {"), *mapped = find(doc, "\"mapped\": {");
	ok(tu_number_after(totals, "mapped_bytes") == mi.mapped_bytes &&
	   tu_number_after(totals, "free_bytes") == mi.free_bytes &&
	   tu_number_after(totals, "cached_blocks") == mi.cached_blocks,
	   "its totals are os_mallinfo's");
	ok(mi.mapped_blocks == 1 && tu_number_after(mapped, "blocks") == mi.mapped_blocks &&
	   tu_number_after(mapped, "bytes") == mi.mapped_bytes && mi.mapped_bytes >= MiB,
	   "it counts the live mapped block (%zu bytes)", mi.mapped_bytes);

	size_t arenas = 0, free_bytes = list_sum(doc, "arenas", "free_bytes", &arenas);
	size_t tops = list_sum(doc, "arenas", "top_bytes", NULL);
	size_t binned = list_sum(doc, "heap_free", "bytes", NULL);
	ok(arenas >= 1 && strstr(doc, "\"index\": 0, \"uses_brk\": true"),
	   "it lists %zu arena(s), the main one on the break", arenas);
	/* 5000 bytes and a 16-byte header: already a multiple of 16. */
	ok(heap_free_holds(doc, 5000 + 16), "the freed 5000-byte block is in its size class");
	ok(free_bytes == mi.free_bytes && binned + tops == free_bytes,
	   "the free bytes of the classes and the tops add up to the arenas' (%zu + %zu of %zu)",
	   binned, tops, free_bytes);
	if (hv_cache_max() == 0) {
		tap_skip(1, "no thread caches (OSMEM_CACHE_MAX=0)");
	} else {
		size_t classes = 0, cached = list_sum(doc, "thread_cached", "count", &classes);
		ok(cached == mi.cached_blocks && cached >= 1 &&
		   tu_number_after(find(doc, "\"thread_cached\": ["), "lo") == 80 &&
		   tu_number_after(find(doc, "\"thread_cached\": ["), "hi") == 80,
		   "it lists the cached blocks by size (%zu in %zu class(es), 80-byte chunks first)",
		   cached, classes);
	}
	size_t extents = 0, kept = list_sum(doc, "extents", "bytes", &extents);
	ok(extents >= 1 && kept >= 2 * MiB &&
	   kept == tu_number_after(find(mapped, "\"cache\""), "bytes") &&
	   tu_number_after(mapped, "limit") == 52 * MiB,
	   "it shows the freed mappings kept (%zu bytes in %zu extent(s)) and their limit", kept,
	   extents);
	ok(tu_number_after(doc, "mmap_threshold") == 128 * KiB &&
	   tu_number_after(doc, "huge_grow") == 8 * MiB &&
	   tu_number_after(doc, "page_size") == (size_t)sysconf(_SC_PAGESIZE),
	   "and the settings in force");
	free(doc);

	char *none = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&none, &len);
	errno = 0;
	rc = f ? os_malloc_info(1, f) : 0;
	err = errno;
	if (f)
		fclose(f);
	ok(rc == -1 && err == EINVAL && len == 0, "options other than 0: -1, EINVAL, nothing written");
	free(none);

	/* Writes to /dev/full fail with ENOSPC once the buffer is flushed. */
	f = fopen("/dev/full", "w");
	if (!f) {
		tap_skip(1, "no /dev/full");
	} else {
		errno = 0;
		rc = os_malloc_info(0, f);
		err = errno;
		fclose(f);
		ok(rc == -1 && err == ENOSPC, "a stream that cannot be written: -1, its errno (%s)",
		   strerror(err));
	}

	for (int i = 1; i < 50; i += 2)
		os_free(small[i]);
	os_free(heap[0]);
	os_free(heap[2]);
	os_free(big);
}

static bool stop; /* read and written atomically */

static void *churn(void *arg)
{
	struct tu_rng r;
	tu_rng_seed(&r, (uint64_t)(uintptr_t)arg);
	void *v[256] = { 0 };
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		size_t i = (size_t)tu_rng_below(&r, 256);
		os_free(v[i]);
		size_t n = (size_t)1 << tu_rng_below(&r, 19);
		v[i] = os_malloc(n + (size_t)tu_rng_below(&r, n));
	}
	for (size_t i = 0; i < 256; i++)
		os_free(v[i]);
	return NULL;
}

static void concurrent(void)
{
	pthread_t t[2];
	for (uintptr_t i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, churn, (void *)(i + 1));
	unsigned bad = 0, failed = 0, python_bad = 0, asked = 0;
	for (int i = 0; i < 50; i++) {
		int rc, err;
		char *doc = tu_info_document(&rc, &err);
		if (!doc || rc != 0)
			failed++;
		else if (json_shape(doc))
			bad++;
		else if (i % 10 == 0 && !tu_under_valgrind() && python_accepts(doc) == 1)
			python_bad++;
		asked += doc && i % 10 == 0;
		free(doc);
	}
	__atomic_store_n(&stop, true, __ATOMIC_RELAXED);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ok(failed == 0 && bad == 0 && python_bad == 0,
	   "50 documents written while 2 threads allocate: all valid (%u failed, %u malformed, "
	   "%u refused by python3 of %u asked)",
	   failed, bad, python_bad, asked);
}

int main(void)
{
	ok(json_shape("{\"a\": [1, {\"b\": \"}\"}]}\n") == NULL && json_shape("{\"a\": 1,}") &&
	   json_shape("{\"a\": [1}") && json_shape("{} {}"), "the structural check tells good from bad");
	single();
	concurrent();
	return tap_done();
}
