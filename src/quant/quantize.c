/* Reference quantization (round to nearest).
 *
 * Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 and Q8_K follow ggml's quantize_row_*_ref exactly
 * (same float operations, same rounding). Activations in Q8_0 / Q8_1 use
 * el_quantize_act_q8_0 / _q8_1 instead, the rule of llama.cpp's x86 CPU backend (its Q8_K
 * activations use the reference rule). The K-quant weight formats Q2_K..Q6_K use a
 * simple RTN choice of scales (per-sub-block range, then the super-block scale from the
 * largest sub-block scale); ggml searches scales to minimise the error, so those bytes
 * differ from ggml's while decoding with the same formula. Inputs are assumed finite. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "quant/blocks.h"
#include "quant/quant.h"
#include "quant/quant_ref.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* Round half to even via the 1.5*2^23 trick, as ggml's nearest_int; needs |v| <= 2^22. */
static inline int nearest_int(float v) {
    float t = v + 12582912.f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* nearest_int clamped to [lo, hi]; safe for any float (NaN gives lo). */
static inline int round_clamp(float v, int lo, int hi) {
    if (!(v >= (float)lo)) return lo;
    if (v > (float)hi) return hi;
    return nearest_int(v);
}

/* roundf into int8 without undefined conversions for non-finite input. */
static inline int8_t roundf_i8(float v) {
    float r = roundf(v);
    if (!(r >= -128.f)) return r != r ? 0 : -128;
    if (r > 127.f) return 127;
    return (int8_t)r;
}

void el_quantize_row_f32(const float *src, void *dst, int64_t n) { memmove(dst, src, (size_t)n * sizeof(float)); }

void el_quantize_row_f16(const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = el_f32_to_f16(src[i]);
        memcpy(d + 2 * i, &h, 2);
    }
}

void el_quantize_row_bf16(const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = el_f32_to_bf16(src[i]);
        memcpy(d + 2 * i, &h, 2);
    }
}

