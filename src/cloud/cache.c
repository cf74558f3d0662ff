#include "cloud/cache.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

struct el_cache {
    sqlite3 *db;
    pthread_mutex_t mu;
    double ttl_s;
    int64_t max_bytes;
};

/* Per-row bookkeeping counted against max_bytes besides the text itself. */
#define CACHE_ROW_OVERHEAD 96

int el_sha256_hex(const void *data, size_t n, char hex[65], el_err *err) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_Digest(data, n, md, &md_len, EVP_sha256(), NULL) || md_len != 32)
        return el_fail(err, EDGELLM_EIO, "cache: SHA-256 failed in OpenSSL");
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    return 0;
}

static int cache_exec(el_cache *c, const char *sql, el_err *err) {
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        el_fail(err, EDGELLM_EIO, "cache: %s", msg ? msg : sqlite3_errmsg(c->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

el_cache *el_cache_open(const char *path, double ttl_s, int64_t max_bytes, el_err *err) {
    el_cache *c = calloc(1, sizeof *c);
    if (!c) {
        el_fail(err, EDGELLM_ENOMEM, "cache: out of memory");
        return NULL;
    }
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        el_fail(err, EDGELLM_EIO, "cache '%s': %s", path, c->db ? sqlite3_errmsg(c->db) : "cannot open");
        sqlite3_close(c->db);
        free(c);
        return NULL;
    }
    sqlite3_busy_timeout(c->db, 5000);
    pthread_mutex_init(&c->mu, NULL);
    c->ttl_s = ttl_s;
    c->max_bytes = max_bytes;
    if (cache_exec(c, "PRAGMA journal_mode=WAL;"
                      "CREATE TABLE IF NOT EXISTS cache(key TEXT PRIMARY KEY, text TEXT NOT NULL,"
                      " tokens_in INTEGER, tokens_out INTEGER, created REAL NOT NULL, last_used REAL NOT NULL,"
                      " size INTEGER NOT NULL);"
                      "CREATE INDEX IF NOT EXISTS cache_lru ON cache(last_used);",
                   err)) {
        el_fail_prefix(err, "cache '%s'", path);
        el_cache_close(c);
        return NULL;
    }
    return c;
}

void el_cache_close(el_cache *c) {
    if (!c) return;
    sqlite3_close(c->db);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static int cache_delete(el_cache *c, const char *key) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "DELETE FROM cache WHERE key=?", -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    return rc;
}

int el_cache_get(el_cache *c, const char *key, double now_s, char **text, int *tokens_in, int *tokens_out,
                 el_err *err) {
    *text = NULL;
    pthread_mutex_lock(&c->mu);
    int result = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, "SELECT text, tokens_in, tokens_out, created FROM cache WHERE key=?", -1, &st,
                           NULL) != SQLITE_OK) {
        result = el_fail(err, EDGELLM_EIO, "cache lookup: %s", sqlite3_errmsg(c->db));
        goto done;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        double created = sqlite3_column_double(st, 3);
        if (c->ttl_s > 0 && now_s - created > c->ttl_s) {
            sqlite3_finalize(st);
            st = NULL;
            cache_delete(c, key); /* expired: a miss, and the row goes */
            goto done;
        }
        const unsigned char *t = sqlite3_column_text(st, 0);
        int n = sqlite3_column_bytes(st, 0);
        *text = malloc((size_t)n + 1);
        if (!*text) {
            result = el_fail(err, EDGELLM_ENOMEM, "cache lookup: out of memory for %d bytes", n);
            goto done;
        }
        memcpy(*text, t, (size_t)n);
        (*text)[n] = '\0';
        if (tokens_in) *tokens_in = sqlite3_column_int(st, 1);
        if (tokens_out) *tokens_out = sqlite3_column_int(st, 2);
        sqlite3_finalize(st);
        st = NULL;
        if (sqlite3_prepare_v2(c->db, "UPDATE cache SET last_used=? WHERE key=?", -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_double(st, 1, now_s);
            sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
            sqlite3_step(st);
        }
        result = 1;
    } else if (rc != SQLITE_DONE) {
        result = el_fail(err, EDGELLM_EIO, "cache lookup: %s", sqlite3_errmsg(c->db));
    }
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&c->mu);
    return result;
}

/* Drops least recently used rows until the total size fits. Caller holds mu. */
static int cache_evict(el_cache *c, el_err *err) {
    if (c->max_bytes <= 0) return 0;
    for (;;) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(c->db, "SELECT COALESCE(SUM(size),0) FROM cache", -1, &st, NULL) != SQLITE_OK)
            return el_fail(err, EDGELLM_EIO, "cache eviction: %s", sqlite3_errmsg(c->db));
        int64_t total = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_finalize(st);
        if (total <= c->max_bytes) return 0;
        if (cache_exec(c, "DELETE FROM cache WHERE key = (SELECT key FROM cache ORDER BY last_used ASC LIMIT 1)",
                       err))
            return -1;
        if (sqlite3_changes(c->db) == 0) return 0;
    }
}

int el_cache_put(el_cache *c, const char *key, const char *text, int tokens_in, int tokens_out, double now_s,
                 el_err *err) {
    size_t len = strlen(text);
    int64_t size = (int64_t)len + (int64_t)strlen(key) + CACHE_ROW_OVERHEAD;
    if (c->max_bytes > 0 && size > c->max_bytes) return 0; /* larger than the whole cache: not kept */
    pthread_mutex_lock(&c->mu);
    int result = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db,
                           "INSERT OR REPLACE INTO cache(key,text,tokens_in,tokens_out,created,last_used,size)"
                           " VALUES(?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        result = el_fail(err, EDGELLM_EIO, "cache store: %s", sqlite3_errmsg(c->db));
    } else {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, text, (int)(len > 0x7fffffff ? 0x7fffffff : len), SQLITE_STATIC);
        sqlite3_bind_int(st, 3, tokens_in);
        sqlite3_bind_int(st, 4, tokens_out);
        sqlite3_bind_double(st, 5, now_s);
        sqlite3_bind_double(st, 6, now_s);
        sqlite3_bind_int64(st, 7, size);
        if (sqlite3_step(st) != SQLITE_DONE)
            result = el_fail(err, EDGELLM_EIO, "cache store: %s", sqlite3_errmsg(c->db));
        sqlite3_finalize(st);
        if (result == 0) result = cache_evict(c, err);
    }
    pthread_mutex_unlock(&c->mu);
    return result;
}

int el_cache_stats(el_cache *c, int64_t *entries, int64_t *bytes, el_err *err) {
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st;
    int result = 0;
    if (sqlite3_prepare_v2(c->db, "SELECT COUNT(*), COALESCE(SUM(size),0) FROM cache", -1, &st, NULL) !=
        SQLITE_OK) {
        result = el_fail(err, EDGELLM_EIO, "cache stats: %s", sqlite3_errmsg(c->db));
    } else {
        if (sqlite3_step(st) == SQLITE_ROW) {
            if (entries) *entries = sqlite3_column_int64(st, 0);
            if (bytes) *bytes = sqlite3_column_int64(st, 1);
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&c->mu);
    return result;
}
