/* Persistent worker pool.
 *
 * Protocol (one caller at a time):
 *   caller: writes job (fn, ctx), sets pending = nth-1, bumps `gen` (release),
 *           wakes sleepers, runs ith 0 itself, then waits for pending == 0.
 *   worker: waits for `gen` to change (spin, then futex sleep), runs its share,
 *           decrements pending (release); the last one wakes a sleeping caller.
 * Sleeping is announced through counters so the fast path makes no syscall:
 * a waker checks the counter after publishing, a sleeper re-checks the word
 * after announcing (both seq_cst), so one of them always sees the other. */
#include "core/threadpool.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/timing.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#define EL_POOL_FUTEX 1
#else
#define EL_POOL_FUTEX 0
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax(void) { _mm_pause(); }
#elif defined(__aarch64__)
static inline void cpu_relax(void) { __asm__ __volatile__("yield" ::: "memory"); }
#else
static inline void cpu_relax(void) {}
#endif

/* How long a waiting thread spins before it sleeps: long enough to cover the gap
 * between two matmuls of one forward pass, short enough not to burn a core idle. */
#define SPIN_NS 60000
#define MAX_THREADS 1024

typedef struct worker_arg {
    struct el_pool *pool;
    int ith;
} worker_arg;

struct el_pool {
    int n_threads;
    pthread_t *threads;
    worker_arg *args;

    /* Job, published by the release-increment of gen. */
    el_pool_fn fn;
    void *ctx;
    atomic_bool stop;

    _Alignas(64) atomic_uint gen;        /* futex word workers wait on */
    atomic_int gen_sleepers;              /* workers asleep (or about to be) on gen */
    _Alignas(64) atomic_uint pending;    /* workers still running the job; futex word */
    atomic_int caller_sleeping;

#if !EL_POOL_FUTEX
    pthread_mutex_t mu;
    pthread_cond_t cv;
#endif
};

/* ---- wait / wake on a 32-bit word ---- */

