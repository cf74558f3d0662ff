/* The public model / context / generation API (include/edgellm.h), on top of the
 * GGUF reader, tokenizer, model forward pass and sampler. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/threadpool.h"
#include "core/timing.h"
#include "edgellm.h"
#include "gguf/gguf.h"
#include "kernels/matmul.h"
#include "model/model.h"
#include "chat/chat.h"
#include "sample/sampler.h"
#include "sample/spec.h"
#include "tokenizer/tokenizer.h"

struct edgellm_model {
    el_gguf *gguf;
    el_model *m; /* NULL when vocab_only */
    el_tokenizer *tok;
    edgellm_model_info info;
    el_chat_template chat;
    const char *chat_warning; /* static text, or NULL */
    char arch[64];
    char name[128];
};

struct edgellm_context {
    edgellm_model *model;
    el_pool *pool;
    el_ctx *ctx;
    bool have_logits;
};

static void copy_str(char *dst, size_t cap, el_gguf_str s) {
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(dst, s.data, n);
    dst[n] = '\0';
}

edgellm_model_params edgellm_model_default_params(void) {
    edgellm_model_params p = {0};
    return p;
}

static uint64_t count_params(const el_gguf *g) {
    uint64_t total = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        uint64_t n = 1;
        for (uint32_t d = 0; d < g->tensors[i].n_dims; d++) n *= g->tensors[i].ne[d];
        total += n;
    }
    return total;
}

const char *edgellm_kernels_name(void) { return el_matmul_kernels_name(); }

edgellm_model *edgellm_model_load(const char *path, const edgellm_model_params *params, edgellm_error *err) {
    const double t0 = el_time_s();
    edgellm_model_params p = params ? *params : edgellm_model_default_params();
    if (!path) {
        el_fail(err, EDGELLM_EINVAL, "model path is NULL");
        return NULL;
    }
    edgellm_model *mdl = calloc(1, sizeof *mdl);
    if (!mdl) {
        el_fail(err, EDGELLM_ENOMEM, "model: out of memory");
        return NULL;
    }
    mdl->gguf = el_gguf_open(path, err);
    if (!mdl->gguf) {
        el_fail_prefix(err, "%s", path);
        free(mdl);
        return NULL;
    }
    el_gguf_str s;
    if (el_gguf_get_str(mdl->gguf, "general.architecture", &s, err) < 0) {
        el_fail_prefix(err, "%s", path);
        edgellm_model_free(mdl);
        return NULL;
    }
    copy_str(mdl->arch, sizeof mdl->arch, s);
    if (el_gguf_find_kv(mdl->gguf, "general.name") && el_gguf_get_str(mdl->gguf, "general.name", &s, NULL) == 0)
        copy_str(mdl->name, sizeof mdl->name, s);
    if (!p.vocab_only) {
        mdl->m = el_model_load(mdl->gguf, err);
        if (!mdl->m) {
            el_fail_prefix(err, "%s", path);
            edgellm_model_free(mdl);
            return NULL;
        }
        el_err repack_err = {0};
        if (!p.no_repack) /* on failure (no memory for the copies) the file's mapping serves as is */
            (void)el_model_repack(mdl->m, &repack_err);
    }
    mdl->tok = el_tokenizer_from_gguf(mdl->gguf, err);
    if (!mdl->tok) {
        el_fail_prefix(err, "%s: tokenizer", path);
        edgellm_model_free(mdl);
        return NULL;
    }
    el_chat_detect_gguf(&mdl->chat, mdl->gguf, mdl->tok, &mdl->chat_warning);
    edgellm_model_info *info = &mdl->info;
    info->arch = mdl->arch;
    info->name = mdl->name;
    info->n_vocab = (uint32_t)el_tokenizer_n_vocab(mdl->tok);
    if (mdl->m) {
        info->n_vocab = mdl->m->hp.n_vocab;
        info->n_ctx_train = mdl->m->hp.n_ctx_train;
        info->n_embd = mdl->m->hp.n_embd;
        info->n_layer = mdl->m->hp.n_layer;
    }
    info->chat_format = el_chat_format_name(mdl->chat.format);
    info->n_params = count_params(mdl->gguf);
    info->file_bytes = mdl->gguf->size;
    info->load_ms = (el_time_s() - t0) * 1e3;
    return mdl;
}

