/* Dot-product kernels and activation quantizers: every SIMD level this CPU can run
 * against the scalar references, on random valid blocks of many lengths; the fast
 * activation quantizers byte for byte against the references (ties included);
 * quantize -> dequantize round trips within a per-format error bound; the CPU table. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/cpu_features.h"
#include "quant/blocks.h"
#include "quant/quant.h"

/* ---- deterministic random numbers ---- */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_u64(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static float rng_uniform(void) { return (float)(rng_u64() >> 40) / (float)(1 << 24); } /* [0, 1) */
static float rng_normal(void) {
    float u = rng_uniform() + 1e-7f, v = rng_uniform();
    return sqrtf(-2.f * logf(u)) * cosf(6.2831853f * v);
}

/* Where the half-precision scale fields of each weight format sit, so random bytes
 * can be made valid (finite scales). off_min is the min/dmin field or -1. */
typedef struct fmt_fields {
    el_type type;
    int off_d, off_min;
} fmt_fields;

static const fmt_fields WEIGHT_FORMATS[] = {
    {EL_TYPE_F32, -1, -1},  {EL_TYPE_F16, -1, -1},  {EL_TYPE_BF16, -1, -1}, {EL_TYPE_Q4_0, 0, -1},
    {EL_TYPE_Q4_1, 0, 2},   {EL_TYPE_Q5_0, 0, -1},  {EL_TYPE_Q5_1, 0, 2},   {EL_TYPE_Q8_0, 0, -1},
    {EL_TYPE_Q2_K, 80, 82}, {EL_TYPE_Q3_K, 108, -1}, {EL_TYPE_Q4_K, 0, 2},   {EL_TYPE_Q5_K, 0, 2},
    {EL_TYPE_Q6_K, 208, -1}, {EL_TYPE_Q8_K, -1, -1},
};
#define N_WEIGHT_FORMATS (sizeof WEIGHT_FORMATS / sizeof WEIGHT_FORMATS[0])

static void put_f16(uint8_t *p, float v) {
    uint16_t h = el_f32_to_f16(v);
    memcpy(p, &h, 2);
}

/* A random scale: magnitude in [2^-12, 2^-4], random sign when allowed. */
static float random_scale(int allow_negative) {
    float v = exp2f(-12.f + 8.f * rng_uniform());
    return allow_negative && (rng_u64() & 1) ? -v : v;
}

/* Random weights of n elements: floats for F32/F16/BF16; for quantized formats random
 * bytes everywhere (every bit pattern of the quants) with finite scales put in. */
static void random_weights(const fmt_fields *f, void *dst, int64_t n) {
    const el_type_traits *t = el_type_get_traits(f->type);
    if (!t->is_quantized) {
        float *tmp = malloc((size_t)n * sizeof *tmp);
        for (int64_t i = 0; i < n; i++) tmp[i] = rng_normal();
        t->quantize(tmp, dst, n);
        free(tmp);
        return;
    }
    uint8_t *b = dst;
    size_t bytes = el_type_row_size(f->type, n);
    for (size_t i = 0; i < bytes; i++) b[i] = (uint8_t)rng_u64();
    for (int64_t blk = 0; blk < n / t->block_size; blk++) {
        uint8_t *p = b + blk * t->type_size;
        if (f->type == EL_TYPE_Q8_K) {
            float d = random_scale(1);
            memcpy(p, &d, sizeof d);
            continue;
        }
        put_f16(p + f->off_d, random_scale(1));
        if (f->off_min >= 0) put_f16(p + f->off_min, random_scale(1));
    }
}

/* Random activations: gaussian, with some outliers and all-zero blocks mixed in. */
static void random_activations(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = rng_normal();
    for (int k = 0; k < 3 && n > 0; k++) x[rng_u64() % (uint64_t)n] *= 40.f;
    if (n >= 64 && (rng_u64() & 3) == 0) memset(x + 32, 0, 32 * sizeof *x);
}

/* sum |x_i * y_i| over the "scale part" and the "min part" of each weight separately
 * (dequantized with the other field zeroed), so the tolerance covers intermediate
 * terms that cancel in the final value. */
static double abs_dot_bound(const fmt_fields *f, const void *w, const void *act, int64_t n) {
    const el_type_traits *t = el_type_get_traits(f->type), *ta = el_type_get_traits(t->vec_dot_type);
    float *xw = malloc((size_t)n * sizeof(float)), *xa = malloc((size_t)n * sizeof(float));
    size_t bytes = el_type_row_size(f->type, n);
    uint8_t *copy = malloc(bytes);
    ta->dequantize(act, xa, n);
    double s = 0;
    for (int part = 0; part < 2; part++) {
        memcpy(copy, w, bytes);
        if (f->off_min >= 0)
            for (int64_t blk = 0; blk < n / t->block_size; blk++)
                put_f16(copy + blk * t->type_size + (part == 0 ? f->off_min : f->off_d), 0.f);
        else if (part == 1)
            break;
        t->dequantize(copy, xw, n);
        for (int64_t i = 0; i < n; i++) s += fabs((double)xw[i] * (double)xa[i]);
    }
    free(xw);
    free(xa);
    free(copy);
    return s;
}

static const el_cpu_level SIMD_LEVELS[] = {EL_CPU_AVX2, EL_CPU_AVX512, EL_CPU_NEON};

static void test_dot_all_levels(void **state) {
    (void)state;
    int checked_simd = 0;
    for (size_t fi = 0; fi < N_WEIGHT_FORMATS; fi++) {
        const fmt_fields *f = &WEIGHT_FORMATS[fi];
        const el_type_traits *t = el_type_get_traits(f->type);
        assert_non_null(t);
        assert_non_null(t->vec_dot_ref);
        const el_type_traits *ta = el_type_get_traits(t->vec_dot_type);
        assert_non_null(ta->quantize);
        /* lengths in elements: 1..40 blocks; plain types also odd lengths for the tails */
        const int max_blocks = t->block_size == QK_K ? 24 : 40;
        for (int nbk = 1; nbk <= max_blocks; nbk++) {
            int64_t n = t->is_quantized ? (int64_t)nbk * t->block_size : (int64_t)nbk * 37 + (nbk % 5);
            void *w = malloc(el_type_row_size(f->type, n));
            void *act = malloc(el_type_row_size(t->vec_dot_type, n) + 64);
            float *xa = malloc((size_t)n * sizeof(float));
            random_weights(f, w, n);
            random_activations(xa, n);
            ta->quantize(xa, act, n);

            const float ref = t->vec_dot_ref(n, w, act);
            const double bound = abs_dot_bound(f, w, act, n);
            const double tol = 1e-5 * bound + 1e-30;
            assert_true(isfinite(ref));
            for (size_t li = 0; li < sizeof SIMD_LEVELS / sizeof SIMD_LEVELS[0]; li++) {
                el_vec_dot_fn fn = el_vec_dot_for_level(f->type, SIMD_LEVELS[li]);
                if (!fn) continue;
                float got = fn(n, w, act);
                if (!(fabs((double)got - (double)ref) <= tol)) {
                    fprintf(stderr, "%s %s n=%lld: got %.9g ref %.9g tol %.3g\n", t->name,
                            el_cpu_level_name(SIMD_LEVELS[li]), (long long)n, got, ref, tol);
                    fail();
                }
                checked_simd++;
            }
            /* the chosen kernel agrees too */
            el_vec_dot_fn best = el_vec_dot_best(f->type);
            assert_non_null(best);
            assert_true(fabs((double)best(n, w, act) - (double)ref) <= tol);
            free(w);
            free(act);
            free(xa);
        }
    }
    if (el_cpu_can_run(EL_CPU_AVX2)) assert_true(checked_simd > 0);
    fprintf(stderr, "dot kernels checked against the reference: %d (cpu %s)\n", checked_simd,
            el_cpu_level_name(el_cpu_features_get()->detected));
}

/* A dot product against the exact double sum of the dequantized values for a case
 * small enough to reason about: Q8_0 x Q8_0 with known quants. */
static void test_dot_q8_0_known(void **state) {
    (void)state;
    block_q8_0 w[2], a[2];
    int64_t expect = 0;
    for (int b = 0; b < 2; b++) {
        w[b].d = el_f32_to_f16(0.5f);
        a[b].d = el_f32_to_f16(0.25f);
        for (int j = 0; j < 32; j++) {
            w[b].qs[j] = (int8_t)(j - 16 + b);
            a[b].qs[j] = (int8_t)(3 * j - 50);
            expect += (int64_t)w[b].qs[j] * a[b].qs[j];
        }
    }
    const float want = (float)expect * 0.125f;
    for (int l = 0; l < EL_CPU_LEVEL_COUNT; l++) {
        el_vec_dot_fn fn = el_vec_dot_for_level(EL_TYPE_Q8_0, (el_cpu_level)l);
        if (fn) assert_float_equal(fn(64, w, a), want, 1e-3);
    }
}

/* Inputs that hit rounding ties: with amax = 127 (Q8_0/Q8_1) the scale is 1 and halves
 * are exact ties; with the signed max at -127 (Q8_K) likewise. */
static void fill_ties(float *x, int64_t n, int q8k) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)((int)(rng_u64() % 509) - 254) / 2.f;
    for (int64_t i = 0; i < n; i += 32) x[i + (int64_t)(rng_u64() % 32)] = q8k ? -127.f : 127.f;
}

