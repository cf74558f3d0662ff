/* One input through the SSE parser (src/cloud/sse.c), shared by the libFuzzer target
 * tests/fuzz/fuzz_sse.c and tests/test_fuzz_corpora.c (which runs every committed
 * corpus file in the normal and ASan test runs).
 *
 * The bytes are fed three ways: in one piece, one byte at a time, and in pieces whose
 * sizes come from a hash of the input (empty pieces included). A network read may end
 * anywhere, so every way must dispatch exactly the same events, stop at the same point
 * with the same error, and leave the same pending state. That is checked with the
 * default size cap and again with a tiny one (so the "too large" path runs on small
 * inputs). Each event must also be well formed: NUL-terminated where the callback is
 * told, no line terminator inside it, no larger than the cap. */
#ifndef FUZZ_SSE_BODY_H
#define FUZZ_SSE_BODY_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/sse.h"

#define FUZZ_SSE_SMALL_CAP 40 /* bytes: a line or event longer than this is refused */

typedef struct fuzz_sse_outcome {
    int rc;              /* of the last el_sse_feed: 0, or -1 */
    edgellm_status code; /* EDGELLM_OK when the callback stopped the parser */
    size_t n_events;     /* events the callback received */
    int pending;         /* el_sse_pending at the end (when rc == 0) */
} fuzz_sse_outcome;

/* Everything one feeding saw, to compare feedings with each other. */
typedef struct fuzz_sse_run {
    fuzz_sse_outcome o;
    char *log;           /* per event: name, NUL, 8-byte data length, data */
    size_t log_len, log_cap;
    size_t max_event;
    size_t data_bytes;   /* data bytes over all events */
    const char *broken;  /* first invariant an event broke, or NULL */
} fuzz_sse_run;

static void fuzz_sse_log(fuzz_sse_run *r, const void *p, size_t n) {
    if (r->broken) return;
    if (r->log_len + n > r->log_cap) {
        size_t cap = r->log_cap ? r->log_cap : 256;
        while (cap < r->log_len + n) cap *= 2;
        char *nb = realloc(r->log, cap);
        if (!nb) {
            r->broken = "out of memory in the harness";
            return;
        }
        r->log = nb;
        r->log_cap = cap;
    }
    memcpy(r->log + r->log_len, p, n);
    r->log_len += n;
}

static int fuzz_sse_on_event(void *ud, const char *event, const char *data, size_t len) {
    fuzz_sse_run *r = ud;
    size_t elen = strnlen(event, 64);
    if (elen == 64) r->broken = "event name not NUL-terminated within the parser's 64 bytes";
    else if (memchr(event, '\n', elen) || memchr(event, '\r', elen)) r->broken = "event name holds a line terminator";
    else if (data[len] != '\0') r->broken = "data not NUL-terminated at data_len";
    else if (memchr(data, '\r', len)) r->broken = "data holds a CR (a CR always ends a line)";
    else if (len > r->max_event) r->broken = "event data larger than the cap";
    uint64_t n64 = len;
    fuzz_sse_log(r, event, elen + 1);
    fuzz_sse_log(r, &n64, sizeof n64);
    fuzz_sse_log(r, data, len);
    r->o.n_events++;
    r->data_bytes += len;
    /* An event whose data is "stop" asks the parser to stop (the caller's way out). */
    return len == 4 && !memcmp(data, "stop", 4);
}

/* Feeds data in pieces of the given sizes (cycled; 0 = an empty read). */
static void fuzz_sse_feed(fuzz_sse_run *r, const uint8_t *data, size_t size, size_t max_event, int mode,
                          uint64_t seed) {
    memset(r, 0, sizeof *r);
    el_sse p;
    el_sse_init(&p, max_event, fuzz_sse_on_event, r);
    r->max_event = p.max_event; /* 0 asked for the default */
    el_err err = {EDGELLM_OK, ""};
    size_t i = 0;
    int rc = 0;
    for (;;) {
        size_t n;
        if (mode == 0) n = size;
        else if (mode == 1) n = 1;
        else {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17; /* xorshift64 */
            n = (size_t)(seed % 97) < 10 ? 0 : (size_t)(seed >> 32) % (size_t)(1 + (seed % 5 == 0 ? 4096 : 24));
        }
        if (n > size - i) n = size - i;
        rc = el_sse_feed(&p, (const char *)data + i, n, &err);
        i += n;
        if (rc || i == size) break;
    }
    r->o.rc = rc;
    r->o.code = err.code;
    if (rc && err.code != EDGELLM_OK && !err.message[0]) r->broken = "an error without a message";
    if (rc && err.code == EDGELLM_OK && !(r->log_len >= 4 && !memcmp(r->log + r->log_len - 4, "stop", 4)))
        r->broken = "-1 without an error and without the callback asking to stop";
    if (!r->broken && p.n_events != r->o.n_events) r->broken = "n_events differs from the events dispatched";
    r->o.pending = rc ? 0 : el_sse_pending(&p);
    el_sse_free(&p);
}

static int fuzz_sse_same(const fuzz_sse_run *a, const fuzz_sse_run *b) {
    return a->o.rc == b->o.rc && a->o.code == b->o.code && a->o.n_events == b->o.n_events &&
           a->o.pending == b->o.pending && a->log_len == b->log_len && (!a->log_len || !memcmp(a->log, b->log, a->log_len));
}

/* Runs one input; fills *out from the whole-input feeding with the default cap.
 * Returns NULL, or the invariant that broke. */
static const char *fuzz_sse_one(const uint8_t *data, size_t size, fuzz_sse_outcome *out) {
    memset(out, 0, sizeof *out);
    if (!data) data = (const uint8_t *)"";
    uint64_t seed = 1469598103934665603ull; /* FNV-1a of the input: where the pieces end */
    for (size_t i = 0; i < size; i++) seed = (seed ^ data[i]) * 1099511628211ull;
    seed |= 1;
    size_t terminators = 0;
    for (size_t i = 0; i < size; i++) terminators += data[i] == '\n' || data[i] == '\r';
    const char *broken = NULL;
    static const size_t caps[2] = {0, FUZZ_SSE_SMALL_CAP};
    for (int c = 0; c < 2 && !broken; c++) {
        fuzz_sse_run runs[3];
        for (int m = 0; m < 3; m++) fuzz_sse_feed(&runs[m], data, size, caps[c], m, seed);
        for (int m = 0; m < 3 && !broken; m++) broken = runs[m].broken;
        if (!broken && (!fuzz_sse_same(&runs[0], &runs[1]) || !fuzz_sse_same(&runs[0], &runs[2])))
            broken = c ? "feeding in pieces changed the events (small cap)" : "feeding in pieces changed the events";
        /* Each event needs a data line and a blank line: two terminator bytes of its own. */
        if (!broken && runs[0].o.n_events * 2 > terminators) broken = "more events than blank lines";
        if (!broken && runs[0].data_bytes > size) broken = "more data bytes than input bytes";
        if (c == 0) *out = runs[0].o;
        for (int m = 0; m < 3; m++) free(runs[m].log);
    }
    return broken;
}

#endif
