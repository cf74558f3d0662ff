/* One input as a provider's answer to el_cloud_chat (src/cloud/cloud.c), shared by the
 * libFuzzer target tests/fuzz/fuzz_chat_response.c and tests/test_fuzz_corpora.c.
 *
 * The parsers of a chat completion (parse_completion) and of a streamed chunk
 * (on_sse_event) are static, so the bytes reach them the way a provider's do: a
 * loopback HTTP server (fuzz_upstream.h) sends them as the response body.
 *
 * Input: byte 0 picks the response's shape, the rest is the body.
 *   bit 0     Content-Type text/event-stream (else application/json); the request
 *             asks for a stream when it is set
 *   bits 1-3  HTTP status: 200 200 200 200 400 401 429 503
 *   bit 4     a Retry-After: 1 header (never waited for: no retries are configured)
 *   bits 5-6  how the body is cut into HTTP chunks (each reaches the client as its
 *             own read): whole; 1-8 bytes; 1-64 bytes; 1-1024 bytes (sizes from a
 *             hash of the input)
 *
 * Checked: the call returns (no hang, no sanitizer report); a failure has a code that
 * matches the HTTP status, a message naming the provider and never the API key; a
 * success came with a 2xx status and its text is what the piece callback received;
 * a non-streamed success holds choices[0].message.content as jansson reads it. */
#ifndef FUZZ_CHAT_RESPONSE_BODY_H
#define FUZZ_CHAT_RESPONSE_BODY_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/cloud.h"
#include "fuzz_upstream.h"

#define FUZZ_CHAT_KEY_ENV "EDGELLM_FUZZ_CHAT_KEY"
#define FUZZ_CHAT_KEY "sk-fuzz-7f3a9c2e51d84b60"
#define FUZZ_CHAT_PROVIDER "fuzzai"

typedef struct fuzz_chat {
    fuzz_upstream up;
    el_cloud *cloud;
    char *resp; /* scratch for building responses */
    size_t resp_cap;
} fuzz_chat;

typedef struct fuzz_chat_outcome {
    int rc;
    edgellm_status code;
    int status;       /* the HTTP status sent */
    size_t text_len;  /* on success */
} fuzz_chat_outcome;

typedef struct fuzz_chat_pieces {
    char *buf;
    size_t len, cap;
    int n, oom;
} fuzz_chat_pieces;

/* Collects the answer's pieces; a piece that is exactly "stop" cancels the answer. */
static int fuzz_chat_on_piece(void *ud, const char *piece, size_t len) {
    fuzz_chat_pieces *p = ud;
    p->n++;
    if (p->len + len + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 256;
        while (cap < p->len + len + 1) cap *= 2;
        char *nb = realloc(p->buf, cap);
        if (!nb) {
            p->oom = 1;
            return 1;
        }
        p->buf = nb;
        p->cap = cap;
    }
    memcpy(p->buf + p->len, piece, len);
    p->len += len;
    return len == 4 && !memcmp(piece, "stop", 4);
}

__attribute__((unused)) static void fuzz_chat_close(fuzz_chat *f) {
    el_cloud_close(f->cloud);
    f->cloud = NULL;
    fuzz_upstream_stop(&f->up);
    free(f->resp);
    f->resp = NULL;
}

