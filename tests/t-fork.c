/*
 * t-fork.c - fork while other threads are allocating.
 *
 * Worker threads allocate, resize and free blocks of every kind without
 * pause.  The main thread (and one worker) fork again and again; each child
 * must be able to allocate and free at once - small, heap and mapped
 * blocks, os_calloc and os_realloc, and a block the parent allocated before
 * the fork - and exit with status 0.  A lock left held across the fork
 * shows up as a child that hangs (killed by its alarm) and a heap caught
 * half-updated as a failed check or a crash.
 *
 * SPDX-License-Identifier: MIT
 */
#include <config.h>

#include <osmem.h>

#include "heapview.h"
#include "tap.h"
#include "tutil.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define KiB ((size_t)1024)

enum { WORKERS = 3, FORKS = 24, WORKER_FORKS = 8 };

static volatile int stop;
static unsigned char *inherited; /* allocated by the parent before forking */
static const size_t inherited_n = 3000;

static void *churn(void *arg)
{
	struct tu_rng r;
	tu_rng_seed(&r, (uint64_t)(uintptr_t)arg);
	enum { SLOTS = 64 };
	void *slot[SLOTS] = { 0 };
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		unsigned k = (unsigned)tu_rng_below(&r, SLOTS);
		if (slot[k]) {
			if (tu_rng_below(&r, 3) == 0) {
				void *q = os_realloc(slot[k], (size_t)tu_rng_below(&r, 200 * KiB) + 1);
				if (q)
					slot[k] = q;
			}
			os_free(slot[k]);
			slot[k] = NULL;
		} else {
			uint64_t kind = tu_rng_below(&r, 10);
			size_t n = kind < 6 ? (size_t)tu_rng_below(&r, 1024)
			           : kind < 9 ? 1024 + (size_t)tu_rng_below(&r, 60 * KiB)
			                      : 128 * KiB + (size_t)tu_rng_below(&r, 256 * KiB);
			slot[k] = kind == 5 ? os_calloc(1, n) : os_malloc(n);
			if (slot[k])
				memset(slot[k], 0x5a, n < 256 ? n : 256);
		}
	}
	for (int i = 0; i < SLOTS; i++)
		os_free(slot[i]);
	return NULL;
}

/* The child: exit status 0 when everything worked, else the step that
   failed. */
static int child(void *arg)
{
	(void)arg;
	unsigned char *s = os_malloc(100);
	if (!s)
		return 1;
	memset(s, 1, 100);
	unsigned char *h = os_malloc(20 * KiB);
	if (!h)
		return 2;
	memset(h, 2, 20 * KiB);
	unsigned char *l = os_malloc(512 * KiB);
	if (!l)
		return 3;
	memset(l, 3, 512 * KiB);
	unsigned char *c = os_calloc(100, 100);
	if (!c || tu_nonzero(c, 10000) != TU_NONE)
		return 4;
	unsigned char *r = os_realloc(s, 300 * KiB);
	if (!r || r[0] != 1 || r[99] != 1)
		return 5;
	r = os_realloc(r, 50);
	if (!r || r[0] != 1 || r[49] != 1)
		return 6;
	if (h[0] != 2 || h[20 * KiB - 1] != 2 || l[0] != 3 || l[512 * KiB - 1] != 3)
		return 7;
	if (tu_check(inherited, 0, inherited_n, 77) != TU_NONE)
		return 8;
	os_free(inherited);
	os_free(r);
	os_free(h);
	os_free(l);
	os_free(c);
	/* Many more, to go through refills, drains and growth. */
	void *many[200];
	for (int i = 0; i < 200; i++) {
		many[i] = os_malloc((size_t)(i * 97 % 5000) + 1);
		if (!many[i])
			return 9;
	}
	for (int i = 0; i < 200; i++)
		os_free(many[i]);
	if (hv_verify() != NULL)
		return 10;
	return 0;
}

static int statuses[FORKS + WORKER_FORKS];

static void *forker(void *arg)
{
	(void)arg;
	for (int i = 0; i < WORKER_FORKS; i++) {
		statuses[FORKS + i] = tu_fork_wait(child, NULL, 20);
		usleep(2000);
	}
	return NULL;
}

static void report(int i, int st, const char *who)
{
	if (st == -1)
		ok(false, "fork %d from %s: could not fork", i, who);
	else if (WIFSIGNALED(st))
		ok(false, "fork %d from %s: child killed by signal %d%s", i, who, WTERMSIG(st),
		   WTERMSIG(st) == SIGALRM ? " (hung)" : "");
	else
		ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork %d from %s: child exit status %d", i,
		   who, WEXITSTATUS(st));
}

int main(void)
{
	tap_diag("libosmem: fork while %d threads allocate", WORKERS);
	inherited = os_malloc(inherited_n);
	tu_fill(inherited, 0, inherited_n, 77);

	pthread_t t[WORKERS], f;
	for (int i = 0; i < WORKERS; i++)
		if (pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1)) != 0)
			tap_bail("pthread_create failed");
	usleep(20000);
	if (pthread_create(&f, NULL, forker, NULL) != 0)
		tap_bail("pthread_create failed");
	for (int i = 0; i < FORKS; i++) {
		statuses[i] = tu_fork_wait(child, NULL, 20);
		usleep(3000);
	}
	pthread_join(f, NULL);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(t[i], NULL);

	for (int i = 0; i < FORKS; i++)
		report(i, statuses[i], "the main thread");
	for (int i = 0; i < WORKER_FORKS; i++)
		report(i, statuses[FORKS + i], "a second thread");
	ok(tu_check(inherited, 0, inherited_n, 77) == TU_NONE,
	   "the parent's block is untouched by the children freeing their copies");
	os_free(inherited);
	const char *err = hv_verify();
	ok(err == NULL, "the parent's heap is consistent%s%s", err ? ": " : "", err ? err : "");
	return tap_done();
}
