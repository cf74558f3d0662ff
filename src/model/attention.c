/* Causal attention over the KV cache, flash-attention style: for a block of query
 * vectors (a few tokens times the query heads that share one KV head), walk the
 * visible keys in tiles, dequantize each tile once, and keep a running max, sum
 * and weighted sum of values (online softmax). Memory stays bounded whatever the
 * context length, and every K/V row is converted once per query block.
 *
 * A query's result does not depend on how tokens are batched nor on the thread
 * count: keys are cut into chunks of ATT_CHUNK at fixed absolute positions, and
 * tiles of ATT_KT inside them; each chunk gives a partial result (max, sum,
 * weighted values) which are merged in chunk order by one function. So a token
 * evaluated alone, in a prompt batch or in a speculative verify batch gets the same
 * bits, and a cached prefix or a rolled-back draft cannot change an answer.
 *
 * With an F16 cache the softmax takes two passes, as llama.cpp's attention without
 * flash attention computes it: the scores' max and sum first (the scores are kept per
 * thread), then the normalized probabilities rounded to F16 times V. Rounding them
 * like the reference keeps quantized models within its golden bounds (tests/
 * test_families.c); a Q8_0 cache keeps the one-pass online softmax (llama.cpp needs
 * flash attention for it, which keeps the probabilities in F32).
 *
 * Work items are (kv head, query block), or (kv head, chunk) when there is too little
 * other parallel work (decoding one or a few tokens): then each item writes its
 * chunk's partials and the caller's thread merges them afterwards, in the same order
 * and with the same arithmetic as the one-item-per-block path. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "model/model.h"

enum {
    ATT_QV = 64,     /* query vectors per block */
    ATT_KT = 32,     /* keys per tile (tiles start at multiples of ATT_KT) */
    ATT_CHUNK = 128, /* keys per chunk (chunks start at multiples of ATT_CHUNK) */
    ATT_SPLIT_TOKENS = 16,
};
#define ATT_PARTIAL_CAP_FLOATS ((size_t)8 << 20) /* 32 MiB of split partials at most */

typedef struct attn_job {
    el_ctx *c;
    const el_kv_layer *kvl;
    const float *q;
    float *out;
    int32_t p0, n;
    uint32_t n_swa;
    int q_tokens;      /* tokens per query block */
    int n_qblocks;
    int32_t chunk0;    /* first chunk any query sees */
    int n_chunks;      /* chunks spanned by all queries */
    bool split;        /* items are (kv head, chunk); partials merged afterwards */
    bool two_pass;     /* F16 V cache: softmax first, then F16-rounded probabilities times V */
    int pass;          /* split two-pass: 1 = per-chunk (max, sum), 2 = weighted values */
    int n_items;
    atomic_int next;
} attn_job;

size_t el_attention_scratch_floats(const el_hparams *hp) {
    const size_t hk = hp->head_dim_k, hv = hp->head_dim_v;
    return ATT_KT * hk + ATT_KT * hv + (size_t)ATT_QV * ATT_KT + 2 * ((size_t)ATT_QV * hv + 2 * ATT_QV) + 64;
}

size_t el_attention_partial_floats(const el_hparams *hp, uint32_t n_ctx, int *split_tokens) {
    const size_t per_token = (size_t)((n_ctx + ATT_CHUNK - 1) / ATT_CHUNK + 1) * hp->n_head * (hp->head_dim_v + 2);
    size_t t = ATT_SPLIT_TOKENS;
    while (t > 1 && per_token * t > ATT_PARTIAL_CAP_FLOATS) t /= 2;
    *split_tokens = (int)t;
    return per_token * t;
}

size_t el_attention_score_stride(uint32_t n_ctx) { return (size_t)n_ctx + ATT_KT; }

size_t el_attention_score_floats(uint32_t n_ctx, int n_threads) {
    return (size_t)n_threads * ATT_QV * el_attention_score_stride(n_ctx);
}

/* Dequantize kv head g's K (k true) or V of the n positions from p into n rows of dim
 * floats at dst. A head's slices of consecutive cells are adjacent (el_kv_layer), so
 * this is one conversion per run of cells: one, or two where the ring wraps. */
