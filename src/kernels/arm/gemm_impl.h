/* The arm64 micro-kernels and one-token gemvs of the blocked matmul, written once over
 * ARM_DOT4 (acc + 16 int8 products into 4 int32 lanes) and ARM_NAME (the name's suffix):
 * gemm_dotprod.c includes it with SDOT, gemm_neon.c with the base-NEON equivalent
 * (dot16_neon, for cores without dotprod). Layouts and contract: kernels/gemm.h; the
 * panels come from the portable packers.
 *
 * Every kernel forms, per token and block, the exact int32 totals of the 4 rows and then
 * takes the float steps of arm_quants.h (those of the portable kernels, in their order);
 * gemm_i8mm.c and the gemvs below do the same, so all of them agree bit for bit.
 *
 * q8/q4 panels: one 16-byte half of q[k] holds 8 elements of 2 rows; against the token's
 * 8 activations repeated twice, SDOT gives each row's sum in 2 lanes (without SDOT: SMULL
 * per row, pairwise into that row's lanes). The q4 family's activations arrive + 128
 * (act_offset, shared with x86): flipped back to signed here, and the weights are signed
 * too, so the panel's corr is not needed.
 * K panels: unsigned quants (<= 63, so valid signed bytes) times the activations per 16,
 * times the int16 scale of those 16, plus the bias from the bsums.
 * No include guard: meant to be included once per kernel variant. */
#if !defined(ARM_DOT4) || !defined(ARM_NAME) || !defined(ARM_SDOT)
#error "define ARM_DOT4, ARM_NAME and ARM_SDOT (0 or 1) before including gemm_impl.h"
#endif

#include <arm_neon.h>

#include "kernels/arm/arm_quants.h"
#include "kernels/arm/kernels_arm.h"
#include "kernels/gemm.h"
#include "quant/unpack.h"

#define RM EL_GEMM_RM
#define TN EL_GEMM_TN

_Static_assert(RM == 4 && TN == 4, "the kernels below hold 4 rows x 4 tokens");

#if ARM_SDOT
/* 8 activations, repeated in both halves. */
static inline int8x16_t bcast8(const int8_t *x, uint8x16_t flip) {
    const int8x8_t v = vld1_s8(x);
    return vreinterpretq_s8_u8(veorq_u8(vreinterpretq_u8_s8(vcombine_s8(v, v)), flip));
}
#endif

/* Totals of the 4 interleaved rows of q against one token's 32 activations. */
static inline int32x4_t rows4_q32(const int8_t q[4][32], const int8_t *x, uint8x16_t flip) {
#if ARM_SDOT
    int32x4_t a01 = vdupq_n_s32(0), a23 = vdupq_n_s32(0);
    for (int k = 0; k < 4; k++) {
        const int8x16_t xb = bcast8(x + 8 * k, flip);
        a01 = vdotq_s32(a01, vld1q_s8(q[k]), xb);
        a23 = vdotq_s32(a23, vld1q_s8(q[k] + 16), xb);
    }
    return vpaddq_s32(a01, a23);
#else
    int32x4_t a[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)}; /* one per row */
    for (int k = 0; k < 4; k++) {
        const int8x8_t xk = vreinterpret_s8_u8(veor_u8(vld1_u8((const uint8_t *)x + 8 * k), vget_low_u8(flip)));
        const int8x16_t w01 = vld1q_s8(q[k]), w23 = vld1q_s8(q[k] + 16);
        a[0] = vpadalq_s16(a[0], vmull_s8(vget_low_s8(w01), xk));
        a[1] = vpadalq_s16(a[1], vmull_s8(vget_high_s8(w01), xk));
        a[2] = vpadalq_s16(a[2], vmull_s8(vget_low_s8(w23), xk));
        a[3] = vpadalq_s16(a[3], vmull_s8(vget_high_s8(w23), xk));
    }
    return sum_rows4(a[0], a[1], a[2], a[3]);
#endif
}

/* q8 (flip 0) and q4 (flip 0x80) panels; np = 1 or TN tokens. */
static inline void gemm_q32_tile(const void *panel, size_t panel_bytes, int q4, int64_t nb,
                                 const void *const xs[TN], const int np, float out[TN][RM]) {
    const uint8x16_t flip = vdupq_n_u8(q4 ? 0x80 : 0);
    float32x4_t acc[TN];
    for (int t = 0; t < TN; t++) acc[t] = vdupq_n_f32(0.f);
    for (int64_t b = 0; b < nb; b++) {
        const unsigned char *pb = (const unsigned char *)panel + (size_t)b * panel_bytes;
        const int8_t(*q)[32] = q4 ? ((const el_panel_q4 *)pb)->q : ((const el_panel_q8 *)pb)->q;
        const float *d2 = q4 ? ((const el_panel_q4 *)pb)->d2 : ((const el_panel_q8 *)pb)->d2;
        const float32x4_t dw = vuzp1q_f32(vld1q_f32(d2), vld1q_f32(d2 + 4)); /* [d0 d1 d2 d3] */
        for (int t = 0; t < np; t++) {
            const block_q8_0 *x = (const block_q8_0 *)xs[t] + b;
            acc[t] = step_q32(acc[t], rows4_q32(q, x->qs, flip), dw, arm_f16(x->d));
        }
    }
    for (int t = 0; t < np; t++) vst1q_f32(out[t], acc[t]);
}

