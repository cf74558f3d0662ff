/* The real engine behind the router: stop-sequence filtering, and (when the
 * default model from scripts/setup is present) a request routed to it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/engine.h"
#include "router/router.h"
#include "router/stopseq.h"

typedef struct sink {
    char text[512];
    int calls;
} sink;

static int to_sink(void *ud, const char *t, size_t n) {
    sink *s = ud;
    size_t used = strlen(s->text);
    snprintf(s->text + used, sizeof s->text - used, "%.*s", (int)n, t);
    s->calls++;
    return 0;
}

static void test_stop_sequence_across_tokens(void **state) {
    (void)state;
    const char *stops[] = {"\n\n", "END"};
    el_stopseq s;
    sink k = {"", 0};
    el_err err;
    el_stopseq_init(&s, stops, 2);
    assert_int_equal(el_stopseq_feed(&s, "Hello E", 7, to_sink, &k, &err), 0);
    assert_string_equal(k.text, "Hello "); /* "E" might start "END": held back */
    assert_int_equal(el_stopseq_feed(&s, "N", 1, to_sink, &k, &err), 0);
    assert_int_equal(el_stopseq_feed(&s, "D and more", 10, to_sink, &k, &err), 1);
    assert_string_equal(k.text, "Hello ");
    el_stopseq_free(&s);

    /* A false start is released once it cannot match any more. */
    memset(&k, 0, sizeof k);
    el_stopseq_init(&s, stops, 2);
    assert_int_equal(el_stopseq_feed(&s, "EN", 2, to_sink, &k, &err), 0);
    assert_int_equal(el_stopseq_feed(&s, "Dx", 2, to_sink, &k, &err), 1);
    assert_string_equal(k.text, "");
    el_stopseq_free(&s);
    memset(&k, 0, sizeof k);
    el_stopseq_init(&s, stops, 2);
    assert_int_equal(el_stopseq_feed(&s, "EN", 2, to_sink, &k, &err), 0);
    assert_int_equal(el_stopseq_feed(&s, "Ox\n", 3, to_sink, &k, &err), 0);
    assert_int_equal(el_stopseq_flush(&s, to_sink, &k, &err), 0);
    assert_string_equal(k.text, "ENOx\n");
    el_stopseq_free(&s);

    /* Without stop sequences text passes straight through. */
    memset(&k, 0, sizeof k);
    el_stopseq_init(&s, NULL, 0);
    assert_int_equal(el_stopseq_feed(&s, "abc", 3, to_sink, &k, &err), 0);
    assert_string_equal(k.text, "abc");
    el_stopseq_free(&s);
}

static int no_split_utf8(void *ud, const char *t, size_t n) {
    /* every emitted piece starts and ends on a character boundary */
    assert_true(n == 0 || ((unsigned char)t[0] & 0xC0) != 0x80);
    return to_sink(ud, t, n);
}

static void test_stop_sequence_keeps_utf8_whole(void **state) {
    (void)state;
    const char *stops[] = {"xyz"};
    el_stopseq s;
    sink k = {"", 0};
    el_err err;
    el_stopseq_init(&s, stops, 1);
    const char *text = "a\xe6\xbc\xa2\xe5\xad\x97 b\xc3\xa9 xyz tail";
    for (size_t i = 0; text[i]; i++) {
        int rc = el_stopseq_feed(&s, text + i, 1, no_split_utf8, &k, &err);
        if (rc == 1) break;
        assert_int_equal(rc, 0);
    }
    assert_string_equal(k.text, "a\xe6\xbc\xa2\xe5\xad\x97 b\xc3\xa9 ");
    el_stopseq_free(&s);
}

static int stop_at_second(void *ud, const char *t, size_t n) {
    sink *k = ud;
    to_sink(ud, t, n);
    return k->calls >= 2;
}

static void test_stop_sequence_caller_stop(void **state) {
    (void)state;
    el_stopseq s;
    sink k = {"", 0};
    el_err err;
    el_stopseq_init(&s, NULL, 0);
    assert_int_equal(el_stopseq_feed(&s, "a", 1, stop_at_second, &k, &err), 0);
    assert_int_equal(el_stopseq_feed(&s, "b", 1, stop_at_second, &k, &err), -1);
    assert_int_equal(err.code, EDGELLM_ECANCELLED);
    el_stopseq_free(&s);
}