void edgellm_model_free(edgellm_model *mdl) {
    if (!mdl) return;
    el_tokenizer_free(mdl->tok);
    el_model_free(mdl->m);
    el_gguf_close(mdl->gguf);
    free(mdl);
}

void edgellm_model_get_info(const edgellm_model *mdl, edgellm_model_info *info) {
    if (mdl && info) *info = mdl->info;
}

edgellm_context_params edgellm_context_default_params(void) {
    edgellm_context_params p = {
        .n_ctx = 0, .n_batch = 0, .n_threads = 0, .kv_type = EDGELLM_KV_F16, .numerics = EDGELLM_NUMERICS_FAST};
    return p;
}

static int online_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

edgellm_context *edgellm_context_create(edgellm_model *mdl, const edgellm_context_params *params,
                                        edgellm_error *err) {
    edgellm_context_params p = params ? *params : edgellm_context_default_params();
    if (!mdl) {
        el_fail(err, EDGELLM_EINVAL, "context: model is NULL");
        return NULL;
    }
    if (!mdl->m) {
        el_fail(err, EDGELLM_EINVAL, "context: the model was loaded vocab-only");
        return NULL;
    }
    if (p.n_threads < 0 || p.n_threads > 1024) {
        el_fail(err, EDGELLM_EINVAL, "context: bad thread count %d", p.n_threads);
        return NULL;
    }
    if (p.kv_type != EDGELLM_KV_F16 && p.kv_type != EDGELLM_KV_Q8_0) {
        el_fail(err, EDGELLM_EINVAL, "context: unknown KV cache type %d", (int)p.kv_type);
        return NULL;
    }
    if (p.numerics != EDGELLM_NUMERICS_FAST && p.numerics != EDGELLM_NUMERICS_LLAMACPP) {
        el_fail(err, EDGELLM_EINVAL, "context: unknown numerics %d", (int)p.numerics);
        return NULL;
    }
    edgellm_context *c = calloc(1, sizeof *c);
    if (!c) {
        el_fail(err, EDGELLM_ENOMEM, "context: out of memory");
        return NULL;
    }
    c->model = mdl;
    c->pool = el_pool_create(p.n_threads ? p.n_threads : online_cpus(), err);
    if (!c->pool) {
        free(c);
        return NULL;
    }
    el_ctx_params cp = {
        .n_ctx = p.n_ctx,
        .n_ubatch = p.n_batch,
        .kv_type = p.kv_type == EDGELLM_KV_Q8_0 ? EL_TYPE_Q8_0 : EL_TYPE_F16,
        .pool = c->pool,
        .numerics = p.numerics == EDGELLM_NUMERICS_LLAMACPP ? EL_NUMERICS_LLAMACPP : EL_NUMERICS_FAST,
    };
    c->ctx = el_ctx_create(mdl->m, &cp, err);
    if (!c->ctx) {
        el_pool_destroy(c->pool);
        free(c);
        return NULL;
    }
    return c;
}

void edgellm_context_free(edgellm_context *c) {
    if (!c) return;
    el_ctx_free(c->ctx);
    el_pool_destroy(c->pool);
    free(c);
}

void edgellm_context_reset(edgellm_context *c) {
    if (!c) return;
    el_ctx_truncate(c->ctx, 0);
    c->have_logits = false;
}

uint32_t edgellm_context_n_ctx(const edgellm_context *c) { return c ? c->ctx->n_ctx : 0; }
uint32_t edgellm_context_n_cached(const edgellm_context *c) { return c ? (uint32_t)c->ctx->n_past : 0; }

const float *edgellm_context_logits(const edgellm_context *c) {
    return c && c->have_logits ? c->ctx->logits : NULL;
}

int32_t edgellm_argmax(const float *logits, uint32_t n) { return logits ? el_argmax(logits, n) : 0; }

int edgellm_eval(edgellm_context *c, const int32_t *tokens, size_t n, edgellm_error *err) {
    if (!c || (!tokens && n)) return el_fail(err, EDGELLM_EINVAL, "eval: NULL argument");
    if (n == 0) return 0;
    c->have_logits = false;
    if (el_ctx_eval(c->ctx, tokens, n, c->ctx->logits, err) < 0) return -1;
    c->have_logits = true;
    return 0;
}

