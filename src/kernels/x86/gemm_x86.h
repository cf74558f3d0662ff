/* x86 micro-kernels of the blocked matmul (contract: kernels/gemm.h). Call only
 * when the CPU-feature level allows AVX2. */
#ifndef EL_KERNELS_X86_GEMM_X86_H
#define EL_KERNELS_X86_GEMM_X86_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/gemm.h"

void el_gemm_q8_avx2(const void *panel, int64_t nb, const void *const xs[EL_GEMM_TN], int nt,
                     float out[EL_GEMM_TN][EL_GEMM_RM]);
void el_gemm_q4_avx2(const void *panel, int64_t nb, const void *const xs[EL_GEMM_TN], int nt,
                     float out[EL_GEMM_TN][EL_GEMM_RM]);
void el_gemm_q4x2_avx2(const void *panel0, const void *panel1, int64_t nb, const void *const xs[EL_GEMM_TN],
                       const float *const dx[EL_GEMM_TN], float out[EL_GEMM_TN][2 * EL_GEMM_RM]);
void el_gemm_q8x2_avx2(const void *panel0, const void *panel1, int64_t nb, const void *const xs[EL_GEMM_TN],
                       const float *const dx[EL_GEMM_TN], float out[EL_GEMM_TN][2 * EL_GEMM_RM]);
void el_gemm_k_fbias_avx2(const void *panel, int64_t nb, const void *const xs[EL_GEMM_TN], int nt,
                          float out[EL_GEMM_TN][EL_GEMM_RM]);
void el_gemm_k_ibias_avx2(const void *panel, int64_t nb, const void *const xs[EL_GEMM_TN], int nt,
                          float out[EL_GEMM_TN][EL_GEMM_RM]);
void el_gemm_kp_fbias_avx2(const void *panel, int64_t nb, const void *const xs[EL_GEMM_TN], int nt,
                           float out[EL_GEMM_TN][EL_GEMM_RM]);
void el_gemm_kp_ibias_avx2(const void *panel, int64_t nb, const void *const xs[EL_GEMM_TN], int nt,
                           float out[EL_GEMM_TN][EL_GEMM_RM]);
void el_gemm_pack_kp_q4_K_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_kp_q6_K_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);

void el_gemm_pack_q4_K_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q6_K_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q8_0_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q4_0_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q5_0_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q5_0_r4_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);

/* One token against 4 rows straight from their blocks [b0, b0+nb): bit-identical to the
 * kernel above with nt = 1 on the packed panel (see kernels/gemm.h, el_gemv_fn). */
void el_gemv_q8_0_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, const void *x, float out[EL_GEMM_RM]);
void el_gemv_q4_0_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, const void *x, float out[EL_GEMM_RM]);
void el_gemv_q5_0_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, const void *x, float out[EL_GEMM_RM]);
void el_gemv_q5_0_r4_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, const void *x, float out[EL_GEMM_RM]);
void el_gemv_q4_K_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, const void *x, float out[EL_GEMM_RM]);
void el_gemv_q6_K_avx2(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, const void *x, float out[EL_GEMM_RM]);

/* n_panels whole panels of consecutive rows (kernels/gemm.h, el_gemv_span_fn). */
void el_gemv_q8_0_avx2_span(const void *w, size_t w_row, int64_t n_panels, int64_t nb, const void *x, float *y);
void el_gemv_q4_0_avx2_span(const void *w, size_t w_row, int64_t n_panels, int64_t nb, const void *x, float *y);
void el_gemv_q5_0_avx2_span(const void *w, size_t w_row, int64_t n_panels, int64_t nb, const void *x, float *y);
void el_gemv_q5_0_r4_avx2_span(const void *w, size_t w_row, int64_t n_panels, int64_t nb, const void *x, float *y);
void el_gemv_q4_K_avx2_span(const void *w, size_t w_row, int64_t n_panels, int64_t nb, const void *x, float *y);
void el_gemv_q6_K_avx2_span(const void *w, size_t w_row, int64_t n_panels, int64_t nb, const void *x, float *y);

#endif
