/* edgellm ask: send one question through the router (docs/policy.md) and print
 * the answer, where and why it ran, and what it cost. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "edgellm.h"
#include "router/engine.h"
#include "router/router.h"

int cmd_ask(int argc, char **argv);

static void ask_usage(FILE *f) {
    fprintf(f,
            "usage: edgellm ask --policy FILE [OPTIONS] \"QUESTION\"   (QUESTION '-' reads stdin)\n\n"
            "Routes one request by the policy: a local model or an OpenAI-compatible cloud.\n"
            "The answer streams to stdout; where it ran, why, and its cost go to stderr.\n\n"
            "  --policy FILE        routing policy (JSON, see docs/policy.md); default $EDGELLM_POLICY\n"
            "  --system TEXT        system message\n"
            "  --max-tokens N       expected answer length; drives hybrid routing (default 256)\n"
            "  --temperature T      sampling temperature (default: provider's/engine's)\n"
            "  --stop TEXT          stop sequence (repeatable, at most 4)\n"
            "  --tier NAME          try this tier first\n"
            "  --quality low|high   low: prefer local, high: prefer cloud\n"
            "  --strategy S         override the policy's strategy: local, cloud or hybrid\n"
            "  --json               print one JSON object (answer and routing) instead\n"
            "  --quiet              print only the answer\n");
}

typedef struct ask_out {
    int stream;
    int restarts;
} ask_out;

static int ask_piece(void *ud, int event, const char *piece, size_t n) {
    ask_out *o = ud;
    if (!o->stream) return 0;
    if (event == EL_ROUTE_RESTART) {
        o->restarts++;
        fputc('\n', stdout);
        fflush(stdout);
        fprintf(stderr, "[edgellm] the answer above was cut off; another tier answers from the start:\n");
        return 0;
    }
    fwrite(piece, 1, n, stdout);
    fflush(stdout);
    return 0;
}

static char *read_stdin(void) {
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
        len += got;
        if (len + 1 == cap) {
            if (cap > ((size_t)64 << 20)) break; /* a 64 MiB question is enough */
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
    }
    buf[len] = '\0';
    return buf;
}


static void print_json(const el_route_result *res, int rc, const el_err *err) {
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_boolean(rc == 0));
    json_object_set_new(o, "answer", res->text ? json_string(res->text) : json_null());
    json_object_set_new(o, "tier", json_string(res->tier));
    json_object_set_new(o, "model", json_string(res->model));
    json_object_set_new(o, "location", json_string(rc ? "none" : res->local ? "local" : "cloud"));
    json_object_set_new(o, "why", json_string(res->why));
    json_object_set_new(o, "fallback", json_string(res->fallback));
    json_object_set_new(o, "tokens_in", json_integer(res->tokens_in));
    json_object_set_new(o, "tokens_out", json_integer(res->tokens_out));
    json_object_set_new(o, "cost_usd", json_real(res->cost_usd));
    json_object_set_new(o, "ttft_ms", json_real(res->ttft_ms));
    json_object_set_new(o, "latency_ms", json_real(res->latency_ms));
    json_object_set_new(o, "from_cache", json_boolean(res->from_cache));
    if (rc) {
        json_object_set_new(o, "error", json_string(err->message));
        json_object_set_new(o, "error_code", json_string(edgellm_status_name(err->code)));
    }
    char *s = json_dumps(o, JSON_INDENT(2));
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
}

