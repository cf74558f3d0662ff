/* AVX2 micro-kernels, packers and one-token gemvs for the blocked matmul (layouts and
 * contract: kernels/gemm.h; the micro-kernels are written once in gemm_tiles_impl.h,
 * shared with the VNNI variant of gemm_avx512.c). Each kernel computes a 4-row x TN-token tile with its
 * accumulators in registers across the K loop. Measured on Zen 3 (1 core, 512 tokens,
 * CPU time): Q4_K/Q6_K ~105-115, Q5_0 ~100, Q8_0 ~85 GFLOP/s, against 36-48 / 24-26 /
 * 39-44 for one el_vec_dot_best call per (row, token). */
#include <immintrin.h>
#include <string.h>

#include "kernels/gemm.h"
#include "kernels/x86/gemm_x86.h"
#include "quant/blocks.h"
#include "quant/unpack.h"

#define X86_VNNI 0
#define X86_NAME(f) f##_avx2
#include "kernels/x86/gemm_tiles_impl.h"

/* ---- decoding one row's block into vectors (shared by packers and gemv) ---- */

static inline void store_i16x16(int16_t *dst, __m256i v) { _mm256_storeu_si256((__m256i *)dst, v); }

/* Q4_0: nibbles minus 8 (elements 0-15 low nibbles, 16-31 high). */
static inline __m256i decode_q4_0(const block_q4_0 *b) {
    const __m128i qs = _mm_loadu_si128((const __m128i *)b->qs);
    const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), _mm256_set1_epi8(0x0F));
    return _mm256_sub_epi8(nib, _mm256_set1_epi8(8));
}

/* Q5_0: nibbles plus the 5th bit from qh (bit j for element j), minus 16. */
/* The 32 quants of a Q5_0 block as unsigned bytes 0..31 (the stored value before the -16). */
static inline __m256i q5_0_unsigned(const block_q5_0 *b) {
    /* Byte k of the result takes bit k of the 32-bit qh: spread qh bytes, then test bits. */
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2,
                                            2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bitsel = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    const __m128i qs = _mm_loadu_si128((const __m128i *)b->qs);
    const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), _mm256_set1_epi8(0x0F));
    const __m256i hb = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), spread);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(hb, bitsel), bitsel);
    return _mm256_or_si256(nib, _mm256_and_si256(set, _mm256_set1_epi8(16)));
}

static inline __m256i decode_q5_0(const block_q5_0 *b) {
    return _mm256_sub_epi8(q5_0_unsigned(b), _mm256_set1_epi8(16));
}

static inline __m256i decode_q8_0(const block_q8_0 *b) { return _mm256_loadu_si256((const __m256i *)b->qs); }

/* Q4_K: q[j] = elements 32j..32j+31 (unsigned 0..15); sc[j], m16, da, db as in el_panel_k. */
static inline void decode_q4_K(const block_q4_K *b, __m256i q[8], __m256i sc[8], __m256i *m16, float *da,
                               float *db) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (int g = 0; g < 4; g++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * g));
        q[2 * g] = _mm256_and_si256(v, low4);
        q[2 * g + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
    }
    uint8_t sm[16];
    k4_scales_mins(b->scales, sm);
    for (int j = 0; j < 8; j++) sc[j] = _mm256_set1_epi16(sm[j]);
    const __m128i m = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sm + 8)));
    *m16 = _mm256_set_m128i(_mm_unpackhi_epi16(m, m), _mm_unpacklo_epi16(m, m));
    *da = f16_to_f32(b->d);
    *db = -f16_to_f32(b->dmin);
}

/* Q6_K: q[j] = elements 32j..32j+31 stored + 32 (0..63); bias m = -32 * scale. */
static inline void decode_q6_K(const block_q6_K *b, __m256i q[8], __m256i sc[8], __m256i *m16, float *da,
                               float *db) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
    for (int h = 0; h < 2; h++) {
        const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
        const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
        /* 16-bit shifts move bits across bytes; the masks keep only this byte's. */
        q[4 * h] = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45));
        q[4 * h + 1] =
            _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45));
        q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(qh, bits45));
        q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                                       _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45));
    }
    const int8_t *s = b->scales;
    for (int j = 0; j < 8; j++) sc[j] = _mm256_set_m128i(_mm_set1_epi16(s[2 * j + 1]), _mm_set1_epi16(s[2 * j]));
    *m16 = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)s)), _mm256_set1_epi16(-32));
    *da = f16_to_f32(b->d);
    *db = 0.f;
}

/* ---- packers (same panels as kernels/gemm_pack.c) ---- */

