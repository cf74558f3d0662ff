/* edgellm: run quantized LLMs on small devices, and route requests between
 * on-device models and an OpenAI-compatible cloud API.
 *
 * This is the public C API. Every call that can fail takes an edgellm_error*
 * (may be NULL) and returns a negative value or NULL on failure, with a message
 * that names what went wrong. Nothing here exits or aborts on bad input. */
#ifndef EDGELLM_H
#define EDGELLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDGELLM_VERSION "0.1.0"

typedef enum edgellm_status {
    EDGELLM_OK = 0,
    EDGELLM_EINVAL,       /* a caller's argument is wrong */
    EDGELLM_EIO,          /* reading or writing a file failed */
    EDGELLM_EFORMAT,      /* a file or message is malformed */
    EDGELLM_ENOMEM,       /* allocation or memory budget failed */
    EDGELLM_EUNSUPPORTED, /* valid, but this build cannot do it */
    EDGELLM_ENOTFOUND,    /* a named key, tensor or file is missing */
    EDGELLM_ERANGE,       /* a size or index is out of range */
    EDGELLM_EBUSY,        /* a bounded queue is full */
    EDGELLM_ETIMEOUT,     /* a deadline passed */
    EDGELLM_ENETWORK,     /* connection failed or was cut */
    EDGELLM_EAUTH,        /* the provider refused the credentials (401/403) */
    EDGELLM_ERATELIMIT,   /* the provider answered 429 */
    EDGELLM_ESERVER,      /* the provider answered 5xx */
    EDGELLM_EPROTOCOL,    /* the provider's answer was malformed */
    EDGELLM_EBUDGET,      /* a spending budget is used up */
    EDGELLM_ECANCELLED,   /* the caller stopped the operation */
} edgellm_status;

typedef struct edgellm_error {
    edgellm_status code;
    char message[512];
} edgellm_error;

/* A short fixed name for a status code ("bad file format", ...). */
const char *edgellm_status_name(edgellm_status status);

/* The SIMD kernels this process runs matrix products with, picked from the CPU at run
 * time (the environment variable EDGELLM_CPU=scalar|avx2|avx512|neon caps the level):
 * "avx512-vnni", "avx-vnni", "avx2", "neon-i8mm", "neon-dotprod", "neon" or "scalar".
 * The three x86 SIMD sets give the same results bit for bit; the name says which one
 * speed figures come from. */
const char *edgellm_kernels_name(void);

/* ---- Models, contexts and generation ------------------------------------
 *
 * Typical use:
 *   edgellm_model *m = edgellm_model_load("model.gguf", NULL, &err);
 *   edgellm_context *c = edgellm_context_create(m, NULL, &err);
 *   edgellm_generate_params gp = edgellm_generate_default_params();
 *   edgellm_generate(c, "Once upon a time", &gp, on_token, user, &stats, &err);
 *   edgellm_context_free(c); edgellm_model_free(m);
 *
 * A model is read-only once loaded and may be shared by several contexts (one
 * thread per context at a time). A context holds one conversation's KV cache. */

typedef struct edgellm_model edgellm_model;
typedef struct edgellm_context edgellm_context;

typedef struct edgellm_model_params {
    int vocab_only; /* non-zero: load only the tokenizer (no weights, no contexts) */
    int no_repack;  /* non-zero: leave every weight in the file mapping. By default, at
                     * load, the formats this CPU multiplies faster regrouped (Q5_0 and
                     * Q4_K on x86 with AVX2) are regrouped, and Q8_0 matrices are copied into 2 MiB
                     * pages where the system has transparent huge pages: same results bit
                     * for bit, same resident memory, faster decoding, more load time
                     * (zeroing the copies), and memory the kernel can no longer drop and
                     * re-read from the file under memory pressure. */
} edgellm_model_params;

typedef struct edgellm_model_info {
    const char *arch;      /* general.architecture, e.g. "gemma3" */
    const char *name;      /* general.name, or "" */
    uint32_t n_vocab, n_ctx_train, n_embd, n_layer;
    uint64_t n_params;     /* parameters counted over the model's tensors */
    uint64_t file_bytes;
    double load_ms;        /* time edgellm_model_load took */
    const char *chat_format; /* chat template in use: "gemma", "chatml", ..., "plain" */
} edgellm_model_info;

edgellm_model_params edgellm_model_default_params(void);
/* Open a GGUF model (params may be NULL). Refuses unsupported architectures by name. */
edgellm_model *edgellm_model_load(const char *path, const edgellm_model_params *params, edgellm_error *err);
void edgellm_model_free(edgellm_model *model);
/* Facts about a loaded model; the strings live as long as the model. */
void edgellm_model_get_info(const edgellm_model *model, edgellm_model_info *info);

typedef enum edgellm_kv_type {
    EDGELLM_KV_F16 = 0,
    EDGELLM_KV_Q8_0 = 1,
} edgellm_kv_type;

