/* Llama, Qwen2 and Phi-3: pre-norm decoder blocks with SwiGLU feed-forward.
 *
 *   x = embed(token)
 *   per layer:  h = attn(rmsnorm(x) * attn_norm)       q/k RoPE'd (rope.h), q scaled 1/sqrt(hd)
 *               x = x + wo h (+ bo)
 *               x = x + down(silu(gate f) * up f),     f = rmsnorm(x) * ffn_norm
 *   logits = output (tok_embd when absent: tied) . (rmsnorm(x) * output_norm)
 *
 * What differs is what each family's GGUF converter emits:
 *   llama  GPT-J style RoPE (adjacent pairs); optional rope_freqs.weight (Llama 3
 *          frequency factors); optional q/k/v/o biases; output.weight or tied.
 *   qwen2  NEOX RoPE; q/k/v biases; output.weight or tied (MiMo, Qwen2.5).
 *   phi3   NEOX RoPE over rope.dimension_count < head dim (partial rotary); fused
 *          attn_qkv.weight and fused ffn_up.weight (gate rows, then up rows) where
 *          the converter fused them; LongRoPE rope_factors_short/long.weight with
 *          rope.scaling.attn_factor and original_context_length. Its sliding window
 *          key is ignored, as llama.cpp does.
 * Fused tensors are split into row views at load time: each output row is the
 * same dot product either way, and nothing is copied. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/lcpp_numerics.h"
#include "model/model.h"
#include "quant/blocks.h"
#include "quant/quant_ref.h"

typedef struct family {
    const char *name;
    el_rope_mode rope_mode;
} family;

static const family LLAMA = {"llama", EL_ROPE_NORM};
static const family QWEN2 = {"qwen2", EL_ROPE_NEOX};
static const family PHI3 = {"phi3", EL_ROPE_NEOX};

static const family *family_of(const el_model *m) {
    if (m->arch == &el_arch_qwen2) return &QWEN2;
    if (m->arch == &el_arch_phi3) return &PHI3;
    return &LLAMA;
}

static int opt_u32(const el_gguf *g, const char *arch, const char *suffix, uint32_t def, uint32_t *out,
                   el_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    *out = def;
    if (!el_gguf_find_kv(g, key)) return 0;
    return el_gguf_get_u32(g, key, out, err);
}

static int opt_f32(const el_gguf *g, const char *arch, const char *suffix, float def, float *out, el_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    *out = def;
    if (!el_gguf_find_kv(g, key)) return 0;
    return el_gguf_get_f32(g, key, out, err);
}

/* rope.scaling.type: absent means linear (a factor may still be given). */
static int rope_scaling(const el_model *m, const char *arch, el_rope *r, el_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    const el_gguf_kv *kv = el_gguf_find_kv(m->gguf, key);
    bool yarn = false, none = false;
    if (kv) {
        if (kv->type != EL_GGUF_STRING)
            return el_fail(err, EDGELLM_EFORMAT, "model: %s is not a string", key);
        const el_gguf_str s = kv->v.str;
        yarn = el_gguf_str_eq(s, "yarn");
        none = el_gguf_str_eq(s, "none");
        if (!yarn && !none && !el_gguf_str_eq(s, "linear") && !el_gguf_str_eq(s, "longrope"))
            return el_fail(err, EDGELLM_EUNSUPPORTED, "model: rope scaling type '%.*s' is not supported",
                           (int)(s.len > 32 ? 32 : s.len), s.data);
    }
    float factor, attn_factor, beta_fast, beta_slow;
    uint32_t n_ctx_orig;
    if (opt_f32(m->gguf, arch, "rope.scaling.factor", 0.0f, &factor, err) < 0 ||
        opt_f32(m->gguf, arch, "rope.scaling.attn_factor", 1.0f, &attn_factor, err) < 0 ||
        opt_f32(m->gguf, arch, "rope.scaling.yarn_beta_fast", 32.0f, &beta_fast, err) < 0 ||
        opt_f32(m->gguf, arch, "rope.scaling.yarn_beta_slow", 1.0f, &beta_slow, err) < 0 ||
        opt_u32(m->gguf, arch, "rope.scaling.original_context_length", m->hp.n_ctx_train, &n_ctx_orig, err) < 0)
        return el_fail_prefix(err, "model");
    if (!(factor >= 0.0f) || !(attn_factor > 0.0f) || !isfinite(factor) || !isfinite(attn_factor) ||
        !isfinite(beta_fast) || !isfinite(beta_slow) || n_ctx_orig == 0)
        return el_fail(err, EDGELLM_EFORMAT, "model: bad rope scaling parameters (factor %g, attn_factor %g)",
                       (double)factor, (double)attn_factor);
    r->freq_scale = none || factor == 0.0f ? 1.0f : 1.0f / factor;
    r->ext_factor = yarn ? 1.0f : 0.0f;
    /* With YaRN the rope itself adds the magnitude 1 + 0.1 ln(factor) on top of
     * attn_factor (el_rope_cache), as llama.cpp does for these families (checked
     * against it on a YaRN Qwen2 fixture). */
    r->attn_factor = attn_factor;
    r->beta_fast = beta_fast;
    r->beta_slow = beta_slow;
    r->n_ctx_orig = n_ctx_orig;
    return 0;
}

