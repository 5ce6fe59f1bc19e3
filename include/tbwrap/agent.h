/*
 * Recognising an agent, the budget key of its prompt and the files it writes its usage to. Pure
 * string work on argv and paths, shared by the preload library (about its own process), the
 * supervisor (about processes it finds in /proc) and the unit tests.
 */
#ifndef TBWRAP_AGENT_H
#define TBWRAP_AGENT_H

#include <stdbool.h>
#include <stddef.h>

/* What a process runs, as far as recognition needs it. */
struct agent_exec {
	int argc;
	char *const *argv;
	const char *exe;    /* real path of its executable ("" when unknown) */
	const char *script; /* real path of the script an interpreter runs ("" when none) */
};

/* Index in argv of the script a JavaScript interpreter (node, nodejs, bun, deno; judged by the
 * basename of exe, else of argv[0]) runs: the first word after the interpreter's own options
 * (and after "run" for bun and deno). 0 when it is no interpreter, or runs no script (-e, -p). */
int agent_script_index(int argc, char *const argv[], const char *exe);

/*
 * True when the process is an agent, by what it runs or by its name:
 *   - the basename of argv[0], of exe or of script (".exe", ".js", ".mjs", ".cjs" dropped) is
 *     one of the ':'-separated names in match;
 *   - or "claude" is in match and it runs Claude Code under another name: exe is a native
 *     Claude Code build (.../@anthropic-ai/claude-code*\/..., .../claude/versions/X, the Agent
 *     SDK's bundled binary) or script is the npm package's cli.js.
 * Symlinks are the caller's business: exe and script are real paths.
 */
bool agent_is_match(const struct agent_exec *x, const char *match);

/* Writes the budget key of the agent's prompt: "/test" for "/test --real-services";
 * LEDGER_CATCH_ALL for a prompt that is not a slash command; "" when there is no prompt on argv
 * (it comes on stdin). first is the index of the CLI's first own argument (1, or the script
 * index + 1). Returns false only when out is too small. */
bool agent_command_key(int argc, char *const argv[], int first, char *out, size_t outlen);

/* Base command of a prompt text: first word when it starts with '/', else LEDGER_CATCH_ALL. */
bool agent_prompt_key(const char *prompt, size_t len, char *out, size_t outlen);

/* Looks in bytes written to a transcript for the session's prompt: the queue-operation "enqueue"
 * line ("content":"/test --x") or a user message with <command-name>/test</command-name>. Writes
 * its key (see agent_prompt_key) and returns true when found. */
bool agent_prompt_from_transcript(const char *data, size_t len, char *out, size_t outlen);

/* What the CLI's argv says about where its usage will be. */
struct agent_output {
	bool stdout_json;    /* --output-format json or stream-json: usage on stdout */
	bool stdout_stream;  /* stream-json: usage on stdout during each call */
	bool no_persistence; /* --no-session-persistence: no transcript is written */
	bool prints;	     /* -p/--print: one session, then exit */
};
void agent_output_of(int argc, char *const argv[], int first, struct agent_output *out);

/* Whether a canonical path has the shape of a Claude Code transcript:
 *   <config>/projects/<project>/<session>.jsonl
 *   <config>/projects/<project>/<session>/subagents/<agent>.jsonl
 * On success *projects_len is the length of the prefix "<config>/projects". */
bool agent_transcript_shape(const char *path, size_t len, size_t *projects_len);

/* The option tables argv is read with (Claude Code's own, see agent.c): for a test that checks
 * them against a CLI's --help. Returns 0 for a flag, 1 for an option taking one value, 2 for a
 * variadic one, -1 for an option not in the tables. */
int agent_option_arity(const char *option);

#endif