int64_t edgellm_tokenize(const edgellm_model *mdl, const char *text, size_t len, int add_bos, int parse_special,
                         int32_t *tokens, size_t cap, edgellm_error *err) {
    if (!mdl || (!text && len)) return el_fail(err, EDGELLM_EINVAL, "tokenize: NULL argument");
    int32_t *ids = NULL;
    size_t n = 0;
    if (el_tokenize(mdl->tok, text ? text : "", len, add_bos != 0, parse_special != 0, &ids, &n, err) < 0) return -1;
    if (tokens) memcpy(tokens, ids, (n < cap ? n : cap) * sizeof *ids);
    free(ids);
    return (int64_t)n;
}

int64_t edgellm_detokenize(const edgellm_model *mdl, const int32_t *tokens, size_t n, int render_special,
                           char *buf, size_t cap, edgellm_error *err) {
    if (!mdl || (!tokens && n)) return el_fail(err, EDGELLM_EINVAL, "detokenize: NULL argument");
    size_t total = 0;
    char piece[256];
    for (size_t i = 0; i < n; i++) {
        int k = el_token_to_piece(mdl->tok, tokens[i], render_special != 0, piece, sizeof piece);
        if (k < 0) return el_fail(err, EDGELLM_ERANGE, "detokenize: token id %d is outside the vocabulary", tokens[i]);
        if ((size_t)k > sizeof piece) {
            char *big = malloc((size_t)k);
            if (!big) return el_fail(err, EDGELLM_ENOMEM, "detokenize: out of memory");
            el_token_to_piece(mdl->tok, tokens[i], render_special != 0, big, (size_t)k);
            if (buf && total < cap) memcpy(buf + total, big, (size_t)k < cap - total ? (size_t)k : cap - total);
            free(big);
        } else if (buf && total < cap) {
            memcpy(buf + total, piece, (size_t)k < cap - total ? (size_t)k : cap - total);
        }
        total += (size_t)k;
    }
    if (buf && cap) buf[total < cap ? total : cap - 1] = '\0';
    return (int64_t)total;
}

int edgellm_token_is_eog(const edgellm_model *mdl, int32_t id) {
    return mdl && el_tokenizer_is_eog(mdl->tok, id);
}

edgellm_generate_params edgellm_generate_default_params(void) {
    edgellm_generate_params p = {
        .max_tokens = -1,
        .add_bos = 1,
        .parse_special = 1,
        .sampling = {
            .temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
            .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0,
        },
        .spec = {.kind = EDGELLM_SPEC_NONE, .n_draft = 8, .ngram_min = 2, .ngram_max = 4, .draft = NULL},
    };
    return p;
}

static size_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

static el_sampler *make_sampler(const edgellm_sampling_params *sp, const el_tokenizer *tok, el_err *err) {
    el_sampler_params p = el_sampler_default_params();
    p.temp = sp->temperature;
    p.top_k = sp->top_k;
    p.top_p = sp->top_p;
    p.min_p = sp->min_p;
    p.repeat_penalty = sp->repeat_penalty;
    p.repeat_last_n = sp->repeat_last_n;
    p.freq_penalty = sp->frequency_penalty;
    p.presence_penalty = sp->presence_penalty;
    p.seed = sp->seed;
    return el_sampler_new(&p, el_tokenizer_n_vocab(tok), err);
}

static void finish_stats(edgellm_stats *st, double prefill_s, double decode_s, uint32_t n_decoded) {
    st->prefill_ms = prefill_s * 1e3;
    st->decode_ms = decode_s * 1e3;
    const uint32_t evaluated = st->n_prompt - st->n_reused;
    st->prefill_tok_s = prefill_s > 0 ? evaluated / prefill_s : 0;
    st->decode_tok_s = decode_s > 0 ? n_decoded / decode_s : 0;
}

