#include "cloud/cloud.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cloud/backoff.h"
#include "cloud/breaker.h"
#include "cloud/cache.h"
#include "cloud/clock.h"
#include "cloud/sse.h"

#define MAX_BODY_BYTES ((size_t)16 << 20)   /* a non-streamed answer larger than this is refused */
#define PROVIDER_TEXT_MAX 300               /* how much of a provider's error text a message quotes */
#define IDLE_HANDLES 8                      /* curl handles kept for reuse (each keeps its connection) */

/* One identical cacheable request in flight; later callers wait for its result. */
typedef struct inflight {
    struct inflight *next;
    char key[65];
    int waiters;
    int done;
    int leader_gone;
    int rc;
    el_err err;
    char *text;
    size_t text_len;
    int tokens_in, tokens_out;
    char finish_reason[32];
    pthread_cond_t cv;
} inflight;

struct el_cloud {
    el_cloud_config cfg;
    char *key;              /* API key, or NULL */
    char key_problem[640];  /* why there is no key, if one was asked for */
    el_breaker breaker;
    el_cache *cache;
    pthread_mutex_t mu;     /* guards rng, the in-flight list and the idle handles */
    el_jitter_rng rng;
    inflight *inflight;
    CURL *idle[IDLE_HANDLES]; /* reused so that TLS connections to the provider stay open */
    int n_idle;
};

static CURL *handle_get(el_cloud *c) {
    CURL *h = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->n_idle > 0) h = c->idle[--c->n_idle];
    pthread_mutex_unlock(&c->mu);
    return h ? h : curl_easy_init();
}

/* Options are reset (the next request sets its own); the connection stays. */
static void handle_put(el_cloud *c, CURL *h, int keep) {
    if (keep) {
        curl_easy_reset(h);
        pthread_mutex_lock(&c->mu);
        if (c->n_idle < IDLE_HANDLES) {
            c->idle[c->n_idle++] = h;
            h = NULL;
        }
        pthread_mutex_unlock(&c->mu);
    }
    if (h) curl_easy_cleanup(h);
}

void el_chat_result_free(el_chat_result *r) {
    if (!r) return;
    free(r->text);
    r->text = NULL;
    r->text_len = 0;
}

void el_cloud_config_defaults(el_cloud_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "cloud");
    c->connect_timeout_ms = 10000;
    c->first_byte_timeout_ms = 30000;
    c->total_timeout_ms = 300000;
    c->max_retries = 3;
    c->backoff_base_ms = 500;
    c->backoff_max_ms = 20000;
    c->retry_after_max_ms = 60000;
    c->breaker_threshold = 5;
    c->breaker_cooldown_ms = 30000;
    c->cache_ttl_s = 86400;
    c->cache_max_bytes = (int64_t)64 << 20;
}

/* ---- the API key, and keeping it out of every message ---- */

static void cloud_load_key(el_cloud *c) {
    const el_cloud_config *g = &c->cfg;
    if (g->api_key_env[0]) {
        const char *v = getenv(g->api_key_env);
        if (v && v[0]) {
            c->key = strdup(v);
            return;
        }
    }
    if (g->api_key_file[0]) {
        FILE *f = fopen(g->api_key_file, "r");
        if (f) {
            char line[1024];
            if (fgets(line, sizeof line, f)) {
                size_t n = strcspn(line, "\r\n");
                while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t')) n--;
                line[n] = '\0';
                if (n) c->key = strdup(line);
            }
            memset(line, 0, sizeof line);
            fclose(f);
            if (c->key) return;
            snprintf(c->key_problem, sizeof c->key_problem, "API key file '%s' is empty", g->api_key_file);
            return;
        }
        snprintf(c->key_problem, sizeof c->key_problem, "API key file '%s' cannot be read", g->api_key_file);
        return;
    }
    if (g->api_key_env[0])
        snprintf(c->key_problem, sizeof c->key_problem, "API key variable %s is not set", g->api_key_env);
}

/* Replaces every occurrence of the key in s (in place; the result is never longer). */
static void redact_key(const el_cloud *c, char *s) {
    if (!c->key || strlen(c->key) < 4 || !s) return;
    static const char mark[] = "[redacted]";
    size_t klen = strlen(c->key);
    char *p;
    while ((p = strstr(s, c->key)) != NULL) {
        size_t m = klen < sizeof mark - 1 ? klen : sizeof mark - 1;
        memcpy(p, mark, m);
        memmove(p + m, p + klen, strlen(p + klen) + 1);
    }
}

