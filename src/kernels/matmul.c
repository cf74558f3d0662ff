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
#include "quant/blocks.h"
#if defined(__x86_64__)
#include "kernels/x86/gemm_x86.h"
#elif defined(__aarch64__)
#include "kernels/arm/kernels_arm.h"
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
#ifndef GEMM_TOKEN_BYTES_K
#define GEMM_TOKEN_BYTES_K (448 * 1024) /* the same for K-family panels, which cost more to pack
                                            (measured: +3% on 2048x5632 Q4_K, others unchanged) */
#endif
#ifndef GEMM_MIN_TOKENS
#define GEMM_MIN_TOKENS 128 /* q8/q4 families: tokens per block at least (long rows: the
                               panels' packing is paid per block; measured on 2048x5632, 512
                               tokens: Q4_0 +6%, Q8_0 +4%; 256 KiB blocks elsewhere, where
                               larger ones measured 1-2% slower on Gemma 3 270M) */
#endif

_Static_assert(CHUNK_ALIGN % EL_GEMM_RM == 0, "chunks must hold whole panels");

/* Portable packer and kernel of each format (the definition the SIMD ones match). */
static bool gemm_ops_portable(el_type wtype, el_gemm_ops *ops) {
    switch (wtype) {
    case EL_TYPE_Q8_0:
        *ops = (el_gemm_ops){EL_GEMM_Q8, el_gemm_pack_q8_0, el_gemm_q8_ref, el_gemm_pack_q8_0, el_gemm_q8_ref,
                             NULL, false, false, 32, sizeof(el_panel_q8)};
        return true;
    case EL_TYPE_Q4_0:
    case EL_TYPE_Q5_0:
    case EL_TYPE_Q5_0_R4: {
        el_gemm_pack_fn pk = wtype == EL_TYPE_Q4_0   ? el_gemm_pack_q4_0
                             : wtype == EL_TYPE_Q5_0 ? el_gemm_pack_q5_0
                                                     : el_gemm_pack_q5_0_r4;
        *ops = (el_gemm_ops){EL_GEMM_Q4, pk, el_gemm_q4_ref, pk, el_gemm_q4_ref, NULL, true, false, 32,
                             sizeof(el_panel_q4)};
        return true;
    }
    case EL_TYPE_Q2_K:
    case EL_TYPE_Q3_K:
    case EL_TYPE_Q4_K:
    case EL_TYPE_Q4_K_T:
    case EL_TYPE_Q5_K:
    case EL_TYPE_Q6_K: {
        el_gemm_pack_fn pk = wtype == EL_TYPE_Q2_K     ? el_gemm_pack_q2_K
                             : wtype == EL_TYPE_Q3_K   ? el_gemm_pack_q3_K
                             : wtype == EL_TYPE_Q4_K   ? el_gemm_pack_q4_K
                             : wtype == EL_TYPE_Q4_K_T ? el_gemm_pack_q4_K_t
                             : wtype == EL_TYPE_Q5_K   ? el_gemm_pack_q5_K
                                                       : el_gemm_pack_q6_K;
        /* Q3_K and Q6_K store q + offset: their bias is an integer multiple of the scale. */
        el_gemm_kernel_fn k = (wtype == EL_TYPE_Q3_K || wtype == EL_TYPE_Q6_K) ? el_gemm_k_ibias_ref
                                                                             : el_gemm_k_fbias_ref;
        *ops = (el_gemm_ops){EL_GEMM_K, pk, k, pk, k, NULL, false, false, 256, sizeof(el_panel_k)};
        return true;
    }
    default:
        return false;
    }
}

#if defined(__x86_64__)
/* Which variant of the x86 kernels and gemvs this CPU runs (kernels/x86/gemm_x86.h; all
 * give the same bits): VNNI where the level is avx512, else AVX-VNNI where the CPU has it
 * (and core/cpu_features.h's policy allows it), else AVX2. */
typedef enum x86_variant { X86_AVX2, X86_AVX512, X86_AVXVNNI } x86_variant;

static x86_variant x86_variant_get(void) {
    const el_cpu_features *c = el_cpu_features_get();
    if (c->level == EL_CPU_AVX512) return X86_AVX512;
    if (c->level == EL_CPU_AVX2 && c->avxvnni && EL_AVXVNNI_DEFAULT) return X86_AVXVNNI;
    return X86_AVX2;
}

#define X86_PICK(v, f) ((v) == X86_AVX512 ? f##_avx512 : (v) == X86_AVXVNNI ? f##_avxvnni : f##_avx2)

/* Whether Q8_0 products run on the q4 family's panels and kernels: with VNNI, whose
 * vpdpbusd sums (x + 128) * w exactly, that drops the q8 kernels' 4 sign steps per
 * block and token (llvm-mca, Ice Lake: 44 -> 28 cycles per block of the two-panel tile;
 * not timed: no such CPU here). AVX2's int16 steps would saturate. The K cut stays the
 * q8 panel's, so every output is the AVX2 build's bits. */
