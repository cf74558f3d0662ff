/* edgellm inspect: what a GGUF file holds — summary facts, every metadata key,
 * the tensor table and a per-type summary — as text or as one JSON object. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "quant/quant.h"

#define ARRAY_SHOW 8     /* arrays up to this long are shown whole */
#define ARRAY_HEAD 3     /* longer ones: this many elements, then "..." */
#define TEXT_STR_MAX 120 /* text mode cuts long strings (chat templates) here */

static void usage(FILE *f) {
    fprintf(f,
            "usage: edgellm inspect [--json] [--help] MODEL.gguf\n"
            "\n"
            "Show what a GGUF model file holds: architecture, name, parameter count, file type,\n"
            "context and embedding length, block and head counts, vocabulary size, every\n"
            "metadata key with its type and value, the tensor table (name, type, shape, bytes),\n"
            "a per-type summary, total tensor bytes, file size and bits per weight.\n"
            "The file is validated fully first; a malformed file is reported, not shown.\n"
            "\n"
            "options:\n"
            "  --json     print one JSON object with the same facts (metadata values typed;\n"
            "             arrays longer than %d elements give their count and first %d; u64\n"
            "             values above 2^63-1 are decimal strings, NaN and infinities null)\n"
            "  -h, --help show this help\n"
            "\n"
            "exit status: 0 shown, 1 the file cannot be read or is malformed, 2 wrong usage\n",
            ARRAY_SHOW, ARRAY_SHOW);
}

/* ---- facts derived from the file ---- */

/* llama.cpp's llama_ftype names, as general.file_type stores them. */
static const char *file_type_name(uint64_t ft) {
    static const char *const NAMES[] = {
        [0] = "ALL_F32",           [1] = "MOSTLY_F16",        [2] = "MOSTLY_Q4_0",
        [3] = "MOSTLY_Q4_1",       [4] = "MOSTLY_Q4_1_SOME_F16", [7] = "MOSTLY_Q8_0",
        [8] = "MOSTLY_Q5_0",       [9] = "MOSTLY_Q5_1",       [10] = "MOSTLY_Q2_K",
        [11] = "MOSTLY_Q3_K_S",    [12] = "MOSTLY_Q3_K_M",    [13] = "MOSTLY_Q3_K_L",
        [14] = "MOSTLY_Q4_K_S",    [15] = "MOSTLY_Q4_K_M",    [16] = "MOSTLY_Q5_K_S",
        [17] = "MOSTLY_Q5_K_M",    [18] = "MOSTLY_Q6_K",      [19] = "MOSTLY_IQ2_XXS",
        [20] = "MOSTLY_IQ2_XS",    [21] = "MOSTLY_Q2_K_S",    [22] = "MOSTLY_IQ3_XS",
        [23] = "MOSTLY_IQ3_XXS",   [24] = "MOSTLY_IQ1_S",     [25] = "MOSTLY_IQ4_NL",
        [26] = "MOSTLY_IQ3_S",     [27] = "MOSTLY_IQ3_M",     [28] = "MOSTLY_IQ2_S",
        [29] = "MOSTLY_IQ2_M",     [30] = "MOSTLY_IQ4_XS",    [31] = "MOSTLY_IQ1_M",
        [32] = "MOSTLY_BF16",      [36] = "MOSTLY_TQ1_0",     [37] = "MOSTLY_TQ2_0",
        [38] = "MOSTLY_MXFP4_MOE",
    };
    if (ft < sizeof NAMES / sizeof NAMES[0] && NAMES[ft]) return NAMES[ft];
    return ft == 1024 ? "GUESSED" : "unknown";
}

typedef struct type_sum {
    uint64_t count, bytes, elements;
} type_sum;

