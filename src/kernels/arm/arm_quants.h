/* Decoding weight blocks into int8 vectors, and the float steps of the blocked matmul,
 * shared by the arm64 dot, gemm and gemv kernels. Base Advanced SIMD only (every
 * arm64 core), so any kernel file may include it. */
#ifndef EL_KERNELS_ARM_QUANTS_H
#define EL_KERNELS_ARM_QUANTS_H

#include <arm_neon.h>
#include <string.h>

#include "quant/blocks.h"

static inline float arm_f16(uint16_t h) {
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

/* Q4_1 / Q5_1: unsigned quants 0..15 / 0..31 (they fit int8 as they are). */
static inline void q4_1_quants(const block_q4_1 *b, int8x16_t *lo, int8x16_t *hi) {
    const uint8x16_t v = vld1q_u8(b->qs);
    *lo = vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F)));
    *hi = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
}

static inline void q5_1_quants(const block_q5_1 *b, int8x16_t *lo, int8x16_t *hi) {
    const uint8x16_t v = vld1q_u8(b->qs), b4 = vdupq_n_u8(0x10);
    const uint8x16_t h0 = vandq_u8(b4, bits_16(b->qh[0], b->qh[1]));
    const uint8x16_t h1 = vandq_u8(b4, bits_16(b->qh[2], b->qh[3]));
    *lo = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, vdupq_n_u8(0x0F)), h0));
    *hi = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v, 4), h1));
}

/* acc + 16 int8 products in 4 int32 lanes without the dot-product extension (ARMv8.0:
 * Cortex-A53/A72): SMULL pairs (|a*b| <= 16384 fits int16) added pairwise into the lanes.
 * Lane i holds other products than SDOT's lane i; the total is the same. */
static inline int32x4_t dot16_neon(int32x4_t acc, int8x16_t a, int8x16_t b) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
}

/* Rows 0..3 totals from 4 vectors of lane sums (one per row): [S0 S1 S2 S3]. */
static inline int32x4_t sum_rows4(int32x4_t p0, int32x4_t p1, int32x4_t p2, int32x4_t p3) {
    return vpaddq_s32(vpaddq_s32(p0, p1), vpaddq_s32(p2, p3));
}

/* The float steps of the blocked matmul, per token and block, 4 rows at a time, in the
 * order of the portable kernels (kernels/gemm_pack.c), unfused: every arm64 kernel
 * (dotprod or i8mm, several tokens or one) goes through these same steps on the same
 * exact integer totals, so their results agree bit for bit.
 *   q8/q4 families: acc += (dw * dx) * S */
static inline float32x4_t step_q32(float32x4_t acc, int32x4_t s, float32x4_t dw, float dx) {
    return vaddq_f32(acc, vmulq_f32(vmulq_f32(dw, vdupq_n_f32(dx)), vcvtq_f32_s32(s)));
}

/* K family, integer bias: acc += (dx * da) * (S + M). */
static inline float32x4_t step_k_ibias(float32x4_t acc, int32x4_t s, int32x4_t m, float32x4_t da, float dx) {
    return vaddq_f32(acc, vmulq_f32(vmulq_f32(vdupq_n_f32(dx), da), vcvtq_f32_s32(vaddq_s32(s, m))));
}

/* K family, float bias: acc += dx * (da * S + db * M). */
static inline float32x4_t step_k_fbias(float32x4_t acc, int32x4_t s, int32x4_t m, float32x4_t da,
                                       float32x4_t db, float dx) {
    const float32x4_t t = vaddq_f32(vmulq_f32(da, vcvtq_f32_s32(s)), vmulq_f32(db, vcvtq_f32_s32(m)));
    return vaddq_f32(acc, vmulq_f32(vdupq_n_f32(dx), t));
}

/* Bias total of one K-panel row against one token: sum over 16 of m[k] * bsums[k]. */
static inline int32x4_t bias_lanes(const int16_t m[16], const int16_t bsums[16]) {
    const int16x8_t m0 = vld1q_s16(m), m1 = vld1q_s16(m + 8);
    const int16x8_t b0 = vld1q_s16(bsums), b1 = vld1q_s16(bsums + 8);
    int32x4_t s = vmull_s16(vget_low_s16(m0), vget_low_s16(b0));
    s = vmlal_high_s16(s, m0, b0);
    s = vmlal_s16(s, vget_low_s16(m1), vget_low_s16(b1));
    return vmlal_high_s16(s, m1, b1);
}

#endif
