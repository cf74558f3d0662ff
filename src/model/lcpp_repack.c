/* llama.cpp-compatible products for Q4_0 and Q4_K weights with a multiple of 8 rows (see
 * lcpp_numerics.h). llama.cpp's CPU backend (AVX2 build) repacks such weights at load into
 * 8-row interleaved blocks (q4_0_8x8_q8_0, q4_K_8x8_q8_K) and its forward_mul_mat sends the
 * first n_tok - n_tok % 4 tokens through the repacked gemm (activations quantized 4 rows
 * at a time) and the rest, one by one, through the repacked gemv (activations quantized by
 * the type's from_float). The interleaving only changes which SIMD lane holds an output;
 * what decides the bits is which integer partial sums exist and how they are folded into
 * floats, and that is what this file reproduces on the plain GGUF layout:
 *
 *   Q4_0, gemm and gemv alike: per 32-block an exact integer dot, then
 *       acc = fma((float)isum, d_w * d_x, acc)      (d_w * d_x rounded first);
 *   Q4_K gemv: per 256-superblock isum = sum_j sc_j * dot_j and imin = sum_j m_j * bsum_j
 *       (j = the 8 sub-blocks of 32), then acc = fma((float)isum, d_w * d_x, acc) and
 *       accm = fma((float)imin, dmin_w * d_x, accm); y = acc - accm;
 *   Q4_K gemm: the same, but the two fmas happen once per 64 elements (sub-block pair).
 *
 * All integer sums are exact in the SIMD code too (its int16 intermediates cannot
 * overflow with quants in [-127, 127]); only their grouping matters. */
#include "model/lcpp_numerics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/blocks.h"
#include "quant/quant.h"
#include "quant/quant_ref.h"
#include "quant/unpack.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* only the fmaf() calls below may fuse (gcc: off in ISO C) */
#endif

/* _mm256_round_ps(v, nearest) then _mm256_cvtps_epi32 and the saturating packs to int8:
 * ties to even, out-of-range (and NaN, which converts to INT_MIN) saturate. */
static int8_t round_to_q8(float v) {
    if (!(v >= -128.0f)) return -128;
    if (v > 127.0f) return 127;
    return (int8_t)rintf(v);
}

/* ---- activations ---- */

/* Q8_0 as both ggml_quantize_mat_q8_0_4x8 (gemm) and quantize_row_q8_0 (gemv) compute it
 * on AVX2: el_quantize_act_q8_0's rule (scale amax / 127 as F16, multiplier 127 / amax,
 * halves to even), unpacked into quants and float scales. */
static void quantize_q8_0_avx2(const float *x, int64_t nb, int8_t *q, float *d_out) {
    for (int64_t b = 0; b < nb; b++) {
        block_q8_0 blk;
        el_quantize_act_q8_0(x + b * QK8_0, &blk, QK8_0);
        memcpy(q + b * QK8_0, blk.qs, QK8_0);
        d_out[b] = el_f16_to_f32(blk.d);
    }
}

/* Q8_K per 256-superblock: multiplier -127/max where max is the signed element of largest
 * magnitude, d = 1 / multiplier (a float, not F16), quants rounded half to even (the
 * reference's nearest_int), and the exact sum of each 32 quants (the bsums, which llama.cpp
 * keeps per 16 and adds in pairs). The two paths differ only in which sign wins a tie
 * between +amax and -amax: quantize_row_q8_K (gemv) takes the first such element,
 * ggml_quantize_mat_q8_K_4x8 (gemm) takes the positive one whenever it exists. */
static void quantize_q8_K(const float *x, int64_t nsb, bool grouped, int8_t *q, float *d_out, int32_t *sum32) {
    for (int64_t b = 0; b < nsb; b++) {
        const float *xb = x + b * QK_K;
        float amax = 0.0f, max = 0.0f;
        for (int i = 0; i < QK_K; i++) {
            const float ax = fabsf(xb[i]);
            if (ax > amax) amax = ax, max = xb[i];
        }
        int8_t *qb = q + b * QK_K;
        int32_t *sb = sum32 + b * (QK_K / 32);
        if (amax == 0.0f) {
            d_out[b] = 0.0f;
            memset(qb, 0, QK_K);
            memset(sb, 0, (QK_K / 32) * sizeof *sb);
            continue;
        }
        bool positive = max > 0.0f;
        if (grouped) {
            positive = false;
            for (int i = 0; i < QK_K; i++) positive |= xb[i] == amax;
        }
        const float iscale = positive ? -127.0f / amax : 127.0f / amax;
        d_out[b] = 1.0f / iscale;
        for (int i = 0; i < QK_K; i++) {
            const float v = iscale * xb[i];
            qb[i] = round_to_q8(v);
        }
        for (int j = 0; j < QK_K / 32; j++) {
            int32_t s = 0;
            for (int i = 0; i < 32; i++) s += qb[32 * j + i];
            sb[j] = s;
        }
    }
}

