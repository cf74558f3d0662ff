/* Shared by `edgellm run` and `edgellm chat`: option parsing, finding the model,
 * loading it, and reporting timing statistics. */
#ifndef EDGELLM_TOOLS_RUN_COMMON_H
#define EDGELLM_TOOLS_RUN_COMMON_H

#include <stdbool.h>
#include <stdio.h>

#include "edgellm.h"

typedef struct run_opts {
    const char *model;      /* -m; NULL: $EDGELLM_MODEL, then the setup script's default */
    const char *prompt;     /* -p (run) */
    const char *system;     /* --system */
    int n_predict;          /* -n; < 0: until the model stops or the context is full */
    edgellm_context_params ctx;
    edgellm_model_params model_params; /* --no-repack */
    edgellm_sampling_params sampling;
    bool seed_set;
    bool stats_json;        /* --stats-json: statistics as one JSON line on stderr */
    bool stats_text;        /* chat: --stats prints them after every answer */
    bool chat_format;       /* run: wrap the prompt in the model's chat template */
    /* run: speculative decoding (docs/speculative.md) */
    bool spec_lookup;       /* --spec-lookup: draft by prompt lookup */
    const char *draft;      /* --draft MODEL: draft with a smaller model of the same vocabulary */
    int draft_max;          /* --draft-max N: most drafts per step (default 8) */
    int spec_ngram;         /* --spec-ngram N: longest n-gram prompt lookup matches (default 4) */
} run_opts;

/* Parse argv (argv[0] is the subcommand). is_chat selects which options are accepted.
 * Returns 0 to go on, or an exit code + 1 (1: --help shown, exit 0; 3: bad usage, exit 2). */
int run_opts_parse(int argc, char **argv, bool is_chat, run_opts *o, void (*usage)(FILE *));

/* The common option lines for --help. */
void run_opts_help(FILE *f, bool is_chat);

/* -m, else $EDGELLM_MODEL, else the path in ~/.cache/edgellm/default-model ($XDG_CACHE_HOME
 * respected). Returns false (after printing why) when none is available. */
bool run_find_model(const run_opts *o, char *path, size_t cap);

/* Load the model and create a context, printing errors; false on failure. */
bool run_load(const run_opts *o, edgellm_model **model, edgellm_context **ctx);

/* With --draft: load the draft model and a context like the target's (n_ctx of ctx),
 * refusing a model whose vocabulary differs. Without it, sets both to NULL and
 * succeeds. Prints errors; false on failure. */
bool run_load_draft(const run_opts *o, const edgellm_model *target, const edgellm_context *ctx,
                    edgellm_model **draft, edgellm_context **dctx);

/* gp->spec from the options (dctx: run_load_draft's context, or NULL). */
void run_spec_params(const run_opts *o, edgellm_context *dctx, edgellm_generate_params *gp);

/* Load time, prompt tokens, TTFT, prefill and decode speed, peak RSS: to stderr, as text
 * or (json) as one JSON line. */
void run_print_stats(FILE *f, const edgellm_model *model, const edgellm_stats *st, bool json, uint64_t seed);

#endif