typedef struct facts {
    char arch[64]; /* NUL-terminated copy; empty when absent */
    el_gguf_str name;
    bool has_name, has_ft;
    uint64_t file_type;
    /* "arch.suffix" values; has_* false when absent or not an integer */
    uint32_t ctx, embd, blocks, heads, heads_kv;
    bool has_ctx, has_embd, has_blocks, has_heads, has_heads_kv;
    bool has_vocab;
    uint64_t vocab;
    uint64_t params, tensor_bytes;
    type_sum by_type[EL_TYPE_COUNT];
} facts;

static uint64_t tensor_elements(const el_gguf_tensor *t) {
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; /* the reader bounded this product */
}

static bool arch_u32(const el_gguf *g, const char *arch, const char *suffix, uint32_t *out) {
    return arch[0] && el_gguf_get_arch_u32(g, arch, suffix, out, NULL) == 0;
}

static void gather_facts(const el_gguf *g, facts *f) {
    memset(f, 0, sizeof *f);
    el_gguf_str s;
    if (el_gguf_get_str(g, "general.architecture", &s, NULL) == 0 && s.len < sizeof f->arch &&
        !memchr(s.data, 0, (size_t)s.len)) {
        memcpy(f->arch, s.data, (size_t)s.len);
        f->arch[s.len] = '\0';
    }
    f->has_name = el_gguf_get_str(g, "general.name", &f->name, NULL) == 0;
    f->has_ft = el_gguf_get_u64(g, "general.file_type", &f->file_type, NULL) == 0;
    f->has_ctx = arch_u32(g, f->arch, "context_length", &f->ctx);
    f->has_embd = arch_u32(g, f->arch, "embedding_length", &f->embd);
    f->has_blocks = arch_u32(g, f->arch, "block_count", &f->blocks);
    f->has_heads = arch_u32(g, f->arch, "attention.head_count", &f->heads);
    f->has_heads_kv = arch_u32(g, f->arch, "attention.head_count_kv", &f->heads_kv);
    const void *data;
    f->has_vocab = el_gguf_get_arr(g, "tokenizer.ggml.tokens", EL_GGUF_STRING, &f->vocab, &data, NULL) == 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const el_gguf_tensor *t = &g->tensors[i];
        uint64_t n = tensor_elements(t);
        f->params += n;
        f->tensor_bytes += t->nbytes;
        type_sum *ts = &f->by_type[t->type]; /* the reader refused ids past EL_TYPE_COUNT */
        ts->count++;
        ts->bytes += t->nbytes;
        ts->elements += n;
    }
}

/* ---- strings: the file's bytes made valid UTF-8 (invalid sequences become U+FFFD) ---- */

static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* Returns a malloc'd valid UTF-8 copy of s (NUL-terminated; *out_len excludes the NUL). */
static char *utf8_clean(const char *s, uint64_t len, size_t *out_len) {
    if (len > (SIZE_MAX - 1) / 3) return NULL;
    char *out = malloc((size_t)len * 3 + 1), *o = out;
    if (!out) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t k = utf8_seq_len(p + i, (size_t)len - i);
        if (k == 0) {
            memcpy(o, "\xef\xbf\xbd", 3), o += 3, i++;
        } else {
            memcpy(o, p + i, k), o += k, i += k;
        }
    }
    *o = '\0';
    if (out_len) *out_len = (size_t)(o - out);
    return out;
}

/* Text mode: a key or tensor name as valid UTF-8 with control characters shown as '?',
 * so a hostile name cannot send terminal escapes. Caller frees. */
