/* AVX2 quantization of F32 activations into Q8_0, Q8_1 and Q8_K. Each produces exactly
 * the bytes of the type table's scalar quantizer (quant/quantize.c: el_quantize_act_q8_0,
 * el_quantize_act_q8_1, el_quantize_row_q8_K): the same scale arithmetic, and the same
 * rounding (half to even, via cvtps in the default rounding mode or the 1.5*2^23
 * addition of nearest_int). */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/x86/kernels_x86.h"
#include "quant/blocks.h"
#include "quant/quant.h"

static inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

static inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* Four vectors of 8 int32 in [-128, 127] -> 32 int8 in element order. */
static inline __m256i pack_i8(__m256i i0, __m256i i1, __m256i i2, __m256i i3) {
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* x * id rounded half to even (the current, default rounding mode's nearest). */
static inline __m256i rint_epi32(__m256 v) { return _mm256_cvtps_epi32(v); }

/* One 32-element block, llama.cpp's run-time rule (el_quantize_act_q8_0): quants into
 * qs, returns d (float, before rounding to half) and the sum. */
static inline float q8_block(const float *x, int8_t *qs, int *sum) {
    const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    const __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    const __m256 m = _mm256_max_ps(_mm256_max_ps(abs_ps(v0), abs_ps(v1)), _mm256_max_ps(abs_ps(v2), abs_ps(v3)));
    const float amax = hmax_ps(m);
    const float d = amax / 127;
    const __m256 id = _mm256_set1_ps(amax != 0.f ? 127.f / amax : 0.0f);
    const __m256i i0 = rint_epi32(_mm256_mul_ps(v0, id)), i1 = rint_epi32(_mm256_mul_ps(v1, id));
    const __m256i i2 = rint_epi32(_mm256_mul_ps(v2, id)), i3 = rint_epi32(_mm256_mul_ps(v3, id));
    _mm256_storeu_si256((__m256i *)qs, pack_i8(i0, i1, i2, i3));
    if (sum) *sum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
    return d;
}

void el_quantize_row_q8_0_avx2(const float *src, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) y[i].d = el_f32_to_f16(q8_block(src + i * QK8_0, y[i].qs, NULL));
}

void el_quantize_row_q8_1_avx2(const float *src, void *dst, int64_t n) {
    block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int sum;
        const float d = q8_block(src + i * QK8_1, y[i].qs, &sum);
        y[i].d = el_f32_to_f16(d);
        y[i].s = el_f32_to_f16((float)sum * d);
    }
}

/* nearest_int(iscale * x) for 8 values, then min(127, .). */
static inline __m256i q8k_quants(const float *x, __m256 iscale) {
    const __m256 t = _mm256_add_ps(_mm256_mul_ps(iscale, _mm256_loadu_ps(x)), _mm256_set1_ps(12582912.f));
    const __m256i i = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(t), _mm256_set1_epi32(0x007fffff)),
                                       _mm256_set1_epi32(0x00400000));
    return _mm256_min_epi32(i, _mm256_set1_epi32(127));
}

void el_quantize_row_q8_K_avx2(const float *src, void *dst, int64_t n) {
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8) m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(x + j)));
        const float amax = hmax_ps(m);
        if (amax == 0.f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* the first element of largest magnitude, with its sign (as the scalar scan picks it) */
        float max = 0.f;
        const __m256 va = _mm256_set1_ps(amax);
        for (int j = 0; j < QK_K; j += 8) {
            int mask = _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + j)), va, _CMP_EQ_OQ));
            if (mask) {
                max = x[j + __builtin_ctz((unsigned)mask)];
                break;
            }
        }
        const float iscale_s = -127.f / max;
        const __m256 iscale = _mm256_set1_ps(iscale_s);
        for (int c = 0; c < QK_K / 32; c++) {
            const float *xc = x + 32 * c;
            const __m256i i0 = q8k_quants(xc, iscale), i1 = q8k_quants(xc + 8, iscale);
            const __m256i i2 = q8k_quants(xc + 16, iscale), i3 = q8k_quants(xc + 24, iscale);
            _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * c), pack_i8(i0, i1, i2, i3));
            y[i].bsums[2 * c] = (int16_t)hsum_epi32(_mm256_add_epi32(i0, i1));
            y[i].bsums[2 * c + 1] = (int16_t)hsum_epi32(_mm256_add_epi32(i2, i3));
        }
        y[i].d = 1 / iscale_s;
    }
}
