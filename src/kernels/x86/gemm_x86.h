/* x86 micro-kernels, packers and one-token gemvs of the blocked matmul (contract:
 * kernels/gemm.h). The kernels and gemvs come in three variants of one source
 * (gemm_tiles_impl.h), with the same results bit for bit:
 *   _avx2     AVX2 (call only when the CPU-feature level allows AVX2);
 *   _avx512   AVX-512 VNNI on 256-bit vectors (only when the level is avx512);
 *   _avxvnni  AVX-VNNI, the VEX form of the same instructions (only where the CPU has it).
 * The packers exist once (AVX2): every variant reads the same panels. */
#ifndef EL_KERNELS_X86_GEMM_X86_H
#define EL_KERNELS_X86_GEMM_X86_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/gemm.h"

#define EL_X86_KERNEL(name)                                                                                  \
    void name(const void *panel, int64_t nb, const void *const xs[EL_GEMM_TN], int nt,                     \
              float out[EL_GEMM_TN][EL_GEMM_RM])
#define EL_X86_KERNEL2(name)                                                                                 \
    void name(const void *panel0, const void *panel1, int64_t nb, const void *const xs[EL_GEMM_TN],        \
              const float *const dx[EL_GEMM_TN], float out[EL_GEMM_TN][2 * EL_GEMM_RM])
/* One token against 4 rows straight from their blocks [b0, b0+nb): bit-identical to the
 * kernel with nt = 1 on the packed panel (see kernels/gemm.h, el_gemv_fn). */
#define EL_X86_GEMV(name)                                                                                    \
    void name(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, const void *x, float out[EL_GEMM_RM])
/* n_panels whole panels of consecutive rows (kernels/gemm.h, el_gemv_span_fn). */
#define EL_X86_GEMV_SPAN(name)                                                                               \
    void name(const void *w, size_t w_row, int64_t n_panels, int64_t nb, const void *x, float *y)

/* A few tokens against n_panels whole panels (kernels/gemm.h, el_gemv_few_fn). */
#define EL_X86_GEMV_FEW(name)                                                                                \
    void name(const void *w, size_t w_row, int64_t n_panels, int64_t nb, const void *x, size_t x_row, int nt, \
              float *y, int64_t y_stride)

/* Every kernel and gemv of one variant (suffix SFX). */
#define EL_X86_VARIANT(SFX)                                                                                  \
    EL_X86_KERNEL(el_gemm_q8_##SFX);                                                                         \
    EL_X86_KERNEL(el_gemm_q4_##SFX);                                                                         \
    EL_X86_KERNEL2(el_gemm_q4x2_##SFX);                                                                      \
    EL_X86_KERNEL2(el_gemm_q8x2_##SFX);                                                                      \
    EL_X86_KERNEL(el_gemm_k_fbias_##SFX);                                                                    \
    EL_X86_KERNEL(el_gemm_k_ibias_##SFX);                                                                    \
    EL_X86_KERNEL(el_gemm_kp_fbias_##SFX);                                                                   \
    EL_X86_KERNEL(el_gemm_kp_ibias_##SFX);                                                                   \
    EL_X86_KERNEL(el_gemm_kt_fbias_##SFX);                                                                   \
    EL_X86_GEMV(el_gemv_q8_0_##SFX);                                                                         \
    EL_X86_GEMV(el_gemv_q8_0_off_##SFX);                                                                     \
    EL_X86_GEMV(el_gemv_q4_0_##SFX);                                                                         \
    EL_X86_GEMV(el_gemv_q5_0_##SFX);                                                                         \
    EL_X86_GEMV(el_gemv_q5_0_r4_##SFX);                                                                      \
    EL_X86_GEMV(el_gemv_q4_K_##SFX);                                                                         \
    EL_X86_GEMV(el_gemv_q4_K_t_##SFX);                                                                       \
    EL_X86_GEMV(el_gemv_q6_K_##SFX);                                                                         \
    EL_X86_GEMV_SPAN(el_gemv_q8_0_span_##SFX);                                                               \
    EL_X86_GEMV_SPAN(el_gemv_q8_0_off_span_##SFX);                                                           \
    EL_X86_GEMV_SPAN(el_gemv_q4_0_span_##SFX);                                                               \
    EL_X86_GEMV_SPAN(el_gemv_q5_0_span_##SFX);                                                               \
    EL_X86_GEMV_SPAN(el_gemv_q5_0_r4_span_##SFX);                                                            \
    EL_X86_GEMV_SPAN(el_gemv_q4_K_span_##SFX);                                                               \
    EL_X86_GEMV_SPAN(el_gemv_q4_K_t_span_##SFX);                                                             \
    EL_X86_GEMV_SPAN(el_gemv_q6_K_span_##SFX);                                                               \
    EL_X86_GEMV_FEW(el_gemv_q4_0_few_##SFX);                                                                 \
    EL_X86_GEMV_FEW(el_gemv_q5_0_r4_few_##SFX);                                                              \
    EL_X86_GEMV_FEW(el_gemv_q4_K_few_##SFX);                                                                 \
    EL_X86_GEMV_FEW(el_gemv_q4_K_t_few_##SFX);                                                               \
    EL_X86_GEMV_FEW(el_gemv_q6_K_few_##SFX)

EL_X86_VARIANT(avx2);
EL_X86_VARIANT(avx512);
EL_X86_VARIANT(avxvnni);

/* Packers (AVX2; the same panels as kernels/gemm_pack.c). */
void el_gemm_pack_q4_K_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q6_K_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_kp_q4_K_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_kp_q6_K_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_kt_q4_K_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_kt_q4_K_t_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q8_0_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q8_0_q4_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q4_0_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q5_0_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q5_0_r4_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);

#endif
