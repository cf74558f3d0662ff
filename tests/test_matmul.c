/* el_matmul: for every weight format with a quantize function and several token
 * counts, results with 2/3/4 threads equal the 1-thread result bit for bit, and match
 * a double-precision reference on the dequantized weights and the quantized-then-
 * dequantized activations. Also: a token alone gives bit for bit what it gives inside a
 * batch; the blocked path is as accurate as el_vec_dot_best; K split into several
 * panel chunks; row counts that are not a multiple of the panel height; the SIMD
 * packers and micro-kernels against their portable definitions; the work-size and
 * support queries. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/cpu_features.h"
#include "core/threadpool.h"
#include "kernels/gemm.h"
#include "kernels/matmul.h"
#include "quant/blocks.h"
#include "quant/quant.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1ull << 24))) * 2.f - 1.f;
}

static el_pool *pools[5]; /* pools[n]: n threads */

static int setup(void **state) {
    (void)state;
    for (int n = 1; n <= 4; n++) {
        pools[n] = el_pool_create(n, NULL);
        if (!pools[n]) return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int n = 1; n <= 4; n++) el_pool_destroy(pools[n]);
    return 0;
}

typedef struct problem {
    el_type wtype;
    int64_t n_in, n_out, n_tok;
    void *wq;      /* quantized weights */
    float *x;      /* activations */
    double *ref;   /* reference Y */
    double *scale; /* sum |w||x| per output, for the tolerance */
    double *slack; /* format rounding the reference does not model (Q8_1's f16 block sums) */
} problem;

/* The weight block's offset m for the formats x = d*q + m (0 for the others). */
static double block_min(el_type wtype, const void *row, int64_t b) {
    if (wtype == EL_TYPE_Q4_1) return el_f16_to_f32(((const block_q4_1 *)row)[b].m);
    if (wtype == EL_TYPE_Q5_1) return el_f16_to_f32(((const block_q5_1 *)row)[b].m);
    return 0;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* Weights with a spread of magnitudes across rows and a few outliers, like real tensors. */
static void make_problem_ex(problem *p, el_type wtype, int64_t n_in, int64_t n_out, int64_t n_tok,
                            bool outliers) {
    const el_type_traits *wt = el_type_get_traits(wtype);
    assert_non_null(wt);
    assert_non_null(wt->quantize);
    const el_type_traits *at = el_type_get_traits(wt->vec_dot_type);
    assert_non_null(at);
    p->wtype = wtype;
    p->n_in = n_in;
    p->n_out = n_out;
    p->n_tok = n_tok;
    size_t wrow = el_type_row_size(wtype, n_in);
    assert_true(wrow > 0);
    p->wq = xmalloc(wrow * (size_t)n_out);
    float *wf = xmalloc(sizeof(float) * (size_t)(n_in * n_out));
    for (int64_t r = 0; r < n_out; r++) {
        float amp = 0.05f + 0.5f * (float)(r % 7);
        for (int64_t i = 0; i < n_in; i++) {
            float v = frand() * amp;
            if (i % 97 == 13) v *= 6.f;
            wf[r * n_in + i] = v;
        }
        wt->quantize(wf + r * n_in, (uint8_t *)p->wq + r * wrow, n_in);
        wt->dequantize((uint8_t *)p->wq + r * wrow, wf + r * n_in, n_in); /* what the kernel sees */
    }
    p->x = xmalloc(sizeof(float) * (size_t)(n_in * n_tok));
    for (int64_t i = 0; i < n_in * n_tok; i++) {
        p->x[i] = frand() * (1.f + (float)(i % 5));
        if (outliers && i % 61 == 7) p->x[i] *= 40.f;
    }

    /* Activations as the kernel sees them: through the activation format and back. */
    float *xa = xmalloc(sizeof(float) * (size_t)(n_in * n_tok));
    if (wt->vec_dot_type == EL_TYPE_F32) {
        memcpy(xa, p->x, sizeof(float) * (size_t)(n_in * n_tok));
    } else {
        size_t arow = el_type_row_size(wt->vec_dot_type, n_in);
        void *tmp = xmalloc(arow);
        for (int64_t t = 0; t < n_tok; t++) {
            at->quantize(p->x + t * n_in, tmp, n_in);
            at->dequantize(tmp, xa + t * n_in, n_in);
        }
        free(tmp);
    }
    p->ref = xmalloc(sizeof(double) * (size_t)(n_out * n_tok));
    p->scale = xmalloc(sizeof(double) * (size_t)(n_out * n_tok));
    p->slack = xmalloc(sizeof(double) * (size_t)(n_out * n_tok));
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < n_out; r++) {
            double s = 0, a = 0, slack = 0;
            for (int64_t i = 0; i < n_in; i++) {
                double prod = (double)wf[r * n_in + i] * (double)xa[t * n_in + i];
                s += prod;
                a += fabs(prod);
            }
            /* Q8_1 keeps d*sum(q) per block as f16: m*s is off by up to |m*s| * 2^-11. */
            for (int64_t b = 0; b < n_in / 32; b++) {
                double m = block_min(wtype, (const uint8_t *)p->wq + r * wrow, b), bs = 0;
                if (m == 0) continue;
                for (int i = 0; i < 32; i++) bs += xa[t * n_in + 32 * b + i];
                slack += fabs(m * bs) * (1.0 / 1024);
            }
            p->ref[t * n_out + r] = s;
            p->scale[t * n_out + r] = a;
            p->slack[t * n_out + r] = slack;
        }
    free(wf);
    free(xa);
}

static void make_problem(problem *p, el_type wtype, int64_t n_in, int64_t n_out, int64_t n_tok) {
    make_problem_ex(p, wtype, n_in, n_out, n_tok, false);
}

static void free_problem(problem *p) {
    free(p->wq);
    free(p->x);
    free(p->ref);
    free(p->scale);
    free(p->slack);
}

static float *run(const problem *p, el_pool *pool) {
    size_t ws = el_matmul_work_size(p->wtype, p->n_in, p->n_tok);
    void *work = ws ? el_aligned_alloc(64, ws) : NULL;
    if (ws) assert_non_null(work);
    float *y = xmalloc(sizeof(float) * (size_t)(p->n_out * p->n_tok));
    for (int64_t i = 0; i < p->n_out * p->n_tok; i++) y[i] = -12345.f; /* every slot must be written */
    el_matmul(pool, p->wq, p->wtype, p->n_in, p->n_out, p->x, p->n_tok, y, work);
    el_aligned_free(work);
    return y;
}

/* p run on pools of 1-4 threads gives want bit for bit (what: the layout run, against:
 * what want came from, for the message). */
static void check_threads_give(const problem *p, const float *want, const char *what, const char *against) {
    for (int n = 1; n <= 4; n++) {
        float *y = run(p, pools[n]);
        if (memcmp(want, y, sizeof(float) * (size_t)(p->n_out * p->n_tok)) != 0)
            fail_msg("%s %lldx%lld, %lld tokens, %d threads: differs from %s", what, (long long)p->n_out,
                     (long long)p->n_in, (long long)p->n_tok, n, against);
        free(y);
    }
}

static void check_against_reference(const problem *p, const float *y);

/* p's weights regrouped into layout (el_repack), p switched to them: returns the file
 * layout's result (checked against the reference), *orig the file's weights (the caller
 * frees p->wq and puts *orig back before free_problem). */
static float *switch_to_regrouped(problem *p, el_type layout, void **orig) {
    const size_t bytes = el_type_row_size(p->wtype, p->n_in) * (size_t)p->n_out;
    void *g = xmalloc(bytes);
    assert_int_equal(el_repack(p->wtype, p->wq, g, p->n_in, p->n_out), 0);
    assert_true(el_matmul_supported(layout, p->n_in));
    float *y = run(p, pools[1]);
    check_against_reference(p, y);
    *orig = p->wq;
    p->wq = g;
    p->wtype = layout;
    return y;
}

static void check_against_reference(const problem *p, const float *y) {
    for (int64_t i = 0; i < p->n_out * p->n_tok; i++) {
        double err = fabs((double)y[i] - p->ref[i]);
        double tol = 1e-5 * p->scale[i] + p->slack[i] + 1e-6;
        if (!(err <= tol))
            fail_msg("%s n_in=%lld n_out=%lld n_tok=%lld: y[%lld]=%.7g, reference %.7g (err %.3g > tol %.3g)",
                     el_type_name(p->wtype), (long long)p->n_in, (long long)p->n_out, (long long)p->n_tok,
                     (long long)i, (double)y[i], p->ref[i], err, tol);
    }
}

