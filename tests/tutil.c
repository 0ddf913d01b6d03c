/*
 * tutil.c - see tutil.h.
 *
 * Nothing here allocates with either allocator: the tests use these
 * helpers while they watch the break and the heap, and inside children
 * forked from threaded parents.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include "tutil.h"
#include "heapview.h"
#include "tap.h"

#include <osmem.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- test points ------------------------------------------------------ */

static int child_fd = -1; /* the pipe to the parent, inside tu_child */

bool tu_in_child(void) { return child_fd >= 0; }

void tu_write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* One record per line: 'o' (passed), 'n' (failed), 's' (skipped) or '#'
   (comment). */
__attribute__((format(printf, 2, 0)))
static void child_send(char kind, const char *fmt, va_list ap)
{
	char line[1024];
	int len;
	line[0] = kind;
	len = vsnprintf(line + 1, sizeof(line) - 2, fmt, ap);
	if (len < 0)
		len = 0;
	if ((size_t)len > sizeof(line) - 3)
		len = (int)sizeof(line) - 3;
	for (int i = 1; i <= len; i++)
		if (line[i] == '\n')
			line[i] = ' ';
	line[len + 1] = '\n';
	tu_write_all(child_fd, line, (size_t)len + 2);
}

bool t_ok(bool cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (child_fd >= 0) {
		child_send(cond ? 'o' : 'n', fmt, ap);
	} else {
		char msg[1024];
		vsnprintf(msg, sizeof(msg), fmt, ap);
		tap_ok(cond, "%s", msg);
	}
	va_end(ap);
	return cond;
}

void t_diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (child_fd >= 0) {
		child_send('#', fmt, ap);
	} else {
		char msg[1024];
		vsnprintf(msg, sizeof(msg), fmt, ap);
		tap_diag("%s", msg);
	}
	va_end(ap);
}

void t_skip(int n, const char *why)
{
	if (child_fd < 0) {
		tap_skip(n, why);
		return;
	}
	char line[512];
	int len = snprintf(line, sizeof(line), "s%s\n", why);
	if (len < 0 || (size_t)len >= sizeof(line))
		len = 2, line[1] = '\n';
	while (n-- > 0)
		tu_write_all(child_fd, line, (size_t)len);
}

static void describe_status(const char *name, int status)
{
	if (WIFSIGNALED(status))
		tap_diag("%s: child killed by signal %d (%s)", name, WTERMSIG(status),
		         WTERMSIG(status) == SIGALRM ? "timed out" : strsignal(WTERMSIG(status)));
	else if (WIFEXITED(status) && WEXITSTATUS(status))
		tap_diag("%s: child exited with status %d", name, WEXITSTATUS(status));
}

