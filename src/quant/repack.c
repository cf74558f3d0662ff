/* Weight layouts made at load: rows regrouped so the kernels decode them with fewer
 * instructions (quant/blocks.h describes each). A regrouping only moves bits: every
 * quant and scale is kept, so products are bit for bit those of the file's layout. */
#include <string.h>

#include "quant/blocks.h"
#include "quant/quant.h"

el_type el_repack_type(el_type wtype, int64_t n_in, int64_t n_out) {
#if defined(__x86_64__)
    /* Measured (docs/performance.md): the Q5_0 gemv was bound by its 5th-bit expansion. */
    if (wtype == EL_TYPE_Q5_0 && el_cpu_features_get()->level >= EL_CPU_AVX2 && n_in > 0 && n_in % 64 == 0 &&
        n_out > 0 && n_out % 4 == 0)
        return EL_TYPE_Q5_0_R4;
    /* Measured (docs/performance.md): the Q4_K gemv was bound by its instructions (8 scale
     * broadcasts and multiplies per row and super-block). */
    if (wtype == EL_TYPE_Q4_K && el_cpu_features_get()->level >= EL_CPU_AVX2 && n_in > 0 && n_in % QK_K == 0 &&
        n_out > 0)
        return EL_TYPE_Q4_K_T;
#else
    (void)n_in, (void)n_out;
#endif
    return wtype;
}

/* Byte k of spread_bits(x) is bit k of x (0 or 1). */
static uint64_t spread_bits(uint8_t x) {
    uint64_t r = 0;
    for (int k = 0; k < 8; k++) r |= (uint64_t)((x >> k) & 1) << (8 * k);
    return r;
}

/* Rows r0..r0+3, blocks 2g, 2g+1 (Q5_0) into one group; spread: spread_bits of every byte. */
static void group_q5_0_r4(const block_q5_0 *const rows[4], int64_t g, const uint64_t spread[256], block_q5_0_r4 *out) {
    uint64_t qh[4] = {0, 0, 0, 0}; /* out->qh as 4 x 8 bytes */
    for (int b = 0; b < 2; b++) {
        for (int r = 0; r < 4; r++) out->d[b][r] = rows[r][2 * g + b].d;
        for (int p = 0; p < 2; p++) {
            const block_q5_0 *lo = &rows[p][2 * g + b], *hi = &rows[p + 2][2 * g + b];
            memcpy(out->qs[b][p], lo->qs, 16);
            memcpy(out->qs[b][p] + 16, hi->qs, 16);
            for (int h = 0; h < 2; h++) { /* vector v: bytes 0-15 from row p's qh bits 16h.., 16-31 row p + 2's */
                const int v = 4 * b + 2 * p + h;
                qh[0] |= spread[lo->qh[2 * h]] << v;
                qh[1] |= spread[lo->qh[2 * h + 1]] << v;
                qh[2] |= spread[hi->qh[2 * h]] << v;
                qh[3] |= spread[hi->qh[2 * h + 1]] << v;
            }
        }
    }
    memcpy(out->qh, qh, sizeof qh); /* little-endian: byte k of qh[j] is out->qh[8j + k] */
}

/* One Q4_K super-block transposed (Q4_K_T's order: quant/blocks.h), 4 quants at a time:
 * elements 32g + j of the file's layout are nibble g % 2 of qs[32 (g / 2) + j]. */
static void transpose_q4_K(const block_q4_K *in, block_q4_K *out) {
    out->d = in->d;
    out->dmin = in->dmin;
    memcpy(out->scales, in->scales, sizeof out->scales);
    for (int g = 0; g < 8; g++) {
        const uint8_t *chunk = in->qs + 32 * (g / 2);
        const int shift = 4 * (g % 2);
        for (int c = 0; c < 4; c++) {
            uint32_t lo, hi;
            memcpy(&lo, chunk + 4 * c, 4);
            memcpy(&hi, chunk + 4 * c + 16, 4);
            const uint32_t w = ((lo >> shift) & 0x0F0F0F0Fu) | (((hi >> shift) & 0x0F0F0F0Fu) << 4);
            memcpy(out->qs + 32 * c + 4 * g, &w, 4);
        }
    }
}

int el_repack(el_type wtype, const void *src, void *dst, int64_t n_in, int64_t n_out) {
    if (wtype == EL_TYPE_Q4_K) {
        if (n_in <= 0 || n_in % QK_K || n_out <= 0) return -1;
        const block_q4_K *w = src;
        block_q4_K *out = dst;
        for (int64_t i = 0; i < n_in / QK_K * n_out; i++) transpose_q4_K(&w[i], &out[i]);
        return 0;
    }
    if (wtype != EL_TYPE_Q5_0 || n_in <= 0 || n_in % 64 || n_out <= 0 || n_out % 4) return -1;
    const int64_t nb = n_in / QK5_0;
    const block_q5_0 *w = src;
    block_q5_0_r4 *out = dst;
    uint64_t spread[256];
    for (int x = 0; x < 256; x++) spread[x] = spread_bits((uint8_t)x);
    for (int64_t r0 = 0; r0 < n_out; r0 += 4) {
        const block_q5_0 *rows[4] = {w + r0 * nb, w + (r0 + 1) * nb, w + (r0 + 2) * nb, w + (r0 + 3) * nb};
        for (int64_t g = 0; g < nb / 2; g++) group_q5_0_r4(rows, g, spread, out++);
    }
    return 0;
}