int edgellm_spec_check_draft(const edgellm_model *target, const edgellm_model *draft, edgellm_error *err) {
    if (!target || !draft) return el_fail(err, EDGELLM_EINVAL, "speculative: NULL model");
    char why[200];
    bool ok = el_spec_vocab_match(target->tok, draft->tok, why, sizeof why);
    if (ok && target->m && draft->m && target->m->hp.n_vocab != draft->m->hp.n_vocab) {
        snprintf(why, sizeof why, "output sizes differ (%u vs %u logits)", target->m->hp.n_vocab,
                 draft->m->hp.n_vocab);
        ok = false;
    }
    if (!ok)
        return el_fail(err, EDGELLM_EUNSUPPORTED,
                       "speculative: draft model '%s' (%s) cannot draft for '%s' (%s): %s; it needs the same "
                       "tokenizer vocabulary",
                       draft->name, draft->arch, target->name, target->arch, why);
    return 0;
}

/* Speculative decoding state for one generate call. */
typedef struct spec_state {
    edgellm_spec_kind kind;
    int max_draft;                  /* most drafts per step */
    int cur_draft;                  /* drafts asked for this step (adapted, <= max_draft) */
    int ngram_min, ngram_max;
    edgellm_context *dc;            /* draft model's context */
    int32_t *hist;                  /* prompt + generated tokens (the pending one last) */
    size_t n_hist, cap_hist;
    int32_t *batch;                 /* pending token + drafts */
    float *rows;                    /* their logits, max_draft + 1 rows */
} spec_state;

/* The draft model's greedy guesses of the tokens after hist: it first catches up on
 * the tokens its cache lacks. Returns how many (at most max), or -1. */
static int draft_with_model(spec_state *S, int max, int32_t *out, el_err *err) {
    el_ctx *d = S->dc->ctx;
    if (S->n_hist + (size_t)max > d->n_ctx) return 0; /* the draft's context is full: no drafts */
    size_t keep = common_prefix(d->past_tokens, (size_t)d->n_past, S->hist, S->n_hist - 1);
    keep = (size_t)el_ctx_truncate(d, (int32_t)keep);
    S->dc->have_logits = false;
    if (el_ctx_eval(d, S->hist + keep, S->n_hist - keep, d->logits, err) < 0)
        return el_fail_prefix(err, "draft model");
    const uint32_t n_vocab = d->m->hp.n_vocab;
    int k = 0;
    for (;;) {
        const int32_t t = el_argmax(d->logits, n_vocab);
        out[k++] = t;
        if (k == max || el_tokenizer_is_eog(S->dc->model->tok, t)) break;
        if (el_ctx_eval(d, &t, 1, d->logits, err) < 0) return el_fail_prefix(err, "draft model");
    }
    S->dc->have_logits = true;
    return k;
}

/* Set up speculation for gp->spec, or leave S->kind NONE when it cannot help. */
static int spec_init(edgellm_context *c, const edgellm_generate_params *gp, const int32_t *ids, size_t n,
                     spec_state *S, el_err *err) {
    const edgellm_spec_params *sp = &gp->spec;
    memset(S, 0, sizeof *S);
    if (sp->kind == EDGELLM_SPEC_NONE) return 0;
    if (sp->kind != EDGELLM_SPEC_LOOKUP && sp->kind != EDGELLM_SPEC_DRAFT)
        return el_fail(err, EDGELLM_EINVAL, "speculative: unknown kind %d", (int)sp->kind);
    if (sp->n_draft < 1 || sp->n_draft > 256)
        return el_fail(err, EDGELLM_EINVAL, "speculative: n_draft must be 1..256, not %d", sp->n_draft);
    if (sp->kind == EDGELLM_SPEC_LOOKUP && (sp->ngram_min < 1 || sp->ngram_max < sp->ngram_min || sp->ngram_max > 64))
        return el_fail(err, EDGELLM_EINVAL, "speculative: bad n-gram sizes %d..%d (need 1 <= min <= max <= 64)",
                       sp->ngram_min, sp->ngram_max);
    if (sp->kind == EDGELLM_SPEC_DRAFT) {
        if (!sp->draft || !sp->draft->ctx)
            return el_fail(err, EDGELLM_EINVAL, "speculative: the draft kind needs a draft model context");
        if (sp->draft == c) return el_fail(err, EDGELLM_EINVAL, "speculative: the draft context is the target's");
        /* Checked on every call (a few ms): a cached verdict could outlive its model. */
        if (edgellm_spec_check_draft(c->model, sp->draft->model, err) < 0) return -1;
    }
    el_ctx *x = c->ctx;
    /* A rejected draft is rolled back; the sliding-window rings hold any batch up to n_ubatch. */
    int max_draft = sp->n_draft < (int)x->n_ubatch - 1 ? sp->n_draft : (int)x->n_ubatch - 1;
    if (max_draft < 1) return 0;
    S->kind = sp->kind;
    S->max_draft = S->cur_draft = max_draft;
    S->ngram_min = sp->ngram_min;
    S->ngram_max = sp->ngram_max;
    S->dc = sp->draft;
    S->cap_hist = n + x->n_ctx + 2;
    S->hist = malloc(S->cap_hist * sizeof *S->hist);
    S->batch = malloc(((size_t)max_draft + 1) * sizeof *S->batch);
    S->rows = malloc(((size_t)max_draft + 1) * x->m->hp.n_vocab * sizeof *S->rows);
    if (!S->hist || !S->batch || !S->rows) {
        free(S->hist), free(S->batch), free(S->rows);
        memset(S, 0, sizeof *S);
        return el_fail(err, EDGELLM_ENOMEM, "speculative: out of memory for %d drafts", max_draft);
    }
    memcpy(S->hist, ids, n * sizeof *ids);
    S->n_hist = n;
    return 0;
}

