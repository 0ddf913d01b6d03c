/*
 * strace-prog.c - a fixed sequence of allocations for t-strace.sh to watch
 * under strace.  Between the steps it writes markers to file descriptor -1
 * (the write fails with EBADF, but strace shows its bytes), so the script
 * can tell which system calls each step made.  Markers carry the addresses
 * and sizes of the blocks involved.
 *
 * The program uses no stdio and no C library allocation, so every brk,
 * mmap, munmap and mremap between the markers is libosmem's.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

static char line[256];
static size_t len;

static void put(const char *s)
{
	while (*s && len < sizeof(line) - 1)
		line[len++] = *s++;
}

static void put_hex(uintptr_t v)
{
	char d[2 * sizeof(v)];
	int n = 0;
	do
		d[n++] = "0123456789abcdef"[v & 15];
	while (v >>= 4);
	put("0x");
	while (n && len < sizeof(line) - 1)
		line[len++] = d[--n];
}

/* marker("name", p, n): write(-1, "osmem-marker name p=0x... n=0x...") */
static void marker(const char *name, const void *p, size_t n)
{
	len = 0;
	put("osmem-marker ");
	put(name);
	put(" p=");
	put_hex((uintptr_t)p);
	put(" n=");
	put_hex(n);
	ssize_t r = write(-1, line, len);
	(void)r;
}

enum { NSMALL = 40 };

int main(void)
{
	static void *small[NSMALL];
	static const size_t large[3] = { 200 * KiB, MiB, 3 * MiB + 5 };
	void *l[3];
	int failed = 0;

	/* The first small requests: one growth of the break serves them all. */
	marker("small-start", NULL, NSMALL);
	/* Thread-cache sizes and heap sizes, about 50 KiB in all. */
	for (int i = 0; i < NSMALL; i++) {
		size_t n = (size_t)(i % 4 == 0 ? 16 + i * 8 : 1100 + i * 20);
		small[i] = os_malloc(n);
		if (!small[i])
			failed = 1;
		else
			memset(small[i], i, n);
	}
	marker("small-end", NULL, NSMALL);

	/* One large block first, so that the registry of mappings exists. */
	void *warm = os_malloc(MiB);
	os_free(warm);

	/* Large blocks: one mapping each, unmapped on free. */
	for (int i = 0; i < 3; i++) {
		marker("large-alloc", NULL, large[i]);
		l[i] = os_malloc(large[i]);
		if (!l[i])
			failed = 1;
		else
			memset(l[i], 0x11, 4096);
		marker("large-got", l[i], large[i]);
	}
	marker("large-free", l[0], large[0]);
	os_free(l[0]);
	marker("large-freed", l[0], large[0]);

	/* A large block resized: mremap, nothing else. */
	marker("realloc", l[1], 8 * MiB);
	void *r = os_realloc(l[1], 8 * MiB);
	if (!r || ((unsigned char *)r)[0] != 0x11)
		failed = 1;
	else
		l[1] = r;
	marker("realloc-got", l[1], 8 * MiB);

	marker("large-free", l[1], 8 * MiB);
	os_free(l[1]);
	marker("large-freed", l[1], 8 * MiB);
	marker("large-free", l[2], large[2]);
	os_free(l[2]);
	marker("large-freed", l[2], large[2]);

	for (int i = 0; i < NSMALL; i++)
		os_free(small[i]);
	marker("end", NULL, 0);
	return failed;
}
