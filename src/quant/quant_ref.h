/* Scalar reference implementations behind the traits table (internal to the library;
 * kernels and tests may call them directly). n is always a multiple of the block size. */
#ifndef EL_QUANT_REF_H
#define EL_QUANT_REF_H

#include <stdint.h>

/* Dequantize: bit-exact with ggml's dequantize_row_* (same float operations in the same order). */
void el_dequantize_row_f32(const void *src, float *dst, int64_t n);
void el_dequantize_row_f16(const void *src, float *dst, int64_t n);
void el_dequantize_row_bf16(const void *src, float *dst, int64_t n);
void el_dequantize_row_q4_0(const void *src, float *dst, int64_t n);
void el_dequantize_row_q4_1(const void *src, float *dst, int64_t n);
void el_dequantize_row_q5_0(const void *src, float *dst, int64_t n);
void el_dequantize_row_q5_1(const void *src, float *dst, int64_t n);
void el_dequantize_row_q8_0(const void *src, float *dst, int64_t n);
void el_dequantize_row_q8_1(const void *src, float *dst, int64_t n);
void el_dequantize_row_q2_K(const void *src, float *dst, int64_t n);
void el_dequantize_row_q3_K(const void *src, float *dst, int64_t n);
void el_dequantize_row_q4_K(const void *src, float *dst, int64_t n);
void el_dequantize_row_q5_K(const void *src, float *dst, int64_t n);
void el_dequantize_row_q6_K(const void *src, float *dst, int64_t n);
void el_dequantize_row_q8_K(const void *src, float *dst, int64_t n);

/* Quantize (round to nearest). Q4_0..Q8_1 and Q8_K are bit-exact with ggml's
 * quantize_row_*_ref; Q2_K..Q6_K use a simple RTN choice of scales (see quantize.c). */
void el_quantize_row_f32(const float *src, void *dst, int64_t n);
void el_quantize_row_f16(const float *src, void *dst, int64_t n);
void el_quantize_row_bf16(const float *src, void *dst, int64_t n);
void el_quantize_row_q4_0(const float *src, void *dst, int64_t n);
void el_quantize_row_q4_1(const float *src, void *dst, int64_t n);
void el_quantize_row_q5_0(const float *src, void *dst, int64_t n);
void el_quantize_row_q5_1(const float *src, void *dst, int64_t n);
void el_quantize_row_q8_0(const float *src, void *dst, int64_t n);
void el_quantize_row_q8_1(const float *src, void *dst, int64_t n);
/* The Q8_0 / Q8_1 rule of llama.cpp's x86 CPU backend (quantize.c): the type table's
 * quantizer for these two activation formats. */
void el_quantize_act_q8_0(const float *src, void *dst, int64_t n);
void el_quantize_act_q8_1(const float *src, void *dst, int64_t n);
void el_quantize_row_q2_K(const float *src, void *dst, int64_t n);
void el_quantize_row_q3_K(const float *src, void *dst, int64_t n);
void el_quantize_row_q4_K(const float *src, void *dst, int64_t n);
void el_quantize_row_q5_K(const float *src, void *dst, int64_t n);
void el_quantize_row_q6_K(const float *src, void *dst, int64_t n);
void el_quantize_row_q8_K(const float *src, void *dst, int64_t n);

/* Reference dot products of a weight row with its paired activation row. */
float el_vec_dot_f32_ref(int64_t n, const void *w, const void *a);
float el_vec_dot_f16_ref(int64_t n, const void *w, const void *a);
float el_vec_dot_bf16_ref(int64_t n, const void *w, const void *a);
float el_vec_dot_q4_0_q8_0_ref(int64_t n, const void *w, const void *a);
float el_vec_dot_q4_1_q8_1_ref(int64_t n, const void *w, const void *a);
float el_vec_dot_q5_0_q8_0_ref(int64_t n, const void *w, const void *a);
float el_vec_dot_q5_1_q8_1_ref(int64_t n, const void *w, const void *a);
float el_vec_dot_q8_0_q8_0_ref(int64_t n, const void *w, const void *a);
float el_vec_dot_q2_K_q8_K_ref(int64_t n, const void *w, const void *a);
float el_vec_dot_q3_K_q8_K_ref(int64_t n, const void *w, const void *a);
float el_vec_dot_q4_K_q8_K_ref(int64_t n, const void *w, const void *a);
float el_vec_dot_q5_K_q8_K_ref(int64_t n, const void *w, const void *a);
float el_vec_dot_q6_K_q8_K_ref(int64_t n, const void *w, const void *a);
float el_vec_dot_q8_K_q8_K_ref(int64_t n, const void *w, const void *a);

#endif
