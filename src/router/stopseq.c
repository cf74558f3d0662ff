#include "router/stopseq.h"

#include <stdlib.h>
#include <string.h>

void el_stopseq_init(el_stopseq *s, const char *const *stop, size_t n_stop) {
    memset(s, 0, sizeof *s);
    s->stop = stop;
    s->n_stop = n_stop;
    for (size_t i = 0; i < n_stop; i++)
        if (stop[i] && strlen(stop[i]) > s->max_len) s->max_len = strlen(stop[i]);
}

void el_stopseq_free(el_stopseq *s) {
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = 0;
}

/* Bytes at the end of buf that start a UTF-8 character not yet complete. */
static size_t utf8_incomplete_tail(const char *buf, size_t len) {
    for (size_t back = 1; back <= 4 && back <= len; back++) {
        unsigned char c = (unsigned char)buf[len - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte: look further back */
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

static int emit_some(el_stopseq *s, size_t n, el_emit_fn emit, void *ud, el_err *err) {
    if (n == 0) return 0;
    if (emit(ud, s->buf, n)) return el_fail(err, EDGELLM_ECANCELLED, "the caller stopped the answer");
    memmove(s->buf, s->buf + n, s->len - n);
    s->len -= n;
    return 0;
}

int el_stopseq_feed(el_stopseq *s, const char *text, size_t n, el_emit_fn emit, void *ud, el_err *err) {
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->len + n + 1) cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (!nb) return el_fail(err, EDGELLM_ENOMEM, "stop sequences: out of memory");
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, text, n);
    s->len += n;
    /* The earliest stop sequence wins. */
    size_t first = s->len;
    for (size_t i = 0; i < s->n_stop; i++) {
        size_t sl = s->stop[i] ? strlen(s->stop[i]) : 0;
        if (sl == 0) continue;
        const char *hit = memmem(s->buf, s->len, s->stop[i], sl);
        if (hit && (size_t)(hit - s->buf) < first) first = (size_t)(hit - s->buf);
    }
    if (first < s->len) {
        if (emit_some(s, first, emit, ud, err)) return -1;
        s->len = 0;
        return 1;
    }
    /* Hold back the longest tail that could still begin a stop sequence, and a
     * split UTF-8 character. */
    size_t hold = 0;
    for (size_t k = s->max_len > 0 ? s->max_len - 1 : 0; k > 0 && !hold; k--) {
        if (k > s->len) continue;
        for (size_t i = 0; i < s->n_stop && !hold; i++)
            if (s->stop[i] && strlen(s->stop[i]) > k && !memcmp(s->buf + s->len - k, s->stop[i], k)) hold = k;
    }
    size_t safe = s->len - hold;
    if (safe == s->len) safe -= utf8_incomplete_tail(s->buf, s->len);
    while (safe > 0 && safe < s->len && ((unsigned char)s->buf[safe] & 0xC0) == 0x80) safe--;
    return emit_some(s, safe, emit, ud, err) ? -1 : 0;
}

int el_stopseq_flush(el_stopseq *s, el_emit_fn emit, void *ud, el_err *err) {
    return emit_some(s, s->len, emit, ud, err);
}
