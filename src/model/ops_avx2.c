/* AVX2 + FMA + F16C row kernels for the forward pass (see el_ops in model.h).
 * Compiled with those ISA flags (the build adds them for *_avx2.c); only called
 * when the CPU-feature table says the machine runs them. */
#if defined(__x86_64__) || defined(_M_X64)

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "model/model.h"

static inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

/* [hsum256(a0) hsum256(a1) hsum256(a2) hsum256(a3)], each added up in hsum256's order
 * (halves, then lanes 0+2 and 1+3, then those two), so bit for bit the same; 13
 * instructions for the four instead of 7 each. */
static inline __m128 hsum256_x4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    const __m256 h01 = _mm256_add_ps(_mm256_permute2f128_ps(a0, a1, 0x20), _mm256_permute2f128_ps(a0, a1, 0x31));
    const __m256 h23 = _mm256_add_ps(_mm256_permute2f128_ps(a2, a3, 0x20), _mm256_permute2f128_ps(a2, a3, 0x31));
    /* [h0_0+h0_2 h2_0+h2_2 h0_1+h0_3 h2_1+h2_3 | the same of h1, h3] */
    const __m256 v = _mm256_add_ps(_mm256_unpacklo_ps(h01, h23), _mm256_unpackhi_ps(h01, h23));
    const __m256 x = _mm256_add_ps(v, _mm256_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2))); /* [s0 s2 s0 s2 | s1 s3 s1 s3] */
    return _mm_unpacklo_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
}

static float dot_f32_avx2(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float r = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

static void axpy_f32_avx2(float *y, float a, const float *x, int64_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
        _mm256_storeu_ps(y + i + 8,
                         _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8)));
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static void scale_f32_avx2(float *y, float a, int64_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(va, _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] *= a;
}

static void f16_to_f32_avx2(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

static void f32_to_f16_avx2(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

/* g = gelu(g) * u: round g to F16, look the result up, saturate outside [-10, 10]. */
static void geglu_avx2(float *g, const float *u, int64_t n, const float *table) {
    const __m256 lo = _mm256_set1_ps(-10.0f), hi = _mm256_set1_ps(10.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT);
        const __m256 y = _mm256_i32gather_ps(table, _mm256_cvtepu16_epi32(h), 4);
        __m256 r = _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, hi, _CMP_GE_OQ));
        r = _mm256_blendv_ps(r, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LE_OQ));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(r, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) {
        const float x = g[i];
        float y;
        if (x <= -10.0f)
            y = 0.0f;
        else if (x >= 10.0f)
            y = x;
        else
            y = table[_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT)];
        g[i] = y * u[i];
    }
}

/* exp(x) for 8 lanes: 2^n * e^r with |r| <= ln2/2, degree-6 polynomial (rel. error ~2e-7).
 * Inputs below -87.3 give 0 (softmax of -inf included); above 88 are clamped. */
static inline __m256 exp256(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.3762626647949f);
    const __m256 zero_mask = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(zero_mask, y);
}

static inline float exp_sum_row_avx2(float *s, int n, float m) {
    const __m256 vm = _mm256_set1_ps(m);
    __m256 acc = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
        _mm256_storeu_ps(s + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = hsum256(acc);
    if (j < n) { /* tail through the same polynomial, for equal rounding */
        float buf[8];
        int r = n - j;
        for (int i = 0; i < 8; i++) buf[i] = i < r ? s[j + i] - m : -INFINITY;
        _mm256_storeu_ps(buf, exp256(_mm256_loadu_ps(buf)));
        for (int i = 0; i < r; i++) s[j + i] = buf[i], sum += buf[i];
    }
    return sum;
}

/* The rows one after another, inlined: with no call and no other work between them, one
 * row's exps overlap the next one's (a 32-key row alone is bound by exp256's latency:
 * 58 cycles a call). Two rows interleaved by hand measured no better. */
static void exp_sum_rows_avx2(float *s, size_t stride, int rows, int n, const float *m, float *sums) {
    for (int r = 0; r < rows; r++) {
        const float t = exp_sum_row_avx2(s + (size_t)r * stride, n, m[r]);
        if (sums) sums[r] = t;
    }
}

/* g = silu(g) * u with exp256 (libm's expf per element was 3% of a TinyLlama-shaped
 * 64-token prefill); the tail through the same polynomial. */
static void swiglu_avx2(float *g, const float *u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
    }
    if (i < n) {
        float xb[8] = {0}, ub[8] = {0};
        const int r = (int)(n - i);
        memcpy(xb, g + i, sizeof(float) * (size_t)r);
        memcpy(ub, u + i, sizeof(float) * (size_t)r);
        swiglu_avx2(xb, ub, 8);
        memcpy(g + i, xb, sizeof(float) * (size_t)r);
    }
}

/* One score in the 2 x 4 tile's arithmetic: one 8-lane fma chain over the row, then
 * hsum256 (what hsum256_x4 gives each of its four); a scalar tail when d is not a
 * multiple of 8. */
static float score1_avx2(const float *q, const float *k, int d) {
    __m256 a = _mm256_setzero_ps();
    int e = 0;
    for (; e + 8 <= d; e += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + e), _mm256_loadu_ps(k + e), a);
    float r = hsum256(a);
    for (; e < d; e++) r += q[e] * k[e];
    return r;
}

/* Scores of rows query rows (2, or 1 for an odd last row; a constant once inlined) at q0,
 * q1 against the four key rows at k, into s0, s1: one fma chain per score, then
 * hsum256_x4. Two rows: 6 loads feed 8 FMAs. */
