/* Thread pool: coverage of parallel_for ranges, el_pool_run indices, many small
 * jobs in a row, 1-thread pools, and bad arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/threadpool.h"

typedef struct cover_ctx {
    int64_t n, grain;
    atomic_int *hits;     /* hits[i]: times index i was visited */
    atomic_int bad_bounds;
    atomic_int calls;
    int nth;
    atomic_int *per_thread; /* calls per ith */
} cover_ctx;

static void cover_range(void *arg, int64_t begin, int64_t end, int ith) {
    cover_ctx *c = arg;
    atomic_fetch_add(&c->calls, 1);
    if (ith < 0 || ith >= c->nth) atomic_fetch_add(&c->bad_bounds, 1);
    else atomic_fetch_add(&c->per_thread[ith], 1);
    /* Bounds must be multiples of grain except the end of the whole range. */
    if (begin < 0 || end > c->n || begin >= end || begin % c->grain != 0 ||
        (end != c->n && end % c->grain != 0))
        atomic_fetch_add(&c->bad_bounds, 1);
    for (int64_t i = begin; i < end && i >= 0 && i < c->n; i++) atomic_fetch_add(&c->hits[i], 1);
}

static void check_cover(el_pool *pool, int64_t n, int64_t grain) {
    cover_ctx c = {.n = n, .grain = grain, .nth = el_pool_size(pool)};
    c.hits = calloc((size_t)(n > 0 ? n : 1), sizeof *c.hits);
    c.per_thread = calloc((size_t)c.nth, sizeof *c.per_thread);
    assert_non_null(c.hits);
    assert_non_null(c.per_thread);
    el_pool_parallel_for(pool, n, grain, cover_range, &c);
    assert_int_equal(atomic_load(&c.bad_bounds), 0);
    for (int64_t i = 0; i < n; i++) {
        if (atomic_load(&c.hits[i]) != 1)
            fail_msg("n=%lld grain=%lld threads=%d: index %lld visited %d times", (long long)n,
                     (long long)grain, c.nth, (long long)i, atomic_load(&c.hits[i]));
    }
    /* About one chunk per thread: no thread gets two. */
    for (int t = 0; t < c.nth; t++) assert_true(atomic_load(&c.per_thread[t]) <= 1);
    if (n == 0) assert_int_equal(atomic_load(&c.calls), 0);
    free(c.hits);
    free(c.per_thread);
}

static void test_parallel_for_covers_once(void **state) {
    (void)state;
    const int threads[] = {1, 2, 3, 4, 7};
    const int64_t ns[] = {0, 1, 2, 3, 5, 16, 17, 63, 64, 65, 1000, 4099};
    const int64_t grains[] = {1, 2, 4, 16, 64, 100000};
    for (size_t a = 0; a < sizeof threads / sizeof *threads; a++) {
        el_err err = {0};
        el_pool *pool = el_pool_create(threads[a], &err);
        assert_non_null(pool);
        assert_int_equal(el_pool_size(pool), threads[a]);
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            for (size_t g = 0; g < sizeof grains / sizeof *grains; g++)
                check_cover(pool, ns[b], grains[g]);
        el_pool_destroy(pool);
    }
}

static void test_parallel_for_balances(void **state) {
    (void)state;
    /* 4 threads, 100 items of grain 1: every thread gets 25. */
    el_pool *pool = el_pool_create(4, NULL);
    assert_non_null(pool);
    cover_ctx c = {.n = 100, .grain = 1, .nth = 4};
    c.hits = calloc(100, sizeof *c.hits);
    c.per_thread = calloc(4, sizeof *c.per_thread);
    el_pool_parallel_for(pool, 100, 1, cover_range, &c);
    for (int t = 0; t < 4; t++) assert_int_equal(atomic_load(&c.per_thread[t]), 1);
    free(c.hits);
    free(c.per_thread);
    el_pool_destroy(pool);
}

typedef struct run_ctx {
    atomic_int seen[16];
    atomic_int wrong_nth;
    int expect_nth;
} run_ctx;

static void mark_ith(void *arg, int ith, int nth) {
    run_ctx *c = arg;
    if (nth != c->expect_nth || ith < 0 || ith >= 16) {
        atomic_fetch_add(&c->wrong_nth, 1);
        return;
    }
    atomic_fetch_add(&c->seen[ith], 1);
}

