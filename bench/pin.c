/*
 * pin.c - for bench/floor.sh: puts a program's threads on two CPUs.
 *
 * Preloaded (before any allocator that is preloaded too), it wraps
 * pthread_create: the thread that calls it is confined to CPU
 * PIN_MAIN (default 0), and the thread it starts to CPU PIN_THREADS
 * (default 1), from its first instruction on.  prodcons' consumer and
 * producer then run at the same time, each on a CPU of its own, where
 * the kernel left alone often puts both on one CPU to take turns.
 *
 * It allocates nothing: a thread's start routine and argument wait in a
 * fixed table until the thread has read them.
 *
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#define STARTS 64u

typedef int create_fn(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static struct start {
	void *(*fn)(void *);
	void *arg;
} starts[STARTS];
static unsigned next_start;

static int cpu_from(const char *name, int otherwise)
{
	const char *s = getenv(name);
	return s && *s ? atoi(s) : otherwise;
}

static void pin_to(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set); /* 0: the calling thread */
}

static void *start_pinned(void *arg)
{
	struct start s = *(struct start *)arg;
	pin_to(cpu_from("PIN_THREADS", 1));
	return s.fn(s.arg);
}

int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	static create_fn *real;
	if (!real)
		real = (create_fn *)dlsym(RTLD_NEXT, "pthread_create");
	if (!real)
		abort();
	pin_to(cpu_from("PIN_MAIN", 0));
	/* A slot is read by its thread before STARTS more threads start:
	   enough for a benchmark, which starts a few. */
	struct start *s = &starts[__atomic_fetch_add(&next_start, 1, __ATOMIC_RELAXED) % STARTS];
	s->fn = fn;
	s->arg = arg;
	return real(thread, attr, start_pinned, s);
}