static void load_slices(const el_ctx *c, const el_kv_layer *kvl, bool k, uint32_t g, int32_t p, int n, int64_t dim,
                        float *dst) {
    uint32_t cell = (uint32_t)p % kvl->n_cells;
    while (n > 0) {
        const int run = (uint32_t)n < kvl->n_cells - cell ? n : (int)(kvl->n_cells - cell);
        const uint8_t *src = k ? el_kv_k(&c->kv, kvl, g, cell) : el_kv_v(&c->kv, kvl, g, cell);
        if (c->kv.type == EL_TYPE_F16) c->ops.f16_to_f32((const uint16_t *)src, dst, run * dim);
        else el_type_get_traits(EL_TYPE_Q8_0)->dequantize(src, dst, run * dim);
        dst += (size_t)run * dim;
        n -= run;
        cell = 0;
    }
}

/* Fold one chunk's partial (max m, sum s, weighted values acc) into a running result
 * (*M, *T, O; O NULL: only the softmax statistics). Both work paths merge with this,
 * chunk by chunk in order. */
static void merge_partial(const el_ops *ops, float *M, float *T, float *O, float m, float s, const float *acc,
                          int hv) {
    if (s == 0.0f) return; /* no visible key in this chunk */
    if (m > *M) {
        const float f = expf(*M - m); /* 0 when M was -inf */
        *T *= f;
        if (O) ops->scale_f32(O, f, hv);
        *M = m;
    }
    const float f = expf(m - *M);
    *T += s * f;
    if (O) ops->axpy_f32(O, f, acc, hv);
}

/* How attn_chunk treats a chunk's keys. */
typedef enum {
    CHUNK_ONLINE,   /* online softmax into mx / sum / acc */
    CHUNK_STATS,    /* only mx / sum (no values) */
    CHUNK_WEIGHTED, /* acc = sum_j f16(exp(s_j - M) * Sinv) v_j with the final M, Sinv given in mx / sum */
} chunk_mode;

/* Keys [kl, kh] of one chunk for the block's query vectors (see chunk_mode; mx / sum /
 * acc are reset here except mx / sum in CHUNK_WEIGHTED, which are read).
 * CHUNK_WEIGHTED is llama.cpp's attention without flash attention over an F16 cache:
 * it normalizes the probabilities, rounds them to F16 (the V cache's dot format) and
 * only then multiplies V. */
/* Pass 1 of the two-pass path keeps each query's scores here (row i of the block at
 * p + i * stride, key position k at column k - base), so pass 2 does not load K and
 * score again; p NULL: pass 2 recomputes them (same instructions, same bits). */
typedef struct score_store {
    float *p;
    int32_t base;
    size_t stride;
} score_store;

