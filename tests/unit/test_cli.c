/*
 * The launcher's command line: every refusal with its exact one-line message, every accepted
 * form with every parsed field, the token-count grammar, and --help naming every flag the parser
 * accepts and every exit status.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tbwrap/cli.h"
#include "tbwrap/env.h"
#include "tbwrap/log.h"

#define MAX_ARGS 14

static int count_args(const char *const *args)
{
	int n = 0;
	while (args[n])
		n++;
	return n;
}

/* cli_parse takes char **: copy the table's constant strings into a writable argv. */
struct argv_buf {
	char *argv[MAX_ARGS + 2];
	int argc;
};

static void make_argv(struct argv_buf *b, const char *const *args)
{
	b->argc = count_args(args) + 1;
	assert_true(b->argc <= MAX_ARGS + 1);
	b->argv[0] = (char *)"tbwrap";
	for (int i = 1; i < b->argc; i++)
		b->argv[i] = (char *)args[i - 1];
	b->argv[b->argc] = NULL;
}

/* ---- token counts ---- */

struct count_case {
	const char *s;
	int rc;
	uint64_t v;
};

static const struct count_case count_cases[] = {
	{"0", 0, 0},
	{"1", 0, 1},
	{"999", 0, 999},
	{"50000", 0, 50000},
	{"50K", 0, 50000},
	{"2k", 0, 2000},
	{"1.5M", 0, 1500000},
	{"1.5m", 0, 1500000},
	{"1.5K", 0, 1500},
	{"1.50K", 0, 1500},
	{"0.001K", 0, 1},
	{"1.0", 0, 1},
	{"1.000000000M", 0, 1000000},
	{"1.000001M", 0, 1000001},
	{"9007199254740992", 0, UINT64_C(9007199254740992)},
	{"9007199254.740992M", 0, UINT64_C(9007199254740992)},
	{"9007199254740K", 0, UINT64_C(9007199254740000)},
	{"007", 0, 7},
	{"", -1, 0},
	{"-1", -1, 0},
	{"+1", -1, 0},
	{" 1", -1, 0},
	{"1 ", -1, 0},
	{"abc", -1, 0},
	{"1e99", -1, 0},
	{"1e3", -1, 0},
	{"1.5", -1, 0},
	{"1.0001K", -1, 0},
	{"1.0000001M", -1, 0},
	{"1.", -1, 0},
	{".5K", -1, 0},
	{"1KK", -1, 0},
	{"1G", -1, 0},
	{"5Kx", -1, 0},
	{"1,000", -1, 0},
	{"9007199254740993", -1, 0},
	{"9007199254741K", -1, 0},
	{"18446744073709551616", -1, 0},
	{"99999999999999999999999999999999", -1, 0},
	{"0x10", -1, 0},
};

static void test_parse_count(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(count_cases) / sizeof(count_cases[0]); i++) {
		const struct count_case *c = &count_cases[i];
		uint64_t v = 12345;
		int rc = cli_parse_count(c->s, &v);
		if (rc != c->rc)
			fail_msg("cli_parse_count(\"%s\") = %d, expected %d", c->s, rc, c->rc);
		if (rc == 0 && v != c->v)
			fail_msg("cli_parse_count(\"%s\") gave %llu, expected %llu", c->s,
				 (unsigned long long)v, (unsigned long long)c->v);
		if (rc != 0 && v != 12345)
			fail_msg("cli_parse_count(\"%s\") wrote its output on failure", c->s);
	}
}

/* ---- refusals ---- */

struct bad_case {
	const char *args[MAX_ARGS];
	const char *err;
};

#define NAME63 "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define NAME64 NAME63 "b"