static void err_append(el_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void err_append(el_err *err, const char *fmt, ...) {
    if (!err) return;
    size_t n = strlen(err->message);
    if (n + 1 >= sizeof err->message) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message + n, sizeof err->message - n, fmt, ap);
    va_end(ap);
}

el_cloud *el_cloud_open(const el_cloud_config *cfg, el_err *err) {
    if (!cfg->base_url[0] || !cfg->model[0]) {
        el_fail(err, EDGELLM_EINVAL, "provider '%s': base_url and model are required", cfg->name);
        return NULL;
    }
    if (strncmp(cfg->base_url, "http://", 7) && strncmp(cfg->base_url, "https://", 8)) {
        el_fail(err, EDGELLM_EINVAL, "provider '%s': base_url '%s' must start with http:// or https://", cfg->name,
                cfg->base_url);
        return NULL;
    }
    el_cloud *c = calloc(1, sizeof *c);
    if (!c) {
        el_fail(err, EDGELLM_ENOMEM, "provider '%s': out of memory", cfg->name);
        return NULL;
    }
    /* Reference-counted inside libcurl; paired with the cleanup in el_cloud_close. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c->cfg = *cfg;
    /* Trailing slashes would give "//chat/completions", which some servers refuse. */
    size_t n = strlen(c->cfg.base_url);
    while (n > 0 && c->cfg.base_url[n - 1] == '/') c->cfg.base_url[--n] = '\0';
    cloud_load_key(c);
    el_breaker_init(&c->breaker, cfg->breaker_threshold, cfg->breaker_cooldown_ms);
    pthread_mutex_init(&c->mu, NULL);
    el_jitter_seed(&c->rng, cfg->seed);
    if (cfg->cache_path[0]) {
        c->cache = el_cache_open(cfg->cache_path, cfg->cache_ttl_s, cfg->cache_max_bytes, err);
        if (!c->cache) {
            el_fail_prefix(err, "provider '%s'", cfg->name);
            el_cloud_close(c);
            return NULL;
        }
    }
    return c;
}

void el_cloud_close(el_cloud *c) {
    if (!c) return;
    if (c->key) {
        memset(c->key, 0, strlen(c->key));
        free(c->key);
    }
    for (int i = 0; i < c->n_idle; i++) curl_easy_cleanup(c->idle[i]);
    el_cache_close(c->cache);
    el_breaker_destroy(&c->breaker);
    pthread_mutex_destroy(&c->mu);
    free(c);
    curl_global_cleanup();
}

const char *el_cloud_name(const el_cloud *c) { return c->cfg.name; }
const char *el_cloud_model(const el_cloud *c) { return c->cfg.model; }

int el_cloud_waiting(el_cloud *c) {
    int n = 0;
    pthread_mutex_lock(&c->mu);
    for (inflight *f = c->inflight; f; f = f->next) n += f->waiters;
    pthread_mutex_unlock(&c->mu);
    return n;
}

int el_cloud_circuit_is_open(el_cloud *c) {
    return el_breaker_get_state(&c->breaker, el_mono_ms()) == EL_BREAKER_OPEN;
}

/* ---- request bodies, built by jansson (never by pasting strings) ---- */

static int valid_role(const char *r) {
    return r && (!strcmp(r, "system") || !strcmp(r, "user") || !strcmp(r, "assistant") || !strcmp(r, "developer") ||
                 !strcmp(r, "tool"));
}

