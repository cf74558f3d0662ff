/* The quantized dot products of arm64, written once over ARM_DOT4 (acc + 16 int8 products
 * into 4 int32 lanes) and ARM_NAME (the kernel name's suffix): dot_dotprod.c includes it
 * with SDOT (vdotq_s32), dot_neon.c with the base-NEON equivalent (dot16_neon). Only the
 * total of the lanes is ever used, so the two give the same exact integer sums and the
 * same results. Signed weights go straight in; Q6_K's offset of 32 is removed from the
 * quants first so they are signed too. The kernels for Q4_1, Q5_1, Q2_K, Q3_K, Q5_K and
 * Q8_K keep the reference's float steps per block, so they agree with it bit for bit when
 * neither is compiled with contraction into fma.
 * No include guard: meant to be included once per kernel variant. */
#if !defined(ARM_DOT4) || !defined(ARM_NAME)
#error "define ARM_DOT4 and ARM_NAME before including dot_quant_impl.h"
#endif

#include <arm_neon.h>

#include "kernels/arm/arm_quants.h"
#include "kernels/arm/kernels_arm.h"
#include "quant/blocks.h"
#include "quant/unpack.h"

/* Two blocks per iteration into two accumulators. */
#define DOT_Q8_0_LOOP(XTYPE, QUANTS)                                                            \
    const XTYPE *x = w;                                                                         \
    const block_q8_0 *y = a;                                                                    \
    const int64_t nb = n / QK8_0;                                                               \
    float32x4_t acc0 = vdupq_n_f32(0.f), acc1 = vdupq_n_f32(0.f);                               \
    int64_t i = 0;                                                                              \
    for (; i + 2 <= nb; i += 2) {                                                               \
        int8x16_t a0, b0, a1, b1;                                                               \
        QUANTS(&x[i], &a0, &b0);                                                                \
        QUANTS(&x[i + 1], &a1, &b1);                                                            \
        int32x4_t p0 = ARM_DOT4(vdupq_n_s32(0), a0, vld1q_s8(y[i].qs));                         \
        p0 = ARM_DOT4(p0, b0, vld1q_s8(y[i].qs + 16));                                          \
        int32x4_t p1 = ARM_DOT4(vdupq_n_s32(0), a1, vld1q_s8(y[i + 1].qs));                     \
        p1 = ARM_DOT4(p1, b1, vld1q_s8(y[i + 1].qs + 16));                                      \
        acc0 = vmlaq_n_f32(acc0, vcvtq_f32_s32(p0), arm_f16(x[i].d) * arm_f16(y[i].d));         \
        acc1 = vmlaq_n_f32(acc1, vcvtq_f32_s32(p1), arm_f16(x[i + 1].d) * arm_f16(y[i + 1].d)); \
    }                                                                                           \
    if (i < nb) {                                                                               \
        int8x16_t a0, b0;                                                                       \
        QUANTS(&x[i], &a0, &b0);                                                                \
        int32x4_t p0 = ARM_DOT4(vdupq_n_s32(0), a0, vld1q_s8(y[i].qs));                         \
        p0 = ARM_DOT4(p0, b0, vld1q_s8(y[i].qs + 16));                                          \
        acc0 = vmlaq_n_f32(acc0, vcvtq_f32_s32(p0), arm_f16(x[i].d) * arm_f16(y[i].d));         \
    }                                                                                           \
    return vaddvq_f32(vaddq_f32(acc0, acc1));

float ARM_NAME(el_vec_dot_q4_0_q8_0)(int64_t n, const void *w, const void *a) { DOT_Q8_0_LOOP(block_q4_0, q4_0_quants) }
float ARM_NAME(el_vec_dot_q5_0_q8_0)(int64_t n, const void *w, const void *a) { DOT_Q8_0_LOOP(block_q5_0, q5_0_quants) }
float ARM_NAME(el_vec_dot_q8_0_q8_0)(int64_t n, const void *w, const void *a) { DOT_Q8_0_LOOP(block_q8_0, q8_0_quants) }

