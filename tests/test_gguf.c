/* GGUF reader and writer: round trips of every value type and several tensor types,
 * typed getters, writer refusals, truncation and byte-flip robustness, and the
 * committed hostile corpus (tests/data/hostile, made by scripts/make-hostile-gguf). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "gguf/gguf.h"
#include "quant/quant.h"

/* ---- helpers ---- */

static void *xwrite_memory(el_gguf_writer *w, size_t *size) {
    el_err err = {0};
    void *buf = NULL;
    assert_int_equal(el_gguf_writer_write_memory(w, &buf, size, &err), 0);
    return buf;
}

static el_gguf *xopen_memory(const void *buf, size_t size) {
    el_err err = {0};
    el_gguf *g = el_gguf_open_memory(buf, size, &err);
    if (!g) fail_msg("el_gguf_open_memory: %s", err.message);
    return g;
}

/* Opens a copy of buf[0..n) in an exact-size heap buffer, so ASan sees any overread. */
static el_gguf *open_exact(const uint8_t *buf, size_t n, void **copy, el_err *err) {
    *copy = malloc(n ? n : 1);
    assert_non_null(*copy);
    if (n) memcpy(*copy, buf, n);
    return el_gguf_open_memory(*copy, n, err);
}

/* Touches every key, array element and tensor byte range, as a user of the file would. */
static uint64_t walk(const el_gguf *g) {
    uint64_t sum = 0;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const el_gguf_kv *kv = &g->kv[i];
        sum += kv->key.len + (unsigned char)kv->key.data[kv->key.len - 1];
        char key[256];
        if (kv->key.len < sizeof key) {
            memcpy(key, kv->key.data, (size_t)kv->key.len);
            key[kv->key.len] = '\0';
            assert_ptr_equal(el_gguf_find_kv(g, key), kv);
        }
        if (kv->type == EL_GGUF_STRING && kv->v.str.len) sum += (unsigned char)kv->v.str.data[kv->v.str.len - 1];
        if (kv->type == EL_GGUF_ARRAY && kv->v.arr.type == EL_GGUF_STRING)
            for (uint64_t j = 0; j < kv->v.arr.n; j++)
                if (kv->v.arr.strs[j].len) sum += (unsigned char)kv->v.arr.strs[j].data[kv->v.arr.strs[j].len - 1];
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const el_gguf_tensor *t = &g->tensors[i];
        assert_ptr_equal(el_gguf_find_tensor(g, t->name), t);
        if (t->nbytes) sum += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->nbytes - 1];
    }
    return sum;
}

static char *tmp_path(const char *name) {
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    size_t n = strlen(dir) + strlen(name) + 32;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/el_test_gguf_%ld_%s", dir, (long)getpid(), name);
    return p;
}

/* ---- the fixture: every value type and several tensor types ---- */

static const uint8_t U8S[] = {0, 1, 255};
static const int8_t I8S[] = {-128, 0, 127};
static const uint16_t U16S[] = {0, 65535, 1234};
static const int16_t I16S[] = {-32768, 32767, -1};
static const uint32_t U32S[] = {0, 4294967295u, 7};
static const int32_t I32S[] = {INT32_MIN, INT32_MAX, -5};
static const float F32S[] = {0.5f, -1.25f, 3.0e38f, 1e-30f};
static const uint8_t BOOLS[] = {1, 0, 1};
static const uint64_t U64S[] = {0, UINT64_MAX, 1ull << 40};
static const int64_t I64S[] = {INT64_MIN, INT64_MAX, -3};
static const double F64S[] = {3.141592653589793, -2.5e-300};
static const char *const STRS[] = {"alpha", "", "gamma \xe2\x96\x81 with utf8"};

#define N_F32 64
#define N_F16 64
#define N_Q8 (2 * 32)
#define N_Q4K (256 * 3)
#define N_Q6K (256 * 2)

typedef struct fixture_data {
    float f32[N_F32];
    uint16_t f16[N_F16];
    uint8_t q8[2 * 2 * 34];
    uint8_t q4k[3 * 144];
    uint8_t q6k[2 * 210];
    float cube[2 * 3 * 4];
    float hyper[2 * 1 * 2 * 3];
} fixture_data;

static void fill_data(fixture_data *d) {
    for (int i = 0; i < N_F32; i++) d->f32[i] = (float)i * 0.25f - 3.0f;
    for (int i = 0; i < N_F16; i++) d->f16[i] = (uint16_t)(0x3c00 + i);
    for (size_t i = 0; i < sizeof d->q8; i++) d->q8[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < sizeof d->q4k; i++) d->q4k[i] = (uint8_t)(i * 13 + 5);
    for (size_t i = 0; i < sizeof d->q6k; i++) d->q6k[i] = (uint8_t)(i * 31 + 3);
    for (int i = 0; i < 24; i++) d->cube[i] = (float)i;
    for (int i = 0; i < 12; i++) d->hyper[i] = (float)-i;
}