/* for_key: leave out transport-only fields (stream), keep what decides the answer. */
static json_t *build_request(const el_cloud *c, const el_chat_request *req, int for_key, el_err *err) {
    const char *name = c->cfg.name;
    if (!req->messages || req->n_messages == 0) {
        el_fail(err, EDGELLM_EINVAL, "provider '%s': a request needs at least one message", name);
        return NULL;
    }
    json_t *root = json_object();
    json_t *msgs = json_array();
    if (!root || !msgs) goto oom;
    json_object_set_new(root, "model", json_string(c->cfg.model));
    json_object_set_new(root, "messages", msgs);
    for (size_t i = 0; i < req->n_messages; i++) {
        const el_chat_msg *m = &req->messages[i];
        if (!valid_role(m->role)) {
            el_fail(err, EDGELLM_EINVAL, "provider '%s': message %zu has an unknown role '%s'", name, i,
                    m->role ? m->role : "(null)");
            json_decref(root);
            return NULL;
        }
        if (!m->content) {
            el_fail(err, EDGELLM_EINVAL, "provider '%s': message %zu (%s) has no content", name, i, m->role);
            json_decref(root);
            return NULL;
        }
        /* json_string refuses invalid UTF-8: the prompt is sent exactly or not at all. */
        json_t *content = json_string(m->content);
        if (!content) {
            el_fail(err, EDGELLM_EINVAL,
                    "provider '%s': message %zu (%s) is not valid UTF-8; refusing to send an altered prompt", name,
                    i, m->role);
            json_decref(root);
            return NULL;
        }
        json_t *o = json_object();
        if (!o) {
            json_decref(content);
            goto oom;
        }
        json_object_set_new(o, "role", json_string(m->role));
        json_object_set_new(o, "content", content);
        json_array_append_new(msgs, o);
    }
    if (req->max_tokens > 0) json_object_set_new(root, "max_tokens", json_integer(req->max_tokens));
    if (req->temperature >= 0) json_object_set_new(root, "temperature", json_real(req->temperature));
    if (req->n_stop > 0) {
        json_t *stop = json_array();
        if (!stop) goto oom;
        json_object_set_new(root, "stop", stop);
        for (size_t i = 0; i < req->n_stop; i++) {
            json_t *s = req->stop[i] ? json_string(req->stop[i]) : NULL;
            if (!s) {
                el_fail(err, EDGELLM_EINVAL, "provider '%s': stop sequence %zu is missing or not valid UTF-8",
                        name, i);
                json_decref(root);
                return NULL;
            }
            json_array_append_new(stop, s);
        }
    }
    if (for_key) {
        json_object_set_new(root, "base_url", json_string(c->cfg.base_url));
    } else if (req->stream) {
        json_object_set_new(root, "stream", json_true());
        json_t *so = json_object();
        if (!so) goto oom;
        json_object_set_new(so, "include_usage", json_true());
        json_object_set_new(root, "stream_options", so);
    }
    return root;
oom:
    json_decref(root);
    el_fail(err, EDGELLM_ENOMEM, "provider '%s': out of memory building the request", name);
    return NULL;
}

char *el_cloud_request_body(const el_cloud *c, const el_chat_request *req, el_err *err) {
    json_t *j = build_request(c, req, 0, err);
    if (!j) return NULL;
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s) el_fail(err, EDGELLM_ENOMEM, "provider '%s': out of memory serialising the request", c->cfg.name);
    return s;
}

static int request_key(const el_cloud *c, const el_chat_request *req, char key[65], el_err *err) {
    json_t *j = build_request(c, req, 1, err);
    if (!j) return -1;
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    if (!s) return el_fail(err, EDGELLM_ENOMEM, "provider '%s': out of memory for the cache key", c->cfg.name);
    int rc = el_sha256_hex(s, strlen(s), key, err);
    free(s);
    return rc;
}

/* ---- one HTTP attempt ---- */

typedef struct attempt {
    el_cloud *c;
    CURL *curl;
    el_piece_fn on_piece;
    void *ud;
    double t_start;         /* start of the whole el_cloud_chat call */
    double t_attempt;
    int checked_type, is_sse, got_header, got_done;
    el_sse sse;
    char *body;
    size_t body_len, body_cap;
    char *text;
    size_t text_len, text_cap;
    int pieces;
    double ttft_ms;
    int tokens_in, tokens_out;
    char finish[32];
    int failed;             /* a callback failed; ferr says why */
    el_err ferr;
    int first_byte_timeout;
} attempt;

