/* SentencePiece tokenizer on small synthetic vocabularies written with the GGUF
 * writer: merge order by score (ties leftmost), byte fallback, space prefix on
 * and off, special-token splitting (user-defined always, control only with
 * parse_special, longest token first as llama.cpp, Phi-3 right-strip), pieces,
 * streaming decode of characters split over byte tokens, EOG detection,
 * random bytes (never crash, round trip), a byte-level BPE vocabulary through
 * the same front end, and load errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

enum { T_NORMAL = 1, T_UNKNOWN = 2, T_CONTROL = 3, T_USER = 4, T_BYTE = 6 };

typedef struct tok_def {
    const char *text;
    float score;
    int type;
} tok_def;

/* Ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then these. */
static const tok_def WORDS[] = {
    {"\xe2\x96\x81", -5.0f, T_NORMAL},       /* 259 ▁ */
    {"a", -3.0f, T_NORMAL},                  /* 260 */
    {"b", -3.0f, T_NORMAL},                  /* 261 */
    {"c", -3.0f, T_NORMAL},                  /* 262 */
    {"d", -3.0f, T_NORMAL},                  /* 263 */
    {"ab", -1.0f, T_NORMAL},                 /* 264 */
    {"bc", -0.5f, T_NORMAL},                 /* 265 */
    {"abc", -2.0f, T_NORMAL},                /* 266 */
    {"cd", -0.1f, T_NORMAL},                 /* 267 */
    {"\xe2\x96\x81" "a", -0.2f, T_NORMAL},   /* 268 ▁a */
    {"\xe2\x96\x81" "ab", -0.3f, T_NORMAL},  /* 269 ▁ab */
    {"aa", -1.0f, T_NORMAL},                 /* 270 */
    {"\xc3\xa9", -2.0f, T_NORMAL},           /* 271 é */
    {"h", -3.0f, T_NORMAL},                  /* 272 */
    {"i", -3.0f, T_NORMAL},                  /* 273 */
    {"hi", -1.0f, T_NORMAL},                 /* 274 */
    {"\xe2\x96\x81" "hi", -0.5f, T_NORMAL},  /* 275 ▁hi */
    {"<ctl>", 0.0f, T_CONTROL},              /* 276 */
    {"<user>", 0.0f, T_USER},                /* 277 */
    {"pqr", 0.0f, T_USER},                   /* 278 */
    {"qrstu", 0.0f, T_USER},                 /* 279 */
    {"<end_of_turn>", 0.0f, T_CONTROL},      /* 280 */
    {"<|end|>", 0.0f, T_CONTROL},            /* 281 */
    {"<unused7>", 0.0f, T_CONTROL},          /* 282 */
};
enum { N_WORDS = sizeof(WORDS) / sizeof(WORDS[0]), N_VOCAB = 259 + N_WORDS };
enum { ID_SP = 259, ID_A, ID_B, ID_C, ID_D, ID_AB, ID_BC, ID_ABC, ID_CD, ID_SP_A, ID_SP_AB, ID_AA, ID_EACUTE, ID_H,
       ID_I, ID_HI, ID_SP_HI, ID_CTL, ID_USER, ID_PQR, ID_QRSTU, ID_EOT, ID_END, ID_UNUSED };
#define BYTE_ID(b) (3 + (b))

typedef struct vocab_opts {
    const char *model;   /* tokenizer.ggml.model */
    const char *name;    /* general.name, or NULL */
    int space_prefix;    /* -1: key absent */
    bool scores_short;   /* write one score too few */
    bool tokens_as_u32;  /* write tokenizer.ggml.tokens with a wrong type */
} vocab_opts;

static char g_path[64];

