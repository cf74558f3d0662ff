#include "router/policy.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *el_strategy_name(el_strategy s) {
    switch (s) {
    case EL_STRATEGY_LOCAL: return "local";
    case EL_STRATEGY_CLOUD: return "cloud";
    default: return "hybrid";
    }
}

int el_strategy_parse(const char *s, el_strategy *out) {
    if (!strcmp(s, "hybrid")) *out = EL_STRATEGY_HYBRID;
    else if (!strcmp(s, "local")) *out = EL_STRATEGY_LOCAL;
    else if (!strcmp(s, "cloud")) *out = EL_STRATEGY_CLOUD;
    else return -1;
    return 0;
}

/* Keys starting with '_' are comments. Returns the first key not in allowed. */
static const char *unknown_key(json_t *obj, const char *const *allowed) {
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        (void)v;
        if (k[0] == '_') continue;
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (!strcmp(k, *a)) ok = 1;
        if (!ok) return k;
    }
    return NULL;
}

typedef struct ctx {
    const char *where;
    const char *dir;
    char scope[128]; /* "tier 2 ('cloud')" */
    el_err *err;
} ctx;

static int get_num(ctx *c, json_t *o, const char *key, double lo, double hi, double *out) {
    json_t *v = json_object_get(o, key);
    if (!v) return 0;
    if (!json_is_number(v))
        return el_fail(c->err, EDGELLM_EFORMAT, "policy %s: %s%s'%s' must be a number", c->where, c->scope,
                       c->scope[0] ? ": " : "", key);
    double d = json_number_value(v);
    if (d < lo || d > hi)
        return el_fail(c->err, EDGELLM_ERANGE, "policy %s: %s%s'%s' = %g is outside [%g, %g]", c->where, c->scope,
                       c->scope[0] ? ": " : "", key, d, lo, hi);
    *out = d;
    return 0;
}

static int get_int(ctx *c, json_t *o, const char *key, int lo, int hi, int *out) {
    double d = *out;
    if (get_num(c, o, key, lo, hi, &d)) return -1;
    if (d != (double)(int)d)
        return el_fail(c->err, EDGELLM_EFORMAT, "policy %s: %s%s'%s' must be a whole number", c->where, c->scope,
                       c->scope[0] ? ": " : "", key);
    *out = (int)d;
    return 0;
}

static int get_long(ctx *c, json_t *o, const char *key, long *out) {
    double d = (double)*out;
    if (get_num(c, o, key, 0, 86400000.0, &d)) return -1;
    *out = (long)d;
    return 0;
}