static void attn_chunk(const attn_job *J, chunk_mode mode, int g, int t0, int t1, int32_t kl, int32_t kh,
                       float *kt, float *vt, float *sc, float *acc, float *mx, float *sum, const score_store *ss) {
    const el_ctx *c = J->c;
    const el_hparams *hp = &c->m->hp;
    const int hk = (int)hp->head_dim_k, hv = (int)hp->head_dim_v;
    const int group = (int)(hp->n_head / hp->n_head_kv);
    const int nqv = (t1 - t0) * group;
    if (mode != CHUNK_WEIGHTED)
        for (int i = 0; i < nqv; i++) mx[i] = -INFINITY, sum[i] = 0.0f;
    if (mode != CHUNK_STATS) memset(acc, 0, (size_t)nqv * hv * sizeof *acc);

    for (int32_t kp = kl - kl % ATT_KT; kp <= kh; kp += ATT_KT) {
        const int jv = kl > kp ? kl - kp : 0;          /* first key any query here sees */
        const int nk = kh - kp + 1 < ATT_KT ? kh - kp + 1 : ATT_KT;
        /* Scores are computed for keys in aligned groups of four, so a key's score is
         * computed by the same instructions whatever range the tile covers. The few
         * extra rows (positions outside [kl, kh]) are real cells, and masked below. */
        const int js = jv & ~3, je = (nk + 3) & ~3;
        const bool rescore = !(mode == CHUNK_WEIGHTED && ss && ss->p);
        if (rescore) load_slices(c, J->kvl, true, (uint32_t)g, kp + js, je - js, hk, kt + (size_t)js * hk);
        if (mode != CHUNK_STATS) load_slices(c, J->kvl, false, (uint32_t)g, kp + jv, nk - jv, hv, vt + (size_t)jv * hv);
        /* One token's heads of this group are adjacent. */
        for (int tt = t0; tt < t1 && rescore; tt++) {
            const float *qrow = J->q + (size_t)tt * hp->n_head * hk + (size_t)g * group * hk;
            c->ops.scores(qrow, (size_t)hk, group, kt + (size_t)js * hk, je - js, hk,
                          sc + (size_t)(tt - t0) * group * ATT_KT + js, ATT_KT);
        }
        /* The keys each query row sees in this tile, [j0, j1). When every row sees the
         * whole tile (all but the diagonal ones of a causal prefill), the rows' exps go in
         * one call, so many are in flight at once; per row the operations and their order
         * are the same either way. */
        int rj0[ATT_QV], rj1[ATT_QV];
        bool whole = true;
        for (int i = 0; i < nqv; i++) {
            const int32_t pq = J->p0 + t0 + i / group;
            /* This query sees keys in [qlo, pq]. */
            const int32_t qlo = J->n_swa ? pq - (int32_t)J->n_swa + 1 : 0;
            rj0[i] = qlo > kp ? qlo - kp : 0;
            rj1[i] = pq - kp + 1 < nk ? pq - kp + 1 : nk;
            whole = whole && rj0[i] == 0 && rj1[i] == nk;
        }
        if (mode == CHUNK_WEIGHTED) {
            /* pass 2 owns the stored scores now: exp in place */
            float *s0 = ss && ss->p ? ss->p + (size_t)(kp - ss->base) : sc;
            const size_t st = ss && ss->p ? ss->stride : ATT_KT;
            if (whole) c->ops.exp_sum_rows(s0, st, nqv, nk, mx, NULL);
            for (int i = 0; i < nqv; i++) {
                const int j0 = rj0[i], j1 = rj1[i];
                if (j0 >= j1) continue;
                float *s = s0 + (size_t)i * st;
                uint16_t h[ATT_KT];
                if (!whole) c->ops.exp_sum_rows(s + j0, 0, 1, j1 - j0, &mx[i], NULL);
                c->ops.scale_f32(s + j0, sum[i], j1 - j0);
                c->ops.f32_to_f16(s + j0, h, j1 - j0);
                c->ops.f16_to_f32(h, s + j0, j1 - j0);
                c->ops.accumulate(acc + (size_t)i * hv, s + j0, vt + (size_t)j0 * hv, j1 - j0, hv);
            }
            continue;
        }
        for (int i = 0; i < nqv; i++) {
            const int j0 = rj0[i], j1 = rj1[i];
            if (j0 >= j1) continue;
            float *s = sc + (size_t)i * ATT_KT;
            float *stored = ss && ss->p ? ss->p + (size_t)i * ss->stride + (size_t)(kp - ss->base) : NULL;
            if (stored) memcpy(stored + j0, s + j0, (size_t)(j1 - j0) * sizeof *s); /* CHUNK_STATS */
            float m_new = mx[i];
            for (int j = j0; j < j1; j++)
                if (s[j] > m_new) m_new = s[j];
            float *a = acc + (size_t)i * hv;
            if (m_new > mx[i]) {
                const float f = expf(mx[i] - m_new); /* 0 when mx was -inf */
                sum[i] *= f;
                if (mode == CHUNK_ONLINE) c->ops.scale_f32(a, f, hv);
                mx[i] = m_new;
            }
            if (whole) continue; /* the exps of all rows below */
            float t;
            c->ops.exp_sum_rows(s + j0, 0, 1, j1 - j0, &mx[i], &t);
            sum[i] += t;
            if (mode == CHUNK_ONLINE) c->ops.accumulate(a, s + j0, vt + (size_t)j0 * hv, j1 - j0, hv);
        }
        if (whole) {
            float t[ATT_QV];
            c->ops.exp_sum_rows(sc, ATT_KT, nqv, nk, mx, t);
            for (int i = 0; i < nqv; i++) {
                sum[i] += t[i];
                if (mode == CHUNK_ONLINE) c->ops.accumulate(acc + (size_t)i * hv, sc + (size_t)i * ATT_KT, vt, nk, hv);
            }
        }
    }
}

