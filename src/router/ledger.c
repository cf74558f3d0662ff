#include "router/ledger.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct el_ledger {
    sqlite3 *db;
    pthread_mutex_t mu;
};

el_ledger *el_ledger_open(const char *path, el_err *err) {
    el_ledger *l = calloc(1, sizeof *l);
    if (!l) {
        el_fail(err, EDGELLM_ENOMEM, "ledger: out of memory");
        return NULL;
    }
    if (sqlite3_open_v2(path, &l->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        el_fail(err, EDGELLM_EIO, "ledger '%s': %s", path, l->db ? sqlite3_errmsg(l->db) : "cannot open");
        sqlite3_close(l->db);
        free(l);
        return NULL;
    }
    sqlite3_busy_timeout(l->db, 5000);
    pthread_mutex_init(&l->mu, NULL);
    char *msg = NULL;
    if (sqlite3_exec(l->db,
                     "PRAGMA journal_mode=WAL;"
                     "CREATE TABLE IF NOT EXISTS requests(id INTEGER PRIMARY KEY, ts REAL NOT NULL,"
                     " day TEXT NOT NULL, tier TEXT NOT NULL, model TEXT, location TEXT NOT NULL,"
                     " tokens_in INTEGER, tokens_out INTEGER, latency_ms REAL, ttft_ms REAL,"
                     " cost_usd REAL NOT NULL DEFAULT 0, fallback TEXT, status TEXT NOT NULL, error TEXT);"
                     "CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts);",
                     NULL, NULL, &msg) != SQLITE_OK) {
        el_fail(err, EDGELLM_EIO, "ledger '%s': %s", path, msg ? msg : sqlite3_errmsg(l->db));
        sqlite3_free(msg);
        el_ledger_close(l);
        return NULL;
    }
    return l;
}

void el_ledger_close(el_ledger *l) {
    if (!l) return;
    sqlite3_close(l->db);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static void utc_day(double ts, char out[11]) {
    time_t t = (time_t)ts;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

int el_ledger_record(el_ledger *l, const el_ledger_row *r, el_err *err) {
    char day[11];
    utc_day(r->ts, day);
    pthread_mutex_lock(&l->mu);
    sqlite3_stmt *st;
    int rc = 0;
    if (sqlite3_prepare_v2(l->db,
                           "INSERT INTO requests(ts,day,tier,model,location,tokens_in,tokens_out,latency_ms,"
                           "ttft_ms,cost_usd,fallback,status,error) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = el_fail(err, EDGELLM_EIO, "ledger: %s", sqlite3_errmsg(l->db));
    } else {
        sqlite3_bind_double(st, 1, r->ts);
        sqlite3_bind_text(st, 2, day, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, r->tier ? r->tier : "none", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, r->model ? r->model : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, r->where ? r->where : "none", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 6, r->tokens_in);
        sqlite3_bind_int(st, 7, r->tokens_out);
        sqlite3_bind_double(st, 8, r->latency_ms);
        sqlite3_bind_double(st, 9, r->ttft_ms);
        sqlite3_bind_double(st, 10, r->cost_usd);
        sqlite3_bind_text(st, 11, r->fallback ? r->fallback : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 12, r->status ? r->status : "ok", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 13, r->error ? r->error : "", -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) rc = el_fail(err, EDGELLM_EIO, "ledger: %s", sqlite3_errmsg(l->db));
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

double el_month_start(double now_s, int *days_in_month) {
    time_t t = (time_t)now_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = tm.tm_year + 1900;
    int d = days[tm.tm_mon];
    if (tm.tm_mon == 1 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) d = 29;
    if (days_in_month) *days_in_month = d;
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return (double)timegm(&tm);
}

int el_ledger_month_cost(el_ledger *l, double now_s, double *cost, el_err *err) {
    double start = el_month_start(now_s, NULL);
    pthread_mutex_lock(&l->mu);
    sqlite3_stmt *st;
    int rc = 0;
    *cost = 0;
    if (sqlite3_prepare_v2(l->db, "SELECT COALESCE(SUM(cost_usd),0) FROM requests WHERE ts >= ?", -1, &st,
                           NULL) != SQLITE_OK) {
        rc = el_fail(err, EDGELLM_EIO, "ledger: %s", sqlite3_errmsg(l->db));
    } else {
        sqlite3_bind_double(st, 1, start);
        if (sqlite3_step(st) == SQLITE_ROW) *cost = sqlite3_column_double(st, 0);
        else rc = el_fail(err, EDGELLM_EIO, "ledger: %s", sqlite3_errmsg(l->db));
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int el_ledger_usage(el_ledger *l, double since_s, el_usage_row **rows, size_t *n, el_err *err) {
    *rows = NULL;
    *n = 0;
    pthread_mutex_lock(&l->mu);
    sqlite3_stmt *st;
    int rc = 0;
    if (sqlite3_prepare_v2(l->db,
                           "SELECT day, tier, COUNT(*), SUM(status != 'ok'), SUM(fallback != ''),"
                           " SUM(tokens_in), SUM(tokens_out), SUM(cost_usd), AVG(latency_ms)"
                           " FROM requests WHERE ts >= ? GROUP BY day, tier ORDER BY day, tier",
                           -1, &st, NULL) != SQLITE_OK) {
        pthread_mutex_unlock(&l->mu);
        return el_fail(err, EDGELLM_EIO, "ledger: %s", sqlite3_errmsg(l->db));
    }
    sqlite3_bind_double(st, 1, since_s);
    size_t cap = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            el_usage_row *nr = realloc(*rows, cap * sizeof **rows);
            if (!nr) {
                rc = el_fail(err, EDGELLM_ENOMEM, "ledger: out of memory for usage rows");
                break;
            }
            *rows = nr;
        }
        el_usage_row *u = &(*rows)[(*n)++];
        memset(u, 0, sizeof *u);
        snprintf(u->day, sizeof u->day, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(u->tier, sizeof u->tier, "%s", (const char *)sqlite3_column_text(st, 1));
        u->requests = sqlite3_column_int64(st, 2);
        u->failed = sqlite3_column_int64(st, 3);
        u->fallbacks = sqlite3_column_int64(st, 4);
        u->tokens_in = sqlite3_column_int64(st, 5);
        u->tokens_out = sqlite3_column_int64(st, 6);
        u->cost_usd = sqlite3_column_double(st, 7);
        u->avg_latency_ms = sqlite3_column_double(st, 8);
    }
    if (rc == 0 && step != SQLITE_DONE) rc = el_fail(err, EDGELLM_EIO, "ledger: %s", sqlite3_errmsg(l->db));
    sqlite3_finalize(st);
    pthread_mutex_unlock(&l->mu);
    if (rc) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
    return rc;
}

int el_ledger_forecast(el_ledger *l, double now_s, double *month_cost, double *forecast, el_err *err) {
    int days = 30;
    double start = el_month_start(now_s, &days);
    if (el_ledger_month_cost(l, now_s, month_cost, err)) return -1;
    double elapsed_days = (now_s - start) / 86400.0;
    if (elapsed_days < 1) elapsed_days = 1; /* one day's spending is the least we extrapolate from */
    *forecast = *month_cost / elapsed_days * days;
    return 0;
}