static const struct bad_case bad_cases[] = {
	{{"--overall-usd-budget", "five", "claude", NULL},
	 "--overall-usd-budget 'five': expected an amount in USD such as 5, 0.25 or $1.50 (at most "
	 "6 "
	 "decimals, at most $10M)"},
	{{"--overall-usd-budget", "-1", "claude", NULL},
	 "--overall-usd-budget '-1': expected an amount in USD such as 5, 0.25 or $1.50 (at most 6 "
	 "decimals, at most $10M)"},
	{{"--overall-usd-budget", "0.0000001", "claude", NULL},
	 "--overall-usd-budget '0.0000001': expected an amount in USD such as 5, 0.25 or $1.50 (at "
	 "most 6 decimals, at most $10M)"},
	{{"--overall-usd-budget", "20000000", "claude", NULL},
	 "--overall-usd-budget '20000000': expected an amount in USD such as 5, 0.25 or $1.50 (at "
	 "most 6 decimals, at most $10M)"},
	{{"--overall-usd-budget", "1", "--overall-usd-budget", "2", "claude", NULL},
	 "--overall-usd-budget given twice"},
	{{"--command-usd-budget", "/test", "claude", NULL},
	 "--command-usd-budget '/test': expected /COMMAND=USD (e.g. /test=0.50)"},
	{{"--command-usd-budget", "/test=1e3", "claude", NULL},
	 "--command-usd-budget '/test=1e3': expected an amount in USD such as 5, 0.25 or $1.50 (at "
	 "most 6 decimals, at most $10M) after '='"},
	{{"--command-usd-budget", "/test=1", "--command-usd-budget", "/test=2", "claude", NULL},
	 "--command-usd-budget '/test=2': /test already has a USD budget"},
	{{"--count", "input,tokens", "claude", NULL},
	 "--count 'input,tokens': 'tokens' is not a class (expected a comma list of input, output, "
	 "cache_creation, cache_read)"},
	{{"--count", "", "claude", NULL},
	 "--count '': '' is not a class (expected a comma list of input, output, cache_creation, "
	 "cache_read)"},
	{{"--count", "input,input", "claude", NULL}, "--count 'input,input': input given twice"},
	{{"--count", "input", "--count", "output", "claude", NULL}, "--count given twice"},
	{{"--prices", "", "claude", NULL}, "--prices '': expected a file name"},
	{{"prices", "x", NULL},
	 "prices: unexpected argument 'x' (usage: tbwrap prices [--prices FILE])"},
	{{"--command-budget", "test", "--", "claude", NULL},
	 "--command-budget 'test': expected /COMMAND=TOKENS (e.g. /test=50K)"},
	{{"--command-budget", "=5", "claude", NULL},
	 "--command-budget '=5': expected /COMMAND=TOKENS (e.g. /test=50K)"},
	{{"--command-budget", "/=5", "claude", NULL},
	 "--command-budget '/=5': expected /COMMAND=TOKENS (e.g. /test=50K)"},
	{{"--command-budget", "test=5", "claude", NULL},
	 "--command-budget 'test=5': expected /COMMAND=TOKENS (e.g. /test=50K)"},
	{{"--command-budget", "/my test=5", "claude", NULL},
	 "--command-budget '/my test=5': expected /COMMAND=TOKENS (e.g. /test=50K)"},
	{{"--command-budget", "/x=abc", "claude", NULL},
	 "--command-budget '/x=abc': expected a token count such as 50000, 50K or 1.5M"},
	{{"--command-budget", "/x=-1", "claude", NULL},
	 "--command-budget '/x=-1': expected a token count such as 50000, 50K or 1.5M"},
	{{"--command-budget", "/x=1e99", "claude", NULL},
	 "--command-budget '/x=1e99': expected a token count such as 50000, 50K or 1.5M"},
	{{"--command-budget", "/x=", "claude", NULL},
	 "--command-budget '/x=': expected a token count such as 50000, 50K or 1.5M"},
	{{"--command-budget", "/x=1.5", "claude", NULL},
	 "--command-budget '/x=1.5': not a whole number of tokens"},
	{{"--command-budget", "/x=99999999999999999999", "claude", NULL},
	 "--command-budget '/x=99999999999999999999': more than 9007199254740992 tokens"},
	{{"--command-budget", "/test=1K", "--command-budget=/test=2K", "claude", NULL},
	 "--command-budget '/test=2K': /test already has a budget"},
	{{"--command-budget", NAME64 "=1", "claude", NULL},
	 "--command-budget '" NAME64 "=1': command name longer than 63 bytes"},
	{{"--command-budget", NULL}, "--command-budget: missing value (expected /COMMAND=TOKENS)"},
	{{"--overall-token-budget", "abc", "claude", NULL},
	 "--overall-token-budget 'abc': expected a token count such as 50000, 50K or 1.5M"},
	{{"--overall-token-budget=-5", "claude", NULL},
	 "--overall-token-budget '-5': expected a token count such as 50000, 50K or 1.5M"},
	{{"--overall-token-budget", NULL},
	 "--overall-token-budget: missing value (expected TOKENS)"},
	{{"--overall-token-budget", "1K", "--overall-token-budget", "2K", "claude", NULL},
	 "--overall-token-budget given twice"},
	{{"--budget-enforcement-mode", "stop", "claude", NULL},
	 "--budget-enforcement-mode 'stop': expected warn or block"},
	{{"--budget-enforcement-mode=", "claude", NULL},
	 "--budget-enforcement-mode '': expected warn or block"},
	{{"--budget-enforcement-mode", NULL},
	 "--budget-enforcement-mode: missing value (expected warn|block)"},
	{{"--budget-enforcement-mode", "warn", "--budget-enforcement-mode", "block", "x", NULL},
	 "--budget-enforcement-mode given twice"},
	{{"--estimate", "lots", "claude", NULL},
	 "--estimate 'lots': expected a token count such as 50000, 50K or 1.5M (or auto)"},
	{{"--estimate", "1", "--estimate", "2", "claude", NULL}, "--estimate given twice"},
	{{"--match", "", "claude", NULL},
	 "--match '': expected a program name (no '/' or ':', at most 255 bytes)"},
	{{"--match", "bin/claude", "claude", NULL},
	 "--match 'bin/claude': expected a program name (no '/' or ':', at most 255 bytes)"},
	{{"--match", "a:b", "claude", NULL},
	 "--match 'a:b': expected a program name (no '/' or ':', at most 255 bytes)"},
	{{"--report-json", "", "claude", NULL},
	 "--report-json '': expected a file name (or - for stdout)"},
	{{"--report-json", "a", "--report-json", "b", "claude", NULL}, "--report-json given twice"},
	{{"--report-json", NULL}, "--report-json: missing value (expected FILE)"},
	{{"--dry-run=yes", "claude", NULL}, "--dry-run takes no value (got 'yes')"},
	{{"--disable-budget-visuals=1", "claude", NULL},
	 "--disable-budget-visuals takes no value (got '1')"},
	{{"--frobnicate", "claude", NULL}, "unknown option '--frobnicate' (see tbwrap --help)"},
	{{"--overall", "5", "claude", NULL}, "unknown option '--overall' (see tbwrap --help)"},
	{{"-x", "claude", NULL}, "unknown option '-x' (see tbwrap --help)"},
	{{"-h=1", "claude", NULL}, "unknown option '-h=1' (see tbwrap --help)"},
	{{NULL},
	 "no command given (usage: tbwrap [OPTIONS] -- COMMAND [ARGS...]; see tbwrap --help)"},
	{{"--dry-run", NULL},
	 "no command given (usage: tbwrap [OPTIONS] -- COMMAND [ARGS...]; see tbwrap --help)"},
	{{"--overall-token-budget", "5K", "--", NULL},
	 "no command given (usage: tbwrap [OPTIONS] -- COMMAND [ARGS...]; see tbwrap --help)"},
	{{"status", "abc", NULL}, "status 'abc': expected the process id of a running tbwrap"},
	{{"status", "0", NULL}, "status '0': expected the process id of a running tbwrap"},
	{{"status", "-5", NULL},
	 "status: unknown option '-5' (usage: tbwrap status [--disable-budget-visuals] [PID])"},
	{{"status", "99999999999", NULL},
	 "status '99999999999': expected the process id of a running tbwrap"},
	{{"status", "12", "13", NULL},
	 "status: unexpected argument '13' (usage: tbwrap status [--disable-budget-visuals] "
	 "[PID])"},
};

