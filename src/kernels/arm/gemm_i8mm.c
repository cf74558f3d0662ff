/* arm64 micro-kernels of the blocked matmul with the int8 matrix-multiply extension
 * (SMMLA: a 2x8 by 8x2 int8 product into a 2x2 int32 tile, 32 multiply-adds per
 * instruction against SDOT's 16). Same panels, exact integer totals and float steps as
 * gemm_dotprod.c, so the results are bit for bit the same; one token goes through the
 * dotprod gemvs.
 *
 * An SMMLA operand is 2 rows x 8 int8: the q8/q4 panels' q[k] already holds 8 elements
 * of each row, rows side by side, so its two 16-byte halves are the weight operands of
 * rows 0-1 and 2-3 as they are; two tokens' 8 activations make the other operand. The
 * 2x2 tiles [r0t0 r0t1 r1t0 r1t1] of rows 0-1 and 2-3 unzip into per-token row vectors.
 * K panels keep each row's 256 quants apart: 8 elements of two rows are zipped into one
 * operand, and the int16 scale per 16 elements multiplies each tile row. */
#include <arm_neon.h>

#include "kernels/arm/arm_quants.h"
#include "kernels/arm/kernels_arm.h"
#include "kernels/gemm.h"

#define RM EL_GEMM_RM
#define TN EL_GEMM_TN

_Static_assert(RM == 4 && TN == 4, "the kernels below hold 4 rows x 4 tokens");

static inline int8x16_t zip_lo64(int8x16_t a, int8x16_t b) {
    return vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}
static inline int8x16_t zip_hi64(int8x16_t a, int8x16_t b) {
    return vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}

static inline int8x16_t load_flip(const int8_t *x, uint8x16_t flip) {
    return vreinterpretq_s8_u8(veorq_u8(vld1q_u8((const uint8_t *)x), flip));
}

/* q8 (flip 0) and q4 (flip 0x80) panels; npair = 1 or 2 token pairs (xs[2i], xs[2i+1]). */
static inline void gemm_q32_i8mm(const void *panel, size_t panel_bytes, int q4, int64_t nb,
                                 const void *const xs[TN], const int npair, float out[TN][RM]) {
    const uint8x16_t flip = vdupq_n_u8(q4 ? 0x80 : 0);
    float32x4_t acc[TN];
    for (int t = 0; t < TN; t++) acc[t] = vdupq_n_f32(0.f);
    for (int64_t b = 0; b < nb; b++) {
        const unsigned char *pb = (const unsigned char *)panel + (size_t)b * panel_bytes;
        const int8_t(*q)[32] = q4 ? ((const el_panel_q4 *)pb)->q : ((const el_panel_q8 *)pb)->q;
        const float *d2 = q4 ? ((const el_panel_q4 *)pb)->d2 : ((const el_panel_q8 *)pb)->d2;
        const float32x4_t dw = vuzp1q_f32(vld1q_f32(d2), vld1q_f32(d2 + 4));
        int8x16_t w01[4], w23[4];
        for (int k = 0; k < 4; k++) {
            w01[k] = vld1q_s8(q[k]);
            w23[k] = vld1q_s8(q[k] + 16);
        }
        for (int tp = 0; tp < npair; tp++) {
            const block_q8_0 *x0 = (const block_q8_0 *)xs[2 * tp] + b, *x1 = (const block_q8_0 *)xs[2 * tp + 1] + b;
            const int8x16_t a0 = load_flip(x0->qs, flip), a1 = load_flip(x0->qs + 16, flip);
            const int8x16_t c0 = load_flip(x1->qs, flip), c1 = load_flip(x1->qs + 16, flip);
            const int8x16_t xk[4] = {zip_lo64(a0, c0), zip_hi64(a0, c0), zip_lo64(a1, c1), zip_hi64(a1, c1)};
            int32x4_t m01 = vdupq_n_s32(0), m23 = vdupq_n_s32(0);
            for (int k = 0; k < 4; k++) {
                m01 = vmmlaq_s32(m01, w01[k], xk[k]);
                m23 = vmmlaq_s32(m23, w23[k], xk[k]);
            }
            acc[2 * tp] = step_q32(acc[2 * tp], vuzp1q_s32(m01, m23), dw, arm_f16(x0->d));
            acc[2 * tp + 1] = step_q32(acc[2 * tp + 1], vuzp2q_s32(m01, m23), dw, arm_f16(x1->d));
        }
    }
    for (int t = 0; t < 2 * npair; t++) vst1q_f32(out[t], acc[t]);
}

/* One token: paired with itself (half the tile wasted, results as for any pair). */
static inline void gemm_q32_i8mm_call(const void *panel, size_t panel_bytes, int q4, int64_t nb,
                                      const void *const xs[TN], int nt, float out[TN][RM]) {
    if (nt == 1) {
        const void *const one[TN] = {xs[0], xs[0], xs[0], xs[0]};
        gemm_q32_i8mm(panel, panel_bytes, q4, nb, one, 1, out);
    } else if (nt == 2) {
        gemm_q32_i8mm(panel, panel_bytes, q4, nb, xs, 1, out);
    } else {
        gemm_q32_i8mm(panel, panel_bytes, q4, nb, xs, 2, out);
    }
}