static int family_hparams(el_model *m, el_err *err) {
    const char *arch = family_of(m)->name;
    const el_gguf *g = m->gguf;
    el_hparams *hp = &m->hp;
    float eps, base;
    uint32_t n_head_kv, hk, hv, n_rot;
    if (el_gguf_get_arch_u32(g, arch, "context_length", &hp->n_ctx_train, err) < 0 ||
        el_gguf_get_arch_u32(g, arch, "embedding_length", &hp->n_embd, err) < 0 ||
        el_gguf_get_arch_u32(g, arch, "block_count", &hp->n_layer, err) < 0 ||
        el_gguf_get_arch_u32(g, arch, "feed_forward_length", &hp->n_ff, err) < 0 ||
        el_gguf_get_arch_u32(g, arch, "attention.head_count", &hp->n_head, err) < 0 ||
        el_gguf_get_arch_f32(g, arch, "attention.layer_norm_rms_epsilon", &eps, err) < 0)
        return el_fail_prefix(err, "model");
    if (hp->n_embd == 0 || hp->n_layer == 0 || hp->n_ff == 0 || hp->n_head == 0 || hp->n_ctx_train == 0)
        return el_fail(err, EDGELLM_EFORMAT, "model: %s hyperparameters must be non-zero", arch);
    if (hp->n_layer > EL_MAX_LAYERS || hp->n_embd > 65536 || hp->n_ff > 1048576 || hp->n_head > 1024)
        return el_fail(err, EDGELLM_ERANGE,
                       "model: %s hyperparameters out of range (layers %u, embd %u, ff %u, heads %u)", arch,
                       hp->n_layer, hp->n_embd, hp->n_ff, hp->n_head);
    if (opt_u32(g, arch, "attention.head_count_kv", hp->n_head, &n_head_kv, err) < 0 ||
        opt_u32(g, arch, "attention.key_length", hp->n_embd / hp->n_head, &hk, err) < 0 ||
        opt_u32(g, arch, "attention.value_length", hk, &hv, err) < 0 ||
        opt_u32(g, arch, "rope.dimension_count", hk, &n_rot, err) < 0 ||
        opt_f32(g, arch, "rope.freq_base", 10000.0f, &base, err) < 0)
        return el_fail_prefix(err, "model");
    if (n_head_kv == 0 || hp->n_head % n_head_kv != 0 || hp->n_head / n_head_kv > 64)
        return el_fail(err, EDGELLM_EFORMAT, "model: %u query heads cannot share %u KV heads", hp->n_head,
                       n_head_kv);
    if (hk == 0 || hv == 0 || hk > 1024 || hv > 1024 || n_rot == 0 || n_rot > hk || n_rot % 2)
        return el_fail(err, EDGELLM_EFORMAT, "model: bad head dimensions (key %u, value %u, rope %u)", hk, hv,
                       n_rot);
    if (!(eps > 0.0f) || !(base > 0.0f) || !isfinite(base))
        return el_fail(err, EDGELLM_EFORMAT, "model: bad float hyperparameter (eps %g, rope base %g)", (double)eps,
                       (double)base);
    hp->n_head_kv = n_head_kv;
    hp->head_dim_k = hk;
    hp->head_dim_v = hv;
    hp->n_rot = n_rot;
    hp->n_swa = 0;
    hp->rms_eps = eps;
    hp->attn_scale = 1.0f / sqrtf((float)hk);
    hp->embd_scale = 1.0f;
    hp->final_softcap = 0.0f;

    el_rope *r = &m->rope;
    memset(r, 0, sizeof *r);
    r->mode = family_of(m)->rope_mode;
    r->n_rot = n_rot;
    r->base = base;
    return rope_scaling(m, arch, r, err);
}

