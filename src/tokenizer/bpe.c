/* Byte-level BPE encoder (see bpe.h). */
#include "tokenizer/bpe.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/nfc.h"
#include "tokenizer/pretokenize.h"

/* GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type). */
enum { TT_UNDEFINED = 0, TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4,
       TT_UNUSED = 5, TT_BYTE = 6 };

#define PAIR_EMPTY UINT64_MAX

/* A slot holds what a lookup compares, so a probe touches the slot and, on a
 * likely hit, the token's bytes: nothing else. */
typedef struct bpe_slot {
    uint32_t id1; /* id + 1, 0 = empty */
    uint32_t tag; /* high 32 bits of the hash */
    uint32_t off; /* the token's bytes: blob + off, len bytes */
    uint32_t len;
} bpe_slot;

typedef struct bpe_pair {
    uint64_t key; /* left << 32 | right, PAIR_EMPTY = empty */
    int32_t rank;
    int32_t id;   /* the merged token */
} bpe_pair;

struct el_bpe {
    int32_t n_vocab;
    char *blob;     /* each token's bytes */
    uint32_t *off;  /* token i: blob + off[i], len[i] bytes */
    uint32_t *len;

    /* bytes -> id, open addressing; the hash's high half is kept to skip most
     * compares without touching the token's bytes. */
    bpe_slot *slots;
    uint64_t slot_mask;

    bpe_pair *pairs; /* (left, right) -> rank, merged id; open addressing */
    uint64_t pair_mask;

    int32_t byte_id[256]; /* single-byte token, -1 if the vocabulary lacks it */
    bool ignore_merges;
    bool nfc; /* normalize input to NFC first (Qwen2's tokenizer.json normalizer) */
    el_pretok *pre;
};

/* ---- GPT-2 byte <-> unicode map ------------------------------------------------------------- */

/* Bytes that stand for themselves as code points; the other 68 map to U+0100.. in byte order. */
static bool gpt2_byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

#define GPT2_N_CP (256 + 68)

static void gpt2_fill_byte_of_cp(int16_t byte_of_cp[GPT2_N_CP]) {
    int n = 0;
    for (int cp = 0; cp < GPT2_N_CP; cp++) byte_of_cp[cp] = -1;
    for (unsigned b = 0; b < 256; b++) {
        if (gpt2_byte_is_printable(b)) byte_of_cp[b] = (int16_t)b;
        else byte_of_cp[256 + n++] = (int16_t)b;
    }
}

/* Strict UTF-8 decode of one code point at s[*i]; -1 if invalid. */
static int32_t utf8_next(const unsigned char *s, size_t len, size_t *i) {
    unsigned c = s[*i];
    int n;
    uint32_t cp;
    if (c < 0x80) { *i += 1; return (int32_t)c; }
    if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 2; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 3; cp = c & 0x07; }
    else return -1;
    if (len - *i <= (size_t)n) return -1;
    for (int k = 1; k <= n; k++) {
        unsigned cc = s[*i + (size_t)k];
        if ((cc & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    *i += (size_t)n + 1;
    return (int32_t)cp;
}

/* Byte-mapped text -> raw bytes into out (at most len bytes). Returns the byte
 * count, or -1 if some character is not in the map. */
static int64_t gpt2_decode(const int16_t byte_of_cp[GPT2_N_CP], const char *text, size_t len,
                           char *out) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, n = 0;
    while (i < len) {
        int32_t cp = utf8_next(s, len, &i);
        if (cp < 0 || cp >= GPT2_N_CP || byte_of_cp[cp] < 0) return -1;
        out[n++] = (char)byte_of_cp[cp];
    }
    return (int64_t)n;
}

/* ---- hash tables ---------------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t key) {
    key *= 0x9E3779B97F4A7C15ull;
    return key ^ (key >> 31);
}

/* Smallest power of two >= 2n (load factor <= 1/2), at least 16. */
static uint64_t table_size(uint64_t n) {
    uint64_t s = 16;
    while (s < 2 * n) s <<= 1;
    return s;
}

int32_t el_bpe_find(const el_bpe *b, const char *bytes, size_t len) {
    uint64_t h = hash_bytes(bytes, len), i = h & b->slot_mask;
    uint32_t tag = (uint32_t)(h >> 32);
    for (;;) {
        const bpe_slot *s = &b->slots[i];
        if (!s->id1) return -1;
        if (s->tag == tag && s->len == len && memcmp(b->blob + s->off, bytes, len) == 0)
            return (int32_t)(s->id1 - 1);
        i = (i + 1) & b->slot_mask;
    }
}

/* First id wins for equal bytes (cannot happen in a sane vocabulary). */
static void vocab_insert(el_bpe *b, int32_t id) {
    const char *s = b->blob + b->off[id];
    size_t len = b->len[id];
    uint64_t h = hash_bytes(s, len), i = h & b->slot_mask;
    uint32_t tag = (uint32_t)(h >> 32);
    for (;;) {
        const bpe_slot *v = &b->slots[i];
        if (!v->id1) {
            b->slots[i] = (bpe_slot){(uint32_t)id + 1, tag, b->off[id], (uint32_t)len};
            return;
        }
        if (v->tag == tag && v->len == len && memcmp(b->blob + v->off, s, len) == 0) return;
        i = (i + 1) & b->slot_mask;
    }
}

static bool pair_lookup(const el_bpe *b, int32_t left, int32_t right, int32_t *rank, int32_t *id) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    uint64_t i = hash_pair(key) & b->pair_mask;
    for (;;) {
        const bpe_pair *p = &b->pairs[i];
        if (p->key == PAIR_EMPTY) return false;
        if (p->key == key) {
            *rank = p->rank;
            *id = p->id;
            return true;
        }
        i = (i + 1) & b->pair_mask;
    }
}

