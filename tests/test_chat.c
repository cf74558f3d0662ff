/* Chat templates: rendered prompts equal what the official Jinja templates give
 * (tests/data/chat/expected.json from scripts/make-golden-chat: Llama 3, Llama 3.1,
 * Qwen3, Qwen2.5, MiMo-VL, Phi-3.5; Gemma 3 and Phi-4-mini strings below were
 * rendered the same way with jinja2), template recognition from chat_template
 * text, architecture and marker tokens, the plain fallback and its warning, and
 * the default model (Gemma 3, no chat_template) picking Gemma. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "chat/chat.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

static void expect_render(const el_chat_template *t, const el_chat_msg *m, size_t n, bool gen, const char *want) {
    char *out = NULL;
    size_t len = 0;
    el_err err = {0};
    assert_int_equal(el_chat_render(t, m, n, gen, &out, &len, &err), 0);
    if (strcmp(out, want) != 0) fprintf(stderr, "format %s:\n got: [%s]\nwant: [%s]\n", el_chat_format_name(t->format), out, want);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    free(out);
}

static const el_chat_msg SINGLE[] = {{"user", "Hello!"}};
static const el_chat_msg SYSTEM[] = {{"system", "You are a helpful assistant."}, {"user", "What is 2+2?"}};
static const el_chat_msg MULTI[] = {{"system", "  Answer briefly.\n"},
                                    {"user", "  Hi there  "},
                                    {"assistant", "Hello! How can I help?"},
                                    {"user", "Tell me a joke.\n\n"}};
static const el_chat_msg UNICODE[] = {{"user", "Bonjour ! \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 \xc2\xa0spaced\xe3\x80\x80"}};

static void test_gemma(void **state) {
    (void)state;
    el_chat_template t;
    assert_int_equal(el_chat_template_by_name(&t, "gemma"), 0);
    expect_render(&t, SINGLE, 1, true, "<start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n");
    expect_render(&t, SYSTEM, 2, true,
                  "<start_of_turn>user\nYou are a helpful assistant.\n\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n");
    /* the system text is not trimmed, turns are */
    expect_render(&t, MULTI, 4, true,
                  "<start_of_turn>user\n  Answer briefly.\n\n\nHi there<end_of_turn>\n<start_of_turn>model\nHello! How can I "
                  "help?<end_of_turn>\n<start_of_turn>user\nTell me a joke.<end_of_turn>\n<start_of_turn>model\n");
    expect_render(&t, MULTI, 4, false,
                  "<start_of_turn>user\n  Answer briefly.\n\n\nHi there<end_of_turn>\n<start_of_turn>model\nHello! How can I "
                  "help?<end_of_turn>\n<start_of_turn>user\nTell me a joke.<end_of_turn>\n");
    /* Jinja's trim is Python's strip: U+00A0 inside stays, U+3000 at the end goes */
    expect_render(&t, UNICODE, 1, true,
                  "<start_of_turn>user\nBonjour ! \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 \xc2\xa0spaced<end_of_turn>\n"
                  "<start_of_turn>model\n");
    expect_render(&t, NULL, 0, true, "<start_of_turn>model\n");
    assert_string_equal(el_chat_stop_text(&t), "<end_of_turn>");
}

static void test_phi4_mini(void **state) {
    (void)state;
    el_chat_template t;
    assert_int_equal(el_chat_template_by_name(&t, "phi4"), 0);
    expect_render(&t, SINGLE, 1, true, "<|user|>Hello!<|end|><|assistant|>");
    expect_render(&t, SYSTEM, 2, true, "<|system|>You are a helpful assistant.<|end|><|user|>What is 2+2?<|end|><|assistant|>");
    expect_render(&t, MULTI, 4, true,
                  "<|system|>  Answer briefly.\n<|end|><|user|>  Hi there  <|end|><|assistant|>Hello! How can I "
                  "help?<|end|><|user|>Tell me a joke.\n\n<|end|><|assistant|>");
    assert_string_equal(el_chat_stop_text(&t), "<|end|>");
}

