/* Y = X * W^T over the thread pool.
 *
 * 1. X is quantized once into the weight's activation format (tokens split over threads).
 * 2. Rows of W are handed out in chunks (a multiple of 16 rows; at most ~512 KiB of
 *    weights when decoding one token) from an atomic counter,
 *    so a thread that is slowed down (shared core, page faults) takes fewer chunks and
 *    all finish together. Which thread computes a row never changes how it is computed.
 * 3. Per chunk, for formats with blocked kernels on this CPU (gemm.h): panels of RM rows
 *    packed per L2-sized block of tokens and TN-token micro-tiles; one token (decoding)
 *    goes straight from the weight blocks through the matching gemv, with bit-identical
 *    results. Other formats (or CPUs): one el_vec_dot_best call per (row, token), tokens
 *    in L1-sized tiles so a weight row is reused from L1 across the tile. Either way a
 *    token's result does not depend on the other tokens of the call. */
#include "kernels/matmul.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "core/cpu_features.h"
#include "kernels/gemm.h"
#if defined(__x86_64__)
#include "kernels/x86/gemm_x86.h"
#endif

#define CHUNK_ALIGN 16               /* rows per chunk are a multiple of this (and of RM) */
#define CHUNKS_PER_THREAD 4          /* dynamic chunks per thread, for load balance */
#define MIN_PARALLEL_WORK (1 << 16)  /* multiply-adds (or elements to quantize) below which
                                        waking the pool costs more than it saves */
#define GEMV_CHUNK_BYTES (512 * 1024) /* weights per chunk when decoding one token */
#define DOT_TILE_BYTES (16 * 1024)   /* activation rows per token tile of the dot path */
#define GEMM_PANEL_BYTES (36 * 1024) /* unpacked panel, on the worker's stack */
#ifndef GEMM_TOKEN_BYTES
#define GEMM_TOKEN_BYTES (256 * 1024) /* activations per token block of the gemm path (L2) */
#endif

_Static_assert(CHUNK_ALIGN % EL_GEMM_RM == 0, "chunks must hold whole panels");

/* Portable packer and kernel of each format (the definition the SIMD ones match). */
static bool gemm_ops_portable(el_type wtype, el_gemm_ops *ops) {
    switch (wtype) {
    case EL_TYPE_Q8_0:
        *ops = (el_gemm_ops){EL_GEMM_Q8, el_gemm_pack_q8_0, el_gemm_q8_ref, el_gemm_pack_q8_0, el_gemm_q8_ref,
                             NULL, false, 32, sizeof(el_panel_q8)};
        return true;
    case EL_TYPE_Q4_0:
    case EL_TYPE_Q5_0: {
        el_gemm_pack_fn pk = wtype == EL_TYPE_Q4_0 ? el_gemm_pack_q4_0 : el_gemm_pack_q5_0;
        *ops = (el_gemm_ops){EL_GEMM_Q4, pk, el_gemm_q4_ref, pk, el_gemm_q4_ref, NULL, true, 32, sizeof(el_panel_q4)};
        return true;
    }
    case EL_TYPE_Q2_K:
    case EL_TYPE_Q3_K:
    case EL_TYPE_Q4_K:
    case EL_TYPE_Q5_K:
    case EL_TYPE_Q6_K: {
        el_gemm_pack_fn pk = wtype == EL_TYPE_Q2_K   ? el_gemm_pack_q2_K
                             : wtype == EL_TYPE_Q3_K ? el_gemm_pack_q3_K
                             : wtype == EL_TYPE_Q4_K ? el_gemm_pack_q4_K
                             : wtype == EL_TYPE_Q5_K ? el_gemm_pack_q5_K
                                                     : el_gemm_pack_q6_K;
        /* Q3_K and Q6_K store q + offset: their bias is an integer multiple of the scale. */
        el_gemm_kernel_fn k = (wtype == EL_TYPE_Q3_K || wtype == EL_TYPE_Q6_K) ? el_gemm_k_ibias_ref
                                                                             : el_gemm_k_fbias_ref;
        *ops = (el_gemm_ops){EL_GEMM_K, pk, k, pk, k, NULL, false, 256, sizeof(el_panel_k)};
        return true;
    }
    default:
        return false;
    }
}

