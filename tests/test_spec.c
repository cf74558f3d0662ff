/* Speculative decoding (docs/speculative.md):
 *  - prompt lookup drafting on hand-made sequences;
 *  - a token's logits and K/V are bit for bit the same whether it is evaluated
 *    alone, in a prompt batch, or in verify batches whose tail is rolled back,
 *    with 1 or 2 threads (attention splits keys across threads when decoding):
 *    on the default model (Gemma 3 270M, with a short sliding window so the ring
 *    and its rollback are exercised) and on a llama family fixture if present;
 *  - generation with --spec-lookup or a draft model gives exactly the tokens of
 *    plain decoding, greedy and sampled; a model drafting for itself has every
 *    draft accepted; a draft with another vocabulary is refused.
 * Model tests are skipped when the default model is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/threadpool.h"
#include "edgellm.h"
#include "golden_util.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "sample/spec.h"

/* The default model, if installed and readable. */
static bool default_model(char *path, size_t cap) { return default_model_path(path, cap) && access(path, R_OK) == 0; }

/* A llama family fixture (tests/test_families.c makes them), if one is there. */
static bool family_fixture(char *path, size_t cap) {
    const char *d = getenv("EDGELLM_FAMILY_FIXTURES");
    snprintf(path, cap, "%s/llama-q4_k.gguf", d && *d ? d : "families-fixtures");
    return access(path, R_OK) == 0;
}

static void test_lookup(void **state) {
    (void)state;
    int32_t out[8];
    /* "3 6 7" never occurred before; "6 7" did, followed by 8 9 1 2 3 6 7. */
    const int32_t h1[] = {1, 5, 6, 7, 8, 9, 1, 2, 3, 6, 7};
    int k = el_spec_lookup(h1, 11, 2, 3, out, 8);
    assert_int_equal(k, 7); /* copies up to the end of the history */
    assert_int_equal(out[0], 8);
    assert_int_equal(out[1], 9);
    assert_int_equal(out[6], 7);
    assert_int_equal(el_spec_lookup(h1, 11, 2, 3, out, 2), 2);
    /* The longest n-gram wins: "3 4" occurs twice, "2 3 4" only before 50. */
    const int32_t h2[] = {2, 3, 4, 50, 9, 3, 4, 60, 2, 3, 4};
    k = el_spec_lookup(h2, 11, 2, 3, out, 1);
    assert_int_equal(k, 1);
    assert_int_equal(out[0], 50);
    k = el_spec_lookup(h2, 11, 2, 2, out, 1); /* bigrams only: the latest "3 4" */
    assert_int_equal(out[0], 60);
    /* Nothing matches / too short. */
    const int32_t h3[] = {1, 2, 3, 4};
    assert_int_equal(el_spec_lookup(h3, 4, 1, 3, out, 8), 0);
    assert_int_equal(el_spec_lookup(h3, 1, 1, 3, out, 8), 0);
    assert_int_equal(el_spec_lookup(h1, 11, 2, 3, out, 0), 0);
}

enum { N_TOK = 140, N_ROWS = 4, N_GARBAGE = 3 };

static el_ctx *make_ctx(const el_model *m, el_pool *pool, uint32_t n_ubatch) {
    el_err err = {0};
    el_ctx_params p = {.n_ctx = 256, .n_ubatch = n_ubatch, .kv_type = EL_TYPE_F16, .pool = pool};
    el_ctx *c = el_ctx_create(m, &p, &err);
    if (!c) fail_msg("context: %s", err.message);
    return c;
}

/* K/V bytes of position p, layer il, equal in contexts a and b. */
static void assert_same_kv(const el_ctx *a, const el_ctx *b, int il, int32_t p) {
    const el_kv_layer *la = &a->kv.layers[il], *lb = &b->kv.layers[il];
    const uint32_t ca = (uint32_t)p % la->n_cells, cb = (uint32_t)p % lb->n_cells;
    for (uint32_t h = 0; h < a->kv.n_head_kv; h++)
        if (memcmp(el_kv_k(&a->kv, la, h, ca), el_kv_k(&b->kv, lb, h, cb), a->kv.slice_k) != 0 ||
            memcmp(el_kv_v(&a->kv, la, h, ca), el_kv_v(&b->kv, lb, h, cb), a->kv.slice_v) != 0)
            fail_msg("layer %d position %d head %u: K/V differ between batched and one-by-one evaluation", il, p, h);
}

/* Evaluate N_TOK tokens three ways and compare logits and K/V bit for bit:
 *  A: batches of 64 (2 threads), logits of the last N_ROWS tokens from one call;
 *  B: one token at a time (2 threads: keys split across threads);
 *  C: verify-like steps of 1..9 tokens plus N_GARBAGE rejected ones rolled back
 *     (1 thread, batches of 16). */
