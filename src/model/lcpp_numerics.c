/* llama.cpp-compatible arithmetic (see lcpp_numerics.h): F16 and Q8_0 products, the
 * vector expf and SwiGLU. Each function names the llama.cpp routine whose lane order it
 * reproduces; "lane" below is one float of an 8-float AVX register. */
#include "model/lcpp_numerics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/lcpp_internal.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "quant/quant_ref.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* only the fmaf() calls below may fuse (gcc: off in ISO C) */
#endif

/* The end of ggml_vec_dot_f16: four 8-lane accumulators folded (0+2, 1+3, then 0+1),
 * high half plus low half, then two horizontal adds: (l0 + l1) + (l2 + l3). */
static float reduce_vec_dot_f16(float acc[4][8]) {
    float t[8], l[4];
    for (int i = 0; i < 8; i++) {
        const float a = acc[0][i] + acc[2][i], b = acc[1][i] + acc[3][i];
        t[i] = a + b;
    }
    for (int i = 0; i < 4; i++) l[i] = t[i] + t[i + 4];
    const float a = l[0] + l[1], b = l[2] + l[3];
    return a + b;
}

/* ---- F16 ---- */

/* ggml_vec_dot_f16 (AVX2/F16C): steps of 32 elements into four accumulators (lane i of
 * accumulator j takes element 32k + 8j + i), folded as above; a tail of n % 32 elements
 * added in double. F16 x F16 products are exact in float, so fusing changes nothing. */
static float dot_f16_vec_dot(const float *w, const float *x, int64_t n) {
    float acc[4][8] = {{0}};
    const int64_t np = n - n % 32;
    for (int64_t k = 0; k < np; k += 32)
        for (int j = 0; j < 4; j++)
            for (int i = 0; i < 8; i++) acc[j][i] = fmaf(w[k + 8 * j + i], x[k + 8 * j + i], acc[j][i]);
    double sum = reduce_vec_dot_f16(acc);
    for (int64_t k = np; k < n; k++) sum += (double)(w[k] * x[k]);
    return (float)sum;
}

/* tinyBLAS's F16 kernel (AVX2): one 8-lane accumulator, lane i taking element 8k + i,
 * then el_lcpp_hsum8. It runs only when n is a multiple of 8 (llama.cpp falls back to
 * ggml_vec_dot_f16 otherwise, as here). */
static float dot_f16_tinyblas(const float *w, const float *x, int64_t n) {
    if (n % 8) return dot_f16_vec_dot(w, x, n);
    float acc[8] = {0};
    for (int64_t k = 0; k < n; k += 8)
        for (int i = 0; i < 8; i++) acc[i] = fmaf(w[k + i], x[k + i], acc[i]);
    return el_lcpp_hsum8(acc);
}

float el_lcpp_dot_f16(const float *w, const float *x, int64_t n, bool single) {
    return single ? dot_f16_vec_dot(w, x, n) : dot_f16_tinyblas(w, x, n);
}

/* out = x rounded to F16 (round to nearest even), as floats. */
static void round_f16(const float *x, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = el_f16_to_f32(el_f32_to_f16(x[i]));
}

int el_lcpp_matmul_f16(const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok, float *y,
                       bool single) {
    /* The activations are converted to F16 (ggml's vec_dot_type for F16 weights), each
     * weight row to float once per call. */
    float *xr = malloc((size_t)(n_tok * n_in) * sizeof *xr);
    float *wr = malloc((size_t)n_in * sizeof *wr);
    if (!xr || !wr) {
        free(xr), free(wr);
        return -1;
    }
    round_f16(x, xr, n_tok * n_in);
    const uint16_t *wh = w;
    for (int64_t r = 0; r < n_out; r++) {
        for (int64_t i = 0; i < n_in; i++) wr[i] = el_f16_to_f32(wh[r * n_in + i]);
        for (int64_t t = 0; t < n_tok; t++) y[t * n_out + r] = el_lcpp_dot_f16(wr, xr + t * n_in, n_in, single);
    }
    free(xr), free(wr);
    return 0;
}

/* ---- Q8_0 ---- */

/* ggml_vec_dot_q8_0_q8_0 (AVX2), which tinyBLAS's Q8_0 kernel matches: per 32-block,
 * 8 int32 lanes (lane i = the 4 products of elements 4i..4i+3), each fused into one
 * float accumulator with the block's scale d_w * d_x; el_lcpp_hsum8 at the end. */
