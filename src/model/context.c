/* Contexts: the KV cache plus every scratch buffer a forward pass needs, allocated
 * once so that evaluating a token allocates nothing. */
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "kernels/matmul.h"
#include "model/model.h"

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static size_t weight_work(const el_weight *w, int64_t n_tok) {
    return w->data ? el_matmul_work_size(el_weight_fast_type(w), w->n_in, n_tok) : 0;
}

/* A layer's weight matrices (data NULL where the model has none). */
enum { LAYER_MATRICES = 7 };
static void layer_matrices(const el_layer *L, const el_weight *ws[LAYER_MATRICES]) {
    const el_weight *all[LAYER_MATRICES] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_gate, &L->ffn_up, &L->ffn_down};
    memcpy(ws, all, sizeof all);
}

static size_t matmul_work_size(const el_model *m, int64_t n_tok) {
    size_t s = weight_work(&m->output, n_tok); /* logits for several rows (speculative verify) */
    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        const el_layer *L = &m->layers[il];
        const el_weight *ws[LAYER_MATRICES];
        layer_matrices(L, ws);
        for (size_t i = 0; i < LAYER_MATRICES; i++) s = max_sz(s, weight_work(ws[i], n_tok));
        /* q/k/v and gate/up run as one job each (el_ctx_matmul_multi) */
        const el_matmul_item qkv[] = {{L->wq.data, el_weight_fast_type(&L->wq), L->wq.n_out, NULL},
                                      {L->wk.data, el_weight_fast_type(&L->wk), L->wk.n_out, NULL},
                                      {L->wv.data, el_weight_fast_type(&L->wv), L->wv.n_out, NULL}};
        const el_matmul_item gu[] = {{L->ffn_gate.data, el_weight_fast_type(&L->ffn_gate), L->ffn_gate.n_out, NULL},
                                     {L->ffn_up.data, el_weight_fast_type(&L->ffn_up), L->ffn_up.n_out, NULL}};
        if (L->wq.data && L->wk.data && L->wv.data)
            s = max_sz(s, el_matmul_multi_work_size(qkv, 3, L->wq.n_in, n_tok));
        if (L->ffn_gate.data && L->ffn_up.data)
            s = max_sz(s, el_matmul_multi_work_size(gu, 2, L->ffn_gate.n_in, n_tok));
    }
    return s;
}

/* Widest input of an F16 / BF16 matrix (their activations are rounded to that format
 * first, into ctx->acts_rounded), 0 if the model has none. */
static int64_t rounded_width(const el_weight *w) {
    return w->data && (w->type == EL_TYPE_F16 || w->type == EL_TYPE_BF16) ? w->n_in : 0;
}

static int64_t rounded_act_width(const el_model *m) {
    int64_t w = rounded_width(&m->output);
    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        const el_weight *ws[LAYER_MATRICES];
        layer_matrices(&m->layers[il], ws);
        for (size_t i = 0; i < LAYER_MATRICES; i++)
            if (rounded_width(ws[i]) > w) w = rounded_width(ws[i]);
    }
    return w;
}

static float *alloc_floats(size_t n, bool *ok) {
    if (n == 0 || n > SIZE_MAX / sizeof(float)) {
        *ok = false;
        return NULL;
    }
    float *p = el_aligned_alloc(64, n * sizeof(float));
    if (!p) *ok = false;
    return p;
}