static void test_quantize_activation_exact(void **state) {
    (void)state;
    const el_type acts[] = {EL_TYPE_Q8_0, EL_TYPE_Q8_1, EL_TYPE_Q8_K};
    int fast_checked = 0;
    for (size_t ai = 0; ai < 3; ai++) {
        const el_type_traits *t = el_type_get_traits(acts[ai]);
        for (int round = 0; round < 60; round++) {
            const int64_t n = (int64_t)t->block_size * (1 + round % 9);
            float *x = malloc((size_t)n * sizeof *x);
            if (round % 3 == 0) fill_ties(x, n, acts[ai] == EL_TYPE_Q8_K);
            else random_activations(x, n);
            if (round % 7 == 0) for (int64_t i = 0; i < n; i++) x[i] *= 1e-6f;
            const size_t bytes = el_type_row_size(acts[ai], n);
            uint8_t *ref = malloc(bytes), *got = malloc(bytes);
            t->quantize(x, ref, n);
            memset(got, 0xAB, bytes);
            el_quantize_activation(acts[ai], x, got, n);
            assert_memory_equal(ref, got, bytes);
            for (size_t li = 0; li < sizeof SIMD_LEVELS / sizeof SIMD_LEVELS[0]; li++) {
                el_quantize_fn fn = el_quantize_activation_for_level(acts[ai], SIMD_LEVELS[li]);
                if (!fn) continue;
                memset(got, 0xCD, bytes);
                fn(x, got, n);
                assert_memory_equal(ref, got, bytes);
                fast_checked++;
            }
            free(x);
            free(ref);
            free(got);
        }
    }
    if (el_cpu_can_run(EL_CPU_AVX2)) assert_true(fast_checked > 0);

    /* F32 "quantization" is a copy */
    float src[5] = {1, -2, 3.5f, 0, 7}, dst[5];
    el_quantize_activation(EL_TYPE_F32, src, dst, 5);
    assert_memory_equal(src, dst, sizeof src);
}

