/* GGUF (v2, v3): read by mmap with strict validation, and write.
 *
 * The reader checks everything before anything is used: magic, version,
 * counts, string and array lengths, tensor rank/dims (overflow), type ids,
 * data offsets and sizes inside the file, alignment, duplicate names.
 * Tensor data is never copied: el_gguf_tensor.data points into the mapping.
 * Strings point into the mapping too and are NOT NUL-terminated (use len).
 *
 * Decisions (stricter than llama.cpp where noted):
 *  - v1 (32-bit counts) and big-endian files are refused with a message saying so.
 *  - keys and tensor names must be non-empty and contain no NUL byte; tensor names
 *    are shorter than 64 bytes (ggml's GGML_MAX_NAME); bool values must be 0 or 1.
 *  - general.alignment must be a u32, nonzero power of two.
 *  - a dimension of 0 is legal (an empty tensor, as in ggml); dims must be below 2^63
 *    and their product too; ne[0] must be a multiple of the type's block size.
 *  - tensor offsets must be multiples of the alignment, data must lie inside the file,
 *    and (unlike llama.cpp, which only checks order) tensor data ranges must not overlap.
 *  - numeric array data is aligned for its element type: it points into the mapping
 *    when that is aligned, otherwise to an owned copy made at open. */
#ifndef EL_GGUF_H
#define EL_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

enum el_gguf_value_type {
    EL_GGUF_UINT8 = 0, EL_GGUF_INT8 = 1, EL_GGUF_UINT16 = 2, EL_GGUF_INT16 = 3,
    EL_GGUF_UINT32 = 4, EL_GGUF_INT32 = 5, EL_GGUF_FLOAT32 = 6, EL_GGUF_BOOL = 7,
    EL_GGUF_STRING = 8, EL_GGUF_ARRAY = 9, EL_GGUF_UINT64 = 10, EL_GGUF_INT64 = 11,
    EL_GGUF_FLOAT64 = 12,
};

#define EL_GGUF_MAX_DIMS 4
#define EL_GGUF_DEFAULT_ALIGNMENT 32

typedef struct el_gguf_str {
    uint64_t len;
    const char *data; /* into the mapping; not NUL-terminated */
} el_gguf_str;

typedef struct el_gguf_kv {
    el_gguf_str key;
    uint32_t type; /* enum el_gguf_value_type */
    union {
        uint64_t u64; /* all unsigned ints and bool, widened */
        int64_t i64;  /* all signed ints, widened */
        double f64;   /* float32 and float64, widened */
        el_gguf_str str;
        struct {
            uint32_t type;     /* element type (never ARRAY: nested arrays are refused) */
            uint64_t n;        /* element count */
            const void *data;  /* raw little-endian elements, aligned for the element type
                                  (into the mapping, or an owned copy if that was misaligned) */
            el_gguf_str *strs; /* for string arrays: n parsed strings (owned by el_gguf) */
        } arr;
    } v;
} el_gguf_kv;