static el_gguf_writer *make_fixture(uint64_t alignment, const fixture_data *d) {
    el_err err = {0};
    el_gguf_writer *w = el_gguf_writer_new(alignment, &err);
    assert_non_null(w);
#define OK(call) do { if ((call) != 0) fail_msg("%s: %s", #call, err.message); } while (0)
    OK(el_gguf_writer_add_str(w, "general.architecture", "gemma3", &err));
    OK(el_gguf_writer_add_u8(w, "t.u8", 200, &err));
    OK(el_gguf_writer_add_i8(w, "t.i8", -100, &err));
    OK(el_gguf_writer_add_u16(w, "t.u16", 60000, &err));
    OK(el_gguf_writer_add_i16(w, "t.i16", -30000, &err));
    OK(el_gguf_writer_add_u32(w, "gemma3.block_count", 18, &err));
    OK(el_gguf_writer_add_i32(w, "t.i32", -123456, &err));
    OK(el_gguf_writer_add_f32(w, "gemma3.rope.freq_base", 10000.0f, &err));
    OK(el_gguf_writer_add_bool(w, "t.bool", true, &err));
    OK(el_gguf_writer_add_u64(w, "t.u64", UINT64_MAX - 1, &err));
    OK(el_gguf_writer_add_i64(w, "t.i64", INT64_MIN + 1, &err));
    OK(el_gguf_writer_add_f64(w, "t.f64", -1.5e300, &err));
    OK(el_gguf_writer_add_strn(w, "t.bytes", "a\0b\xff", 4, &err));
    OK(el_gguf_writer_add_str(w, "t.empty", "", &err));
    OK(el_gguf_writer_add_arr(w, "a.u8", EL_GGUF_UINT8, U8S, 3, &err));
    OK(el_gguf_writer_add_arr(w, "a.i8", EL_GGUF_INT8, I8S, 3, &err));
    OK(el_gguf_writer_add_arr(w, "a.u16", EL_GGUF_UINT16, U16S, 3, &err));
    OK(el_gguf_writer_add_arr(w, "a.i16", EL_GGUF_INT16, I16S, 3, &err));
    OK(el_gguf_writer_add_arr(w, "a.u32", EL_GGUF_UINT32, U32S, 3, &err));
    OK(el_gguf_writer_add_arr(w, "a.i32", EL_GGUF_INT32, I32S, 3, &err));
    OK(el_gguf_writer_add_arr(w, "a.f32", EL_GGUF_FLOAT32, F32S, 4, &err));
    OK(el_gguf_writer_add_arr(w, "a.bool", EL_GGUF_BOOL, BOOLS, 3, &err));
    OK(el_gguf_writer_add_arr(w, "a.u64", EL_GGUF_UINT64, U64S, 3, &err));
    OK(el_gguf_writer_add_arr(w, "a.i64", EL_GGUF_INT64, I64S, 3, &err));
    OK(el_gguf_writer_add_arr(w, "a.f64", EL_GGUF_FLOAT64, F64S, 2, &err));
    OK(el_gguf_writer_add_arr(w, "a.none", EL_GGUF_UINT32, NULL, 0, &err));
    OK(el_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", STRS, 3, &err));
    uint64_t ne_f32[] = {N_F32}, ne_f16[] = {16, 4}, ne_q8[] = {64, 2}, ne_q4k[] = {N_Q4K, 1},
             ne_q6k[] = {256, 2}, ne_cube[] = {4, 3, 2}, ne_hyper[] = {3, 2, 1, 2}, ne_zero[] = {0, 5};
    OK(el_gguf_writer_add_tensor(w, "output_norm.weight", EL_TYPE_F32, 1, ne_f32, d->f32, &err));
    OK(el_gguf_writer_add_tensor(w, "f16.weight", EL_TYPE_F16, 2, ne_f16, d->f16, &err));
    OK(el_gguf_writer_add_tensor(w, "q8.weight", EL_TYPE_Q8_0, 2, ne_q8, d->q8, &err));
    OK(el_gguf_writer_add_tensor(w, "q4k.weight", EL_TYPE_Q4_K, 2, ne_q4k, d->q4k, &err));
    OK(el_gguf_writer_add_tensor(w, "q6k.weight", EL_TYPE_Q6_K, 2, ne_q6k, d->q6k, &err));
    OK(el_gguf_writer_add_tensor(w, "cube", EL_TYPE_F32, 3, ne_cube, d->cube, &err));
    OK(el_gguf_writer_add_tensor(w, "hyper", EL_TYPE_F32, 4, ne_hyper, d->hyper, &err));
    OK(el_gguf_writer_add_tensor(w, "empty", EL_TYPE_F32, 2, ne_zero, NULL, &err));
#undef OK
    return w;
}

static void check_fixture(const el_gguf *g, const fixture_data *d, uint64_t alignment) {
    el_err err = {0};
    assert_int_equal(g->version, 3);
    assert_int_equal(g->alignment, alignment);
    assert_int_equal(g->data_offset % alignment, 0);
    assert_int_equal(g->n_tensors, 8);

    const el_gguf_kv *kv;
#define SCALAR(key, t, field, val) \
    kv = el_gguf_find_kv(g, key);  \
    assert_non_null(kv);           \
    assert_int_equal(kv->type, t); \
    assert_true(kv->v.field == (val))
    SCALAR("t.u8", EL_GGUF_UINT8, u64, 200);
    SCALAR("t.i8", EL_GGUF_INT8, i64, -100);
    SCALAR("t.u16", EL_GGUF_UINT16, u64, 60000);
    SCALAR("t.i16", EL_GGUF_INT16, i64, -30000);
    SCALAR("gemma3.block_count", EL_GGUF_UINT32, u64, 18);
    SCALAR("t.i32", EL_GGUF_INT32, i64, -123456);
    SCALAR("gemma3.rope.freq_base", EL_GGUF_FLOAT32, f64, 10000.0);
    SCALAR("t.bool", EL_GGUF_BOOL, u64, 1);
    SCALAR("t.u64", EL_GGUF_UINT64, u64, UINT64_MAX - 1);
    SCALAR("t.i64", EL_GGUF_INT64, i64, INT64_MIN + 1);
    SCALAR("t.f64", EL_GGUF_FLOAT64, f64, -1.5e300);
#undef SCALAR
    kv = el_gguf_find_kv(g, "t.bytes");
    assert_non_null(kv);
    assert_int_equal(kv->type, EL_GGUF_STRING);
    assert_int_equal(kv->v.str.len, 4);
    assert_memory_equal(kv->v.str.data, "a\0b\xff", 4);
    el_gguf_str s;
    assert_int_equal(el_gguf_get_str(g, "general.architecture", &s, &err), 0);
    assert_true(el_gguf_str_eq(s, "gemma3"));
    assert_false(el_gguf_str_eq(s, "gemma"));
    assert_int_equal(el_gguf_get_str(g, "t.empty", &s, &err), 0);
    assert_int_equal(s.len, 0);

    uint64_t n;
    const void *data;
#define ARR(key, t, ref, count)                                              \
    assert_int_equal(el_gguf_get_arr(g, key, t, &n, &data, &err), 0);        \
    assert_int_equal(n, count);                                              \
    assert_memory_equal(data, ref, sizeof(ref[0]) * (count));                \
    assert_int_equal((uintptr_t)data % sizeof(ref[0]), 0)
    ARR("a.u8", EL_GGUF_UINT8, U8S, 3);
    ARR("a.i8", EL_GGUF_INT8, I8S, 3);
    ARR("a.u16", EL_GGUF_UINT16, U16S, 3);
    ARR("a.i16", EL_GGUF_INT16, I16S, 3);
    ARR("a.u32", EL_GGUF_UINT32, U32S, 3);
    ARR("a.i32", EL_GGUF_INT32, I32S, 3);
    ARR("a.f32", EL_GGUF_FLOAT32, F32S, 4);
    ARR("a.bool", EL_GGUF_BOOL, BOOLS, 3);
    ARR("a.u64", EL_GGUF_UINT64, U64S, 3);
    ARR("a.i64", EL_GGUF_INT64, I64S, 3);
    ARR("a.f64", EL_GGUF_FLOAT64, F64S, 2);
#undef ARR
    assert_int_equal(el_gguf_get_arr(g, "a.none", EL_GGUF_UINT32, &n, &data, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(el_gguf_get_arr(g, "tokenizer.ggml.tokens", EL_GGUF_STRING, &n, &data, &err), 0);
    assert_int_equal(n, 3);
    const el_gguf_str *strs = data;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(strs[i].len, strlen(STRS[i]));
        assert_memory_equal(strs[i].data, STRS[i], strs[i].len);
    }
    assert_ptr_equal(strs, el_gguf_find_kv(g, "tokenizer.ggml.tokens")->v.arr.strs);

    struct {
        const char *name;
        uint32_t type, n_dims;
        uint64_t ne[4];
        const void *ref;
        uint64_t nbytes;
    } want[] = {
        {"output_norm.weight", EL_TYPE_F32, 1, {N_F32, 1, 1, 1}, d->f32, sizeof d->f32},
        {"f16.weight", EL_TYPE_F16, 2, {16, 4, 1, 1}, d->f16, sizeof d->f16},
        {"q8.weight", EL_TYPE_Q8_0, 2, {64, 2, 1, 1}, d->q8, sizeof d->q8},
        {"q4k.weight", EL_TYPE_Q4_K, 2, {N_Q4K, 1, 1, 1}, d->q4k, sizeof d->q4k},
        {"q6k.weight", EL_TYPE_Q6_K, 2, {256, 2, 1, 1}, d->q6k, sizeof d->q6k},
        {"cube", EL_TYPE_F32, 3, {4, 3, 2, 1}, d->cube, sizeof d->cube},
        {"hyper", EL_TYPE_F32, 4, {3, 2, 1, 2}, d->hyper, sizeof d->hyper},
        {"empty", EL_TYPE_F32, 2, {0, 5, 1, 1}, NULL, 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const el_gguf_tensor *t = el_gguf_find_tensor(g, want[i].name);
        assert_non_null(t);
        assert_ptr_equal(t, &g->tensors[i]); /* order kept */
        assert_string_equal(t->name, want[i].name);
        assert_int_equal(t->type, want[i].type);
        assert_int_equal(t->n_dims, want[i].n_dims);
        for (int j = 0; j < 4; j++) assert_int_equal(t->ne[j], want[i].ne[j]);
        assert_int_equal(t->nbytes, want[i].nbytes);
        assert_int_equal(t->offset % alignment, 0);
        assert_int_equal(((const uint8_t *)t->data - g->base) % alignment, 0);
        if (want[i].nbytes) assert_memory_equal(t->data, want[i].ref, want[i].nbytes);
    }
    assert_null(el_gguf_find_tensor(g, "absent"));
    assert_null(el_gguf_find_kv(g, "absent"));
}

/* ---- tests ---- */

static void test_roundtrip_memory(void **state) {
    (void)state;
    static fixture_data d;
    fill_data(&d);
    const uint64_t aligns[] = {32, 1, 64, 4096};
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
        el_gguf_writer *w = make_fixture(aligns[a], &d);
        size_t size;
        void *buf = xwrite_memory(w, &size);
        el_gguf_writer_free(w);
        el_gguf *g = xopen_memory(buf, size);
        assert_false(g->mapped);
        check_fixture(g, &d, aligns[a]);
        el_err err = {0};
        uint32_t al;
        if (aligns[a] == 32) {
            assert_int_equal(el_gguf_get_u32(g, "general.alignment", &al, &err), -1);
            assert_int_equal(err.code, EDGELLM_ENOTFOUND);
        } else {
            assert_int_equal(el_gguf_get_u32(g, "general.alignment", &al, &err), 0);
            assert_int_equal(al, aligns[a]);
        }
        el_gguf_close(g);
        free(buf);
    }
}

static void test_roundtrip_file_mmap(void **state) {
    (void)state;
    static fixture_data d;
    fill_data(&d);
    el_gguf_writer *w = make_fixture(32, &d);
    char *path = tmp_path("rt.gguf");
    el_err err = {0};
    assert_int_equal(el_gguf_writer_write_file(w, path, &err), 0);
    el_gguf_writer_free(w);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) fail_msg("path too long");
    assert_int_not_equal(access(tmp, F_OK), 0); /* renamed into place */
    el_gguf *g = el_gguf_open(path, &err);
    if (!g) fail_msg("el_gguf_open: %s", err.message);
    assert_true(g->mapped);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(g->size, (size_t)st.st_size);
    check_fixture(g, &d, 32);
    el_gguf_close(g);
    unlink(path);
    free(path);
}

static void test_writer_output_matches_layout(void **state) {
    (void)state;
    el_err err = {0};
    el_gguf_writer *w = el_gguf_writer_new(32, &err);
    assert_int_equal(el_gguf_writer_add_u32(w, "k", 7, &err), 0);
    float x[3] = {1, 2, 3};
    uint64_t ne[] = {3};
    assert_int_equal(el_gguf_writer_add_tensor(w, "t", EL_TYPE_F32, 1, ne, x, &err), 0);
    size_t size;
    uint8_t *b = xwrite_memory(w, &size);
    el_gguf_writer_free(w);
    /* header 24, kv 8+1+4+4 = 17, tensor info 8+1+4+8+4+8 = 33 -> 74, padded to 96, data 12 -> 108, padded 128 */
    static const uint8_t head[] = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                                   1, 0, 0, 0, 0, 0, 0, 0, 'k', 4, 0, 0, 0, 7, 0, 0, 0};
    assert_memory_equal(b, head, sizeof head);
    assert_int_equal(size, 128);
    assert_memory_equal(b + 96, x, sizeof x);
    for (size_t i = 74; i < 96; i++) assert_int_equal(b[i], 0);
    free(b);
}

