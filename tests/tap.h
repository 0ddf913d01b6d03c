/*
 * tap.h - a minimal Test Anything Protocol emitter for libosmem's tests.
 *
 * Output goes to stdout, which automake's TAP driver reads.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_TAP_H
#define OSMEM_TAP_H

#include <stdbool.h>

void tap_plan(int n);
/* Records one test point; returns COND so callers can bail out early. */
bool tap_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tap_skip(int n, const char *why);
void tap_skip_all(const char *why) __attribute__((noreturn));
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tap_bail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Prints the plan if none was given and returns the exit status. */
int tap_done(void);

#define ok(cond, ...) tap_ok((cond), __VA_ARGS__)
#define is_int(got, want, name) \
	tap_ok((long long)(got) == (long long)(want), "%s (got %lld, want %lld)", (name), \
	       (long long)(got), (long long)(want))

#endif
