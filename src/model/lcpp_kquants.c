/* llama.cpp-compatible products for weights llama.cpp does not repack on x86:
 * Q4_0 and Q4_K with a row count that is not a multiple of 8, and Q6_K (any rows).
 * Reproduces the arithmetic of the x86 AVX2 build of ggml (llama-cpp-python 0.3.36,
 * libggml-cpu 0.25.3) bit for bit in portable scalar C: which integer partial sums
 * exist, where they become floats, which multiply-adds are fused and in what order the
 * float partials are added. Integer sums are exact, so only the float steps matter.
 *
 * Paths llama.cpp takes (ggml_compute_forward_mul_mat):
 *   - Q4_K / Q6_K weights not repacked, batch >= 8 tokens: the "tiled" K-quant matmul
 *     (ggml-cpu/tiled, on by default): one float accumulator per output, per 256-block
 *     res = d_w * (float)isum [- dmin_w * (float)msum, fused], acc = fma(res, d_x, acc);
 *   - batch < 8: ggml_vec_dot_q4_K_q8_K / ggml_vec_dot_q6_K_q8_K, eight float lanes,
 *     acc[l] = fma(d_x * d_w, (float)isum_l, acc[l]) per block, then a fixed tree sum;
 *   - Q4_0, batch >= 2: llamafile's tinyBLAS_Q0_AVX; batch 1: ggml_vec_dot_q4_0_q8_0.
 *     Both keep, per output, eight lanes acc[l] = fma(d_w * d_x, (float)isum_l, acc[l])
 *     and the same final tree sum, so they give identical bits.
 * Activations: Q8_K by quantize_row_q8_K_ref (x86 has no SIMD version), Q8_0 by the
 * AVX2 quantize_row_q8_0 (multiply by 127/amax, round half to even): the project's
 * el_quantize_row_q8_K and el_quantize_act_q8_0 compute exactly these. */
#include "model/lcpp_numerics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/lcpp_internal.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "quant/quant_ref.h"
#include "quant/unpack.h"

/* Every fused multiply-add below is an explicit fmaf(); nothing else may be contracted.
 * gcc does not contract in ISO C mode (-std=c11) and rejects this pragma, clang needs it. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* The tiled path takes batches from this many src1 rows (ggml_tiled_min_batch). */
#define LCPP_TILED_MIN_BATCH 8

/* ---- weight block decoders (natural element order) ---- */

/* Q4_K: 8 sub-blocks of 32, 6-bit scales and mins; byte j of each 32-byte group holds
 * element j (low nibble) and element j + 32 (high nibble) of a 64-element pair. */
static void decode_q4_K(const block_q4_K *b, uint8_t q[QK_K], int sc[8], int mn[8]) {
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        k4_scale_min(b->scales, j, &s, &m);
        sc[j] = s, mn[j] = m;
    }
    for (int p = 0; p < 4; p++) {
        for (int j = 0; j < 32; j++) {
            q[64 * p + j] = b->qs[32 * p + j] & 15;
            q[64 * p + 32 + j] = b->qs[32 * p + j] >> 4;
        }
    }
}

/* Q6_K: unsigned 6-bit codes 0..63 (the weight is code - 32), 16 int8 scales. */
static void decode_q6_K(const block_q6_K *b, uint8_t q[QK_K], int sc[16]) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        uint8_t *o = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            o[l] = (uint8_t)((ql[l] & 15) | ((qh[l] & 3) << 4));
            o[l + 32] = (uint8_t)((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4));
            o[l + 64] = (uint8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
            o[l + 96] = (uint8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
        }
    }
    for (int s = 0; s < 16; s++) sc[s] = b->scales[s];
}

/* ---- per-block accumulation steps ---- */