static void test_getters(void **state) {
    (void)state;
    el_err err = {0};
    el_gguf_writer *w = el_gguf_writer_new(32, &err);
    assert_int_equal(el_gguf_writer_add_u8(w, "u8", 250, &err), 0);
    assert_int_equal(el_gguf_writer_add_i32(w, "pos", 77, &err), 0);
    assert_int_equal(el_gguf_writer_add_i32(w, "neg", -1, &err), 0);
    assert_int_equal(el_gguf_writer_add_u64(w, "big", (uint64_t)UINT32_MAX + 1, &err), 0);
    assert_int_equal(el_gguf_writer_add_u64(w, "huge", UINT64_MAX, &err), 0);
    assert_int_equal(el_gguf_writer_add_i64(w, "min", INT64_MIN, &err), 0);
    assert_int_equal(el_gguf_writer_add_f64(w, "f64", 0.25, &err), 0);
    assert_int_equal(el_gguf_writer_add_f64(w, "f64big", 1e300, &err), 0);
    assert_int_equal(el_gguf_writer_add_f32(w, "llama.eps", 1e-5f, &err), 0);
    assert_int_equal(el_gguf_writer_add_u32(w, "llama.block_count", 4, &err), 0);
    assert_int_equal(el_gguf_writer_add_bool(w, "flag", false, &err), 0);
    assert_int_equal(el_gguf_writer_add_str(w, "s", "text", &err), 0);
    int32_t arr[] = {1, 2};
    assert_int_equal(el_gguf_writer_add_arr(w, "arr", EL_GGUF_INT32, arr, 2, &err), 0);
    size_t size;
    void *buf = xwrite_memory(w, &size);
    el_gguf_writer_free(w);
    el_gguf *g = xopen_memory(buf, size);

    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    float f;
    bool b;
    el_gguf_str s;
    uint64_t n;
    const void *data;
    assert_int_equal(el_gguf_get_u32(g, "u8", &u32, &err), 0);
    assert_int_equal(u32, 250);
    assert_int_equal(el_gguf_get_u32(g, "pos", &u32, &err), 0);
    assert_int_equal(u32, 77);
    assert_int_equal(el_gguf_get_u32(g, "neg", &u32, &err), -1);
    assert_int_equal(err.code, EDGELLM_EFORMAT);
    assert_non_null(strstr(err.message, "out of range"));
    assert_int_equal(el_gguf_get_u32(g, "big", &u32, &err), -1);
    assert_int_equal(err.code, EDGELLM_EFORMAT);
    assert_int_equal(el_gguf_get_u64(g, "big", &u64, &err), 0);
    assert_int_equal(u64, (uint64_t)UINT32_MAX + 1);
    assert_int_equal(el_gguf_get_u64(g, "huge", &u64, &err), 0);
    assert_true(u64 == UINT64_MAX);
    assert_int_equal(el_gguf_get_i64(g, "huge", &i64, &err), -1);
    assert_int_equal(el_gguf_get_i64(g, "neg", &i64, &err), 0);
    assert_int_equal(i64, -1);
    assert_int_equal(el_gguf_get_i64(g, "min", &i64, &err), 0);
    assert_true(i64 == INT64_MIN);
    assert_int_equal(el_gguf_get_u64(g, "min", &u64, &err), -1);
    assert_int_equal(el_gguf_get_i64(g, "u8", &i64, &err), 0);
    assert_int_equal(i64, 250);
    assert_int_equal(el_gguf_get_f32(g, "f64", &f, &err), 0);
    assert_true(f == 0.25f);
    assert_int_equal(el_gguf_get_f32(g, "f64big", &f, &err), -1);
    assert_int_equal(el_gguf_get_f32(g, "u8", &f, &err), -1);
    assert_int_equal(err.code, EDGELLM_EFORMAT);
    assert_int_equal(el_gguf_get_bool(g, "flag", &b, &err), 0);
    assert_false(b);
    assert_int_equal(el_gguf_get_bool(g, "u8", &b, &err), -1);
    assert_int_equal(el_gguf_get_u32(g, "flag", &u32, &err), -1);
    assert_int_equal(el_gguf_get_str(g, "s", &s, &err), 0);
    assert_true(el_gguf_str_eq(s, "text"));
    assert_int_equal(el_gguf_get_str(g, "u8", &s, &err), -1);
    assert_non_null(strstr(err.message, "key 'u8': type u8, expected string"));
    assert_int_equal(el_gguf_get_u32(g, "arr", &u32, &err), -1);
    assert_non_null(strstr(err.message, "array of i32"));
    assert_int_equal(el_gguf_get_arr(g, "arr", EL_GGUF_INT32, &n, &data, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(((const int32_t *)data)[1], 2);
    assert_int_equal(el_gguf_get_arr(g, "arr", EL_GGUF_UINT32, &n, &data, &err), -1);
    assert_int_equal(err.code, EDGELLM_EFORMAT);
    assert_int_equal(el_gguf_get_arr(g, "s", EL_GGUF_STRING, &n, &data, &err), -1);
    assert_int_equal(el_gguf_get_u32(g, "missing", &u32, &err), -1);
    assert_int_equal(err.code, EDGELLM_ENOTFOUND);
    assert_non_null(strstr(err.message, "missing"));
    assert_int_equal(el_gguf_get_arch_u32(g, "llama", "block_count", &u32, &err), 0);
    assert_int_equal(u32, 4);
    assert_int_equal(el_gguf_get_arch_f32(g, "llama", "eps", &f, &err), 0);
    assert_true(f == 1e-5f);
    assert_int_equal(el_gguf_get_arch_u32(g, "gemma3", "block_count", &u32, &err), -1);
    assert_int_equal(err.code, EDGELLM_ENOTFOUND);
    assert_string_equal(el_gguf_value_type_name(EL_GGUF_FLOAT64), "f64");
    assert_string_equal(el_gguf_value_type_name(99), "?");
    el_gguf_close(g);
    free(buf);
}

static void test_writer_refusals(void **state) {
    (void)state;
    el_err err = {0};
    assert_null(el_gguf_writer_new(24, &err));
    assert_null(el_gguf_writer_new(0, &err));
    el_gguf_writer *w = el_gguf_writer_new(64, &err);
    assert_non_null(w);
    assert_int_equal(el_gguf_writer_add_u32(w, "general.alignment", 64, &err), -1); /* added by new */
    assert_int_equal(el_gguf_writer_add_u32(w, "x", 1, &err), 0);
    assert_int_equal(el_gguf_writer_add_str(w, "x", "again", &err), -1);
    assert_non_null(strstr(err.message, "duplicate key 'x'"));
    assert_int_equal(el_gguf_writer_add_u32(w, "", 1, &err), -1);
    uint8_t bad_bool[] = {0, 2};
    assert_int_equal(el_gguf_writer_add_arr(w, "b", EL_GGUF_BOOL, bad_bool, 2, &err), -1);
    assert_int_equal(el_gguf_writer_add_arr(w, "s", EL_GGUF_STRING, bad_bool, 2, &err), -1);
    const char *with_null[] = {"a", NULL};
    assert_int_equal(el_gguf_writer_add_str_arr(w, "sa", with_null, 2, &err), -1);
    uint64_t ne[] = {100, 2}, ne5[] = {1, 1, 1, 1, 1}, ne_big[] = {1ull << 32, 1ull << 32};
    assert_int_equal(el_gguf_writer_add_tensor(w, "q", EL_TYPE_Q4_K, 2, ne, NULL, &err), -1);
    assert_non_null(strstr(err.message, "multiple of 256"));
    assert_int_equal(el_gguf_writer_add_tensor(w, "u", 99, 2, ne, NULL, &err), -1);
    assert_int_equal(el_gguf_writer_add_tensor(w, "u", 4, 2, ne, NULL, &err), -1);
    assert_int_equal(el_gguf_writer_add_tensor(w, "d", EL_TYPE_F32, 5, ne5, NULL, &err), -1);
    assert_int_equal(el_gguf_writer_add_tensor(w, "o", EL_TYPE_F32, 2, ne_big, NULL, &err), -1);
    char long_name[80];
    memset(long_name, 'n', 64);
    long_name[64] = '\0';
    assert_int_equal(el_gguf_writer_add_tensor(w, long_name, EL_TYPE_F32, 1, ne, NULL, &err), -1);
    long_name[63] = '\0';
    assert_int_equal(el_gguf_writer_add_tensor(w, long_name, EL_TYPE_F32, 1, ne, NULL, &err), 0);
    assert_int_equal(el_gguf_writer_add_tensor(w, long_name, EL_TYPE_F32, 1, ne, NULL, &err), -1);
    assert_non_null(strstr(err.message, "duplicate tensor name"));
    /* The refused calls left nothing behind: the file holds exactly 2 keys and 1 tensor. */
    size_t size;
    void *buf = xwrite_memory(w, &size);
    el_gguf_writer_free(w);
    el_gguf *g = xopen_memory(buf, size);
    assert_int_equal(g->n_kv, 2);
    assert_int_equal(g->n_tensors, 1);
    assert_int_equal(g->tensors[0].nbytes, 400);
    for (size_t i = 0; i < 400; i++) assert_int_equal(((const uint8_t *)g->tensors[0].data)[i], 0);
    el_gguf_close(g);
    free(buf);
}

/* Every key of one file copied into another gives the same metadata. */
static void test_copy_kvs(void **state) {
    (void)state;
    static fixture_data d;
    fill_data(&d);
    el_gguf_writer *w = make_fixture(32, &d);
    size_t size;
    void *buf = xwrite_memory(w, &size);
    el_gguf_writer_free(w);
    el_gguf *g = xopen_memory(buf, size);
    el_err err = {0};
    el_gguf_writer *w2 = el_gguf_writer_new(32, &err);
    for (uint64_t i = 0; i < g->n_kv; i++) assert_int_equal(el_gguf_writer_add_kv(w2, &g->kv[i], &err), 0);
    size_t size2;
    void *buf2 = xwrite_memory(w2, &size2);
    el_gguf_writer_free(w2);
    el_gguf *g2 = xopen_memory(buf2, size2);
    /* Same key/value bytes: the kv section of both files is identical. */
    assert_int_equal(g2->n_kv, g->n_kv);
    assert_int_equal(g2->n_tensors, 0);
    const uint8_t *a = (const uint8_t *)g->kv[0].key.data - 8;
    const uint8_t *b = (const uint8_t *)g2->kv[0].key.data - 8;
    const el_gguf_kv *last = &g->kv[g->n_kv - 1];
    size_t len = (size_t)((const uint8_t *)last->v.arr.strs[2].data + last->v.arr.strs[2].len - a);
    assert_true(last->type == EL_GGUF_ARRAY && last->v.arr.type == EL_GGUF_STRING);
    assert_memory_equal(a, b, len);
    el_gguf_close(g2);
    el_gguf_close(g);
    free(buf2);
    free(buf);
}

static void test_versions(void **state) {
    (void)state;
    static fixture_data d;
    fill_data(&d);
    el_gguf_writer *w = make_fixture(32, &d);
    size_t size;
    uint8_t *buf = xwrite_memory(w, &size);
    el_gguf_writer_free(w);
    el_err err = {0};
    buf[4] = 2; /* v2 has the same layout */
    el_gguf *g = xopen_memory(buf, size);
    assert_int_equal(g->version, 2);
    el_gguf_close(g);
    buf[4] = 1;
    assert_null(el_gguf_open_memory(buf, size, &err));
    assert_int_equal(err.code, EDGELLM_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "version 1"));
    buf[4] = 4;
    assert_null(el_gguf_open_memory(buf, size, &err));
    assert_non_null(strstr(err.message, "version 4"));
    free(buf);
}

/* Cutting a valid file anywhere before the end of its last tensor's data must fail
 * cleanly; cutting only the final padding leaves a valid file. */
static void test_every_truncation(void **state) {
    (void)state;
    static fixture_data d;
    fill_data(&d);
    el_gguf_writer *w = make_fixture(32, &d);
    size_t size;
    uint8_t *buf = xwrite_memory(w, &size);
    el_gguf_writer_free(w);
    el_gguf *full = xopen_memory(buf, size);
    size_t data_end = 0;
    for (uint64_t i = 0; i < full->n_tensors; i++) {
        size_t end = (size_t)(full->data_offset + full->tensors[i].offset + full->tensors[i].nbytes);
        if (end > data_end) data_end = end;
    }
    el_gguf_close(full);
    for (size_t n = 0; n < size; n++) {
        el_err err = {0};
        void *copy;
        el_gguf *g = open_exact(buf, n, &copy, &err);
        if (n < data_end) {
            if (g) fail_msg("prefix of %zu bytes (data ends at %zu) was accepted", n, data_end);
            assert_int_equal(err.code, EDGELLM_EFORMAT);
            assert_true(err.message[0] != '\0');
        } else {
            if (!g) fail_msg("prefix of %zu bytes refused: %s", n, err.message);
            walk(g);
            el_gguf_close(g);
        }
        free(copy);
    }
    free(buf);
}

/* Overwrite each byte with a few values: open must either fail with a message or give
 * a file whose every range can be walked (ASan checks the walk). */
static void test_byte_flips(void **state) {
    (void)state;
    el_err err = {0};
    el_gguf_writer *w = el_gguf_writer_new(32, &err);
    assert_int_equal(el_gguf_writer_add_str(w, "general.architecture", "llama", &err), 0);
    assert_int_equal(el_gguf_writer_add_str_arr(w, "toks", STRS, 3, &err), 0);
    assert_int_equal(el_gguf_writer_add_arr(w, "f", EL_GGUF_FLOAT32, F32S, 4, &err), 0);
    uint64_t ne[] = {32, 2};
    uint8_t q8[68] = {1};
    assert_int_equal(el_gguf_writer_add_tensor(w, "a", EL_TYPE_Q8_0, 2, ne, q8, &err), 0);
    assert_int_equal(el_gguf_writer_add_tensor(w, "b", EL_TYPE_F32, 1, ne, NULL, &err), 0);
    size_t size;
    uint8_t *buf = xwrite_memory(w, &size);
    el_gguf_writer_free(w);
    static const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
    int accepted = 0, refused = 0;
    for (size_t i = 0; i < size; i++)
        for (size_t v = 0; v < sizeof vals; v++) {
            uint8_t saved = buf[i];
            buf[i] = vals[v];
            void *copy;
            el_gguf *g = open_exact(buf, size, &copy, &err);
            if (g) {
                walk(g);
                el_gguf_close(g);
                accepted++;
            } else {
                assert_true(err.message[0] != '\0');
                refused++;
            }
            free(copy);
            buf[i] = saved;
        }
    assert_true(accepted > 0);
    assert_true(refused > 0);
    free(buf);
}

static void test_open_errors(void **state) {
    (void)state;
    el_err err = {0};
    assert_null(el_gguf_open("/nonexistent/edgellm/model.gguf", &err));
    assert_int_equal(err.code, EDGELLM_ENOTFOUND);
    assert_null(el_gguf_open("/", &err));
    assert_int_equal(err.code, EDGELLM_EIO);
    char *path = tmp_path("empty.gguf");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fclose(f);
    assert_null(el_gguf_open(path, &err));
    assert_int_equal(err.code, EDGELLM_EFORMAT);
    assert_non_null(strstr(err.message, "0 bytes"));
    unlink(path);
    free(path);
    assert_null(el_gguf_open_memory(NULL, 0, &err));
    el_gguf_close(NULL);
}

/* Many keys and tensors in scrambled order: lookups find each one. */
static void test_lookup_many(void **state) {
    (void)state;
    el_err err = {0};
    el_gguf_writer *w = el_gguf_writer_new(32, &err);
    char name[32];
    for (int i = 0; i < 300; i++) {
        int k = (i * 7919) % 300;
        snprintf(name, sizeof name, "key.%d", k);
        assert_int_equal(el_gguf_writer_add_u32(w, name, (uint32_t)k, &err), 0);
        snprintf(name, sizeof name, "blk.%d.w", k);
        uint64_t ne[] = {1};
        assert_int_equal(el_gguf_writer_add_tensor(w, name, EL_TYPE_F32, 1, ne, &(float){(float)k}, &err), 0);
    }
    size_t size;
    void *buf = xwrite_memory(w, &size);
    el_gguf_writer_free(w);
    el_gguf *g = xopen_memory(buf, size);
    for (int k = 0; k < 300; k++) {
        uint32_t v;
        snprintf(name, sizeof name, "key.%d", k);
        assert_int_equal(el_gguf_get_u32(g, name, &v, &err), 0);
        assert_int_equal(v, k);
        snprintf(name, sizeof name, "blk.%d.w", k);
        const el_gguf_tensor *t = el_gguf_find_tensor(g, name);
        assert_non_null(t);
        float x;
        memcpy(&x, t->data, 4);
        assert_true(x == (float)k);
    }
    assert_null(el_gguf_find_kv(g, "key.300"));
    assert_null(el_gguf_find_tensor(g, "blk.300.w"));
    el_gguf_close(g);
    free(buf);
}

/* Odd key lengths leave arrays misaligned in the file; the reader hands out aligned data. */
static void test_misaligned_arrays(void **state) {
    (void)state;
    el_err err = {0};
    el_gguf_writer *w = el_gguf_writer_new(32, &err);
    assert_int_equal(el_gguf_writer_add_str(w, "k", "abc", &err), 0);
    assert_int_equal(el_gguf_writer_add_arr(w, "fff", EL_GGUF_FLOAT32, F32S, 4, &err), 0);
    assert_int_equal(el_gguf_writer_add_arr(w, "d", EL_GGUF_FLOAT64, F64S, 2, &err), 0);
    assert_int_equal(el_gguf_writer_add_arr(w, "ee", EL_GGUF_INT16, I16S, 3, &err), 0);
    size_t size;
    void *buf = xwrite_memory(w, &size);
    el_gguf_writer_free(w);
    el_gguf *g = xopen_memory(buf, size);
    uint64_t n;
    const void *data;
    assert_int_equal(el_gguf_get_arr(g, "fff", EL_GGUF_FLOAT32, &n, &data, &err), 0);
    assert_int_equal((uintptr_t)data % 4, 0);
    assert_true(((const float *)data)[1] == -1.25f);
    assert_int_equal(el_gguf_get_arr(g, "d", EL_GGUF_FLOAT64, &n, &data, &err), 0);
    assert_int_equal((uintptr_t)data % 8, 0);
    assert_true(((const double *)data)[0] == F64S[0]);
    assert_int_equal(el_gguf_get_arr(g, "ee", EL_GGUF_INT16, &n, &data, &err), 0);
    assert_int_equal((uintptr_t)data % 2, 0);
    assert_int_equal(((const int16_t *)data)[0], -32768);
    assert_true(g->n_owned > 0); /* at least one needed a copy */
    el_gguf_close(g);
    free(buf);
}

/* ---- the hostile corpus ---- */

typedef struct expectation {
    char file[128];
    char want[256];
    bool seen;
} expectation;

static size_t load_expectations(const char *dir, expectation *ex, size_t cap) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/EXPECTED.txt", dir) >= (int)sizeof path) fail_msg("path too long");
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s", path);
    char line[512];
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\r\n")] = '\0';
        char *tab = strchr(line, '\t');
        if (!tab) fail_msg("EXPECTED.txt: no tab in '%s'", line);
        *tab = '\0';
        assert_true(n < cap);
        if (strlen(line) >= sizeof ex[n].file || strlen(tab + 1) >= sizeof ex[n].want)
            fail_msg("EXPECTED.txt: line too long: %s", line);
        memcpy(ex[n].file, line, strlen(line) + 1);
        memcpy(ex[n].want, tab + 1, strlen(tab + 1) + 1);
        ex[n].seen = false;
        n++;
    }
    fclose(f);
    return n;
}