static float *partial_at(const attn_job *J, int chunk, int t, int h) {
    const el_hparams *hp = &J->c->m->hp;
    return J->c->attn_partials + (((size_t)chunk * J->n + t) * hp->n_head + h) * (hp->head_dim_v + 2);
}

static void attn_item(attn_job *J, int item, float *scratch, float *scores) {
    el_ctx *c = J->c;
    const el_hparams *hp = &c->m->hp;
    const int hk = (int)hp->head_dim_k, hv = (int)hp->head_dim_v;
    const int group = (int)(hp->n_head / hp->n_head_kv);
    int g, qb, ci = 0;
    if (J->split) {
        ci = item % J->n_chunks;
        g = item / J->n_chunks;
        qb = 0;
    } else {
        qb = item % J->n_qblocks;
        g = item / J->n_qblocks;
    }
    const int t0 = qb * J->q_tokens;
    const int t1 = t0 + J->q_tokens < J->n ? t0 + J->q_tokens : J->n;
    const int nqv = (t1 - t0) * group;

    /* Keys visible to any query of the block: [lo, hi]. */
    const int32_t pos_first = J->p0 + t0, pos_last = J->p0 + t1 - 1;
    int32_t lo = J->n_swa ? pos_first - (int32_t)J->n_swa + 1 : 0;
    if (lo < 0) lo = 0;
    const int32_t hi = pos_last;

    float *kt = scratch;
    float *vt = kt + ATT_KT * hk;
    float *sc = vt + ATT_KT * hv;
    float *acc = sc + ATT_QV * ATT_KT;
    float *mx = acc + (size_t)ATT_QV * hv;
    float *sum = mx + ATT_QV;
    float *O = sum + ATT_QV;
    float *M = O + (size_t)ATT_QV * hv;
    float *T = M + ATT_QV;

    if (J->split) { /* one chunk; its partials go to attn_partials */
        const int32_t k0 = (J->chunk0 + ci) * ATT_CHUNK;
        const int32_t kl = k0 > lo ? k0 : lo, kh = k0 + ATT_CHUNK - 1 < hi ? k0 + ATT_CHUNK - 1 : hi;
        if (J->two_pass && J->pass == 2) { /* the merged (max, 1/sum) are in the partial's head */
            for (int i = 0; i < nqv; i++) {
                const float *pp = partial_at(J, ci, t0 + i / group, g * group + i % group);
                mx[i] = pp[0], sum[i] = pp[1];
            }
            if (kl <= kh) attn_chunk(J, CHUNK_WEIGHTED, g, t0, t1, kl, kh, kt, vt, sc, acc, mx, sum, NULL);
            else memset(acc, 0, (size_t)nqv * hv * sizeof *acc);
            for (int i = 0; i < nqv; i++)
                memcpy(partial_at(J, ci, t0 + i / group, g * group + i % group) + 2, acc + (size_t)i * hv,
                       (size_t)hv * sizeof *acc);
            return;
        }
        if (kl <= kh) {
            attn_chunk(J, J->two_pass ? CHUNK_STATS : CHUNK_ONLINE, g, t0, t1, kl, kh, kt, vt, sc, acc, mx, sum, NULL);
        } else {
            for (int i = 0; i < nqv; i++) mx[i] = -INFINITY, sum[i] = 0.0f;
        }
        for (int i = 0; i < nqv; i++) {
            float *pp = partial_at(J, ci, t0 + i / group, g * group + i % group);
            pp[0] = mx[i];
            pp[1] = sum[i];
            if (!J->two_pass && sum[i] != 0.0f) memcpy(pp + 2, acc + (size_t)i * hv, (size_t)hv * sizeof *acc);
        }
        return;
    }

    for (int i = 0; i < nqv; i++) M[i] = -INFINITY, T[i] = 0.0f;
    memset(O, 0, (size_t)nqv * hv * sizeof *O);
    if (J->two_pass) { /* the softmax statistics first, then the rounded probabilities times V */
        score_store st = {NULL, lo - lo % ATT_KT, c->attn_score_stride};
        if (scores && (size_t)(hi - st.base + 1) <= st.stride) st.p = scores;
        for (int32_t k0 = lo - lo % ATT_CHUNK; k0 <= hi; k0 += ATT_CHUNK) {
            const int32_t kl = k0 > lo ? k0 : lo, kh = k0 + ATT_CHUNK - 1 < hi ? k0 + ATT_CHUNK - 1 : hi;
            attn_chunk(J, CHUNK_STATS, g, t0, t1, kl, kh, kt, vt, sc, acc, mx, sum, &st);
            for (int i = 0; i < nqv; i++) merge_partial(&c->ops, &M[i], &T[i], NULL, mx[i], sum[i], NULL, hv);
        }
        for (int i = 0; i < nqv; i++) T[i] = T[i] > 0.0f ? 1.0f / T[i] : 0.0f;
        for (int32_t k0 = lo - lo % ATT_CHUNK; k0 <= hi; k0 += ATT_CHUNK) {
            const int32_t kl = k0 > lo ? k0 : lo, kh = k0 + ATT_CHUNK - 1 < hi ? k0 + ATT_CHUNK - 1 : hi;
            attn_chunk(J, CHUNK_WEIGHTED, g, t0, t1, kl, kh, kt, vt, sc, acc, M, T, &st);
            for (size_t e = 0; e < (size_t)nqv * hv; e++) O[e] += acc[e];
        }
        for (int i = 0; i < nqv; i++) {
            const int t = t0 + i / group, h = g * group + i % group;
            memcpy(J->out + (size_t)t * hp->n_head * hv + (size_t)h * hv, O + (size_t)i * hv, (size_t)hv * sizeof *O);
        }
        return;
    }
    for (int32_t k0 = lo - lo % ATT_CHUNK; k0 <= hi; k0 += ATT_CHUNK) {
        const int32_t kl = k0 > lo ? k0 : lo, kh = k0 + ATT_CHUNK - 1 < hi ? k0 + ATT_CHUNK - 1 : hi;
        attn_chunk(J, CHUNK_ONLINE, g, t0, t1, kl, kh, kt, vt, sc, acc, mx, sum, NULL);
        for (int i = 0; i < nqv; i++)
            merge_partial(&c->ops, &M[i], &T[i], O + (size_t)i * hv, mx[i], sum[i], acc + (size_t)i * hv, hv);
    }
    for (int i = 0; i < nqv; i++) {
        const int t = t0 + i / group, h = g * group + i % group;
        const float *a = O + (size_t)i * hv;
        float *o = J->out + (size_t)t * hp->n_head * hv + (size_t)h * hv;
        const float inv = T[i] > 0.0f ? 1.0f / T[i] : 0.0f;
        for (int d = 0; d < hv; d++) o[d] = a[d] * inv;
    }
}