static void check_case(el_type wtype, int64_t n_in, int64_t n_out, int64_t n_tok) {
    problem p;
    make_problem(&p, wtype, n_in, n_out, n_tok);
    float *y1 = run(&p, pools[1]);
    check_against_reference(&p, y1);
    for (int n = 2; n <= 4; n++) {
        float *yn = run(&p, pools[n]);
        if (memcmp(y1, yn, sizeof(float) * (size_t)(n_out * n_tok)) != 0)
            fail_msg("%s n_tok=%lld: %d threads differ from 1 thread", el_type_name(wtype), (long long)n_tok, n);
        free(yn);
    }
    free(y1);
    free_problem(&p);
}

static const el_type WEIGHT_TYPES[] = {
    EL_TYPE_F32,  EL_TYPE_F16,  EL_TYPE_BF16, EL_TYPE_Q4_0, EL_TYPE_Q4_1, EL_TYPE_Q5_0, EL_TYPE_Q5_1,
    EL_TYPE_Q8_0, EL_TYPE_Q2_K, EL_TYPE_Q3_K, EL_TYPE_Q4_K, EL_TYPE_Q5_K, EL_TYPE_Q6_K,
};

static void test_all_formats_threads_and_reference(void **state) {
    (void)state;
    const int64_t toks[] = {1, 3, 17, 64};
    for (size_t k = 0; k < sizeof WEIGHT_TYPES / sizeof *WEIGHT_TYPES; k++)
        for (size_t t = 0; t < sizeof toks / sizeof *toks; t++) check_case(WEIGHT_TYPES[k], 512, 133, toks[t]);
}

static void test_many_rows_uneven(void **state) {
    (void)state;
    /* Row counts that are not a multiple of 4 or 16 (the main test also has 133). */
    check_case(EL_TYPE_Q4_K, 256, 203, 9);
    check_case(EL_TYPE_Q8_0, 64, 203, 9);
    check_case(EL_TYPE_Q6_K, 256, 1, 5); /* a single row */
    check_case(EL_TYPE_Q5_0, 32, 5, 4);  /* a single block */
}

static void test_long_rows_split_k(void **state) {
    (void)state;
    /* Longer than one panel buffer: the blocked path adds K chunks into Y. */
    check_case(EL_TYPE_Q4_K, 256 * 18, 6, 5);
    check_case(EL_TYPE_Q6_K, 256 * 18, 5, 4);
    check_case(EL_TYPE_Q8_0, 32 * 300, 6, 5);
    check_case(EL_TYPE_Q5_0, 32 * 300, 7, 3);
    check_case(EL_TYPE_Q4_K, 256 * 18, 33, 1); /* one token: gemv per K chunk */
    check_case(EL_TYPE_Q8_0, 32 * 300, 9, 1);
}

/* The SIMD micro-kernels and packers against their portable definitions, on panels
 * packed from real blocks of each format. */
static void test_gemm_kernels_match_portable(void **state) {
    (void)state;
    const el_type types[] = {EL_TYPE_Q4_0, EL_TYPE_Q5_0, EL_TYPE_Q8_0, EL_TYPE_Q2_K,
                             EL_TYPE_Q3_K, EL_TYPE_Q4_K, EL_TYPE_Q5_K, EL_TYPE_Q6_K};
    int checked = 0;
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        el_gemm_ops ops;
        if (!el_gemm_ops_get(types[k], &ops)) continue; /* no SIMD kernels on this CPU */
        checked++;
        const int64_t n_in = 512;
        const el_type_traits *wt = el_type_get_traits(types[k]);
        const el_type act = wt->vec_dot_type;
        size_t wrow = el_type_row_size(types[k], n_in), arow = el_type_row_size(act, n_in);
        uint8_t *w = xmalloc(wrow * EL_GEMM_RM), *xq = xmalloc(arow * EL_GEMM_TN);
        float row[512];
        for (int r = 0; r < EL_GEMM_RM; r++) {
            for (int i = 0; i < n_in; i++) row[i] = frand() * (float)(r + 1);
            wt->quantize(row, w + r * wrow, n_in);
        }
        for (int t = 0; t < EL_GEMM_TN; t++) {
            for (int i = 0; i < n_in; i++) row[i] = frand() * 3.f;
            el_quantize_activation(act, row, xq + t * arow, n_in);
        }
        const void *rows[EL_GEMM_RM], *xs[EL_GEMM_TN];
        for (int r = 0; r < EL_GEMM_RM; r++) rows[r] = w + r * wrow;
        for (int t = 0; t < EL_GEMM_TN; t++) xs[t] = xq + t * arow;
        const int64_t nb = n_in / ops.block_elems;
        void *panel = el_aligned_alloc(64, ops.panel_bytes * (size_t)nb);
        assert_non_null(panel);
        memset(panel, 0, ops.panel_bytes * (size_t)nb);
        ops.pack(rows, 0, nb, panel);
        /* The packer in use (SIMD where there is one) builds the same panel as the portable one. */
        void *panel_ref = el_aligned_alloc(64, ops.panel_bytes * (size_t)nb);
        assert_non_null(panel_ref);
        memset(panel_ref, 0, ops.panel_bytes * (size_t)nb);
        ops.pack_ref(rows, 0, nb, panel_ref);
        if (memcmp(panel, panel_ref, ops.panel_bytes * (size_t)nb) != 0)
            fail_msg("%s: packed panel differs from the portable packer's", wt->name);
        el_aligned_free(panel_ref);
        float out[EL_GEMM_TN][EL_GEMM_RM], ref[EL_GEMM_TN][EL_GEMM_RM];
        float dots[EL_GEMM_TN][EL_GEMM_RM];
        for (int t = 0; t < EL_GEMM_TN; t++)
            for (int r = 0; r < EL_GEMM_RM; r++) dots[t][r] = wt->vec_dot_ref(n_in, rows[r], xs[t]);
        if (ops.act_offset)
            for (int t = 0; t < EL_GEMM_TN; t++) el_gemm_offset_act(xq + t * arow, n_in);
        ops.kernel(panel, nb, xs, EL_GEMM_TN, out);
        ops.kernel_ref(panel, nb, xs, EL_GEMM_TN, ref);
        for (int t = 0; t < EL_GEMM_TN; t++)
            for (int r = 0; r < EL_GEMM_RM; r++) {
                float d = dots[t][r];
                float tol = 1e-4f * (fabsf(d) + 1.f);
                if (fabsf(out[t][r] - ref[t][r]) > tol || fabsf(ref[t][r] - d) > tol)
                    fail_msg("%s t=%d r=%d: simd %.7g portable %.7g vec_dot_ref %.7g", wt->name, t, r,
                             (double)out[t][r], (double)ref[t][r], (double)d);
            }
        el_aligned_free(panel);
        free(w);
        free(xq);
    }
#if defined(__x86_64__)
    /* An AVX2 machine (not capped by EDGELLM_CPU) has blocked kernels for all eight. */
    if (el_cpu_features_get()->level >= EL_CPU_AVX2) assert_int_equal(checked, 8);
#endif
    (void)checked;
}

/* The blocked path must be as accurate as per-row dot products (el_vec_dot_best): same
 * integer sums, and no lane carrying an offset that cancels only at the end. Activations with outliers,
 * like a residual stream; errors relative to sum |w x|, averaged over the outputs. */
