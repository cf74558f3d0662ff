/* Reference dot products: weights in their format times activations in the paired
 * format (quant.h). Integer sums per (sub-)block, then float scales, like ggml's
 * generic kernels; the SIMD kernels must agree within float rounding. */
#include <string.h>

#include "quant/blocks.h"
#include "quant/quant.h"
#include "quant/quant_ref.h"
#include "quant/unpack.h"

#define F16(x) el_f16_to_f32(x)

float el_vec_dot_f32_ref(int64_t n, const void *w, const void *a) {
    const float *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)x[i] * (double)y[i];
    return (float)sum;
}

float el_vec_dot_f16_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w;
    const float *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, x + 2 * i, 2);
        sum += (double)el_f16_to_f32(h) * (double)y[i];
    }
    return (float)sum;
}

float el_vec_dot_bf16_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w;
    const float *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, x + 2 * i, 2);
        sum += (double)el_bf16_to_f32(h) * (double)y[i];
    }
    return (float)sum;
}

float el_vec_dot_q4_0_q8_0_ref(int64_t n, const void *w, const void *a) {
    const block_q4_0 *x = w;
    const block_q8_0 *y = a;
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int8_t q[QK4_0];
        unpack_q4_0(&x[i], q);
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++) sumi += q[j] * y[i].qs[j];
        sum += (float)sumi * (F16(x[i].d) * F16(y[i].d));
    }
    return sum;
}

float el_vec_dot_q5_0_q8_0_ref(int64_t n, const void *w, const void *a) {
    const block_q5_0 *x = w;
    const block_q8_0 *y = a;
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int8_t q[QK5_0];
        unpack_q5_0(&x[i], q);
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++) sumi += q[j] * y[i].qs[j];
        sum += (float)sumi * (F16(x[i].d) * F16(y[i].d));
    }
    return sum;
}

float el_vec_dot_q8_0_q8_0_ref(int64_t n, const void *w, const void *a) {
    const block_q8_0 *x = w, *y = a;
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++) sumi += x[i].qs[j] * y[i].qs[j];
        sum += (float)sumi * (F16(x[i].d) * F16(y[i].d));
    }
    return sum;
}

/* x = d*q + m: sum(x*y) = d*dy*sum(q*qy) + m*(dy*sum(qy)) = d*dy*sumi + m*s. */
float el_vec_dot_q4_1_q8_1_ref(int64_t n, const void *w, const void *a) {
    const block_q4_1 *x = w;
    const block_q8_1 *y = a;
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        uint8_t q[QK4_1];
        unpack_q4_1(&x[i], q);
        int sumi = 0;
        for (int j = 0; j < QK8_1; j++) sumi += q[j] * y[i].qs[j];
        sum += (F16(x[i].d) * F16(y[i].d)) * (float)sumi + F16(x[i].m) * F16(y[i].s);
    }
    return sum;
}

float el_vec_dot_q5_1_q8_1_ref(int64_t n, const void *w, const void *a) {
    const block_q5_1 *x = w;
    const block_q8_1 *y = a;
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        uint8_t q[QK5_1];
        unpack_q5_1(&x[i], q);
        int sumi = 0;
        for (int j = 0; j < QK8_1; j++) sumi += q[j] * y[i].qs[j];
        sum += (F16(x[i].d) * F16(y[i].d)) * (float)sumi + F16(x[i].m) * F16(y[i].s);
    }
    return sum;
}

/* Integer dot of 16 quants with 16 activations. */
static inline int dot16_u8(const uint8_t *q, const int8_t *y) {
    int s = 0;
    for (int l = 0; l < 16; l++) s += q[l] * y[l];
    return s;
}

static inline int dot16_i8(const int8_t *q, const int8_t *y) {
    int s = 0;
    for (int l = 0; l < 16; l++) s += q[l] * y[l];
    return s;
}

/* x = d*sc*q - dmin*m per 16: sum = d*dy*sum(sc*qy.q) - dmin*dy*sum(m*bsum). */
float el_vec_dot_q2_K_q8_K_ref(int64_t n, const void *w, const void *a) {
    const block_q2_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t q[QK_K];
        unpack_q2_K(&x[i], q);
        int isum = 0, summs = 0;
        for (int k = 0; k < 16; k++) {
            isum += (x[i].scales[k] & 0x0F) * dot16_u8(q + 16 * k, y[i].qs + 16 * k);
            summs += (x[i].scales[k] >> 4) * y[i].bsums[k];
        }
        const float dall = y[i].d * F16(x[i].d), dmin = y[i].d * F16(x[i].dmin);
        sum += dall * (float)isum - dmin * (float)summs;
    }
    return sum;
}

float el_vec_dot_q3_K_q8_K_ref(int64_t n, const void *w, const void *a) {
    const block_q3_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K], sc[16];
        unpack_q3_K(&x[i], q);
        k3_scales(x[i].scales, sc);
        int isum = 0;
        for (int k = 0; k < 16; k++) isum += sc[k] * dot16_i8(q + 16 * k, y[i].qs + 16 * k);
        sum += y[i].d * F16(x[i].d) * (float)isum;
    }
    return sum;
}

/* Q4_K/Q5_K: 8 groups of 32 with scale sc and min m; the min term uses the bsums. */
static float k4_dot_block(const uint8_t *q, const uint8_t scales[K_SCALE_SIZE], float d, float dmin,
                          const block_q8_K *y) {
    int isum = 0, summs = 0;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        k4_scale_min(scales, j, &sc, &m);
        isum += sc * (dot16_u8(q + 32 * j, y->qs + 32 * j) + dot16_u8(q + 32 * j + 16, y->qs + 32 * j + 16));
        summs += m * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
    }
    return y->d * d * (float)isum - y->d * dmin * (float)summs;
}

float el_vec_dot_q4_K_q8_K_ref(int64_t n, const void *w, const void *a) {
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t q[QK_K];
        unpack_q4_K(&x[i], q);
        sum += k4_dot_block(q, x[i].scales, F16(x[i].d), F16(x[i].dmin), &y[i]);
    }
    return sum;
}

float el_vec_dot_q5_K_q8_K_ref(int64_t n, const void *w, const void *a) {
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t q[QK_K];
        unpack_q5_K(&x[i], q);
        sum += k4_dot_block(q, x[i].scales, F16(x[i].d), F16(x[i].dmin), &y[i]);
    }
    return sum;
}

float el_vec_dot_q6_K_q8_K_ref(int64_t n, const void *w, const void *a) {
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        unpack_q6_K(&x[i], q);
        int isum = 0;
        for (int k = 0; k < 16; k++) isum += x[i].scales[k] * dot16_i8(q + 16 * k, y[i].qs + 16 * k);
        sum += y[i].d * F16(x[i].d) * (float)isum;
    }
    return sum;
}

float el_vec_dot_q8_K_q8_K_ref(int64_t n, const void *w, const void *a) {
    const block_q8_K *x = w, *y = a;
    float sum = 0.f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int isum = 0;
        for (int j = 0; j < QK_K; j++) isum += x[i].qs[j] * y[i].qs[j];
        sum += x[i].d * y[i].d * (float)isum;
    }
    return sum;
}
