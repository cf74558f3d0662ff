/* Sampler chain: penalties -> top-k -> top-p -> min-p -> temperature -> draw. */
#include "sample/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- RNG: xoshiro256** (Blackman & Vigna), state filled by splitmix64 ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void el_rng_seed(el_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t el_rng_next(el_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double el_rng_uniform(el_rng *r) { return (double)(el_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

/* ---- candidates ---- */

typedef struct cand {
    float logit;
    float p;
    int32_t id;
} cand;

struct el_sampler {
    el_sampler_params p;
    int32_t n_vocab;
    el_rng rng;
    cand *c;          /* n_vocab working candidates */
    uint32_t *count;  /* per id: occurrences in the penalty window */
    uint32_t *stamp;  /* per id: the draw (round) whose penalty pen[id] holds */
    uint32_t round;
    float *pen;       /* per id: penalised logit, valid where stamp == round */
    int32_t *ring;    /* penalty window (oldest at head) */
    size_t ring_cap, ring_n, ring_head;
};

el_sampler_params el_sampler_default_params(void) {
    return (el_sampler_params){.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .repeat_penalty = 1.0f,
                               .repeat_last_n = 64, .freq_penalty = 0.0f, .presence_penalty = 0.0f, .seed = 0};
}

el_sampler *el_sampler_new(const el_sampler_params *p, int32_t n_vocab, el_err *err) {
    if (n_vocab <= 0) {
        el_fail(err, EDGELLM_EINVAL, "sampler: vocabulary size %d", n_vocab);
        return NULL;
    }
    if (isnan(p->temp) || isnan(p->top_p) || isnan(p->min_p) || !(p->repeat_penalty > 0.0f) ||
        !isfinite(p->freq_penalty) || !isfinite(p->presence_penalty) || p->repeat_last_n < -1) {
        el_fail(err, EDGELLM_EINVAL,
                "sampler: bad parameters (temp %g, top_p %g, min_p %g, repeat_penalty %g, repeat_last_n %d)",
                (double)p->temp, (double)p->top_p, (double)p->min_p, (double)p->repeat_penalty, p->repeat_last_n);
        return NULL;
    }
    el_sampler *s = calloc(1, sizeof(*s));
    if (!s) goto oom;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->c = malloc((size_t)n_vocab * sizeof(cand));
    s->count = calloc((size_t)n_vocab, sizeof(uint32_t));
    s->stamp = calloc((size_t)n_vocab, sizeof(uint32_t));
    s->pen = malloc((size_t)n_vocab * sizeof(float));
    if (!s->c || !s->count || !s->stamp || !s->pen) goto oom;
    if (p->repeat_last_n > 0) {
        s->ring_cap = (size_t)p->repeat_last_n;
        s->ring = malloc(s->ring_cap * sizeof(int32_t));
        if (!s->ring) goto oom;
    }
    el_rng_seed(&s->rng, p->seed);
    return s;
oom:
    el_sampler_free(s);
    el_fail(err, EDGELLM_ENOMEM, "sampler: out of memory (vocabulary %d)", n_vocab);
    return NULL;
}

void el_sampler_free(el_sampler *s) {
    if (!s) return;
    free(s->c);
    free(s->count);
    free(s->stamp);
    free(s->pen);
    free(s->ring);
    free(s);
}

void el_sampler_reset(el_sampler *s) {
    memset(s->count, 0, (size_t)s->n_vocab * sizeof(uint32_t));
    s->ring_n = s->ring_head = 0;
    el_rng_seed(&s->rng, s->p.seed);
}

void el_sampler_accept(el_sampler *s, int32_t id) {
    if (id < 0 || id >= s->n_vocab || s->p.repeat_last_n == 0) return;
    if (s->p.repeat_last_n < 0 && s->ring_n == s->ring_cap) {
        /* unbounded window: grow */
        size_t cap = s->ring_cap ? s->ring_cap * 2 : 256;
        int32_t *r = realloc(s->ring, cap * sizeof(int32_t));
        if (!r) return; /* keep the penalties we have rather than fail generation */
        s->ring = r;
        s->ring_cap = cap;
    }
    if (s->ring_n == s->ring_cap) {
        int32_t old = s->ring[s->ring_head];
        s->count[old]--;
        s->ring[s->ring_head] = id;
        s->ring_head = (s->ring_head + 1) % s->ring_cap;
    } else {
        s->ring[(s->ring_head + s->ring_n) % s->ring_cap] = id;
        s->ring_n++;
    }
    s->count[id]++;
}

