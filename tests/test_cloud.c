/* Cloud client: SSE parsing, backoff, breaker, cache, and every error path
 * against the fake OpenAI-compatible upstream (tests/fake_openai.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include "cloud/backoff.h"
#include "cloud/breaker.h"
#include "cloud/cache.h"
#include "cloud/clock.h"
#include "cloud/cloud.h"
#include "cloud/sse.h"
#include "test_cloud_fake.h"

/* ---- SSE ---- */

typedef struct sse_log {
    char text[4096];
    int n;
} sse_log;

static int log_event(void *ud, const char *event, const char *data, size_t len) {
    sse_log *l = ud;
    size_t used = strlen(l->text);
    snprintf(l->text + used, sizeof l->text - used, "[%s|%.*s]", event, (int)len, data);
    l->n++;
    return 0;
}

static const char SSE_SAMPLE[] = ": comment line\r\n"
                                 "data: one\r\n\r\n"
                                 "event: error\n"
                                 "data: line1\n"
                                 "data:line2\n"
                                 "id: 7\n"
                                 "retry: 100\n\n"
                                 "data: \xe6\xbc\xa2\xe5\xad\x97\r\r"
                                 ":keep-alive\n\n"
                                 "data: [DONE]\n\n";
static const char SSE_EXPECTED[] = "[|one][error|line1\nline2][|\xe6\xbc\xa2\xe5\xad\x97][|[DONE]]";

static void test_sse_whole_and_split(void **state) {
    (void)state;
    size_t n = sizeof SSE_SAMPLE - 1;
    /* Every split point into two reads, and one byte per read, give the same events. */
    for (size_t cut = 0; cut <= n; cut++) {
        sse_log l = {"", 0};
        el_sse p;
        el_err err;
        el_sse_init(&p, 0, log_event, &l);
        assert_int_equal(el_sse_feed(&p, SSE_SAMPLE, cut, &err), 0);
        assert_int_equal(el_sse_feed(&p, SSE_SAMPLE + cut, n - cut, &err), 0);
        assert_string_equal(l.text, SSE_EXPECTED);
        assert_false(el_sse_pending(&p));
        el_sse_free(&p);
    }
    sse_log l = {"", 0};
    el_sse p;
    el_err err;
    el_sse_init(&p, 0, log_event, &l);
    for (size_t i = 0; i < n; i++) assert_int_equal(el_sse_feed(&p, SSE_SAMPLE + i, 1, &err), 0);
    assert_string_equal(l.text, SSE_EXPECTED);
    assert_int_equal(l.n, 4);
    /* A cut stream leaves a pending event. */
    assert_int_equal(el_sse_feed(&p, "data: half", 10, &err), 0);
    assert_true(el_sse_pending(&p));
    el_sse_free(&p);
}

static void test_sse_refuses_huge_event(void **state) {
    (void)state;
    sse_log l = {"", 0};
    el_sse p;
    el_err err = {0};
    el_sse_init(&p, 64, log_event, &l);
    char big[200];
    memset(big, 'x', sizeof big);
    memcpy(big, "data: ", 6);
    assert_int_equal(el_sse_feed(&p, big, sizeof big, &err), -1);
    assert_int_equal(err.code, EDGELLM_EPROTOCOL);
    assert_non_null(strstr(err.message, "larger than 64"));
    el_sse_free(&p);
}

/* ---- backoff and breaker ---- */

static void test_backoff_full_jitter_is_bounded_and_seeded(void **state) {
    (void)state;
    el_jitter_rng a, b;
    el_jitter_seed(&a, 42);
    el_jitter_seed(&b, 42);
    double sum = 0;
    for (int attempt = 0; attempt < 12; attempt++) {
        for (int k = 0; k < 50; k++) {
            double d = el_backoff_full_jitter(&a, attempt, 100, 5000);
            assert_true(d >= 0);
            double ceiling = 100.0 * (1 << attempt);
            assert_true(d < (ceiling < 5000 ? ceiling : 5000));
            assert_true(d == el_backoff_full_jitter(&b, attempt, 100, 5000));
            sum += d;
        }
    }
    assert_true(sum > 0); /* not all zero */
    el_jitter_seed(&b, 43);
    el_jitter_seed(&a, 42);
    assert_true(el_jitter_next(&a) != el_jitter_next(&b));
}

