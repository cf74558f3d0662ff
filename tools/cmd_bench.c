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
            "usage: edgellm bench [-m MODEL] [-t THREADS] [--pp N] [--tg N] [--reps N] [--kv-type f16|q8_0] [--no-repack] [--json]\n"
            "       edgellm bench [-m MODEL] [-t THREADS] --spec lookup|draft:PATH [--draft-max N] [--tg N] [--reps N] [--json]\n\n"
            "Measures prefill (one batch of --pp prompt tokens), decode (--tg tokens generated one at\n"
            "a time, greedy), time to first token of a 64-token prompt, load time and peak RSS.\n"
            "Prompt ids are synthetic and deterministic (as llama-bench's), the same as bench/compare\n"
            "gives llama.cpp. The best of --reps runs is reported, with the SIMD kernels used\n"
            "(avx512-vnni, avx-vnni, avx2, neon-i8mm, neon-dotprod, neon or scalar; EDGELLM_CPU=\n"
            "scalar|avx2|avx512|neon caps the level).\n\n"
            "  -m, --model PATH   GGUF model (default: $EDGELLM_MODEL, then the model from scripts/setup)\n"
            "  -t, --threads N    threads (default: online CPUs)\n"
            "      --pp N         prompt tokens for prefill (default 512)\n"
            "      --tg N         tokens to decode (default 128)\n"
            "      --reps N       repetitions, best kept (default 3)\n"
            "      --kv-type T    KV cache type: f16 (default) or q8_0\n"
            "      --no-repack    leave every weight in the file mapping (no regrouped or huge-page\n"
            "                     copies made at load)\n"
            "      --json         one JSON object on stdout instead of the table\n"
            "      --spec KIND    speculative decoding instead: greedy decode of --tg tokens on two\n"
            "                     built-in chat prompts (summarise, code_edit), plain and with KIND\n"
            "                     (lookup: prompt lookup; draft:PATH: that draft model), reporting\n"
            "                     both speeds, the acceptance rate and whether the outputs match\n"
            "      --draft-max N  most drafts per step with --spec (default 8)\n"
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

/* ---- speculative decoding: plain vs speculative greedy decode on real prompts ---- */

/* Chat prompts whose answers copy from the prompt, as summaries and code edits do. */
static const char SPEC_SUMMARISE[] =
    "Summarise the following report in one paragraph, keeping the names and numbers.\n\n"
    "The Riverside Community Library reported its results for the year at the town meeting on Thursday. "
    "Visits rose to 184,000, up twelve percent from the year before, and the number of library cards grew "
    "to 9,300. The children's reading programme was the most popular service: 2,150 children took part in "
    "the summer reading challenge, and the Saturday story hour was full almost every week. The library "
    "director, Maria Lopez, said the new evening opening hours on Tuesdays and Thursdays had brought in "
    "many working adults who could not visit during the day. The library also lent 1,200 laptops and "
    "hotspots to families without internet access at home. The budget for the coming year is 2.4 million "
    "dollars, of which 300,000 dollars will go to repairing the roof of the main building and 150,000 "
    "dollars to new books and digital subscriptions. The town council thanked the 85 volunteers who "
    "gave more than 6,000 hours of their time, and agreed to review the plan for a second branch in the "
    "north of the town next spring.";

static const char SPEC_CODE_EDIT[] =
    "In the following Python code, rename the function `compute_total` to `order_total` everywhere and "
    "add type hints. Return the complete updated code and nothing else.\n\n"
    "```python\n"
    "from dataclasses import dataclass\n\n\n"
    "@dataclass\n"
    "class Item:\n"
    "    name: str\n"
    "    price: float\n"
    "    quantity: int\n\n\n"
    "def compute_total(items, tax_rate):\n"
    "    subtotal = 0.0\n"
    "    for item in items:\n"
    "        subtotal += item.price * item.quantity\n"
    "    tax = subtotal * tax_rate\n"
    "    return round(subtotal + tax, 2)\n\n\n"
    "def print_receipt(items, tax_rate):\n"
    "    for item in items:\n"
    "        print(f\"{item.name:20} {item.quantity:3} x {item.price:8.2f}\")\n"
    "    print(f\"{'Total':20} {compute_total(items, tax_rate):16.2f}\")\n\n\n"
    "if __name__ == \"__main__\":\n"
    "    basket = [Item(\"apple\", 0.5, 6), Item(\"bread\", 2.25, 1), Item(\"milk\", 1.1, 2)]\n"
    "    print_receipt(basket, 0.08)\n"
    "```";

typedef struct spec_tokens {
    int32_t *ids;
    int n, cap;
} spec_tokens;

static int spec_collect(void *user, int32_t token, const char *text, size_t len) {
    (void)text;
    (void)len;
    spec_tokens *t = user;
    if (token >= 0 && t->n < t->cap) t->ids[t->n++] = token;
    return 0;
}

