/* AVX2 dot products of every weight format with its activation format.
 *
 * Integer work uses the maddubs/madd pattern: _mm256_maddubs_epi16(u8, s8) multiplies
 * unsigned weights by signed activations into int16 pair sums (no saturation for the
 * ranges here: at most 2*63*127), _mm256_madd_epi16 then widens to int32, applying a
 * per-sub-block scale where the format has one. Signed weights use sign_epi8 to move
 * the sign onto the activations. Activations are assumed to come from our quantizers
 * (quants in [-127, 127]). */
#include <immintrin.h>
#include <string.h>

#include "kernels/x86/kernels_x86.h"
#include "quant/blocks.h"
#include "quant/unpack.h"

#define F16(h) _cvtsh_ss(h)

static inline float hsum_ps(__m256 x) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static inline float hsum_ps128(__m128 r) {
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static inline __m256i loadu256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* 16 bytes of nibbles -> 32 bytes: low nibbles first (elements 0..15), then high (16..31). */
static inline __m256i nibbles_32(const uint8_t *p) {
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* 32 bits (little-endian) -> 32 bytes, 0xFF where bit j is set. */
static inline __m256i bits_32(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, sizeof x);
    const __m256i spread = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202,
                                              0x0303030303030303);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), spread); /* byte j <- source byte j/8 */
    v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));    /* all bits but j%8 */
    return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
}

/* sum of x*y in 8 int32 lanes, x and y signed bytes (x may be -128; y in [-127, 127]). */
static inline __m256i dot_i8(__m256i x, __m256i y) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* sum of x*y in 8 int32 lanes, x unsigned bytes (< 128), y signed. */
static inline __m256i dot_u8(__m256i x, __m256i y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
}

/* ---------------- float formats ---------------- */

float el_vec_dot_f32_avx2(int64_t n, const void *w, const void *a) {
    const float *x = w, *y = a;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc[0]);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) sum += x[i] * y[i];
    return sum;
}

float el_vec_dot_f16_avx2(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w;
    const float *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 x0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 2 * i)));
        const __m256 x1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 2 * i + 16)));
        acc0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(y + i + 8), acc1);
    }
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, x + 2 * i, 2);
        sum += F16(h) * y[i];
    }
    return sum;
}

float el_vec_dot_bf16_avx2(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w;
    const float *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i h = loadu256(x + 2 * i);
        const __m256 x0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(h)), 16));
        const __m256 x1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(h, 1)), 16));
        acc0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(y + i + 8), acc1);
    }
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, x + 2 * i, 2);
        uint32_t bits = (uint32_t)h << 16;
        float f;
        memcpy(&f, &bits, sizeof f);
        sum += f * y[i];
    }
    return sum;
}

/* ---------------- 32-element blocks with Q8_0 activations ---------------- */

/* Signed quants of one block as 32 bytes. */
static inline __m256i q4_0_quants(const block_q4_0 *b) { return _mm256_sub_epi8(nibbles_32(b->qs), _mm256_set1_epi8(8)); }

/* Q5_0: nibble | (bit ? 0 : 0xF0) is nibble + 16*bit - 16 as a signed byte. */
static inline __m256i q5_0_quants(const block_q5_0 *b) {
    const __m256i hi = _mm256_andnot_si256(bits_32(b->qh), _mm256_set1_epi8((char)0xF0));
    return _mm256_or_si256(nibbles_32(b->qs), hi);
}

/* Two blocks per iteration into two accumulators, then the odd block. */
#define DOT_Q8_0_LOOP(XTYPE, QUANTS)                                                                   \
    const XTYPE *x = w;                                                                                \
    const block_q8_0 *y = a;                                                                           \
    const int64_t nb = n / QK8_0;                                                                      \
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                     \
    int64_t i = 0;                                                                                     \
    for (; i + 2 <= nb; i += 2) {                                                                      \
        const __m256 d0 = _mm256_set1_ps(F16(x[i].d) * F16(y[i].d));                                   \
        const __m256 d1 = _mm256_set1_ps(F16(x[i + 1].d) * F16(y[i + 1].d));                           \
        const __m256i p0 = dot_i8(QUANTS(&x[i]), loadu256(y[i].qs));                                   \
        const __m256i p1 = dot_i8(QUANTS(&x[i + 1]), loadu256(y[i + 1].qs));                           \
        acc0 = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(p0), acc0);                                      \
        acc1 = _mm256_fmadd_ps(d1, _mm256_cvtepi32_ps(p1), acc1);                                      \
    }                                                                                                  \
    if (i < nb) {                                                                                      \
        const __m256 d0 = _mm256_set1_ps(F16(x[i].d) * F16(y[i].d));                                   \
        acc0 = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(dot_i8(QUANTS(&x[i]), loadu256(y[i].qs))), acc0);\
    }                                                                                                  \
    return hsum_ps(_mm256_add_ps(acc0, acc1));