/* Q8_K details that the K-quant dots rely on: bsums are the sums of 16 quants, the
 * largest-magnitude element maps to -127, zero blocks are all zero. */
static void test_q8_K_layout(void **state) {
    (void)state;
    float x[2 * QK_K];
    for (int j = 0; j < 2 * QK_K; j++) x[j] = 0.5f * rng_normal();
    for (int j = 0; j < 2 * QK_K; j++) x[j] = fminf(fmaxf(x[j], -3.f), 3.f);
    x[77] = 9.f;     /* block 0: positive max -> d < 0 */
    x[300] = -9.5f;  /* block 1: negative max -> d > 0 */
    x[301] = 9.5f;   /* same magnitude later: the first one wins */
    block_q8_K y[2];
    el_quantize_activation(EL_TYPE_Q8_K, x, y, 2 * QK_K);
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < 16; k++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += y[b].qs[16 * k + l];
            assert_int_equal(s, y[b].bsums[k]);
        }
    assert_int_equal(y[0].qs[77], -127);
    assert_int_equal(y[1].qs[300 - QK_K], -127);
    assert_int_equal(y[1].qs[301 - QK_K], 127);
    assert_true(y[0].d < 0.f && y[1].d > 0.f);
    float z[QK_K] = {0};
    el_quantize_activation(EL_TYPE_Q8_K, z, y, QK_K);
    assert_true(y[0].d == 0.f);
    for (int j = 0; j < QK_K; j++) assert_int_equal(y[0].qs[j], 0);
}

typedef struct rt_bound {
    el_type type;
    double rel_rmse; /* rmse / rms of the input, gaussian data */
} rt_bound;