static void test_breaker_states(void **state) {
    (void)state;
    el_breaker b;
    el_breaker_init(&b, 3, 1000);
    double wait = 0;
    for (int i = 0; i < 2; i++) {
        assert_true(el_breaker_allow(&b, 0, &wait));
        el_breaker_record(&b, 0, 0);
    }
    assert_int_equal(el_breaker_get_state(&b, 0), EL_BREAKER_CLOSED);
    assert_true(el_breaker_allow(&b, 0, &wait));
    el_breaker_record(&b, 0, 10);
    assert_int_equal(el_breaker_get_state(&b, 10), EL_BREAKER_OPEN);
    assert_false(el_breaker_allow(&b, 500, &wait));
    assert_true(wait == 510);
    /* Half-open after the cooldown: one probe only. */
    assert_true(el_breaker_allow(&b, 1010, &wait));
    assert_false(el_breaker_allow(&b, 1011, &wait));
    el_breaker_record(&b, 0, 1020); /* the probe failed: open again */
    assert_false(el_breaker_allow(&b, 1500, &wait));
    assert_true(el_breaker_allow(&b, 2020, &wait));
    el_breaker_record(&b, 1, 2030); /* the probe worked: closed */
    assert_int_equal(el_breaker_get_state(&b, 2030), EL_BREAKER_CLOSED);
    assert_true(el_breaker_allow(&b, 2031, &wait));
    assert_true(el_breaker_allow(&b, 2031, &wait));
    el_breaker_destroy(&b);
}

/* ---- cache ---- */

static char TMPDIR_[256];

static void temp_path(char *out, size_t n, const char *name) {
    if (!TMPDIR_[0]) {
        snprintf(TMPDIR_, sizeof TMPDIR_, "/tmp/edgellm-test-cloud-XXXXXX");
        assert_non_null(mkdtemp(TMPDIR_));
    }
    snprintf(out, n, "%s/%s", TMPDIR_, name);
}