/* Q4_K: x = d*sc*q - dmin*m per 32; the min term through the activation sums. */
float ARM_NAME(el_vec_dot_q4_K_q8_K)(int64_t n, const void *w, const void *a) {
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
            int32x4_t plo = ARM_DOT4(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(v0, m4)), vld1q_s8(q8 + 64 * g));
            plo = ARM_DOT4(plo, vreinterpretq_s8_u8(vandq_u8(v1, m4)), vld1q_s8(q8 + 64 * g + 16));
            int32x4_t phi =
                ARM_DOT4(vdupq_n_s32(0), vreinterpretq_s8_u8(vshrq_n_u8(v0, 4)), vld1q_s8(q8 + 64 * g + 32));
            phi = ARM_DOT4(phi, vreinterpretq_s8_u8(vshrq_n_u8(v1, 4)), vld1q_s8(q8 + 64 * g + 48));
            isum = vmlaq_n_s32(isum, plo, sm[2 * g]);
            isum = vmlaq_n_s32(isum, phi, sm[2 * g + 1]);
        }
        sum += y[i].d * arm_f16(x[i].d) * (float)vaddvq_s32(isum) - y[i].d * arm_f16(x[i].dmin) * (float)vaddvq_s32(pm);
    }
    return sum;
}

/* Q6_K: x = d*sc*(q - 32) per 16, q in [0, 63]. */
float ARM_NAME(el_vec_dot_q6_K_q8_K)(int64_t n, const void *w, const void *a) {
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
                    const int32x4_t p = ARM_DOT4(vdupq_n_s32(0), qs, vld1q_s8(q8 + 32 * k + 16 * half));
                    isum = vmlaq_n_s32(isum, p, sc[2 * k + half]);
                }
            }
        }
        sum += y[i].d * arm_f16(x[i].d) * (float)vaddvq_s32(isum);
    }
    return sum;
}

/* 32 quants (two signed vectors) against a block's 32 activations: the exact sum. */
static inline int32_t dot32(int8x16_t lo, int8x16_t hi, const int8_t *y) {
    return vaddvq_s32(ARM_DOT4(ARM_DOT4(vdupq_n_s32(0), lo, vld1q_s8(y)), hi, vld1q_s8(y + 16)));
}

/* Q4_1 / Q5_1 x Q8_1: x = d*q + m, so sum = d*dy*sum(q*qy) + m*s (s = dy*sum(qy)). */
float ARM_NAME(el_vec_dot_q4_1_q8_1)(int64_t n, const void *w, const void *a) {
    const block_q4_1 *x = w;
    const block_q8_1 *y = a;
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int8x16_t lo, hi;
        q4_1_quants(&x[i], &lo, &hi);
        const int32_t sumi = dot32(lo, hi, y[i].qs);
        sum += (arm_f16(x[i].d) * arm_f16(y[i].d)) * (float)sumi + arm_f16(x[i].m) * arm_f16(y[i].s);
    }
    return sum;
}

float ARM_NAME(el_vec_dot_q5_1_q8_1)(int64_t n, const void *w, const void *a) {
    const block_q5_1 *x = w;
    const block_q8_1 *y = a;
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int8x16_t lo, hi;
        q5_1_quants(&x[i], &lo, &hi);
        const int32_t sumi = dot32(lo, hi, y[i].qs);
        sum += (arm_f16(x[i].d) * arm_f16(y[i].d)) * (float)sumi + arm_f16(x[i].m) * arm_f16(y[i].s);
    }
    return sum;
}

/* sum over 16 groups of sc[k] * bsums[k] (int16 x int16, exact in int32). */
static inline int32_t bsum_dot16(int16x8_t sc0, int16x8_t sc1, const int16_t bsums[16]) {
    const int16x8_t b0 = vld1q_s16(bsums), b1 = vld1q_s16(bsums + 8);
    int32x4_t s = vmull_s16(vget_low_s16(sc0), vget_low_s16(b0));
    s = vmlal_high_s16(s, sc0, b0);
    s = vmlal_s16(s, vget_low_s16(sc1), vget_low_s16(b1));
    return vaddvq_s32(vmlal_high_s16(s, sc1, b1));
}

