/* arm64 SIMD kernels. dot_neon.c needs only the arm64 baseline (Advanced SIMD);
 * *_dotprod.c need the dot-product extension (call only when the CPU table says dotprod). */
#ifndef EL_KERNELS_ARM_H
#define EL_KERNELS_ARM_H

#include <stdint.h>

float el_vec_dot_f32_neon(int64_t n, const void *w, const void *a);

float el_vec_dot_q4_0_q8_0_dotprod(int64_t n, const void *w, const void *a);
float el_vec_dot_q5_0_q8_0_dotprod(int64_t n, const void *w, const void *a);
float el_vec_dot_q8_0_q8_0_dotprod(int64_t n, const void *w, const void *a);
float el_vec_dot_q4_K_q8_K_dotprod(int64_t n, const void *w, const void *a);
float el_vec_dot_q6_K_q8_K_dotprod(int64_t n, const void *w, const void *a);

#endif
