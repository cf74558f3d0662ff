/* GGUF reader: map the file, then check every byte range before anything uses it.
 *
 * Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 * n_kv x { string key, u32 type, value }, n_tensors x { string name, u32 n_dims,
 * u64 ne[n_dims], u32 type, u64 offset }, padding to the alignment, tensor data.
 * A string is u64 length + bytes; an array is u32 element type, u64 count, elements.
 *
 * Messages name what is wrong and where but not the path: callers add that. */
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant/quant.h"

#define GGUF_MAX_NAME 64 /* ggml's GGML_MAX_NAME, NUL included */
#define MIN_KV_BYTES 14  /* key length + 1-byte key + type + 1-byte value */
#define MIN_TENSOR_INFO_BYTES 25 /* name length + 1-byte name + n_dims + type + offset */
#define MSG_NAME_MAX 64  /* bytes of a name shown in a message */

/* ---- bounds-checked cursor: every read from the file goes through it ---- */

typedef struct cursor {
    const uint8_t *base;
    size_t size;
    size_t off; /* invariant: off <= size */
} cursor;

static size_t cur_left(const cursor *c) { return c->size - c->off; }

static bool cur_bytes(cursor *c, void *dst, size_t n) {
    if (n > cur_left(c)) return false;
    memcpy(dst, c->base + c->off, n);
    c->off += n;
    return true;
}

