/*
 * Recognising an agent and the budget key of its prompt, from argv alone. Side-effect free, shared
 * by the preload library and the unit tests.
 */
#ifndef TBWRAP_AGENT_H
#define TBWRAP_AGENT_H

#include <stdbool.h>
#include <stddef.h>

/* True when the process is an agent: the basename of argv[0] (with a trailing ".exe" dropped)
 * equals one of the ':'-separated names in match, or argv[0] is node/bun/deno and argv[1] is a
 * script path ending in "claude-code/cli.js" or "claude-code/cli.mjs" (the npm JavaScript build).
 */
bool agent_is_match(int argc, char *const argv[], const char *match);

/* Writes the budget key of the agent's prompt: "/test" for "/test --real-services";
 * LEDGER_CATCH_ALL for a prompt that is not a slash command; "" when there is no prompt on argv
 * (it comes on stdin). Returns false only when out is too small. */
bool agent_command_key(int argc, char *const argv[], char *out, size_t outlen);

/* Base command of a prompt text: first word when it starts with '/', else LEDGER_CATCH_ALL. */
bool agent_prompt_key(const char *prompt, size_t len, char *out, size_t outlen);

/* Looks in bytes written to a transcript for the session's prompt: the queue-operation "enqueue"
 * line ("content":"/test --x") or a user message with <command-name>/test</command-name>. Writes
 * its key (see agent_prompt_key) and returns true when found. */
bool agent_prompt_from_transcript(const char *data, size_t len, char *out, size_t outlen);

/* True when the agent writes JSON on stdout (--output-format json or stream-json). Otherwise its
 * stdout is the model's free text (text mode, or the interactive screen): a line there that looks
 * like usage is the model's words, not the CLI's, and must not count. */
bool agent_stdout_is_json(int argc, char *const argv[]);

#endif