/* Starts the loopback upstream and a client for it (no retries, no breaker, no cache). */
static int fuzz_chat_open(fuzz_chat *f, el_err *err) {
    memset(f, 0, sizeof *f);
    if (fuzz_upstream_start(&f->up)) return el_fail(err, EDGELLM_EIO, "fuzz upstream: cannot listen on loopback");
    setenv(FUZZ_CHAT_KEY_ENV, FUZZ_CHAT_KEY, 1);
    el_cloud_config cfg;
    el_cloud_config_defaults(&cfg);
    snprintf(cfg.name, sizeof cfg.name, FUZZ_CHAT_PROVIDER);
    snprintf(cfg.base_url, sizeof cfg.base_url, "http://127.0.0.1:%d/v1", f->up.port);
    snprintf(cfg.model, sizeof cfg.model, "fuzz-model");
    snprintf(cfg.api_key_env, sizeof cfg.api_key_env, FUZZ_CHAT_KEY_ENV);
    cfg.connect_timeout_ms = 2000;
    cfg.first_byte_timeout_ms = 4000;
    cfg.total_timeout_ms = 8000; /* under libFuzzer's -timeout=10 */
    cfg.max_retries = 0;
    cfg.breaker_threshold = 0;
    f->cloud = el_cloud_open(&cfg, err);
    if (!f->cloud) {
        fuzz_upstream_stop(&f->up);
        return -1;
    }
    return 0;
}

static int fuzz_chat_put(fuzz_chat *f, size_t *len, const void *p, size_t n) {
    if (*len + n > f->resp_cap) {
        size_t cap = f->resp_cap ? f->resp_cap : 4096;
        while (cap < *len + n) cap *= 2;
        char *nb = realloc(f->resp, cap);
        if (!nb) return -1;
        f->resp = nb;
        f->resp_cap = cap;
    }
    memcpy(f->resp + *len, p, n);
    *len += n;
    return 0;
}

/* The whole HTTP response for one input, into f->resp. */
static int fuzz_chat_build(fuzz_chat *f, uint8_t flags, const uint8_t *body, size_t n, int status, size_t *len) {
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %d Fuzz\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n%s\r\n", status,
                      (flags & 1) ? "text/event-stream" : "application/json",
                      (flags & 0x10) ? "Retry-After: 1\r\n" : "");
    *len = 0;
    if (fuzz_chat_put(f, len, head, (size_t)hn)) return -1;
    static const size_t max_piece[4] = {0, 8, 64, 1024};
    size_t maxp = max_piece[(flags >> 5) & 3];
    uint64_t seed = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) seed = (seed ^ body[i]) * 1099511628211ull;
    seed |= 1;
    for (size_t i = 0; i < n;) {
        size_t k = n - i;
        if (maxp) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            size_t want = 1 + (size_t)(seed >> 33) % maxp;
            if (want < k) k = want;
        }
        hn = snprintf(head, sizeof head, "%zx\r\n", k);
        if (fuzz_chat_put(f, len, head, (size_t)hn) || fuzz_chat_put(f, len, body + i, k) ||
            fuzz_chat_put(f, len, "\r\n", 2))
            return -1;
        i += k;
    }
    return fuzz_chat_put(f, len, "0\r\n\r\n", 5);
}

static edgellm_status fuzz_chat_status_code(int status) {
    if (status == 401 || status == 403) return EDGELLM_EAUTH;
    if (status == 429) return EDGELLM_ERATELIMIT;
    if (status >= 500) return EDGELLM_ESERVER;
    return EDGELLM_EINVAL;
}

/* A non-streamed success must hold choices[0].message.content (up to a NUL, as the
 * result's text is a C string). */
static const char *fuzz_chat_check_content(const uint8_t *body, size_t n, const el_chat_result *r) {
    json_t *j = json_loadb((const char *)body, n, 0, NULL);
    if (!j) return "a non-streamed body that is not JSON was accepted";
    json_t *content = json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"),
                                      "content");
    const char *broken = NULL;
    if (json_is_string(content)) {
        const char *s = json_string_value(content);
        size_t len = strnlen(s, json_string_length(content));
        if (r->text_len != len || memcmp(r->text, s, len)) broken = "the text is not choices[0].message.content";
    } else if (!json_is_null(content)) {
        broken = "accepted without a string or null choices[0].message.content";
    } else if (r->text_len) {
        broken = "text from a null content";
    }
    if (!broken && json_object_get(j, "error") && !json_is_null(json_object_get(j, "error"))) broken = "a body with an error member was accepted";
    json_decref(j);
    return broken;
}

