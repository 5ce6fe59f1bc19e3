/*
 * Prices (launcher/prices.c): the built-in table (data/prices.txt) priced against figures
 * computed by hand from its own rows, one call of each family; the 1-hour cache split, a
 * prompt-length tier, a dated row, model names with a date or a tag, an unknown model (never
 * $0), USD amounts, and every malformed row refused with its line number.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tbwrap/prices.h"

#define PICO_PER_MICRO UINT64_C(1000000)

/* 2026-12-01 and 2026-10-06, in days since 1970-01-01. */
#define DAY_NOW 20788
#define DAY_BEFORE_CUT 20732

static struct price_table builtin(void)
{
	struct price_table t;
	char err[256] = "";
	if (prices_load_builtin(&t, err, sizeof(err)) < 0)
		fail_msg("built-in table: %s", err);
	return t;
}

/* One call: 2000 input, 400 cache writes (100 of them 1-hour), 6000 cache reads, 100 output. */
static const struct meter_usage call = {{2000, 100, 400, 6000}};

/* The cost of `call` in pico-USD for rates in USD per MTok: a hand computation (every product
 * here is exact in a double). */
static uint64_t by_hand(double in, double w5, double w1, double rd, double out)
{
	double micro = 2000 * in + 300 * w5 + 100 * w1 + 6000 * rd + 100 * out;
	return (uint64_t)(micro * 1e6 + 0.5);
}

static void check(const struct price_table *t, const char *model, uint64_t want)
{
	bool known = false;
	uint64_t got = prices_cost(t, model, &call, 100, DAY_NOW, &known);
	if (!known)
		fail_msg("%s: not in the table", model);
	if (got != want)
		fail_msg("%s: %llu pico-USD, expected %llu", model, (unsigned long long)got,
			 (unsigned long long)want);
}

static void test_families(void **state)
{
	(void)state;
	struct price_table t = builtin();
	check(&t, "claude-opus-4-8", by_hand(5, 6.25, 10, 0.50, 25));
	assert_int_equal(by_hand(5, 6.25, 10, 0.50, 25), UINT64_C(18375) * PICO_PER_MICRO);
	check(&t, "claude-opus-4-5-20251101", by_hand(5, 6.25, 10, 0.50, 25));
	check(&t, "claude-opus-4-8[1m]", by_hand(5, 6.25, 10, 0.50, 25));
	check(&t, "claude-opus-5", by_hand(5, 6.25, 10, 0.50, 25));
	check(&t, "claude-opus-5-5", by_hand(4, 5, 8, 0.20, 20));
	check(&t, "claude-opus-4-1-20250805", by_hand(15, 18.75, 30, 1.50, 75));
	check(&t, "claude-opus-4-20250514", by_hand(15, 18.75, 30, 1.50, 75));
	check(&t, "claude-sonnet-4-5-20250929", by_hand(3, 3.75, 6, 0.30, 15));
	check(&t, "claude-sonnet-4-20250514", by_hand(3, 3.75, 6, 0.30, 15));
	check(&t, "claude-sonnet-5", by_hand(2, 2.50, 4, 0.20, 10));
	check(&t, "claude-sonnet-5-5", by_hand(2, 2.50, 4, 0.10, 10));
	check(&t, "claude-haiku-4-5-20251001", by_hand(1, 1.25, 2, 0.10, 5));
	check(&t, "claude-3-5-haiku-20241022", by_hand(0.80, 1, 1.60, 0.08, 4));
	check(&t, "claude-haiku-5-5", by_hand(0.10, 0.125, 0.20, 0.01, 0.50));
	check(&t, "claude-fable-5-1", by_hand(10, 12.50, 20, 0.25, 50));
	prices_free(&t);
}

static void test_dated_row(void **state)
{
	(void)state;
	struct price_table t = builtin();
	bool known;
	/* Sonnet 5.5's cache reads: 0.20 until 2026-10-06, 0.10 from 2026-10-07. */
	assert_int_equal(prices_cost(&t, "claude-sonnet-5-5", &call, 100, DAY_BEFORE_CUT, &known),
			 by_hand(2, 2.50, 4, 0.20, 10));
	assert_int_equal(
		prices_cost(&t, "claude-sonnet-5-5", &call, 100, DAY_BEFORE_CUT + 1, &known),
		by_hand(2, 2.50, 4, 0.10, 10));
	prices_free(&t);
}

