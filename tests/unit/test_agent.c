/*
 * Agent recognition and prompt keys (common/agent.c), table-driven: which argv[0] is an agent
 * under which TBWRAP_MATCH list, which budget key a command line gives (Claude's options that
 * take values must not be mistaken for the prompt), and the key of a prompt text, including
 * the output-buffer limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "tbwrap/agent.h"
#include "tbwrap/ledger.h"

#define MAX_ARGS 10
#define CATCH LEDGER_CATCH_ALL

/* A name of exactly LEDGER_NAME_LEN - 1 bytes (the longest key with a budget) and one byte more. */
#define NAME63 "/abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghij"
#define NAME64 NAME63 "k"

struct argv_buf {
	char *argv[MAX_ARGS + 1];
	int argc;
};

static void make_argv(struct argv_buf *b, const char *const *args)
{
	b->argc = 0;
	while (args[b->argc]) {
		assert_true(b->argc < MAX_ARGS);
		b->argv[b->argc] = (char *)args[b->argc];
		b->argc++;
	}
	b->argv[b->argc] = NULL;
}

/* ---- agent_is_match ---- */

struct match_case {
	const char *args[MAX_ARGS];
	const char *match;
	bool want;
};

static const struct match_case match_cases[] = {
	{{"claude"}, "claude", true},
	{{"/usr/local/bin/claude", "-p", "/test"}, "claude", true},
	{{"./claude"}, "claude", true},
	/* The npm package's bin/claude.exe is the native binary under another name. */
	{{"/x/node_modules/.bin/claude.exe"}, "claude", true},
	{{"claude.exe"}, "claude", true},
	{{".exe"}, "claude", false},
	{{"claudex"}, "claude", false},
	{{"xclaude"}, "claude", false},
	{{"claude-code"}, "claude", false},
	{{"Claude"}, "claude", false},
	{{"claude.sh"}, "claude", false},
	{{"claude/"}, "claude", false},
	{{"/claude/bin/sh"}, "claude", false},
	{{""}, "claude", false},
	/* ':'-separated lists; empty pieces match nothing. */
	{{"outer"}, "outer:claude", true},
	{{"claude"}, "outer:claude", true},
	{{"out"}, "outer:claude", false},
	{{"outerclaude"}, "outer:claude", false},
	{{"b"}, "a::b", true},
	{{"claude"}, ":claude:", true},
	{{"claude"}, "", false},
	{{"claude"}, ":", false},
	{{"bench_writes"}, "bench_writes", true},
	{{"claude"}, "bench_writes", false},
	/* The JavaScript build run by an interpreter counts as "claude". */
	{{"node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js", "-p", "/test"},
	 "claude",
	 true},
	{{"/usr/bin/node", "/x/claude-code/cli.mjs"}, "claude", true},
	{{"bun", "/x/claude-code/cli.js"}, "claude", true},
	{{"nodejs", "/x/claude-code/cli.js"}, "claude", true},
	/* include/tbwrap/agent.h names deno among the interpreters. */
	{{"deno", "/x/claude-code/cli.js"}, "claude", true},
	{{"node", "/x/claude-code/cli.js"}, "other", false},
	{{"node", "/x/claude-code/cli.js"}, "other:claude", true},
	{{"node", "/x/other/cli.js"}, "claude", false},
	{{"node", "cli.js"}, "claude", false},
	{{"node", "/x/claude-code/cli.json"}, "claude", false},
	{{"node"}, "claude", false},
	{{"python3", "/x/claude-code/cli.js"}, "claude", false},
};

/* Every row is checked and every mismatch printed before the test fails. */
static void test_is_match_table(void **state)
{
	(void)state;
	int failed = 0;
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		const struct match_case *c = &match_cases[i];
		struct argv_buf b;
		make_argv(&b, c->args);
		bool got = agent_is_match(b.argc, b.argv, c->match);
		if (got != c->want) {
			failed++;
			print_error("agent_is_match(argv[0]='%s'%s%s, match='%s') = %d, want %d\n",
				    c->args[0], c->args[1] ? ", argv[1]=" : "",
				    c->args[1] ? c->args[1] : "", c->match, got, c->want);
		}
	}
	assert_int_equal(failed, 0);
}

static void test_is_match_degenerate(void **state)
{
	(void)state;
	char *argv[] = {(char *)"claude", NULL};
	char *null_argv[] = {NULL};
	assert_false(agent_is_match(0, argv, "claude"));
	assert_false(agent_is_match(1, null_argv, "claude"));
	assert_false(agent_is_match(1, argv, NULL));
	assert_true(agent_is_match(1, argv, "claude"));
}

/* ---- agent_command_key ---- */

struct key_case {
	const char *args[MAX_ARGS];
	const char *want;
};

