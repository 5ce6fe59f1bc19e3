/*
 * Budget profiles: the seed's format and the optional keys parsed exactly, every malformed
 * file refused with its file and line, USD amounts, and the command line's flags winning over
 * the profile's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "tbwrap/cli.h"
#include "tbwrap/profiles.h"

/* A token amount (no USD). */
#define TOK(n) ((struct amount){{(n), 0}})

static const char seed[] = "# budget-profiles.yaml\n"
			   "profiles:\n"
			   "  testing:\n"
			   "    overall: 5000\n"
			   "    commands:\n"
			   "      /test: 2000\n"
			   "      /analyze: 1000\n"
			   "\n"
			   "  production:\n"
			   "    overall: 50000\n"
			   "    commands:\n"
			   "      /deploy: 10000\n"
			   "      /monitor: 5000\n"
			   "  nightly:\n"
			   "    overall: 2M\n"
			   "    commands: {/test: 500K, (prompt): 1.5K}\n"
			   "    mode: block\n"
			   "    window: 24h\n"
			   "    scope: nightly\n"
			   "    estimate: auto\n"
			   "    overall_usd: 20\n"
			   "    commands_usd:\n"
			   "      /test: 5.50\n";

static int parse(const char *text, const char *name, struct profile *p, char *err, size_t len)
{
	return profiles_parse(text, strlen(text), "p.yaml", name, p, err, len);
}

static void test_seed_format(void **state)
{
	struct profile p;
	char err[256] = "";
	(void)state;
	assert_int_equal(parse(seed, "testing", &p, err, sizeof(err)), 0);
	assert_string_equal(p.name, "testing");
	assert_int_equal(p.line, 3);
	assert_true(p.has_overall);
	assert_int_equal(p.overall, 5000);
	assert_int_equal(p.n_commands, 2);
	assert_string_equal(p.command_names[0], "/test");
	assert_int_equal(p.command_limits[0], 2000);
	assert_string_equal(p.command_names[1], "/analyze");
	assert_int_equal(p.command_limits[1], 1000);
	assert_false(p.has_mode);
	assert_int_equal(p.window_s, 0);
	assert_string_equal(p.scope, "");
	assert_false(p.has_estimate);
	assert_true(p.overall_pusd == CLI_NO_USD);
	assert_int_equal(p.n_usd, 0);
	assert_int_equal(parse(seed, "production", &p, err, sizeof(err)), 0);
	assert_int_equal(p.overall, 50000);
	assert_string_equal(p.command_names[1], "/monitor");
}

static void test_optional_keys(void **state)
{
	struct profile p;
	char err[256] = "";
	(void)state;
	assert_int_equal(parse(seed, "nightly", &p, err, sizeof(err)), 0);
	assert_int_equal(p.overall, 2000000);
	assert_int_equal(p.n_commands, 2);
	assert_int_equal(p.command_limits[0], 500000);
	assert_string_equal(p.command_names[1], "(prompt)");
	assert_int_equal(p.command_limits[1], 1500);
	assert_true(p.has_mode);
	assert_int_equal(p.mode, LEDGER_MODE_BLOCK);
	assert_int_equal(p.window_s, 86400);
	assert_string_equal(p.scope, "nightly");
	assert_true(p.has_estimate && p.estimate_auto);
	assert_true(p.overall_pusd == UINT64_C(20000000000000));
	assert_int_equal(p.n_usd, 1);
	assert_string_equal(p.usd_names[0], "/test");
	assert_true(p.usd_limits[0] == UINT64_C(5500000000000));
}

