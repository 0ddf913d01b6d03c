/*
 * alloc.h - the one place where the benchmarks name an allocator.
 *
 * Every workload allocates through these macros.  Built with -DBENCH_OSMEM
 * they call libosmem directly (the program is linked statically against
 * libosmem's objects, so the calls are plain direct calls); built without
 * it they call the C library's malloc family, which is what jemalloc,
 * mimalloc and tcmalloc replace when they are put in with LD_PRELOAD.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef BENCH_ALLOC_H
#define BENCH_ALLOC_H

#ifdef BENCH_OSMEM
# include <osmem.h>
# define BENCH_IMPL "osmem"
# define BENCH_MALLOC(n) os_malloc(n)
# define BENCH_FREE(p) os_free(p)
# define BENCH_CALLOC(m, n) os_calloc((m), (n))
# define BENCH_REALLOC(p, n) os_realloc((p), (n))
#else
# include <stdlib.h>
# define BENCH_IMPL "libc"
# define BENCH_MALLOC(n) malloc(n)
# define BENCH_FREE(p) free(p)
# define BENCH_CALLOC(m, n) calloc((m), (n))
# define BENCH_REALLOC(p, n) realloc((p), (n))
#endif

#endif /* BENCH_ALLOC_H */