static char *display_name(const char *s, uint64_t len) {
    char *clean = utf8_clean(s, len, NULL);
    if (clean)
        for (char *p = clean; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return clean;
}

/* Text mode: a quoted string with control characters escaped, cut at max bytes. */
static void print_quoted(FILE *f, const char *s, uint64_t len, size_t max) {
    bool cut = len > max;
    size_t n;
    char *clean = utf8_clean(s, cut ? max : len, &n);
    if (!clean) {
        fprintf(f, "(%" PRIu64 " bytes)", len);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)clean[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\x%02x", c);
        else fputc(c, f);
    }
    fputc('"', f);
    if (cut) fprintf(f, "... (%" PRIu64 " bytes)", len);
    free(clean);
}

/* ---- array elements ---- */

static uint64_t load_le(const uint8_t *b, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}

typedef struct scalar {
    uint32_t type;
    uint64_t u;
    int64_t i;
    double f;
} scalar;

/* Element i of a numeric array (data is little-endian, as in the file). */
static scalar array_elem(const el_gguf_kv *kv, uint64_t i) {
    static const uint8_t SIZES[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    scalar s = {.type = kv->v.arr.type};
    size_t sz = SIZES[s.type];
    uint64_t raw = load_le((const uint8_t *)kv->v.arr.data + i * sz, sz);
    switch (s.type) {
    case EL_GGUF_INT8: s.i = (int8_t)(uint8_t)raw; break;
    case EL_GGUF_INT16: s.i = (int16_t)(uint16_t)raw; break;
    case EL_GGUF_INT32: s.i = (int32_t)(uint32_t)raw; break;
    case EL_GGUF_INT64: s.i = (int64_t)raw; break;
    case EL_GGUF_FLOAT32: {
        uint32_t u = (uint32_t)raw;
        float x;
        memcpy(&x, &u, 4);
        s.f = x;
        break;
    }
    case EL_GGUF_FLOAT64: memcpy(&s.f, &raw, 8); break;
    default: s.u = raw; break;
    }
    return s;
}

static scalar kv_scalar(const el_gguf_kv *kv) {
    return (scalar){.type = kv->type, .u = kv->v.u64, .i = kv->v.i64, .f = kv->v.f64};
}

static bool is_signed_type(uint32_t t) {
    return t == EL_GGUF_INT8 || t == EL_GGUF_INT16 || t == EL_GGUF_INT32 || t == EL_GGUF_INT64;
}

static void print_scalar(FILE *f, scalar s) {
    if (s.type == EL_GGUF_BOOL) fputs(s.u ? "true" : "false", f);
    else if (s.type == EL_GGUF_FLOAT32) fprintf(f, "%.9g", s.f);
    else if (s.type == EL_GGUF_FLOAT64) fprintf(f, "%.17g", s.f);
    else if (is_signed_type(s.type)) fprintf(f, "%" PRId64, s.i);
    else fprintf(f, "%" PRIu64, s.u);
}

/* ---- text output ---- */

static void print_array(FILE *f, const el_gguf_kv *kv) {
    uint64_t n = kv->v.arr.n, show = n <= ARRAY_SHOW ? n : ARRAY_HEAD;
    fprintf(f, "[%" PRIu64 " x %s]", n, el_gguf_value_type_name(kv->v.arr.type));
    for (uint64_t i = 0; i < show; i++) {
        fputs(i ? ", " : " ", f);
        if (kv->v.arr.type == EL_GGUF_STRING)
            print_quoted(f, kv->v.arr.strs[i].data, kv->v.arr.strs[i].len, 40);
        else
            print_scalar(f, array_elem(kv, i));
    }
    if (show < n) fputs(", ...", f);
}

static void print_value(FILE *f, const el_gguf_kv *kv) {
    if (kv->type == EL_GGUF_STRING) print_quoted(f, kv->v.str.data, kv->v.str.len, TEXT_STR_MAX);
    else if (kv->type == EL_GGUF_ARRAY) print_array(f, kv);
    else print_scalar(f, kv_scalar(kv));
}

static void print_opt_u32(const char *label, bool has, uint32_t v) {
    if (has) printf("%-18s %" PRIu32 "\n", label, v);
    else printf("%-18s -\n", label);
}

static void print_shape(char *buf, size_t cap, const el_gguf_tensor *t) {
    size_t n = 0;
    buf[0] = '\0';
    uint32_t dims = t->n_dims ? t->n_dims : 1;
    for (uint32_t j = 0; j < dims && n < cap; j++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRIu64, j ? " x " : "", t->ne[j]);
}

static void print_text(const char *path, const el_gguf *g, const facts *f) {
    printf("%-18s %s\n", "file:", path);
    printf("%-18s %zu bytes (%.1f MiB), GGUF v%" PRIu32 ", alignment %" PRIu64
           ", data at offset %" PRIu64 "\n",
           "file size:", g->size, g->size / 1048576.0, g->version, g->alignment, g->data_offset);
    char *arch = display_name(f->arch, strlen(f->arch));
    printf("%-18s %s\n", "architecture:", arch && arch[0] ? arch : "-");
    free(arch);
    printf("%-18s ", "name:");
    if (f->has_name) print_quoted(stdout, f->name.data, f->name.len, TEXT_STR_MAX);
    else fputs("-", stdout);
    putchar('\n');
    printf("%-18s %" PRIu64 " (%.2f M)\n", "parameters:", f->params, f->params / 1e6);
    if (f->has_ft) printf("%-18s %s (%" PRIu64 ")\n", "file type:", file_type_name(f->file_type), f->file_type);
    else printf("%-18s -\n", "file type:");
    print_opt_u32("context length:", f->has_ctx, f->ctx);
    print_opt_u32("embedding length:", f->has_embd, f->embd);
    print_opt_u32("block count:", f->has_blocks, f->blocks);
    print_opt_u32("head count:", f->has_heads, f->heads);
    print_opt_u32("head count kv:", f->has_heads_kv, f->heads_kv);
    if (f->has_vocab) printf("%-18s %" PRIu64 "\n", "vocabulary size:", f->vocab);
    else printf("%-18s -\n", "vocabulary size:");
    printf("%-18s %" PRIu64 " (%.1f MiB)\n", "tensor bytes:", f->tensor_bytes, f->tensor_bytes / 1048576.0);
    if (f->params) printf("%-18s %.3f\n", "bits per weight:", f->tensor_bytes * 8.0 / (double)f->params);
    else printf("%-18s -\n", "bits per weight:");
    /* ---- runnable: yes/no (why) ----
     * The model layer's check: architecture known, hyperparameters valid, every tensor
     * present with the expected shape and a type we compute with. */
    char why[512];
    if (el_model_check_supported(g, why, sizeof why)) printf("%-18s yes\n", "runnable:");
    else printf("%-18s no (%s)\n", "runnable:", why);

    size_t kw = 0;
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key.len > kw) kw = (size_t)g->kv[i].key.len;
    if (kw > 48) kw = 48;
    printf("\nmetadata (%" PRIu64 " keys):\n", g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const el_gguf_kv *kv = &g->kv[i];
        char *key = display_name(kv->key.data, kv->key.len);
        printf("  %-*s %-6s ", (int)kw, key ? key : "?", el_gguf_value_type_name(kv->type));
        free(key);
        print_value(stdout, kv);
        putchar('\n');
    }

    size_t nw = 4;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (strlen(g->tensors[i].name) > nw) nw = strlen(g->tensors[i].name);
    printf("\ntensors (%" PRIu64 "):\n  %-*s %-8s %-24s %12s\n", g->n_tensors, (int)nw, "name", "type",
           "shape", "bytes");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const el_gguf_tensor *t = &g->tensors[i];
        char shape[128];
        print_shape(shape, sizeof shape, t);
        char *name = display_name(t->name, strlen(t->name));
        printf("  %-*s %-8s %-24s %12" PRIu64 "\n", (int)nw, name ? name : "?", el_type_name(t->type),
               shape, t->nbytes);
        free(name);
    }

    printf("\ntensor types:\n  %-8s %7s %14s %14s %8s\n", "type", "tensors", "elements", "bytes", "bpw");
    for (uint32_t ty = 0; ty < EL_TYPE_COUNT; ty++) {
        const type_sum *ts = &f->by_type[ty];
        if (!ts->count) continue;
        printf("  %-8s %7" PRIu64 " %14" PRIu64 " %14" PRIu64, el_type_name(ty), ts->count, ts->elements,
               ts->bytes);
        if (ts->elements) printf(" %8.3f\n", ts->bytes * 8.0 / (double)ts->elements);
        else printf(" %8s\n", "-");
    }
}