/* The element of largest magnitude, with its sign (the first one on ties). */
static float signed_absmax(const float *x, int n) {
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < n; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

/* Q4_0: d = max / -8 so the largest-magnitude element maps to -8; q = min(15, trunc(x/d + 8.5)). */
void el_quantize_row_q4_0(const float *src, void *dst, int64_t n) {
    block_q4_0 *y = dst;
    for (int64_t i = 0; i < n / QK4_0; i++, src += QK4_0) {
        const float d = signed_absmax(src, QK4_0) / -8;
        const float id = d != 0.f ? 1.0f / d : 0.0f;
        y[i].d = el_f32_to_f16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            int q0 = (int)(src[j] * id + 8.5f), q1 = (int)(src[j + QK4_0 / 2] * id + 8.5f);
            q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
            q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Q4_1: d = (max - min) / 15, m = min; q = min(15, trunc((x - min)/d + 0.5)). */
void el_quantize_row_q4_1(const float *src, void *dst, int64_t n) {
    block_q4_1 *y = dst;
    for (int64_t i = 0; i < n / QK4_1; i++, src += QK4_1) {
        float mn, mx;
        min_max(src, QK4_1, &mn, &mx);
        const float d = (mx - mn) / 15;
        const float id = d != 0.f ? 1.0f / d : 0.0f;
        y[i].d = el_f32_to_f16(d);
        y[i].m = el_f32_to_f16(mn);
        for (int j = 0; j < QK4_1 / 2; j++) {
            int q0 = (int)((src[j] - mn) * id + 0.5f), q1 = (int)((src[j + QK4_1 / 2] - mn) * id + 0.5f);
            q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
            q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Pack 32 five-bit values: low nibbles as Q4, bit 4 of element j into bit j of qh. */
static void pack_5bit(const int q[32], uint8_t qs[16], uint8_t qh_bytes[4]) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
        qh |= (uint32_t)((q[j] >> 4) & 1) << j;
        qh |= (uint32_t)((q[j + 16] >> 4) & 1) << (j + 16);
    }
    memcpy(qh_bytes, &qh, sizeof qh);
}

/* Q5_0: d = max / -16; q = min(31, trunc(x/d + 16.5)). */
void el_quantize_row_q5_0(const float *src, void *dst, int64_t n) {
    block_q5_0 *y = dst;
    for (int64_t i = 0; i < n / QK5_0; i++, src += QK5_0) {
        const float d = signed_absmax(src, QK5_0) / -16;
        const float id = d != 0.f ? 1.0f / d : 0.0f;
        y[i].d = el_f32_to_f16(d);
        int q[QK5_0];
        for (int j = 0; j < QK5_0; j++) {
            int v = (int)(src[j] * id + 16.5f);
            q[j] = v < 0 ? 0 : v > 31 ? 31 : v;
        }
        pack_5bit(q, y[i].qs, y[i].qh);
    }
}

/* Q5_1: d = (max - min) / 31, m = min; q = trunc((x - min)/d + 0.5). */
void el_quantize_row_q5_1(const float *src, void *dst, int64_t n) {
    block_q5_1 *y = dst;
    for (int64_t i = 0; i < n / QK5_1; i++, src += QK5_1) {
        float mn, mx;
        min_max(src, QK5_1, &mn, &mx);
        const float d = (mx - mn) / 31;
        const float id = d != 0.f ? 1.0f / d : 0.0f;
        y[i].d = el_f32_to_f16(d);
        y[i].m = el_f32_to_f16(mn);
        int q[QK5_1];
        for (int j = 0; j < QK5_1; j++) {
            int v = (int)((src[j] - mn) * id + 0.5f);
            q[j] = v < 0 ? 0 : v > 31 ? 31 : v;
        }
        pack_5bit(q, y[i].qs, y[i].qh);
    }
}

static float absmax(const float *x, int n) {
    float amax = 0.f;
    for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[j]));
    return amax;
}

/* Q8_0: d = amax / 127, q = roundf(x * (1/d)) (half away from zero): ggml's reference,
 * what file writers (gguf-py) produce. */
void el_quantize_row_q8_0(const float *src, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        const float d = absmax(src, QK8_0) / 127;
        const float id = d != 0.f ? 1.0f / d : 0.0f;
        y[i].d = el_f32_to_f16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = roundf_i8(src[j] * id);
    }
}

/* Q8_1: as Q8_0, plus s = d * sum(q) (d before its rounding to half). */
void el_quantize_row_q8_1(const float *src, void *dst, int64_t n) {
    block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        const float d = absmax(src, QK8_1) / 127;
        const float id = d != 0.f ? 1.0f / d : 0.0f;
        y[i].d = el_f32_to_f16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            y[i].qs[j] = roundf_i8(src[j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = el_f32_to_f16((float)sum * d);
    }
}

/* Q8_0 and Q8_1 rows made at run time (activations, a Q8_0 KV cache) follow llama.cpp's
 * x86 CPU backend rather than the reference above: id = 127 / amax (not 1 / d) and
 * round half to even (not away from zero). Both rules meet on most inputs, but exact
 * halves do occur in real activations, and one flipped quant moves a matmul output by a
 * whole step (seen on the family fixtures). d is still amax / 127, stored as F16. */
static void q8_act_block(const float *x, int8_t *qs, float *d_out, int *sum) {
    const float amax = absmax(x, 32);
    const float id = amax != 0.f ? 127.f / amax : 0.0f;
    int s = 0;
    for (int j = 0; j < 32; j++) {
        qs[j] = (int8_t)round_clamp(x[j] * id, -128, 127);
        s += qs[j];
    }
    *d_out = amax / 127;
    *sum = s;
}

void el_quantize_act_q8_0(const float *src, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        float d;
        int sum;
        q8_act_block(src, y[i].qs, &d, &sum);
        y[i].d = el_f32_to_f16(d);
    }
}

void el_quantize_act_q8_1(const float *src, void *dst, int64_t n) {
    block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        float d;
        int sum;
        q8_act_block(src, y[i].qs, &d, &sum);
        y[i].d = el_f32_to_f16(d);
        y[i].s = el_f32_to_f16((float)sum * d);
    }
}

/* Q8_K: iscale = -127 / max (max: the signed element of largest magnitude, so it maps to
 * -127), q = min(127, nearest_int(iscale * x)), d = 1 / iscale, bsums = sums of 16. */
