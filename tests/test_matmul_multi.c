/* el_matmul_multi: several products of one X in one pool job give, bit for bit, what
 * el_matmul gives for each (mixed formats, so X is quantized in several forms; one and
 * several tokens; 1-3 threads); its work size covers every form; more than
 * EL_MATMUL_MAX_ITEMS items give NaN. Also the two-panel kernels (el_gemm_kernel2_get):
 * bit for bit the per-panel kernel's results on each panel; and the pair-summed K
 * kernels (el_gemm_kp_get), bit for bit el_gemm_ops_get's K kernel for 1-4 tokens,
 * activations at the extremes of Q8_K included. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1ull << 24))) * 2.f - 1.f;
}

static void *quantized_matrix(el_type t, int64_t n_in, int64_t n_out) {
    const el_type_traits *tr = el_type_get_traits(t);
    const size_t row = el_type_row_size(t, n_in);
    uint8_t *w = el_aligned_alloc(64, row * (size_t)n_out);
    float *f = malloc(sizeof(float) * (size_t)n_in);
    assert_non_null(w);
    assert_non_null(f);
    for (int64_t r = 0; r < n_out; r++) {
        for (int64_t i = 0; i < n_in; i++) f[i] = frand() * 0.5f;
        tr->quantize(f, w + (size_t)r * row, n_in);
    }
    free(f);
    return w;
}

static void test_multi_matches_single(void **state) {
    (void)state;
    /* q/k/v-like (Q5_0 twice: one offset form; Q8_0: a plain one, or the offset one with
     * VNNI), K formats (Q8_K), F32. */
    const el_type types[] = {EL_TYPE_Q5_0, EL_TYPE_Q5_0, EL_TYPE_Q8_0, EL_TYPE_Q4_K, EL_TYPE_Q6_K, EL_TYPE_F32};
    const int64_t outs[] = {1024, 256, 256, 200, 133, 37};
    enum { N = sizeof types / sizeof *types };
    const int64_t n_in = 512;
    void *w[N];
    for (int i = 0; i < N; i++) w[i] = quantized_matrix(types[i], n_in, outs[i]);
    const int64_t toks[] = {1, 7, 64};
    for (int nt = 1; nt <= 3; nt++) {
        el_pool *pool = el_pool_create(nt, NULL);
        assert_non_null(pool);
        for (size_t k = 0; k < sizeof toks / sizeof *toks; k++) {
            const int64_t n_tok = toks[k];
            float *x = malloc(sizeof(float) * (size_t)(n_in * n_tok));
            assert_non_null(x);
            for (int64_t i = 0; i < n_in * n_tok; i++) x[i] = frand() * 4.f;
            el_matmul_item items[N];
            float *single[N];
            for (int i = 0; i < N; i++) {
                items[i] = (el_matmul_item){w[i], types[i], outs[i], malloc(sizeof(float) * (size_t)(outs[i] * n_tok))};
                single[i] = malloc(sizeof(float) * (size_t)(outs[i] * n_tok));
                assert_non_null(items[i].y);
                assert_non_null(single[i]);
                size_t ws = el_matmul_work_size(types[i], n_in, n_tok);
                void *work = el_aligned_alloc(64, ws ? ws : 64);
                assert_non_null(work);
                el_matmul(pool, w[i], types[i], n_in, outs[i], x, n_tok, single[i], work);
                el_aligned_free(work);
            }
            const size_t ws = el_matmul_multi_work_size(items, N, n_in, n_tok);
            assert_true(ws != SIZE_MAX);
            /* Forms of X: Q8_0 + 128, Q8_0 (but where Q8_0 runs on the q4 family's kernels,
             * the VNNI builds: then Q5_0's form serves it), Q8_K (F32 uses X as is). */
            el_gemm_ops q8;
            const bool q8_offset = el_gemm_ops_get(EL_TYPE_Q8_0, &q8) && q8.act_offset;
            assert_true(ws >= el_matmul_work_size(EL_TYPE_Q5_0, n_in, n_tok) * (q8_offset ? 1 : 2) +
                                  el_matmul_work_size(EL_TYPE_Q4_K, n_in, n_tok));
            void *work = el_aligned_alloc(64, ws);
            assert_non_null(work);
            el_matmul_multi(pool, items, N, n_in, x, n_tok, work);
            for (int i = 0; i < N; i++) {
                if (memcmp(items[i].y, single[i], sizeof(float) * (size_t)(outs[i] * n_tok)) != 0)
                    fail_msg("%s item %d, %d threads, %lld tokens: el_matmul_multi differs from el_matmul",
                             el_type_name(types[i]), i, nt, (long long)n_tok);
                free(items[i].y);
                free(single[i]);
            }
            el_aligned_free(work);
            free(x);
        }
        el_pool_destroy(pool);
    }
    for (int i = 0; i < N; i++) el_aligned_free(w[i]);
}

