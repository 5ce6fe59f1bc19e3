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

#define NATIVE "/p/node_modules/@anthropic-ai/claude-code-linux-x64/claude"
#define CLI_JS "/p/node_modules/@anthropic-ai/claude-code/cli.js"

struct match_case {
	const char *args[MAX_ARGS];
	const char *exe;    /* NULL: "" */
	const char *script; /* NULL: "" */
	const char *match;
	bool want;
};

static const struct match_case match_cases[] = {
	/* By name (argv[0]), as always. */
	{{"claude"}, NULL, NULL, "claude", true},
	{{"/usr/local/bin/claude", "-p", "/test"}, NULL, NULL, "claude", true},
	{{"./claude"}, NULL, NULL, "claude", true},
	/* The npm package's bin/claude.exe is the native binary under another name. */
	{{"/x/node_modules/.bin/claude.exe"}, NULL, NULL, "claude", true},
	{{"claude.exe"}, NULL, NULL, "claude", true},
	{{".exe"}, NULL, NULL, "claude", false},
	{{"claudex"}, NULL, NULL, "claude", false},
	{{"xclaude"}, NULL, NULL, "claude", false},
	{{"claude-code"}, NULL, NULL, "claude", false},
	{{"Claude"}, NULL, NULL, "claude", false},
	{{"claude.sh"}, NULL, NULL, "claude", false},
	{{"claude/"}, NULL, NULL, "claude", false},
	{{"/claude/bin/sh"}, NULL, NULL, "claude", false},
	{{""}, NULL, NULL, "claude", false},
	/* ':'-separated lists; empty pieces match nothing. */
	{{"outer"}, NULL, NULL, "outer:claude", true},
	{{"claude"}, NULL, NULL, "outer:claude", true},
	{{"out"}, NULL, NULL, "outer:claude", false},
	{{"outerclaude"}, NULL, NULL, "outer:claude", false},
	{{"b"}, NULL, NULL, "a::b", true},
	{{"claude"}, NULL, NULL, ":claude:", true},
	{{"claude"}, NULL, NULL, "", false},
	{{"claude"}, NULL, NULL, ":", false},
	{{"bench_writes"}, NULL, NULL, "bench_writes", true},
	{{"claude"}, NULL, NULL, "bench_writes", false},
	/* By what it runs: exec -a, a symlink of another name, the native installer. */
	{{"mybot", "-p", "/test"}, NATIVE, NULL, "claude", true},
	{{"./nightly-agent"}, NATIVE, NULL, "claude", true},
	{{"mybot"}, "/home/u/.local/share/claude/versions/2.1.332", NULL, "claude", true},
	{{"mybot"}, "/home/u/.local/share/claude/versions/2.1.332/x", NULL, "claude", false},
	{{"mybot"}, "/usr/local/bin/claude", NULL, "claude", true},
	{{"mybot"}, "/usr/bin/bash", NULL, "claude", false},
	/* ... but the native binary run as the ripgrep it bundles is not an agent. */
	{{"rg", "--files", "/p"}, NATIVE, NULL, "claude", false},
	{{"/x/rg", "--version"}, NATIVE, NULL, "claude", false},
	/* Not "claude" in the list: only names count. */
	{{"mybot"}, NATIVE, NULL, "other", false},
	{{"mybot"}, "/opt/other", NULL, "other", true},
	/* The JavaScript build run by an interpreter counts as "claude", by the script's real
	 * path (npm's bin/claude is a symlink to cli.js). */
	{{"node", "/usr/lib/node_modules/.bin/claude", "-p", "/test"},
	 "/usr/bin/node",
	 CLI_JS,
	 "claude",
	 true},
	{{"node", "/x/claude-code/cli.mjs"},
	 "/usr/bin/node",
	 "/x/claude-code/cli.mjs",
	 "claude",
	 true},
	{{"bun", "x"}, "/usr/bin/bun", "/x/claude-code/cli.js", "claude", true},
	{{"node", "x"}, "/usr/bin/node", CLI_JS, "other", false},
	{{"node", "x"}, "/usr/bin/node", CLI_JS, "other:claude", true},
	{{"node", "x"}, "/usr/bin/node", "/x/other/cli.js", "claude", false},
	{{"node", "x"}, "/usr/bin/node", "/x/claude-code/cli.json", "claude", false},
	/* A script named like an agent, run by an interpreter: --match works for it. */
	{{"node", "agent.js"}, "/usr/bin/node", "/w/myagent.js", "myagent", true},
	{{"node"}, "/usr/bin/node", NULL, "claude", false},
	/* An interpreter named like an agent is still judged by its script. */
	{{"node", "x"}, "/usr/bin/node", "/w/tool.js", "node", true},
	{{"python3", "x"}, "/usr/bin/python3", "/x/claude-code/cli.js", "claude", true},
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
		struct agent_exec x = {.argc = b.argc,
				       .argv = b.argv,
				       .exe = c->exe ? c->exe : "",
				       .script = c->script ? c->script : ""};
		bool got = agent_is_match(&x, c->match);
		if (got != c->want) {
			failed++;
			print_error("case %zu: agent_is_match(argv[0]='%s', exe='%s', script='%s', "
				    "match='%s') = %d, want %d\n",
				    i, c->args[0], x.exe, x.script, c->match, got, c->want);
		}
	}
	assert_int_equal(failed, 0);
}