static void test_round_trip(void **state) {
    (void)state;
    /* Bounds: about 1.5x the error measured for these quantizers on gaussian data. */
    const rt_bound bounds[] = {
        {EL_TYPE_F32, 0.0},     {EL_TYPE_F16, 5e-4},   {EL_TYPE_BF16, 4e-3},  {EL_TYPE_Q8_0, 0.012},
        {EL_TYPE_Q8_1, 0.012},  {EL_TYPE_Q8_K, 0.012}, {EL_TYPE_Q6_K, 0.03},  {EL_TYPE_Q5_0, 0.06},
        {EL_TYPE_Q5_1, 0.05},   {EL_TYPE_Q5_K, 0.05},  {EL_TYPE_Q4_0, 0.12},  {EL_TYPE_Q4_1, 0.1},
        {EL_TYPE_Q4_K, 0.1},    {EL_TYPE_Q3_K, 0.25},  {EL_TYPE_Q2_K, 0.45},
    };
    const int64_t n = 16 * QK_K;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    for (int64_t i = 0; i < n; i++) x[i] = rng_normal();
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const double rms = sqrt(ss / (double)n);
    for (size_t k = 0; k < sizeof bounds / sizeof bounds[0]; k++) {
        const el_type_traits *t = el_type_get_traits(bounds[k].type);
        void *q = malloc(el_type_row_size(bounds[k].type, n));
        t->quantize(x, q, n);
        t->dequantize(q, y, n);
        double se = 0;
        for (int64_t i = 0; i < n; i++) se += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        const double rel = sqrt(se / (double)n) / rms;
        fprintf(stderr, "round trip %-5s rel rmse %.5f (bound %.4f)\n", t->name, rel, bounds[k].rel_rmse);
        assert_true(rel <= bounds[k].rel_rmse);
        free(q);
    }
    /* all-zero input stays zero */
    for (size_t k = 0; k < sizeof bounds / sizeof bounds[0]; k++) {
        const el_type_traits *t = el_type_get_traits(bounds[k].type);
        float zero[QK_K] = {0}, out[QK_K];
        uint8_t q[sizeof(block_q8_K) * 8];
        t->quantize(zero, q, QK_K);
        t->dequantize(q, out, QK_K);
        for (int i = 0; i < QK_K; i++) assert_true(out[i] == 0.f);
    }
    free(x);
    free(y);
}

static void test_half_conversions(void **state) {
    (void)state;
    /* every non-nan half survives half -> float -> half */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;
        assert_int_equal(el_f32_to_f16(el_f16_to_f32((uint16_t)h)), h);
        assert_int_equal(el_f32_to_bf16(el_bf16_to_f32((uint16_t)h)), h);
    }
    assert_int_equal(el_f32_to_f16(65520.f), 0x7c00);   /* rounds up to inf */
    assert_int_equal(el_f32_to_f16(65519.f), 0x7bff);   /* rounds down to 65504 */
    assert_int_equal(el_f32_to_f16(2.9802322e-8f), 0);  /* 2^-25: tie to even zero */
    assert_int_equal(el_f32_to_f16(2.9802326e-8f), 1);  /* just above: smallest subnormal */
    assert_int_equal(el_f32_to_f16(1.f + 1.f / 2048.f), 0x3c00);       /* tie: to even (down) */
    assert_int_equal(el_f32_to_f16(1.f + 3.f / 2048.f), 0x3c02);       /* tie: to even (up) */
    float nan = NAN;
    assert_true((el_f32_to_f16(nan) & 0x7c00) == 0x7c00 && (el_f32_to_f16(nan) & 0x3ff));
    assert_true(isnan(el_bf16_to_f32(el_f32_to_bf16(nan))));
}

static void test_cpu_table(void **state) {
    (void)state;
    const el_cpu_features *c = el_cpu_features_get();
    assert_non_null(c);
    assert_ptr_equal(c, el_cpu_features_get());
    assert_true(el_cpu_can_run(EL_CPU_SCALAR));
    assert_true(el_cpu_can_run(c->level));
    assert_true(el_cpu_can_run(c->detected));
    if (c->detected == EL_CPU_AVX2 || c->detected == EL_CPU_AVX512) assert_true(c->avx2 && c->fma && c->f16c);
    if (c->detected == EL_CPU_AVX512) assert_true(c->avx512f && c->avx512bw && c->avx512vl && c->avx512vnni);
    if (!el_cpu_can_run(EL_CPU_AVX512)) assert_null(el_vec_dot_for_level(EL_TYPE_Q4_K, EL_CPU_AVX512));
    assert_string_equal(el_cpu_level_name(EL_CPU_AVX2), "avx2");
    /* the scalar level hands out exactly the references */
    assert_ptr_equal(el_vec_dot_for_level(EL_TYPE_Q6_K, EL_CPU_SCALAR), el_type_get_traits(EL_TYPE_Q6_K)->vec_dot_ref);
    assert_null(el_vec_dot_for_level(EL_TYPE_Q8_1, EL_CPU_SCALAR)); /* activation only */
    fprintf(stderr, "cpu: detected %s, kernels %s%s\n", el_cpu_level_name(c->detected), el_cpu_level_name(c->level),
            c->env_override ? " (EDGELLM_CPU)" : "");
}