/* ---- JSON output ---- */

static json_t *json_str(const char *s, uint64_t len) {
    size_t n;
    char *clean = utf8_clean(s, len, &n);
    if (!clean) return json_null();
    json_t *j = json_stringn(clean, n);
    free(clean);
    return j ? j : json_null();
}

static json_t *json_u64(uint64_t v) {
    /* jansson integers are signed 64-bit: larger values go out as decimal strings. */
    if (v <= (uint64_t)INT64_MAX) return json_integer((json_int_t)v);
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return json_string(buf);
}

static json_t *json_scalar(scalar s) {
    if (s.type == EL_GGUF_BOOL) return json_boolean(s.u);
    if (s.type == EL_GGUF_FLOAT32 || s.type == EL_GGUF_FLOAT64)
        return isfinite(s.f) ? json_real(s.f) : json_null(); /* JSON has no NaN or infinity */
    if (is_signed_type(s.type)) return json_integer((json_int_t)s.i);
    return json_u64(s.u);
}

static json_t *json_kv(const el_gguf_kv *kv) {
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string(el_gguf_value_type_name(kv->type)));
    if (kv->type == EL_GGUF_STRING) {
        json_object_set_new(o, "value", json_str(kv->v.str.data, kv->v.str.len));
    } else if (kv->type == EL_GGUF_ARRAY) {
        uint64_t n = kv->v.arr.n, show = n <= ARRAY_SHOW ? n : ARRAY_SHOW;
        json_object_set_new(o, "element_type", json_string(el_gguf_value_type_name(kv->v.arr.type)));
        json_object_set_new(o, "count", json_u64(n));
        json_t *vals = json_array();
        for (uint64_t i = 0; i < show; i++)
            json_array_append_new(vals, kv->v.arr.type == EL_GGUF_STRING
                                            ? json_str(kv->v.arr.strs[i].data, kv->v.arr.strs[i].len)
                                            : json_scalar(array_elem(kv, i)));
        json_object_set_new(o, "values", vals);
        json_object_set_new(o, "truncated", json_boolean(show < n));
    } else {
        json_object_set_new(o, "value", json_scalar(kv_scalar(kv)));
    }
    return o;
}