static void test_sha256_known_vector(void **state) {
    (void)state;
    char hex[65];
    assert_int_equal(el_sha256_hex("abc", 3, hex, NULL), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_cache_ttl_and_lru(void **state) {
    (void)state;
    char path[300];
    temp_path(path, sizeof path, "cache-unit.sqlite");
    el_err err;
    /* Three 100-byte texts fit (with per-row overhead) in 700 bytes; a fourth evicts the LRU. */
    el_cache *c = el_cache_open(path, 60, 700, &err);
    assert_non_null(c);
    char text[101];
    memset(text, 'a', 100);
    text[100] = '\0';
    assert_int_equal(el_cache_put(c, "k1", text, 1, 2, 1000, &err), 0);
    assert_int_equal(el_cache_put(c, "k2", text, 1, 2, 1001, &err), 0);
    assert_int_equal(el_cache_put(c, "k3", text, 1, 2, 1002, &err), 0);
    char *got = NULL;
    int tin = 0, tout = 0;
    assert_int_equal(el_cache_get(c, "k1", 1003, &got, &tin, &tout, &err), 1); /* k1 now most recent */
    assert_string_equal(got, text);
    assert_int_equal(tin, 1);
    assert_int_equal(tout, 2);
    free(got);
    assert_int_equal(el_cache_put(c, "k4", text, 1, 2, 1004, &err), 0);
    assert_int_equal(el_cache_get(c, "k2", 1005, &got, NULL, NULL, &err), 0); /* evicted */
    assert_int_equal(el_cache_get(c, "k1", 1005, &got, NULL, NULL, &err), 1);
    free(got);
    int64_t entries = 0, bytes = 0;
    assert_int_equal(el_cache_stats(c, &entries, &bytes, &err), 0);
    assert_int_equal(entries, 3);
    assert_true(bytes <= 700);
    /* Past the TTL an entry is a miss and is removed. */
    assert_int_equal(el_cache_get(c, "k3", 1002 + 61, &got, NULL, NULL, &err), 0);
    assert_int_equal(el_cache_stats(c, &entries, NULL, &err), 0);
    assert_int_equal(entries, 2);
    el_cache_close(c);
}

/* ---- the client against the fake upstream ---- */

static fake_upstream FAKE;

static int setup_fake(void **state) {
    (void)state;
    setenv("EDGELLM_TEST_CLOUD_KEY", "sk-test-default", 1);
    return fake_start(&FAKE);
}

static int teardown_fake(void **state) {
    (void)state;
    fake_stop(&FAKE);
    return 0;
}

static el_cloud *open_client(void (*tweak)(el_cloud_config *)) {
    el_cloud_config cfg;
    el_cloud_config_defaults(&cfg);
    snprintf(cfg.name, sizeof cfg.name, "fakeai");
    snprintf(cfg.base_url, sizeof cfg.base_url, "%s/", FAKE.base_url); /* trailing slash is trimmed */
    snprintf(cfg.model, sizeof cfg.model, "fake-model");
    snprintf(cfg.api_key_env, sizeof cfg.api_key_env, "EDGELLM_TEST_CLOUD_KEY");
    cfg.backoff_base_ms = 5;
    cfg.backoff_max_ms = 20;
    cfg.max_retries = 2;
    cfg.seed = 1234;
    cfg.connect_timeout_ms = 2000;
    cfg.first_byte_timeout_ms = 5000;
    cfg.total_timeout_ms = 10000;
    cfg.breaker_threshold = 0;
    if (tweak) tweak(&cfg);
    el_err err;
    el_cloud *c = el_cloud_open(&cfg, &err);
    if (!c) fail_msg("open: %s", err.message);
    return c;
}

typedef struct pieces {
    char text[2048];
    int n;
} pieces;

static int collect_piece(void *ud, const char *p, size_t n) {
    pieces *ps = ud;
    size_t used = strlen(ps->text);
    snprintf(ps->text + used, sizeof ps->text - used, "%.*s", (int)n, p);
    ps->n++;
    return 0;
}

static el_chat_request user_request(const el_chat_msg *m, size_t n, int stream) {
    el_chat_request r = {0};
    r.messages = m;
    r.n_messages = n;
    r.max_tokens = 64;
    r.temperature = 0.5;
    r.stream = stream;
    return r;
}

static void test_plain_and_streamed_answers(void **state) {
    (void)state;
    fake_script(&FAKE, "[]", "ok");
    el_cloud *c = open_client(NULL);
    el_chat_msg m[] = {{"system", "be brief"}, {"user", "hello"}};
    for (int stream = 0; stream <= 1; stream++) {
        el_chat_request r = user_request(m, 2, stream);
        pieces ps = {"", 0};
        el_chat_result res;
        el_err err;
        assert_int_equal(el_cloud_chat(c, &r, collect_piece, &ps, &res, &err), 0);
        assert_string_equal(res.text, "You said: hello");
        assert_string_equal(ps.text, "You said: hello");
        assert_int_equal(ps.n, stream ? 4 : 1); /* the fake streams 4 characters per chunk */
        assert_int_equal(res.tokens_out, 4);
        assert_true(res.tokens_in > 0);
        assert_string_equal(res.finish_reason, "stop");
        assert_int_equal(res.attempts, 1);
        assert_int_equal(res.http_status, 200);
        el_chat_result_free(&res);
    }
    json_t *log = fake_control(&FAKE, "/_log", NULL);
    json_t *second = json_array_get(json_object_get(log, "requests"), 1);
    assert_true(json_is_true(json_object_get(second, "stream")));
    assert_int_equal(json_integer_value(json_object_get(second, "max_tokens")), 64);
    json_decref(log);
    el_cloud_close(c);
}

static void test_fragmented_stream(void **state) {
    (void)state;
    fake_script(&FAKE, "[\"fragment\"]", "ok");
    el_cloud *c = open_client(NULL);
    el_chat_msg m[] = {{"user", "fragments \xe6\xbc\xa2\xe5\xad\x97 split mid-character"}};
    el_chat_request r = user_request(m, 1, 1);
    el_chat_result res;
    el_err err;
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), 0);
    assert_string_equal(res.text, "You said: fragments \xe6\xbc\xa2\xe5\xad\x97 split mid-character");
    el_chat_result_free(&res);
    el_cloud_close(c);
}

