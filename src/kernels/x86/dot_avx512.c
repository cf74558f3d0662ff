/* AVX-512 (F, BW, VL, DQ, VNNI) dot products for the formats of the default model.
 * 512-bit registers hold two 32-element blocks (or 64 elements of a super-block);
 * VNNI's dpbusd / dpwssd fuse the multiply and the widening add.
 * Not yet run on AVX-512 hardware by this project: see EL_AVX512_DEFAULT in
 * core/cpu_features.h; tests/test_quant_dot.c checks them wherever the CPU allows. */
#include <immintrin.h>
#include <string.h>

#include "kernels/x86/kernels_x86.h"
#include "quant/blocks.h"
#include "quant/unpack.h"

#define F16(h) _cvtsh_ss(h)

static inline __m256i loadu256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

static inline __m512i join256(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* [a x8 | b x8] */
static inline __m512 two_scales(float a, float b) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(a)), _mm256_set1_ps(b), 1);
}

static inline __m256i nibbles_32(const uint8_t *p) {
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}

static inline __m256i bits_32(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, sizeof x);
    return _mm256_movm_epi8((__mmask32)x); /* 0xFF where bit j is set */
}

/* signed x times signed y (y in [-127, 127]), 4 products summed per int32 lane. */
static inline __m512i dot_i8(__m512i x, __m512i y) {
    const __mmask64 neg = _mm512_movepi8_mask(x);
    const __m512i sy = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(x), sy);
}

static inline __m256i q4_0_quants(const block_q4_0 *b) { return _mm256_sub_epi8(nibbles_32(b->qs), _mm256_set1_epi8(8)); }

static inline __m256i q5_0_quants(const block_q5_0 *b) {
    const __m256i hi = _mm256_andnot_si256(bits_32(b->qh), _mm256_set1_epi8((char)0xF0));
    return _mm256_or_si256(nibbles_32(b->qs), hi);
}

static inline __m256i q8_0_quants(const block_q8_0 *b) { return loadu256(b->qs); }

/* Two blocks per 512-bit step; an odd last block goes through the low half. */
#define DOT_Q8_0_LOOP512(XTYPE, QUANTS)                                                                \
    const XTYPE *x = w;                                                                                \
    const block_q8_0 *y = a;                                                                           \
    const int64_t nb = n / QK8_0;                                                                      \
    __m512 acc = _mm512_setzero_ps();                                                                  \
    int64_t i = 0;                                                                                     \
    for (; i + 2 <= nb; i += 2) {                                                                      \
        const __m512i qx = join256(QUANTS(&x[i]), QUANTS(&x[i + 1]));                                  \
        const __m512i qy = join256(loadu256(y[i].qs), loadu256(y[i + 1].qs));                          \
        const __m512 d = two_scales(F16(x[i].d) * F16(y[i].d), F16(x[i + 1].d) * F16(y[i + 1].d));     \
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot_i8(qx, qy)), acc);                             \
    }                                                                                                  \
    if (i < nb) {                                                                                      \
        const __m512i qx = _mm512_castsi256_si512(QUANTS(&x[i]));                                      \
        const __m512i qy = _mm512_castsi256_si512(loadu256(y[i].qs));                                  \
        const __m512 d = two_scales(F16(x[i].d) * F16(y[i].d), 0.f);                                   \
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_maskz_mov_epi32(0x00FF, dot_i8(qx, qy))), acc); \
    }                                                                                                  \
    return _mm512_reduce_add_ps(acc);

float el_vec_dot_q4_0_q8_0_avx512(int64_t n, const void *w, const void *a) { DOT_Q8_0_LOOP512(block_q4_0, q4_0_quants) }
float el_vec_dot_q5_0_q8_0_avx512(int64_t n, const void *w, const void *a) { DOT_Q8_0_LOOP512(block_q5_0, q5_0_quants) }
float el_vec_dot_q8_0_q8_0_avx512(int64_t n, const void *w, const void *a) { DOT_Q8_0_LOOP512(block_q8_0, q8_0_quants) }

