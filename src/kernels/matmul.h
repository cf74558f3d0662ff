/* Matrix products of a weight matrix in any el_type with F32 activations.
 *
 *   W: n_out rows of n_in elements each, row-major, in format wtype (as GGUF stores a
 *      tensor with ne = {n_in, n_out}).
 *   X: n_tok rows of n_in floats.   Y: n_tok rows of n_out floats.
 *   Y[t][r] = dot(W[r], X[t])
 *
 * X is quantized once into the weight's activation format (shared by all threads),
 * then rows of W are split over the pool. n_tok == 1 is the matrix-vector case. */
#ifndef EL_KERNELS_MATMUL_H
#define EL_KERNELS_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/threadpool.h"
#include "quant/quant.h"

/* Bytes of scratch el_matmul needs for these shapes (0 when X is used as is: F32/F16/BF16
 * weights; SIZE_MAX if the size overflows). */
size_t el_matmul_work_size(el_type wtype, int64_t n_in, int64_t n_tok);

/* The SIMD kernel set el_matmul's blocked products use in this process: "avx512-vnni",
 * "avx-vnni", "avx2", "neon-i8mm", "neon-dotprod", "neon" or "scalar" (per-row reference
 * dots). Follows the CPU-feature level (core/cpu_features.h, EDGELLM_CPU). */
const char *el_matmul_kernels_name(void);

/* Whether el_matmul can multiply weights of this type with rows of n_in elements
 * (a dot kernel exists and n_in is a multiple of the weight and activation block sizes).
 * Model loaders check this once per tensor. */
bool el_matmul_supported(el_type wtype, int64_t n_in);

/* work: at least el_matmul_work_size() bytes, 64-byte aligned (may be NULL when that is 0).
 * Requires el_matmul_supported(wtype, n_in); otherwise Y is filled with NaN.
 * One caller per pool at a time. Results do not depend on the pool's thread count, nor
 * on how tokens are batched: a token gives bit for bit the same Y row alone or among
 * others (so reusing a cached prompt prefix cannot change an answer). */
void el_matmul(el_pool *pool, const void *w, el_type wtype, int64_t n_in, int64_t n_out,
               const float *x, int64_t n_tok, float *y, void *work);

/* Several products of one X (same n_in, n_tok): Y_i = X * W_i^T for each item, as one
 * pool job (one wake-up of the threads instead of one per product: q/k/v, gate/up).
 * Each Y_i is bit for bit what el_matmul gives for that item. X is quantized once per
 * activation form the items need. At most EL_MATMUL_MAX_ITEMS items; an unsupported
 * item's Y (or all of them, past the limit) is filled with NaN. */
#define EL_MATMUL_MAX_ITEMS 8
typedef struct el_matmul_item {
    const void *w; /* n_out rows of n_in elements of wtype */
    el_type wtype;
    int64_t n_out;
    float *y; /* n_tok rows of n_out floats */
} el_matmul_item;

/* Bytes of scratch el_matmul_multi needs (a sum of 64-byte-rounded el_matmul_work_size
 * figures; SIZE_MAX on overflow, 0 when none is needed or n_items is out of range). */
size_t el_matmul_multi_work_size(const el_matmul_item *items, int n_items, int64_t n_in, int64_t n_tok);

/* work: at least el_matmul_multi_work_size() bytes, 64-byte aligned. */
void el_matmul_multi(el_pool *pool, const el_matmul_item *items, int n_items, int64_t n_in, const float *x,
                     int64_t n_tok, void *work);

#endif
