/*
 * death.h - test cases that each run in a fresh process.
 *
 * A test program lists its cases and calls dt_main() first thing in main.
 * dt_run() starts the program again (execv of its own binary) with the
 * name of one case and an environment of the test's choosing, so every
 * case begins with an allocator that has not read its options yet and a
 * heap nobody else has touched.  The parent collects the child's standard
 * output and standard error and how it ended, and turns that into TAP
 * points:
 *  - dt_expect_abort: the child died of SIGABRT after writing exactly one
 *    line, "osmem: FUNC(): PROBLEM (ptr=0x...)", naming the pointer the
 *    case noted with dt_note_ptr (when it noted one);
 *  - dt_relay: the checks the child made with dt_check become points of
 *    the parent, and one more says the child exited with status 0.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef OSMEM_DEATH_H
#define OSMEM_DEATH_H

#include <stdbool.h>
#include <stddef.h>

struct dt_case {
	const char *name;
	void (*fn)(void);
};
#define DT_CASE(fn) { #fn, fn }

#define DT_OUT_MAX 16384

struct dt_result {
	bool started;   /* the child was started and waited for */
	bool timed_out; /* and killed after DT_TIMEOUT seconds */
	int status;     /* its wait status */
	char out[DT_OUT_MAX];
	size_t out_len;
	char err[DT_OUT_MAX];
	size_t err_len;
};

/* Seconds a child may take before it is killed. */
#define DT_TIMEOUT 60

/* When ARGV asks for a case ("--case NAME"), runs it and exits: status 0
   when it returned and all its dt_checks passed, 1 otherwise.  Returns
   otherwise. */
void dt_main(int argc, char **argv, const struct dt_case *cases, size_t ncases);

/* Runs case NAME in a fresh process started from this program's binary.
   Its environment is ours without any OSMEM_* variable, plus ENV: a
   NULL-terminated list of "NAME=VALUE" strings (ENV may be NULL).
   Standard input is /dev/null and no core file is written.  Returns
   R->started. */
bool dt_run(const char *name, const char *const *env, struct dt_result *r);

/* In a case: tells the parent which pointer the coming report must name. */
void dt_note_ptr(const void *p);
/* In a case: one check, reported to the parent; returns COND. */
bool dt_check(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* In the parent: one TAP point, "NAME: ...", passing when R died of
   SIGABRT with exactly one line on standard error, "osmem: FUNC():
   PROBLEM (ptr=0x...)", whose pointer is the one the case noted (if it
   noted one).  When the line instead names the problem KNOWN (not NULL),
   the point is reported as a TODO with the reason TODO_WHY. */
bool dt_expect_abort(const char *name, const struct dt_result *r, const char *func,
                     const char *problem);
bool dt_expect_abort_todo(const char *name, const struct dt_result *r, const char *func,
                          const char *problem, const char *known, const char *todo_why);
/* In the parent: one TAP point per dt_check of the child, then one saying
   the child exited with status 0.  Returns true when all passed. */
bool dt_relay(const char *name, const struct dt_result *r);
/* Ends the TAP stream (tap_done) and returns the exit status: 1 when a
   point made here failed other than as a TODO.  For programs whose every
   point comes from these functions. */
int dt_done(void);
/* A description of how R ended ("exit 0", "signal 6 (Aborted)", ...). */
const char *dt_describe(const struct dt_result *r);
/* Prints the child's standard error as TAP comments. */
void dt_diag_output(const struct dt_result *r);

#endif