#if defined(__aarch64__)
#include "kernels/arm/kernels_arm.h"

/* arm64: every weight format has a NEON-level kernel; the quantized ones are the SDOT
 * kernels where the CPU has dotprod and their base-NEON twins elsewhere. The kernels that
 * keep the reference's float steps per block agree with it bit for bit (integer sums are
 * exact) where neither is compiled with contraction into fma (gcc in ISO C mode does not
 * contract). */
static void test_arm_dot_coverage_and_exact(void **state) {
    (void)state;
    const el_cpu_features *c = el_cpu_features_get();
    if (!el_cpu_can_run(EL_CPU_NEON)) skip();
    for (size_t fi = 0; fi < N_WEIGHT_FORMATS; fi++)
        if (!el_vec_dot_for_level(WEIGHT_FORMATS[fi].type, EL_CPU_NEON))
            fail_msg("%s: no NEON-level kernel", el_type_name(WEIGHT_FORMATS[fi].type));
    assert_ptr_equal(el_vec_dot_for_level(EL_TYPE_Q4_K, EL_CPU_NEON),
                     c->dotprod ? el_vec_dot_q4_K_q8_K_dotprod : el_vec_dot_q4_K_q8_K_neon);
    assert_ptr_equal(el_vec_dot_for_level(EL_TYPE_Q8_0, EL_CPU_NEON),
                     c->dotprod ? el_vec_dot_q8_0_q8_0_dotprod : el_vec_dot_q8_0_q8_0_neon);
    int checked = 0;
#if defined(__GNUC__) && !defined(__clang__) && defined(__STRICT_ANSI__)
    const el_type exact[] = {EL_TYPE_Q4_1, EL_TYPE_Q5_1, EL_TYPE_Q2_K, EL_TYPE_Q3_K, EL_TYPE_Q5_K, EL_TYPE_Q8_K};
    for (size_t fi = 0; fi < N_WEIGHT_FORMATS; fi++) {
        const fmt_fields *f = &WEIGHT_FORMATS[fi];
        bool want = false;
        for (size_t e = 0; e < sizeof exact / sizeof *exact; e++) want |= exact[e] == f->type;
        if (!want) continue;
        const el_type_traits *t = el_type_get_traits(f->type), *ta = el_type_get_traits(t->vec_dot_type);
        const el_vec_dot_fn fn = el_vec_dot_for_level(f->type, EL_CPU_NEON);
        for (int nbk = 1; nbk <= 12; nbk++) {
            const int64_t n = (int64_t)nbk * t->block_size;
            void *w = malloc(el_type_row_size(f->type, n)), *act = malloc(el_type_row_size(t->vec_dot_type, n));
            float *xa = malloc((size_t)n * sizeof(float));
            random_weights(f, w, n);
            random_activations(xa, n);
            ta->quantize(xa, act, n);
            const float ref = t->vec_dot_ref(n, w, act), got = fn(n, w, act);
            if (memcmp(&ref, &got, sizeof ref) != 0)
                fail_msg("%s n=%lld: NEON level %.9g, reference %.9g", t->name, (long long)n, (double)got, (double)ref);
            checked++;
            free(w);
            free(act);
            free(xa);
        }
    }
    assert_int_equal(checked, 6 * 12);
#endif
    fprintf(stderr, "arm dots: %s kernels, %d compared bit for bit\n", c->dotprod ? "sdot" : "neon", checked);
}
#endif

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_table),
        cmocka_unit_test(test_half_conversions),
        cmocka_unit_test(test_dot_q8_0_known),
        cmocka_unit_test(test_dot_all_levels),
        cmocka_unit_test(test_quantize_activation_exact),
        cmocka_unit_test(test_q8_K_layout),
        cmocka_unit_test(test_round_trip),
#if defined(__aarch64__)
        cmocka_unit_test(test_arm_dot_coverage_and_exact),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