/* The arithmetic of the forward pass. FAST: our blocked kernels, whose results do not
 * depend on batching or thread count. LLAMACPP: llama.cpp's CPU arithmetic (its x86
 * AVX2 build) reproduced bit for bit, on any CPU, so logits and greedy output equal
 * llama.cpp's exactly; slower; for llama, qwen2 and phi3 models with an F16 KV cache. */
typedef enum edgellm_numerics {
    EDGELLM_NUMERICS_FAST = 0,
    EDGELLM_NUMERICS_LLAMACPP = 1,
} edgellm_numerics;

typedef struct edgellm_context_params {
    uint32_t n_ctx;          /* tokens of KV cache; 0: min(4096, the model's training context) */
    uint32_t n_batch;        /* prompt tokens per forward pass; 0: 512 */
    int n_threads;           /* 0: the number of online CPUs */
    edgellm_kv_type kv_type; /* EDGELLM_KV_F16 (default) or EDGELLM_KV_Q8_0 */
    edgellm_numerics numerics; /* EDGELLM_NUMERICS_FAST (default) */
} edgellm_context_params;

edgellm_context_params edgellm_context_default_params(void);
/* A context for model (params may be NULL). Allocates everything generation needs. */
edgellm_context *edgellm_context_create(edgellm_model *model, const edgellm_context_params *params,
                                        edgellm_error *err);
void edgellm_context_free(edgellm_context *ctx);
/* Forget the cached tokens (the next generate starts from an empty cache). */
void edgellm_context_reset(edgellm_context *ctx);
uint32_t edgellm_context_n_ctx(const edgellm_context *ctx);
/* Tokens currently held in the KV cache. */
uint32_t edgellm_context_n_cached(const edgellm_context *ctx);

/* Tokenize len bytes of text. add_bos: prepend BOS if the model asks for it;
 * parse_special: recognise control-token text such as "<start_of_turn>".
 * Writes at most cap ids and returns the total count (call again with a larger
 * buffer if it exceeds cap), or -1. */
int64_t edgellm_tokenize(const edgellm_model *model, const char *text, size_t len, int add_bos,
                         int parse_special, int32_t *tokens, size_t cap, edgellm_error *err);
/* Text of n tokens (control tokens only if render_special). Writes at most cap bytes,
 * NUL-terminated when there is room, and returns the text's length, or -1. */
int64_t edgellm_detokenize(const edgellm_model *model, const int32_t *tokens, size_t n, int render_special,
                           char *buf, size_t cap, edgellm_error *err);
/* Whether id ends generation (EOS, <end_of_turn>, ...). */
int edgellm_token_is_eog(const edgellm_model *model, int32_t id);

typedef struct edgellm_sampling_params {
    float temperature;       /* 0: greedy (the other fields are then ignored) */
    int32_t top_k;           /* 0: off */
    float top_p;             /* 1: off */
    float min_p;             /* 0: off */
    float repeat_penalty;    /* 1: off */
    int32_t repeat_last_n;   /* tokens the penalties look back over */
    float frequency_penalty; /* 0: off (OpenAI semantics) */
    float presence_penalty;  /* 0: off */
    uint64_t seed;           /* same seed, same prompt, same settings: same output */
} edgellm_sampling_params;

/* Speculative decoding: cheap guesses of the next tokens ("drafts") are checked
 * by the model in one batched forward pass; the longest prefix the model agrees
 * with is kept, plus the model's own next token. A draft is accepted only if it is
 * exactly the token the sampler picks from the model's logits at that position (the
 * same call with the same random state as without speculation), and a token's
 * logits do not depend on batching, so the output is identical to plain decoding
 * for every sampling setting and seed; only the speed changes. (Sampling at a high
 * temperature accepts fewer drafts.) See docs/speculative.md. */
typedef enum edgellm_spec_kind {
    EDGELLM_SPEC_NONE = 0,
    EDGELLM_SPEC_LOOKUP, /* prompt lookup: the tokens that followed the latest earlier
                          * occurrence of the last n generated tokens in prompt + output */
    EDGELLM_SPEC_DRAFT,  /* a second, smaller model with the same vocabulary drafts greedily */
} edgellm_spec_kind;

typedef struct edgellm_spec_params {
    edgellm_spec_kind kind;
    int32_t n_draft;          /* most tokens drafted per step (default 8; capped by n_batch - 1) */
    int32_t ngram_min;        /* lookup: shortest n-gram matched (default 2) */
    int32_t ngram_max;        /* lookup: longest n-gram tried first (default 4) */
    edgellm_context *draft;   /* EDGELLM_SPEC_DRAFT: a context of the draft model (borrowed; its
                               * cache is managed by generate); edgellm_spec_check_draft must pass */
} edgellm_spec_params;