typedef struct spec_result {
    double plain_tok_s, spec_tok_s;
    uint32_t drafted, accepted, verify, generated;
    bool identical;
} spec_result;

static int spec_bench_prompt(edgellm_model *model, edgellm_context *ctx, const char *text, int tg, int reps,
                             const edgellm_spec_params *spec, spec_result *r) {
    edgellm_error err = {0};
    edgellm_chat_message msg = {"user", text};
    char *prompt = edgellm_chat_format(model, &msg, 1, 1, &err);
    if (!prompt) {
        fprintf(stderr, "edgellm bench: %s\n", err.message);
        return -1;
    }
    int32_t *buf = malloc(2 * sizeof(int32_t) * (size_t)tg);
    if (!buf) {
        free(prompt);
        return -1;
    }
    spec_tokens plain = {buf, 0, tg}, sp = {buf + tg, 0, tg};
    memset(r, 0, sizeof *r);
    r->identical = true;
    int rc = 0;
    for (int i = 0; i < reps && rc == 0; i++) {
        edgellm_generate_params gp = edgellm_generate_default_params();
        gp.max_tokens = tg;
        gp.sampling.temperature = 0.0f;
        edgellm_stats st;
        for (int mode = 0; mode < 2 && rc == 0; mode++) {
            spec_tokens *out = mode ? &sp : &plain;
            out->n = 0;
            gp.spec = mode ? *spec : edgellm_generate_default_params().spec;
            edgellm_context_reset(ctx);
            if (spec->draft) edgellm_context_reset(spec->draft);
            if (edgellm_generate(ctx, prompt, &gp, spec_collect, out, &st, &err) < 0) {
                fprintf(stderr, "edgellm bench: %s\n", err.message);
                rc = -1;
                break;
            }
            if (mode == 0) {
                if (st.decode_tok_s > r->plain_tok_s) r->plain_tok_s = st.decode_tok_s;
            } else if (st.decode_tok_s > r->spec_tok_s) {
                r->spec_tok_s = st.decode_tok_s;
                r->drafted = st.n_drafted;
                r->accepted = st.n_accepted;
                r->verify = st.n_verify;
                r->generated = st.n_generated;
            }
        }
        if (rc == 0 && (plain.n != sp.n || memcmp(plain.ids, sp.ids, (size_t)plain.n * sizeof *plain.ids) != 0))
            r->identical = false;
    }
    free(buf);
    free(prompt);
    return rc;
}

