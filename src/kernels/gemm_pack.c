/* Panel packing for the blocked matmul, and portable micro-kernels that define
 * what the SIMD ones compute. Layouts: kernels/gemm.h. */
#include <string.h>

#include "kernels/gemm.h"
#include "quant/blocks.h"
#include "quant/unpack.h"

#define RM EL_GEMM_RM
#define TN EL_GEMM_TN

static inline float f16(uint16_t h) { return el_f16_to_f32(h); }

/* ---- q8 / q4 families: 4 rows interleaved 8 elements at a time ---- */

_Static_assert(RM == 4, "q8/q4 panels interleave exactly 4 rows");

static void put_row(int8_t dst[4][32], int r, const int8_t q[32]) {
    for (int k = 0; k < 4; k++) memcpy(&dst[k][8 * r], q + 8 * k, 8);
}

static void put_q8(el_panel_q8 *p, int r, const int8_t q[32], float d) {
    int8_t a[32];
    for (int i = 0; i < 32; i++) a[i] = (int8_t)(q[i] < 0 ? -q[i] : q[i]);
    put_row(p->q, r, q);
    put_row((int8_t(*)[32])p->a, r, a);
    p->d2[2 * r] = p->d2[2 * r + 1] = d;
}

static void put_q4(el_panel_q4 *p, int r, const int8_t q[32], float d) {
    int32_t s[2] = {0, 0};
    for (int i = 0; i < 32; i++) s[(i / 4) % 2] += q[i];
    put_row(p->q, r, q);
    p->corr[2 * r] = 128 * s[0];
    p->corr[2 * r + 1] = 128 * s[1];
    p->d2[2 * r] = p->d2[2 * r + 1] = d;
}

void el_gemm_pack_q8_0(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_q8 *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q8_0 *src = (const block_q8_0 *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) put_q8(&p[b], r, src[b].qs, f16(src[b].d));
    }
}

void el_gemm_pack_q8_0_q4(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_q4 *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q8_0 *src = (const block_q8_0 *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) put_q4(&p[b], r, src[b].qs, f16(src[b].d));
    }
}

void el_gemm_pack_q4_0(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_q4 *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q4_0 *src = (const block_q4_0 *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) {
            int8_t q[32];
            unpack_q4_0(&src[b], q);
            put_q4(&p[b], r, q, f16(src[b].d));
        }
    }
}

void el_gemm_pack_q5_0(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_q4 *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q5_0 *src = (const block_q5_0 *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) {
            int8_t q[32];
            unpack_q5_0(&src[b], q);
            put_q4(&p[b], r, q, f16(src[b].d));
        }
    }
}

void el_gemm_pack_q5_0_r4(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_q4 *p = out;
    const block_q5_0_r4 *g = rows[0]; /* the panel's groups; b0 and nb are even */
    for (int64_t b = 0; b < nb; b++) {
        const block_q5_0_r4 *gb = &g[(b0 + b) / 2];
        const int half = (int)((b0 + b) % 2);
        for (int r = 0; r < RM; r++) {
            int8_t q[32];
            unpack_q5_0_r4(gb, half, r, q);
            put_q4(&p[b], r, q, f16(gb->d[half][r]));
        }
    }
}

void el_gemm_offset_act(void *row, int64_t n) {
    block_q8_0 *x = row;
    for (int64_t b = 0; b < n / QK8_0; b++)
        for (int i = 0; i < QK8_0; i++) x[b].qs[i] = (int8_t)((uint8_t)x[b].qs[i] ^ 0x80);
}

void el_gemm_transpose_act_q8_K(void *row, int64_t n) {
    block_q8_K *x = row;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int8_t t[QK_K];
        for (int g = 0; g < 8; g++)
            for (int v = 0; v < 8; v++) memcpy(t + 32 * v + 4 * g, x[b].qs + 32 * g + 4 * v, 4);
        memcpy(x[b].qs, t, sizeof t);
    }
}

/* ---- k family ---- */

/* Scales per 32 elements (Q4_K, Q5_K): both halves of step j use scale j. */
static void set_scales_32(el_panel_k *p, int r, const uint8_t sc[8]) {
    for (int j = 0; j < 8; j++)
        for (int l = 0; l < 16; l++) p->sc[r][j][l] = sc[j];
}

/* Scales per 16 elements (Q2_K, Q3_K, Q6_K): lanes 0-7 of step j use scale 2j, 8-15 use 2j+1. */
static void set_scales_16(el_panel_k *p, int r, const int16_t sc[16]) {
    for (int j = 0; j < 8; j++)
        for (int l = 0; l < 16; l++) p->sc[r][j][l] = sc[2 * j + l / 8];
}

static void pack_k4_scales(el_panel_k *p, int r, const uint8_t scales[K_SCALE_SIZE], uint16_t d,
                           uint16_t dmin) {
    uint8_t sm[16];
    k4_scales_mins(scales, sm);
    set_scales_32(p, r, sm);
    for (int k = 0; k < 16; k++) p->m[r][k] = sm[8 + k / 2];
    p->da[r] = f16(d);
    p->db[r] = -f16(dmin);
}

/* Q4_K rows in either quant order (unpack: unpack_q4_K or unpack_q4_K_t) into el_panel_k. */
static inline void pack_q4_K_rows(const void *const rows[RM], int64_t b0, int64_t nb, el_panel_k *p,
                                  void (*unpack)(const block_q4_K *, uint8_t *)) {
    for (int r = 0; r < RM; r++) {
        const block_q4_K *src = (const block_q4_K *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) {
            unpack(&src[b], p[b].q[r]);
            pack_k4_scales(&p[b], r, src[b].scales, src[b].d, src[b].dmin);
        }
    }
}