static bool q8_0_on_q4_kernels(x86_variant v) { return v != X86_AVX2; }
#endif

bool el_gemm_ops_get(el_type wtype, el_gemm_ops *ops) {
    memset(ops, 0, sizeof *ops);
#if defined(__x86_64__)
    if (el_cpu_features_get()->level < EL_CPU_AVX2 || !gemm_ops_portable(wtype, ops)) return false;
    const x86_variant v = x86_variant_get();
    switch (wtype) {
    case EL_TYPE_Q8_0:
        if (q8_0_on_q4_kernels(v)) { /* panel_bytes (the K cut) stays sizeof(el_panel_q8) */
            ops->family = EL_GEMM_Q4, ops->act_offset = true;
            ops->pack = el_gemm_pack_q8_0_q4_avx2, ops->gemv = X86_PICK(v, el_gemv_q8_0_off);
            ops->pack_ref = el_gemm_pack_q8_0_q4, ops->kernel_ref = el_gemm_q4_ref;
        } else {
            ops->pack = el_gemm_pack_q8_0_avx2, ops->gemv = X86_PICK(v, el_gemv_q8_0);
        }
        break;
    case EL_TYPE_Q4_0: ops->pack = el_gemm_pack_q4_0_avx2, ops->gemv = X86_PICK(v, el_gemv_q4_0); break;
    case EL_TYPE_Q5_0: ops->pack = el_gemm_pack_q5_0_avx2, ops->gemv = X86_PICK(v, el_gemv_q5_0); break;
    case EL_TYPE_Q5_0_R4: ops->pack = el_gemm_pack_q5_0_r4_avx2, ops->gemv = X86_PICK(v, el_gemv_q5_0_r4); break;
    case EL_TYPE_Q4_K: ops->pack = el_gemm_pack_q4_K_avx2, ops->gemv = X86_PICK(v, el_gemv_q4_K); break;
    case EL_TYPE_Q4_K_T: /* group-transposed panels and activations; el_panel_k's K cut (panel_bytes) */
        ops->pack = el_gemm_pack_kt_q4_K_t_avx2, ops->gemv = X86_PICK(v, el_gemv_q4_K_t);
        ops->act_transposed = true;
        break;
    case EL_TYPE_Q6_K: ops->pack = el_gemm_pack_q6_K_avx2, ops->gemv = X86_PICK(v, el_gemv_q6_K); break;
    default: break; /* the portable packer (rarer formats), pack + kernel for one token */
    }
    const bool ibias = ops->kernel_ref == el_gemm_k_ibias_ref;
    switch (ops->family) {
    case EL_GEMM_Q8: ops->kernel = X86_PICK(v, el_gemm_q8); break;
    case EL_GEMM_Q4: ops->kernel = X86_PICK(v, el_gemm_q4); break;
    default:
        if (ops->act_transposed) ops->kernel = X86_PICK(v, el_gemm_kt_fbias);
        else if (ibias) ops->kernel = X86_PICK(v, el_gemm_k_ibias);
        else ops->kernel = X86_PICK(v, el_gemm_k_fbias);
        break;
    }
    return true;
#elif defined(__aarch64__)
    /* Micro-kernels on the portable panels (NEON packers for the common formats): SMMLA
     * where the CPU has i8mm, SDOT where it has dotprod, SMULL otherwise (all with the same
     * results); one token through the gemvs (SDOT or SMULL). The q4 family keeps act_offset
     * (the panels are shared with x86): the kernels flip the activations back to signed. */
    const el_cpu_features *cpu = el_cpu_features_get();
    if (cpu->level != EL_CPU_NEON || !gemm_ops_portable(wtype, ops)) return false;
    const bool sdot = cpu->dotprod, mm = sdot && cpu->i8mm;
    switch (wtype) {
    case EL_TYPE_Q8_0:
        ops->pack = el_gemm_pack_q8_0_neon, ops->gemv = sdot ? el_gemv_q8_0_dotprod : el_gemv_q8_0_neon;
        break;
    case EL_TYPE_Q4_0:
        ops->pack = el_gemm_pack_q4_0_neon, ops->gemv = sdot ? el_gemv_q4_0_dotprod : el_gemv_q4_0_neon;
        break;
    case EL_TYPE_Q5_0:
        ops->pack = el_gemm_pack_q5_0_neon, ops->gemv = sdot ? el_gemv_q5_0_dotprod : el_gemv_q5_0_neon;
        break;
    case EL_TYPE_Q4_K:
        ops->pack = el_gemm_pack_q4_K_neon, ops->gemv = sdot ? el_gemv_q4_K_dotprod : el_gemv_q4_K_neon;
        break;
    case EL_TYPE_Q5_K: ops->gemv = sdot ? el_gemv_q5_K_dotprod : el_gemv_q5_K_neon; break;
    case EL_TYPE_Q6_K:
        ops->pack = el_gemm_pack_q6_K_neon, ops->gemv = sdot ? el_gemv_q6_K_dotprod : el_gemv_q6_K_neon;
        break;
    default: break; /* Q2_K, Q3_K: pack + kernel for one token too */
    }
    const bool ibias = ops->kernel_ref == el_gemm_k_ibias_ref;
    switch (ops->family) {
    case EL_GEMM_Q8: ops->kernel = mm ? el_gemm_q8_i8mm : sdot ? el_gemm_q8_dotprod : el_gemm_q8_neon; break;
    case EL_GEMM_Q4: ops->kernel = mm ? el_gemm_q4_i8mm : sdot ? el_gemm_q4_dotprod : el_gemm_q4_neon; break;
    default:
        if (ibias) ops->kernel = mm ? el_gemm_k_ibias_i8mm : sdot ? el_gemm_k_ibias_dotprod : el_gemm_k_ibias_neon;
        else ops->kernel = mm ? el_gemm_k_fbias_i8mm : sdot ? el_gemm_k_fbias_dotprod : el_gemm_k_fbias_neon;
        break;
    }
    return true;
#else
    /* No SIMD micro-kernels for this architecture: per-row dot products are faster
     * than the portable kernels. */
    (void)gemm_ops_portable;
    (void)wtype;
    return false;
#endif
}