/* Q2_K: element 128h + 32s + l is bits 2s..2s+1 of qs[32h + l]; scale (low nibble) and
 * min (high nibble) per 16: sum = d*dy*sum(sc*q*qy) - dmin*dy*sum(m*bsum). */
float ARM_NAME(el_vec_dot_q2_K_q8_K)(int64_t n, const void *w, const void *a) {
    const block_q2_K *x = w;
    const block_q8_K *y = a;
    const uint8x16_t m3 = vdupq_n_u8(3);
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8x16_t sc = vld1q_u8(x[i].scales);
        const uint8x16_t mins = vshrq_n_u8(sc, 4);
        const int32_t summs = bsum_dot16(vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mins))),
                                         vreinterpretq_s16_u16(vmovl_high_u8(mins)), y[i].bsums);
        int32x4_t isum = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8x16_t q0 = vld1q_u8(x[i].qs + 32 * h), q1 = vld1q_u8(x[i].qs + 32 * h + 16);
            const int8_t *q8 = y[i].qs + 128 * h;
            for (int s = 0; s < 4; s++) {
                const int8x16_t shift = vdupq_n_s8((int8_t)(-2 * s));
                const int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q0, shift), m3));
                const int8x16_t hi = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q1, shift), m3));
                const int k = 8 * h + 2 * s; /* groups of 16: k (lo) and k + 1 (hi) */
                isum = vmlaq_n_s32(isum, ARM_DOT4(vdupq_n_s32(0), lo, vld1q_s8(q8 + 32 * s)), x[i].scales[k] & 0x0F);
                isum = vmlaq_n_s32(isum, ARM_DOT4(vdupq_n_s32(0), hi, vld1q_s8(q8 + 32 * s + 16)),
                                   x[i].scales[k + 1] & 0x0F);
            }
        }
        const float dall = y[i].d * arm_f16(x[i].d), dmin = y[i].d * arm_f16(x[i].dmin);
        sum += dall * (float)vaddvq_s32(isum) - dmin * (float)summs;
    }
    return sum;
}

/* Q3_K: 2 low bits as Q2_K, minus 4 where the hmask bit (4h + s of hmask[l]) is clear;
 * signed 6-bit scales per 16. */
float ARM_NAME(el_vec_dot_q3_K_q8_K)(int64_t n, const void *w, const void *a) {
    const block_q3_K *x = w;
    const block_q8_K *y = a;
    const uint8x16_t m3 = vdupq_n_u8(3), four = vdupq_n_u8(4);
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t sc[16];
        k3_scales(x[i].scales, sc);
        const uint8x16_t hm0 = vld1q_u8(x[i].hmask), hm1 = vld1q_u8(x[i].hmask + 16);
        int32x4_t isum = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8x16_t q0 = vld1q_u8(x[i].qs + 32 * h), q1 = vld1q_u8(x[i].qs + 32 * h + 16);
            const int8_t *q8 = y[i].qs + 128 * h;
            for (int s = 0; s < 4; s++) {
                const int8x16_t shift = vdupq_n_s8((int8_t)(-2 * s));
                const uint8x16_t bit = vdupq_n_u8((uint8_t)(1u << (4 * h + s)));
                const uint8x16_t lo = vandq_u8(vshlq_u8(q0, shift), m3), hi = vandq_u8(vshlq_u8(q1, shift), m3);
                const int8x16_t qlo = vreinterpretq_s8_u8(vsubq_u8(lo, vbicq_u8(four, vtstq_u8(hm0, bit))));
                const int8x16_t qhi = vreinterpretq_s8_u8(vsubq_u8(hi, vbicq_u8(four, vtstq_u8(hm1, bit))));
                const int k = 8 * h + 2 * s;
                isum = vmlaq_n_s32(isum, ARM_DOT4(vdupq_n_s32(0), qlo, vld1q_s8(q8 + 32 * s)), sc[k]);
                isum = vmlaq_n_s32(isum, ARM_DOT4(vdupq_n_s32(0), qhi, vld1q_s8(q8 + 32 * s + 16)), sc[k + 1]);
            }
        }
        sum += y[i].d * arm_f16(x[i].d) * (float)vaddvq_s32(isum);
    }
    return sum;
}

