/* Blocked matrix products (prompt prefill), and the matching one-token products.
 *
 * A few weight rows (a "panel" of EL_GEMM_RM rows) are unpacked once into plain int8
 * lanes plus per-block scales, then a micro-kernel multiplies that panel by
 * EL_GEMM_TN activation rows at a time: each weight vector loaded is used for TN
 * tokens and each activation vector for RM rows, and the bit-unpacking cost is paid
 * once per panel rather than once per (row, token).
 *
 * Three panel families cover the formats (activation Q8_0 for the first two):
 *   q8: Q8_0 -> signed int8 lanes and their absolute values (vpmaddubsw needs one
 *       unsigned operand: |w| * sign(x, w));
 *   q4: Q4_0, Q5_0 -> signed int8 lanes with |w| <= 16, so the activations can be made
 *       unsigned instead (x + 128, no saturation) and 128 * sum(w) subtracted after;
 *       Q8_0 too where the kernels are VNNI ones (vpdpbusd never saturates), which then
 *       need no sign step: half the instructions of the q8 family's;
 *   In both, the RM = 4 rows are interleaved 8 elements at a time, so one 32-byte vector
 *   holds 8 elements of each row and meets 8 activations broadcast 4 times: the int32
 *   sums then come out 2 lanes per row, with no horizontal reduction per block.
 *   k:  256-element super-blocks (Q2_K..Q6_K) -> unsigned int8 lanes, int16 scale per
 *       16 lanes, and a bias term computed from the activation's bsums; activation Q8_K.
 *       dot = dx * (da * sum(scale * q * x) + db * sum(m * bsum))            (float bias)
 *           = dx * da * (sum(scale * q * x) + sum(m * bsum))                 (int bias)
 *
 * Every output of a micro-kernel is computed with the same instruction sequence
 * whichever tile or thread it falls in (tiles at the edges are padded by repeating
 * a row or token), so results do not depend on the thread count; and a single token
 * (decoding) goes through a gemv with the very same arithmetic, so results do not
 * depend on how tokens were batched either. Integer sums are exact; each row's lanes
 * are either genuine partial sums or added up exactly before conversion, so no float
 * lane carries an offset that cancels only at the end. */
#ifndef EL_KERNELS_GEMM_H
#define EL_KERNELS_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quant/quant.h"

#define EL_GEMM_RM 4 /* weight rows per panel (the q8/q4 layouts below assume 4) */
#define EL_GEMM_TN 4 /* tokens per micro-kernel call (at most) */

/* One 32-element block of the 4 rows, interleaved: q[k][8r + i] is element 8k + i of
 * row r; a = |q| (the unsigned operand of vpmaddubsw); d2 = [d0 d0 d1 d1 d2 d2 d3 d3],
 * matching the lanes of the int32 sums. 32-byte aligned: no load crosses a cache line. */
typedef struct el_panel_q8 {
    _Alignas(32) int8_t q[4][32];
    uint8_t a[4][32];
    float d2[8];
} el_panel_q8;

/* The same for |q| <= 16 (any int8 for the VNNI kernels), with corr[2r + h] = 128 * (sum
 * of row r's q[8k + 4h + i], k < 4, i < 4): what the +128 offset of the activations adds to int32 lane 2r + h.
 * Each lane is corrected on its own so no lane carries an offset that would only
 * cancel, in float, at the end. */
typedef struct el_panel_q4 {
    _Alignas(32) int8_t q[4][32];
    int32_t corr[8];
    float d2[8];
} el_panel_q4;

/* One 256-element super-block of RM rows. sc[r][j] scales the 16 int16 lanes that
 * vpmaddubsw makes from elements 32j..32j+31 (lanes 0-7: elements 32j..32j+15). */
typedef struct el_panel_k {
    _Alignas(32) uint8_t q[EL_GEMM_RM][256];
    int16_t sc[EL_GEMM_RM][8][16];
    int16_t m[EL_GEMM_RM][16]; /* bias coefficient per 16 elements, times bsum */
    float da[EL_GEMM_RM], db[EL_GEMM_RM];
} el_panel_k;

typedef enum el_gemm_family { EL_GEMM_NONE = 0, EL_GEMM_Q8, EL_GEMM_Q4, EL_GEMM_K } el_gemm_family;

/* Unpack blocks [b0, b0+nb) of the RM rows (rows[r] points at row r's block 0; rows may
 * repeat) into out[0..nb). q8/q4 families: b counts 32-blocks; K family: super-blocks. */
typedef void (*el_gemm_pack_fn)(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);

/* out[t][r] = dot over nb blocks of panel row r with activation row xs[t], t < nt
 * (1 <= nt <= TN), where xs[t] points at the activation block matching the panel's first
 * block (for the q4 family, activation quants stored + 128: see el_gemm_offset_act).
 * All TN entries of xs must be valid (callers repeat the last token); kernels may
 * compute them all. A token's result does not depend on the others in the call. */
typedef void (*el_gemm_kernel_fn)(const void *panel, int64_t nb, const void *const xs[EL_GEMM_TN], int nt,
                                  float out[EL_GEMM_TN][EL_GEMM_RM]);

