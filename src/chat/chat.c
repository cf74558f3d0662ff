/* Chat template recognition and rendering. */
#include "chat/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a small string builder ---- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_add(sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }

/* ---- text helpers ---- */

/* Length of a whitespace character at s (Python's str.isspace, which Jinja's trim uses), or 0. */
static size_t space_len(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    if (s[0] == ' ' || (s[0] >= 0x09 && s[0] <= 0x0D) || (s[0] >= 0x1C && s[0] <= 0x1F)) return 1;
    if (n >= 2 && s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2; /* U+0085, U+00A0 */
    if (n < 3) return 0;
    if (s[0] == 0xE1 && s[1] == 0x9A && s[2] == 0x80) return 3; /* U+1680 */
    if (s[0] == 0xE2 && s[1] == 0x80 && ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
        return 3; /* U+2000..200A, U+2028, U+2029, U+202F */
    if (s[0] == 0xE2 && s[1] == 0x81 && s[2] == 0x9F) return 3; /* U+205F */
    if (s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80) return 3; /* U+3000 */
    return 0;
}

/* Append text without leading and trailing whitespace (Jinja's trim). */
static void add_trimmed(sbuf *b, const char *text) {
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), start = 0, l;
    while ((l = space_len(s + start, n - start)) > 0) start += l;
    size_t end = start, i = start;
    while (i < n) {
        l = space_len(s + i, n - i);
        if (l) {
            i += l;
        } else {
            i++;
            end = i;
        }
    }
    sb_addn(b, text + start, end - start);
}

static bool role_is(const el_chat_msg *m, const char *r) { return m->role && strcmp(m->role, r) == 0; }
static const char *content_of(const el_chat_msg *m) { return m->content ? m->content : ""; }

/* ---- detection ---- */

static void template_init(el_chat_template *t, el_chat_format f) {
    memset(t, 0, sizeof(*t));
    t->format = f;
    snprintf(t->today, sizeof t->today, "26 Jul 2024");
}

/* ChatML templates that insert a fixed system turn when there is none spell
 * it as a literal: '<|im_start|>system\nYou are ...<|im_end|>. */
static void find_default_system(el_chat_template *t, const char *tmpl) {
    static const char *const heads[] = {"<|im_start|>system\\n", "<|im_start|>system\n", NULL};
    for (const char *const *h = heads; *h; h++) {
        for (const char *p = strstr(tmpl, *h); p; p = strstr(p + 1, *h)) {
            const char *s = p + strlen(*h), *e = strstr(s, "<|im_end|>");
            if (!e || e == s || (size_t)(e - s) >= sizeof t->default_system) continue;
            if (memchr(s, '\'', (size_t)(e - s)) || memchr(s, '"', (size_t)(e - s)) || memchr(s, '{', (size_t)(e - s)) ||
                memchr(s, '+', (size_t)(e - s)) || memchr(s, '\\', (size_t)(e - s)))
                continue; /* an expression, not a literal */
            memcpy(t->default_system, s, (size_t)(e - s));
            t->default_system[e - s] = '\0';
            return;
        }
    }
}

/* Returns true if the template text was recognised. */
static bool detect_from_text(el_chat_template *t, const char *tmpl) {
#define HAS(s) (strstr(tmpl, (s)) != NULL)
    if (HAS("<|im_start|>") && !HAS("<|im_sep|>") && !HAS("<end_of_utterance>")) {
        template_init(t, EL_CHAT_CHATML);
        t->qwen3_think = HAS("</think>") && HAS("reasoning_content");
        find_default_system(t, tmpl);
        return true;
    }
    if (HAS("<|assistant|>") && HAS("<|end|>")) {
        /* Phi-4-mini joins role tag and content directly; Phi-3 puts a newline between. */
        bool no_newline = HAS("<|/tool|>") || HAS("'|>' + message['content']");
        template_init(t, no_newline ? EL_CHAT_PHI4 : EL_CHAT_PHI3);
        return true;
    }
    if (HAS("<start_of_turn>")) {
        template_init(t, EL_CHAT_GEMMA);
        return true;
    }
    if (HAS("<|start_header_id|>") && HAS("<|end_header_id|>")) {
        template_init(t, EL_CHAT_LLAMA3);
        t->llama31_preamble = HAS("Cutting Knowledge Date");
        return true;
    }
    return false;
#undef HAS
}

static bool detect_from_arch(el_chat_template *t, const char *arch) {
    if (strncmp(arch, "gemma", 5) == 0) template_init(t, EL_CHAT_GEMMA);
    else if (strncmp(arch, "qwen", 4) == 0 || strncmp(arch, "mimo", 4) == 0) template_init(t, EL_CHAT_CHATML);
    else if (strcmp(arch, "phi3") == 0) template_init(t, EL_CHAT_PHI3);
    else return false;
    return true;
}

static bool detect_from_tokens(el_chat_template *t, const el_tokenizer *tok) {
    if (el_tokenizer_find(tok, "<start_of_turn>") >= 0) template_init(t, EL_CHAT_GEMMA);
    else if (el_tokenizer_find(tok, "<|im_start|>") >= 0) template_init(t, EL_CHAT_CHATML);
    else if (el_tokenizer_find(tok, "<|start_header_id|>") >= 0) template_init(t, EL_CHAT_LLAMA3);
    else if (el_tokenizer_find(tok, "<|assistant|>") >= 0 && el_tokenizer_find(tok, "<|end|>") >= 0)
        template_init(t, EL_CHAT_PHI3);
    else return false;
    return true;
}

void el_chat_detect(el_chat_template *t, const char *tmpl, const char *arch, const el_tokenizer *tok,
                    const char **warning) {
    const char *w = NULL;
    if (tmpl && *tmpl) {
        if (detect_from_text(t, tmpl)) goto done;
        w = "tokenizer.chat_template is not one edgellm knows; the format was guessed from the model";
    }
    if ((arch && detect_from_arch(t, arch)) || (tok && detect_from_tokens(t, tok))) goto done;
    template_init(t, EL_CHAT_PLAIN);
    w = "no known chat template for this model: using a plain \"User:\" / \"Assistant:\" format";
done:
    if (warning) *warning = w;
}

static char *gguf_cstr(const el_gguf *g, const char *key) {
    const el_gguf_kv *kv = el_gguf_find_kv(g, key);
    if (!kv || kv->type != EL_GGUF_STRING || kv->v.str.len > (1u << 24)) return NULL;
    char *s = malloc(kv->v.str.len + 1);
    if (!s) return NULL;
    memcpy(s, kv->v.str.data, kv->v.str.len);
    s[kv->v.str.len] = '\0';
    return s;
}

void el_chat_detect_gguf(el_chat_template *t, const el_gguf *g, const el_tokenizer *tok, const char **warning) {
    char *tmpl = gguf_cstr(g, "tokenizer.chat_template");
    char *arch = gguf_cstr(g, "general.architecture");
    char *name = gguf_cstr(g, "general.name");
    el_chat_detect(t, tmpl, arch, tok, warning);
    /* Phi-4-mini has the phi3 architecture; only its name tells them apart. */
    if (t->format == EL_CHAT_PHI3 && !(tmpl && *tmpl) && name) {
        for (char *c = name; *c; c++)
            if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
        if (strstr(name, "phi-4") || strstr(name, "phi 4") || strstr(name, "phi4")) t->format = EL_CHAT_PHI4;
    }
    free(tmpl);
    free(arch);
    free(name);
}

int el_chat_template_by_name(el_chat_template *t, const char *name) {
    static const struct {
        const char *name;
        el_chat_format f;
    } names[] = {{"plain", EL_CHAT_PLAIN}, {"gemma", EL_CHAT_GEMMA}, {"chatml", EL_CHAT_CHATML},
                 {"phi3", EL_CHAT_PHI3},   {"phi4", EL_CHAT_PHI4},   {"llama3", EL_CHAT_LLAMA3}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i].name) == 0) {
            template_init(t, names[i].f);
            return 0;
        }
    }
    return -1;
}