bool el_gemm_ops_get(el_type wtype, el_gemm_ops *ops) {
    memset(ops, 0, sizeof *ops);
#if defined(__x86_64__)
    if (el_cpu_features_get()->level < EL_CPU_AVX2 || !gemm_ops_portable(wtype, ops)) return false;
    switch (wtype) {
    case EL_TYPE_Q8_0: ops->pack = el_gemm_pack_q8_0_avx2, ops->gemv = el_gemv_q8_0_avx2; break;
    case EL_TYPE_Q4_0: ops->pack = el_gemm_pack_q4_0_avx2, ops->gemv = el_gemv_q4_0_avx2; break;
    case EL_TYPE_Q5_0: ops->pack = el_gemm_pack_q5_0_avx2, ops->gemv = el_gemv_q5_0_avx2; break;
    case EL_TYPE_Q4_K: ops->pack = el_gemm_pack_q4_K_avx2, ops->gemv = el_gemv_q4_K_avx2; break;
    case EL_TYPE_Q6_K: ops->pack = el_gemm_pack_q6_K_avx2, ops->gemv = el_gemv_q6_K_avx2; break;
    default: break; /* the portable packer (rarer formats), pack + kernel for one token */
    }
    switch (ops->family) {
    case EL_GEMM_Q8: ops->kernel = el_gemm_q8_avx2; break;
    case EL_GEMM_Q4: ops->kernel = el_gemm_q4_avx2; break;
    default:
        ops->kernel = ops->kernel_ref == el_gemm_k_ibias_ref ? el_gemm_k_ibias_avx2 : el_gemm_k_fbias_avx2;
        break;
    }
    return true;
#else
    /* No SIMD micro-kernels for this architecture yet: per-row dot products are faster
     * than the portable kernels. */
    (void)gemm_ops_portable;
    (void)wtype;
    return false;
#endif
}

/* Activation format and the bytes of one activation row. */
static el_type act_type_of(el_type wtype) {
    const el_type_traits *tr = el_type_get_traits(wtype);
    return tr ? tr->vec_dot_type : EL_TYPE_F32;
}

size_t el_matmul_work_size(el_type wtype, int64_t n_in, int64_t n_tok) {
    el_type at = act_type_of(wtype);
    if (at == EL_TYPE_F32 || n_in <= 0 || n_tok <= 0) return 0;
    size_t row = el_type_row_size(at, n_in);
    if (row == 0 || (uint64_t)n_tok > SIZE_MAX / row) return SIZE_MAX;
    return row * (size_t)n_tok;
}

bool el_matmul_supported(el_type wtype, int64_t n_in) {
    const el_type_traits *tr = el_type_get_traits(wtype);
    if (!tr || !tr->supported || !tr->vec_dot_ref || n_in <= 0) return false;
    if (n_in % tr->block_size != 0) return false;
    const el_type_traits *at = el_type_get_traits(tr->vec_dot_type);
    if (!at || n_in % at->block_size != 0) return false;
    return el_vec_dot_best(wtype) != NULL;
}

typedef struct mm_job {
    const uint8_t *w;
    size_t w_row;
    int64_t n_in, n_out, n_tok;
    const float *x;
    el_type act_type;
    const uint8_t *xq;
    size_t x_row;
    float *y;
    el_vec_dot_fn dot;
    const el_gemm_ops *gemm; /* NULL: dot path */
    int64_t chunk_rows, n_chunks;
    atomic_llong next_chunk;
} mm_job;

static void quantize_tokens(void *arg, int64_t t0, int64_t t1, int ith) {
    (void)ith;
    mm_job *j = arg;
    for (int64_t t = t0; t < t1; t++) {
        void *row = (uint8_t *)j->xq + (size_t)t * j->x_row;
        el_quantize_activation(j->act_type, j->x + t * j->n_in, row, j->n_in);
        if (j->gemm && j->gemm->act_offset) el_gemm_offset_act(row, j->n_in);
    }
}

static void rows_dot(const mm_job *j, int64_t r0, int64_t r1) {
    if (j->n_tok == 1) {
        for (int64_t r = r0; r < r1; r++) j->y[r] = j->dot(j->n_in, j->w + (size_t)r * j->w_row, j->xq);
        return;
    }
    int64_t tile = (int64_t)(DOT_TILE_BYTES / j->x_row);
    if (tile < 1) tile = 1;
    for (int64_t t0 = 0; t0 < j->n_tok; t0 += tile) {
        int64_t t1 = t0 + tile < j->n_tok ? t0 + tile : j->n_tok;
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *wr = j->w + (size_t)r * j->w_row;
            for (int64_t t = t0; t < t1; t++)
                j->y[t * j->n_out + r] = j->dot(j->n_in, wr, j->xq + (size_t)t * j->x_row);
        }
    }
}