static uint64_t load_le(const uint8_t *b, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static bool cur_le(cursor *c, size_t n, uint64_t *v) {
    uint8_t b[8];
    if (!cur_bytes(c, b, n)) return false;
    *v = load_le(b, n);
    return true;
}

static bool cur_u32(cursor *c, uint32_t *v) {
    uint64_t x;
    if (!cur_le(c, 4, &x)) return false;
    *v = (uint32_t)x;
    return true;
}

static bool cur_u64(cursor *c, uint64_t *v) { return cur_le(c, 8, v); }

/* ---- messages ---- */

/* A name from the file made safe to print: non-printable bytes become '?', long ones are cut. */
static const char *printable(const char *s, uint64_t len, char buf[MSG_NAME_MAX + 4]) {
    size_t n = len > MSG_NAME_MAX ? MSG_NAME_MAX : (size_t)len;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (len > MSG_NAME_MAX) memcpy(buf + n, "...", 3), n += 3;
    buf[n] = '\0';
    return buf;
}

static int fail_eof(el_err *err, const cursor *c, size_t at, const char *what) {
    return el_fail(err, EDGELLM_EFORMAT, "%s at offset %zu runs past end of file (size %zu)", what,
                   at, c->size);
}

/* ---- values ---- */

static size_t value_type_size(uint32_t type) {
    switch (type) {
    case EL_GGUF_UINT8: case EL_GGUF_INT8: case EL_GGUF_BOOL: return 1;
    case EL_GGUF_UINT16: case EL_GGUF_INT16: return 2;
    case EL_GGUF_UINT32: case EL_GGUF_INT32: case EL_GGUF_FLOAT32: return 4;
    case EL_GGUF_UINT64: case EL_GGUF_INT64: case EL_GGUF_FLOAT64: return 8;
    default: return 0; /* string, array, unknown */
    }
}

const char *el_gguf_value_type_name(uint32_t type) {
    static const char *const NAMES[] = {"u8",  "i8",  "u16",    "i16",   "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
    return type < sizeof NAMES / sizeof NAMES[0] ? NAMES[type] : "?";
}

/* Reads a u64 length and then that many bytes. */
static int read_str(cursor *c, el_gguf_str *s, const char *what, el_err *err) {
    size_t at = c->off;
    uint64_t len;
    if (!cur_u64(c, &len)) {
        char w[64];
        snprintf(w, sizeof w, "%s length", what);
        return fail_eof(err, c, at, w);
    }
    if (len > cur_left(c))
        return el_fail(err, EDGELLM_EFORMAT,
                       "%s length %" PRIu64 " at offset %zu runs past end of file (size %zu)", what,
                       len, at, c->size);
    s->len = len;
    s->data = (const char *)c->base + c->off;
    c->off += (size_t)len;
    return 0;
}

/* Decodes one fixed-size scalar (already bounds-checked) into the kv union. */
static int decode_scalar(const uint8_t *b, uint32_t type, el_gguf_kv *kv, size_t at, el_err *err) {
    uint64_t raw = load_le(b, value_type_size(type));
    switch (type) {
    case EL_GGUF_UINT8: case EL_GGUF_UINT16: case EL_GGUF_UINT32: case EL_GGUF_UINT64:
        kv->v.u64 = raw;
        break;
    case EL_GGUF_BOOL:
        if (raw > 1)
            return el_fail(err, EDGELLM_EFORMAT, "bool value %" PRIu64 " at offset %zu is not 0 or 1",
                           raw, at);
        kv->v.u64 = raw;
        break;
    case EL_GGUF_INT8: kv->v.i64 = (int8_t)(uint8_t)raw; break;
    case EL_GGUF_INT16: kv->v.i64 = (int16_t)(uint16_t)raw; break;
    case EL_GGUF_INT32: kv->v.i64 = (int32_t)(uint32_t)raw; break;
    case EL_GGUF_INT64: kv->v.i64 = (int64_t)raw; break;
    case EL_GGUF_FLOAT32: {
        uint32_t u = (uint32_t)raw;
        float f;
        memcpy(&f, &u, 4);
        kv->v.f64 = f;
        break;
    }
    case EL_GGUF_FLOAT64: memcpy(&kv->v.f64, &raw, 8); break;
    }
    return 0;
}

static int read_array(el_gguf *g, cursor *c, el_gguf_kv *kv, el_err *err) {
    size_t at = c->off;
    uint32_t et;
    uint64_t n;
    if (!cur_u32(c, &et)) return fail_eof(err, c, at, "array element type");
    if (et == EL_GGUF_ARRAY)
        return el_fail(err, EDGELLM_EFORMAT, "nested arrays are not supported (offset %zu)", at);
    if (et > EL_GGUF_FLOAT64)
        return el_fail(err, EDGELLM_EFORMAT, "unknown array element type %" PRIu32 " at offset %zu",
                       et, at);
    at = c->off;
    if (!cur_u64(c, &n)) return fail_eof(err, c, at, "array length");
    kv->v.arr.type = et;
    kv->v.arr.n = n;
    if (et == EL_GGUF_STRING) {
        /* Each string takes at least its 8-byte length: bounds the allocation by the file. */
        if (n > cur_left(c) / 8)
            return el_fail(err, EDGELLM_EFORMAT,
                           "array of %" PRIu64 " strings at offset %zu runs past end of file (size %zu)",
                           n, at, c->size);
        kv->v.arr.data = c->base + c->off;
        if (n == 0) return 0;
        kv->v.arr.strs = calloc((size_t)n, sizeof(el_gguf_str));
        if (!kv->v.arr.strs)
            return el_fail(err, EDGELLM_ENOMEM, "array of %" PRIu64 " strings: out of memory", n);
        for (uint64_t i = 0; i < n; i++)
            if (read_str(c, &kv->v.arr.strs[i], "string", err))
                return el_fail_prefix(err, "element %" PRIu64, i);
        return 0;
    }
    size_t esz = value_type_size(et);
    if (n > cur_left(c) / esz)
        return el_fail(err, EDGELLM_EFORMAT,
                       "array of %" PRIu64 " %s at offset %zu runs past end of file (size %zu)", n,
                       el_gguf_value_type_name(et), at, c->size);
    const uint8_t *p = c->base + c->off;
    size_t nbytes = (size_t)n * esz;
    if (et == EL_GGUF_BOOL)
        for (size_t i = 0; i < nbytes; i++)
            if (p[i] > 1)
                return el_fail(err, EDGELLM_EFORMAT,
                               "element %zu: bool value %u at offset %zu is not 0 or 1", i, p[i],
                               c->off + i);
    if (nbytes > 0 && (uintptr_t)p % esz != 0) {
        /* Callers index these as float/int arrays: give them an aligned copy. */
        void *copy = malloc(nbytes);
        if (!copy) return el_fail(err, EDGELLM_ENOMEM, "array of %zu bytes: out of memory", nbytes);
        memcpy(copy, p, nbytes);
        g->owned[g->n_owned++] = copy;
        p = copy;
    }
    kv->v.arr.data = p;
    c->off += nbytes;
    return 0;
}

static int read_value(el_gguf *g, cursor *c, el_gguf_kv *kv, el_err *err) {
    size_t at = c->off;
    if (kv->type == EL_GGUF_STRING) return read_str(c, &kv->v.str, "string", err);
    if (kv->type == EL_GGUF_ARRAY) return read_array(g, c, kv, err);
    size_t sz = value_type_size(kv->type);
    if (sz == 0)
        return el_fail(err, EDGELLM_EFORMAT, "unknown value type %" PRIu32 " at offset %zu",
                       kv->type, at - 4);
    uint8_t b[8];
    if (!cur_bytes(c, b, sz)) {
        char w[32];
        snprintf(w, sizeof w, "%s value", el_gguf_value_type_name(kv->type));
        return fail_eof(err, c, at, w);
    }
    return decode_scalar(b, kv->type, kv, at, err);
}

static int read_kvs(el_gguf *g, cursor *c, el_err *err) {
    char nb[MSG_NAME_MAX + 4];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        el_gguf_kv *kv = &g->kv[i];
        size_t at = c->off;
        if (read_str(c, &kv->key, "key", err)) return el_fail_prefix(err, "key #%" PRIu64, i);
        if (kv->key.len == 0)
            return el_fail(err, EDGELLM_EFORMAT, "key #%" PRIu64 " at offset %zu is empty", i, at);
        if (memchr(kv->key.data, 0, (size_t)kv->key.len))
            return el_fail(err, EDGELLM_EFORMAT, "key #%" PRIu64 " at offset %zu contains a NUL byte",
                           i, at);
        const char *name = printable(kv->key.data, kv->key.len, nb);
        at = c->off;
        if (!cur_u32(c, &kv->type)) {
            fail_eof(err, c, at, "value type");
            return el_fail_prefix(err, "key '%s'", name);
        }
        if (read_value(g, c, kv, err)) return el_fail_prefix(err, "key '%s'", name);
    }
    return 0;
}

/* ---- tensor infos ---- */

static int read_dims(cursor *c, el_gguf_tensor *t, const char *name, el_err *err) {
    size_t at = c->off;
    if (!cur_u32(c, &t->n_dims)) {
        fail_eof(err, c, at, "n_dims");
        return el_fail_prefix(err, "tensor '%s'", name);
    }
    if (t->n_dims > EL_GGUF_MAX_DIMS)
        return el_fail(err, EDGELLM_EFORMAT, "tensor '%s': n_dims %" PRIu32 " exceeds %d", name,
                       t->n_dims, EL_GGUF_MAX_DIMS);
    for (int j = 0; j < EL_GGUF_MAX_DIMS; j++) t->ne[j] = 1;
    for (uint32_t j = 0; j < t->n_dims; j++) {
        at = c->off;
        if (!cur_u64(c, &t->ne[j])) {
            char w[16];
            snprintf(w, sizeof w, "ne[%" PRIu32 "]", j);
            fail_eof(err, c, at, w);
            return el_fail_prefix(err, "tensor '%s'", name);
        }
    }
    /* The product of the nonzero dims must fit int64 (ggml's int64_t ne), so every partial
     * product does too; a zero dim makes an empty tensor. */
    uint64_t count = 1;
    bool overflow = false;
    for (int j = 0; j < EL_GGUF_MAX_DIMS && !overflow; j++) {
        if (t->ne[j] == 0) continue;
        if (count > (uint64_t)INT64_MAX / t->ne[j]) overflow = true;
        else count *= t->ne[j];
    }
    if (overflow)
        return el_fail(err, EDGELLM_EFORMAT,
                       "tensor '%s': dims %" PRIu64 " x %" PRIu64 " x %" PRIu64 " x %" PRIu64
                       " overflow (element count must stay below 2^63)",
                       name, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
    return 0;
}

/* Bytes of the tensor, or -1 (and err) when the type or shape cannot be stored. */
static int tensor_size(el_gguf_tensor *t, const char *name, el_err *err) {
    const el_type_traits *tr = el_type_valid(t->type) ? el_type_get_traits(t->type) : NULL; /* file types only */
    if (!tr) return el_fail(err, EDGELLM_EFORMAT, "tensor '%s': unknown type id %" PRIu32, name, t->type);
    if (t->ne[0] % tr->block_size)
        return el_fail(err, EDGELLM_EFORMAT,
                       "tensor '%s': type %s needs ne[0] multiple of %" PRIu32 " (ne[0] = %" PRIu64 ")",
                       name, tr->name, tr->block_size, t->ne[0]);
    uint64_t blocks = t->ne[0] / tr->block_size;
    uint64_t rows = t->ne[1] * t->ne[2] * t->ne[3]; /* no overflow: read_dims checked the product */
    if (blocks > SIZE_MAX / tr->type_size || (rows && blocks * tr->type_size > SIZE_MAX / rows))
        return el_fail(err, EDGELLM_EFORMAT, "tensor '%s': byte size overflows", name);
    t->nbytes = blocks * tr->type_size * rows;
    return 0;
}

static int read_tensor_infos(el_gguf *g, cursor *c, el_err *err) {
    char nb[MSG_NAME_MAX + 4];
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        el_gguf_tensor *t = &g->tensors[i];
        size_t at = c->off;
        el_gguf_str s;
        if (read_str(c, &s, "name", err)) return el_fail_prefix(err, "tensor #%" PRIu64, i);
        if (s.len == 0)
            return el_fail(err, EDGELLM_EFORMAT, "tensor #%" PRIu64 " at offset %zu: empty name", i, at);
        if (s.len >= GGUF_MAX_NAME)
            return el_fail(err, EDGELLM_EFORMAT,
                           "tensor #%" PRIu64 " at offset %zu: name '%s' is %" PRIu64
                           " bytes, longer than %d",
                           i, at, printable(s.data, s.len, nb), s.len, GGUF_MAX_NAME - 1);
        if (memchr(s.data, 0, (size_t)s.len))
            return el_fail(err, EDGELLM_EFORMAT, "tensor #%" PRIu64 " at offset %zu: name contains a NUL byte",
                           i, at);
        t->name = malloc((size_t)s.len + 1);
        if (!t->name) return el_fail(err, EDGELLM_ENOMEM, "tensor names: out of memory");
        memcpy(t->name, s.data, (size_t)s.len);
        t->name[s.len] = '\0';
        const char *name = printable(s.data, s.len, nb);
        if (read_dims(c, t, name, err)) return -1;
        at = c->off;
        if (!cur_u32(c, &t->type)) {
            fail_eof(err, c, at, "type");
            return el_fail_prefix(err, "tensor '%s'", name);
        }
        if (tensor_size(t, name, err)) return -1;
        at = c->off;
        if (!cur_u64(c, &t->offset)) {
            fail_eof(err, c, at, "data offset");
            return el_fail_prefix(err, "tensor '%s'", name);
        }
    }
    return 0;
}

/* ---- whole-file checks ---- */

typedef struct name_ref {
    const char *p;
    uint64_t len;
    uint64_t idx;
} name_ref;

static int name_cmp(const char *a, uint64_t alen, const char *b, uint64_t blen) {
    if (alen != blen) return alen < blen ? -1 : 1;
    return memcmp(a, b, (size_t)alen);
}

static int name_ref_cmp(const void *a, const void *b) {
    const name_ref *x = a, *y = b;
    return name_cmp(x->p, x->len, y->p, y->len);
}

/* Sorts names into an index (for binary-search lookup) and refuses duplicates. */
static int sort_names(name_ref *refs, uint64_t n, uint64_t **order, const char *what, el_err *err) {
    qsort(refs, (size_t)n, sizeof *refs, name_ref_cmp);
    for (uint64_t i = 1; i < n; i++)
        if (name_ref_cmp(&refs[i - 1], &refs[i]) == 0) {
            char nb[MSG_NAME_MAX + 4];
            return el_fail(err, EDGELLM_EFORMAT, "duplicate %s '%s'", what,
                           printable(refs[i].p, refs[i].len, nb));
        }
    *order = malloc((size_t)(n ? n : 1) * sizeof **order);
    if (!*order) return el_fail(err, EDGELLM_ENOMEM, "out of memory");
    for (uint64_t i = 0; i < n; i++) (*order)[i] = refs[i].idx;
    return 0;
}

static int index_names(el_gguf *g, el_err *err) {
    uint64_t n = g->n_kv > g->n_tensors ? g->n_kv : g->n_tensors;
    name_ref *refs = malloc((size_t)(n ? n : 1) * sizeof *refs);
    if (!refs) return el_fail(err, EDGELLM_ENOMEM, "out of memory");
    for (uint64_t i = 0; i < g->n_kv; i++)
        refs[i] = (name_ref){g->kv[i].key.data, g->kv[i].key.len, i};
    int rc = sort_names(refs, g->n_kv, &g->kv_by_key, "key", err);
    if (rc == 0) {
        for (uint64_t i = 0; i < g->n_tensors; i++)
            refs[i] = (name_ref){g->tensors[i].name, strlen(g->tensors[i].name), i};
        rc = sort_names(refs, g->n_tensors, &g->tensor_by_name, "tensor name", err);
    }
    free(refs);
    return rc;
}

static int read_alignment(el_gguf *g, el_err *err) {
    g->alignment = EL_GGUF_DEFAULT_ALIGNMENT;
    const el_gguf_kv *kv = el_gguf_find_kv(g, "general.alignment");
    if (!kv) return 0;
    if (kv->type != EL_GGUF_UINT32)
        return el_fail(err, EDGELLM_EFORMAT, "key 'general.alignment': type %s, expected u32",
                       el_gguf_value_type_name(kv->type));
    uint64_t a = kv->v.u64;
    if (a == 0 || (a & (a - 1)) != 0)
        return el_fail(err, EDGELLM_EFORMAT,
                       "key 'general.alignment': %" PRIu64 " is not a nonzero power of two", a);
    g->alignment = a;
    return 0;
}

typedef struct span {
    uint64_t off, end, idx;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Every tensor's data must be aligned, inside the file, and not overlap another's. */
static int check_tensor_data(el_gguf *g, el_err *err) {
    char nb[MSG_NAME_MAX + 4];
    uint64_t avail = g->size > g->data_offset ? g->size - g->data_offset : 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        el_gguf_tensor *t = &g->tensors[i];
        const char *name = printable(t->name, strlen(t->name), nb);
        if (t->offset % g->alignment)
            return el_fail(err, EDGELLM_EFORMAT,
                           "tensor '%s': offset %" PRIu64 " not aligned to %" PRIu64, name, t->offset,
                           g->alignment);
        /* Even an empty tensor must point inside the file (data_offset may lie past its end). */
        if (g->data_offset > g->size || t->offset > avail || t->nbytes > avail - t->offset) {
            uint64_t a = t->offset > UINT64_MAX - g->data_offset ? UINT64_MAX : g->data_offset + t->offset;
            uint64_t b = t->nbytes > UINT64_MAX - a ? UINT64_MAX : a + t->nbytes;
            return el_fail(err, EDGELLM_EFORMAT,
                           "tensor '%s': data [%" PRIu64 ", %" PRIu64
                           ") runs past end of file (size %zu)",
                           name, a, b, g->size);
        }
        t->data = g->base + g->data_offset + t->offset;
    }
    if (g->n_tensors < 2) return 0;
    span *s = malloc((size_t)g->n_tensors * sizeof *s);
    if (!s) return el_fail(err, EDGELLM_ENOMEM, "out of memory");
    uint64_t n = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].nbytes)
            s[n++] = (span){g->tensors[i].offset, g->tensors[i].offset + g->tensors[i].nbytes, i};
    qsort(s, (size_t)n, sizeof *s, span_cmp);
    int rc = 0;
    for (uint64_t i = 1; i < n && rc == 0; i++)
        if (s[i].off < s[i - 1].end) {
            char nb2[MSG_NAME_MAX + 4];
            const char *a = g->tensors[s[i - 1].idx].name, *b = g->tensors[s[i].idx].name;
            rc = el_fail(err, EDGELLM_EFORMAT,
                         "tensors '%s' and '%s': data overlap ([%" PRIu64 ", %" PRIu64 ") and [%" PRIu64
                         ", %" PRIu64 ") in the data section)",
                         printable(a, strlen(a), nb), printable(b, strlen(b), nb2), s[i - 1].off,
                         s[i - 1].end, s[i].off, s[i].end);
        }
    free(s);
    return rc;
}

