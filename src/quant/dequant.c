/* Reference dequantization, bit-exact with ggml: every value is computed with the same
 * float operations in the same order as ggml's dequantize_row_* (e.g. Q4_K's
 * (d*sc)*q - dmin*m), so no fused multiply-add may be formed here. */
#include <string.h>

#include "quant/blocks.h"
#include "quant/quant.h"
#include "quant/quant_ref.h"
#include "quant/unpack.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define F16(x) el_f16_to_f32(x)

void el_dequantize_row_f32(const void *src, float *dst, int64_t n) { memmove(dst, src, (size_t)n * sizeof(float)); }

void el_dequantize_row_f16(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = el_f16_to_f32(h);
    }
}

void el_dequantize_row_bf16(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = el_bf16_to_f32(h);
    }
}

void el_dequantize_row_q4_0(const void *src, float *dst, int64_t n) {
    const block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        int8_t q[QK4_0];
        unpack_q4_0(&b[i], q);
        const float d = F16(b[i].d);
        for (int j = 0; j < QK4_0; j++) dst[j] = (float)q[j] * d;
    }
}

void el_dequantize_row_q4_1(const void *src, float *dst, int64_t n) {
    const block_q4_1 *b = src;
    for (int64_t i = 0; i < n / QK4_1; i++, dst += QK4_1) {
        uint8_t q[QK4_1];
        unpack_q4_1(&b[i], q);
        const float d = F16(b[i].d), m = F16(b[i].m);
        for (int j = 0; j < QK4_1; j++) dst[j] = (float)q[j] * d + m;
    }
}

void el_dequantize_row_q5_0(const void *src, float *dst, int64_t n) {
    const block_q5_0 *b = src;
    for (int64_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
        int8_t q[QK5_0];
        unpack_q5_0(&b[i], q);
        const float d = F16(b[i].d);
        for (int j = 0; j < QK5_0; j++) dst[j] = (float)q[j] * d;
    }
}

void el_dequantize_row_q5_1(const void *src, float *dst, int64_t n) {
    const block_q5_1 *b = src;
    for (int64_t i = 0; i < n / QK5_1; i++, dst += QK5_1) {
        uint8_t q[QK5_1];
        unpack_q5_1(&b[i], q);
        const float d = F16(b[i].d), m = F16(b[i].m);
        for (int j = 0; j < QK5_1; j++) dst[j] = (float)q[j] * d + m;
    }
}

void el_dequantize_row_q8_0(const void *src, float *dst, int64_t n) {
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        const float d = F16(b[i].d);
        for (int j = 0; j < QK8_0; j++) dst[j] = (float)b[i].qs[j] * d;
    }
}

void el_dequantize_row_q8_1(const void *src, float *dst, int64_t n) {
    const block_q8_1 *b = src;
    for (int64_t i = 0; i < n / QK8_1; i++, dst += QK8_1) {
        const float d = F16(b[i].d);
        for (int j = 0; j < QK8_1; j++) dst[j] = (float)b[i].qs[j] * d;
    }
}

/* x = (d * (sc & 15)) * q - dmin * (sc >> 4), per 16 elements. */
void el_dequantize_row_q2_K(const void *src, float *dst, int64_t n) {
    const block_q2_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        uint8_t q[QK_K];
        unpack_q2_K(&b[i], q);
        const float d = F16(b[i].d), dmin = F16(b[i].dmin);
        for (int k = 0; k < QK_K / 16; k++) {
            const float dl = d * (float)(b[i].scales[k] & 0x0F);
            const float ml = dmin * (float)(b[i].scales[k] >> 4);
            for (int l = 0; l < 16; l++) dst[16 * k + l] = dl * (float)q[16 * k + l] - ml;
        }
    }
}

/* x = (d * (sc - 32)) * q, q in [-4, 3], per 16 elements. */
void el_dequantize_row_q3_K(const void *src, float *dst, int64_t n) {
    const block_q3_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        int8_t q[QK_K], sc[16];
        unpack_q3_K(&b[i], q);
        k3_scales(b[i].scales, sc);
        const float d = F16(b[i].d);
        for (int k = 0; k < QK_K / 16; k++) {
            const float dl = d * (float)sc[k];
            for (int l = 0; l < 16; l++) dst[16 * k + l] = dl * (float)q[16 * k + l];
        }
    }
}

/* x = (d * sc) * q - dmin * m, per 32 elements. */
void el_dequantize_row_q4_K(const void *src, float *dst, int64_t n) {
    const block_q4_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        uint8_t q[QK_K];
        unpack_q4_K(&b[i], q);
        const float d = F16(b[i].d), dmin = F16(b[i].dmin);
        for (int j = 0; j < QK_K / 32; j++) {
            uint8_t sc, m;
            k4_scale_min(b[i].scales, j, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            for (int l = 0; l < 32; l++) dst[32 * j + l] = d1 * (float)q[32 * j + l] - m1;
        }
    }
}

void el_dequantize_row_q5_K(const void *src, float *dst, int64_t n) {
    const block_q5_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        uint8_t q[QK_K];
        unpack_q5_K(&b[i], q);
        const float d = F16(b[i].d), dmin = F16(b[i].dmin);
        for (int j = 0; j < QK_K / 32; j++) {
            uint8_t sc, m;
            k4_scale_min(b[i].scales, j, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            for (int l = 0; l < 32; l++) dst[32 * j + l] = d1 * (float)q[32 * j + l] - m1;
        }
    }
}

/* x = (d * sc) * q, q in [-32, 31], per 16 elements. */
void el_dequantize_row_q6_K(const void *src, float *dst, int64_t n) {
    const block_q6_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        int8_t q[QK_K];
        unpack_q6_K(&b[i], q);
        const float d = F16(b[i].d);
        for (int k = 0; k < QK_K / 16; k++) {
            const float dl = d * (float)b[i].scales[k];
            for (int l = 0; l < 16; l++) dst[16 * k + l] = dl * (float)q[16 * k + l];
        }
    }
}

void el_dequantize_row_q8_K(const void *src, float *dst, int64_t n) {
    const block_q8_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K)
        for (int j = 0; j < QK_K; j++) dst[j] = b[i].d * (float)b[i].qs[j];
}