static void test_run_every_ith_once(void **state) {
    (void)state;
    for (int n = 1; n <= 8; n++) {
        el_pool *pool = el_pool_create(n, NULL);
        assert_non_null(pool);
        for (int rep = 0; rep < 50; rep++) {
            run_ctx c = {.expect_nth = n};
            el_pool_run(pool, mark_ith, &c);
            assert_int_equal(atomic_load(&c.wrong_nth), 0);
            for (int i = 0; i < 16; i++) assert_int_equal(atomic_load(&c.seen[i]), i < n ? 1 : 0);
        }
        el_pool_destroy(pool);
    }
}

/* Plain (non-atomic) writes to disjoint slots: the pool's completion must make
 * them visible to the caller. */
static void write_slots(void *arg, int64_t begin, int64_t end, int ith) {
    (void)ith;
    int64_t *v = arg;
    for (int64_t i = begin; i < end; i++) v[i] += i + 1;
}

static void test_many_small_jobs(void **state) {
    (void)state;
    const int threads[] = {2, 3, 4};
    for (size_t a = 0; a < 3; a++) {
        el_pool *pool = el_pool_create(threads[a], NULL);
        assert_non_null(pool);
        int64_t v[8] = {0};
        const int jobs = 5000;
        for (int j = 0; j < jobs; j++) el_pool_parallel_for(pool, 8, 1, write_slots, v);
        for (int i = 0; i < 8; i++) assert_int_equal(v[i], (int64_t)jobs * (i + 1));
        el_pool_destroy(pool);
    }
}

static void busy_ith(void *arg, int ith, int nth) {
    (void)nth;
    atomic_llong *sum = arg;
    /* Uneven work: later threads take longer, so the caller has to wait. */
    long x = 0;
    for (long i = 0; i < 2000L * (ith + 1); i++) {
        x += i;
        __asm__ __volatile__("" : "+r"(x)); /* keep the loop */
    }
    atomic_fetch_add(sum, ith + 1 + (x < 0));
}

static void test_jobs_after_idle_sleep(void **state) {
    (void)state;
    /* Jobs spaced so workers fall past their spin window into the sleep path. */
    el_pool *pool = el_pool_create(3, NULL);
    assert_non_null(pool);
    for (int rep = 0; rep < 20; rep++) {
        atomic_llong sum = 0;
        el_pool_run(pool, busy_ith, &sum);
        assert_int_equal(atomic_load(&sum), 6);
        struct timespec ts = {0, 300000}; /* 0.3 ms > spin window */
        nanosleep(&ts, NULL);
    }
    el_pool_destroy(pool);
}

static void test_one_thread_pool_runs_on_caller(void **state) {
    (void)state;
    el_pool *pool = el_pool_create(1, NULL);
    assert_non_null(pool);
    run_ctx c = {.expect_nth = 1};
    el_pool_run(pool, mark_ith, &c);
    assert_int_equal(atomic_load(&c.seen[0]), 1);
    assert_int_equal(atomic_load(&c.wrong_nth), 0);
    check_cover(pool, 37, 5);
    el_pool_destroy(pool);
    /* A NULL pool behaves as a 1-thread pool. */
    run_ctx d = {.expect_nth = 1};
    el_pool_run(NULL, mark_ith, &d);
    assert_int_equal(atomic_load(&d.seen[0]), 1);
    assert_int_equal(el_pool_size(NULL), 1);
}

static void test_create_rejects_bad_counts(void **state) {
    (void)state;
    el_err err = {0};
    assert_null(el_pool_create(0, &err));
    assert_int_equal(err.code, EDGELLM_EINVAL);
    assert_non_null(strstr(err.message, "n_threads"));
    assert_null(el_pool_create(-3, &err));
    assert_null(el_pool_create(1 << 20, &err));
    el_pool_destroy(NULL); /* no-op */
}

static void test_create_destroy_repeatedly(void **state) {
    (void)state;
    for (int i = 0; i < 30; i++) {
        el_pool *pool = el_pool_create(1 + i % 4, NULL);
        assert_non_null(pool);
        if (i % 2) {
            run_ctx c = {.expect_nth = 1 + i % 4};
            el_pool_run(pool, mark_ith, &c);
            assert_int_equal(atomic_load(&c.wrong_nth), 0);
        }
        el_pool_destroy(pool);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parallel_for_covers_once),
        cmocka_unit_test(test_parallel_for_balances),
        cmocka_unit_test(test_run_every_ith_once),
        cmocka_unit_test(test_many_small_jobs),
        cmocka_unit_test(test_jobs_after_idle_sleep),
        cmocka_unit_test(test_one_thread_pool_runs_on_caller),
        cmocka_unit_test(test_create_rejects_bad_counts),
        cmocka_unit_test(test_create_destroy_repeatedly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
