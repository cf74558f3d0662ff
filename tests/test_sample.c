/* Sampler chain: greedy and its ties, top-k = 1 equals greedy, seeded runs are
 * reproducible, draws follow the softmax (fixed seed, generous bound), each
 * filter keeps the right set, penalties change exactly the right logits, and a
 * 262k vocabulary gives the same sets as a full sort. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sample/sampler.h"

static el_sampler_params plain(void) {
    el_sampler_params p = el_sampler_default_params();
    p.temp = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 42;
    return p;
}

static void random_logits(el_rng *r, float *l, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) l[i] = (float)(el_rng_uniform(r) * 2.0 - 1.0) * scale;
}

static void test_rng(void **state) {
    (void)state;
    el_rng a, b;
    el_rng_seed(&a, 7);
    el_rng_seed(&b, 7);
    for (int i = 0; i < 100; i++) assert_true(el_rng_next(&a) == el_rng_next(&b));
    el_rng_seed(&b, 8);
    assert_false(el_rng_next(&a) == el_rng_next(&b));
    double sum = 0;
    for (int i = 0; i < 10000; i++) {
        double u = el_rng_uniform(&a);
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
    }
    assert_true(fabs(sum / 10000 - 0.5) < 0.02);
}

static void test_greedy(void **state) {
    (void)state;
    el_sampler_params p = plain();
    p.temp = 0.0f;
    el_sampler *s = el_sampler_new(&p, 6, NULL);
    assert_non_null(s);
    float l[6] = {0.1f, 2.0f, -1.0f, 3.5f, 3.4f, 0.0f};
    assert_int_equal(el_sampler_sample(s, l), 3);
    float tie[6] = {1.0f, 5.0f, 2.0f, 5.0f, 5.0f, -3.0f};
    assert_int_equal(el_sampler_sample(s, tie), 1); /* ties -> lowest id */
    float nan_first[6] = {NAN, 1.0f, NAN, 2.0f, NAN, 0.0f};
    assert_int_equal(el_sampler_sample(s, nan_first), 3);
    el_sampler_free(s);

    p.temp = -1.0f; /* negative means greedy too */
    s = el_sampler_new(&p, 6, NULL);
    assert_int_equal(el_sampler_sample(s, l), 3);
    el_sampler_free(s);
}

static void test_top_k1_is_greedy(void **state) {
    (void)state;
    enum { N = 3000 };
    float *l = malloc(N * sizeof(float));
    el_rng r;
    el_rng_seed(&r, 1);
    el_sampler_params pg = plain(), pk = el_sampler_default_params();
    pg.temp = 0.0f;
    pk.top_k = 1;
    pk.temp = 1.5f;
    el_sampler *g = el_sampler_new(&pg, N, NULL), *k = el_sampler_new(&pk, N, NULL);
    for (int t = 0; t < 50; t++) {
        random_logits(&r, l, N, 4.0f);
        if (t % 5 == 0) l[t * 7] = l[t * 7 + 1] = 10.0f; /* a tie at the top */
        assert_int_equal(el_sampler_sample(g, l), el_sampler_sample(k, l));
    }
    el_sampler_free(g);
    el_sampler_free(k);
    free(l);
}

static void test_seeded_reproducible(void **state) {
    (void)state;
    enum { N = 1000, T = 200 };
    float *l = malloc(N * sizeof(float));
    int32_t a[T], b[T], c[T];
    el_sampler_params p = el_sampler_default_params();
    p.seed = 1234;
    p.repeat_penalty = 1.3f;
    el_sampler *s1 = el_sampler_new(&p, N, NULL), *s2 = el_sampler_new(&p, N, NULL);
    p.seed = 4321;
    el_sampler *s3 = el_sampler_new(&p, N, NULL);
    el_rng r;
    el_rng_seed(&r, 99);
    for (int t = 0; t < T; t++) {
        random_logits(&r, l, N, 2.0f); /* flat enough that the draw matters */
        a[t] = el_sampler_sample(s1, l);
        b[t] = el_sampler_sample(s2, l);
        c[t] = el_sampler_sample(s3, l);
        el_sampler_accept(s1, a[t]);
        el_sampler_accept(s2, b[t]);
        el_sampler_accept(s3, c[t]);
    }
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    /* reset replays the same sequence */
    el_sampler_reset(s1);
    el_rng_seed(&r, 99);
    for (int t = 0; t < T; t++) {
        random_logits(&r, l, N, 2.0f);
        int32_t id = el_sampler_sample(s1, l);
        assert_int_equal(id, a[t]);
        el_sampler_accept(s1, id);
    }
    el_sampler_free(s1);
    el_sampler_free(s2);
    el_sampler_free(s3);
    free(l);
}

