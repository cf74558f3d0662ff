/* Gemma 3 270M against llama.cpp (tests/data/golden/gemma3.json, written by
 * scripts/make-golden).
 *
 * Why the tolerances are what they are: this model's residual stream carries large
 * outliers, so the 8-bit quantization of activations before every matrix product
 * (which llama.cpp does too) turns tiny floating-point differences into logit
 * differences of about 1-3% of the logit range. Measured on these prompts: the
 * exact computation (dequantized weights, float64, no activation quantization)
 * differs from llama.cpp by up to 2-6% of the range, and from us by as much; even
 * our own AVX2 and scalar kernels (same math, other summation order) differ by up
 * to 1.9%. So no implementation that is not bit-identical to llama.cpp meets a 1%
 * bound on the largest difference, and 32-token greedy runs part ways at near ties.
 * (The forward pass itself is checked to 1e-3 against an exact reference in
 * tests/test_model.c and tests/test_model_exact.c.)
 *
 * Tokenization (BOS, special tokens parsed) must be identical for every prompt.
 * Each prompt is then "close" when all of these hold, with R the logit range:
 *   - mean |logit difference| over the stored ids (top 64 + a fixed sample of 256)
 *     is under 3% of R, and the largest under 8%;
 *   - the reference's top token is our top token or within 3% of R of it in our
 *     logits, and at least 7 of the reference's top 10 are in our top 10;
 *   - the greedy continuations (32 tokens) are identical, or part ways only at a
 *     near tie: where they first differ, the reference's token is within 3% of R of
 *     ours in our logits.
 * At least 90% of prompts must be close, every prompt within the loose bounds (mean
 * 8%, largest 20%, ties 6%, top-10 overlap 5), and the median prompt's mean
 * difference under 1% of R (typically 0.5%: this is what a wrong detail, e.g. a
 * swapped RoPE base, breaks first: it gives several %). The farthest prompt is 50
 * digits of pi, where llama.cpp itself is 1.3 logits (mean) from the exact result.
 *
 * Needs the default model (skipped when absent, or when it is not the file the data
 * was made from). EDGELLM_GOLDEN_MAX=N checks only the first N prompts; sanitizer
 * builds default to 8 to stay quick. */
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "edgellm.h"
#include "golden_util.h"

