/* Gemma 3: hyperparameters, tensors and forward pass.
 *
 *   x = embed(token) * sqrt(n_embd)
 *   per layer:  h = attn(rmsnorm(x) * attn_norm)      q/k: per-head RMSNorm, NEOX RoPE
 *               x = x + rmsnorm(h) * post_attention_norm
 *               h = down(gelu_tanh(gate(f)) * up(f)),  f = rmsnorm(x) * ffn_norm
 *               x = x + rmsnorm(h) * post_ffw_norm
 *   logits = tok_embd (tied unless output.weight exists) . (rmsnorm(x) * output_norm)
 *
 * Layers are sliding-window (local, RoPE base 10000 unless rope.freq_base_swa says
 * otherwise) except every sliding_window_pattern-th one (default 6), which is global
 * (RoPE base rope.freq_base, optionally linearly scaled). The GGUF norm weights
 * already hold Gemma's (1 + w). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

static int get_u32_opt(const el_gguf *g, const char *key, uint32_t def, uint32_t *out, el_err *err) {
    if (!el_gguf_find_kv(g, key)) {
        *out = def;
        return 0;
    }
    return el_gguf_get_u32(g, key, out, err);
}

static int get_f32_opt(const el_gguf *g, const char *key, float def, float *out, el_err *err) {
    if (!el_gguf_find_kv(g, key)) {
        *out = def;
        return 0;
    }
    return el_gguf_get_f32(g, key, out, err);
}

/* sliding_window_pattern: absent (default 6), a period n (layer il is global when
 * il % n == n - 1; n == 0 means all local), or a per-layer bool array (true = local). */
static int load_swa_pattern(el_model *m, el_err *err) {
    const el_gguf_kv *kv = el_gguf_find_kv(m->gguf, "gemma3.attention.sliding_window_pattern");
    const uint32_t n_layer = m->hp.n_layer;
    if (kv && kv->type == EL_GGUF_ARRAY) {
        if (kv->v.arr.type != EL_GGUF_BOOL && kv->v.arr.type != EL_GGUF_UINT8 && kv->v.arr.type != EL_GGUF_INT8)
            return el_fail(err, EDGELLM_EFORMAT, "model: gemma3.attention.sliding_window_pattern: array of %s",
                           el_gguf_value_type_name(kv->v.arr.type));
        if (kv->v.arr.n != n_layer)
            return el_fail(err, EDGELLM_EFORMAT,
                           "model: gemma3.attention.sliding_window_pattern has %llu entries for %u layers",
                           (unsigned long long)kv->v.arr.n, n_layer);
        const uint8_t *b = kv->v.arr.data;
        for (uint32_t il = 0; il < n_layer; il++) m->layers[il].swa = b[il] != 0;
        return 0;
    }
    uint32_t period = 6;
    if (kv && el_gguf_get_u32(m->gguf, "gemma3.attention.sliding_window_pattern", &period, err) < 0)
        return el_fail_prefix(err, "model");
    for (uint32_t il = 0; il < n_layer; il++)
        m->layers[il].swa = period == 0 || il % period < period - 1;
    return 0;
}