static int buf_append(char **buf, size_t *len, size_t *cap, const char *p, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap : 1024;
        while (ncap < *len + n + 1) ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (!nb) return -1;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

static int deliver(attempt *a, const char *s, size_t n) {
    if (n == 0) return 0;
    if (buf_append(&a->text, &a->text_len, &a->text_cap, s, n)) {
        a->failed = 1;
        return el_fail(&a->ferr, EDGELLM_ENOMEM, "provider '%s': out of memory for the answer", a->c->cfg.name);
    }
    if (a->pieces++ == 0) a->ttft_ms = el_mono_ms() - a->t_start;
    if (a->on_piece && a->on_piece(a->ud, s, n)) {
        a->failed = 1;
        return el_fail(&a->ferr, EDGELLM_ECANCELLED, "provider '%s': the caller stopped the answer",
                       a->c->cfg.name);
    }
    return 0;
}

/* The provider's own error text from an error body: {"error":{"message":..}},
 * {"error":".."}, {"message":..} or, failing that, the start of the raw body. */
static void provider_text(const el_cloud *c, const char *body, size_t len, char *out, size_t out_size) {
    out[0] = '\0';
    if (!body || !len) {
        snprintf(out, out_size, "(empty body)");
        return;
    }
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *msg = NULL;
    if (j) {
        json_t *e = json_object_get(j, "error");
        if (json_is_string(e)) msg = json_string_value(e);
        else if (json_is_object(e)) msg = json_string_value(json_object_get(e, "message"));
        if (!msg) msg = json_string_value(json_object_get(j, "message"));
        if (!msg) msg = json_string_value(json_object_get(j, "detail"));
    }
    const char *src = msg ? msg : body;
    size_t n = msg ? strlen(msg) : len;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < out_size && o < PROVIDER_TEXT_MAX; i++) {
        unsigned char ch = (unsigned char)src[i];
        out[o++] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch; /* keep messages on one line */
    }
    out[o] = '\0';
    if (n > PROVIDER_TEXT_MAX && o + 4 < out_size) memcpy(out + o, "...", 4);
    json_decref(j);
    redact_key(c, out);
}

static void copy_usage(attempt *a, json_t *usage) {
    if (!json_is_object(usage)) return;
    json_t *pi = json_object_get(usage, "prompt_tokens"), *co = json_object_get(usage, "completion_tokens");
    /* Counts outside 0..INT_MAX are nonsense from the provider: treat them as absent. */
    if (json_is_integer(pi) && json_integer_value(pi) >= 0 && json_integer_value(pi) <= INT_MAX)
        a->tokens_in = (int)json_integer_value(pi);
    if (json_is_integer(co) && json_integer_value(co) >= 0 && json_integer_value(co) <= INT_MAX)
        a->tokens_out = (int)json_integer_value(co);
}

static void copy_finish(attempt *a, json_t *choice) {
    const char *f = json_string_value(json_object_get(choice, "finish_reason"));
    if (f) snprintf(a->finish, sizeof a->finish, "%s", f);
}

static int on_sse_event(void *ud, const char *event, const char *data, size_t len) {
    attempt *a = ud;
    const char *name = a->c->cfg.name;
    if (a->got_done) return 0;
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        a->got_done = 1;
        return 0;
    }
    json_error_t je;
    json_t *j = json_loadb(data, len, 0, &je);
    if (!j) {
        a->failed = 1;
        el_fail(&a->ferr, EDGELLM_EPROTOCOL, "provider '%s': stream event %zu is not JSON (%s at column %d)",
                name, a->sse.n_events, je.text, je.column);
        return 1;
    }
    json_t *e = json_object_get(j, "error");
    if (json_is_null(e)) e = NULL; /* some relays send "error": null beside a good answer */
    if (e || !strcmp(event, "error")) {
        char text[PROVIDER_TEXT_MAX + 8];
        provider_text(a->c, data, len, text, sizeof text);
        a->failed = 1;
        el_fail(&a->ferr, EDGELLM_ESERVER, "provider '%s': HTTP 200, error event mid-stream: %s", name, text);
        json_decref(j);
        return 1;
    }
    json_t *choices = json_object_get(j, "choices");
    json_t *usage = json_object_get(j, "usage");
    if (!json_is_array(choices) && !json_is_object(usage)) {
        a->failed = 1;
        el_fail(&a->ferr, EDGELLM_EPROTOCOL, "provider '%s': stream event %zu has neither choices nor usage",
                name, a->sse.n_events);
        json_decref(j);
        return 1;
    }
    copy_usage(a, usage);
    int rc = 0;
    if (json_array_size(choices) > 0) {
        json_t *ch = json_array_get(choices, 0);
        json_t *content = json_object_get(json_object_get(ch, "delta"), "content");
        if (json_is_string(content)) rc = deliver(a, json_string_value(content), json_string_length(content));
        copy_finish(a, ch);
    }
    json_decref(j);
    return rc ? 1 : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    (void)p;
    ((attempt *)ud)->got_header = 1;
    return size * n;
}