/* The interpreter's script: after its own options, "run" for bun and deno. */
static void test_script_index(void **state)
{
	(void)state;
	static const struct {
		const char *args[MAX_ARGS];
		const char *exe;
		int want;
	} cases[] = {
		{{"node", "cli.js", "-p"}, "/usr/bin/node", 1},
		{{"node", "--no-warnings", "-r", "x.js", "cli.js"}, "/usr/bin/node", 4},
		{{"node", "--max-old-space-size=4096", "cli.js"}, "/usr/bin/node", 2},
		{{"node", "-e", "code"}, "/usr/bin/node", 0},
		{{"node", "--print", "1"}, "/usr/bin/node", 0},
		{{"node"}, "/usr/bin/node", 0},
		{{"bun", "run", "cli.js"}, "/usr/bin/bun", 2},
		{{"deno", "run", "-A", "cli.js"}, "/usr/bin/deno", 3},
		{{"node", "--", "cli.js"}, "/usr/bin/node", 2},
		/* Judged by the executable first, argv[0] second. */
		{{"whatever", "cli.js"}, "/usr/bin/node", 1},
		{{"node", "cli.js"}, "", 1},
		{{"claude", "cli.js"}, "/p/claude", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct argv_buf b;
		make_argv(&b, cases[i].args);
		int got = agent_script_index(b.argc, b.argv, cases[i].exe);
		if (got != cases[i].want)
			print_error("case %zu: %d, want %d\n", i, got, cases[i].want);
		assert_int_equal(got, cases[i].want);
	}
}

static void test_is_match_degenerate(void **state)
{
	(void)state;
	char *argv[] = {(char *)"claude", NULL};
	char *null_argv[] = {NULL};
	struct agent_exec none = {.argc = 0, .argv = argv, .exe = "", .script = ""};
	struct agent_exec null0 = {.argc = 1, .argv = null_argv, .exe = "", .script = ""};
	struct agent_exec one = {.argc = 1, .argv = argv, .exe = "", .script = ""};
	struct agent_exec no_paths = {.argc = 1, .argv = argv, .exe = NULL, .script = NULL};
	assert_false(agent_is_match(&none, "claude"));
	assert_false(agent_is_match(&null0, "claude"));
	assert_false(agent_is_match(&one, NULL));
	assert_true(agent_is_match(&one, "claude"));
	assert_true(agent_is_match(&no_paths, "claude"));
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
	/* Options that take a value, found in the --help of the versions tested. */
	{{"claude", "-p", "--effort", "high", "/test"}, "/test"},
	{{"claude", "-p", "-n", "nightly", "/test"}, "/test"},
	{{"claude", "-p", "--name", "nightly", "/test"}, "/test"},
	/* Options may follow the prompt. */
	{{"claude", "/test", "--model", "x"}, "/test"},
	/* Optional values swallow a word that does not start with '-' (measured: the CLI then has
	 * no prompt and reads stdin). */
	{{"claude", "-p", "--debug", "/test"}, ""},
	{{"claude", "-p", "--debug=api", "/test"}, "/test"},
	{{"claude", "-p", "-d", "api", "/test"}, "/test"},
	{{"claude", "-p", "/test", "-d"}, "/test"},
	/* Short options in one word: the one that takes a value takes the rest, or the next word.
	 */
	{{"claude", "-pd", "/test"}, ""},
	{{"claude", "-dp", "/test"}, "/test"},
	{{"claude", "-p", "-nnightly", "/test"}, "/test"},
	{{"claude", "-pn", "nightly", "/test"}, "/test"},
	/* Hidden options of 2.1.332 that take a value. */
	{{"claude", "-p", "--thinking", "on", "/test"}, "/test"},
	{{"claude", "-p", "--task-budget", "5", "/test"}, "/test"},
};

/* The JavaScript build: the interpreter and its script come first (first = script + 1). */
static void test_command_key_after_script(void **state)
{
	(void)state;
	char *argv[] = {(char *)"node", (char *)"/x/bin/claude", (char *)"-p", (char *)"/test",
			NULL};
	char out[LEDGER_NAME_LEN];
	assert_true(agent_command_key(4, argv, 2, out, sizeof(out)));
	assert_string_equal(out, "/test");
	assert_true(agent_command_key(2, argv, 2, out, sizeof(out)));
	assert_string_equal(out, "");
}

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
		bool done = agent_command_key(b.argc, b.argv, 1, out, sizeof(out));
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
	assert_true(agent_command_key(3, argv, 1, out, 6));
	assert_string_equal(out, "/test");
	assert_false(agent_command_key(3, argv, 1, out, 5));
	assert_false(agent_command_key(3, argv, 1, out, 0));
	/* No prompt: "" fits in one byte, not in none. */
	assert_true(agent_command_key(1, bare, 1, out, 1));
	assert_string_equal(out, "");
	assert_false(agent_command_key(1, bare, 1, out, 0));
	/* The catch-all needs its own length + 1. */
	char *text[] = {(char *)"claude", (char *)"hello", NULL};
	char catch_buf[sizeof(CATCH)];
	assert_true(agent_command_key(2, text, 1, catch_buf, sizeof(catch_buf)));
	assert_string_equal(catch_buf, CATCH);
	assert_false(agent_command_key(2, text, 1, catch_buf, sizeof(catch_buf) - 1));
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

static void test_output_of(void **state)
{
	(void)state;
	static const struct {
		const char *args[7];
		bool json, no_persistence, prints;
	} cases[] = {
		{{"claude", "-p", "/test", NULL}, false, false, true},
		{{"claude", "-p", "/test", "--output-format", "text", NULL}, false, false, true},
		{{"claude", "-p", "/test", "--output-format", "json", NULL}, true, false, true},
		{{"claude", "--output-format", "stream-json", "-p", "/test", NULL},
		 true,
		 false,
		 true},
		{{"claude", "--output-format=stream-json", "/test", NULL}, true, false, false},
		{{"claude", "--output-format=jsonl", NULL}, false, false, false},
		{{"claude", "--output-format", NULL}, false, false, false},
		{{"claude", "--", "--output-format", "json", NULL}, false, false, false},
		{{"claude", "--print", "/t", "--no-session-persistence", NULL}, false, true, true},
		/* A value that looks like a flag is the value of the option before it. */
		{{"claude", "--system-prompt", "--no-session-persistence", "/t", NULL},
		 false,
		 false,
		 false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int argc = 0;
		while (cases[i].args[argc])
			argc++;
		struct agent_output out;
		agent_output_of(argc, (char *const *)cases[i].args, 1, &out);
		if (out.stdout_json != cases[i].json ||
		    out.no_persistence != cases[i].no_persistence || out.prints != cases[i].prints)
			print_error("case %zu: json %d persistence-off %d prints %d\n", i,
				    out.stdout_json, out.no_persistence, out.prints);
		assert_int_equal(out.stdout_json, cases[i].json);
		assert_int_equal(out.no_persistence, cases[i].no_persistence);
		assert_int_equal(out.prints, cases[i].prints);
	}
}

/* Only stream-json carries usage during each call. */
static void test_output_stream(void **state)
{
	(void)state;
	char *stream[] = {(char *)"claude", (char *)"--output-format=stream-json", NULL};
	char *json[] = {(char *)"claude", (char *)"--output-format", (char *)"json", NULL};
	struct agent_output out;
	agent_output_of(2, stream, 1, &out);
	assert_true(out.stdout_json && out.stdout_stream);
	agent_output_of(3, json, 1, &out);
	assert_true(out.stdout_json && !out.stdout_stream);
}

static void test_transcript_shape(void **state)
{
	(void)state;
	static const struct {
		const char *path;
		bool want;
		const char *projects; /* the prefix up to "/projects" */
	} cases[] = {
		{"/c/projects/-w-p/0b6c.jsonl", true, "/c/projects"},
		{"/h/.claude/projects/-tmp-x/s/subagents/agent-a1.jsonl", true,
		 "/h/.claude/projects"},
		{"/projects/p/s.jsonl", true, "/projects"},
		{"/c/projects/s.jsonl", false, NULL},
		{"/c/projects/-w-p/0b6c.json", false, NULL},
		{"/c/projects/-w-p/x/0b6c.jsonl", false, NULL},
		{"/c/projects/-w-p/s/other/agent.jsonl", false, NULL},
		{"/c/project/-w-p/s.jsonl", false, NULL},
		{"/c/xprojects/-w-p/s.jsonl", false, NULL},
		{"/c/history.jsonl", false, NULL},
		{"c/projects/p/s.jsonl", false, NULL},
		{"/c/projects//s.jsonl", false, NULL},
		{"", false, NULL},
		{".jsonl", false, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t plen = 0;
		bool got = agent_transcript_shape(cases[i].path, strlen(cases[i].path), &plen);
		if (got != cases[i].want)
			print_error("case %zu (%s): %d, want %d\n", i, cases[i].path, got,
				    cases[i].want);
		assert_int_equal(got, cases[i].want);
		if (got) {
			assert_int_equal(plen, strlen(cases[i].projects));
			assert_memory_equal(cases[i].path, cases[i].projects, plen);
		}
	}
}

static void test_option_arity(void **state)
{
	(void)state;
	assert_int_equal(agent_option_arity("--output-format"), 1);
	assert_int_equal(agent_option_arity("--allowedTools"), 2);
	assert_int_equal(agent_option_arity("--resume"), 1);
	assert_int_equal(agent_option_arity("--verbose"), -1);
	assert_int_equal(agent_option_arity("--output"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_is_match_table),
		cmocka_unit_test(test_is_match_degenerate),
		cmocka_unit_test(test_script_index),
		cmocka_unit_test(test_command_key_after_script),
		cmocka_unit_test(test_transcript_shape),
		cmocka_unit_test(test_output_stream),
		cmocka_unit_test(test_option_arity),
		cmocka_unit_test(test_command_key_table),
		cmocka_unit_test(test_command_key_small_buffer),
		cmocka_unit_test(test_prompt_key_table),
		cmocka_unit_test(test_prompt_key_small_buffer),
		cmocka_unit_test(test_prompt_from_transcript),
		cmocka_unit_test(test_output_of),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
