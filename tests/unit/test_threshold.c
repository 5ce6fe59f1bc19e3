/*
 * Threshold decisions (common/threshold.c) and their once-per-run bookkeeping in the ledger
 * (ledger_claim_thresholds): the edges of each threshold on both sides, the colour bands with
 * their different edge at 90 %, counts near UINT64_MAX that a 64-bit product would wrap, and
 * that a threshold is handed out to be said exactly once per budget and unit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tbwrap/ledger.h"
#include "tbwrap/threshold.h"

static void test_crossed_edges(void **state)
{
	(void)state;
	assert_int_equal(threshold_crossed(0, 1000), 0);
	assert_int_equal(threshold_crossed(699, 1000), 0);
	assert_int_equal(threshold_crossed(700, 1000), THRESHOLD_70);
	assert_int_equal(threshold_crossed(899, 1000), THRESHOLD_70);
	assert_int_equal(threshold_crossed(900, 1000), THRESHOLD_70 | THRESHOLD_90);
	/* Reaching the limit is not exceeding it. */
	assert_int_equal(threshold_crossed(1000, 1000), THRESHOLD_70 | THRESHOLD_90);
	assert_int_equal(threshold_crossed(1001, 1000), THRESHOLD_ALL);
	/* A jump straight past everything crosses every threshold at once. */
	assert_int_equal(threshold_crossed(5000, 1000), THRESHOLD_ALL);
}

static void test_crossed_fractions(void **state)
{
	(void)state;
	/* 70 % of 3 is 2.1: 2 is below it, 3 is at 100 % (not exceeded). */
	assert_int_equal(threshold_crossed(2, 3), 0);
	assert_int_equal(threshold_crossed(3, 3), THRESHOLD_70 | THRESHOLD_90);
	assert_int_equal(threshold_crossed(4, 3), THRESHOLD_ALL);
	/* 70 % of 7 is 4.9, 90 % is 6.3. */
	assert_int_equal(threshold_crossed(4, 7), 0);
	assert_int_equal(threshold_crossed(5, 7), THRESHOLD_70);
	assert_int_equal(threshold_crossed(6, 7), THRESHOLD_70);
	assert_int_equal(threshold_crossed(7, 7), THRESHOLD_70 | THRESHOLD_90);
	/* A budget of one token. */
	assert_int_equal(threshold_crossed(0, 1), 0);
	assert_int_equal(threshold_crossed(1, 1), THRESHOLD_70 | THRESHOLD_90);
	assert_int_equal(threshold_crossed(2, 1), THRESHOLD_ALL);
}

static void test_crossed_zero_limit(void **state)
{
	(void)state;
	assert_int_equal(threshold_crossed(0, 0), 0);
	assert_int_equal(threshold_crossed(100, 0), 0);
}

static void test_crossed_no_wrap(void **state)
{
	(void)state;
	/* used * 100 overflows 64 bits here: a 64-bit product would wrap below 70 %. */
	uint64_t big = UINT64_MAX / 10;
	assert_int_equal(threshold_crossed(big, big), THRESHOLD_70 | THRESHOLD_90);
	assert_int_equal(threshold_crossed(big + 1, big), THRESHOLD_ALL);
	assert_int_equal(threshold_crossed(big / 10 * 7 - 1, big / 10 * 10), 0);
	assert_int_equal(threshold_crossed(UINT64_MAX, UINT64_MAX - 1), THRESHOLD_ALL);
	assert_int_equal(threshold_crossed(UINT64_MAX, UINT64_MAX), THRESHOLD_70 | THRESHOLD_90);
	assert_int_equal(threshold_crossed(UINT64_MAX / 100 * 69, UINT64_MAX / 100 * 100), 0);
}

static void test_percent(void **state)
{
	(void)state;
	assert_int_equal(threshold_percent(THRESHOLD_70), 70);
	assert_int_equal(threshold_percent(THRESHOLD_90), 90);
	assert_int_equal(threshold_percent(THRESHOLD_EXCEEDED), 100);
}

static void test_band_edges(void **state)
{
	(void)state;
	assert_int_equal(threshold_band(0, 1000), THRESHOLD_GREEN);
	assert_int_equal(threshold_band(699, 1000), THRESHOLD_GREEN);
	assert_int_equal(threshold_band(700, 1000), THRESHOLD_YELLOW);
	/* 90 % itself is still yellow: red is above 90 %. */
	assert_int_equal(threshold_band(900, 1000), THRESHOLD_YELLOW);
	assert_int_equal(threshold_band(901, 1000), THRESHOLD_RED);
	assert_int_equal(threshold_band(1000, 1000), THRESHOLD_RED);
	assert_int_equal(threshold_band(99999, 1000), THRESHOLD_RED);
	/* Fractions: 90 % of 7 is 6.3. */
	assert_int_equal(threshold_band(6, 7), THRESHOLD_YELLOW);
	assert_int_equal(threshold_band(7, 7), THRESHOLD_RED);
	assert_int_equal(threshold_band(UINT64_MAX, UINT64_MAX), THRESHOLD_RED);
	assert_int_equal(threshold_band(UINT64_MAX / 100 * 69, UINT64_MAX / 100 * 100),
			 THRESHOLD_GREEN);
}

static void test_claim_once(void **state)
{
	(void)state;
	struct ledger_budget b;
	memset(&b, 0, sizeof(b));
	/* 70 % crossed: said now, not again. */
	assert_int_equal(ledger_claim_thresholds(&b, AMOUNT_TOKENS, THRESHOLD_70), THRESHOLD_70);
	assert_int_equal(ledger_claim_thresholds(&b, AMOUNT_TOKENS, THRESHOLD_70), 0);
	/* Then a jump to over the limit: only the two not yet said. */
	assert_int_equal(ledger_claim_thresholds(&b, AMOUNT_TOKENS, THRESHOLD_ALL),
			 THRESHOLD_90 | THRESHOLD_EXCEEDED);
	assert_int_equal(ledger_claim_thresholds(&b, AMOUNT_TOKENS, THRESHOLD_ALL), 0);
	assert_int_equal(b.warned, THRESHOLD_ALL);
	/* The USD budget is remembered apart. */
	assert_int_equal(b.usd_warned, 0);
	assert_int_equal(ledger_claim_thresholds(&b, AMOUNT_USD, THRESHOLD_70 | THRESHOLD_90),
			 THRESHOLD_70 | THRESHOLD_90);
	assert_int_equal(b.usd_warned, THRESHOLD_70 | THRESHOLD_90);
	/* Use that falls back (a window's other runs aged out) does not unsay anything. */
	assert_int_equal(ledger_claim_thresholds(&b, AMOUNT_USD, 0), 0);
	assert_int_equal(b.usd_warned, THRESHOLD_70 | THRESHOLD_90);
}

static void test_claim_ignores_foreign_bits(void **state)
{
	(void)state;
	struct ledger_budget b;
	memset(&b, 0, sizeof(b));
	assert_int_equal(ledger_claim_thresholds(&b, AMOUNT_TOKENS, 0xff), THRESHOLD_ALL);
	assert_int_equal(b.warned, THRESHOLD_ALL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crossed_edges),
		cmocka_unit_test(test_crossed_fractions),
		cmocka_unit_test(test_crossed_zero_limit),
		cmocka_unit_test(test_crossed_no_wrap),
		cmocka_unit_test(test_percent),
		cmocka_unit_test(test_band_edges),
		cmocka_unit_test(test_claim_once),
		cmocka_unit_test(test_claim_ignores_foreign_bits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
