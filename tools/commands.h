/* One function per `edgellm` subcommand; each parses its own argv (argv[0] is the
 * subcommand name) and returns the process exit code. */
#ifndef EDGELLM_TOOLS_COMMANDS_H
#define EDGELLM_TOOLS_COMMANDS_H

int cmd_inspect(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_ask(int argc, char **argv);
int cmd_usage(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
