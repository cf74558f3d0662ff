/* KV cache: per layer, K and V of each cached position, in F16 or Q8_0 (blocks along
 * the head dimension), stored head-major (model.h: el_kv_layer). Sliding-window layers
 * use a ring of n_swa + n_ubatch - 1 cells instead of n_ctx. */
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "model/model.h"

static uint32_t layer_cells(const el_hparams *hp, const el_layer *l, uint32_t n_ctx, uint32_t n_ubatch) {
    if (!l->swa || hp->n_swa == 0) return n_ctx;
    uint64_t ring = (uint64_t)hp->n_swa + n_ubatch - 1;
    return ring < n_ctx ? (uint32_t)ring : n_ctx;
}

int el_kv_init(el_kv_cache *kv, const el_model *m, el_type type, uint32_t n_ctx, uint32_t n_ubatch,
               el_err *err) {
    memset(kv, 0, sizeof *kv);
    const el_hparams *hp = &m->hp;
    if (type != EL_TYPE_F16 && type != EL_TYPE_Q8_0)
        return el_fail(err, EDGELLM_EUNSUPPORTED, "KV cache: type %s is not supported (use f16 or q8_0)",
                       el_type_name(type));
    if (type == EL_TYPE_Q8_0 && (hp->head_dim_k % 32 || hp->head_dim_v % 32))
        return el_fail(err, EDGELLM_EUNSUPPORTED,
                       "KV cache: q8_0 needs head dimensions that are multiples of 32 (have %u, %u)",
                       hp->head_dim_k, hp->head_dim_v);
    kv->type = type;
    kv->n_ctx = n_ctx;
    kv->n_layer = hp->n_layer;
    kv->n_head_kv = hp->n_head_kv;
    kv->head_k = hp->head_dim_k;
    kv->head_v = hp->head_dim_v;
    kv->slice_k = el_type_row_size(type, kv->head_k);
    kv->slice_v = el_type_row_size(type, kv->head_v);
    const size_t row_k = kv->slice_k * kv->n_head_kv, row_v = kv->slice_v * kv->n_head_kv; /* one position's */
    kv->layers = calloc(hp->n_layer, sizeof *kv->layers);
    if (!kv->layers) return el_fail(err, EDGELLM_ENOMEM, "KV cache: out of memory");
    size_t total = 0;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        uint32_t cells = layer_cells(hp, &m->layers[il], n_ctx, n_ubatch);
        kv->layers[il].n_cells = cells;
        size_t bytes = (size_t)cells * (row_k + row_v);
        if (bytes / (row_k + row_v) != cells || total + bytes < total) {
            el_kv_free(kv);
            return el_fail(err, EDGELLM_ERANGE, "KV cache: size overflows for context %u", n_ctx);
        }
        total += (bytes + 63) & ~(size_t)63;
    }
    kv->mem = el_aligned_alloc(64, total);
    if (!kv->mem) {
        el_kv_free(kv);
        return el_fail(err, EDGELLM_ENOMEM, "KV cache: cannot allocate %zu bytes for context %u", total, n_ctx);
    }
    /* Zeroed so a never-written cell is harmless (it is never read, but be safe). */
    memset(kv->mem, 0, total);
    kv->bytes = total;
    uint8_t *p = kv->mem;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        kv->layers[il].k = p;
        kv->layers[il].v = p + (size_t)kv->layers[il].n_cells * row_k;
        size_t bytes = (size_t)kv->layers[il].n_cells * (row_k + row_v);
        p += (bytes + 63) & ~(size_t)63;
    }
    return 0;
}

void el_kv_free(el_kv_cache *kv) {
    if (!kv) return;
    el_aligned_free(kv->mem);
    free(kv->layers);
    memset(kv, 0, sizeof *kv);
}

static void store_row(const el_ops *ops, el_type type, const float *src, uint8_t *dst, int64_t n) {
    if (type == EL_TYPE_F16) {
        ops->f32_to_f16(src, (uint16_t *)dst, n);
    } else {
        el_type_get_traits(type)->quantize(src, dst, n);
    }
}

void el_kv_store(el_kv_cache *kv, const el_ops *ops, int il, int32_t p0, int32_t n, const float *k,
                 size_t k_stride, const float *v, size_t v_stride) {
    el_kv_layer *l = &kv->layers[il];
    for (int32_t t = 0; t < n; t++) {
        const uint32_t cell = (uint32_t)(p0 + t) % l->n_cells;
        for (uint32_t h = 0; h < kv->n_head_kv; h++) {
            store_row(ops, kv->type, k + (size_t)t * k_stride + h * kv->head_k, el_kv_k(kv, l, h, cell), kv->head_k);
            store_row(ops, kv->type, v + (size_t)t * v_stride + h * kv->head_v, el_kv_v(kv, l, h, cell), kv->head_v);
        }
    }
}

int32_t el_kv_oldest(const el_kv_cache *kv, int il, int32_t n_past) {
    int32_t oldest = n_past - (int32_t)kv->layers[il].n_cells;
    return oldest < 0 ? 0 : oldest;
}