/* Build the vocabulary GGUF in a temp file and open it. */
static el_gguf *make_vocab(const vocab_opts *o, el_err *err) {
    const char *texts[N_VOCAB];
    float scores[N_VOCAB];
    int32_t types[N_VOCAB];
    static char bytes[256][7];
    texts[0] = "<unk>", texts[1] = "<s>", texts[2] = "</s>";
    types[0] = T_UNKNOWN, types[1] = T_CONTROL, types[2] = T_CONTROL;
    scores[0] = scores[1] = scores[2] = 0.0f;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        texts[3 + b] = bytes[b];
        types[3 + b] = T_BYTE;
        scores[3 + b] = 0.0f;
    }
    for (int i = 0; i < N_WORDS; i++) {
        texts[259 + i] = WORDS[i].text;
        scores[259 + i] = WORDS[i].score;
        types[259 + i] = WORDS[i].type;
    }
    el_gguf_writer *w = el_gguf_writer_new(32, err);
    assert_non_null(w);
    assert_int_equal(el_gguf_writer_add_str(w, "general.architecture", "llama", err), 0);
    if (o->name) assert_int_equal(el_gguf_writer_add_str(w, "general.name", o->name, err), 0);
    assert_int_equal(el_gguf_writer_add_str(w, "tokenizer.ggml.model", o->model ? o->model : "llama", err), 0);
    if (o->tokens_as_u32) assert_int_equal(el_gguf_writer_add_u32(w, "tokenizer.ggml.tokens", 5, err), 0);
    else assert_int_equal(el_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", texts, N_VOCAB, err), 0);
    assert_int_equal(el_gguf_writer_add_arr(w, "tokenizer.ggml.scores", EL_GGUF_FLOAT32, scores,
                                            o->scores_short ? N_VOCAB - 1 : N_VOCAB, err), 0);
    assert_int_equal(el_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", EL_GGUF_INT32, types, N_VOCAB, err), 0);
    assert_int_equal(el_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1, err), 0);
    assert_int_equal(el_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2, err), 0);
    assert_int_equal(el_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0, err), 0);
    assert_int_equal(el_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true, err), 0);
    if (o->space_prefix >= 0)
        assert_int_equal(el_gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", o->space_prefix != 0, err), 0);
    snprintf(g_path, sizeof g_path, "/tmp/el_test_tok_XXXXXX");
    int fd = mkstemp(g_path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(el_gguf_writer_write_file(w, g_path, err), 0);
    el_gguf_writer_free(w);
    el_gguf *g = el_gguf_open(g_path, err);
    unlink(g_path);
    return g;
}

typedef struct fixture {
    el_gguf *g;
    el_tokenizer *tok;
} fixture;

static void open_tok(fixture *f, const vocab_opts *o) {
    el_err err = {0};
    f->g = make_vocab(o, &err);
    assert_non_null(f->g);
    f->tok = el_tokenizer_from_gguf(f->g, &err);
    if (!f->tok) fprintf(stderr, "%s\n", err.message);
    assert_non_null(f->tok);
}

static void close_tok(fixture *f) {
    el_tokenizer_free(f->tok);
    el_gguf_close(f->g);
}

/* Tokenize and compare with the expected ids (terminated by -1). */
static void expect(const el_tokenizer *tok, const char *text, size_t len, bool bos, bool special, const int32_t *want) {
    int32_t *ids = NULL;
    size_t n = 0;
    el_err err = {0};
    assert_int_equal(el_tokenize(tok, text, len, bos, special, &ids, &n, &err), 0);
    size_t nw = 0;
    while (want[nw] >= 0) nw++;
    if (n != nw || memcmp(ids, want, n * sizeof(int32_t)) != 0) {
        fprintf(stderr, "text \"%.*s\": got", (int)len, text);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, ", want");
        for (size_t i = 0; i < nw; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
    }
    assert_int_equal(n, nw);
    assert_memory_equal(ids, want, n * sizeof(int32_t));
    free(ids);
}
#define EXPECT(tok, s, bos, sp, ...) expect(tok, s, strlen(s), bos, sp, (const int32_t[]){__VA_ARGS__, -1})

static void test_merges_by_score(void **state) {
    (void)state;
    fixture f;
    open_tok(&f, &(vocab_opts){.space_prefix = 0});
    EXPECT(f.tok, "abc", false, false, ID_ABC); /* bc (-0.5) first, then a+bc = abc */
    EXPECT(f.tok, "abcd", false, false, ID_AB, ID_CD); /* cd (-0.1) first; bcd is no token; then ab */
    EXPECT(f.tok, "aaa", false, false, ID_AA, ID_A); /* equal scores: leftmost pair first */
    EXPECT(f.tok, "ab ab", false, false, ID_AB, ID_SP_AB);
    EXPECT(f.tok, "hi", true, false, 1, ID_HI);
    EXPECT(f.tok, "\xc3\xa9", false, false, ID_EACUTE);
    /* no token: byte fallback, one id per byte */
    EXPECT(f.tok, "z", false, false, BYTE_ID('z'));
    EXPECT(f.tok, "\xc3\xbc", false, false, BYTE_ID(0xC3), BYTE_ID(0xBC)); /* ü */
    /* as llama.cpp: a bad lead byte takes the bytes it announces, and the piece falls back to bytes */
    EXPECT(f.tok, "a\xff" "b", false, false, ID_A, BYTE_ID(0xFF), BYTE_ID('b'));
    EXPECT(f.tok, "a\x80" "b", false, false, ID_A, BYTE_ID(0x80), ID_B); /* a stray continuation byte: alone */
    EXPECT(f.tok, "\xe2\x82", false, false, BYTE_ID(0xE2), BYTE_ID(0x82)); /* truncated character */
    int32_t *ids = NULL;
    size_t n = 99;
    assert_int_equal(el_tokenize(f.tok, "", 0, false, false, &ids, &n, NULL), 0);
    assert_int_equal(n, 0);
    free(ids);
    assert_int_equal(el_tokenize(f.tok, "", 0, true, false, &ids, &n, NULL), 0);
    assert_int_equal(n, 1); /* just BOS, as SentencePiece does */
    assert_int_equal(ids[0], 1);
    free(ids);
    close_tok(&f);
}

static void test_space_prefix(void **state) {
    (void)state;
    fixture f;
    open_tok(&f, &(vocab_opts){.space_prefix = -1}); /* absent: SentencePiece default is on */
    EXPECT(f.tok, "ab", true, false, 1, ID_SP_AB);
    EXPECT(f.tok, "<ctl>hi", false, true, ID_CTL, ID_SP_HI); /* again after a special token */
    EXPECT(f.tok, "hi<ctl>hi", false, true, ID_SP_HI, ID_CTL, ID_SP_HI);
    char *text = NULL;
    size_t n = 0;
    const int32_t ids[] = {1, ID_SP_AB, ID_SP_A};
    assert_int_equal(el_detokenize(f.tok, ids + 1, 2, false, &text, &n, NULL), 0);
    assert_string_equal(text, "ab a"); /* the first piece's prefix space is dropped */
    free(text);
    close_tok(&f);
    open_tok(&f, &(vocab_opts){.space_prefix = 0});
    EXPECT(f.tok, "ab", true, false, 1, ID_AB);
    EXPECT(f.tok, "<ctl>hi", false, true, ID_CTL, ID_HI);
    close_tok(&f);
}

static void test_special_tokens(void **state) {
    (void)state;
    fixture f;
    open_tok(&f, &(vocab_opts){.space_prefix = 0});
    /* control tokens only with parse_special */
    EXPECT(f.tok, "a<ctl>b", false, true, ID_A, ID_CTL, ID_B);
    EXPECT(f.tok, "<s>hi", true, true, 1, 1, ID_HI);
    EXPECT(f.tok, "<ctl>", false, false, BYTE_ID('<'), ID_C, BYTE_ID('t'), BYTE_ID('l'), BYTE_ID('>'));
    /* user-defined tokens always */
    EXPECT(f.tok, "a<user>b", false, false, ID_A, ID_USER, ID_B);
    EXPECT(f.tok, "<user><user>", false, true, ID_USER, ID_USER);
    /* longest first, at its leftmost occurrence: qrstu wins over the earlier pqr */
    EXPECT(f.tok, "pqrstu", false, false, BYTE_ID('p'), ID_QRSTU);
    EXPECT(f.tok, "pqrpqrstu", false, false, ID_PQR, BYTE_ID('p'), ID_QRSTU);
    EXPECT(f.tok, "<unk>", false, true, 0);
    EXPECT(f.tok, "<<ctl>>", false, true, BYTE_ID('<'), ID_CTL, BYTE_ID('>'));
    close_tok(&f);
}

static void test_phi3_rstrip(void **state) {
    (void)state;
    fixture f;
    open_tok(&f, &(vocab_opts){.space_prefix = 0, .name = "Phi-3 Mini Instruct"});
    /* special tokens eat the whitespace after them; <unk> and <s> do not */
    EXPECT(f.tok, "<|end|>  \n hi", false, true, ID_END, ID_HI);
    EXPECT(f.tok, "hi <|end|>", false, true, ID_HI, ID_SP, ID_END); /* no left strip */
    EXPECT(f.tok, "<s> hi", false, true, 1, ID_SP_HI);
    close_tok(&f);
    open_tok(&f, &(vocab_opts){.space_prefix = 0, .name = "Gemma"});
    EXPECT(f.tok, "<|end|> hi", false, true, ID_END, ID_SP_HI);
    close_tok(&f);
}

static void test_pieces(void **state) {
    (void)state;
    fixture f;
    open_tok(&f, &(vocab_opts){.space_prefix = 0});
    char buf[32];
    assert_int_equal(el_token_to_piece(f.tok, ID_SP_AB, false, buf, sizeof buf), 3);
    assert_memory_equal(buf, " ab", 3);
    assert_int_equal(el_token_to_piece(f.tok, BYTE_ID(0xC3), false, buf, sizeof buf), 1);
    assert_int_equal((unsigned char)buf[0], 0xC3);
    assert_int_equal(el_token_to_piece(f.tok, ID_CTL, false, buf, sizeof buf), 0);
    assert_int_equal(el_token_to_piece(f.tok, ID_CTL, true, buf, sizeof buf), 5);
    assert_memory_equal(buf, "<ctl>", 5);
    assert_int_equal(el_token_to_piece(f.tok, ID_USER, false, buf, sizeof buf), 6); /* user-defined: always */
    assert_int_equal(el_token_to_piece(f.tok, 0, false, buf, sizeof buf), 0);      /* <unk> */
    memset(buf, 'X', sizeof buf);
    assert_int_equal(el_token_to_piece(f.tok, ID_SP_AB, false, buf, 2), 3); /* too small: length, nothing written */
    assert_int_equal(buf[0], 'X');
    assert_int_equal(el_token_to_piece(f.tok, N_VOCAB, false, buf, sizeof buf), -1);
    assert_int_equal(el_token_to_piece(f.tok, -1, false, buf, sizeof buf), -1);

    assert_int_equal(el_tokenizer_n_vocab(f.tok), N_VOCAB);
    assert_int_equal(el_tokenizer_bos(f.tok), 1);
    assert_int_equal(el_tokenizer_eos(f.tok), 2);
    /* both are end-of-turn texts; which one llama.cpp picks is unspecified */
    assert_true(el_tokenizer_eot(f.tok) == ID_EOT || el_tokenizer_eot(f.tok) == ID_END);
    assert_true(el_tokenizer_is_eog(f.tok, 2));
    assert_true(el_tokenizer_is_eog(f.tok, ID_EOT));
    assert_true(el_tokenizer_is_eog(f.tok, ID_END));
    assert_false(el_tokenizer_is_eog(f.tok, ID_CTL));
    assert_false(el_tokenizer_is_eog(f.tok, 1));
    assert_false(el_tokenizer_is_eog(f.tok, N_VOCAB));
    assert_true(el_tokenizer_is_control(f.tok, ID_UNUSED));
    assert_int_equal(el_tokenizer_find(f.tok, "abc"), ID_ABC);
    assert_int_equal(el_tokenizer_find(f.tok, "abcd"), -1);
    char *text = NULL;
    size_t n = 0;
    el_err err = {0};
    const int32_t bad[] = {ID_A, N_VOCAB + 5};
    assert_int_equal(el_detokenize(f.tok, bad, 2, false, &text, &n, &err), -1);
    assert_int_equal(err.code, EDGELLM_ERANGE);
    close_tok(&f);
}

static void test_streaming(void **state) {
    (void)state;
    fixture f;
    open_tok(&f, &(vocab_opts){.space_prefix = 0});
    size_t cap = el_tokenizer_max_piece(f.tok);
    char *out = malloc(cap);
    el_detok d = {0};
    /* "ü" arrives as two byte tokens: nothing until the second */
    assert_int_equal(el_detok_push(&d, f.tok, ID_A, out, cap), 1);
    assert_int_equal(el_detok_push(&d, f.tok, BYTE_ID(0xC3), out, cap), 0);
    assert_int_equal(el_detok_push(&d, f.tok, BYTE_ID(0xBC), out, cap), 2);
    assert_memory_equal(out, "\xc3\xbc", 2);
    /* a 4-byte emoji over four tokens, a control token in the middle prints nothing */
    const int b4[4] = {0xF0, 0x9F, 0x98, 0x80};
    for (int i = 0; i < 3; i++) assert_int_equal(el_detok_push(&d, f.tok, BYTE_ID(b4[i]), out, cap), 0);
    assert_int_equal(el_detok_push(&d, f.tok, ID_CTL, out, cap), 0);
    assert_int_equal(el_detok_push(&d, f.tok, BYTE_ID(b4[3]), out, cap), 4);
    assert_memory_equal(out, "\xf0\x9f\x98\x80", 4);
    /* invalid bytes become U+FFFD; an unfinished character is flushed as one */
    assert_int_equal(el_detok_push(&d, f.tok, BYTE_ID(0xFF), out, cap), 3);
    assert_memory_equal(out, "\xef\xbf\xbd", 3);
    assert_int_equal(el_detok_push(&d, f.tok, BYTE_ID(0xC3), out, cap), 0);
    assert_int_equal(el_detok_push(&d, f.tok, ID_A, out, cap), 4); /* broken sequence: FFFD then "a" */
    assert_memory_equal(out, "\xef\xbf\xbd" "a", 4);
    /* a truncated sequence is one U+FFFD (its maximal subpart), not one per byte */
    assert_int_equal(el_detok_push(&d, f.tok, BYTE_ID(0xE7), out, cap), 0);
    assert_int_equal(el_detok_push(&d, f.tok, BYTE_ID(0x9B), out, cap), 0);
    assert_int_equal(el_detok_push(&d, f.tok, ID_A, out, cap), 4);
    assert_memory_equal(out, "\xef\xbf\xbd" "a", 4);
    /* a continuation byte that no lead allows ends the subpart: 0xE0 0x80 is two */
    assert_int_equal(el_detok_push(&d, f.tok, BYTE_ID(0xE0), out, cap), 0);
    assert_int_equal(el_detok_push(&d, f.tok, BYTE_ID(0x80), out, cap), 6);
    assert_memory_equal(out, "\xef\xbf\xbd\xef\xbf\xbd", 6);
    assert_int_equal(el_detok_push(&d, f.tok, BYTE_ID(0xE2), out, cap), 0);
    assert_int_equal(el_detok_flush(&d, out, cap), 3);
    assert_int_equal(el_detok_flush(&d, out, cap), 0);
    free(out);
    close_tok(&f);
}

static bool valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t l = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (l == 0 || i + l > n) return false;
        for (size_t k = 1; k < l; k++)
            if ((s[i + k] & 0xC0) != 0x80) return false;
        i += l; /* (overlongs and surrogates do not occur in the units below) */
    }
    return true;
}