/* One token against the RM rows straight from their blocks [b0, b0+nb) (x at block b0,
 * in the kernel's activation form): bit-identical to pack + kernel with nt = 1, without
 * the panel round trip (decoding speed). */
typedef void (*el_gemv_fn)(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, const void *x,
                           float out[EL_GEMM_RM]);

/* Optional wider tile (q8/q4 families): two panels (rows 0..RM-1 from panel0, RM..2RM-1
 * from panel1) against all TN tokens (xs padded as for the kernel), the activation
 * scales given as floats (dx[t][b]: the f16 scale of xs[t]'s block b, converted once per
 * token block by the caller, exactly). One activation load then serves 8 rows, and no
 * f16 conversion sits in the inner loop. out[t][r] for r < 2 * RM: bit-identical to two
 * kernel calls (the same operations per row and token). */
typedef void (*el_gemm_kernel2_fn)(const void *panel0, const void *panel1, int64_t nb,
                                   const void *const xs[EL_GEMM_TN], const float *const dx[EL_GEMM_TN],
                                   float out[EL_GEMM_TN][2 * EL_GEMM_RM]);

typedef struct el_gemm_ops {
    el_gemm_family family;
    el_gemm_pack_fn pack;
    el_gemm_kernel_fn kernel;
    el_gemm_pack_fn pack_ref;     /* portable equivalents (same panel, same results */
    el_gemm_kernel_fn kernel_ref; /* within float rounding), for tests */
    el_gemv_fn gemv;              /* NULL: pack + kernel for one token too */
    bool act_offset;              /* kernels want activation quants + 128 (el_gemm_offset_act) */
    bool act_transposed;          /* kernel and gemv want Q8_K activations transposed
                                   * (el_gemm_transpose_act_q8_K; the _ref ones do not) */
    uint32_t block_elems;         /* elements per panel block: 32 or 256 */
    uint32_t panel_bytes;         /* sizeof the panel block type; the driver's K cut and panel
                                   * buffers follow it (Q8_0 on the q4 kernels keeps el_panel_q8's,
                                   * so its K chunks and bits are the q8 family's) */
} el_gemm_ops;

/* The blocked kernels for wtype on this CPU (honours the CPU-feature level); false if
 * there are none, and the caller uses per-row dot products instead. */
bool el_gemm_ops_get(el_type wtype, el_gemm_ops *ops);

/* One token against n_panels panels of RM consecutive rows (row r of panel i at
 * w + (RM * i + r) * w_row), all nb blocks of each (nb no more than the K chunk the driver
 * uses, so nothing is split), y[RM * i + r] = the gemv's out[r]: bit-identical to a gemv
 * call per panel, without the per-panel call and set-up (decoding). */
typedef void (*el_gemv_span_fn)(const void *w, size_t w_row, int64_t n_panels, int64_t nb, const void *x, float *y);

/* Most tokens the driver sends through the one-token kernels (speculative verify batches). */
#define EL_GEMV_FEW_TOKENS 8

/* nt tokens (1..EL_GEMV_FEW_TOKENS; token t's activations at x + t * x_row) against n_panels
 * whole panels as el_gemv_span_fn's: y[t * y_stride + RM * i + r] = the gemv's out[r] for
 * token t, bit-identical to a span call per token, with each block of rows decoded once
 * for several tokens instead of once per token. */
typedef void (*el_gemv_few_fn)(const void *w, size_t w_row, int64_t n_panels, int64_t nb, const void *x,
                               size_t x_row, int nt, float *y, int64_t y_stride);

/* The whole-panel gemvs for wtype on this CPU (matching el_gemm_ops_get's gemv), each
 * NULL where there is none: *span for one token, *few for a few (without it the driver
 * calls the one-token gemv per token). */
void el_gemv_panels_get(el_type wtype, el_gemv_span_fn *span, el_gemv_few_fn *few);

/* The two-panel kernel for wtype on this CPU (matching el_gemm_ops_get's kernel), or NULL. */
el_gemm_kernel2_fn el_gemm_kernel2_get(el_type wtype);

/* K family, pair-summed layout (x86): one 64-element chunk c of row r as two vectors,
 * q[r][c][0..31] = 8-byte groups 0 4 2 6 of the chunk and q[r][c][32..63] = groups
 * 1 5 3 7 (what vpunpck{l,h}qdq make of the activation's two 32-byte halves). The
 * vpmaddubsw pair sums of the two vectors add up exactly in int16 (4 products of
 * q <= 63 and |x| <= 128: at most 32256), each int16 lane then holding 4 elements of one
 * 16-element scale group, so one vpmaddwd with sc[r][c] (lanes 0-3: group 4c, 4-7: 4c+2,
 * 8-11: 4c+1, 12-15: 4c+3) scales 64 products: 3 multiplies per 64 instead of 4. da, db:
 * as el_panel_k; m as el_panel_k for the integer-bias kernel (Q6_K), while for the
 * float-bias one (Q4_K: one min per 32 elements) m[0] and m[1] hold rows 0-1 and 2-3 as
 * [ra mins 0-3, rb mins 0-3 | ra mins 4-7, rb mins 4-7], against pair-summed bsums (one
 * vpmaddwd per 2 rows; m[2], m[3] unused). Same exact integer row totals, same float
 * steps: bit-identical to the el_panel_k kernels and the gemv. */
