/* Vocabulary loading from GGUF and special-token splitting. */
#include "tokenizer/vocab.h"

#include <stdlib.h>
#include <string.h>

/* GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type). */
enum { TT_UNDEFINED = 0, TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_USER_DEFINED, TT_UNUSED, TT_BYTE };

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* A slot holds the high 32 bits of the hash (a tag that settles most
 * mismatches without touching the texts) and id + 1; 0 is empty. */
static inline uint64_t slot_make(uint64_t h, int32_t id) { return (h & 0xFFFFFFFF00000000ull) | ((uint64_t)id + 1); }

static int32_t find_hashed(const el_vocab *v, const char *text, size_t len, uint64_t h) {
    uint32_t i = (uint32_t)h & v->mask;
    uint32_t tag = (uint32_t)(h >> 32);
    for (;;) {
        uint64_t s = v->slots[i];
        if (s == 0) return -1;
        if ((uint32_t)(s >> 32) == tag) {
            int32_t id = (int32_t)((uint32_t)s - 1);
            if (v->len[id] == len && memcmp(v->blob + v->off[id], text, len) == 0) return id;
        }
        i = (i + 1) & v->mask;
    }
}

/* Two bits per token in a small bit set: most texts that are not tokens (half
 * of SentencePiece's pair lookups) are turned away without touching the table. */
static inline bool bloom_maybe(const el_vocab *v, uint64_t h) {
    uint64_t a = (h >> 40) & v->bloom_mask, b = (h >> 20) & v->bloom_mask;
    return ((v->bloom[a >> 6] >> (a & 63)) & 1) && ((v->bloom[b >> 6] >> (b & 63)) & 1);
}

static inline void bloom_add(el_vocab *v, uint64_t h) {
    uint64_t a = (h >> 40) & v->bloom_mask, b = (h >> 20) & v->bloom_mask;
    v->bloom[a >> 6] |= 1ull << (a & 63);
    v->bloom[b >> 6] |= 1ull << (b & 63);
}

int32_t el_vocab_find(const el_vocab *v, const char *text, size_t len) {
    if (!v->slots) return -1;
    uint64_t h = hash_bytes(text, len);
    if (!bloom_maybe(v, h)) return -1;
    return find_hashed(v, text, len, h);
}

/* Insert id; a later duplicate text replaces the earlier (as llama.cpp's map does). */
static void hash_insert(el_vocab *v, int32_t id, uint64_t h) {
    uint32_t i = (uint32_t)h & v->mask;
    uint32_t tag = (uint32_t)(h >> 32);
    for (;;) {
        uint64_t s = v->slots[i];
        if (s == 0) {
            v->slots[i] = slot_make(h, id);
            return;
        }
        int32_t o = (int32_t)((uint32_t)s - 1);
        if ((uint32_t)(s >> 32) == tag && v->len[o] == v->len[id] &&
            memcmp(v->blob + v->off[o], v->blob + v->off[id], v->len[id]) == 0) {
            v->slots[i] = slot_make(h, id);
            return;
        }
        i = (i + 1) & v->mask;
    }
}

int el_ids_push(el_ids *ids, int32_t id, el_err *err) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(int32_t)) return el_fail(err, EDGELLM_ENOMEM, "token list too long");
        int32_t *p = realloc(ids->v, cap * sizeof(int32_t));
        if (!p) return el_fail(err, EDGELLM_ENOMEM, "token list: out of memory (%zu ids)", cap);
        ids->v = p;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}

/* ---- metadata helpers ---- */

static bool kv_is_int(const el_gguf_kv *kv) {
    switch (kv->type) {
    case EL_GGUF_UINT8: case EL_GGUF_UINT16: case EL_GGUF_UINT32: case EL_GGUF_UINT64:
    case EL_GGUF_INT8: case EL_GGUF_INT16: case EL_GGUF_INT32: case EL_GGUF_INT64:
        return true;
    default:
        return false;
    }
}

