/* Client for any OpenAI-compatible chat API (OpenAI, DeepSeek, a relay, vLLM,
 * llama-server): POST {base_url}/chat/completions, plain or streamed (SSE).
 *
 * el_cloud_chat adds, around single HTTP attempts:
 *  - retries with exponential backoff and full jitter, honouring Retry-After;
 *  - a circuit breaker per provider (one el_cloud = one provider);
 *  - an optional SQLite response cache for deterministic requests;
 *  - collapsing of identical concurrent cacheable requests into one upstream call.
 *
 * Errors are typed (edgellm_status): EAUTH (401/403, never retried), ERATELIMIT
 * (429), ESERVER (5xx or an error event in the stream), ETIMEOUT (connect, first
 * byte, total), ENETWORK (connection refused or cut, circuit open), EPROTOCOL
 * (malformed answer), EINVAL (a request that cannot be sent, or another 4xx).
 * Messages name the provider, the HTTP status and the provider's own error text;
 * the API key never appears in them (it is redacted from provider text too). */
#ifndef EL_CLOUD_CLOUD_H
#define EL_CLOUD_CLOUD_H

#include <stddef.h>
#include <stdint.h>

#include "chat/chat.h" /* el_chat_msg {role, content}: the one message type, shared with the engine */
#include "core/error.h"

typedef struct el_chat_request {
    const el_chat_msg *messages;
    size_t n_messages;
    int max_tokens;        /* <= 0: not sent (provider default) */
    double temperature;    /* < 0: not sent (provider default, not deterministic) */
    const char *const *stop;
    size_t n_stop;
    int stream;            /* use SSE; pieces reach the callback as they arrive */
    int cache_any;         /* cache/collapse even if temperature != 0 */
} el_chat_request;

/* Receives the answer piece by piece; return non-zero to stop (ECANCELLED). */
typedef int (*el_piece_fn)(void *ud, const char *piece, size_t len);

typedef struct el_chat_result {
    char *text;            /* malloc'd, NUL-terminated */
    size_t text_len;
    int tokens_in;         /* from the provider's usage; -1 if it sent none */
    int tokens_out;
    double ttft_ms;        /* request start to first piece of text */
    double total_ms;
    char finish_reason[32];
    int http_status;       /* of the last attempt, 0 if none got an answer */
    int attempts;          /* HTTP attempts made (0 for a cache hit) */
    double backoff_ms;     /* total time slept between attempts */
    int from_cache;
    int collapsed;         /* answered by another caller's identical in-flight request */
    int circuit_open;      /* on failure: refused because the breaker is open */
    int pieces_delivered;  /* on failure: part of an answer already reached the callback */
} el_chat_result;

void el_chat_result_free(el_chat_result *r);

typedef struct el_cloud_config {
    char name[64];          /* provider name used in messages and the ledger */
    char base_url[512];     /* e.g. https://api.deepseek.com/v1 (no trailing /chat/completions) */
    char model[128];
    char api_key_env[128];  /* environment variable holding the key (may be empty) */
    char api_key_file[512]; /* or a file holding it (first line); may be empty */
    long connect_timeout_ms;
    long first_byte_timeout_ms; /* until the response headers arrive */
    long total_timeout_ms;
    int max_retries;        /* retries after the first attempt */
    double backoff_base_ms;
    double backoff_max_ms;
    double retry_after_max_ms; /* a Retry-After longer than this is not waited for */
    int breaker_threshold;  /* consecutive failed attempts that open the breaker; <= 0: never */
    double breaker_cooldown_ms;
    uint64_t seed;          /* jitter RNG seed; 0: from the clock */
    char cache_path[512];   /* SQLite file; empty: no cache (collapsing still works) */
    double cache_ttl_s;
    int64_t cache_max_bytes;
} el_cloud_config;

/* Sensible defaults: 10 s connect, 30 s first byte, 300 s total, 3 retries,
 * 500 ms base / 20 s cap backoff, Retry-After up to 60 s, breaker 5 failures /
 * 30 s cooldown, cache TTL 1 day and 64 MiB when a path is set. */
void el_cloud_config_defaults(el_cloud_config *c);

typedef struct el_cloud el_cloud;

/* Reads the key now (env first, then file). A missing key is not an error here:
 * requests then fail with EAUTH naming the variable, so a router can fall back. */
el_cloud *el_cloud_open(const el_cloud_config *cfg, el_err *err);
void el_cloud_close(el_cloud *c);
const char *el_cloud_name(const el_cloud *c);
const char *el_cloud_model(const el_cloud *c);
/* Callers now waiting for an identical in-flight request (collapsed). */
int el_cloud_waiting(el_cloud *c);
/* 1 if the breaker currently refuses calls. */
int el_cloud_circuit_is_open(el_cloud *c);

/* Sends req (retries, cache, collapsing included). on_piece may be NULL.
 * On success out holds the answer; on failure out still says attempts,
 * circuit_open and pieces_delivered. Always call el_chat_result_free(out). */
int el_cloud_chat(el_cloud *c, const el_chat_request *req, el_piece_fn on_piece, void *ud, el_chat_result *out,
                  el_err *err);

/* The JSON body that would be sent (malloc'd), or NULL with err set; exposed
 * for tests and for computing cache keys. */
char *el_cloud_request_body(const el_cloud *c, const el_chat_request *req, el_err *err);

#endif