static int read_header(el_gguf *g, cursor *c, el_err *err) {
    uint8_t magic[4];
    if (!cur_bytes(c, magic, 4))
        return el_fail(err, EDGELLM_EFORMAT, "file is %zu bytes, too short for the GGUF magic", c->size);
    if (memcmp(magic, "GGUF", 4) != 0) {
        char nb[MSG_NAME_MAX + 4];
        return el_fail(err, EDGELLM_EFORMAT, "bad magic '%s' at offset 0: not a GGUF file",
                       printable((const char *)magic, 4, nb));
    }
    if (!cur_u32(c, &g->version)) return fail_eof(err, c, 4, "version");
    if (g->version == 1)
        return el_fail(err, EDGELLM_EUNSUPPORTED,
                       "GGUF version 1 is not supported (it predates 64-bit counts; convert the "
                       "model again with a current llama.cpp)");
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return el_fail(err, EDGELLM_EUNSUPPORTED, "big-endian GGUF is not supported");
    if (g->version != 2 && g->version != 3)
        return el_fail(err, EDGELLM_EUNSUPPORTED,
                       "unsupported GGUF version %" PRIu32 " (this reader handles 2 and 3)", g->version);
    if (!cur_u64(c, &g->n_tensors)) return fail_eof(err, c, 8, "tensor count");
    if (!cur_u64(c, &g->n_kv)) return fail_eof(err, c, 16, "key count");
    /* Bound every allocation sized by a count by what the file could hold. */
    size_t left = cur_left(c);
    if (g->n_tensors > left / MIN_TENSOR_INFO_BYTES)
        return el_fail(err, EDGELLM_EFORMAT,
                       "tensor count %" PRIu64 " exceeds what a file of %zu bytes can hold", g->n_tensors,
                       c->size);
    if (g->n_kv > left / MIN_KV_BYTES)
        return el_fail(err, EDGELLM_EFORMAT, "key count %" PRIu64 " exceeds what a file of %zu bytes can hold",
                       g->n_kv, c->size);
    if (g->n_tensors * MIN_TENSOR_INFO_BYTES + g->n_kv * MIN_KV_BYTES > left)
        return el_fail(err, EDGELLM_EFORMAT,
                       "%" PRIu64 " keys and %" PRIu64 " tensors exceed what a file of %zu bytes can hold",
                       g->n_kv, g->n_tensors, c->size);
    return 0;
}