/* ggml_vec_dot_q4_K_q8_K (AVX2), one block: lane l holds, over the 8 sub-blocks,
 * scale * (sum of elements 4l..4l+3 of the sub-block); acc[l] = fma(d, lane, acc[l]) with
 * d = d_x * d_w. The mins go through 4 lanes: lane k = min[2k] * bsum32[2k] +
 * min[2k+1] * bsum32[2k+1], acc_m[k] = fma(-d_x * dmin_w, lane, acc_m[k]). */
static void vecdot_q4_K_block(const uint8_t q[QK_K], const int sc[8], const int mn[8], float dw, float dminw,
                              const block_q8_K *a, float acc[8], float acc_m[4]) {
    const float d = a->d * dw;
    const float dmin = -a->d * dminw;
    for (int l = 0; l < 8; l++) {
        int32_t lane = 0;
        for (int s = 0; s < 8; s++) {
            const int o = 32 * s + 4 * l;
            const int32_t p = q[o] * a->qs[o] + q[o + 1] * a->qs[o + 1] + q[o + 2] * a->qs[o + 2] + q[o + 3] * a->qs[o + 3];
            lane += sc[s] * p;
        }
        acc[l] = fmaf(d, (float)lane, acc[l]);
    }
    for (int k = 0; k < 4; k++) {
        const int32_t b0 = a->bsums[4 * k] + a->bsums[4 * k + 1];
        const int32_t b1 = a->bsums[4 * k + 2] + a->bsums[4 * k + 3];
        const int32_t lane = mn[2 * k] * b0 + mn[2 * k + 1] * b1;
        acc_m[k] = fmaf(dmin, (float)lane, acc_m[k]);
    }
}

/* ggml_vec_dot_q6_K_q8_K (AVX2), one block: lane l sums scale * (code * q8) over
 * elements 4l..4l+3 of each 32-element group (unsigned codes), then subtracts the
 * -32 offset of 16-sub-blocks 2l and 2l+1 through the bsums:
 * 32 * (bsum[2l] * sc[2l] + bsum[2l+1] * sc[2l+1]); acc[l] = fma(d_x * d_w, lane, acc[l]). */
static void vecdot_q6_K_block(const uint8_t q[QK_K], const int sc[16], float dw, const block_q8_K *a, float acc[8]) {
    const float d = a->d * dw;
    for (int l = 0; l < 8; l++) {
        int32_t lane = 0;
        for (int g = 0; g < 8; g++) {
            const int o = 32 * g + 4 * l;
            const int32_t p = q[o] * a->qs[o] + q[o + 1] * a->qs[o + 1] + q[o + 2] * a->qs[o + 2] + q[o + 3] * a->qs[o + 3];
            lane += sc[o / 16] * p;
        }
        lane -= 32 * (a->bsums[2 * l] * sc[2 * l] + a->bsums[2 * l + 1] * sc[2 * l + 1]);
        acc[l] = fmaf(d, (float)lane, acc[l]);
    }
}

/* Tiled Q4_K, one block: exact integer isum = sum_s scale_s * (q . q8)_s and
 * msum = sum_s min_s * bsum32_s; res = d_w * isum, res = fma(-dmin_w, msum, res),
 * acc = fma(res, d_x, acc). */
static float tiled_q4_K_block(const uint8_t q[QK_K], const int sc[8], const int mn[8], float dw, float dminw,
                              const block_q8_K *a, float acc) {
    int32_t isum = 0, msum = 0;
    for (int s = 0; s < 8; s++) {
        int32_t p = 0;
        for (int e = 0; e < 32; e++) p += q[32 * s + e] * a->qs[32 * s + e];
        isum += sc[s] * p;
        msum += mn[s] * (a->bsums[2 * s] + a->bsums[2 * s + 1]);
    }
    float res = dw * (float)isum;
    res = fmaf(-dminw, (float)msum, res);
    return fmaf(res, a->d, acc);
}

/* Tiled Q6_K, one block: isum = sum over 16-sub-blocks of scale * ((code - 32) . q8),
 * res = d_w * isum, acc = fma(res, d_x, acc). */