void el_gemm_pack_q4_K(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    pack_q4_K_rows(rows, b0, nb, out, unpack_q4_K);
}

void el_gemm_pack_q4_K_t(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    pack_q4_K_rows(rows, b0, nb, out, unpack_q4_K_t);
}

void el_gemm_pack_q5_K(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_k *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q5_K *src = (const block_q5_K *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) {
            unpack_q5_K(&src[b], p[b].q[r]);
            pack_k4_scales(&p[b], r, src[b].scales, src[b].d, src[b].dmin);
        }
    }
}

void el_gemm_pack_q2_K(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_k *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q2_K *src = (const block_q2_K *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) {
            unpack_q2_K(&src[b], p[b].q[r]);
            int16_t sc[16];
            for (int k = 0; k < 16; k++) {
                sc[k] = src[b].scales[k] & 0x0F;
                p[b].m[r][k] = src[b].scales[k] >> 4;
            }
            set_scales_16(&p[b], r, sc);
            p[b].da[r] = f16(src[b].d);
            p[b].db[r] = -f16(src[b].dmin);
        }
    }
}

/* Signed quants q = u - off are stored as u; the -off * scale * sum(x) part becomes
 * the integer bias m = -off * scale against the activation's bsums. */
void el_gemm_pack_q3_K(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_k *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q3_K *src = (const block_q3_K *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) {
            int8_t q[QK_K], s8[16];
            unpack_q3_K(&src[b], q);
            for (int i = 0; i < QK_K; i++) p[b].q[r][i] = (uint8_t)(q[i] + 4);
            k3_scales(src[b].scales, s8);
            int16_t sc[16];
            for (int k = 0; k < 16; k++) {
                sc[k] = s8[k];
                p[b].m[r][k] = (int16_t)(-4 * s8[k]);
            }
            set_scales_16(&p[b], r, sc);
            p[b].da[r] = f16(src[b].d);
            p[b].db[r] = 0.f;
        }
    }
}

void el_gemm_pack_q6_K(const void *const rows[RM], int64_t b0, int64_t nb, void *out) {
    el_panel_k *p = out;
    for (int r = 0; r < RM; r++) {
        const block_q6_K *src = (const block_q6_K *)rows[r] + b0;
        for (int64_t b = 0; b < nb; b++) {
            int8_t q[QK_K];
            unpack_q6_K(&src[b], q);
            for (int i = 0; i < QK_K; i++) p[b].q[r][i] = (uint8_t)(q[i] + 32);
            int16_t sc[16];
            for (int k = 0; k < 16; k++) {
                sc[k] = src[b].scales[k];
                p[b].m[r][k] = (int16_t)(-32 * src[b].scales[k]);
            }
            set_scales_16(&p[b], r, sc);
            p[b].da[r] = f16(src[b].d);
            p[b].db[r] = 0.f;
        }
    }
}

/* ---- reference micro-kernels ---- */

/* Element 8k + i of row r in an interleaved q8/q4 panel. */
static inline int panel_q(const int8_t q[4][32], int r, int e) { return q[e / 8][8 * r + e % 8]; }

void el_gemm_q8_ref(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    const el_panel_q8 *p = panel;
    for (int t = 0; t < nt; t++) {
        const block_q8_0 *x = xs[t];
        for (int r = 0; r < RM; r++) {
            float sum = 0.f;
            for (int64_t b = 0; b < nb; b++) {
                int32_t s = 0;
                for (int e = 0; e < 32; e++) s += panel_q(p[b].q, r, e) * x[b].qs[e];
                sum += p[b].d2[2 * r] * f16(x[b].d) * (float)s;
            }
            out[t][r] = sum;
        }
    }
}

/* Activations arrive + 128 (act_offset). */
void el_gemm_q4_ref(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    const el_panel_q4 *p = panel;
    for (int t = 0; t < nt; t++) {
        const block_q8_0 *x = xs[t];
        for (int r = 0; r < RM; r++) {
            float sum = 0.f;
            for (int64_t b = 0; b < nb; b++) {
                int32_t s = 0;
                for (int e = 0; e < 32; e++) s += panel_q(p[b].q, r, e) * ((uint8_t)x[b].qs[e] - 128);
                sum += p[b].d2[2 * r] * f16(x[b].d) * (float)s;
            }
            out[t][r] = sum;
        }
    }
}

static void gemm_k_ref(const el_panel_k *p, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM],
                       bool int_bias) {
    for (int t = 0; t < nt; t++) {
        const block_q8_K *x = xs[t];
        for (int r = 0; r < RM; r++) {
            float sum = 0.f;
            for (int64_t b = 0; b < nb; b++) {
                int32_t s = 0, bias = 0;
                for (int i = 0; i < QK_K; i++) s += p[b].sc[r][i / 32][(i % 32) / 2] * p[b].q[r][i] * x[b].qs[i];
                for (int k = 0; k < 16; k++) bias += p[b].m[r][k] * x[b].bsums[k];
                if (int_bias)
                    sum += x[b].d * p[b].da[r] * (float)(s + bias);
                else
                    sum += x[b].d * (p[b].da[r] * (float)s + p[b].db[r] * (float)bias);
            }
            out[t][r] = sum;
        }
    }
}

void el_gemm_k_fbias_ref(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    gemm_k_ref(panel, nb, xs, nt, out, false);
}

void el_gemm_k_ibias_ref(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    gemm_k_ref(panel, nb, xs, nt, out, true);
}