static inline void put_k(el_panel_k *pb, int r, const __m256i q[8], const __m256i sc[8], __m256i m16, float da,
                         float db) {
    for (int j = 0; j < 8; j++) {
        _mm256_store_si256((__m256i *)(pb->q[r] + 32 * j), q[j]);
        store_i16x16(pb->sc[r][j], sc[j]);
    }
    store_i16x16(pb->m[r], m16);
    pb->da[r] = da;
    pb->db[r] = db;
}

void el_gemm_pack_q4_K_avx2(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_k *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q4_K *src = (const block_q4_K *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) {
            __m256i q[8], sc[8], m16;
            float da, db;
            decode_q4_K(&src[b], q, sc, &m16, &da, &db);
            put_k(&p[b], r, q, sc, m16, da, db);
        }
    }
}

void el_gemm_pack_q6_K_avx2(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_k *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q6_K *src = (const block_q6_K *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) {
            __m256i q[8], sc[8], m16;
            float da, db;
            decode_q6_K(&src[b], q, sc, &m16, &da, &db);
            put_k(&p[b], r, q, sc, m16, da, db);
        }
    }
}

/* Row r of a pair-summed panel block from the decoded vectors (el_panel_kp's layout:
 * the same vpunpck{l,h}qdq the kernel applies to the activations, and to the scales). */
static inline void put_kp(el_panel_kp *pb, int r, const __m256i q[8], const __m256i sc[8], __m256i m16, float da,
                          float db) {
    for (int c = 0; c < 4; c++) {
        _mm256_store_si256((__m256i *)pb->q[r][c], _mm256_unpacklo_epi64(q[2 * c], q[2 * c + 1]));
        _mm256_store_si256((__m256i *)(pb->q[r][c] + 32), _mm256_unpackhi_epi64(q[2 * c], q[2 * c + 1]));
        store_i16x16(pb->sc[r][c], _mm256_unpacklo_epi64(sc[2 * c], sc[2 * c + 1]));
    }
    store_i16x16(pb->m[r], m16);
    pb->da[r] = da;
    pb->db[r] = db;
}


/* Q4_K straight into the pair-summed layout, the scales kept in registers (the scalar
 * unpacking's stores and reloads stall store forwarding). Same panel as decode_q4_K +
 * put_kp. */
static inline void put_kp_q4_K(el_panel_kp *pb, int r, const block_q4_K *b) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m128i smv = k4_scales_mins_v(b->scales);
    const __m128i s16 = _mm_cvtepu8_epi16(smv); /* scales 0-7 as int16 */
    for (int c = 0; c < 4; c++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
        const __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
        _mm256_store_si256((__m256i *)pb->q[r][c], _mm256_unpacklo_epi64(lo, hi));
        _mm256_store_si256((__m256i *)(pb->q[r][c] + 32), _mm256_unpackhi_epi64(lo, hi));
        /* lanes 0-3: scale 2c, 4-7: scale 2c + 1, in both halves */
        const char a0 = (char)(4 * c), a1 = (char)(4 * c + 1), b0 = (char)(4 * c + 2), b1 = (char)(4 * c + 3);
        const __m128i ctl = _mm_setr_epi8(a0, a1, a0, a1, a0, a1, a0, a1, b0, b1, b0, b1, b0, b1, b0, b1);
        _mm256_storeu_si256((__m256i *)pb->sc[r][c], _mm256_broadcastsi128_si256(_mm_shuffle_epi8(s16, ctl)));
    }
    /* mins 0-3 and 4-7 into row r's lanes of the fbias m layout (kernels/gemm.h) */
    const __m128i m = _mm_cvtepu8_epi16(_mm_srli_si128(smv, 8));
    _mm_storel_epi64((__m128i *)&pb->m[r / 2][4 * (r % 2)], m);
    _mm_storel_epi64((__m128i *)&pb->m[r / 2][8 + 4 * (r % 2)], _mm_srli_si128(m, 8));
    if (r == 0) memset(pb->m[2], 0, 2 * sizeof pb->m[2]); /* unused */
    pb->da[r] = f16_to_f32(b->d);
    pb->db[r] = -f16_to_f32(b->dmin);
}

/* The 8 x 8 matrix of int32 lanes r[0..7] transposed in place (lane j of r[i] <-> lane i of r[j]). */
static inline void transpose8_epi32(__m256i r[8]) {
    __m256i t[8], u[8];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        t[2 * k] = _mm256_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
#pragma GCC unroll 2
    for (int k = 0; k < 2; k++) {
        u[4 * k] = _mm256_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 1] = _mm256_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 2] = _mm256_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
        u[4 * k + 3] = _mm256_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        r[k] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x20);
        r[k + 4] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x31);
    }
}