static void test_plain(void **state) {
    (void)state;
    el_chat_template t;
    assert_int_equal(el_chat_template_by_name(&t, "plain"), 0);
    expect_render(&t, SINGLE, 1, true, "User: Hello!\nAssistant:");
    expect_render(&t, MULTI, 4, true,
                  "System: Answer briefly.\nUser: Hi there\nAssistant: Hello! How can I help?\nUser: Tell me a "
                  "joke.\nAssistant:");
    assert_int_equal(el_chat_template_by_name(&t, "jinja"), -1);
}

/* Every case of expected.json, rendered with the settings it records. */
static void test_golden_templates(void **state) {
    (void)state;
    const char *data = getenv("EDGELLM_TEST_DATA");
    char path[4096];
    snprintf(path, sizeof path, "%s/chat/expected.json", data ? data : "tests/data");
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (!doc) fprintf(stderr, "%s: %s\n", path, jerr.text);
    assert_non_null(doc);
    json_t *cases = json_object_get(doc, "cases");
    assert_true(json_array_size(cases) >= 60);
    int bad = 0;
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *cs = json_array_get(cases, c);
        el_chat_template t;
        assert_int_equal(el_chat_template_by_name(&t, json_string_value(json_object_get(cs, "format"))), 0);
        t.qwen3_think = json_is_true(json_object_get(cs, "qwen3_think"));
        t.llama31_preamble = json_is_true(json_object_get(cs, "llama31_preamble"));
        const char *ds = json_string_value(json_object_get(cs, "default_system"));
        if (ds) snprintf(t.default_system, sizeof t.default_system, "%s", ds);
        json_t *jm = json_object_get(cs, "messages");
        size_t n = json_array_size(jm);
        el_chat_msg msgs[8];
        assert_true(n <= 8);
        for (size_t i = 0; i < n; i++) {
            msgs[i].role = json_string_value(json_object_get(json_array_get(jm, i), "role"));
            msgs[i].content = json_string_value(json_object_get(json_array_get(jm, i), "content"));
        }
        char *out = NULL;
        assert_int_equal(el_chat_render(&t, msgs, n, json_is_true(json_object_get(cs, "add_generation_prompt")), &out,
                                        NULL, NULL), 0);
        const char *want = json_string_value(json_object_get(cs, "expected"));
        if (strcmp(out, want) != 0) {
            fprintf(stderr, "%s/%s (gen %d):\n got: [%s]\nwant: [%s]\n",
                    json_string_value(json_object_get(cs, "template")),
                    json_string_value(json_object_get(cs, "conversation")),
                    json_is_true(json_object_get(cs, "add_generation_prompt")), out, want);
            bad++;
        }
        free(out);
    }
    json_decref(doc);
    assert_int_equal(bad, 0);
}

static void expect_detect(const char *tmpl, const char *arch, el_chat_format want, bool want_warning) {
    el_chat_template t;
    const char *w = "unset";
    el_chat_detect(&t, tmpl, arch, NULL, &w);
    if (t.format != want) fprintf(stderr, "detect [%.60s] arch %s: %s\n", tmpl ? tmpl : "", arch ? arch : "-", el_chat_format_name(t.format));
    assert_int_equal(t.format, want);
    if (want_warning) assert_non_null(w);
    else assert_null(w);
}

