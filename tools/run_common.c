/* Shared parts of `edgellm run` and `edgellm chat`. */
#include "run_common.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static bool parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_float(const char *s, float lo, float hi, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    if (*s == '-') return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end) return false;
    *out = v;
    return true;
}

void run_opts_help(FILE *f, bool is_chat) {
    fprintf(f,
            "  -m, --model PATH     GGUF model (default: $EDGELLM_MODEL, else the one scripts/setup\n"
            "                       installed, named in ~/.cache/edgellm/default-model)\n");
    if (!is_chat) fprintf(f, "  -p, --prompt TEXT    the prompt (required)\n");
    fprintf(f,
            "  -n, --n-predict N    most tokens to generate (default %s; -1: until the model stops)\n"
            "  -c, --ctx-size N     context size in tokens (default: min(4096, the model's))\n"
            "  -b, --batch-size N   prompt tokens per forward pass (default 512)\n"
            "  -t, --threads N      threads (default: the number of online CPUs)\n"
            "  --temp T             temperature; 0 = greedy (default 0.8)\n"
            "  --top-k K            keep the K most likely tokens; 0 = off (default 40)\n"
            "  --top-p P            nucleus sampling; 1 = off (default 0.95)\n"
            "  --min-p M            drop tokens below M x the top probability; 0 = off (default 0.05)\n"
            "  --repeat-penalty R   penalize the last --repeat-last-n tokens; 1 = off (default 1)\n"
            "  --repeat-last-n N    (default 64)\n"
            "  --seed S             random seed (default: from the clock; printed in the statistics)\n"
            "  --kv-type f16|q8_0   KV cache type (default f16)\n"
            "  --numerics fast|llamacpp\n"
            "                       arithmetic: our kernels (default), or llama.cpp's x86 CPU\n"
            "                       arithmetic bit for bit (llama, qwen2, phi3; F16 KV; slower)\n"
            "  --no-repack          leave every weight in the file mapping (by default, at load,\n"
            "                       Q5_0 and Q4_K are regrouped on x86 with AVX2 and Q8_0 copied\n"
            "                       into 2 MiB pages: same output, faster decoding, longer load)\n"
            "  --system TEXT        system prompt (goes into the chat template)\n",
            is_chat ? "-1" : "256");
    if (is_chat)
        fprintf(f, "  --stats              print timing statistics after every answer (stderr)\n"
                   "  --stats-json         the same as one JSON line each\n");
    else
        fprintf(f, "  --chat-format        wrap the prompt in the model's chat template (a user turn)\n"
                   "  --stats-json         print the statistics as one JSON line (stderr)\n");
    fprintf(f,     "  --spec-lookup        speculative decoding, drafting by prompt lookup (n-grams of\n"
                   "                       the prompt and output); the output is the same, only faster\n"
                   "  --draft MODEL        speculative decoding with a smaller draft model (GGUF with the\n"
                   "                       same vocabulary)\n"
                   "  --draft-max N        most drafted tokens per step (default 8)\n"
                   "  --spec-ngram N       longest n-gram prompt lookup matches (default 4)\n");
    fprintf(f, "  -h, --help           show this help\n");
}

