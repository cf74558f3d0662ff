/* Unicode NFC: decompose fully, order combining marks by class, recompose
 * (the algorithm of UAX #15), with Hangul done arithmetically. */
#include "tokenizer/nfc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/nfc_table.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* An invalid byte b is carried as INVALID_BIT | b: never in a table, class 0. */
#define INVALID_BIT 0x80000000u

enum { S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7,
       L_COUNT = 19, V_COUNT = 21, T_COUNT = 28, N_COUNT = V_COUNT * T_COUNT,
       S_COUNT = L_COUNT * N_COUNT };

/* Strict UTF-8 decode at s[*i]; on an invalid sequence returns INVALID_BIT | byte, advancing 1. */
static uint32_t nfc_utf8_next(const unsigned char *s, size_t len, size_t *i) {
    unsigned c = s[*i];
    int n;
    uint32_t cp;
    if (c < 0x80) { *i += 1; return c; }
    if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 2; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 3; cp = c & 0x07; }
    else goto invalid;
    if (len - *i <= (size_t)n) goto invalid;
    for (int k = 1; k <= n; k++) {
        unsigned cc = s[*i + (size_t)k];
        if ((cc & 0xC0) != 0x80) goto invalid;
        cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        goto invalid;
    *i += (size_t)n + 1;
    return cp;
invalid:
    *i += 1;
    return INVALID_BIT | c;
}

static size_t nfc_utf8_put(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp & INVALID_BIT) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static int nfc_ccc(uint32_t cp) {
    if (cp < 0x300 || (cp & INVALID_BIT)) return 0;
    size_t lo = 0, hi = N_OF(NFC_CCC);
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (cp < NFC_CCC[m][0]) hi = m;
        else if (cp > NFC_CCC[m][1]) lo = m + 1;
        else return (int)NFC_CCC[m][2];
    }
    return 0;
}

static bool nfc_maybe(uint32_t cp) {
    if (cp < 0x300) return false;
    size_t lo = 0, hi = N_OF(NFC_MAYBE);
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (cp < NFC_MAYBE[m][0]) hi = m;
        else if (cp > NFC_MAYBE[m][1]) lo = m + 1;
        else return true;
    }
    return false;
}

bool el_nfc_quick_check(const char *text, size_t len) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    int last = 0;
    while (i < len) {
        if (s[i] < 0x80) { i++; last = 0; continue; }
        uint32_t cp = nfc_utf8_next(s, len, &i);
        int c = nfc_ccc(cp);
        if ((c && last > c) || nfc_maybe(cp)) return false;
        last = c;
    }
    return true;
}

/* ---- full normalization --------------------------------------------------------------------- */

typedef struct cp_buf {
    uint32_t *v;
    size_t n, cap;
} cp_buf;

static int cp_push(cp_buf *b, uint32_t cp, el_err *err) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(uint32_t)) return el_fail(err, EDGELLM_ENOMEM, "nfc: text too long");
        uint32_t *v = realloc(b->v, cap * sizeof *v);
        if (!v) return el_fail(err, EDGELLM_ENOMEM, "nfc: out of memory");
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = cp;
    return 0;
}

static int decompose_into(cp_buf *b, uint32_t cp, el_err *err) {
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        uint32_t s = cp - S_BASE;
        if (cp_push(b, L_BASE + s / N_COUNT, err) || cp_push(b, V_BASE + (s % N_COUNT) / T_COUNT, err))
            return -1;
        return s % T_COUNT ? cp_push(b, T_BASE + s % T_COUNT, err) : 0;
    }
    if (cp >= 0xC0 && !(cp & INVALID_BIT)) {
        size_t lo = 0, hi = N_OF(NFC_DECOMP);
        while (lo < hi) {
            size_t m = (lo + hi) / 2;
            if (cp < NFC_DECOMP[m][0]) hi = m;
            else if (cp > NFC_DECOMP[m][0]) lo = m + 1;
            else {
                for (uint32_t k = 0; k < NFC_DECOMP[m][2]; k++)
                    if (cp_push(b, NFC_DECOMP_POOL[NFC_DECOMP[m][1] + k], err)) return -1;
                return 0;
            }
        }
    }
    return cp_push(b, cp, err);
}

/* Primary composite of (a, b), or 0. */
static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE &&
        b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    size_t lo = 0, hi = N_OF(NFC_COMP);
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (a < NFC_COMP[m][0] || (a == NFC_COMP[m][0] && b < NFC_COMP[m][1])) hi = m;
        else if (a > NFC_COMP[m][0] || b > NFC_COMP[m][1]) lo = m + 1;
        else return NFC_COMP[m][2];
    }
    return 0;
}

/* Stable insertion sort of each run of non-starters by class. */
static void canonical_order(uint32_t *v, size_t n) {
    for (size_t i = 1; i < n; i++) {
        int c = nfc_ccc(v[i]);
        if (!c) continue;
        size_t j = i;
        uint32_t x = v[i];
        while (j > 0) {
            int p = nfc_ccc(v[j - 1]);
            if (p <= c) break;
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

/* In place; returns the new length (UAX #15 sample composition). */
static size_t compose(uint32_t *v, size_t n) {
    if (n == 0) return 0;
    size_t starter = 0, out = 1;
    int last = nfc_ccc(v[0]) ? 256 : 0;
    for (size_t i = 1; i < n; i++) {
        uint32_t ch = v[i];
        int c = nfc_ccc(ch);
        uint32_t comp = compose_pair(v[starter], ch);
        if (comp && (last < c || last == 0)) {
            v[starter] = comp;
            continue;
        }
        if (c == 0) starter = out;
        last = c;
        v[out++] = ch;
    }
    return out;
}

int el_nfc(const char *text, size_t len, char **out, size_t *out_len, el_err *err) {
    *out = NULL;
    *out_len = 0;
    const unsigned char *s = (const unsigned char *)text;
    cp_buf b = {0};
    size_t i = 0;
    while (i < len) {
        uint32_t cp = nfc_utf8_next(s, len, &i);
        if (decompose_into(&b, cp, err)) goto fail;
    }
    canonical_order(b.v, b.n);
    b.n = compose(b.v, b.n);
    if (b.n > (SIZE_MAX - 1) / 4) {
        el_fail(err, EDGELLM_ENOMEM, "nfc: text too long");
        goto fail;
    }
    char *o = malloc(4 * b.n + 1);
    if (!o) {
        el_fail(err, EDGELLM_ENOMEM, "nfc: out of memory");
        goto fail;
    }
    size_t m = 0;
    for (size_t k = 0; k < b.n; k++) m += nfc_utf8_put(b.v[k], o + m);
    o[m] = 0;
    free(b.v);
    *out = o;
    *out_len = m;
    return 0;
fail:
    free(b.v);
    return -1;
}