static void test_random_bytes(void **state) {
    (void)state;
    static const char *const units[] = {"a", "b", "c", "d", "h", "i", " ", "  ", "<", ">", "\xc3\xa9", "\xe2\x82\xac",
                                        "\xf0\x9f\x98\x80", "<user>", "<ctl>", "pqr"};
    fixture f;
    open_tok(&f, &(vocab_opts){.space_prefix = 1});
    uint64_t x = 0x1234567;
    char text[256];
    int n_roundtrip = 0;
    for (int iter = 0; iter < 3000; iter++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t n_units = (size_t)(x >> 59) + 1, len = 0;
        for (size_t u = 0; u < n_units; u++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            uint8_t r = (uint8_t)(x >> 56);
            if (r < 10) {
                text[len++] = (char)(x >> 40); /* any byte */
            } else {
                const char *t = units[r % 16];
                memcpy(text + len, t, strlen(t));
                len += strlen(t);
            }
        }
        bool valid = valid_utf8((const unsigned char *)text, len);
        for (int special = 0; special < 2; special++) {
            int32_t *ids = NULL;
            size_t n = 0;
            assert_int_equal(el_tokenize(f.tok, text, len, true, special, &ids, &n, NULL), 0);
            assert_true(n >= 2);
            for (size_t i = 0; i < n; i++) assert_true(ids[i] >= 0 && ids[i] < N_VOCAB);
            /* decode(encode(s)) == s for valid UTF-8 without special tokens (a space prefix
             * follows them) or a literal U+2581 (decodes as a space) */
            if (valid && !memchr(text, '<', len) && !memmem(text, len, "pqr", 3) && !memmem(text, len, "qrstu", 5) &&
                !memmem(text, len, "\xe2\x96\x81", 3)) {
                char *back = NULL;
                size_t nb = 0;
                assert_int_equal(el_detokenize(f.tok, ids + 1, n - 1, true, &back, &nb, NULL), 0);
                assert_int_equal(nb, len);
                assert_memory_equal(back, text, len);
                free(back);
                n_roundtrip++;
            }
            free(ids);
        }
    }
    assert_true(n_roundtrip > 400); /* 524 with this seed */
    close_tok(&f);
}