typedef struct el_gguf_tensor {
    char *name;       /* owned, NUL-terminated copy */
    uint32_t n_dims;
    uint64_t ne[EL_GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims are 1 */
    uint32_t type;    /* el_type (ggml type id) */
    uint64_t offset;  /* relative to the data section */
    uint64_t nbytes;  /* computed from type and dims */
    const void *data; /* into the mapping */
} el_gguf_tensor;

typedef struct el_gguf {
    const uint8_t *base; /* the mapping (or caller's buffer) */
    size_t size;
    bool mapped;
    int fd; /* the file, kept open for el_gguf_read (-1: opened from memory) */
    uint32_t version;
    uint64_t n_kv;
    el_gguf_kv *kv;
    uint64_t n_tensors;
    el_gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset; /* file offset of the tensor data section */
    /* private: */
    uint64_t *kv_by_key;       /* kv indices sorted by key, for lookup */
    uint64_t *tensor_by_name;  /* tensor indices sorted by name, for lookup */
    void **owned;              /* misaligned-array copies, freed at close */
    size_t n_owned;
} el_gguf;

/* Open and validate a file by mmap. On failure returns NULL and fills err with a
 * message naming the problem and where (offset, key or tensor name). */
el_gguf *el_gguf_open(const char *path, el_err *err);
/* Same over a caller's buffer (not copied; must outlive the result). For fuzzing and tests. */
el_gguf *el_gguf_open_memory(const void *buf, size_t size, el_err *err);
void el_gguf_close(el_gguf *g);

/* Copy n bytes of the file, starting at src (a pointer into g's data), into dst: read()
 * from the file where g has one, so its pages are copied from the page cache without
 * being mapped into this process (neither page faults nor resident file pages); memcpy
 * for memory buffers. Returns 0, or -1 with err (outside the data, or a read error). */
int el_gguf_read(const el_gguf *g, const void *src, size_t n, void *dst, el_err *err);

/* Lookups (binary search): NULL when absent. */
const el_gguf_kv *el_gguf_find_kv(const el_gguf *g, const char *key);
const el_gguf_tensor *el_gguf_find_tensor(const el_gguf *g, const char *name);

/* Typed getters with widening between integer types; return 0, or -1 and set err
 * (EDGELLM_ENOTFOUND when absent, EDGELLM_EFORMAT on a wrong type or out-of-range value). */
int el_gguf_get_u32(const el_gguf *g, const char *key, uint32_t *out, el_err *err);
int el_gguf_get_u64(const el_gguf *g, const char *key, uint64_t *out, el_err *err);
int el_gguf_get_i64(const el_gguf *g, const char *key, int64_t *out, el_err *err);
int el_gguf_get_f32(const el_gguf *g, const char *key, float *out, el_err *err);
int el_gguf_get_bool(const el_gguf *g, const char *key, bool *out, el_err *err);
int el_gguf_get_str(const el_gguf *g, const char *key, el_gguf_str *out, el_err *err);
/* Array of the given element type (exact match); *n and *data set. For STRING arrays *data is
 * the el_gguf_str array (same as el_gguf_find_kv()->v.arr.strs). */
int el_gguf_get_arr(const el_gguf *g, const char *key, uint32_t elem_type, uint64_t *n,
                    const void **data, el_err *err);
/* Convenience: "arch.suffix" lookup, e.g. el_gguf_get_arch_u32(g, "gemma3", "block_count", ...). */
int el_gguf_get_arch_u32(const el_gguf *g, const char *arch, const char *suffix, uint32_t *out,
                         el_err *err);
int el_gguf_get_arch_f32(const el_gguf *g, const char *arch, const char *suffix, float *out,
                         el_err *err);
bool el_gguf_str_eq(el_gguf_str s, const char *cstr);
const char *el_gguf_value_type_name(uint32_t type);

/* Writer: build in memory, then write the file in one go (v3, alignment honoured).
 * Tensor data is laid out in the order added, each padded to the alignment.
 * An alignment other than 32 is recorded as the key general.alignment (added by
 * el_gguf_writer_new; adding that key again is a duplicate). Duplicate keys and
 * tensor names, bad types and shapes are refused when added. */
typedef struct el_gguf_writer el_gguf_writer;
el_gguf_writer *el_gguf_writer_new(uint64_t alignment, el_err *err);
void el_gguf_writer_free(el_gguf_writer *w);
int el_gguf_writer_add_u32(el_gguf_writer *w, const char *key, uint32_t v, el_err *err);
int el_gguf_writer_add_i32(el_gguf_writer *w, const char *key, int32_t v, el_err *err);
int el_gguf_writer_add_u64(el_gguf_writer *w, const char *key, uint64_t v, el_err *err);
int el_gguf_writer_add_f32(el_gguf_writer *w, const char *key, float v, el_err *err);
int el_gguf_writer_add_u8(el_gguf_writer *w, const char *key, uint8_t v, el_err *err);
int el_gguf_writer_add_i8(el_gguf_writer *w, const char *key, int8_t v, el_err *err);
int el_gguf_writer_add_u16(el_gguf_writer *w, const char *key, uint16_t v, el_err *err);
int el_gguf_writer_add_i16(el_gguf_writer *w, const char *key, int16_t v, el_err *err);
int el_gguf_writer_add_i64(el_gguf_writer *w, const char *key, int64_t v, el_err *err);
int el_gguf_writer_add_f64(el_gguf_writer *w, const char *key, double v, el_err *err);
int el_gguf_writer_add_bool(el_gguf_writer *w, const char *key, bool v, el_err *err);
int el_gguf_writer_add_str(el_gguf_writer *w, const char *key, const char *v, el_err *err);
/* String of len bytes (may hold any bytes). */
int el_gguf_writer_add_strn(el_gguf_writer *w, const char *key, const char *v, uint64_t len,
                            el_err *err);
/* Array of fixed-size elements (elem_type not STRING/ARRAY); data is copied. */
int el_gguf_writer_add_arr(el_gguf_writer *w, const char *key, uint32_t elem_type,
                           const void *data, uint64_t n, el_err *err);
int el_gguf_writer_add_str_arr(el_gguf_writer *w, const char *key, const char *const *v,
                               uint64_t n, el_err *err);
/* Tensor: ne[0..n_dims) as in el_gguf_tensor; data (nbytes for type and dims) is copied;
 * NULL data writes zeros. */
int el_gguf_writer_add_tensor(el_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                              const uint64_t *ne, const void *data, el_err *err);
/* Copy one key/value (any type) from an opened file, e.g. to carry metadata over. */
int el_gguf_writer_add_kv(el_gguf_writer *w, const el_gguf_kv *kv, el_err *err);
/* Writes path.tmp then renames it over path, so a failed write leaves no half file. */
int el_gguf_writer_write_file(el_gguf_writer *w, const char *path, el_err *err);
/* The whole file in a malloc'd buffer (caller frees). */
int el_gguf_writer_write_memory(el_gguf_writer *w, void **buf, size_t *size, el_err *err);

#endif