static void attn_worker(void *ctx, int ith, int nth) {
    (void)nth;
    attn_job *J = ctx;
    float *scratch = J->c->attn_scratch + (size_t)ith * J->c->attn_scratch_per_thread;
    float *scores = J->c->attn_scores ? J->c->attn_scores + (size_t)ith * ATT_QV * J->c->attn_score_stride : NULL;
    for (;;) {
        const int k = atomic_fetch_add_explicit(&J->next, 1, memory_order_relaxed);
        if (k >= J->n_items) break;
        /* Later query blocks see more keys: start with them. */
        attn_item(J, J->n_items - 1 - k, scratch, scores);
    }
}

/* Two-pass split, between the passes: merge every (token, head)'s per-chunk (max, sum)
 * in chunk order and leave (max, 1/sum) in each chunk's partial for pass 2. */
static void merge_chunk_stats(el_ctx *c, const attn_job *J) {
    const el_hparams *hp = &c->m->hp;
    for (int t = 0; t < J->n; t++) {
        for (uint32_t h = 0; h < hp->n_head; h++) {
            float M = -INFINITY, T = 0.0f;
            for (int ci = 0; ci < J->n_chunks; ci++) {
                const float *pp = partial_at(J, ci, t, (int)h);
                merge_partial(&c->ops, &M, &T, NULL, pp[0], pp[1], NULL, 0);
            }
            const float inv = T > 0.0f ? 1.0f / T : 0.0f;
            for (int ci = 0; ci < J->n_chunks; ci++) {
                float *pp = partial_at(J, ci, t, (int)h);
                pp[0] = M, pp[1] = inv;
            }
        }
    }
}