void ARM_NAME(el_gemm_q8)(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    if (nt == 1) gemm_q32_tile(panel, sizeof(el_panel_q8), 0, nb, xs, 1, out);
    else gemm_q32_tile(panel, sizeof(el_panel_q8), 0, nb, xs, TN, out);
}

void ARM_NAME(el_gemm_q4)(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    if (nt == 1) gemm_q32_tile(panel, sizeof(el_panel_q4), 1, nb, xs, 1, out);
    else gemm_q32_tile(panel, sizeof(el_panel_q4), 1, nb, xs, TN, out);
}

/* K panels: per block, lanes of scale * (q . x) for each (token, row); then the row
 * totals, the bias totals and the float steps. */
static inline void gemm_k_tile(const el_panel_k *p, int64_t nb, const void *const xs[TN], const int np,
                               float out[TN][RM], const int int_bias) {
    float32x4_t acc[TN];
    for (int t = 0; t < TN; t++) acc[t] = vdupq_n_f32(0.f);
    for (int64_t b = 0; b < nb; b++) {
        const el_panel_k *pb = p + b;
        const block_q8_K *x[TN];
        for (int t = 0; t < TN; t++) x[t] = (const block_q8_K *)xs[t < np ? t : 0] + b;
        int32x4_t s[TN][RM];
        for (int t = 0; t < TN; t++)
            for (int r = 0; r < RM; r++) s[t][r] = vdupq_n_s32(0);
        for (int g = 0; g < 16; g++) { /* elements 16g..16g+15, one scale per row */
            int8x16_t xv[TN];
            for (int t = 0; t < np; t++) xv[t] = vld1q_s8(x[t]->qs + 16 * g);
            for (int r = 0; r < RM; r++) {
                const int8x16_t wq = vreinterpretq_s8_u8(vld1q_u8(pb->q[r] + 16 * g));
                const int32_t sc = pb->sc[r][g / 2][(g % 2) * 8];
                for (int t = 0; t < np; t++) s[t][r] = vmlaq_n_s32(s[t][r], ARM_DOT4(vdupq_n_s32(0), wq, xv[t]), sc);
            }
        }
        const float32x4_t da = vld1q_f32(pb->da), db = vld1q_f32(pb->db);
        for (int t = 0; t < np; t++) {
            const int32x4_t st = sum_rows4(s[t][0], s[t][1], s[t][2], s[t][3]);
            const int32x4_t mt = sum_rows4(bias_lanes(pb->m[0], x[t]->bsums), bias_lanes(pb->m[1], x[t]->bsums),
                                           bias_lanes(pb->m[2], x[t]->bsums), bias_lanes(pb->m[3], x[t]->bsums));
            acc[t] = int_bias ? step_k_ibias(acc[t], st, mt, da, x[t]->d)
                              : step_k_fbias(acc[t], st, mt, da, db, x[t]->d);
        }
    }
    for (int t = 0; t < np; t++) vst1q_f32(out[t], acc[t]);
}

void ARM_NAME(el_gemm_k_fbias)(const void *panel, int64_t nb, const void *const xs[TN], int nt,
                             float out[TN][RM]) {
    if (nt == 1) gemm_k_tile(panel, nb, xs, 1, out, 0);
    else gemm_k_tile(panel, nb, xs, TN, out, 0);
}

void ARM_NAME(el_gemm_k_ibias)(const void *panel, int64_t nb, const void *const xs[TN], int nt,
                             float out[TN][RM]) {
    if (nt == 1) gemm_k_tile(panel, nb, xs, 1, out, 1);
    else gemm_k_tile(panel, nb, xs, TN, out, 1);
}

/* ---- one token straight from the weight blocks ---- */

/* The 4 rows in step, block by block: decode each row's 32 quants, SDOT against the
 * token, row totals, then the kernels' float step (same totals, same step). */
