/* The committed hostile corpora of the SSE, chat-response and policy fuzz targets
 * (tests/fuzz/corpus/{sse,chat_response,policy}/, made by scripts/make-fuzz-corpora),
 * run through the same one-input functions as the libFuzzer targets, so the normal and
 * ASan test runs cover them without libFuzzer. Each file must keep every invariant the
 * fuzz target checks and give the outcome its manifest (NAME.expected) states; every
 * file must be in the manifest and every manifest line must have its file. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fuzz/fuzz_chat_response_body.h"
#include "fuzz/fuzz_policy_body.h"
#include "fuzz/fuzz_sse_body.h"

#define MAX_CASES 256

typedef struct manifest {
    char file[MAX_CASES][128];
    char expect[MAX_CASES][64];
    int seen[MAX_CASES];
    int n;
} manifest;

static const char *source_dir(void) {
    const char *s = getenv("EDGELLM_SOURCE_DIR");
    return s && s[0] ? s : ".";
}

static void load_manifest(const char *name, manifest *m) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/%s.expected", source_dir(), name);
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s", path);
    memset(m, 0, sizeof *m);
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\r\n")] = '\0';
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = '\0';
        assert_true(m->n < MAX_CASES);
        assert_true(strlen(line) < sizeof m->file[0] && strlen(tab + 1) < sizeof m->expect[0]);
        strcpy(m->file[m->n], line);
        strcpy(m->expect[m->n], tab + 1);
        m->n++;
    }
    fclose(f);
}

static uint8_t *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t got = fread(buf + n, 1, 4096, f);
        n += got;
        if (got < 4096) break;
    }
    fclose(f);
    *len = n;
    return buf;
}

static const char *code_token(edgellm_status c) {
    static const char *const names[] = {"OK",     "EINVAL",    "EIO",        "EFORMAT",  "ENOMEM",   "EUNSUPPORTED",
                                        "ENOTFOUND", "ERANGE", "EBUSY",      "ETIMEOUT", "ENETWORK", "EAUTH",
                                        "ERATELIMIT", "ESERVER", "EPROTOCOL", "EBUDGET", "ECANCELLED"};
    return (size_t)c < sizeof names / sizeof names[0] ? names[c] : "E?";
}

/* Runs each file of corpus NAME through one(), which returns the broken invariant or
 * NULL and writes the outcome as the manifest spells it. Returns the number of files. */
typedef const char *(*one_fn)(void *ctx, const char *path, const uint8_t *data, size_t size, char *outcome,
                              size_t outcome_size);

static int run_corpus(const char *name, one_fn one, void *ctx) {
    manifest *m = malloc(sizeof *m);
    assert_non_null(m);
    load_manifest(name, m);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", source_dir(), name);
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot open %s", dir);
    int files = 0, failures = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        int k = 0;
        while (k < m->n && strcmp(m->file[k], e->d_name)) k++;
        if (k == m->n) {
            print_error("%s/%s: not in %s.expected\n", name, e->d_name, name);
            failures++;
            continue;
        }
        m->seen[k] = 1;
        files++;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        uint8_t *data = read_all(path, &len);
        char outcome[128] = "";
        const char *broken = one(ctx, path, data, len, outcome, sizeof outcome);
        free(data);
        if (broken) {
            print_error("%s/%s: %s\n", name, e->d_name, broken);
            failures++;
        } else if (strcmp(outcome, m->expect[k])) {
            print_error("%s/%s: expected '%s', got '%s'\n", name, e->d_name, m->expect[k], outcome);
            failures++;
        }
    }
    closedir(d);
    for (int k = 0; k < m->n; k++)
        if (!m->seen[k]) {
            print_error("%s.expected: %s has no file\n", name, m->file[k]);
            failures++;
        }
    free(m);
    assert_int_equal(failures, 0);
    assert_true(files >= 20);
    return files;
}

/* ---- SSE ---- */

static const char *sse_one(void *ctx, const char *path, const uint8_t *data, size_t size, char *outcome, size_t n) {
    (void)ctx, (void)path;
    fuzz_sse_outcome o;
    const char *broken = fuzz_sse_one(data, size, &o);
    if (o.rc == 0) snprintf(outcome, n, "rc=ok events=%zu pending=%d", o.n_events, o.pending);
    else snprintf(outcome, n, "rc=%s events=%zu", o.code == EDGELLM_OK ? "stop" : "error", o.n_events);
    return broken;
}

