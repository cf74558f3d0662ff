#include "router/engine.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "edgellm.h"
#include "router/stopseq.h"

typedef struct engine_model {
    edgellm_model *model;
    edgellm_context_params cp;
    pthread_mutex_t mu;
    edgellm_context *idle[8]; /* contexts not in use (their KV caches keep prefixes for reuse) */
    int n_idle;
} engine_model;

static edgellm_context *ctx_take(engine_model *m, el_err *err) {
    edgellm_context *c = NULL;
    pthread_mutex_lock(&m->mu);
    if (m->n_idle > 0) c = m->idle[--m->n_idle];
    pthread_mutex_unlock(&m->mu);
    return c ? c : edgellm_context_create(m->model, &m->cp, err);
}

static void ctx_give(engine_model *m, edgellm_context *c) {
    pthread_mutex_lock(&m->mu);
    if (m->n_idle < (int)(sizeof m->idle / sizeof m->idle[0])) {
        m->idle[m->n_idle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&m->mu);
    if (c) edgellm_context_free(c);
}

static void engine_unload(void *ctx, void *handle) {
    (void)ctx;
    engine_model *m = handle;
    if (!m) return;
    for (int i = 0; i < m->n_idle; i++) edgellm_context_free(m->idle[i]);
    edgellm_model_free(m->model);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void *engine_load(void *ctx, const char *path, int threads, int n_ctx, el_err *err) {
    (void)ctx;
    engine_model *m = calloc(1, sizeof *m);
    if (!m) {
        el_fail(err, EDGELLM_ENOMEM, "engine: out of memory loading '%s'", path);
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    m->cp = edgellm_context_default_params();
    m->cp.n_threads = threads > 0 ? threads : 0;
    m->cp.n_ctx = n_ctx > 0 ? (uint32_t)n_ctx : 0;
    m->model = edgellm_model_load(path, NULL, err);
    if (!m->model) {
        engine_unload(NULL, m);
        return NULL;
    }
    /* One context now, so that a model too large for memory fails here, not mid-request. */
    edgellm_context *c = edgellm_context_create(m->model, &m->cp, err);
    if (!c) {
        engine_unload(NULL, m);
        return NULL;
    }
    ctx_give(m, c);
    return m;
}

typedef struct gen_state {
    const el_local_callbacks *cb;
    el_stopseq stops;
    int stop_hit;   /* a stop sequence ended the answer */
    int aborted;    /* the router (deadline) or its caller stopped it */
    el_err err;
} gen_state;

static int emit_piece(void *ud, const char *text, size_t len) {
    const el_local_callbacks *cb = ud;
    return cb->on_piece(cb->ud, text, len);
}

static int on_token(void *user, int32_t token, const char *text, size_t len) {
    (void)token;
    gen_state *g = user;
    if (g->cb->should_abort && g->cb->should_abort(g->cb->ud)) {
        g->aborted = 1;
        return 1;
    }
    if (!len) return 0;
    int rc = el_stopseq_feed(&g->stops, text, len, emit_piece, (void *)g->cb, &g->err);
    if (rc == 1) g->stop_hit = 1;
    if (rc < 0) g->aborted = 1;
    return rc != 0;
}

static int engine_generate(void *ctx, void *handle, const el_chat_msg *messages, size_t n_messages,
                           const el_gen_params *p, const el_local_callbacks *cb, el_local_usage *usage, el_err *err) {
    (void)ctx;
    engine_model *m = handle;
    edgellm_chat_message *cm = calloc(n_messages ? n_messages : 1, sizeof *cm);
    if (!cm) return el_fail(err, EDGELLM_ENOMEM, "engine: out of memory for %zu messages", n_messages);
    for (size_t i = 0; i < n_messages; i++) cm[i] = (edgellm_chat_message){messages[i].role, messages[i].content};
    char *prompt = edgellm_chat_format(m->model, cm, n_messages, 1, err);
    free(cm);
    if (!prompt) return -1;
    edgellm_context *c = ctx_take(m, err);
    if (!c) {
        free(prompt);
        return -1;
    }
    edgellm_generate_params gp = edgellm_generate_default_params();
    gp.max_tokens = p->max_tokens > 0 ? p->max_tokens : -1;
    if (p->temperature >= 0) gp.sampling.temperature = (float)p->temperature;
    if (p->seed) gp.sampling.seed = p->seed;
    gen_state g;
    memset(&g, 0, sizeof g);
    g.cb = cb;
    el_stopseq_init(&g.stops, p->stop, p->n_stop);
    edgellm_stats st;
    memset(&st, 0, sizeof st);
    int rc = edgellm_generate(c, prompt, &gp, on_token, &g, &st, err);
    free(prompt);
    ctx_give(m, c);
    if (rc == 0 && g.aborted) {
        if (g.err.code == EDGELLM_ENOMEM) *err = g.err;
        else el_fail(err, EDGELLM_ECANCELLED, "engine: generation stopped by the router");
        rc = -1;
    }
    if (rc == 0 && !g.stop_hit && el_stopseq_flush(&g.stops, emit_piece, (void *)cb, err))
        rc = -1;
    el_stopseq_free(&g.stops);
    usage->tokens_in = (int)st.n_prompt;
    usage->tokens_out = (int)st.n_generated;
    return rc;
}

static const el_local_backend ENGINE_BACKEND = {NULL, engine_load, engine_generate, engine_unload};

const el_local_backend *el_engine_backend(void) { return &ENGINE_BACKEND; }
