/*
 * consumer.c - a program that uses libosmem the way an outside project
 * would: through the installed <osmem.h> and the flags pkg-config gives.
 * "make installcheck" builds it against the installed tree, once linked
 * to the shared library and once statically, and runs both.
 *
 * SPDX-License-Identifier: MIT
 */
#include <osmem.h>

#include <stdio.h>
#include <string.h>

static int failures;

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "consumer: %s\n", what);
		failures++;
	}
}

/* Returns 1 if the N bytes at P all equal BYTE. */
static int all_equal(const unsigned char *p, size_t n, unsigned char byte)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != byte)
			return 0;
	return 1;
}

int main(void)
{
	/* A small block, served from the heap. */
	unsigned char *small = os_malloc(100);
	check(small != NULL, "os_malloc(100) failed");
	if (small) {
		memset(small, 0xa5, 100);
		check(all_equal(small, 100, 0xa5), "small block lost its contents");
	}

	/* Zero-filled memory, in the heap and in a mapping of its own. */
	size_t counts[] = { 64, 300000 };
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		unsigned char *z = os_calloc(counts[i], 1);
		check(z != NULL, "os_calloc failed");
		if (z) {
			check(all_equal(z, counts[i], 0), "os_calloc memory is not zero");
			os_free(z);
		}
	}

	/* Growing keeps the old bytes, small to large and back. */
	if (small) {
		unsigned char *grown = os_realloc(small, 1000);
		check(grown != NULL, "os_realloc to 1000 bytes failed");
		if (grown) {
			small = grown;
			check(all_equal(small, 100, 0xa5), "os_realloc lost the contents");
			memset(small + 100, 0x5a, 900);
		}
		grown = os_realloc(small, 256 * 1024);
		check(grown != NULL, "os_realloc to 256 KiB failed");
		if (grown) {
			small = grown;
			check(all_equal(small, 100, 0xa5) && all_equal(small + 100, 900, 0x5a),
			      "os_realloc into a mapping lost the contents");
		}
		grown = os_realloc(small, 50);
		check(grown != NULL, "os_realloc down to 50 bytes failed");
		if (grown) {
			small = grown;
			check(all_equal(small, 50, 0xa5), "shrinking lost the contents");
		}
		os_free(small);
	}

	os_free(NULL);

	if (failures)
		return 1;
	puts("ok");
	return 0;
}