static int spec_bench(run_opts *o, const char *kind, int tg, int reps, int draft_max, bool json) {
    edgellm_spec_params spec = edgellm_generate_default_params().spec;
    if (draft_max > 0) spec.n_draft = draft_max;
    if (!strcmp(kind, "lookup")) {
        spec.kind = EDGELLM_SPEC_LOOKUP;
    } else if (!strncmp(kind, "draft:", 6) && kind[6]) {
        spec.kind = EDGELLM_SPEC_DRAFT;
        o->draft = kind + 6;
    } else {
        fprintf(stderr, "edgellm bench: --spec must be lookup or draft:PATH, got '%s'\n", kind);
        return 2;
    }
    o->ctx.n_ctx = 0; /* the model's default (up to 4096): the built-in prompts are ~1k tokens */
    edgellm_model *model = NULL, *draft = NULL;
    edgellm_context *ctx = NULL, *dctx = NULL;
    if (!run_load(o, &model, &ctx)) return 1;
    if (!run_load_draft(o, model, ctx, &draft, &dctx)) {
        edgellm_context_free(ctx);
        edgellm_model_free(model);
        return 1;
    }
    spec.draft = dctx;
    static const struct { const char *name, *text; } PROMPTS[] = {
        {"summarise", SPEC_SUMMARISE}, {"code_edit", SPEC_CODE_EDIT}};
    spec_result res[2];
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++)
        if (spec_bench_prompt(model, ctx, PROMPTS[i].text, tg, reps, &spec, &res[i]) < 0) rc = 1;
    if (rc == 0) {
        edgellm_model_info info;
        edgellm_model_get_info(model, &info);
        const int threads = o->ctx.n_threads > 0 ? o->ctx.n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
        if (json) {
            printf("{\"model\": \"%s\", \"threads\": %d, \"kernels\": \"%s\", \"tg\": %d, \"spec\": \"%s\", "
                   "\"n_draft\": %d",
                   info.name, threads, edgellm_kernels_name(), tg, spec.kind == EDGELLM_SPEC_LOOKUP ? "lookup" : "draft",
                   spec.n_draft);
            for (int i = 0; i < 2; i++) {
                const spec_result *r = &res[i];
                printf(", \"%s\": {\"plain_tok_s\": %.2f, \"spec_tok_s\": %.2f, \"speedup\": %.3f, "
                       "\"acceptance\": %.4f, \"drafted\": %u, \"accepted\": %u, \"verify_passes\": %u, "
                       "\"generated\": %u, \"identical\": %s}",
                       PROMPTS[i].name, r->plain_tok_s, r->spec_tok_s,
                       r->plain_tok_s > 0 ? r->spec_tok_s / r->plain_tok_s : 0.0,
                       r->drafted ? (double)r->accepted / r->drafted : 0.0, r->drafted, r->accepted, r->verify,
                       r->generated, r->identical ? "true" : "false");
            }
            printf("}\n");
        } else {
            printf("model      %s (%s), %d threads (%s kernels), speculative %s, up to %d drafts\n", info.name,
                   info.arch, threads, edgellm_kernels_name(), kind, spec.n_draft);
            for (int i = 0; i < 2; i++) {
                const spec_result *r = &res[i];
                printf("%-10s plain %.1f tok/s | speculative %.1f tok/s (x%.2f) | %u of %u drafts accepted "
                       "(%.0f%%) | %u tokens | output %s\n",
                       PROMPTS[i].name, r->plain_tok_s, r->spec_tok_s,
                       r->plain_tok_s > 0 ? r->spec_tok_s / r->plain_tok_s : 0.0, r->accepted, r->drafted,
                       r->drafted ? 100.0 * r->accepted / r->drafted : 0.0, r->generated,
                       r->identical ? "identical" : "DIFFERENT");
            }
        }
        for (int i = 0; i < 2; i++)
            if (!res[i].identical) {
                fprintf(stderr, "edgellm bench: speculative output differs from plain decoding (%s)\n",
                        PROMPTS[i].name);
                rc = 1;
            }
    }
    edgellm_context_free(dctx);
    edgellm_model_free(draft);
    edgellm_context_free(ctx);
    edgellm_model_free(model);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    run_opts o = {0};
    o.ctx = edgellm_context_default_params();
    o.model_params = edgellm_model_default_params();
    int pp = 512, tg = 128, reps = 3;
    bool json = false;
    const char *spec = NULL;
    int draft_max = 0;
    static const struct option LONG[] = {
        {"model", required_argument, 0, 'm'}, {"threads", required_argument, 0, 't'},
        {"pp", required_argument, 0, 'p'},    {"tg", required_argument, 0, 'g'},
        {"reps", required_argument, 0, 'r'},  {"kv-type", required_argument, 0, 'k'},
        {"json", no_argument, 0, 'j'},        {"help", no_argument, 0, 'h'},
        {"spec", required_argument, 0, 's'},  {"draft-max", required_argument, 0, 'd'},
        {"no-repack", no_argument, 0, 'n'},   {0, 0, 0, 0}};
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
        case 'n': o.model_params.no_repack = 1; break;
        case 's': spec = optarg; break;
        case 'd': if (parse_positive(optarg, "--draft-max", &draft_max)) return 2; break;
        case 'h': bench_usage(stdout); return 0;
        default: bench_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "edgellm bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (spec) return spec_bench(&o, spec, tg, reps, draft_max, json);
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
        int32_t t = edgellm_argmax(edgellm_context_logits(ctx), info.n_vocab);
        t0 = now_ms();
        for (int i = 0; i < tg; i++) {
            if (edgellm_eval(ctx, &t, 1, &err)) { rc = 1; break; }
            t = edgellm_argmax(edgellm_context_logits(ctx), info.n_vocab);
        }
        dt = now_ms() - t0;
        if (tg / dt * 1e3 > best_tg) best_tg = tg / dt * 1e3;
        synthetic_tokens(tokens, 64, info.n_vocab, bos);
        edgellm_context_reset(ctx);
        t0 = now_ms();
        if (edgellm_eval(ctx, tokens, 64, &err)) { rc = 1; break; }
        (void)edgellm_argmax(edgellm_context_logits(ctx), info.n_vocab);
        dt = now_ms() - t0;
        if (dt < best_ttft) best_ttft = dt;
    }
    if (rc) fprintf(stderr, "edgellm bench: %s\n", err.message);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = ru.ru_maxrss / 1024.0;
    int threads = o.ctx.n_threads > 0 ? o.ctx.n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (rc == 0 && json) {
        printf("{\"model\": \"%s\", \"threads\": %d, \"kernels\": \"%s\", \"pp\": %d, \"tg\": %d, "
               "\"pp_tok_s\": %.2f, \"tg_tok_s\": %.2f, \"ttft_ms\": %.2f, \"load_ms\": %.2f, \"peak_rss_mb\": %.1f}\n",
               info.name, threads, edgellm_kernels_name(), pp, tg, best_pp, best_tg, best_ttft, info.load_ms, rss_mb);
    } else if (rc == 0) {
        printf("model      %s (%s)\nthreads    %d\nkernels    %s\n", info.name, info.arch, threads,
               edgellm_kernels_name());
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