static void test_detect(void **state) {
    (void)state;
    /* telltale pieces of the official templates */
    expect_detect("{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + role + '\\n' }}", NULL,
                  EL_CHAT_GEMMA, false);
    expect_detect("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                  "'<|im_end|>' + '\\n'}}{% endfor %}", NULL, EL_CHAT_CHATML, false);
    expect_detect("{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{{ '<|assistant|>' }}", NULL,
                  EL_CHAT_PHI4, false);
    expect_detect("{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{{ '<|assistant|>\n' }}", NULL, EL_CHAT_PHI3, false);
    expect_detect("{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' %}", NULL,
                  EL_CHAT_LLAMA3, false);
    /* unknown template text: guessed from the architecture, with a warning */
    expect_detect("{{ 'USER: ' + content }}", "gemma3", EL_CHAT_GEMMA, true);
    expect_detect(NULL, "gemma3", EL_CHAT_GEMMA, false);
    expect_detect("", "qwen3", EL_CHAT_CHATML, false);
    expect_detect(NULL, "phi3", EL_CHAT_PHI3, false);
    expect_detect(NULL, "llama", EL_CHAT_PLAIN, true);
    expect_detect(NULL, NULL, EL_CHAT_PLAIN, true);
    expect_detect("{{ 'USER: ' + content }}", "bert", EL_CHAT_PLAIN, true);

    el_chat_template t;
    el_chat_detect(&t,
                   "{%- else %}{{- '<|im_start|>system\\nYou are MiMo, an AI assistant developed by Xiaomi.<|im_end|>\\n' }}"
                   "{%- endif %}{{- '<|im_start|>' + message.role + '\\n' + message.content }}",
                   NULL, NULL, NULL);
    assert_int_equal(t.format, EL_CHAT_CHATML);
    assert_string_equal(t.default_system, "You are MiMo, an AI assistant developed by Xiaomi.");
    assert_false(t.qwen3_think);
    el_chat_detect(&t,
                   "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- if message.reasoning_content "
                   "is defined %}{%- if '</think>' in message.content %}",
                   NULL, NULL, NULL);
    assert_int_equal(t.format, EL_CHAT_CHATML);
    assert_string_equal(t.default_system, ""); /* an expression, not a default */
    assert_true(t.qwen3_think);
    el_chat_detect(&t, "<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023", NULL, NULL,
                   NULL);
    assert_int_equal(t.format, EL_CHAT_LLAMA3);
    assert_true(t.llama31_preamble);
    assert_string_equal(t.today, "26 Jul 2024");
}

static char *default_model_path(void) {
    char path[4096];
    const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (cache && *cache) snprintf(path, sizeof path, "%s/edgellm/default-model", cache);
    else snprintf(path, sizeof path, "%s/.cache/edgellm/default-model", home ? home : ".");
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "FATAL: %s is missing: run scripts/setup to install the default model\n", path);
        return NULL;
    }
    char line[4096] = {0};
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    if (!ok) return NULL;
    line[strcspn(line, "\r\n")] = '\0';
    return strdup(line);
}

/* The default model has no chat_template: gemma3 -> Gemma, and the prompt
 * tokenizes into the turn markers as single tokens. */
static void test_default_model(void **state) {
    (void)state;
    char *model = default_model_path();
    assert_non_null(model);
    el_err err = {0};
    el_gguf *g = el_gguf_open(model, &err);
    if (!g) fprintf(stderr, "%s: %s\n", model, err.message);
    assert_non_null(g);
    free(model);
    el_tokenizer *tok = el_tokenizer_from_gguf(g, &err);
    assert_non_null(tok);
    el_chat_template t;
    const char *w = "unset";
    el_chat_detect_gguf(&t, g, tok, &w);
    assert_int_equal(t.format, EL_CHAT_GEMMA);
    assert_null(w);
    el_chat_template by_tok;
    el_chat_detect(&by_tok, NULL, NULL, tok, &w); /* marker tokens alone say Gemma too */
    assert_int_equal(by_tok.format, EL_CHAT_GEMMA);

    char *prompt = NULL;
    size_t len = 0;
    assert_int_equal(el_chat_render(&t, SYSTEM, 2, true, &prompt, &len, &err), 0);
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(el_tokenize(tok, prompt, len, true, true, &ids, &n, &err), 0);
    int32_t sot = el_tokenizer_find(tok, "<start_of_turn>"), eot = el_tokenizer_find(tok, "<end_of_turn>");
    int n_sot = 0, n_eot = 0;
    for (size_t i = 0; i < n; i++) n_sot += ids[i] == sot, n_eot += ids[i] == eot;
    assert_int_equal(ids[0], el_tokenizer_bos(tok));
    assert_int_equal(n_sot, 2);
    assert_int_equal(n_eot, 1);
    free(ids);
    free(prompt);
    el_tokenizer_free(tok);
    el_gguf_close(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemma),       cmocka_unit_test(test_phi4_mini), cmocka_unit_test(test_plain),
        cmocka_unit_test(test_golden_templates), cmocka_unit_test(test_detect),
        cmocka_unit_test(test_default_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
