/*
 * death.c - see death.h.
 *
 * Nothing here calls the allocator under test: the parent side only uses
 * the C library, so a case's outcome depends on that case alone.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include "death.h"
#include "tutil.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char self_path[4096];
static bool checks_failed;
static unsigned points_failed; /* in the parent, TODOs not counted */

void dt_main(int argc, char **argv, const struct dt_case *cases, size_t ncases)
{
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
	if (n > 0) {
		self_path[n] = '\0';
	} else if (argc > 0) {
		snprintf(self_path, sizeof(self_path), "%s", argv[0]);
	}
	if (argc < 3 || strcmp(argv[1], "--case") != 0)
		return;
	for (size_t i = 0; i < ncases; i++) {
		if (strcmp(cases[i].name, argv[2]) == 0) {
			cases[i].fn();
			exit(checks_failed ? 1 : 0);
		}
	}
	fprintf(stderr, "%s: no case named '%s'\n", argv[0], argv[2]);
	exit(2);
}

/* In the child, between fork and exec: the environment of the case. */
static void set_case_env(const char *const *env)
{
	/* Names first: unsetenv changes environ under our feet. */
	char names[64][128];
	size_t n = 0;
	for (char **e = environ; *e && n < 64; e++) {
		const char *eq = strchr(*e, '=');
		size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
		if (strncmp(*e, "OSMEM_", 6) == 0 && len < sizeof(names[0])) {
			memcpy(names[n], *e, len);
			names[n++][len] = '\0';
		}
	}
	for (size_t i = 0; i < n; i++)
		unsetenv(names[i]);
	for (; env && *env; env++) {
		const char *eq = strchr(*env, '=');
		char name[128];
		size_t len = eq ? (size_t)(eq - *env) : 0;
		if (!eq || len >= sizeof(name))
			continue;
		memcpy(name, *env, len);
		name[len] = '\0';
		setenv(name, eq + 1, 1);
	}
}

static void collect(int fd, char *buf, size_t *len, bool *open_)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		*open_ = false;
		return;
	}
	size_t room = DT_OUT_MAX - 1 - *len;
	size_t take = (size_t)n < room ? (size_t)n : room;
	memcpy(buf + *len, tmp, take);
	*len += take;
	buf[*len] = '\0';
}

bool dt_run(const char *name, const char *const *env, struct dt_result *r)
{
	int out[2], err[2];
	memset(r, 0, sizeof(*r));
	if (pipe2(out, O_CLOEXEC) < 0)
		return false;
	if (pipe2(err, O_CLOEXEC) < 0) {
		close(out[0]);
		close(out[1]);
		return false;
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		close(out[0]);
		close(out[1]);
		close(err[0]);
		close(err[1]);
		return false;
	}
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };
		int null = open("/dev/null", O_RDONLY);
		if (null >= 0)
			dup2(null, STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		setrlimit(RLIMIT_CORE, &no_core);
		set_case_env(env);
		char *argv[] = { self_path, (char *)"--case", (char *)name, NULL };
		execv(self_path, argv);
		static const char msg[] = "death.c: cannot execute the test program\n";
		tu_write_all(STDERR_FILENO, msg, sizeof(msg) - 1);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);

	bool out_open = true, err_open = true;
	time_t deadline = time(NULL) + DT_TIMEOUT;
	while (out_open || err_open) {
		struct pollfd fds[2] = { { out_open ? out[0] : -1, POLLIN, 0 },
			                 { err_open ? err[0] : -1, POLLIN, 0 } };
		time_t now = time(NULL);
		if (now >= deadline) {
			kill(pid, SIGKILL);
			r->timed_out = true;
			break;
		}
		int rc = poll(fds, 2, (int)(deadline - now) * 1000);
		if (rc < 0 && errno != EINTR)
			break;
		if (rc <= 0)
			continue;
		if (fds[0].revents)
			collect(out[0], r->out, &r->out_len, &out_open);
		if (fds[1].revents)
			collect(err[0], r->err, &r->err_len, &err_open);
	}
	close(out[0]);
	close(err[0]);
	while (waitpid(pid, &r->status, 0) < 0) {
		if (errno != EINTR)
			return false;
	}
	r->started = true;
	return true;
}

void dt_note_ptr(const void *p)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "ptr=0x%" PRIxPTR "\n", (uintptr_t)p);
	tu_write_all(STDOUT_FILENO, line, (size_t)n);
}

bool dt_check(bool cond, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n = snprintf(line, sizeof(line), "check %s: ", cond ? "ok" : "not ok");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	for (char *c = line + n; *c; c++)
		if (*c == '\n')
			*c = ' ';
	size_t len = strlen(line);
	line[len++] = '\n';
	tu_write_all(STDOUT_FILENO, line, len);
	if (!cond)
		checks_failed = true;
	return cond;
}