/* Scales, mins and float factors of a Q4_K (or Q4_K_T) block into row r of an
 * el_panel_kt block: scales in pairs (int16) and alone (int32); mins as put_kp_q4_K. */
static inline void put_kt_scales(el_panel_kt *pb, int r, const block_q4_K *b) {
    const __m128i smv = k4_scales_mins_v(b->scales); /* bytes 0-7 scales, 8-15 mins */
    _mm256_storeu_si256((__m256i *)pb->sc16[r], _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(smv, smv)));
    _mm256_storeu_si256((__m256i *)pb->sc32[r], _mm256_cvtepu8_epi32(smv));
    const __m128i m = _mm_cvtepu8_epi16(_mm_srli_si128(smv, 8));
    _mm_storel_epi64((__m128i *)&pb->m[r / 2][4 * (r % 2)], m);
    _mm_storel_epi64((__m128i *)&pb->m[r / 2][8 + 4 * (r % 2)], _mm_srli_si128(m, 8));
    pb->da[r] = f16_to_f32(b->d);
    pb->db[r] = -f16_to_f32(b->dmin);
}

/* Q4_K into the group-transposed layout (el_panel_kt): the 8 groups of 32 quants as
 * vectors, transposed as 8 x 8 words. */
static inline void put_kt_q4_K(el_panel_kt *pb, int r, const block_q4_K *b) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256i g[8];
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
        g[2 * c] = _mm256_and_si256(v, low4);
        g[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
    }
    transpose8_epi32(g);
#pragma GCC unroll 8
    for (int v = 0; v < 8; v++) _mm256_storeu_si256((__m256i *)pb->q[r][v], g[v]);
    put_kt_scales(pb, r, b);
}

/* Q4_K_T, already transposed: only the nibbles to split. */
static inline void put_kt_q4_K_t(el_panel_kt *pb, int r, const block_q4_K *b) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
        _mm256_storeu_si256((__m256i *)pb->q[r][c], _mm256_and_si256(v, low4));
        _mm256_storeu_si256((__m256i *)pb->q[r][c + 4], _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
    }
    put_kt_scales(pb, r, b);
}

void el_gemm_pack_kt_q4_K_avx2(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_kt *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q4_K *src = (const block_q4_K *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) put_kt_q4_K(&p[b], r, &src[b]);
    }
}

void el_gemm_pack_kt_q4_K_t_avx2(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_kt *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q4_K *src = (const block_q4_K *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) put_kt_q4_K_t(&p[b], r, &src[b]);
    }
}

void el_gemm_pack_kp_q4_K_avx2(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_kp *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q4_K *src = (const block_q4_K *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) put_kp_q4_K(&p[b], r, &src[b]);
    }
}

void el_gemm_pack_kp_q6_K_avx2(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_kp *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q6_K *src = (const block_q6_K *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) {
            __m256i q[8], sc[8], m16;
            float da, db;
            decode_q6_K(&src[b], q, sc, &m16, &da, &db);
            put_kp(&p[b], r, q, sc, m16, da, db);
        }
    }
}

/* The 4 rows' 32 quants q[r] into the interleaved layout: out[k] = 8 bytes k of each
 * row (a 4 x 4 transpose of 8-byte words). */
static inline void interleave_rows4(const __m256i q[4], __m256i out[4]) {
    const __m256i t0 = _mm256_unpacklo_epi64(q[0], q[1]), t1 = _mm256_unpackhi_epi64(q[0], q[1]);
    const __m256i t2 = _mm256_unpacklo_epi64(q[2], q[3]), t3 = _mm256_unpackhi_epi64(q[2], q[3]);
    out[0] = _mm256_permute2x128_si256(t0, t2, 0x20);
    out[1] = _mm256_permute2x128_si256(t1, t3, 0x20);
    out[2] = _mm256_permute2x128_si256(t0, t2, 0x31);
    out[3] = _mm256_permute2x128_si256(t1, t3, 0x31);
}

/* The packers read 4 rows in step, as the gemvs do, so they fetch the next panel's rows
 * ahead the same way (prefetch_ahead, gemm_tiles_impl.h). */
/* A q4 panel block from the 4 rows' signed quants and scales. corr[2r + h]: 128 * the
 * sum of row r's elements 8k + 4h .. 8k + 4h + 3 over k, which is int32 lane 2r + h of
 * the interleaved vectors' 4-byte sums (exact for any int8 quants: el_gemm_pack_q8_0_q4_avx2). */