static void spec_free(spec_state *S) {
    free(S->hist);
    free(S->batch);
    free(S->rows);
}

/* What one generate call shares with emit_token. */
typedef struct gen_state {
    edgellm_context *c;
    const edgellm_generate_params *gp;
    edgellm_token_callback cb;
    void *user;
    edgellm_stats *st;
    double t_start;
    el_sampler *smp;
    el_detok dt;
    spec_state *spec;
    char text[4096]; /* longer than any token piece */
} gen_state;

/* Sample the next token from logits, record and stream it. Returns true when
 * generation stops here (st->stop says why). */
static bool emit_token(gen_state *G, const float *logits, int32_t *tok) {
    edgellm_stats *st = G->st;
    const el_tokenizer *tok_ = G->c->model->tok;
    const int32_t t = el_sampler_sample(G->smp, logits);
    *tok = t;
    el_sampler_accept(G->smp, t);
    st->n_generated++;
    if (G->spec->hist && G->spec->n_hist < G->spec->cap_hist) G->spec->hist[G->spec->n_hist++] = t;
    if (st->n_generated == 1) st->ttft_ms = (el_time_s() - G->t_start) * 1e3;
    if (el_tokenizer_is_eog(tok_, t)) {
        if (G->cb) G->cb(G->user, t, "", 0);
        st->stop = EDGELLM_STOP_EOG;
        return true;
    }
    const size_t len = el_detok_push(&G->dt, tok_, t, G->text, sizeof G->text);
    if (G->cb && G->cb(G->user, t, G->text, len)) {
        st->stop = EDGELLM_STOP_CALLBACK;
        return true;
    }
    if (G->gp->max_tokens >= 0 && st->n_generated >= (uint32_t)G->gp->max_tokens) {
        st->stop = EDGELLM_STOP_LENGTH;
        return true;
    }
    /* Tokens cached before this one would be evaluated: prompt + generated - 1. */
    if ((uint64_t)st->n_prompt + st->n_generated - 1 >= G->c->ctx->n_ctx) {
        st->stop = EDGELLM_STOP_CONTEXT_FULL;
        return true;
    }
    return false;
}

/* Drafts for the step after the pending token (the last of S->hist): at most what
 * the token limit and the context leave room for. */
static int spec_draft(gen_state *G, int32_t *out, el_err *err) {
    spec_state *S = G->spec;
    const el_ctx *x = G->c->ctx;
    int max = S->cur_draft;
    /* A fully accepted step yields max + 1 tokens; the batch needs max + 1 cells. */
    if (G->gp->max_tokens >= 0) {
        const int64_t left = (int64_t)G->gp->max_tokens - G->st->n_generated - 1;
        if (left < max) max = (int)(left < 0 ? 0 : left);
    }
    const int64_t room = (int64_t)x->n_ctx - x->n_past - 1;
    if (room < max) max = (int)(room < 0 ? 0 : room);
    if (max <= 0) return 0;
    if (S->kind == EDGELLM_SPEC_LOOKUP)
        return el_spec_lookup(S->hist, S->n_hist, S->ngram_min, S->ngram_max, out, max);
    return draft_with_model(S, max, out, err);
}