static json_t *json_opt_u32(bool has, uint32_t v) { return has ? json_integer(v) : json_null(); }

static int print_json(const char *path, const el_gguf *g, const facts *f) {
    json_t *root = json_object();
    json_object_set_new(root, "file", json_str(path, strlen(path)));
    json_object_set_new(root, "file_size", json_u64(g->size));
    json_object_set_new(root, "version", json_integer(g->version));
    json_object_set_new(root, "alignment", json_u64(g->alignment));
    json_object_set_new(root, "data_offset", json_u64(g->data_offset));
    json_object_set_new(root, "architecture", f->arch[0] ? json_str(f->arch, strlen(f->arch)) : json_null());
    json_object_set_new(root, "name", f->has_name ? json_str(f->name.data, f->name.len) : json_null());
    json_object_set_new(root, "parameters", json_u64(f->params));
    if (f->has_ft) {
        json_t *ft = json_object();
        json_object_set_new(ft, "id", json_u64(f->file_type));
        json_object_set_new(ft, "name", json_string(file_type_name(f->file_type)));
        json_object_set_new(root, "file_type", ft);
    } else {
        json_object_set_new(root, "file_type", json_null());
    }
    json_object_set_new(root, "context_length", json_opt_u32(f->has_ctx, f->ctx));
    json_object_set_new(root, "embedding_length", json_opt_u32(f->has_embd, f->embd));
    json_object_set_new(root, "block_count", json_opt_u32(f->has_blocks, f->blocks));
    json_object_set_new(root, "head_count", json_opt_u32(f->has_heads, f->heads));
    json_object_set_new(root, "head_count_kv", json_opt_u32(f->has_heads_kv, f->heads_kv));
    json_object_set_new(root, "vocab_size", f->has_vocab ? json_u64(f->vocab) : json_null());
    json_object_set_new(root, "tensor_count", json_u64(g->n_tensors));
    json_object_set_new(root, "tensor_bytes", json_u64(f->tensor_bytes));
    json_object_set_new(root, "bits_per_weight",
                        f->params ? json_real(f->tensor_bytes * 8.0 / (double)f->params) : json_null());
    char why[512];
    const bool runnable = el_model_check_supported(g, why, sizeof why);
    json_object_set_new(root, "runnable", json_boolean(runnable));
    json_object_set_new(root, "runnable_reason", runnable ? json_null() : json_str(why, strlen(why)));

    json_t *meta = json_object();
    for (uint64_t i = 0; i < g->n_kv; i++) {
        size_t klen;
        char *key = utf8_clean(g->kv[i].key.data, g->kv[i].key.len, &klen);
        if (key) json_object_setn_new(meta, key, klen, json_kv(&g->kv[i]));
        free(key);
    }
    json_object_set_new(root, "metadata", meta);

    json_t *tensors = json_array();
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const el_gguf_tensor *t = &g->tensors[i];
        json_t *o = json_object(), *shape = json_array();
        for (uint32_t j = 0; j < (t->n_dims ? t->n_dims : 1); j++) json_array_append_new(shape, json_u64(t->ne[j]));
        json_object_set_new(o, "name", json_str(t->name, strlen(t->name)));
        json_object_set_new(o, "type", json_string(el_type_name(t->type)));
        json_object_set_new(o, "shape", shape);
        json_object_set_new(o, "elements", json_u64(tensor_elements(t)));
        json_object_set_new(o, "offset", json_u64(t->offset));
        json_object_set_new(o, "bytes", json_u64(t->nbytes));
        json_array_append_new(tensors, o);
    }
    json_object_set_new(root, "tensors", tensors);

    json_t *types = json_object();
    for (uint32_t ty = 0; ty < EL_TYPE_COUNT; ty++) {
        const type_sum *ts = &f->by_type[ty];
        if (!ts->count) continue;
        json_t *o = json_object();
        json_object_set_new(o, "tensors", json_u64(ts->count));
        json_object_set_new(o, "elements", json_u64(ts->elements));
        json_object_set_new(o, "bytes", json_u64(ts->bytes));
        json_object_set_new(types, el_type_name(ty), o);
    }
    json_object_set_new(root, "tensor_types", types);

    int rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    putchar('\n');
    json_decref(root);
    return rc;
}