static void test_refusals(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct argv_buf b;
		struct cli_options o;
		char err[512] = "untouched";

		make_argv(&b, c->args);
		int rc = cli_parse(b.argc, b.argv, &o, err, sizeof(err));
		if (rc != -1)
			fail_msg("case %zu (expected \"%s\"): returned %d", i, c->err, rc);
		if (strcmp(err, c->err) != 0)
			fail_msg("case %zu:\n  got      \"%s\"\n  expected \"%s\"", i, err, c->err);
		if (strchr(err, '\n'))
			fail_msg("case %zu: the message has more than one line", i);
	}
}

/* The 65th budget is refused; 64 are accepted. */
static void test_too_many_budgets(void **state)
{
	(void)state;
	char names[LEDGER_MAX_BUDGETS + 1][32];
	char *argv[2 * (LEDGER_MAX_BUDGETS + 1) + 3];
	struct cli_options o;
	char err[256];
	int argc = 0;

	argv[argc++] = (char *)"tbwrap";
	for (int i = 0; i < LEDGER_MAX_BUDGETS; i++) {
		snprintf(names[i], sizeof(names[i]), "/c%d=%d", i, i + 1);
		argv[argc++] = (char *)"--command-budget";
		argv[argc++] = names[i];
	}
	argv[argc++] = (char *)"claude";
	argv[argc] = NULL;
	assert_int_equal(cli_parse(argc, argv, &o, err, sizeof(err)), 0);
	assert_int_equal(o.n_commands, LEDGER_MAX_BUDGETS);
	assert_string_equal(o.command_names[62], "/c62");
	assert_int_equal(o.command_limits[62], 63);

	argc--;
	snprintf(names[LEDGER_MAX_BUDGETS], sizeof(names[0]), "/c%d=1", LEDGER_MAX_BUDGETS);
	argv[argc++] = (char *)"--command-budget";
	argv[argc++] = names[LEDGER_MAX_BUDGETS];
	argv[argc++] = (char *)"claude";
	argv[argc] = NULL;
	assert_int_equal(cli_parse(argc, argv, &o, err, sizeof(err)), -1);
	assert_string_equal(err, "--command-budget '/c63=1': more than 63 command budgets");
}

