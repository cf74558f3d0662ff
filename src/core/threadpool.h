/* A persistent pool of worker threads with a low-latency parallel-for.
 * Workers are created once; each parallel_for wakes them (brief spin, then a
 * futex/condvar sleep), splits the range, and returns when all are done.
 * The calling thread takes part as worker 0.
 *
 * One thread at a time may run jobs on a pool, and a job must not run another job on
 * the same pool (it would wait for itself). A job wakes every worker: cheapest while
 * they still spin (for ~60 us after the last job), dearer once they sleep, so tiny
 * jobs are better run on the caller alone. */
#ifndef EL_CORE_THREADPOOL_H
#define EL_CORE_THREADPOOL_H

#include <stdint.h>

#include "core/error.h"

typedef struct el_pool el_pool;

/* n_threads >= 1 (1 means: run everything on the caller). */
el_pool *el_pool_create(int n_threads, el_err *err);
void el_pool_destroy(el_pool *pool);
int el_pool_size(const el_pool *pool);

/* fn(ctx, ith, nth) on every thread ith in [0, nth); returns when all have returned. */
typedef void (*el_pool_fn)(void *ctx, int ith, int nth);
void el_pool_run(el_pool *pool, el_pool_fn fn, void *ctx);

/* fn(ctx, begin, end, ith) over [0, n) split into contiguous chunks whose bounds are
 * multiples of grain (except the last), about one per thread. */
typedef void (*el_range_fn)(void *ctx, int64_t begin, int64_t end, int ith);
void el_pool_parallel_for(el_pool *pool, int64_t n, int64_t grain, el_range_fn fn, void *ctx);

#endif
