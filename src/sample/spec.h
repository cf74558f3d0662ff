/* Speculative decoding helpers: drafting by prompt lookup, and the check that a
 * draft model shares the target's vocabulary. The verify loop lives with
 * generation (src/api/api.c), which owns the contexts and the sampler. */
#ifndef EL_SAMPLE_SPEC_H
#define EL_SAMPLE_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

/* Prompt lookup: find the latest earlier occurrence in hist[0..n) of its last g
 * tokens (g from ngram_max down to ngram_min, the first size that matches wins)
 * and copy up to max of the tokens that followed it into out. Returns how many
 * (0 when nothing matches). */
int el_spec_lookup(const int32_t *hist, size_t n, int ngram_min, int ngram_max, int32_t *out, int max);

/* Whether two tokenizers have the same vocabulary: size, every token's text and
 * control flag, BOS and EOS. On false, why gets the first difference. */
bool el_spec_vocab_match(const el_tokenizer *a, const el_tokenizer *b, char *why, size_t cap);

#endif