/* A later duplicate of a merge overwrites the earlier rank, as tokenizers' map does. */
static void pair_insert(el_bpe *b, int32_t left, int32_t right, int32_t rank, int32_t id) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    uint64_t i = hash_pair(key) & b->pair_mask;
    while (b->pairs[i].key != PAIR_EMPTY && b->pairs[i].key != key) i = (i + 1) & b->pair_mask;
    b->pairs[i] = (bpe_pair){key, rank, id};
}

/* ---- loading -------------------------------------------------------------------------------- */

static const el_gguf_kv *find_str_array(const el_gguf *g, const char *key, bool required,
                                        el_err *err) {
    const el_gguf_kv *kv = el_gguf_find_kv(g, key);
    if (!kv) {
        if (required) el_fail(err, EDGELLM_ENOTFOUND, "bpe: missing %s", key);
        return NULL;
    }
    if (kv->type != EL_GGUF_ARRAY || kv->v.arr.type != EL_GGUF_STRING || !kv->v.arr.strs) {
        el_fail(err, EDGELLM_EFORMAT, "bpe: %s is not an array of strings", key);
        return NULL;
    }
    return kv;
}

static int load_tokens(el_bpe *b, const el_gguf *g, const int16_t *byte_of_cp, el_err *err) {
    const el_gguf_kv *tk = find_str_array(g, "tokenizer.ggml.tokens", true, err);
    if (!tk) return -1;
    uint64_t n = tk->v.arr.n;
    if (n == 0 || n > (uint64_t)INT32_MAX - 1)
        return el_fail(err, EDGELLM_EFORMAT, "bpe: tokenizer.ggml.tokens has %llu entries",
                       (unsigned long long)n);
    b->n_vocab = (int32_t)n;

    const uint8_t *types = NULL; /* raw little-endian int32 */
    const el_gguf_kv *tt = el_gguf_find_kv(g, "tokenizer.ggml.token_type");
    if (tt) {
        if (tt->type != EL_GGUF_ARRAY ||
            (tt->v.arr.type != EL_GGUF_INT32 && tt->v.arr.type != EL_GGUF_UINT32))
            return el_fail(err, EDGELLM_EFORMAT, "bpe: tokenizer.ggml.token_type is not an int32 array");
        if (tt->v.arr.n != n)
            return el_fail(err, EDGELLM_EFORMAT,
                           "bpe: tokenizer.ggml.token_type has %llu entries, tokens has %llu",
                           (unsigned long long)tt->v.arr.n, (unsigned long long)n);
        types = tt->v.arr.data;
    }

    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t l = tk->v.arr.strs[i].len;
        if (l > UINT32_MAX || total + l < total)
            return el_fail(err, EDGELLM_EFORMAT, "bpe: token %llu is too long", (unsigned long long)i);
        total += l;
    }
    if (total >= UINT32_MAX)
        return el_fail(err, EDGELLM_EFORMAT, "bpe: token texts total %llu bytes (limit 4 GiB)",
                       (unsigned long long)total);
    b->blob = malloc((size_t)total + 1);
    b->off = malloc((size_t)n * sizeof *b->off);
    b->len = malloc((size_t)n * sizeof *b->len);
    uint64_t cap = table_size(n);
    b->slots = calloc((size_t)cap, sizeof *b->slots);
    b->slot_mask = cap - 1;
    if (!b->blob || !b->off || !b->len || !b->slots)
        return el_fail(err, EDGELLM_ENOMEM, "bpe: out of memory for %llu tokens",
                       (unsigned long long)n);

    uint32_t pos = 0;
    for (uint64_t i = 0; i < n; i++) {
        const el_gguf_str *s = &tk->v.arr.strs[i];
        int32_t type = TT_NORMAL;
        if (types) {
            uint32_t t;
            memcpy(&t, types + 4 * i, 4); /* GGUF is little-endian; so are the targets */
            type = (int32_t)t;
        }
        bool byte_level = type == TT_NORMAL || type == TT_UNDEFINED || type == TT_BYTE;
        int64_t m = byte_level ? gpt2_decode(byte_of_cp, s->data, (size_t)s->len, b->blob + pos) : -1;
        b->off[i] = pos;
        if (m < 0) { /* control / user-defined / not byte-mapped: keep the raw text */
            if (s->len) memcpy(b->blob + pos, s->data, (size_t)s->len);
            b->len[i] = (uint32_t)s->len;
            pos += (uint32_t)s->len;
            continue;
        }
        b->len[i] = (uint32_t)m;
        pos += (uint32_t)m;
        if (m > 0) vocab_insert(b, (int32_t)i);
    }
    for (int c = 0; c < 256; c++) {
        char ch = (char)c;
        b->byte_id[c] = el_bpe_find(b, &ch, 1);
    }
    return 0;
}