void el_quantize_row_q8_K(const float *src, void *dst, int64_t n) {
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float amax = 0.f, max = 0.f;
        for (int j = 0; j < QK_K; j++) {
            float ax = fabsf(src[j]);
            if (ax > amax) {
                amax = ax;
                max = src[j];
            }
        }
        if (amax == 0.f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++) {
            int v = nearest_int(iscale * src[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int k = 0; k < QK_K / 16; k++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[16 * k + l];
            y[i].bsums[k] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- K-quant weight formats: simple RTN ---- */

/* Symmetric sub-block scales: for each of nsub groups of len elements, the signed
 * largest element divided by qmin (a negative number: -4 for Q3_K, -32 for Q6_K). */
static float sym_sub_scales(const float *x, int nsub, int len, float qmin, float *scale) {
    float amax = 0.f, max = 0.f;
    for (int k = 0; k < nsub; k++) {
        scale[k] = signed_absmax(x + k * len, len) / qmin;
        if (fabsf(scale[k]) > amax) {
            amax = fabsf(scale[k]);
            max = scale[k];
        }
    }
    return max;
}

/* Asymmetric sub-block scales: range / qmax, and mins as -min(0, min x) >= 0. */
static void asym_sub_scales(const float *x, int nsub, int len, int qmax, float *scale, float *mins,
                            float *max_scale, float *max_min) {
    *max_scale = 0.f;
    *max_min = 0.f;
    for (int k = 0; k < nsub; k++) {
        float mn, mx;
        min_max(x + k * len, len, &mn, &mx);
        if (mn > 0.f) mn = 0.f;
        scale[k] = (mx - mn) / (float)qmax;
        mins[k] = -mn;
        if (scale[k] > *max_scale) *max_scale = scale[k];
        if (mins[k] > *max_min) *max_min = mins[k];
    }
}

/* q = round((x + ml) / dl) within [0, qmax]; 0 when the step is 0. */
static inline int asym_q(float x, float dl, float ml, int qmax) {
    return dl != 0.f ? round_clamp((x + ml) / dl, 0, qmax) : 0;
}

/* Q2_K: 16 groups of 16, 4-bit scale and min each; x = d*sc*q - dmin*m, q in [0, 3]. */
void el_quantize_row_q2_K(const float *src, void *dst, int64_t n) {
    block_q2_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float scale[16], mins[16], max_scale, max_min;
        asym_sub_scales(src, 16, 16, 3, scale, mins, &max_scale, &max_min);
        const float is = max_scale > 0.f ? 15.f / max_scale : 0.f;
        const float im = max_min > 0.f ? 15.f / max_min : 0.f;
        y[i].d = el_f32_to_f16(max_scale / 15.f);
        y[i].dmin = el_f32_to_f16(max_min / 15.f);
        const float d = el_f16_to_f32(y[i].d), dmin = el_f16_to_f32(y[i].dmin);
        memset(y[i].qs, 0, sizeof y[i].qs);
        for (int k = 0; k < 16; k++) {
            int sc = round_clamp(is * scale[k], 0, 15), m = round_clamp(im * mins[k], 0, 15);
            y[i].scales[k] = (uint8_t)(sc | (m << 4));
            const float dl = d * (float)sc, ml = dmin * (float)m;
            for (int l = 0; l < 16; l++) {
                int e = 16 * k + l; /* element e = 128*h + 32*s + ll lives at bits 2s of qs[32h + ll] */
                int q = asym_q(src[e], dl, ml, 3);
                y[i].qs[32 * (e / 128) + e % 32] |= (uint8_t)(q << (2 * ((e % 128) / 32)));
            }
        }
    }
}

/* Q3_K: 16 groups of 16, signed 6-bit scales; x = d*(sc-32)*q, q in [-4, 3]. */
void el_quantize_row_q3_K(const float *src, void *dst, int64_t n) {
    block_q3_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float scale[16];
        const float max_scale = sym_sub_scales(src, 16, 16, -4.f, scale);
        memset(&y[i], 0, sizeof y[i]);
        /* an all-zero block gets iscale 0: scales 0 (stored 32) and q = 0 (stored 4) */
        const float iscale = max_scale != 0.f ? -32.f / max_scale : 0.f;
        y[i].d = el_f32_to_f16(iscale != 0.f ? 1 / iscale : 0.f);
        const float d = el_f16_to_f32(y[i].d);
        int sc[16];
        for (int k = 0; k < 16; k++) sc[k] = round_clamp(iscale * scale[k], -32, 31);
        for (int k = 0; k < 16; k++) { /* inverse of k3_scales() */
            int v = sc[k] + 32;
            y[i].scales[k % 8] |= (uint8_t)((v & 0x0F) << (k < 8 ? 0 : 4));
            y[i].scales[8 + k % 4] |= (uint8_t)((v >> 4) << (2 * (k / 4)));
        }
        for (int e = 0; e < QK_K; e++) {
            const float dl = d * (float)sc[e / 16];
            int q = dl != 0.f ? round_clamp(src[e] / dl, -4, 3) : 0;
            int h = e / 128, s = (e % 128) / 32, l = e % 32;
            y[i].qs[32 * h + l] |= (uint8_t)(((q + 4) & 3) << (2 * s));
            if (q >= 0) y[i].hmask[l] |= (uint8_t)(1u << (4 * h + s));
        }
    }
}

/* Pack 8 six-bit scales and mins into 12 bytes (inverse of k4_scale_min()). */
static void pack_k4_scales(const int sc[8], const int m[8], uint8_t s[K_SCALE_SIZE]) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4));
    }
}