static void test_too_many_match(void **state)
{
	(void)state;
	char *argv[2 * (CLI_MAX_MATCH + 1) + 3];
	struct cli_options o;
	char err[256];
	int argc = 0;

	argv[argc++] = (char *)"tbwrap";
	for (int i = 0; i <= CLI_MAX_MATCH; i++) {
		argv[argc++] = (char *)"--match";
		argv[argc++] = (char *)"agent";
	}
	argv[argc++] = (char *)"x";
	argv[argc] = NULL;
	assert_int_equal(cli_parse(argc, argv, &o, err, sizeof(err)), -1);
	assert_string_equal(err, "--match 'agent': more than 16 names");
}

/* A tiny err buffer truncates but stays a C string. */
static void test_small_err_buffer(void **state)
{
	(void)state;
	char *argv[] = {(char *)"tbwrap", (char *)"--frobnicate", (char *)"x", NULL};
	struct cli_options o;
	char err[8];
	assert_int_equal(cli_parse(3, argv, &o, err, sizeof(err)), -1);
	assert_string_equal(err, "unknown");
}

/* ---- accepted command lines ---- */

struct good_case {
	const char *args[MAX_ARGS];
	enum cli_action action;
	uint64_t overall;
	size_t n_commands;
	const char *names[3];
	uint64_t limits[3];
	enum ledger_mode mode;
	bool visuals;
	uint64_t estimate;
	bool dry_run;
	size_t n_match;
	const char *match[3];
	const char *report_json;
	pid_t status_pid;
	int cmd_index; /* index in args of the command's first word; -1 none */
	int cmd_argc;
};