/* ---- Q4_0 ---- */

static float dot_q4_0_repacked(const block_q4_0 *w, const int8_t *q, const float *dx, int64_t nb) {
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const int8_t *qb = q + b * QK8_0;
        int32_t isum = 0;
        for (int i = 0; i < QK4_0 / 2; i++) {
            isum += ((w[b].qs[i] & 0x0f) - 8) * qb[i];
            isum += ((w[b].qs[i] >> 4) - 8) * qb[i + QK4_0 / 2];
        }
        const float scale = el_f16_to_f32(w[b].d) * dx[b];
        acc = fmaf((float)isum, scale, acc);
    }
    return acc;
}

int el_lcpp_matmul_q4_0_repacked(const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok,
                                 float *y) {
    if (n_in <= 0 || n_out <= 0 || n_tok <= 0) return 0;
    const int64_t nb = n_in / QK4_0;
    int8_t *q = malloc((size_t)n_in);
    float *dx = malloc((size_t)nb * sizeof *dx);
    if (!q || !dx) {
        free(q), free(dx);
        return -1;
    }
    const block_q4_0 *wb = w;
    /* gemm and gemv quantize Q8_0 alike and fold each block the same way, so one loop
     * serves both halves of the split. */
    for (int64_t t = 0; t < n_tok; t++) {
        quantize_q8_0_avx2(x + t * n_in, nb, q, dx);
        for (int64_t r = 0; r < n_out; r++) y[t * n_out + r] = dot_q4_0_repacked(wb + r * nb, q, dx, nb);
    }
    free(q), free(dx);
    return 0;
}

/* ---- Q4_K ---- */

/* One output: `grouped` selects the gemm folding (fmas per 64 elements) over the gemv one
 * (fmas per superblock). */
static float dot_q4_K_repacked(const block_q4_K *w, const int8_t *q, const float *dx, const int32_t *sum32,
                               int64_t nsb, bool grouped) {
    float acc = 0.0f, accm = 0.0f;
    for (int64_t b = 0; b < nsb; b++) {
        const float scale = el_f16_to_f32(w[b].d) * dx[b];
        const float scale_min = el_f16_to_f32(w[b].dmin) * dx[b];
        int32_t isum = 0, imin = 0;
        for (int c = 0; c < QK_K / 64; c++) { /* 64 elements: sub-blocks 2c (low nibbles) and 2c+1 (high) */
            const uint8_t *qs = w[b].qs + 32 * c;
            const int8_t *qa = q + b * QK_K + 64 * c;
            int32_t lo = 0, hi = 0;
            uint8_t sc0, m0, sc1, m1;
            for (int i = 0; i < 32; i++) {
                lo += (qs[i] & 0x0f) * qa[i];
                hi += (qs[i] >> 4) * qa[i + 32];
            }
            k4_scale_min(w[b].scales, 2 * c, &sc0, &m0);
            k4_scale_min(w[b].scales, 2 * c + 1, &sc1, &m1);
            isum += sc0 * lo + sc1 * hi;
            imin += m0 * sum32[b * 8 + 2 * c] + m1 * sum32[b * 8 + 2 * c + 1];
            if (grouped) {
                acc = fmaf((float)isum, scale, acc);
                accm = fmaf((float)imin, scale_min, accm);
                isum = imin = 0;
            }
        }
        if (!grouped) {
            acc = fmaf((float)isum, scale, acc);
            accm = fmaf((float)imin, scale_min, accm);
        }
    }
    return acc - accm;
}

int el_lcpp_matmul_q4_K_repacked(const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok,
                                 float *y) {
    if (n_in <= 0 || n_out <= 0 || n_tok <= 0) return 0;
    const int64_t nsb = n_in / QK_K;
    int8_t *q = malloc((size_t)n_in);
    float *dx = malloc((size_t)nsb * sizeof *dx);
    int32_t *sum32 = malloc((size_t)nsb * (QK_K / 32) * sizeof *sum32);
    if (!q || !dx || !sum32) {
        free(q), free(dx), free(sum32);
        return -1;
    }
    const block_q4_K *wb = w;
    const int64_t n_gemm = n_tok - n_tok % 4; /* forward_mul_mat's split */
    for (int64_t t = 0; t < n_tok; t++) {
        const bool grouped = t < n_gemm;
        quantize_q8_K(x + t * n_in, nsb, grouped, q, dx, sum32);
        for (int64_t r = 0; r < n_out; r++)
            y[t * n_out + r] = dot_q4_K_repacked(wb + r * nsb, q, dx, sum32, nsb, grouped);
    }
    free(q), free(dx), free(sum32);
    return 0;
}
