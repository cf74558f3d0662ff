/* The real Gemma 3 270M forward pass against exact math.
 *
 * A reference written here, in double precision, from the facts of the model card
 * and llama.cpp (hard-coded below, not read through our loader): embeddings scaled
 * by sqrt(640); 18 layers of pre-norm attention (4 query heads sharing 1 KV head of
 * 256, per-head q/k RMSNorm, NEOX RoPE with base 10000 on sliding-window layers and
 * 1e6 on every 6th, global, layer; scale 1/16) and a GELU(tanh) gated FFN, each with
 * a post-norm; final norm; logits through the tied embedding. Weights are
 * dequantized from the GGUF by name.
 *
 * Our context runs with exact_matmul (weights dequantized, F32 products: no 8-bit
 * activations), so the only remaining differences are the F16 KV cache and the F16
 * GELU table: every one of the 262144 logits must agree within 0.03. The normal
 * quantized path must agree within a few % of the logit range (the 8-bit
 * activations' noise, see test_golden_gemma3.c).
 *
 * Skipped when the default model is not installed. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/threadpool.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "quant/quant.h"

#include "golden_util.h"

enum { E = 640, NL = 18, NH = 4, HD = 256, FF = 2048, NV = 262144 };

/* Tensor name -> dequantized floats (n_in * n_out). */
static float *weights(const el_gguf *g, const char *name, size_t n) {
    const el_gguf_tensor *t = el_gguf_find_tensor(g, name);
    assert_non_null(t);
    assert_int_equal(t->ne[0] * t->ne[1], n);
    float *w = malloc(n * sizeof *w);
    el_type_get_traits(t->type)->dequantize(t->data, w, (int64_t)n);
    return w;
}

static float *layer_w(const el_gguf *g, int l, const char *s, size_t n) {
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s.weight", l, s);
    return weights(g, name, n);
}

static void rmsnorm(double *o, const double *x, const float *w, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i] * x[i];
    const double k = 1.0 / sqrt(s / n + 1e-6);
    for (int i = 0; i < n; i++) o[i] = x[i] * k * w[i];
}

static void matvec(double *y, const float *w, const double *x, int n_in, int n_out) {
    for (int r = 0; r < n_out; r++) {
        double s = 0;
        const float *wr = w + (size_t)r * n_in;
        for (int i = 0; i < n_in; i++) s += wr[i] * x[i];
        y[r] = s;
    }
}

static void rope(double *v, int pos, double base) {
    for (int i = 0; i < HD / 2; i++) {
        const double th = pos * pow(base, -2.0 * i / HD), a = v[i], b = v[i + HD / 2];
        v[i] = a * cos(th) - b * sin(th);
        v[i + HD / 2] = a * sin(th) + b * cos(th);
    }
}

/* Row r of the embedding table (the table is 168M weights: one row at a time). */
static void emb_row(const el_gguf_tensor *t, int64_t r, float *out) {
    const size_t row = el_type_row_size((el_type)t->type, E);
    el_type_get_traits(t->type)->dequantize((const uint8_t *)t->data + (size_t)r * row, out, E);
}