static size_t on_write(char *p, size_t size, size_t nm, void *ud) {
    attempt *a = ud;
    size_t n = size * nm;
    if (!a->checked_type) {
        a->checked_type = 1;
        long status = 0;
        char *ct = NULL;
        curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(a->curl, CURLINFO_CONTENT_TYPE, &ct);
        a->is_sse = status >= 200 && status < 300 && ct && strncasecmp(ct, "text/event-stream", 17) == 0;
    }
    if (a->is_sse) {
        if (el_sse_feed(&a->sse, p, n, &a->ferr)) {
            if (!a->failed) el_fail_prefix(&a->ferr, "provider '%s'", a->c->cfg.name);
            a->failed = 1;
            return 0;
        }
        return n;
    }
    if (a->body_len + n > MAX_BODY_BYTES) {
        a->failed = 1;
        el_fail(&a->ferr, EDGELLM_EPROTOCOL, "provider '%s': answer larger than %zu bytes", a->c->cfg.name,
                MAX_BODY_BYTES);
        return 0;
    }
    if (buf_append(&a->body, &a->body_len, &a->body_cap, p, n)) {
        a->failed = 1;
        el_fail(&a->ferr, EDGELLM_ENOMEM, "provider '%s': out of memory reading the answer", a->c->cfg.name);
        return 0;
    }
    return n;
}

/* libcurl has no first-byte timeout; its progress callback runs at least once a
 * second while waiting, which is where we enforce one. */
static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    attempt *a = ud;
    long limit = a->c->cfg.first_byte_timeout_ms;
    if (!a->got_header && limit > 0 && el_mono_ms() - a->t_attempt > (double)limit) {
        a->first_byte_timeout = 1;
        return 1;
    }
    return 0;
}

static const char *status_kind(long status) {
    if (status == 401 || status == 403) return "authentication refused";
    if (status == 429) return "rate limited";
    if (status >= 500) return "server error";
    return "request refused";
}

static edgellm_status status_code(long status) {
    if (status == 401 || status == 403) return EDGELLM_EAUTH;
    if (status == 429) return EDGELLM_ERATELIMIT;
    if (status == 408) return EDGELLM_ETIMEOUT;
    if (status >= 500) return EDGELLM_ESERVER;
    return EDGELLM_EINVAL;
}

/* Parses a non-streamed chat completion. */
static int parse_completion(attempt *a, el_err *err) {
    const char *name = a->c->cfg.name;
    json_error_t je;
    json_t *j = json_loadb(a->body ? a->body : "", a->body_len, 0, &je);
    if (!j)
        return el_fail(err, EDGELLM_EPROTOCOL, "provider '%s': HTTP 200 but the body is not JSON (%s at line %d)",
                       name, je.text, je.line);
    json_t *e = json_object_get(j, "error");
    if (e && !json_is_null(e)) {
        char text[PROVIDER_TEXT_MAX + 8];
        provider_text(a->c, a->body, a->body_len, text, sizeof text);
        json_decref(j);
        return el_fail(err, EDGELLM_ESERVER, "provider '%s': HTTP 200 with an error: %s", name, text);
    }
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    json_t *content = json_object_get(json_object_get(ch, "message"), "content");
    if (!json_is_string(content) && !json_is_null(content)) {
        json_decref(j);
        return el_fail(err, EDGELLM_EPROTOCOL, "provider '%s': HTTP 200 but no choices[0].message.content", name);
    }
    copy_usage(a, json_object_get(j, "usage"));
    copy_finish(a, ch);
    int rc = 0;
    if (json_is_string(content)) rc = deliver(a, json_string_value(content), json_string_length(content));
    json_decref(j);
    if (rc) {
        *err = a->ferr;
        return -1;
    }
    return 0;
}