static const struct key_case key_cases[] = {
	{{"claude", "-p", "/test"}, "/test"},
	{{"claude", "-p", "/test --real-services"}, "/test"},
	{{"claude", "/test"}, "/test"},
	{{"claude", "-p", "/review", "extra"}, "/review"},
	{{"claude", "-p", "hello world"}, CATCH},
	{{"claude", "-p", "fix /test please"}, CATCH},
	{{"claude", "-p", "  /test\targ"}, "/test"},
	{{"claude", "-p", "\n/x"}, "/x"},
	{{"claude", "-p", "/ns:cmd arg"}, "/ns:cmd"},
	{{"claude", "-p", "/"}, CATCH},
	{{"claude", "-p", ""}, CATCH},
	{{"claude", "-p", NAME63}, NAME63},
	{{"claude", "-p", NAME64}, CATCH},
	/* No prompt on argv: it comes on stdin. */
	{{"claude"}, ""},
	{{"claude", "-p"}, ""},
	{{"claude", "-p", "--verbose"}, ""},
	{{"claude", "--output-format", "stream-json"}, ""},
	/* Options that take a value consume it, whatever it looks like. */
	{{"claude", "--output-format", "stream-json", "--verbose", "-p", "/test"}, "/test"},
	{{"claude", "--model", "/weird", "-p", "/test"}, "/test"},
	{{"claude", "--system-prompt", "/not-this", "/test"}, "/test"},
	{{"claude", "-r", "session", "/test"}, "/test"},
	{{"claude", "--resume", "session", "/test"}, "/test"},
	{{"claude", "--max-budget-usd", "0.5", "-p", "/test"}, "/test"},
	{{"claude", "--output-format=json", "/test"}, "/test"},
	{{"claude", "--model=opus", "hello"}, CATCH},
	/* Variadic options consume words up to the next option (commander's rule). */
	{{"claude", "--allowedTools", "Bash", "Read", "-p", "/test"}, "/test"},
	{{"claude", "--allowedTools", "Bash", "Read", "/test"}, ""},
	{{"claude", "--add-dir", "/a", "/b", "--print", "/test"}, "/test"},
	/* Flags that take no value leave the next word to be the prompt. */
	{{"claude", "--verbose", "/test"}, "/test"},
	{{"claude", "--dangerously-skip-permissions", "-p", "/deploy"}, "/deploy"},
	/* "--" ends the options; "-" alone is a word. */
	{{"claude", "-p", "--", "/test"}, "/test"},
	{{"claude", "--", "-x"}, CATCH},
	{{"claude", "--"}, ""},
	{{"claude", "-"}, CATCH},
	/* The JavaScript build: the script is not the prompt. */
	{{"node", "/x/claude-code/cli.js", "-p", "/test"}, "/test"},
	{{"node", "/x/claude-code/cli.mjs", "/test"}, "/test"},
	{{"node", "/x/claude-code/cli.js"}, ""},
};

static void test_command_key_table(void **state)
{
	(void)state;
	int failed = 0;
	for (size_t i = 0; i < sizeof(key_cases) / sizeof(key_cases[0]); i++) {
		const struct key_case *c = &key_cases[i];
		struct argv_buf b;
		char out[LEDGER_NAME_LEN];
		memset(out, 'Z', sizeof(out));
		make_argv(&b, c->args);
		bool done = agent_command_key(b.argc, b.argv, out, sizeof(out));
		if (!done || strcmp(out, c->want) != 0) {
			failed++;
			print_error("case %zu (argv[1]='%s'): %s '%s', want '%s'\n", i,
				    c->args[1] ? c->args[1] : "(none)", done ? "key" : "false, out",
				    done ? out : "", c->want);
		}
	}
	assert_int_equal(failed, 0);
}

static void test_command_key_small_buffer(void **state)
{
	(void)state;
	char *argv[] = {(char *)"claude", (char *)"-p", (char *)"/test", NULL};
	char *bare[] = {(char *)"claude", NULL};
	char out[8];
	/* "/test" needs 6 bytes with its NUL. */
	assert_true(agent_command_key(3, argv, out, 6));
	assert_string_equal(out, "/test");
	assert_false(agent_command_key(3, argv, out, 5));
	assert_false(agent_command_key(3, argv, out, 0));
	/* No prompt: "" fits in one byte, not in none. */
	assert_true(agent_command_key(1, bare, out, 1));
	assert_string_equal(out, "");
	assert_false(agent_command_key(1, bare, out, 0));
	/* The catch-all needs its own length + 1. */
	char *text[] = {(char *)"claude", (char *)"hello", NULL};
	char catch_buf[sizeof(CATCH)];
	assert_true(agent_command_key(2, text, catch_buf, sizeof(catch_buf)));
	assert_string_equal(catch_buf, CATCH);
	assert_false(agent_command_key(2, text, catch_buf, sizeof(catch_buf) - 1));
}

/* ---- agent_prompt_key ---- */

struct prompt_case {
	const char *prompt;
	size_t len; /* 0: strlen */
	const char *want;
};

