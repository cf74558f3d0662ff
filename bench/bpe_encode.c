/* Byte-level BPE encoder driver, for the exactness test and the speed bench.
 *
 *   bench_bpe_encode ids VOCAB.gguf CORPUS.jsonl
 *       each line of CORPUS is a JSON string; prints its token ids, one line each
 *   bench_bpe_encode nfc - CORPUS.jsonl
 *       prints the NFC form of each line as a JSON string (checks the NFC tables)
 *   bench_bpe_encode speed VOCAB.gguf TEXT_FILE [REPEATS] [CHUNK]
 *       encodes the file REPEATS times, single thread, as one string or (CHUNK > 0)
 *       in pieces cut at the first '\n' at or after every CHUNK bytes; prints
 *       bytes, tokens, CPU seconds and MB/s (by CPU time) of the best run */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf/gguf.h"
#include "tokenizer/bpe.h"
#include "tokenizer/nfc.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of this process: steadier than wall time on a shared machine. */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

/* NULL b: print NFC forms instead of ids. */
static int run_ids(const el_bpe *b, const char *corpus) {
    FILE *f = fopen(corpus, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", corpus);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        json_error_t jerr;
        json_t *j = json_loadb(line, (size_t)n, JSON_DECODE_ANY, &jerr);
        if (!j || !json_is_string(j)) {
            fprintf(stderr, "%s:%ld: not a JSON string\n", corpus, lineno);
            json_decref(j);
            rc = 1;
            break;
        }
        el_err err = {0};
        if (!b) {
            char *norm;
            size_t n_norm;
            if (el_nfc(json_string_value(j), json_string_length(j), &norm, &n_norm, &err)) {
                fprintf(stderr, "%s:%ld: %s\n", corpus, lineno, err.message);
                json_decref(j);
                rc = 1;
                break;
            }
            json_t *o = json_stringn(norm, n_norm);
            char *dump = o ? json_dumps(o, JSON_ENCODE_ANY) : NULL;
            printf("%s\n", dump ? dump : "null");
            free(dump);
            json_decref(o);
            free(norm);
            json_decref(j);
            continue;
        }
        int32_t *ids;
        size_t n_ids;
        if (el_bpe_encode(b, json_string_value(j), json_string_length(j), &ids, &n_ids, &err)) {
            fprintf(stderr, "%s:%ld: %s\n", corpus, lineno, err.message);
            json_decref(j);
            rc = 1;
            break;
        }
        for (size_t i = 0; i < n_ids; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
        free(ids);
        json_decref(j);
    }
    free(line);
    fclose(f);
    return rc;
}

static int encode_all(const el_bpe *b, const char *text, size_t len, size_t chunk, size_t *n_tok) {
    el_err err = {0};
    *n_tok = 0;
    size_t start = 0;
    while (start < len) {
        size_t end = len;
        if (chunk && len - start > chunk) {
            const char *nl = memchr(text + start + chunk, '\n', len - start - chunk);
            if (nl) end = (size_t)(nl - text) + 1;
        }
        int32_t *ids;
        size_t n;
        if (el_bpe_encode(b, text + start, end - start, &ids, &n, &err)) {
            fprintf(stderr, "encode: %s\n", err.message);
            return 1;
        }
        free(ids);
        *n_tok += n;
        start = end;
    }
    return 0;
}

static int run_speed(const el_bpe *b, const char *path, int repeats, size_t chunk) {
    size_t len;
    char *text = read_file(path, &len);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    double best = 1e30, best_wall = 1e30;
    size_t n_tok = 0;
    for (int r = 0; r < repeats; r++) {
        double t0 = cpu_s(), w0 = now_s();
        if (encode_all(b, text, len, chunk, &n_tok)) {
            free(text);
            return 1;
        }
        double t = cpu_s() - t0, w = now_s() - w0;
        if (t < best) best = t;
        if (w < best_wall) best_wall = w;
    }
    printf("bytes=%zu tokens=%zu cpu_seconds=%.4f MB/s=%.2f wall_seconds=%.4f\n", len, n_tok, best,
           (double)len / best / 1e6, best_wall);
    free(text);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s ids VOCAB.gguf CORPUS.jsonl | nfc - CORPUS.jsonl | speed VOCAB.gguf FILE [REPEATS] [CHUNK]\n",
                argv[0]);
        return 2;
    }
    el_err err = {0};
    if (strcmp(argv[1], "nfc") == 0) return run_ids(NULL, argv[3]);
    double t0 = now_s();
    el_gguf *g = el_gguf_open(argv[2], &err);
    if (!g) {
        fprintf(stderr, "%s: %s\n", argv[2], err.message);
        return 1;
    }
    el_bpe *b = el_bpe_create(g, &err);
    if (!b) {
        fprintf(stderr, "%s: %s\n", argv[2], err.message);
        el_gguf_close(g);
        return 1;
    }
    double t_load = now_s() - t0;
    int rc;
    if (strcmp(argv[1], "ids") == 0) {
        rc = run_ids(b, argv[3]);
    } else if (strcmp(argv[1], "speed") == 0) {
        fprintf(stderr, "load: %.3f s (%s, %d tokens)\n", t_load, el_bpe_pre_name(b), el_bpe_n_vocab(b));
        rc = run_speed(b, argv[3], argc > 4 ? atoi(argv[4]) : 3, argc > 5 ? (size_t)atol(argv[5]) : 0);
    } else {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        rc = 2;
    }
    el_bpe_free(b);
    el_gguf_close(g);
    return rc;
}