/* A per-dimension RoPE divisor tensor: n_rot/2 positive F32 values. */
static int rope_factor_tensor(el_model *m, const char *name, const float **out, el_err *err) {
    el_weight w;
    if (el_model_weight(m, name, m->hp.n_rot / 2, 1, false, false, &w, err) < 0) return -1;
    *out = w.data;
    if (!w.data) return 0;
    const float *f = w.data;
    for (uint32_t i = 0; i < m->hp.n_rot / 2; i++)
        if (!(f[i] > 0.0f) || !isfinite(f[i]))
            return el_fail(err, EDGELLM_EFORMAT, "model: tensor '%s': factor %u is %g, expected > 0", name, i,
                           (double)f[i]);
    return 0;
}

/* Rows [r0, r0 + n) of a weight, as a weight of its own. */
static el_weight row_view(const el_weight *w, int64_t r0, int64_t n) {
    el_weight v = *w;
    v.data = (const uint8_t *)w->data + (size_t)r0 * w->row_bytes;
    v.n_out = n;
    return v;
}

static int load_attention(el_model *m, int il, el_layer *L, el_err *err) {
    const el_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd;
    const int64_t QD = (int64_t)hp->n_head * hp->head_dim_k, KD = (int64_t)hp->n_head_kv * hp->head_dim_k;
    const int64_t VD = (int64_t)hp->n_head_kv * hp->head_dim_v, OD = (int64_t)hp->n_head * hp->head_dim_v;
    el_weight qkv;
    if (el_model_layer_weight(m, il, "attn_qkv.weight", E, QD + KD + VD, false, true, &qkv, err) < 0) return -1;
    if (qkv.data) { /* fused: rows are q, then k, then v */
        L->wq = row_view(&qkv, 0, QD);
        L->wk = row_view(&qkv, QD, KD);
        L->wv = row_view(&qkv, QD + KD, VD);
        el_weight b;
        if (el_model_layer_weight(m, il, "attn_qkv.bias", QD + KD + VD, 1, false, false, &b, err) < 0) return -1;
        if (b.data) {
            const float *bd = b.data;
            L->bq = (el_weight){.data = bd, .type = EL_TYPE_F32, .n_in = QD, .n_out = 1};
            L->bk = (el_weight){.data = bd + QD, .type = EL_TYPE_F32, .n_in = KD, .n_out = 1};
            L->bv = (el_weight){.data = bd + QD + KD, .type = EL_TYPE_F32, .n_in = VD, .n_out = 1};
        }
    } else if (el_model_layer_weight(m, il, "attn_q.weight", E, QD, true, true, &L->wq, err) < 0 ||
               el_model_layer_weight(m, il, "attn_k.weight", E, KD, true, true, &L->wk, err) < 0 ||
               el_model_layer_weight(m, il, "attn_v.weight", E, VD, true, true, &L->wv, err) < 0 ||
               el_model_layer_weight(m, il, "attn_q.bias", QD, 1, false, false, &L->bq, err) < 0 ||
               el_model_layer_weight(m, il, "attn_k.bias", KD, 1, false, false, &L->bk, err) < 0 ||
               el_model_layer_weight(m, il, "attn_v.bias", VD, 1, false, false, &L->bv, err) < 0) {
        return -1;
    }
    if (m->arch == &el_arch_qwen2 && (!L->bq.data || !L->bk.data || !L->bv.data))
        return el_fail(err, EDGELLM_ENOTFOUND, "model: qwen2 layer %d lacks its q/k/v biases", il);
    if (el_model_layer_weight(m, il, "attn_output.weight", OD, E, true, true, &L->wo, err) < 0 ||
        el_model_layer_weight(m, il, "attn_output.bias", E, 1, false, false, &L->bo, err) < 0)
        return -1;
    return 0;
}