/* Two-pass split, after pass 2: out = the chunks' weighted values summed in chunk order. */
static void sum_chunks(el_ctx *c, const attn_job *J) {
    const el_hparams *hp = &c->m->hp;
    const int hv = (int)hp->head_dim_v;
    for (int t = 0; t < J->n; t++) {
        for (uint32_t h = 0; h < hp->n_head; h++) {
            float *o = J->out + ((size_t)t * hp->n_head + h) * hv;
            memset(o, 0, (size_t)hv * sizeof *o);
            for (int ci = 0; ci < J->n_chunks; ci++) {
                const float *pp = partial_at(J, ci, t, (int)h) + 2;
                for (int d = 0; d < hv; d++) o[d] += pp[d];
            }
        }
    }
}

/* Merge the chunks' partials of every (token, head), in chunk order, into out. */
static void combine_chunks(el_ctx *c, const attn_job *J) {
    const el_hparams *hp = &c->m->hp;
    const int hv = (int)hp->head_dim_v;
    for (int t = 0; t < J->n; t++) {
        for (uint32_t h = 0; h < hp->n_head; h++) {
            float *o = J->out + ((size_t)t * hp->n_head + h) * hv;
            float M = -INFINITY, T = 0.0f;
            memset(o, 0, (size_t)hv * sizeof *o);
            for (int ci = 0; ci < J->n_chunks; ci++) {
                const float *pp = partial_at(J, ci, t, (int)h);
                merge_partial(&c->ops, &M, &T, o, pp[0], pp[1], pp + 2, hv);
            }
            const float inv = T > 0.0f ? 1.0f / T : 0.0f;
            for (int d = 0; d < hv; d++) o[d] = o[d] * inv;
        }
    }
}

void el_attention(el_ctx *c, int il, const float *q, int32_t p0, int32_t n, uint32_t n_swa, float *out) {
    const el_hparams *hp = &c->m->hp;
    const int group = (int)(hp->n_head / hp->n_head_kv);
    attn_job J = {
        .c = c, .kvl = &c->kv.layers[il], .q = q, .out = out, .p0 = p0, .n = n, .n_swa = n_swa,
    };
    J.q_tokens = ATT_QV / group > 0 ? ATT_QV / group : 1;
    J.n_qblocks = (n + J.q_tokens - 1) / J.q_tokens;
    int32_t lo = n_swa ? p0 - (int32_t)n_swa + 1 : 0;
    if (lo < 0) lo = 0;
    J.chunk0 = lo / ATT_CHUNK;
    J.n_chunks = (p0 + n - 1) / ATT_CHUNK - J.chunk0 + 1;
    /* Decoding (one block): give every thread work by splitting the keys into chunks. */
    J.split = J.n_qblocks == 1 && (int)hp->n_head_kv < c->n_threads && J.n_chunks > 1 &&
              n <= c->attn_split_tokens && (uint32_t)J.n_chunks <= c->attn_split_chunks;
    J.n_items = (int)hp->n_head_kv * (J.split ? J.n_chunks : J.n_qblocks);
    /* llama.cpp without flash attention rounds the probabilities to the F16 cache's
     * format before multiplying V; with a Q8_0 cache it needs flash attention, whose
     * online softmax keeps them in F32 as the one-pass path does. */
    J.two_pass = c->kv.type == EL_TYPE_F16;
    J.pass = 1;
    atomic_init(&J.next, 0);
    el_pool_run(c->pool, attn_worker, &J);
    if (J.split && J.two_pass) {
        merge_chunk_stats(c, &J);
        J.pass = 2;
        atomic_store(&J.next, 0);
        el_pool_run(c->pool, attn_worker, &J);
        sum_chunks(c, &J);
    } else if (J.split) {
        combine_chunks(c, &J);
    }
}