static int gemma3_hparams(el_model *m, el_err *err) {
    const el_gguf *g = m->gguf;
    el_hparams *hp = &m->hp;
    uint32_t n_head_kv, hk, hv, n_rot, n_swa;
    float eps, base, base_swa, softcap, rope_factor;
    if (el_gguf_get_arch_u32(g, "gemma3", "context_length", &hp->n_ctx_train, err) < 0 ||
        el_gguf_get_arch_u32(g, "gemma3", "embedding_length", &hp->n_embd, err) < 0 ||
        el_gguf_get_arch_u32(g, "gemma3", "block_count", &hp->n_layer, err) < 0 ||
        el_gguf_get_arch_u32(g, "gemma3", "feed_forward_length", &hp->n_ff, err) < 0 ||
        el_gguf_get_arch_u32(g, "gemma3", "attention.head_count", &hp->n_head, err) < 0 ||
        el_gguf_get_arch_f32(g, "gemma3", "attention.layer_norm_rms_epsilon", &eps, err) < 0)
        return el_fail_prefix(err, "model");
    if (hp->n_embd == 0 || hp->n_layer == 0 || hp->n_ff == 0 || hp->n_head == 0 || hp->n_ctx_train == 0)
        return el_fail(err, EDGELLM_EFORMAT, "model: gemma3 hyperparameters must be non-zero");
    if (hp->n_layer > EL_MAX_LAYERS || hp->n_embd > 65536 || hp->n_ff > 1048576 || hp->n_head > 1024)
        return el_fail(err, EDGELLM_ERANGE, "model: gemma3 hyperparameters out of range (layers %u, embd %u, ff %u, heads %u)",
                       hp->n_layer, hp->n_embd, hp->n_ff, hp->n_head);
    if (get_u32_opt(g, "gemma3.attention.head_count_kv", hp->n_head, &n_head_kv, err) < 0 ||
        get_u32_opt(g, "gemma3.attention.key_length", hp->n_embd / hp->n_head, &hk, err) < 0 ||
        get_u32_opt(g, "gemma3.attention.value_length", hk, &hv, err) < 0 ||
        get_u32_opt(g, "gemma3.rope.dimension_count", hk, &n_rot, err) < 0 ||
        get_u32_opt(g, "gemma3.attention.sliding_window", 0, &n_swa, err) < 0 ||
        get_f32_opt(g, "gemma3.rope.freq_base", 10000.0f, &base, err) < 0 ||
        get_f32_opt(g, "gemma3.rope.freq_base_swa", 10000.0f, &base_swa, err) < 0 ||
        get_f32_opt(g, "gemma3.rope.scaling.factor", 0.0f, &rope_factor, err) < 0 ||
        get_f32_opt(g, "gemma3.final_logit_softcapping", 0.0f, &softcap, err) < 0)
        return el_fail_prefix(err, "model");
    if (n_head_kv == 0 || hp->n_head % n_head_kv != 0 || hp->n_head / n_head_kv > 64)
        return el_fail(err, EDGELLM_EFORMAT, "model: %u query heads cannot share %u KV heads", hp->n_head, n_head_kv);
    if (hk == 0 || hv == 0 || hk > 1024 || hv > 1024 || n_rot == 0 || n_rot > hk || n_rot % 2)
        return el_fail(err, EDGELLM_EFORMAT, "model: bad head dimensions (key %u, value %u, rope %u)", hk, hv, n_rot);
    if (!(eps > 0.0f) || !(base > 0.0f) || !(base_swa > 0.0f) || !(softcap >= 0.0f) || !(rope_factor >= 0.0f))
        return el_fail(err, EDGELLM_EFORMAT, "model: bad float hyperparameter (eps, rope base or softcap)");
    const el_gguf_kv *st = el_gguf_find_kv(g, "gemma3.rope.scaling.type");
    if (st && st->type == EL_GGUF_STRING && !el_gguf_str_eq(st->v.str, "linear") &&
        !el_gguf_str_eq(st->v.str, "none"))
        return el_fail(err, EDGELLM_EUNSUPPORTED, "model: rope scaling type '%.*s' is not supported",
                       (int)(st->v.str.len > 32 ? 32 : st->v.str.len), st->v.str.data);
    hp->n_head_kv = n_head_kv;
    hp->head_dim_k = hk;
    hp->head_dim_v = hv;
    hp->n_rot = n_rot;
    hp->n_swa = n_swa;
    hp->rms_eps = eps;
    hp->final_softcap = softcap;
    hp->embd_scale = sqrtf((float)hp->n_embd);
    /* As gemma_pytorch: query_pre_attn_scalar is n_embd / n_head for the 27B, head_dim otherwise. */
    hp->attn_scale = hp->n_layer == 62 ? 1.0f / sqrtf((float)(hp->n_embd / hp->n_head)) : 1.0f / sqrtf((float)hk);

    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (!m->layers) return el_fail(err, EDGELLM_ENOMEM, "model: out of memory");
    if (n_swa > 0) {
        if (load_swa_pattern(m, err) < 0) return -1;
    }
    const float scale_global = rope_factor > 0.0f ? 1.0f / rope_factor : 1.0f;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        el_layer *L = &m->layers[il];
        L->rope_base = L->swa ? base_swa : base;
        L->rope_scale = L->swa ? 1.0f : scale_global;
    }
    return 0;
}