const char *dt_describe(const struct dt_result *r)
{
	static char buf[128];
	if (!r->started)
		return "could not be started";
	if (r->timed_out)
		return "timed out and was killed";
	if (WIFEXITED(r->status))
		snprintf(buf, sizeof(buf), "exited with status %d", WEXITSTATUS(r->status));
	else if (WIFSIGNALED(r->status))
		snprintf(buf, sizeof(buf), "died of signal %d (%s)", WTERMSIG(r->status),
		         strsignal(WTERMSIG(r->status)));
	else
		snprintf(buf, sizeof(buf), "ended with wait status %#x", (unsigned)r->status);
	return buf;
}

void dt_diag_output(const struct dt_result *r)
{
	const char *p = r->err;
	while (*p) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);
		tap_diag("  stderr: %.*s", len, p);
		p += len + (nl != NULL);
	}
}

/* The pointer the case noted last, if any. */
static bool noted_ptr(const struct dt_result *r, uintptr_t *ptr)
{
	bool found = false;
	for (const char *p = r->out; (p = strstr(p, "ptr=0x")) != NULL; p += 6) {
		if (p != r->out && p[-1] != '\n')
			continue;
		*ptr = (uintptr_t)strtoull(p + 6, NULL, 16);
		found = true;
	}
	return found;
}

/* Whether ERR is exactly "osmem: FUNC(): PROBLEM (ptr=0xHEX)\n"; the
   pointer goes to *PTR. */
static bool parse_report(const char *err, const char *func, const char *problem, uintptr_t *ptr)
{
	char head[512];
	snprintf(head, sizeof(head), "osmem: %s(): %s (ptr=0x", func, problem);
	size_t hl = strlen(head);
	if (strncmp(err, head, hl) != 0)
		return false;
	const char *h = err + hl, *e = h;
	while ((*e >= '0' && *e <= '9') || (*e >= 'a' && *e <= 'f'))
		e++;
	if (e == h || strcmp(e, ")\n") != 0)
		return false;
	*ptr = (uintptr_t)strtoull(h, NULL, 16);
	return true;
}

bool dt_expect_abort_todo(const char *name, const struct dt_result *r, const char *func,
                          const char *problem, const char *known, const char *todo_why)
{
	uintptr_t got = 0, want = 0;
	bool aborted = r->started && !r->timed_out && WIFSIGNALED(r->status) &&
	               WTERMSIG(r->status) == SIGABRT;
	bool has_ptr = noted_ptr(r, &want);
	bool line = parse_report(r->err, func, problem, &got);
	bool same_ptr = !has_ptr || (line && got == want);
	bool pass = aborted && line && same_ptr;
	if (!pass && known && aborted && parse_report(r->err, func, known, &got) &&
	    (!has_ptr || got == want)) {
		tap_ok(false, "%s: aborts with 'osmem: %s(): %s' # TODO %s", name, func, problem,
		       todo_why);
		dt_diag_output(r);
		return false;
	}
	tap_ok(pass, "%s: aborts with 'osmem: %s(): %s (ptr=%s)'", name, func, problem,
	       has_ptr ? "the block" : "...");
	if (!pass) {
		points_failed++;
		tap_diag("  the child %s", dt_describe(r));
		if (!line)
			tap_diag("  standard error is not that one line");
		else if (!same_ptr)
			tap_diag("  the report names 0x%" PRIxPTR ", not 0x%" PRIxPTR, got, want);
		dt_diag_output(r);
	}
	return pass;
}

bool dt_expect_abort(const char *name, const struct dt_result *r, const char *func,
                     const char *problem)
{
	return dt_expect_abort_todo(name, r, func, problem, NULL, NULL);
}

bool dt_relay(const char *name, const struct dt_result *r)
{
	bool all = true;
	for (const char *p = r->out; *p;) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);
		if (strncmp(p, "check ok: ", 10) == 0)
			tap_ok(true, "%s: %.*s", name, len - 10, p + 10);
		else if (strncmp(p, "check not ok: ", 14) == 0)
			all &= tap_ok(false, "%s: %.*s", name, len - 14, p + 14);
		p += len + (nl != NULL);
	}
	bool clean = r->started && !r->timed_out && WIFEXITED(r->status) &&
	             WEXITSTATUS(r->status) == 0;
	all &= tap_ok(clean, "%s: the child %s", name, dt_describe(r));
	if (!clean)
		dt_diag_output(r);
	if (!all)
		points_failed++;
	return all;
}

int dt_done(void)
{
	tap_done();
	return points_failed ? 1 : 0;
}