#define GEMV_Q32(name, block_t, quants, q4)                                                                     \
    void name(const void *const rows[RM], int64_t b0, int64_t nb, const void *xv, float out[RM]) {              \
        const block_q8_0 *x = (const block_q8_0 *)xv; /* already at block b0 */                                 \
        const block_t *w[RM];                                                                                   \
        for (int r = 0; r < RM; r++) w[r] = (const block_t *)rows[r] + b0;                                      \
        const uint8x16_t flip = vdupq_n_u8(q4 ? 0x80 : 0);                                                      \
        float32x4_t acc = vdupq_n_f32(0.f);                                                                     \
        for (int64_t b = 0; b < nb; b++) {                                                                      \
            const int8x16_t xlo = vreinterpretq_s8_u8(veorq_u8(vld1q_u8((const uint8_t *)x[b].qs), flip));      \
            const int8x16_t xhi = vreinterpretq_s8_u8(veorq_u8(vld1q_u8((const uint8_t *)x[b].qs + 16), flip)); \
            int32x4_t p[RM];                                                                                    \
            for (int r = 0; r < RM; r++) {                                                                      \
                int8x16_t lo, hi;                                                                               \
                quants(&w[r][b], &lo, &hi);                                                                     \
                p[r] = ARM_DOT4(ARM_DOT4(vdupq_n_s32(0), lo, xlo), hi, xhi);                                    \
            }                                                                                                   \
            const float dws[RM] = {arm_f16(w[0][b].d), arm_f16(w[1][b].d), arm_f16(w[2][b].d),                  \
                                   arm_f16(w[3][b].d)};                                                         \
            acc = step_q32(acc, sum_rows4(p[0], p[1], p[2], p[3]), vld1q_f32(dws), arm_f16(x[b].d));            \
        }                                                                                                       \
        vst1q_f32(out, acc);                                                                                    \
    }

GEMV_Q32(ARM_NAME(el_gemv_q8_0), block_q8_0, q8_0_quants, 0)
GEMV_Q32(ARM_NAME(el_gemv_q4_0), block_q4_0, q4_0_quants, 1)
GEMV_Q32(ARM_NAME(el_gemv_q5_0), block_q5_0, q5_0_quants, 1)

/* Q4_K / Q5_K row: S = sum sc_j * (q . x) over the 8 groups of 32, M = sum min_j * (bsum
 * pair j): the totals the panel holds (scales per 16 repeated, m per 16 = min of its 32).
 * qh: Q5_K's fifth bits (bit 2g of qh[l] for element 64g + l, 2g + 1 for 64g + 32 + l),
 * NULL for Q4_K. */
static inline int32x4_t row_k4(const uint8_t scales[K_SCALE_SIZE], const uint8_t *qs, const uint8_t *qh,
                               const block_q8_K *x, int32x4_t *m) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F), b4 = vdupq_n_u8(0x10);
    uint8_t sm[16];
    k4_scales_mins(scales, sm);
    const int16x8_t b32 = vpaddq_s16(vld1q_s16(x->bsums), vld1q_s16(x->bsums + 8));
    const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(sm + 8)));
    *m = vmlal_high_s16(vmull_s16(vget_low_s16(mins), vget_low_s16(b32)), mins, b32);
    const uint8x16_t h0 = qh ? vld1q_u8(qh) : vdupq_n_u8(0), h1 = qh ? vld1q_u8(qh + 16) : vdupq_n_u8(0);
    int32x4_t s = vdupq_n_s32(0);
    for (int g = 0; g < 4; g++) {
        const uint8x16_t v0 = vld1q_u8(qs + 32 * g), v1 = vld1q_u8(qs + 32 * g + 16);
        const uint8x16_t blo = vdupq_n_u8((uint8_t)(1u << (2 * g))), bhi = vdupq_n_u8((uint8_t)(2u << (2 * g)));
        const int8x16_t l0 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v0, m4), vandq_u8(vtstq_u8(h0, blo), b4)));
        const int8x16_t l1 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v1, m4), vandq_u8(vtstq_u8(h1, blo), b4)));
        const int8x16_t u0 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v0, 4), vandq_u8(vtstq_u8(h0, bhi), b4)));
        const int8x16_t u1 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v1, 4), vandq_u8(vtstq_u8(h1, bhi), b4)));
        const int8_t *q8 = x->qs + 64 * g;
        const int32x4_t plo = ARM_DOT4(ARM_DOT4(vdupq_n_s32(0), l0, vld1q_s8(q8)), l1, vld1q_s8(q8 + 16));
        const int32x4_t phi = ARM_DOT4(ARM_DOT4(vdupq_n_s32(0), u0, vld1q_s8(q8 + 32)), u1, vld1q_s8(q8 + 48));
        s = vmlaq_n_s32(s, plo, sm[2 * g]);
        s = vmlaq_n_s32(s, phi, sm[2 * g + 1]);
    }
    return s;
}

static inline int32x4_t row_q4_K(const block_q4_K *w, const block_q8_K *x, int32x4_t *m) {
    return row_k4(w->scales, w->qs, NULL, x, m);
}