static int generate(edgellm_context *c, const int32_t *ids, size_t n, const edgellm_generate_params *gp,
                    edgellm_token_callback cb, void *user, edgellm_stats *st, double t_start, el_err *err) {
    el_ctx *x = c->ctx;
    const el_tokenizer *tok = c->model->tok;
    if (n == 0) return el_fail(err, EDGELLM_EINVAL, "generate: the prompt is empty");
    if (n > x->n_ctx)
        return el_fail(err, EDGELLM_ERANGE, "generate: the prompt has %zu tokens, more than the context of %u", n,
                       x->n_ctx);
    st->n_prompt = (uint32_t)n;
    spec_state S;
    if (spec_init(c, gp, ids, n, &S, err) < 0) return -1;

    /* Reuse the cached prefix; at least the last prompt token is evaluated for its logits. */
    size_t keep = common_prefix(x->past_tokens, (size_t)x->n_past, ids, n);
    if (keep >= n) keep = n - 1;
    keep = (size_t)el_ctx_truncate(x, (int32_t)keep);
    st->n_reused = (uint32_t)keep;
    c->have_logits = false;

    gen_state *G = calloc(1, sizeof *G);
    el_sampler *smp = make_sampler(&gp->sampling, tok, err);
    if (!G || !smp) {
        if (!G) el_fail(err, EDGELLM_ENOMEM, "generate: out of memory");
        el_sampler_free(smp);
        free(G);
        spec_free(&S);
        return -1;
    }
    *G = (gen_state){.c = c, .gp = gp, .cb = cb, .user = user, .st = st, .t_start = t_start, .smp = smp,
                     .spec = &S};
    for (size_t i = 0; i < n; i++) el_sampler_accept(smp, ids[i]);

    int rc = 0;
    double t0 = el_time_s();
    if (el_ctx_eval(x, ids + keep, n - keep, x->logits, err) < 0) rc = -1;
    /* The draft model reads the prompt too (its cached prefix reused the same way). */
    if (rc == 0 && S.kind == EDGELLM_SPEC_DRAFT && n <= S.dc->ctx->n_ctx) {
        el_ctx *d = S.dc->ctx;
        size_t dkeep = common_prefix(d->past_tokens, (size_t)d->n_past, ids, n);
        dkeep = (size_t)el_ctx_truncate(d, (int32_t)dkeep);
        S.dc->have_logits = false;
        if (dkeep < n && el_ctx_eval(d, ids + dkeep, n - dkeep, NULL, err) < 0) {
            el_fail_prefix(err, "draft model");
            rc = -1;
        }
    }
    const double prefill_s = el_time_s() - t0;
    double decode_s = 0;
    uint32_t n_decoded = 0;
    st->stop = EDGELLM_STOP_LENGTH;
    if (rc == 0) c->have_logits = true;

    int32_t t = -1;
    bool stop = rc < 0 || gp->max_tokens == 0 || emit_token(G, x->logits, &t);
    int32_t *drafts = S.batch ? S.batch + 1 : NULL;
    while (!stop) {
        /* Evaluate the pending token t and the drafts after it in one batch; sample from
         * each row in turn while the sampled token is the draft that follows. */
        t0 = el_time_s();
        const int32_t p = x->n_past;
        int k = 0;
        if (S.kind != EDGELLM_SPEC_NONE) {
            k = spec_draft(G, drafts, err);
            if (k < 0) {
                rc = -1;
                break;
            }
        }
        float *rows = k > 0 ? S.rows : x->logits;
        const int32_t *batch = &t;
        if (k > 0) {
            S.batch[0] = t;
            batch = S.batch;
        }
        c->have_logits = false;
        if (el_ctx_eval_rows(x, batch, (size_t)k + 1, rows, (size_t)k + 1, err) < 0) {
            rc = -1;
            break;
        }
        if (k > 0) {
            st->n_verify++;
            st->n_drafted += (uint32_t)k;
        }
        const uint32_t n_vocab = x->m->hp.n_vocab;
        int j = 0;
        for (;; j++) {
            n_decoded++;
            stop = emit_token(G, rows + (size_t)j * n_vocab, &t);
            if (j < k && t == drafts[j]) {
                st->n_accepted++;
                if (!stop) continue;
            }
            break;
        }
        /* The draft length follows acceptance: after a step whose drafts were all taken
         * twice as many are asked for (up to the limit), after one that rejected some one
         * more than were taken. Rejected drafts cost verify work for nothing. */
        if (k > 0) S.cur_draft = j >= k ? (2 * S.cur_draft < S.max_draft ? 2 * S.cur_draft : S.max_draft) : j + 1;
        /* Keep the pending token and the accepted drafts: positions p .. p + j. */
        if (x->n_past > p + j + 1 && el_ctx_truncate(x, p + j + 1) != p + j + 1) {
            rc = el_fail(err, EDGELLM_ERANGE, "speculative: cannot roll the cache back to %d tokens", p + j + 1);
            break;
        }
        if (k > 0) memcpy(x->logits, rows + (size_t)j * n_vocab, n_vocab * sizeof *rows);
        c->have_logits = true;
        decode_s += el_time_s() - t0;
    }
    const size_t rest = el_detok_flush(&G->dt, G->text, sizeof G->text);
    if (rest && cb && rc == 0) cb(user, -1, G->text, rest);
    el_sampler_free(smp);
    free(G);
    spec_free(&S);
    finish_stats(st, prefill_s, decode_s, n_decoded);
    return rc;
}

