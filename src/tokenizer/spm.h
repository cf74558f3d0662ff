/* SentencePiece BPE over a vocabulary with scores (tokenizer.ggml.model = "llama"). */
#ifndef EL_TOKENIZER_SPM_H
#define EL_TOKENIZER_SPM_H

#include "tokenizer/vocab.h"

/* Scratch buffers reused across fragments of one tokenize call. */
typedef struct el_spm_work {
    char *esc;
    size_t esc_cap;
    void *sym;
    size_t sym_cap;
    void *heap;
    size_t heap_cap;
} el_spm_work;

/* Encode one raw fragment (no special tokens in it): spaces become U+2581,
 * a leading one is added if space_prefix, then symbol pairs are merged by
 * score; pieces left outside the vocabulary fall back to <0xXX> byte tokens. */
int el_spm_encode(const el_vocab *v, el_spm_work *w, const char *text, size_t len, bool space_prefix,
                  el_ids *out, el_err *err);
void el_spm_work_free(el_spm_work *w);

#endif