static float tiled_q6_K_block(const uint8_t q[QK_K], const int sc[16], float dw, const block_q8_K *a, float acc) {
    int32_t isum = 0;
    for (int s = 0; s < 16; s++) {
        int32_t p = 0;
        for (int e = 0; e < 16; e++) p += (q[16 * s + e] - 32) * a->qs[16 * s + e];
        isum += sc[s] * p;
    }
    const float res = dw * (float)isum;
    return fmaf(res, a->d, acc);
}

/* ---- matrix products ---- */

/* Quantized activations plus per-token accumulators (lanes, min lanes, tiled sum). */
typedef struct {
    block_q8_K *xq;
    float *acc;   /* n_tok * 8 */
    float *acc_m; /* n_tok * 4 */
} kq_scratch;

static void kq_scratch_free(kq_scratch *s) {
    free(s->xq);
    free(s->acc);
    free(s->acc_m);
}

static int kq_scratch_init(kq_scratch *s, const float *x, int64_t n_in, int64_t n_tok) {
    const int64_t nb = n_in / QK_K;
    s->xq = malloc((size_t)(n_tok * nb) * sizeof *s->xq);
    s->acc = malloc((size_t)n_tok * 8 * sizeof *s->acc);
    s->acc_m = malloc((size_t)n_tok * 4 * sizeof *s->acc_m);
    if (!s->xq || !s->acc || !s->acc_m) {
        kq_scratch_free(s);
        return -1;
    }
    for (int64_t t = 0; t < n_tok; t++) el_quantize_row_q8_K(x + t * n_in, s->xq + t * nb, n_in);
    return 0;
}

int el_lcpp_matmul_q4_K(const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok, float *y) {
    if (n_tok <= 0 || n_out <= 0) return 0;
    kq_scratch s;
    if (kq_scratch_init(&s, x, n_in, n_tok) != 0) return -1;
    const int64_t nb = n_in / QK_K;
    const bool tiled = n_tok >= LCPP_TILED_MIN_BATCH;
    const block_q4_K *wb = w;
    uint8_t q[QK_K];
    int sc[8], mn[8];
    for (int64_t r = 0; r < n_out; r++) {
        memset(s.acc, 0, (size_t)n_tok * 8 * sizeof *s.acc);
        memset(s.acc_m, 0, (size_t)n_tok * 4 * sizeof *s.acc_m);
        for (int64_t ib = 0; ib < nb; ib++) {
            const block_q4_K *b = &wb[r * nb + ib];
            decode_q4_K(b, q, sc, mn);
            const float dw = el_f16_to_f32(b->d), dminw = el_f16_to_f32(b->dmin);
            for (int64_t t = 0; t < n_tok; t++) {
                const block_q8_K *a = &s.xq[t * nb + ib];
                if (tiled)
                    s.acc[t * 8] = tiled_q4_K_block(q, sc, mn, dw, dminw, a, s.acc[t * 8]);
                else
                    vecdot_q4_K_block(q, sc, mn, dw, dminw, a, &s.acc[t * 8], &s.acc_m[t * 4]);
            }
        }
        for (int64_t t = 0; t < n_tok; t++) {
            if (tiled) {
                y[t * n_out + r] = s.acc[t * 8];
            } else {
                const float *m = &s.acc_m[t * 4];
                const float mins = (m[0] + m[2]) + (m[1] + m[3]);
                y[t * n_out + r] = el_lcpp_hsum8(&s.acc[t * 8]) + mins;
            }
        }
    }
    kq_scratch_free(&s);
    return 0;
}