static void test_prompt_arrives_exactly(void **state) {
    (void)state;
    fake_script(&FAKE, "[]", "ok");
    el_cloud *c = open_client(NULL);
    const char *tricky = "quote \" backslash \\ slash / newline \n cr \r tab \t bell \x07 esc \x1b "
                         "del \x7f \xc3\xa9 \xf0\x9f\x98\x80 {\"json\": [1]} \\u0000";
    el_chat_msg m[] = {{"user", tricky}};
    el_chat_request r = user_request(m, 1, 0);
    const char *stops[] = {"\n\n", "\"end\""};
    r.stop = stops;
    r.n_stop = 2;
    el_chat_result res;
    el_err err;
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), 0);
    el_chat_result_free(&res);
    json_t *log = fake_control(&FAKE, "/_log", NULL);
    json_t *body = json_array_get(json_object_get(log, "requests"), 0);
    json_t *msg = json_array_get(json_object_get(body, "messages"), 0);
    assert_string_equal(json_string_value(json_object_get(msg, "content")), tricky);
    assert_string_equal(json_string_value(json_array_get(json_object_get(body, "stop"), 1)), "\"end\"");
    json_decref(log);

    /* Invalid UTF-8 is refused before anything is sent. */
    el_chat_msg bad[] = {{"user", "ok"}, {"user", "bad \xc3\x28 byte"}};
    r = user_request(bad, 2, 0);
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), -1);
    assert_int_equal(err.code, EDGELLM_EINVAL);
    assert_non_null(strstr(err.message, "message 1"));
    assert_non_null(strstr(err.message, "UTF-8"));
    el_chat_result_free(&res);
    assert_int_equal(fake_count(&FAKE), 1);
    el_cloud_close(c);
}

static void test_429_retry_after_honoured(void **state) {
    (void)state;
    fake_script(&FAKE, "[\"429:1\"]", "ok");
    el_cloud *c = open_client(NULL);
    el_chat_msg m[] = {{"user", "again"}};
    el_chat_request r = user_request(m, 1, 1);
    el_chat_result res;
    el_err err;
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), 0);
    assert_string_equal(res.text, "You said: again");
    assert_int_equal(res.attempts, 2);
    assert_true(res.backoff_ms >= 1000); /* the 1 s Retry-After, not the 5 ms backoff */
    el_chat_result_free(&res);
    assert_int_equal(fake_count(&FAKE), 2);

    /* A Retry-After longer than the client waits: give up with a rate-limit error. */
    fake_script(&FAKE, "[\"429:120\"]", "ok");
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), -1);
    assert_int_equal(err.code, EDGELLM_ERATELIMIT);
    assert_non_null(strstr(err.message, "fakeai"));
    assert_non_null(strstr(err.message, "HTTP 429"));
    assert_non_null(strstr(err.message, "Rate limit reached"));
    assert_non_null(strstr(err.message, "Retry-After 120"));
    el_chat_result_free(&res);
    assert_int_equal(fake_count(&FAKE), 1);
    el_cloud_close(c);
}

