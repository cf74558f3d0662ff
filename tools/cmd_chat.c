/* edgellm chat: an interactive conversation with a local model.
 *
 * Lines are read from stdin (a terminal or a pipe). Each user line becomes a turn;
 * the whole conversation is rendered with the model's chat template and generated
 * from, reusing the KV cache for the part already evaluated. /reset starts over,
 * /exit (or end of input) quits. Ctrl-C stops the answer being written; at the
 * prompt, a second Ctrl-C in a row exits. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "edgellm.h"
#include "run_common.h"

static volatile sig_atomic_t g_interrupted; /* set by the SIGINT handler, cleared by the REPL */

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static void usage(FILE *f) {
    fprintf(f, "usage: edgellm chat [-m MODEL] [--system TEXT] [OPTIONS]\n\n"
               "Chat with a local GGUF model. Type a message and press Enter; the answer streams\n"
               "back. Lines can also be piped in (one user turn per line).\n"
               "Commands: /reset forgets the conversation, /exit quits (so does end of input).\n"
               "Ctrl-C stops the current answer; pressed twice at the prompt it exits.\n\noptions:\n");
    run_opts_help(f, true);
    fprintf(f, "\nexit status: 0 done, 1 the model could not be loaded, 2 wrong usage\n");
}

typedef struct history {
    edgellm_chat_message *msgs;
    char **owned; /* the strings behind msgs (NULL for the borrowed system prompt) */
    size_t n, cap;
} history;

static bool history_add(history *h, const char *role, const char *text, size_t len) {
    if (h->n == h->cap) { /* both arrays grow together; each keeps its old block on failure */
        size_t cap = h->cap ? h->cap * 2 : 16;
        edgellm_chat_message *m = realloc(h->msgs, cap * sizeof *m);
        if (!m) return false;
        h->msgs = m;
        char **o = realloc(h->owned, cap * sizeof *o);
        if (!o) return false; /* msgs is merely larger than needed */
        h->owned = o;
        h->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return false;
    memcpy(copy, text, len);
    copy[len] = '\0';
    h->owned[h->n] = copy;
    h->msgs[h->n].role = role;
    h->msgs[h->n].content = copy;
    h->n++;
    return true;
}

static void history_drop(history *h, size_t from, size_t count) {
    for (size_t i = from; i < from + count; i++) free(h->owned[i]);
    memmove(h->msgs + from, h->msgs + from + count, (h->n - from - count) * sizeof *h->msgs);
    memmove(h->owned + from, h->owned + from + count, (h->n - from - count) * sizeof *h->owned);
    h->n -= count;
}

static void history_clear(history *h, size_t keep) {
    if (h->n > keep) history_drop(h, keep, h->n - keep);
}

typedef struct answer {
    char *text;
    size_t len, cap;
    bool oom;
} answer;

static int on_token(void *user, int32_t token, const char *text, size_t len) {
    (void)token;
    answer *a = user;
    if (len) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
        if (a->len + len + 1 > a->cap) {
            size_t cap = (a->len + len + 1) * 2;
            char *p = realloc(a->text, cap);
            if (!p) {
                a->oom = true;
                return 1;
            }
            a->text = p;
            a->cap = cap;
        }
        memcpy(a->text + a->len, text, len);
        a->len += len;
    }
    return g_interrupted ? 1 : 0;
}

/* Read one line (without its newline) into *line. Returns its length, -1 at end of
 * input, or -2 when interrupted by Ctrl-C. */
static ssize_t read_line(char **line, size_t *cap) {
    errno = 0;
    ssize_t n = getline(line, cap, stdin);
    if (n < 0) {
        if (g_interrupted || errno == EINTR) {
            clearerr(stdin);
            return -2;
        }
        return -1;
    }
    while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r')) (*line)[--n] = '\0';
    return n;
}

/* Generate the assistant's answer to the conversation in h. Drops the oldest turns
 * (never the system prompt) while the prompt does not fit in the context. */
