/* Retry delays: exponential backoff with full jitter (a uniform draw in
 * [0, min(cap, base * 2^attempt)]), the scheme that spreads retries of many
 * clients best. The random source is a small seeded generator so tests can
 * reproduce every delay. */
#ifndef EL_CLOUD_BACKOFF_H
#define EL_CLOUD_BACKOFF_H

#include <stdint.h>

typedef struct el_jitter_rng {
    uint64_t s;
} el_jitter_rng;

/* seed 0 picks a seed from the clock and the process id. */
void el_jitter_seed(el_jitter_rng *r, uint64_t seed);
uint64_t el_jitter_next(el_jitter_rng *r);
/* Uniform in [0, 1). */
double el_jitter_uniform(el_jitter_rng *r);

/* Delay before retry number attempt (0 = first retry), in ms. */
double el_backoff_full_jitter(el_jitter_rng *r, int attempt, double base_ms, double cap_ms);

#endif
