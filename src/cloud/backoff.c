#include "cloud/backoff.h"

#include <time.h>
#include <unistd.h>

void el_jitter_seed(el_jitter_rng *r, uint64_t seed) {
    if (seed == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    }
    /* splitmix64 of the seed, so that nearby seeds give unrelated streams;
     * the state must not be zero for xorshift. */
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    r->s = z ? z : 0x2545F4914F6CDD1DULL;
}

uint64_t el_jitter_next(el_jitter_rng *r) {
    /* xorshift64* */
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

double el_jitter_uniform(el_jitter_rng *r) { return (double)(el_jitter_next(r) >> 11) * (1.0 / 9007199254740992.0); }

double el_backoff_full_jitter(el_jitter_rng *r, int attempt, double base_ms, double cap_ms) {
    if (attempt < 0) attempt = 0;
    if (attempt > 30) attempt = 30; /* 2^30 * base already exceeds any sane cap */
    double ceiling = base_ms * (double)(1u << attempt);
    if (ceiling > cap_ms) ceiling = cap_ms;
    if (ceiling <= 0) return 0;
    return el_jitter_uniform(r) * ceiling;
}