const char *el_matmul_kernels_name(void) {
    const el_cpu_features *c = el_cpu_features_get();
#if defined(__x86_64__)
    if (c->level < EL_CPU_AVX2) return "scalar";
    switch (x86_variant_get()) {
    case X86_AVX512: return "avx512-vnni";
    case X86_AVXVNNI: return "avx-vnni";
    default: return "avx2";
    }
#elif defined(__aarch64__)
    if (c->level != EL_CPU_NEON) return "scalar";
    return c->dotprod && c->i8mm ? "neon-i8mm" : c->dotprod ? "neon-dotprod" : "neon";
#else
    (void)c;
    return "scalar";
#endif
}

el_gemm_kernel2_fn el_gemm_kernel2_get(el_type wtype) {
#if defined(__x86_64__)
    if (el_cpu_features_get()->level < EL_CPU_AVX2) return NULL;
    const x86_variant v = x86_variant_get();
    switch (wtype) {
    case EL_TYPE_Q8_0: return q8_0_on_q4_kernels(v) ? X86_PICK(v, el_gemm_q4x2) : X86_PICK(v, el_gemm_q8x2);
    case EL_TYPE_Q4_0:
    case EL_TYPE_Q5_0:
    case EL_TYPE_Q5_0_R4: return X86_PICK(v, el_gemm_q4x2);
    default: return NULL;
    }
#else
    (void)wtype;
    return NULL;
#endif
}

bool el_gemm_kp_get(el_type wtype, el_gemm_pack_fn *pack, el_gemm_kernel_fn *kernel) {
#if defined(__x86_64__)
    if (el_cpu_features_get()->level < EL_CPU_AVX2) return false;
    const x86_variant v = x86_variant_get();
    switch (wtype) {
    case EL_TYPE_Q4_K: *pack = el_gemm_pack_kp_q4_K_avx2, *kernel = X86_PICK(v, el_gemm_kp_fbias); return true;
    case EL_TYPE_Q6_K: *pack = el_gemm_pack_kp_q6_K_avx2, *kernel = X86_PICK(v, el_gemm_kp_ibias); return true;
    default: return false;
    }
#else
    (void)wtype, (void)pack, (void)kernel;
    return false;
#endif
}

bool el_gemm_kt_get(el_type wtype, el_gemm_pack_fn *pack, el_gemm_kernel_fn *kernel) {
#if defined(__x86_64__)
    if (el_cpu_features_get()->level < EL_CPU_AVX2 || wtype != EL_TYPE_Q4_K) return false;
    *pack = el_gemm_pack_kt_q4_K_avx2, *kernel = X86_PICK(x86_variant_get(), el_gemm_kt_fbias);
    return true;
#else
    (void)wtype, (void)pack, (void)kernel;
    return false;
#endif
}