static int gemma3_load(el_model *m, el_err *err) {
    if (gemma3_hparams(m, err) < 0) return -1;
    el_hparams *hp = &m->hp;
    const el_gguf_tensor *emb = el_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!emb) return el_fail(err, EDGELLM_ENOTFOUND, "model: tensor 'token_embd.weight' is missing");
    if (emb->ne[1] == 0 || emb->ne[1] > INT32_MAX)
        return el_fail(err, EDGELLM_EFORMAT, "model: token_embd.weight has a bad vocabulary size");
    hp->n_vocab = (uint32_t)emb->ne[1];
    const int64_t E = hp->n_embd, V = hp->n_vocab, F = hp->n_ff;
    const int64_t QD = (int64_t)hp->n_head * hp->head_dim_k, KD = (int64_t)hp->n_head_kv * hp->head_dim_k;
    const int64_t VD = (int64_t)hp->n_head_kv * hp->head_dim_v, OD = (int64_t)hp->n_head * hp->head_dim_v;
    if (el_model_weight(m, "token_embd.weight", E, V, true, true, &m->tok_embd, err) < 0 ||
        el_model_weight(m, "output_norm.weight", E, 1, true, false, &m->output_norm, err) < 0 ||
        el_model_weight(m, "output.weight", E, V, false, true, &m->output, err) < 0)
        return -1;
    if (!m->output.data) m->output = m->tok_embd; /* tied */
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        el_layer *L = &m->layers[il];
        const int i = (int)il;
        if (el_model_layer_weight(m, i, "attn_norm.weight", E, 1, true, false, &L->attn_norm, err) < 0 ||
            el_model_layer_weight(m, i, "attn_q.weight", E, QD, true, true, &L->wq, err) < 0 ||
            el_model_layer_weight(m, i, "attn_k.weight", E, KD, true, true, &L->wk, err) < 0 ||
            el_model_layer_weight(m, i, "attn_v.weight", E, VD, true, true, &L->wv, err) < 0 ||
            el_model_layer_weight(m, i, "attn_output.weight", OD, E, true, true, &L->wo, err) < 0 ||
            el_model_layer_weight(m, i, "attn_q_norm.weight", hp->head_dim_k, 1, true, false, &L->q_norm, err) < 0 ||
            el_model_layer_weight(m, i, "attn_k_norm.weight", hp->head_dim_k, 1, true, false, &L->k_norm, err) < 0 ||
            el_model_layer_weight(m, i, "post_attention_norm.weight", E, 1, true, false, &L->attn_post_norm, err) < 0 ||
            el_model_layer_weight(m, i, "ffn_norm.weight", E, 1, true, false, &L->ffn_norm, err) < 0 ||
            el_model_layer_weight(m, i, "ffn_gate.weight", E, F, true, true, &L->ffn_gate, err) < 0 ||
            el_model_layer_weight(m, i, "ffn_up.weight", E, F, true, true, &L->ffn_up, err) < 0 ||
            el_model_layer_weight(m, i, "ffn_down.weight", F, E, true, true, &L->ffn_down, err) < 0 ||
            el_model_layer_weight(m, i, "post_ffw_norm.weight", E, 1, true, false, &L->ffn_post_norm, err) < 0)
            return -1;
    }
    m->gelu_table = el_gelu_table_new();
    if (!m->gelu_table) return el_fail(err, EDGELLM_ENOMEM, "model: out of memory");
    return 0;
}