static const struct prompt_case prompt_cases[] = {
	{"/test", 0, "/test"},
	{"/test arg", 0, "/test"},
	{"/test\narg", 0, "/test"},
	{"/test\r\n", 0, "/test"},
	{" \t\r\n/x y", 0, "/x"},
	{"//", 0, "//"},
	{"/", 0, CATCH},
	{"/ test", 0, CATCH},
	{"", 0, CATCH},
	{"   ", 0, CATCH},
	{"hello /test", 0, CATCH},
	{"test", 0, CATCH},
	{"\\/test", 0, CATCH},
	{NAME63 " x", 0, NAME63},
	{NAME64, 0, CATCH},
	/* The length bounds the prompt, not a NUL. */
	{"/testing", 5, "/test"},
	{"/t", 1, CATCH},
	{"   /x", 3, CATCH},
};

static void test_prompt_key_table(void **state)
{
	(void)state;
	int failed = 0;
	for (size_t i = 0; i < sizeof(prompt_cases) / sizeof(prompt_cases[0]); i++) {
		const struct prompt_case *c = &prompt_cases[i];
		size_t len = c->len ? c->len : strlen(c->prompt);
		char out[LEDGER_NAME_LEN];
		bool done = agent_prompt_key(c->prompt, len, out, sizeof(out));
		if (!done || strcmp(out, c->want) != 0) {
			failed++;
			print_error("case %zu ('%.*s'): %s '%s', want '%s'\n", i, (int)len,
				    c->prompt, done ? "key" : "false, out", done ? out : "",
				    c->want);
		}
	}
	assert_int_equal(failed, 0);
}

static void test_prompt_key_small_buffer(void **state)
{
	(void)state;
	char out[8];
	assert_true(agent_prompt_key("/abc d", 6, out, 5));
	assert_string_equal(out, "/abc");
	assert_false(agent_prompt_key("/abc d", 6, out, 4));
	assert_false(agent_prompt_key("hi", 2, out, 3)); /* CATCH does not fit in 3 bytes */
}

/* The transcript lines that name a session's prompt, as Claude Code 2.1.197 writes them. */
struct transcript_case {
	const char *data;
	bool found;
	const char *want;
};

static const struct transcript_case transcript_cases[] = {
	{"{\"type\":\"queue-operation\",\"operation\":\"enqueue\",\"timestamp\":\"t\","
	 "\"sessionId\":\"s\",\"content\":\"/test --real-services\"}\n",
	 true, "/test"},
	{"{\"type\":\"queue-operation\",\"operation\":\"enqueue\",\"content\":\"fix the bug\"}\n",
	 true, LEDGER_CATCH_ALL},
	/* The content must be on the enqueue line itself, not on a later one. */
	{"{\"type\":\"queue-operation\",\"operation\":\"enqueue\"}\n{\"content\":\"/other\"}\n",
	 false, ""},
	{"{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":\"<command-message>test"
	 "</command-message>\\n<command-name>/slow</command-name>\"}}\n",
	 true, "/slow"},
	{"{\"type\":\"queue-operation\",\"operation\":\"dequeue\"}\n", false, ""},
	{"{\"type\":\"assistant\",\"message\":{\"usage\":{}}}\n", false, ""},
	{"", false, ""},
};

static void test_prompt_from_transcript(void **state)
{
	(void)state;
	int failed = 0;
	for (size_t i = 0; i < sizeof(transcript_cases) / sizeof(transcript_cases[0]); i++) {
		const struct transcript_case *c = &transcript_cases[i];
		char out[LEDGER_NAME_LEN] = "";
		bool found =
			agent_prompt_from_transcript(c->data, strlen(c->data), out, sizeof(out));
		if (found != c->found || (found && strcmp(out, c->want) != 0)) {
			failed++;
			print_error("case %zu: found %d '%s', want %d '%s'\n", i, found, out,
				    c->found, c->want);
		}
	}
	assert_int_equal(failed, 0);
}

static void test_stdout_is_json(void **state)
{
	(void)state;
	static const struct {
		const char *args[6];
		bool want;
	} cases[] = {
		{{"claude", "-p", "/test", NULL}, false},
		{{"claude", "-p", "/test", "--output-format", "text", NULL}, false},
		{{"claude", "-p", "/test", "--output-format", "json", NULL}, true},
		{{"claude", "--output-format", "stream-json", "-p", "/test", NULL}, true},
		{{"claude", "--output-format=stream-json", "/test", NULL}, true},
		{{"claude", "--output-format=jsonl", NULL}, false},
		{{"claude", "--output-format", NULL}, false},
		{{"claude", "--", "--output-format", "json", NULL}, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int argc = 0;
		while (cases[i].args[argc])
			argc++;
		bool got = agent_stdout_is_json(argc, (char *const *)cases[i].args);
		if (got != cases[i].want)
			print_error("case %zu: got %d, want %d\n", i, got, cases[i].want);
		assert_int_equal(got, cases[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_is_match_table),
		cmocka_unit_test(test_is_match_degenerate),
		cmocka_unit_test(test_command_key_table),
		cmocka_unit_test(test_command_key_small_buffer),
		cmocka_unit_test(test_prompt_key_table),
		cmocka_unit_test(test_prompt_key_small_buffer),
		cmocka_unit_test(test_prompt_from_transcript),
		cmocka_unit_test(test_stdout_is_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
