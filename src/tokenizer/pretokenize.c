/* Regex pre-tokenizer for byte-level BPE (see pretokenize.h).
 *
 * The patterns are those of each model's tokenizer.json, rewritten for PCRE2
 * where its semantics differ from Oniguruma (which Python `tokenizers` uses):
 *  - (?i:'s|'t|...) is spelled with ASCII classes: PCRE2's caseless mode lets
 *    's' match U+017F (long s), Oniguruma's does not;
 *  - \s becomes [\s\x{85}]: Oniguruma's \s is Unicode White_Space, which has
 *    U+0085 (NEL); PCRE2's \s under UCP is Z* plus \t\n\v\f\r and lacks it. */
#include "tokenizer/pretokenize.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define PRETOK_MAX_STAGES 4
#define PRETOK_MAX_NAMES 20

#define CONTRACTION "'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])"
#define WS "\\s\\x{85}"
#define SPACE "[" WS "]"
#define NONSPACE "[^" WS "]"

/* GPT-2's pattern; tokenizer.json adds a final \s+, which changes nothing here
 * because text between matches becomes a piece anyway. */
#define GPT2_PATTERN                                                                               \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|" SPACE "+(?!" NONSPACE ")"

#define LLAMA3_PATTERN                                                                             \
    CONTRACTION "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*"         \
                "|" SPACE "*[\\r\\n]+|" SPACE "+(?!" NONSPACE ")|" SPACE "+"

typedef struct pretok_spec {
    const char *names[PRETOK_MAX_NAMES]; /* the first is the canonical name */
    bool ignore_merges; /* a piece that is a whole token is not merged (Llama 3) */
    bool nfc;           /* the tokenizer.json normalizer is NFC (Qwen2) */
    int n_stages;
    const char *pattern[PRETOK_MAX_STAGES];
} pretok_spec;

/* Names as llama.cpp maps tokenizer.ggml.pre values onto pre-tokenizer types. */
static const pretok_spec PRETOK_SPECS[] = {
    {{"llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"},
     true, false, 1, {LLAMA3_PATTERN}},
    {{"dbrx", "smaug-bpe", "glm4", "chatglm-bpe"}, false, false, 1, {LLAMA3_PATTERN}},
    {{"qwen2", "deepseek-r1-qwen"}, false, true, 1,
     {CONTRACTION "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*"
                  "|" SPACE "*[\\r\\n]+|" SPACE "+(?!" NONSPACE ")|" SPACE "+"}},
    {{"stablelm2", "kormo", "megrez", "hunyuan", "grok-2"}, false, false, 1,
     {CONTRACTION "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*"
                  "|" SPACE "*[\\r\\n]+|" SPACE "+(?!" NONSPACE ")|" SPACE "+"}},
    {{"gpt-4o", "llama4", "minimax-m2"}, false, false, 1,
     {"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
      "(?:" CONTRACTION ")?"
      "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
      "(?:" CONTRACTION ")?"
      "|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*|" SPACE "*[\\r\\n]+|" SPACE "+(?!" NONSPACE
      ")|" SPACE "+"}},
    {{"deepseek-v3", "hunyuan-dense"}, false, false, 3,
     {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
      "| ?[\\p{P}\\p{S}]+[\\r\\n]*|" SPACE "*[\\r\\n]+|" SPACE "+(?!" NONSPACE ")|" SPACE "+"}},
    {{"gpt2", "gpt-2", "phi-2", "mpt", "olmo", "jais", "trillion", "granite-docling", "jina-es",
      "jina-de", "jina-v2-es", "jina-v2-de", "jina-v1-en", "jina-v2-code", "roberta-bpe", "gigachat",
      "a.x-4.0", "mellum", "exaone4"},
     false, false, 1, {GPT2_PATTERN}},
    /* Digits one by one first. */
    {{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"}, false, false,
     2, {"\\p{N}", GPT2_PATTERN}},
    /* llama.cpp's fallback when tokenizer.ggml.pre is missing. */
    {{"default"}, false, false, 4,
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_PATTERN, "\\p{N}+", "[0-9][0-9][0-9]"}},
};

struct el_pretok {
    const pretok_spec *spec;
    pcre2_code *re[PRETOK_MAX_STAGES];
};

#define N_SPECS (sizeof PRETOK_SPECS / sizeof PRETOK_SPECS[0])

static const pretok_spec *pretok_find_spec(const char *name, size_t len) {
    if (!name) return &PRETOK_SPECS[N_SPECS - 1]; /* "default" */
    for (size_t i = 0; i < N_SPECS; i++) {
        for (int k = 0; k < PRETOK_MAX_NAMES && PRETOK_SPECS[i].names[k]; k++) {
            const char *n = PRETOK_SPECS[i].names[k];
            if (strlen(n) == len && memcmp(n, name, len) == 0) return &PRETOK_SPECS[i];
        }
    }
    return NULL;
}

