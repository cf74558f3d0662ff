/* Building blocks of the forward pass: norms, RoPE, GELU, embeddings, and the
 * row kernels (portable C here; AVX2 versions in ops_avx2.c, picked at run time). */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu_features.h"
#include "kernels/matmul.h"
#include "model/lcpp_numerics.h"
#include "model/model.h"

void el_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    /* As ggml: float squares summed in double, in order, the mean narrowed to float.
     * A float sum moves the scale by an ulp now and then, enough to flip an 8-bit
     * rounding in the next matmul's input. */
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    if (w)
        for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
    else
        for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale;
}

void el_embed_row(const el_weight *emb, int32_t id, float *out) {
    const uint8_t *row = (const uint8_t *)emb->data + (size_t)id * emb->row_bytes;
    el_type_get_traits(emb->type)->dequantize(row, out, emb->n_in);
}

typedef struct exact_job {
    el_ctx *c;
    const el_weight *w;
    const float *x;
    int64_t n_tok;
    float *y;
} exact_job;

/* Reference product for testing: each weight row dequantized, dot products in double. */
static void exact_rows(void *ctx, int64_t begin, int64_t end, int ith) {
    exact_job *J = ctx;
    const el_weight *w = J->w;
    float *row = J->c->exact_rows + (size_t)ith * (size_t)J->c->exact_row_cap;
    const el_dequantize_fn deq = el_type_get_traits(w->type)->dequantize;
    for (int64_t r = begin; r < end; r++) {
        deq((const uint8_t *)w->data + (size_t)r * w->row_bytes, row, w->n_in);
        for (int64_t t = 0; t < J->n_tok; t++) {
            const float *xt = J->x + t * w->n_in;
            double s = 0.0;
            for (int64_t i = 0; i < w->n_in; i++) s += (double)row[i] * xt[i];
            J->y[t * w->n_out + r] = (float)s;
        }
    }
}

/* x rounded to F16 or BF16 into r. */
static void round_acts(const el_ctx *c, el_type t, const float *x, int64_t n, float *r) {
    if (t == EL_TYPE_F16) {
        for (int64_t i = 0; i < n; i += 1024) {
            uint16_t h[1024];
            const int64_t m = n - i < 1024 ? n - i : 1024;
            c->ops.f32_to_f16(x + i, h, m);
            c->ops.f16_to_f32(h, r + i, m);
        }
    } else {
        for (int64_t i = 0; i < n; i++) r[i] = el_bf16_to_f32(el_f32_to_bf16(x[i]));
    }
}

/* llama.cpp-compatible products, rows split over the pool in chunks of a multiple of 8
 * rows (llama.cpp's repacked groups). Each chunk writes its own rows of Y (for several
 * tokens through a buffer of its own). */
typedef struct lcpp_mm_job {
    const el_weight *w;
    const float *x;
    int64_t n_tok, chunk;
    float *y;
    atomic_int rc; /* the worst return: 1 unsupported, -1 out of memory */
} lcpp_mm_job;

static void lcpp_mm_chunks(void *ctx, int64_t begin, int64_t end, int ith) {
    (void)ith;
    lcpp_mm_job *J = ctx;
    const el_weight *w = J->w;
    for (int64_t ci = begin; ci < end; ci++) {
        const int64_t r0 = ci * J->chunk, r1 = r0 + J->chunk < w->n_out ? r0 + J->chunk : w->n_out, n = r1 - r0;
        float *out = J->n_tok == 1 ? J->y + r0 : malloc((size_t)(J->n_tok * n) * sizeof *out);
        int rc = out ? el_lcpp_matmul(w->type, w->data, w->n_in, w->n_out, r0, r1, J->x, J->n_tok, out) : -1;
        if (rc == 0 && J->n_tok > 1)
            for (int64_t t = 0; t < J->n_tok; t++) memcpy(J->y + t * w->n_out + r0, out + t * n, (size_t)n * sizeof *out);
        if (J->n_tok > 1) free(out);
        if (rc != 0) atomic_store(&J->rc, rc);
    }
}

