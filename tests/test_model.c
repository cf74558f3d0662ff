/* Gemma 3 forward pass on a tiny synthetic model (random F32 weights written with
 * the GGUF writer), checked against a naive reference written here in double
 * precision: full causal attention recomputed from scratch for every position,
 * sliding-window mask, per-head q/k norms, NEOX RoPE with per-layer bases, GELU(tanh).
 *
 * Also: batched prefill == token-by-token == small ubatches (ring buffers wrap),
 * Q8_0 KV cache, truncation (prefix reuse) and its refusal once a ring has moved on,
 * full context, and load errors (unsupported architecture named, missing tensor,
 * wrong shape). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/cpu_features.h"
#include "core/threadpool.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "quant/quant.h"

/* Tiny Gemma 3: 3 layers (0, 1 local with window W; 2 global), GQA 4:2. */
enum { E = 64, NH = 4, NKV = 2, HD = 32, FF = 96, NL = 3, NV = 97, W = 8, PATTERN = 3 };
static const float EPS = 1e-6f, BASE = 1000000.0f, BASE_SWA = 10000.0f;

typedef struct tiny {
    float *emb, *out_norm;
    float *attn_norm[NL], *wq[NL], *wk[NL], *wv[NL], *wo[NL], *qn[NL], *kn[NL], *pan[NL];
    float *fn[NL], *wg[NL], *wu[NL], *wd[NL], *pfn[NL];
} tiny;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static float *rand_vec(size_t n, float scale, float offset) {
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = offset + scale * frand();
    return v;
}

static void tiny_init(tiny *t) {
    t->emb = rand_vec((size_t)NV * E, 0.5f, 0.0f);
    t->out_norm = rand_vec(E, 0.2f, 1.0f);
    for (int l = 0; l < NL; l++) {
        t->attn_norm[l] = rand_vec(E, 0.2f, 1.0f);
        t->wq[l] = rand_vec((size_t)NH * HD * E, 0.15f, 0.0f);
        t->wk[l] = rand_vec((size_t)NKV * HD * E, 0.15f, 0.0f);
        t->wv[l] = rand_vec((size_t)NKV * HD * E, 0.15f, 0.0f);
        t->wo[l] = rand_vec((size_t)E * NH * HD, 0.1f, 0.0f);
        t->qn[l] = rand_vec(HD, 0.2f, 1.0f);
        t->kn[l] = rand_vec(HD, 0.2f, 1.0f);
        t->pan[l] = rand_vec(E, 0.2f, 1.0f);
        t->fn[l] = rand_vec(E, 0.2f, 1.0f);
        t->wg[l] = rand_vec((size_t)FF * E, 0.15f, 0.0f);
        t->wu[l] = rand_vec((size_t)FF * E, 0.15f, 0.0f);
        t->wd[l] = rand_vec((size_t)E * FF, 0.1f, 0.0f);
        t->pfn[l] = rand_vec(E, 0.2f, 1.0f);
    }
}

static void tiny_free(tiny *t) {
    free(t->emb);
    free(t->out_norm);
    for (int l = 0; l < NL; l++) {
        float *v[] = {t->attn_norm[l], t->wq[l], t->wk[l], t->wv[l], t->wo[l], t->qn[l], t->kn[l],
                      t->pan[l], t->fn[l], t->wg[l], t->wu[l], t->wd[l], t->pfn[l]};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) free(v[i]);
    }
}

static void add_t(el_gguf_writer *w, const char *name, const float *data, uint64_t n_in, uint64_t n_out) {
    el_err err = {0};
    uint64_t ne[2] = {n_in, n_out};
    assert_int_equal(el_gguf_writer_add_tensor(w, name, EL_TYPE_F32, n_out > 1 ? 2 : 1, ne, data, &err), 0);
}