#define DEFAULTS                                                                                   \
	.overall = LEDGER_NO_LIMIT, .mode = LEDGER_MODE_WARN, .visuals = true, .estimate = 1000,   \
	.n_match = 1, .match = {"claude"}

static const struct good_case good_cases[] = {
	{{"claude", "-p", "/test", NULL}, CLI_RUN, DEFAULTS, .cmd_index = 0, .cmd_argc = 3},
	{{"--", "claude", NULL}, CLI_RUN, DEFAULTS, .cmd_index = 1, .cmd_argc = 1},
	/* Options after the command belong to it. */
	{{"--dry-run", "sh", "--dry-run", "--help", NULL},
	 CLI_RUN,
	 DEFAULTS,
	 .dry_run = true,
	 .cmd_index = 1,
	 .cmd_argc = 3},
	{{"--overall-token-budget", "50K", "--command-budget", "/test=10K",
	  "--command-budget=/review=1.5M", "--budget-enforcement-mode", "block",
	  "--disable-budget-visuals", "--estimate=2k", "--", "sh", "-c", NULL},
	 CLI_RUN,
	 .overall = 50000,
	 .n_commands = 2,
	 .names = {"/test", "/review"},
	 .limits = {10000, 1500000},
	 .mode = LEDGER_MODE_BLOCK,
	 .visuals = false,
	 .estimate = 2000,
	 .n_match = 1,
	 .match = {"claude"},
	 .cmd_index = 10,
	 .cmd_argc = 2},
	/* 0 is a budget: nothing may run under it. */
	{{"--overall-token-budget=0", "--command-budget", "(prompt)=0", "--estimate", "0", "x",
	  NULL},
	 CLI_RUN,
	 .overall = 0,
	 .n_commands = 1,
	 .names = {"(prompt)"},
	 .limits = {0},
	 .mode = LEDGER_MODE_WARN,
	 .visuals = true,
	 .estimate = 0,
	 .n_match = 1,
	 .match = {"claude"},
	 .cmd_index = 5,
	 .cmd_argc = 1},
	{{"--command-budget", NAME63 "=1", "--command-budget", "/ns:cmd=2K",
	  "--budget-enforcement-mode=warn", "x", NULL},
	 CLI_RUN,
	 .overall = LEDGER_NO_LIMIT,
	 .n_commands = 2,
	 .names = {NAME63, "/ns:cmd"},
	 .limits = {1, 2000},
	 .mode = LEDGER_MODE_WARN,
	 .visuals = true,
	 .estimate = 1000,
	 .n_match = 1,
	 .match = {"claude"},
	 .cmd_index = 5,
	 .cmd_argc = 1},
	/* --match replaces the default, then adds. */
	{{"--match", "claude-dev", "--match=agent", "--report-json", "-", "run.sh", NULL},
	 CLI_RUN,
	 .overall = LEDGER_NO_LIMIT,
	 .mode = LEDGER_MODE_WARN,
	 .visuals = true,
	 .estimate = 1000,
	 .n_match = 2,
	 .match = {"claude-dev", "agent"},
	 .report_json = "-",
	 .cmd_index = 5,
	 .cmd_argc = 1},
	{{"--report-json=out.json", "--", "--weird-command", NULL},
	 CLI_RUN,
	 DEFAULTS,
	 .report_json = "out.json",
	 .cmd_index = 2,
	 .cmd_argc = 1},
	/* A value that looks like an option is still the value. */
	{{"--report-json", "--dry-run", "x", NULL},
	 CLI_RUN,
	 DEFAULTS,
	 .report_json = "--dry-run",
	 .cmd_index = 2,
	 .cmd_argc = 1},
	{{"--help", NULL}, CLI_HELP, DEFAULTS, .cmd_index = -1},
	{{"-h", "--bogus", NULL}, CLI_HELP, DEFAULTS, .cmd_index = -1},
	{{"--version", NULL}, CLI_VERSION, DEFAULTS, .cmd_index = -1},
	{{"--dry-run", "--version", NULL}, CLI_VERSION, DEFAULTS, .dry_run = true, .cmd_index = -1},
	{{"status", NULL}, CLI_STATUS, DEFAULTS, .cmd_index = -1},
	{{"status", "4242", NULL}, CLI_STATUS, DEFAULTS, .status_pid = 4242, .cmd_index = -1},
	{{"status", "--disable-budget-visuals", "77", NULL},
	 CLI_STATUS,
	 .overall = LEDGER_NO_LIMIT,
	 .mode = LEDGER_MODE_WARN,
	 .visuals = false,
	 .estimate = 1000,
	 .n_match = 1,
	 .match = {"claude"},
	 .status_pid = 77,
	 .cmd_index = -1},
	{{"status", "--help", NULL}, CLI_HELP, DEFAULTS, .cmd_index = -1},
	/* "status" after "--" or after an option is a command like any other. */
	{{"--", "status", NULL}, CLI_RUN, DEFAULTS, .cmd_index = 1, .cmd_argc = 1},
};

