/*
 * settings.c - the process-wide settings and counters, set up once: page
 * size, secrets, tunables.
 *
 * The bottom layer: every other file may read what is here, and nothing
 * here calls up.  Set-up is lazy, on the first call into the library, so
 * that it also works when libosmem serves the very first allocation of a
 * process.  What reaches every layer (the fork handlers, the thread-exit
 * key) is started by the entry points, in init.c.
 *
 * SPDX-License-Identifier: MIT
 */
#include "internal.h"

#include <pthread.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_GETRANDOM
# include <sys/random.h>
#endif

struct osmem_globals osmem_g;
struct osmem_usage osmem_usage;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Secrets come from the kernel: the random bytes it hands every process at
   exec, and getrandom where available.  Addresses and the clock are mixed
   in so that a failure of both still yields per-process values. */
static void choose_secrets(void)
{
	uint64_t seed[3] = { 0, 0, 0 };
	const void *at_random = (const void *)getauxval(AT_RANDOM);
	if (at_random)
		memcpy(seed, at_random, 16);
#ifdef HAVE_GETRANDOM
	uint64_t extra[3];
	if (getrandom(extra, sizeof(extra), GRND_NONBLOCK) == (ssize_t)sizeof(extra))
		for (int i = 0; i < 3; i++)
			seed[i] ^= extra[i];
#endif
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t s = seed[0] ^ mix64(seed[1]) ^ mix64(seed[2] ^ (uint64_t)ts.tv_nsec) ^
	             (uint64_t)(uintptr_t)&ts ^ ((uint64_t)getpid() << 32);
	osmem_g.seal_secret = mix64(s);
	osmem_g.link_secret = mix64(s ^ osmem_g.seal_secret);
	osmem_g.cache_secret = mix64(s ^ osmem_g.link_secret);
	osmem_g.mark_secret = mix64(s ^ osmem_g.cache_secret);
}

void osmem_init_slow(void)
{
	pthread_mutex_lock(&init_lock);
	if (!osmem_g.ready) {
		long page = sysconf(_SC_PAGESIZE);
		osmem_g.page_size = page > 0 ? (size_t)page : 4096;
		choose_secrets();
		osmem_options_read(&osmem_g.opt);
		__atomic_store_n(&osmem_g.ready, true, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&init_lock);
}
