/* Byte-level BPE (GPT-2 style; tokenizer.ggml.model = "gpt2") from GGUF metadata:
 * tokenizer.ggml.tokens, .token_type (optional), .merges ("a b" strings) and
 * .pre (pre-tokenizer name, see pretokenize.h).
 *
 * Token texts are stored GPT-2 byte-to-unicode mapped ("Ġ" is a space); they
 * are turned back into raw bytes at load, so encoding works on raw bytes:
 * text -> pre-tokenizer pieces -> each piece's bytes merged by merge rank
 * (lowest rank first, leftmost on ties, as Hugging Face `tokenizers` does).
 * With "llama-bpe" a piece that is a whole vocabulary token is emitted as is
 * (tokenizers' ignore_merges, which Llama 3's tokenizer.json sets).
 *
 * With "qwen2" the text is first normalized to NFC, as Qwen2's tokenizer.json
 * says (llama.cpp skips this; it matters only for text not already in NFC).
 * The other supported families have no normalizer.
 *
 * Not done here (the caller's job): special/added-token splitting, BOS/EOS. */
#ifndef EL_TOKENIZER_BPE_H
#define EL_TOKENIZER_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "gguf/gguf.h"

typedef struct el_bpe el_bpe;

/* Reads tokenizer.ggml.tokens, .token_type, .merges, .pre. NULL with err set on failure.
 * Everything needed is copied: g may be closed afterwards. */
el_bpe *el_bpe_create(const el_gguf *g, el_err *err);
void el_bpe_free(el_bpe *b);

/* Encode len bytes (any bytes; invalid UTF-8 is encoded byte by byte and never
 * fails) that contain no special tokens (the caller splits those out first).
 * *out is malloc'd (never NULL on success, even when *n_out is 0); returns 0 or -1. */
int el_bpe_encode(const el_bpe *b, const char *text, size_t len, int32_t **out, size_t *n_out,
                  el_err *err);

/* The bytes token id stands for: GPT-2 byte-mapped text decoded for normal
 * tokens, the raw text for control / user-defined / unused ones. Copies them
 * into buf only if they fit in cap; returns their number, or -1 for a bad id. */
int el_bpe_token_bytes(const el_bpe *b, int32_t id, char *buf, size_t cap);

/* Id of the normal token whose bytes are exactly bytes[0..len), or -1. */
int32_t el_bpe_find(const el_bpe *b, const char *bytes, size_t len);

int32_t el_bpe_n_vocab(const el_bpe *b);
/* Canonical pre-tokenizer name in use ("llama-bpe", "qwen2", "gpt-4o", "deepseek-v3", "gpt2"). */
const char *el_bpe_pre_name(const el_bpe *b);

#endif