/* Per-head RMSNorm with weight w, then RoPE, then an optional scale, for rows [t0, t1) of
 * n_heads heads. */
static void norm_rope_heads(float *x, int64_t t0, int64_t t1, uint32_t n_heads, uint32_t hd, const float *w,
                            float eps, const float *cs, uint32_t n_rot, float scale) {
    for (int64_t t = t0; t < t1; t++) {
        for (uint32_t h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * hd;
            el_rmsnorm(v, v, w, hd, eps);
            el_rope_neox(v, cs + (size_t)t * n_rot, n_rot);
            if (scale != 1.0f)
                for (uint32_t d = 0; d < hd; d++) v[d] *= scale;
        }
    }
}

/* x += rmsnorm(y) * w, rows [t0, t1). */
static void add_normed(float *x, float *y, const float *w, int64_t t0, int64_t t1, int64_t n, float eps) {
    for (int64_t t = t0; t < t1; t++) {
        float *yr = y + t * n, *xr = x + t * n;
        el_rmsnorm(yr, yr, w, n, eps);
        for (int64_t i = 0; i < n; i++) xr[i] += yr[i];
    }
}

/* The row-wise steps of a layer, each over a range of rows (el_ctx_rows splits prompt
 * batches over the pool): x, xb are the residual stream and its normed copy from the
 * first row the step covers; q, k, cs from row 0. */
typedef struct layer_rows {
    const el_ctx *c;
    const el_layer *L;
    float *x, *xb, *q, *k;
    const float *cs;
} layer_rows;

static void rows_qk_norm_rope(void *arg, int64_t t0, int64_t t1, int ith) {
    (void)ith;
    const layer_rows *R = arg;
    const el_hparams *hp = &R->c->m->hp;
    norm_rope_heads(R->q, t0, t1, hp->n_head, hp->head_dim_k, R->L->q_norm.data, hp->rms_eps, R->cs, hp->n_rot,
                    hp->attn_scale);
    norm_rope_heads(R->k, t0, t1, hp->n_head_kv, hp->head_dim_k, R->L->k_norm.data, hp->rms_eps, R->cs, hp->n_rot,
                    1.0f);
}

/* After the attention output: x += post-norm of it, then xb = ffn_norm(x). */
static void rows_attn_out(void *arg, int64_t t0, int64_t t1, int ith) {
    (void)ith;
    const layer_rows *R = arg;
    const int64_t E = R->c->m->hp.n_embd;
    const float eps = R->c->m->hp.rms_eps;
    add_normed(R->x, R->xb, R->L->attn_post_norm.data, t0, t1, E, eps);
    for (int64_t t = t0; t < t1; t++) el_rmsnorm(R->xb + t * E, R->x + t * E, R->L->ffn_norm.data, E, eps);
}

static void rows_geglu(void *arg, int64_t t0, int64_t t1, int ith) {
    (void)ith;
    const layer_rows *R = arg;
    const int64_t F = R->c->m->hp.n_ff;
    for (int64_t t = t0; t < t1; t++) R->c->ops.geglu(R->c->ffn_g + t * F, R->c->ffn_u + t * F, F, R->c->m->gelu_table);
}

static void rows_ffn_out(void *arg, int64_t t0, int64_t t1, int ith) {
    (void)ith;
    const layer_rows *R = arg;
    add_normed(R->x, R->xb, R->L->ffn_post_norm.data, t0, t1, R->c->m->hp.n_embd, R->c->m->hp.rms_eps);
}

