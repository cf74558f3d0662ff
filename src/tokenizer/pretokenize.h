/* Pre-tokenizer for byte-level BPE: splits text into pieces with the regexes
 * of the model's tokenizer.json pre_tokenizer (Split, behaviour Isolated),
 * chosen by GGUF tokenizer.ggml.pre. Several regexes apply in sequence: each
 * splits the pieces of the one before (DeepSeek V3 has three).
 *
 * Pieces are the regex matches and the text between matches, in order, so
 * concatenating the pieces gives back the input exactly. Invalid UTF-8 is
 * allowed: PCRE2 never matches an invalid byte (PCRE2_MATCH_INVALID_UTF), so
 * such bytes end up in the between-match pieces, which the BPE encodes byte
 * by byte. (Python `tokenizers` only takes valid str; llama.cpp replaces
 * invalid bytes with U+FFFD. Keeping the bytes keeps encode/decode lossless.) */
#ifndef EL_TOKENIZER_PRETOKENIZE_H
#define EL_TOKENIZER_PRETOKENIZE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

typedef struct el_pretok el_pretok;

/* Build the pre-tokenizer for a tokenizer.ggml.pre value (name, name_len bytes;
 * NULL means absent and gives llama.cpp's "default"). Known: "llama-bpe",
 * "qwen2", "gpt-4o", "deepseek-v3" (checked against Hugging Face `tokenizers`),
 * "gpt2", "smollm", "default", and the names llama.cpp maps onto the same
 * patterns. Unknown names fail with EDGELLM_EUNSUPPORTED (llama.cpp would fall
 * back to "default" and likely tokenize differently from the model's training). */
el_pretok *el_pretok_create(const char *name, size_t name_len, el_err *err);
void el_pretok_free(el_pretok *p);

/* The canonical name of the pattern set in use ("llama-bpe", ...). */
const char *el_pretok_name(const el_pretok *p);
/* Whether the model family keeps a piece that is a whole token unmerged (Llama 3). */
bool el_pretok_ignore_merges(const el_pretok *p);
/* Whether the model family normalizes text to NFC first (Qwen2). */
bool el_pretok_nfc(const el_pretok *p);

/* Called for each piece, in order (len > 0); return non-zero to stop. */
typedef int (*el_pretok_piece_fn)(const char *piece, size_t len, void *ud);

/* Split text; calls fn for every piece. Returns 0, or -1 with err set (regex
 * engine error, out of memory) or when fn returned non-zero (fn sets err). */
int el_pretok_split(const el_pretok *p, const char *text, size_t len, el_pretok_piece_fn fn,
                    void *ud, el_err *err);

#endif