/* Higher logit first; equal logits: lower id first (a strict total order). */
static inline bool before(const cand *a, const cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cmp_cand(const void *x, const void *y) {
    const cand *a = x, *b = y;
    return before(a, b) ? -1 : before(b, a) ? 1 : 0;
}

static inline void swap_cand(cand *a, cand *b) {
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Rearrange so that c[0..k) are the k best in order (quickselect, then sort k). */
static void select_top(cand *c, size_t n, size_t k) {
    if (k >= n) {
        qsort(c, n, sizeof(cand), cmp_cand);
        return;
    }
    size_t lo = 0, hi = n; /* the k-th boundary lies in [lo, hi) */
    int rounds = 0;
    while (hi - lo > 16 && rounds++ < 64) {
        size_t mid = lo + (hi - lo) / 2;
        /* median of three to c[hi-1] as the pivot */
        if (before(&c[mid], &c[lo])) swap_cand(&c[mid], &c[lo]);
        if (before(&c[hi - 1], &c[lo])) swap_cand(&c[hi - 1], &c[lo]);
        if (before(&c[mid], &c[hi - 1])) swap_cand(&c[mid], &c[hi - 1]);
        cand pivot = c[hi - 1];
        size_t store = lo;
        for (size_t i = lo; i < hi - 1; i++)
            if (before(&c[i], &pivot)) swap_cand(&c[i], &c[store++]);
        swap_cand(&c[store], &c[hi - 1]);
        if (store == k || store + 1 == k) {
            lo = hi = store;
            break;
        }
        if (store > k) hi = store;
        else lo = store + 1;
    }
    if (hi > lo) qsort(c + lo, hi - lo, sizeof(cand), cmp_cand); /* small or stubborn range */
    qsort(c, k, sizeof(cand), cmp_cand);
}

/* p = softmax(logit / temp) over c[0..n), computed as exp((l - max) / temp) so a
 * tiny temperature cannot overflow. All -inf: uniform; +inf logits share the mass. */
static void softmax(cand *c, size_t n, float temp) {
    float max = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (c[i].logit > max) max = c[i].logit;
    if (!(max > -INFINITY)) {
        for (size_t i = 0; i < n; i++) c[i].p = 1.0f / (float)n;
        return;
    }
    if (max == INFINITY) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) k += c[i].logit == INFINITY;
        for (size_t i = 0; i < n; i++) c[i].p = c[i].logit == INFINITY ? 1.0f / (float)k : 0.0f;
        return;
    }
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        c[i].p = expf((c[i].logit - max) / temp);
        sum += c[i].p;
    }
    for (size_t i = 0; i < n; i++) c[i].p = (float)(c[i].p / sum);
}

/* Penalised logits of the tokens in the window, computed once per draw:
 * stamp[id] == round marks them and pen[id] holds the value. */
static void compute_penalties(el_sampler *s, const float *logits) {
    const el_sampler_params *p = &s->p;
    if (++s->round == 0) { /* stamps wrapped: start over */
        memset(s->stamp, 0, (size_t)s->n_vocab * sizeof(uint32_t));
        s->round = 1;
    }
    if (p->repeat_last_n == 0 || (p->repeat_penalty == 1.0f && p->freq_penalty == 0.0f && p->presence_penalty == 0.0f))
        return;
    for (size_t i = 0; i < s->ring_n; i++) {
        int32_t id = s->ring[(s->ring_head + i) % s->ring_cap];
        if (s->stamp[id] == s->round) continue;
        s->stamp[id] = s->round;
        float l = isnan(logits[id]) ? -INFINITY : logits[id];
        if (l <= 0.0f) l *= p->repeat_penalty;
        else l /= p->repeat_penalty;
        l -= (float)s->count[id] * p->freq_penalty + p->presence_penalty;
        s->pen[id] = l;
    }
}

/* The logit the chain sees for id: penalised, NaN as -inf. */
static inline float logit_of(const el_sampler *s, const float *logits, int32_t id) {
    if (s->stamp[id] == s->round) return s->pen[id];
    float l = logits[id];
    return isnan(l) ? -INFINITY : l;
}

/* Heap of the k best seen so far, worst at the root. */
static void sift_down_worst(cand *h, size_t n, size_t i) {
    for (;;) {
        size_t w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && before(&h[w], &h[l])) w = l;
        if (r < n && before(&h[w], &h[r])) w = r;
        if (w == i) return;
        swap_cand(&h[i], &h[w]);
        i = w;
    }
}

/* The k best candidates straight from the logits (one pass, no copy of the
 * vocabulary), sorted, into c[0..k). */