int cmd_ask(int argc, char **argv) {
    const char *policy_path = getenv("EDGELLM_POLICY");
    const char *system = NULL, *question = NULL, *tier = NULL, *strategy = NULL;
    const char *stops[4];
    size_t n_stop = 0;
    int max_tokens = 256, json = 0, quiet = 0;
    double temperature = -1;
    el_quality quality = EL_QUALITY_ANY;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            ask_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--policy") && has_val) {
            policy_path = argv[++i];
        } else if (!strcmp(a, "--system") && has_val) {
            system = argv[++i];
        } else if (!strcmp(a, "--max-tokens") && has_val) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v <= 0 || v > 1000000) {
                fprintf(stderr, "edgellm ask: --max-tokens wants a number from 1 to 1000000, not '%s'\n", argv[i]);
                return 2;
            }
            max_tokens = (int)v;
        } else if (!strcmp(a, "--temperature") && has_val) {
            char *end;
            temperature = strtod(argv[++i], &end);
            if (*end || temperature < 0 || temperature > 2) {
                fprintf(stderr, "edgellm ask: --temperature wants a number from 0 to 2, not '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--stop") && has_val) {
            if (n_stop == 4) {
                fprintf(stderr, "edgellm ask: at most 4 --stop sequences\n");
                return 2;
            }
            stops[n_stop++] = argv[++i];
        } else if (!strcmp(a, "--tier") && has_val) {
            tier = argv[++i];
        } else if (!strcmp(a, "--quality") && has_val) {
            const char *q = argv[++i];
            if (!strcmp(q, "low")) quality = EL_QUALITY_LOW;
            else if (!strcmp(q, "high")) quality = EL_QUALITY_HIGH;
            else {
                fprintf(stderr, "edgellm ask: --quality is low or high, not '%s'\n", q);
                return 2;
            }
        } else if (!strcmp(a, "--strategy") && has_val) {
            strategy = argv[++i];
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "edgellm ask: unknown or incomplete option '%s'\n\n", a);
            ask_usage(stderr);
            return 2;
        } else if (question) {
            fprintf(stderr, "edgellm ask: one question at a time (quote it)\n");
            return 2;
        } else {
            question = a;
        }
    }
    if (!policy_path || !question) {
        fprintf(stderr, "edgellm ask: %s\n\n", !policy_path ? "--policy FILE is required" : "no question given");
        ask_usage(stderr);
        return 2;
    }
    char *from_stdin = NULL;
    if (!strcmp(question, "-")) {
        from_stdin = read_stdin();
        if (!from_stdin) {
            fprintf(stderr, "edgellm ask: cannot read the question from stdin\n");
            return 1;
        }
        question = from_stdin;
    }
    el_err err = {0};
    el_policy pol;
    if (el_policy_load(policy_path, &pol, &err)) {
        fprintf(stderr, "edgellm ask: %s\n", err.message);
        free(from_stdin);
        return 1;
    }
    if (strategy && el_strategy_parse(strategy, &pol.strategy)) {
        fprintf(stderr, "edgellm ask: --strategy is local, cloud or hybrid, not '%s'\n", strategy);
        el_policy_free(&pol);
        free(from_stdin);
        return 2;
    }
    el_router *r = el_router_open(&pol, el_engine_backend(), &err);
    if (!r) {
        fprintf(stderr, "edgellm ask: %s\n", err.message);
        el_policy_free(&pol);
        free(from_stdin);
        return 1;
    }
    el_chat_msg msgs[2];
    size_t n = 0;
    if (system) msgs[n++] = (el_chat_msg){"system", system};
    msgs[n++] = (el_chat_msg){"user", question};
    el_route_request q = {msgs, n, max_tokens, temperature, stops, n_stop, tier, quality};
    ask_out o = {!json, 0};
    el_route_result res;
    int rc = el_router_ask(r, &q, ask_piece, &o, &res, &err);
    if (json) {
        print_json(&res, rc, &err);
    } else {
        if (rc == 0 && res.text && res.text[0] && res.text[strlen(res.text) - 1] != '\n') fputc('\n', stdout);
        fflush(stdout);
        if (rc) {
            fprintf(stderr, "edgellm ask: %s\n", err.message);
        } else if (!quiet) {
            fprintf(stderr, "[edgellm] ran on %s tier '%s' (%s)%s\n", res.local ? "local" : "cloud", res.tier,
                    res.model, res.from_cache ? ", answered from the cache" : "");
            fprintf(stderr, "[edgellm] why: %s\n", res.why);
            if (res.fallback[0]) fprintf(stderr, "[edgellm] fallback: %s\n", res.fallback);
            fprintf(stderr, "[edgellm] tokens: %d in, %d out; cost $%.6f; first token %.0f ms; total %.0f ms\n",
                    res.tokens_in, res.tokens_out, res.cost_usd, res.ttft_ms, res.latency_ms);
        }
    }
    if (res.warning[0]) fprintf(stderr, "[edgellm] warning: %s\n", res.warning);
    el_route_result_free(&res);
    el_router_close(r);
    el_policy_free(&pol);
    free(from_stdin);
    return rc ? 1 : 0;
}