/* Writes the model; skip_tensor / bad_shape_tensor / arch let the error tests break it. */
static void tiny_write(const tiny *t, const char *path, const char *arch, const char *skip_tensor,
                       const char *bad_shape_tensor) {
    el_err err = {0};
    el_gguf_writer *w = el_gguf_writer_new(32, &err);
    assert_non_null(w);
    char key[128];
    assert_int_equal(el_gguf_writer_add_str(w, "general.architecture", arch, &err), 0);
#define U32(k, v) (snprintf(key, sizeof key, "%s." k, arch), assert_int_equal(el_gguf_writer_add_u32(w, key, v, &err), 0))
#define F32(k, v) (snprintf(key, sizeof key, "%s." k, arch), assert_int_equal(el_gguf_writer_add_f32(w, key, v, &err), 0))
    U32("context_length", 64);
    U32("embedding_length", E);
    U32("block_count", NL);
    U32("feed_forward_length", FF);
    U32("attention.head_count", NH);
    U32("attention.head_count_kv", NKV);
    U32("attention.key_length", HD);
    U32("attention.value_length", HD);
    U32("attention.sliding_window", W);
    U32("attention.sliding_window_pattern", PATTERN);
    F32("attention.layer_norm_rms_epsilon", EPS);
    F32("rope.freq_base", BASE);
#undef U32
#undef F32
    typedef struct { const char *name; const float *data; uint64_t n_in, n_out; } tdesc;
    tdesc ts[3 + 13 * NL];
    size_t n = 0;
    ts[n++] = (tdesc){"token_embd.weight", t->emb, E, NV};
    ts[n++] = (tdesc){"output_norm.weight", t->out_norm, E, 1};
    static char names[13 * NL][64];
    const char *suffix[13] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "attn_q_norm",
                              "attn_k_norm", "post_attention_norm", "ffn_norm", "ffn_gate", "ffn_up",
                              "ffn_down", "post_ffw_norm"};
    for (int l = 0; l < NL; l++) {
        const float *d[13] = {t->attn_norm[l], t->wq[l], t->wk[l], t->wv[l], t->wo[l], t->qn[l], t->kn[l],
                              t->pan[l], t->fn[l], t->wg[l], t->wu[l], t->wd[l], t->pfn[l]};
        const uint64_t nin[13] = {E, E, E, E, NH * HD, HD, HD, E, E, E, E, FF, E};
        const uint64_t nout[13] = {1, NH * HD, NKV * HD, NKV * HD, E, 1, 1, 1, 1, FF, FF, E, 1};
        for (int i = 0; i < 13; i++) {
            char *nm = names[l * 13 + i];
            snprintf(nm, 64, "blk.%d.%s.weight", l, suffix[i]);
            ts[n++] = (tdesc){nm, d[i], nin[i], nout[i]};
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (skip_tensor && !strcmp(ts[i].name, skip_tensor)) continue;
        uint64_t n_out = ts[i].n_out;
        if (bad_shape_tensor && !strcmp(ts[i].name, bad_shape_tensor) && n_out > 1) n_out -= 1;
        add_t(w, ts[i].name, ts[i].data, ts[i].n_in, n_out);
    }
    assert_int_equal(el_gguf_writer_write_file(w, path, &err), 0);
    el_gguf_writer_free(w);
}

/* ---- naive reference, double precision ---- */

static void ref_rmsnorm(double *out, const double *x, const float *w, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i] * x[i];
    double sc = 1.0 / sqrt(s / n + EPS);
    for (int i = 0; i < n; i++) out[i] = x[i] * sc * w[i];
}

static void ref_matvec(double *y, const float *wt, const double *x, int n_in, int n_out) {
    for (int r = 0; r < n_out; r++) {
        double s = 0;
        for (int i = 0; i < n_in; i++) s += (double)wt[(size_t)r * n_in + i] * x[i];
        y[r] = s;
    }
}

static void ref_rope(double *v, int pos, double base) {
    for (int i = 0; i < HD / 2; i++) {
        double th = pos * pow(base, -2.0 * i / HD);
        double a = v[i], b = v[i + HD / 2];
        v[i] = a * cos(th) - b * sin(th);
        v[i + HD / 2] = a * sin(th) + b * cos(th);
    }
}

