/* Decoder-only transformer models loaded from GGUF, and their forward pass.
 *
 * A model is a set of hyperparameters (read from "<arch>.*" metadata keys) plus
 * weight views into the GGUF mapping (never copied). Each supported architecture
 * is one entry in a table keyed by general.architecture (arch.c): it knows how to
 * read its hyperparameters, find its tensors, and run its forward pass. Gemma 3 is
 * the first (gemma3.c); llama / qwen2 / phi3 slot in beside it using the same
 * building blocks (ops.h, attention.c, kv_cache.c).
 *
 * A context (el_ctx) holds what one conversation needs: the KV cache, the
 * positions evaluated so far, and every scratch buffer, allocated once. */
#ifndef EL_MODEL_H
#define EL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/threadpool.h"
#include "gguf/gguf.h"
#include "model/rope.h"
#include "quant/quant.h"

#define EL_MAX_LAYERS 512

/* A weight matrix (or vector: n_out == 1) viewed in the GGUF mapping. Row r is
 * n_in elements of `type` at data + r * row_bytes. */
typedef struct el_weight {
    const void *data;
    el_type type;
    int64_t n_in, n_out;
    size_t row_bytes;
    /* The same matrix regrouped at load for this CPU's kernels (el_model_repack), or NULL:
     * what the default products read (el_weight_fast). data keeps the file's layout, for
     * embedding rows and the exact and llama.cpp-compatible products. */
    const void *packed;
    el_type packed_type;
} el_weight;

/* What the default (fast) products multiply: the regrouped copy when there is one. */
static inline const void *el_weight_fast_data(const el_weight *w) { return w->packed ? w->packed : w->data; }
static inline el_type el_weight_fast_type(const el_weight *w) { return w->packed ? w->packed_type : w->type; }

typedef struct el_layer {
    el_weight attn_norm, wq, wk, wv, wo;
    el_weight q_norm, k_norm;         /* per-head RMSNorm (Gemma 3, Qwen 3); data NULL if absent */
    el_weight attn_post_norm;         /* Gemma 2/3 sandwich norms; data NULL if absent */
    el_weight ffn_norm, ffn_gate, ffn_up, ffn_down;
    el_weight ffn_post_norm;
    el_weight bq, bk, bv, bo;         /* attention biases (Qwen2, some Llamas); data NULL if absent */
    bool swa;                         /* sliding-window (local) attention layer */
    float rope_base, rope_scale;      /* theta = pos * rope_scale * rope_base^(-2i/n_rot) */
} el_layer;

typedef struct el_hparams {
    uint32_t n_vocab, n_ctx_train, n_embd, n_layer, n_ff;
    uint32_t n_head, n_head_kv, head_dim_k, head_dim_v, n_rot;
    uint32_t n_swa;              /* sliding window in tokens; 0 = none */
    float rms_eps;
    float attn_scale;            /* applied to q before q.k */
    float embd_scale;            /* token embeddings are multiplied by this */
    float final_softcap;         /* 0 = none: logits = c * tanh(logits / c) */
} el_hparams;

typedef struct el_model el_model;
typedef struct el_ctx el_ctx;

/* One architecture: how to load it and how to run it. */
typedef struct el_arch {
    const char *name; /* general.architecture */
    int (*load)(el_model *m, el_err *err);
    /* Evaluate n tokens at positions ctx->n_past.. (n <= ctx->n_ubatch) and, if
     * logits is non-NULL, write n_vocab logits for each of the last ctx->n_out
     * tokens (1 <= n_out <= n), row after row. */
    int (*forward)(el_ctx *c, const int32_t *tokens, int32_t n, float *logits, el_err *err);
} el_arch;

struct el_model {
    el_gguf *gguf;
    const el_arch *arch;
    el_hparams hp;
    el_weight tok_embd, output_norm, output;
    el_layer *layers;
    el_rope rope;      /* llama / qwen2 / phi3: RoPE with its scaling (rope.h) */
    float *gelu_table; /* 65536 entries: gelu_tanh of each F16 value, rounded to F16 (as ggml) */
    void *packed_mem;  /* el_model_repack's copies (anonymous mapping), packed_bytes long */
    size_t packed_bytes;
};

/* Architecture table lookup; NULL if unsupported. */
const el_arch *el_arch_find(const char *name, size_t len);
/* Comma-separated names of the supported architectures (for error messages). */
const char *el_arch_supported_list(void);

/* Load a model's hyperparameters and weights from an open GGUF (borrowed: it must
 * outlive the model). Refuses unsupported architectures, naming them. */