static int load_ffn(el_model *m, int il, el_layer *L, el_err *err) {
    const int64_t E = m->hp.n_embd, F = m->hp.n_ff;
    el_weight gate;
    if (el_model_layer_weight(m, il, "ffn_gate.weight", E, F, false, true, &gate, err) < 0) return -1;
    if (gate.data) {
        L->ffn_gate = gate;
        if (el_model_layer_weight(m, il, "ffn_up.weight", E, F, true, true, &L->ffn_up, err) < 0) return -1;
    } else { /* fused gate-up (Phi-3): 2F rows, the gate's first */
        el_weight up;
        if (el_model_layer_weight(m, il, "ffn_up.weight", E, 2 * F, true, true, &up, err) < 0) return -1;
        L->ffn_gate = row_view(&up, 0, F);
        L->ffn_up = row_view(&up, F, F);
    }
    return el_model_layer_weight(m, il, "ffn_down.weight", F, E, true, true, &L->ffn_down, err);
}

static int family_load(el_model *m, el_err *err) {
    if (family_hparams(m, err) < 0) return -1;
    el_hparams *hp = &m->hp;
    const el_gguf_tensor *emb = el_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!emb) return el_fail(err, EDGELLM_ENOTFOUND, "model: tensor 'token_embd.weight' is missing");
    if (emb->ne[1] == 0 || emb->ne[1] > INT32_MAX)
        return el_fail(err, EDGELLM_EFORMAT, "model: token_embd.weight has a bad vocabulary size");
    hp->n_vocab = (uint32_t)emb->ne[1];
    const int64_t E = hp->n_embd, V = hp->n_vocab;
    if (el_model_weight(m, "token_embd.weight", E, V, true, true, &m->tok_embd, err) < 0 ||
        el_model_weight(m, "output_norm.weight", E, 1, true, false, &m->output_norm, err) < 0 ||
        el_model_weight(m, "output.weight", E, V, false, true, &m->output, err) < 0)
        return -1;
    if (!m->output.data) m->output = m->tok_embd; /* tied */

    el_rope *r = &m->rope;
    if (rope_factor_tensor(m, "rope_freqs.weight", &r->factors, err) < 0 ||
        rope_factor_tensor(m, "rope_factors_short.weight", &r->factors_short, err) < 0 ||
        rope_factor_tensor(m, "rope_factors_long.weight", &r->factors_long, err) < 0)
        return -1;
    if (!r->factors_short != !r->factors_long)
        return el_fail(err, EDGELLM_ENOTFOUND, "model: LongRoPE needs both rope_factors_short.weight and "
                                               "rope_factors_long.weight");

    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (!m->layers) return el_fail(err, EDGELLM_ENOMEM, "model: out of memory");
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        el_layer *L = &m->layers[il];
        const int i = (int)il;
        L->rope_base = r->base;
        L->rope_scale = r->freq_scale;
        if (el_model_layer_weight(m, i, "attn_norm.weight", E, 1, true, false, &L->attn_norm, err) < 0 ||
            load_attention(m, i, L, err) < 0 ||
            el_model_layer_weight(m, i, "ffn_norm.weight", E, 1, true, false, &L->ffn_norm, err) < 0 ||
            load_ffn(m, i, L, err) < 0)
            return -1;
    }
    return 0;
}

static void add_bias(float *y, const el_weight *b, int32_t rows, int64_t n) {
    if (!b->data) return;
    const float *bd = b->data;
    for (int32_t t = 0; t < rows; t++)
        for (int64_t i = 0; i < n; i++) y[t * n + i] += bd[i];
}

/* RoPE over n rows of n_heads heads. */
static void rope_rows(const el_rope *r, float *x, int32_t n, uint32_t n_heads, uint32_t hd, const float *cs,
                      bool fused) {
    for (int32_t t = 0; t < n; t++)
        el_rope_apply(r, x + (size_t)t * n_heads * hd, n_heads, hd, cs + (size_t)t * r->n_rot, fused);
}

/* Queries in the precision llama.cpp multiplies them with the cached keys, then the
 * score scale. llama.cpp converts Q to the K cache's dot format first (F16, or Q8_0
 * blocks along each head for a Q8_0 cache) and scales the products; without this
 * rounding our attention output is ~1e-3 (relative) off its, which the 8-bit
 * quantization of the next matmul's input turns into whole-step differences (measured
 * on the family fixtures: up to 1.5% of the logit range with Q4_K weights). Rounding
 * before scaling keeps the scores equal whatever the scale. n values, a multiple of
 * 32 for Q8_0 (head dims are). */
