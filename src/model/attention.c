/* Causal attention over the KV cache, flash-attention style: for a block of query
 * vectors (a few tokens times the query heads that share one KV head), walk the
 * visible keys in tiles, dequantize each tile once, and keep a running max, sum
 * and weighted sum of values (online softmax). Memory stays bounded whatever the
 * context length, and every K/V row is converted once per query block.
 *
 * Work items are (kv head, query block, key split) and are handed out through an
 * atomic counter, longest first. Key splits are only used when there is too little
 * other parallel work (decoding one token): each split writes a partial result
 * (max, sum, accumulator) that the caller's thread combines afterwards. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "model/model.h"

enum { ATT_QV = 64, ATT_KT = 32 }; /* query vectors per block, keys per tile */

typedef struct attn_job {
    el_ctx *c;
    const el_kv_layer *kvl;
    const float *q;
    float *out;
    int32_t p0, n;
    uint32_t n_swa;
    int q_tokens;      /* tokens per query block */
    int n_qblocks, n_splits, n_items;
    atomic_int next;
} attn_job;

size_t el_attention_scratch_floats(const el_hparams *hp) {
    const size_t hk = hp->head_dim_k, hv = hp->head_dim_v;
    return ATT_KT * hk + ATT_KT * hv + (size_t)ATT_QV * ATT_KT + (size_t)ATT_QV * hv + 2 * ATT_QV + 64;
}

size_t el_attention_partial_floats(const el_hparams *hp, int n_threads) {
    return (size_t)n_threads * hp->n_head * (hp->head_dim_v + 2);
}

/* Dequantize one kv head's slice of a cached row. */
static void load_row(const el_ctx *c, const uint8_t *row, int g, int64_t dim, float *dst) {
    if (c->kv.type == EL_TYPE_F16) {
        c->ops.f16_to_f32((const uint16_t *)row + (size_t)g * dim, dst, dim);
    } else { /* Q8_0: dim is a multiple of 32, so each head starts on a block */
        const uint8_t *src = row + (size_t)g * (size_t)(dim / 32) * 34;
        el_type_get_traits(EL_TYPE_Q8_0)->dequantize(src, dst, dim);
    }
}

static void attn_item(attn_job *J, int item, float *scratch) {
    el_ctx *c = J->c;
    const el_hparams *hp = &c->m->hp;
    const int hk = (int)hp->head_dim_k, hv = (int)hp->head_dim_v;
    const int group = (int)(hp->n_head / hp->n_head_kv);
    const int split = item % J->n_splits;
    const int qb = (item / J->n_splits) % J->n_qblocks;
    const int g = item / J->n_splits / J->n_qblocks;

    const int t0 = qb * J->q_tokens;
    const int t1 = t0 + J->q_tokens < J->n ? t0 + J->q_tokens : J->n;
    const int nqv = (t1 - t0) * group;

    /* Keys visible to any query of the block: [lo, hi]. */
    const int32_t pos_first = J->p0 + t0, pos_last = J->p0 + t1 - 1;
    int32_t lo = J->n_swa ? pos_first - (int32_t)J->n_swa + 1 : 0;
    if (lo < 0) lo = 0;
    int32_t hi = pos_last;
    if (J->n_splits > 1) {
        const int32_t span = hi - lo + 1, per = (span + J->n_splits - 1) / J->n_splits;
        const int32_t s_lo = lo + split * per;
        int32_t s_hi = s_lo + per - 1;
        if (s_hi > hi) s_hi = hi;
        lo = s_lo;
        hi = s_hi;
    }

    float *kt = scratch;
    float *vt = kt + ATT_KT * hk;
    float *sc = vt + ATT_KT * hv;
    float *acc = sc + ATT_QV * ATT_KT;
    float *mx = acc + (size_t)ATT_QV * hv;
    float *sum = mx + ATT_QV;
    for (int i = 0; i < nqv; i++) mx[i] = -INFINITY, sum[i] = 0.0f;
    memset(acc, 0, (size_t)nqv * hv * sizeof *acc);

    const uint32_t n_cells = J->kvl->n_cells;
    for (int32_t kp = lo; kp <= hi; kp += ATT_KT) {
        const int nk = hi - kp + 1 < ATT_KT ? hi - kp + 1 : ATT_KT;
        for (int j = 0; j < nk; j++) {
            const size_t cell = (uint32_t)(kp + j) % n_cells;
            load_row(c, J->kvl->k + cell * c->kv.row_k, g, hk, kt + (size_t)j * hk);
            load_row(c, J->kvl->v + cell * c->kv.row_v, g, hv, vt + (size_t)j * hv);
        }
        /* Scores of the block's query vectors against the whole tile (masked ones, near
         * the diagonal, are ignored below). One token's heads of this group are adjacent. */
        for (int tt = t0; tt < t1; tt++) {
            const float *qrow = J->q + (size_t)tt * hp->n_head * hk + (size_t)g * group * hk;
            c->ops.scores(qrow, (size_t)hk, group, kt, nk, hk, sc + (size_t)(tt - t0) * group * ATT_KT, ATT_KT);
        }
        for (int i = 0; i < nqv; i++) {
            const int t = t0 + i / group;
            const int32_t pq = J->p0 + t;
            /* This query sees keys in [qlo, pq]. */
            int32_t qlo = J->n_swa ? pq - (int32_t)J->n_swa + 1 : 0;
            int j0 = qlo > kp ? qlo - kp : 0;
            int j1 = pq - kp + 1 < nk ? pq - kp + 1 : nk;
            if (j0 >= j1) continue;
            float *s = sc + (size_t)i * ATT_KT;
            float m_new = mx[i];
            for (int j = j0; j < j1; j++)
                if (s[j] > m_new) m_new = s[j];
            float *a = acc + (size_t)i * hv;
            if (m_new > mx[i]) {
                const float f = expf(mx[i] - m_new); /* 0 when mx was -inf */
                sum[i] *= f;
                c->ops.scale_f32(a, f, hv);
                mx[i] = m_new;
            }
            sum[i] += c->ops.exp_sum(s + j0, j1 - j0, m_new);
            c->ops.accumulate(a, s + j0, vt + (size_t)j0 * hv, j1 - j0, hv);
        }
    }

    for (int i = 0; i < nqv; i++) {
        const int t = t0 + i / group, h = g * group + i % group;
        const float *a = acc + (size_t)i * hv;
        if (J->n_splits == 1) {
            float *o = J->out + (size_t)t * hp->n_head * hv + (size_t)h * hv;
            const float inv = sum[i] > 0.0f ? 1.0f / sum[i] : 0.0f;
            for (int d = 0; d < hv; d++) o[d] = a[d] * inv;
        } else { /* one token: partial for (split, head) */
            float *pp = c->attn_partials + ((size_t)split * hp->n_head + h) * (hv + 2);
            pp[0] = mx[i];
            pp[1] = sum[i];
            memcpy(pp + 2, a, (size_t)hv * sizeof *a);
        }
    }
}

