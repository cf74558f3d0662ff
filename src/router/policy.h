/* The routing policy: which tiers exist (local models and cloud providers),
 * which strategy picks among them, and the limits around them. Read from a JSON
 * file documented in docs/policy.md (example: docs/policy.example.json).
 * Unknown keys are refused so that a typo does not silently change routing. */
#ifndef EL_ROUTER_POLICY_H
#define EL_ROUTER_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "cloud/cloud.h"
#include "core/error.h"

typedef enum el_strategy { EL_STRATEGY_HYBRID, EL_STRATEGY_LOCAL, EL_STRATEGY_CLOUD } el_strategy;
typedef enum el_tier_kind { EL_TIER_LOCAL, EL_TIER_CLOUD } el_tier_kind;

typedef struct el_tier_policy {
    char name[64];
    el_tier_kind kind;
    /* routing: a hybrid request goes to the first local tier whose limits it fits */
    int max_output_tokens;    /* 0: no limit */
    int max_prompt_tokens;    /* 0: no limit */
    /* concurrency, every tier */
    int max_concurrent;       /* jobs running at once (default 1 local, 8 cloud) */
    int queue;                /* jobs allowed to wait (default 16) */
    double queue_timeout_ms;  /* how long one may wait (default 30000) */
    /* local tiers */
    char model_path[1024];
    int threads;              /* 0: the engine decides */
    int context;              /* 0: the model's own */
    int64_t memory_bytes;     /* needed to load it (from "memory_mb"); 0: not checked */
    double keep_alive_s;      /* idle time before unloading; 0: unload after each use; < 0: never */
    /* cloud tiers */
    el_cloud_config cloud;
    double price_in_per_mtok;  /* USD per million input tokens */
    double price_out_per_mtok; /* USD per million output tokens */
} el_tier_policy;

typedef struct el_policy {
    el_strategy strategy;
    el_tier_policy *tiers;
    size_t n_tiers;
    char ledger_path[1024];         /* empty: no ledger (and so no budget) */
    double monthly_budget_usd;      /* <= 0: no budget */
    double local_ttft_deadline_ms;  /* 0: none */
    double local_total_deadline_ms; /* 0: none */
    char sysroot[512];              /* prefix for /proc and /sys reads (tests); "" normally */
} el_policy;

const char *el_strategy_name(el_strategy s);
int el_strategy_parse(const char *s, el_strategy *out);

/* Parses policy JSON. dir (may be NULL) resolves relative paths in it;
 * where names the source in messages. */
int el_policy_parse(const char *json_text, const char *dir, const char *where, el_policy *out, el_err *err);
int el_policy_load(const char *path, el_policy *out, el_err *err);
void el_policy_free(el_policy *p);

#endif