el_ctx *el_ctx_create(const el_model *m, const el_ctx_params *p, el_err *err) {
    const el_hparams *hp = &m->hp;
    if (!p || !p->pool) {
        el_fail(err, EDGELLM_EINVAL, "context: a thread pool is required");
        return NULL;
    }
    uint32_t n_ctx = p->n_ctx ? p->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    if (n_ctx > hp->n_ctx_train) {
        el_fail(err, EDGELLM_ERANGE, "context: %u tokens exceeds the model's training context of %u", n_ctx,
                hp->n_ctx_train);
        return NULL;
    }
    if (n_ctx > (1u << 24)) {
        el_fail(err, EDGELLM_ERANGE, "context: %u tokens is too large", n_ctx);
        return NULL;
    }
    if (p->numerics == EL_NUMERICS_LLAMACPP) {
        if (m->arch != &el_arch_llama && m->arch != &el_arch_qwen2 && m->arch != &el_arch_phi3) {
            el_fail(err, EDGELLM_EINVAL, "context: llama.cpp-compatible numerics are implemented for llama, qwen2 "
                                         "and phi3 models, not %s", m->arch->name);
            return NULL;
        }
        if (p->kv_type != EL_TYPE_F16) {
            el_fail(err, EDGELLM_EINVAL, "context: llama.cpp-compatible numerics need an F16 KV cache");
            return NULL;
        }
    } else if (p->numerics != EL_NUMERICS_FAST) {
        el_fail(err, EDGELLM_EINVAL, "context: unknown numerics %d", (int)p->numerics);
        return NULL;
    }
    uint32_t n_ub = p->n_ubatch ? p->n_ubatch : 512;
    if (n_ub > n_ctx) n_ub = n_ctx;
    if (n_ub > 8192) n_ub = 8192;

    el_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        el_fail(err, EDGELLM_ENOMEM, "context: out of memory");
        return NULL;
    }
    c->m = m;
    c->pool = p->pool;
    c->n_ctx = n_ctx;
    c->n_ubatch = n_ub;
    c->numerics = p->numerics;
    c->n_threads = el_pool_size(p->pool);
    el_ops_init(&c->ops);
    if (el_kv_init(&c->kv, m, p->kv_type, n_ctx, n_ub, err) < 0) {
        free(c);
        return NULL;
    }

    const size_t U = n_ub;
    const size_t qd = (size_t)hp->n_head * hp->head_dim_k, kd = (size_t)hp->n_head_kv * hp->head_dim_k;
    const size_t vd = (size_t)hp->n_head_kv * hp->head_dim_v, od = (size_t)hp->n_head * hp->head_dim_v;
    bool ok = true;
    c->x = alloc_floats(U * hp->n_embd, &ok);
    c->xb = alloc_floats(U * hp->n_embd, &ok);
    c->xb2 = alloc_floats(U * hp->n_embd, &ok);
    c->q = alloc_floats(U * qd, &ok);
    c->k = alloc_floats(U * kd, &ok);
    c->v = alloc_floats(U * vd, &ok);
    c->att = alloc_floats(U * od, &ok);
    c->ffn_g = alloc_floats(U * hp->n_ff, &ok);
    c->ffn_u = alloc_floats(U * hp->n_ff, &ok);
    c->rope_cs = alloc_floats(2 * U * hp->n_rot, &ok);
    c->logits = alloc_floats(hp->n_vocab, &ok);
    c->attn_scratch_per_thread = (el_attention_scratch_floats(hp) + 15) & ~(size_t)15;
    c->attn_scratch = alloc_floats(c->attn_scratch_per_thread * (size_t)c->n_threads, &ok);
    c->attn_partials = alloc_floats(el_attention_partial_floats(hp, n_ctx, &c->attn_split_tokens), &ok);
    /* Kept scores save the two-pass softmax (F16 cache) a second K pass; past 64 MiB it
     * recomputes them instead. */
    if (c->kv.type == EL_TYPE_F16 && el_attention_score_floats(n_ctx, c->n_threads) <= ((size_t)16 << 20)) {
        c->attn_score_stride = el_attention_score_stride(n_ctx);
        c->attn_scores = alloc_floats(el_attention_score_floats(n_ctx, c->n_threads), &ok);
    }
    c->attn_split_chunks = n_ctx / 128 + 2; /* keys < n_ctx span at most this many 128-key chunks */
    c->n_out = 1;
    c->mm_work_size = matmul_work_size(m, (int64_t)U);
    const int64_t act_w = rounded_act_width(m);
    if (act_w > 0) {
        c->acts_rounded_cap = (int64_t)U * act_w;
        c->acts_rounded = alloc_floats((size_t)c->acts_rounded_cap, &ok);
    }
    c->mm_work = el_aligned_alloc(64, c->mm_work_size ? c->mm_work_size : 64);
    c->past_tokens = calloc(n_ctx, sizeof *c->past_tokens);
    if (p->exact_matmul) {
        c->exact_matmul = true;
        c->exact_row_cap = hp->n_embd > hp->n_ff ? hp->n_embd : hp->n_ff;
        if ((int64_t)od > c->exact_row_cap) c->exact_row_cap = (int64_t)od;
        c->exact_rows = alloc_floats((size_t)c->exact_row_cap * (size_t)c->n_threads, &ok);
    }
    if (!ok || !c->mm_work || !c->past_tokens) {
        el_ctx_free(c);
        el_fail(err, EDGELLM_ENOMEM, "context: cannot allocate scratch buffers for %u-token batches", n_ub);
        return NULL;
    }
    return c;
}