static void test_malformed(void **state)
{
	static const struct {
		const char *text;
		const char *err;
	} cases[] = {
		{"", "p.yaml:1: empty file (expected 'profiles:' and a profile below it)"},
		{"profiles:\n  t:\n    overall: 5000\n   commands: x\n",
		 "p.yaml:4: not valid YAML: did not find expected key while parsing a block "
		 "mapping"},
		{"profiles:\n  t:\n    overall: [1, 2\n",
		 "p.yaml:4: not valid YAML: did not find expected ',' or ']' while parsing a flow "
		 "sequence"},
		{"budgets:\n  t: {}\n", "p.yaml:1: unknown key 'budgets' (expected profiles)"},
		{"- a\n", "p.yaml:1: the file: expected a mapping, got a list"},
		{"profiles: 3\n", "p.yaml:1: profiles: expected a mapping, got a value"},
		{"profiles:\n  t: 3\n", "p.yaml:2: profile t: expected a mapping, got a value"},
		{"profiles:\n  t:\n    overal: 5000\n",
		 "p.yaml:3: unknown key 'overal' (expected overall, commands, mode, window, scope, "
		 "estimate, overall_usd or commands_usd)"},
		{"profiles:\n  t:\n    overall: 5 K\n",
		 "p.yaml:3: overall: '5 K': expected a token count such as 50000, 50K or 1.5M"},
		{"profiles:\n  t:\n    overall: -5\n",
		 "p.yaml:3: overall: '-5': expected a token count such as 50000, 50K or 1.5M"},
		{"profiles:\n  t:\n    overall:\n",
		 "p.yaml:3: overall: expected a value, got an empty one"},
		{"profiles:\n  t:\n    overall: 1\n    overall: 2\n",
		 "p.yaml:4: profile t: overall given twice"},
		{"profiles:\n  t:\n    commands:\n      test: 5\n",
		 "p.yaml:4: commands: 'test' is no command key (expected /COMMAND or (prompt))"},
		{"profiles:\n  t:\n    commands:\n      /a b: 5\n",
		 "p.yaml:4: commands: '/a b' is no command key (expected /COMMAND or (prompt))"},
		{"profiles:\n  t:\n    commands:\n      /test: 5\n      /test: 6\n",
		 "p.yaml:5: commands: /test given twice"},
		{"profiles:\n  t:\n    commands:\n      /test: lots\n",
		 "p.yaml:4: commands /test: 'lots': expected a token count such as 50000, 50K or "
		 "1.5M"},
		{"profiles:\n  t:\n    commands: [/test]\n",
		 "p.yaml:3: commands: expected a mapping, got a list"},
		{"profiles:\n  t:\n    mode: stop\n",
		 "p.yaml:3: mode: 'stop': expected warn or block"},
		{"profiles:\n  t:\n    window: 24\n",
		 "p.yaml:3: window: '24': expected a duration such as 90m, 24h or 7d"},
		{"profiles:\n  t:\n    estimate: many\n",
		 "p.yaml:3: estimate: 'many': expected a token count or auto"},
		{"profiles:\n  t:\n    overall_usd: $5\n",
		 "p.yaml:3: overall_usd: '$5': expected a USD amount such as 5 or 2.50"},
		{"profiles:\n  t:\n    commands_usd:\n      /test: 1.0000000000001\n",
		 "p.yaml:4: commands_usd /test: '1.0000000000001': expected a USD amount such as 5 "
		 "or 2.50"},
		{"profiles:\n  a: {}\n  b:\n    overall: x\n",
		 "p.yaml:4: overall: 'x': expected a token count such as 50000, 50K or 1.5M"},
		{"profiles:\n  a: {}\n  b: {}\n", "p.yaml:1: no profile 't' (it has: a, b)"},
		{"profiles:\n  t: {}\n  t: {}\n", "p.yaml:3: profile t given twice"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct profile p;
		char err[256] = "";
		int rc = parse(cases[i].text, "t", &p, err, sizeof(err));
		if (rc != -1 || strcmp(err, cases[i].err) != 0)
			fail_msg("case %zu: rc %d\n  got      \"%s\"\n  expected \"%s\"", i, rc,
				 err, cases[i].err);
	}
}

static void test_usd(void **state)
{
	uint64_t v = 0;
	(void)state;
	assert_int_equal(profiles_parse_usd("20", &v), 0);
	assert_true(v == UINT64_C(20000000000000));
	assert_int_equal(profiles_parse_usd("0.000000000001", &v), 0);
	assert_true(v == 1);
	assert_int_equal(profiles_parse_usd("2.5", &v), 0);
	assert_true(v == UINT64_C(2500000000000));
	assert_int_equal(profiles_parse_usd("1000000", &v), 0);
	assert_int_equal(profiles_parse_usd("1000001", &v), -1);
	assert_int_equal(profiles_parse_usd("1.", &v), -1);
	assert_int_equal(profiles_parse_usd(".5", &v), -1);
	assert_int_equal(profiles_parse_usd("1e3", &v), -1);
	assert_int_equal(profiles_parse_usd("", &v), -1);
}

static void test_flags_override(void **state)
{
	struct profile p;
	struct cli_options o;
	char err[256] = "";
	char *argv[] = {(char *)"tbwrap",
			(char *)"--command-budget",
			(char *)"/test=100K",
			(char *)"--overall-token-budget",
			(char *)"1M",
			(char *)"--estimate",
			(char *)"3000",
			(char *)"x",
			NULL};
	(void)state;
	assert_int_equal(parse(seed, "nightly", &p, err, sizeof(err)), 0);
	assert_int_equal(cli_parse(8, argv, &o, err, sizeof(err)), 0);
	assert_int_equal(profiles_apply(&p, &o, err, sizeof(err)), 0);
	assert_int_equal(o.overall_limit, 1000000);
	assert_int_equal(o.mode, LEDGER_MODE_BLOCK);
	assert_int_equal(o.estimate, 3000);
	assert_false(o.estimate_auto);
	assert_int_equal(o.window_s, 86400);
	assert_string_equal(o.scope, "nightly");
	assert_int_equal(o.n_commands, 2);
	assert_string_equal(o.command_names[0], "/test");
	assert_int_equal(o.command_limits[0], 100000);
	assert_string_equal(o.command_names[1], "(prompt)");
	assert_int_equal(o.command_limits[1], 1500);
	assert_true(o.profile_overall_pusd == UINT64_C(20000000000000));
	assert_int_equal(o.n_profile_usd, 1);
	assert_string_equal(o.profile_usd_names[0], "/test");
	/* Nothing on the command line: all of the profile. */
	char *bare[] = {(char *)"tbwrap", (char *)"x", NULL};
	assert_int_equal(cli_parse(2, bare, &o, err, sizeof(err)), 0);
	assert_int_equal(profiles_apply(&p, &o, err, sizeof(err)), 0);
	assert_int_equal(o.overall_limit, 2000000);
	assert_true(o.estimate_auto);
	assert_int_equal(o.command_limits[0], 500000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seed_format),    cmocka_unit_test(test_optional_keys),
		cmocka_unit_test(test_malformed),      cmocka_unit_test(test_usd),
		cmocka_unit_test(test_flags_override),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