void el_gemm_q8_i8mm(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    gemm_q32_i8mm_call(panel, sizeof(el_panel_q8), 0, nb, xs, nt, out);
}

void el_gemm_q4_i8mm(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    gemm_q32_i8mm_call(panel, sizeof(el_panel_q4), 1, nb, xs, nt, out);
}

/* [a a b b]: the scale of each tile row. */
static inline int32x4_t scale_pair(int16_t a, int16_t b) {
    return vcombine_s32(vdup_n_s32(a), vdup_n_s32(b));
}

static inline void gemm_k_i8mm(const el_panel_k *p, int64_t nb, const void *const xs[TN], const int npair,
                               float out[TN][RM], const int int_bias) {
    float32x4_t acc[TN];
    for (int t = 0; t < TN; t++) acc[t] = vdupq_n_f32(0.f);
    for (int64_t b = 0; b < nb; b++) {
        const el_panel_k *pb = p + b;
        const block_q8_K *x[TN];
        for (int t = 0; t < TN; t++) x[t] = (const block_q8_K *)xs[t] + b;
        int32x4_t s[2][2]; /* [row pair][token pair]: tiles [r0t0 r0t1 r1t0 r1t1] */
        for (int i = 0; i < 4; i++) s[i / 2][i % 2] = vdupq_n_s32(0);
        for (int g = 0; g < 16; g++) { /* elements 16g..16g+15, one scale per row */
            int8x16_t wl[2], wh[2];
            int32x4_t sc[2];
            for (int rp = 0; rp < 2; rp++) {
                const int8x16_t u0 = vreinterpretq_s8_u8(vld1q_u8(pb->q[2 * rp] + 16 * g));
                const int8x16_t u1 = vreinterpretq_s8_u8(vld1q_u8(pb->q[2 * rp + 1] + 16 * g));
                wl[rp] = zip_lo64(u0, u1);
                wh[rp] = zip_hi64(u0, u1);
                sc[rp] = scale_pair(pb->sc[2 * rp][g / 2][(g % 2) * 8], pb->sc[2 * rp + 1][g / 2][(g % 2) * 8]);
            }
            for (int tp = 0; tp < npair; tp++) {
                const int8x16_t a = vld1q_s8(x[2 * tp]->qs + 16 * g), c = vld1q_s8(x[2 * tp + 1]->qs + 16 * g);
                const int8x16_t xl = zip_lo64(a, c), xh = zip_hi64(a, c);
                for (int rp = 0; rp < 2; rp++) {
                    const int32x4_t m = vmmlaq_s32(vmmlaq_s32(vdupq_n_s32(0), wl[rp], xl), wh[rp], xh);
                    s[rp][tp] = vmlaq_s32(s[rp][tp], m, sc[rp]);
                }
            }
        }
        const float32x4_t da = vld1q_f32(pb->da), db = vld1q_f32(pb->db);
        for (int tp = 0; tp < npair; tp++)
            for (int h = 0; h < 2; h++) {
                const int t = 2 * tp + h;
                const int32x4_t st = h ? vuzp2q_s32(s[0][tp], s[1][tp]) : vuzp1q_s32(s[0][tp], s[1][tp]);
                const int32x4_t mt = sum_rows4(bias_lanes(pb->m[0], x[t]->bsums), bias_lanes(pb->m[1], x[t]->bsums),
                                               bias_lanes(pb->m[2], x[t]->bsums), bias_lanes(pb->m[3], x[t]->bsums));
                acc[t] = int_bias ? step_k_ibias(acc[t], st, mt, da, x[t]->d)
                                  : step_k_fbias(acc[t], st, mt, da, db, x[t]->d);
            }
    }
    for (int t = 0; t < 2 * npair; t++) vst1q_f32(out[t], acc[t]);
}

static inline void gemm_k_i8mm_call(const void *panel, int64_t nb, const void *const xs[TN], int nt,
                                    float out[TN][RM], int int_bias) {
    if (nt == 1) {
        const void *const one[TN] = {xs[0], xs[0], xs[0], xs[0]};
        gemm_k_i8mm(panel, nb, one, 1, out, int_bias);
    } else if (nt == 2) {
        gemm_k_i8mm(panel, nb, xs, 1, out, int_bias);
    } else {
        gemm_k_i8mm(panel, nb, xs, 2, out, int_bias);
    }
}

void el_gemm_k_fbias_i8mm(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    gemm_k_i8mm_call(panel, nb, xs, nt, out, 0);
}

void el_gemm_k_ibias_i8mm(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    gemm_k_i8mm_call(panel, nb, xs, nt, out, 1);
}