/* Shared by Q4_K (qmax 15) and Q5_K (qmax 31): 8 groups of 32, 6-bit scales and mins. */
static void quantize_k4_block(const float *x, int qmax, uint16_t *d16, uint16_t *dmin16,
                              uint8_t scales[K_SCALE_SIZE], uint8_t q[QK_K]) {
    float scale[8], mins[8], max_scale, max_min;
    asym_sub_scales(x, 8, 32, qmax, scale, mins, &max_scale, &max_min);
    const float is = max_scale > 0.f ? 63.f / max_scale : 0.f;
    const float im = max_min > 0.f ? 63.f / max_min : 0.f;
    *d16 = el_f32_to_f16(max_scale / 63.f);
    *dmin16 = el_f32_to_f16(max_min / 63.f);
    const float d = el_f16_to_f32(*d16), dmin = el_f16_to_f32(*dmin16);
    int sc[8], m[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = round_clamp(is * scale[j], 0, 63);
        m[j] = round_clamp(im * mins[j], 0, 63);
        const float dl = d * (float)sc[j], ml = dmin * (float)m[j];
        for (int l = 0; l < 32; l++) q[32 * j + l] = (uint8_t)asym_q(x[32 * j + l], dl, ml, qmax);
    }
    pack_k4_scales(sc, m, scales);
}

void el_quantize_row_q4_K(const float *src, void *dst, int64_t n) {
    block_q4_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        uint8_t q[QK_K];
        quantize_k4_block(src, 15, &y[i].d, &y[i].dmin, y[i].scales, q);
        for (int g = 0; g < QK_K / 64; g++)
            for (int l = 0; l < 32; l++)
                y[i].qs[32 * g + l] = (uint8_t)(q[64 * g + l] | (q[64 * g + 32 + l] << 4));
    }
}

void el_quantize_row_q5_K(const float *src, void *dst, int64_t n) {
    block_q5_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        uint8_t q[QK_K];
        quantize_k4_block(src, 31, &y[i].d, &y[i].dmin, y[i].scales, q);
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int g = 0; g < QK_K / 64; g++)
            for (int l = 0; l < 32; l++) {
                int lo = q[64 * g + l], hi = q[64 * g + 32 + l];
                y[i].qs[32 * g + l] = (uint8_t)((lo & 0x0F) | ((hi & 0x0F) << 4));
                y[i].qh[l] |= (uint8_t)(((lo >> 4) << (2 * g)) | ((hi >> 4) << (2 * g + 1)));
            }
    }
}

/* Q6_K: 16 groups of 16, int8 scales; x = d*sc*q, q in [-32, 31]. */
void el_quantize_row_q6_K(const float *src, void *dst, int64_t n) {
    block_q6_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float scale[16];
        const float max_scale = sym_sub_scales(src, 16, 16, -32.f, scale);
        const float iscale = max_scale != 0.f ? -128.f / max_scale : 0.f;
        y[i].d = el_f32_to_f16(iscale != 0.f ? 1 / iscale : 0.f);
        const float d = el_f16_to_f32(y[i].d);
        int q[QK_K];
        for (int k = 0; k < 16; k++) {
            y[i].scales[k] = (int8_t)round_clamp(iscale * scale[k], -128, 127);
            const float dl = d * (float)y[i].scales[k];
            for (int l = 0; l < 16; l++)
                q[16 * k + l] = (dl != 0.f ? round_clamp(src[16 * k + l] / dl, -32, 31) : 0) + 32;
        }
        for (int h = 0; h < QK_K / 128; h++) { /* inverse of unpack_q6_K() */
            uint8_t *ql = y[i].ql + 64 * h, *qh = y[i].qh + 32 * h;
            const int *o = q + 128 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((o[l] & 0x0F) | ((o[l + 64] & 0x0F) << 4));
                ql[l + 32] = (uint8_t)((o[l + 32] & 0x0F) | ((o[l + 96] & 0x0F) << 4));
                qh[l] = (uint8_t)((o[l] >> 4) | ((o[l + 32] >> 4) << 2) | ((o[l + 64] >> 4) << 4) |
                                  ((o[l + 96] >> 4) << 6));
            }
        }
    }
}
