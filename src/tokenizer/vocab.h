/* Vocabulary shared by all tokenizer algorithms: token texts, scores and
 * attributes from GGUF metadata, a hash table text -> id, the special-token
 * ids, and a trie of the special/user-defined token texts used to split the
 * input before the algorithm runs (llama.cpp's tokenizer_st_partition). */
#ifndef EL_TOKENIZER_VOCAB_H
#define EL_TOKENIZER_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "gguf/gguf.h"

/* Token attributes (as llama.cpp's llama_token_attr; GGUF token_type maps onto them). */
enum {
    EL_TOK_UNDEFINED = 1 << 0,
    EL_TOK_UNKNOWN = 1 << 1,
    EL_TOK_UNUSED = 1 << 2,
    EL_TOK_NORMAL = 1 << 3,
    EL_TOK_CONTROL = 1 << 4,
    EL_TOK_USER_DEFINED = 1 << 5,
    EL_TOK_BYTE = 1 << 6,
    EL_TOK_EOG = 1 << 7,    /* ends generation (derived at load, not a GGUF type) */
    EL_TOK_LSTRIP = 1 << 8, /* matching eats whitespace to the left (Phi-3) */
    EL_TOK_RSTRIP = 1 << 9, /* ... and to the right */
};

typedef struct el_vocab {
    int32_t n;
    char *blob;       /* all token texts, each NUL-terminated */
    uint32_t *off;    /* token i's text is blob + off[i], len[i] bytes */
    uint32_t *len;
    float *score;
    uint16_t *attr;
    uint32_t max_len; /* longest token text */

    uint64_t *slots;  /* open addressing: hash tag << 32 | (id + 1), 0 = empty */
    uint32_t mask;    /* slots has mask + 1 entries (power of two) */
    uint64_t *bloom;  /* bit set over token hashes (two bits each) */
    uint64_t bloom_mask;

    int32_t byte_tok[256]; /* <0xXX> token per byte, -1 if none */

    int32_t bos, eos, eot, eom, unk, pad, sep;
    bool add_bos, add_eos, add_space_prefix;
    bool clean_spaces; /* decode: " ?" -> "?", " 's" -> "'s" ... (llama.cpp, most byte-level BPE vocabularies) */
    bool is_spm;      /* tokenizer.ggml.model == "llama" */
    bool is_bpe;      /* tokenizer.ggml.model == "gpt2" */

    /* Special tokens (control, user-defined, unknown), longest text first;
     * rank[] is a token's position in that order, used as match priority. */
    int32_t *special;
    uint32_t n_special;
    /* Trie over special texts: node 0 is the root. Edges live in a hash
     * table keyed by (node, byte); node_tok[node] is the rank ending there or -1. */
    int32_t *node_tok;
    uint32_t n_nodes;
    uint64_t *edge_key; /* (node << 8 | byte) + 1, 0 = empty */
    uint32_t *edge_val;
    uint32_t edge_mask;
} el_vocab;

/* Load from GGUF metadata (tokens, scores, token_type, special ids, flags). */
int el_vocab_load(el_vocab *v, const el_gguf *g, el_err *err);
void el_vocab_free(el_vocab *v);

/* Id of the token with exactly these bytes, or -1. */
int32_t el_vocab_find(const el_vocab *v, const char *text, size_t len);

static inline const char *el_vocab_text(const el_vocab *v, int32_t id) {
    return v->blob + v->off[id];
}

/* A fragment of the input after special-token splitting: raw text
 * [off, off+len) when tok < 0, else the special token tok. */
typedef struct el_fragment {
    size_t off, len;
    int32_t tok;
} el_fragment;

/* Split text on special-token texts, as llama.cpp does: tokens are taken
 * longest-first, each at its leftmost non-overlapping occurrences inside the
 * text not yet claimed. Control and unknown tokens only with parse_special;
 * user-defined tokens always. *out is malloc'd. */
int el_vocab_partition(const el_vocab *v, const char *text, size_t len, bool parse_special,
                       el_fragment **out, size_t *n_out, el_err *err);

/* A growable id list used by the encoders. */
typedef struct el_ids {
    int32_t *v;
    size_t n, cap;
} el_ids;
int el_ids_push(el_ids *ids, int32_t id, el_err *err);

#endif