static bool ref_swa(int l) { return l % PATTERN < PATTERN - 1; }

/* Logits after the whole sequence toks[0..n). */
static void ref_forward(const tiny *t, const int32_t *toks, int n, double *logits) {
    double *x = calloc((size_t)n * E, sizeof *x), *h = malloc(E * sizeof *h), *o = malloc(E * sizeof *o);
    double *q = malloc((size_t)n * NH * HD * sizeof *q), *k = malloc((size_t)n * NKV * HD * sizeof *k);
    double *v = malloc((size_t)n * NKV * HD * sizeof *v), *att = malloc(NH * HD * sizeof *att);
    double *g = malloc(FF * sizeof *g), *u = malloc(FF * sizeof *u), *sc = malloc((size_t)n * sizeof *sc);
    for (int p = 0; p < n; p++)
        for (int i = 0; i < E; i++) x[p * E + i] = t->emb[(size_t)toks[p] * E + i] * sqrt((double)E);
    for (int l = 0; l < NL; l++) {
        const double base = ref_swa(l) ? BASE_SWA : BASE;
        for (int p = 0; p < n; p++) {
            ref_rmsnorm(h, x + p * E, t->attn_norm[l], E);
            ref_matvec(q + (size_t)p * NH * HD, t->wq[l], h, E, NH * HD);
            ref_matvec(k + (size_t)p * NKV * HD, t->wk[l], h, E, NKV * HD);
            ref_matvec(v + (size_t)p * NKV * HD, t->wv[l], h, E, NKV * HD);
            for (int hh = 0; hh < NH; hh++) {
                double *qh = q + ((size_t)p * NH + hh) * HD;
                ref_rmsnorm(qh, qh, t->qn[l], HD);
                ref_rope(qh, p, base);
                for (int d = 0; d < HD; d++) qh[d] /= sqrt((double)HD);
            }
            for (int hh = 0; hh < NKV; hh++) {
                double *kh = k + ((size_t)p * NKV + hh) * HD;
                ref_rmsnorm(kh, kh, t->kn[l], HD);
                ref_rope(kh, p, base);
            }
        }
        for (int p = 0; p < n; p++) {
            for (int hh = 0; hh < NH; hh++) {
                const int g_kv = hh / (NH / NKV);
                const double *qh = q + ((size_t)p * NH + hh) * HD;
                double m = -INFINITY, s = 0;
                for (int j = 0; j <= p; j++) {
                    sc[j] = -INFINITY;
                    if (ref_swa(l) && p - j >= W) continue;
                    double d = 0;
                    for (int e = 0; e < HD; e++) d += qh[e] * k[((size_t)j * NKV + g_kv) * HD + e];
                    sc[j] = d;
                    if (d > m) m = d;
                }
                for (int j = 0; j <= p; j++) s += sc[j] == -INFINITY ? 0 : exp(sc[j] - m);
                for (int e = 0; e < HD; e++) {
                    double a = 0;
                    for (int j = 0; j <= p; j++)
                        if (sc[j] != -INFINITY) a += exp(sc[j] - m) / s * v[((size_t)j * NKV + g_kv) * HD + e];
                    att[hh * HD + e] = a;
                }
            }
            ref_matvec(o, t->wo[l], att, NH * HD, E);
            ref_rmsnorm(o, o, t->pan[l], E);
            for (int i = 0; i < E; i++) x[p * E + i] += o[i];
            ref_rmsnorm(h, x + p * E, t->fn[l], E);
            ref_matvec(g, t->wg[l], h, E, FF);
            ref_matvec(u, t->wu[l], h, E, FF);
            for (int i = 0; i < FF; i++) {
                double z = g[i];
                g[i] = 0.5 * z * (1.0 + tanh(sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z))) * u[i];
            }
            ref_matvec(o, t->wd[l], g, FF, E);
            ref_rmsnorm(o, o, t->pfn[l], E);
            for (int i = 0; i < E; i++) x[p * E + i] += o[i];
        }
    }
    ref_rmsnorm(h, x + (size_t)(n - 1) * E, t->out_norm, E);
    ref_matvec(logits, t->emb, h, E, NV);
    free(x), free(h), free(o), free(q), free(k), free(v), free(att), free(g), free(u), free(sc);
}