static void test_multi_too_many_items_gives_nan(void **state) {
    (void)state;
    const int64_t n_in = 64;
    void *w = quantized_matrix(EL_TYPE_Q8_0, n_in, 4);
    float x[64], y[EL_MATMUL_MAX_ITEMS + 1][4];
    for (int i = 0; i < 64; i++) x[i] = frand();
    el_matmul_item items[EL_MATMUL_MAX_ITEMS + 1];
    for (int i = 0; i <= EL_MATMUL_MAX_ITEMS; i++) items[i] = (el_matmul_item){w, EL_TYPE_Q8_0, 4, y[i]};
    assert_int_equal(el_matmul_multi_work_size(items, EL_MATMUL_MAX_ITEMS + 1, n_in, 1), 0);
    el_matmul_multi(NULL, items, EL_MATMUL_MAX_ITEMS + 1, n_in, x, 1, NULL);
    for (int i = 0; i <= EL_MATMUL_MAX_ITEMS; i++)
        for (int r = 0; r < 4; r++) assert_true(isnan(y[i][r]));
    el_aligned_free(w);
}

static void test_kernel2_matches_kernel(void **state) {
    (void)state;
    const el_type types[] = {EL_TYPE_Q4_0, EL_TYPE_Q5_0, EL_TYPE_Q8_0};
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        el_gemm_ops ops;
        el_gemm_kernel2_fn k2 = el_gemm_kernel2_get(types[k]);
        if (!k2 || !el_gemm_ops_get(types[k], &ops)) continue; /* none on this CPU */
        const int64_t n_in = 640, nb = n_in / 32;
        const size_t wrow = el_type_row_size(types[k], n_in), arow = el_type_row_size(EL_TYPE_Q8_0, n_in);
        uint8_t *w = quantized_matrix(types[k], n_in, 2 * EL_GEMM_RM);
        uint8_t *xq = el_aligned_alloc(64, arow * EL_GEMM_TN);
        void *p0 = el_aligned_alloc(64, ops.panel_bytes * (size_t)nb), *p1 = el_aligned_alloc(64, ops.panel_bytes * (size_t)nb);
        assert_non_null(xq);
        assert_non_null(p0);
        assert_non_null(p1);
        float row[640];
        for (int t = 0; t < EL_GEMM_TN; t++) {
            for (int i = 0; i < n_in; i++) row[i] = frand() * (float)(t + 1);
            el_quantize_activation(EL_TYPE_Q8_0, row, xq + t * arow, n_in);
            if (ops.act_offset) el_gemm_offset_act(xq + t * arow, n_in);
        }
        const void *rows0[EL_GEMM_RM], *rows1[EL_GEMM_RM], *xs[EL_GEMM_TN];
        for (int r = 0; r < EL_GEMM_RM; r++) rows0[r] = w + r * wrow, rows1[r] = w + (r + EL_GEMM_RM) * wrow;
        ops.pack(rows0, 0, nb, p0);
        ops.pack(rows1, 0, nb, p1);
        float dxv[EL_GEMM_TN][640 / 32];
        const float *dx[EL_GEMM_TN];
        for (int t = 0; t < EL_GEMM_TN; t++) {
            xs[t] = xq + t * arow;
            for (int64_t b = 0; b < nb; b++) dxv[t][b] = el_f16_to_f32(((const block_q8_0 *)xs[t])[b].d);
            dx[t] = dxv[t];
        }
        float o0[EL_GEMM_TN][EL_GEMM_RM], o1[EL_GEMM_TN][EL_GEMM_RM], o2[EL_GEMM_TN][2 * EL_GEMM_RM];
        ops.kernel(p0, nb, xs, EL_GEMM_TN, o0);
        ops.kernel(p1, nb, xs, EL_GEMM_TN, o1);
        k2(p0, p1, nb, xs, dx, o2);
        for (int t = 0; t < EL_GEMM_TN; t++)
            if (memcmp(o0[t], o2[t], sizeof o0[t]) != 0 || memcmp(o1[t], o2[t] + EL_GEMM_RM, sizeof o1[t]) != 0)
                fail_msg("%s token %d: two-panel kernel differs from the per-panel kernel", el_type_name(types[k]), t);
        el_aligned_free(p0);
        el_aligned_free(p1);
        el_aligned_free(xq);
        el_aligned_free(w);
    }
}

/* Pair-summed K panels and kernel, and the group-transposed ones (Q4_K), against the
 * el_panel_k kernel in use (which the gemv matches bit for bit): same bits for every
 * token count. Row 0 has the largest quants (the int16 sums' worst case with token 2,
 * whose quants are all -128); token 0's activations alternate +-1 (quants at -128 and
 * 127), token 1 has outliers. */