/* Returns false when the weight type has no compatible path (the caller's kernels serve). */
static bool lcpp_matmul(el_ctx *c, const el_weight *w, const float *x, int64_t n_tok, float *y) {
    lcpp_mm_job J = {w, x, n_tok, 0, y, 0};
    J.chunk = (w->n_out / (4 * c->n_threads) + 7) & ~(int64_t)7;
    if (J.chunk < 64) J.chunk = 64;
    const int64_t n_chunks = (w->n_out + J.chunk - 1) / J.chunk;
    el_pool_parallel_for(c->pool, n_chunks, 1, lcpp_mm_chunks, &J);
    const int rc = atomic_load(&J.rc);
    if (rc < 0) /* out of memory: NaN logits say so, as el_matmul's do */
        for (int64_t i = 0; i < n_tok * w->n_out; i++) y[i] = NAN;
    return rc <= 0;
}

/* Below this many rows (decoding, speculative verify batches) a row-wise step stays on
 * the calling thread: a pool round trip costs 2.4 us on a quiet machine and 18-20 us on
 * a loaded one (bench_matmul), more than a few rows of a norm. */
#define ROWS_PARALLEL_MIN 16

void el_ctx_rows(el_ctx *c, int64_t n, el_range_fn fn, void *ctx) {
    if (n < ROWS_PARALLEL_MIN || el_pool_size(c->pool) == 1) fn(ctx, 0, n, 0);
    else el_pool_parallel_for(c->pool, n, 1, fn, ctx);
}

typedef struct norm_rows_job {
    float *out;
    const float *x, *w;
    int64_t n;
    float eps;
} norm_rows_job;

static void norm_rows(void *arg, int64_t t0, int64_t t1, int ith) {
    (void)ith;
    const norm_rows_job *J = arg;
    for (int64_t t = t0; t < t1; t++) el_rmsnorm(J->out + t * J->n, J->x + t * J->n, J->w, J->n, J->eps);
}

void el_ctx_rmsnorm_rows(el_ctx *c, float *out, const float *x, const float *w, int64_t rows, int64_t n, float eps) {
    norm_rows_job J = {out, x, w, n, eps};
    el_ctx_rows(c, rows, norm_rows, &J);
}

void el_ctx_matmul(el_ctx *c, const el_weight *w, const float *x, int64_t n_tok, float *y) {
    if (c->numerics == EL_NUMERICS_LLAMACPP && lcpp_matmul(c, w, x, n_tok, y)) return;
    if (c->exact_matmul && w->n_in <= c->exact_row_cap) {
        exact_job J = {c, w, x, n_tok, y};
        el_pool_parallel_for(c->pool, w->n_out, 64, exact_rows, &J);
        return;
    }
    /* llama.cpp multiplies F16 (BF16) weights with activations converted to F16 (BF16);
     * so do we, or F16 models drift ~0.2% of the logit range from it. The products
     * stay in F32. The context sized the buffer for every such matrix and batch. */
    if (w->type == EL_TYPE_F16 || w->type == EL_TYPE_BF16) {
        if (n_tok * w->n_in > c->acts_rounded_cap) { /* not a product the context was made for */
            for (int64_t i = 0; i < n_tok * w->n_out; i++) y[i] = NAN;
            return;
        }
        round_acts(c, w->type, x, n_tok * w->n_in, c->acts_rounded);
        x = c->acts_rounded;
    }
    el_matmul(c->pool, el_weight_fast_data(w), el_weight_fast_type(w), w->n_in, w->n_out, x, n_tok, y, c->mm_work);
}

void el_ctx_matmul_multi(el_ctx *c, const el_weight *const *ws, float *const *ys, int n, const float *x,
                         int64_t n_tok) {
    bool one_job = n <= EL_MATMUL_MAX_ITEMS && !c->exact_matmul && c->numerics == EL_NUMERICS_FAST;
    for (int i = 0; i < n && one_job; i++)
        one_job = ws[i]->type != EL_TYPE_F16 && ws[i]->type != EL_TYPE_BF16 && ws[i]->n_in == ws[0]->n_in;
    if (!one_job) {
        for (int i = 0; i < n; i++) el_ctx_matmul(c, ws[i], x, n_tok, ys[i]);
        return;
    }
    el_matmul_item items[EL_MATMUL_MAX_ITEMS];
    for (int i = 0; i < n; i++)
        items[i] = (el_matmul_item){el_weight_fast_data(ws[i]), el_weight_fast_type(ws[i]), ws[i]->n_out, ys[i]};
    el_matmul_multi(c->pool, items, n, ws[0]->n_in, x, n_tok, c->mm_work);
}