static void top_k_from_logits(el_sampler *s, const float *logits, size_t k) {
    cand *h = s->c;
    size_t n = (size_t)s->n_vocab;
    for (size_t i = 0; i < k; i++) h[i] = (cand){logit_of(s, logits, (int32_t)i), 0.0f, (int32_t)i};
    for (size_t i = k / 2; i-- > 0;) sift_down_worst(h, k, i);
    for (size_t i = k; i < n; i++) {
        float l = logits[i];
        /* cheap reject: not better than the worst kept (ties go to the lower id, already kept) */
        if (!(l > h[0].logit) && s->stamp[i] != s->round) continue;
        cand x = {logit_of(s, logits, (int32_t)i), 0.0f, (int32_t)i};
        if (before(&x, &h[0])) {
            h[0] = x;
            sift_down_worst(h, k, 0);
        }
    }
    qsort(h, k, sizeof(cand), cmp_cand);
}

/* Runs the chain; leaves the final candidates in s->c[0..n) with p set. */
static size_t run_chain(el_sampler *s, const float *logits, bool *sorted_out) {
    const el_sampler_params *p = &s->p;
    cand *c = s->c;
    size_t n = (size_t)s->n_vocab;
    compute_penalties(s, logits);

    if (p->temp <= 0.0f) {
        int32_t best = 0;
        float best_l = logit_of(s, logits, 0);
        for (size_t i = 1; i < n; i++) {
            float l = logits[i];
            if (!(l > best_l) && s->stamp[i] != s->round) continue;
            l = logit_of(s, logits, (int32_t)i);
            if (l > best_l) { /* strict: ties keep the lower id */
                best_l = l;
                best = (int32_t)i;
            }
        }
        c[0] = (cand){best_l, 1.0f, best};
        *sorted_out = true;
        return 1;
    }

    bool sorted = false;
    if (p->top_k > 0 && (size_t)p->top_k < n) {
        top_k_from_logits(s, logits, (size_t)p->top_k);
        n = (size_t)p->top_k;
        sorted = true;
    } else {
        for (size_t i = 0; i < n; i++) c[i] = (cand){logit_of(s, logits, (int32_t)i), 0.0f, (int32_t)i};
    }

    if (p->top_p < 1.0f) {
        softmax(c, n, 1.0f); /* top-p and min-p see the distribution before temperature */
        size_t window = sorted ? n : (n < 256 ? n : 256);
        if (!sorted) select_top(c, n, window);
        double cum = 0.0;
        size_t keep = n;
        for (size_t i = 0; i < n; i++) {
            if (i == window) { /* the best `window` were not enough: order four times as many */
                size_t more = window * 4 < n ? window * 4 : n;
                select_top(c + window, n - window, more - window);
                window = more;
            }
            cum += c[i].p;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
        sorted = true;
    }

    if (p->min_p > 0.0f) {
        float max = -INFINITY;
        for (size_t i = 0; i < n; i++)
            if (c[i].logit > max) max = c[i].logit;
        float min_logit = max + logf(p->min_p);
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (c[i].logit >= min_logit) c[m++] = c[i];
        if (m > 0) n = m; /* the max always passes unless logits are all -inf */
    }

    softmax(c, n, p->temp);
    *sorted_out = sorted;
    return n;
}

int32_t el_sampler_sample(el_sampler *s, const float *logits) {
    bool sorted;
    size_t n = run_chain(s, logits, &sorted);
    if (n == 1) return s->c[0].id;
    double u = el_rng_uniform(&s->rng), cum = 0.0;
    for (size_t i = 0; i < n; i++) {
        cum += s->c[i].p;
        if (u < cum) return s->c[i].id;
    }
    /* rounding: cum ended just below u; take the last token with any mass */
    for (size_t i = n; i-- > 0;)
        if (s->c[i].p > 0.0f) return s->c[i].id;
    return s->c[0].id;
}

size_t el_sampler_candidates(el_sampler *s, const float *logits, int32_t *ids, float *probs, size_t cap) {
    bool sorted;
    size_t n = run_chain(s, logits, &sorted);
    size_t k = n < cap ? n : cap;
    if (!sorted && k > 0) select_top(s->c, n, k); /* order by logit == order by p */
    for (size_t i = 0; i < k; i++) {
        ids[i] = s->c[i].id;
        probs[i] = s->c[i].p;
    }
    return n;
}

/* The running maximum is kept in a register: comparing against x[best] makes every step
 * wait on a load (measured on 262144 logits: 0.99 ms a call that way, 0.13 ms this way). */
int32_t el_argmax(const float *x, uint32_t n) {
    uint32_t best = 0;
    float best_x = -INFINITY;
    for (uint32_t i = 0; i < n; i++)
        if (x[i] > best_x) best_x = x[i], best = i;
    return (int32_t)best;
}