static int answer_turn(edgellm_model *model, edgellm_context *ctx, edgellm_context *dctx, const run_opts *o,
                       history *h, size_t n_fixed, answer *a, edgellm_stats *st) {
    edgellm_generate_params gp = edgellm_generate_default_params();
    gp.max_tokens = o->n_predict;
    gp.sampling = o->sampling;
    run_spec_params(o, dctx, &gp);
    for (;;) {
        edgellm_error err = {0};
        char *prompt = edgellm_chat_format(model, h->msgs, h->n, 1, &err);
        if (!prompt) {
            fprintf(stderr, "edgellm chat: %s\n", err.message);
            return -1;
        }
        int rc = edgellm_generate(ctx, prompt, &gp, on_token, a, st, &err);
        free(prompt);
        if (rc == 0) return 0;
        /* Too long: forget the oldest exchange and try again, if there is one to forget. */
        if (err.code == EDGELLM_ERANGE && h->n - n_fixed > 2) {
            history_drop(h, n_fixed, 2);
            fprintf(stderr, "[context full: the oldest turns were dropped]\n");
            continue;
        }
        fprintf(stderr, "edgellm chat: %s\n", err.message);
        return -1;
    }
}

int cmd_chat(int argc, char **argv) {
    run_opts o;
    int rc = run_opts_parse(argc, argv, true, &o, usage);
    if (rc) return rc - 1;
    edgellm_model *model;
    edgellm_context *ctx;
    if (!run_load(&o, &model, &ctx)) return 1;
    edgellm_model *draft = NULL;
    edgellm_context *dctx = NULL;
    if (!run_load_draft(&o, model, ctx, &draft, &dctx)) {
        edgellm_context_free(ctx);
        edgellm_model_free(model);
        return 1;
    }
    const char *warn = edgellm_chat_warning(model);
    if (warn) fprintf(stderr, "edgellm chat: %s\n", warn);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: Ctrl-C interrupts a blocked read */
    struct sigaction old;
    sigaction(SIGINT, &sa, &old);

    const bool tty = isatty(STDIN_FILENO);
    history h = {0};
    size_t n_fixed = 0;
    if (o.system && history_add(&h, "system", o.system, strlen(o.system))) n_fixed = 1;
    char *line = NULL;
    size_t cap = 0;
    bool interrupted_at_prompt = false;
    int status = 0;
    for (;;) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        ssize_t n = read_line(&line, &cap);
        if (n == -2) {
            g_interrupted = 0;
            if (interrupted_at_prompt) break;
            interrupted_at_prompt = true;
            fputs("\n(Ctrl-C again to exit, or type /exit)\n", stderr);
            continue;
        }
        if (n == -1) break;
        interrupted_at_prompt = false;
        if (n == 0) continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            history_clear(&h, n_fixed);
            edgellm_context_reset(ctx);
            if (dctx) edgellm_context_reset(dctx);
            fputs("[conversation reset]\n", tty ? stdout : stderr);
            continue;
        }
        if (!history_add(&h, "user", line, (size_t)n)) {
            fprintf(stderr, "edgellm chat: out of memory\n");
            status = 1;
            break;
        }
        answer a = {0};
        edgellm_stats st;
        g_interrupted = 0;
        int r = answer_turn(model, ctx, dctx, &o, &h, n_fixed, &a, &st);
        fputc('\n', stdout);
        fflush(stdout);
        if (r == 0 && st.stop == EDGELLM_STOP_CALLBACK && g_interrupted) fputs("[stopped]\n", stderr);
        if (r == 0 && st.stop == EDGELLM_STOP_CONTEXT_FULL) fputs("[context full: use /reset]\n", stderr);
        g_interrupted = 0;
        if (r < 0 || a.oom) {
            history_drop(&h, h.n - 1, 1); /* the turn that failed */
        } else {
            if (!history_add(&h, "assistant", a.text ? a.text : "", a.len)) a.oom = true;
            if (o.stats_text || o.stats_json) run_print_stats(stderr, model, &st, o.stats_json, o.sampling.seed);
        }
        free(a.text);
    }
    free(line);
    history_clear(&h, 0);
    free(h.msgs);
    free(h.owned);
    sigaction(SIGINT, &old, NULL);
    edgellm_context_free(dctx);
    edgellm_model_free(draft);
    edgellm_context_free(ctx);
    edgellm_model_free(model);
    return status;
}