static void test_accepted(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
		const struct good_case *c = &good_cases[i];
		struct argv_buf b;
		struct cli_options o;
		char err[512] = "";

		make_argv(&b, c->args);
		int rc = cli_parse(b.argc, b.argv, &o, err, sizeof(err));
		if (rc != 0)
			fail_msg("case %zu: refused: %s", i, err);
		assert_string_equal(err, "");
		assert_int_equal(o.action, c->action);
		assert_int_equal(o.overall_limit, c->overall);
		assert_int_equal(o.n_commands, c->n_commands);
		for (size_t k = 0; k < c->n_commands; k++) {
			assert_string_equal(o.command_names[k], c->names[k]);
			assert_int_equal(o.command_limits[k], c->limits[k]);
		}
		assert_int_equal(o.mode, c->mode);
		assert_int_equal(o.visuals, c->visuals);
		assert_int_equal(o.estimate, c->estimate);
		assert_int_equal(o.dry_run, c->dry_run);
		assert_int_equal(o.n_match, c->n_match);
		for (size_t k = 0; k < c->n_match; k++)
			assert_string_equal(o.match[k], c->match[k]);
		if (c->report_json)
			assert_string_equal(o.report_json, c->report_json);
		else
			assert_null(o.report_json);
		assert_int_equal(o.status_pid, c->status_pid);
		if (c->cmd_index < 0) {
			assert_null(o.argv);
			assert_int_equal(o.argc, 0);
		} else {
			/* The command is argv itself, not a copy: exec gets it NULL-terminated. */
			assert_ptr_equal(o.argv, &b.argv[c->cmd_index + 1]);
			assert_int_equal(o.argc, c->cmd_argc);
			assert_null(o.argv[o.argc]);
		}
	}
}