static void test_blocked_path_as_accurate_as_dots(void **state) {
    (void)state;
    const el_type types[] = {EL_TYPE_Q4_0, EL_TYPE_Q5_0, EL_TYPE_Q8_0, EL_TYPE_Q2_K,
                             EL_TYPE_Q3_K, EL_TYPE_Q4_K, EL_TYPE_Q5_K, EL_TYPE_Q6_K};
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        problem p;
        const int64_t n_in = 1024, n_tok = 8;
        make_problem_ex(&p, types[k], n_in, 64, n_tok, true);
        float *yb = run(&p, pools[2]); /* blocked */
        const el_type_traits *wt = el_type_get_traits(types[k]);
        const size_t wrow = el_type_row_size(types[k], n_in), arow = el_type_row_size(wt->vec_dot_type, n_in);
        void *act = xmalloc(arow);
        const el_vec_dot_fn dot = el_vec_dot_best(types[k]);
        double eb = 0, ed = 0;
        for (int64_t t = 0; t < n_tok; t++) {
            el_quantize_activation(wt->vec_dot_type, p.x + t * n_in, act, n_in);
            for (int64_t r = 0; r < p.n_out; r++) {
                const int64_t i = t * p.n_out + r;
                const float yd = dot(n_in, (const uint8_t *)p.wq + r * wrow, act); /* per-row dot */
                eb += fabs((double)yb[i] - p.ref[i]) / p.scale[i];
                ed += fabs((double)yd - p.ref[i]) / p.scale[i];
            }
        }
        free(act);
        if (!(eb <= 2.0 * ed + 1e-9 * (double)(n_tok * p.n_out)))
            fail_msg("%s: blocked path mean error %.3g, per-row dots %.3g", el_type_name(types[k]),
                     eb / (double)(n_tok * p.n_out), ed / (double)(n_tok * p.n_out));
        free(yb);
        free_problem(&p);
    }
}

/* A token's result is the same bit for bit whether it is computed alone or in a batch
 * (as when a cached prompt prefix is followed by the last prompt token): batches of 7
 * (the one-token kernels, or the few-token ones with all 7 at once), of 13 (packed panels;
 * Q4_K's activations transposed), and of 8 on rows of 4096 (the few-token kernels take
 * the tokens in groups there). */
static void test_token_result_independent_of_batch(void **state) {
    (void)state;
    for (size_t k = 0; k < 3 * (sizeof WEIGHT_TYPES / sizeof *WEIGHT_TYPES); k++) {
        problem p;
        const int64_t n_in = k % 3 == 2 ? 4096 : 512, n_tok = k % 3 == 0 ? 7 : k % 3 == 1 ? 13 : 8;
        make_problem(&p, WEIGHT_TYPES[k / 3], n_in, 133, n_tok);
        float *yb = run(&p, pools[2]);
        for (int64_t t = 0; t < n_tok; t++) {
            problem one = p;
            one.n_tok = 1;
            one.x = p.x + t * n_in;
            float *y1 = run(&one, pools[2]);
            if (memcmp(y1, yb + t * p.n_out, sizeof(float) * (size_t)p.n_out) != 0)
                fail_msg("%s: token %lld alone differs from the same token in a batch of %lld (rows of %lld)",
                         el_type_name(WEIGHT_TYPES[k / 3]), (long long)t, (long long)n_tok, (long long)n_in);
            free(y1);
        }
        free(yb);
        free_problem(&p);
    }
}

static void test_work_size_and_support(void **state) {
    (void)state;
    assert_int_equal(el_matmul_work_size(EL_TYPE_F32, 512, 8), 0);
    assert_int_equal(el_matmul_work_size(EL_TYPE_F16, 512, 8), 0);
    assert_int_equal(el_matmul_work_size(EL_TYPE_Q8_0, 512, 3), 3 * 16 * 34);
    assert_int_equal(el_matmul_work_size(EL_TYPE_Q4_K, 512, 2), 2 * 2 * 292);
    assert_int_equal(el_matmul_work_size(EL_TYPE_Q4_1, 64, 1), 2 * 36);
    assert_int_equal(el_matmul_work_size(EL_TYPE_Q8_0, 1LL << 40, 1LL << 40), SIZE_MAX);

    assert_true(el_matmul_supported(EL_TYPE_Q4_K, 512));
    assert_false(el_matmul_supported(EL_TYPE_Q4_K, 640)); /* not a multiple of 256 */
    assert_true(el_matmul_supported(EL_TYPE_Q5_0, 640));
    assert_false(el_matmul_supported(EL_TYPE_Q8_0, 48));
    assert_false(el_matmul_supported((el_type)20, 64)); /* IQ4_NL: layout known, no kernel */
    assert_false(el_matmul_supported(EL_TYPE_Q8_1, 64)); /* activation-only format */
    assert_false(el_matmul_supported(EL_TYPE_F32, 0));
}

static void test_unsupported_gives_nan(void **state) {
    (void)state;
    uint8_t w[64] = {0};
    float x[48] = {0}, y[2] = {0};
    el_matmul(pools[2], w, EL_TYPE_Q8_0, 48, 2, x, 1, y, NULL);
    assert_true(isnan(y[0]) && isnan(y[1]));
}

/* Q5_0 regrouped at load (EL_TYPE_Q5_0_R4) gives every product bit for bit as the file's
 * layout does: one token (gemv, span and per-panel), a few (verify batches; on rows of
 * 5632, 8 tokens go through the few-token gemv in groups), many (packed panels, two-panel
 * kernel), K cut in chunks (n_in 6400), 1-4 threads. The regrouping
 * only moves bits: every panel packed from it equals the panel packed from the rows. */
static void test_q5_0_regrouped_bit_identical(void **state) {
    (void)state;
    const int64_t shapes[][2] = {{64, 4}, {640, 1024}, {2048, 36}, {5632, 12}, {6400, 20}};
    const int64_t toks[] = {1, 3, 8, 9, 64};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t n_in = shapes[s][0], n_out = shapes[s][1];
        for (size_t t = 0; t < sizeof toks / sizeof toks[0]; t++) {
            problem p;
            make_problem(&p, EL_TYPE_Q5_0, n_in, n_out, toks[t]);
            void *orig;
            float *y = switch_to_regrouped(&p, EL_TYPE_Q5_0_R4, &orig);
            void *r4 = p.wq;
            /* Where Q5_0 itself takes the blocked kernels (the CPUs that regroup it), the same
             * bits; elsewhere (scalar level: per-row dots) within the reference's tolerance,
             * and the same bits whatever the thread count. */
            el_gemm_ops ops, ops_r4;
            const bool have = el_gemm_ops_get(EL_TYPE_Q5_0, &ops);
            float *y1 = run(&p, pools[1]);
            if (!have) check_against_reference(&p, y1);
            check_threads_give(&p, have ? y : y1, "Q5_0_R4", have ? "Q5_0" : "1 thread");
            free(y1);
            /* panels: from the regrouped bytes (portable and this CPU's packer) as from the rows */
            const int64_t nb = n_in / 32;
            el_panel_q4 *pa = xmalloc(sizeof *pa * (size_t)nb), *pb = xmalloc(sizeof *pb * (size_t)nb);
            const size_t w_row = el_type_row_size(EL_TYPE_Q5_0, n_in);
            for (int64_t p0 = 0; p0 < n_out; p0 += 4) {
                const uint8_t *rw = (const uint8_t *)orig + (size_t)p0 * w_row;
                const void *rows[4] = {rw, rw + w_row, rw + 2 * w_row, rw + 3 * w_row};
                const void *grp[4] = {(const uint8_t *)r4 + (size_t)p0 * w_row, NULL, NULL, NULL};
                memset(pa, 0, sizeof *pa * (size_t)nb);
                memset(pb, 0, sizeof *pb * (size_t)nb);
                el_gemm_pack_q5_0(rows, 0, nb, pa);
                el_gemm_pack_q5_0_r4(grp, 0, nb, pb);
                assert_memory_equal(pa, pb, sizeof *pa * (size_t)nb);
                el_gemm_pack_q5_0_r4(grp, 2, nb - 2, pb); /* from a later (even) block */
                assert_memory_equal(pa + 2, pb, sizeof *pa * (size_t)(nb - 2));
                if (have && el_gemm_ops_get(EL_TYPE_Q5_0_R4, &ops_r4)) {
                    memset(pb, 0, sizeof *pb * (size_t)nb);
                    ops_r4.pack(grp, 0, nb, pb);
                    assert_memory_equal(pa, pb, sizeof *pa * (size_t)nb);
                }
            }
            free(pa);
            free(pb);
            free(y);
            free(r4);
            p.wq = orig;
            free_problem(&p);
        }
    }
    /* shapes the layout cannot hold are refused, and the file format stays what callers get */
    uint8_t src[22 * 8] = {0}, dst[22 * 8];
    assert_int_equal(el_repack(EL_TYPE_Q5_0, src, dst, 32, 4), -1);  /* odd number of blocks */
    assert_int_equal(el_repack(EL_TYPE_Q5_0, src, dst, 64, 2), -1);  /* not whole panels */
    assert_int_equal(el_repack(EL_TYPE_Q8_0, src, dst, 64, 4), -1);  /* no regrouped Q8_0 */
    assert_int_equal(el_repack_type(EL_TYPE_Q5_0, 64, 6), EL_TYPE_Q5_0);
    assert_int_equal(el_repack_type(EL_TYPE_Q6_K, 256, 8), EL_TYPE_Q6_K);
    assert_false(el_type_valid(EL_TYPE_Q5_0_R4)); /* never a type a file may name */
    float y[2] = {0, 0}, x[64] = {0};
    el_matmul(pools[1], dst, EL_TYPE_Q5_0_R4, 64, 2, x, 1, y, NULL); /* 2 rows: not whole panels */
    assert_true(isnan(y[0]) && isnan(y[1]));
}