typedef struct el_panel_kp {
    _Alignas(32) uint8_t q[EL_GEMM_RM][4][64];
    int16_t sc[EL_GEMM_RM][4][16];
    int16_t m[EL_GEMM_RM][16];
    float da[EL_GEMM_RM], db[EL_GEMM_RM];
} el_panel_kp;

/* The pair-summed K packer and kernel for wtype on this CPU (el_panel_kp panels; the
 * kernel bit-identical to el_gemm_ops_get's, K cut by the caller where el_panel_k's
 * would be); false if there are none. */
bool el_gemm_kp_get(el_type wtype, el_gemm_pack_fn *pack, el_gemm_kernel_fn *kernel);

/* K family, group-transposed layout (x86; Q4_K: one scale per 32 elements, quants <= 15).
 * A super-block is 8 scale groups of 8 four-byte words; vector v of row r holds word v
 * of every group: q[r][v][4g + i] = element 32g + 4v + i (the 8 x 8 word matrix
 * transposed), and the kernels read activations transposed the same way
 * (el_gemm_transpose_act_q8_K, once per product). Every int32 lane g then meets group g
 * only, in all 8 vectors: AVX2 adds the 8 vpmaddubsw results in int16 (16 products of
 * q <= 15 and |x| <= 128 per lane: at most 30720) and scales them with one vpmaddwd
 * (sc16 = [s0 s0 s1 s1 .. s7 s7]); VNNI adds them with vpdpbusd in int32 and scales with
 * one vpmulld (sc32 = [s0 .. s7]): 9 multiplies per 256 products where the pair-summed
 * layout takes 12. m (rows 0-1 and 2-3), da, db: el_panel_kp's float-bias layout. The
 * same exact row totals and float steps: bit-identical to the el_panel_k kernel and the
 * gemv. */
typedef struct el_panel_kt {
    _Alignas(32) uint8_t q[EL_GEMM_RM][8][32];
    int16_t sc16[EL_GEMM_RM][16];
    int32_t sc32[EL_GEMM_RM][8];
    int16_t m[2][16];
    float da[EL_GEMM_RM], db[EL_GEMM_RM];
} el_panel_kt;

/* The group-transposed packer and kernel for wtype on this CPU (el_panel_kt panels,
 * activations through el_gemm_transpose_act_q8_K first; bit-identical to
 * el_gemm_ops_get's kernel on untransposed activations); false if there are none. */
bool el_gemm_kt_get(el_type wtype, el_gemm_pack_fn *pack, el_gemm_kernel_fn *kernel);

/* Transpose each 256-element block of a Q8_K activation row of n elements in place, as
 * 8 x 8 four-byte words (el_panel_kt's order); d and bsums stay as they are. */
void el_gemm_transpose_act_q8_K(void *row, int64_t n);

/* Add 128 (xor 0x80) to every quant of a Q8_0 activation row of n elements, in place,
 * for kernels with act_offset. */
void el_gemm_offset_act(void *row, int64_t n);

/* Portable packers (kernels/gemm_pack.c). */
void el_gemm_pack_q4_0(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q5_0(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q8_0(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
/* Q8_0 rows as el_panel_q4 panels (corr exact for any int8), for kernels that sum
 * (x + 128) * q without saturating: the VNNI ones (matmul.c). */
void el_gemm_pack_q8_0_q4(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
/* Q5_0_R4 (quant/blocks.h): rows[0] is the panel's first group (its 4 rows' bytes), the
 * other entries are not read; b0 and nb are even (the driver's K chunks are). Same
 * panels as el_gemm_pack_q5_0 on the rows it came from. */
void el_gemm_pack_q5_0_r4(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q2_K(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q3_K(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q4_K(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
/* Q4_K_T (quant/blocks.h): the same el_panel_k panels as el_gemm_pack_q4_K on the rows it came from. */
void el_gemm_pack_q4_K_t(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q5_K(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);
void el_gemm_pack_q6_K(const void *const rows[EL_GEMM_RM], int64_t b0, int64_t nb, void *out);

/* Portable micro-kernels: the definition of what the SIMD ones compute (tests). */
void el_gemm_q8_ref(const void *panel, int64_t nb, const void *const xs[EL_GEMM_TN], int nt,
                    float out[EL_GEMM_TN][EL_GEMM_RM]);
void el_gemm_q4_ref(const void *panel, int64_t nb, const void *const xs[EL_GEMM_TN], int nt,
                    float out[EL_GEMM_TN][EL_GEMM_RM]);
void el_gemm_k_fbias_ref(const void *panel, int64_t nb, const void *const xs[EL_GEMM_TN], int nt,
                         float out[EL_GEMM_TN][EL_GEMM_RM]);
void el_gemm_k_ibias_ref(const void *panel, int64_t nb, const void *const xs[EL_GEMM_TN], int nt,
                         float out[EL_GEMM_TN][EL_GEMM_RM]);

#endif