static void test_golden(void **state) {
    (void)state;
    char path[4096];
    if (!default_model_path(path, sizeof path)) {
        fprintf(stderr, "golden: no default model (run scripts/setup): skipped\n");
        skip();
    }
    const char *data = getenv("EDGELLM_TEST_DATA");
    char jpath[4096];
    if (data)
        snprintf(jpath, sizeof jpath, "%s/golden/gemma3.json", data);
    else /* run by hand: next to this source file */
        snprintf(jpath, sizeof jpath, "%.*s/data/golden/gemma3.json", (int)(strrchr(__FILE__, '/') - __FILE__), __FILE__);
    json_error_t jerr;
    json_t *doc = json_load_file(jpath, 0, &jerr);
    if (!doc) fprintf(stderr, "golden: %s: %s\n", jpath, jerr.text);
    assert_non_null(doc);
    char sha[65];
    assert_true(sha256_hex(path, sha));
    const char *want = json_string_value(json_object_get(doc, "model_sha256"));
    if (!want || strcmp(want, sha)) {
        fprintf(stderr, "golden: %s is not the model the data was made from: skipped\n", path);
        json_decref(doc);
        skip();
    }

    edgellm_error err = {0};
    edgellm_model *m = edgellm_model_load(path, NULL, &err);
    if (!m) fprintf(stderr, "load: %s\n", err.message);
    assert_non_null(m);
    edgellm_context_params cp = edgellm_context_default_params();
    cp.n_ctx = 1024;
    edgellm_context *ctx = edgellm_context_create(m, &cp, &err);
    assert_non_null(ctx);
    edgellm_model_info info;
    edgellm_model_get_info(m, &info);
    const int n_vocab = (int)info.n_vocab;
    assert_int_equal(n_vocab, json_integer_value(json_object_get(doc, "n_vocab")));

    json_t *cases = json_object_get(doc, "cases");
    size_t n_cases = json_array_size(cases);
    assert_true(n_cases >= 30);
    const char *max_env = getenv("EDGELLM_GOLDEN_MAX");
    size_t limit = max_env ? (size_t)atoi(max_env) : UNDER_SANITIZER ? 8 : n_cases;
    if (limit < n_cases) n_cases = limit;

    int greedy_same = 0, failures = 0, loose = 0;
    double mean_pcts[1024] = {0};
    if (n_cases > 1024) n_cases = 1024;
    for (size_t ci = 0; ci < n_cases; ci++) {
        json_t *c = json_array_get(cases, ci);
        const char *prompt = json_string_value(json_object_get(c, "prompt"));
        json_t *jt = json_object_get(c, "tokens");
        const size_t n_ref = json_array_size(jt);

        /* Tokenization. */
        int32_t toks[1024];
        int64_t n = edgellm_tokenize(m, prompt, strlen(prompt), 1, 1, toks, 1024, &err);
        bool tok_ok = n == (int64_t)n_ref;
        for (size_t i = 0; tok_ok && i < n_ref; i++) tok_ok = toks[i] == json_integer_value(json_array_get(jt, i));
        if (!tok_ok) {
            fprintf(stderr, "case %zu: tokenization differs (%lld vs %zu tokens)\n", ci, (long long)n, n_ref);
            failures++;
        }
        /* Evaluate the reference tokens either way, so the model is checked on its own. */
        for (size_t i = 0; i < n_ref; i++) toks[i] = (int32_t)json_integer_value(json_array_get(jt, i));
        edgellm_context_reset(ctx);
        assert_int_equal(edgellm_eval(ctx, toks, n_ref, &err), 0);
        const float *lg = edgellm_context_logits(ctx);
        assert_non_null(lg);

        const double range = json_real_value(json_object_get(c, "logit_max")) -
                             json_real_value(json_object_get(c, "logit_min"));
        double max_d = 0, sum_d = 0;
        int n_d = 0, worst = -1;
        const char *keys[2][2] = {{"top_ids", "top_logits"}, {"sample_ids", "sample_logits"}};
        for (int k = 0; k < 2; k++) {
            json_t *ids = json_object_get(c, keys[k][0]), *vals = json_object_get(c, keys[k][1]);
            for (size_t i = 0; i < json_array_size(ids); i++) {
                int id = (int)json_integer_value(json_array_get(ids, i));
                double d = fabs(lg[id] - json_real_value(json_array_get(vals, i)));
                sum_d += d;
                n_d++;
                if (!(d <= max_d)) max_d = d, worst = id;
            }
        }
        const double mean_pct = 100.0 * sum_d / n_d / range, max_pct = 100.0 * max_d / range;
        bool close = true;
        mean_pcts[ci] = mean_pct;
        if (!(mean_pct < 3.0 && max_pct < 8.0)) {
            fprintf(stderr, "case %zu: logits differ by %.2f%% of the range on average, %.2f%% at most (id %d)\n", ci,
                    mean_pct, max_pct, worst);
            close = false;
        }
        if (!(mean_pct < 8.0 && max_pct < 20.0)) failures++;

        int mine[10], ref[10];
        top_k(lg, n_vocab, 10, mine);
        json_t *rtop = json_object_get(c, "top_ids");
        for (int i = 0; i < 10; i++) ref[i] = (int)json_integer_value(json_array_get(rtop, i));
        const double tie = 0.03 * range, loose_tie = 0.06 * range;
        if (!(lg[ref[0]] >= lg[mine[0]] - tie)) {
            fprintf(stderr, "case %zu: reference top token %d has our logit %.3f, our top %d has %.3f\n", ci, ref[0],
                    lg[ref[0]], mine[0], lg[mine[0]]);
            close = false;
            if (!(lg[ref[0]] >= lg[mine[0]] - loose_tie)) failures++;
        }
        int overlap = 0;
        for (int i = 0; i < 10; i++) overlap += in_list(ref[i], mine, 10);
        if (overlap < 7) {
            fprintf(stderr, "case %zu: only %d of the reference's top 10 are in ours\n", ci, overlap);
            close = false;
            if (overlap < 5) failures++;
        }

        /* Greedy continuation. */
        json_t *rg = json_object_get(c, "greedy");
        size_t ng = json_array_size(rg), at = ng;
        int32_t t = argmax(lg, n_vocab);
        for (size_t i = 0; i < ng; i++) {
            const int32_t r = (int32_t)json_integer_value(json_array_get(rg, i));
            const float *cur = edgellm_context_logits(ctx);
            if (t != r) {
                at = i;
                const double gap = cur[t] - cur[r];
                fprintf(stderr, "case %zu: greedy parts at step %zu of %zu (%d vs reference %d, %.2f%% of the range apart)\n",
                        ci, at, ng, (int)t, (int)r, 100.0 * gap / range);
                if (!(gap <= tie)) close = false;
                if (!(gap <= loose_tie)) failures++;
                break;
            }
            if (i + 1 == ng) break;
            assert_int_equal(edgellm_eval(ctx, &t, 1, &err), 0);
            t = argmax(edgellm_context_logits(ctx), n_vocab);
        }
        if (at == ng) greedy_same++;
        if (!close) loose++;
    }
    fprintf(stderr, "golden: %zu prompts: %d close, %d outside the loose bounds, greedy identical on %d\n",
            n_cases, (int)n_cases - loose, failures, greedy_same);
    /* Typical agreement: the median prompt's mean difference (about 0.5% measured). */
    qsort(mean_pcts, n_cases, sizeof mean_pcts[0], cmp_double);
    const double median = mean_pcts[n_cases / 2];
    fprintf(stderr, "golden: median of the mean |logit difference|: %.2f%% of the range\n", median);
    assert_true(median < 1.0);
    assert_int_equal(failures, 0);
    assert_true(loose * 10 <= (int)n_cases);
    edgellm_context_free(ctx);
    edgellm_model_free(m);
    json_decref(doc);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_golden)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