static int attempt_run(el_cloud *c, const char *body, int stream, el_piece_fn on_piece, void *ud, double t_start,
                       el_chat_result *out, double *retry_after_ms, el_err *err) {
    const el_cloud_config *g = &c->cfg;
    *retry_after_ms = -1;
    attempt a;
    memset(&a, 0, sizeof a);
    a.c = c;
    a.on_piece = on_piece;
    a.ud = ud;
    a.t_start = t_start;
    a.t_attempt = el_mono_ms();
    a.tokens_in = a.tokens_out = -1;
    el_sse_init(&a.sse, 0, on_sse_event, &a);
    a.curl = handle_get(c);
    if (!a.curl) {
        el_sse_free(&a.sse);
        return el_fail(err, EDGELLM_ENOMEM, "provider '%s': cannot create a curl handle", g->name);
    }
    char url[600];
    snprintf(url, sizeof url, "%s/chat/completions", g->base_url);
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, stream ? "Accept: text/event-stream" : "Accept: application/json");
    char *auth = NULL;
    if (c->key) {
        size_t n = strlen(c->key) + 32;
        auth = malloc(n);
        if (auth) {
            snprintf(auth, n, "Authorization: Bearer %s", c->key);
            hdr = curl_slist_append(hdr, auth);
        }
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *h = a.curl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(h, CURLOPT_USERAGENT, "edgellm/" EDGELLM_VERSION);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &a);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &a);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    if (g->connect_timeout_ms > 0) curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, g->connect_timeout_ms);
    if (g->total_timeout_ms > 0) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, g->total_timeout_ms);

    CURLcode res = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_off_t ra = -1;
    if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0) *retry_after_ms = (double)ra * 1e3;
    out->http_status = (int)status;
    out->pieces_delivered += a.pieces;

    int rc = 0;
    if (a.failed) {
        *err = a.ferr;
        rc = -1;
    } else if (res != CURLE_OK) {
        if (res == CURLE_ABORTED_BY_CALLBACK && a.first_byte_timeout) {
            rc = el_fail(err, EDGELLM_ETIMEOUT, "provider '%s': no response within the first-byte timeout (%ld ms)",
                         g->name, g->first_byte_timeout_ms);
        } else if (res == CURLE_OPERATION_TIMEDOUT) {
            curl_off_t conn = 0;
            curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &conn);
            if (conn == 0 && !a.got_header)
                rc = el_fail(err, EDGELLM_ETIMEOUT, "provider '%s': connect timeout (%ld ms) to %s", g->name,
                             g->connect_timeout_ms, g->base_url);
            else
                rc = el_fail(err, EDGELLM_ETIMEOUT, "provider '%s': total timeout (%ld ms) passed%s", g->name,
                             g->total_timeout_ms, a.pieces ? " mid-answer" : " before any answer");
        } else if (a.pieces) {
            rc = el_fail(err, EDGELLM_ENETWORK, "provider '%s': connection cut mid-stream after %d pieces (%s)",
                         g->name, a.pieces, errbuf[0] ? errbuf : curl_easy_strerror(res));
        } else {
            rc = el_fail(err, EDGELLM_ENETWORK, "provider '%s': %s (%s)", g->name,
                         errbuf[0] ? errbuf : curl_easy_strerror(res), g->base_url);
        }
    } else if (status < 200 || status >= 300) {
        char text[PROVIDER_TEXT_MAX + 8];
        provider_text(c, a.body, a.body_len, text, sizeof text);
        rc = el_fail(err, status_code(status), "provider '%s': HTTP %ld (%s): %s", g->name, status,
                     status_kind(status), text);
    } else if (a.is_sse) {
        /* A stream is complete with [DONE]; a provider that omits it must at
         * least have sent a finish_reason. Anything else was cut. */
        if (!a.got_done && !a.finish[0])
            rc = el_fail(err, EDGELLM_ENETWORK, "provider '%s': stream ended before [DONE] after %d pieces%s",
                         g->name, a.pieces, el_sse_pending(&a.sse) ? " (an event was cut in the middle)" : "");
    } else {
        rc = parse_completion(&a, err);
    }
    if (rc == 0) {
        out->text = a.text ? a.text : strdup("");
        a.text = NULL;
        out->text_len = strlen(out->text);
        out->tokens_in = a.tokens_in;
        out->tokens_out = a.tokens_out;
        out->ttft_ms = a.pieces ? a.ttft_ms : el_mono_ms() - t_start;
        snprintf(out->finish_reason, sizeof out->finish_reason, "%s", a.finish);
    }
    /* A connection that failed or timed out is not worth keeping. */
    handle_put(c, h, res == CURLE_OK);
    curl_slist_free_all(hdr);
    if (auth) {
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    el_sse_free(&a.sse);
    free(a.body);
    free(a.text);
    return rc;
}

