/*
 * dropin-prog.c - an ordinary program for tests/t-dropin.sh.
 *
 * It is linked against the C library only, never against libosmem, and
 * uses the C library the way real programs do: stdio, getline, strdup,
 * qsort, asprintf, open_memstream and regex allocate behind its back,
 * threads allocate and free at once and free each other's blocks, the
 * process forks while they do, and every aligned-allocation function is
 * called.  Every pointer the C library hands out is freed.  Run under
 * osmem-run, all of that must go through libosmem and behave the same.
 *
 * Output: one line per check, "ok - ..." or "FAIL - ...", with nothing in
 * it that depends on the allocator, except the "allocator:" line, which
 * says whether libosmem was found serving malloc.  The exit status is 0
 * when every check passed.  With --which, it prints that line only.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h> /* for struct os_mallinfo; the functions come from dlsym */

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

static void check(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(bool cond, const char *fmt, ...)
{
	va_list ap;
	fputs(cond ? "ok - " : "FAIL - ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (!cond)
		failures++;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ull;
	return h;
}

/* ---- is libosmem serving malloc? ------------------------------------- */

typedef struct os_mallinfo (*mallinfo_fn)(void);
static mallinfo_fn osmem_info;
static bool free_on_libosmem;

/* True when os_mallinfo can be found in the process and a large malloc
   shows up in its count of mapped blocks: then malloc is libosmem's.
   Whether free gives the block back is noted in free_on_libosmem. */
static bool on_libosmem(void)
{
	/* The name osmem.h binds os_mallinfo to, for this structure. */
	osmem_info = (mallinfo_fn)dlsym(RTLD_DEFAULT, "os_mallinfo_v2");
	if (!osmem_info)
		return false;
	struct os_mallinfo before = osmem_info();
	char *p = malloc(4 << 20);
	if (!p)
		return false;
	p[0] = p[(4 << 20) - 1] = 1;
	struct os_mallinfo during = osmem_info();
	free(p);
	struct os_mallinfo after = osmem_info();
	free_on_libosmem = after.mapped_blocks == before.mapped_blocks;
	return during.mapped_blocks == before.mapped_blocks + 1;
}

/* ---- stdio, getline, strdup, qsort ------------------------------------ */

static int by_string(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void line_text(char *buf, size_t len, size_t i)
{
	for (size_t j = 0; j < len; j++)
		buf[j] = (char)('a' + mix(i * 131 + j / 8) % 26);
	buf[len] = '\0';
}

static void test_lines(void)
{
	enum { LINES = 20000 };
	FILE *f = tmpfile();
	if (!f) {
		check(false, "tmpfile: %s", strerror(errno));
		return;
	}
	static char text[5000];
	uint64_t want = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < LINES; i++) {
		size_t len = i % 97 == 0 ? 1000 + mix(i) % 3900 : mix(i) % 120;
		line_text(text, len, i);
		fprintf(f, "%s\n", text);
		want ^= mix(fnv(0xcbf29ce484222325ull, text, len));
	}
	rewind(f);

	char **lines = NULL, *buf = NULL;
	size_t n = 0, cap = 0, bufsize = 0;
	ssize_t got;
	bool dup_failed = false;
	while ((got = getline(&buf, &bufsize, f)) > 0) {
		buf[got - 1] = '\0';
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nl = reallocarray(lines, ncap, sizeof(*nl));
			if (!nl) {
				dup_failed = true;
				break;
			}
			lines = nl;
			cap = ncap;
		}
		if (!(lines[n] = strdup(buf))) {
			dup_failed = true;
			break;
		}
		n++;
	}
	free(buf);
	fclose(f);
	check(!dup_failed && n == LINES, "getline and strdup read back %zu of %d lines", n, LINES);

	/* The same lines in any order hash to the same value. */
	uint64_t have = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		have ^= mix(fnv(0xcbf29ce484222325ull, lines[i], strlen(lines[i])));
	check(have == want, "the lines read back are the lines written");

	qsort(lines, n, sizeof(*lines), by_string);
	size_t unsorted = 0;
	uint64_t order = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		if (i && strcmp(lines[i - 1], lines[i]) > 0)
			unsorted++;
		order = fnv(order, lines[i], strlen(lines[i]) + 1);
	}
	check(unsorted == 0, "qsort sorted them (digest %016llx)", (unsigned long long)order);

	/* POSIX regular expressions allocate a lot inside the C library. */
	regex_t re;
	size_t matches = 0;
	if (regcomp(&re, "^[a-m]+(q|z)[a-z]*$", REG_EXTENDED | REG_NOSUB) == 0) {
		for (size_t i = 0; i < n; i++)
			matches += regexec(&re, lines[i], 0, NULL, 0) == 0;
		regfree(&re);
		check(true, "regexec matched %zu lines", matches);
	} else {
		check(false, "regcomp failed");
	}

	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

/* ---- asprintf and open_memstream -------------------------------------- */

static void test_formatting(void)
{
	uint64_t h = 0xcbf29ce484222325ull;
	bool failed = false;
	char *prev = NULL;
	for (int i = 0; i < 5000; i++) {
		char *s;
		/* Each string contains a piece of the previous one, so they
		   grow and shrink through many sizes. */
		int len = asprintf(&s, "%d:%.*s:%x", i, prev ? (int)(mix((uint64_t)i) % 700) : 0,
		                   prev ? prev : "", i * 7);
		if (len < 0) {
			failed = true;
			break;
		}
		h = fnv(h, s, (size_t)len);
		free(prev);
		prev = s;
	}
	free(prev);
	check(!failed, "asprintf built 5000 strings (digest %016llx)", (unsigned long long)h);

	char *buf = NULL;
	size_t size = 0;
	FILE *m = open_memstream(&buf, &size);
	if (!m) {
		check(false, "open_memstream: %s", strerror(errno));
		return;
	}
	for (int i = 0; i < 100000; i++)
		fprintf(m, "%d,", i);
	fclose(m);
	check(buf && size == 588890 && fnv(0xcbf29ce484222325ull, buf, size) ==
	      fnv(0xcbf29ce484222325ull, buf, strlen(buf)),
	      "open_memstream grew its buffer to %zu bytes", size);
	free(buf);
}

/* ---- the aligned and sized functions ------------------------------------ */

static bool fill_ok(unsigned char *p, size_t n, unsigned char v)
{
	memset(p, v, n);
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static void test_aligned(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t page = pg > 0 ? (size_t)pg : 4096;
	size_t bad = 0;

	for (size_t a = 1; a <= ((size_t)1 << 21); a *= 2) {
		static const size_t sizes[] = { 0, 1, 100, 5000, 200000 };
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			size_t n = sizes[i];
			unsigned char *p = aligned_alloc(a, n);
			unsigned char *q = memalign(a, n);
			void *r = NULL;
			int e = a >= sizeof(void *) ? posix_memalign(&r, a, n) : (r = malloc(n), 0);
			if (!p || !q || e || !r || (uintptr_t)p % a || (uintptr_t)q % a ||
			    (uintptr_t)r % a || malloc_usable_size(p) < n ||
			    malloc_usable_size(q) < n || malloc_usable_size(r) < n ||
			    !fill_ok(p, n, 1) || !fill_ok(q, n, 2) || !fill_ok(r, n, 3)) {
				bad++;
				printf("# alignment %zu, size %zu failed\n", a, n);
			}
			free(p);
			free(q);
			free(r);
		}
	}
	check(bad == 0, "aligned_alloc, memalign and posix_memalign for alignments up to 2 MiB");

	void *sentinel = &bad, *r = sentinel;
	int e = posix_memalign(&r, 24, 100);
	check(e == EINVAL && r == sentinel, "posix_memalign with alignment 24 is EINVAL");

	unsigned char *v = valloc(5000), *pv = pvalloc(5000);
	check(v && (uintptr_t)v % page == 0 && malloc_usable_size(v) >= 5000 && fill_ok(v, 5000, 4),
	      "valloc(5000) is page-aligned and usable");
	size_t rounded = (5000 + page - 1) / page * page;
	check(pv && (uintptr_t)pv % page == 0 && malloc_usable_size(pv) >= rounded &&
	      fill_ok(pv, rounded, 5), "pvalloc(5000) is page-aligned and rounded to whole pages");
	free(v);
	free(pv);

	check(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) is 0");

	/* reallocarray: overflow refused, the block kept. */
	unsigned char *a = malloc(1000);
	if (!a) {
		check(false, "malloc(1000)");
		return;
	}
	memset(a, 7, 1000);
	errno = 0;
	volatile size_t huge = SIZE_MAX / 2;
	void *b = reallocarray(a, huge, 4);
	if (b) {
		check(false, "reallocarray overflow is ENOMEM (it succeeded)");
		free(b);
		return;
	}
	check(errno == ENOMEM, "reallocarray overflow is ENOMEM");
	size_t same = 0;
	for (size_t i = 0; i < 1000; i++)
		same += a[i] == 7;
	check(same == 1000 && malloc_usable_size(a) >= 1000, "the block survives the overflow");
	unsigned char *c = reallocarray(a, 500, 4);
	if (!c) {
		check(false, "reallocarray grows it with its contents (it failed)");
		free(a);
		return;
	}
	same = 0;
	for (size_t i = 0; i < 1000; i++)
		same += c[i] == 7;
	check(same == 1000, "reallocarray grows it with its contents");
	free(c);

	/* calloc hands out zeros, even where a dirty block was just freed. */
	size_t dirty = 0;
	for (size_t n = 1; n < 300000; n = n * 3 + 1) {
		unsigned char *d = malloc(n);
		if (d)
			memset(d, 0xff, n);
		free(d);
		unsigned char *z = calloc(1, n);
		for (size_t i = 0; z && i < n; i++)
			dirty += z[i] != 0;
		if (!z)
			dirty++;
		free(z);
	}
	errno = 0;
	volatile size_t big = SIZE_MAX / 8;
	/* volatile: a compiler may otherwise drop the unused allocation and
	   assume it succeeded. */
	void *volatile ov = calloc(big, 16);
	check(ov == NULL && errno == ENOMEM, "calloc with an overflowing product is ENOMEM");
	free(ov);
	check(dirty == 0, "calloc memory is zero after dirty frees");
}

/* ---- alignments the C library rounds up --------------------------------- */

/* glibc's memalign, and its aligned_alloc before version 2.38, take any
   alignment: one up to its own (16 bytes) gives an ordinary block, one
   that is not a power of two is rounded up to the next, and only one
   above the largest power of two is EINVAL.  Programs built against it
   may count on that, so under osmem-run the same calls must give the
   same answers.  Each line says what the call gave, not how. */

static size_t effective_alignment(size_t a)
{
	size_t e = 16;
	while (e < a)
		e *= 2;
	return e;
}

typedef void *(*aligned_fn)(size_t, size_t);

static void lenient_block(const char *name, aligned_fn fn, size_t a, size_t n)
{
	size_t e = effective_alignment(a);
	unsigned char *p = fn(a, n);
	check(p && (uintptr_t)p % e == 0 && malloc_usable_size(p) >= n && fill_ok(p, n, 6),
	      "as in the C library, %s(%zu, %zu) gives a block aligned to %zu", name, a, n, e);
	free(p);
}

/* The largest alignments: one past the largest power of two is EINVAL,
   the largest power of two itself ENOMEM. */
static void lenient_refusals(const char *name, aligned_fn fn)
{
	volatile size_t over = SIZE_MAX / 2 + 2, top = SIZE_MAX / 2 + 1;
	errno = 0;
	void *p = fn(over, 1);
	int e = errno;
	check(p == NULL && e == EINVAL,
	      "as in the C library, %s(SIZE_MAX / 2 + 2, 1) is EINVAL", name);
	free(p);
	errno = 0;
	p = fn(top, 1);
	e = errno;
	check(p == NULL && e == ENOMEM,
	      "as in the C library, %s(SIZE_MAX / 2 + 1, 1) is ENOMEM", name);
	free(p);
}

static void test_lenient_alignments(void)
{
	static const size_t odd[] = { 0, 1, 8, 24, 48, 4095 };
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		lenient_block("memalign", memalign, odd[i], 100);
	lenient_refusals("memalign", memalign);
#if defined __GLIBC__ && __GLIBC__ == 2 && __GLIBC_MINOR__ < 38
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		lenient_block("aligned_alloc", aligned_alloc, odd[i], 100);
	lenient_refusals("aligned_alloc", aligned_alloc);
#else
	printf("# aligned_alloc: not checked, this C library may refuse those alignments\n");
#endif
}

/* ---- threads and fork ------------------------------------------------------ */

#define NTHREADS 4
#define SLOTS 1024
#define LOCAL 256

/* A block starts with its size and a seed; the rest is a pattern of both,
   so a block freed or resized by any thread can be checked. */
struct blk {
	size_t size;
	uint64_t seed;
};

static struct blk *slots[SLOTS];
static unsigned long corrupt, failed_allocs;

static unsigned char pat(uint64_t seed, size_t i) { return (unsigned char)(seed + i * 31); }

static struct blk *blk_new(size_t size, uint64_t seed)
{
	struct blk *b = malloc(sizeof(*b) + size);
	if (!b) {
		__atomic_add_fetch(&failed_allocs, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	b->size = size;
	b->seed = seed;
	unsigned char *d = (unsigned char *)(b + 1);
	for (size_t i = 0; i < size; i++)
		d[i] = pat(seed, i);
	return b;
}

static bool blk_ok(const struct blk *b)
{
	const unsigned char *d = (const unsigned char *)(b + 1);
	for (size_t i = 0; i < b->size; i++)
		if (d[i] != pat(b->seed, i))
			return false;
	return true;
}

static void blk_free(struct blk *b)
{
	if (!b)
		return;
	if (!blk_ok(b))
		__atomic_add_fetch(&corrupt, 1, __ATOMIC_RELAXED);
	free(b);
}

static size_t pick_size(uint64_t r)
{
	if (r % 1000 == 0)
		return 150000 + r % 600000; /* a mapping of its own */
	if (r % 50 == 1)
		return r % 65536;
	return r % 600;
}

static void *worker(void *arg)
{
	uint64_t id = (uint64_t)(uintptr_t)arg, r = id * 0x9e3779b97f4a7c15ull;
	struct blk *local[LOCAL] = { NULL };
	for (int it = 0; it < 150000; it++) {
		r = mix(r + (uint64_t)it);
		size_t size = pick_size(r >> 8);
		struct blk *b = blk_new(size, r);
		if (!b)
			continue;
		if (r & 1) {
			/* Hand it to whichever thread takes the slot next. */
			struct blk *old = __atomic_exchange_n(&slots[(r >> 40) % SLOTS], b,
			                                      __ATOMIC_ACQ_REL);
			blk_free(old);
		} else {
			size_t k = (r >> 40) % LOCAL;
			struct blk *old = local[k];
			local[k] = b;
			if (old && (r & 6) == 0) {
				/* Resize instead of freeing: the prefix stays. */
				size_t n = pick_size(r >> 20);
				struct blk *g = realloc(old, sizeof(*old) + n);
				if (!g) {
					blk_free(old);
					continue;
				}
				size_t keep = g->size < n ? g->size : n;
				unsigned char *d = (unsigned char *)(g + 1);
				for (size_t i = 0; i < keep; i++)
					if (d[i] != pat(g->seed, i)) {
						__atomic_add_fetch(&corrupt, 1, __ATOMIC_RELAXED);
						break;
					}
				for (size_t i = keep; i < n; i++)
					d[i] = pat(g->seed, i);
				g->size = n;
				blk_free(g);
			} else {
				blk_free(old);
			}
		}
	}
	for (size_t k = 0; k < LOCAL; k++)
		blk_free(local[k]);
	return NULL;
}

/* In a child forked while the workers run: the allocator must work, and a
   block from before the fork must still be there. */
static int child_work(struct blk *inherited)
{
	alarm(20);
	int bad = !blk_ok(inherited);
	free(inherited);
	struct blk *keep[64] = { NULL };
	for (int i = 0; i < 3000; i++) {
		uint64_t r = mix((uint64_t)i + 77);
		struct blk *b = blk_new(pick_size(r), r);
		if (!b)
			return 3;
		bad |= !blk_ok(b);
		blk_free(keep[i % 64]);
		keep[i % 64] = b;
	}
	for (int i = 0; i < 64; i++) {
		bad |= keep[i] && !blk_ok(keep[i]);
		free(keep[i]);
	}
	char *s = strdup("forked");
	bad |= !s || strcmp(s, "forked") != 0;
	free(s);
	return bad ? 4 : 0;
}

static void test_threads_and_fork(void)
{
	pthread_t t[NTHREADS];
	int started = 0;
	for (int i = 0; i < NTHREADS; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1)) == 0)
			started++;
	check(started == NTHREADS, "%d threads started", NTHREADS);

	int forks = 0, bad_children = 0;
	for (int i = 0; i < 24; i++) {
		struct blk *inherited = blk_new(100 + (size_t)i * 1000, (uint64_t)i);
		if (!inherited)
			continue;
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0)
			_exit(child_work(inherited));
		blk_free(inherited);
		if (pid < 0)
			continue;
		int status;
		forks++;
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
			bad_children++;
			if (WIFSIGNALED(status))
				printf("# child killed by signal %d\n", WTERMSIG(status));
			else
				printf("# child exited with %d\n", WEXITSTATUS(status));
		}
		usleep(2000);
	}
	for (int i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	for (size_t i = 0; i < SLOTS; i++)
		blk_free(slots[i]);
	check(forks == 24 && bad_children == 0,
	      "24 children forked while threads allocate can allocate and free");
	check(failed_allocs == 0, "no allocation failed in the threads");
	check(corrupt == 0, "no block was damaged across threads, frees from other threads "
	      "and resizes");
}