static void round_queries(const el_ops *ops, el_type kv_type, float *q, int64_t n, float scale) {
    if (kv_type == EL_TYPE_Q8_0) {
        block_q8_0 b;
        for (int64_t i = 0; i < n; i += QK8_0) {
            el_quantize_act_q8_0(q + i, &b, QK8_0);
            el_dequantize_row_q8_0(&b, q + i, QK8_0);
        }
    } else {
        uint16_t h[256];
        for (int64_t i = 0; i < n; i += 256) {
            const int64_t m = n - i < 256 ? n - i : 256;
            ops->f32_to_f16(q + i, h, m);
            ops->f16_to_f32(h, q + i, m);
        }
    }
    if (scale != 1.0f)
        for (int64_t i = 0; i < n; i++) q[i] *= scale;
}

/* The row-wise steps of a layer, each over a range of rows (el_ctx_rows splits prompt
 * batches over the pool): x, xb are the residual stream and its normed copy from the
 * first row the step covers; q, k, v from row 0. */
typedef struct layer_rows {
    const el_ctx *c;
    const el_layer *L;
    float *x, *xb, *q, *k, *v;
} layer_rows;

/* Biases, RoPE and the queries' rounding (llama.cpp-compatible numerics scale the scores
 * inside the softmax, as it does). */
static void rows_qkv_prepare(void *arg, int64_t t0, int64_t t1, int ith) {
    (void)ith;
    const layer_rows *R = arg;
    const el_ctx *c = R->c;
    const el_hparams *hp = &c->m->hp;
    const int64_t QD = (int64_t)hp->n_head * hp->head_dim_k, KD = (int64_t)hp->n_head_kv * hp->head_dim_k;
    const int64_t VD = (int64_t)hp->n_head_kv * hp->head_dim_v;
    const bool lcpp = c->numerics == EL_NUMERICS_LLAMACPP;
    const int32_t n = (int32_t)(t1 - t0);
    add_bias(R->q + t0 * QD, &R->L->bq, n, QD);
    add_bias(R->k + t0 * KD, &R->L->bk, n, KD);
    add_bias(R->v + t0 * VD, &R->L->bv, n, VD);
    const float *cs = c->rope_cs + (size_t)t0 * c->m->rope.n_rot;
    rope_rows(&c->m->rope, R->q + t0 * QD, n, hp->n_head, hp->head_dim_k, cs, lcpp);
    rope_rows(&c->m->rope, R->k + t0 * KD, n, hp->n_head_kv, hp->head_dim_k, cs, lcpp);
    round_queries(&c->ops, c->kv.type, R->q + t0 * QD, n * QD, lcpp ? 1.0f : hp->attn_scale);
}

/* After the attention output: x += it (plus bias), then xb = ffn_norm(x). */
static void rows_attn_out(void *arg, int64_t t0, int64_t t1, int ith) {
    (void)ith;
    const layer_rows *R = arg;
    const int64_t E = R->c->m->hp.n_embd;
    add_bias(R->xb + t0 * E, &R->L->bo, (int32_t)(t1 - t0), E);
    for (int64_t i = t0 * E; i < t1 * E; i++) R->x[i] += R->xb[i];
    for (int64_t t = t0; t < t1; t++) el_rmsnorm(R->xb + t * E, R->x + t * E, R->L->ffn_norm.data, E, R->c->m->hp.rms_eps);
}

/* SwiGLU row by row (as ggml applies it: its vector groups restart on every row). */
static void rows_swiglu(void *arg, int64_t t0, int64_t t1, int ith) {
    (void)ith;
    const layer_rows *R = arg;
    const int64_t F = R->c->m->hp.n_ff;
    for (int64_t t = t0; t < t1; t++) {
        if (R->c->numerics == EL_NUMERICS_LLAMACPP) el_lcpp_swiglu(R->c->ffn_g + t * F, R->c->ffn_u + t * F, F);
        else R->c->ops.swiglu(R->c->ffn_g + t * F, R->c->ffn_u + t * F, F);
    }
}