/* One panel (rows p0..p0+RM, padded by repeating the last row) against tokens [t0, t1),
 * K in chunks that fit the panel buffer; later K chunks add into Y. */
static void panel_gemm(const mm_job *j, void *panel, int64_t p0, int64_t t0, int64_t t1) {
    const el_gemm_ops *g = j->gemm;
    const int64_t nblk = j->n_in / g->block_elems;
    const int64_t kc = GEMM_PANEL_BYTES / g->panel_bytes;
    const size_t act_block = el_type_row_size(j->act_type, g->block_elems);
    const void *rows[EL_GEMM_RM];
    int nr = 0;
    for (int r = 0; r < EL_GEMM_RM; r++) {
        int64_t row = p0 + r < j->n_out ? p0 + r : j->n_out - 1;
        if (p0 + r < j->n_out) nr++;
        rows[r] = j->w + (size_t)row * j->w_row;
    }
    for (int64_t b0 = 0; b0 < nblk; b0 += kc) {
        const int64_t nb = b0 + kc < nblk ? kc : nblk - b0;
        if (t1 - t0 == 1 && g->gemv) { /* one token: no panel round trip */
            float out[EL_GEMM_RM];
            g->gemv(rows, b0, nb, j->xq + (size_t)t0 * j->x_row + (size_t)b0 * act_block, out);
            float *yr = j->y + t0 * j->n_out + p0;
            for (int r = 0; r < nr; r++) yr[r] = b0 == 0 ? out[r] : yr[r] + out[r];
            continue;
        }
        g->pack(rows, b0, nb, panel);
        for (int64_t tt = t0; tt < t1; tt += EL_GEMM_TN) {
            const void *xs[EL_GEMM_TN];
            for (int i = 0; i < EL_GEMM_TN; i++) {
                int64_t t = tt + i < t1 ? tt + i : t1 - 1;
                xs[i] = j->xq + (size_t)t * j->x_row + (size_t)b0 * act_block;
            }
            const int nt = tt + EL_GEMM_TN <= t1 ? EL_GEMM_TN : (int)(t1 - tt);
            float out[EL_GEMM_TN][EL_GEMM_RM];
            g->kernel(panel, nb, xs, nt, out);
            for (int i = 0; i < EL_GEMM_TN && tt + i < t1; i++) {
                float *yr = j->y + (tt + i) * j->n_out + p0;
                if (b0 == 0)
                    for (int r = 0; r < nr; r++) yr[r] = out[i][r];
                else
                    for (int r = 0; r < nr; r++) yr[r] += out[i][r];
            }
        }
    }
}

/* One token (decoding): rows of W in panels of RM straight through the gemv, K in the
 * chunks panel_gemm uses (so the sums are the same), with no per-panel set-up beyond
 * the row pointers. */
static void rows_gemv(const mm_job *j, int64_t r0, int64_t r1) {
    const el_gemm_ops *g = j->gemm;
    const int64_t nblk = j->n_in / g->block_elems;
    const int64_t kc = GEMM_PANEL_BYTES / g->panel_bytes;
    const size_t act_block = j->x_row / (size_t)nblk;
    for (int64_t p0 = r0; p0 < r1; p0 += EL_GEMM_RM) {
        const void *rows[EL_GEMM_RM];
        const int nr = p0 + EL_GEMM_RM <= j->n_out ? EL_GEMM_RM : (int)(j->n_out - p0);
        for (int r = 0; r < EL_GEMM_RM; r++) rows[r] = j->w + (size_t)(r < nr ? p0 + r : j->n_out - 1) * j->w_row;
        float *yr = j->y + p0;
        for (int64_t b0 = 0; b0 < nblk; b0 += kc) {
            const int64_t nb = b0 + kc < nblk ? kc : nblk - b0;
            float out[EL_GEMM_RM];
            g->gemv(rows, b0, nb, j->xq + (size_t)b0 * act_block, out);
            if (b0 == 0)
                for (int r = 0; r < nr; r++) yr[r] = out[r];
            else
                for (int r = 0; r < nr; r++) yr[r] += out[r];
        }
    }
}