el_pretok *el_pretok_create(const char *name, size_t name_len, el_err *err) {
    const pretok_spec *spec = pretok_find_spec(name, name_len);
    if (!spec) {
        el_fail(err, EDGELLM_EUNSUPPORTED,
                "tokenizer.ggml.pre '%.*s' is not supported (known: llama-bpe, qwen2, gpt-4o, "
                "deepseek-v3, gpt2, smollm, default and their llama.cpp aliases)",
                (int)(name_len > 64 ? 64 : name_len), name);
        return NULL;
    }
    el_pretok *p = calloc(1, sizeof *p);
    if (!p) {
        el_fail(err, EDGELLM_ENOMEM, "pre-tokenizer: out of memory");
        return NULL;
    }
    p->spec = spec;
    for (int i = 0; i < spec->n_stages; i++) {
        int code;
        PCRE2_SIZE at;
        p->re[i] = pcre2_compile((PCRE2_SPTR)spec->pattern[i], PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &at, NULL);
        if (!p->re[i]) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(code, msg, sizeof msg);
            el_fail(err, EDGELLM_EUNSUPPORTED, "pre-tokenizer '%s' regex %d at %zu: %s", spec->names[0],
                    i, (size_t)at, (const char *)msg);
            el_pretok_free(p);
            return NULL;
        }
        /* JIT is an optimisation: without it pcre2_match interprets the pattern. */
        (void)pcre2_jit_compile(p->re[i], PCRE2_JIT_COMPLETE);
    }
    return p;
}

void el_pretok_free(el_pretok *p) {
    if (!p) return;
    for (int i = 0; i < PRETOK_MAX_STAGES; i++) pcre2_code_free(p->re[i]);
    free(p);
}

const char *el_pretok_name(const el_pretok *p) { return p->spec->names[0]; }
bool el_pretok_ignore_merges(const el_pretok *p) { return p->spec->ignore_merges; }
bool el_pretok_nfc(const el_pretok *p) { return p->spec->nfc; }

typedef struct split_ctx {
    const el_pretok *p;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    el_pretok_piece_fn fn;
    void *ud;
    el_err *err;
} split_ctx;

static int split_stage(split_ctx *c, int stage, const char *s, size_t len);

static int emit_piece(split_ctx *c, int stage, const char *s, size_t len) {
    if (stage + 1 < c->p->spec->n_stages) return split_stage(c, stage + 1, s, len);
    return c->fn(s, len, c->ud) ? -1 : 0;
}

/* Matches and the text between them, in order (tokenizers' "Isolated"). The
 * ovector is read before recursing, so all stages share one match block. */
static int split_stage(split_ctx *c, int stage, const char *s, size_t len) {
    const pcre2_code *re = c->p->re[stage];
    size_t pos = 0, gap = 0;
    while (pos < len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, len, pos, 0, c->md, c->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return el_fail(c->err, EDGELLM_ERANGE, "pre-tokenizer '%s': regex %d at byte %zu: %s",
                           c->p->spec->names[0], stage, pos, (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* no pattern matches empty; step past one character if one ever does */
            pos = me + 1;
            while (pos < len && ((unsigned char)s[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        if (ms > gap && emit_piece(c, stage, s + gap, ms - gap)) return -1;
        if (emit_piece(c, stage, s + ms, me - ms)) return -1;
        gap = pos = me;
    }
    if (len > gap && emit_piece(c, stage, s + gap, len - gap)) return -1;
    return 0;
}

int el_pretok_split(const el_pretok *p, const char *text, size_t len, el_pretok_piece_fn fn,
                    void *ud, el_err *err) {
    if (len == 0) return 0;
    split_ctx c = {p, NULL, NULL, fn, ud, err};
    /* A JIT stack larger than the default 32 KiB, for long runs of one class. */
    pcre2_jit_stack *js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    c.md = pcre2_match_data_create(1, NULL);
    c.mctx = pcre2_match_context_create(NULL);
    int rc;
    if (!c.md || !c.mctx) {
        rc = el_fail(err, EDGELLM_ENOMEM, "pre-tokenizer: out of memory");
    } else {
        if (js) pcre2_jit_stack_assign(c.mctx, NULL, js);
        /* The patterns backtrack at most linearly (\s*[\r\n]+ over a run of spaces), so
         * the default limit of 10 M steps only refuses long valid inputs. */
        pcre2_set_match_limit(c.mctx, UINT32_MAX);
        rc = split_stage(&c, 0, text, len);
    }
    pcre2_match_context_free(c.mctx);
    pcre2_match_data_free(c.md);
    pcre2_jit_stack_free(js);
    return rc;
}
