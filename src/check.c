/*
 * check.c - the single way libosmem reports misuse and corruption.
 *
 * A report is one line on standard error, written with write(2) from a
 * buffer on the stack, followed by abort().  Nothing here allocates, takes
 * a lock or uses stdio: the heap may be in any state when we get here.
 *
 * SPDX-License-Identifier: MIT
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct line {
	char buf[256];
	size_t len;
};

static void line_put(struct line *l, const char *s)
{
	while (*s && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = *s++;
}

static void line_put_hex(struct line *l, uintptr_t v)
{
	char digits[2 * sizeof(v) + 1];
	size_t n = 0;
	do {
		digits[n++] = "0123456789abcdef"[v & 0xf];
		v >>= 4;
	} while (v);
	line_put(l, "0x");
	while (n && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = digits[--n];
}

static void line_write(struct line *l)
{
	l->buf[l->len++] = '\n';
	const char *p = l->buf;
	size_t left = l->len;
	while (left) {
		ssize_t w = write(STDERR_FILENO, p, left);
		if (w <= 0)
			break;
		p += w;
		left -= (size_t)w;
	}
}

void osmem_fatal(const char *func, const char *problem, const void *ptr)
{
	struct line l = { .len = 0 };
	line_put(&l, "osmem: ");
	line_put(&l, func);
	line_put(&l, "(): ");
	line_put(&l, problem);
	line_put(&l, " (ptr=");
	line_put_hex(&l, (uintptr_t)ptr);
	line_put(&l, ")");
	line_write(&l);
	abort();
}

void osmem_warn(const char *msg, const char *detail)
{
	struct line l = { .len = 0 };
	line_put(&l, "osmem: ");
	line_put(&l, msg);
	if (detail) {
		line_put(&l, ": ");
		line_put(&l, detail);
	}
	line_write(&l);
}