static int gemma3_forward(el_ctx *c, const int32_t *tokens, int32_t n, float *logits, el_err *err) {
    (void)err;
    const el_model *m = c->m;
    const el_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd;
    const int64_t QD = (int64_t)hp->n_head * hp->head_dim_k, KD = (int64_t)hp->n_head_kv * hp->head_dim_k;
    const int64_t VD = (int64_t)hp->n_head_kv * hp->head_dim_v;
    const int32_t p0 = c->n_past;
    const int32_t n_out = c->n_out < 1 ? 1 : c->n_out > n ? n : c->n_out; /* rows of logits */
    float *x = c->x, *xb = c->xb;

    for (int32_t t = 0; t < n; t++) {
        el_embed_row(&m->tok_embd, tokens[t], x + t * E);
        for (int64_t i = 0; i < E; i++) x[t * E + i] *= hp->embd_scale;
    }

    /* RoPE tables for this batch's positions: [0] global layers, [1] local layers. */
    float *cs[2] = {c->rope_cs, c->rope_cs + (size_t)c->n_ubatch * hp->n_rot};
    bool have_cs[2] = {false, false};
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const el_layer *L = &m->layers[il];
        const int kind = L->swa ? 1 : 0;
        if (!have_cs[kind]) {
            el_rope_table(cs[kind], p0, n, hp->n_rot, L->rope_base, L->rope_scale);
            have_cs[kind] = true;
        }
    }

    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const el_layer *L = &m->layers[il];
        const bool last_layer = il + 1 == hp->n_layer;
        const float *cst = cs[L->swa ? 1 : 0];

        layer_rows R = {c, L, x, xb, c->q, c->k, cst};
        el_ctx_rmsnorm_rows(c, xb, x, L->attn_norm.data, n, E, hp->rms_eps);
        el_ctx_matmul_multi(c, (const el_weight *[]){&L->wq, &L->wk, &L->wv}, (float *[]){c->q, c->k, c->v}, 3,
                            xb, n);
        el_ctx_rows(c, n, rows_qk_norm_rope, &R);
        el_kv_store(&c->kv, &c->ops, (int)il, p0, n, c->k, (size_t)KD, c->v, (size_t)VD);

        /* The last layer only feeds the logits: once its K/V are cached, only the
         * rows whose logits are wanted (the last n_out) are needed, none without. */
        int32_t rows = n, r0 = 0;
        if (last_layer) {
            if (!logits) break;
            rows = n_out;
            r0 = n - n_out;
        }
        float *xr = x + r0 * E, *xbr = xb + r0 * E;
        el_attention(c, (int)il, c->q + r0 * QD, p0 + r0, rows, L->swa ? hp->n_swa : 0, c->att);
        el_ctx_matmul(c, &L->wo, c->att, rows, xbr);
        R.x = xr, R.xb = xbr;
        el_ctx_rows(c, rows, rows_attn_out, &R);
        el_ctx_matmul_multi(c, (const el_weight *[]){&L->ffn_gate, &L->ffn_up}, (float *[]){c->ffn_g, c->ffn_u},
                            2, xbr, rows);
        el_ctx_rows(c, rows, rows_geglu, &R);
        el_ctx_matmul(c, &L->ffn_down, c->ffn_g, rows, xbr);
        el_ctx_rows(c, rows, rows_ffn_out, &R);
    }
    if (!logits) return 0;

    const int64_t r0 = n - n_out;
    for (int64_t t = r0; t < n; t++) el_rmsnorm(xb + t * E, x + t * E, m->output_norm.data, E, hp->rms_eps);
    el_ctx_matmul(c, &m->output, xb + r0 * E, n_out, logits);
    if (hp->final_softcap > 0.0f) {
        const float cap = hp->final_softcap;
        const size_t total = (size_t)n_out * hp->n_vocab;
        for (size_t i = 0; i < total; i++) logits[i] = cap * tanhf(logits[i] / cap);
    }
    return 0;
}

const el_arch el_arch_gemma3 = {
    .name = "gemma3",
    .load = gemma3_load,
    .forward = gemma3_forward,
};
