/* One input through the routing-policy parser (el_policy_parse, src/router/policy.c),
 * shared by the libFuzzer target tests/fuzz/fuzz_policy.c and tests/test_fuzz_corpora.c.
 *
 * A refused policy must say why and name its source, and leave nothing allocated; an
 * accepted one must hold only what docs/policy.md allows: at least one tier, unique
 * non-empty names, every number inside its documented range, the fields a kind needs. */
#ifndef FUZZ_POLICY_BODY_H
#define FUZZ_POLICY_BODY_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "router/policy.h"

#define FUZZ_POLICY_WHERE "fuzz-policy"
#define FUZZ_POLICY_DIR "/fuzz/policy-dir"

typedef struct fuzz_policy_outcome {
    int rc;
    edgellm_status code;
    size_t n_tiers;
} fuzz_policy_outcome;

#define FUZZ_IN(v, lo, hi) ((v) >= (lo) && (v) <= (hi))

static const char *fuzz_policy_check_tier(const el_tier_policy *t) {
    if (!t->name[0] || strnlen(t->name, sizeof t->name) == sizeof t->name) return "a tier name empty or unterminated";
    if (t->kind != EL_TIER_LOCAL && t->kind != EL_TIER_CLOUD) return "a tier kind outside the enum";
    if (t->max_output_tokens < 0 || t->max_prompt_tokens < 0) return "a negative token limit";
    if (!FUZZ_IN(t->max_concurrent, 1, 4096) || !FUZZ_IN(t->queue, 0, 1 << 20)) return "concurrency out of range";
    if (!FUZZ_IN(t->queue_timeout_ms, 0, 86400000.0)) return "queue_timeout_ms out of range";
    if (t->kind == EL_TIER_LOCAL) {
        if (!t->model_path[0] || strnlen(t->model_path, sizeof t->model_path) == sizeof t->model_path)
            return "a local tier without a model path";
        if (!FUZZ_IN(t->threads, 0, 1024) || !FUZZ_IN(t->context, 0, 1 << 24)) return "threads or context out of range";
        if (!FUZZ_IN(t->memory_bytes, 0, (int64_t)1e9 * 1048576)) return "memory_bytes out of range";
        if (!FUZZ_IN(t->keep_alive_s, -1, 1e9)) return "keep_alive_s out of range";
        return NULL;
    }
    const el_cloud_config *g = &t->cloud;
    if (!g->base_url[0] || !g->model[0]) return "a cloud tier without base_url or model";
    if (strnlen(g->base_url, sizeof g->base_url) == sizeof g->base_url ||
        strnlen(g->model, sizeof g->model) == sizeof g->model ||
        strnlen(g->api_key_env, sizeof g->api_key_env) == sizeof g->api_key_env ||
        strnlen(g->api_key_file, sizeof g->api_key_file) == sizeof g->api_key_file)
        return "a cloud string unterminated";
    if (strcmp(g->name, t->name)) return "the provider is not named after its tier";
    if (!FUZZ_IN(t->price_in_per_mtok, 0, 1e6) || !FUZZ_IN(t->price_out_per_mtok, 0, 1e6)) return "a price out of range";
    if (!FUZZ_IN(g->connect_timeout_ms, 0, 86400000L) || !FUZZ_IN(g->first_byte_timeout_ms, 0, 86400000L) ||
        !FUZZ_IN(g->total_timeout_ms, 0, 86400000L))
        return "a timeout out of range";
    if (!FUZZ_IN(g->max_retries, 0, 100) || !FUZZ_IN(g->breaker_threshold, 0, 1000000)) return "retries out of range";
    if (!FUZZ_IN(g->backoff_base_ms, 0, 3.6e6) || !FUZZ_IN(g->backoff_max_ms, 0, 3.6e6) ||
        !FUZZ_IN(g->retry_after_max_ms, 0, 3.6e6) || !FUZZ_IN(g->breaker_cooldown_ms, 0, 8.64e7))
        return "a backoff or breaker time out of range";
    if (g->seed > ((uint64_t)1 << 53)) return "seed out of range";
    if (!FUZZ_IN(g->cache_ttl_s, 0, 1e10) || !FUZZ_IN(g->cache_max_bytes, 0, (int64_t)1e7 * 1048576))
        return "cache settings out of range";
    return NULL;
}

static const char *fuzz_policy_check(const el_policy *p) {
    el_strategy s;
    if (el_strategy_parse(el_strategy_name(p->strategy), &s) || s != p->strategy) return "strategy outside the enum";
    if (p->n_tiers == 0 || !p->tiers) return "accepted without tiers";
    if (!FUZZ_IN(p->monthly_budget_usd, 0, 1e9)) return "monthly_budget_usd out of range";
    if (p->monthly_budget_usd > 0 && !p->ledger_path[0]) return "a budget without a ledger";
    if (!FUZZ_IN(p->local_ttft_deadline_ms, 0, 8.64e7) || !FUZZ_IN(p->local_total_deadline_ms, 0, 8.64e7))
        return "a local deadline out of range";
    if (strnlen(p->ledger_path, sizeof p->ledger_path) == sizeof p->ledger_path ||
        strnlen(p->sysroot, sizeof p->sysroot) == sizeof p->sysroot)
        return "ledger or sysroot unterminated";
    for (size_t i = 0; i < p->n_tiers; i++) {
        const char *b = fuzz_policy_check_tier(&p->tiers[i]);
        if (b) return b;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(p->tiers[i].name, p->tiers[j].name)) return "two tiers share a name";
    }
    return NULL;
}

/* Runs one input (a policy file's bytes; the parser reads up to the first NUL, as
 * el_policy_load does). Returns NULL, or the invariant that broke. */
static const char *fuzz_policy_one(const uint8_t *data, size_t size, fuzz_policy_outcome *out) {
    memset(out, 0, sizeof *out);
    char *text = malloc(size + 1);
    if (!text) return "out of memory in the harness";
    if (size) memcpy(text, data, size);
    text[size] = '\0';
    el_policy p;
    el_err err = {EDGELLM_OK, ""};
    out->rc = el_policy_parse(text, FUZZ_POLICY_DIR, FUZZ_POLICY_WHERE, &p, &err);
    out->code = err.code;
    out->n_tiers = p.n_tiers;
    free(text);
    const char *broken = NULL;
    if (out->rc) {
        if (out->rc != -1) broken = "a failure other than -1";
        else if (err.code == EDGELLM_OK || !err.message[0]) broken = "refused without a code and a message";
        else if (!strstr(err.message, FUZZ_POLICY_WHERE)) broken = "the message does not name the policy";
        else if (p.tiers || p.n_tiers) broken = "a refused policy still holds tiers";
    } else {
        broken = fuzz_policy_check(&p);
    }
    el_policy_free(&p);
    return broken;
}

#endif
