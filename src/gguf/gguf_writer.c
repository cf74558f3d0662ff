/* GGUF writer: collect metadata and tensors in memory, then emit a v3 file in one go.
 * Everything is checked when added, so writing can only fail on I/O. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "quant/quant.h"

#define GGUF_MAX_NAME 64 /* ggml's GGML_MAX_NAME, NUL included */

typedef struct wtensor {
    char *name;
    uint32_t type, n_dims;
    uint64_t ne[EL_GGUF_MAX_DIMS];
    uint64_t nbytes, offset;
    void *data; /* NULL when nbytes == 0 or when zero-filled */
} wtensor;

typedef struct bytes {
    uint8_t *p;
    size_t len, cap;
} bytes;

struct el_gguf_writer {
    uint64_t alignment;
    bytes kvs; /* serialized key/value pairs */
    uint64_t n_kv;
    char **keys; /* for duplicate checks */
    size_t keys_cap;
    wtensor *tensors;
    uint64_t n_tensors;
    size_t tensors_cap;
    uint64_t data_size; /* data section size so far, padded */
};

static int bytes_put(bytes *b, const void *src, size_t n, el_err *err) {
    if (n > SIZE_MAX - b->len) return el_fail(err, EDGELLM_ENOMEM, "metadata too large");
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) return el_fail(err, EDGELLM_ENOMEM, "out of memory");
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

static void store_le(uint8_t *dst, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = (uint8_t)(v >> (8 * i));
}

static int bytes_le(bytes *b, uint64_t v, size_t n, el_err *err) {
    uint8_t tmp[8];
    store_le(tmp, v, n);
    return bytes_put(b, tmp, n, err);
}

static int bytes_str(bytes *b, const char *s, uint64_t len, el_err *err) {
    if (bytes_le(b, len, 8, err)) return -1;
    return bytes_put(b, s, (size_t)len, err);
}

static size_t fixed_size(uint32_t type) {
    switch (type) {
    case EL_GGUF_UINT8: case EL_GGUF_INT8: case EL_GGUF_BOOL: return 1;
    case EL_GGUF_UINT16: case EL_GGUF_INT16: return 2;
    case EL_GGUF_UINT32: case EL_GGUF_INT32: case EL_GGUF_FLOAT32: return 4;
    case EL_GGUF_UINT64: case EL_GGUF_INT64: case EL_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

el_gguf_writer *el_gguf_writer_new(uint64_t alignment, el_err *err) {
    if (alignment == 0 || (alignment & (alignment - 1)) || alignment > UINT32_MAX) {
        el_fail(err, EDGELLM_EINVAL, "alignment %llu is not a power of two below 2^32",
                (unsigned long long)alignment);
        return NULL;
    }
    el_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) {
        el_fail(err, EDGELLM_ENOMEM, "out of memory");
        return NULL;
    }
    w->alignment = alignment;
    if (alignment != EL_GGUF_DEFAULT_ALIGNMENT &&
        el_gguf_writer_add_u32(w, "general.alignment", (uint32_t)alignment, err)) {
        el_gguf_writer_free(w);
        return NULL;
    }
    return w;
}

void el_gguf_writer_free(el_gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].data);
    }
    free(w->keys);
    free(w->tensors);
    free(w->kvs.p);
    free(w);
}

/* Appends key and type, after checking the key is new. */
static int begin_kv(el_gguf_writer *w, const char *key, uint32_t type, el_err *err) {
    if (!w || !key || !*key) return el_fail(err, EDGELLM_EINVAL, "empty key");
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key)) return el_fail(err, EDGELLM_EINVAL, "duplicate key '%s'", key);
    if (w->n_kv == w->keys_cap) {
        size_t cap = w->keys_cap ? w->keys_cap * 2 : 32;
        char **k = realloc(w->keys, cap * sizeof *k);
        if (!k) return el_fail(err, EDGELLM_ENOMEM, "out of memory");
        w->keys = k;
        w->keys_cap = cap;
    }
    char *copy = strdup(key);
    if (!copy) return el_fail(err, EDGELLM_ENOMEM, "out of memory");
    size_t mark = w->kvs.len;
    if (bytes_str(&w->kvs, key, strlen(key), err) || bytes_le(&w->kvs, type, 4, err)) {
        w->kvs.len = mark;
        free(copy);
        return -1;
    }
    w->keys[w->n_kv++] = copy;
    return 0;
}