float el_vec_dot_f32_avx512(int64_t n, const void *w, const void *a) {
    const float *x = w, *y = a;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), acc1);
    }
    for (; i < n; i += 16) {
        const int64_t left = n - i;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), acc0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* [a x16 | b x16] as int16 */
static inline __m512i two_scales16(int a, int b) {
    return join256(_mm256_set1_epi16((short)a), _mm256_set1_epi16((short)b));
}

float el_vec_dot_q4_K_q8_K_avx512(int64_t n, const void *w, const void *a) {
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m512 acc = _mm512_setzero_ps();
    float summ = 0.f;
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * F16(x[i].d), dmin = y[i].d * F16(x[i].dmin);
        uint8_t sm[16];
        k4_scales_mins(x[i].scales, sm);
        /* min term through the activation sums, per 32 = two bsums */
        const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sm + 8)));
        const __m256i b = loadu256(y[i].bsums);
        const __m128i b32 = _mm_hadd_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
        const __m128i pm = _mm_madd_epi16(mins, b32);
        __m128i s = _mm_add_epi32(pm, _mm_shuffle_epi32(pm, 0x4e));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
        summ += dmin * (float)_mm_cvtsi128_si32(s);

        __m512i sumi = _mm512_setzero_si512();
        for (int g = 0; g < 4; g++) {
            const __m256i q4 = loadu256(x[i].qs + 32 * g);
            const __m512i q = join256(_mm256_and_si256(q4, m4), _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4));
            const __m512i p = _mm512_maddubs_epi16(q, _mm512_loadu_si512(y[i].qs + 64 * g));
            sumi = _mm512_dpwssd_epi32(sumi, p, two_scales16(sm[2 * g], sm[2 * g + 1]));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    }
    return _mm512_reduce_add_ps(acc) - summ;
}

/* Which scale each int16 of a 64-element maddubs result needs: 128-bit lane k -> k. */
static const int16_t LANE_OF_INT16[32] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};

float el_vec_dot_q6_K_q8_K_avx512(int64_t n, const void *w, const void *a) {
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m03 = _mm256_set1_epi8(0x03), m0c = _mm256_set1_epi8(0x0C);
    const __m256i m30 = _mm256_set1_epi8(0x30), mc0 = _mm256_set1_epi8((char)0xC0);
    const __m512i lane = _mm512_loadu_si512(LANE_OF_INT16);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * F16(x[i].d);
        const __m256i sc256 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        const __m512i scales = _mm512_castsi256_si512(sc256);
        /* the -32 offset: 32 * sum(sc * bsum), subtracted at the end */
        const __m256i offset = _mm256_madd_epi16(sc256, loadu256(y[i].bsums));
        __m512i sumi = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h;
            const __m256i qa = loadu256(ql), qb = loadu256(ql + 32), qh = loadu256(x[i].qh + 32 * h);
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(qa, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m03), 4));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(qb, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m0c), 2));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4), _mm256_and_si256(qh, m30));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4),
                                               _mm256_srli_epi16(_mm256_and_si256(qh, mc0), 2));
            const int8_t *q8 = y[i].qs + 128 * h;
            const __m512i s01 = _mm512_permutexvar_epi16(_mm512_add_epi16(lane, _mm512_set1_epi16((short)(8 * h))), scales);
            const __m512i s23 = _mm512_permutexvar_epi16(_mm512_add_epi16(lane, _mm512_set1_epi16((short)(8 * h + 4))), scales);
            const __m512i p01 = _mm512_maddubs_epi16(join256(q0, q1), _mm512_loadu_si512(q8));
            const __m512i p23 = _mm512_maddubs_epi16(join256(q2, q3), _mm512_loadu_si512(q8 + 64));
            sumi = _mm512_dpwssd_epi32(sumi, p01, s01);
            sumi = _mm512_dpwssd_epi32(sumi, p23, s23);
        }
        const __m512i off = _mm512_castsi256_si512(_mm256_slli_epi32(offset, 5));
        sumi = _mm512_sub_epi32(sumi, _mm512_maskz_mov_epi32(0x00FF, off));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    }
    return _mm512_reduce_add_ps(acc);
}