static void test_sse_corpus(void **state) {
    (void)state;
    run_corpus("sse", sse_one, NULL);
}

/* An event larger than the cap is refused whole or in pieces (the corpus only meets the
 * small cap inside fuzz_sse_one's consistency check, so check its outcome here once). */
static int count_event(void *ud, const char *event, const char *data, size_t len) {
    (void)event, (void)data, (void)len;
    (*(int *)ud)++;
    return 0;
}

static void test_sse_cap_refuses(void **state) {
    (void)state;
    static const char input[] = "data: 0123456789\n\ndata: 0123456789012345678901234567890123456789\n\n";
    for (size_t piece = 1; piece <= sizeof input - 1; piece++) {
        el_sse p;
        int events = 0;
        el_sse_init(&p, 20, count_event, &events);
        el_err err = {EDGELLM_OK, ""};
        int rc = 0;
        for (size_t i = 0; i < sizeof input - 1 && !rc; i += piece) {
            size_t k = sizeof input - 1 - i < piece ? sizeof input - 1 - i : piece;
            rc = el_sse_feed(&p, input + i, k, &err);
        }
        assert_int_equal(rc, -1);
        assert_int_equal(err.code, EDGELLM_EPROTOCOL);
        assert_int_equal(events, 1);
        el_sse_free(&p);
    }
}

/* ---- chat responses ---- */

static int chat_setup(void **state) {
    fuzz_chat *f = malloc(sizeof *f);
    el_err err;
    if (!f || fuzz_chat_open(f, &err)) {
        if (f) print_error("fuzz_chat_open: %s\n", err.message);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int chat_teardown(void **state) {
    fuzz_chat *f = *state;
    if (f) fuzz_chat_close(f);
    free(f);
    return 0;
}

static const char *chat_one(void *ctx, const char *path, const uint8_t *data, size_t size, char *outcome, size_t n) {
    (void)path;
    fuzz_chat_outcome o;
    const char *broken = fuzz_chat_one(ctx, data, size, &o);
    if (o.rc == 0) snprintf(outcome, n, "ok %zu", o.text_len);
    else snprintf(outcome, n, "%s", code_token(o.code));
    return broken;
}

static void test_chat_response_corpus(void **state) {
    fuzz_chat *f = *state;
    int files = run_corpus("chat_response", chat_one, f);
    /* One request per file: nothing was retried or served twice. */
    pthread_mutex_lock(&f->up.mu);
    unsigned long served = f->up.served;
    pthread_mutex_unlock(&f->up.mu);
    assert_int_equal(served, files);
}

/* ---- policies ---- */

static const char *policy_one(void *ctx, const char *path, const uint8_t *data, size_t size, char *outcome,
                              size_t n) {
    (void)ctx;
    fuzz_policy_outcome o;
    const char *broken = fuzz_policy_one(data, size, &o);
    if (o.rc == 0) snprintf(outcome, n, "ok %zu", o.n_tiers);
    else snprintf(outcome, n, "%s", code_token(o.code));
    if (broken) return broken;
    /* The same bytes from the file: el_policy_load must agree (the one file whose
     * outcome depends on the length of the folder a relative path resolves in aside). */
    el_policy p;
    el_err err = {EDGELLM_OK, ""};
    int rc = el_policy_load(path, &p, &err);
    if (rc && (!err.message[0] || !strstr(err.message, path))) broken = "el_policy_load: a message without the path";
    else if (size && memchr(data, 0, size)) {
        /* A file with a NUL byte is refused by el_policy_load (the parser, given a C string,
         * only sees what comes before it). */
        if (rc != -1 || err.code != EDGELLM_EFORMAT) broken = "el_policy_load accepted a file with a NUL byte";
    } else if (!strstr(path, "relative") && (rc != o.rc || (rc && err.code != o.code) || p.n_tiers != o.n_tiers))
        broken = "el_policy_load disagrees with el_policy_parse";
    el_policy_free(&p);
    return broken;
}

static void test_policy_corpus(void **state) {
    (void)state;
    run_corpus("policy", policy_one, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_corpus),
        cmocka_unit_test(test_sse_cap_refuses),
        cmocka_unit_test_setup_teardown(test_chat_response_corpus, chat_setup, chat_teardown),
        cmocka_unit_test(test_policy_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
