/* arm64 dot products with the dot-product extension (SDOT: four int8 products summed
 * into each int32 lane). Signed weights go straight into vdotq_s32; Q6_K's offset of 32
 * is removed from the quants first so they are signed too. */
#include <arm_neon.h>
#include <string.h>

#include "kernels/arm/kernels_arm.h"
#include "quant/blocks.h"
#include "quant/unpack.h"

static inline float f16(uint16_t h) {
    __fp16 v;
    memcpy(&v, &h, sizeof v);
    return (float)v;
}

/* Q4_0 quants as two signed vectors: elements 0..15 (low nibbles), 16..31 (high). */
static inline void q4_0_quants(const block_q4_0 *b, int8x16_t *lo, int8x16_t *hi) {
    const uint8x16_t v = vld1q_u8(b->qs);
    *lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), vdupq_n_s8(8));
    *hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), vdupq_n_s8(8));
}

/* 16 bits (two bytes) -> 16 bytes, 0xFF where bit j is set. */
static inline uint8x16_t bits_16(uint8_t b0, uint8_t b1) {
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    return vtstq_u8(vcombine_u8(vdup_n_u8(b0), vdup_n_u8(b1)), vld1q_u8(bit));
}

/* Q5_0: nibble | (bit ? 0 : 0xF0) is nibble + 16*bit - 16 as a signed byte. */
static inline void q5_0_quants(const block_q5_0 *b, int8x16_t *lo, int8x16_t *hi) {
    const uint8x16_t v = vld1q_u8(b->qs), f0 = vdupq_n_u8(0xF0);
    const uint8x16_t h0 = vbicq_u8(f0, bits_16(b->qh[0], b->qh[1]));
    const uint8x16_t h1 = vbicq_u8(f0, bits_16(b->qh[2], b->qh[3]));
    *lo = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, vdupq_n_u8(0x0F)), h0));
    *hi = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v, 4), h1));
}

static inline void q8_0_quants(const block_q8_0 *b, int8x16_t *lo, int8x16_t *hi) {
    *lo = vld1q_s8(b->qs);
    *hi = vld1q_s8(b->qs + 16);
}

/* Two blocks per iteration into two accumulators. */
#define DOT_Q8_0_LOOP(XTYPE, QUANTS)                                                                   \
    const XTYPE *x = w;                                                                                \
    const block_q8_0 *y = a;                                                                           \
    const int64_t nb = n / QK8_0;                                                                      \
    float32x4_t acc0 = vdupq_n_f32(0.f), acc1 = vdupq_n_f32(0.f);                                      \
    int64_t i = 0;                                                                                     \
    for (; i + 2 <= nb; i += 2) {                                                                      \
        int8x16_t a0, b0, a1, b1;                                                                      \
        QUANTS(&x[i], &a0, &b0);                                                                       \
        QUANTS(&x[i + 1], &a1, &b1);                                                                   \
        int32x4_t p0 = vdotq_s32(vdupq_n_s32(0), a0, vld1q_s8(y[i].qs));                              \
        p0 = vdotq_s32(p0, b0, vld1q_s8(y[i].qs + 16));                                                \
        int32x4_t p1 = vdotq_s32(vdupq_n_s32(0), a1, vld1q_s8(y[i + 1].qs));                          \
        p1 = vdotq_s32(p1, b1, vld1q_s8(y[i + 1].qs + 16));                                            \
        acc0 = vmlaq_n_f32(acc0, vcvtq_f32_s32(p0), f16(x[i].d) * f16(y[i].d));                        \
        acc1 = vmlaq_n_f32(acc1, vcvtq_f32_s32(p1), f16(x[i + 1].d) * f16(y[i + 1].d));                \
    }                                                                                                  \
    if (i < nb) {                                                                                      \
        int8x16_t a0, b0;                                                                              \
        QUANTS(&x[i], &a0, &b0);                                                                       \
        int32x4_t p0 = vdotq_s32(vdupq_n_s32(0), a0, vld1q_s8(y[i].qs));                              \
        p0 = vdotq_s32(p0, b0, vld1q_s8(y[i].qs + 16));                                                \
        acc0 = vmlaq_n_f32(acc0, vcvtq_f32_s32(p0), f16(x[i].d) * f16(y[i].d));                        \
    }                                                                                                  \
    return vaddvq_f32(vaddq_f32(acc0, acc1));