static int get_str(ctx *c, json_t *o, const char *key, char *out, size_t n) {
    json_t *v = json_object_get(o, key);
    if (!v) return 0;
    if (!json_is_string(v))
        return el_fail(c->err, EDGELLM_EFORMAT, "policy %s: %s%s'%s' must be a string", c->where, c->scope,
                       c->scope[0] ? ": " : "", key);
    if (json_string_length(v) >= n)
        return el_fail(c->err, EDGELLM_ERANGE, "policy %s: %s%s'%s' is longer than %zu bytes", c->where, c->scope,
                       c->scope[0] ? ": " : "", key, n - 1);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

/* "~/x" -> $HOME/x; a relative path -> relative to the policy file's folder. */
static int get_path(ctx *c, json_t *o, const char *key, char *out, size_t n) {
    char raw[1024] = "";
    if (get_str(c, o, key, raw, sizeof raw)) return -1;
    if (!raw[0]) return 0;
    int len;
    const char *home = getenv("HOME");
    if (raw[0] == '~' && raw[1] == '/' && home) len = snprintf(out, n, "%s/%s", home, raw + 2);
    else if (raw[0] != '/' && c->dir && c->dir[0]) len = snprintf(out, n, "%s/%s", c->dir, raw);
    else len = snprintf(out, n, "%s", raw);
    if (len < 0 || (size_t)len >= n)
        return el_fail(c->err, EDGELLM_ERANGE, "policy %s: %s%s'%s' path is too long", c->where, c->scope,
                       c->scope[0] ? ": " : "", key);
    return 0;
}

static const char *const TIER_KEYS[] = {
    "name", "kind", "max_output_tokens", "max_prompt_tokens", "max_concurrent", "queue", "queue_timeout_ms",
    "model", "threads", "context", "memory_mb", "keep_alive_s", "base_url", "api_key_env", "api_key_file",
    "price_in_per_mtok", "price_out_per_mtok", "connect_timeout_ms", "first_byte_timeout_ms", "total_timeout_ms",
    "max_retries", "backoff_base_ms", "backoff_max_ms", "retry_after_max_ms", "breaker_threshold",
    "breaker_cooldown_ms", "seed", NULL};
static const char *const LOCAL_ONLY[] = {"threads", "context", "memory_mb", "keep_alive_s", NULL};
static const char *const CLOUD_ONLY[] = {"base_url", "api_key_env", "api_key_file", "price_in_per_mtok",
                                         "price_out_per_mtok", "connect_timeout_ms", "first_byte_timeout_ms",
                                         "total_timeout_ms", "max_retries", "backoff_base_ms", "backoff_max_ms",
                                         "retry_after_max_ms", "breaker_threshold", "breaker_cooldown_ms", "seed",
                                         NULL};

static int parse_tier(ctx *c, json_t *o, size_t idx, el_tier_policy *t, const el_cloud_config *cache_cfg) {
    snprintf(c->scope, sizeof c->scope, "tier %zu", idx);
    if (!json_is_object(o)) return el_fail(c->err, EDGELLM_EFORMAT, "policy %s: tier %zu is not an object", c->where, idx);
    if (get_str(c, o, "name", t->name, sizeof t->name)) return -1;
    if (!t->name[0]) return el_fail(c->err, EDGELLM_EFORMAT, "policy %s: tier %zu has no 'name'", c->where, idx);
    snprintf(c->scope, sizeof c->scope, "tier %zu ('%s')", idx, t->name);
    const char *bad = unknown_key(o, TIER_KEYS);
    if (bad) return el_fail(c->err, EDGELLM_EFORMAT, "policy %s: %s: unknown key '%s'", c->where, c->scope, bad);
    char kind[16] = "";
    if (get_str(c, o, "kind", kind, sizeof kind)) return -1;
    if (!strcmp(kind, "local")) t->kind = EL_TIER_LOCAL;
    else if (!strcmp(kind, "cloud")) t->kind = EL_TIER_CLOUD;
    else return el_fail(c->err, EDGELLM_EFORMAT, "policy %s: %s: 'kind' must be \"local\" or \"cloud\"", c->where, c->scope);
    const char *const *other = t->kind == EL_TIER_LOCAL ? CLOUD_ONLY : LOCAL_ONLY;
    for (const char *const *k = other; *k; k++)
        if (json_object_get(o, *k))
            return el_fail(c->err, EDGELLM_EFORMAT, "policy %s: %s: '%s' does not apply to a %s tier", c->where,
                           c->scope, *k, kind);
    t->max_concurrent = t->kind == EL_TIER_LOCAL ? 1 : 8;
    t->queue = 16;
    t->queue_timeout_ms = 30000;
    if (get_int(c, o, "max_output_tokens", 0, INT_MAX, &t->max_output_tokens) ||
        get_int(c, o, "max_prompt_tokens", 0, INT_MAX, &t->max_prompt_tokens) ||
        get_int(c, o, "max_concurrent", 1, 4096, &t->max_concurrent) || get_int(c, o, "queue", 0, 1 << 20, &t->queue) ||
        get_num(c, o, "queue_timeout_ms", 0, 86400000.0, &t->queue_timeout_ms))
        return -1;
    if (t->kind == EL_TIER_LOCAL) {
        double mb = 0;
        t->keep_alive_s = 300;
        if (get_path(c, o, "model", t->model_path, sizeof t->model_path) ||
            get_int(c, o, "threads", 0, 1024, &t->threads) || get_int(c, o, "context", 0, 1 << 24, &t->context) ||
            get_num(c, o, "memory_mb", 0, 1e9, &mb) || get_num(c, o, "keep_alive_s", -1, 1e9, &t->keep_alive_s))
            return -1;
        if (!t->model_path[0])
            return el_fail(c->err, EDGELLM_EFORMAT, "policy %s: %s: a local tier needs 'model' (a GGUF path)", c->where, c->scope);
        t->memory_bytes = (int64_t)(mb * 1048576.0);
        return 0;
    }
    el_cloud_config *g = &t->cloud;
    el_cloud_config_defaults(g);
    snprintf(g->name, sizeof g->name, "%s", t->name);
    memcpy(g->cache_path, cache_cfg->cache_path, sizeof g->cache_path);
    g->cache_ttl_s = cache_cfg->cache_ttl_s;
    g->cache_max_bytes = cache_cfg->cache_max_bytes;
    double seed = 0;
    if (get_str(c, o, "base_url", g->base_url, sizeof g->base_url) ||
        get_str(c, o, "model", g->model, sizeof g->model) ||
        get_str(c, o, "api_key_env", g->api_key_env, sizeof g->api_key_env) ||
        get_path(c, o, "api_key_file", g->api_key_file, sizeof g->api_key_file) ||
        get_num(c, o, "price_in_per_mtok", 0, 1e6, &t->price_in_per_mtok) ||
        get_num(c, o, "price_out_per_mtok", 0, 1e6, &t->price_out_per_mtok) ||
        get_long(c, o, "connect_timeout_ms", &g->connect_timeout_ms) ||
        get_long(c, o, "first_byte_timeout_ms", &g->first_byte_timeout_ms) ||
        get_long(c, o, "total_timeout_ms", &g->total_timeout_ms) || get_int(c, o, "max_retries", 0, 100, &g->max_retries) ||
        get_num(c, o, "backoff_base_ms", 0, 3.6e6, &g->backoff_base_ms) ||
        get_num(c, o, "backoff_max_ms", 0, 3.6e6, &g->backoff_max_ms) ||
        get_num(c, o, "retry_after_max_ms", 0, 3.6e6, &g->retry_after_max_ms) ||
        get_int(c, o, "breaker_threshold", 0, 1000000, &g->breaker_threshold) ||
        get_num(c, o, "breaker_cooldown_ms", 0, 8.64e7, &g->breaker_cooldown_ms) ||
        get_num(c, o, "seed", 0, 9007199254740992.0, &seed))
        return -1;
    g->seed = (uint64_t)seed;
    if (!g->base_url[0] || !g->model[0])
        return el_fail(c->err, EDGELLM_EFORMAT, "policy %s: %s: a cloud tier needs 'base_url' and 'model'", c->where, c->scope);
    return 0;
}

static const char *const TOP_KEYS[] = {"strategy", "tiers", "ledger", "cache", "monthly_budget_usd",
                                       "local_ttft_deadline_ms", "local_total_deadline_ms", "sysroot", NULL};
static const char *const CACHE_KEYS[] = {"path", "ttl_s", "max_mb", NULL};

int el_policy_parse(const char *json_text, const char *dir, const char *where, el_policy *out, el_err *err) {
    memset(out, 0, sizeof *out);
    ctx c = {where, dir, "", err};
    json_error_t je;
    json_t *root = json_loads(json_text, 0, &je);
    if (!root)
        return el_fail(err, EDGELLM_EFORMAT, "policy %s: line %d column %d: %s", where, je.line, je.column, je.text);
    int rc = -1;
    if (!json_is_object(root)) {
        el_fail(err, EDGELLM_EFORMAT, "policy %s: the top level must be an object", where);
        goto done;
    }
    const char *bad = unknown_key(root, TOP_KEYS);
    if (bad) {
        el_fail(err, EDGELLM_EFORMAT, "policy %s: unknown key '%s'", where, bad);
        goto done;
    }
    char strategy[16] = "hybrid";
    if (get_str(&c, root, "strategy", strategy, sizeof strategy)) goto done;
    if (el_strategy_parse(strategy, &out->strategy)) {
        el_fail(err, EDGELLM_EFORMAT, "policy %s: 'strategy' must be \"local\", \"cloud\" or \"hybrid\", not \"%s\"",
                where, strategy);
        goto done;
    }
    if (get_path(&c, root, "ledger", out->ledger_path, sizeof out->ledger_path) ||
        get_num(&c, root, "monthly_budget_usd", 0, 1e9, &out->monthly_budget_usd) ||
        get_num(&c, root, "local_ttft_deadline_ms", 0, 8.64e7, &out->local_ttft_deadline_ms) ||
        get_num(&c, root, "local_total_deadline_ms", 0, 8.64e7, &out->local_total_deadline_ms) ||
        get_str(&c, root, "sysroot", out->sysroot, sizeof out->sysroot))
        goto done;
    if (out->monthly_budget_usd > 0 && !out->ledger_path[0]) {
        el_fail(err, EDGELLM_EINVAL, "policy %s: 'monthly_budget_usd' needs a 'ledger' to count spending in", where);
        goto done;
    }
    el_cloud_config cache_cfg;
    el_cloud_config_defaults(&cache_cfg);
    json_t *cache = json_object_get(root, "cache");
    if (cache) {
        snprintf(c.scope, sizeof c.scope, "cache");
        if (!json_is_object(cache) || (bad = unknown_key(cache, CACHE_KEYS))) {
            el_fail(err, EDGELLM_EFORMAT, "policy %s: 'cache' must be an object with path, ttl_s, max_mb%s%s", where,
                    bad ? "; unknown key " : "", bad ? bad : "");
            goto done;
        }
        double max_mb = (double)cache_cfg.cache_max_bytes / 1048576.0;
        if (get_path(&c, cache, "path", cache_cfg.cache_path, sizeof cache_cfg.cache_path) ||
            get_num(&c, cache, "ttl_s", 0, 1e10, &cache_cfg.cache_ttl_s) || get_num(&c, cache, "max_mb", 0, 1e7, &max_mb))
            goto done;
        cache_cfg.cache_max_bytes = (int64_t)(max_mb * 1048576.0);
        c.scope[0] = '\0';
    }
    json_t *tiers = json_object_get(root, "tiers");
    if (!json_is_array(tiers) || json_array_size(tiers) == 0) {
        el_fail(err, EDGELLM_EFORMAT, "policy %s: 'tiers' must be a non-empty array", where);
        goto done;
    }
    out->n_tiers = json_array_size(tiers);
    out->tiers = calloc(out->n_tiers, sizeof *out->tiers);
    if (!out->tiers) {
        el_fail(err, EDGELLM_ENOMEM, "policy %s: out of memory for %zu tiers", where, out->n_tiers);
        goto done;
    }
    for (size_t i = 0; i < out->n_tiers; i++) {
        if (parse_tier(&c, json_array_get(tiers, i), i, &out->tiers[i], &cache_cfg)) goto done;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(out->tiers[j].name, out->tiers[i].name)) {
                el_fail(err, EDGELLM_EFORMAT, "policy %s: two tiers are named '%s'", where, out->tiers[i].name);
                goto done;
            }
    }
    rc = 0;
done:
    json_decref(root);
    if (rc) el_policy_free(out);
    return rc;
}