/* "left right" split at the first space after position 0 (as llama.cpp does). */
static int load_merges(el_bpe *b, const el_gguf *g, const int16_t *byte_of_cp, el_err *err) {
    const el_gguf_kv *mk = find_str_array(g, "tokenizer.ggml.merges", true, err);
    if (!mk) return -1;
    uint64_t n = mk->v.arr.n;
    if (n > (uint64_t)INT32_MAX)
        return el_fail(err, EDGELLM_EFORMAT, "bpe: tokenizer.ggml.merges has %llu entries",
                       (unsigned long long)n);
    uint64_t cap = table_size(n);
    b->pairs = malloc((size_t)cap * sizeof *b->pairs);
    b->pair_mask = cap - 1;
    uint64_t max_len = 0;
    for (uint64_t i = 0; i < n; i++)
        if (mk->v.arr.strs[i].len > max_len) max_len = mk->v.arr.strs[i].len;
    if (max_len > SIZE_MAX / 2) return el_fail(err, EDGELLM_EFORMAT, "bpe: merge string too long");
    char *scratch = malloc((size_t)max_len * 2 + 1);
    if (!b->pairs || !scratch) {
        free(scratch);
        return el_fail(err, EDGELLM_ENOMEM, "bpe: out of memory for %llu merges",
                       (unsigned long long)n);
    }
    for (uint64_t i = 0; i < cap; i++) b->pairs[i].key = PAIR_EMPTY;

    for (uint64_t i = 0; i < n; i++) {
        const el_gguf_str *s = &mk->v.arr.strs[i];
        const char *sp = s->len > 1 ? memchr(s->data + 1, ' ', (size_t)s->len - 1) : NULL;
        if (!sp) {
            free(scratch);
            return el_fail(err, EDGELLM_EFORMAT, "bpe: tokenizer.ggml.merges[%llu] has no space",
                           (unsigned long long)i);
        }
        size_t ll = (size_t)(sp - s->data), rl = (size_t)s->len - ll - 1;
        int64_t lb = gpt2_decode(byte_of_cp, s->data, ll, scratch);
        int64_t rb = lb < 0 ? -1 : gpt2_decode(byte_of_cp, sp + 1, rl, scratch + lb);
        /* Merges over tokens the vocabulary lacks can never apply: skip them. */
        if (lb <= 0 || rb <= 0) continue;
        int32_t left = el_bpe_find(b, scratch, (size_t)lb);
        int32_t right = el_bpe_find(b, scratch + lb, (size_t)rb);
        int32_t merged = el_bpe_find(b, scratch, (size_t)(lb + rb));
        if (left < 0 || right < 0 || merged < 0) continue;
        pair_insert(b, left, right, (int32_t)i, merged);
    }
    free(scratch);
    return 0;
}

