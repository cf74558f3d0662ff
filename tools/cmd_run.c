/* edgellm run: generate text from a prompt, streaming it to stdout as it comes,
 * then print timing statistics to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "edgellm.h"
#include "run_common.h"

static void usage(FILE *f) {
    fprintf(f, "usage: edgellm run [-m MODEL] -p PROMPT [OPTIONS]\n\n"
               "Generate text from PROMPT with a local GGUF model, streaming it to stdout as it is\n"
               "produced; timing statistics (load time, prompt tokens, time to first token, prefill\n"
               "and decode speed, peak memory) go to stderr at the end.\n\noptions:\n");
    run_opts_help(f, false);
    fprintf(f, "\nexit status: 0 done, 1 the model could not be loaded or run, 2 wrong usage\n");
}

static int print_token(void *user, int32_t token, const char *text, size_t len) {
    (void)user;
    (void)token;
    if (len) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    return 0;
}

int cmd_run(int argc, char **argv) {
    run_opts o;
    int rc = run_opts_parse(argc, argv, false, &o, usage);
    if (rc) return rc - 1;
    if (!o.prompt) {
        fprintf(stderr, "edgellm run: a prompt is required (-p TEXT)\n\n");
        usage(stderr);
        return 2;
    }
    edgellm_model *model;
    edgellm_context *ctx;
    if (!run_load(&o, &model, &ctx)) return 1;
    edgellm_model *draft = NULL;
    edgellm_context *dctx = NULL;
    if (!run_load_draft(&o, model, ctx, &draft, &dctx)) {
        edgellm_context_free(ctx);
        edgellm_model_free(model);
        return 1;
    }

    char *formatted = NULL;
    const char *prompt = o.prompt;
    if (o.chat_format || o.system) {
        edgellm_chat_message turns[2];
        size_t n = 0;
        if (o.system) turns[n++] = (edgellm_chat_message){"system", o.system};
        turns[n++] = (edgellm_chat_message){"user", o.prompt};
        edgellm_error err = {0};
        formatted = edgellm_chat_format(model, turns, n, 1, &err);
        if (!formatted) {
            fprintf(stderr, "edgellm run: %s\n", err.message);
            edgellm_context_free(dctx);
            edgellm_model_free(draft);
            edgellm_context_free(ctx);
            edgellm_model_free(model);
            return 1;
        }
        prompt = formatted;
    }

    edgellm_generate_params gp = edgellm_generate_default_params();
    gp.max_tokens = o.n_predict;
    gp.sampling = o.sampling;
    run_spec_params(&o, dctx, &gp);
    edgellm_stats st;
    edgellm_error err = {0};
    rc = edgellm_generate(ctx, prompt, &gp, print_token, NULL, &st, &err);
    fputc('\n', stdout);
    fflush(stdout);
    if (rc < 0) {
        fprintf(stderr, "edgellm run: %s\n", err.message);
    } else {
        run_print_stats(stderr, model, &st, o.stats_json, o.sampling.seed);
    }
    free(formatted);
    edgellm_context_free(dctx);
    edgellm_model_free(draft);
    edgellm_context_free(ctx);
    edgellm_model_free(model);
    return rc < 0 ? 1 : 0;
}
