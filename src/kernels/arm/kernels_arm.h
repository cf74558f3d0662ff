/* arm64 SIMD kernels. *_neon.c need only the arm64 baseline (Advanced SIMD);
 * *_dotprod.c need the dot-product extension (call only when the CPU table says dotprod),
 * *_i8mm.c the int8 matrix-multiply extension as well (i8mm and dotprod). */
#ifndef EL_KERNELS_ARM_H
#define EL_KERNELS_ARM_H

#include <stdint.h>

#include "kernels/gemm.h"

float el_vec_dot_f32_neon(int64_t n, const void *w, const void *a);
float el_vec_dot_f16_neon(int64_t n, const void *w, const void *a);
float el_vec_dot_bf16_neon(int64_t n, const void *w, const void *a);

/* The quantized dots, as <name>_dotprod (SDOT) and <name>_neon (any arm64 core). */
#define EL_ARM_QUANT_DOTS(SFX)                                                 \
    float el_vec_dot_q4_0_q8_0_##SFX(int64_t n, const void *w, const void *a); \
    float el_vec_dot_q5_0_q8_0_##SFX(int64_t n, const void *w, const void *a); \
    float el_vec_dot_q8_0_q8_0_##SFX(int64_t n, const void *w, const void *a); \
    float el_vec_dot_q4_1_q8_1_##SFX(int64_t n, const void *w, const void *a); \
    float el_vec_dot_q5_1_q8_1_##SFX(int64_t n, const void *w, const void *a); \
    float el_vec_dot_q2_K_q8_K_##SFX(int64_t n, const void *w, const void *a); \
    float el_vec_dot_q3_K_q8_K_##SFX(int64_t n, const void *w, const void *a); \
    float el_vec_dot_q4_K_q8_K_##SFX(int64_t n, const void *w, const void *a); \
    float el_vec_dot_q5_K_q8_K_##SFX(int64_t n, const void *w, const void *a); \
    float el_vec_dot_q6_K_q8_K_##SFX(int64_t n, const void *w, const void *a); \
    float el_vec_dot_q8_K_q8_K_##SFX(int64_t n, const void *w, const void *a);
EL_ARM_QUANT_DOTS(dotprod)
EL_ARM_QUANT_DOTS(neon)

/* Blocked-matmul micro-kernels (contract: kernels/gemm.h) on the portable packers' panels,
 * as <name>_neon (any arm64 core), <name>_dotprod (SDOT) and <name>_i8mm (SMMLA), and
 * one-token gemvs (el_gemv_fn; q4_0/q5_0 take the activations + 128 like the q4 kernels).
 * All of them give bit-identical results for the same inputs. */
#define EL_ARM_GEMM_KERNELS(SFX)                                                                        \
    void el_gemm_q8_##SFX(const void *panel, int64_t nb, const void *const xs[EL_GEMM_TN], int nt,      \
                          float out[EL_GEMM_TN][EL_GEMM_RM]);                                           \
    void el_gemm_q4_##SFX(const void *panel, int64_t nb, const void *const xs[EL_GEMM_TN], int nt,      \
                          float out[EL_GEMM_TN][EL_GEMM_RM]);                                           \
    void el_gemm_k_fbias_##SFX(const void *panel, int64_t nb, const void *const xs[EL_GEMM_TN], int nt, \
                               float out[EL_GEMM_TN][EL_GEMM_RM]);                                      \
    void el_gemm_k_ibias_##SFX(const void *panel, int64_t nb, const void *const xs[EL_GEMM_TN], int nt, \
                               float out[EL_GEMM_TN][EL_GEMM_RM]);
#define EL_ARM_GEMVS(SFX)                                                                              \
    void el_gemv_q8_0_##SFX(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, const void *x, \
                            float out[EL_GEMM_RM]);                                                    \
    void el_gemv_q4_0_##SFX(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, const void *x, \
                            float out[EL_GEMM_RM]);                                                    \
    void el_gemv_q5_0_##SFX(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, const void *x, \
                            float out[EL_GEMM_RM]);                                                    \
    void el_gemv_q4_K_##SFX(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, const void *x, \
                            float out[EL_GEMM_RM]);                                                    \
    void el_gemv_q5_K_##SFX(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, const void *x, \
                            float out[EL_GEMM_RM]);                                                    \
    void el_gemv_q6_K_##SFX(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, const void *x, \
                            float out[EL_GEMM_RM]);
EL_ARM_GEMM_KERNELS(neon)
EL_ARM_GEMM_KERNELS(dotprod)
EL_ARM_GEMM_KERNELS(i8mm)
EL_ARM_GEMVS(neon)
EL_ARM_GEMVS(dotprod)

/* Panel packers (base NEON): byte for byte the portable packers' panels. */
void el_gemm_pack_q8_0_neon(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q4_0_neon(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q5_0_neon(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q4_K_neon(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q6_K_neon(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);

#endif