static void attn_worker(void *ctx, int ith, int nth) {
    (void)nth;
    attn_job *J = ctx;
    float *scratch = J->c->attn_scratch + (size_t)ith * J->c->attn_scratch_per_thread;
    for (;;) {
        const int k = atomic_fetch_add_explicit(&J->next, 1, memory_order_relaxed);
        if (k >= J->n_items) break;
        /* Later query blocks see more keys: start with them. */
        attn_item(J, J->n_items - 1 - k, scratch);
    }
}

static void combine_splits(el_ctx *c, const attn_job *J) {
    const el_hparams *hp = &c->m->hp;
    const int hv = (int)hp->head_dim_v;
    for (uint32_t h = 0; h < hp->n_head; h++) {
        float m = -INFINITY;
        for (int s = 0; s < J->n_splits; s++) {
            const float *pp = c->attn_partials + ((size_t)s * hp->n_head + h) * (hv + 2);
            if (pp[0] > m) m = pp[0];
        }
        float *o = J->out + (size_t)h * hv;
        memset(o, 0, (size_t)hv * sizeof *o);
        float total = 0.0f;
        for (int s = 0; s < J->n_splits; s++) {
            const float *pp = c->attn_partials + ((size_t)s * hp->n_head + h) * (hv + 2);
            if (pp[1] == 0.0f) continue;
            const float f = expf(pp[0] - m);
            total += pp[1] * f;
            c->ops.axpy_f32(o, f, pp + 2, hv);
        }
        if (total > 0.0f) c->ops.scale_f32(o, 1.0f / total, hv);
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
    J.n_splits = 1;
    const int nth = c->n_threads;
    if (n == 1 && (int)hp->n_head_kv < nth) {
        /* Decoding: split the keys so every thread has work, if there are enough. */
        int32_t lo = n_swa ? p0 - (int32_t)n_swa + 1 : 0;
        if (lo < 0) lo = 0;
        const int32_t n_keys = p0 - lo + 1;
        int s = (nth + (int)hp->n_head_kv - 1) / (int)hp->n_head_kv;
        const int by_keys = (n_keys + 127) / 128;
        J.n_splits = s < by_keys ? s : by_keys;
        if (J.n_splits < 1) J.n_splits = 1;
    }
    J.n_items = (int)hp->n_head_kv * J.n_qblocks * J.n_splits;
    atomic_init(&J.next, 0);
    el_pool_run(c->pool, attn_worker, &J);
    if (J.n_splits > 1) combine_splits(c, &J);
}