/* ---- fixtures ---- */

typedef struct fixture {
    tiny t;
    char path[64];
    el_gguf *g;
    el_model *m;
    el_pool *pool;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    tiny_init(&f->t);
    snprintf(f->path, sizeof f->path, "/tmp/el_test_model_%d.gguf", (int)getpid());
    tiny_write(&f->t, f->path, "gemma3", NULL, NULL);
    el_err err = {0};
    f->g = el_gguf_open(f->path, &err);
    if (!f->g) fprintf(stderr, "open: %s\n", err.message);
    f->m = f->g ? el_model_load(f->g, &err) : NULL;
    if (!f->m) fprintf(stderr, "load: %s\n", err.message);
    f->pool = el_pool_create(2, &err);
    *state = f;
    return f->m && f->pool ? 0 : -1;
}

static int teardown(void **state) {
    fixture *f = *state;
    el_model_free(f->m);
    el_gguf_close(f->g);
    el_pool_destroy(f->pool);
    unlink(f->path);
    tiny_free(&f->t);
    free(f);
    return 0;
}

static el_ctx *make_ctx(fixture *f, uint32_t n_ctx, uint32_t n_ubatch, el_type kv) {
    el_err err = {0};
    el_ctx_params p = {.n_ctx = n_ctx, .n_ubatch = n_ubatch, .kv_type = kv, .pool = f->pool};
    el_ctx *c = el_ctx_create(f->m, &p, &err);
    if (!c) fprintf(stderr, "ctx: %s\n", err.message);
    assert_non_null(c);
    return c;
}

static double max_diff(const float *a, const double *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN counts as a failure */
    }
    return m;
}

static void make_tokens(int32_t *toks, int n, int salt) {
    for (int i = 0; i < n; i++) toks[i] = (int32_t)((i * 31 + salt * 7 + 5) % NV);
}

static void test_hparams(void **state) {
    fixture *f = *state;
    const el_hparams *hp = &f->m->hp;
    assert_int_equal(hp->n_vocab, NV);
    assert_int_equal(hp->n_layer, NL);
    assert_int_equal(hp->n_head_kv, NKV);
    assert_int_equal(hp->head_dim_k, HD);
    assert_int_equal(hp->n_swa, W);
    assert_true(f->m->layers[0].swa && f->m->layers[1].swa && !f->m->layers[2].swa);
    assert_float_equal(f->m->layers[0].rope_base, BASE_SWA, 1e-3);
    assert_float_equal(f->m->layers[2].rope_base, BASE, 1e-3);
    assert_float_equal(hp->attn_scale, 1.0 / sqrt(HD), 1e-6);
    assert_ptr_equal(f->m->output.data, f->m->tok_embd.data); /* tied */
}

/* Prefill of the whole sequence against the reference, at several lengths (past the window). */
static void test_prefill_matches_reference(void **state) {
    fixture *f = *state;
    const int lens[] = {1, 2, 7, 9, 20, 40};
    int32_t toks[40];
    make_tokens(toks, 40, 1);
    float logits[NV];
    double ref[NV];
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        el_ctx *c = make_ctx(f, 64, 0, EL_TYPE_F16);
        el_err err = {0};
        assert_int_equal(el_ctx_eval(c, toks, (size_t)lens[i], logits, &err), 0);
        ref_forward(&f->t, toks, lens[i], ref);
        double d = max_diff(logits, ref, NV);
        if (d > 1e-2) fprintf(stderr, "len %d: max |diff| %g\n", lens[i], d);
        assert_true(d < 1e-2);
        assert_int_equal(c->n_past, lens[i]);
        el_ctx_free(c);
    }
}