int el_policy_load(const char *path, el_policy *out, el_err *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return el_fail(err, EDGELLM_EIO, "policy '%s': cannot open it", path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > ((size_t)4 << 20)) {
                free(buf);
                fclose(f);
                return el_fail(err, EDGELLM_ERANGE, "policy '%s': larger than 4 MiB", path);
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return el_fail(err, EDGELLM_ENOMEM, "policy '%s': out of memory", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, 4096, f);
        len += got;
        if (got < 4096) break;
    }
    int ioerr = ferror(f);
    fclose(f);
    if (ioerr) {
        free(buf);
        return el_fail(err, EDGELLM_EIO, "policy '%s': read error", path);
    }
    buf[len] = '\0';
    const char *nul = memchr(buf, '\0', len);
    if (nul) {
        size_t at = (size_t)(nul - buf);
        free(buf);
        /* JSON text never holds a raw NUL: whatever follows it would be silently ignored. */
        return el_fail(err, EDGELLM_EFORMAT, "policy '%s': a NUL byte at offset %zu (not a JSON text file?)",
                       path, at);
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    char where[1100];
    snprintf(where, sizeof where, "'%s'", path);
    int rc = el_policy_parse(buf, dir, where, out, err);
    free(buf);
    return rc;
}

void el_policy_free(el_policy *p) {
    free(p->tiers);
    p->tiers = NULL;
    p->n_tiers = 0;
}