/* Optional token id: leaves *id alone if absent; refuses a wrong type. An id
 * outside the vocabulary is ignored (llama.cpp warns and keeps the default). */
static int read_token_id(const el_gguf *g, const char *key, int32_t n, int32_t *id, el_err *err) {
    const el_gguf_kv *kv = el_gguf_find_kv(g, key);
    if (!kv) return 0;
    if (!kv_is_int(kv)) return el_fail(err, EDGELLM_EFORMAT, "%s: expected an integer, got %s", key, el_gguf_value_type_name(kv->type));
    bool is_signed = kv->type == EL_GGUF_INT8 || kv->type == EL_GGUF_INT16 || kv->type == EL_GGUF_INT32 || kv->type == EL_GGUF_INT64;
    if (is_signed ? (kv->v.i64 >= 0 && kv->v.i64 < n) : kv->v.u64 < (uint64_t)n) *id = (int32_t)kv->v.u64;
    return 0;
}

static int read_flag(const el_gguf *g, const char *key, bool *out, el_err *err) {
    const el_gguf_kv *kv = el_gguf_find_kv(g, key);
    if (!kv) return 0;
    if (kv->type == EL_GGUF_BOOL || kv_is_int(kv)) {
        *out = kv->v.u64 != 0;
        return 0;
    }
    return el_fail(err, EDGELLM_EFORMAT, "%s: expected a bool, got %s", key, el_gguf_value_type_name(kv->type));
}

static bool text_is(const el_vocab *v, int32_t id, const char *s) {
    size_t n = strlen(s);
    return v->len[id] == n && memcmp(el_vocab_text(v, id), s, n) == 0;
}

/* ---- load ---- */

static int load_tokens(el_vocab *v, const el_gguf *g, el_err *err) {
    const el_gguf_kv *kv = el_gguf_find_kv(g, "tokenizer.ggml.tokens");
    if (!kv) return el_fail(err, EDGELLM_ENOTFOUND, "tokenizer.ggml.tokens: missing");
    if (kv->type != EL_GGUF_ARRAY || kv->v.arr.type != EL_GGUF_STRING || !kv->v.arr.strs)
        return el_fail(err, EDGELLM_EFORMAT, "tokenizer.ggml.tokens: expected an array of strings");
    uint64_t n = kv->v.arr.n;
    if (n == 0 || n > (uint64_t)INT32_MAX / 2)
        return el_fail(err, EDGELLM_EFORMAT, "tokenizer.ggml.tokens: bad count %llu", (unsigned long long)n);
    v->n = (int32_t)n;

    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t l = kv->v.arr.strs[i].len;
        if (l > UINT32_MAX / 2) return el_fail(err, EDGELLM_EFORMAT, "tokenizer.ggml.tokens[%llu]: length %llu too large", (unsigned long long)i, (unsigned long long)l);
        total += l + 1;
        if (total > UINT32_MAX) return el_fail(err, EDGELLM_EFORMAT, "tokenizer.ggml.tokens: texts total over 4 GiB");
    }
    v->blob = malloc(total);
    v->off = malloc(n * sizeof(uint32_t));
    v->len = malloc(n * sizeof(uint32_t));
    v->score = calloc(n, sizeof(float));
    v->attr = malloc(n * sizeof(uint16_t));
    if (!v->blob || !v->off || !v->len || !v->score || !v->attr)
        return el_fail(err, EDGELLM_ENOMEM, "vocabulary: out of memory (%llu tokens)", (unsigned long long)n);
    uint32_t pos = 0;
    for (uint64_t i = 0; i < n; i++) {
        const el_gguf_str *s = &kv->v.arr.strs[i];
        v->off[i] = pos;
        v->len[i] = (uint32_t)s->len;
        if (s->len) memcpy(v->blob + pos, s->data, s->len);
        v->blob[pos + s->len] = '\0';
        pos += (uint32_t)s->len + 1;
        if (s->len > v->max_len) v->max_len = (uint32_t)s->len;
        v->attr[i] = EL_TOK_NORMAL;
    }
    return 0;
}