el_model *el_model_load(el_gguf *g, el_err *err);
/* Whether this build can run the model in g: a supported architecture whose
 * hyperparameters, tensor shapes and tensor types all check out (nothing is
 * computed or copied). On false, why is written to reason (cap bytes). */
bool el_model_check_supported(const el_gguf *g, char *reason, size_t cap);
void el_model_free(el_model *m);
/* Move weight matrices into one anonymous mapping, in 2 MiB pages where the kernel gives
 * them (transparent huge pages; file mappings get 4 KiB pages): those whose format has a
 * faster layout on this CPU regrouped into it (el_repack_type: Q5_0 on x86 with AVX2;
 * el_weight.packed, data keeps the file's layout), and Q8_0 ones, whose products stream
 * at the memory's speed, copied as they are when huge pages are available (el_weight.data
 * then points at the copy). Read with pread; the file pages are let go, so resident
 * memory does not grow; but those weights are then anonymous memory, which the kernel
 * cannot drop and re-read under memory pressure as it can file pages. Products are bit
 * for bit unchanged. Returns the bytes moved (0 when nothing applies); -1 with err only
 * when the memory cannot be had or a read fails (the model stays usable). */
int64_t el_model_repack(el_model *m, el_err *err);

/* Helpers for architecture loaders. */
int el_model_weight(const el_model *m, const char *name, int64_t n_in, int64_t n_out, bool required,
                    bool matrix, el_weight *out, el_err *err);
int el_model_layer_weight(const el_model *m, int il, const char *suffix, int64_t n_in, int64_t n_out,
                          bool required, bool matrix, el_weight *out, el_err *err);

/* ---- KV cache ---------------------------------------------------------- */

/* Head-major: a layer's K is n_head_kv runs of n_cells slices (one kv head of one
 * position each), so the keys one head attends to lie one after another in memory (as
 * rows of all heads, each head read a small slice of every row: a stride the hardware
 * prefetchers follow late, and decoding a 512-token context waited on those loads ~10%
 * of its time). V likewise. */
typedef struct el_kv_layer {
    uint8_t *k, *v;     /* n_head_kv * n_cells slices of slice_k / slice_v bytes */
    uint32_t n_cells;   /* ring size: position p lives in cell p % n_cells */
} el_kv_layer;

typedef struct el_kv_cache {
    el_type type;           /* EL_TYPE_F16 or EL_TYPE_Q8_0 */
    uint32_t n_ctx;
    uint32_t n_layer;
    uint32_t n_head_kv;
    int64_t head_k, head_v;   /* elements of one kv head's K (head_dim_k) / V */
    size_t slice_k, slice_v;  /* their bytes */
    el_kv_layer *layers;
    void *mem;
    size_t bytes;
} el_kv_cache;

/* Head h's K (V) slice of the position in cell `cell` of layer l. */
static inline uint8_t *el_kv_k(const el_kv_cache *kv, const el_kv_layer *l, uint32_t h, uint32_t cell) {
    return l->k + ((size_t)h * l->n_cells + cell) * kv->slice_k;
}
static inline uint8_t *el_kv_v(const el_kv_cache *kv, const el_kv_layer *l, uint32_t h, uint32_t cell) {
    return l->v + ((size_t)h * l->n_cells + cell) * kv->slice_v;
}

/* Sliding-window layers keep only n_swa + n_ubatch - 1 cells (a ring), enough for
 * the earliest query of a batch to still see its whole window, and (as
 * el_ctx_truncate checks) to roll back any batch of at most n_ubatch tokens, such
 * as a speculative verify batch whose drafts are rejected. */
int el_kv_init(el_kv_cache *kv, const el_model *m, el_type type, uint32_t n_ctx, uint32_t n_ubatch,
               el_err *err);
void el_kv_free(el_kv_cache *kv);
/* Store n rows of K and V (F32, row-major, one token each) for positions p0.. of layer il. */
typedef struct el_ops el_ops;
void el_kv_store(el_kv_cache *kv, const el_ops *ops, int il, int32_t p0, int32_t n, const float *k,
                 size_t k_stride, const float *v, size_t v_stride);
/* Oldest position still held for layer il when positions up to n_past were written. */
int32_t el_kv_oldest(const el_kv_cache *kv, int il, int32_t n_past);

/* ---- context ------------------------------------------------------------ */