/* USD budgets, next to the token budgets of the same command; --count; tbwrap prices. */
static void test_usd_options(void **state)
{
	(void)state;
	const char *args[] = {"--command-budget",
			      "/test=10K",
			      "--command-usd-budget",
			      "/test=0.50",
			      "--command-usd-budget=/review=$2",
			      "--overall-usd-budget",
			      "$1.25",
			      "--count",
			      "input,output",
			      "--prices",
			      "mine.txt",
			      "claude",
			      NULL};
	struct argv_buf b;
	struct cli_options o;
	char err[512] = "";
	make_argv(&b, args);
	if (cli_parse(b.argc, b.argv, &o, err, sizeof(err)) != 0)
		fail_msg("refused: %s", err);
	assert_int_equal(o.n_commands, 2);
	assert_string_equal(o.command_names[0], "/test");
	assert_int_equal(o.command_limits[0], 10000);
	assert_int_equal(o.command_usd_limits[0], UINT64_C(500000000000));
	assert_string_equal(o.command_names[1], "/review");
	assert_true(o.command_limits[1] == LEDGER_NO_LIMIT);
	assert_int_equal(o.command_usd_limits[1], UINT64_C(2000000000000));
	assert_int_equal(o.overall_usd_limit, UINT64_C(1250000000000));
	assert_true(o.overall_limit == LEDGER_NO_LIMIT);
	assert_int_equal(o.weights[METER_INPUT], 1);
	assert_int_equal(o.weights[METER_OUTPUT], 1);
	assert_int_equal(o.weights[METER_CACHE_CREATION], 0);
	assert_int_equal(o.weights[METER_CACHE_READ], 0);
	assert_string_equal(o.prices, "mine.txt");

	/* Defaults: no USD budget, all four classes, the built-in table. */
	const char *plain[] = {"claude", NULL};
	make_argv(&b, plain);
	assert_int_equal(cli_parse(b.argc, b.argv, &o, err, sizeof(err)), 0);
	assert_true(o.overall_usd_limit == LEDGER_NO_LIMIT);
	for (int f = 0; f < METER_NFIELDS; f++)
		assert_int_equal(o.weights[f], 1);
	assert_null(o.prices);

	const char *prices[] = {"prices", "--prices", "p.txt", NULL};
	make_argv(&b, prices);
	assert_int_equal(cli_parse(b.argc, b.argv, &o, err, sizeof(err)), 0);
	assert_int_equal(o.action, CLI_PRICES);
	assert_string_equal(o.prices, "p.txt");
	const char *prices0[] = {"prices", NULL};
	make_argv(&b, prices0);
	assert_int_equal(cli_parse(b.argc, b.argv, &o, err, sizeof(err)), 0);
	assert_int_equal(o.action, CLI_PRICES);
	assert_null(o.prices);
}

/* ---- --help ---- */

static char *usage_text(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	cli_usage(f);
	assert_int_equal(fclose(f), 0);
	return text;
}

static void test_usage_matches_parser(void **state)
{
	(void)state;
	static const char *const flags[] = {
		"--overall-token-budget TOKENS",
		"--command-budget /COMMAND=TOKENS",
		"--budget-enforcement-mode warn|block",
		"--disable-budget-visuals",
		"--estimate TOKENS",
		"--dry-run",
		"--match NAME",
		"--report-json FILE",
		"--overall-usd-budget USD",
		"--command-usd-budget /COMMAND=USD",
		"--prices FILE",
		"--count CLASSES",
		"-h, --help",
		"--version",
		"tbwrap status [--disable-budget-visuals] [PID]",
		"tbwrap prices [--prices FILE]",
		"(prompt)=TOKENS",
		"0 means no agent may run",
		"(default 1000)",
	};
	char *text = usage_text();
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (!strstr(text, flags[i]))
			fail_msg("--help does not mention \"%s\"", flags[i]);

	/* Every flag the help names is one the parser accepts. */
	for (size_t i = 0; i < 14; i++) {
		char word[64];
		sscanf(flags[i], "%63[^ ,]", word);
		char *argv[] = {(char *)"tbwrap", word, (char *)"1", (char *)"x", NULL};
		struct cli_options o;
		char err[256] = "";
		cli_parse(4, argv, &o, err, sizeof(err));
		if (strstr(err, "unknown option"))
			fail_msg("--help names %s but the parser refuses it: %s", word, err);
	}

	static const int statuses[] = {
		TBWRAP_EXIT_USAGE,    TBWRAP_EXIT_REFUSED, TBWRAP_EXIT_STOPPED, TBWRAP_EXIT_LOST,
		TBWRAP_EXIT_INTERNAL, TBWRAP_EXIT_NOEXEC,  TBWRAP_EXIT_NOTFOUND};
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		char line[16];
		snprintf(line, sizeof(line), "\n  %3d  ", statuses[i]);
		if (!strstr(text, line))
			fail_msg("--help does not list exit status %d", statuses[i]);
	}
	assert_non_null(strstr(text, "Exit status: the command's own status, or\n"));
	free(text);
}

