/* SentencePiece BPE: start from UTF-8 characters and repeatedly merge the
 * adjacent pair whose concatenation is the vocabulary token with the highest
 * score (ties: leftmost pair), as llama.cpp's llm_tokenizer_spm. */
#include "tokenizer/spm.h"

#include <stdlib.h>
#include <string.h>

typedef struct spm_sym {
    int32_t prev, next;
    uint32_t start, n; /* bytes [start, start+n) of the escaped text; n = 0 once merged away */
} spm_sym;

typedef struct spm_pair {
    int32_t left, right;
    float score;
    uint32_t size; /* bytes of the merged text, to spot stale pairs */
} spm_pair;

/* Length of a UTF-8 sequence from its first byte. Stray continuation bytes
 * count as one; the caller clamps to the bytes left, so invalid input is safe. */
static inline uint32_t utf8_len(uint8_t c) {
    static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lens[c >> 4];
}

static inline bool pair_before(const spm_pair *a, const spm_pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(spm_pair *h, size_t *n, spm_pair p) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = p;
}

static spm_pair heap_pop(spm_pair *h, size_t *n) {
    spm_pair top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && pair_before(&h[c + 1], &h[c])) c++;
        if (!pair_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

static void *grow(void **buf, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return *buf;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    if (c > SIZE_MAX / elem) return NULL;
    void *p = realloc(*buf, c * elem);
    if (!p) return NULL;
    *buf = p;
    *cap = c;
    return p;
}

/* A pair is worth queueing only if its concatenation is a token. */
static void try_pair(const el_vocab *v, const char *esc, const spm_sym *sym, int32_t l, int32_t r, spm_pair *heap,
                     size_t *n_heap) {
    if (l < 0 || r < 0) return;
    uint32_t size = sym[l].n + sym[r].n;
    int32_t id = el_vocab_find(v, esc + sym[l].start, size);
    if (id < 0) return;
    heap_push(heap, n_heap, (spm_pair){l, r, v->score[id], size});
}

static int emit_bytes(const el_vocab *v, const uint8_t *s, uint32_t n, el_ids *out, el_err *err) {
    for (uint32_t k = 0; k < n; k++) {
        int32_t id = v->byte_tok[s[k]];
        if (id < 0) id = v->unk;
        if (id >= 0 && el_ids_push(out, id, err)) return -1;
    }
    return 0;
}

int el_spm_encode(const el_vocab *v, el_spm_work *w, const char *text, size_t len, bool space_prefix,
                  el_ids *out, el_err *err) {
    /* Escape: ' ' -> U+2581 (3 bytes). */
    if (len > (SIZE_MAX - 3) / 3) return el_fail(err, EDGELLM_ERANGE, "tokenize: text too long");
    size_t max_esc = 3 * len + 3;
    if (!grow((void **)&w->esc, &w->esc_cap, max_esc, 1)) return el_fail(err, EDGELLM_ENOMEM, "tokenize: out of memory");
    char *esc = w->esc;
    size_t m = 0;
    if (space_prefix) {
        memcpy(esc, "\xe2\x96\x81", 3);
        m = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(esc + m, "\xe2\x96\x81", 3);
            m += 3;
        } else {
            esc[m++] = text[i];
        }
    }
    if (m == 0) return 0;
    if (m > (size_t)INT32_MAX) return el_fail(err, EDGELLM_ERANGE, "tokenize: text too long");

    /* One symbol per UTF-8 character. */
    if (!grow(&w->sym, &w->sym_cap, m, sizeof(spm_sym)) || !grow(&w->heap, &w->heap_cap, m, sizeof(spm_pair)))
        return el_fail(err, EDGELLM_ENOMEM, "tokenize: out of memory");
    spm_sym *sym = w->sym;
    int32_t n_sym = 0;
    for (size_t off = 0; off < m;) {
        uint32_t l = utf8_len((uint8_t)esc[off]);
        if (l > m - off) l = (uint32_t)(m - off);
        sym[n_sym] = (spm_sym){n_sym - 1, off + l == m ? -1 : n_sym + 1, (uint32_t)off, l};
        off += l;
        n_sym++;
    }

    /* The heap holds at most one live pair per symbol boundary plus stale ones;
     * each merge adds at most two, so n_sym - 1 + 2 * merges <= 3 * n_sym. */
    if (!grow(&w->heap, &w->heap_cap, 3 * (size_t)n_sym, sizeof(spm_pair)))
        return el_fail(err, EDGELLM_ENOMEM, "tokenize: out of memory");
    spm_pair *heap = w->heap;
    size_t n_heap = 0;
    for (int32_t i = 1; i < n_sym; i++) try_pair(v, esc, sym, i - 1, i, heap, &n_heap);

    while (n_heap > 0) {
        spm_pair p = heap_pop(heap, &n_heap);
        spm_sym *l = &sym[p.left], *r = &sym[p.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != p.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = p.left;
        try_pair(v, esc, sym, l->prev, p.left, heap, &n_heap);
        try_pair(v, esc, sym, p.left, l->next, heap, &n_heap);
    }

    for (int32_t i = 0; i != -1; i = sym[i].next) {
        int32_t id = el_vocab_find(v, esc + sym[i].start, sym[i].n);
        if (id >= 0) {
            if (el_ids_push(out, id, err)) return -1;
        } else if (emit_bytes(v, (const uint8_t *)esc + sym[i].start, sym[i].n, out, err)) {
            return -1;
        }
    }
    return 0;
}

void el_spm_work_free(el_spm_work *w) {
    free(w->esc);
    free(w->sym);
    free(w->heap);
    memset(w, 0, sizeof(*w));
}