/* Byte-level BPE (tokenizer.ggml.model "gpt2"): the front end splits special
 * tokens, adds BOS and decodes GPT-2's byte alphabet; the merges are bpe.c's. */
static void utf8_put(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

static void test_byte_level_bpe(void **state) {
    (void)state;
    enum { NB = 256, N = NB + 6 };
    static char bytes[NB][4];
    const char *texts[N];
    int32_t types[N];
    int k = 0;
    for (int b = 0; b < NB; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        utf8_put(bytes[b], printable ? (uint32_t)b : 256u + (uint32_t)k++);
        texts[b] = bytes[b];
        types[b] = T_NORMAL;
    }
    texts[NB] = "\xc4\xa0" "a"; /* "Ġa" = " a" */
    texts[NB + 1] = "ab";
    texts[NB + 2] = "<|im_start|>";
    texts[NB + 3] = "<|im_end|>";
    texts[NB + 4] = "<|endoftext|>";
    texts[NB + 5] = "\xc4\xa0?";
    for (int i = NB; i < N; i++) types[i] = i >= NB + 2 && i <= NB + 4 ? T_CONTROL : T_NORMAL;
    const char *merges[] = {"\xc4\xa0 a", "a b", "\xc4\xa0 ?"};
    el_err err = {0};
    el_gguf_writer *w = el_gguf_writer_new(32, &err);
    assert_int_equal(el_gguf_writer_add_str(w, "general.architecture", "qwen2", &err), 0);
    assert_int_equal(el_gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2", &err), 0);
    assert_int_equal(el_gguf_writer_add_str(w, "tokenizer.ggml.pre", "gpt2", &err), 0);
    assert_int_equal(el_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", texts, N, &err), 0);
    assert_int_equal(el_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", EL_GGUF_INT32, types, N, &err), 0);
    assert_int_equal(el_gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", merges, 3, &err), 0);
    assert_int_equal(el_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", NB + 4, &err), 0);
    assert_int_equal(el_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", NB + 3, &err), 0);
    assert_int_equal(el_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true, &err), 0);
    snprintf(g_path, sizeof g_path, "/tmp/el_test_tok_XXXXXX");
    int fd = mkstemp(g_path);
    close(fd);
    assert_int_equal(el_gguf_writer_write_file(w, g_path, &err), 0);
    el_gguf_writer_free(w);
    fixture f;
    f.g = el_gguf_open(g_path, &err);
    unlink(g_path);
    assert_non_null(f.g);
    f.tok = el_tokenizer_from_gguf(f.g, &err);
    if (!f.tok) fprintf(stderr, "%s\n", err.message);
    assert_non_null(f.tok);

    EXPECT(f.tok, "<|im_start|>ab a<|im_end|>", true, true, NB + 4, NB + 2, NB + 1, NB, NB + 3);
    EXPECT(f.tok, "<|im_start|>", false, false, '<', '|', 'i', 'm', '_', 's', 't', 'a', 'r', 't', '|', '>');
    assert_true(el_tokenizer_is_eog(f.tok, NB + 3));
    char buf[8];
    assert_int_equal(el_token_to_piece(f.tok, NB, false, buf, sizeof buf), 2);
    assert_memory_equal(buf, " a", 2);
    assert_int_equal(el_token_to_piece(f.tok, '\n', false, buf, sizeof buf), 1); /* "Ċ" is byte 0x0A */
    assert_int_equal(buf[0], '\n');
    assert_int_equal(el_token_to_piece(f.tok, 0xAD, false, buf, sizeof buf), 1); /* soft hyphen: moved too */
    assert_int_equal((unsigned char)buf[0], 0xAD);
    /* decode tidies " ?" as llama.cpp does for this pre-tokenizer */
    const int32_t ids[] = {'a', NB + 5, NB};
    char *text = NULL;
    size_t n = 0;
    assert_int_equal(el_detokenize(f.tok, ids, 3, false, &text, &n, &err), 0);
    assert_string_equal(text, "a? a");
    free(text);
    close_tok(&f);
}

static void test_load_errors(void **state) {
    (void)state;
    el_err err = {0};
    el_gguf *g = make_vocab(&(vocab_opts){.space_prefix = 0, .scores_short = true}, &err);
    assert_non_null(g);
    assert_null(el_tokenizer_from_gguf(g, &err));
    assert_int_equal(err.code, EDGELLM_EFORMAT);
    assert_non_null(strstr(err.message, "tokenizer.ggml.scores"));
    el_gguf_close(g);

    g = make_vocab(&(vocab_opts){.space_prefix = 0, .tokens_as_u32 = true}, &err);
    assert_non_null(g);
    assert_null(el_tokenizer_from_gguf(g, &err));
    assert_non_null(strstr(err.message, "tokenizer.ggml.tokens"));
    el_gguf_close(g);

    g = make_vocab(&(vocab_opts){.space_prefix = 0, .model = "bert"}, &err);
    assert_non_null(g);
    assert_null(el_tokenizer_from_gguf(g, &err));
    assert_int_equal(err.code, EDGELLM_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "bert"));
    el_gguf_close(g);

    el_gguf_writer *w = el_gguf_writer_new(32, &err);
    assert_int_equal(el_gguf_writer_add_str(w, "general.architecture", "llama", &err), 0);
    snprintf(g_path, sizeof g_path, "/tmp/el_test_tok_XXXXXX");
    int fd = mkstemp(g_path);
    close(fd);
    assert_int_equal(el_gguf_writer_write_file(w, g_path, &err), 0);
    el_gguf_writer_free(w);
    g = el_gguf_open(g_path, &err);
    unlink(g_path);
    assert_non_null(g);
    assert_null(el_tokenizer_from_gguf(g, &err));
    assert_int_equal(err.code, EDGELLM_ENOTFOUND);
    assert_non_null(strstr(err.message, "tokenizer.ggml.model"));
    el_gguf_close(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merges_by_score),
        cmocka_unit_test(test_space_prefix),
        cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_phi3_rstrip),
        cmocka_unit_test(test_pieces),
        cmocka_unit_test(test_streaming),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_byte_level_bpe),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
