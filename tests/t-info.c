/*
 * t-info.c - os_malloc_info writes one valid JSON document that agrees
 * with os_mallinfo, also while other threads allocate.
 *
 * Validity is checked twice: by python3's json.tool where python3 is
 * installed, and always by a structural check written here (strings,
 * balanced braces and brackets, no trailing comma, one value).
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

/* The document os_malloc_info writes, in memory the C library owns. */
static char *info_document(int *rc, int *err)
{
	char *doc = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&doc, &len);
	if (!f)
		return NULL;
	errno = 0;
	*rc = os_malloc_info(0, f);
	*err = errno;
	fclose(f);
	return doc;
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

/* The number after "KEY": in DOC (the first one), or (size_t)-1. */
static size_t number_after(const char *doc, const char *key)
{
	char pattern[64];
	snprintf(pattern, sizeof(pattern), "\"%s\": ", key);
	const char *p = strstr(doc, pattern);
	return p ? (size_t)strtoull(p + strlen(pattern), NULL, 10) : (size_t)-1;
}

static void single(void)
{
	void *small[50], *heap = os_malloc(5000), *big = os_malloc(MiB);
	for (int i = 0; i < 50; i++)
		small[i] = os_malloc(64);
	for (int i = 0; i < 50; i += 2)
		os_free(small[i]);
	os_free(os_malloc(2 * MiB)); /* a freed mapping, kept */
	struct os_mallinfo mi = os_mallinfo();
	int rc, err;
	char *doc = info_document(&rc, &err);
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
	ok(number_after(doc, "mapped_bytes") == mi.mapped_bytes &&
	   number_after(doc, "mapped_blocks") == mi.mapped_blocks,
	   "its totals are os_mallinfo's (%zu mapped bytes in %zu blocks)", mi.mapped_bytes,
	   mi.mapped_blocks);
	ok(strstr(doc, "\"index\": 0") && strstr(doc, "\"uses_brk\": true"),
	   "it lists the main arena, on the break");
	if (hv_cache_max() == 0)
		tap_skip(1, "no thread caches (OSMEM_CACHE_MAX=0)");
	else
		ok(strstr(doc, "\"thread_cached\": [\n") && number_after(doc, "size") == 80,
		   "it lists the cached blocks by size (the 64-byte ones, 80 with the header)");
	ok(number_after(doc, "limit") == 32 * MiB && strstr(doc, "\"extents\": [{"),
	   "it shows the freed mappings kept and their limit");
	ok(number_after(doc, "mmap_threshold") == 128 * KiB, "and the settings in force");
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

	for (int i = 1; i < 50; i += 2)
		os_free(small[i]);
	os_free(heap);
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
		char *doc = info_document(&rc, &err);
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
