/* edgellm: the one CLI. Dispatches to tools/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "edgellm.h"

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"inspect", cmd_inspect, "show a GGUF model's metadata, tensors and whether it can run"},
    {"run", cmd_run, "generate text from a prompt with a local model, streaming it"},
    {"chat", cmd_chat, "chat interactively with a local model"},
    {"ask", cmd_ask, "send one request through the router (local or cloud); says where it ran, why, and its cost"},
    {"bench", cmd_bench, "measure prefill, decode, TTFT, load time and peak RSS on synthetic prompts"},
    {"usage", cmd_usage, "requests, tokens and cost by day and tier, and this month's forecast"},
};

static void print_usage(FILE *f) {
    fprintf(f, "edgellm %s: run quantized LLMs on small devices, locally or in the cloud\n\n",
            EDGELLM_VERSION);
    fprintf(f, "usage: edgellm COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f, "\n`edgellm COMMAND --help` describes each command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("edgellm %s\n", EDGELLM_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "edgellm: unknown command '%s'\n\n", argv[1]);
    print_usage(stderr);
    return 2;
}