static void free_contents(el_gguf *g) {
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++)
            if (g->kv[i].type == EL_GGUF_ARRAY) free(g->kv[i].v.arr.strs);
    if (g->tensors)
        for (uint64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    for (size_t i = 0; i < g->n_owned; i++) free(g->owned[i]);
    free(g->owned);
    free(g->kv);
    free(g->tensors);
    free(g->kv_by_key);
    free(g->tensor_by_name);
}

static int parse(el_gguf *g, el_err *err) {
    cursor c = {g->base, g->size, 0};
    if (read_header(g, &c, err)) return -1;
    g->kv = calloc((size_t)(g->n_kv ? g->n_kv : 1), sizeof *g->kv);
    g->owned = calloc((size_t)(g->n_kv ? g->n_kv : 1), sizeof *g->owned);
    g->tensors = calloc((size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *g->tensors);
    if (!g->kv || !g->owned || !g->tensors) return el_fail(err, EDGELLM_ENOMEM, "out of memory");
    if (read_kvs(g, &c, err)) return -1;
    if (read_tensor_infos(g, &c, err)) return -1;
    if (index_names(g, err)) return -1;
    if (read_alignment(g, err)) return -1;
    g->data_offset = ((uint64_t)c.off + g->alignment - 1) / g->alignment * g->alignment;
    return check_tensor_data(g, err);
}

el_gguf *el_gguf_open_memory(const void *buf, size_t size, el_err *err) {
    static const uint8_t empty[1];
    el_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        el_fail(err, EDGELLM_ENOMEM, "out of memory");
        return NULL;
    }
    g->base = buf ? buf : empty;
    g->size = buf ? size : 0;
    g->fd = -1;
    if (parse(g, err)) {
        free_contents(g);
        free(g);
        return NULL;
    }
    return g;
}

