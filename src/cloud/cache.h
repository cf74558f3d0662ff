/* A response cache in SQLite. Entries are keyed by the SHA-256 (hex) of the
 * canonical request — model, messages and sampling parameters serialised as
 * compact JSON with sorted keys — so the same question asked twice maps to the
 * same row. Entries expire after ttl_s; when the total size passes max_bytes,
 * the least recently used entries are evicted. Safe to share between threads
 * (one connection behind a mutex) and between processes (SQLite locking). */
#ifndef EL_CLOUD_CACHE_H
#define EL_CLOUD_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct el_cache el_cache;

/* ttl_s <= 0: entries never expire; max_bytes <= 0: no size cap. */
el_cache *el_cache_open(const char *path, double ttl_s, int64_t max_bytes, el_err *err);
void el_cache_close(el_cache *c);

/* hex receives 64 hex digits and a NUL. Returns -1 only if OpenSSL fails. */
int el_sha256_hex(const void *data, size_t n, char hex[65], el_err *err);

/* 1: hit (*text is malloc'd), 0: miss or expired, -1: error.
 * now_s is wall-clock seconds (passed in so tests control time). */
int el_cache_get(el_cache *c, const char *key, double now_s, char **text, int *tokens_in, int *tokens_out,
                 el_err *err);
int el_cache_put(el_cache *c, const char *key, const char *text, int tokens_in, int tokens_out, double now_s,
                 el_err *err);
/* Number of entries and their total size in bytes (for tests and `usage`). */
int el_cache_stats(el_cache *c, int64_t *entries, int64_t *bytes, el_err *err);

#endif
