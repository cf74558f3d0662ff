/* edgellm bench: llama-bench-style speed test on synthetic token ids.
 * Prefill of --pp tokens in one batch, decode of --tg tokens one at a time (greedy),
 * TTFT of a 64-token prompt, load time and peak RSS; best of --reps.
 * The ids are the same as bench/compare feeds llama.cpp. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "edgellm.h"
#include "run_common.h"

static void bench_usage(FILE *f) {
    fprintf(f,
            "usage: edgellm bench [-m MODEL] [-t THREADS] [--pp N] [--tg N] [--reps N] [--kv-type f16|q8_0] [--json]\n\n"
            "Measures prefill (one batch of --pp prompt tokens), decode (--tg tokens generated one at\n"
            "a time, greedy), time to first token of a 64-token prompt, load time and peak RSS.\n"
            "Prompt ids are synthetic and deterministic (as llama-bench's), the same as bench/compare\n"
            "gives llama.cpp. The best of --reps runs is reported.\n\n"
            "  -m, --model PATH   GGUF model (default: $EDGELLM_MODEL, then the model from scripts/setup)\n"
            "  -t, --threads N    threads (default: online CPUs)\n"
            "      --pp N         prompt tokens for prefill (default 512)\n"
            "      --tg N         tokens to decode (default 128)\n"
            "      --reps N       repetitions, best kept (default 3)\n"
            "      --kv-type T    KV cache type: f16 (default) or q8_0\n"
            "      --json         one JSON object on stdout instead of the table\n"
            "  -h, --help         this help\n");
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* The id sequence bench/compare uses too: BOS, then a fixed walk over ordinary ids. */
static void synthetic_tokens(int32_t *out, int n, uint32_t n_vocab, int32_t bos) {
    out[0] = bos;
    for (int i = 1; i < n; i++) out[i] = (int32_t)((1000 + (int64_t)(i - 1) * 7919) % (n_vocab - 1000) + 1000);
}

static int32_t argmax(const float *x, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int32_t)best;
}

static int parse_positive(const char *s, const char *opt, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > 1000000) {
        fprintf(stderr, "edgellm bench: %s needs a positive integer, got '%s'\n", opt, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cmd_bench(int argc, char **argv) {
    run_opts o = {0};
    o.ctx = edgellm_context_default_params();
    int pp = 512, tg = 128, reps = 3;
    bool json = false;
    static const struct option LONG[] = {
        {"model", required_argument, 0, 'm'}, {"threads", required_argument, 0, 't'},
        {"pp", required_argument, 0, 'p'},    {"tg", required_argument, 0, 'g'},
        {"reps", required_argument, 0, 'r'},  {"kv-type", required_argument, 0, 'k'},
        {"json", no_argument, 0, 'j'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "m:t:h", LONG, NULL)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; break;
        case 't': if (parse_positive(optarg, "-t", &o.ctx.n_threads)) return 2; break;
        case 'p': if (parse_positive(optarg, "--pp", &pp)) return 2; break;
        case 'g': if (parse_positive(optarg, "--tg", &tg)) return 2; break;
        case 'r': if (parse_positive(optarg, "--reps", &reps)) return 2; break;
        case 'k':
            if (!strcmp(optarg, "f16")) o.ctx.kv_type = EDGELLM_KV_F16;
            else if (!strcmp(optarg, "q8_0")) o.ctx.kv_type = EDGELLM_KV_Q8_0;
            else { fprintf(stderr, "edgellm bench: --kv-type must be f16 or q8_0, got '%s'\n", optarg); return 2; }
            break;
        case 'j': json = true; break;
        case 'h': bench_usage(stdout); return 0;
        default: bench_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "edgellm bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    int n_prompt = pp > 64 ? pp : 64;
    o.ctx.n_ctx = (uint32_t)(n_prompt + tg + 16);
    o.ctx.n_batch = (uint32_t)n_prompt;

    edgellm_model *model = NULL;
    edgellm_context *ctx = NULL;
    if (!run_load(&o, &model, &ctx)) return 1;
    edgellm_model_info info;
    edgellm_model_get_info(model, &info);
    int32_t bos = 2;
    {
        int32_t tmp[4];
        /* BOS as the tokenizer adds it to an empty text; fall back to id 1 if it adds none. */
        int64_t n = edgellm_tokenize(model, "", 0, 1, 0, tmp, 4, NULL);
        bos = n >= 1 ? tmp[0] : 1;
    }
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)n_prompt);
    if (!tokens) {
        fprintf(stderr, "edgellm bench: out of memory\n");
        edgellm_context_free(ctx);
        edgellm_model_free(model);
        return 1;
    }
    double best_pp = 0, best_tg = 0, best_ttft = 1e30;
    edgellm_error err = {0};
    int rc = 0;
    for (int r = 0; r < reps && rc == 0; r++) {
        synthetic_tokens(tokens, pp, info.n_vocab, bos);
        edgellm_context_reset(ctx);
        double t0 = now_ms();
        if (edgellm_eval(ctx, tokens, (size_t)pp, &err)) { rc = 1; break; }
        double dt = now_ms() - t0;
        if (pp / dt * 1e3 > best_pp) best_pp = pp / dt * 1e3;
        int32_t t = argmax(edgellm_context_logits(ctx), info.n_vocab);
        t0 = now_ms();
        for (int i = 0; i < tg; i++) {
            if (edgellm_eval(ctx, &t, 1, &err)) { rc = 1; break; }
            t = argmax(edgellm_context_logits(ctx), info.n_vocab);
        }
        dt = now_ms() - t0;
        if (tg / dt * 1e3 > best_tg) best_tg = tg / dt * 1e3;
        synthetic_tokens(tokens, 64, info.n_vocab, bos);
        edgellm_context_reset(ctx);
        t0 = now_ms();
        if (edgellm_eval(ctx, tokens, 64, &err)) { rc = 1; break; }
        (void)argmax(edgellm_context_logits(ctx), info.n_vocab);
        dt = now_ms() - t0;
        if (dt < best_ttft) best_ttft = dt;
    }
    if (rc) fprintf(stderr, "edgellm bench: %s\n", err.message);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = ru.ru_maxrss / 1024.0;
    int threads = o.ctx.n_threads > 0 ? o.ctx.n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (rc == 0 && json) {
        printf("{\"model\": \"%s\", \"threads\": %d, \"pp\": %d, \"tg\": %d, \"pp_tok_s\": %.2f, \"tg_tok_s\": %.2f, "
               "\"ttft_ms\": %.2f, \"load_ms\": %.2f, \"peak_rss_mb\": %.1f}\n",
               info.name, threads, pp, tg, best_pp, best_tg, best_ttft, info.load_ms, rss_mb);
    } else if (rc == 0) {
        printf("model      %s (%s)\nthreads    %d\n", info.name, info.arch, threads);
        printf("prefill    %d tokens: %.1f tok/s\n", pp, best_pp);
        printf("decode     %d tokens: %.1f tok/s\n", tg, best_tg);
        printf("TTFT       64-token prompt: %.1f ms\n", best_ttft);
        printf("load       %.1f ms\npeak RSS   %.1f MB\n", info.load_ms, rss_mb);
    }
    free(tokens);
    edgellm_context_free(ctx);
    edgellm_model_free(model);
    return rc;
}
