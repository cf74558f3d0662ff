/* Rotary position embeddings with the scaling variants GGUF models carry:
 * linear (positions divided by a factor), YaRN (per-dimension blend of
 * interpolated and extrapolated angles, plus a magnitude scale), LongRoPE (Phi-3 /
 * Phi-4: per-dimension divisors from rope_factors_short/long.weight, chosen by
 * the context size, and an attention factor) and Llama 3's frequency factors
 * (rope_freqs.weight). All of them are, per rotated pair i at position p,
 *
 *   theta_ext = p * base^(-2i/n_rot) / factor[i]        (factor = 1 without tensor)
 *   theta     = mix(freq_scale * theta_ext, theta_ext, ramp_i * ext_factor)
 *   (cos, sin) = (cos theta, sin theta) * mscale
 *
 * with mscale = attn_factor, times 1 + 0.1 ln(1/freq_scale) when YaRN is on. This
 * is ggml's rope operator, so the factors mean what llama.cpp takes them to mean. */
#ifndef EL_ROPE_H
#define EL_ROPE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum el_rope_mode {
    EL_ROPE_NORM, /* GPT-J style: pairs (x[2i], x[2i+1]) (Llama) */
    EL_ROPE_NEOX, /* pairs (x[i], x[i + n_rot/2]) (Qwen2, Phi-3, Gemma) */
} el_rope_mode;

typedef struct el_rope {
    el_rope_mode mode;
    uint32_t n_rot;          /* rotated dimensions of each head (<= head dim: the rest pass through) */
    float base;              /* rope.freq_base */
    float freq_scale;        /* 1 / rope.scaling.factor (linear and YaRN), else 1 */
    float ext_factor;        /* YaRN: 1; otherwise 0 */
    float attn_factor;       /* magnitude scale of cos/sin (rope.scaling.attn_factor, ...) */
    float beta_fast, beta_slow; /* YaRN ramp bounds (32, 1 by default) */
    uint32_t n_ctx_orig;     /* rope.scaling.original_context_length (YaRN ramp, LongRoPE choice) */
    const float *factors;       /* n_rot/2 divisors (rope_freqs.weight), or NULL */
    const float *factors_short; /* LongRoPE: used when the context fits n_ctx_orig */
    const float *factors_long;  /* LongRoPE: used beyond it */
} el_rope;

/* Divisors in effect for a context of n_ctx tokens (NULL: none). */
const float *el_rope_factors(const el_rope *r, uint32_t n_ctx);

/* cs[t * n_rot + 2i] = cos, [.. + 2i + 1] = sin for positions p0..p0+n-1. */
void el_rope_cache(const el_rope *r, const float *factors, int32_t p0, int32_t n, float *cs);

/* Rotate the first n_rot dimensions of n_heads heads of hd floats, in place. fused:
 * as llama.cpp's build computes it, x0 cos - x1 sin and x0 sin + x1 cos each with one
 * fused multiply-add (model/lcpp_numerics.h); otherwise rounded after every operation. */
void el_rope_apply(const el_rope *r, float *x, uint32_t n_heads, uint32_t hd, const float *cs, bool fused);

#endif