/* ---- retries and the breaker ---- */

static int retryable(edgellm_status s) {
    return s == EDGELLM_ERATELIMIT || s == EDGELLM_ESERVER || s == EDGELLM_ETIMEOUT || s == EDGELLM_ENETWORK;
}

static int chat_upstream(el_cloud *c, const char *body, const el_chat_request *req, el_piece_fn on_piece, void *ud,
                         double t_start, el_chat_result *out, el_err *err) {
    const el_cloud_config *g = &c->cfg;
    if (!c->key && c->key_problem[0])
        return el_fail(err, EDGELLM_EAUTH, "provider '%s': %s", g->name, c->key_problem);
    for (int attempt = 0;; attempt++) {
        double wait_ms = 0;
        if (!el_breaker_allow(&c->breaker, el_mono_ms(), &wait_ms)) {
            out->circuit_open = 1;
            if (attempt == 0)
                return el_fail(err, EDGELLM_ENETWORK,
                               "provider '%s': circuit open after repeated failures; next probe in %.0f ms", g->name,
                               wait_ms);
            err_append(err, " (circuit now open after %d attempts)", attempt);
            return -1;
        }
        out->attempts++;
        double retry_after = -1;
        int rc = attempt_run(c, body, req->stream, on_piece, ud, t_start, out, &retry_after, err);
        /* Only failures that say the provider is unwell count against it. */
        el_breaker_record(&c->breaker, rc == 0 || !retryable(err->code), el_mono_ms());
        if (rc == 0) return 0;
        if (!retryable(err->code) || out->pieces_delivered > 0) return -1; /* never answer twice */
        if (attempt >= g->max_retries) {
            if (attempt > 0) err_append(err, " (gave up after %d attempts)", attempt + 1);
            return -1;
        }
        pthread_mutex_lock(&c->mu);
        double d = el_backoff_full_jitter(&c->rng, attempt, g->backoff_base_ms, g->backoff_max_ms);
        pthread_mutex_unlock(&c->mu);
        if (retry_after >= 0) {
            if (retry_after > g->retry_after_max_ms) {
                err_append(err, " (Retry-After %.0f s is longer than the %.0f ms this client waits)",
                           retry_after / 1e3, g->retry_after_max_ms);
                return -1;
            }
            if (d < retry_after) d = retry_after;
        }
        out->backoff_ms += d;
        el_sleep_ms(d);
    }
}

/* ---- cache, collapsing, and the public entry point ---- */

static void finish_ok(el_chat_result *out, char *text, int tin, int tout, const char *finish, double t_start) {
    out->text = text;
    out->text_len = strlen(text);
    out->tokens_in = tin;
    out->tokens_out = tout;
    snprintf(out->finish_reason, sizeof out->finish_reason, "%s", finish ? finish : "");
    out->ttft_ms = out->total_ms = el_mono_ms() - t_start;
}

static int deliver_whole(const el_cloud *c, el_piece_fn on_piece, void *ud, const el_chat_result *out, el_err *err) {
    if (on_piece && out->text_len && on_piece(ud, out->text, out->text_len))
        return el_fail(err, EDGELLM_ECANCELLED, "provider '%s': the caller stopped the answer", c->cfg.name);
    return 0;
}

/* Waits for the leader of f (c->mu held on entry and exit). Returns 1 if the
 * caller should try again itself (the leader's own caller cancelled). */