static void test_5xx_retried_then_typed(void **state) {
    (void)state;
    fake_script(&FAKE, "[\"500\", \"503\"]", "ok");
    el_cloud *c = open_client(NULL);
    el_chat_msg m[] = {{"user", "x"}};
    el_chat_request r = user_request(m, 1, 0);
    el_chat_result res;
    el_err err;
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), 0); /* third attempt succeeds */
    assert_int_equal(res.attempts, 3);
    el_chat_result_free(&res);

    fake_script(&FAKE, "[]", "500");
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), -1);
    assert_int_equal(err.code, EDGELLM_ESERVER);
    assert_int_equal(res.attempts, 3);
    assert_non_null(strstr(err.message, "provider 'fakeai'"));
    assert_non_null(strstr(err.message, "HTTP 500"));
    assert_non_null(strstr(err.message, "The server had an error"));
    assert_non_null(strstr(err.message, "gave up after 3 attempts"));
    el_chat_result_free(&res);
    assert_int_equal(fake_count(&FAKE), 3);
    el_cloud_close(c);
}

static void test_401_not_retried_and_key_redacted(void **state) {
    (void)state;
    const char *key = "sk-test-VERY-SECRET-123456";
    setenv("EDGELLM_TEST_CLOUD_KEY", key, 1);
    fake_script(&FAKE, "[]", "401");
    el_cloud *c = open_client(NULL);
    el_chat_msg m[] = {{"user", "x"}};
    el_chat_request r = user_request(m, 1, 0);
    el_chat_result res;
    el_err err;
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), -1);
    assert_int_equal(err.code, EDGELLM_EAUTH);
    assert_int_equal(res.attempts, 1);
    assert_non_null(strstr(err.message, "HTTP 401"));
    assert_non_null(strstr(err.message, "Incorrect API key provided"));
    assert_null(strstr(err.message, key));
    assert_null(strstr(err.message, "VERY-SECRET"));
    el_chat_result_free(&res);
    json_t *log = fake_control(&FAKE, "/_log", NULL);
    char expect[128];
    snprintf(expect, sizeof expect, "Bearer %s", key);
    assert_string_equal(json_string_value(json_array_get(json_object_get(log, "auth"), 0)), expect);
    assert_int_equal(json_integer_value(json_object_get(log, "count")), 1);
    json_decref(log);
    el_cloud_close(c);
    setenv("EDGELLM_TEST_CLOUD_KEY", "sk-test-default", 1);
}

static void set_key_file(el_cloud_config *g) {
    char path[300];
    temp_path(path, sizeof path, "key.txt");
    FILE *f = fopen(path, "w");
    fputs("sk-from-file  \n", f);
    fclose(f);
    snprintf(g->api_key_env, sizeof g->api_key_env, "EDGELLM_TEST_UNSET_KEY");
    snprintf(g->api_key_file, sizeof g->api_key_file, "%s", path);
}

static void set_missing_key(el_cloud_config *g) {
    snprintf(g->api_key_env, sizeof g->api_key_env, "EDGELLM_TEST_UNSET_KEY");
}

static void test_key_from_file_or_missing(void **state) {
    (void)state;
    unsetenv("EDGELLM_TEST_UNSET_KEY");
    fake_script(&FAKE, "[]", "ok");
    el_cloud *c = open_client(set_key_file);
    el_chat_msg m[] = {{"user", "x"}};
    el_chat_request r = user_request(m, 1, 0);
    el_chat_result res;
    el_err err;
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), 0);
    el_chat_result_free(&res);
    json_t *log = fake_control(&FAKE, "/_log", NULL);
    assert_string_equal(json_string_value(json_array_get(json_object_get(log, "auth"), 0)), "Bearer sk-from-file");
    json_decref(log);
    el_cloud_close(c);

    c = open_client(set_missing_key);
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), -1);
    assert_int_equal(err.code, EDGELLM_EAUTH);
    assert_non_null(strstr(err.message, "EDGELLM_TEST_UNSET_KEY is not set"));
    el_chat_result_free(&res);
    assert_int_equal(fake_count(&FAKE), 1); /* nothing sent without a key */
    el_cloud_close(c);
}