static inline int32x4_t row_q5_K(const block_q5_K *w, const block_q8_K *x, int32x4_t *m) {
    return row_k4(w->scales, w->qs, w->qh, x, m);
}

/* Q6_K row: sum sc * (q - 32) . x, which is S + M of its panel (q + 32 with m = -32 sc). */
static inline int32x4_t row_q6_K(const block_q6_K *w, const block_q8_K *x) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(0x03);
    const int8x16_t off = vdupq_n_s8(32);
    int32x4_t s = vdupq_n_s32(0);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = w->ql + 64 * h, *qh = w->qh + 32 * h;
        const int8_t *sc = w->scales + 8 * h, *q8 = x->qs + 128 * h;
        for (int half = 0; half < 2; half++) { /* l in [16*half, 16*half + 16) */
            const uint8x16_t lA = vld1q_u8(ql + 16 * half), lB = vld1q_u8(ql + 32 + 16 * half);
            const uint8x16_t hb = vld1q_u8(qh + 16 * half);
            uint8x16_t q[4];
            q[0] = vorrq_u8(vandq_u8(lA, m4), vshlq_n_u8(vandq_u8(hb, m3), 4));
            q[1] = vorrq_u8(vandq_u8(lB, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m3), 4));
            q[2] = vorrq_u8(vshrq_n_u8(lA, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m3), 4));
            q[3] = vorrq_u8(vshrq_n_u8(lB, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4));
            for (int k = 0; k < 4; k++) { /* elements 32k + 16*half + [0, 16): scale 2k + half */
                const int8x16_t qs = vsubq_s8(vreinterpretq_s8_u8(q[k]), off);
                const int32x4_t p = ARM_DOT4(vdupq_n_s32(0), qs, vld1q_s8(q8 + 32 * k + 16 * half));
                s = vmlaq_n_s32(s, p, sc[2 * k + half]);
            }
        }
    }
    return s;
}

/* Q4_K / Q5_K: the 4 rows' S and M totals, then the float-bias step. */
#define GEMV_K4(name, block_t, row_fn)                                                                    \
    void name(const void *const rows[RM], int64_t b0, int64_t nb, const void *xv, float out[RM]) {        \
        const block_q8_K *x = (const block_q8_K *)xv;                                                     \
        const block_t *w[RM];                                                                             \
        for (int r = 0; r < RM; r++) w[r] = (const block_t *)rows[r] + b0;                                \
        float32x4_t acc = vdupq_n_f32(0.f);                                                               \
        for (int64_t b = 0; b < nb; b++) {                                                                \
            int32x4_t s[RM], m[RM];                                                                       \
            for (int r = 0; r < RM; r++) s[r] = row_fn(&w[r][b], &x[b], &m[r]);                           \
            const float da[RM] = {arm_f16(w[0][b].d), arm_f16(w[1][b].d), arm_f16(w[2][b].d),             \
                                  arm_f16(w[3][b].d)};                                                    \
            const float db[RM] = {-arm_f16(w[0][b].dmin), -arm_f16(w[1][b].dmin), -arm_f16(w[2][b].dmin), \
                                  -arm_f16(w[3][b].dmin)};                                                \
            acc = step_k_fbias(acc, sum_rows4(s[0], s[1], s[2], s[3]), sum_rows4(m[0], m[1], m[2], m[3]), \
                               vld1q_f32(da), vld1q_f32(db), x[b].d);                                     \
        }                                                                                                 \
        vst1q_f32(out, acc);                                                                              \
    }

GEMV_K4(ARM_NAME(el_gemv_q4_K), block_q4_K, row_q4_K)
GEMV_K4(ARM_NAME(el_gemv_q5_K), block_q5_K, row_q5_K)

void ARM_NAME(el_gemv_q6_K)(const void *const rows[RM], int64_t b0, int64_t nb, const void *xv, float out[RM]) {
    const block_q8_K *x = (const block_q8_K *)xv;
    const block_q6_K *w[RM];
    for (int r = 0; r < RM; r++) w[r] = (const block_q6_K *)rows[r] + b0;
    float32x4_t acc = vdupq_n_f32(0.f);
    for (int64_t b = 0; b < nb; b++) {
        int32x4_t s[RM];
        for (int r = 0; r < RM; r++) s[r] = row_q6_K(&w[r][b], &x[b]);
        const float da[RM] = {arm_f16(w[0][b].d), arm_f16(w[1][b].d), arm_f16(w[2][b].d), arm_f16(w[3][b].d)};
        acc = step_k_ibias(acc, sum_rows4(s[0], s[1], s[2], s[3]), vdupq_n_s32(0), vld1q_f32(da), x[b].d);
    }
    vst1q_f32(out, acc);
}