/* Token by token, and in ubatches of 3 (sliding-window rings of W + 2 cells wrap many times). */
static void test_incremental_and_ubatches(void **state) {
    fixture *f = *state;
    enum { N = 45 };
    int32_t toks[N];
    make_tokens(toks, N, 2);
    float logits[NV], lb[NV];
    double ref[NV];
    el_err err = {0};
    el_ctx *c1 = make_ctx(f, 64, 0, EL_TYPE_F16);
    el_ctx *c3 = make_ctx(f, 64, 3, EL_TYPE_F16);
    assert_int_equal(c3->kv.layers[0].n_cells, W + 3 - 1);
    assert_int_equal(c3->kv.layers[2].n_cells, 64);
    for (int p = 0; p < N; p++) {
        assert_int_equal(el_ctx_eval(c1, toks + p, 1, logits, &err), 0);
        if (p % 11 == 10 || p == N - 1) {
            ref_forward(&f->t, toks, p + 1, ref);
            assert_true(max_diff(logits, ref, NV) < 1e-2);
        }
    }
    assert_int_equal(el_ctx_eval(c3, toks, N, lb, &err), 0);
    ref_forward(&f->t, toks, N, ref);
    assert_true(max_diff(lb, ref, NV) < 1e-2);
    el_ctx_free(c1);
    el_ctx_free(c3);
}

static void test_q8_0_cache(void **state) {
    fixture *f = *state;
    enum { N = 30 };
    int32_t toks[N];
    make_tokens(toks, N, 3);
    float logits[NV];
    double ref[NV];
    el_err err = {0};
    el_ctx *c = make_ctx(f, 64, 4, EL_TYPE_Q8_0);
    assert_int_equal(el_ctx_eval(c, toks, N, logits, &err), 0);
    ref_forward(&f->t, toks, N, ref);
    double d = max_diff(logits, ref, NV);
    if (d > 8e-2) fprintf(stderr, "q8_0 cache: max |diff| %g\n", d);
    assert_true(d < 8e-2);
    el_ctx_free(c);
}

static void test_truncate(void **state) {
    fixture *f = *state;
    int32_t a[30], b[30];
    make_tokens(a, 30, 4);
    memcpy(b, a, sizeof a);
    for (int i = 20; i < 30; i++) b[i] = (b[i] + 13) % NV;
    float logits[NV];
    double ref[NV];
    el_err err = {0};
    el_ctx *c = make_ctx(f, 64, 4, EL_TYPE_F16);
    assert_int_equal(el_ctx_eval(c, a, 24, logits, &err), 0);
    /* Rolling back 4 positions fits in the rings (W + 4 - 1 cells): kept. */
    assert_int_equal(el_ctx_truncate(c, 20), 20);
    assert_int_equal(el_ctx_eval(c, b + 20, 10, logits, &err), 0);
    ref_forward(&f->t, b, 30, ref);
    assert_true(max_diff(logits, ref, NV) < 1e-2);
    /* Rolling back 20 positions: the rings no longer hold them, nothing is kept. */
    assert_int_equal(el_ctx_truncate(c, 10), 0);
    assert_int_equal(c->n_past, 0);
    assert_int_equal(el_ctx_eval(c, a, 30, logits, &err), 0);
    ref_forward(&f->t, a, 30, ref);
    assert_true(max_diff(logits, ref, NV) < 1e-2);
    el_ctx_free(c);
}