static void test_malformed_answers(void **state) {
    (void)state;
    el_cloud *c = open_client(NULL);
    el_chat_msg m[] = {{"user", "x"}};
    el_chat_result res;
    el_err err;
    fake_script(&FAKE, "[]", "malformed");
    el_chat_request r = user_request(m, 1, 0);
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), -1);
    assert_int_equal(err.code, EDGELLM_EPROTOCOL);
    assert_non_null(strstr(err.message, "not JSON"));
    assert_int_equal(res.attempts, 1);
    el_chat_result_free(&res);

    fake_script(&FAKE, "[]", "badevent");
    r = user_request(m, 1, 1);
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), -1);
    assert_int_equal(err.code, EDGELLM_EPROTOCOL);
    assert_non_null(strstr(err.message, "stream event"));
    el_chat_result_free(&res);
    assert_int_equal(fake_count(&FAKE), 1);
    el_cloud_close(c);
}

static void test_stream_cut_and_error_event_not_retried(void **state) {
    (void)state;
    el_cloud *c = open_client(NULL);
    el_chat_msg m[] = {{"user", "a longer question so the answer has chunks"}};
    el_chat_request r = user_request(m, 1, 1);
    el_chat_result res;
    el_err err;
    fake_script(&FAKE, "[]", "cut");
    pieces ps = {"", 0};
    assert_int_equal(el_cloud_chat(c, &r, collect_piece, &ps, &res, &err), -1);
    assert_int_equal(err.code, EDGELLM_ENETWORK);
    assert_true(res.pieces_delivered > 0);
    assert_int_equal(res.attempts, 1); /* retrying would answer the caller twice */
    assert_string_equal(ps.text, "You said"); /* role chunk and two 4-character chunks, then the cut */
    el_chat_result_free(&res);
    assert_int_equal(fake_count(&FAKE), 1);

    fake_script(&FAKE, "[]", "error_event");
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), -1);
    assert_int_equal(err.code, EDGELLM_ESERVER);
    assert_non_null(strstr(err.message, "mid-stream"));
    assert_non_null(strstr(err.message, "overloaded"));
    el_chat_result_free(&res);
    el_cloud_close(c);
}

static void short_timeouts(el_cloud_config *g) {
    g->first_byte_timeout_ms = 300;
    g->total_timeout_ms = 1500;
    g->max_retries = 1;
}

static void test_timeouts(void **state) {
    (void)state;
    el_cloud *c = open_client(short_timeouts);
    el_chat_msg m[] = {{"user", "x"}};
    el_chat_request r = user_request(m, 1, 1);
    el_chat_result res;
    el_err err;
    fake_script(&FAKE, "[]", "hang");
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), -1);
    assert_int_equal(err.code, EDGELLM_ETIMEOUT);
    assert_non_null(strstr(err.message, "first-byte timeout (300 ms)"));
    assert_int_equal(res.attempts, 2);
    el_chat_result_free(&res);

    /* Headers and first chunks come quickly but the whole answer takes too long. */
    fake_script(&FAKE, "[]", "slow:400");
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), -1);
    assert_int_equal(err.code, EDGELLM_ETIMEOUT);
    assert_non_null(strstr(err.message, "total timeout (1500 ms)"));
    assert_int_equal(res.attempts, 1); /* pieces were delivered: no retry */
    el_chat_result_free(&res);
    el_cloud_close(c);
}

static void closed_port(el_cloud_config *g) {
    /* Port 1 on loopback: nothing listens there, the connection is refused. */
    snprintf(g->base_url, sizeof g->base_url, "http://127.0.0.1:1/v1");
    g->max_retries = 1;
}