float el_vec_dot_q4_0_q8_0_dotprod(int64_t n, const void *w, const void *a) { DOT_Q8_0_LOOP(block_q4_0, q4_0_quants) }
float el_vec_dot_q5_0_q8_0_dotprod(int64_t n, const void *w, const void *a) { DOT_Q8_0_LOOP(block_q5_0, q5_0_quants) }
float el_vec_dot_q8_0_q8_0_dotprod(int64_t n, const void *w, const void *a) { DOT_Q8_0_LOOP(block_q8_0, q8_0_quants) }

/* Q4_K: x = d*sc*q - dmin*m per 32; the min term through the activation sums. */
float el_vec_dot_q4_K_q8_K_dotprod(int64_t n, const void *w, const void *a) {
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float sum = 0.f;
    for (int64_t i = 0; i < nb; i++) {
        uint8_t sm[16];
        k4_scales_mins(x[i].scales, sm);
        const int16x8_t b32 = vpaddq_s16(vld1q_s16(y[i].bsums), vld1q_s16(y[i].bsums + 8)); /* per 32 */
        const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(sm + 8)));
        const int32x4_t pm = vaddq_s32(vmull_s16(vget_low_s16(mins), vget_low_s16(b32)),
                                       vmull_s16(vget_high_s16(mins), vget_high_s16(b32)));
        int32x4_t isum = vdupq_n_s32(0);
        const int8_t *q8 = y[i].qs;
        for (int g = 0; g < 4; g++) {
            const uint8x16_t v0 = vld1q_u8(x[i].qs + 32 * g), v1 = vld1q_u8(x[i].qs + 32 * g + 16);
            int32x4_t plo = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(v0, m4)), vld1q_s8(q8 + 64 * g));
            plo = vdotq_s32(plo, vreinterpretq_s8_u8(vandq_u8(v1, m4)), vld1q_s8(q8 + 64 * g + 16));
            int32x4_t phi = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(vshrq_n_u8(v0, 4)), vld1q_s8(q8 + 64 * g + 32));
            phi = vdotq_s32(phi, vreinterpretq_s8_u8(vshrq_n_u8(v1, 4)), vld1q_s8(q8 + 64 * g + 48));
            isum = vmlaq_n_s32(isum, plo, sm[2 * g]);
            isum = vmlaq_n_s32(isum, phi, sm[2 * g + 1]);
        }
        sum += y[i].d * f16(x[i].d) * (float)vaddvq_s32(isum) - y[i].d * f16(x[i].dmin) * (float)vaddvq_s32(pm);
    }
    return sum;
}

/* Q6_K: x = d*sc*(q - 32) per 16, q in [0, 63]. */
float el_vec_dot_q6_K_q8_K_dotprod(int64_t n, const void *w, const void *a) {
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(0x03);
    const int8x16_t off = vdupq_n_s8(32);
    float sum = 0.f;
    for (int64_t i = 0; i < nb; i++) {
        int32x4_t isum = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            const int8_t *sc = x[i].scales + 8 * h, *q8 = y[i].qs + 128 * h;
            for (int half = 0; half < 2; half++) { /* l in [16*half, 16*half + 16) */
                const uint8x16_t lA = vld1q_u8(ql + 16 * half), lB = vld1q_u8(ql + 32 + 16 * half);
                const uint8x16_t hb = vld1q_u8(qh + 16 * half);
                uint8x16_t q[4];
                q[0] = vorrq_u8(vandq_u8(lA, m4), vshlq_n_u8(vandq_u8(hb, m3), 4));
                q[1] = vorrq_u8(vandq_u8(lB, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m3), 4));
                q[2] = vorrq_u8(vshrq_n_u8(lA, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m3), 4));
                q[3] = vorrq_u8(vshrq_n_u8(lB, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4));
                for (int k = 0; k < 4; k++) { /* elements 32*k + 16*half + [0, 16): scale 2k + half */
                    const int8x16_t qs = vsubq_s8(vreinterpretq_s8_u8(q[k]), off);
                    const int32x4_t p = vdotq_s32(vdupq_n_s32(0), qs, vld1q_s8(q8 + 32 * k + 16 * half));
                    isum = vmlaq_n_s32(isum, p, sc[2 * k + half]);
                }
            }
        }
        sum += y[i].d * f16(x[i].d) * (float)vaddvq_s32(isum);
    }
    return sum;
}
