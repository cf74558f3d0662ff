/* Tokenizers built from GGUF vocabulary metadata.
 *   tokenizer.ggml.model = "llama" -> SentencePiece BPE (scores, byte fallback)  [spm.c]
 *   tokenizer.ggml.model = "gpt2"  -> byte-level BPE (merges, pre-tokenizer)     [bpe.c]
 * Special/control tokens are matched in the text before the model's algorithm
 * runs when parse_special is set (as llama.cpp does with special=true). */
#ifndef EL_TOKENIZER_H
#define EL_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "gguf/gguf.h"

typedef struct el_tokenizer el_tokenizer;

el_tokenizer *el_tokenizer_from_gguf(const el_gguf *g, el_err *err);
void el_tokenizer_free(el_tokenizer *tok);

int32_t el_tokenizer_n_vocab(const el_tokenizer *tok);
int32_t el_tokenizer_bos(const el_tokenizer *tok); /* -1 if none */
int32_t el_tokenizer_eos(const el_tokenizer *tok); /* -1 if none */
int32_t el_tokenizer_eot(const el_tokenizer *tok); /* end of turn, -1 if none */
/* Whether el_tokenize(add_bos=true) prepends BOS (tokenizer.ggml.add_bos_token). */
bool el_tokenizer_adds_bos(const el_tokenizer *tok);
/* Control or unknown token (printed only when rendering special tokens). */
bool el_tokenizer_is_control(const el_tokenizer *tok, int32_t id);
/* End of generation: EOS, EOT, <end_of_turn>, <|im_end|>, <|eot_id|>, <|end|> ... */
bool el_tokenizer_is_eog(const el_tokenizer *tok, int32_t id);
/* Id of a token whose text is exactly `text`, or -1. */
int32_t el_tokenizer_find(const el_tokenizer *tok, const char *text);

/* Encode len bytes of text (any bytes; invalid UTF-8 never crashes: as in llama.cpp a
 * bad lead byte groups the bytes it announces, and unknown pieces become <0xXX> tokens).
 * add_bos: prepend BOS if the model's metadata says to (tokenizer.ggml.add_bos_token).
 * parse_special: recognise special/control token text in the input.
 * *out is malloc'd (caller frees); returns 0 or -1. */
int el_tokenize(const el_tokenizer *tok, const char *text, size_t len, bool add_bos,
                bool parse_special, int32_t **out, size_t *n_out, el_err *err);

/* The bytes a token stands for (byte-fallback tokens give their byte; SentencePiece's
 * U+2581 gives a space). Control tokens give their text only if render_special.
 * Returns the number of bytes (if that exceeds cap, nothing is written), or -1 for a bad id. */
int el_token_to_piece(const el_tokenizer *tok, int32_t id, bool render_special, char *buf,
                      size_t cap);

/* Whole-sequence decode (llama.cpp's detokenize without removing specials):
 * concatenated pieces, the SentencePiece space prefix dropped from the first,
 * and for most byte-level BPE vocabularies llama.cpp's space clean-up (" ?" -> "?").
 * *out is malloc'd and NUL-terminated; returns 0 or -1 (bad id). */
int el_detokenize(const el_tokenizer *tok, const int32_t *ids, size_t n, bool render_special, char **out,
                  size_t *n_out, el_err *err);

/* Streaming detokenizer: holds back bytes of a UTF-8 character split across tokens. */
typedef struct el_detok {
    char pending[8];
    size_t n_pending;
} el_detok;
/* Append the printable text for id to out (cap bytes); returns bytes written.
 * Control tokens print nothing; invalid UTF-8 comes out as U+FFFD.
 * With cap >= el_tokenizer_max_piece(tok) nothing is ever dropped. Zero-initialise d. */
size_t el_detok_push(el_detok *d, const el_tokenizer *tok, int32_t id, char *out, size_t cap);
/* Flush whatever is held back (invalid sequences come out as U+FFFD). */
size_t el_detok_flush(el_detok *d, char *out, size_t cap);
/* Output buffer size that always suffices for one el_detok_push. */
size_t el_tokenizer_max_piece(const el_tokenizer *tok);

#endif