static inline __m256i q8_0_quants(const block_q8_0 *b) { return loadu256(b->qs); }

float el_vec_dot_q4_0_q8_0_avx2(int64_t n, const void *w, const void *a) { DOT_Q8_0_LOOP(block_q4_0, q4_0_quants) }
float el_vec_dot_q5_0_q8_0_avx2(int64_t n, const void *w, const void *a) { DOT_Q8_0_LOOP(block_q5_0, q5_0_quants) }
float el_vec_dot_q8_0_q8_0_avx2(int64_t n, const void *w, const void *a) { DOT_Q8_0_LOOP(block_q8_0, q8_0_quants) }

/* ---------------- 32-element blocks with a min, Q8_1 activations ---------------- */

static inline __m256i q4_1_quants(const block_q4_1 *b) { return nibbles_32(b->qs); }

static inline __m256i q5_1_quants(const block_q5_1 *b) {
    const __m256i hi = _mm256_and_si256(bits_32(b->qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(nibbles_32(b->qs), hi);
}

/* x = d*q + m: sum = d*dy*sum(q*qy) + m*s, s = dy*sum(qy) from the activation block. */
#define DOT_Q8_1_LOOP(XTYPE, QUANTS)                                                                   \
    const XTYPE *x = w;                                                                                \
    const block_q8_1 *y = a;                                                                           \
    const int64_t nb = n / QK8_1;                                                                      \
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                     \
    float summs = 0.f;                                                                                 \
    int64_t i = 0;                                                                                     \
    for (; i + 2 <= nb; i += 2) {                                                                      \
        const __m256 d0 = _mm256_set1_ps(F16(x[i].d) * F16(y[i].d));                                   \
        const __m256 d1 = _mm256_set1_ps(F16(x[i + 1].d) * F16(y[i + 1].d));                           \
        summs += F16(x[i].m) * F16(y[i].s) + F16(x[i + 1].m) * F16(y[i + 1].s);                        \
        const __m256i p0 = dot_u8(QUANTS(&x[i]), loadu256(y[i].qs));                                   \
        const __m256i p1 = dot_u8(QUANTS(&x[i + 1]), loadu256(y[i + 1].qs));                           \
        acc0 = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(p0), acc0);                                      \
        acc1 = _mm256_fmadd_ps(d1, _mm256_cvtepi32_ps(p1), acc1);                                      \
    }                                                                                                  \
    if (i < nb) {                                                                                      \
        const __m256 d0 = _mm256_set1_ps(F16(x[i].d) * F16(y[i].d));                                   \
        summs += F16(x[i].m) * F16(y[i].s);                                                            \
        acc0 = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(dot_u8(QUANTS(&x[i]), loadu256(y[i].qs))), acc0);\
    }                                                                                                  \
    return hsum_ps(_mm256_add_ps(acc0, acc1)) + summs;

float el_vec_dot_q4_1_q8_1_avx2(int64_t n, const void *w, const void *a) { DOT_Q8_1_LOOP(block_q4_1, q4_1_quants) }
float el_vec_dot_q5_1_q8_1_avx2(int64_t n, const void *w, const void *a) { DOT_Q8_1_LOOP(block_q5_1, q5_1_quants) }

/* ---------------- K-quants with Q8_K activations ---------------- */

/* For formats with a scale per 16 elements: from 8 int16 scales broadcast to both lanes,
 * the vector with scale 2c in the low lane and scale 2c+1 in the high lane, matching a
 * maddubs result of 32 elements (low lane = first 16). */
static inline __m256i scale_pair(__m256i scales8, int c) {
    const __m256i ctl = _mm256_set_m128i(_mm_set1_epi16((short)(((4 * c + 3) << 8) | (4 * c + 2))),
                                         _mm_set1_epi16((short)(((4 * c + 1) << 8) | (4 * c))));
    return _mm256_shuffle_epi8(scales8, ctl);
}

