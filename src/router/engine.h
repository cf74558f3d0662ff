/* The on-device engine (the public API in include/edgellm.h) as a router
 * backend (router/backend.h): load opens the GGUF model and one context;
 * generate renders the messages with the model's chat template, generates with
 * streaming, stop sequences and the router's abort check; unload frees both.
 *
 * Concurrent generate calls on one handle each get their own context (taken
 * from a small pool, created on demand), so a tier's max_concurrent > 1 works
 * at the cost of one KV cache per concurrent job.
 *
 * Limitation: edgellm_generate reports progress per sampled token only, so the
 * abort check (TTFT deadline) cannot interrupt a long prompt evaluation; the
 * answer is abandoned at its first token instead. */
#ifndef EL_ROUTER_ENGINE_H
#define EL_ROUTER_ENGINE_H

#include "router/backend.h"

const el_local_backend *el_engine_backend(void);

#endif