static int follow(el_cloud *c, inflight *f, el_chat_result *out, int *rc, el_err *err, double t_start) {
    f->waiters++;
    while (!f->done) pthread_cond_wait(&f->cv, &c->mu);
    f->waiters--;
    int again = f->rc != 0 && f->err.code == EDGELLM_ECANCELLED;
    if (!again) {
        *rc = f->rc;
        if (f->rc == 0) {
            char *t = strdup(f->text ? f->text : "");
            if (!t) *rc = el_fail(err, EDGELLM_ENOMEM, "provider '%s': out of memory", c->cfg.name);
            else finish_ok(out, t, f->tokens_in, f->tokens_out, f->finish_reason, t_start);
        } else if (err) {
            *err = f->err;
        }
        out->collapsed = 1;
    }
    if (f->waiters == 0 && f->leader_gone) {
        free(f->text);
        pthread_cond_destroy(&f->cv);
        free(f);
    }
    return again;
}

static void publish(el_cloud *c, inflight *f, int rc, const el_chat_result *out, const el_err *err) {
    pthread_mutex_lock(&c->mu);
    for (inflight **pp = &c->inflight; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    f->done = 1;
    f->rc = rc;
    if (rc == 0) {
        f->text = out->text ? strdup(out->text) : NULL;
        if (out->text && !f->text) {
            f->rc = -1;
            el_fail(&f->err, EDGELLM_ENOMEM, "provider '%s': out of memory", c->cfg.name);
        }
        f->tokens_in = out->tokens_in;
        f->tokens_out = out->tokens_out;
        snprintf(f->finish_reason, sizeof f->finish_reason, "%s", out->finish_reason);
    } else if (err) {
        f->err = *err;
    }
    pthread_cond_broadcast(&f->cv);
    if (f->waiters == 0) {
        free(f->text);
        pthread_cond_destroy(&f->cv);
        free(f);
    } else {
        f->leader_gone = 1;
    }
    pthread_mutex_unlock(&c->mu);
}

int el_cloud_chat(el_cloud *c, const el_chat_request *req, el_piece_fn on_piece, void *ud, el_chat_result *out,
                  el_err *err) {
    el_err local_err;
    if (!err) err = &local_err;
    memset(out, 0, sizeof *out);
    out->tokens_in = out->tokens_out = -1;
    double t_start = el_mono_ms();
    char *body = el_cloud_request_body(c, req, err);
    if (!body) return -1;
    int cacheable = req->temperature == 0 || req->cache_any;
    char key[65] = "";
    if (cacheable && request_key(c, req, key, err)) {
        free(body);
        return -1;
    }
    int rc = 0;
    if (cacheable && c->cache) {
        char *text = NULL;
        int tin = -1, tout = -1;
        el_err cerr;
        /* A cache that cannot be read is skipped, not fatal: the provider still answers. */
        if (el_cache_get(c->cache, key, el_wall_s(), &text, &tin, &tout, &cerr) == 1) {
            finish_ok(out, text, tin, tout, "", t_start);
            out->from_cache = 1;
            free(body);
            return deliver_whole(c, on_piece, ud, out, err);
        }
    }
    inflight *lead = NULL;
    if (cacheable) {
        pthread_mutex_lock(&c->mu);
        for (;;) {
            inflight *f = c->inflight;
            while (f && strcmp(f->key, key)) f = f->next;
            if (!f) break;
            if (!follow(c, f, out, &rc, err, t_start)) {
                pthread_mutex_unlock(&c->mu);
                free(body);
                if (rc == 0) rc = deliver_whole(c, on_piece, ud, out, err);
                return rc;
            }
        }
        lead = calloc(1, sizeof *lead);
        if (lead) {
            memcpy(lead->key, key, sizeof lead->key);
            pthread_cond_init(&lead->cv, NULL);
            lead->next = c->inflight;
            c->inflight = lead;
        }
        pthread_mutex_unlock(&c->mu);
    }
    rc = chat_upstream(c, body, req, on_piece, ud, t_start, out, err);
    free(body);
    out->total_ms = el_mono_ms() - t_start;
    if (rc == 0 && cacheable && c->cache && out->text) {
        el_err cerr;
        el_cache_put(c->cache, key, out->text, out->tokens_in, out->tokens_out, el_wall_s(), &cerr);
    }
    if (rc) redact_key(c, err->message);
    if (lead) publish(c, lead, rc, out, err);
    return rc;
}