/* Undo begin_kv when the value could not be appended. */
static int abort_kv(el_gguf_writer *w, size_t mark) {
    w->kvs.len = mark;
    free(w->keys[--w->n_kv]);
    return -1;
}

static int add_scalar(el_gguf_writer *w, const char *key, uint32_t type, uint64_t raw, el_err *err) {
    size_t mark = w ? w->kvs.len : 0;
    if (begin_kv(w, key, type, err)) return -1;
    if (bytes_le(&w->kvs, raw, fixed_size(type), err)) return abort_kv(w, mark);
    return 0;
}

int el_gguf_writer_add_u8(el_gguf_writer *w, const char *key, uint8_t v, el_err *err) {
    return add_scalar(w, key, EL_GGUF_UINT8, v, err);
}
int el_gguf_writer_add_i8(el_gguf_writer *w, const char *key, int8_t v, el_err *err) {
    return add_scalar(w, key, EL_GGUF_INT8, (uint8_t)v, err);
}
int el_gguf_writer_add_u16(el_gguf_writer *w, const char *key, uint16_t v, el_err *err) {
    return add_scalar(w, key, EL_GGUF_UINT16, v, err);
}
int el_gguf_writer_add_i16(el_gguf_writer *w, const char *key, int16_t v, el_err *err) {
    return add_scalar(w, key, EL_GGUF_INT16, (uint16_t)v, err);
}
int el_gguf_writer_add_u32(el_gguf_writer *w, const char *key, uint32_t v, el_err *err) {
    return add_scalar(w, key, EL_GGUF_UINT32, v, err);
}
int el_gguf_writer_add_i32(el_gguf_writer *w, const char *key, int32_t v, el_err *err) {
    return add_scalar(w, key, EL_GGUF_INT32, (uint32_t)v, err);
}
int el_gguf_writer_add_u64(el_gguf_writer *w, const char *key, uint64_t v, el_err *err) {
    return add_scalar(w, key, EL_GGUF_UINT64, v, err);
}
int el_gguf_writer_add_i64(el_gguf_writer *w, const char *key, int64_t v, el_err *err) {
    return add_scalar(w, key, EL_GGUF_INT64, (uint64_t)v, err);
}
int el_gguf_writer_add_f32(el_gguf_writer *w, const char *key, float v, el_err *err) {
    uint32_t u;
    memcpy(&u, &v, 4);
    return add_scalar(w, key, EL_GGUF_FLOAT32, u, err);
}
int el_gguf_writer_add_f64(el_gguf_writer *w, const char *key, double v, el_err *err) {
    uint64_t u;
    memcpy(&u, &v, 8);
    return add_scalar(w, key, EL_GGUF_FLOAT64, u, err);
}
int el_gguf_writer_add_bool(el_gguf_writer *w, const char *key, bool v, el_err *err) {
    return add_scalar(w, key, EL_GGUF_BOOL, v ? 1 : 0, err);
}

int el_gguf_writer_add_strn(el_gguf_writer *w, const char *key, const char *v, uint64_t len,
                            el_err *err) {
    if (!v && len) return el_fail(err, EDGELLM_EINVAL, "key '%s': NULL string", key ? key : "");
    size_t mark = w ? w->kvs.len : 0;
    if (begin_kv(w, key, EL_GGUF_STRING, err)) return -1;
    if (bytes_str(&w->kvs, v, len, err)) return abort_kv(w, mark);
    return 0;
}

int el_gguf_writer_add_str(el_gguf_writer *w, const char *key, const char *v, el_err *err) {
    if (!v) return el_fail(err, EDGELLM_EINVAL, "key '%s': NULL string", key ? key : "");
    return el_gguf_writer_add_strn(w, key, v, strlen(v), err);
}

