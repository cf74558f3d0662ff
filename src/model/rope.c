/* Rotary position embeddings and their scaling variants (see rope.h). */
#include "model/rope.h"

#include <math.h>
#include <stddef.h>

const float *el_rope_factors(const el_rope *r, uint32_t n_ctx) {
    if (r->factors) return r->factors;
    if (r->factors_long && n_ctx > r->n_ctx_orig) return r->factors_long;
    return r->factors_short; /* NULL when the model has none */
}

/* YaRN: the dimension where a wavelength makes n_rot turns over the original context. */
static float yarn_corr_dim(uint32_t n_rot, uint32_t n_ctx_orig, float n_turns, float base) {
    const float pi = 3.14159265358979323846f;
    return (float)n_rot * logf((float)n_ctx_orig / (n_turns * 2.0f * pi)) / (2.0f * logf(base));
}

/* 1 for dimensions below lo (pure extrapolation), 0 above hi (pure interpolation). */
static float yarn_ramp(float lo, float hi, uint32_t i) {
    const float y = ((float)i - lo) / fmaxf(0.001f, hi - lo);
    return 1.0f - fminf(1.0f, fmaxf(0.0f, y));
}

void el_rope_cache(const el_rope *r, const float *factors, int32_t p0, int32_t n, float *cs) {
    const uint32_t half = r->n_rot / 2;
    const float theta_scale = powf(r->base, -2.0f / (float)r->n_rot);
    float lo = 0.0f, hi = 0.0f, mscale = r->attn_factor;
    if (r->ext_factor != 0.0f) {
        lo = fmaxf(0.0f, floorf(yarn_corr_dim(r->n_rot, r->n_ctx_orig, r->beta_fast, r->base)));
        hi = fminf((float)(r->n_rot - 1), ceilf(yarn_corr_dim(r->n_rot, r->n_ctx_orig, r->beta_slow, r->base)));
        mscale *= 1.0f + 0.1f * logf(1.0f / r->freq_scale);
    }
    for (int32_t t = 0; t < n; t++) {
        float *row = cs + (size_t)t * r->n_rot;
        /* As ggml: the angle of pair i is built by repeated multiplication in float. */
        float theta_base = (float)(p0 + t);
        for (uint32_t i = 0; i < half; i++) {
            const float theta_ext = factors ? theta_base / factors[i] : theta_base;
            float theta = r->freq_scale * theta_ext;
            if (r->ext_factor != 0.0f) {
                const float mix = yarn_ramp(lo, hi, i) * r->ext_factor;
                theta = theta * (1.0f - mix) + theta_ext * mix;
            }
            row[2 * i] = cosf(theta) * mscale;
            row[2 * i + 1] = sinf(theta) * mscale;
            theta_base *= theta_scale;
        }
    }
}

/* The pairs of one head's rotated dimensions: (2i, 2i+1) or (i, i + n_rot/2). fused as in
 * el_rope_apply; the callers pass it as a constant so each loop is compiled without the
 * test. */
static inline __attribute__((always_inline)) void rope_heads(const el_rope *r, float *x, uint32_t n_heads,
                                                             uint32_t hd, const float *cs, const bool fused) {
    const uint32_t half = r->n_rot / 2;
    const uint32_t step = r->mode == EL_ROPE_NEOX ? 1 : 2, other = r->mode == EL_ROPE_NEOX ? half : 1;
    for (uint32_t h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * hd;
        for (uint32_t i = 0; i < half; i++) {
            float *x0 = v + step * i, *x1 = x0 + other;
            const float c = cs[2 * i], s = cs[2 * i + 1], a = *x0, b = *x1;
            if (fused) {
                *x0 = fmaf(a, c, -(b * s));
                *x1 = fmaf(a, s, b * c);
            } else {
                *x0 = a * c - b * s;
                *x1 = a * s + b * c;
            }
        }
    }
}

void el_rope_apply(const el_rope *r, float *x, uint32_t n_heads, uint32_t hd, const float *cs, bool fused) {
    if (fused) rope_heads(r, x, n_heads, hd, cs, true);
    else rope_heads(r, x, n_heads, hd, cs, false);
}