bool tu_child(const char *name, unsigned timeout, void (*fn)(void *), void *arg)
{
	int fds[2];
	if (pipe(fds) != 0)
		tap_bail("pipe: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (pid == 0) {
		close(fds[0]);
		child_fd = fds[1];
		alarm(timeout);
		fn(arg);
		_exit(0);
	}
	close(fds[1]);

	static char buf[65536];
	size_t have = 0;
	bool all_ok = true;
	for (;;) {
		ssize_t r = read(fds[0], buf + have, sizeof(buf) - 1 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
		char *start = buf, *nl;
		while ((nl = memchr(start, '\n', have - (size_t)(start - buf))) != NULL) {
			*nl = '\0';
			if (start[0] == '#')
				tap_diag("%s: %s", name, start + 1);
			else if (start[0] == 's')
				tap_skip(1, start + 1);
			else if (!tap_ok(start[0] == 'o', "%s: %s", name, start + 1))
				all_ok = false;
			start = nl + 1;
		}
		have -= (size_t)(start - buf);
		memmove(buf, start, have);
		if (have == sizeof(buf) - 1)
			have = 0; /* an absurd line: drop it */
	}
	close(fds[0]);

	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			tap_bail("waitpid: %s", strerror(errno));
	describe_status(name, status);
	if (!tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child exits cleanly", name))
		all_ok = false;
	return all_ok;
}

int tu_fork_wait(int (*fn)(void *), void *arg, unsigned timeout)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		alarm(timeout);
		_exit(fn(arg));
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return status;
}

/* ---- pseudo-random numbers ------------------------------------------- */

uint64_t tu_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void tu_rng_seed(struct tu_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++) {
		seed += 0x9e3779b97f4a7c15ull;
		r->s[i] = tu_mix64(seed);
	}
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tu_rng_next(struct tu_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t tu_rng_below(struct tu_rng *r, uint64_t n)
{
	/* Rejection keeps it uniform; n is far below 2^64 in practice. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t x;
	do
		x = tu_rng_next(r);
	while (x >= limit);
	return x % n;
}

uint64_t tu_seed(const char *var)
{
	const char *s = getenv(var);
	uint64_t seed;
	if (s && *s) {
		char *end;
		errno = 0;
		seed = strtoull(s, &end, 0);
		if (errno || *end)
			tap_bail("%s=%s is not a number", var, s);
		t_diag("seed %llu (from %s)", (unsigned long long)seed, var);
	} else {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = tu_mix64((uint64_t)ts.tv_sec ^ ((uint64_t)ts.tv_nsec << 20) ^
		                ((uint64_t)getpid() << 40)) >> 16;
		t_diag("seed %llu (set %s=%llu to repeat this run)", (unsigned long long)seed, var,
		       (unsigned long long)seed);
	}
	return seed;
}

/* ---- data patterns ---------------------------------------------------- */

static inline uint64_t pattern_word(uint64_t id, size_t word)
{
	return tu_mix64(id ^ ((uint64_t)word * 0x9e3779b97f4a7c15ull));
}

/* On a little-endian machine a pattern word stored with memcpy has the
   bytes tu_pattern_byte describes; elsewhere go byte by byte. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
# define WORDWISE 1
#else
# define WORDWISE 0
#endif

void tu_fill(void *p, size_t from, size_t to, uint64_t id)
{
	unsigned char *b = p;
	size_t i = from;
	while (i < to && ((i & 7u) || !WORDWISE))
		b[i] = tu_pattern_byte(id, i), i++;
	for (; i + 8 <= to; i += 8) {
		uint64_t w = pattern_word(id, i >> 3);
		memcpy(b + i, &w, 8);
	}
	for (; i < to; i++)
		b[i] = tu_pattern_byte(id, i);
}

size_t tu_check(const void *p, size_t from, size_t to, uint64_t id)
{
	const unsigned char *b = p;
	size_t i = from;
	while (i < to && ((i & 7u) || !WORDWISE)) {
		if (b[i] != tu_pattern_byte(id, i))
			return i;
		i++;
	}
	for (; i + 8 <= to; i += 8) {
		uint64_t got;
		memcpy(&got, b + i, 8);
		if (got != pattern_word(id, i >> 3))
			break;
	}
	for (; i < to; i++)
		if (b[i] != tu_pattern_byte(id, i))
			return i;
	return TU_NONE;
}

size_t tu_nonzero(const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i = 0;
	while (i < n && ((uintptr_t)(b + i) & 7u)) {
		if (b[i])
			return i;
		i++;
	}
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, 8);
		if (w)
			break;
	}
	for (; i < n; i++)
		if (b[i])
			return i;
	return TU_NONE;
}

/* ---- memory as the kernel sees it ------------------------------------- */

static size_t page_size(void)
{
	static size_t ps;
	if (!ps)
		ps = (size_t)sysconf(_SC_PAGESIZE);
	return ps;
}

bool tu_page_mapped(const void *p)
{
	unsigned char v;
	uintptr_t a = (uintptr_t)p & ~(uintptr_t)(page_size() - 1);
	return mincore((void *)a, 1, &v) == 0;
}

long tu_resident_pages(const void *p, size_t len)
{
	size_t ps = page_size();
	uintptr_t lo = (uintptr_t)p & ~(uintptr_t)(ps - 1);
	uintptr_t hi = ((uintptr_t)p + len + ps - 1) & ~(uintptr_t)(ps - 1);
	long n = 0;
	unsigned char vec[256];
	for (uintptr_t a = lo; a < hi;) {
		size_t pages = (hi - a) / ps;
		if (pages > sizeof(vec))
			pages = sizeof(vec);
		if (mincore((void *)a, pages * ps, vec) != 0)
			return -1;
		for (size_t i = 0; i < pages; i++)
			n += vec[i] & 1;
		a += pages * ps;
	}
	return n;
}

bool tu_in_proc_maps(const void *p)
{
	/* Read with read(2) into a static buffer: no stdio, no allocation. */
	static char buf[1 << 20];
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	size_t have = 0;
	for (;;) {
		ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
		if (have == sizeof(buf) - 1)
			break;
	}
	close(fd);
	buf[have] = '\0';
	uintptr_t a = (uintptr_t)p;
	for (char *line = buf; *line;) {
		char *end;
		unsigned long lo = strtoul(line, &end, 16);
		unsigned long hi = *end == '-' ? strtoul(end + 1, &end, 16) : 0;
		if (a >= lo && a < hi)
			return true;
		char *nl = strchr(line, '\n');
		if (!nl)
			break;
		line = nl + 1;
	}
	return false;
}

/* Field FIELD (0-based) of /proc/self/statm, in bytes. */
static size_t statm(int field)
{
	char buf[256];
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0)
		return 0;
	buf[r] = '\0';
	char *p = buf;
	for (int i = 0; i < field; i++) {
		p = strchr(p, ' ');
		if (!p)
			return 0;
		p++;
	}
	return (size_t)strtoul(p, NULL, 10) * page_size();
}

size_t tu_vm_bytes(void) { return statm(0); }
size_t tu_rss_bytes(void) { return statm(1); }

bool tu_under_valgrind(void)
{
	const char *preload = getenv("LD_PRELOAD");
	return preload && strstr(preload, "vgpreload");
}

bool tu_limit_address_space(size_t slack)
{
	size_t vm = tu_vm_bytes();
	struct rlimit rl;
	if (!vm || getrlimit(RLIMIT_AS, &rl) != 0)
		return false;
	rl.rlim_cur = vm + slack;
	return setrlimit(RLIMIT_AS, &rl) == 0;
}

/* ---- block sets ---------------------------------------------------------- */

static void sift_down(struct tu_span *s, size_t i, size_t n)
{
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			return;
		if (c + 1 < n && s[c + 1].lo > s[c].lo)
			c++;
		if (s[i].lo >= s[c].lo)
			return;
		struct tu_span t = s[i];
		s[i] = s[c];
		s[c] = t;
		i = c;
	}
}

size_t tu_first_overlap(struct tu_span *s, size_t n)
{
	/* Heapsort: no allocation, no recursion. */
	for (size_t i = n / 2; i-- > 0;)
		sift_down(s, i, n);
	for (size_t end = n; end > 1; end--) {
		struct tu_span t = s[0];
		s[0] = s[end - 1];
		s[end - 1] = t;
		sift_down(s, 0, end - 1);
	}
	for (size_t i = 1; i < n; i++)
		if (s[i].lo < s[i - 1].hi)
			return i;
	return TU_NONE;
}

/* ---- heap layouts ------------------------------------------------------- */

static bool follows(const void *prev, const void *p)
{
	struct hv_block b;
	return hv_find(prev, &b) && !b.is_free && (uintptr_t)prev + b.size == (uintptr_t)p;
}

bool tu_alloc_run(void **out, size_t n, size_t size)
{
	enum { SPARE_MAX = 256 };
	void *spare[SPARE_MAX];
	size_t nspare = 0, have = 0;
	bool ok = true;
	while (have < n) {
		void *p = os_malloc(size);
		if (!p) {
			ok = false;
			break;
		}
		if (have && !follows(out[have - 1], p)) {
			if (nspare + have > SPARE_MAX) {
				os_free(p);
				ok = false;
				break;
			}
			for (size_t i = 0; i < have; i++)
				spare[nspare++] = out[i];
			have = 0;
		}
		out[have++] = p;
	}
	for (size_t i = 0; i < nspare; i++)
		os_free(spare[i]);
	if (!ok)
		for (size_t i = 0; i < have; i++)
			os_free(out[i]);
	return ok;
}

static struct hv_block view[1 << 16];

bool tu_top_block(struct hv_block *out)
{
	struct hv_segment segs[256];
	size_t ns = hv_segments(segs, 256);
	size_t n = hv_blocks(view, sizeof(view) / sizeof(view[0]));
	if (!ns || !n || n > sizeof(view) / sizeof(view[0]) || ns > 256)
		return false;
	const struct hv_segment *last = &segs[ns - 1];
	const struct hv_block *b = &view[n - 1];
	if ((uintptr_t)b->payload < last->base || (uintptr_t)b->payload >= last->end)
		return false;
	*out = *b;
	return true;
}

bool tu_segment_of(const void *p, struct hv_segment *out)
{
	struct hv_segment segs[256];
	size_t ns = hv_segments(segs, 256);
	for (size_t i = 0; i < ns && i < 256; i++)
		if ((uintptr_t)p >= segs[i].base && (uintptr_t)p < segs[i].end) {
			*out = segs[i];
			return true;
		}
	return false;
}

size_t tu_largest_free(void)
{
	size_t n = hv_blocks(view, sizeof(view) / sizeof(view[0])), best = 0;
	if (n > sizeof(view) / sizeof(view[0]))
		n = sizeof(view) / sizeof(view[0]);
	for (size_t i = 0; i < n; i++)
		if (view[i].is_free && view[i].size > best)
			best = view[i].size;
	return best;
}

char *tu_info_document(int *rc, int *err)
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

size_t tu_number_after(const char *from, const char *key)
{
	char pattern[64];
	snprintf(pattern, sizeof(pattern), "\"%s\": ", key);
	const char *p = from ? strstr(from, pattern) : NULL;
	return p ? (size_t)strtoull(p + strlen(pattern), NULL, 10) : (size_t)-1;
}