typedef struct edgellm_generate_params {
    int32_t max_tokens;      /* < 0: until end of generation or a full context */
    int add_bos;             /* prepend BOS (default 1) */
    int parse_special;       /* recognise control-token text in the prompt (default 1) */
    edgellm_sampling_params sampling;
    edgellm_spec_params spec; /* default: none */
} edgellm_generate_params;

typedef enum edgellm_stop_reason {
    EDGELLM_STOP_EOG = 0,      /* the model ended its turn */
    EDGELLM_STOP_LENGTH,       /* max_tokens reached */
    EDGELLM_STOP_CONTEXT_FULL, /* no room left in the KV cache */
    EDGELLM_STOP_CALLBACK,     /* the token callback asked to stop */
} edgellm_stop_reason;

typedef struct edgellm_stats {
    uint32_t n_prompt;       /* prompt tokens (BOS included) */
    uint32_t n_reused;       /* of which were already in the KV cache (not evaluated again) */
    uint32_t n_generated;    /* tokens sampled (the end-of-generation token included) */
    double prefill_ms;       /* evaluating the prompt */
    double ttft_ms;          /* call start to the first sampled token */
    double decode_ms;        /* evaluating the generated tokens */
    double prefill_tok_s;    /* evaluated prompt tokens per second */
    double decode_tok_s;     /* generated tokens per second after the first (with speculation:
                              * drafting and verifying included, the effective speed) */
    uint32_t n_drafted;      /* speculative: draft tokens proposed and checked */
    uint32_t n_accepted;     /* of which the model agreed with */
    uint32_t n_verify;       /* speculative: batched verify passes (forward calls) */
    edgellm_stop_reason stop;
} edgellm_stats;

/* Called for every sampled token with the text it completes (possibly empty: a
 * UTF-8 character split across tokens is held back until whole; the final
 * end-of-generation token gives no text). If bytes are still held back when
 * generation ends, one last call with token -1 delivers them (invalid sequences
 * as U+FFFD). Return non-zero to stop. */
typedef int (*edgellm_token_callback)(void *user, int32_t token, const char *text, size_t len);

edgellm_generate_params edgellm_generate_default_params(void);
/* Tokenize prompt, evaluate what the KV cache does not already hold (the common
 * prefix with the cached tokens is reused), then sample up to max_tokens tokens,
 * streaming them to cb (may be NULL). stats (may be NULL) is filled even on error.
 * Returns 0, or -1 with err set (EDGELLM_ERANGE if the prompt does not fit). */
int edgellm_generate(edgellm_context *ctx, const char *prompt, const edgellm_generate_params *params,
                     edgellm_token_callback cb, void *user, edgellm_stats *stats, edgellm_error *err);
/* Same from token ids (no tokenization: add_bos and parse_special are ignored). */
int edgellm_generate_tokens(edgellm_context *ctx, const int32_t *tokens, size_t n_tokens,
                            const edgellm_generate_params *params, edgellm_token_callback cb, void *user,
                            edgellm_stats *stats, edgellm_error *err);
/* Whether draft can draft for target (EDGELLM_SPEC_DRAFT): the same vocabulary size,
 * the same text for every token id and the same BOS/EOS ids. Returns 0, or -1 with
 * err (EDGELLM_EUNSUPPORTED) naming the first difference. */
int edgellm_spec_check_draft(const edgellm_model *target, const edgellm_model *draft, edgellm_error *err);

/* Chat: a conversation rendered with the model's chat template (detected from its
 * metadata), ready for edgellm_generate (which adds BOS). Roles: "system", "user",
 * "assistant". add_generation_prompt: end with the header opening the assistant's
 * turn. Returns a malloc'd NUL-terminated string (release with free()), or NULL. */
typedef struct edgellm_chat_message {
    const char *role;
    const char *content;
} edgellm_chat_message;
char *edgellm_chat_format(const edgellm_model *model, const edgellm_chat_message *msgs, size_t n,
                          int add_generation_prompt, edgellm_error *err);
/* A sentence saying the model's chat template was not recognised (a plain
 * "User:/Assistant:" format is used instead), or NULL when it was. */
const char *edgellm_chat_warning(const edgellm_model *model);

/* Logits (n_vocab floats) after the last evaluated token, valid until the next call
 * on ctx; NULL if nothing was evaluated yet. */
const float *edgellm_context_logits(const edgellm_context *ctx);
/* The greedy token of n logits: the first id of the largest (NaN never wins); 0 if n is
 * 0, logits is NULL or every logit is NaN. */
int32_t edgellm_argmax(const float *logits, uint32_t n);
/* Evaluate n tokens appended to the cache (no sampling); logits become available. */
int edgellm_eval(edgellm_context *ctx, const int32_t *tokens, size_t n, edgellm_error *err);

#ifdef __cplusplus
}
#endif
#endif
