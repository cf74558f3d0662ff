/* Scalar unpacking of every block format into plain integers: the one place that knows
 * where each bit lives. Used by the reference dequantizers, dot products and tests. */
#ifndef EL_QUANT_UNPACK_H
#define EL_QUANT_UNPACK_H

#include <stdint.h>
#include <string.h>

#include "quant/blocks.h"

/* Q4_0: q in [-8, 7]; element j is the low nibble of qs[j], element j+16 the high one. */
static inline void unpack_q4_0(const block_q4_0 *b, int8_t q[QK4_0]) {
    for (int j = 0; j < QK4_0 / 2; j++) {
        q[j] = (int8_t)((b->qs[j] & 0x0F) - 8);
        q[j + QK4_0 / 2] = (int8_t)((b->qs[j] >> 4) - 8);
    }
}

/* Q4_1: q in [0, 15]. */
static inline void unpack_q4_1(const block_q4_1 *b, uint8_t q[QK4_1]) {
    for (int j = 0; j < QK4_1 / 2; j++) {
        q[j] = b->qs[j] & 0x0F;
        q[j + QK4_1 / 2] = b->qs[j] >> 4;
    }
}

/* 5-bit quants: low nibbles as Q4, bit j of the little-endian 32-bit qh is bit 4 of element j. */
static inline void unpack_5bit(const uint8_t qh_bytes[4], const uint8_t qs[16], uint8_t q[32]) {
    uint32_t qh;
    memcpy(&qh, qh_bytes, sizeof qh);
    for (int j = 0; j < 16; j++) {
        q[j] = (uint8_t)((qs[j] & 0x0F) | (((qh >> j) & 1) << 4));
        q[j + 16] = (uint8_t)((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
    }
}

/* Q5_0: q in [-16, 15]. */
static inline void unpack_q5_0(const block_q5_0 *b, int8_t q[QK5_0]) {
    uint8_t u[QK5_0];
    unpack_5bit(b->qh, b->qs, u);
    for (int j = 0; j < QK5_0; j++) q[j] = (int8_t)(u[j] - 16);
}

/* Row r (0-3), block b (0-1) of a Q5_0_R4 group: q in [-16, 15], as unpack_q5_0 gives
 * for the Q5_0 block it came from (layout: quant/blocks.h). */
static inline void unpack_q5_0_r4(const block_q5_0_r4 *g, int b, int r, int8_t q[QK5_0]) {
    const int p = r % 2, side = 16 * (r / 2);
    for (int j = 0; j < QK5_0; j++) {
        const int h = j / 16, i = side + j % 16, v = 4 * b + 2 * p + h;
        const uint8_t byte = g->qs[b][p][i];
        const int nib = h ? byte >> 4 : byte & 0x0F;
        q[j] = (int8_t)((nib | ((g->qh[i] >> v) & 1) << 4) - 16);
    }
}

/* Q5_1: q in [0, 31]. */
static inline void unpack_q5_1(const block_q5_1 *b, uint8_t q[QK5_1]) { unpack_5bit(b->qh, b->qs, q); }

/* Q4_K / Q5_K: 8 six-bit scales and 8 six-bit mins in 12 bytes.
 * Sub-blocks 0..3: scale = s[j] & 63, min = s[j+4] & 63.
 * Sub-blocks 4..7: low 4 bits from s[j+4] (scale: low nibble, min: high nibble),
 *                  high 2 bits from the top bits of s[j-4] (scale) and s[j] (min). */
static inline void k4_scale_min(const uint8_t s[K_SCALE_SIZE], int j, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* All 8 scales (out[0..7]) and 8 mins (out[8..15]) of a Q4_K/Q5_K block at once,
 * with 32-bit word operations (same result as k4_scale_min for each j). */
static inline void k4_scales_mins(const uint8_t s[K_SCALE_SIZE], uint8_t out[16]) {
    uint32_t u[4];
    memcpy(u, s, K_SCALE_SIZE);
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    u[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4); /* mins 4..7 */
    const uint32_t mins03 = u[1] & m6;
    u[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4); /* scales 4..7 */
    u[2] = mins03;
    u[0] &= m6; /* scales 0..3 */
    memcpy(out, u, 16);
}

/* Q3_K: 16 six-bit scales (stored +32) in 12 bytes: the low nibbles of scale k in
 * byte k%8 (low nibble for k<8, high for k>=8), the 2 high bits in byte 8 + k%4
 * at bit 2*(k/4). k3_scales_raw gives the stored values (0..63), with 32-bit word
 * operations; k3_scales gives scale - 32 in [-32, 31]. */
static inline void k3_scales_raw(const uint8_t s[12], uint8_t out[16]) {
    uint32_t a[3], o[4];
    memcpy(a, s, 12);
    const uint32_t m4 = 0x0f0f0f0f, m2 = 0x03030303;
    o[0] = (a[0] & m4) | (((a[2] >> 0) & m2) << 4);        /* scales 0..3 */
    o[1] = (a[1] & m4) | (((a[2] >> 2) & m2) << 4);        /* scales 4..7 */
    o[2] = ((a[0] >> 4) & m4) | (((a[2] >> 4) & m2) << 4); /* scales 8..11 */
    o[3] = ((a[1] >> 4) & m4) | (((a[2] >> 6) & m2) << 4); /* scales 12..15 */
    memcpy(out, o, 16);
}

static inline void k3_scales(const uint8_t s[12], int8_t out[16]) {
    uint8_t raw[16];
    k3_scales_raw(s, raw);
    for (int k = 0; k < 16; k++) out[k] = (int8_t)(raw[k] - 32);
}

/* The K-quants with 2-bit fields (Q2_K, Q3_K low bits) store element 128*h + 32*s + l
 * (l < 32) at bits 2s..2s+1 of qs[32*h + l]. Q3_K's high bit of the same element is
 * bit (4*h + s) of hmask[l]; when it is 0 the value is lowered by 4. */
static inline void unpack_q2_K(const block_q2_K *b, uint8_t q[QK_K]) {
    for (int h = 0; h < QK_K / 128; h++)
        for (int s = 0; s < 4; s++)
            for (int l = 0; l < 32; l++) q[128 * h + 32 * s + l] = (b->qs[32 * h + l] >> (2 * s)) & 3;
}

static inline void unpack_q3_K(const block_q3_K *b, int8_t q[QK_K]) {
    for (int h = 0; h < QK_K / 128; h++)
        for (int s = 0; s < 4; s++)
            for (int l = 0; l < 32; l++) {
                int lo = (b->qs[32 * h + l] >> (2 * s)) & 3;
                int hb = (b->hmask[l] >> (4 * h + s)) & 1;
                q[128 * h + 32 * s + l] = (int8_t)(lo - (hb ? 0 : 4));
            }
}

/* Q4_K: element 64*g + l is the low nibble of qs[32*g + l], element 64*g + 32 + l the high one. */
static inline void unpack_q4_K(const block_q4_K *b, uint8_t q[QK_K]) {
    for (int g = 0; g < QK_K / 64; g++)
        for (int l = 0; l < 32; l++) {
            q[64 * g + l] = b->qs[32 * g + l] & 0x0F;
            q[64 * g + 32 + l] = b->qs[32 * g + l] >> 4;
        }
}

/* Q4_K_T (quant/blocks.h): the same quants as unpack_q4_K of the block it came from. */
static inline void unpack_q4_K_t(const block_q4_K *b, uint8_t q[QK_K]) {
    for (int c = 0; c < 4; c++)
        for (int g = 0; g < 8; g++)
            for (int i = 0; i < 4; i++) {
                const uint8_t byte = b->qs[32 * c + 4 * g + i];
                q[32 * g + 4 * c + i] = byte & 0x0F;
                q[32 * g + 4 * c + 16 + i] = byte >> 4;
            }
}

/* Q5_K: as Q4_K; bit 4 of element 32*s + l is bit s of qh[l]. */
static inline void unpack_q5_K(const block_q5_K *b, uint8_t q[QK_K]) {
    for (int g = 0; g < QK_K / 64; g++)
        for (int l = 0; l < 32; l++) {
            int lo = b->qs[32 * g + l] & 0x0F, hi = b->qs[32 * g + l] >> 4;
            q[64 * g + l] = (uint8_t)(lo | (((b->qh[l] >> (2 * g)) & 1) << 4));
            q[64 * g + 32 + l] = (uint8_t)(hi | (((b->qh[l] >> (2 * g + 1)) & 1) << 4));
        }
}

/* Q6_K, per half h of 128 elements (ql += 64, qh += 32), l < 32:
 *   element l      : ql[l]    low nibble, qh[l] bits 0-1
 *   element l + 32 : ql[l+32] low nibble, qh[l] bits 2-3
 *   element l + 64 : ql[l]    high nibble, qh[l] bits 4-5
 *   element l + 96 : ql[l+32] high nibble, qh[l] bits 6-7
 * q in [-32, 31]. */
static inline void unpack_q6_K(const block_q6_K *b, int8_t q[QK_K]) {
    for (int h = 0; h < QK_K / 128; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        int8_t *o = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            o[l] = (int8_t)(((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32);
            o[l + 32] = (int8_t)(((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32);
            o[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

#endif