/* Q4_K transposed at load (EL_TYPE_Q4_K_T, quant/blocks.h) against the file layout: the
 * same bits for 1, 3, 9 and 64 tokens (one-token kernels, packed panels), K cut in chunks
 * (n_in 6400), any row count, 1-4 threads; its panels equal those packed from the rows.
 * Where the CPU has no kernels for it (scalar level, arm64): the portable panels, whose
 * results match the reference. */
static void test_q4_K_transposed_bit_identical(void **state) {
    (void)state;
    const int64_t shapes[][2] = {{256, 5}, {1024, 64}, {6400, 21}};
    const int64_t toks[] = {1, 3, 9, 64};
    el_gemm_ops ops_t;
    const bool fast = el_gemm_ops_get(EL_TYPE_Q4_K_T, &ops_t) && ops_t.act_transposed;
#if defined(__x86_64__)
    assert_int_equal(el_repack_type(EL_TYPE_Q4_K, 256, 5),
                     el_cpu_features_get()->level >= EL_CPU_AVX2 ? EL_TYPE_Q4_K_T : EL_TYPE_Q4_K);
    assert_int_equal(fast, el_cpu_features_get()->level >= EL_CPU_AVX2);
#else
    assert_int_equal(el_repack_type(EL_TYPE_Q4_K, 256, 5), EL_TYPE_Q4_K);
#endif
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t n_in = shapes[s][0], n_out = shapes[s][1];
        for (size_t t = 0; t < sizeof toks / sizeof toks[0]; t++) {
            problem p;
            make_problem(&p, EL_TYPE_Q4_K, n_in, n_out, toks[t]);
            const size_t w_row = el_type_row_size(EL_TYPE_Q4_K, n_in);
            void *orig;
            float *y = switch_to_regrouped(&p, EL_TYPE_Q4_K_T, &orig);
            void *tr = p.wq;
            assert_memory_not_equal(tr, orig, w_row * (size_t)n_out);
            el_gemm_ops ops;
            const bool same = el_gemm_ops_get(EL_TYPE_Q4_K, &ops); /* blocked kernels for both */
            float *y1 = run(&p, pools[1]);
            check_against_reference(&p, y1);
            check_threads_give(&p, same ? y : y1, "Q4_K_T", same ? "Q4_K" : "1 thread");
            free(y1);
            /* panels: portable el_panel_k ones from either layout; this CPU's from either */
            const int64_t nb = n_in / 256;
            el_panel_k *pa = xmalloc(sizeof *pa * (size_t)nb), *pb = xmalloc(sizeof *pb * (size_t)nb);
            void *ka = xmalloc(sizeof(el_panel_kt) * (size_t)nb), *kb = xmalloc(sizeof(el_panel_kt) * (size_t)nb);
            for (int64_t p0 = 0; p0 + 4 <= n_out; p0 += 4) {
                const uint8_t *rw = (const uint8_t *)orig + (size_t)p0 * w_row;
                const uint8_t *rt = (const uint8_t *)tr + (size_t)p0 * w_row;
                const void *rows[4] = {rw, rw + w_row, rw + 2 * w_row, rw + 3 * w_row};
                const void *rows_t[4] = {rt, rt + w_row, rt + 2 * w_row, rt + 3 * w_row};
                memset(pa, 0, sizeof *pa * (size_t)nb);
                memset(pb, 0, sizeof *pb * (size_t)nb);
                el_gemm_pack_q4_K(rows, 0, nb, pa);
                el_gemm_pack_q4_K_t(rows_t, 0, nb, pb);
                assert_memory_equal(pa, pb, sizeof *pa * (size_t)nb);
                el_gemm_pack_fn kt_pack;
                el_gemm_kernel_fn kt_kernel;
                if (fast && el_gemm_kt_get(EL_TYPE_Q4_K, &kt_pack, &kt_kernel)) {
                    memset(ka, 0, sizeof(el_panel_kt) * (size_t)nb);
                    memset(kb, 0, sizeof(el_panel_kt) * (size_t)nb);
                    kt_pack(rows, 0, nb, ka);
                    ops_t.pack(rows_t, 0, nb, kb);
                    assert_memory_equal(ka, kb, sizeof(el_panel_kt) * (size_t)nb);
                }
            }
            free(pa);
            free(pb);
            free(ka);
            free(kb);
            free(y);
            free(tr);
            p.wq = orig;
            free_problem(&p);
        }
    }
    uint8_t src[144] = {0}, dst[144];
    assert_int_equal(el_repack(EL_TYPE_Q4_K, src, dst, 128, 1), -1); /* not whole super-blocks */
    assert_false(el_type_valid(EL_TYPE_Q4_K_T));                    /* never a type a file may name */
    assert_false(el_matmul_supported(EL_TYPE_Q4_K_T, 128));
}

#if defined(__aarch64__)
/* ---- arm64: the SDOT and SMMLA micro-kernels and the gemvs ---- */
#include "kernels/arm/kernels_arm.h"