static void test_connection_refused(void **state) {
    (void)state;
    el_cloud *c = open_client(closed_port);
    el_chat_msg m[] = {{"user", "x"}};
    el_chat_request r = user_request(m, 1, 0);
    el_chat_result res;
    el_err err;
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), -1);
    assert_int_equal(err.code, EDGELLM_ENETWORK);
    assert_non_null(strstr(err.message, "fakeai"));
    assert_non_null(strstr(err.message, "127.0.0.1:1"));
    assert_int_equal(res.attempts, 2);
    el_chat_result_free(&res);
    el_cloud_close(c);
}

/* A listener whose accept queue is full drops further SYNs, so connecting hangs
 * until the connect timeout: a connect timeout without leaving loopback. */
static char FULL_URL[64];

static void full_listener(el_cloud_config *g) {
    snprintf(g->base_url, sizeof g->base_url, "%s", FULL_URL);
    g->connect_timeout_ms = 300;
    g->first_byte_timeout_ms = 0;
    g->max_retries = 0;
}

static void test_connect_timeout(void **state) {
    (void)state;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(ls, 0), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &len), 0);
    int fill[4];
    for (int i = 0; i < 4; i++) { /* fill the accept queue; nobody accepts */
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    el_sleep_ms(50);
    snprintf(FULL_URL, sizeof FULL_URL, "http://127.0.0.1:%d/v1", ntohs(a.sin_port));
    el_cloud *c = open_client(full_listener);
    el_chat_msg m[] = {{"user", "x"}};
    el_chat_request r = user_request(m, 1, 0);
    el_chat_result res;
    el_err err;
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), -1);
    assert_int_equal(err.code, EDGELLM_ETIMEOUT);
    assert_non_null(strstr(err.message, "connect timeout (300 ms)"));
    el_chat_result_free(&res);
    el_cloud_close(c);
    for (int i = 0; i < 4; i++) close(fill[i]);
    close(ls);
}

static void breaker_two(el_cloud_config *g) {
    g->breaker_threshold = 2;
    g->breaker_cooldown_ms = 60000;
    g->max_retries = 0;
}

static void test_circuit_opens_and_refuses(void **state) {
    (void)state;
    fake_script(&FAKE, "[]", "500");
    el_cloud *c = open_client(breaker_two);
    el_chat_msg m[] = {{"user", "x"}};
    el_chat_request r = user_request(m, 1, 0);
    el_chat_result res;
    el_err err;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), -1);
        assert_int_equal(err.code, EDGELLM_ESERVER);
        el_chat_result_free(&res);
    }
    assert_true(el_cloud_circuit_is_open(c));
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), -1);
    assert_true(res.circuit_open);
    assert_int_equal(res.attempts, 0);
    assert_non_null(strstr(err.message, "circuit open"));
    el_chat_result_free(&res);
    assert_int_equal(fake_count(&FAKE), 2); /* the third call never reached the provider */
    el_cloud_close(c);
}

static void with_cache(el_cloud_config *g) {
    temp_path(g->cache_path, sizeof g->cache_path, "cache-client.sqlite");
}

static void test_cache_only_for_deterministic(void **state) {
    (void)state;
    fake_script(&FAKE, "[]", "ok");
    el_cloud *c = open_client(with_cache);
    el_chat_msg m[] = {{"user", "cache me"}};
    el_chat_request r = user_request(m, 1, 1);
    r.temperature = 0;
    el_chat_result res;
    el_err err;
    for (int i = 0; i < 2; i++) {
        pieces ps = {"", 0};
        assert_int_equal(el_cloud_chat(c, &r, collect_piece, &ps, &res, &err), 0);
        assert_string_equal(ps.text, "You said: cache me");
        assert_int_equal(res.from_cache, i == 1);
        assert_int_equal(res.tokens_out, 5);
        el_chat_result_free(&res);
    }
    assert_int_equal(fake_count(&FAKE), 1);
    /* A different sampling parameter is a different key. */
    r.max_tokens = 65;
    assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), 0);
    assert_false(res.from_cache);
    el_chat_result_free(&res);
    /* Sampled requests are not cached unless asked. */
    r.temperature = 0.7;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), 0);
        assert_false(res.from_cache);
        el_chat_result_free(&res);
    }
    assert_int_equal(fake_count(&FAKE), 4);
    r.cache_any = 1;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(el_cloud_chat(c, &r, NULL, NULL, &res, &err), 0);
        assert_int_equal(res.from_cache, i == 1);
        el_chat_result_free(&res);
    }
    assert_int_equal(fake_count(&FAKE), 5);
    el_cloud_close(c);
}