/* Row-level kernels picked once for this CPU (portable C or AVX2). */
struct el_ops {
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    void (*axpy_f32)(float *y, float a, const float *x, int64_t n);      /* y += a * x */
    void (*scale_f32)(float *y, float a, int64_t n);                     /* y *= a */
    void (*f16_to_f32)(const uint16_t *src, float *dst, int64_t n);
    void (*f32_to_f16)(const float *src, uint16_t *dst, int64_t n);
    void (*geglu)(float *g, const float *u, int64_t n, const float *table); /* g = gelu(g) * u */
    void (*swiglu)(float *g, const float *u, int64_t n);                      /* g = silu(g) * u */
    /* s[i * s_stride + j] = q_i . k_j for nq query rows (q_stride apart) and nk key rows of d floats. */
    void (*scores)(const float *q, size_t q_stride, int nq, const float *k, int nk, int d, float *s, int s_stride);
    /* acc[0..d) += sum_j p[j] * v[j * d ..]: the weighted sum of nk value rows. */
    void (*accumulate)(float *acc, const float *p, const float *v, int nk, int d);
    /* For each of rows rows (row r at s + r * stride): s[j] = exp(s[j] - m[r]) for j < n,
     * and sums[r] = their sum (sums may be NULL). A row's results do not depend on the
     * other rows: many rows in one call only keep more exps in flight at once. */
    void (*exp_sum_rows)(float *s, size_t stride, int rows, int n, const float *m, float *sums);
};

/* Which arithmetic the forward pass uses (see model/lcpp_numerics.h). */
typedef enum el_numerics {
    EL_NUMERICS_FAST = 0,     /* blocked, batch-invariant kernels (default) */
    EL_NUMERICS_LLAMACPP = 1, /* llama.cpp's x86 AVX2 arithmetic, bit for bit (llama, qwen2,
                               * phi3 with an F16 KV cache; slower) */
} el_numerics;

typedef struct el_ctx_params {
    uint32_t n_ctx;      /* 0: min(4096, model's training context) */
    uint32_t n_ubatch;   /* tokens per forward call; 0: 512 */
    el_type kv_type;     /* EL_TYPE_F16 or EL_TYPE_Q8_0 */
    el_pool *pool;       /* borrowed; required */
    bool exact_matmul;   /* testing: dequantize weight rows and multiply in F32 (no activation
                          * quantization) so the forward pass can be checked against exact math */
    el_numerics numerics;
} el_ctx_params;

struct el_ctx {
    const el_model *m;
    el_pool *pool;
    el_kv_cache kv;
    el_ops ops;
    uint32_t n_ctx, n_ubatch;
    int32_t n_past;        /* positions evaluated so far */
    int32_t kv_high;       /* highest n_past since the cache was last emptied: ring cells
                            * below kv_high - n_cells may hold later positions */
    int32_t *past_tokens;  /* n_ctx entries: the token at each evaluated position */

    /* scratch, sized for n_ubatch tokens */
    float *x, *xb, *xb2;   /* n_ubatch * n_embd */
    float *q;              /* n_ubatch * n_head * head_dim_k */
    float *k, *v;          /* n_ubatch * n_head_kv * head_dim_{k,v} */
    float *att;            /* n_ubatch * n_head * head_dim_v */
    float *ffn_g, *ffn_u;  /* n_ubatch * n_ff */
    float *rope_cs;        /* n_ubatch * n_rot: cos/sin pairs for the current positions (one layer kind) */
    float *logits;         /* n_vocab */
    void *mm_work;
    size_t mm_work_size;
    float *acts_rounded;           /* activations rounded to F16 / BF16 for such weights */
    int64_t acts_rounded_cap;      /* floats (n_ubatch times the widest such input) */
    /* attention: per-thread tiles and per-chunk partial results */
    float *attn_scratch;
    size_t attn_scratch_per_thread; /* floats */
    float *attn_partials;
    float *attn_scores;            /* F16 cache: per-thread score rows kept between the two
                                    * softmax passes (NULL: pass 2 recomputes them) */
    size_t attn_score_stride;      /* floats per score row */
    int attn_split_tokens;         /* most tokens whose keys may be split across threads */
    uint32_t attn_split_chunks;    /* most key chunks a split covers */
    int32_t n_out;                 /* rows of logits the next forward writes (el_arch.forward) */
    int n_threads;
    bool exact_matmul;
    el_numerics numerics;
    float *exact_rows; /* n_threads rows of the widest n_in, for exact_matmul */
    int64_t exact_row_cap;
};