/* Q2_K: x = d*sc*q - dmin*m per 16, q in [0, 3]. */
float el_vec_dot_q2_K_q8_K_avx2(int64_t n, const void *w, const void *a) {
    const block_q2_K *x = w;
    const block_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float dall = y[i].d * F16(x[i].d), dmin = -y[i].d * F16(x[i].dmin);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), _mm_set1_epi8(0x0F)));
        const __m256i scales = _mm256_cvtepu8_epi16(_mm_and_si128(sc8, _mm_set1_epi8(0x0F)));
        const __m256i summs = _mm256_madd_epi16(mins, loadu256(y[i].bsums));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(summs), acc);

        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i sc = _mm256_broadcastsi128_si256(h ? _mm256_extracti128_si256(scales, 1)
                                                             : _mm256_castsi256_si128(scales));
            const __m256i q2 = loadu256(x[i].qs + 32 * h);
            const int8_t *q8 = y[i].qs + 128 * h;
            for (int s = 0; s < 4; s++) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(q2, 2 * s), m3);
                const __m256i p = _mm256_maddubs_epi16(q, loadu256(q8 + 32 * s));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(sc, s)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dall), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc);
}

/* Q3_K: x = d*(sc-32)*q per 16, q = low2 - (hbit ? 0 : 4). */
float el_vec_dot_q3_K_q8_K_avx2(int64_t n, const void *w, const void *a) {
    const block_q3_K *x = w;
    const block_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * F16(x[i].d);
        uint8_t raw[16];
        k3_scales_raw(x[i].scales, raw);
        const __m128i sc8 = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)raw), _mm_set1_epi8(32));
        const __m256i scales = _mm256_cvtepi8_epi16(sc8);
        const __m256i hbits = loadu256(x[i].hmask);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i sc = _mm256_broadcastsi128_si256(h ? _mm256_extracti128_si256(scales, 1)
                                                             : _mm256_castsi256_si128(scales));
            const __m256i q2 = loadu256(x[i].qs + 32 * h);
            const int8_t *q8 = y[i].qs + 128 * h;
            for (int s = 0; s < 4; s++) {
                const __m256i ql = _mm256_and_si256(_mm256_srli_epi16(q2, 2 * s), m3);
                /* 4 where the high bit is clear, else 0 */
                const __m256i hclear = _mm256_andnot_si256(_mm256_srli_epi16(hbits, 4 * h + s), one);
                const __m256i q4 = _mm256_slli_epi16(hclear, 2);
                const __m256i yv = loadu256(q8 + 32 * s);
                const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(ql, yv), _mm256_maddubs_epi16(q4, yv));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(sc, s)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc);
}

/* Q4_K / Q5_K share the scale/min handling: 8 groups of 32, x = d*sc*q - dmin*m.
 * Returns the int16 scales broadcast in both lanes and adds the min term to *accm. */
static inline __m256i k4_scales(const uint8_t s[K_SCALE_SIZE], const int16_t *bsums, float dmin, __m128 *accm) {
    uint8_t sm[16];
    k4_scales_mins(s, sm);
    const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sm + 8)));
    const __m256i b = loadu256(bsums);
    /* bsums are per 16; pair them up per 32 */
    const __m128i b32 = _mm_hadd_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    const __m128i prod = _mm_madd_epi16(mins, b32);
    *accm = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), *accm);
    return _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sm)));
}

/* int16 scale j in every lane, from k4_scales' vector. */
static inline __m256i scale_one(__m256i scales, int j) {
    return _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(((2 * j + 1) << 8) | (2 * j))));
}