int el_lcpp_matmul_q6_K(const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok, float *y) {
    if (n_tok <= 0 || n_out <= 0) return 0;
    kq_scratch s;
    if (kq_scratch_init(&s, x, n_in, n_tok) != 0) return -1;
    const int64_t nb = n_in / QK_K;
    const bool tiled = n_tok >= LCPP_TILED_MIN_BATCH;
    const block_q6_K *wb = w;
    uint8_t q[QK_K];
    int sc[16];
    for (int64_t r = 0; r < n_out; r++) {
        memset(s.acc, 0, (size_t)n_tok * 8 * sizeof *s.acc);
        for (int64_t ib = 0; ib < nb; ib++) {
            const block_q6_K *b = &wb[r * nb + ib];
            decode_q6_K(b, q, sc);
            const float dw = el_f16_to_f32(b->d);
            for (int64_t t = 0; t < n_tok; t++) {
                const block_q8_K *a = &s.xq[t * nb + ib];
                if (tiled)
                    s.acc[t * 8] = tiled_q6_K_block(q, sc, dw, a, s.acc[t * 8]);
                else
                    vecdot_q6_K_block(q, sc, dw, a, &s.acc[t * 8]);
            }
        }
        for (int64_t t = 0; t < n_tok; t++) y[t * n_out + r] = tiled ? s.acc[t * 8] : el_lcpp_hsum8(&s.acc[t * 8]);
    }
    kq_scratch_free(&s);
    return 0;
}

/* ggml_vec_dot_q4_0_q8_0 (AVX2) and tinyBLAS_Q0_AVX (all its gemm shapes): per 32-block,
 * lane l = sum of the 4 products of elements 4l..4l+3 (weights q - 8, low nibbles are
 * elements 0..15), acc[l] = fma(f16(d_w) * f16(d_x), lane, acc[l]); then hsum. The two
 * paths differ only in blocking, so `single` does not change the result. */
int el_lcpp_matmul_q4_0(const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok, float *y,
                        bool single) {
    (void)single;
    if (n_tok <= 0 || n_out <= 0) return 0;
    const int64_t nb = n_in / QK4_0;
    block_q8_0 *xq = malloc((size_t)(n_tok * nb) * sizeof *xq);
    float *xd = malloc((size_t)(n_tok * nb) * sizeof *xd);
    float *acc = malloc((size_t)n_tok * 8 * sizeof *acc);
    if (!xq || !xd || !acc) {
        free(xq);
        free(xd);
        free(acc);
        return -1;
    }
    for (int64_t t = 0; t < n_tok; t++) el_quantize_act_q8_0(x + t * n_in, xq + t * nb, n_in);
    for (int64_t i = 0; i < n_tok * nb; i++) xd[i] = el_f16_to_f32(xq[i].d);
    const block_q4_0 *wb = w;
    int8_t q[QK4_0];
    for (int64_t r = 0; r < n_out; r++) {
        memset(acc, 0, (size_t)n_tok * 8 * sizeof *acc);
        for (int64_t ib = 0; ib < nb; ib++) {
            const block_q4_0 *b = &wb[r * nb + ib];
            for (int j = 0; j < QK4_0 / 2; j++) {
                q[j] = (int8_t)((b->qs[j] & 15) - 8);
                q[j + QK4_0 / 2] = (int8_t)((b->qs[j] >> 4) - 8);
            }
            const float dw = el_f16_to_f32(b->d);
            for (int64_t t = 0; t < n_tok; t++) {
                const block_q8_0 *a = &xq[t * nb + ib];
                const float d = dw * xd[t * nb + ib];
                float *at = &acc[t * 8];
                for (int l = 0; l < 8; l++) {
                    const int o = 4 * l;
                    const int32_t lane = q[o] * a->qs[o] + q[o + 1] * a->qs[o + 1] + q[o + 2] * a->qs[o + 2] + q[o + 3] * a->qs[o + 3];
                    at[l] = fmaf(d, (float)lane, at[l]);
                }
            }
        }
        for (int64_t t = 0; t < n_tok; t++) y[t * n_out + r] = el_lcpp_hsum8(&acc[t * 8]);
    }
    free(xq);
    free(xd);
    free(acc);
    return 0;
}
