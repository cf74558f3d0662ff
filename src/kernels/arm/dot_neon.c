/* arm64 baseline (Advanced SIMD) dot products: F32, F16, BF16, and the quantized formats
 * for cores without the dot-product extension (dot_quant_impl.h over dot16_neon). */
#include <arm_neon.h>

#define ARM_DOT4 dot16_neon
#define ARM_NAME(f) f##_neon
#include "kernels/arm/dot_quant_impl.h"

#include "kernels/arm/kernels_arm.h"

float el_vec_dot_f32_neon(int64_t n, const void *w, const void *a) {
    const float *x = w, *y = a;
    float32x4_t acc0 = vdupq_n_f32(0.f), acc1 = vdupq_n_f32(0.f), acc2 = vdupq_n_f32(0.f), acc3 = vdupq_n_f32(0.f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = vfmaq_f32(acc0, vld1q_f32(x + i), vld1q_f32(y + i));
        acc1 = vfmaq_f32(acc1, vld1q_f32(x + i + 4), vld1q_f32(y + i + 4));
        acc2 = vfmaq_f32(acc2, vld1q_f32(x + i + 8), vld1q_f32(y + i + 8));
        acc3 = vfmaq_f32(acc3, vld1q_f32(x + i + 12), vld1q_f32(y + i + 12));
    }
    for (; i + 4 <= n; i += 4) acc0 = vfmaq_f32(acc0, vld1q_f32(x + i), vld1q_f32(y + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    for (; i < n; i++) sum += x[i] * y[i];
    return sum;
}

/* F16 / BF16 weights against F32 activations: 8 weights widened to two float vectors
 * per step (FCVTL is base arm64; bf16 is the top half of an f32). */
static inline float32x4_t widen_f16(uint16x4_t h) { return vcvt_f32_f16(vreinterpret_f16_u16(h)); }
static inline float32x4_t widen_bf16(uint16x4_t h) { return vreinterpretq_f32_u32(vshll_n_u16(h, 16)); }

#define DOT_HALF(WIDEN, SCALAR)                                                                  \
    const uint16_t *x = w;                                                                       \
    const float *y = a;                                                                          \
    float32x4_t acc0 = vdupq_n_f32(0.f), acc1 = vdupq_n_f32(0.f);                                \
    float32x4_t acc2 = vdupq_n_f32(0.f), acc3 = vdupq_n_f32(0.f);                                \
    int64_t i = 0;                                                                               \
    for (; i + 16 <= n; i += 16) {                                                               \
        const uint16x8_t h0 = vld1q_u16(x + i), h1 = vld1q_u16(x + i + 8);                       \
        acc0 = vfmaq_f32(acc0, WIDEN(vget_low_u16(h0)), vld1q_f32(y + i));                       \
        acc1 = vfmaq_f32(acc1, WIDEN(vget_high_u16(h0)), vld1q_f32(y + i + 4));                  \
        acc2 = vfmaq_f32(acc2, WIDEN(vget_low_u16(h1)), vld1q_f32(y + i + 8));                   \
        acc3 = vfmaq_f32(acc3, WIDEN(vget_high_u16(h1)), vld1q_f32(y + i + 12));                 \
    }                                                                                            \
    for (; i + 4 <= n; i += 4) acc0 = vfmaq_f32(acc0, WIDEN(vld1_u16(x + i)), vld1q_f32(y + i)); \
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));             \
    for (; i < n; i++) sum += SCALAR(x[i]) * y[i];                                               \
    return sum;

static inline float f16_scalar(uint16_t h) { return vgetq_lane_f32(widen_f16(vdup_n_u16(h)), 0); }
static inline float bf16_scalar(uint16_t h) { return vgetq_lane_f32(widen_bf16(vdup_n_u16(h)), 0); }

float el_vec_dot_f16_neon(int64_t n, const void *w, const void *a) { DOT_HALF(widen_f16, f16_scalar) }
float el_vec_dot_bf16_neon(int64_t n, const void *w, const void *a) { DOT_HALF(widen_bf16, bf16_scalar) }
