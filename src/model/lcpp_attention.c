/* Attention as llama.cpp computes it without flash attention over an F16 KV cache
 * (see lcpp_numerics.h), for el_ctx_params.numerics = EL_NUMERICS_LLAMACPP:
 *
 *   scores  kq[k]  = f16(q) . K[k]          F16 product (tinyBLAS, or vec_dot if single)
 *   softmax w[k]   = kq[k] * scale (masked: -inf); p = exp(w - max) (ggml's vector
 *                    expf, sums in double) times (float)(1 / sum)
 *   values  out[d] = V[:, d] . f16(p)        F16 product over the cache length
 *
 * llama.cpp's cache length is padded to a multiple of 256 cells; masked and unused
 * cells add exact zeros in every lane, so only the visible keys are visited here, each
 * in the lane its absolute position gives it. One (token, head) per work item. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/lcpp_numerics.h"
#include "model/model.h"
#include "quant/quant.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

typedef struct lcpp_attn_job {
    const el_ctx *c;
    const el_kv_layer *kvl;
    const float *q;
    float *out;
    int32_t p0;
    float scale;
    bool single;
    float *scratch; /* per thread: scores (n_ctx), one K row, one V column, the rounded query */
    size_t scratch_per_thread;
} lcpp_attn_job;

/* Weighted values over keys [0, np) (those past nk masked: p = 0) for dimension d:
 * tinyBLAS keeps one 8-lane
 * accumulator (lane k % 8), ggml_vec_dot_f16 four of them (accumulator (k / 8) % 4). */
static float weighted_value(const lcpp_attn_job *J, const float *p, int g, int d, int32_t nk, int32_t np,
                            float *col) {
    const el_ctx *c = J->c;
    for (int32_t k = 0; k < nk; k++) {
        const uint16_t *slice = (const uint16_t *)el_kv_v(&c->kv, J->kvl, (uint32_t)g, (uint32_t)k % J->kvl->n_cells);
        col[k] = el_f16_to_f32(slice[d]);
    }
    for (int32_t k = nk; k < np; k++) col[k] = 0.0f;
    return el_lcpp_dot_f16(col, p, np, J->single);
}

static void attend_one(const lcpp_attn_job *J, int64_t item, float *scratch) {
    const el_ctx *c = J->c;
    const el_hparams *hp = &c->m->hp;
    const int hk = (int)hp->head_dim_k, hv = (int)hp->head_dim_v;
    const int group = (int)(hp->n_head / hp->n_head_kv);
    const int32_t t = (int32_t)(item / hp->n_head);
    const int h = (int)(item % hp->n_head), g = h / group;
    const int32_t nk = J->p0 + t + 1; /* causal: positions 0 .. p0 + t */

    float *s = scratch, *krow = s + c->n_ctx + 32, *col = krow + hk;
    const float *q = J->q + ((size_t)t * hp->n_head + h) * hk;
    float max = -INFINITY;
    for (int32_t k = 0; k < nk; k++) {
        const uint16_t *slice = (const uint16_t *)el_kv_k(&c->kv, J->kvl, (uint32_t)g, (uint32_t)k % J->kvl->n_cells);
        for (int i = 0; i < hk; i++) krow[i] = el_f16_to_f32(slice[i]);
        s[k] = el_lcpp_dot_f16(krow, q, hk, J->single) * J->scale;
        if (s[k] > max) max = s[k];
    }
    /* The row padded with masked keys to a multiple of 32: the last visible keys get
     * the vector expf too (whole groups of 8), and both F16 products see a length
     * their kernels take whole (tinyBLAS: multiples of 8; vec_dot: no double tail). */
    const int32_t np = (nk + 31) & ~31;
    for (int32_t k = nk; k < np; k++) s[k] = -INFINITY;
    const double sum = el_lcpp_softmax_exp(s, np, max);
    const float inv = (float)(1.0 / sum);
    for (int32_t k = 0; k < np; k++) s[k] = el_f16_to_f32(el_f32_to_f16(s[k] * inv));
    float *o = J->out + ((size_t)t * hp->n_head + h) * hv;
    for (int d = 0; d < hv; d++) o[d] = weighted_value(J, s, g, d, nk, np, col);
}

static void attend_range(void *ctx, int64_t begin, int64_t end, int ith) {
    const lcpp_attn_job *J = ctx;
    float *scratch = J->scratch + (size_t)ith * J->scratch_per_thread;
    for (int64_t i = begin; i < end; i++) attend_one(J, i, scratch);
}

int el_lcpp_attention(el_ctx *c, int il, const float *q, int32_t p0, int32_t n, float scale, bool single,
                      float *out) {
    const el_hparams *hp = &c->m->hp;
    lcpp_attn_job J = {.c = c, .kvl = &c->kv.layers[il], .q = q, .out = out, .p0 = p0, .scale = scale,
                       .single = single};
    /* scores padded to a multiple of 32, a K row, a V column */
    J.scratch_per_thread = (size_t)c->n_ctx + 32 + hp->head_dim_k + (size_t)c->n_ctx + 32;
    J.scratch = malloc(J.scratch_per_thread * (size_t)c->n_threads * sizeof *J.scratch);
    if (!J.scratch) return -1;
    el_pool_parallel_for(c->pool, (int64_t)n * hp->n_head, 1, attend_range, &J);
    free(J.scratch);
    return 0;
}
