/* Tokenizer front end: vocabulary, special-token splitting, dispatch to the
 * model's algorithm (SentencePiece or byte-level BPE), pieces and streaming
 * detokenization. */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/bpe.h"
#include "tokenizer/spm.h"
#include "tokenizer/vocab.h"

struct el_tokenizer {
    el_vocab v;
    el_bpe *bpe; /* byte-level BPE models only */
};

el_tokenizer *el_tokenizer_from_gguf(const el_gguf *g, el_err *err) {
    el_tokenizer *tok = calloc(1, sizeof(*tok));
    if (!tok) {
        el_fail(err, EDGELLM_ENOMEM, "tokenizer: out of memory");
        return NULL;
    }
    if (el_vocab_load(&tok->v, g, err)) {
        free(tok);
        return NULL;
    }
    if (tok->v.is_bpe) {
        tok->bpe = el_bpe_create(g, err);
        if (!tok->bpe) {
            el_tokenizer_free(tok);
            return NULL;
        }
    } else if (!tok->v.is_spm) {
        const el_gguf_kv *kv = el_gguf_find_kv(g, "tokenizer.ggml.model");
        int n = kv && kv->v.str.len < 64 ? (int)kv->v.str.len : 0;
        el_fail(err, EDGELLM_EUNSUPPORTED, "tokenizer: tokenizer.ggml.model '%.*s' is not supported (only llama, gpt2)", n,
                n ? kv->v.str.data : "");
        el_tokenizer_free(tok);
        return NULL;
    }
    return tok;
}

void el_tokenizer_free(el_tokenizer *tok) {
    if (!tok) return;
    el_bpe_free(tok->bpe);
    el_vocab_free(&tok->v);
    free(tok);
}

int32_t el_tokenizer_n_vocab(const el_tokenizer *tok) { return tok->v.n; }
int32_t el_tokenizer_bos(const el_tokenizer *tok) { return tok->v.bos; }
int32_t el_tokenizer_eos(const el_tokenizer *tok) { return tok->v.eos; }
int32_t el_tokenizer_eot(const el_tokenizer *tok) { return tok->v.eot; }
bool el_tokenizer_adds_bos(const el_tokenizer *tok) { return tok->v.add_bos && tok->v.bos >= 0; }

bool el_tokenizer_is_eog(const el_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->v.n && (tok->v.attr[id] & EL_TOK_EOG);
}

bool el_tokenizer_is_control(const el_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->v.n && (tok->v.attr[id] & (EL_TOK_CONTROL | EL_TOK_UNKNOWN));
}

int32_t el_tokenizer_find(const el_tokenizer *tok, const char *text) {
    return el_vocab_find(&tok->v, text, strlen(text));
}

size_t el_tokenizer_max_piece(const el_tokenizer *tok) {
    /* Worst case of one push: held-back bytes + a piece, every byte turned into U+FFFD. */
    return 3 * ((size_t)tok->v.max_len + sizeof(((el_detok *)0)->pending));
}

static int encode_fragment(const el_tokenizer *tok, el_spm_work *w, const char *text, size_t len, bool prev_special,
                           el_ids *ids, el_err *err) {
    const el_vocab *v = &tok->v;
    if (v->is_spm) return el_spm_encode(v, w, text, len, v->add_space_prefix && prev_special, ids, err);
    /* byte-level BPE: no space prefix, the pre-tokenizer handles spaces */
    int32_t *part = NULL;
    size_t n = 0;
    if (el_bpe_encode(tok->bpe, text, len, &part, &n, err)) return -1;
    for (size_t i = 0; i < n; i++) {
        if (el_ids_push(ids, part[i], err)) {
            free(part);
            return -1;
        }
    }
    free(part);
    return 0;
}

int el_tokenize(const el_tokenizer *tok, const char *text, size_t len, bool add_bos, bool parse_special,
                int32_t **out, size_t *n_out, el_err *err) {
    const el_vocab *v = &tok->v;
    *out = NULL;
    *n_out = 0;
    if (!text && len) return el_fail(err, EDGELLM_EINVAL, "tokenize: NULL text with length %zu", len);
    el_fragment *frags = NULL;
    size_t n_frags = 0;
    if (el_vocab_partition(v, text, len, parse_special, &frags, &n_frags, err)) return -1;

    el_ids ids = {0};
    el_spm_work w = {0};
    bool prev_special = true; /* SentencePiece: a space prefix at the start and after special tokens */
    if (add_bos && v->add_bos && v->bos >= 0 && el_ids_push(&ids, v->bos, err)) goto fail;
    for (size_t i = 0; i < n_frags; i++) {
        if (frags[i].tok >= 0) {
            if (el_ids_push(&ids, frags[i].tok, err)) goto fail;
            prev_special = true;
        } else {
            if (encode_fragment(tok, &w, text + frags[i].off, frags[i].len, prev_special, &ids, err)) goto fail;
            prev_special = false;
        }
    }
    if (add_bos && v->add_eos && v->eos >= 0 && el_ids_push(&ids, v->eos, err)) goto fail;
    if (ids.n == 0) {
        /* Callers may free() a non-NULL pointer unconditionally. */
        ids.v = malloc(sizeof(int32_t));
        if (!ids.v) {
            el_fail(err, EDGELLM_ENOMEM, "tokenize: out of memory");
            goto fail;
        }
    }
    free(frags);
    el_spm_work_free(&w);
    *out = ids.v;
    *n_out = ids.n;
    return 0;
fail:
    free(frags);
    el_spm_work_free(&w);
    free(ids.v);
    return -1;
}

