/* Chat templates: a conversation rendered into the prompt text a model was
 * trained on. Not a Jinja engine: the template in tokenizer.chat_template is
 * recognised by telltale substrings (as llama.cpp's llm_chat_detect_template)
 * and rendered by C code that reproduces what the official template outputs
 * for plain text conversations (no tools, no images).
 *
 * The prompt never contains the BOS token: el_tokenize(add_bos=true,
 * parse_special=true) adds it and turns the marker texts into their tokens. */
#ifndef EL_CHAT_CHAT_H
#define EL_CHAT_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

typedef enum el_chat_format {
    EL_CHAT_PLAIN = 0, /* unknown model: "User: ...\nAssistant:" */
    EL_CHAT_GEMMA,     /* <start_of_turn>user\n...<end_of_turn>\n; system folded into the first user turn */
    EL_CHAT_CHATML,    /* <|im_start|>role\n...<|im_end|>\n (Qwen, MiMo) */
    EL_CHAT_PHI3,      /* <|role|>\n...<|end|>\n (Phi-3, Phi-3.5) */
    EL_CHAT_PHI4,      /* <|role|>...<|end|> without newlines (Phi-4-mini) */
    EL_CHAT_LLAMA3,    /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
} el_chat_format;

typedef struct el_chat_template {
    el_chat_format format;
    /* Qwen3: reasoning ("<think>...</think>") is dropped from assistant turns
     * before the last user turn, and a final assistant turn gets an empty one. */
    bool qwen3_think;
    /* Llama 3.1: every prompt starts with a system turn carrying these dates. */
    bool llama31_preamble;
    char today[32]; /* "Today Date: " for the Llama 3.1 preamble; default "26 Jul 2024" as the template */
    /* ChatML templates that put in a system turn when the conversation has none (Qwen2.5, MiMo). */
    char default_system[256];
} el_chat_template;

typedef struct el_chat_msg {
    const char *role;    /* "system", "user", "assistant" (other roles are passed through) */
    const char *content; /* UTF-8, NUL-terminated */
} el_chat_msg;

/* Choose the template from the chat_template text (may be NULL), else from the
 * architecture name (may be NULL), else from marker tokens the tokenizer knows
 * (may be NULL). When nothing fits, t->format is EL_CHAT_PLAIN and *warning
 * (if non-NULL) is set to a static sentence saying so; otherwise *warning = NULL. */
void el_chat_detect(el_chat_template *t, const char *tmpl, const char *arch, const el_tokenizer *tok,
                    const char **warning);
/* Same, reading tokenizer.chat_template, general.architecture and general.name from a GGUF. */
void el_chat_detect_gguf(el_chat_template *t, const el_gguf *g, const el_tokenizer *tok, const char **warning);
/* A template by name: "gemma", "chatml", "phi3", "phi4", "llama3", "plain"; -1 if unknown. */
int el_chat_template_by_name(el_chat_template *t, const char *name);
const char *el_chat_format_name(el_chat_format f);

/* Render n messages; with add_generation_prompt the text ends with the header
 * that opens the assistant's turn. *out is malloc'd and NUL-terminated. */
int el_chat_render(const el_chat_template *t, const el_chat_msg *msgs, size_t n, bool add_generation_prompt,
                   char **out, size_t *out_len, el_err *err);

/* Text that ends an assistant turn in this format ("<end_of_turn>", "<|im_end|>", ...),
 * for stopping on text when the marker is not a single token. */
const char *el_chat_stop_text(const el_chat_template *t);

#endif