#if EL_POOL_FUTEX
static void word_wait(el_pool *p, atomic_uint *w, unsigned expected) {
    (void)p;
    /* Returns at once if *w != expected; spurious returns are re-checked by callers. */
    syscall(SYS_futex, (unsigned *)w, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}
static void word_wake(el_pool *p, atomic_uint *w) {
    (void)p;
    syscall(SYS_futex, (unsigned *)w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
#else
static void word_wait(el_pool *p, atomic_uint *w, unsigned expected) {
    pthread_mutex_lock(&p->mu);
    while (atomic_load(w) == expected) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
static void word_wake(el_pool *p, atomic_uint *w) {
    (void)w;
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
#endif

/* Spin until *w != old for up to SPIN_NS; returns the last value seen. */
static unsigned spin_while_equal(atomic_uint *w, unsigned old) {
    unsigned v = atomic_load_explicit(w, memory_order_acquire);
    if (v != old) return v;
    int64_t deadline = el_time_ns() + SPIN_NS;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            cpu_relax();
            v = atomic_load_explicit(w, memory_order_acquire);
            if (v != old) return v;
        }
        if (el_time_ns() > deadline) return v;
        /* On an oversubscribed machine the thread we wait for may need this core. */
        sched_yield();
    }
}

/* ---- workers ---- */

static unsigned wait_for_new_gen(el_pool *p, unsigned seen) {
    unsigned g = spin_while_equal(&p->gen, seen);
    if (g != seen) return g;
    atomic_fetch_add(&p->gen_sleepers, 1);
    while ((g = atomic_load(&p->gen)) == seen) word_wait(p, &p->gen, seen);
    atomic_fetch_sub(&p->gen_sleepers, 1);
    return g;
}

static void finish_share(el_pool *p) {
    if (atomic_fetch_sub(&p->pending, 1) == 1 &&
        atomic_load(&p->caller_sleeping))
        word_wake(p, &p->pending);
}

static void *worker_main(void *arg) {
    worker_arg *a = arg;
    el_pool *p = a->pool;
    /* gen is 0 when the pool is made; reading it here instead could skip a job
     * published before this thread got to run. */
    unsigned seen = 0;
    for (;;) {
        seen = wait_for_new_gen(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        el_pool_fn fn = p->fn;
        void *ctx = p->ctx;
        fn(ctx, a->ith, p->n_threads);
        finish_share(p);
    }
    return NULL;
}

/* ---- caller side ---- */

static void publish(el_pool *p) {
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_seq_cst);
    if (atomic_load(&p->gen_sleepers) > 0) word_wake(p, &p->gen);
}

static void wait_all_done(el_pool *p) {
    unsigned left;
    int64_t deadline = 0;
    while ((left = atomic_load_explicit(&p->pending, memory_order_acquire)) != 0) {
        int64_t now = el_time_ns();
        if (deadline == 0) deadline = now + SPIN_NS;
        else if (now > deadline) break;
        else sched_yield();
        for (int i = 0; i < 64; i++) cpu_relax();
    }
    if (left == 0) return;
    atomic_store(&p->caller_sleeping, 1);
    while ((left = atomic_load(&p->pending)) != 0) word_wait(p, &p->pending, left);
    atomic_store(&p->caller_sleeping, 0);
}

el_pool *el_pool_create(int n_threads, el_err *err) {
    if (n_threads < 1 || n_threads > MAX_THREADS) {
        el_fail(err, EDGELLM_EINVAL, "thread pool: n_threads %d is outside [1, %d]", n_threads,
                MAX_THREADS);
        return NULL;
    }
    el_pool *p = calloc(1, sizeof *p);
    if (!p) {
        el_fail(err, EDGELLM_ENOMEM, "thread pool: out of memory");
        return NULL;
    }
    p->n_threads = n_threads;
    atomic_init(&p->stop, false);
    atomic_init(&p->gen, 0);
    atomic_init(&p->gen_sleepers, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->caller_sleeping, 0);
#if !EL_POOL_FUTEX
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
#endif
    if (n_threads == 1) return p;

    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    p->args = calloc((size_t)n_threads, sizeof *p->args);
    if (!p->threads || !p->args) {
        el_fail(err, EDGELLM_ENOMEM, "thread pool: out of memory for %d threads", n_threads);
        p->n_threads = 1;
        el_pool_destroy(p);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        p->args[i].pool = p;
        p->args[i].ith = i;
        int rc = pthread_create(&p->threads[i], NULL, worker_main, &p->args[i]);
        if (rc != 0) {
            el_fail(err, EDGELLM_ENOMEM, "thread pool: starting thread %d of %d failed: %s", i,
                    n_threads, strerror(rc));
            p->n_threads = i; /* destroy joins the ones that started */
            el_pool_destroy(p);
            return NULL;
        }
    }
    return p;
}

void el_pool_destroy(el_pool *p) {
    if (!p) return;
    if (p->n_threads > 1) {
        atomic_store_explicit(&p->stop, true, memory_order_release);
        publish(p);
        for (int i = 1; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    }
#if !EL_POOL_FUTEX
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
#endif
    free(p->threads);
    free(p->args);
    free(p);
}

int el_pool_size(const el_pool *p) { return p ? p->n_threads : 1; }

void el_pool_run(el_pool *p, el_pool_fn fn, void *ctx) {
    if (!p || p->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, (unsigned)(p->n_threads - 1), memory_order_relaxed);
    publish(p);
    fn(ctx, 0, p->n_threads);
    wait_all_done(p);
}

/* ---- parallel for ---- */

typedef struct range_job {
    int64_t n, grain;
    el_range_fn fn;
    void *ctx;
} range_job;

/* Thread ith of nth takes a contiguous run of grain-sized units, the runs
 * balanced to within one unit; bounds are multiples of grain (end clipped to n). */
static void range_share(void *arg, int ith, int nth) {
    const range_job *j = arg;
    int64_t units = j->n / j->grain + (j->n % j->grain != 0);
    int64_t q = units / nth, rem = units % nth;
    int64_t u0 = q * ith + (ith < rem ? ith : rem);
    int64_t u1 = u0 + q + (ith < rem);
    int64_t begin = u0 * j->grain, end = u1 * j->grain;
    if (end > j->n) end = j->n;
    if (begin < end) j->fn(j->ctx, begin, end, ith);
}

void el_pool_parallel_for(el_pool *p, int64_t n, int64_t grain, el_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (!p || p->n_threads == 1 || n <= grain) {
        fn(ctx, 0, n, 0);
        return;
    }
    range_job j = {.n = n, .grain = grain, .fn = fn, .ctx = ctx};
    el_pool_run(p, range_share, &j);
}