el_ctx *el_ctx_create(const el_model *m, const el_ctx_params *p, el_err *err);
void el_ctx_free(el_ctx *c);

/* Evaluate tokens (any n, split into ubatches) appended at n_past; logits (n_vocab
 * floats, may be NULL) get the last token's logits. On error n_past is left at the
 * last fully evaluated ubatch. */
int el_ctx_eval(el_ctx *c, const int32_t *tokens, size_t n, float *logits, el_err *err);

/* The same, writing n_out rows of logits (n_out * n_vocab floats): those of the
 * last n_out tokens, in order (1 <= n_out <= n). Speculative decoding verifies
 * drafts with it. Each row is bit for bit what evaluating token by token gives. */
int el_ctx_eval_rows(el_ctx *c, const int32_t *tokens, size_t n, float *logits, size_t n_out, el_err *err);

/* Roll back to the first n_keep positions. Returns the number actually kept: n_keep,
 * or 0 if a sliding-window ring no longer holds what continuing from n_keep needs. */
int32_t el_ctx_truncate(el_ctx *c, int32_t n_keep);

/* ---- building blocks for forward passes (ops.c, attention.c) ------------ */

/* out[i] = x[i] / rms(x) * w[i]  (w may be NULL: no weight) */
void el_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);
/* Embedding row for token id, dequantized to F32. */
void el_embed_row(const el_weight *emb, int32_t id, float *out);
/* fn(ctx, t0, t1, ith) over rows [0, n): split over the pool for prompt-sized batches,
 * on this thread for a few rows (decoding), where waking the pool costs more. For
 * row-wise steps whose rows do not depend on each other (norms, RoPE, activations), so
 * the results are the same bits either way. */
void el_ctx_rows(el_ctx *c, int64_t n, el_range_fn fn, void *ctx);
/* out[t] = rmsnorm(x[t]) * w for rows of n values, t < rows, through el_ctx_rows. */
void el_ctx_rmsnorm_rows(el_ctx *c, float *out, const float *x, const float *w, int64_t rows, int64_t n, float eps);

/* Y = W X over the pool (matmul.h), n_tok rows. */
void el_ctx_matmul(el_ctx *c, const el_weight *w, const float *x, int64_t n_tok, float *y);
/* Y_i = W_i X for n weights sharing X (q/k/v, gate/up) as one pool job when the kernels
 * allow (kernels/matmul.h: bit for bit what el_ctx_matmul gives), else one by one. */
void el_ctx_matmul_multi(el_ctx *c, const el_weight *const *ws, float *const *ys, int n, const float *x,
                         int64_t n_tok);
/* cos/sin table for positions p0..p0+n-1: cs[t*n_rot + 2i] = cos, [.. + 2i+1] = sin. */
void el_rope_table(float *cs, int32_t p0, int32_t n, uint32_t n_rot, float base, float scale);
/* NEOX-style rotation of one head: pairs (x[i], x[i + n_rot/2]). */
void el_rope_neox(float *x, const float *cs, uint32_t n_rot);
/* GELU(tanh) lookup table as ggml builds it (F16 in, F16 out). */
float *el_gelu_table_new(void);
/* Kernels for this CPU. */
void el_ops_init(el_ops *ops);
void el_ops_init_scalar(el_ops *ops);

/* Causal (optionally sliding-window) attention for n query tokens at positions
 * p0..p0+n-1 over layer il of the cache (which already holds their K/V). A token's
 * result does not depend on n, p0 of its batch or the thread count.
 * q: n rows of n_head*head_dim_k (RoPE'd, scaled); out: n rows of n_head*head_dim_v. */
void el_attention(el_ctx *c, int il, const float *q, int32_t p0, int32_t n, uint32_t n_swa, float *out);
size_t el_attention_scratch_floats(const el_hparams *hp);
/* Floats of per-chunk partials for contexts of n_ctx tokens; *split_tokens gets how many
 * query tokens at most may share one split (the rest run unsplit: same results). */
size_t el_attention_partial_floats(const el_hparams *hp, uint32_t n_ctx, int *split_tokens);
/* Score rows kept between the passes of the F16-cache softmax: floats per row, and in all
 * for n_threads threads. */
size_t el_attention_score_stride(uint32_t n_ctx);
size_t el_attention_score_floats(uint32_t n_ctx, int n_threads);

/* Architectures */
extern const el_arch el_arch_gemma3;
extern const el_arch el_arch_llama, el_arch_qwen2, el_arch_phi3; /* llama_family.c */

#endif