static void test_context_full_and_bad_tokens(void **state) {
    fixture *f = *state;
    int32_t toks[20];
    make_tokens(toks, 20, 5);
    float logits[NV];
    el_err err = {0};
    el_ctx *c = make_ctx(f, 16, 0, EL_TYPE_F16);
    assert_int_equal(el_ctx_eval(c, toks, 20, logits, &err), -1);
    assert_int_equal(err.code, EDGELLM_ERANGE);
    assert_int_equal(c->n_past, 0);
    assert_int_equal(el_ctx_eval(c, toks, 16, logits, &err), 0);
    assert_int_equal(el_ctx_eval(c, toks, 1, logits, &err), -1);
    assert_int_equal(err.code, EDGELLM_ERANGE);
    el_ctx_truncate(c, 0);
    int32_t bad[2] = {1, NV};
    assert_int_equal(el_ctx_eval(c, bad, 2, logits, &err), -1);
    assert_int_equal(err.code, EDGELLM_ERANGE);
    el_ctx_free(c);
    /* Larger than the training context (64). */
    el_ctx_params p = {.n_ctx = 65, .kv_type = EL_TYPE_F16, .pool = f->pool};
    assert_null(el_ctx_create(f->m, &p, &err));
    assert_int_equal(err.code, EDGELLM_ERANGE);
    p.n_ctx = 16;
    p.kv_type = EL_TYPE_Q4_0;
    assert_null(el_ctx_create(f->m, &p, &err));
    assert_int_equal(err.code, EDGELLM_EUNSUPPORTED);
}

static void expect_load_error(fixture *f, const char *arch, const char *skip, const char *bad, edgellm_status code,
                              const char *needle) {
    char path[80];
    snprintf(path, sizeof path, "/tmp/el_test_model_bad_%d.gguf", (int)getpid());
    tiny_write(&f->t, path, arch, skip, bad);
    el_err err = {0};
    el_gguf *g = el_gguf_open(path, &err);
    assert_non_null(g);
    el_model *m = el_model_load(g, &err);
    assert_null(m);
    assert_int_equal(err.code, code);
    if (!strstr(err.message, needle)) fprintf(stderr, "message: %s\n", err.message);
    assert_non_null(strstr(err.message, needle));
    el_gguf_close(g);
    unlink(path);
}

static void test_load_errors(void **state) {
    fixture *f = *state;
    expect_load_error(f, "mamba", NULL, NULL, EDGELLM_EUNSUPPORTED, "mamba");
    expect_load_error(f, "gemma3", "blk.1.attn_k_norm.weight", NULL, EDGELLM_ENOTFOUND, "blk.1.attn_k_norm.weight");
    expect_load_error(f, "gemma3", NULL, "blk.2.ffn_up.weight", EDGELLM_EFORMAT, "blk.2.ffn_up.weight");
}

/* Row kernels picked for this CPU agree with the portable ones. */
static void test_ops_match_scalar(void **state) {
    (void)state;
    el_ops fast, ref;
    el_ops_init(&fast);
    el_ops_init_scalar(&ref);
    enum { N = 203 };
    float a[N], b[N], y1[N], y2[N], u[N];
    uint16_t h1[N], h2[N];
    for (int i = 0; i < N; i++) a[i] = 12.0f * frand(), b[i] = frand(), u[i] = frand();
    assert_float_equal(fast.dot_f32(a, b, N), ref.dot_f32(a, b, N), 1e-3);
    memcpy(y1, b, sizeof b), memcpy(y2, b, sizeof b);
    fast.axpy_f32(y1, 0.37f, a, N), ref.axpy_f32(y2, 0.37f, a, N);
    for (int i = 0; i < N; i++) assert_float_equal(y1[i], y2[i], 1e-5);
    fast.f32_to_f16(a, h1, N), ref.f32_to_f16(a, h2, N);
    assert_memory_equal(h1, h2, sizeof h1);
    fast.f16_to_f32(h1, y1, N), ref.f16_to_f32(h1, y2, N);
    assert_memory_equal(y1, y2, sizeof y1);
    float *table = el_gelu_table_new();
    assert_non_null(table);
    memcpy(y1, a, sizeof a), memcpy(y2, a, sizeof a);
    fast.geglu(y1, u, N, table), ref.geglu(y2, u, N, table);
    for (int i = 0; i < N; i++) {
        assert_float_equal(y1[i], y2[i], 1e-6);
        const double z = a[i];
        const double g = z <= -10 ? 0 : 0.5 * z * (1.0 + tanh(sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z)));
        assert_true(fabs(y1[i] - g * u[i]) <= 4e-3 * fabs(g) + 1e-4); /* F16 rounding */
    }
    free(table);
    /* swiglu, against silu in double: every lane and the tail (N = 203), inputs far out
     * on both sides (e^-x over- and underflowing) */
    for (int i = 0; i < N; i++) a[i] = i % 17 == 0 ? (i % 2 ? 120.0f : -120.0f) * frand() : 12.0f * frand();
    memcpy(y1, a, sizeof a), memcpy(y2, a, sizeof a);
    fast.swiglu(y1, u, N), ref.swiglu(y2, u, N);
    for (int i = 0; i < N; i++) {
        const double z = a[i], want = z / (1.0 + exp(-z)) * u[i];
        if (!(fabs(y1[i] - want) <= 1e-6 * fabs(want) + 1e-30) || !(fabs(y2[i] - want) <= 1e-6 * fabs(want) + 1e-30))
            fail_msg("swiglu(%g) * %g: %.9g (this CPU), %.9g (portable), want %.9g", z, (double)u[i], (double)y1[i],
                     (double)y2[i], want);
    }
}