int el_gguf_writer_add_arr(el_gguf_writer *w, const char *key, uint32_t elem_type,
                           const void *data, uint64_t n, el_err *err) {
    size_t esz = fixed_size(elem_type);
    if (esz == 0)
        return el_fail(err, EDGELLM_EINVAL, "key '%s': array element type %s is not fixed-size",
                       key ? key : "", el_gguf_value_type_name(elem_type));
    if (n > SIZE_MAX / esz || (n && !data))
        return el_fail(err, EDGELLM_EINVAL, "key '%s': bad array of %llu elements", key ? key : "",
                       (unsigned long long)n);
    const uint8_t *b = data;
    if (elem_type == EL_GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (b[i] > 1)
                return el_fail(err, EDGELLM_EINVAL, "key '%s': bool element %llu is %u, not 0 or 1",
                               key ? key : "", (unsigned long long)i, b[i]);
    size_t mark = w ? w->kvs.len : 0;
    if (begin_kv(w, key, EL_GGUF_ARRAY, err)) return -1;
    if (bytes_le(&w->kvs, elem_type, 4, err) || bytes_le(&w->kvs, n, 8, err))
        return abort_kv(w, mark);
    /* Elements are stored little-endian; convert one by one so big-endian hosts work too. */
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = 0;
        const uint8_t *e = b + i * esz;
        if (esz == 1) v = e[0];
        else if (esz == 2) { uint16_t x; memcpy(&x, e, 2); v = x; }
        else if (esz == 4) { uint32_t x; memcpy(&x, e, 4); v = x; }
        else memcpy(&v, e, 8);
        if (bytes_le(&w->kvs, v, esz, err)) return abort_kv(w, mark);
    }
    return 0;
}

/* Strings given as (pointer, length) pairs; shared by the C-string and copy paths. */
static int add_strs(el_gguf_writer *w, const char *key, const char *const *cs, const el_gguf_str *gs,
                    uint64_t n, el_err *err) {
    size_t mark = w ? w->kvs.len : 0;
    if (begin_kv(w, key, EL_GGUF_ARRAY, err)) return -1;
    if (bytes_le(&w->kvs, EL_GGUF_STRING, 4, err) || bytes_le(&w->kvs, n, 8, err))
        return abort_kv(w, mark);
    for (uint64_t i = 0; i < n; i++) {
        const char *s = cs ? cs[i] : gs[i].data;
        uint64_t len = cs ? (s ? strlen(s) : 0) : gs[i].len;
        if (!s && len == 0) s = "";
        if (cs && !cs[i]) {
            el_fail(err, EDGELLM_EINVAL, "key '%s': string element %llu is NULL", key,
                    (unsigned long long)i);
            return abort_kv(w, mark);
        }
        if (bytes_str(&w->kvs, s, len, err)) return abort_kv(w, mark);
    }
    return 0;
}

int el_gguf_writer_add_str_arr(el_gguf_writer *w, const char *key, const char *const *v,
                               uint64_t n, el_err *err) {
    if (n && !v) return el_fail(err, EDGELLM_EINVAL, "key '%s': NULL array", key ? key : "");
    return add_strs(w, key, v, NULL, n, err);
}

int el_gguf_writer_add_kv(el_gguf_writer *w, const el_gguf_kv *kv, el_err *err) {
    if (!kv) return el_fail(err, EDGELLM_EINVAL, "NULL key/value");
    char key[512];
    if (kv->key.len >= sizeof key || memchr(kv->key.data, 0, (size_t)kv->key.len))
        return el_fail(err, EDGELLM_EINVAL, "key of %llu bytes cannot be copied",
                       (unsigned long long)kv->key.len);
    memcpy(key, kv->key.data, (size_t)kv->key.len);
    key[kv->key.len] = '\0';
    switch (kv->type) {
    case EL_GGUF_UINT8: case EL_GGUF_UINT16: case EL_GGUF_UINT32: case EL_GGUF_UINT64:
    case EL_GGUF_BOOL:
        return add_scalar(w, key, kv->type, kv->v.u64, err);
    case EL_GGUF_INT8: case EL_GGUF_INT16: case EL_GGUF_INT32: case EL_GGUF_INT64:
        return add_scalar(w, key, kv->type, (uint64_t)kv->v.i64, err);
    case EL_GGUF_FLOAT32: return el_gguf_writer_add_f32(w, key, (float)kv->v.f64, err);
    case EL_GGUF_FLOAT64: return el_gguf_writer_add_f64(w, key, kv->v.f64, err);
    case EL_GGUF_STRING: return el_gguf_writer_add_strn(w, key, kv->v.str.data, kv->v.str.len, err);
    case EL_GGUF_ARRAY:
        if (kv->v.arr.type == EL_GGUF_STRING) return add_strs(w, key, NULL, kv->v.arr.strs, kv->v.arr.n, err);
        return el_gguf_writer_add_arr(w, key, kv->v.arr.type, kv->v.arr.data, kv->v.arr.n, err);
    }
    return el_fail(err, EDGELLM_EINVAL, "key '%s': unknown value type %u", key, kv->type);
}