const char *el_chat_format_name(el_chat_format f) {
    switch (f) {
    case EL_CHAT_GEMMA: return "gemma";
    case EL_CHAT_CHATML: return "chatml";
    case EL_CHAT_PHI3: return "phi3";
    case EL_CHAT_PHI4: return "phi4";
    case EL_CHAT_LLAMA3: return "llama3";
    default: return "plain";
    }
}

const char *el_chat_stop_text(const el_chat_template *t) {
    switch (t->format) {
    case EL_CHAT_GEMMA: return "<end_of_turn>";
    case EL_CHAT_CHATML: return "<|im_end|>";
    case EL_CHAT_PHI3:
    case EL_CHAT_PHI4: return "<|end|>";
    case EL_CHAT_LLAMA3: return "<|eot_id|>";
    default: return "\nUser:";
    }
}

/* ---- rendering ---- */

/* Gemma 3: the first system message becomes a prefix of the first turn
 * ("system\n\n"), "assistant" is "model", contents are trimmed. */
static void render_gemma(sbuf *b, const el_chat_msg *m, size_t n, bool gen) {
    size_t i = 0;
    const char *prefix = NULL;
    if (n > 0 && role_is(&m[0], "system")) {
        prefix = content_of(&m[0]);
        i = 1;
    }
    bool first = true;
    sbuf pending = {0}; /* later system messages (not in the official template): folded into the next turn */
    for (; i < n; i++) {
        if (role_is(&m[i], "system")) {
            add_trimmed(&pending, content_of(&m[i]));
            sb_add(&pending, "\n\n");
            continue;
        }
        bool model = role_is(&m[i], "assistant") || role_is(&m[i], "model");
        sb_add(b, "<start_of_turn>");
        sb_add(b, model ? "model" : (m[i].role ? m[i].role : "user"));
        sb_add(b, "\n");
        if (first && prefix) {
            sb_add(b, prefix);
            sb_add(b, "\n\n");
        }
        if (!model && pending.n) {
            sb_addn(b, pending.p, pending.n);
            pending.n = 0;
        }
        first = false;
        add_trimmed(b, content_of(&m[i]));
        sb_add(b, "<end_of_turn>\n");
    }
    if (pending.oom) b->oom = true;
    free(pending.p);
    if (gen) sb_add(b, "<start_of_turn>model\n");
}