el_gguf *el_gguf_open(const char *path, el_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        el_fail(err, errno == ENOENT ? EDGELLM_ENOTFOUND : EDGELLM_EIO, "cannot open: %s",
                strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        el_fail(err, EDGELLM_EIO, "cannot stat: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        el_fail(err, EDGELLM_EIO, "%s", S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
        close(fd);
        return NULL;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        el_fail(err, EDGELLM_ERANGE, "file of %jd bytes does not fit the address space", (intmax_t)st.st_size);
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            el_fail(err, EDGELLM_EIO, "mmap of %zu bytes failed: %s", size, strerror(errno));
            close(fd);
            return NULL;
        }
    }
    el_gguf *g = el_gguf_open_memory(map, size, err);
    if (!g) {
        if (map) munmap(map, size);
        close(fd);
        return NULL;
    }
    g->mapped = map != NULL;
    g->fd = fd; /* for el_gguf_read; the same file as the mapping, whatever happens to its name */
    return g;
}

void el_gguf_close(el_gguf *g) {
    if (!g) return;
    free_contents(g);
    if (g->mapped) munmap((void *)g->base, g->size);
    if (g->fd >= 0) close(g->fd);
    free(g);
}

int el_gguf_read(const el_gguf *g, const void *src, size_t n, void *dst, el_err *err) {
    const uintptr_t b = (uintptr_t)g->base, p = (uintptr_t)src;
    if (p < b || p - b > g->size || n > g->size - (p - b))
        return el_fail(err, EDGELLM_EINVAL, "read of %zu bytes outside the file's %zu", n, g->size);
    if (g->fd < 0) {
        memcpy(dst, src, n);
        return 0;
    }
    size_t done = 0;
    while (done < n) {
        const size_t want = n - done > ((size_t)1 << 30) ? (size_t)1 << 30 : n - done;
        const ssize_t got = pread(g->fd, (uint8_t *)dst + done, want, (off_t)(p - b + done));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0)
            return el_fail(err, EDGELLM_EIO, "read at offset %zu: %s", (size_t)(p - b + done),
                           got < 0 ? strerror(errno) : "file shorter than when opened");
        done += (size_t)got;
    }
    return 0;
}

