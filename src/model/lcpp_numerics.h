/* llama.cpp-compatible arithmetic: the products, softmax and activations of a forward
 * pass computed with the operations, in the order, that llama.cpp's CPU backend uses in
 * an x86 AVX2 build (the build the golden data of tests/data/families comes from), so
 * that our logits and greedy continuations are the reference's bit for bit rather than
 * within float noise of it. Near ties in the logits (two tokens 0.03% of the range
 * apart) are common with 128k-200k-token vocabularies; any rounding difference at all
 * can flip them, so only equal arithmetic gives equal continuations.
 *
 * Everything here is portable scalar C that reproduces the SIMD lane order (which
 * partial sums exist, in what order they are added, where a multiply-add is fused), so
 * it gives the same bits on any CPU. It is slower than the default kernels, which are
 * batch-invariant and blocked for speed (src/kernels): a context opts in with
 * el_ctx_params.numerics = EL_NUMERICS_LLAMACPP (`--numerics llamacpp` in the CLI).
 *
 * llama.cpp computes a batch of n >= 2 tokens and a single token differently:
 *   - F16 weights: n >= 2 through llamafile's tinyBLAS (one 8-lane accumulator per
 *     output), n == 1 through ggml_vec_dot_f16 (four 8-lane accumulators, step 32);
 *   - Q4_0 / Q4_K weights with a multiple of 8 rows are repacked at load into 8-row
 *     interleaved blocks: tokens in groups of 4 go through the repacked gemm, the rest
 *     (a single token included) through the repacked gemv; other row counts use
 *     tinyBLAS (Q4_0, n >= 2) or ggml_vec_dot_* (n == 1, and Q4_K always);
 *   - Q8_0: ggml_vec_dot_* order in both cases (tinyBLAS's Q8_0 order is the same), as
 *     Q4_0 not repacked (tinyBLAS and vec_dot give the same bits);
 *   - Q6_K, and Q4_K not repacked: n >= 8 through ggml's tiled K-quant matmul
 *     (ggml-cpu/tiled, on by default), n < 8 through ggml_vec_dot_*;
 *   - attention without flash attention: Q.K and P.V are F16 products, so the same
 *     split applies to them (n == 1: vec_dot order over the padded KV length).
 * `single` below selects the n == 1 arithmetic. */
#ifndef EL_MODEL_LCPP_NUMERICS_H
#define EL_MODEL_LCPP_NUMERICS_H

#include <stdbool.h>
#include <stdint.h>

/* ---- matrix products: y[t * n_out + r] = W[r] . x[t], t < n_tok, r < n_out ----
 * w: n_out rows of n_in elements in the named format, row-major as GGUF stores them.
 * x: n_tok rows of n_in F32 activations; each function converts or quantizes them as
 * llama.cpp does for that path (F16 rounding, Q8_0 / Q8_K quantization). n_in is a
 * multiple of the format's block size (callers check). Return 0, or -1 when out of
 * memory (y is then untouched). */

/* F16 weights: single ? ggml_vec_dot_f16 : tinyBLAS (lcpp_numerics.c). */
int el_lcpp_matmul_f16(const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok, float *y,
                       bool single);

/* Q8_0 weights, ggml_vec_dot_q8_0_q8_0 order (lcpp_numerics.c). */
int el_lcpp_matmul_q8_0(const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok, float *y);

/* Q4_0 and Q4_K weights whose n_out is a multiple of 8 (repacked by llama.cpp):
 * tokens [0, n_tok - n_tok % 4) through the 8x8 repacked gemm in groups of 4, the rest
 * through the repacked gemv (lcpp_repack.c). */
int el_lcpp_matmul_q4_0_repacked(const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok,
                                 float *y);
int el_lcpp_matmul_q4_K_repacked(const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok,
                                 float *y);

/* Q4_0 weights not repacked: single ? ggml_vec_dot_q4_0_q8_0 : tinyBLAS (the same
 * bits); Q4_K weights not repacked and Q6_K weights: n_tok >= 8 through the tiled
 * matmul, fewer through ggml_vec_dot_q4_K_q8_K / ggml_vec_dot_q6_K_q8_K
 * (lcpp_kquants.c). */
int el_lcpp_matmul_q4_0(const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok, float *y,
                        bool single);
int el_lcpp_matmul_q4_K(const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok, float *y);
int el_lcpp_matmul_q6_K(const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok, float *y);

/* The dispatch: rows [r0, r1) of the product with weights of type `type` (an el_type;
 * n_out rows in all, which decides whether llama.cpp repacks them), by the paths above,
 * single when the product has one token (llama.cpp's n == 1); y[t * (r1 - r0) + r - r0].
 * r0 and r1 must be multiples of 8 or n_out. Returns 0; 1 when the type has no
 * compatible path here (the caller uses its own kernels); -1 when out of memory. */
int el_lcpp_matmul(int type, const void *w, int64_t n_in, int64_t n_out, int64_t r0, int64_t r1, const float *x,
                   int64_t n_tok, float *y);

/* F16 dot product of two float rows holding F16 values, in tinyBLAS's order or (single)
 * ggml_vec_dot_f16's. */
float el_lcpp_dot_f16(const float *w, const float *x, int64_t n, bool single);

/* ---- attention (lcpp_attention.c) ----
 * Causal attention of n query rows (positions p0..p0+n-1; q already rounded to F16,
 * unscaled) over layer il's F16 cache: kq scaled by `scale` inside the softmax as
 * ggml_soft_max_ext does. single: the batch has one row (n == 1 in llama.cpp's graph).
 * out: n rows of n_head * head_dim_v. Returns 0 or -1 (out of memory). */
struct el_ctx;
int el_lcpp_attention(struct el_ctx *c, int il, const float *q, int32_t p0, int32_t n, float scale, bool single,
                      float *out);

/* ---- element-wise (lcpp_numerics.c) ---- */

/* ggml's vectorised expf approximation (ggml_v_expf, AVX2 + FMA), one lane. */
float el_lcpp_v_expf(float x);

/* g[i] = silu(g[i]) * u[i] as ggml_vec_swiglu_f32: whole groups of 8 with the vector
 * approximation, the n % 8 tail with libm's expf. */
void el_lcpp_swiglu(float *g, const float *u, int64_t n);

/* s[i] = exp(s[i] - max) as ggml_vec_soft_max_f32; returns the sum (double). */
double el_lcpp_softmax_exp(float *s, int64_t n, float max);

#endif
