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

void osmem_line_put(struct osmem_line *l, const char *s)
{
	while (*s && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = *s++;
}

void osmem_line_put_dec(struct osmem_line *l, size_t v)
{
	char digits[24];
	size_t n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = digits[--n];
}

void osmem_line_put_hex(struct osmem_line *l, uintptr_t v)
{
	char digits[2 * sizeof(v) + 1];
	size_t n = 0;
	do {
		digits[n++] = "0123456789abcdef"[v & 0xf];
		v >>= 4;
	} while (v);
	osmem_line_put(l, "0x");
	while (n && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = digits[--n];
}

void osmem_line_write(struct osmem_line *l)
{
	osmem_line_write_to(STDERR_FILENO, l);
}

void osmem_line_write_to(int fd, struct osmem_line *l)
{
	l->buf[l->len++] = '\n';
	const char *p = l->buf;
	size_t left = l->len;
	while (left) {
		ssize_t w = write(fd, p, left);
		if (w <= 0)
			break;
		p += w;
		left -= (size_t)w;
	}
}

void osmem_fatal(const char *func, const char *problem, const void *ptr)
{
	struct osmem_line l = { .len = 0 };
	osmem_line_put(&l, "osmem: ");
	osmem_line_put(&l, func);
	osmem_line_put(&l, "(): ");
	osmem_line_put(&l, problem);
	osmem_line_put(&l, " (ptr=");
	osmem_line_put_hex(&l, (uintptr_t)ptr);
	osmem_line_put(&l, ")");
	osmem_line_write(&l);
	abort();
}
