/* edgellm usage: totals from the request ledger by day and tier, and this
 * month's cost with a forecast for the whole month. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloud/clock.h"
#include "router/ledger.h"
#include "router/policy.h"

int cmd_usage(int argc, char **argv);

static void usage_help(FILE *f) {
    fprintf(f,
            "usage: edgellm usage [--policy FILE | --ledger PATH] [--days N]\n\n"
            "Prints requests, tokens and cost by day and tier from the ledger, and this\n"
            "month's cost with a linear forecast for the month (UTC).\n\n"
            "  --policy FILE   take the ledger path (and budget) from a policy; default $EDGELLM_POLICY\n"
            "  --ledger PATH   read this ledger file directly\n"
            "  --days N        only the last N days (default 31)\n");
}

int cmd_usage(int argc, char **argv) {
    const char *policy_path = getenv("EDGELLM_POLICY"), *ledger_path = NULL;
    int days = 31;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage_help(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--policy") && i + 1 < argc) {
            policy_path = argv[++i];
        } else if (!strcmp(argv[i], "--ledger") && i + 1 < argc) {
            ledger_path = argv[++i];
        } else if (!strcmp(argv[i], "--days") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v <= 0 || v > 36500) {
                fprintf(stderr, "edgellm usage: --days wants a number from 1 to 36500, not '%s'\n", argv[i]);
                return 2;
            }
            days = (int)v;
        } else {
            fprintf(stderr, "edgellm usage: unknown or incomplete option '%s'\n\n", argv[i]);
            usage_help(stderr);
            return 2;
        }
    }
    el_err err;
    el_policy pol = {0};
    int have_policy = 0;
    if (!ledger_path) {
        if (!policy_path) {
            fprintf(stderr, "edgellm usage: give --policy FILE or --ledger PATH\n");
            return 2;
        }
        if (el_policy_load(policy_path, &pol, &err)) {
            fprintf(stderr, "edgellm usage: %s\n", err.message);
            return 1;
        }
        have_policy = 1;
        if (!pol.ledger_path[0]) {
            fprintf(stderr, "edgellm usage: policy '%s' names no ledger\n", policy_path);
            el_policy_free(&pol);
            return 1;
        }
        ledger_path = pol.ledger_path;
    }
    el_ledger *l = el_ledger_open(ledger_path, &err);
    if (!l) {
        fprintf(stderr, "edgellm usage: %s\n", err.message);
        if (have_policy) el_policy_free(&pol);
        return 1;
    }
    double now = el_wall_s();
    el_usage_row *rows = NULL;
    size_t n = 0;
    double month = 0, forecast = 0;
    int rc = 0;
    if (el_ledger_usage(l, now - days * 86400.0, &rows, &n, &err) ||
        el_ledger_forecast(l, now, &month, &forecast, &err)) {
        fprintf(stderr, "edgellm usage: %s\n", err.message);
        rc = 1;
    } else {
        printf("%-10s  %-12s %8s %6s %9s %11s %11s %12s %10s\n", "day", "tier", "requests", "failed", "fallbacks",
               "tokens_in", "tokens_out", "cost_usd", "avg_ms");
        int64_t req = 0, tin = 0, tout = 0;
        double cost = 0;
        for (size_t i = 0; i < n; i++) {
            const el_usage_row *u = &rows[i];
            printf("%-10s  %-12s %8lld %6lld %9lld %11lld %11lld %12.6f %10.0f\n", u->day, u->tier,
                   (long long)u->requests, (long long)u->failed, (long long)u->fallbacks, (long long)u->tokens_in,
                   (long long)u->tokens_out, u->cost_usd, u->avg_latency_ms);
            req += u->requests;
            tin += u->tokens_in;
            tout += u->tokens_out;
            cost += u->cost_usd;
        }
        printf("%-10s  %-12s %8lld %6s %9s %11lld %11lld %12.6f\n", "total", "", (long long)req, "", "",
               (long long)tin, (long long)tout, cost);
        int dim = 30;
        double start = el_month_start(now, &dim);
        time_t ts = (time_t)start;
        struct tm tm;
        gmtime_r(&ts, &tm);
        char label[16];
        strftime(label, sizeof label, "%Y-%m", &tm);
        printf("\nmonth %s: $%.6f spent; forecast for the month $%.6f (%d days)\n", label, month, forecast, dim);
        if (have_policy && pol.monthly_budget_usd > 0)
            printf("budget: $%.2f a month, %.1f%% used%s\n", pol.monthly_budget_usd,
                   100.0 * month / pol.monthly_budget_usd,
                   month >= pol.monthly_budget_usd ? " (spent: requests stay local)" : "");
    }
    free(rows);
    el_ledger_close(l);
    if (have_policy) el_policy_free(&pol);
    return rc;
}