el_bpe *el_bpe_create(const el_gguf *g, el_err *err) {
    el_bpe *b = calloc(1, sizeof *b);
    if (!b) {
        el_fail(err, EDGELLM_ENOMEM, "bpe: out of memory");
        return NULL;
    }
    int16_t byte_of_cp[GPT2_N_CP];
    gpt2_fill_byte_of_cp(byte_of_cp);
    const el_gguf_kv *pk = el_gguf_find_kv(g, "tokenizer.ggml.pre");
    if (pk && pk->type != EL_GGUF_STRING) {
        el_fail(err, EDGELLM_EFORMAT, "bpe: tokenizer.ggml.pre is not a string");
        goto fail;
    }
    b->pre = pk ? el_pretok_create(pk->v.str.data, (size_t)pk->v.str.len, err)
                : el_pretok_create(NULL, 0, err);
    if (!b->pre) goto fail;
    /* GGUF carries neither flag: they follow the model family, as in llama.cpp. */
    b->ignore_merges = el_pretok_ignore_merges(b->pre);
    b->nfc = el_pretok_nfc(b->pre);
    if (load_tokens(b, g, byte_of_cp, err) || load_merges(b, g, byte_of_cp, err)) goto fail;
    return b;
fail:
    el_bpe_free(b);
    return NULL;
}

void el_bpe_free(el_bpe *b) {
    if (!b) return;
    el_pretok_free(b->pre);
    free(b->blob);
    free(b->off);
    free(b->len);
    free(b->slots);
    free(b->pairs);
    free(b);
}

int32_t el_bpe_n_vocab(const el_bpe *b) { return b->n_vocab; }
const char *el_bpe_pre_name(const el_bpe *b) { return el_pretok_name(b->pre); }

int el_bpe_token_bytes(const el_bpe *b, int32_t id, char *buf, size_t cap) {
    if (id < 0 || id >= b->n_vocab) return -1;
    size_t len = b->len[id];
    if (len <= cap && len) memcpy(buf, b->blob + b->off[id], len);
    return len > INT32_MAX ? INT32_MAX : (int)len;
}

/* ---- encoding ------------------------------------------------------------------------------- */

typedef struct bpe_sym {
    int32_t id;         /* token, -1 for a byte the vocabulary lacks */
    int32_t prev, next; /* neighbours, -1 at the ends */
    uint32_t len;       /* bytes covered; 0 once merged into the left neighbour */
} bpe_sym;

/* A candidate merge of symbol pos with its right neighbour. Symbols only grow,
 * and pos's neighbour changes only when pos grows, so the candidate is stale
 * exactly when pos is gone or the two lengths no longer add up to len2. */
typedef struct bpe_cand {
    int32_t rank, pos, new_id;
    uint32_t len2;
} bpe_cand;

typedef struct bpe_work {
    const el_bpe *b;
    el_err *err;
    bpe_sym *sym;
    bpe_cand *heap;
    size_t cap;  /* sym has cap entries, heap 3 * cap */
    size_t n_heap;
    int32_t *ids;
    size_t n_ids, cap_ids;
} bpe_work;

static bool cand_less(const bpe_cand *a, const bpe_cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_work *w, bpe_cand c) {
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
}

static bpe_cand heap_pop(bpe_work *w) {
    bpe_cand top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const bpe_cand *best = &last;
        if (l < n && cand_less(&w->heap[l], best)) { m = l; best = &w->heap[l]; }
        if (l + 1 < n && cand_less(&w->heap[l + 1], best)) m = l + 1;
        if (m == i) break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (n) w->heap[i] = last;
    return top;
}

static void try_pair(bpe_work *w, int32_t pos, int32_t right) {
    const bpe_sym *l = &w->sym[pos], *r = &w->sym[right];
    bpe_cand c;
    if (l->id < 0 || r->id < 0 || !pair_lookup(w->b, l->id, r->id, &c.rank, &c.new_id)) return;
    c.pos = pos;
    c.len2 = l->len + r->len;
    heap_push(w, c);
}