/* Logits after toks[0..n), all positions recomputed from scratch. */
static void reference(const el_gguf *g, const int32_t *toks, int n, double *logits) {
    const el_gguf_tensor *emb = el_gguf_find_tensor(g, "token_embd.weight");
    assert_non_null(emb);
    assert_true(emb->ne[0] == E && emb->ne[1] == NV);
    float erow[E];
    double *x = malloc((size_t)n * E * sizeof *x), *h = malloc(E * sizeof *h), *o = malloc(E * sizeof *o);
    double *q = malloc((size_t)n * NH * HD * sizeof *q), *k = malloc((size_t)n * HD * sizeof *k);
    double *v = malloc((size_t)n * HD * sizeof *v), *att = malloc(NH * HD * sizeof *att);
    double *gg = malloc(FF * sizeof *gg), *uu = malloc(FF * sizeof *uu), *p = malloc((size_t)n * sizeof *p);
    for (int t = 0; t < n; t++) {
        emb_row(emb, toks[t], erow);
        for (int i = 0; i < E; i++) x[t * E + i] = erow[i] * sqrt((double)E);
    }
    for (int l = 0; l < NL; l++) {
        const bool global = (l + 1) % 6 == 0;
        const double base = global ? 1e6 : 1e4;
        float *an = layer_w(g, l, "attn_norm", E), *wq = layer_w(g, l, "attn_q", (size_t)E * NH * HD);
        float *wk = layer_w(g, l, "attn_k", (size_t)E * HD), *wv = layer_w(g, l, "attn_v", (size_t)E * HD);
        float *qn = layer_w(g, l, "attn_q_norm", HD), *kn = layer_w(g, l, "attn_k_norm", HD);
        float *wo = layer_w(g, l, "attn_output", (size_t)NH * HD * E);
        float *pan = layer_w(g, l, "post_attention_norm", E), *fn = layer_w(g, l, "ffn_norm", E);
        float *wg = layer_w(g, l, "ffn_gate", (size_t)E * FF), *wu = layer_w(g, l, "ffn_up", (size_t)E * FF);
        float *wd = layer_w(g, l, "ffn_down", (size_t)FF * E), *pfn = layer_w(g, l, "post_ffw_norm", E);
        for (int t = 0; t < n; t++) {
            rmsnorm(h, x + t * E, an, E);
            matvec(q + (size_t)t * NH * HD, wq, h, E, NH * HD);
            matvec(k + (size_t)t * HD, wk, h, E, HD);
            matvec(v + (size_t)t * HD, wv, h, E, HD);
            for (int hh = 0; hh < NH; hh++) {
                double *qh = q + ((size_t)t * NH + hh) * HD;
                rmsnorm(qh, qh, qn, HD);
                rope(qh, t, base);
                for (int d = 0; d < HD; d++) qh[d] /= 16.0;
            }
            rmsnorm(k + (size_t)t * HD, k + (size_t)t * HD, kn, HD);
            rope(k + (size_t)t * HD, t, base);
        }
        for (int t = 0; t < n; t++) {
            for (int hh = 0; hh < NH; hh++) {
                const double *qh = q + ((size_t)t * NH + hh) * HD;
                double m = -INFINITY, s = 0;
                for (int j = 0; j <= t; j++) { /* prompts here are far shorter than the 512 window */
                    double d = 0;
                    for (int e = 0; e < HD; e++) d += qh[e] * k[(size_t)j * HD + e];
                    p[j] = d;
                    if (d > m) m = d;
                }
                for (int j = 0; j <= t; j++) s += p[j] = exp(p[j] - m);
                for (int e = 0; e < HD; e++) {
                    double a = 0;
                    for (int j = 0; j <= t; j++) a += p[j] * v[(size_t)j * HD + e];
                    att[hh * HD + e] = a / s;
                }
            }
            matvec(o, wo, att, NH * HD, E);
            rmsnorm(o, o, pan, E);
            for (int i = 0; i < E; i++) x[t * E + i] += o[i];
            rmsnorm(h, x + t * E, fn, E);
            matvec(gg, wg, h, E, FF);
            matvec(uu, wu, h, E, FF);
            for (int i = 0; i < FF; i++) {
                const double z = gg[i];
                gg[i] = 0.5 * z * (1.0 + tanh(sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z))) * uu[i];
            }
            matvec(o, wd, gg, FF, E);
            rmsnorm(o, o, pfn, E);
            for (int i = 0; i < E; i++) x[t * E + i] += o[i];
        }
        float *all[] = {an, wq, wk, wv, qn, kn, wo, pan, fn, wg, wu, wd, pfn};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    }
    float *on = weights(g, "output_norm.weight", E);
    rmsnorm(h, x + (size_t)(n - 1) * E, on, E);
    for (int r = 0; r < NV; r++) { /* tied output head */
        emb_row(emb, r, erow);
        matvec(logits + r, erow, h, E, 1);
    }
    free(on), free(x), free(h), free(o), free(q), free(k), free(v), free(att), free(gg), free(uu), free(p);
}

static void test_exact(void **state) {
    (void)state;
    char path[4096];
    if (!default_model_path(path, sizeof path)) {
        fprintf(stderr, "exact: no default model (run scripts/setup): skipped\n");
        skip();
    }
    el_err err = {0};
    el_gguf *g = el_gguf_open(path, &err);
    assert_non_null(g);
    el_model *m = el_model_load(g, &err);
    assert_non_null(m);
    el_pool *pool = el_pool_create(2, &err);
    assert_non_null(pool);
    /* "<bos>The capital of France is" plus a chat marker and a multi-byte token. */
    const int32_t toks[] = {2, 818, 5279, 529, 7001, 563, 106, 236900};
    const int n = (int)(sizeof toks / sizeof toks[0]);
    double *ref = malloc(NV * sizeof *ref);
    reference(g, toks, n, ref);
    double lo = ref[0], hi = ref[0];
    for (int i = 1; i < NV; i++) lo = ref[i] < lo ? ref[i] : lo, hi = ref[i] > hi ? ref[i] : hi;

    for (int exact = 1; exact >= 0; exact--) {
        el_ctx_params p = {.n_ctx = 64, .n_ubatch = 5, .kv_type = EL_TYPE_F16, .pool = pool, .exact_matmul = exact};
        el_ctx *c = el_ctx_create(m, &p, &err);
        assert_non_null(c);
        float *lg = malloc(NV * sizeof *lg);
        assert_int_equal(el_ctx_eval(c, toks, (size_t)n, lg, &err), 0);
        double max_d = 0, sum_d = 0;
        for (int i = 0; i < NV; i++) {
            const double d = fabs(lg[i] - ref[i]);
            sum_d += d;
            if (!(d <= max_d)) max_d = d;
        }
        fprintf(stderr, "exact: %s products: max |dlogit| %.4f, mean %.5f (range %.1f)\n",
                exact ? "exact" : "quantized", max_d, sum_d / NV, hi - lo);
        if (exact)
            assert_true(max_d < 0.03);
        else
            assert_true(sum_d / NV < 0.015 * (hi - lo) && max_d < 0.08 * (hi - lo));
        free(lg);
        el_ctx_free(c);
    }
    free(ref);
    el_pool_destroy(pool);
    el_model_free(m);
    el_gguf_close(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_exact)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