/* ---- pieces ---- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Decode one UTF-8 code point (strict); returns its length, or 0 if invalid or truncated. */
static size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t l;
    uint32_t min;
    if (c >= 0xC2 && c <= 0xDF) l = 2, min = 0x80, *cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) l = 3, min = 0x800, *cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) l = 4, min = 0x10000, *cp = c & 0x07;
    else return 0;
    if (n < l) return 0;
    for (size_t k = 1; k < l; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        *cp = (*cp << 6) | (s[k] & 0x3F);
    }
    if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return 0;
    return l;
}

/* GPT-2 byte-level alphabet: printable bytes stand for themselves, the other 68
 * bytes were moved to U+0100.. in order. Returns the byte, or -1. */
static int gpt2_cp_to_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return (int)cp;
    if (cp < 0x100 || cp >= 0x100 + 68) return -1;
    uint32_t k = cp - 0x100;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        if (!printable && k-- == 0) return b;
    }
    return -1;
}

/* Writes the piece if it fits; always returns its full length. */
static size_t put(char *buf, size_t cap, size_t at, const void *src, size_t n) {
    if (at + n <= cap) memcpy(buf + at, src, n);
    return at + n;
}

/* A normal token's bytes: SentencePiece U+2581 -> space; byte-level BPE code points -> bytes. */
static size_t normal_piece(const el_vocab *v, const char *s, size_t n, char *buf, size_t cap) {
    size_t at = 0;
    if (v->is_spm) {
        for (size_t i = 0; i < n;) {
            if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                at = put(buf, cap, at, " ", 1);
                i += 3;
            } else {
                at = put(buf, cap, at, s + i, 1);
                i++;
            }
        }
        return at;
    }
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = utf8_decode((const uint8_t *)s + i, n - i, &cp);
        int b = l ? gpt2_cp_to_byte(cp) : -1;
        if (b >= 0) {
            char c = (char)b;
            at = put(buf, cap, at, &c, 1);
        } else {
            if (!l) l = 1;
            at = put(buf, cap, at, s + i, l); /* not in the alphabet: keep as is */
        }
        i += l;
    }
    return at;
}

int el_token_to_piece(const el_tokenizer *tok, int32_t id, bool render_special, char *buf, size_t cap) {
    const el_vocab *v = &tok->v;
    if (id < 0 || id >= v->n) return -1;
    uint16_t a = v->attr[id];
    const char *s = el_vocab_text(v, id);
    size_t n = v->len[id];
    if (a & (EL_TOK_CONTROL | EL_TOK_UNKNOWN)) {
        if (!render_special) return 0;
        put(buf, cap, 0, s, n);
        return (int)n;
    }
    if (a & EL_TOK_USER_DEFINED) {
        put(buf, cap, 0, s, n);
        return (int)n;
    }
    if (a & EL_TOK_BYTE) {
        if (n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && hexval(s[3]) >= 0 && hexval(s[4]) >= 0) {
            char b = (char)(hexval(s[3]) * 16 + hexval(s[4]));
            put(buf, cap, 0, &b, 1);
            return 1;
        }
        put(buf, cap, 0, s, n); /* a byte token spelled as the byte itself */
        return (int)n;
    }
    if (!(a & EL_TOK_NORMAL)) return 0; /* unused / undefined tokens print nothing */
    /* First measure, then write only if it all fits. */
    size_t len = normal_piece(v, s, n, buf, 0);
    if (len <= cap) normal_piece(v, s, n, buf, cap);
    return (int)len;
}

/* llama.cpp's decode clean-up for byte-level BPE vocabularies, in three passes:
 * no space before ? ! . ,; a lone quote between spaces loses both; no space
 * before 's 'm 're 've. Returns the new length. */
static size_t clean_spaces(char *t, size_t n) {
    size_t m = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) m--;
        t[m++] = x;
    }
    n = m;
    m = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (x == '\'' && i + 1 < n && t[i - 1] == ' ' && t[i + 1] == ' ') {
            m--;  /* the space before */
            i++;  /* and the one after */
        }
        t[m++] = x;
    }
    n = m;
    m = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            char x1 = t[i + 1];
            if (x1 == 's' || x1 == 'm') m--;
            else if (i + 2 < n && ((x1 == 'r' && t[i + 2] == 'e') || (x1 == 'v' && t[i + 2] == 'e'))) m--;
        }
        t[m++] = x;
    }
    return m;
}