static inline void put_q4_rows4(el_panel_q4 *pb, const __m256i q[4], __m256 d2) {
    __m256i v[4];
    interleave_rows4(q, v);
    /* int16 pair sums are at most 2 * 128 in magnitude: the 4 vectors' add up exactly in
     * int16 before one widening step. Unrolled, so v stays in registers (a loop kept it
     * on the stack and read each vector back right after storing it). */
    __m256i sum16 = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_si256((__m256i *)pb->q[k], v[k]);
        sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(_mm256_set1_epi8(1), v[k]));
    }
    const __m256i sum = _mm256_madd_epi16(sum16, _mm256_set1_epi16(1));
    _mm256_storeu_si256((__m256i *)pb->corr, _mm256_slli_epi32(sum, 7));
    _mm256_storeu_ps(pb->d2, d2);
}

void el_gemm_pack_q8_0_avx2(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_q8 *p = out;
    const block_q8_0 *s0 = (const block_q8_0 *)rows[0] + b0, *s1 = (const block_q8_0 *)rows[1] + b0;
    const block_q8_0 *s2 = (const block_q8_0 *)rows[2] + b0, *s3 = (const block_q8_0 *)rows[3] + b0;
    const uintptr_t ahead = (uintptr_t)(s3 + nb) + PREFETCH_AHEAD;
    for (int64_t b = 0; b < nb; b++) {
        prefetch_ahead(ahead, b, RM * sizeof(block_q8_0));
        const __m256i q[4] = {decode_q8_0(&s0[b]), decode_q8_0(&s1[b]), decode_q8_0(&s2[b]), decode_q8_0(&s3[b])};
        __m256i v[4];
        interleave_rows4(q, v);
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            _mm256_storeu_si256((__m256i *)p[b].q[k], v[k]);
            _mm256_storeu_si256((__m256i *)p[b].a[k], _mm256_abs_epi8(v[k]));
        }
        _mm256_storeu_ps(p[b].d2, scales_rows4(s0[b].d, s1[b].d, s2[b].d, s3[b].d));
    }
}

/* The q4 family's packers from a format's rows: 4 rows decoded to signed quants in step,
 * interleaved, their corrections and scales. Q8_0 (|q| <= 128) is one of them for the
 * VNNI kernels only, whose vpdpbusd sums (x + 128) * q exactly where AVX2's int16 steps
 * would saturate. */
#define PACK_Q4_ROWS4(name, block_t, decode)                                                                 \
    void name(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {                               \
        el_panel_q4 *p = out;                                                                                \
        const block_t *s0 = (const block_t *)rows[0] + b0, *s1 = (const block_t *)rows[1] + b0;              \
        const block_t *s2 = (const block_t *)rows[2] + b0, *s3 = (const block_t *)rows[3] + b0;              \
        const uintptr_t ahead = (uintptr_t)(s3 + nb) + PREFETCH_AHEAD;                                       \
        for (int64_t b = 0; b < nb; b++) {                                                                   \
            prefetch_ahead(ahead, b, RM * sizeof(block_t));                                                  \
            const __m256i q[4] = {decode(&s0[b]), decode(&s1[b]), decode(&s2[b]), decode(&s3[b])};           \
            put_q4_rows4(&p[b], q, scales_rows4(s0[b].d, s1[b].d, s2[b].d, s3[b].d));                        \
        }                                                                                                    \
    }

PACK_Q4_ROWS4(el_gemm_pack_q8_0_q4_avx2, block_q8_0, decode_q8_0)
PACK_Q4_ROWS4(el_gemm_pack_q4_0_avx2, block_q4_0, decode_q4_0)
PACK_Q4_ROWS4(el_gemm_pack_q5_0_avx2, block_q5_0, decode_q5_0)

void el_gemm_pack_q5_0_r4_avx2(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_q4 *p = out;
    const block_q5_0_r4 *g = rows[0]; /* the panel's groups; b0, nb even */
    for (int64_t i = 0; i < nb / 2; i++) {
        const block_q5_0_r4 *gi = &g[b0 / 2 + i];
        const __m256i qh = _mm256_loadu_si256((const __m256i *)gi->qh);
        __m256i lo02, hi02, lo13, hi13;
        Q5R4_U(gi, qh, 0, lo02, hi02, lo13, hi13);
        el_panel_q4 *pb = &p[2 * i];
        for (int h = 0; h < 2; h++) {
            if (h) Q5R4_U(gi, qh, 1, lo02, hi02, lo13, hi13);
            const __m256i q[4] = {q5r4_row(lo02, hi02, 0), q5r4_row(lo13, hi13, 0), q5r4_row(lo02, hi02, 1),
                                  q5r4_row(lo13, hi13, 1)};
            put_q4_rows4(pb + h, q, scales_rows4(gi->d[h][0], gi->d[h][1], gi->d[h][2], gi->d[h][3]));
        }
    }
}