/* Qwen3's handling of an assistant turn's "<think>" block. */
static void render_qwen3_assistant(sbuf *b, const char *content, bool after_last_query, bool last) {
    const char *close = strstr(content, "</think>");
    const char *body = content;
    const char *r_start = NULL, *r_end = NULL;
    if (close) {
        /* content: after the last </think>, leading newlines dropped */
        const char *last_close = close;
        for (const char *p = close; (p = strstr(p + 1, "</think>"));) last_close = p;
        body = last_close + strlen("</think>");
        while (*body == '\n') body++;
        /* reasoning: before the first </think>, after the last <think> there, newlines trimmed */
        r_start = content;
        r_end = close;
        for (const char *p = content; (p = strstr(p, "<think>")) && p < close; p += 7) r_start = p + 7;
        while (r_end > r_start && r_end[-1] == '\n') r_end--;
        while (r_start < r_end && *r_start == '\n') r_start++;
    }
    sb_add(b, "<|im_start|>assistant\n");
    if (after_last_query && (last || (r_start && r_end > r_start))) {
        sb_add(b, "<think>\n");
        if (r_start) sb_addn(b, r_start, (size_t)(r_end - r_start));
        sb_add(b, "\n</think>\n\n");
        while (*body == '\n') body++;
    }
    sb_add(b, body);
    sb_add(b, "<|im_end|>\n");
}

static bool is_tool_response(const char *c) {
    size_t n = strlen(c);
    return n >= 31 && strncmp(c, "<tool_response>", 15) == 0 && strcmp(c + n - 16, "</tool_response>") == 0;
}

static void render_chatml(sbuf *b, const el_chat_template *t, const el_chat_msg *m, size_t n, bool gen) {
    bool has_system = n > 0 && role_is(&m[0], "system");
    if (!has_system && t->default_system[0]) {
        sb_add(b, "<|im_start|>system\n");
        sb_add(b, t->default_system);
        sb_add(b, "<|im_end|>\n");
    }
    if (!t->qwen3_think) {
        for (size_t i = 0; i < n; i++) {
            sb_add(b, "<|im_start|>");
            sb_add(b, m[i].role ? m[i].role : "user");
            sb_add(b, "\n");
            sb_add(b, content_of(&m[i]));
            sb_add(b, "<|im_end|>\n");
        }
    } else {
        size_t last_query = n > 0 ? n - 1 : 0;
        for (size_t i = n; i-- > 0;) {
            if (role_is(&m[i], "user") && !is_tool_response(content_of(&m[i]))) {
                last_query = i;
                break;
            }
        }
        for (size_t i = 0; i < n; i++) {
            if (role_is(&m[i], "user") || (role_is(&m[i], "system") && i > 0)) {
                sb_add(b, "<|im_start|>");
                sb_add(b, m[i].role);
                sb_add(b, "\n");
                sb_add(b, content_of(&m[i]));
                sb_add(b, "<|im_end|>\n");
            } else if (role_is(&m[i], "system")) {
                sb_add(b, "<|im_start|>system\n");
                sb_add(b, content_of(&m[i]));
                sb_add(b, "<|im_end|>\n");
            } else if (role_is(&m[i], "assistant")) {
                render_qwen3_assistant(b, content_of(&m[i]), i > last_query, i + 1 == n);
            } else if (role_is(&m[i], "tool")) {
                if (i == 0 || !role_is(&m[i - 1], "tool")) sb_add(b, "<|im_start|>user");
                sb_add(b, "\n<tool_response>\n");
                sb_add(b, content_of(&m[i]));
                sb_add(b, "\n</tool_response>");
                if (i + 1 == n || !role_is(&m[i + 1], "tool")) sb_add(b, "<|im_end|>\n");
            }
        }
    }
    if (gen) sb_add(b, "<|im_start|>assistant\n");
}

