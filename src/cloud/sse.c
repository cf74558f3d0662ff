#include "cloud/sse.h"

#include <stdlib.h>
#include <string.h>

#define SSE_DEFAULT_MAX ((size_t)8 << 20)

void el_sse_init(el_sse *p, size_t max_event, el_sse_event_fn fn, void *ud) {
    memset(p, 0, sizeof *p);
    p->max_event = max_event ? max_event : SSE_DEFAULT_MAX;
    p->fn = fn;
    p->ud = ud;
}

void el_sse_free(el_sse *p) {
    free(p->line);
    free(p->data);
    p->line = p->data = NULL;
    p->line_len = p->line_cap = p->data_len = p->data_cap = 0;
}

int el_sse_pending(const el_sse *p) { return p->line_len > 0 || p->has_data || p->bom_matched > 0; }

/* Grows *buf so that it holds need bytes plus a NUL. */
static int sse_reserve(char **buf, size_t *cap, size_t need, size_t max, el_err *err) {
    if (need > max)
        return el_fail(err, EDGELLM_EPROTOCOL, "event stream: an event is larger than %zu bytes", max);
    if (need + 1 <= *cap) return 0;
    size_t ncap = *cap ? *cap : 256;
    while (ncap < need + 1) ncap *= 2;
    char *nb = realloc(*buf, ncap);
    if (!nb) return el_fail(err, EDGELLM_ENOMEM, "event stream: out of memory for a %zu-byte event", need);
    *buf = nb;
    *cap = ncap;
    return 0;
}

static int sse_dispatch(el_sse *p) {
    int rc = 0;
    if (p->has_data) {
        p->data[p->data_len] = '\0';
        p->n_events++;
        rc = p->fn(p->ud, p->event, p->data, p->data_len);
    }
    p->data_len = 0;
    p->has_data = 0;
    p->event[0] = '\0';
    return rc ? -1 : 0;
}

/* Handles one complete line (without its terminator). */
static int sse_line(el_sse *p, const char *line, size_t n, el_err *err) {
    if (n == 0) return sse_dispatch(p);
    if (line[0] == ':') return 0; /* comment, e.g. a keep-alive */
    const char *colon = memchr(line, ':', n);
    size_t name_len = colon ? (size_t)(colon - line) : n;
    const char *value = colon ? colon + 1 : line + n;
    size_t value_len = colon ? n - name_len - 1 : 0;
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }
    if (name_len == 4 && !memcmp(line, "data", 4)) {
        size_t need = p->data_len + (p->has_data ? 1 : 0) + value_len;
        if (sse_reserve(&p->data, &p->data_cap, need, p->max_event, err)) return -1;
        if (p->has_data) p->data[p->data_len++] = '\n';
        memcpy(p->data + p->data_len, value, value_len);
        p->data_len += value_len;
        p->has_data = 1;
    } else if (name_len == 5 && !memcmp(line, "event", 5)) {
        size_t m = value_len < sizeof p->event - 1 ? value_len : sizeof p->event - 1;
        memcpy(p->event, value, m);
        p->event[m] = '\0';
    }
    /* id, retry and unknown fields are ignored, as the SSE spec says. */
    return 0;
}

/* Consume a leading BOM, which may arrive split across reads. Bytes that start like a
 * BOM but turn out not to be one are put back as the start of the first line.
 * Returns the number of bytes of this read consumed, or -1 (err filled). */
static long sse_skip_bom(el_sse *p, const char *bytes, size_t n, el_err *err) {
    static const char BOM[3] = {'\xef', '\xbb', '\xbf'};
    size_t i = 0;
    while (p->bom_matched >= 0 && i < n) {
        if (bytes[i] == BOM[p->bom_matched]) {
            i++;
            if (++p->bom_matched == 3) p->bom_matched = -1;
            continue;
        }
        if (p->bom_matched > 0) {
            if (sse_reserve(&p->line, &p->line_cap, (size_t)p->bom_matched, p->max_event, err)) return -1;
            memcpy(p->line, BOM, (size_t)p->bom_matched);
            p->line_len = (size_t)p->bom_matched;
        }
        p->bom_matched = -1;
    }
    return (long)i;
}

int el_sse_feed(el_sse *p, const char *bytes, size_t n, el_err *err) {
    long skipped = sse_skip_bom(p, bytes, n, err);
    if (skipped < 0) return -1;
    size_t i = (size_t)skipped;
    while (i < n) {
        if (p->skip_lf) {
            p->skip_lf = 0;
            if (bytes[i] == '\n') {
                i++;
                continue;
            }
        }
        /* Find the next line terminator in this read. */
        size_t j = i;
        while (j < n && bytes[j] != '\n' && bytes[j] != '\r') j++;
        if (j == n) { /* incomplete line: keep it for the next read */
            if (sse_reserve(&p->line, &p->line_cap, p->line_len + (n - i), p->max_event, err)) return -1;
            memcpy(p->line + p->line_len, bytes + i, n - i);
            p->line_len += n - i;
            return 0;
        }
        int rc;
        if (p->line_len) {
            if (sse_reserve(&p->line, &p->line_cap, p->line_len + (j - i), p->max_event, err)) return -1;
            memcpy(p->line + p->line_len, bytes + i, j - i);
            size_t len = p->line_len + (j - i);
            p->line_len = 0;
            rc = sse_line(p, p->line, len, err);
        } else {
            if (j - i > p->max_event)
                return el_fail(err, EDGELLM_EPROTOCOL, "event stream: a line is larger than %zu bytes",
                               p->max_event);
            rc = sse_line(p, bytes + i, j - i, err);
        }
        if (bytes[j] == '\r') p->skip_lf = 1;
        i = j + 1;
        if (rc) return -1;
    }
    return 0;
}