int edgellm_generate_tokens(edgellm_context *c, const int32_t *tokens, size_t n_tokens,
                            const edgellm_generate_params *params, edgellm_token_callback cb, void *user,
                            edgellm_stats *stats, edgellm_error *err) {
    const double t_start = el_time_s();
    edgellm_stats local;
    edgellm_stats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    if (!c || (!tokens && n_tokens)) return el_fail(err, EDGELLM_EINVAL, "generate: NULL argument");
    edgellm_generate_params gp = params ? *params : edgellm_generate_default_params();
    for (size_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= c->model->info.n_vocab)
            return el_fail(err, EDGELLM_ERANGE, "generate: token id %d is outside the vocabulary", tokens[i]);
    return generate(c, tokens, n_tokens, &gp, cb, user, st, t_start, err);
}

int edgellm_generate(edgellm_context *c, const char *prompt, const edgellm_generate_params *params,
                     edgellm_token_callback cb, void *user, edgellm_stats *stats, edgellm_error *err) {
    const double t_start = el_time_s();
    edgellm_stats local;
    edgellm_stats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    if (!c || !prompt) return el_fail(err, EDGELLM_EINVAL, "generate: NULL argument");
    edgellm_generate_params gp = params ? *params : edgellm_generate_default_params();
    int32_t *ids = NULL;
    size_t n = 0;
    if (el_tokenize(c->model->tok, prompt, strlen(prompt), gp.add_bos != 0, gp.parse_special != 0, &ids, &n, err) < 0)
        return -1;
    int rc = generate(c, ids, n, &gp, cb, user, st, t_start, err);
    free(ids);
    return rc;
}

char *edgellm_chat_format(const edgellm_model *mdl, const edgellm_chat_message *msgs, size_t n,
                          int add_generation_prompt, edgellm_error *err) {
    if (!mdl || (!msgs && n)) {
        el_fail(err, EDGELLM_EINVAL, "chat format: NULL argument");
        return NULL;
    }
    el_chat_msg *m = calloc(n ? n : 1, sizeof *m);
    if (!m) {
        el_fail(err, EDGELLM_ENOMEM, "chat format: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content) {
            free(m);
            el_fail(err, EDGELLM_EINVAL, "chat format: message %zu has no role or content", i);
            return NULL;
        }
        m[i].role = msgs[i].role;
        m[i].content = msgs[i].content;
    }
    char *out = NULL;
    size_t len = 0;
    int rc = el_chat_render(&mdl->chat, m, n, add_generation_prompt != 0, &out, &len, err);
    free(m);
    return rc < 0 ? NULL : out;
}

const char *edgellm_chat_warning(const edgellm_model *mdl) {
    return mdl ? mdl->chat_warning : NULL;
}