/* ---- glibc's extensions: the allocator that holds the blocks answers --- */

static void test_extensions(bool osmem)
{
	char *big = malloc(3 << 20);
	if (!big) {
		check(false, "malloc(3 MiB)");
		return;
	}
	big[0] = big[(3 << 20) - 1] = 1;
	struct mallinfo2 m2 = mallinfo2();
	/* Under the drop-in the numbers must be libosmem's own; plainly,
	   they are the C library's, which this check trusts. */
	bool same = true;
	if (osmem) {
		struct os_mallinfo oi = osmem_info();
		same = m2.hblks == oi.mapped_blocks && m2.hblkhd == oi.mapped_bytes &&
		       m2.fordblks == oi.free_bytes && m2.ordblks == oi.free_blocks;
	}
	check(m2.hblks >= 1 && m2.hblkhd >= (size_t)3 << 20 && same,
	      "mallinfo2 counts a 3 MiB block as mapped, in the allocator's own numbers");
	/* mallinfo is deprecated for its int fields, but programs still call
	   it, so the drop-in answers it too. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	struct mallinfo m = mallinfo();
#pragma GCC diagnostic pop
	check(m.hblks == (int)m2.hblks && m.hblkhd == (int)m2.hblkhd, "mallinfo agrees with mallinfo2");
	free(big);

	enum { N = 400 };
	static char *v[N];
	for (int i = 0; i < N; i++) {
		v[i] = malloc(20000);
		if (v[i])
			memset(v[i], 7, 20000);
	}
	for (int i = 0; i < N; i += 2)
		free(v[i]);
	check(malloc_trim(0) == 1, "malloc_trim gives back the pages of freed blocks");
	for (int i = 1; i < N; i += 2)
		free(v[i]);

	check(mallopt(M_MMAP_THRESHOLD, 256 * 1024) == 1 && mallopt(M_TRIM_THRESHOLD, 256 * 1024) == 1 &&
	      mallopt(M_TOP_PAD, 64 * 1024) == 1, "mallopt takes the thresholds and the top pad");
	check(mallopt(M_PERTURB, 0) == 1 && mallopt(M_MXFAST, 64) == 1 && mallopt(12345, 1) == 1,
	      "mallopt accepts parameters it ignores");
	m2 = mallinfo2();
	big = malloc(200 * 1024);
	struct mallinfo2 after = mallinfo2();
	check(big && after.hblks == m2.hblks, "with M_MMAP_THRESHOLD at 256 KiB, 200 KiB is no mapping");
	free(big);

	char *doc = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&doc, &len);
	int r = f ? malloc_info(0, f) : -1;
	if (f)
		fclose(f);
	check(r == 0 && doc && len > 10, "malloc_info writes a report");
	free(doc);
}

int main(int argc, char **argv)
{
	bool osmem = on_libosmem();
	if (argc > 1 && strcmp(argv[1], "--which") == 0) {
		printf("allocator: %s\n", osmem ? "libosmem" : "C library");
		return 0;
	}
	/* Everything is freed, so what libosmem holds at the end is what it
	   held at the start, give or take what the C library keeps. */
	struct os_mallinfo start = osmem ? osmem_info() : (struct os_mallinfo){ 0 };

	test_lines();
	test_formatting();
	test_aligned();
	test_lenient_alignments();
	test_threads_and_fork();
	test_extensions(osmem);

	if (osmem) {
		if (!free_on_libosmem) {
			printf("FAIL - free does not give a large block back to libosmem\n");
			failures++;
		}
		struct os_mallinfo end = osmem_info();
		long long grew = (long long)end.in_use_bytes - (long long)start.in_use_bytes;
		printf("# in use on libosmem: %zu bytes at the start, %zu at the end, peak %zu\n",
		       start.in_use_bytes, end.in_use_bytes, end.peak_in_use_bytes);
		if (grew > 256 * 1024) {
			printf("FAIL - %lld bytes more in use at the end than at the start\n", grew);
			failures++;
		}
	}
	printf("allocator: %s\n", osmem ? "libosmem" : "C library");
	return failures ? 1 : 0;
}