void el_rope_table(float *cs, int32_t p0, int32_t n, uint32_t n_rot, float base, float scale) {
    const uint32_t half = n_rot / 2;
    double inv_freq[512];
    for (uint32_t i = 0; i < half && i < 512; i++)
        inv_freq[i] = pow((double)base, -2.0 * (double)i / (double)n_rot);
    for (int32_t t = 0; t < n; t++) {
        float *row = cs + (size_t)t * n_rot;
        const double pos = (double)(p0 + t) * scale;
        for (uint32_t i = 0; i < half && i < 512; i++) {
            const double theta = pos * inv_freq[i];
            row[2 * i] = (float)cos(theta);
            row[2 * i + 1] = (float)sin(theta);
        }
    }
}

void el_rope_neox(float *x, const float *cs, uint32_t n_rot) {
    const uint32_t half = n_rot / 2;
    for (uint32_t i = 0; i < half; i++) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const float a = x[i], b = x[i + half];
        x[i] = a * c - b * s;
        x[i + half] = a * s + b * c;
    }
}

static float gelu_tanh(float x) {
    const float k = 0.79788456080286535587989211986876f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * x * (1.0f + 0.044715f * x * x)));
}

float *el_gelu_table_new(void) {
    float *t = malloc(65536 * sizeof *t);
    if (!t) return NULL;
    for (uint32_t i = 0; i < 65536; i++) {
        const float x = el_f16_to_f32((uint16_t)i);
        t[i] = el_f16_to_f32(el_f32_to_f16(gelu_tanh(x)));
    }
    return t;
}

/* ---- portable row kernels ---- */

static float dot_f32_c(const float *a, const float *b, int64_t n) {
    /* Eight independent sums: lets the compiler vectorize without -ffast-math. */
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

static void axpy_f32_c(float *restrict y, float a, const float *restrict x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

static void scale_f32_c(float *y, float a, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] *= a;
}

static void f16_to_f32_c(const uint16_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = el_f16_to_f32(src[i]);
}

static void f32_to_f16_c(const float *src, uint16_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = el_f32_to_f16(src[i]);
}

/* g = gelu(g) * u through the F16 table; saturates outside [-10, 10] as ggml does. */
static void geglu_c(float *g, const float *u, int64_t n, const float *table) {
    for (int64_t i = 0; i < n; i++) {
        const float x = g[i];
        float y;
        if (x <= -10.0f)
            y = 0.0f;
        else if (x >= 10.0f)
            y = x;
        else
            y = table[el_f32_to_f16(x)];
        g[i] = y * u[i];
    }
}

/* g = silu(g) * u = g / (1 + e^-g) * u */
static void swiglu_c(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void scores_c(const float *q, size_t q_stride, int nq, const float *k, int nk, int d, float *s,
                     int s_stride) {
    for (int i = 0; i < nq; i++)
        for (int j = 0; j < nk; j++) s[i * s_stride + j] = dot_f32_c(q + i * q_stride, k + (size_t)j * d, d);
}

static void accumulate_c(float *acc, const float *p, const float *v, int nk, int d) {
    for (int j = 0; j < nk; j++) axpy_f32_c(acc, p[j], v + (size_t)j * d, d);
}

static float exp_sum_c(float *s, int n, float m) {
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        s[j] = expf(s[j] - m);
        sum += s[j];
    }
    return sum;
}

static void exp_sum_rows_c(float *s, size_t stride, int rows, int n, const float *m, float *sums) {
    for (int r = 0; r < rows; r++) {
        const float t = exp_sum_c(s + (size_t)r * stride, n, m[r]);
        if (sums) sums[r] = t;
    }
}

void el_ops_init_scalar(el_ops *ops) {
    ops->scores = scores_c;
    ops->accumulate = accumulate_c;
    ops->exp_sum_rows = exp_sum_rows_c;
    ops->dot_f32 = dot_f32_c;
    ops->axpy_f32 = axpy_f32_c;
    ops->scale_f32 = scale_f32_c;
    ops->f16_to_f32 = f16_to_f32_c;
    ops->f32_to_f16 = f32_to_f16_c;
    ops->geglu = geglu_c;
    ops->swiglu = swiglu_c;
}

#if defined(__x86_64__) || defined(_M_X64)
void el_ops_init_avx2(el_ops *ops); /* ops_avx2.c */
#endif

void el_ops_init(el_ops *ops) {
    el_ops_init_scalar(ops);
#if defined(__x86_64__) || defined(_M_X64)
    if (el_cpu_features_get()->level >= EL_CPU_AVX2) el_ops_init_avx2(ops);
#endif
}