int run_opts_parse(int argc, char **argv, bool is_chat, run_opts *o, void (*usage)(FILE *)) {
    memset(o, 0, sizeof *o);
    o->n_predict = is_chat ? -1 : 256;
    o->ctx = edgellm_context_default_params();
    o->model_params = edgellm_model_default_params();
    o->sampling = edgellm_generate_default_params().sampling;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        float x;
#define NEED_VALUE()                                                                  \
    do {                                                                              \
        if (!v) {                                                                     \
            fprintf(stderr, "edgellm %s: option %s needs a value\n", argv[0], a);     \
            return 3;                                                                 \
        }                                                                             \
        i++;                                                                          \
    } while (0)
#define BAD_VALUE()                                                                            \
    do {                                                                                       \
        fprintf(stderr, "edgellm %s: bad value '%s' for option %s\n", argv[0], v, a);          \
        return 3;                                                                              \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            NEED_VALUE();
            o->model = v;
        } else if (!is_chat && (!strcmp(a, "-p") || !strcmp(a, "--prompt"))) {
            NEED_VALUE();
            o->prompt = v;
        } else if (!strcmp(a, "--system")) {
            NEED_VALUE();
            o->system = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            NEED_VALUE();
            if (!parse_int(v, -1, INT32_MAX, &n)) BAD_VALUE();
            o->n_predict = (int)n;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            NEED_VALUE();
            if (!parse_int(v, 0, 1 << 24, &n)) BAD_VALUE();
            o->ctx.n_ctx = (uint32_t)n;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            NEED_VALUE();
            if (!parse_int(v, 1, 8192, &n)) BAD_VALUE();
            o->ctx.n_batch = (uint32_t)n;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED_VALUE();
            if (!parse_int(v, 1, 1024, &n)) BAD_VALUE();
            o->ctx.n_threads = (int)n;
        } else if (!strcmp(a, "--temp")) {
            NEED_VALUE();
            if (!parse_float(v, 0.0f, 100.0f, &x)) BAD_VALUE();
            o->sampling.temperature = x;
        } else if (!strcmp(a, "--top-k")) {
            NEED_VALUE();
            if (!parse_int(v, 0, INT32_MAX, &n)) BAD_VALUE();
            o->sampling.top_k = (int32_t)n;
        } else if (!strcmp(a, "--top-p")) {
            NEED_VALUE();
            if (!parse_float(v, 0.0f, 1.0f, &x)) BAD_VALUE();
            o->sampling.top_p = x;
        } else if (!strcmp(a, "--min-p")) {
            NEED_VALUE();
            if (!parse_float(v, 0.0f, 1.0f, &x)) BAD_VALUE();
            o->sampling.min_p = x;
        } else if (!strcmp(a, "--repeat-penalty")) {
            NEED_VALUE();
            if (!parse_float(v, 0.0f, 100.0f, &x)) BAD_VALUE();
            o->sampling.repeat_penalty = x;
        } else if (!strcmp(a, "--repeat-last-n")) {
            NEED_VALUE();
            if (!parse_int(v, 0, 1 << 24, &n)) BAD_VALUE();
            o->sampling.repeat_last_n = (int32_t)n;
        } else if (!strcmp(a, "--seed")) {
            NEED_VALUE();
            if (!parse_u64(v, &o->sampling.seed)) BAD_VALUE();
            o->seed_set = true;
        } else if (!strcmp(a, "--kv-type")) {
            NEED_VALUE();
            if (!strcmp(v, "f16"))
                o->ctx.kv_type = EDGELLM_KV_F16;
            else if (!strcmp(v, "q8_0"))
                o->ctx.kv_type = EDGELLM_KV_Q8_0;
            else
                BAD_VALUE();
        } else if (!strcmp(a, "--numerics")) {
            NEED_VALUE();
            if (!strcmp(v, "fast"))
                o->ctx.numerics = EDGELLM_NUMERICS_FAST;
            else if (!strcmp(v, "llamacpp"))
                o->ctx.numerics = EDGELLM_NUMERICS_LLAMACPP;
            else
                BAD_VALUE();
        } else if (!strcmp(a, "--no-repack")) {
            o->model_params.no_repack = 1;
        } else if (!strcmp(a, "--stats-json")) {
            o->stats_json = true;
        } else if (is_chat && !strcmp(a, "--stats")) {
            o->stats_text = true;
        } else if (!is_chat && !strcmp(a, "--chat-format")) {
            o->chat_format = true;
        } else if (!strcmp(a, "--spec-lookup")) {
            o->spec_lookup = true;
        } else if (!strcmp(a, "--draft")) {
            NEED_VALUE();
            o->draft = v;
        } else if (!strcmp(a, "--draft-max")) {
            NEED_VALUE();
            if (!parse_int(v, 1, 256, &n)) BAD_VALUE();
            o->draft_max = (int)n;
        } else if (!strcmp(a, "--spec-ngram")) {
            NEED_VALUE();
            if (!parse_int(v, 1, 64, &n)) BAD_VALUE();
            o->spec_ngram = (int)n;
        } else {
            fprintf(stderr, "edgellm %s: unknown option '%s'\n\n", argv[0], a);
            usage(stderr);
            return 3;
        }
#undef NEED_VALUE
#undef BAD_VALUE
    }
    if (o->spec_lookup && o->draft) {
        fprintf(stderr, "edgellm %s: choose one of --spec-lookup and --draft\n", argv[0]);
        return 3;
    }
    if (!o->seed_set) o->sampling.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return 0;
}

bool run_find_model(const run_opts *o, char *path, size_t cap) {
    if (o->model) {
        snprintf(path, cap, "%s", o->model);
        return true;
    }
    const char *env = getenv("EDGELLM_MODEL");
    if (env && *env) {
        snprintf(path, cap, "%s", env);
        return true;
    }
    char file[4096];
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(file, sizeof file, "%s/edgellm/default-model", xdg);
    else if (home && *home)
        snprintf(file, sizeof file, "%s/.cache/edgellm/default-model", home);
    else
        file[0] = '\0';
    FILE *f = file[0] ? fopen(file, "r") : NULL;
    if (f) {
        bool ok = fgets(path, (int)cap, f) != NULL;
        fclose(f);
        if (ok) {
            path[strcspn(path, "\r\n")] = '\0';
            if (path[0] && access(path, R_OK) == 0) return true;
        }
    }
    fprintf(stderr,
            "edgellm: no model given and no default model installed.\n"
            "Pass -m MODEL.gguf, set EDGELLM_MODEL, or run scripts/setup to install the default model\n"
            "(Gemma 3 270M; its path is then kept in ~/.cache/edgellm/default-model).\n");
    return false;
}