/* Tokens go in blocks whose activations stay in L2 while every panel of the chunk
 * passes over them; a panel is packed again for each token block (cheap next to the
 * multiply-adds it then serves). */
static void rows_gemm(const mm_job *j, int64_t r0, int64_t r1) {
    _Alignas(64) unsigned char panel[GEMM_PANEL_BYTES];
    int64_t tb = (int64_t)(GEMM_TOKEN_BYTES / j->x_row) / EL_GEMM_TN * EL_GEMM_TN;
    if (tb < EL_GEMM_TN) tb = EL_GEMM_TN;
    for (int64_t t0 = 0; t0 < j->n_tok; t0 += tb) {
        int64_t t1 = t0 + tb < j->n_tok ? t0 + tb : j->n_tok;
        for (int64_t p0 = r0; p0 < r1; p0 += EL_GEMM_RM) panel_gemm(j, panel, p0, t0, t1);
    }
}

static void mm_worker(void *arg, int ith, int nth) {
    (void)ith;
    (void)nth;
    mm_job *j = arg;
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&j->next_chunk, 1, memory_order_relaxed);
        if (c >= j->n_chunks) break;
        int64_t r0 = c * j->chunk_rows;
        int64_t r1 = r0 + j->chunk_rows < j->n_out ? r0 + j->chunk_rows : j->n_out;
        if (j->gemm && j->n_tok == 1 && j->gemm->gemv) rows_gemv(j, r0, r1);
        else if (j->gemm) rows_gemm(j, r0, r1);
        else rows_dot(j, r0, r1);
    }
}

void el_matmul(el_pool *pool, const void *w, el_type wtype, int64_t n_in, int64_t n_out,
               const float *x, int64_t n_tok, float *y, void *work) {
    if (n_out <= 0 || n_tok <= 0) return;
    if (!el_matmul_supported(wtype, n_in)) {
        /* Loaders check shapes and types first; make a slip visible rather than silent. */
        for (int64_t i = 0; i < n_out * n_tok; i++) y[i] = NAN;
        return;
    }
    const int nth = el_pool_size(pool);
    mm_job j = {
        .w = w,
        .w_row = el_type_row_size(wtype, n_in),
        .n_in = n_in,
        .n_out = n_out,
        .n_tok = n_tok,
        .x = x,
        .act_type = act_type_of(wtype),
        .y = y,
        .dot = el_vec_dot_best(wtype),
    };

    el_gemm_ops ops;
    /* Every token count takes the same path, so a token's result never depends on how
     * the tokens were batched (a reused prompt prefix must not change the answer). */
    if (el_gemm_ops_get(wtype, &ops)) j.gemm = &ops;

    if (j.act_type == EL_TYPE_F32) {
        j.xq = (const uint8_t *)x;
        j.x_row = (size_t)n_in * sizeof(float);
    } else {
        j.xq = work;
        j.x_row = el_type_row_size(j.act_type, n_in);
        if (n_tok > 1 && n_tok * n_in >= MIN_PARALLEL_WORK)
            el_pool_parallel_for(pool, n_tok, 1, quantize_tokens, &j);
        else
            quantize_tokens(&j, 0, n_tok, 0);
    }

    int64_t per = (n_out + (int64_t)nth * CHUNKS_PER_THREAD - 1) / ((int64_t)nth * CHUNKS_PER_THREAD);
    /* One token streams the weights once: chunks of about GEMV_CHUNK_BYTES, so a thread
     * slowed by other work keeps the others waiting at the end for at most that much (one
     * of the 8 default chunks of a 178 MB output head is over 1 ms of reading). */
    if (n_tok == 1 && nth > 1 && per * (int64_t)j.w_row > GEMV_CHUNK_BYTES) per = GEMV_CHUNK_BYTES / (int64_t)j.w_row;
    per = (per + CHUNK_ALIGN - 1) / CHUNK_ALIGN * CHUNK_ALIGN;
    j.chunk_rows = per;
    j.n_chunks = (n_out + per - 1) / per;
    atomic_init(&j.next_chunk, 0);
    if (nth == 1 || j.n_chunks == 1 || n_out * n_in * n_tok < MIN_PARALLEL_WORK) mm_worker(&j, 0, 1);
    else el_pool_run(pool, mm_worker, &j);
}