static int load_scores_and_types(el_vocab *v, const el_gguf *g, el_err *err) {
    const el_gguf_kv *kv = el_gguf_find_kv(g, "tokenizer.ggml.scores");
    if (kv) {
        if (kv->type != EL_GGUF_ARRAY || (kv->v.arr.type != EL_GGUF_FLOAT32 && kv->v.arr.type != EL_GGUF_INT32))
            return el_fail(err, EDGELLM_EFORMAT, "tokenizer.ggml.scores: expected an array of float32 or int32");
        if (kv->v.arr.n < (uint64_t)v->n)
            return el_fail(err, EDGELLM_EFORMAT, "tokenizer.ggml.scores: %llu entries for %d tokens", (unsigned long long)kv->v.arr.n, v->n);
        const uint8_t *p = kv->v.arr.data;
        for (int32_t i = 0; i < v->n; i++) {
            if (kv->v.arr.type == EL_GGUF_FLOAT32) {
                memcpy(&v->score[i], p + 4 * (size_t)i, 4);
            } else {
                int32_t s;
                memcpy(&s, p + 4 * (size_t)i, 4);
                v->score[i] = (float)s;
            }
        }
    }
    kv = el_gguf_find_kv(g, "tokenizer.ggml.token_type");
    if (kv) {
        if (kv->type != EL_GGUF_ARRAY || kv->v.arr.type != EL_GGUF_INT32)
            return el_fail(err, EDGELLM_EFORMAT, "tokenizer.ggml.token_type: expected an array of int32");
        if (kv->v.arr.n < (uint64_t)v->n)
            return el_fail(err, EDGELLM_EFORMAT, "tokenizer.ggml.token_type: %llu entries for %d tokens", (unsigned long long)kv->v.arr.n, v->n);
        const uint8_t *p = kv->v.arr.data;
        for (int32_t i = 0; i < v->n; i++) {
            int32_t t;
            memcpy(&t, p + 4 * (size_t)i, 4);
            switch (t) {
            case TT_NORMAL: v->attr[i] = EL_TOK_NORMAL; break;
            case TT_UNKNOWN: v->attr[i] = EL_TOK_UNKNOWN; break;
            case TT_CONTROL: v->attr[i] = EL_TOK_CONTROL; break;
            case TT_USER_DEFINED: v->attr[i] = EL_TOK_USER_DEFINED; break;
            case TT_UNUSED: v->attr[i] = EL_TOK_UNUSED; break;
            case TT_BYTE: v->attr[i] = EL_TOK_BYTE; break;
            default: v->attr[i] = EL_TOK_UNDEFINED; break;
            }
        }
    }
    return 0;
}

static int build_hash(el_vocab *v, el_err *err) {
    uint32_t size = 1024;
    while (size < (uint32_t)v->n * 2u) size <<= 1;
    v->slots = calloc(size, sizeof(uint64_t));
    v->bloom = calloc((size_t)size * 8 / 64, sizeof(uint64_t)); /* 8 bits per slot, 16 per token */
    if (!v->slots || !v->bloom) return el_fail(err, EDGELLM_ENOMEM, "vocabulary hash: out of memory");
    v->mask = size - 1;
    v->bloom_mask = (uint64_t)size * 8 - 1;
    /* In batches: hash and prefetch the slots first, so the cache misses overlap. */
    enum { BATCH = 32 };
    uint64_t h[BATCH];
    for (int32_t i0 = 0; i0 < v->n; i0 += BATCH) {
        int32_t nb = v->n - i0 < BATCH ? v->n - i0 : BATCH;
        for (int32_t k = 0; k < nb; k++) {
            h[k] = hash_bytes(v->blob + v->off[i0 + k], v->len[i0 + k]);
            __builtin_prefetch(&v->slots[(uint32_t)h[k] & v->mask], 1);
        }
        for (int32_t k = 0; k < nb; k++) {
            if (!v->len[i0 + k]) continue; /* empty texts can never match */
            hash_insert(v, i0 + k, h[k]);
            bloom_add(v, h[k]);
        }
    }
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char buf[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        int32_t id = el_vocab_find(v, buf, 6);
        if (id < 0) {
            char c = (char)b;
            id = el_vocab_find(v, &c, 1); /* llama.cpp falls back to the byte itself */
        }
        v->byte_tok[b] = id;
    }
    return 0;
}