/* Budgets that remember: --estimate auto, --window, --scope, --history, --no-history,
 * --profile, --profiles: parsed, refused with their form, and named by --help. */
static void test_memory_options(void **state)
{
	static const struct {
		const char *args[8];
		const char *err;
	} bad[] = {
		{{"--window", "0", "x", NULL},
		 "--window '0': expected a duration such as 90m, 24h or 7d (a whole number and s, "
		 "m, "
		 "h, d or w)"},
		{{"--window", "24", "x", NULL},
		 "--window '24': expected a duration such as 90m, 24h or 7d (a whole number and s, "
		 "m, "
		 "h, d or w)"},
		{{"--window", "1h", "--window", "2h", "x", NULL}, "--window given twice"},
		{{"--scope", "", "x", NULL}, "--scope '': expected a non-empty value"},
		{{"--history", "a", "--history", "b", "x", NULL}, "--history given twice"},
		{{"--profile", "", "x", NULL}, "--profile '': expected a non-empty value"},
		{{"--no-history=1", "x", NULL}, "--no-history takes no value (got '1')"},
		{{"--estimate", "auto", "--estimate", "5", "x", NULL}, "--estimate given twice"},
	};
	struct argv_buf b;
	struct cli_options o;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		make_argv(&b, bad[i].args);
		assert_int_equal(cli_parse(b.argc, b.argv, &o, err, sizeof(err)), -1);
		assert_string_equal(err, bad[i].err);
	}
	static const char *const good[] = {"--estimate", "auto",    "--window",	  "90m",
					   "--scope",	 "nightly", "--history",  "h.db",
					   "--profile",	 "testing", "--profiles", "p.yaml",
					   "x",		 NULL};
	make_argv(&b, good);
	assert_int_equal(cli_parse(b.argc, b.argv, &o, err, sizeof(err)), 0);
	assert_true(o.estimate_auto);
	assert_int_equal(o.estimate, CLI_DEFAULT_ESTIMATE);
	assert_int_equal(o.window_s, 5400);
	assert_string_equal(o.scope, "nightly");
	assert_string_equal(o.history, "h.db");
	assert_string_equal(o.profile, "testing");
	assert_string_equal(o.profiles, "p.yaml");
	assert_true(o.estimate_given && !o.mode_given && !o.overall_given);
	assert_false(o.no_history);
	assert_true(o.profile_overall_pusd == CLI_NO_USD);
	static const char *const none[] = {"--no-history", "x", NULL};
	make_argv(&b, none);
	assert_int_equal(cli_parse(b.argc, b.argv, &o, err, sizeof(err)), 0);
	assert_true(o.no_history);
	assert_null(o.scope);
	assert_int_equal(o.window_s, 0);

	char *text = usage_text();
	static const char *const named[] = {
		"--estimate auto", "--window DURATION", "--scope NAME",
		"--history FILE",  "--no-history",	"--profile NAME",
		"--profiles FILE", "tbwrap report",	"tbwrap suggest"};
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (!strstr(text, named[i]))
			fail_msg("--help does not mention \"%s\"", named[i]);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_count),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_too_many_budgets),
		cmocka_unit_test(test_too_many_match),
		cmocka_unit_test(test_memory_options),
		cmocka_unit_test(test_small_err_buffer),
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_usage_matches_parser),
		cmocka_unit_test(test_usd_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