static void check_batch_invariance(const char *path, uint32_t n_swa) {
    el_err err = {0};
    el_gguf *g = el_gguf_open(path, &err);
    assert_non_null(g);
    el_model *m = el_model_load(g, &err);
    if (!m) fail_msg("%s: %s", path, err.message);
    if (n_swa) m->hp.n_swa = n_swa; /* a short window, so rings wrap within N_TOK */
    const uint32_t V = m->hp.n_vocab;
    el_pool *p2 = el_pool_create(2, &err), *p1 = el_pool_create(1, &err);
    assert_non_null(p2);
    assert_non_null(p1);
    el_ctx *A = make_ctx(m, p2, 64), *B = make_ctx(m, p2, 64), *C = make_ctx(m, p1, 16);

    int32_t tok[N_TOK + N_GARBAGE];
    for (int i = 0; i < N_TOK + N_GARBAGE; i++) tok[i] = (int32_t)((1000 + (int64_t)i * 7919) % (V - 1000) + 1000);
    tok[0] = 2;
    float *rows_a = malloc((size_t)N_ROWS * V * sizeof(float));
    float *rows_c = malloc((size_t)(9 + N_GARBAGE) * V * sizeof(float));
    float *one = malloc((size_t)V * sizeof(float));
    assert_non_null(rows_a);
    assert_non_null(rows_c);
    assert_non_null(one);

    if (el_ctx_eval_rows(A, tok, N_TOK, rows_a, N_ROWS, &err) < 0) fail_msg("A: %s", err.message);
    for (int i = 0; i < N_TOK; i++) {
        const bool want = i >= N_TOK - N_ROWS;
        if (el_ctx_eval(B, &tok[i], 1, want ? one : NULL, &err) < 0) fail_msg("B: %s", err.message);
        if (want && memcmp(one, rows_a + (size_t)(i - (N_TOK - N_ROWS)) * V, V * sizeof(float)) != 0)
            fail_msg("%s: logits of token %d differ between batched and one-by-one evaluation", path, i);
    }

    /* C: like speculative steps: s tokens that stay, then garbage that is rolled back. */
    int32_t batch[9 + N_GARBAGE];
    for (int p = 0, s = 1; p < N_TOK; p += s, s = s % 9 + 1) {
        if (p + s > N_TOK) s = N_TOK - p;
        memcpy(batch, tok + p, (size_t)s * sizeof *tok);
        for (int j = 0; j < N_GARBAGE; j++) batch[s + j] = tok[(p * 31 + j * 7) % N_TOK];
        const bool last = p + s == N_TOK;
        if (el_ctx_eval_rows(C, batch, (size_t)s + N_GARBAGE, last ? rows_c : NULL, (size_t)s + N_GARBAGE, &err) < 0)
            fail_msg("C: %s", err.message);
        assert_int_equal(el_ctx_truncate(C, p + s), p + s);
        if (last && memcmp(rows_c + (size_t)(s - 1) * V, rows_a + (size_t)(N_ROWS - 1) * V, V * sizeof(float)) != 0)
            fail_msg("%s: last logits differ after verify batches with rollback", path);
    }
    assert_int_equal(C->n_past, N_TOK);

    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        const bool swa = m->layers[il].swa && m->hp.n_swa;
        for (int32_t p = swa ? N_TOK - (int32_t)m->hp.n_swa : 0; p < N_TOK; p++) {
            if (p < 0) continue;
            assert_same_kv(A, B, (int)il, p);
            assert_same_kv(A, C, (int)il, p);
        }
    }
    /* Rows requested of a batch are checked. */
    assert_int_equal(el_ctx_eval_rows(B, tok, 2, one, 3, &err), -1);
    assert_int_equal(err.code, EDGELLM_EINVAL);

    free(rows_a);
    free(rows_c);
    free(one);
    el_ctx_free(A);
    el_ctx_free(B);
    el_ctx_free(C);
    el_pool_destroy(p1);
    el_pool_destroy(p2);
    el_model_free(m);
    el_gguf_close(g);
}

static void test_batch_invariance_gemma3(void **state) {
    (void)state;
    char path[1024];
    if (!default_model(path, sizeof path)) skip();
    check_batch_invariance(path, 40);
}

static void test_batch_invariance_family(void **state) {
    (void)state;
    char path[1024];
    if (!family_fixture(path, sizeof path)) {
        print_message("no llama family fixture (set EDGELLM_FAMILY_FIXTURES); skipped\n");
        skip();
    }
    check_batch_invariance(path, 0);
}

/* ---- generation ------------------------------------------------------------ */

typedef struct collected {
    int32_t ids[256];
    int n;
} collected;

static int collect(void *user, int32_t token, const char *text, size_t len) {
    (void)text;
    (void)len;
    collected *c = user;
    if (token >= 0 && c->n < 256) c->ids[c->n++] = token;
    return 0;
}

static const char *const PROMPTS[] = {
    "Summarize the following text in two sentences.\n\nThe city council met on Tuesday to discuss the new "
    "budget for the public library system. After a long debate, members agreed to increase funding for "
    "children's reading programs by fifteen percent, while reducing the budget for building renovations. "
    "The library director said the extra money would pay for more evening hours and new books.",
    "Rename the variable `total` to `sum` in this function and return the whole function.\n\n"
    "```python\ndef add_all(values):\n    total = 0\n    for v in values:\n        total += v\n    return total\n```",
};