static void mark_control(el_vocab *v, int32_t id) {
    v->attr[id] |= EL_TOK_CONTROL; /* llama.cpp overrides the type of control-looking tokens */
}

static int32_t find_cstr(const el_vocab *v, const char *s) { return el_vocab_find(v, s, strlen(s)); }

/* End-of-generation and end-of-turn tokens, found by their text as llama.cpp does. */
static void detect_eog(el_vocab *v) {
#define DEEPSEEK_EOS "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
    static const char *const eot_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                            "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", DEEPSEEK_EOS,
                                            "<end_of_utterance>", NULL};
    static const char *const eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
                                            "<|flush|>", "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>",
                                            "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
                                            "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
                                            DEEPSEEK_EOS, "[e~[", NULL};
#undef DEEPSEEK_EOS
    /* llama.cpp walks a hash map here, so with several candidates its pick is
     * unspecified; we take the first in the list. */
    for (const char *const *t = eot_texts; *t && v->eot < 0; t++) {
        int32_t id = find_cstr(v, *t);
        if (id >= 0) {
            v->eot = id;
            mark_control(v, id);
        }
    }
    if (v->eom < 0) {
        v->eom = find_cstr(v, "<|eom_id|>");
        if (v->eom >= 0) mark_control(v, v->eom);
    }
    for (int32_t r = 0; r < v->n; r++) {
        if ((v->attr[r] & EL_TOK_CONTROL) && !(v->attr[r] & EL_TOK_UNUSED) && memmem(el_vocab_text(v, r), v->len[r], "unused", 6))
            v->attr[r] |= EL_TOK_UNUSED;
    }
    for (const char *const *t = eog_texts; *t; t++) {
        int32_t id = find_cstr(v, *t);
        if (id >= 0) {
            v->attr[id] |= EL_TOK_EOG;
            mark_control(v, id);
        }
    }
    static const char *const gpt_oss_user[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL};
    for (const char *const *t = gpt_oss_user; *t; t++) {
        int32_t id = find_cstr(v, *t);
        if (id >= 0) v->attr[id] = EL_TOK_USER_DEFINED; /* gpt-oss: always rendered */
    }
    if (v->eos >= 0) v->attr[v->eos] |= EL_TOK_EOG;
    if (v->eot >= 0) v->attr[v->eot] |= EL_TOK_EOG;
    if (v->eom >= 0) v->attr[v->eom] |= EL_TOK_EOG;

    /* o200k_harmony / solar-open: "<|end|>" ends a message, not the generation. */
    int32_t ret = find_cstr(v, "<|return|>"), call = find_cstr(v, "<|call|>"), calls = find_cstr(v, "<|calls|>");
    int32_t flush = find_cstr(v, "<|flush|>"), end = find_cstr(v, "<|end|>");
    bool has_call = (call >= 0 && (v->attr[call] & EL_TOK_EOG)) || (calls >= 0 && (v->attr[calls] & EL_TOK_EOG));
    bool has_return = ret >= 0 && (v->attr[ret] & EL_TOK_EOG), has_flush = flush >= 0 && (v->attr[flush] & EL_TOK_EOG);
    if (end >= 0 && (v->attr[end] & EL_TOK_EOG) && ((has_return && has_call) || (has_call && has_flush)))
        v->attr[end] = EL_TOK_USER_DEFINED;
    /* Gemma 4 and PLaMo have a normal "</s>". */
    int32_t s_id = find_cstr(v, "</s>"), tr = find_cstr(v, "<|tool_response>"), pl = find_cstr(v, "<|plamo:eos|>");
    if (s_id >= 0 && (v->attr[s_id] & EL_TOK_EOG) && ((tr >= 0 && (v->attr[tr] & EL_TOK_EOG)) || (pl >= 0 && (v->attr[pl] & EL_TOK_EOG))))
        v->attr[s_id] = EL_TOK_NORMAL;
}