bool run_load(const run_opts *o, edgellm_model **model, edgellm_context **ctx) {
    char path[4096];
    *model = NULL;
    *ctx = NULL;
    if (!run_find_model(o, path, sizeof path)) return false;
    edgellm_error err = {0};
    *model = edgellm_model_load(path, &o->model_params, &err);
    if (!*model) {
        fprintf(stderr, "edgellm: cannot load model: %s\n", err.message);
        return false;
    }
    *ctx = edgellm_context_create(*model, &o->ctx, &err);
    if (!*ctx) {
        fprintf(stderr, "edgellm: cannot create a context: %s\n", err.message);
        edgellm_model_free(*model);
        *model = NULL;
        return false;
    }
    return true;
}

bool run_load_draft(const run_opts *o, const edgellm_model *target, const edgellm_context *ctx,
                    edgellm_model **draft, edgellm_context **dctx) {
    *draft = NULL;
    *dctx = NULL;
    if (!o->draft) return true;
    edgellm_error err = {0};
    *draft = edgellm_model_load(o->draft, &o->model_params, &err);
    if (!*draft) {
        fprintf(stderr, "edgellm: cannot load the draft model: %s\n", err.message);
        return false;
    }
    if (edgellm_spec_check_draft(target, *draft, &err) < 0) {
        fprintf(stderr, "edgellm: %s\n", err.message);
        edgellm_model_free(*draft);
        *draft = NULL;
        return false;
    }
    edgellm_context_params cp = o->ctx;
    cp.n_ctx = edgellm_context_n_ctx(ctx);
    *dctx = edgellm_context_create(*draft, &cp, &err);
    if (!*dctx) {
        fprintf(stderr, "edgellm: cannot create the draft model's context: %s\n", err.message);
        edgellm_model_free(*draft);
        *draft = NULL;
        return false;
    }
    return true;
}

void run_spec_params(const run_opts *o, edgellm_context *dctx, edgellm_generate_params *gp) {
    if (o->draft_max > 0) gp->spec.n_draft = o->draft_max;
    if (o->spec_ngram > 0) {
        gp->spec.ngram_max = o->spec_ngram;
        if (gp->spec.ngram_min > o->spec_ngram) gp->spec.ngram_min = o->spec_ngram;
    }
    if (dctx) {
        gp->spec.kind = EDGELLM_SPEC_DRAFT;
        gp->spec.draft = dctx;
    } else if (o->spec_lookup) {
        gp->spec.kind = EDGELLM_SPEC_LOOKUP;
    }
}

static double peak_rss_mib(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_maxrss / 1024.0; /* Linux reports KiB */
}

static const char *stop_name(edgellm_stop_reason r) {
    switch (r) {
    case EDGELLM_STOP_EOG: return "eog";
    case EDGELLM_STOP_LENGTH: return "length";
    case EDGELLM_STOP_CONTEXT_FULL: return "context_full";
    case EDGELLM_STOP_CALLBACK: return "interrupted";
    }
    return "?";
}

void run_print_stats(FILE *f, const edgellm_model *model, const edgellm_stats *st, bool json, uint64_t seed) {
    edgellm_model_info info;
    edgellm_model_get_info(model, &info);
    const double rss = peak_rss_mib();
    if (json) {
        json_t *o = json_pack("{s:f, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:s, s:I}", "load_ms",
                              info.load_ms, "prompt_tokens", (int)st->n_prompt, "reused_tokens", (int)st->n_reused,
                              "generated_tokens", (int)st->n_generated, "ttft_ms", st->ttft_ms, "prefill_ms",
                              st->prefill_ms, "prefill_tok_s", st->prefill_tok_s, "decode_ms", st->decode_ms,
                              "decode_tok_s", st->decode_tok_s, "peak_rss_mib", rss, "stop", stop_name(st->stop),
                              "seed", (json_int_t)seed);
        if (o) { /* speculative decoding: drafts checked and accepted, verify passes (0 when off) */
            json_object_set_new(o, "drafted_tokens", json_integer(st->n_drafted));
            json_object_set_new(o, "accepted_tokens", json_integer(st->n_accepted));
            json_object_set_new(o, "verify_passes", json_integer(st->n_verify));
        }
        if (o) {
            char *s = json_dumps(o, JSON_COMPACT);
            if (s) fprintf(f, "%s\n", s);
            free(s);
            json_decref(o);
        }
    } else {
        fprintf(f,
                "\nload %.0f ms | prompt %u tokens (%u cached) | TTFT %.0f ms | prefill %.1f tok/s | "
                "decode %.1f tok/s (%u tokens) | peak RSS %.0f MiB\n",
                info.load_ms, st->n_prompt, st->n_reused, st->ttft_ms, st->prefill_tok_s, st->decode_tok_s,
                st->n_generated, rss);
        if (st->n_drafted)
            fprintf(f, "speculative: %u of %u drafted tokens accepted (%.0f%%) in %u verify passes\n",
                    st->n_accepted, st->n_drafted, 100.0 * st->n_accepted / st->n_drafted, st->n_verify);
    }
    fflush(f);
}