static void softmax_ref(const float *l, double *p, int n, double temp) {
    double max = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++) max = fmax(max, l[i] / temp);
    for (int i = 0; i < n; i++) sum += p[i] = exp(l[i] / temp - max);
    for (int i = 0; i < n; i++) p[i] /= sum;
}

static void test_distribution(void **state) {
    (void)state;
    enum { N = 5, DRAWS = 20000 };
    const float l[N] = {1.0f, 2.0f, 3.0f, 0.5f, -1.0f};
    const float temps[2] = {1.0f, 0.5f};
    for (int ti = 0; ti < 2; ti++) {
        el_sampler_params p = plain();
        p.temp = temps[ti];
        el_sampler *s = el_sampler_new(&p, N, NULL);
        int hist[N] = {0};
        for (int i = 0; i < DRAWS; i++) hist[el_sampler_sample(s, l)]++;
        double want[N];
        softmax_ref(l, want, N, temps[ti]);
        /* the standard error is <= 0.0036 per bin; 0.02 is over five of them */
        for (int i = 0; i < N; i++) assert_true(fabs((double)hist[i] / DRAWS - want[i]) < 0.02);
        el_sampler_free(s);
    }
}

/* probs [0.5, 0.3, 0.15, 0.05] for ids 3, 0, 2, 1 */
static void four_probs(float *l) {
    l[3] = logf(0.5f);
    l[0] = logf(0.3f);
    l[2] = logf(0.15f);
    l[1] = logf(0.05f);
}

static void test_filters(void **state) {
    (void)state;
    float l[4];
    four_probs(l);
    int32_t ids[4];
    float pr[4];

    el_sampler_params p = plain();
    p.top_p = 0.75f; /* 0.5 < 0.75 <= 0.8: two tokens */
    el_sampler *s = el_sampler_new(&p, 4, NULL);
    assert_int_equal(el_sampler_candidates(s, l, ids, pr, 4), 2);
    assert_int_equal(ids[0], 3);
    assert_int_equal(ids[1], 0);
    assert_float_equal(pr[0], 0.5f / 0.8f, 1e-5);
    assert_float_equal(pr[1], 0.3f / 0.8f, 1e-5);
    el_sampler_free(s);

    p = plain();
    p.min_p = 0.2f; /* keeps p >= 0.1 */
    s = el_sampler_new(&p, 4, NULL);
    assert_int_equal(el_sampler_candidates(s, l, ids, pr, 4), 3);
    assert_int_equal(ids[0], 3);
    assert_int_equal(ids[1], 0);
    assert_int_equal(ids[2], 2);
    assert_float_equal(pr[2], 0.15f / 0.95f, 1e-5);
    el_sampler_free(s);

    p = plain();
    p.top_k = 3;
    p.top_p = 0.5f; /* top-k first, then the first token alone reaches 0.5 */
    s = el_sampler_new(&p, 4, NULL);
    assert_int_equal(el_sampler_candidates(s, l, ids, pr, 4), 1);
    assert_int_equal(ids[0], 3);
    assert_float_equal(pr[0], 1.0f, 1e-6);
    el_sampler_free(s);

    p = plain();
    p.temp = 2.0f; /* temperature flattens: p ~ sqrt(p0) renormalised */
    s = el_sampler_new(&p, 4, NULL);
    assert_int_equal(el_sampler_candidates(s, l, ids, pr, 4), 4);
    double z = sqrt(0.5) + sqrt(0.3) + sqrt(0.15) + sqrt(0.05);
    assert_float_equal(pr[0], sqrt(0.5) / z, 1e-5);
    assert_float_equal(pr[3], sqrt(0.05) / z, 1e-5);
    assert_int_equal(ids[3], 1);
    el_sampler_free(s);
}