static void rows_ffn_out(void *arg, int64_t t0, int64_t t1, int ith) {
    (void)ith;
    const layer_rows *R = arg;
    const int64_t E = R->c->m->hp.n_embd;
    for (int64_t i = t0 * E; i < t1 * E; i++) R->x[i] += R->xb[i];
}

static int family_forward(el_ctx *c, const int32_t *tokens, int32_t n, float *logits, el_err *err) {
    (void)err;
    const el_model *m = c->m;
    const el_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd;
    const int64_t QD = (int64_t)hp->n_head * hp->head_dim_k, KD = (int64_t)hp->n_head_kv * hp->head_dim_k;
    const int64_t VD = (int64_t)hp->n_head_kv * hp->head_dim_v;
    const int32_t p0 = c->n_past;
    float *x = c->x, *xb = c->xb;
    const bool lcpp = c->numerics == EL_NUMERICS_LLAMACPP;

    for (int32_t t = 0; t < n; t++) el_embed_row(&m->tok_embd, tokens[t], x + t * E);
    el_rope_cache(&m->rope, el_rope_factors(&m->rope, c->n_ctx), p0, n, c->rope_cs);

    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const el_layer *L = &m->layers[il];
        const bool last_layer = il + 1 == hp->n_layer;

        layer_rows R = {c, L, x, xb, c->q, c->k, c->v};
        el_ctx_rmsnorm_rows(c, xb, x, L->attn_norm.data, n, E, hp->rms_eps);
        el_ctx_matmul_multi(c, (const el_weight *[]){&L->wq, &L->wk, &L->wv}, (float *[]){c->q, c->k, c->v}, 3,
                            xb, n);
        el_ctx_rows(c, n, rows_qkv_prepare, &R);
        el_kv_store(&c->kv, &c->ops, (int)il, p0, n, c->k, (size_t)KD, c->v, (size_t)VD);

        /* The last layer only feeds the logits: with its K/V cached, only the rows
         * whose logits are wanted (the last c->n_out) are needed, none without. */
        int32_t rows = n, r0 = 0;
        if (last_layer) {
            if (!logits) break;
            rows = c->n_out < 1 ? 1 : c->n_out > n ? n : c->n_out;
            r0 = n - rows;
        }
        float *xr = x + r0 * E, *xbr = xb + r0 * E;
        if (lcpp) {
            /* llama.cpp's graph picks the output rows after the attention block: its
             * products see all n rows (which selects their kernels), so do these. */
            if (el_lcpp_attention(c, (int)il, c->q, p0, n, hp->attn_scale, n == 1, c->att) < 0)
                return el_fail(err, EDGELLM_ENOMEM, "forward: out of memory in attention");
            el_ctx_matmul(c, &L->wo, c->att, n, xb);
        } else {
            el_attention(c, (int)il, c->q + r0 * QD, p0 + r0, rows, 0, c->att);
            el_ctx_matmul(c, &L->wo, c->att, rows, xbr);
        }
        R.x = xr, R.xb = xbr;
        el_ctx_rows(c, rows, rows_attn_out, &R);
        el_ctx_matmul_multi(c, (const el_weight *[]){&L->ffn_gate, &L->ffn_up}, (float *[]){c->ffn_g, c->ffn_u},
                            2, xbr, rows);
        el_ctx_rows(c, rows, rows_swiglu, &R);
        el_ctx_matmul(c, &L->ffn_down, c->ffn_g, rows, xbr);
        el_ctx_rows(c, rows, rows_ffn_out, &R);
    }
    if (!logits) return 0;

    const int32_t n_out = c->n_out < 1 ? 1 : c->n_out > n ? n : c->n_out;
    const int64_t r0 = n - n_out;
    for (int64_t t = r0; t < n; t++) el_rmsnorm(xb + t * E, x + t * E, m->output_norm.data, E, hp->rms_eps);
    el_ctx_matmul(c, &m->output, xb + r0 * E, n_out, logits);
    return 0;
}

const el_arch el_arch_llama = {.name = "llama", .load = family_load, .forward = family_forward};
const el_arch el_arch_qwen2 = {.name = "qwen2", .load = family_load, .forward = family_forward};
const el_arch el_arch_phi3 = {.name = "phi3", .load = family_load, .forward = family_forward};