static float dot_q8_0_q8_0(const block_q8_0 *w, const block_q8_0 *x, int64_t nb) {
    float acc[8] = {0};
    for (int64_t b = 0; b < nb; b++) {
        const float d = el_f16_to_f32(w[b].d) * el_f16_to_f32(x[b].d);
        for (int i = 0; i < 8; i++) {
            int32_t s = 0;
            for (int e = 4 * i; e < 4 * i + 4; e++) s += (int32_t)w[b].qs[e] * x[b].qs[e];
            acc[i] = fmaf(d, (float)s, acc[i]);
        }
    }
    return el_lcpp_hsum8(acc);
}

int el_lcpp_matmul_q8_0(const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok, float *y) {
    const int64_t nb = n_in / QK8_0;
    block_q8_0 *xq = malloc((size_t)(n_tok * nb) * sizeof *xq);
    if (!xq) return -1;
    for (int64_t t = 0; t < n_tok; t++) el_quantize_act_q8_0(x + t * n_in, xq + t * nb, n_in);
    const block_q8_0 *wb = w;
    for (int64_t r = 0; r < n_out; r++)
        for (int64_t t = 0; t < n_tok; t++) y[t * n_out + r] = dot_q8_0_q8_0(wb + r * nb, xq + t * nb, nb);
    free(xq);
    return 0;
}

/* ---- element-wise ---- */

static float bits_to_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t float_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ggml_v_expf (AVX2 + FMA; ARM's optimized-routines expf): x = n ln2 + b with n
 * rounded by the 1.5 * 2^23 shift, a degree-5 polynomial in b, scaled by 2^n built in
 * the exponent bits; |n| > 126 goes through two factors (s1, s2) so that neither
 * overflows, |n| > 192 saturates to 0 or infinity. */
float el_lcpp_v_expf(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const uint32_t e = float_to_bits(z) << 23;
    const float k = bits_to_float(e + float_to_bits(1.0f));
    const bool c = fabsf(n) > 126.0f;
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                         0x1.ffffecp-1f * b);
    if (!c) return fmaf(k, j, k);
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = bits_to_float(g + 0x7f000000u);
    const float s2 = bits_to_float(e - g);
    if (fabsf(n) > 192.0f) return s1 * s1;
    return fmaf(s2, j, s2) * s1;
}

/* ggml_vec_swiglu_f32: silu(g) = g / (1 + expf(-g)) with the vector expf on whole
 * groups of 8, libm's on the tail (ggml_silu_f32), then times u. */
void el_lcpp_swiglu(float *g, const float *u, int64_t n) {
    const int64_t nv = n - n % 8;
    for (int64_t i = 0; i < nv; i++) g[i] = g[i] / (1.0f + el_lcpp_v_expf(0.0f - g[i])) * u[i];
    for (int64_t i = nv; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* ggml_vec_soft_max_f32 (AVX2): exp(x - max) by groups of 8 with the vector expf, each
 * group summed with el_lcpp_hsum8 into a double; the tail with libm's expf. Returns the
 * double sum. */
double el_lcpp_softmax_exp(float *s, int64_t n, float max) {
    double sum = 0.0;
    const int64_t nv = n - n % 8;
    for (int64_t i = 0; i < nv; i += 8) {
        for (int l = 0; l < 8; l++) s[i + l] = el_lcpp_v_expf(s[i + l] - max);
        sum += (double)el_lcpp_hsum8(s + i);
    }
    for (int64_t i = nv; i < n; i++) {
        s[i] = expf(s[i] - max);
        sum += (double)s[i];
    }
    return sum;
}


int el_lcpp_matmul(int type, const void *w, int64_t n_in, int64_t n_out, int64_t r0, int64_t r1, const float *x,
                   int64_t n_tok, float *y) {
    const el_type t = (el_type)type;
    const bool single = n_tok == 1;
    const int64_t n = r1 - r0;
    const void *wr = (const uint8_t *)w + (size_t)r0 * el_type_row_size(t, n_in);
    switch (t) {
    case EL_TYPE_F16: return el_lcpp_matmul_f16(wr, n_in, n, x, n_tok, y, single);
    case EL_TYPE_Q8_0: return el_lcpp_matmul_q8_0(wr, n_in, n, x, n_tok, y);
    /* llama.cpp's AVX2 build repacks these two when the row count allows */
    case EL_TYPE_Q4_0:
        return n_out % 8 == 0 ? el_lcpp_matmul_q4_0_repacked(wr, n_in, n, x, n_tok, y)
                              : el_lcpp_matmul_q4_0(wr, n_in, n, x, n_tok, y, single);
    case EL_TYPE_Q4_K:
        return n_out % 8 == 0 ? el_lcpp_matmul_q4_K_repacked(wr, n_in, n, x, n_tok, y)
                              : el_lcpp_matmul_q4_K(wr, n_in, n, x, n_tok, y);
    case EL_TYPE_Q6_K: return el_lcpp_matmul_q6_K(wr, n_in, n, x, n_tok, y);
    default: return 1;
    }
}
