/* Tensor element types (ggml type ids, as GGUF stores them) and their traits.
 * The block layouts themselves are described once, in quant/blocks.h.
 *
 * Each weight format pairs with an activation format for dot products:
 *   Q4_0 Q5_0 Q8_0      -> Q8_0
 *   Q4_1 Q5_1           -> Q8_1  (Q8_0 plus the block sum d*sum(q))
 *   Q2_K..Q6_K Q8_K     -> Q8_K
 *   F32 F16 BF16        -> F32
 */
#ifndef EL_QUANT_H
#define EL_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cpu_features.h"

typedef enum el_type {
    EL_TYPE_F32 = 0, EL_TYPE_F16 = 1, EL_TYPE_Q4_0 = 2, EL_TYPE_Q4_1 = 3,
    EL_TYPE_Q5_0 = 6, EL_TYPE_Q5_1 = 7, EL_TYPE_Q8_0 = 8, EL_TYPE_Q8_1 = 9,
    EL_TYPE_Q2_K = 10, EL_TYPE_Q3_K = 11, EL_TYPE_Q4_K = 12, EL_TYPE_Q5_K = 13,
    EL_TYPE_Q6_K = 14, EL_TYPE_Q8_K = 15,
    EL_TYPE_I8 = 24, EL_TYPE_I16 = 25, EL_TYPE_I32 = 26, EL_TYPE_I64 = 27, EL_TYPE_F64 = 28,
    EL_TYPE_BF16 = 30,
    EL_TYPE_COUNT = 40, /* bound on ids we know; ids at or past it are invalid in a file */
    /* Layouts made in memory at load (never read from or written to a file; not
     * el_type_valid): rows regrouped for this CPU's kernels (quant/blocks.h, repack.c). */
    EL_TYPE_Q5_0_R4 = 64,
    EL_TYPE_Q4_K_T = 65
} el_type;

/* dot(n, w_row, act_row): sum over n elements of one weight row (in its format)
 * times one activation row (in the paired activation format). */
typedef float (*el_vec_dot_fn)(int64_t n, const void *w, const void *act);
typedef void (*el_dequantize_fn)(const void *src, float *dst, int64_t n);
typedef void (*el_quantize_fn)(const float *src, void *dst, int64_t n);

typedef struct el_type_traits {
    const char *name;       /* "Q4_K", as ggml names it */
    uint32_t block_size;    /* elements per block (1 for plain types) */
    uint32_t type_size;     /* bytes per block */
    bool is_quantized;
    bool supported;         /* we can dequantize it (layout known) */
    el_type vec_dot_type;   /* activation format it pairs with */
    el_dequantize_fn dequantize; /* scalar reference; n a multiple of block_size */
    el_quantize_fn quantize;     /* scalar reference (round to nearest); for Q8_0 / Q8_1 the rule
                                  * llama.cpp's x86 backend applies to activations (quantize.c);
                                  * NULL if none */
    el_vec_dot_fn vec_dot_ref;   /* scalar reference dot; NULL if not a weight format */
} el_type_traits;

/* Traits for a type id; NULL for ids that are not ggml types at all. The in-memory
 * layouts have traits too (name, block geometry, vec_dot_type), with no reference
 * functions: their rows are not stored one after another (only el_matmul reads them). */
const el_type_traits *el_type_get_traits(uint32_t type);
const char *el_type_name(uint32_t type); /* "?" when unknown */
bool el_type_valid(uint32_t type);       /* a known ggml type id whose size we know (file types only) */

/* ---- layouts made at load (quant/repack.c) ---- */

/* The regrouped layout el_matmul multiplies fastest on this CPU for weights of wtype
 * with n_out rows of n_in elements, or wtype itself when there is none (or the shape
 * does not fit one): on x86 with AVX2, Q5_0 -> Q5_0_R4 when n_out % 4 == 0 and
 * n_in % 64 == 0, Q4_K -> Q4_K_T. The regrouped matrix takes the same bytes. */
el_type el_repack_type(el_type wtype, int64_t n_in, int64_t n_out);
/* Regroup n_out rows of n_in elements of wtype (src) into el_repack_type's layout at dst
 * (as many bytes; dst must not overlap src). Returns 0, or -1 if that layout is wtype
 * itself or the shape does not fit it. Results of el_matmul are bit for bit the same
 * with either matrix. */
int el_repack(el_type wtype, const void *src, void *dst, int64_t n_in, int64_t n_out);

/* Bytes for n elements (n must be a multiple of block_size; returns 0 if not, or on overflow). */
size_t el_type_row_size(el_type type, int64_t n);

/* The fastest dot product for this CPU (AVX-512 / AVX2 / scalar), picked from the
 * CPU-feature table's level (a switch: fetch it once per matmul, not per row). Equal to
 * vec_dot_ref within float tolerance. NULL for types with no dot (Q8_1, unsupported ids).
 * Activation rows passed to it come from el_quantize_activation (quants in [-127, 127]). */
el_vec_dot_fn el_vec_dot_best(el_type wtype);
/* Quantize a row of activations into vec_dot_type(wtype) (fast path where there is one).
 * act_type is F32 (a copy), Q8_0, Q8_1 or Q8_K (any type with a quantize function works);
 * n a multiple of its block size. Equal byte for byte to traits->quantize: Q8_0/Q8_1 round
 * half away from zero with id = 1/(amax/127) like ggml's quantize_row_q8_0_ref (ggml's AVX2
 * path multiplies by 127/amax and rounds half to even, so a rare quant can differ by 1). */
void el_quantize_activation(el_type act_type, const float *src, void *dst, int64_t n);

/* The kernels of one level, for tests and benchmarks: NULL when that level has no kernel
 * of its own for the type or this CPU cannot run it. EL_CPU_SCALAR gives the references. */
el_vec_dot_fn el_vec_dot_for_level(el_type wtype, el_cpu_level level);
el_quantize_fn el_quantize_activation_for_level(el_type act_type, el_cpu_level level);

/* Scalar conversions. */
float el_f16_to_f32(uint16_t h);
uint16_t el_f32_to_f16(float f);
float el_bf16_to_f32(uint16_t h);
uint16_t el_f32_to_bf16(float f);

#endif
