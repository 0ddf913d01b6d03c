/*
 * tap.c - see tap.h.
 *
 * SPDX-License-Identifier: MIT
 */
#include "tap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int planned = -1, run, failed;

void tap_plan(int n)
{
	planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

__attribute__((format(printf, 2, 0)))
static void vline(const char *prefix, const char *fmt, va_list ap)
{
	fputs(prefix, stdout);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
}

bool tap_ok(bool cond, const char *fmt, ...)
{
	va_list ap;
	char prefix[64];
	run++;
	if (!cond)
		failed++;
	snprintf(prefix, sizeof(prefix), "%sok %d - ", cond ? "" : "not ", run);
	va_start(ap, fmt);
	vline(prefix, fmt, ap);
	va_end(ap);
	return cond;
}

void tap_skip(int n, const char *why)
{
	while (n-- > 0)
		printf("ok %d # SKIP %s\n", ++run, why);
	fflush(stdout);
}

void tap_skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	fflush(stdout);
	exit(0);
}

void tap_diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vline("# ", fmt, ap);
	va_end(ap);
}

void tap_bail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vline("Bail out! ", fmt, ap);
	va_end(ap);
	exit(1);
}

int tap_done(void)
{
	if (planned < 0)
		tap_plan(run);
	else if (planned != run)
		tap_diag("planned %d tests but ran %d", planned, run);
	return failed || (planned >= 0 && planned != run) ? 1 : 0;
}