float el_vec_dot_q4_K_q8_K_avx2(int64_t n, const void *w, const void *a) {
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * F16(x[i].d), dmin = -y[i].d * F16(x[i].dmin);
        const __m256i scales = k4_scales(x[i].scales, y[i].bsums, dmin, &accm);
        __m256i sumi0 = _mm256_setzero_si256(), sumi1 = _mm256_setzero_si256();
        for (int g = 0; g < 4; g++) {
            const __m256i q4 = loadu256(x[i].qs + 32 * g);
            const __m256i lo = _mm256_and_si256(q4, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            const __m256i p0 = _mm256_maddubs_epi16(lo, loadu256(y[i].qs + 64 * g));
            const __m256i p1 = _mm256_maddubs_epi16(hi, loadu256(y[i].qs + 64 * g + 32));
            sumi0 = _mm256_add_epi32(sumi0, _mm256_madd_epi16(p0, scale_one(scales, 2 * g)));
            sumi1 = _mm256_add_epi32(sumi1, _mm256_madd_epi16(p1, scale_one(scales, 2 * g + 1)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_add_epi32(sumi0, sumi1)), acc);
    }
    return hsum_ps(acc) + hsum_ps128(accm);
}

float el_vec_dot_q5_K_q8_K_avx2(int64_t n, const void *w, const void *a) {
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * F16(x[i].d), dmin = -y[i].d * F16(x[i].dmin);
        const __m256i scales = k4_scales(x[i].scales, y[i].bsums, dmin, &accm);
        const __m256i qh = loadu256(x[i].qh);
        __m256i sumi0 = _mm256_setzero_si256(), sumi1 = _mm256_setzero_si256();
        for (int g = 0; g < 4; g++) {
            const __m256i q4 = loadu256(x[i].qs + 32 * g);
            const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), one), 4);
            const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g + 1), one), 4);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q4, m4), h0);
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4), h1);
            const __m256i p0 = _mm256_maddubs_epi16(lo, loadu256(y[i].qs + 64 * g));
            const __m256i p1 = _mm256_maddubs_epi16(hi, loadu256(y[i].qs + 64 * g + 32));
            sumi0 = _mm256_add_epi32(sumi0, _mm256_madd_epi16(p0, scale_one(scales, 2 * g)));
            sumi1 = _mm256_add_epi32(sumi1, _mm256_madd_epi16(p1, scale_one(scales, 2 * g + 1)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_add_epi32(sumi0, sumi1)), acc);
    }
    return hsum_ps(acc) + hsum_ps128(accm);
}

/* Q6_K: x = d*sc*(q - 32) per 16, q in [0, 63]. The -32 offset is taken out once per
 * block through the activation sums: sum(sc*(q-32)*y) = sum(sc*q*y) - 32*sum(sc*bsum). */
float el_vec_dot_q6_K_q8_K_avx2(int64_t n, const void *w, const void *a) {
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m03 = _mm256_set1_epi8(0x03), m0c = _mm256_set1_epi8(0x0C);
    const __m256i m30 = _mm256_set1_epi8(0x30), mc0 = _mm256_set1_epi8((char)0xC0);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * F16(x[i].d);
        const __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        const __m256i offset = _mm256_madd_epi16(scales, loadu256(y[i].bsums));
        __m256i sumi0 = _mm256_setzero_si256(), sumi1 = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i sc = _mm256_broadcastsi128_si256(h ? _mm256_extracti128_si256(scales, 1)
                                                             : _mm256_castsi256_si128(scales));
            const uint8_t *ql = x[i].ql + 64 * h;
            const __m256i qa = loadu256(ql), qb = loadu256(ql + 32), qh = loadu256(x[i].qh + 32 * h);
            const int8_t *q8 = y[i].qs + 128 * h;
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(qa, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m03), 4));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(qb, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m0c), 2));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4), _mm256_and_si256(qh, m30));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4),
                                               _mm256_srli_epi16(_mm256_and_si256(qh, mc0), 2));
            const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q0, loadu256(q8)), scale_pair(sc, 0));
            const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(q1, loadu256(q8 + 32)), scale_pair(sc, 1));
            const __m256i p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(q2, loadu256(q8 + 64)), scale_pair(sc, 2));
            const __m256i p3 = _mm256_madd_epi16(_mm256_maddubs_epi16(q3, loadu256(q8 + 96)), scale_pair(sc, 3));
            sumi0 = _mm256_add_epi32(sumi0, _mm256_add_epi32(p0, p1));
            sumi1 = _mm256_add_epi32(sumi1, _mm256_add_epi32(p2, p3));
        }
        const __m256i sumi = _mm256_sub_epi32(_mm256_add_epi32(sumi0, sumi1), _mm256_slli_epi32(offset, 5));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc);
}

float el_vec_dot_q8_K_q8_K_avx2(int64_t n, const void *w, const void *a) {
    const block_q8_K *x = w, *y = a;
    const int64_t nb = n / QK_K;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < QK_K / 32; c++)
            sumi = _mm256_add_epi32(sumi, dot_i8(loadu256(x[i].qs + 32 * c), loadu256(y[i].qs + 32 * c)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(x[i].d * y[i].d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc);
}