/* Q5_K: as Q4_K, with bit 4 of element 64g + l from bit 2g of qh[l] (2g + 1 for 64g + 32 + l). */
float ARM_NAME(el_vec_dot_q5_K_q8_K)(int64_t n, const void *w, const void *a) {
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), b4 = vdupq_n_u8(0x10);
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t sm[16];
        k4_scales_mins(x[i].scales, sm);
        const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(sm + 8)));
        const int16x8_t b32 = vpaddq_s16(vld1q_s16(y[i].bsums), vld1q_s16(y[i].bsums + 8)); /* per 32 */
        const int32_t summs = vaddvq_s32(vmlal_high_s16(vmull_s16(vget_low_s16(mins), vget_low_s16(b32)), mins, b32));
        const uint8x16_t qh0 = vld1q_u8(x[i].qh), qh1 = vld1q_u8(x[i].qh + 16);
        int32x4_t isum = vdupq_n_s32(0);
        const int8_t *q8 = y[i].qs;
        for (int g = 0; g < 4; g++) {
            const uint8x16_t v0 = vld1q_u8(x[i].qs + 32 * g), v1 = vld1q_u8(x[i].qs + 32 * g + 16);
            const uint8x16_t blo = vdupq_n_u8((uint8_t)(1u << (2 * g))), bhi = vdupq_n_u8((uint8_t)(2u << (2 * g)));
            const int8x16_t l0 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v0, m4), vandq_u8(vtstq_u8(qh0, blo), b4)));
            const int8x16_t l1 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v1, m4), vandq_u8(vtstq_u8(qh1, blo), b4)));
            const int8x16_t h0 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v0, 4), vandq_u8(vtstq_u8(qh0, bhi), b4)));
            const int8x16_t h1 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v1, 4), vandq_u8(vtstq_u8(qh1, bhi), b4)));
            const int32x4_t plo = ARM_DOT4(ARM_DOT4(vdupq_n_s32(0), l0, vld1q_s8(q8 + 64 * g)), l1,
                                            vld1q_s8(q8 + 64 * g + 16));
            const int32x4_t phi = ARM_DOT4(ARM_DOT4(vdupq_n_s32(0), h0, vld1q_s8(q8 + 64 * g + 32)), h1,
                                            vld1q_s8(q8 + 64 * g + 48));
            isum = vmlaq_n_s32(isum, plo, sm[2 * g]);
            isum = vmlaq_n_s32(isum, phi, sm[2 * g + 1]);
        }
        const float d = arm_f16(x[i].d), dmin = arm_f16(x[i].dmin);
        sum += y[i].d * d * (float)vaddvq_s32(isum) - y[i].d * dmin * (float)summs;
    }
    return sum;
}

float ARM_NAME(el_vec_dot_q8_K_q8_K)(int64_t n, const void *w, const void *a) {
    const block_q8_K *x = w, *y = a;
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32x4_t p0 = vdupq_n_s32(0), p1 = vdupq_n_s32(0);
        for (int j = 0; j < QK_K; j += 32) {
            p0 = ARM_DOT4(p0, vld1q_s8(x[i].qs + j), vld1q_s8(y[i].qs + j));
            p1 = ARM_DOT4(p1, vld1q_s8(x[i].qs + j + 16), vld1q_s8(y[i].qs + j + 16));
        }
        sum += x[i].d * y[i].d * (float)vaddvq_s32(vaddq_s32(p0, p1));
    }
    return sum;
}