static void test_penalties(void **state) {
    (void)state;
    enum { N = 6 };
    const float l[N] = {2.0f, -1.0f, 1.0f, 0.5f, 0.0f, -2.0f};
    el_sampler_params p = plain();
    p.repeat_penalty = 2.0f;
    p.freq_penalty = 0.25f;
    p.presence_penalty = 0.125f;
    p.repeat_last_n = 3;
    el_sampler *s = el_sampler_new(&p, N, NULL);
    el_sampler_accept(s, 5); /* pushed out of the window of 3 below */
    el_sampler_accept(s, 0);
    el_sampler_accept(s, 1);
    el_sampler_accept(s, 0);
    /* window {0, 1, 0}: id 0 positive -> /2, count 2; id 1 negative -> *2, count 1 */
    float want[N];
    memcpy(want, l, sizeof want);
    want[0] = 2.0f / 2.0f - 2 * 0.25f - 0.125f;
    want[1] = -1.0f * 2.0f - 1 * 0.25f - 0.125f;
    int32_t ids[N];
    float pr[N];
    assert_int_equal(el_sampler_candidates(s, l, ids, pr, N), N);
    double ref[N];
    softmax_ref(want, ref, N, 1.0);
    for (int i = 0; i < N; i++) assert_float_equal(pr[i], ref[ids[i]], 1e-5);
    /* id 5 left the window (its logit is untouched); id 1 went below it */
    assert_int_equal(ids[N - 1], 1);
    assert_int_equal(ids[N - 2], 5);

    /* greedy applies penalties first: 0 was the argmax, now 2 is */
    el_sampler_params g = p;
    g.temp = 0.0f;
    el_sampler *sg = el_sampler_new(&g, N, NULL);
    assert_int_equal(el_sampler_sample(sg, l), 0);
    el_sampler_accept(sg, 0);
    assert_int_equal(el_sampler_sample(sg, l), 2);
    el_sampler_reset(sg);
    assert_int_equal(el_sampler_sample(sg, l), 0);
    el_sampler_free(sg);

    /* top-k sees penalised logits: 0 falls out of the best two, 3 comes in */
    el_sampler_params k2 = p;
    k2.top_k = 2;
    el_sampler *sk = el_sampler_new(&k2, N, NULL);
    assert_int_equal(el_sampler_candidates(sk, l, ids, pr, N), 2);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 2);
    el_sampler_accept(sk, 0);
    el_sampler_accept(sk, 0);
    assert_int_equal(el_sampler_candidates(sk, l, ids, pr, N), 2);
    assert_int_equal(ids[0], 2); /* 1.0 */
    assert_int_equal(ids[1], 3); /* 0.5; 0 is now 2/2 - 0.5 - 0.125 = 0.375 */
    el_sampler_free(sk);
    el_sampler_free(s);
}

typedef struct ref_item {
    float l;
    int32_t id;
} ref_item;