int cmd_inspect(int argc, char **argv) {
    bool json = false, opts = true;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            usage(stdout);
            return 0;
        } else if (opts && !strcmp(a, "--json")) {
            json = true;
        } else if (opts && !strcmp(a, "--")) {
            opts = false;
        } else if (opts && a[0] == '-' && a[1]) {
            fprintf(stderr, "edgellm inspect: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (path) {
            fprintf(stderr, "edgellm inspect: one model at a time ('%s' and '%s')\n", path, a);
            usage(stderr);
            return 2;
        } else {
            path = a;
        }
    }
    if (!path) {
        fprintf(stderr, "edgellm inspect: no model file given\n");
        usage(stderr);
        return 2;
    }
    el_err err = {0};
    el_gguf *g = el_gguf_open(path, &err);
    if (!g) {
        fprintf(stderr, "edgellm: %s: %s\n", path, err.message);
        return 1;
    }
    facts *f = malloc(sizeof *f);
    if (!f) {
        fprintf(stderr, "edgellm: out of memory\n");
        el_gguf_close(g);
        return 1;
    }
    gather_facts(g, f);
    int rc = 0;
    if (json) rc = print_json(path, g, f) ? 1 : 0;
    else print_text(path, g, f);
    if (fflush(stdout) != 0) rc = 1;
    free(f);
    el_gguf_close(g);
    return rc;
}
