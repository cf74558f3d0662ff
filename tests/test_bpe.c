/* Byte-level BPE on small synthetic vocabularies written as GGUF: merge order
 * by rank (leftmost on ties), Llama 3's whole-token rule, the pre-tokenizer
 * regexes of each supported tokenizer.ggml.pre, lossless encode/decode of
 * arbitrary bytes (invalid UTF-8 included; run under ASan), long inputs, and
 * malformed metadata. Exactness against Hugging Face `tokenizers` on real
 * vocabularies is tests/test_bpe_vocab.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gguf/gguf.h"
#include "tokenizer/bpe.h"
#include "tokenizer/nfc.h"
#include "tokenizer/pretokenize.h"

/* ---- building vocabularies ------------------------------------------------------------------ */

/* GPT-2 byte -> code point (printable bytes stand for themselves; the rest go to U+0100..). */
static unsigned byte_cp(unsigned b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    unsigned n = 0;
    for (unsigned c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE)) n++;
    return 256 + n;
}

/* Raw bytes -> GPT-2 mapped UTF-8 text (malloc'd). */
static char *map_bytes(const char *raw, size_t len) {
    char *out = malloc(2 * len + 1), *p = out;
    for (size_t i = 0; i < len; i++) {
        unsigned cp = byte_cp((unsigned char)raw[i]);
        if (cp < 0x80) {
            *p++ = (char)cp;
        } else {
            *p++ = (char)(0xC0 | (cp >> 6));
            *p++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    *p = 0;
    return out;
}

typedef struct vocab_def {
    const char *pre;            /* NULL: no tokenizer.ggml.pre key */
    const char *const *extra;   /* extra tokens (raw bytes, NUL-terminated), ids 256.. */
    size_t n_extra;
    const char *const *merges;  /* raw "left" "right" pairs, 2 entries per merge */
    size_t n_merges;
    bool control_token;         /* append "<|end|>" as CONTROL with a token_type array */
    bool skip_merges_key;
    const char *raw_merge;      /* if set, one merge entry written verbatim */
    int types_delta;            /* token_type gets this many entries more than tokens */
} vocab_def;

static char tmp_path[256];

static el_bpe *make_bpe(const vocab_def *d, el_err *err) {
    size_t n = 256 + d->n_extra + (d->control_token ? 1 : 0);
    char **tokens = calloc(n, sizeof *tokens);
    for (unsigned b = 0; b < 256; b++) {
        char c = (char)b;
        tokens[b] = map_bytes(&c, 1);
    }
    for (size_t i = 0; i < d->n_extra; i++) tokens[256 + i] = map_bytes(d->extra[i], strlen(d->extra[i]));
    if (d->control_token) tokens[n - 1] = strdup("<|end|>");

    size_t n_m = d->n_merges + (d->raw_merge ? 1 : 0);
    char **merges = calloc(n_m + 1, sizeof *merges);
    for (size_t i = 0; i < d->n_merges; i++) {
        char *l = map_bytes(d->merges[2 * i], strlen(d->merges[2 * i]));
        char *r = map_bytes(d->merges[2 * i + 1], strlen(d->merges[2 * i + 1]));
        merges[i] = malloc(strlen(l) + strlen(r) + 2);
        sprintf(merges[i], "%s %s", l, r);
        free(l);
        free(r);
    }
    if (d->raw_merge) merges[n_m - 1] = strdup(d->raw_merge);

    el_gguf_writer *w = el_gguf_writer_new(32, err);
    assert_non_null(w);
    assert_int_equal(el_gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2", err), 0);
    if (d->pre) assert_int_equal(el_gguf_writer_add_str(w, "tokenizer.ggml.pre", d->pre, err), 0);
    assert_int_equal(el_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", (const char *const *)tokens, n, err), 0);
    if (d->control_token || d->types_delta) {
        size_t nt = (size_t)((long)n + d->types_delta);
        int32_t *types = calloc(nt, sizeof *types);
        for (size_t i = 0; i < nt; i++) types[i] = 1;
        if (d->control_token && nt >= n) types[n - 1] = 3;
        assert_int_equal(el_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", EL_GGUF_INT32, types, nt, err), 0);
        free(types);
    }
    if (!d->skip_merges_key)
        assert_int_equal(el_gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", (const char *const *)merges, n_m, err), 0);
    snprintf(tmp_path, sizeof tmp_path, "/tmp/test_bpe_%d.gguf", (int)getpid());
    assert_int_equal(el_gguf_writer_write_file(w, tmp_path, err), 0);
    el_gguf_writer_free(w);
    for (size_t i = 0; i < n; i++) free(tokens[i]);
    free(tokens);
    for (size_t i = 0; i < n_m; i++) free(merges[i]);
    free(merges);

    el_gguf *g = el_gguf_open(tmp_path, err);
    assert_non_null(g);
    el_bpe *b = el_bpe_create(g, err); /* keeps nothing that points into g */
    el_gguf_close(g);
    unlink(tmp_path);
    return b;
}

static const char *const EXTRA[] = {"he", "ll", " t", " the", "aa", "bc", "ab", "xy", "yz", "abc", " w", "or", " wor", "ld", " world"};
/* Ranks: "b c" before "a b"; "x y" before "y z". */
static const char *const MERGES[] = {"h", "e", "l", "l", " ", "t", " t", "he", "a", "a", "b", "c", "a", "b",
                                     "x", "y", "y", "z", " ", "w", "o", "r", " w", "or", "l", "d", " wor", "ld"};

static int32_t id_of(const el_bpe *b, const char *s) { return el_bpe_find(b, s, strlen(s)); }

static void expect_ids(const el_bpe *b, const char *text, size_t len, const int32_t *want, size_t n_want) {
    int32_t *ids;
    size_t n;
    el_err err = {0};
    assert_int_equal(el_bpe_encode(b, text, len, &ids, &n, &err), 0);
    if (n != n_want || (n && memcmp(ids, want, n * sizeof *ids) != 0)) {
        fprintf(stderr, "encode '%.*s': got", (int)len, text);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    assert_int_equal(n, n_want);
    if (n) assert_memory_equal(ids, want, n * sizeof *ids);
    free(ids);
}

/* Encode, decode every token, and require the input back byte for byte
 * (its NFC form for qwen2, which normalizes first). */
static void expect_roundtrip(const el_bpe *b, const char *text, size_t len) {
    int32_t *ids;
    size_t n;
    el_err err = {0};
    char *norm = NULL;
    if (strcmp(el_bpe_pre_name(b), "qwen2") == 0) {
        size_t norm_len;
        assert_int_equal(el_nfc(text, len, &norm, &norm_len, &err), 0);
        text = norm;
        len = norm_len;
    }
    assert_int_equal(el_bpe_encode(b, text, len, &ids, &n, &err), 0);
    assert_non_null(ids);
    char *back = malloc(len + 1);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        char piece[64];
        int k = el_bpe_token_bytes(b, ids[i], piece, sizeof piece);
        assert_true(k > 0 && (size_t)k <= sizeof piece);
        assert_true(m + (size_t)k <= len);
        memcpy(back + m, piece, (size_t)k);
        m += (size_t)k;
    }
    assert_int_equal(m, len);
    if (len) assert_memory_equal(back, text, len);
    free(back);
    free(ids);
    free(norm);
}

static el_bpe *standard_bpe(const char *pre) {
    vocab_def d = {pre, EXTRA, sizeof EXTRA / sizeof *EXTRA, MERGES, sizeof MERGES / sizeof *MERGES / 2,
                   true, false, NULL, 0};
    el_err err = {0};
    el_bpe *b = make_bpe(&d, &err);
    if (!b) fprintf(stderr, "%s\n", err.message);
    assert_non_null(b);
    return b;
}

/* ---- merges --------------------------------------------------------------------------------- */

static void test_merge_by_rank(void **state) {
    (void)state;
    el_bpe *b = standard_bpe("gpt2");
    assert_int_equal(el_bpe_n_vocab(b), 256 + (int32_t)(sizeof EXTRA / sizeof *EXTRA) + 1);
    assert_string_equal(el_bpe_pre_name(b), "gpt2");
    int32_t w1[] = {id_of(b, "he"), id_of(b, "ll"), 'o', id_of(b, " world")};
    expect_ids(b, "hello world", 11, w1, 4);
    int32_t w2[] = {id_of(b, " the")};
    expect_ids(b, " the", 4, w2, 1);
    /* Lower rank wins regardless of position: "b c" (rank 5) before "a b" (rank 6). */
    int32_t w3[] = {'a', id_of(b, "bc")};
    expect_ids(b, "abc", 3, w3, 2);
    /* "x y" (rank 7) before "y z" (rank 8). */
    int32_t w4[] = {id_of(b, "xy"), 'z'};
    expect_ids(b, "xyz", 3, w4, 2);
    /* Equal ranks: leftmost first. */
    int32_t w5[] = {id_of(b, "aa"), 'a'};
    expect_ids(b, "aaa", 3, w5, 2);
    int32_t w6[] = {id_of(b, "aa"), id_of(b, "aa"), id_of(b, "aa"), 'a'};
    expect_ids(b, "aaaaaaa", 7, w6, 4);
    /* Merges never cross pre-token boundaries: " the" and "he" pieces. */
    int32_t w7[] = {'t', id_of(b, "he"), id_of(b, " the")};
    expect_ids(b, "the the", 7, w7, 3);
    expect_ids(b, "", 0, NULL, 0);
    el_bpe_free(b);
}

static void test_ignore_merges_llama3(void **state) {
    (void)state;
    /* "abc" is a token but no merge path reaches it ("b c" then nothing joins a+bc). */
    el_bpe *b = standard_bpe("llama-bpe");
    int32_t whole[] = {id_of(b, "abc")};
    expect_ids(b, "abc", 3, whole, 1);
    el_bpe_free(b);
    b = standard_bpe("qwen2");
    int32_t merged[] = {'a', id_of(b, "bc")};
    expect_ids(b, "abc", 3, merged, 2);
    el_bpe_free(b);
}

static void test_token_bytes(void **state) {
    (void)state;
    el_bpe *b = standard_bpe(NULL);
    char buf[16];
    assert_int_equal(el_bpe_token_bytes(b, ' ', buf, sizeof buf), 1);
    assert_int_equal(buf[0], ' ');
    assert_int_equal(el_bpe_token_bytes(b, 0x0A, buf, sizeof buf), 1);
    assert_int_equal(buf[0], '\n');
    assert_int_equal(el_bpe_token_bytes(b, 0xFF, buf, sizeof buf), 1);
    assert_int_equal((unsigned char)buf[0], 0xFF);
    int32_t tw = id_of(b, " world");
    assert_int_equal(el_bpe_token_bytes(b, tw, buf, sizeof buf), 6);
    assert_memory_equal(buf, " world", 6);
    /* Too small: the length comes back, nothing is written. */
    memset(buf, 'X', sizeof buf);
    assert_int_equal(el_bpe_token_bytes(b, tw, buf, 3), 6);
    assert_int_equal(buf[0], 'X');
    /* Control tokens give their raw text and are not found by bytes. */
    int32_t end = el_bpe_n_vocab(b) - 1;
    assert_int_equal(el_bpe_token_bytes(b, end, buf, sizeof buf), 7);
    assert_memory_equal(buf, "<|end|>", 7);
    assert_int_equal(id_of(b, "<|end|>"), -1);
    assert_int_equal(el_bpe_token_bytes(b, -1, buf, sizeof buf), -1);
    assert_int_equal(el_bpe_token_bytes(b, end + 1, buf, sizeof buf), -1);
    el_bpe_free(b);
}

/* ---- pre-tokenizer -------------------------------------------------------------------------- */

typedef struct pieces {
    char buf[1024];
    size_t n;
} pieces;

static int collect(const char *piece, size_t len, void *ud) {
    pieces *p = ud;
    if (p->n + len + 2 > sizeof p->buf) return 1;
    memcpy(p->buf + p->n, piece, len);
    p->n += len;
    p->buf[p->n++] = '|';
    p->buf[p->n] = 0;
    return 0;
}

static void expect_split(const char *pre, const char *text, const char *want) {
    el_err err = {0};
    el_pretok *p = el_pretok_create(pre, strlen(pre), &err);
    assert_non_null(p);
    pieces got = {{0}, 0};
    assert_int_equal(el_pretok_split(p, text, strlen(text), collect, &got, &err), 0);
    if (strcmp(got.buf, want) != 0) fprintf(stderr, "%s: '%s' -> '%s'\n", pre, text, got.buf);
    assert_string_equal(got.buf, want);
    el_pretok_free(p);
}

static void test_pretokenize(void **state) {
    (void)state;
    expect_split("llama-bpe", "Hello world's 12345", "Hello| world|'s| |123|45|");
    expect_split("llama-bpe", "IT'S it'ſ", "IT|'S| it|'ſ|");
    expect_split("llama-bpe", "a  \n\n b", "a|  \n\n| b|");
    expect_split("llama-bpe", "x\xc2\x85\xc2\x85y", "x|\xc2\x85|\xc2\x85y|");
    expect_split("qwen2", "ab 12345", "ab| |1|2|3|4|5|");
    expect_split("gpt-4o", "HelloWorld's ABCdef 1234", "Hello|World's| ABCdef| |123|4|");
    expect_split("gpt-4o", "a/b\n//", "a|/b|\n|//|");
    expect_split("deepseek-v3", "abc1234中文def", "abc|123|4|中文|def|");
    expect_split("deepseek-v3", ".Hello ,world", ".Hello| ,|world|");
    expect_split("gpt2", "I'm  fine 2024!!", "I|'m| | fine| 2024|!!|");
    expect_split("default", "x  y", "x| | y|");
    expect_split("default", "Hello, world! 1234", "Hello|,| world|!| |123|4|");
    expect_split("smollm", "abc 123", "abc| |1|2|3|");
    expect_split("llama3", "ab", "ab|");          /* llama.cpp's aliases */
    expect_split("deepseek-r1-qwen", "12", "1|2|");
    expect_split("llama4", "ABCdef", "ABCdef|");

    el_err err = {0};
    el_pretok *d = el_pretok_create(NULL, 0, &err); /* key absent: llama.cpp's default */
    assert_string_equal(el_pretok_name(d), "default");
    assert_false(el_pretok_ignore_merges(d));
    el_pretok_free(d);
    d = el_pretok_create("qwen2", 5, &err);
    assert_true(el_pretok_nfc(d));
    el_pretok_free(d);
    d = el_pretok_create("llama-v3", 8, &err);
    assert_true(el_pretok_ignore_merges(d));
    assert_string_equal(el_pretok_name(d), "llama-bpe");
    el_pretok_free(d);
    assert_null(el_pretok_create("no-such-pre", 11, &err));
    assert_int_equal(err.code, EDGELLM_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "no-such-pre"));

    /* A callback's stop propagates. */
    el_pretok *p = el_pretok_create("gpt2", 4, &err);
    pieces small = {{0}, sizeof small.buf - 4};
    assert_int_equal(el_pretok_split(p, "abc def", 7, collect, &small, &err), -1);
    el_pretok_free(p);
}

/* ---- arbitrary bytes ------------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static const char *const PRES[] = {"llama-bpe", "qwen2", "gpt-4o", "deepseek-v3", "gpt2", "smollm", "default"};

static void test_invalid_utf8_roundtrip(void **state) {
    (void)state;
    static const char *const cases[] = {
        "\xff", "\xfe\xff", "abc\xc3", "\xc3(", "\xe2\x82", "\xe2\x82(", "\xf0\x9f\x98", "\xc0\xaf",
        "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80\x80\x80", "a\xf0\x9f\x98\x80\xff b's", " \xa0\xa0",
        ("it\xff's 12\xff""34"), "\xe4\xb8\xad\xff\xe6\x96\x87",
    };
    /* Pieces of valid UTF-8 mixed into the random bytes make the regexes match around them. */
    static const char *const frags[] = {" the", "'s", "123", "\n\n", "  ", "é", "中文", "😀", "\xc2\x85", "\t"};
    for (size_t k = 0; k < sizeof PRES / sizeof *PRES; k++) {
        el_bpe *b = standard_bpe(PRES[k]);
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) expect_roundtrip(b, cases[i], strlen(cases[i]));
        expect_roundtrip(b, "a\0b\0\0 c", 7);
        uint64_t s = 0x9E3779B97F4A7C15ull + k;
        char buf[512];
        for (int it = 0; it < 400; it++) {
            size_t len = rng_next(&s) % 300, n = 0;
            while (n < len) {
                uint64_t r = rng_next(&s);
                if (r % 4 == 0) {
                    const char *f = frags[(r >> 8) % (sizeof frags / sizeof *frags)];
                    size_t fl = strlen(f);
                    if (n + fl > sizeof buf) break;
                    memcpy(buf + n, f, fl);
                    n += fl;
                } else {
                    buf[n++] = (char)(r >> 16);
                }
            }
            expect_roundtrip(b, buf, n);
        }
        el_bpe_free(b);
    }
}

static void test_long_inputs(void **state) {
    (void)state;
    size_t len = 1 << 20;
    char *text = malloc(len);
    el_bpe *b = standard_bpe("llama-bpe");
    /* One huge whitespace piece, then one huge letter piece merged pairwise. */
    for (size_t i = 0; i < len; i++) text[i] = " \t \r\n"[i % 5];
    expect_roundtrip(b, text, len);
    size_t n_a = 200001;
    memset(text, 'a', n_a);
    int32_t *ids;
    size_t n;
    el_err err = {0};
    assert_int_equal(el_bpe_encode(b, text, n_a, &ids, &n, &err), 0);
    assert_int_equal(n, n_a / 2 + 1);
    assert_int_equal(ids[0], id_of(b, "aa"));
    assert_int_equal(ids[n - 1], 'a');
    free(ids);
    /* Many short pieces. */
    for (size_t i = 0; i < len; i++) text[i] = "the 1 ,"[i % 7];
    expect_roundtrip(b, text, len);
    el_bpe_free(b);
    free(text);
}

/* ---- NFC ---------------------------------------------------------------------------------- */

static void expect_nfc(const char *in, size_t len, const char *want) {
    char *out;
    size_t n;
    el_err err = {0};
    assert_int_equal(el_nfc(in, len, &out, &n, &err), 0);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    free(out);
}

static void test_nfc(void **state) {
    (void)state;
    expect_nfc("e\xcc\x81", 3, "\xc3\xa9");                           /* e + acute */
    expect_nfc("a\xcc\xa3\xcc\x82", 5, "\xe1\xba\xad");               /* dot below, circumflex */
    expect_nfc("a\xcc\x82\xcc\xa3", 5, "\xe1\xba\xad");               /* marks reordered by class */
    expect_nfc("\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", 9, "\xea\xb0\x81"); /* Hangul L V T */
    expect_nfc("\xe2\x84\xab", 3, "\xc3\x85");                        /* ANGSTROM SIGN */
    expect_nfc("\xe0\xa5\x98", 3, "\xe0\xa4\x95\xe0\xa4\xbc");         /* excluded composite */
    expect_nfc("\xff\xcc\x81", 3, "\xff\xcc\x81");                     /* invalid byte blocks */
    expect_nfc("e\xff" "e\xcc\x81", 5, "e\xff\xc3\xa9");
    expect_nfc("\xcc\x81" "e", 3, "\xcc\x81" "e");                           /* leading mark stays */
    expect_nfc("", 0, "");
    assert_true(el_nfc_quick_check("hello", 5));
    assert_true(el_nfc_quick_check("\xc3\xa9\xe4\xb8\xad", 5));
    assert_false(el_nfc_quick_check("e\xcc\x81", 3));
    assert_false(el_nfc_quick_check("\xe2\x84\xab", 3));
}

/* ---- malformed metadata --------------------------------------------------------------------- */

static void expect_create_fails(const vocab_def *d, edgellm_status code, const char *needle) {
    el_err err = {0};
    el_bpe *b = make_bpe(d, &err);
    assert_null(b);
    assert_int_equal(err.code, code);
    if (!strstr(err.message, needle)) fprintf(stderr, "message: %s\n", err.message);
    assert_non_null(strstr(err.message, needle));
}

static void test_bad_metadata(void **state) {
    (void)state;
    vocab_def d = {"gpt2", EXTRA, 2, MERGES, 2, false, false, NULL, 0};
    d.skip_merges_key = true;
    expect_create_fails(&d, EDGELLM_ENOTFOUND, "tokenizer.ggml.merges");
    d.skip_merges_key = false;
    d.raw_merge = "nospace";
    expect_create_fails(&d, EDGELLM_EFORMAT, "merges[2]");
    d.raw_merge = NULL;
    d.types_delta = -1;
    expect_create_fails(&d, EDGELLM_EFORMAT, "token_type");
    d.types_delta = 0;
    d.pre = "mystery";
    expect_create_fails(&d, EDGELLM_EUNSUPPORTED, "mystery");

    /* Merges naming unknown tokens are skipped, not fatal. */
    d.pre = "gpt2";
    d.raw_merge = "zz qq";
    el_err err = {0};
    el_bpe *b = make_bpe(&d, &err);
    assert_non_null(b);
    int32_t want[] = {id_of(b, "he"), id_of(b, "ll"), 'o'};
    expect_ids(b, "hello", 5, want, 3);
    el_bpe_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_by_rank),
        cmocka_unit_test(test_ignore_merges_llama3),
        cmocka_unit_test(test_token_bytes),
        cmocka_unit_test(test_pretokenize),
        cmocka_unit_test(test_invalid_utf8_roundtrip),
        cmocka_unit_test(test_long_inputs),
        cmocka_unit_test(test_nfc),
        cmocka_unit_test(test_bad_metadata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