/* The arm64 kernels take the portable kernels' float steps in their order, unfused; gcc
 * in ISO C mode does not contract those into fma, so there the results are the portable
 * kernels' bit for bit (elsewhere within the tolerance the x86 kernels get). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__STRICT_ANSI__)
#define ARM_GEMM_EXACT 1
#else
#define ARM_GEMM_EXACT 0
#endif

static int arm_float_equal(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* Every kernel this CPU can run for the family of ops: base NEON, then SDOT, then SMMLA. */
static int arm_kernels_for(const el_gemm_ops *ops, el_gemm_kernel_fn k[3]) {
    const el_cpu_features *c = el_cpu_features_get();
    const bool ibias = ops->kernel_ref == el_gemm_k_ibias_ref;
    int n = 0;
#define ARM_FAMILY_KERNEL(SFX)                           \
    (ops->family == EL_GEMM_Q8   ? el_gemm_q8_##SFX      \
     : ops->family == EL_GEMM_Q4 ? el_gemm_q4_##SFX      \
     : ibias                     ? el_gemm_k_ibias_##SFX \
                                 : el_gemm_k_fbias_##SFX)
    k[n++] = ARM_FAMILY_KERNEL(neon);
    if (c->dotprod) k[n++] = ARM_FAMILY_KERNEL(dotprod);
    if (c->dotprod && c->i8mm) k[n++] = ARM_FAMILY_KERNEL(i8mm);
#undef ARM_FAMILY_KERNEL
    return n;
}

/* The gemvs this CPU can run for a format (base NEON, then SDOT); 0 if it has none. */
static int arm_gemvs_for(el_type t, el_gemv_fn g[2]) {
    const bool sdot = el_cpu_features_get()->dotprod;
    switch (t) {
    case EL_TYPE_Q8_0: g[0] = el_gemv_q8_0_neon, g[1] = el_gemv_q8_0_dotprod; break;
    case EL_TYPE_Q4_0: g[0] = el_gemv_q4_0_neon, g[1] = el_gemv_q4_0_dotprod; break;
    case EL_TYPE_Q5_0: g[0] = el_gemv_q5_0_neon, g[1] = el_gemv_q5_0_dotprod; break;
    case EL_TYPE_Q4_K: g[0] = el_gemv_q4_K_neon, g[1] = el_gemv_q4_K_dotprod; break;
    case EL_TYPE_Q5_K: g[0] = el_gemv_q5_K_neon, g[1] = el_gemv_q5_K_dotprod; break;
    case EL_TYPE_Q6_K: g[0] = el_gemv_q6_K_neon, g[1] = el_gemv_q6_K_dotprod; break;
    default: return 0;
    }
    return sdot ? 2 : 1;
}

/* Per format: the panel of 4 rows against 4 tokens through every arm64 kernel this CPU
 * can run (NEON, SDOT, SMMLA), each with 1..4 tokens (padded by repeating the last, as
 * el_matmul does): all agree bit for bit with one another, with every gemv (from block 0
 * and from block 1), and with the portable kernel (exactly, or within its tolerance; see
 * ARM_GEMM_EXACT). Rows of very different magnitudes and activations with outliers.
 * el_gemm_ops_get hands out the best of them; with EDGELLM_CPU=scalar there are no
 * blocked kernels, and el_matmul uses per-row (reference) dots. */
static void test_arm_gemm_kernels(void **state) {
    (void)state;
    const el_cpu_features *c = el_cpu_features_get();
    const el_type types[] = {EL_TYPE_Q4_0, EL_TYPE_Q5_0, EL_TYPE_Q8_0, EL_TYPE_Q2_K,
                             EL_TYPE_Q3_K, EL_TYPE_Q4_K, EL_TYPE_Q5_K, EL_TYPE_Q6_K};
    const bool blocked = c->level == EL_CPU_NEON;
    int checked = 0, gemvs = 0;
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        el_gemm_ops ops;
        const bool have = el_gemm_ops_get(types[k], &ops);
        assert_int_equal(have, blocked);
        if (!have) continue;
        const el_type_traits *wt = el_type_get_traits(types[k]);
        const el_type act = wt->vec_dot_type;
        const int64_t n_in = 768, nb = n_in / ops.block_elems;
        const size_t wrow = el_type_row_size(types[k], n_in), arow = el_type_row_size(act, n_in);
        const size_t ablk = arow / (size_t)nb;
        uint8_t *w = xmalloc(wrow * EL_GEMM_RM), *xq = xmalloc(arow * EL_GEMM_TN);
        float row[768];
        for (int r = 0; r < EL_GEMM_RM; r++) {
            const float amp = r == 2 ? 1e-3f : (float)(1 + 3 * r);
            for (int i = 0; i < n_in; i++) row[i] = frand() * amp * (i % 53 == 5 ? 8.f : 1.f);
            wt->quantize(row, w + r * wrow, n_in);
        }
        for (int t = 0; t < EL_GEMM_TN; t++) {
            for (int i = 0; i < n_in; i++) row[i] = frand() * 3.f * (i % 61 == 7 ? 40.f : 1.f);
            el_quantize_activation(act, row, xq + t * arow, n_in);
        }
        const void *rows[EL_GEMM_RM], *xs[EL_GEMM_TN];
        for (int r = 0; r < EL_GEMM_RM; r++) rows[r] = w + r * wrow;
        for (int t = 0; t < EL_GEMM_TN; t++) xs[t] = xq + t * arow;
        float dots[EL_GEMM_TN][EL_GEMM_RM];
        for (int t = 0; t < EL_GEMM_TN; t++)
            for (int r = 0; r < EL_GEMM_RM; r++) dots[t][r] = wt->vec_dot_ref(n_in, rows[r], xs[t]);
        if (ops.act_offset)
            for (int t = 0; t < EL_GEMM_TN; t++) el_gemm_offset_act(xq + t * arow, n_in);
        unsigned char *panel = el_aligned_alloc(64, ops.panel_bytes * (size_t)nb);
        assert_non_null(panel);
        ops.pack(rows, 0, nb, panel);
        float ref[EL_GEMM_TN][EL_GEMM_RM], first[EL_GEMM_TN][EL_GEMM_RM];
        ops.kernel_ref(panel, nb, xs, EL_GEMM_TN, ref);
        for (int t = 0; t < EL_GEMM_TN; t++)
            for (int r = 0; r < EL_GEMM_RM; r++)
                if (!(fabsf(ref[t][r] - dots[t][r]) <= 1e-4f * (fabsf(dots[t][r]) + 1.f)))
                    fail_msg("%s t=%d r=%d: portable kernel %.9g, vec_dot_ref %.9g", wt->name, t, r,
                             (double)ref[t][r], (double)dots[t][r]);

        el_gemm_kernel_fn kern[3];
        const int nk = arm_kernels_for(&ops, kern);
        assert_true(ops.kernel == kern[nk - 1]); /* el_gemm_ops_get picks the best one */
        for (int ki = 0; ki < nk; ki++)
            for (int nt = EL_GEMM_TN; nt >= 1; nt--) {
                const void *xp[EL_GEMM_TN];
                for (int t = 0; t < EL_GEMM_TN; t++) xp[t] = xs[t < nt ? t : nt - 1];
                float out[EL_GEMM_TN][EL_GEMM_RM];
                kern[ki](panel, nb, xp, nt, out);
                for (int t = 0; t < nt; t++)
                    for (int r = 0; r < EL_GEMM_RM; r++) {
                        const float o = out[t][r];
                        if (ki == 0 && nt == EL_GEMM_TN) first[t][r] = o;
                        const bool near = fabsf(o - ref[t][r]) <= 1e-4f * (fabsf(dots[t][r]) + 1.f);
                        const bool same_as_ref = ARM_GEMM_EXACT ? arm_float_equal(o, ref[t][r]) : near;
                        if (!arm_float_equal(o, first[t][r]) || !same_as_ref)
                            fail_msg("%s kernel %d nt=%d t=%d r=%d: %.9g, first kernel %.9g, portable %.9g", wt->name,
                                     ki, nt, t, r, (double)o, (double)first[t][r], (double)ref[t][r]);
                    }
            }
        el_gemv_fn gv[2];
        const int ng = arm_gemvs_for(types[k], gv);
        assert_true(ng ? ops.gemv == gv[ng - 1] : ops.gemv == NULL);
        if (ng) {
            gemvs++;
            float tail[EL_GEMM_TN][EL_GEMM_RM];
            const void *xt[EL_GEMM_TN];
            for (int t = 0; t < EL_GEMM_TN; t++) xt[t] = (const uint8_t *)xs[t] + ablk;
            ops.kernel(panel + ops.panel_bytes, nb - 1, xt, EL_GEMM_TN, tail); /* blocks 1.. */
            for (int gi = 0; gi < ng; gi++)
                for (int t = 0; t < EL_GEMM_TN; t++) {
                    float o[EL_GEMM_RM], o1[EL_GEMM_RM];
                    gv[gi](rows, 0, nb, xs[t], o);
                    gv[gi](rows, 1, nb - 1, xt[t], o1);
                    for (int r = 0; r < EL_GEMM_RM; r++)
                        if (!arm_float_equal(o[r], first[t][r]) || !arm_float_equal(o1[r], tail[t][r]))
                            fail_msg("%s gemv %d t=%d r=%d: %.9g (kernel %.9g), from block 1 %.9g (kernel %.9g)",
                                     wt->name, gi, t, r, (double)o[r], (double)first[t][r], (double)o1[r],
                                     (double)tail[t][r]);
                }
        }
        checked++;
        el_aligned_free(panel);
        free(w);
        free(xq);
    }
    if (blocked) {
        assert_int_equal(checked, 8);
        assert_int_equal(gemvs, 6); /* Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K */
    }
    fprintf(stderr, "arm gemm: %d formats checked (dotprod %d, i8mm %d, exact %d)\n", checked, c->dotprod,
            c->dotprod && c->i8mm, ARM_GEMM_EXACT);
}

/* The NEON packers build the portable packers' panels byte for byte on blocks of random
 * bits (Q8_0's -128, every nibble and scale pattern), with finite f16 scales. */
