/* The hybrid router: an app asks once, the router decides where it runs.
 *
 * Strategies: "local" (local tiers only), "cloud" (cloud tiers only), "hybrid"
 * (rules pick a first tier; the others are fallbacks). Hybrid rules, in order:
 * a caller's tier hint; quality "high" -> the first cloud tier, "low" -> the
 * first local tier; otherwise the first local tier whose max_output_tokens and
 * max_prompt_tokens the request fits (prompt length estimated as bytes / 4,
 * no max_tokens counts as long), else the first cloud tier.
 *
 * Fallbacks, in the order tiers are tried (the chosen one, then the others in
 * policy order): a local tier that lacks memory to load (MemAvailable and the
 * cgroup room, checked before loading, after unloading idle models), fails to
 * load, fails to run or is busy -> the next tier; a local tier that misses the
 * TTFT or total deadline -> straight to the cloud; a cloud tier that is
 * unreachable, rate-limited past its retries, failing or whose circuit is open
 * -> the next tier (local: offline operation); monthly budget spent -> cloud
 * tiers are skipped. If a tier failed after part of an answer was streamed,
 * the callback gets EL_ROUTE_RESTART before the next tier's answer.
 *
 * Local models load lazily on first use, are shared by concurrent requests (one
 * load), and unload after keep_alive_s idle or when another model needs the
 * memory. Every tier runs at most max_concurrent jobs; up to `queue` more wait
 * (each at most queue_timeout_ms); beyond that the tier is busy (EBUSY). */
#ifndef EL_ROUTER_ROUTER_H
#define EL_ROUTER_ROUTER_H

#include <stddef.h>

#include "cloud/cloud.h"
#include "core/error.h"
#include "router/backend.h"
#include "router/policy.h"

typedef enum el_quality { EL_QUALITY_ANY, EL_QUALITY_LOW, EL_QUALITY_HIGH } el_quality;

typedef struct el_route_request {
    const el_chat_msg *messages;
    size_t n_messages;
    int max_tokens;          /* <= 0: unknown (treated as a long answer) */
    double temperature;      /* < 0: default */
    const char *const *stop;
    size_t n_stop;
    const char *tier_hint;   /* try this tier first (NULL: none) */
    el_quality quality;
} el_route_request;

enum { EL_ROUTE_PIECE = 0, EL_ROUTE_RESTART = 1 };
/* event EL_ROUTE_PIECE: piece of the answer; EL_ROUTE_RESTART: discard what was
 * printed so far, another tier answers from the start. Return non-zero to stop. */
typedef int (*el_route_fn)(void *ud, int event, const char *piece, size_t len);

typedef struct el_route_result {
    char *text;               /* malloc'd answer */
    char tier[64];            /* the tier that answered ("" if none did) */
    char model[1024];
    int local;                /* 1 if it ran on the device */
    char why[256];            /* why the first tier was chosen */
    char fallback[1024];      /* "tier: reason; tier: reason" for every tier that did not answer */
    int tokens_in, tokens_out;
    double ttft_ms, latency_ms;
    double cost_usd;
    int from_cache;
    int restarts;             /* EL_ROUTE_RESTART events sent */
    char warning[512];        /* a problem that did not stop the answer (e.g. the ledger write failed) */
} el_route_result;

void el_route_result_free(el_route_result *r);

typedef struct el_router el_router;

/* backend may be NULL: local tiers then fail with "no local engine" and fall back. */
el_router *el_router_open(const el_policy *policy, const el_local_backend *backend, el_err *err);
void el_router_close(el_router *r);

/* Routes one request. On failure, out still says why every tier failed
 * (out->fallback) and err carries a code: EBUSY if every tier was busy,
 * EBUDGET if the budget ruled the cloud out and nothing local answered,
 * otherwise the last tier's error. Each call is recorded in the ledger. */
int el_router_ask(el_router *r, const el_route_request *req, el_route_fn on_piece, void *ud, el_route_result *out,
                  el_err *err);

/* Lifecycle, for tests and long-running servers: is the tier's model loaded;
 * unload every idle local model now (as if memory ran low). */
int el_router_is_loaded(el_router *r, const char *tier);
int el_router_unload_idle(el_router *r);
/* Jobs running on and waiting for a tier; -1 if there is no such tier. */
int el_router_tier_load(el_router *r, const char *tier, int *running, int *waiting);

#endif