/* ---- tensors ---- */

static int tensor_nbytes(const char *name, uint32_t type, uint32_t n_dims, const uint64_t *ne,
                         uint64_t out_ne[EL_GGUF_MAX_DIMS], uint64_t *nbytes, el_err *err) {
    const el_type_traits *tr = el_type_valid(type) ? el_type_get_traits(type) : NULL; /* file types only */
    if (!tr) return el_fail(err, EDGELLM_EINVAL, "tensor '%s': unknown type id %u", name, type);
    if (n_dims > EL_GGUF_MAX_DIMS || (n_dims && !ne))
        return el_fail(err, EDGELLM_EINVAL, "tensor '%s': n_dims %u exceeds %d", name, n_dims,
                       EL_GGUF_MAX_DIMS);
    uint64_t count = 1;
    for (uint32_t j = 0; j < EL_GGUF_MAX_DIMS; j++) {
        out_ne[j] = j < n_dims ? ne[j] : 1;
        if (out_ne[j] == 0) continue;
        if (count > (uint64_t)INT64_MAX / out_ne[j])
            return el_fail(err, EDGELLM_EINVAL, "tensor '%s': dims overflow", name);
        count *= out_ne[j];
    }
    if (out_ne[0] % tr->block_size)
        return el_fail(err, EDGELLM_EINVAL, "tensor '%s': type %s needs ne[0] multiple of %u", name,
                       tr->name, tr->block_size);
    uint64_t blocks = out_ne[0] / tr->block_size, rows = out_ne[1] * out_ne[2] * out_ne[3];
    if (blocks > SIZE_MAX / tr->type_size || (rows && blocks * tr->type_size > SIZE_MAX / rows))
        return el_fail(err, EDGELLM_EINVAL, "tensor '%s': byte size overflows", name);
    *nbytes = blocks * tr->type_size * rows;
    return 0;
}

int el_gguf_writer_add_tensor(el_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                              const uint64_t *ne, const void *data, el_err *err) {
    if (!w || !name || !*name) return el_fail(err, EDGELLM_EINVAL, "empty tensor name");
    if (strlen(name) >= GGUF_MAX_NAME)
        return el_fail(err, EDGELLM_EINVAL, "tensor '%s': name longer than %d bytes", name,
                       GGUF_MAX_NAME - 1);
    for (uint64_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return el_fail(err, EDGELLM_EINVAL, "duplicate tensor name '%s'", name);
    wtensor t = {.type = type, .n_dims = n_dims};
    if (tensor_nbytes(name, type, n_dims, ne, t.ne, &t.nbytes, err)) return -1;
    uint64_t padded = (t.nbytes + w->alignment - 1) / w->alignment * w->alignment;
    if (padded < t.nbytes || padded > UINT64_MAX - w->data_size)
        return el_fail(err, EDGELLM_EINVAL, "tensor '%s': data section too large", name);
    if (w->n_tensors == w->tensors_cap) {
        size_t cap = w->tensors_cap ? w->tensors_cap * 2 : 64;
        wtensor *p = realloc(w->tensors, cap * sizeof *p);
        if (!p) return el_fail(err, EDGELLM_ENOMEM, "out of memory");
        w->tensors = p;
        w->tensors_cap = cap;
    }
    t.name = strdup(name);
    if (!t.name) return el_fail(err, EDGELLM_ENOMEM, "out of memory");
    if (t.nbytes && data) {
        t.data = malloc((size_t)t.nbytes);
        if (!t.data) {
            free(t.name);
            return el_fail(err, EDGELLM_ENOMEM, "tensor '%s': %llu bytes: out of memory", name,
                           (unsigned long long)t.nbytes);
        }
        memcpy(t.data, data, (size_t)t.nbytes);
    }
    t.offset = w->data_size;
    w->data_size += padded;
    w->tensors[w->n_tensors++] = t;
    return 0;
}

/* ---- output ---- */

/* Output goes either to a FILE or into a preallocated buffer. */
typedef struct sink {
    FILE *f;
    uint8_t *buf;
    size_t len;
    bool failed;
} sink;

static void emit(sink *s, const void *p, size_t n) {
    if (s->failed || n == 0) return;
    if (s->f) {
        if (fwrite(p, 1, n, s->f) != n) s->failed = true;
    } else {
        memcpy(s->buf + s->len, p, n);
    }
    s->len += n;
}

static void emit_le(sink *s, uint64_t v, size_t n) {
    uint8_t tmp[8];
    store_le(tmp, v, n);
    emit(s, tmp, n);
}

static void emit_zeros(sink *s, uint64_t n) {
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n > sizeof zeros ? sizeof zeros : (size_t)n;
        emit(s, zeros, k);
        n -= k;
    }
}