/* ---- lookups ---- */

const el_gguf_kv *el_gguf_find_kv(const el_gguf *g, const char *key) {
    if (!g || !key || !g->kv_by_key) return NULL;
    uint64_t len = strlen(key), lo = 0, hi = g->n_kv;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        const el_gguf_kv *kv = &g->kv[g->kv_by_key[mid]];
        int c = name_cmp(kv->key.data, kv->key.len, key, len);
        if (c == 0) return kv;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const el_gguf_tensor *el_gguf_find_tensor(const el_gguf *g, const char *name) {
    if (!g || !name || !g->tensor_by_name) return NULL;
    uint64_t len = strlen(name), lo = 0, hi = g->n_tensors;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        const el_gguf_tensor *t = &g->tensors[g->tensor_by_name[mid]];
        int c = name_cmp(t->name, strlen(t->name), name, len);
        if (c == 0) return t;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

bool el_gguf_str_eq(el_gguf_str s, const char *cstr) {
    size_t n = strlen(cstr);
    return s.len == n && memcmp(s.data, cstr, n) == 0;
}

/* ---- typed getters ---- */

static bool is_unsigned(uint32_t t) {
    return t == EL_GGUF_UINT8 || t == EL_GGUF_UINT16 || t == EL_GGUF_UINT32 || t == EL_GGUF_UINT64;
}
static bool is_signed(uint32_t t) {
    return t == EL_GGUF_INT8 || t == EL_GGUF_INT16 || t == EL_GGUF_INT32 || t == EL_GGUF_INT64;
}

static const el_gguf_kv *need_kv(const el_gguf *g, const char *key, el_err *err) {
    const el_gguf_kv *kv = el_gguf_find_kv(g, key);
    if (!kv) el_fail(err, EDGELLM_ENOTFOUND, "key '%s' not found", key);
    return kv;
}

static int wrong_type(const el_gguf_kv *kv, const char *key, const char *expected, el_err *err) {
    const char *tn = el_gguf_value_type_name(kv->type);
    if (kv->type == EL_GGUF_ARRAY)
        return el_fail(err, EDGELLM_EFORMAT, "key '%s': type array of %s, expected %s", key,
                       el_gguf_value_type_name(kv->v.arr.type), expected);
    return el_fail(err, EDGELLM_EFORMAT, "key '%s': type %s, expected %s", key, tn, expected);
}

/* Any integer value as a (sign, magnitude) pair checked against [min, max]. */
static int get_int_in(const el_gguf *g, const char *key, int64_t min, uint64_t max, bool *neg,
                      uint64_t *mag, const char *tname, el_err *err) {
    const el_gguf_kv *kv = need_kv(g, key, err);
    if (!kv) return -1;
    if (is_unsigned(kv->type)) {
        *neg = false;
        *mag = kv->v.u64;
        if (*mag > max)
            return el_fail(err, EDGELLM_EFORMAT, "key '%s': value %" PRIu64 " out of range for %s",
                           key, *mag, tname);
        return 0;
    }
    if (is_signed(kv->type)) {
        int64_t v = kv->v.i64;
        if (v < min || (v > 0 && (uint64_t)v > max))
            return el_fail(err, EDGELLM_EFORMAT, "key '%s': value %" PRId64 " out of range for %s",
                           key, v, tname);
        *neg = v < 0;
        *mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        return 0;
    }
    return wrong_type(kv, key, "an integer", err);
}

int el_gguf_get_u32(const el_gguf *g, const char *key, uint32_t *out, el_err *err) {
    bool neg;
    uint64_t mag;
    if (get_int_in(g, key, 0, UINT32_MAX, &neg, &mag, "u32", err)) return -1;
    *out = (uint32_t)mag;
    return 0;
}

int el_gguf_get_u64(const el_gguf *g, const char *key, uint64_t *out, el_err *err) {
    bool neg;
    uint64_t mag;
    if (get_int_in(g, key, 0, UINT64_MAX, &neg, &mag, "u64", err)) return -1;
    *out = mag;
    return 0;
}

int el_gguf_get_i64(const el_gguf *g, const char *key, int64_t *out, el_err *err) {
    bool neg;
    uint64_t mag;
    if (get_int_in(g, key, INT64_MIN, INT64_MAX, &neg, &mag, "i64", err)) return -1;
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

int el_gguf_get_f32(const el_gguf *g, const char *key, float *out, el_err *err) {
    const el_gguf_kv *kv = need_kv(g, key, err);
    if (!kv) return -1;
    if (kv->type != EL_GGUF_FLOAT32 && kv->type != EL_GGUF_FLOAT64)
        return wrong_type(kv, key, "a float", err);
    double v = kv->v.f64;
    if (isfinite(v) && fabs(v) > FLT_MAX)
        return el_fail(err, EDGELLM_EFORMAT, "key '%s': value %g out of range for f32", key, v);
    *out = (float)v;
    return 0;
}

int el_gguf_get_bool(const el_gguf *g, const char *key, bool *out, el_err *err) {
    const el_gguf_kv *kv = need_kv(g, key, err);
    if (!kv) return -1;
    if (kv->type != EL_GGUF_BOOL) return wrong_type(kv, key, "bool", err);
    *out = kv->v.u64 != 0;
    return 0;
}

int el_gguf_get_str(const el_gguf *g, const char *key, el_gguf_str *out, el_err *err) {
    const el_gguf_kv *kv = need_kv(g, key, err);
    if (!kv) return -1;
    if (kv->type != EL_GGUF_STRING) return wrong_type(kv, key, "string", err);
    *out = kv->v.str;
    return 0;
}

int el_gguf_get_arr(const el_gguf *g, const char *key, uint32_t elem_type, uint64_t *n,
                    const void **data, el_err *err) {
    const el_gguf_kv *kv = need_kv(g, key, err);
    if (!kv) return -1;
    if (kv->type != EL_GGUF_ARRAY || kv->v.arr.type != elem_type) {
        char want[32];
        snprintf(want, sizeof want, "array of %s", el_gguf_value_type_name(elem_type));
        return wrong_type(kv, key, want, err);
    }
    *n = kv->v.arr.n;
    *data = elem_type == EL_GGUF_STRING ? (const void *)kv->v.arr.strs : kv->v.arr.data;
    return 0;
}

static int arch_key(char *buf, size_t cap, const char *arch, const char *suffix, el_err *err) {
    int n = snprintf(buf, cap, "%s.%s", arch, suffix);
    if (n < 0 || (size_t)n >= cap)
        return el_fail(err, EDGELLM_EINVAL, "key '%s.%s' is too long", arch, suffix);
    return 0;
}

int el_gguf_get_arch_u32(const el_gguf *g, const char *arch, const char *suffix, uint32_t *out,
                         el_err *err) {
    char key[256];
    if (arch_key(key, sizeof key, arch, suffix, err)) return -1;
    return el_gguf_get_u32(g, key, out, err);
}

int el_gguf_get_arch_f32(const el_gguf *g, const char *arch, const char *suffix, float *out,
                         el_err *err) {
    char key[256];
    if (arch_key(key, sizeof key, arch, suffix, err)) return -1;
    return el_gguf_get_f32(g, key, out, err);
}