void el_gemv_panels_get(el_type wtype, el_gemv_span_fn *span, el_gemv_few_fn *few) {
    *span = NULL, *few = NULL;
#if defined(__x86_64__)
    if (el_cpu_features_get()->level < EL_CPU_AVX2) return;
    const x86_variant v = x86_variant_get();
    switch (wtype) {
    case EL_TYPE_Q8_0:
        *span = q8_0_on_q4_kernels(v) ? X86_PICK(v, el_gemv_q8_0_off_span) : X86_PICK(v, el_gemv_q8_0_span);
        break; /* no few-token kernel: one measured slower than a span call per token */
    case EL_TYPE_Q4_0: *span = X86_PICK(v, el_gemv_q4_0_span), *few = X86_PICK(v, el_gemv_q4_0_few); break;
    case EL_TYPE_Q5_0: *span = X86_PICK(v, el_gemv_q5_0_span); break;
    case EL_TYPE_Q5_0_R4: *span = X86_PICK(v, el_gemv_q5_0_r4_span), *few = X86_PICK(v, el_gemv_q5_0_r4_few); break;
    case EL_TYPE_Q4_K: *span = X86_PICK(v, el_gemv_q4_K_span), *few = X86_PICK(v, el_gemv_q4_K_few); break;
    case EL_TYPE_Q4_K_T: *span = X86_PICK(v, el_gemv_q4_K_t_span), *few = X86_PICK(v, el_gemv_q4_K_t_few); break;
    case EL_TYPE_Q6_K: *span = X86_PICK(v, el_gemv_q6_K_span), *few = X86_PICK(v, el_gemv_q6_K_few); break;
    default: break;
    }
#else
    (void)wtype;
#endif
}

/* The blocked kernels a product of wtype runs: el_gemm_ops_get's, or, for a regrouped
 * layout on a CPU without kernels of its own for it, the portable ones (only they read it). */
static bool gemm_ops_for(el_type wtype, el_gemm_ops *ops) {
    return el_gemm_ops_get(wtype, ops) ||
           ((wtype == EL_TYPE_Q5_0_R4 || wtype == EL_TYPE_Q4_K_T) && gemm_ops_portable(wtype, ops));
}

/* Whether a product of n_tok tokens reads its activations transposed (ops: gemm_ops_for's,
 * zeroed where it found none): Q4_K_T's kernels always; Q4_K's group-transposed kernel on the blocked path (more tokens than the gemvs
 * take), where its one-token kernel, which reads them as they are, is not used. */