typedef struct collapse_job {
    el_cloud *c;
    el_chat_request r;
    el_chat_result res;
    int rc;
    pieces ps;
} collapse_job;

static void *collapse_thread(void *arg) {
    collapse_job *j = arg;
    el_err err;
    j->rc = el_cloud_chat(j->c, &j->r, collect_piece, &j->ps, &j->res, &err);
    return NULL;
}

static void test_identical_concurrent_requests_collapse(void **state) {
    (void)state;
    fake_script(&FAKE, "[]", "gate"); /* the fake holds every answer until released */
    el_cloud *c = open_client(NULL);  /* no cache: collapsing alone */
    el_chat_msg m[] = {{"user", "same question"}};
    enum { N = 4 };
    collapse_job jobs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].c = c;
        jobs[i].r = user_request(m, 1, 0);
        jobs[i].r.temperature = 0;
    }
    pthread_create(&th[0], NULL, collapse_thread, &jobs[0]);
    for (int i = 0; i < 2000 && fake_count(&FAKE) < 1; i++) el_sleep_ms(5); /* the leader's call is upstream */
    assert_int_equal(fake_count(&FAKE), 1);
    for (int i = 1; i < N; i++) pthread_create(&th[i], NULL, collapse_thread, &jobs[i]);
    for (int i = 0; i < 2000 && el_cloud_waiting(c) < N - 1; i++) el_sleep_ms(5);
    assert_int_equal(el_cloud_waiting(c), N - 1);
    json_decref(fake_control(&FAKE, "/_release", "{}"));
    int collapsed = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].rc, 0);
        assert_string_equal(jobs[i].res.text, "You said: same question");
        assert_string_equal(jobs[i].ps.text, "You said: same question");
        collapsed += jobs[i].res.collapsed;
        el_chat_result_free(&jobs[i].res);
    }
    assert_int_equal(collapsed, N - 1);
    assert_int_equal(fake_count(&FAKE), 1); /* one upstream call for four callers */
    el_cloud_close(c);
}

int main(void) {
    const struct CMUnitTest unit[] = {
        cmocka_unit_test(test_sse_whole_and_split),
        cmocka_unit_test(test_sse_refuses_huge_event),
        cmocka_unit_test(test_backoff_full_jitter_is_bounded_and_seeded),
        cmocka_unit_test(test_breaker_states),
        cmocka_unit_test(test_sha256_known_vector),
        cmocka_unit_test(test_cache_ttl_and_lru),
    };
    const struct CMUnitTest net[] = {
        cmocka_unit_test(test_plain_and_streamed_answers),
        cmocka_unit_test(test_fragmented_stream),
        cmocka_unit_test(test_prompt_arrives_exactly),
        cmocka_unit_test(test_429_retry_after_honoured),
        cmocka_unit_test(test_5xx_retried_then_typed),
        cmocka_unit_test(test_401_not_retried_and_key_redacted),
        cmocka_unit_test(test_key_from_file_or_missing),
        cmocka_unit_test(test_malformed_answers),
        cmocka_unit_test(test_stream_cut_and_error_event_not_retried),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_circuit_opens_and_refuses),
        cmocka_unit_test(test_cache_only_for_deterministic),
        cmocka_unit_test(test_identical_concurrent_requests_collapse),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int failed = cmocka_run_group_tests_name("cloud_unit", unit, NULL, NULL);
    failed += cmocka_run_group_tests_name("cloud_fake_upstream", net, setup_fake, teardown_fake);
    curl_global_cleanup();
    rm_tree(TMPDIR_);
    return failed;
}