int el_detokenize(const el_tokenizer *tok, const int32_t *ids, size_t n, bool render_special, char **out,
                  size_t *n_out, el_err *err) {
    size_t cap = 64, at = 0;
    char *buf = malloc(cap);
    if (!buf) return el_fail(err, EDGELLM_ENOMEM, "detokenize: out of memory");
    for (size_t i = 0; i < n; i++) {
        for (;;) {
            int k = el_token_to_piece(tok, ids[i], render_special, buf + at, cap - at - 1);
            if (k < 0) {
                free(buf);
                return el_fail(err, EDGELLM_ERANGE, "detokenize: token %d at position %zu is outside the vocabulary (%d)",
                               ids[i], i, tok->v.n);
            }
            if ((size_t)k <= cap - at - 1) {
                /* SentencePiece adds a space prefix on encode; drop it on decode, as llama.cpp does. */
                if (i == 0 && tok->v.add_space_prefix && k > 0 && buf[at] == ' ') {
                    memmove(buf + at, buf + at + 1, (size_t)k - 1);
                    k--;
                }
                at += (size_t)k;
                break;
            }
            char *p = realloc(buf, cap * 2 + (size_t)k);
            if (!p) {
                free(buf);
                return el_fail(err, EDGELLM_ENOMEM, "detokenize: out of memory");
            }
            buf = p;
            cap = cap * 2 + (size_t)k;
        }
    }
    if (tok->v.clean_spaces) at = clean_spaces(buf, at);
    buf[at] = '\0';
    *out = buf;
    *n_out = at;
    return 0;
}

/* ---- streaming ---- */

static const char REPLACEMENT[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Expected length of the sequence starting with c if the bytes so far are a valid prefix. */
static size_t utf8_prefix_ok(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    size_t l;
    if (c >= 0xC2 && c <= 0xDF) l = 2;
    else if (c >= 0xE0 && c <= 0xEF) l = 3;
    else if (c >= 0xF0 && c <= 0xF4) l = 4;
    else return 0;
    for (size_t k = 1; k < n && k < l; k++) {
        uint8_t lo = 0x80, hi = 0xBF;
        if (k == 1) {
            if (c == 0xE0) lo = 0xA0;
            else if (c == 0xED) hi = 0x9F;
            else if (c == 0xF0) lo = 0x90;
            else if (c == 0xF4) hi = 0x8F;
        }
        if (s[k] < lo || s[k] > hi) return 0;
    }
    return l;
}

/* Bytes an invalid sequence at s spans: its maximal subpart (the lead byte and the
 * continuation bytes that still fit a valid sequence), which becomes one U+FFFD, as
 * Unicode recommends (and Python, browsers and llama.cpp's consumers decode); a byte that
 * cannot start a sequence is one on its own. */
static size_t utf8_maximal_subpart(const uint8_t *s, size_t n) {
    size_t l = utf8_prefix_ok(s, 1);
    if (l == 0) return 1;
    size_t k = 1;
    while (k < n && k < l && utf8_prefix_ok(s, k + 1) == l) k++;
    return k;
}

size_t el_detok_push(el_detok *d, const el_tokenizer *tok, int32_t id, char *out, size_t cap) {
    size_t need = d->n_pending + (size_t)tok->v.max_len;
    char stack[512];
    char *tmp = need <= sizeof(stack) ? stack : malloc(need);
    if (!tmp) return 0;
    memcpy(tmp, d->pending, d->n_pending);
    int k = el_token_to_piece(tok, id, false, tmp + d->n_pending, need - d->n_pending);
    size_t n = d->n_pending + (k > 0 ? (size_t)k : 0);
    d->n_pending = 0;

    size_t at = 0, i = 0;
    const uint8_t *s = (const uint8_t *)tmp;
    while (i < n) {
        uint32_t cp;
        size_t l = utf8_decode(s + i, n - i, &cp);
        if (l) {
            if (at + l > cap) break;
            memcpy(out + at, s + i, l);
            at += l;
            i += l;
            continue;
        }
        size_t want = utf8_prefix_ok(s + i, n - i);
        if (want > n - i) {
            /* A valid start of a character that the next token completes. */
            memcpy(d->pending, s + i, n - i);
            d->n_pending = n - i;
            i = n;
            break;
        }
        if (at + 3 > cap) break;
        memcpy(out + at, REPLACEMENT, 3);
        at += 3;
        i += utf8_maximal_subpart(s + i, n - i);
    }
    if (tmp != stack) free(tmp);
    return at;
}

size_t el_detok_flush(el_detok *d, char *out, size_t cap) {
    size_t at = 0;
    if (d->n_pending > 0 && cap >= 3) {
        memcpy(out, REPLACEMENT, 3);
        at = 3;
    }
    d->n_pending = 0;
    return at;
}