static void test_arm_packers_random_bits(void **state) {
    (void)state;
    typedef struct {
        el_type type;
        el_gemm_pack_fn neon, portable;
        int off_d, off_dmin; /* f16 fields to make finite (-1: none) */
        size_t panel_bytes;
    } packer;
    const packer packers[] = {
        {EL_TYPE_Q8_0, el_gemm_pack_q8_0_neon, el_gemm_pack_q8_0, 0, -1, sizeof(el_panel_q8)},
        {EL_TYPE_Q4_0, el_gemm_pack_q4_0_neon, el_gemm_pack_q4_0, 0, -1, sizeof(el_panel_q4)},
        {EL_TYPE_Q5_0, el_gemm_pack_q5_0_neon, el_gemm_pack_q5_0, 0, -1, sizeof(el_panel_q4)},
        {EL_TYPE_Q4_K, el_gemm_pack_q4_K_neon, el_gemm_pack_q4_K, 0, 2, sizeof(el_panel_k)},
        {EL_TYPE_Q6_K, el_gemm_pack_q6_K_neon, el_gemm_pack_q6_K, 208, -1, sizeof(el_panel_k)},
    };
    for (size_t k = 0; k < sizeof packers / sizeof *packers; k++) {
        const packer *pk = &packers[k];
        const el_type_traits *wt = el_type_get_traits(pk->type);
        const int64_t nb = 6, b0 = 1; /* blocks 1..6 of 7 */
        const size_t wrow = wt->type_size * (size_t)(nb + b0);
        uint8_t *w = xmalloc(wrow * EL_GEMM_RM);
        for (size_t i = 0; i < wrow * EL_GEMM_RM; i++) w[i] = (uint8_t)(int)(frand() * 256.f);
        for (size_t blk = 0; blk < (size_t)(nb + b0) * EL_GEMM_RM; blk++) {
            uint16_t h = el_f32_to_f16(frand());
            memcpy(w + blk * wt->type_size + pk->off_d, &h, 2);
            h = el_f32_to_f16(frand());
            if (pk->off_dmin >= 0) memcpy(w + blk * wt->type_size + pk->off_dmin, &h, 2);
        }
        const void *rows[EL_GEMM_RM] = {w, w + 2 * wrow, w + wrow, w + 3 * wrow}; /* any order */
        unsigned char *a = el_aligned_alloc(64, pk->panel_bytes * (size_t)nb);
        unsigned char *b = el_aligned_alloc(64, pk->panel_bytes * (size_t)nb);
        assert_true(a && b);
        memset(a, 0, pk->panel_bytes * (size_t)nb);
        memset(b, 0, pk->panel_bytes * (size_t)nb);
        pk->neon(rows, b0, nb, a);
        pk->portable(rows, b0, nb, b);
        if (memcmp(a, b, pk->panel_bytes * (size_t)nb) != 0)
            fail_msg("%s: NEON panel differs from the portable one", wt->name);
        el_aligned_free(a);
        el_aligned_free(b);
        free(w);
    }
}
#endif

#if defined(__x86_64__)
#include "kernels/x86/gemm_x86.h"

/* One variant of the x86 kernels and gemvs (kernels/x86/gemm_x86.h). Kernel order: q8,
 * q4, k_fbias, k_ibias, kp_fbias, kp_ibias, kt_fbias; two-panel: q8x2, q4x2; gemvs: Q8_0, Q4_0,
 * Q5_0, Q5_0 regrouped, Q4_K, Q6_K. */
typedef struct x86_variant_fns {
    const char *name;
    el_gemm_kernel_fn kernel[7];
    el_gemm_kernel2_fn kernel2[2];
    el_gemv_fn gemv[7];
    el_gemv_span_fn span[7];
    el_gemv_fn gemv_q8_0_off; /* Q8_0 against activations stored + 128 */
    el_gemv_span_fn span_q8_0_off;
} x86_variant_fns;

