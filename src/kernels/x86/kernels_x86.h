/* x86 SIMD kernels (compiled with their ISA flags; call only when el_cpu_can_run says so). */
#ifndef EL_KERNELS_X86_H
#define EL_KERNELS_X86_H

#include <stdint.h>

/* AVX2 + FMA + F16C */
float el_vec_dot_f32_avx2(int64_t n, const void *w, const void *a);
float el_vec_dot_f16_avx2(int64_t n, const void *w, const void *a);
float el_vec_dot_bf16_avx2(int64_t n, const void *w, const void *a);
float el_vec_dot_q4_0_q8_0_avx2(int64_t n, const void *w, const void *a);
float el_vec_dot_q4_1_q8_1_avx2(int64_t n, const void *w, const void *a);
float el_vec_dot_q5_0_q8_0_avx2(int64_t n, const void *w, const void *a);
float el_vec_dot_q5_1_q8_1_avx2(int64_t n, const void *w, const void *a);
float el_vec_dot_q8_0_q8_0_avx2(int64_t n, const void *w, const void *a);
float el_vec_dot_q2_K_q8_K_avx2(int64_t n, const void *w, const void *a);
float el_vec_dot_q3_K_q8_K_avx2(int64_t n, const void *w, const void *a);
float el_vec_dot_q4_K_q8_K_avx2(int64_t n, const void *w, const void *a);
float el_vec_dot_q5_K_q8_K_avx2(int64_t n, const void *w, const void *a);
float el_vec_dot_q6_K_q8_K_avx2(int64_t n, const void *w, const void *a);
float el_vec_dot_q8_K_q8_K_avx2(int64_t n, const void *w, const void *a);

void el_quantize_row_q8_0_avx2(const float *src, void *dst, int64_t n);
void el_quantize_row_q8_1_avx2(const float *src, void *dst, int64_t n);
void el_quantize_row_q8_K_avx2(const float *src, void *dst, int64_t n);

/* AVX-512 F + BW + VL + DQ + VNNI */
float el_vec_dot_f32_avx512(int64_t n, const void *w, const void *a);
float el_vec_dot_q4_0_q8_0_avx512(int64_t n, const void *w, const void *a);
float el_vec_dot_q5_0_q8_0_avx512(int64_t n, const void *w, const void *a);
float el_vec_dot_q8_0_q8_0_avx512(int64_t n, const void *w, const void *a);
float el_vec_dot_q4_K_q8_K_avx512(int64_t n, const void *w, const void *a);
float el_vec_dot_q6_K_q8_K_avx512(int64_t n, const void *w, const void *a);

#endif
