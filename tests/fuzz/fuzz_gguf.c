/* libFuzzer target: any bytes through el_gguf_open_memory; on success, walk every key,
 * array element and tensor byte range as a user of the file would, so an accepted file
 * whose ranges were not really checked shows up as an ASan report. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"

static uint64_t walk_kv(const el_gguf *g, const el_gguf_kv *kv) {
    uint64_t sum = kv->key.len + (uint8_t)kv->key.data[0] + (uint8_t)kv->key.data[kv->key.len - 1];
    char key[128];
    if (kv->key.len < sizeof key) {
        memcpy(key, kv->key.data, (size_t)kv->key.len);
        key[kv->key.len] = '\0';
        if (el_gguf_find_kv(g, key) != kv) __builtin_trap(); /* keys are unique and findable */
        el_err err;
        uint64_t u;
        float f;
        el_gguf_str s;
        if (el_gguf_get_u64(g, key, &u, &err) == 0) sum += u;
        if (el_gguf_get_f32(g, key, &f, &err) == 0) sum += (uint64_t)(f != f);
        if (el_gguf_get_str(g, key, &s, &err) == 0 && s.len) sum += (uint8_t)s.data[s.len - 1];
    }
    if (kv->type == EL_GGUF_STRING && kv->v.str.len) sum += (uint8_t)kv->v.str.data[kv->v.str.len - 1];
    if (kv->type != EL_GGUF_ARRAY) return sum;
    if (kv->v.arr.type == EL_GGUF_STRING) {
        for (uint64_t i = 0; i < kv->v.arr.n; i++) {
            const el_gguf_str *s = &kv->v.arr.strs[i];
            if (s->len) sum += (uint8_t)s->data[0] + (uint8_t)s->data[s->len - 1];
        }
    } else if (kv->v.arr.n) {
        static const uint8_t SIZE[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
        size_t bytes = (size_t)kv->v.arr.n * SIZE[kv->v.arr.type];
        sum += ((const uint8_t *)kv->v.arr.data)[0] + ((const uint8_t *)kv->v.arr.data)[bytes - 1];
    }
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    el_err err;
    el_gguf *g = el_gguf_open_memory(data, size, &err);
    if (!g) {
        if (err.message[0] == '\0') __builtin_trap(); /* every refusal says why */
        return 0;
    }
    volatile uint64_t sum = 0;
    for (uint64_t i = 0; i < g->n_kv; i++) sum += walk_kv(g, &g->kv[i]);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const el_gguf_tensor *t = &g->tensors[i];
        if (el_gguf_find_tensor(g, t->name) != t) __builtin_trap();
        const uint8_t *p = t->data;
        if (p < g->base || t->nbytes > g->size || p + t->nbytes > g->base + g->size) __builtin_trap();
        if (t->nbytes) sum += p[0] + p[t->nbytes - 1];
    }
    (void)sum;
    el_gguf_close(g);
    return 0;
}