static bool acts_transposed(const el_gemm_ops *ops, el_type wtype, int64_t n_tok) {
    el_gemm_pack_fn pack;
    el_gemm_kernel_fn kernel;
    return ops->act_transposed || (n_tok > EL_GEMV_FEW_TOKENS && el_gemm_kt_get(wtype, &pack, &kernel));
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
    el_gemm_ops ops;
    /* only the blocked path reads regrouped rows */
    if (wtype == EL_TYPE_Q5_0_R4) return n_in > 0 && n_in % 64 == 0 && gemm_ops_for(wtype, &ops);
    if (wtype == EL_TYPE_Q4_K_T) return n_in > 0 && n_in % 256 == 0 && gemm_ops_for(wtype, &ops);
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
    el_gemm_kernel2_fn kernel2; /* two-panel kernel (gemm path), or NULL */
    el_gemv_span_fn gemv_span;  /* whole panels of one token in one call, or NULL */
    el_gemv_few_fn gemv_few;    /* whole panels of a few tokens in one call, or NULL */
    el_gemm_pack_fn pack;       /* panel_gemm's packer and kernel: gemm's, or the */
    el_gemm_kernel_fn kernel;   /* pair-summed or group-transposed K ones (el_gemm_kp_get,
                                 * el_gemm_kt_get; K still cut as gemm's) */
    bool act_transposed;        /* activations through el_gemm_transpose_act_q8_K (kt kernels) */
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
        if (j->act_transposed) el_gemm_transpose_act_q8_K(row, j->n_in);
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

/* A panel's (or pair's) outputs for one token into its row of y: y[0..nr) = out, or +=
 * (add: a later K chunk). Whole panels go as one copy of a fixed width, which the
 * compiler makes vector stores: as nr single stores, each landing in another token's row
 * of y (mostly not in L2), they filled the store buffer, ~3% of a TinyLlama-shaped
 * prefill. The same float adds either way. */
static inline void put_rows(float *y, const float *out, int nr, int width, bool add) {
    if (nr == width && !add) {
        memcpy(y, out, sizeof(float) * (size_t)width);
    } else if (nr == width) {
        for (int r = 0; r < width; r++) y[r] += out[r];
    } else {
        for (int r = 0; r < nr; r++) y[r] = add ? y[r] + out[r] : out[r];
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
        if (t1 - t0 == 1 && g->gemv && g->act_transposed == j->act_transposed) { /* one token: no panel round trip */
            float out[EL_GEMM_RM];
            g->gemv(rows, b0, nb, j->xq + (size_t)t0 * j->x_row + (size_t)b0 * act_block, out);
            float *yr = j->y + t0 * j->n_out + p0;
            put_rows(yr, out, nr, EL_GEMM_RM, b0 > 0);
            continue;
        }
        j->pack(rows, b0, nb, panel);
        for (int64_t tt = t0; tt < t1; tt += EL_GEMM_TN) {
            const void *xs[EL_GEMM_TN];
            for (int i = 0; i < EL_GEMM_TN; i++) {
                int64_t t = tt + i < t1 ? tt + i : t1 - 1;
                xs[i] = j->xq + (size_t)t * j->x_row + (size_t)b0 * act_block;
            }
            const int nt = tt + EL_GEMM_TN <= t1 ? EL_GEMM_TN : (int)(t1 - tt);
            float out[EL_GEMM_TN][EL_GEMM_RM];
            j->kernel(panel, nb, xs, nt, out);
            for (int i = 0; i < EL_GEMM_TN && tt + i < t1; i++) {
                float *yr = j->y + (tt + i) * j->n_out + p0;
                put_rows(yr, out[i], nr, EL_GEMM_RM, b0 > 0);
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
    int64_t p0 = r0;
    if (j->gemv_span && nblk <= kc) { /* whole rows in one K chunk: the full panels in one call */
        const int64_t n_panels = ((r1 < j->n_out ? r1 : j->n_out) - r0) / EL_GEMM_RM;
        j->gemv_span(j->w + (size_t)r0 * j->w_row, j->w_row, n_panels, nblk, j->xq, j->y + r0);
        p0 += n_panels * EL_GEMM_RM;
    }
    for (; p0 < r1; p0 += EL_GEMM_RM) {
        const void *rows[EL_GEMM_RM];
        const int nr = p0 + EL_GEMM_RM <= j->n_out ? EL_GEMM_RM : (int)(j->n_out - p0);
        for (int r = 0; r < EL_GEMM_RM; r++) rows[r] = j->w + (size_t)(r < nr ? p0 + r : j->n_out - 1) * j->w_row;
        float *yr = j->y + p0;
        for (int64_t b0 = 0; b0 < nblk; b0 += kc) {
            const int64_t nb = b0 + kc < nblk ? kc : nblk - b0;
            float out[EL_GEMM_RM];
            g->gemv(rows, b0, nb, j->xq + (size_t)b0 * act_block, out);
            put_rows(yr, out, nr, EL_GEMM_RM, b0 > 0);
        }
    }
}

/* A few tokens (a speculative verify batch): every token through the one-token gemv,
 * panel by panel, so each 4-row chunk of weights comes from memory once and from cache
 * for the other tokens (or, where the format has one, through the few-token gemv, which
 * also decodes each block of rows once for them all); packing panels would cost more than
 * it saves at this size.
 * The same bits as rows_gemv / panel_gemm give each token. */
static void rows_gemv_few(const mm_job *j, int64_t r0, int64_t r1) {
    const el_gemm_ops *g = j->gemm;
    const int64_t nblk = j->n_in / g->block_elems;
    const int64_t kc = GEMM_PANEL_BYTES / g->panel_bytes;
    const size_t act_block = j->x_row / (size_t)nblk;
    int64_t p0 = r0;
    if (j->gemv_few && nblk <= kc) { /* whole rows in one K chunk: the full panels, all tokens, in one call */
        const int64_t n_panels = ((r1 < j->n_out ? r1 : j->n_out) - r0) / EL_GEMM_RM;
        j->gemv_few(j->w + (size_t)r0 * j->w_row, j->w_row, n_panels, nblk, j->xq, j->x_row, (int)j->n_tok,
                    j->y + r0, j->n_out);
        p0 += n_panels * EL_GEMM_RM;
    }
    for (; p0 < r1; p0 += EL_GEMM_RM) {
        const void *rows[EL_GEMM_RM];
        const int nr = p0 + EL_GEMM_RM <= j->n_out ? EL_GEMM_RM : (int)(j->n_out - p0);
        for (int r = 0; r < EL_GEMM_RM; r++) rows[r] = j->w + (size_t)(r < nr ? p0 + r : j->n_out - 1) * j->w_row;
        for (int64_t b0 = 0; b0 < nblk; b0 += kc) {
            const int64_t nb = b0 + kc < nblk ? kc : nblk - b0;
            for (int64_t t = 0; t < j->n_tok; t++) {
                float out[EL_GEMM_RM];
                g->gemv(rows, b0, nb, j->xq + (size_t)t * j->x_row + (size_t)b0 * act_block, out);
                float *yr = j->y + t * j->n_out + p0;
                put_rows(yr, out, nr, EL_GEMM_RM, b0 > 0);
            }
        }
    }
}

/* Two panels (rows p0..p0+2RM, padded by repeating the last row) against tokens
 * [t0, t1) through kernel2, with the activation scales of the token block as floats
 * (dxb: token t's block b at dxb[(t - t0) * nblk + b]). K is cut where panel_gemm cuts
 * it, so every output is the same bits either way. */
static void panel2_gemm(const mm_job *j, unsigned char *panels, const float *dxb, int64_t p0, int64_t t0,
                        int64_t t1) {
    const el_gemm_ops *g = j->gemm;
    const int64_t nblk = j->n_in / g->block_elems;
    const int64_t kc = GEMM_PANEL_BYTES / g->panel_bytes;
    const size_t act_block = el_type_row_size(j->act_type, g->block_elems);
    const void *rows[2][EL_GEMM_RM];
    int nr = 0;
    for (int r = 0; r < 2 * EL_GEMM_RM; r++) {
        int64_t row = p0 + r < j->n_out ? p0 + r : j->n_out - 1;
        if (p0 + r < j->n_out) nr++;
        rows[r / EL_GEMM_RM][r % EL_GEMM_RM] = j->w + (size_t)row * j->w_row;
    }
    unsigned char *pa = panels, *pb = panels + GEMM_PANEL_BYTES;
    for (int64_t b0 = 0; b0 < nblk; b0 += kc) {
        const int64_t nb = b0 + kc < nblk ? kc : nblk - b0;
        g->pack(rows[0], b0, nb, pa);
        g->pack(rows[1], b0, nb, pb);
        for (int64_t tt = t0; tt < t1; tt += EL_GEMM_TN) {
            const void *xs[EL_GEMM_TN];
            const float *dx[EL_GEMM_TN];
            for (int i = 0; i < EL_GEMM_TN; i++) {
                int64_t t = tt + i < t1 ? tt + i : t1 - 1;
                xs[i] = j->xq + (size_t)t * j->x_row + (size_t)b0 * act_block;
                dx[i] = dxb + (t - t0) * nblk + b0;
            }
            float out[EL_GEMM_TN][2 * EL_GEMM_RM];
            j->kernel2(pa, pb, nb, xs, dx, out);
            for (int i = 0; i < EL_GEMM_TN && tt + i < t1; i++) {
                float *yr = j->y + (tt + i) * j->n_out + p0;
                put_rows(yr, out[i], nr, 2 * EL_GEMM_RM, b0 > 0);
            }
        }
    }
}

/* Tokens go in blocks whose activations stay in L2 while every panel of the chunk
 * passes over them; a panel is packed again for each token block (cheap next to the
 * multiply-adds it then serves). With kernel2, panels go in pairs and the token
 * block's activation scales are converted to float first (Q8_0 activations: 32-element
 * blocks with an f16 scale at their start). */
#define GEMM_DX_FLOATS (24 * 1024) /* 96 KiB of the worker's stack: GEMM_MIN_TOKENS rows of 6144 */
_Static_assert(GEMM_DX_FLOATS >= GEMM_TOKEN_BYTES / sizeof(block_q8_0), "a token block's scales fit dxb");
static void rows_gemm(const mm_job *j, int64_t r0, int64_t r1) {
    _Alignas(64) unsigned char panel[2 * GEMM_PANEL_BYTES];
    _Alignas(64) float dxb[GEMM_DX_FLOATS];
    const el_gemm_ops *g = j->gemm;
    const int64_t nblk = j->n_in / g->block_elems;
    const size_t tok_bytes = g->family == EL_GEMM_K ? GEMM_TOKEN_BYTES_K : GEMM_TOKEN_BYTES;
    int64_t tb = (int64_t)(tok_bytes / j->x_row);
    if (g->family != EL_GEMM_K && tb < GEMM_MIN_TOKENS) { /* up to the minimum, as far as dxb holds */
        const int64_t fit = GEMM_DX_FLOATS / nblk;             /* (never fewer than tb) */
        tb = fit < GEMM_MIN_TOKENS ? fit : GEMM_MIN_TOKENS;
    }
    tb = tb / EL_GEMM_TN * EL_GEMM_TN;
    if (tb < EL_GEMM_TN) tb = EL_GEMM_TN;
    const bool pairs = j->kernel2 && j->act_type == EL_TYPE_Q8_0 && (size_t)(tb * nblk) <= GEMM_DX_FLOATS;
    for (int64_t t0 = 0; t0 < j->n_tok; t0 += tb) {
        int64_t t1 = t0 + tb < j->n_tok ? t0 + tb : j->n_tok;
        int64_t p0 = r0;
        if (pairs && t1 - t0 > 1) {
            for (int64_t t = t0; t < t1; t++) {
                const uint8_t *xr = j->xq + (size_t)t * j->x_row;
                float *d = dxb + (t - t0) * nblk;
                for (int64_t b = 0; b < nblk; b++) {
                    uint16_t h;
                    memcpy(&h, xr + (size_t)b * sizeof(block_q8_0), sizeof h);
                    d[b] = el_f16_to_f32(h);
                }
            }
            for (; p0 + 2 * EL_GEMM_RM <= r1; p0 += 2 * EL_GEMM_RM) panel2_gemm(j, panel, dxb, p0, t0, t1);
        }
        for (; p0 < r1; p0 += EL_GEMM_RM) panel_gemm(j, panel, p0, t0, t1);
    }
}

static void run_chunk(const mm_job *j, int64_t c) {
    int64_t r0 = c * j->chunk_rows;
    int64_t r1 = r0 + j->chunk_rows < j->n_out ? r0 + j->chunk_rows : j->n_out;
    if (j->gemm && j->n_tok == 1 && j->gemm->gemv) rows_gemv(j, r0, r1);
    else if (j->gemm && j->n_tok <= EL_GEMV_FEW_TOKENS && j->gemm->gemv) rows_gemv_few(j, r0, r1);
    else if (j->gemm) rows_gemm(j, r0, r1);
    else rows_dot(j, r0, r1);
}

static void mm_worker(void *arg, int ith, int nth) {
    (void)ith;
    (void)nth;
    mm_job *j = arg;
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&j->next_chunk, 1, memory_order_relaxed);
        if (c >= j->n_chunks) break;
        run_chunk(j, c);
    }
}

/* Everything about one product but its activation buffer (xq, x_row) and chunking.
 * ops: storage for the blocked kernels. False if the product is not supported. */
static bool job_init(mm_job *j, el_gemm_ops *ops, const void *w, el_type wtype, int64_t n_in, int64_t n_out,
                     const float *x, int64_t n_tok, float *y) {
    if (!el_matmul_supported(wtype, n_in)) return false;
    if (wtype == EL_TYPE_Q5_0_R4 && n_out % EL_GEMM_RM != 0) return false; /* whole panels only */
    *j = (mm_job){
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
    /* Every token count takes the same path, so a token's result never depends on how
     * the tokens were batched (a reused prompt prefix must not change the answer). */
    if (gemm_ops_for(wtype, ops)) {
        j->gemm = ops;
        j->kernel2 = el_gemm_kernel2_get(wtype);
        el_gemv_panels_get(wtype, &j->gemv_span, &j->gemv_few);
        if (ops->act_transposed) j->pack = ops->pack, j->kernel = ops->kernel, j->act_transposed = true;
        else if (acts_transposed(ops, wtype, n_tok)) j->act_transposed = el_gemm_kt_get(wtype, &j->pack, &j->kernel);
        else if (!el_gemm_kp_get(wtype, &j->pack, &j->kernel)) j->pack = ops->pack, j->kernel = ops->kernel;
    }
    j->x_row = j->act_type == EL_TYPE_F32 ? (size_t)n_in * sizeof(float) : el_type_row_size(j->act_type, n_in);
    return true;
}

/* Quantize X into j's activation form at xq (X itself for F32 activations). */
static void job_quantize(el_pool *pool, mm_job *j, void *xq) {
    if (j->act_type == EL_TYPE_F32) {
        j->xq = (const uint8_t *)j->x;
        return;
    }
    j->xq = xq;
    if (j->n_tok > 1 && j->n_tok * j->n_in >= MIN_PARALLEL_WORK)
        el_pool_parallel_for(pool, j->n_tok, 1, quantize_tokens, j);
    else
        quantize_tokens(j, 0, j->n_tok, 0);
}

static void job_plan(mm_job *j, int nth) {
    const int64_t n_out = j->n_out;
    int64_t per = (n_out + (int64_t)nth * CHUNKS_PER_THREAD - 1) / ((int64_t)nth * CHUNKS_PER_THREAD);
    /* One token streams the weights once: chunks of about GEMV_CHUNK_BYTES, so a thread
     * slowed by other work keeps the others waiting at the end for at most that much (one
     * of the 8 default chunks of a 178 MB output head is over 1 ms of reading). */
    if (j->n_tok <= EL_GEMV_FEW_TOKENS && nth > 1 && per * (int64_t)j->w_row > GEMV_CHUNK_BYTES)
        per = GEMV_CHUNK_BYTES / (int64_t)j->w_row;
    per = (per + CHUNK_ALIGN - 1) / CHUNK_ALIGN * CHUNK_ALIGN;
    j->chunk_rows = per;
    j->n_chunks = (n_out + per - 1) / per;
    atomic_init(&j->next_chunk, 0);
}

static void fill_nan(float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = NAN;
}

void el_matmul(el_pool *pool, const void *w, el_type wtype, int64_t n_in, int64_t n_out,
               const float *x, int64_t n_tok, float *y, void *work) {
    if (n_out <= 0 || n_tok <= 0) return;
    mm_job j;
    el_gemm_ops ops;
    if (!job_init(&j, &ops, w, wtype, n_in, n_out, x, n_tok, y)) {
        /* Loaders check shapes and types first; make a slip visible rather than silent. */
        fill_nan(y, n_out * n_tok);
        return;
    }
    const int nth = el_pool_size(pool);
    job_quantize(pool, &j, work);
    job_plan(&j, nth);
    if (nth == 1 || j.n_chunks == 1 || n_out * n_in * n_tok < MIN_PARALLEL_WORK) mm_worker(&j, 0, 1);
    else el_pool_run(pool, mm_worker, &j);
}

/* ---- several products sharing X, in one pool job ---- */

/* Items whose activations have the same form (type, +128 offset, transposed or not)
 * share one quantized copy of X; form_of gives each item's form index, the return value
 * the number of forms. */
static int activation_forms(const el_matmul_item *items, int n, int64_t n_tok, int form_of[EL_MATMUL_MAX_ITEMS]) {
    el_type types[EL_MATMUL_MAX_ITEMS];
    bool offs[EL_MATMUL_MAX_ITEMS], trs[EL_MATMUL_MAX_ITEMS];
    int nf = 0;
    for (int i = 0; i < n; i++) {
        el_gemm_ops ops;
        const el_type at = act_type_of(items[i].wtype);
        const bool off = gemm_ops_for(items[i].wtype, &ops) && ops.act_offset;
        const bool tr = acts_transposed(&ops, items[i].wtype, n_tok);
        int f = 0;
        while (f < nf && !(types[f] == at && offs[f] == off && trs[f] == tr)) f++;
        if (f == nf) types[nf] = at, offs[nf] = off, trs[nf] = tr, nf++;
        form_of[i] = f;
    }
    return nf;
}

static size_t round_up64(size_t n) { return n > SIZE_MAX - 63 ? SIZE_MAX : (n + 63) & ~(size_t)63; }

size_t el_matmul_multi_work_size(const el_matmul_item *items, int n_items, int64_t n_in, int64_t n_tok) {
    if (n_items <= 0 || n_items > EL_MATMUL_MAX_ITEMS) return 0;
    int form_of[EL_MATMUL_MAX_ITEMS];
    const int nf = activation_forms(items, n_items, n_tok, form_of);
    size_t total = 0;
    for (int f = 0; f < nf; f++) {
        el_type wt = items[0].wtype;
        for (int i = 0; i < n_items; i++)
            if (form_of[i] == f) wt = items[i].wtype;
        const size_t s = el_matmul_work_size(wt, n_in, n_tok);
        if (s == SIZE_MAX || round_up64(s) > SIZE_MAX - total) return SIZE_MAX;
        total += round_up64(s);
    }
    return total;
}

typedef struct mm_multi {
    mm_job *jobs;
    int n;
    int64_t first[EL_MATMUL_MAX_ITEMS + 1]; /* chunk c of the whole belongs to job k: first[k] <= c < first[k+1] */
    atomic_llong next_chunk;
} mm_multi;

static void multi_worker(void *arg, int ith, int nth) {
    (void)ith;
    (void)nth;
    mm_multi *m = arg;
    int k = 0;
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&m->next_chunk, 1, memory_order_relaxed);
        if (c >= m->first[m->n]) break;
        while (c >= m->first[k + 1]) k++; /* chunks are handed out in increasing order */
        run_chunk(&m->jobs[k], c - m->first[k]);
    }
}

void el_matmul_multi(el_pool *pool, const el_matmul_item *items, int n_items, int64_t n_in, const float *x,
                     int64_t n_tok, void *work) {
    if (n_items <= 0 || n_tok <= 0) return;
    if (n_items > EL_MATMUL_MAX_ITEMS) {
        for (int i = 0; i < n_items; i++) fill_nan(items[i].y, items[i].n_out * n_tok);
        return;
    }
    mm_job jobs[EL_MATMUL_MAX_ITEMS];
    el_gemm_ops ops[EL_MATMUL_MAX_ITEMS];
    int form_of[EL_MATMUL_MAX_ITEMS];
    activation_forms(items, n_items, n_tok, form_of);
    const uint8_t *form_xq[EL_MATMUL_MAX_ITEMS] = {0};
    uint8_t *next = work;
    mm_multi m = {.jobs = jobs};
    const int nth = el_pool_size(pool);
    int64_t flops = 0;
    for (int i = 0; i < n_items; i++) {
        const el_matmul_item *it = &items[i];
        if (it->n_out <= 0) continue;
        mm_job *j = &jobs[m.n];
        if (!job_init(j, &ops[m.n], it->w, it->wtype, n_in, it->n_out, x, n_tok, it->y)) {
            fill_nan(it->y, it->n_out * n_tok);
            continue;
        }
        const int f = form_of[i];
        if (!form_xq[f]) { /* first item of this form: quantize X for all of them */
            job_quantize(pool, j, next);
            form_xq[f] = j->xq;
            if (j->act_type != EL_TYPE_F32) next += round_up64(el_matmul_work_size(it->wtype, n_in, n_tok));
        } else {
            j->xq = form_xq[f];
        }
        job_plan(j, nth);
        m.first[m.n + 1] = m.first[m.n] + j->n_chunks;
        flops += it->n_out * n_in * n_tok;
        m.n++;
    }
    if (m.n == 0) return;
    atomic_init(&m.next_chunk, 0);
    if (nth == 1 || m.first[m.n] == 1 || flops < MIN_PARALLEL_WORK) multi_worker(&m, 0, 1);
    else el_pool_run(pool, multi_worker, &m);
}