static inline __attribute__((always_inline)) void score_tile_x4(const float *q0, const float *q1, const float *k,
                                                                int d, float *s0, float *s1, const int rows) {
    const float *k0 = k, *k1 = k0 + d, *k2 = k1 + d, *k3 = k2 + d;
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
    __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    for (int e = 0; e < d; e += 8) {
        const __m256 x0 = _mm256_loadu_ps(q0 + e), x1 = rows > 1 ? _mm256_loadu_ps(q1 + e) : x0;
        __m256 y = _mm256_loadu_ps(k0 + e);
        a00 = _mm256_fmadd_ps(x0, y, a00);
        if (rows > 1) a10 = _mm256_fmadd_ps(x1, y, a10);
        y = _mm256_loadu_ps(k1 + e);
        a01 = _mm256_fmadd_ps(x0, y, a01);
        if (rows > 1) a11 = _mm256_fmadd_ps(x1, y, a11);
        y = _mm256_loadu_ps(k2 + e);
        a02 = _mm256_fmadd_ps(x0, y, a02);
        if (rows > 1) a12 = _mm256_fmadd_ps(x1, y, a12);
        y = _mm256_loadu_ps(k3 + e);
        a03 = _mm256_fmadd_ps(x0, y, a03);
        if (rows > 1) a13 = _mm256_fmadd_ps(x1, y, a13);
    }
    _mm_storeu_ps(s0, hsum256_x4(a00, a01, a02, a03));
    if (rows > 1) _mm_storeu_ps(s1, hsum256_x4(a10, a11, a12, a13));
}

/* Every score comes out of the same arithmetic (score1_avx2's) wherever it sits: in a
 * 2 x 4 tile, a 1 x 4 one (an odd query row), or alone (keys past a multiple of 4). So a
 * query's scores do not depend on how many query rows came with it: with an odd number of
 * query heads per KV head (Phi-3's 3, Qwen2-0.5B's 7), a decoded token's head was the odd
 * row alone while a speculative verify pass put it in a pair, and the two disagreed in
 * the last bits. */
static void scores_avx2(const float *q, size_t q_stride, int nq, const float *k, int nk, int d, float *s,
                        int s_stride) {
    if (d % 8) { /* the tiles take whole vectors */
        for (int i = 0; i < nq; i++)
            for (int j = 0; j < nk; j++) s[i * s_stride + j] = score1_avx2(q + i * q_stride, k + (size_t)j * d, d);
        return;
    }
    for (int i = 0; i < nq; i += 2) {
        const int rows = nq - i < 2 ? 1 : 2;
        const float *q0 = q + i * q_stride, *q1 = q0 + q_stride;
        float *s0 = s + i * s_stride, *s1 = s0 + s_stride;
        int j = 0;
        for (; j + 4 <= nk; j += 4) {
            if (rows == 2) score_tile_x4(q0, q1, k + (size_t)j * d, d, s0 + j, s1 + j, 2);
            else score_tile_x4(q0, q0, k + (size_t)j * d, d, s0 + j, s0 + j, 1);
        }
        for (; j < nk; j++) {
            s0[j] = score1_avx2(q0, k + (size_t)j * d, d);
            if (rows == 2) s1[j] = score1_avx2(q1, k + (size_t)j * d, d);
        }
    }
}

/* The accumulator stays in registers, 64 floats at a time, across all nk rows
 * (eight named registers: -O2 does not unroll a loop over an array of them). */
static void accumulate_avx2(float *acc, const float *p, const float *v, int nk, int d) {
    int e = 0;
    for (; e + 64 <= d; e += 64) {
        float *a = acc + e;
        __m256 r0 = _mm256_loadu_ps(a), r1 = _mm256_loadu_ps(a + 8), r2 = _mm256_loadu_ps(a + 16);
        __m256 r3 = _mm256_loadu_ps(a + 24), r4 = _mm256_loadu_ps(a + 32), r5 = _mm256_loadu_ps(a + 40);
        __m256 r6 = _mm256_loadu_ps(a + 48), r7 = _mm256_loadu_ps(a + 56);
        for (int j = 0; j < nk; j++) {
            const __m256 w = _mm256_broadcast_ss(p + j);
            const float *vr = v + (size_t)j * d + e;
            r0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vr), r0);
            r1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vr + 8), r1);
            r2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vr + 16), r2);
            r3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vr + 24), r3);
            r4 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vr + 32), r4);
            r5 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vr + 40), r5);
            r6 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vr + 48), r6);
            r7 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vr + 56), r7);
        }
        _mm256_storeu_ps(a, r0), _mm256_storeu_ps(a + 8, r1), _mm256_storeu_ps(a + 16, r2);
        _mm256_storeu_ps(a + 24, r3), _mm256_storeu_ps(a + 32, r4), _mm256_storeu_ps(a + 40, r5);
        _mm256_storeu_ps(a + 48, r6), _mm256_storeu_ps(a + 56, r7);
    }
    if (e < d)
        for (int j = 0; j < nk; j++) axpy_f32_avx2(acc + e, p[j], v + (size_t)j * d + e, d - e);
}

void el_ops_init_avx2(el_ops *ops);
void el_ops_init_avx2(el_ops *ops) {
    ops->dot_f32 = dot_f32_avx2;
    ops->axpy_f32 = axpy_f32_avx2;
    ops->scale_f32 = scale_f32_avx2;
    ops->f16_to_f32 = f16_to_f32_avx2;
    ops->f32_to_f16 = f32_to_f16_avx2;
    ops->geglu = geglu_avx2;
    ops->swiglu = swiglu_avx2;
    ops->scores = scores_avx2;
    ops->accumulate = accumulate_avx2;
    ops->exp_sum_rows = exp_sum_rows_avx2;
}

#else
typedef int el_ops_avx2_unused; /* keeps the translation unit non-empty off x86 */
#endif