static void test_prompt_tier(void **state)
{
	(void)state;
	struct price_table t = builtin();
	bool known;
	/* Haiku 5.5: a prompt of exactly 100,000 tokens is the low tier, one more the high one,
	 * every token of that call (output too). */
	struct meter_usage at = {{40000, 10, 10000, 50000}}, over = {{40001, 10, 10000, 50000}};
	uint64_t low = 40000 * UINT64_C(100000) + 10 * UINT64_C(500000) + 10000 * UINT64_C(125000) +
		       50000 * UINT64_C(10000);
	uint64_t high = 40001 * UINT64_C(500000) + 10 * UINT64_C(2500000) +
			10000 * UINT64_C(625000) + 50000 * UINT64_C(50000);
	assert_int_equal(prices_cost(&t, "claude-haiku-5-5", &at, 0, DAY_NOW, &known), low);
	assert_true(known);
	assert_int_equal(prices_cost(&t, "claude-haiku-5-5", &over, 0, DAY_NOW, &known), high);
	prices_free(&t);
}

static void test_cache_split(void **state)
{
	(void)state;
	struct price_table t = builtin();
	struct meter_usage u = {{0, 0, 1000, 0}};
	bool known;
	/* Opus 4.8: 1000 writes at 6.25 (5 minutes), at 10 (1 hour), or split 600/400. */
	assert_int_equal(prices_cost(&t, "claude-opus-4-8", &u, 0, DAY_NOW, &known),
			 6250 * PICO_PER_MICRO);
	assert_int_equal(prices_cost(&t, "claude-opus-4-8", &u, 1000, DAY_NOW, &known),
			 10000 * PICO_PER_MICRO);
	assert_int_equal(prices_cost(&t, "claude-opus-4-8", &u, 400, DAY_NOW, &known),
			 (600 * 6.25 + 400 * 10) * PICO_PER_MICRO);
	/* A 1-hour count above the total (garbage) is capped at the total. */
	assert_int_equal(prices_cost(&t, "claude-opus-4-8", &u, 5000, DAY_NOW, &known),
			 10000 * PICO_PER_MICRO);
	prices_free(&t);
}

static void test_unknown_model(void **state)
{
	(void)state;
	struct price_table t = builtin();
	bool known = true;
	/* Priced at the highest rate of each class in the table: Opus 4/4.1's input, writes and
	 * reads, Opus 4's output (75). */
	uint64_t got = prices_cost(&t, "claude-future-9", &call, 100, DAY_NOW, &known);
	assert_false(known);
	assert_int_equal(got, by_hand(15, 18.75, 30, 1.50, 75));
	assert_int_equal(t.max_rate[PRICE_OUTPUT], 75 * PICO_PER_MICRO);
	/* No model at all: the same. */
	got = prices_cost(&t, "", &call, 100, DAY_NOW, &known);
	assert_false(known);
	assert_true(got > 0);
	/* Sonnet 4.7 is not in the table (4, 4.5 and 4.6 are): not guessed from its neighbours. */
	prices_cost(&t, "claude-sonnet-4-7", &call, 0, DAY_NOW, &known);
	assert_false(known);
	prices_free(&t);
}

static void test_model_key(void **state)
{
	(void)state;
	char k[64];
	prices_model_key("claude-opus-4-8[1m]", k, sizeof(k));
	assert_string_equal(k, "claude-opus-4-8");
	prices_model_key("claude-sonnet-4-5-20250929", k, sizeof(k));
	assert_string_equal(k, "claude-sonnet-4-5");
	prices_model_key("claude-sonnet-4-5-2025092", k, sizeof(k));
	assert_string_equal(k, "claude-sonnet-4-5-2025092");
	prices_model_key("x-12345678", k, sizeof(k));
	assert_string_equal(k, "x");
}

static void expect_error(const char *text, const char *want)
{
	struct price_table t;
	char err[256] = "";
	assert_int_equal(prices_parse(&t, text, strlen(text), "test", err, sizeof(err)), -1);
	if (!strstr(err, want))
		fail_msg("'%s': error '%s' does not contain '%s'", text, err, want);
	assert_null(t.rows);
}