static edgellm_stats gen(edgellm_context *c, const char *prompt, edgellm_spec_kind kind, edgellm_context *draft,
                         float temp, collected *out) {
    edgellm_generate_params gp = edgellm_generate_default_params();
    gp.max_tokens = 32;
    gp.sampling.temperature = temp;
    gp.sampling.seed = 7;
    gp.spec.kind = kind;
    gp.spec.draft = draft;
    gp.spec.n_draft = 6;
    edgellm_stats st;
    edgellm_error err = {0};
    memset(out, 0, sizeof *out);
    edgellm_context_reset(c);
    if (edgellm_generate(c, prompt, &gp, collect, out, &st, &err) < 0) fail_msg("generate: %s", err.message);
    return st;
}

static void assert_same_tokens(const collected *a, const collected *b, const char *what) {
    if (a->n != b->n || memcmp(a->ids, b->ids, (size_t)a->n * sizeof a->ids[0]) != 0)
        fail_msg("%s: speculative output differs from plain decoding (%d vs %d tokens)", what, a->n, b->n);
}

static void test_generate_identical(void **state) {
    (void)state;
    char path[1024];
    if (!default_model(path, sizeof path)) skip();
    edgellm_error err = {0};
    edgellm_model *m = edgellm_model_load(path, NULL, &err);
    assert_non_null(m);
    edgellm_context_params cp = edgellm_context_default_params();
    cp.n_ctx = 512;
    cp.n_threads = 2;
    edgellm_context *c = edgellm_context_create(m, &cp, &err);
    cp.n_threads = 1;
    edgellm_context *d = edgellm_context_create(m, &cp, &err); /* the model drafting for itself */
    assert_non_null(c);
    assert_non_null(d);
    uint32_t drafted = 0;
    for (size_t i = 0; i < sizeof PROMPTS / sizeof PROMPTS[0]; i++) {
        edgellm_chat_message msg = {"user", PROMPTS[i]};
        char *prompt = edgellm_chat_format(m, &msg, 1, 1, &err);
        assert_non_null(prompt);
        collected plain, spec;
        gen(c, prompt, EDGELLM_SPEC_NONE, NULL, 0.0f, &plain);
        assert_true(plain.n > 0);
        edgellm_stats st = gen(c, prompt, EDGELLM_SPEC_LOOKUP, NULL, 0.0f, &spec);
        assert_same_tokens(&plain, &spec, "greedy, prompt lookup");
        assert_true(st.n_accepted <= st.n_drafted);
        drafted += st.n_drafted;
        st = gen(c, prompt, EDGELLM_SPEC_DRAFT, d, 0.0f, &spec);
        assert_same_tokens(&plain, &spec, "greedy, draft model");
        /* Drafting one token at a time and verifying in a batch give the same logits. */
        assert_true(st.n_drafted > 0);
        assert_int_equal(st.n_accepted, st.n_drafted);
        /* Sampling: drafts are checked against the sampler's own draw, so the same seed
         * gives the same text. */
        gen(c, prompt, EDGELLM_SPEC_NONE, NULL, 0.8f, &plain);
        gen(c, prompt, EDGELLM_SPEC_LOOKUP, NULL, 0.8f, &spec);
        assert_same_tokens(&plain, &spec, "sampled, prompt lookup");
        free(prompt);
    }
    assert_true(drafted > 0); /* the prompts give prompt lookup something to copy */

    /* Bad parameters are refused. */
    edgellm_generate_params gp = edgellm_generate_default_params();
    gp.spec.kind = EDGELLM_SPEC_DRAFT;
    assert_int_equal(edgellm_generate(c, "hi", &gp, NULL, NULL, NULL, &err), -1);
    assert_int_equal(err.code, EDGELLM_EINVAL);
    gp.spec.kind = EDGELLM_SPEC_LOOKUP;
    gp.spec.n_draft = 0;
    assert_int_equal(edgellm_generate(c, "hi", &gp, NULL, NULL, NULL, &err), -1);

    char fpath[1024];
    if (family_fixture(fpath, sizeof fpath)) {
        edgellm_model *other = edgellm_model_load(fpath, NULL, &err);
        assert_non_null(other);
        assert_int_equal(edgellm_spec_check_draft(m, other, &err), -1);
        assert_int_equal(err.code, EDGELLM_EUNSUPPORTED);
        assert_non_null(strstr(err.message, "vocabulary"));
        edgellm_model_free(other);
    } else {
        print_message("no llama family fixture: the vocabulary mismatch check is skipped\n");
    }
    assert_int_equal(edgellm_spec_check_draft(m, m, &err), 0);
    edgellm_context_free(d);
    edgellm_context_free(c);
    edgellm_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_batch_invariance_gemma3),
        cmocka_unit_test(test_batch_invariance_family),
        cmocka_unit_test(test_generate_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