/* Phi-3 GGUFs: special tokens eat whitespace to their right (llama.cpp sets this by model name). */
static void set_strip_flags(el_vocab *v, const el_gguf *g) {
    el_gguf_str name = {0, NULL};
    const el_gguf_kv *kv = el_gguf_find_kv(g, "general.name");
    if (kv && kv->type == EL_GGUF_STRING) name = kv->v.str;
    char low[128];
    size_t n = name.len < sizeof(low) - 1 ? (size_t)name.len : sizeof(low) - 1;
    for (size_t i = 0; i < n; i++) {
        char c = name.data[i];
        low[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    low[n] = '\0';
    if (!strstr(low, "phi-3") && !strstr(low, "phi3")) return;
    for (int32_t i = 0; i < v->n; i++) {
        if (v->attr[i] & (EL_TOK_CONTROL | EL_TOK_USER_DEFINED | EL_TOK_UNKNOWN)) v->attr[i] |= EL_TOK_RSTRIP;
        if (text_is(v, i, "</s>")) v->attr[i] |= EL_TOK_RSTRIP;
        if (text_is(v, i, "<unk>") || text_is(v, i, "<s>") || text_is(v, i, "<|endoftext|>"))
            v->attr[i] &= (uint16_t)~EL_TOK_RSTRIP;
    }
}

static uint32_t *edge_slot(const el_vocab *v, uint32_t node, uint8_t c, uint64_t *key_out) {
    uint64_t key = (((uint64_t)node << 8) | c) + 1;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    uint32_t i = (uint32_t)(h >> 32) & v->edge_mask;
    while (v->edge_key[i] != 0 && v->edge_key[i] != key) i = (i + 1) & v->edge_mask;
    *key_out = key;
    return &v->edge_val[i];
}

static inline int64_t trie_child(const el_vocab *v, uint32_t node, uint8_t c) {
    uint64_t key = (((uint64_t)node << 8) | c) + 1;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    uint32_t i = (uint32_t)(h >> 32) & v->edge_mask;
    for (;;) {
        uint64_t k = v->edge_key[i];
        if (k == key) return v->edge_val[i];
        if (k == 0) return -1;
        i = (i + 1) & v->edge_mask;
    }
}

/* Special tokens sorted longest first (ties: lower id first), and their trie. */
static int build_specials(el_vocab *v, el_err *err) {
    uint32_t n_sp = 0;
    uint64_t total = 1;
    for (int32_t i = 0; i < v->n; i++) {
        if ((v->attr[i] & (EL_TOK_CONTROL | EL_TOK_USER_DEFINED | EL_TOK_UNKNOWN)) && v->len[i] > 0) {
            n_sp++;
            total += v->len[i];
        }
    }
    v->n_special = n_sp;
    if (n_sp == 0) return 0;
    if (total > UINT32_MAX / 4) return el_fail(err, EDGELLM_EFORMAT, "special tokens: texts too long in total");
    v->special = malloc(n_sp * sizeof(int32_t));
    uint32_t *count = calloc((size_t)v->max_len + 2, sizeof(uint32_t));
    if (!v->special || !count) {
        free(count);
        return el_fail(err, EDGELLM_ENOMEM, "special tokens: out of memory");
    }
    /* Counting sort by length, descending; stable so ids stay ascending within a length. */
    for (int32_t i = 0; i < v->n; i++)
        if ((v->attr[i] & (EL_TOK_CONTROL | EL_TOK_USER_DEFINED | EL_TOK_UNKNOWN)) && v->len[i] > 0)
            count[v->max_len - v->len[i] + 1]++;
    for (uint32_t l = 1; l <= v->max_len + 1; l++) count[l] += count[l - 1];
    for (int32_t i = 0; i < v->n; i++)
        if ((v->attr[i] & (EL_TOK_CONTROL | EL_TOK_USER_DEFINED | EL_TOK_UNKNOWN)) && v->len[i] > 0)
            v->special[count[v->max_len - v->len[i]]++] = i;
    free(count);

    uint32_t max_nodes = (uint32_t)total;
    uint32_t esize = 64;
    while (esize < max_nodes * 2u) esize <<= 1;
    v->node_tok = malloc((size_t)max_nodes * sizeof(int32_t));
    v->edge_key = calloc(esize, sizeof(uint64_t));
    v->edge_val = calloc(esize, sizeof(uint32_t));
    if (!v->node_tok || !v->edge_key || !v->edge_val) return el_fail(err, EDGELLM_ENOMEM, "special-token trie: out of memory");
    v->edge_mask = esize - 1;
    v->node_tok[0] = -1;
    v->n_nodes = 1;
    for (uint32_t r = 0; r < n_sp; r++) {
        int32_t id = v->special[r];
        const uint8_t *s = (const uint8_t *)el_vocab_text(v, id);
        uint32_t node = 0;
        for (uint32_t k = 0; k < v->len[id]; k++) {
            uint64_t key;
            uint32_t *slot = edge_slot(v, node, s[k], &key);
            size_t idx = (size_t)(slot - v->edge_val);
            if (v->edge_key[idx] == 0) {
                v->edge_key[idx] = key;
                *slot = v->n_nodes;
                v->node_tok[v->n_nodes++] = -1;
            }
            node = *slot;
        }
        if (v->node_tok[node] < 0) v->node_tok[node] = (int32_t)r; /* duplicates: first rank wins */
    }
    return 0;
}

int el_vocab_load(el_vocab *v, const el_gguf *g, el_err *err) {
    memset(v, 0, sizeof(*v));
    v->bos = v->eos = v->eot = v->eom = v->unk = v->pad = v->sep = -1;

    el_gguf_str model = {0, NULL};
    const el_gguf_kv *kv = el_gguf_find_kv(g, "tokenizer.ggml.model");
    if (!kv) return el_fail(err, EDGELLM_ENOTFOUND, "tokenizer.ggml.model: missing");
    if (kv->type != EL_GGUF_STRING) return el_fail(err, EDGELLM_EFORMAT, "tokenizer.ggml.model: expected a string");
    model = kv->v.str;
    v->is_spm = el_gguf_str_eq(model, "llama");
    v->is_bpe = el_gguf_str_eq(model, "gpt2");

    if (load_tokens(v, g, err) || load_scores_and_types(v, g, err) || build_hash(v, err)) goto fail;

    /* Defaults as llama.cpp: SPM has bos 1, eos 2, unk 0, BOS added, a space prefix. */
    if (v->is_spm) {
        v->bos = 1 < v->n ? 1 : -1;
        v->eos = 2 < v->n ? 2 : -1;
        v->unk = 0;
        v->add_bos = true;
        v->add_space_prefix = true;
    } else if (v->is_bpe) {
        v->bos = 11 < v->n ? 11 : -1;
        v->eos = 11 < v->n ? 11 : -1;
        /* llama.cpp adds BOS by default for these pre-tokenizers (Llama 3 GGUFs often lack add_bos_token) */
        static const char *const bos_pre[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                                              "midm-2.0", "lfm2", "jina-v5-nano", "tekken", "chameleon", NULL};
        const el_gguf_kv *pre = el_gguf_find_kv(g, "tokenizer.ggml.pre");
        for (const char *const *p = bos_pre; pre && pre->type == EL_GGUF_STRING && *p; p++)
            if (el_gguf_str_eq(pre->v.str, *p)) v->add_bos = true;
        /* llama.cpp tidies spaces before punctuation when decoding, except for these */
        static const char *const keep_spaces_pre[] = {"deepseek-llm", "deepseek-coder", "deepseek-v3", "deepseek-r1-qwen",
                                                      "qwen2", "qwen35", "gpt-4o", "llama4", "tekken", "smollm",
                                                      "chameleon", "command-r", "viking", "poro-chat", "kimi-k2",
                                                      "hunyuan", "grok-2", "seed-coder", NULL};
        v->clean_spaces = true;
        for (const char *const *p = keep_spaces_pre; pre && pre->type == EL_GGUF_STRING && *p; p++)
            if (el_gguf_str_eq(pre->v.str, *p)) v->clean_spaces = false;
    }
    if (read_token_id(g, "tokenizer.ggml.bos_token_id", v->n, &v->bos, err) ||
        read_token_id(g, "tokenizer.ggml.eos_token_id", v->n, &v->eos, err) ||
        read_token_id(g, "tokenizer.ggml.eot_token_id", v->n, &v->eot, err) ||
        read_token_id(g, "tokenizer.ggml.eom_token_id", v->n, &v->eom, err) ||
        read_token_id(g, "tokenizer.ggml.unknown_token_id", v->n, &v->unk, err) ||
        read_token_id(g, "tokenizer.ggml.seperator_token_id", v->n, &v->sep, err) ||
        read_token_id(g, "tokenizer.ggml.padding_token_id", v->n, &v->pad, err) ||
        read_flag(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err) ||
        read_flag(g, "tokenizer.ggml.add_eos_token", &v->add_eos, err) ||
        read_flag(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err))
        goto fail;

    detect_eog(v);
    set_strip_flags(v, g);
    if (build_specials(v, err)) goto fail;
    return 0;
fail:
    el_fail_prefix(err, "tokenizer");
    el_vocab_free(v);
    return -1;
}

void el_vocab_free(el_vocab *v) {
    if (!v) return;
    free(v->blob);
    free(v->off);
    free(v->len);
    free(v->score);
    free(v->attr);
    free(v->slots);
    free(v->bloom);
    free(v->special);
    free(v->node_tok);
    free(v->edge_key);
    free(v->edge_val);
    memset(v, 0, sizeof(*v));
}

/* ---- special-token splitting ---- */

typedef struct match {
    uint32_t pos;
    int32_t id;
} match;

static bool is_space(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static int cmp_match_pos(const void *a, const void *b) {
    uint32_t x = ((const match *)a)->pos, y = ((const match *)b)->pos;
    return (x > y) - (x < y);
}

/* llama.cpp takes the special tokens longest first and, for each, splits every
 * remaining raw fragment at the token's leftmost non-overlapping occurrences.
 * Equivalently: for each token in that order, scan the text left to right and
 * claim each occurrence whose bytes are all still unclaimed. Memory stays
 * O(len) whatever the input (a run of newlines matches dozens of tokens at
 * every position); time is one memmem pass per token that occurs at all. */
int el_vocab_partition(const el_vocab *v, const char *text, size_t len, bool parse_special,
                       el_fragment **out, size_t *n_out, el_err *err) {
    *out = NULL;
    *n_out = 0;
    if (len == 0) return 0;
    if (len > (size_t)INT32_MAX) return el_fail(err, EDGELLM_ERANGE, "tokenize: text of %zu bytes is over 2 GiB", len);
    const uint8_t *t = (const uint8_t *)text;
    const uint16_t skip = parse_special ? 0 : (EL_TOK_CONTROL | EL_TOK_UNKNOWN);

    /* First bytes of the enabled special tokens, to skip most positions quickly. */
    uint8_t first[256] = {0};
    for (uint32_t r = 0; r < v->n_special; r++) {
        int32_t id = v->special[r];
        if (!(v->attr[id] & skip)) first[(uint8_t)el_vocab_text(v, id)[0]] = 1;
    }

    uint8_t *seen = NULL, *taken = NULL;
    match *acc = NULL;
    size_t n_acc = 0, cap_acc = 0;
    el_fragment *frags = NULL;
    int rc = -1;

    /* Which enabled special tokens occur anywhere (trie walk from each position). */
    bool any = false;
    for (size_t p = 0; p < len; p++) {
        if (!first[t[p]]) continue;
        uint32_t node = 0;
        for (size_t q = p; q < len; q++) {
            int64_t c = trie_child(v, node, t[q]);
            if (c < 0) break;
            node = (uint32_t)c;
            int32_t r = v->node_tok[node];
            if (r >= 0 && !(v->attr[v->special[r]] & skip)) {
                if (!seen) {
                    seen = calloc(v->n_special, 1);
                    if (!seen) goto oom;
                }
                seen[r] = 1;
                any = true;
            }
        }
    }

    if (any) {
        taken = calloc(len, 1); /* 0 free, 1 claimed by a token, 2 stripped whitespace */
        if (!taken) goto oom;
        for (uint32_t r = 0; r < v->n_special; r++) {
            if (!seen[r]) continue;
            int32_t id = v->special[r];
            const char *tt = el_vocab_text(v, id);
            size_t l = v->len[id];
            for (size_t pos = 0; pos + l <= len;) {
                const char *hit = memmem(text + pos, len - pos, tt, l);
                if (!hit) break;
                size_t p = (size_t)(hit - text);
                size_t busy = l; /* last claimed byte in the span, if any */
                for (size_t k = l; k-- > 0;)
                    if (taken[p + k]) {
                        busy = k;
                        break;
                    }
                if (busy < l) { /* no occurrence can start before the claimed byte: skip past its run */
                    pos = p + busy + 1;
                    while (pos < len && taken[pos]) pos++;
                    continue;
                }
                memset(taken + p, 1, l);
                if (v->attr[id] & EL_TOK_LSTRIP)
                    for (size_t k = p; k > 0 && taken[k - 1] == 0 && is_space(t[k - 1]); k--) taken[k - 1] = 2;
                if (v->attr[id] & EL_TOK_RSTRIP)
                    for (size_t k = p + l; k < len && taken[k] == 0 && is_space(t[k]); k++) taken[k] = 2;
                if (n_acc == cap_acc) {
                    size_t c = cap_acc ? cap_acc * 2 : 64;
                    match *m = realloc(acc, c * sizeof(match));
                    if (!m) goto oom;
                    acc = m;
                    cap_acc = c;
                }
                acc[n_acc++] = (match){(uint32_t)p, id};
                pos = p + l;
            }
        }
        qsort(acc, n_acc, sizeof(match), cmp_match_pos);
    }

    /* Fragments: the free text between claimed tokens (stripped whitespace dropped). */
    frags = malloc((2 * n_acc + 1) * sizeof(el_fragment));
    if (!frags) goto oom;
    size_t nf = 0, prev = 0;
    for (size_t i = 0; i <= n_acc; i++) {
        size_t start = prev, end = i < n_acc ? acc[i].pos : len;
        while (taken && start < end && taken[start] == 2) start++;
        while (taken && end > start && taken[end - 1] == 2) end--;
        if (end > start) frags[nf++] = (el_fragment){start, end - start, -1};
        if (i < n_acc) {
            frags[nf++] = (el_fragment){acc[i].pos, v->len[acc[i].id], acc[i].id};
            prev = acc[i].pos + v->len[acc[i].id];
        }
    }
    *out = frags;
    *n_out = nf;
    frags = NULL;
    rc = 0;
    goto done;
oom:
    el_fail(err, EDGELLM_ENOMEM, "tokenize: out of memory splitting special tokens (%zu bytes)", len);
done:
    free(seen);
    free(taken);
    free(acc);
    free(frags);
    return rc;
}
