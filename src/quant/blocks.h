/* Block layouts of every quantized format, described once.
 * All scales are IEEE half (uint16_t) unless noted; weights are little-endian.
 * QK = elements per block. Sizes are checked with static asserts below. */
#ifndef EL_QUANT_BLOCKS_H
#define EL_QUANT_BLOCKS_H

#include <assert.h>
#include <stdint.h>

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12

/* x = d * (q - 8); q in low nibbles for elements 0..15, high nibbles for 16..31. */
typedef struct { uint16_t d; uint8_t qs[QK4_0 / 2]; } block_q4_0;
/* x = d * q + m */
typedef struct { uint16_t d, m; uint8_t qs[QK4_1 / 2]; } block_q4_1;
/* x = d * (q - 16); 5th bits in qh (bit j for element j). */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;
/* x = d * q + m */
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1;
/* x = d * q */
typedef struct { uint16_t d; int8_t qs[QK8_0]; } block_q8_0;
/* activation format paired with Q4_1/Q5_1: s = d * sum(qs) */
typedef struct { uint16_t d, s; int8_t qs[QK8_1]; } block_q8_1;

/* Super-blocks of 256 elements. */
/* 16 sub-blocks of 16: 4-bit scale and 4-bit min per sub-block, 2-bit quants. */
typedef struct { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d, dmin; } block_q2_K;
/* 16 sub-blocks of 16: 6-bit scales, 2 low bits in qs and the high bit in hmask. */
typedef struct { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; uint16_t d; } block_q3_K;
/* 8 sub-blocks of 32: 6-bit scales and mins packed in 12 bytes, 4-bit quants. */
typedef struct { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; } block_q4_K;
/* As Q4_K plus a 5th bit in qh. */
typedef struct { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_K;
/* 16 sub-blocks of 16: int8 scales, 4 low bits in ql, 2 high bits in qh; x = d * scale * (q - 32). */
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; } block_q6_K;
/* In-memory layouts made at load (never in a file; src/quant/repack.c). */
/* Q5_0 regrouped for the x86 kernels (EL_TYPE_Q5_0_R4): 4 consecutive rows x 2
 * consecutive blocks (64 elements) per group, the same 176 bytes as the 8 Q5_0 blocks
 * it holds; a panel of 4 rows is its groups in order, and occupies exactly the bytes
 * its 4 rows did. Pair p (0 or 1) is rows p and p + 2. The 5th bits of 8 byte vectors
 * v = 4b + 2p + h (block b, pair p, h = 0: elements 0-15, 1: elements 16-31) share qh:
 * bit v of qh[i] belongs to byte i of vector v, whose bytes 0-15 are row p's elements
 * 16h..16h+15 and bytes 16-31 row p + 2's; qs[b][p] holds vectors 4b + 2p and 4b + 2p + 1
 * as low and high nibbles (bytes 0-15: row p's qs, 16-31: row p + 2's). So one shift
 * and one mask give the 5th bits of a whole vector (instead of a shuffle, a test and a
 * mask per vector, per row pair, per block); d[b][r]: block b's scale of row r. */
typedef struct { uint16_t d[2][4]; uint8_t qh[32]; uint8_t qs[2][2][32]; } block_q5_0_r4;
/* Q4_K with each super-block's quants transposed for the x86 kernels (EL_TYPE_Q4_K_T):
 * block_q4_K's bytes, d, dmin and scales unchanged, qs reordered so that the low nibbles
 * of qs[32c..32c+31] are vector c and the high ones vector c + 4 of el_panel_kt's
 * layout (kernels/gemm.h): qs[32c + 4g + i] holds element 32g + 4c + i (scale group g,
 * c < 4, i < 4) in its low nibble and element 32g + 4c + 16 + i in its high one. The
 * one-token kernel then adds a row's 8 vectors in int16 before one multiply by the
 * scales, and the prefill packer only splits nibbles. */

/* activation format for K-quants: float scale, int8 quants, sums of each 16 quants. */
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;

static_assert(sizeof(block_q4_0) == 18, "q4_0 size");
static_assert(sizeof(block_q4_1) == 20, "q4_1 size");
static_assert(sizeof(block_q5_0) == 22, "q5_0 size");
static_assert(sizeof(block_q5_1) == 24, "q5_1 size");
static_assert(sizeof(block_q8_0) == 34, "q8_0 size");
static_assert(sizeof(block_q8_1) == 36, "q8_1 size");
static_assert(sizeof(block_q2_K) == 84, "q2_K size");
static_assert(sizeof(block_q3_K) == 110, "q3_K size");
static_assert(sizeof(block_q4_K) == 144, "q4_K size");
static_assert(sizeof(block_q5_K) == 176, "q5_K size");
static_assert(sizeof(block_q6_K) == 210, "q6_K size");
static_assert(sizeof(block_q8_K) == 292, "q8_K size");
static_assert(sizeof(block_q5_0_r4) == 8 * sizeof(block_q5_0), "q5_0_r4 holds 8 q5_0 blocks");

#endif