static void test_malformed(void **state)
{
	(void)state;
	const char *ok = "m - - 1 1 1 1 1 src\n";
	expect_error("", "no rows");
	expect_error("# only a comment\n\n", "no rows");
	expect_error("m - - 1 1 1 src\n", "line 1: 7 columns, expected 9");
	expect_error("m - - 1 1 1 1 1\n", "line 1: no source");
	expect_error("# x\nm - - 1 1 1 1 1 s\nm - - 1 1 1 x 1 s\n",
		     "line 3: read rate 'x' is not a price");
	expect_error("m - - 1 1 1 1 -1 s\n", "line 1: output rate '-1'");
	expect_error("m - - 1.0000001 1 1 1 1 s\n", "line 1: input rate '1.0000001'");
	expect_error("m - - 1. 1 1 1 1 s\n", "line 1: input rate '1.'");
	expect_error("m <5 - 1 1 1 1 1 s\n", "line 1: prompt '<5'");
	expect_error("m >0 - 1 1 1 1 1 s\n", "line 1: prompt '>0'");
	expect_error("m - 2026-02-30 1 1 1 1 1 s\n", "line 1: from '2026-02-30'");
	expect_error("m - 26-01-01 1 1 1 1 1 s\n", "line 1: from '26-01-01'");
	expect_error("m - - 1 1 1 1 1000001 s\n", "line 1: output rate '1000001'");
	char nul[] = "m - - 1 1 1 1 1 s\0\n";
	struct price_table t;
	char err[256];
	assert_int_equal(prices_parse(&t, nul, sizeof(nul) - 1, "t", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "NUL"));
	assert_int_equal(prices_parse(&t, ok, strlen(ok), "t", err, sizeof(err)), 0);
	assert_int_equal(t.n, 1);
	assert_int_equal(t.rows[0].rate[PRICE_INPUT], PICO_PER_MICRO);
	assert_string_equal(t.rows[0].source, "src");
	prices_free(&t);
}

static void test_file_errors(void **state)
{
	(void)state;
	struct price_table t;
	char err[256] = "", path[] = "/tmp/tbwrap-prices-XXXXXX";
	assert_int_equal(prices_load_file(&t, "/nonexistent/prices.txt", err, sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/prices.txt: No such file or directory");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char text[] = "# mine\nclaude-opus-4-8 - - 4 5 8 0.40 20 negotiated 2026-11\nbad\n";
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	assert_int_equal(prices_load_file(&t, path, err, sizeof(err)), -1);
	char want[300];
	snprintf(want, sizeof(want), "%s:3: 1 column, expected 9", path);
	if (strncmp(err, want, strlen(want)))
		fail_msg("error '%s', expected it to start with '%s'", err, want);
	unlink(path);
}

static void test_usd(void **state)
{
	(void)state;
	uint64_t p;
	assert_int_equal(prices_parse_usd("5", &p), 0);
	assert_int_equal(p, 5 * UINT64_C(1000000000000));
	assert_int_equal(prices_parse_usd("0.25", &p), 0);
	assert_int_equal(p, UINT64_C(250000000000));
	assert_int_equal(prices_parse_usd("$1.50", &p), 0);
	assert_int_equal(p, UINT64_C(1500000000000));
	/* $10,000,000 at most: 10^19 pico-USD still fits 64 bits; above, refused, never wrapped
	 * round to a small budget. */
	assert_int_equal(prices_parse_usd("10000000", &p), 0);
	assert_true(p == UINT64_C(10000000000000000000));
	assert_int_equal(prices_parse_usd("0.000001", &p), 0);
	assert_int_equal(p, UINT64_C(1000000));
	const char *bad[] = {
		"",    "$",   "-1",	    "1e3", "0.0000001",	      "1,50",	 "$$1", "1.",
		".5.", "abc", "1000000001", " 1",  "10000000.000001", "18446745"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (prices_parse_usd(bad[i], &p) == 0)
			fail_msg("'%s' was taken for an amount", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_families),      cmocka_unit_test(test_dated_row),
		cmocka_unit_test(test_prompt_tier),   cmocka_unit_test(test_cache_split),
		cmocka_unit_test(test_unknown_model), cmocka_unit_test(test_model_key),
		cmocka_unit_test(test_malformed),     cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_usd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