static int ref_cmp(const void *a, const void *b) {
    const ref_item *x = a, *y = b;
    if (x->l != y->l) return x->l > y->l ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void test_large_vocab(void **state) {
    (void)state;
    enum { N = 262144 };
    float *l = malloc(N * sizeof(float));
    ref_item *ref = malloc(N * sizeof(ref_item));
    int32_t *ids = malloc(N * sizeof(int32_t));
    float *pr = malloc(N * sizeof(float));
    el_rng r;
    el_rng_seed(&r, 5);
    random_logits(&r, l, N, 8.0f);
    for (int i = 0; i < N; i += 1000) l[i] = l[i + 1]; /* some ties */
    for (int i = 0; i < N; i++) ref[i] = (ref_item){l[i], i};
    qsort(ref, N, sizeof(ref_item), ref_cmp);

    el_sampler_params p = plain();
    p.top_k = 40;
    el_sampler *s = el_sampler_new(&p, N, NULL);
    assert_int_equal(el_sampler_candidates(s, l, ids, pr, N), 40);
    for (int i = 0; i < 40; i++) assert_int_equal(ids[i], ref[i].id);
    el_sampler_free(s);

    /* top-p with top-k off needs far more than 256 tokens here: the full-sort path */
    p = plain();
    p.top_p = 0.9f;
    s = el_sampler_new(&p, N, NULL);
    size_t n = el_sampler_candidates(s, l, ids, pr, N);
    double max = ref[0].l, z = 0, cum = 0;
    for (int i = 0; i < N; i++) z += exp(ref[i].l - max);
    size_t want = 0;
    while (want < N && cum < 0.9) cum += exp(ref[want++].l - max) / z;
    assert_true(n > 256);
    assert_true(n + 2 >= want && n <= want + 2); /* float vs double sums at the edge */
    for (size_t i = 0; i < n && i < want; i++) assert_int_equal(ids[i], ref[i].id);
    el_sampler_free(s);

    /* the default chain on a peaked distribution: top-k 40, then top-p/min-p */
    p = el_sampler_default_params();
    s = el_sampler_new(&p, N, NULL);
    n = el_sampler_candidates(s, l, ids, pr, N);
    assert_true(n >= 1 && n <= 40);
    for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], ref[i].id);
    for (int t = 0; t < 20; t++) {
        int32_t id = el_sampler_sample(s, l);
        bool in = false;
        for (size_t i = 0; i < n; i++) in |= ids[i] == id;
        assert_true(in);
    }
    el_sampler_free(s);
    free(l);
    free(ref);
    free(ids);
    free(pr);
}

static void test_bad_params(void **state) {
    (void)state;
    el_err err = {0};
    el_sampler_params p = el_sampler_default_params();
    assert_null(el_sampler_new(&p, 0, &err));
    assert_int_equal(err.code, EDGELLM_EINVAL);
    p.repeat_penalty = 0.0f;
    assert_null(el_sampler_new(&p, 10, &err));
    assert_non_null(strstr(err.message, "repeat_penalty"));
    p = el_sampler_default_params();
    p.top_p = NAN;
    assert_null(el_sampler_new(&p, 10, &err));
    /* all -inf logits: still a valid id */
    p = plain();
    el_sampler *s = el_sampler_new(&p, 3, &err);
    float l[3] = {-INFINITY, -INFINITY, -INFINITY};
    int32_t id = el_sampler_sample(s, l);
    assert_true(id >= 0 && id < 3);
    /* a temperature so small that logits overflow: still the argmax */
    el_sampler_free(s);
    p = plain();
    p.temp = 1e-39f; /* 3 / 1e-39 overflows a float */
    s = el_sampler_new(&p, 3, &err);
    float big[3] = {1.0f, 3.0f, 2.0f};
    for (int i = 0; i < 10; i++) assert_int_equal(el_sampler_sample(s, big), 1);
    /* out-of-range accepted ids are ignored */
    el_sampler_accept(s, -1);
    el_sampler_accept(s, 3);
    el_sampler_free(s);
}

/* el_argmax: the first of equal maxima, NaN never wins, empty and all-NaN give 0. */
static void test_argmax(void **state) {
    (void)state;
    const float a[] = {1.0f, 3.0f, -2.0f, 3.0f, 0.5f};
    assert_int_equal(el_argmax(a, 5), 1);
    assert_int_equal(el_argmax(a, 1), 0);
    assert_int_equal(el_argmax(a, 0), 0);
    const float b[] = {NAN, -5.0f, NAN, -1.0f, -3.0f};
    assert_int_equal(el_argmax(b, 5), 3);
    const float c[] = {NAN, NAN};
    assert_int_equal(el_argmax(c, 2), 0);
    const float d[] = {-INFINITY, -INFINITY, -1e30f};
    assert_int_equal(el_argmax(d, 3), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_top_k1_is_greedy),
        cmocka_unit_test(test_seeded_reproducible),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_penalties),
        cmocka_unit_test(test_large_vocab),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_argmax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