/* ---- the real engine, if the default model is installed ---- */

static int default_model(char *path, size_t n) {
    const char *home = getenv("HOME");
    char file[512];
    snprintf(file, sizeof file, "%s/.cache/edgellm/default-model", home ? home : "");
    FILE *f = fopen(file, "r");
    if (!f) return 0;
    int ok = fgets(path, (int)n, f) != NULL;
    fclose(f);
    if (!ok) return 0;
    path[strcspn(path, "\r\n")] = '\0';
    FILE *m = fopen(path, "rb");
    if (!m) return 0;
    fclose(m);
    return 1;
}

static el_router *open_local(const char *model, el_policy *pol) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"strategy\": \"local\", \"tiers\": [{\"name\": \"small\", \"kind\": \"local\", \"model\": \"%s\","
             " \"threads\": 2, \"context\": 512, \"keep_alive_s\": -1}]}",
             model);
    el_err err;
    if (el_policy_parse(json, NULL, "(test)", pol, &err)) fail_msg("%s", err.message);
    el_router *r = el_router_open(pol, el_engine_backend(), &err);
    if (!r) fail_msg("%s", err.message);
    return r;
}

static int route_sink(void *ud, int event, const char *piece, size_t n) {
    if (event == EL_ROUTE_PIECE) to_sink(ud, piece, n);
    return 0;
}

static void test_engine_answers_through_router(void **state) {
    (void)state;
    char model[1024];
    if (!default_model(model, sizeof model)) {
        print_message("no default model (run scripts/setup); engine test skipped\n");
        skip();
    }
    el_policy pol;
    el_router *r = open_local(model, &pol);
    el_chat_msg m[] = {{"user", "What is the capital of France?"}};
    el_route_request q = {m, 1, 8, 0.0, NULL, 0, NULL, EL_QUALITY_ANY};
    el_route_result res;
    el_err err;
    sink k = {"", 0};
    assert_int_equal(el_router_ask(r, &q, route_sink, &k, &res, &err), 0);
    assert_true(res.local);
    assert_string_equal(res.tier, "small");
    assert_true(res.tokens_in > 5); /* the chat template wraps the question */
    assert_true(res.tokens_out >= 1 && res.tokens_out <= 8);
    assert_string_equal(k.text, res.text);
    assert_true(res.cost_usd == 0);
    print_message("engine answered (%d tokens in, %d out): %s\n", res.tokens_in, res.tokens_out, res.text);
    /* Greedy decoding: the same question gives the same answer; with a stop
     * sequence made of its second character onwards, only the first remains. */
    char first[512];
    snprintf(first, sizeof first, "%s", res.text);
    el_route_result_free(&res);
    if (strlen(first) >= 2) {
        const char *stops[] = {first + 1};
        q.stop = stops;
        q.n_stop = 1;
        assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, &err), 0);
        char expect[2] = {first[0], 0};
        assert_string_equal(res.text, expect);
        el_route_result_free(&res);
    }
    el_router_close(r);
    el_policy_free(&pol);
}

static void test_engine_load_failure_is_reported(void **state) {
    (void)state;
    el_policy pol;
    el_router *r = open_local("/nonexistent/edgellm-model.gguf", &pol);
    el_chat_msg m[] = {{"user", "hi"}};
    el_route_request q = {m, 1, 8, 0.0, NULL, 0, NULL, EL_QUALITY_ANY};
    el_route_result res;
    el_err err;
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, &err), -1);
    assert_non_null(strstr(res.fallback, "small: "));
    assert_non_null(strstr(res.fallback, "/nonexistent/edgellm-model.gguf"));
    el_route_result_free(&res);
    el_router_close(r);
    el_policy_free(&pol);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_sequence_across_tokens),
        cmocka_unit_test(test_stop_sequence_keeps_utf8_whole),
        cmocka_unit_test(test_stop_sequence_caller_stop),
        cmocka_unit_test(test_engine_answers_through_router),
        cmocka_unit_test(test_engine_load_failure_is_reported),
    };
    return cmocka_run_group_tests_name("router_engine", tests, NULL, NULL);
}