#define X86_VARIANT_FNS(SFX)                                                                                  \
    {                                                                                                         \
        #SFX,                                                                                                 \
            {el_gemm_q8_##SFX, el_gemm_q4_##SFX, el_gemm_k_fbias_##SFX, el_gemm_k_ibias_##SFX,                \
             el_gemm_kp_fbias_##SFX, el_gemm_kp_ibias_##SFX, el_gemm_kt_fbias_##SFX},                         \
            {el_gemm_q8x2_##SFX, el_gemm_q4x2_##SFX},                                                         \
            {el_gemv_q8_0_##SFX, el_gemv_q4_0_##SFX, el_gemv_q5_0_##SFX, el_gemv_q5_0_r4_##SFX,               \
             el_gemv_q4_K_##SFX, el_gemv_q6_K_##SFX, el_gemv_q4_K_t_##SFX},                                   \
            {el_gemv_q8_0_span_##SFX, el_gemv_q4_0_span_##SFX, el_gemv_q5_0_span_##SFX,                       \
             el_gemv_q5_0_r4_span_##SFX, el_gemv_q4_K_span_##SFX, el_gemv_q6_K_span_##SFX,                    \
             el_gemv_q4_K_t_span_##SFX},                                                                      \
            el_gemv_q8_0_off_##SFX, el_gemv_q8_0_off_span_##SFX,                                              \
    }

static const x86_variant_fns X86_AVX2_FNS = X86_VARIANT_FNS(avx2);
static const x86_variant_fns X86_AVX512_FNS = X86_VARIANT_FNS(avx512);
static const x86_variant_fns X86_AVXVNNI_FNS = X86_VARIANT_FNS(avxvnni);

static int x86_float_equal(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* 8 rows of very different magnitudes and tokens with outliers, quantized. */
static void x86_fill(el_type wtype, int64_t n_in, int n_tok, uint8_t *w, uint8_t *xq) {
    const el_type_traits *wt = el_type_get_traits(wtype);
    const size_t wrow = el_type_row_size(wtype, n_in), arow = el_type_row_size(wt->vec_dot_type, n_in);
    float row[1024];
    for (int r = 0; r < 2 * EL_GEMM_RM; r++) {
        const float mag = (float)(1 << (3 * r)) * 1e-3f;
        for (int i = 0; i < n_in; i++) row[i] = frand() * mag;
        wt->quantize(row, w + r * wrow, n_in);
    }
    for (int t = 0; t < n_tok; t++) {
        for (int i = 0; i < n_in; i++) row[i] = frand() * (i % 97 == 0 ? 60.f : 2.f);
        el_quantize_activation(wt->vec_dot_type, row, xq + t * arow, n_in);
    }
}

/* The micro-kernels of variant v against the AVX2 ones on the same panels, for each
 * family (q8, q4 with offset activations, K with float and integer bias, the pair-summed
 * K panels, the two-panel tiles), 1..4 tokens: bit for bit. Returns how many it compared. */
static int x86_kernels_checked(const x86_variant_fns *v) {
    typedef struct kernel_case {
        el_type wtype;
        el_gemm_pack_fn pack;
        int kernel, kernel2; /* indices into x86_variant_fns (kernel2 -1: none) */
        size_t panel_bytes;
        int64_t block_elems;
        bool act_offset, act_transposed;
    } kernel_case;
    const kernel_case cases[] = {
        {EL_TYPE_Q8_0, el_gemm_pack_q8_0_avx2, 0, 0, sizeof(el_panel_q8), 32, false, false},
        {EL_TYPE_Q4_0, el_gemm_pack_q4_0_avx2, 1, 1, sizeof(el_panel_q4), 32, true, false},
        {EL_TYPE_Q5_0, el_gemm_pack_q5_0_avx2, 1, 1, sizeof(el_panel_q4), 32, true, false},
        {EL_TYPE_Q4_K, el_gemm_pack_q4_K_avx2, 2, -1, sizeof(el_panel_k), 256, false, false},
        {EL_TYPE_Q6_K, el_gemm_pack_q6_K_avx2, 3, -1, sizeof(el_panel_k), 256, false, false},
        {EL_TYPE_Q4_K, el_gemm_pack_kp_q4_K_avx2, 4, -1, sizeof(el_panel_kp), 256, false, false},
        {EL_TYPE_Q6_K, el_gemm_pack_kp_q6_K_avx2, 5, -1, sizeof(el_panel_kp), 256, false, false},
        {EL_TYPE_Q4_K, el_gemm_pack_kt_q4_K_avx2, 6, -1, sizeof(el_panel_kt), 256, false, true},
    };
    const int64_t n_in = 1024;
    int checked = 0;
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const kernel_case *c = &cases[k];
        const el_type_traits *wt = el_type_get_traits(c->wtype);
        const el_type act = wt->vec_dot_type;
        const size_t wrow = el_type_row_size(c->wtype, n_in), arow = el_type_row_size(act, n_in);
        uint8_t *w = xmalloc(wrow * 2 * EL_GEMM_RM), *xq = xmalloc(arow * EL_GEMM_TN);
        x86_fill(c->wtype, n_in, EL_GEMM_TN, w, xq);
        const int64_t nb = n_in / c->block_elems;
        /* dx[t][b]: the activation scales as floats (Q8_0 blocks), for the two-panel tiles */
        float dxs[EL_GEMM_TN][1024 / 32];
        if (act == EL_TYPE_Q8_0)
            for (int t = 0; t < EL_GEMM_TN; t++)
                for (int64_t b = 0; b < nb; b++)
                    dxs[t][b] = el_f16_to_f32(((const block_q8_0 *)(xq + t * arow))[b].d);
        if (c->act_offset)
            for (int t = 0; t < EL_GEMM_TN; t++) el_gemm_offset_act(xq + t * arow, n_in);
        if (c->act_transposed)
            for (int t = 0; t < EL_GEMM_TN; t++) el_gemm_transpose_act_q8_K(xq + t * arow, n_in);
        void *panel[2];
        for (int p = 0; p < 2; p++) {
            const void *rows[EL_GEMM_RM];
            for (int r = 0; r < EL_GEMM_RM; r++) rows[r] = w + (size_t)(p * EL_GEMM_RM + r) * wrow;
            panel[p] = el_aligned_alloc(64, c->panel_bytes * (size_t)nb);
            assert_non_null(panel[p]);
            c->pack(rows, 0, nb, panel[p]);
        }
        for (int nt = 1; nt <= EL_GEMM_TN; nt++) {
            const void *xs[EL_GEMM_TN];
            const float *dx[EL_GEMM_TN];
            for (int t = 0; t < EL_GEMM_TN; t++) {
                const int src = t < nt ? t : nt - 1; /* padded by repeating the last, as el_matmul */
                xs[t] = xq + (size_t)src * arow;
                dx[t] = dxs[src];
            }
            for (int p = 0; p < 2; p++) {
                float a[EL_GEMM_TN][EL_GEMM_RM], b[EL_GEMM_TN][EL_GEMM_RM];
                X86_AVX2_FNS.kernel[c->kernel](panel[p], nb, xs, nt, a);
                v->kernel[c->kernel](panel[p], nb, xs, nt, b);
                for (int t = 0; t < nt; t++)
                    for (int r = 0; r < EL_GEMM_RM; r++)
                        if (!x86_float_equal(a[t][r], b[t][r]))
                            fail_msg("%s kernel %d nt=%d panel %d t=%d r=%d: avx2 %.9g %s %.9g", wt->name,
                                     c->kernel, nt, p, t, r, (double)a[t][r], v->name, (double)b[t][r]);
                checked++;
            }
            if (c->kernel2 >= 0 && nt == EL_GEMM_TN) {
                float a[EL_GEMM_TN][2 * EL_GEMM_RM], b[EL_GEMM_TN][2 * EL_GEMM_RM];
                X86_AVX2_FNS.kernel2[c->kernel2](panel[0], panel[1], nb, xs, dx, a);
                v->kernel2[c->kernel2](panel[0], panel[1], nb, xs, dx, b);
                for (int t = 0; t < EL_GEMM_TN; t++)
                    for (int r = 0; r < 2 * EL_GEMM_RM; r++)
                        if (!x86_float_equal(a[t][r], b[t][r]))
                            fail_msg("%s two-panel t=%d r=%d: avx2 %.9g %s %.9g", wt->name, t, r, (double)a[t][r],
                                     v->name, (double)b[t][r]);
                checked++;
            }
        }
        for (int p = 0; p < 2; p++) el_aligned_free(panel[p]);
        free(w);
        free(xq);
    }
    return checked;
}

/* The gemvs of variant v against the AVX2 ones (from block 0 and from block 2, and the
 * span form over 2 panels) on 8 rows of each format: bit for bit. */
static int x86_gemvs_checked(const x86_variant_fns *v) {
    const el_type types[7] = {EL_TYPE_Q8_0, EL_TYPE_Q4_0, EL_TYPE_Q5_0, EL_TYPE_Q5_0,
                              EL_TYPE_Q4_K, EL_TYPE_Q6_K, EL_TYPE_Q4_K};
    const int64_t n_in = 1024, n_rows = 2 * EL_GEMM_RM;
    int checked = 0;
    for (int k = 0; k < 7; k++) {
        const bool regroup = k == 3 || k == 6; /* Q5_0_R4 and Q4_K_T (made at load) */
        const el_type_traits *wt = el_type_get_traits(types[k]);
        const el_type act = wt->vec_dot_type;
        const size_t wrow = el_type_row_size(types[k], n_in), arow = el_type_row_size(act, n_in);
        uint8_t *w = xmalloc(wrow * (size_t)n_rows), *xq = xmalloc(arow);
        x86_fill(types[k], n_in, 1, w, xq);
        if (act == EL_TYPE_Q8_0 && types[k] != EL_TYPE_Q8_0) el_gemm_offset_act(xq, n_in);
        if (k == 6) el_gemm_transpose_act_q8_K(xq, n_in);
        if (regroup) {
            uint8_t *r4 = xmalloc(wrow * (size_t)n_rows);
            assert_int_equal(el_repack(types[k], w, r4, n_in, n_rows), 0);
            free(w);
            w = r4;
        }
        const int64_t nb = n_in / (int64_t)wt->block_size, b0 = 2;
        const size_t xb = arow / (size_t)nb; /* bytes per activation block */
        for (int p = 0; p < 2; p++) {
            const uint8_t *base = w + (size_t)(p * EL_GEMM_RM) * wrow;
            const void *rows[EL_GEMM_RM] = {base, base + wrow, base + 2 * wrow, base + 3 * wrow};
            float a[EL_GEMM_RM], b[EL_GEMM_RM], a2[EL_GEMM_RM], b2[EL_GEMM_RM];
            X86_AVX2_FNS.gemv[k](rows, 0, nb, xq, a);
            v->gemv[k](rows, 0, nb, xq, b);
            X86_AVX2_FNS.gemv[k](rows, b0, nb - b0, xq + b0 * xb, a2);
            v->gemv[k](rows, b0, nb - b0, xq + b0 * xb, b2);
            for (int r = 0; r < EL_GEMM_RM; r++)
                if (!x86_float_equal(a[r], b[r]) || !x86_float_equal(a2[r], b2[r]))
                    fail_msg("%s%s gemv panel %d r=%d: avx2 %.9g / %.9g, %s %.9g / %.9g", wt->name,
                             regroup ? " (regrouped)" : "", p, r, (double)a[r], (double)a2[r], v->name, (double)b[r],
                             (double)b2[r]);
        }
        checked++;
        float ya[2 * EL_GEMM_RM], yb[2 * EL_GEMM_RM];
        X86_AVX2_FNS.span[k](w, wrow, 2, nb, xq, ya);
        v->span[k](w, wrow, 2, nb, xq, yb);
        if (memcmp(ya, yb, sizeof ya) != 0) fail_msg("%s span gemv %d: avx2 and %s differ", wt->name, k, v->name);
        checked++;
        free(w);
        free(xq);
    }
    return checked;
}

/* Q8_0 on the q4 family (what the VNNI builds run: matmul.c, q8_0_on_q4_kernels): variant
 * v's q4 tiles on panels from el_gemm_pack_q8_0_q4_avx2 (and the portable packer's, which
 * must be the same bytes), with activations + 128, against AVX2's q8 tiles on q8 panels
 * (kernels: VNNI variants only, whose vpdpbusd cannot saturate), and v's offset gemv
 * against AVX2's plain one: bit for bit. Quants include -128 and 127 (the extremes of
 * both the unsigned |w| and the corrections). Returns how many it compared. */
static int x86_q8_0_on_q4_checked(const x86_variant_fns *v, bool kernels) {
    const int64_t n_in = 1024, nb = n_in / 32;
    const size_t wrow = el_type_row_size(EL_TYPE_Q8_0, n_in), arow = el_type_row_size(EL_TYPE_Q8_0, n_in);
    uint8_t *w = xmalloc(wrow * 2 * EL_GEMM_RM), *xq = xmalloc(arow * EL_GEMM_TN), *xo = xmalloc(arow * EL_GEMM_TN);
    x86_fill(EL_TYPE_Q8_0, n_in, EL_GEMM_TN, w, xq);
    block_q8_0 *blk = (block_q8_0 *)w;
    for (int64_t b = 0; b < 2 * EL_GEMM_RM * nb; b++) {
        if (b % 3 == 0) blk[b].qs[b % 32] = -128;
        if (b % 5 == 0) blk[b].qs[(b + 7) % 32] = 127;
        if (b % 11 == 0) memset(blk[b].qs, 0x80, 32); /* a whole block at -128 */
    }
    memcpy(xo, xq, arow * EL_GEMM_TN);
    for (int t = 0; t < EL_GEMM_TN; t++) el_gemm_offset_act(xo + t * arow, n_in);
    int checked = 0;
    const void *rows[2][EL_GEMM_RM];
    for (int r = 0; r < 2 * EL_GEMM_RM; r++) rows[r / EL_GEMM_RM][r % EL_GEMM_RM] = w + (size_t)r * wrow;
    if (kernels) {
        el_panel_q8 *p8[2];
        el_panel_q4 *p4[2], *p4ref = el_aligned_alloc(64, sizeof(el_panel_q4) * (size_t)nb);
        assert_non_null(p4ref);
        float dxs[EL_GEMM_TN][1024 / 32];
        const void *xs[EL_GEMM_TN], *xso[EL_GEMM_TN];
        const float *dx[EL_GEMM_TN];
        for (int t = 0; t < EL_GEMM_TN; t++) {
            for (int64_t b = 0; b < nb; b++) dxs[t][b] = el_f16_to_f32(((const block_q8_0 *)(xq + t * arow))[b].d);
            xs[t] = xq + t * arow, xso[t] = xo + t * arow, dx[t] = dxs[t];
        }
        for (int p = 0; p < 2; p++) {
            p8[p] = el_aligned_alloc(64, sizeof(el_panel_q8) * (size_t)nb);
            p4[p] = el_aligned_alloc(64, sizeof(el_panel_q4) * (size_t)nb);
            assert_true(p8[p] && p4[p]);
            el_gemm_pack_q8_0_avx2(rows[p], 0, nb, p8[p]);
            el_gemm_pack_q8_0_q4_avx2(rows[p], 0, nb, p4[p]);
            el_gemm_pack_q8_0_q4(rows[p], 0, nb, p4ref);
            assert_memory_equal(p4[p], p4ref, sizeof(el_panel_q4) * (size_t)nb);
        }
        for (int nt = 1; nt <= EL_GEMM_TN; nt++)
            for (int p = 0; p < 2; p++) {
                float a[EL_GEMM_TN][EL_GEMM_RM], b[EL_GEMM_TN][EL_GEMM_RM];
                X86_AVX2_FNS.kernel[0](p8[p], nb, xs, nt, a);
                v->kernel[1](p4[p], nb, xso, nt, b);
                for (int t = 0; t < nt; t++)
                    for (int r = 0; r < EL_GEMM_RM; r++)
                        if (!x86_float_equal(a[t][r], b[t][r]))
                            fail_msg("Q8_0 on q4 nt=%d panel %d t=%d r=%d: avx2 q8 %.9g, %s q4 %.9g", nt, p, t, r,
                                     (double)a[t][r], v->name, (double)b[t][r]);
                checked++;
            }
        float a[EL_GEMM_TN][2 * EL_GEMM_RM], b[EL_GEMM_TN][2 * EL_GEMM_RM];
        X86_AVX2_FNS.kernel2[0](p8[0], p8[1], nb, xs, dx, a);
        v->kernel2[1](p4[0], p4[1], nb, xso, dx, b);
        if (memcmp(a, b, sizeof a) != 0) fail_msg("Q8_0 on q4: two-panel tiles of avx2 and %s differ", v->name);
        checked++;
        for (int p = 0; p < 2; p++) el_aligned_free(p8[p]), el_aligned_free(p4[p]);
        el_aligned_free(p4ref);
    }
    for (int p = 0; p < 2; p++) {
        float a[EL_GEMM_RM], b[EL_GEMM_RM], a2[EL_GEMM_RM], b2[EL_GEMM_RM];
        el_gemv_q8_0_avx2(rows[p], 0, nb, xq, a);
        v->gemv_q8_0_off(rows[p], 0, nb, xo, b);
        el_gemv_q8_0_avx2(rows[p], 2, nb - 2, xq + 2 * sizeof(block_q8_0), a2);
        v->gemv_q8_0_off(rows[p], 2, nb - 2, xo + 2 * sizeof(block_q8_0), b2);
        if (memcmp(a, b, sizeof a) != 0 || memcmp(a2, b2, sizeof a2) != 0)
            fail_msg("Q8_0 gemv panel %d: avx2 and %s (activations + 128) differ", p, v->name);
    }
    float ya[2 * EL_GEMM_RM], yb[2 * EL_GEMM_RM];
    el_gemv_q8_0_span_avx2(w, wrow, 2, nb, xq, ya);
    v->span_q8_0_off(w, wrow, 2, nb, xo, yb);
    if (memcmp(ya, yb, sizeof ya) != 0) fail_msg("Q8_0 span gemv: avx2 and %s (activations + 128) differ", v->name);
    checked += 2;
    free(w);
    free(xq);
    free(xo);
    return checked;
}

/* The VNNI variants (AVX-512 VNNI, AVX-VNNI) of every kernel and gemv against AVX2's, bit
 * for bit, where the CPU has them (here or under an emulator: scripts/test-avx512);
 * prints how many it compared, per variant. */
static void test_x86_vnni_variants_bit_identical(void **state) {
    (void)state;
    const el_cpu_features *c = el_cpu_features_get();
    const struct {
        const x86_variant_fns *fns;
        bool present;
    } variants[] = {{&X86_AVX512_FNS, el_cpu_can_run(EL_CPU_AVX512)}, {&X86_AVXVNNI_FNS, c->avxvnni}};
    if (el_cpu_can_run(EL_CPU_AVX2)) /* the AVX2 offset gemv, which the VNNI ones share their code with */
        assert_int_equal(x86_q8_0_on_q4_checked(&X86_AVX2_FNS, false), 2);
    for (size_t i = 0; i < sizeof variants / sizeof *variants; i++) {
        const x86_variant_fns *v = variants[i].fns;
        if (!variants[i].present) {
            printf("x86 %s kernels: 0 checked (not on this CPU)\n", v->name);
            continue;
        }
        const int kernels = x86_kernels_checked(v), gemvs = x86_gemvs_checked(v);
        const int q8_on_q4 = x86_q8_0_on_q4_checked(v, true);
        printf("x86 %s kernels: %d checked against avx2 (%d tiles, %d gemvs, %d of Q8_0 on the q4 family)\n", v->name,
               kernels + gemvs + q8_on_q4, kernels, gemvs, q8_on_q4);
        assert_int_equal(kernels, 8 * 4 * 2 + 3); /* 8 cases x 4 token counts x 2 panels, 3 two-panel tiles */
        assert_int_equal(gemvs, 7 * 2);
        assert_int_equal(q8_on_q4, 4 * 2 + 1 + 2);
    }
}
#endif

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_formats_threads_and_reference),
        cmocka_unit_test(test_many_rows_uneven),
        cmocka_unit_test(test_long_rows_split_k),
        cmocka_unit_test(test_gemm_kernels_match_portable),
        cmocka_unit_test(test_blocked_path_as_accurate_as_dots),
        cmocka_unit_test(test_token_result_independent_of_batch),
        cmocka_unit_test(test_work_size_and_support),
        cmocka_unit_test(test_unsupported_gives_nan),
        cmocka_unit_test(test_q5_0_regrouped_bit_identical),
        cmocka_unit_test(test_q4_K_transposed_bit_identical),
#if defined(__x86_64__)
        cmocka_unit_test(test_x86_vnni_variants_bit_identical),
#endif
#if defined(__aarch64__)
        cmocka_unit_test(test_arm_gemm_kernels),
        cmocka_unit_test(test_arm_packers_random_bits),
#endif
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