static void test_hostile_corpus(void **state) {
    (void)state;
    const char *data = getenv("EDGELLM_TEST_DATA");
    if (!data) fail_msg("EDGELLM_TEST_DATA is not set");
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s/hostile", data) >= (int)sizeof dir) fail_msg("path too long");
    static expectation ex[512];
    size_t n_ex = load_expectations(dir, ex, 512);
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot open %s", dir);
    size_t n_files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".gguf")) continue;
        char path[8192];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) fail_msg("path too long");
        expectation *x = NULL;
        for (size_t i = 0; i < n_ex; i++)
            if (!strcmp(ex[i].file, e->d_name)) x = &ex[i];
        if (!x) fail_msg("%s has no line in EXPECTED.txt", e->d_name);
        x->seen = true;
        /* Through mmap, and again from an exact-size heap copy so ASan sees overreads. */
        el_err err = {0};
        el_gguf *g = el_gguf_open(path, &err);
        if (g) fail_msg("%s: accepted", e->d_name);
        if (!strstr(err.message, x->want))
            fail_msg("%s: message '%s' lacks '%s'", e->d_name, err.message, x->want);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        static uint8_t raw[1 << 16];
        size_t got = fread(raw, 1, sizeof raw, f);
        fclose(f);
        void *copy;
        el_err err2 = {0};
        assert_null(open_exact(raw, got, &copy, &err2));
        assert_string_equal(err.message, err2.message);
        free(copy);
        n_files++;
    }
    closedir(d);
    for (size_t i = 0; i < n_ex; i++)
        if (!ex[i].seen) fail_msg("EXPECTED.txt names %s, which is missing", ex[i].file);
    assert_true(n_files >= 50);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_memory),
        cmocka_unit_test(test_roundtrip_file_mmap),
        cmocka_unit_test(test_writer_output_matches_layout),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_writer_refusals),
        cmocka_unit_test(test_copy_kvs),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_byte_flips),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_lookup_many),
        cmocka_unit_test(test_misaligned_arrays),
        cmocka_unit_test(test_hostile_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
