/* arm64 panel packers for the blocked matmul (base Advanced SIMD, any arm64 core): the
 * same panels, byte for byte, as the portable packers in kernels/gemm_pack.c (layouts:
 * kernels/gemm.h), with each block decoded in vectors instead of element by element.
 * A panel is packed once per token block and then serves every token of it, so for short
 * prompts its cost is not small next to the micro-kernel's. */
#include <arm_neon.h>

#include "kernels/arm/arm_quants.h"
#include "kernels/arm/kernels_arm.h"
#include "kernels/gemm.h"
#include "quant/unpack.h"

#define RM EL_GEMM_RM

_Static_assert(RM == 4, "q8/q4 panels interleave exactly 4 rows");

/* Row r's 32 quants (lo: elements 0..15, hi: 16..31) into q[k][8r..8r+7] = elements 8k.. */
static inline void put_row_q(int8_t q[4][32], int r, int8x16_t lo, int8x16_t hi) {
    vst1_s8(&q[0][8 * r], vget_low_s8(lo));
    vst1_s8(&q[1][8 * r], vget_high_s8(lo));
    vst1_s8(&q[2][8 * r], vget_low_s8(hi));
    vst1_s8(&q[3][8 * r], vget_high_s8(hi));
}

static inline void put_q8(el_panel_q8 *p, int r, int8x16_t lo, int8x16_t hi, float d) {
    put_row_q(p->q, r, lo, hi);
    put_row_q((int8_t(*)[32])p->a, r, vabsq_s8(lo), vabsq_s8(hi)); /* |-128| wraps as in the portable one */
    p->d2[2 * r] = p->d2[2 * r + 1] = d;
}

/* corr[2r + h] = 128 * sum of the quants 8k + 4h + i (i < 4): element j and j + 16 share
 * h, and |q| <= 16 lets their int8 sum be exact; the lanes of 4 are then h = 0, 1, 0, 1. */
static inline void put_q4(el_panel_q4 *p, int r, int8x16_t lo, int8x16_t hi, float d) {
    const int32x4_t s4 = vpaddlq_s16(vpaddlq_s8(vaddq_s8(lo, hi)));
    put_row_q(p->q, r, lo, hi);
    p->corr[2 * r] = 128 * (vgetq_lane_s32(s4, 0) + vgetq_lane_s32(s4, 2));
    p->corr[2 * r + 1] = 128 * (vgetq_lane_s32(s4, 1) + vgetq_lane_s32(s4, 3));
    p->d2[2 * r] = p->d2[2 * r + 1] = d;
}

void el_gemm_pack_q8_0_neon(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_q8 *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q8_0 *src = (const block_q8_0 *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) {
            int8x16_t lo, hi;
            q8_0_quants(&src[b], &lo, &hi);
            put_q8(&p[b], r, lo, hi, arm_f16(src[b].d));
        }
    }
}

void el_gemm_pack_q4_0_neon(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_q4 *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q4_0 *src = (const block_q4_0 *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) {
            int8x16_t lo, hi;
            q4_0_quants(&src[b], &lo, &hi);
            put_q4(&p[b], r, lo, hi, arm_f16(src[b].d));
        }
    }
}

void el_gemm_pack_q5_0_neon(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_q4 *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q5_0 *src = (const block_q5_0 *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) {
            int8x16_t lo, hi;
            q5_0_quants(&src[b], &lo, &hi);
            put_q4(&p[b], r, lo, hi, arm_f16(src[b].d));
        }
    }
}

/* K panels: sc[r][j][l] for the 16 int16 lanes of step j (lanes 0-7: elements 32j..32j+15). */
static inline void put_scales_pairs(el_panel_k *p, int r, int j, int16_t s_lo, int16_t s_hi) {
    vst1q_s16(p->sc[r][j], vdupq_n_s16(s_lo));
    vst1q_s16(p->sc[r][j] + 8, vdupq_n_s16(s_hi));
}

void el_gemm_pack_q4_K_neon(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_k *p = out;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    for (int r = 0; r < RM; r++) {
        const block_q4_K *src = (const block_q4_K *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *q = p[b].q[r];
            for (int g = 0; g < 4; g++) { /* element 64g + l: low nibble of qs[32g + l], 64g + 32 + l: high */
                const uint8x16_t v0 = vld1q_u8(src[b].qs + 32 * g), v1 = vld1q_u8(src[b].qs + 32 * g + 16);
                vst1q_u8(q + 64 * g, vandq_u8(v0, m4));
                vst1q_u8(q + 64 * g + 16, vandq_u8(v1, m4));
                vst1q_u8(q + 64 * g + 32, vshrq_n_u8(v0, 4));
                vst1q_u8(q + 64 * g + 48, vshrq_n_u8(v1, 4));
            }
            uint8_t sm[16];
            k4_scales_mins(src[b].scales, sm);
            for (int j = 0; j < 8; j++) put_scales_pairs(&p[b], r, j, sm[j], sm[j]);
            /* m per 16 = the min of its 32: each min twice */
            const uint8x8_t mins = vld1_u8(sm + 8);
            const uint8x16_t twice = vcombine_u8(vzip1_u8(mins, mins), vzip2_u8(mins, mins));
            vst1q_s16(p[b].m[r], vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(twice))));
            vst1q_s16(p[b].m[r] + 8, vreinterpretq_s16_u16(vmovl_high_u8(twice)));
            p[b].da[r] = arm_f16(src[b].d);
            p[b].db[r] = -arm_f16(src[b].dmin);
        }
    }
}

void el_gemm_pack_q6_K_neon(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_k *p = out;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(0x03);
    for (int r = 0; r < RM; r++) {
        const block_q6_K *src = (const block_q6_K *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *q = p[b].q[r];
            for (int h = 0; h < 2; h++) { /* the stored 6-bit values: q + 32 of unpack_q6_K */
                const uint8_t *ql = src[b].ql + 64 * h, *qh = src[b].qh + 32 * h;
                for (int half = 0; half < 2; half++) {
                    const uint8x16_t lA = vld1q_u8(ql + 16 * half), lB = vld1q_u8(ql + 32 + 16 * half);
                    const uint8x16_t hb = vld1q_u8(qh + 16 * half);
                    uint8_t *o = q + 128 * h + 16 * half;
                    vst1q_u8(o, vorrq_u8(vandq_u8(lA, m4), vshlq_n_u8(vandq_u8(hb, m3), 4)));
                    vst1q_u8(o + 32, vorrq_u8(vandq_u8(lB, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m3), 4)));
                    vst1q_u8(o + 64, vorrq_u8(vshrq_n_u8(lA, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m3), 4)));
                    vst1q_u8(o + 96, vorrq_u8(vshrq_n_u8(lB, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4)));
                }
            }
            const int8_t *s = src[b].scales;
            for (int j = 0; j < 8; j++) put_scales_pairs(&p[b], r, j, s[2 * j], s[2 * j + 1]);
            const int16x8_t s0 = vmovl_s8(vld1_s8(s)), s1 = vmovl_s8(vld1_s8(s + 8));
            vst1q_s16(p[b].m[r], vmulq_n_s16(s0, -32));
            vst1q_s16(p[b].m[r] + 8, vmulq_n_s16(s1, -32));
            p[b].da[r] = arm_f16(src[b].d);
            p[b].db[r] = 0.f;
        }
    }
}