void el_ctx_free(el_ctx *c) {
    if (!c) return;
    el_kv_free(&c->kv);
    float *bufs[] = {c->x, c->xb, c->xb2, c->q, c->k, c->v, c->att, c->ffn_g, c->ffn_u, c->rope_cs,
                     c->logits, c->attn_scratch, c->attn_partials, c->attn_scores, c->acts_rounded};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) el_aligned_free(bufs[i]);
    el_aligned_free(c->mm_work);
    el_aligned_free(c->exact_rows);
    free(c->past_tokens);
    free(c);
}

int el_ctx_eval(el_ctx *c, const int32_t *tokens, size_t n, float *logits, el_err *err) {
    return el_ctx_eval_rows(c, tokens, n, logits, 1, err);
}

int el_ctx_eval_rows(el_ctx *c, const int32_t *tokens, size_t n, float *logits, size_t n_out, el_err *err) {
    if (n == 0) return 0;
    if (!logits) n_out = 1;
    if (logits && (n_out < 1 || n_out > n))
        return el_fail(err, EDGELLM_EINVAL, "eval: %zu rows of logits asked of %zu tokens", n_out, n);
    if (n > (size_t)c->n_ctx - (size_t)c->n_past)
        return el_fail(err, EDGELLM_ERANGE, "context is full: %d tokens cached + %zu new exceeds %u", c->n_past, n,
                       c->n_ctx);
    const int32_t n_vocab = (int32_t)c->m->hp.n_vocab;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return el_fail(err, EDGELLM_ERANGE, "token id %d at index %zu is outside the vocabulary (%d)", tokens[i],
                           i, n_vocab);
    for (size_t done = 0; done < n;) {
        size_t chunk = n - done < c->n_ubatch ? n - done : c->n_ubatch;
        /* Rows of logits wanted from this ubatch: those among the last n_out tokens. */
        const size_t first_out = n - n_out, end = done + chunk;
        float *out = NULL;
        c->n_out = 1;
        if (logits && end > first_out) {
            const size_t r0 = first_out > done ? first_out : done;
            c->n_out = (int32_t)(end - r0);
            out = logits + (r0 - first_out) * (size_t)n_vocab;
        }
        /* The forward pass writes these positions' cache cells, even if it fails. */
        if (c->n_past + (int32_t)chunk > c->kv_high) c->kv_high = c->n_past + (int32_t)chunk;
        const int rc = c->m->arch->forward(c, tokens + done, (int32_t)chunk, out, err);
        c->n_out = 1;
        if (rc < 0) return -1;
        memcpy(c->past_tokens + c->n_past, tokens + done, chunk * sizeof *tokens);
        c->n_past += (int32_t)chunk;
        done += chunk;
    }
    return 0;
}

int32_t el_ctx_truncate(el_ctx *c, int32_t n_keep) {
    if (n_keep < 0) n_keep = 0;
    if (n_keep >= c->n_past) return c->n_past;
    if (n_keep == 0) { /* everything is evaluated again, from position 0 */
        c->n_past = c->kv_high = 0;
        return 0;
    }
    /* Continuing at n_keep needs, on every layer, the positions its window covers. */
    for (uint32_t il = 0; il < c->kv.n_layer; il++) {
        const uint32_t w = c->m->layers[il].swa ? c->m->hp.n_swa : 0;
        int32_t need = w ? n_keep - (int32_t)w + 1 : 0;
        if (need < 0) need = 0;
        /* Cells were last written up to kv_high (rolled-back drafts included). */
        if (need < el_kv_oldest(&c->kv, (int)il, c->kv_high)) {
            c->n_past = c->kv_high = 0;
            return 0;
        }
    }
    c->n_past = n_keep;
    return n_keep;
}