static void test_kp_matches_k_kernel(void **state) {
    (void)state;
    const el_type types[] = {EL_TYPE_Q4_K, EL_TYPE_Q6_K};
    int checked = 0, checked_kt = 0;
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        el_gemm_ops ops;
        el_gemm_pack_fn kp_pack;
        el_gemm_kernel_fn kp_kernel;
        if (!el_gemm_ops_get(types[k], &ops) || !el_gemm_kp_get(types[k], &kp_pack, &kp_kernel)) continue;
        checked++;
        const int64_t n_in = 1024, nb = n_in / 256;
        const size_t wrow = el_type_row_size(types[k], n_in), arow = el_type_row_size(EL_TYPE_Q8_K, n_in);
        uint8_t *w = quantized_matrix(types[k], n_in, EL_GEMM_RM);
        /* Row 0 at the largest quants (15 / 63): the int16 sums' worst case */
        for (int64_t i = 0; i < nb; i++) {
            if (types[k] == EL_TYPE_Q4_K) memset(((block_q4_K *)w)[i].qs, 0xFF, sizeof(((block_q4_K *)w)[i].qs));
            if (types[k] == EL_TYPE_Q6_K) {
                memset(((block_q6_K *)w)[i].ql, 0xFF, sizeof(((block_q6_K *)w)[i].ql));
                memset(((block_q6_K *)w)[i].qh, 0xFF, sizeof(((block_q6_K *)w)[i].qh));
            }
        }
        uint8_t *xq = el_aligned_alloc(64, arow * EL_GEMM_TN);
        void *pk = el_aligned_alloc(64, ops.panel_bytes * (size_t)nb);
        void *pp = el_aligned_alloc(64, sizeof(el_panel_kp) * (size_t)nb);
        assert_non_null(xq);
        assert_non_null(pk);
        assert_non_null(pp);
        float row[1024];
        for (int t = 0; t < EL_GEMM_TN; t++) {
            for (int i = 0; i < n_in; i++) {
                row[i] = t == 0 ? (i % 3 ? 1.f : -1.f) : t == 2 ? -1.f : frand() * (float)(t + 1);
                if (t == 1 && i % 97 == 0) row[i] *= 40.f;
            }
            el_quantize_activation(EL_TYPE_Q8_K, row, xq + t * arow, n_in);
        }
        const void *rows[EL_GEMM_RM], *xs[EL_GEMM_TN];
        for (int r = 0; r < EL_GEMM_RM; r++) rows[r] = w + r * wrow;
        for (int t = 0; t < EL_GEMM_TN; t++) xs[t] = xq + t * arow;
        ops.pack(rows, 0, nb, pk);
        kp_pack(rows, 0, nb, pp);
        for (int nt = 1; nt <= EL_GEMM_TN; nt++) {
            float ok[EL_GEMM_TN][EL_GEMM_RM], op[EL_GEMM_TN][EL_GEMM_RM];
            ops.kernel(pk, nb, xs, nt, ok);
            kp_kernel(pp, nb, xs, nt, op);
            for (int t = 0; t < nt; t++)
                if (memcmp(ok[t], op[t], sizeof ok[t]) != 0)
                    fail_msg("%s nt=%d token %d: pair-summed kernel %.9g, K kernel %.9g (row 0)",
                             el_type_name(types[k]), nt, t, (double)op[t][0], (double)ok[t][0]);
        }
        /* The group-transposed kernel (Q4_K) on transposed copies of the same activations. */
        el_gemm_pack_fn kt_pack;
        el_gemm_kernel_fn kt_kernel;
        if (el_gemm_kt_get(types[k], &kt_pack, &kt_kernel)) {
            checked_kt++;
            uint8_t *xt = el_aligned_alloc(64, arow * EL_GEMM_TN);
            void *pt = el_aligned_alloc(64, sizeof(el_panel_kt) * (size_t)nb);
            assert_non_null(xt);
            assert_non_null(pt);
            memcpy(xt, xq, arow * EL_GEMM_TN);
            const void *xts[EL_GEMM_TN];
            for (int t = 0; t < EL_GEMM_TN; t++) {
                el_gemm_transpose_act_q8_K(xt + t * arow, n_in);
                xts[t] = xt + t * arow;
            }
            assert_memory_not_equal(xt, xq, arow); /* the quants did move */
            kt_pack(rows, 0, nb, pt);
            for (int nt = 1; nt <= EL_GEMM_TN; nt++) {
                float ok[EL_GEMM_TN][EL_GEMM_RM], ot[EL_GEMM_TN][EL_GEMM_RM];
                ops.kernel(pk, nb, xs, nt, ok);
                kt_kernel(pt, nb, xts, nt, ot);
                for (int t = 0; t < nt; t++)
                    for (int r = 0; r < EL_GEMM_RM; r++)
                        if (memcmp(&ok[t][r], &ot[t][r], sizeof ok[t][r]) != 0)
                            fail_msg("%s nt=%d token %d row %d: group-transposed kernel %.9g, K kernel %.9g",
                                     el_type_name(types[k]), nt, t, r, (double)ot[t][r], (double)ok[t][r]);
            }
            el_aligned_free(pt);
            el_aligned_free(xt);
        }
        el_aligned_free(pk);
        el_aligned_free(pp);
        el_aligned_free(xq);
        el_aligned_free(w);
    }
#if defined(__x86_64__)
    if (el_cpu_features_get()->level >= EL_CPU_AVX2) {
        assert_int_equal(checked, 2);
        assert_int_equal(checked_kt, 1);
    }
#endif
    (void)checked, (void)checked_kt;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multi_matches_single),
        cmocka_unit_test(test_multi_too_many_items_gives_nan),
        cmocka_unit_test(test_kernel2_matches_kernel),
        cmocka_unit_test(test_kp_matches_k_kernel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