static void render_phi(sbuf *b, const el_chat_msg *m, size_t n, bool gen, bool newline) {
    const char *nl = newline ? "\n" : "";
    for (size_t i = 0; i < n; i++) {
        const char *c = content_of(&m[i]);
        if (newline) {
            /* Phi-3: an empty system message is left out; other roles are dropped */
            if (role_is(&m[i], "system") && !*c) continue;
            if (!role_is(&m[i], "system") && !role_is(&m[i], "user") && !role_is(&m[i], "assistant")) continue;
        }
        sb_add(b, "<|");
        sb_add(b, m[i].role ? m[i].role : "user");
        sb_add(b, "|>");
        sb_add(b, nl);
        sb_add(b, c);
        sb_add(b, "<|end|>");
        sb_add(b, nl);
    }
    if (gen) {
        sb_add(b, "<|assistant|>");
        sb_add(b, nl);
    }
}

static void render_llama3(sbuf *b, const el_chat_template *t, const el_chat_msg *m, size_t n, bool gen) {
    size_t i = 0;
    if (t->llama31_preamble) {
        sb_add(b, "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: ");
        sb_add(b, t->today);
        sb_add(b, "\n\n");
        if (n > 0 && role_is(&m[0], "system")) {
            add_trimmed(b, content_of(&m[0]));
            i = 1;
        }
        sb_add(b, "<|eot_id|>");
    }
    for (; i < n; i++) {
        sb_add(b, "<|start_header_id|>");
        sb_add(b, m[i].role ? m[i].role : "user");
        sb_add(b, "<|end_header_id|>\n\n");
        add_trimmed(b, content_of(&m[i]));
        sb_add(b, "<|eot_id|>");
    }
    if (gen) sb_add(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void render_plain(sbuf *b, const el_chat_msg *m, size_t n, bool gen) {
    for (size_t i = 0; i < n; i++) {
        const char *r = m[i].role ? m[i].role : "user";
        /* "user" -> "User" */
        char first = r[0] >= 'a' && r[0] <= 'z' ? (char)(r[0] - 'a' + 'A') : r[0];
        if (first) sb_addn(b, &first, 1);
        if (first) sb_add(b, r + 1);
        sb_add(b, ": ");
        add_trimmed(b, content_of(&m[i]));
        sb_add(b, "\n");
    }
    if (gen) sb_add(b, "Assistant:");
}

int el_chat_render(const el_chat_template *t, const el_chat_msg *msgs, size_t n, bool add_generation_prompt,
                   char **out, size_t *out_len, el_err *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (n > 0 && !msgs) return el_fail(err, EDGELLM_EINVAL, "chat: %zu messages but no array", n);
    sbuf b = {0};
    sb_add(&b, ""); /* an empty prompt is still a string */
    switch (t->format) {
    case EL_CHAT_GEMMA: render_gemma(&b, msgs, n, add_generation_prompt); break;
    case EL_CHAT_CHATML: render_chatml(&b, t, msgs, n, add_generation_prompt); break;
    case EL_CHAT_PHI3: render_phi(&b, msgs, n, add_generation_prompt, true); break;
    case EL_CHAT_PHI4: render_phi(&b, msgs, n, add_generation_prompt, false); break;
    case EL_CHAT_LLAMA3: render_llama3(&b, t, msgs, n, add_generation_prompt); break;
    default: render_plain(&b, msgs, n, add_generation_prompt); break;
    }
    if (b.oom) {
        free(b.p);
        return el_fail(err, EDGELLM_ENOMEM, "chat: out of memory rendering %zu messages", n);
    }
    *out = b.p;
    if (out_len) *out_len = b.n;
    return 0;
}