static int push_id(bpe_work *w, int32_t id) {
    if (id < 0) return 0; /* a byte with no token is dropped, as tokenizers does without unk */
    if (w->n_ids == w->cap_ids) {
        size_t cap = w->cap_ids ? w->cap_ids * 2 : 64;
        if (cap > SIZE_MAX / sizeof(int32_t)) return el_fail(w->err, EDGELLM_ENOMEM, "bpe: too many tokens");
        int32_t *v = realloc(w->ids, cap * sizeof *v);
        if (!v) return el_fail(w->err, EDGELLM_ENOMEM, "bpe: out of memory for %zu tokens", cap);
        w->ids = v;
        w->cap_ids = cap;
    }
    w->ids[w->n_ids++] = id;
    return 0;
}

static int reserve_work(bpe_work *w, size_t n) {
    if (n <= w->cap) return 0;
    if (n > (size_t)INT32_MAX || n > SIZE_MAX / (3 * sizeof(bpe_cand)))
        return el_fail(w->err, EDGELLM_ERANGE, "bpe: pre-token of %zu bytes is too long", n);
    bpe_sym *s = realloc(w->sym, n * sizeof *s);
    if (s) w->sym = s;
    bpe_cand *h = realloc(w->heap, 3 * n * sizeof *h);
    if (h) w->heap = h;
    if (!s || !h) return el_fail(w->err, EDGELLM_ENOMEM, "bpe: out of memory for a %zu-byte pre-token", n);
    w->cap = n;
    return 0;
}

/* Merge the bytes of one piece, lowest rank first (leftmost on ties). */
static int bpe_piece(const char *piece, size_t len, void *ud) {
    bpe_work *w = ud;
    const el_bpe *b = w->b;
    if (len == 1) return push_id(w, b->byte_id[(unsigned char)piece[0]]);
    if (b->ignore_merges) {
        int32_t id = el_bpe_find(b, piece, len);
        if (id >= 0) return push_id(w, id);
    }
    if (reserve_work(w, len)) return -1;
    int32_t n = (int32_t)len;
    for (int32_t i = 0; i < n; i++) {
        w->sym[i] = (bpe_sym){b->byte_id[(unsigned char)piece[i]], i - 1, i + 1 < n ? i + 1 : -1, 1};
    }
    w->n_heap = 0;
    for (int32_t i = 0; i + 1 < n; i++) try_pair(w, i, i + 1);
    while (w->n_heap) {
        bpe_cand c = heap_pop(w);
        bpe_sym *l = &w->sym[c.pos];
        if (!l->len || l->next < 0) continue;
        int32_t right = l->next;
        bpe_sym *r = &w->sym[right];
        if (l->len + r->len != c.len2) continue;
        l->id = c.new_id;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) w->sym[r->next].prev = c.pos;
        if (l->prev >= 0) try_pair(w, l->prev, c.pos);
        if (l->next >= 0) try_pair(w, c.pos, l->next);
    }
    for (int32_t i = 0; i >= 0; i = w->sym[i].next)
        if (push_id(w, w->sym[i].id)) return -1;
    return 0;
}

int el_bpe_encode(const el_bpe *b, const char *text, size_t len, int32_t **out, size_t *n_out,
                  el_err *err) {
    *out = NULL;
    *n_out = 0;
    if (!text && len) return el_fail(err, EDGELLM_EINVAL, "bpe: NULL text with length %zu", len);
    char *norm = NULL;
    if (b->nfc && !el_nfc_quick_check(text, len)) {
        size_t norm_len;
        if (el_nfc(text, len, &norm, &norm_len, err)) return -1;
        text = norm;
        len = norm_len;
    }
    bpe_work w = {.b = b, .err = err};
    int rc = el_pretok_split(b->pre, text, len, bpe_piece, &w, err);
    free(norm);
    free(w.sym);
    free(w.heap);
    if (!rc && !w.ids) {
        w.ids = malloc(sizeof *w.ids);
        if (!w.ids) rc = el_fail(err, EDGELLM_ENOMEM, "bpe: out of memory");
    }
    if (rc) {
        free(w.ids);
        return -1;
    }
    *out = w.ids;
    *n_out = w.n_ids;
    return 0;
}