static uint64_t header_size(const el_gguf_writer *w) {
    uint64_t n = 4 + 4 + 8 + 8 + w->kvs.len;
    for (uint64_t i = 0; i < w->n_tensors; i++)
        n += 8 + strlen(w->tensors[i].name) + 4 + 8ull * w->tensors[i].n_dims + 4 + 8;
    return n;
}

static void emit_all(const el_gguf_writer *w, sink *s) {
    emit(s, "GGUF", 4);
    emit_le(s, 3, 4);
    emit_le(s, w->n_tensors, 8);
    emit_le(s, w->n_kv, 8);
    emit(s, w->kvs.p, w->kvs.len);
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        size_t len = strlen(t->name);
        emit_le(s, len, 8);
        emit(s, t->name, len);
        emit_le(s, t->n_dims, 4);
        for (uint32_t j = 0; j < t->n_dims; j++) emit_le(s, t->ne[j], 8);
        emit_le(s, t->type, 4);
        emit_le(s, t->offset, 8);
    }
    uint64_t h = header_size(w);
    emit_zeros(s, (h + w->alignment - 1) / w->alignment * w->alignment - h);
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        if (t->data) emit(s, t->data, (size_t)t->nbytes);
        else emit_zeros(s, t->nbytes);
        uint64_t end = i + 1 < w->n_tensors ? w->tensors[i + 1].offset : w->data_size;
        emit_zeros(s, end - t->offset - t->nbytes);
    }
}

static int total_size(const el_gguf_writer *w, size_t *out, el_err *err) {
    uint64_t h = header_size(w);
    uint64_t data_off = (h + w->alignment - 1) / w->alignment * w->alignment;
    if (w->data_size > SIZE_MAX - data_off) return el_fail(err, EDGELLM_ENOMEM, "file too large");
    *out = (size_t)(data_off + w->data_size);
    return 0;
}

int el_gguf_writer_write_memory(el_gguf_writer *w, void **buf, size_t *size, el_err *err) {
    if (!w || !buf || !size) return el_fail(err, EDGELLM_EINVAL, "NULL argument");
    size_t n = 0;
    if (total_size(w, &n, err)) return -1;
    uint8_t *p = malloc(n ? n : 1);
    if (!p) return el_fail(err, EDGELLM_ENOMEM, "%zu bytes: out of memory", n);
    sink s = {.buf = p};
    emit_all(w, &s);
    *buf = p;
    *size = s.len;
    return 0;
}

int el_gguf_writer_write_file(el_gguf_writer *w, const char *path, el_err *err) {
    if (!w || !path) return el_fail(err, EDGELLM_EINVAL, "NULL argument");
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return el_fail(err, EDGELLM_ENOMEM, "out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        el_fail(err, EDGELLM_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    sink s = {.f = f};
    emit_all(w, &s);
    int saved = errno;
    bool ok = !s.failed && fflush(f) == 0;
    if (!ok) saved = errno;
    if (fclose(f) != 0 && ok) ok = false, saved = errno;
    if (ok && rename(tmp, path) != 0) ok = false, saved = errno;
    if (!ok) {
        unlink(tmp);
        el_fail(err, EDGELLM_EIO, "%s: write failed: %s", path, strerror(saved));
    }
    free(tmp);
    return ok ? 0 : -1;
}
