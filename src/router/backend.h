/* The local-tier interface the router needs from an on-device engine. The
 * router only sees these three functions, so tests plug in a fake engine (one
 * that fails to load, fails to run or is slow) and the CLI plugs in the real
 * one (src/model) once it exists.
 *
 * Contract:
 *  - load(ctx, path, threads, n_ctx, err) returns an opaque model handle or NULL
 *    with err filled (EIO / EFORMAT / ENOMEM / EUNSUPPORTED ...).
 *  - generate(...) formats messages with the model's chat template, generates
 *    at most p->max_tokens tokens (<= 0: up to the context), passes each piece
 *    of UTF-8 text to cb->on_piece as soon as it is decoded, polls
 *    cb->should_abort between steps (prefill chunks and sampled tokens) and
 *    stops with ECANCELLED when either returns non-zero. It fills usage
 *    (prompt and generated token counts) and returns 0, or -1 with err.
 *    The router may call generate on one handle from several threads at once
 *    when a tier's max_concurrent > 1; an engine that cannot do that must be
 *    given max_concurrent 1 in the policy.
 *  - unload(ctx, handle) frees everything load made. */
#ifndef EL_ROUTER_BACKEND_H
#define EL_ROUTER_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "cloud/cloud.h"
#include "core/error.h"

typedef struct el_gen_params {
    int max_tokens;
    double temperature;     /* < 0: the engine's default */
    const char *const *stop;
    size_t n_stop;
    uint64_t seed;
} el_gen_params;

typedef struct el_local_callbacks {
    int (*on_piece)(void *ud, const char *piece, size_t len);
    int (*should_abort)(void *ud);
    void *ud;
} el_local_callbacks;

typedef struct el_local_usage {
    int tokens_in;
    int tokens_out;
} el_local_usage;

typedef struct el_local_backend {
    void *ctx;
    void *(*load)(void *ctx, const char *path, int threads, int n_ctx, el_err *err);
    int (*generate)(void *ctx, void *model, const el_chat_msg *messages, size_t n_messages, const el_gen_params *p,
                    const el_local_callbacks *cb, el_local_usage *usage, el_err *err);
    void (*unload)(void *ctx, void *model);
} el_local_backend;

#endif