static const char *fuzz_chat_check(const uint8_t *body, size_t n, int sse, int status, int rc, const el_err *err,
                                   const el_chat_result *r, const fuzz_chat_pieces *pc) {
    if (r->http_status != status) return "http_status is not the status sent";
    if (r->attempts != 1) return "more than one attempt with max_retries 0";
    /* pieces_delivered is documented for failures; a cancelled non-streamed answer is
     * left out (its one piece is delivered after the count is taken). */
    if (rc && r->pieces_delivered != pc->n && !(err->code == EDGELLM_ECANCELLED && !sse))
        return "pieces_delivered differs from the callback's count";
    if (rc) {
        if (rc != -1) return "a failure other than -1";
        if (err->code == EDGELLM_OK || !err->message[0]) return "a failure without a code and a message";
        if (!strstr(err->message, "'" FUZZ_CHAT_PROVIDER "'")) return "a failure that does not name the provider";
        if (strstr(err->message, FUZZ_CHAT_KEY)) return "the API key appears in an error message";
        if (status >= 300 && err->code != fuzz_chat_status_code(status)) return "the code does not match the status";
        if (status < 300 && err->code != EDGELLM_EPROTOCOL && err->code != EDGELLM_ESERVER &&
            err->code != EDGELLM_ENETWORK && err->code != EDGELLM_ECANCELLED)
            return "an unexpected code for a 2xx answer";
        if (err->code == EDGELLM_ECANCELLED && !(pc->len >= 4 && !memcmp(pc->buf + pc->len - 4, "stop", 4)))
            return "cancelled although the callback never asked";
        return NULL;
    }
    if (status >= 300) return "success with a non-2xx status";
    if (!r->text || r->text[r->text_len] != '\0' || strlen(r->text) != r->text_len) return "text not a C string of text_len";
    if (strnlen(r->finish_reason, sizeof r->finish_reason) == sizeof r->finish_reason) return "finish_reason unterminated";
    /* The result is a C string; the pieces may go on past a NUL the provider sent. */
    if (pc->len < r->text_len || (r->text_len && memcmp(pc->buf, r->text, r->text_len)) ||
        (pc->len != r->text_len && (!pc->buf || !memchr(pc->buf, '\0', pc->len))))
        return "the text is not what the piece callback received";
    if (!sse) return fuzz_chat_check_content(body, n, r);
    return NULL;
}

/* Runs one input. Returns NULL, or the invariant that broke. */
static const char *fuzz_chat_one(fuzz_chat *f, const uint8_t *data, size_t size, fuzz_chat_outcome *out) {
    memset(out, 0, sizeof *out);
    static const int statuses[8] = {200, 200, 200, 200, 400, 401, 429, 503};
    uint8_t flags = size ? data[0] : 0;
    const uint8_t *body = size ? data + 1 : data;
    size_t n = size ? size - 1 : 0, len = 0;
    int sse = flags & 1, status = statuses[(flags >> 1) & 7];
    if (fuzz_chat_build(f, flags, body, n, status, &len) || fuzz_upstream_set(&f->up, f->resp, len))
        return "out of memory in the harness";
    el_chat_msg msg = {.role = "user", .content = "Say hello."};
    el_chat_request req = {.messages = &msg, .n_messages = 1, .max_tokens = 16, .temperature = -1, .stream = sse};
    el_chat_result r;
    el_err err = {EDGELLM_OK, ""};
    fuzz_chat_pieces pc = {0};
    int rc = el_cloud_chat(f->cloud, &req, fuzz_chat_on_piece, &pc, &r, &err);
    out->rc = rc;
    out->code = rc ? err.code : EDGELLM_OK;
    out->status = status;
    out->text_len = rc ? 0 : r.text_len;
    const char *broken = pc.oom ? "out of memory in the harness" : fuzz_chat_check(body, n, sse, status, rc, &err, &r, &pc);
    el_chat_result_free(&r);
    free(pc.buf);
    return broken;
}

#endif
