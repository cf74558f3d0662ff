/* The request ledger: one SQLite row per routed request (time, tier, model,
 * tokens in and out, latency, TTFT, cost, fallback reason, outcome), and the
 * totals that `edgellm usage` prints and the monthly budget is checked against.
 * Months and days are UTC calendar months and days. */
#ifndef EL_ROUTER_LEDGER_H
#define EL_ROUTER_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct el_ledger el_ledger;

typedef struct el_ledger_row {
    double ts;              /* wall-clock seconds since the epoch */
    const char *tier;       /* the tier that answered, or "none" */
    const char *model;
    const char *where;      /* "local", "cloud" or "none" */
    int tokens_in, tokens_out;
    double latency_ms, ttft_ms;
    double cost_usd;
    const char *fallback;   /* "" if the first tier answered */
    const char *status;     /* "ok" or an error name */
    const char *error;      /* "" on success */
} el_ledger_row;

typedef struct el_usage_row {
    char day[11];           /* YYYY-MM-DD */
    char tier[64];
    int64_t requests, failed, fallbacks;
    int64_t tokens_in, tokens_out;
    double cost_usd;
    double avg_latency_ms;
} el_usage_row;

el_ledger *el_ledger_open(const char *path, el_err *err);
void el_ledger_close(el_ledger *l);
int el_ledger_record(el_ledger *l, const el_ledger_row *row, el_err *err);

/* Cost of the UTC calendar month that contains now_s. */
int el_ledger_month_cost(el_ledger *l, double now_s, double *cost, el_err *err);

/* Totals per day and tier for rows at or after since_s, oldest day first
 * (*rows malloc'd). */
int el_ledger_usage(el_ledger *l, double since_s, el_usage_row **rows, size_t *n, el_err *err);

/* This month's cost and a linear forecast for the whole month:
 * cost / max(days elapsed, 1) * days in the month. */
int el_ledger_forecast(el_ledger *l, double now_s, double *month_cost, double *forecast, el_err *err);

/* Start of the UTC month containing now_s, and the number of days in it. */
double el_month_start(double now_s, int *days_in_month);

#endif