#if defined(__x86_64__)
/* The AVX2 attention scores: every score, in a 2 x 4 tile, a 1 x 4 one (odd query row)
 * or alone (keys past a multiple of 4), is one 8-lane fma chain over the row, its lanes
 * then added in hsum256's order (halves, lanes 0+2 and 1+3, those two; four at a time in
 * the tiles: hsum256_x4). The same arithmetic in scalar C (fmaf per lane) must give the
 * same bits, so a query's scores never depend on how many rows and keys came with it
 * (a decoded token alone and in a speculative verify pass). A wrong lane order in the
 * four-at-a-time sums, or an edge path with other arithmetic, fails here. Only where
 * this CPU's ops are the AVX2 ones. */
static float tile_score_emulated(const float *q, const float *k, int d) {
    float lane[8] = {0};
    int e = 0;
    for (; e + 8 <= d; e += 8)
        for (int l = 0; l < 8; l++) lane[l] = fmaf(q[e + l], k[e + l], lane[l]);
    float h[4];
    for (int l = 0; l < 4; l++) h[l] = lane[l] + lane[l + 4];
    const float a = h[0] + h[2], b = h[1] + h[3];
    float r = a + b;
    for (; e < d; e++) r += q[e] * k[e]; /* d not a multiple of 8: a scalar tail */
    return r;
}

#endif

static void test_scores_tile_bits(void **state) {
    (void)state;
#if defined(__x86_64__)
    el_ops fast, ref;
    el_ops_init(&fast);
    el_ops_init_scalar(&ref);
    if (fast.scores == ref.scores || el_cpu_features_get()->level < EL_CPU_AVX2) {
        skip();
        return;
    }
    static const int dims[] = {8, 12, 16, 20, 64, 128, 256};
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        const int d = dims[di];
        enum { NQ = 5, NK = 11 }; /* 2 x 4 tiles, an odd row, keys past a multiple of 4 */
        float q[NQ * 256], k[NK * 256], s[NQ * NK];
        for (int i = 0; i < NQ * d; i++) q[i] = frand() * 3.0f;
        for (int i = 0; i < NK * d; i++) k[i] = frand() * 3.0f;
        fast.scores(q, (size_t)d, NQ, k, NK, d, s, NK);
        for (int i = 0; i < NQ; i++)
            for (int j = 0; j < NK; j++) {
                const float want = tile_score_emulated(q + i * d, k + j * d, d);
                if (memcmp(&s[i * NK + j], &want, sizeof want) != 0)
                    fail_msg("d %d: score (%d, %d) %.9g, the tile's arithmetic gives %.9g", d, i, j,
                             (double)s[i * NK + j], (double)want);
            }
    }
#else
    skip();
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hparams),
        cmocka_unit_test(test_prefill_matches_reference),
        cmocka_unit_test(test_incremental_and_ubatches),
        cmocka_unit_test(test_q8_0_cache),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_context_full_and_bad_tokens),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_ops_match_scalar),
        cmocka_unit_test(test_scores_tile_bits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
