/* Token sampling from logits: a fixed chain in llama.cpp's default order,
 *   penalties -> top-k -> top-p -> min-p -> temperature -> draw,
 * with temp <= 0 meaning greedy (argmax after penalties; ties -> lowest id).
 * Works on a copy of the logits; selection is partial (no full sort of a
 * 262k vocabulary unless top-k is off and top-p needs more than 256 tokens). */
#ifndef EL_SAMPLE_SAMPLER_H
#define EL_SAMPLE_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* xoshiro256** seeded through splitmix64: small, fast, reproducible. */
typedef struct el_rng {
    uint64_t s[4];
} el_rng;
void el_rng_seed(el_rng *r, uint64_t seed);
uint64_t el_rng_next(el_rng *r);
double el_rng_uniform(el_rng *r); /* in [0, 1), 53 random bits */

typedef struct el_sampler_params {
    float temp;             /* <= 0: greedy */
    int32_t top_k;          /* <= 0: off */
    float top_p;            /* >= 1: off */
    float min_p;            /* <= 0: off */
    float repeat_penalty;   /* 1: off; > 1 discourages tokens seen in the window */
    int32_t repeat_last_n;  /* window of past tokens for all penalties; 0: off, -1: everything */
    float freq_penalty;     /* subtracted count * freq_penalty */
    float presence_penalty; /* subtracted once if the token is in the window */
    uint64_t seed;
} el_sampler_params;

/* llama.cpp's defaults: temp 0.8, top_k 40, top_p 0.95, min_p 0.05, no penalties
 * (repeat 1.0 over the last 64), seed 0. */
el_sampler_params el_sampler_default_params(void);

typedef struct el_sampler el_sampler;

el_sampler *el_sampler_new(const el_sampler_params *p, int32_t n_vocab, el_err *err);
void el_sampler_free(el_sampler *s);
/* Forget the history and reseed with params.seed. */
void el_sampler_reset(el_sampler *s);
/* Record a token that was produced or fed (prompt tokens too, if they should be penalised). */
void el_sampler_accept(el_sampler *s, int32_t id);

/* Pick a token from n_vocab logits (not modified). NaN logits count as -inf.
 * Returns the id; does not accept it (call el_sampler_accept). */
int32_t el_sampler_sample(el_sampler *s, const float *logits);

/* The distribution the draw would use: ids and probabilities after the whole
 * chain, most probable first (ties: lower id). Returns how many tokens are in
 * it; at most cap are written. */
size_t el_sampler_candidates(el_sampler *s, const float *logits, int32_t *ids, float *probs, size_t cap);

/* Greedy without penalties: the first id of the largest of n logits (NaN never wins);
 * 0 if n is 0 or every logit is NaN. */
int32_t el_argmax(const float *x, uint32_t n);

#endif
