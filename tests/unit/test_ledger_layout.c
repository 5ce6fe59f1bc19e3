/*
 * The ledger is read by processes built from other trees (a `tbwrap status` of one build mapping
 * the ledger of another), so its layout is a file format. Every offset and size is pinned here:
 * a change to any struct fails this test, and whoever changes it must bump LEDGER_VERSION (and
 * LEDGER_MAGIC) and the numbers below together. The numbers were computed with offsetof on
 * x86_64; the ledger holds only fixed-width fields, so they do not depend on the C library.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tbwrap/ledger.h"

/* 8-byte counters are published with atomic stores and read with atomic loads by another
 * process; a misaligned one could be split across cache lines (torn on some architectures). */
#define ALIGNED8(T, f) _Static_assert(offsetof(struct T, f) % 8 == 0, #T "." #f " not 8-aligned")
ALIGNED8(ledger_counts, n);
ALIGNED8(ledger_counts, total);
ALIGNED8(ledger_budget, limit);
ALIGNED8(ledger_budget, used);
ALIGNED8(ledger_budget, reserved);
ALIGNED8(ledger_budget, agents);
ALIGNED8(ledger_budget, refused);
ALIGNED8(ledger_budget, stopped);
ALIGNED8(ledger_budget, overshoot);
ALIGNED8(ledger_instance, pid);
ALIGNED8(ledger_instance, start_ns);
ALIGNED8(ledger_instance, end_ns);
ALIGNED8(ledger_instance, estimate);
ALIGNED8(ledger_instance, reserved);
ALIGNED8(ledger_instance, requests);
ALIGNED8(ledger_instance, refused_prediction);
ALIGNED8(ledger_instance, max_under);
ALIGNED8(ledger_instance, used);
ALIGNED8(ledger_instance, unreported);
ALIGNED8(ledger_instance, unfinal);
ALIGNED8(ledger_instance, cost_micro_usd);
ALIGNED8(ledger_instance, results);
ALIGNED8(ledger_instance, anomalies);
ALIGNED8(ledger_instance, usd_estimate);
ALIGNED8(ledger_instance, usd_reserved);
ALIGNED8(ledger_instance, usd_refused_prediction);
ALIGNED8(ledger_instance, usd_max_under);
ALIGNED8(ledger_budget, usd_limit);
ALIGNED8(ledger_budget, usd_reserved);
ALIGNED8(ledger_budget, usd_overshoot);
ALIGNED8(ledger_budget, others);
ALIGNED8(ledger_budget, usd_others);
ALIGNED8(ledger_header, magic);
ALIGNED8(ledger_header, size);
ALIGNED8(ledger_header, creator_pid);
ALIGNED8(ledger_header, estimate);
ALIGNED8(ledger_header, unlisted);
ALIGNED8(ledger_header, overall);
ALIGNED8(ledger_header, commands);
ALIGNED8(ledger_header, instances);
_Static_assert(sizeof(struct ledger_counts) % 8 == 0, "ledger_counts size");
_Static_assert(sizeof(struct ledger_budget) % 8 == 0, "ledger_budget size: array elements");
_Static_assert(sizeof(struct ledger_instance) % 8 == 0, "ledger_instance size: array elements");
_Static_assert(_Alignof(struct ledger_header) == 8, "ledger_header alignment");
/* 4-byte atomics too. */
_Static_assert(offsetof(struct ledger_header, n_commands) % 4 == 0, "n_commands");
_Static_assert(offsetof(struct ledger_header, n_instances) % 4 == 0, "n_instances");
_Static_assert(offsetof(struct ledger_budget, warned) % 4 == 0, "warned");
_Static_assert(offsetof(struct ledger_budget, usd_warned) % 4 == 0, "usd_warned");
_Static_assert(offsetof(struct ledger_instance, command) % 4 == 0, "command");
_Static_assert(offsetof(struct ledger_instance, status) % 4 == 0, "status");
_Static_assert(offsetof(struct ledger_instance, exit_code) % 4 == 0, "exit_code");
_Static_assert(offsetof(struct ledger_instance, flags) % 4 == 0, "flags");

#define OFF(T, f, v) assert_int_equal(offsetof(struct T, f), (v))

static void test_sizes(void **state)
{
	(void)state;
	assert_int_equal(sizeof(struct meter_usage), 32);
	assert_int_equal(sizeof(struct ledger_counts), 48);
	assert_int_equal(sizeof(struct ledger_budget), 208);
	assert_int_equal(sizeof(struct ledger_instance), 448);
	assert_int_equal(sizeof(struct ledger_header), 472352);
	assert_int_equal(LEDGER_VERSION, 5);
	assert_true(LEDGER_MAGIC == UINT64_C(0x35474c5257425454));
	assert_int_equal(METER_MODEL_LEN, 64);
	assert_int_equal(LEDGER_MAX_COMMANDS, 64);
	assert_int_equal(LEDGER_MAX_INSTANCES, 1024);
	assert_int_equal(LEDGER_NAME_LEN, 64);
	assert_int_equal(LEDGER_NOTE_LEN, 120);
	assert_int_equal(METER_SUBTYPE_LEN, 32);
	assert_int_equal(METER_NANOMALY, 5);
	assert_true(LEDGER_NO_LIMIT == UINT64_MAX);
}

static void test_counts(void **state)
{
	(void)state;
	OFF(ledger_counts, n, 0);
	OFF(ledger_counts, total, 32);
	OFF(ledger_counts, pusd, 40);
}

static void test_budget(void **state)
{
	(void)state;
	OFF(ledger_budget, name, 0);
	OFF(ledger_budget, limit, 64);
	OFF(ledger_budget, used, 72);
	OFF(ledger_budget, reserved, 120);
	OFF(ledger_budget, agents, 128);
	OFF(ledger_budget, refused, 136);
	OFF(ledger_budget, stopped, 144);
	OFF(ledger_budget, overshoot, 152);
	OFF(ledger_budget, warned, 160);
	OFF(ledger_budget, usd_warned, 164);
	OFF(ledger_budget, usd_limit, 168);
	OFF(ledger_budget, usd_reserved, 176);
	OFF(ledger_budget, usd_overshoot, 184);
	OFF(ledger_budget, others, 192);
	OFF(ledger_budget, usd_others, 200);
	/* usd_others ends the struct: no trailing padding. */
	assert_int_equal(offsetof(struct ledger_budget, usd_others) + sizeof(uint64_t),
			 sizeof(struct ledger_budget));
}

static void test_instance(void **state)
{
	(void)state;
	OFF(ledger_instance, pid, 0);
	OFF(ledger_instance, start_ns, 8);
	OFF(ledger_instance, end_ns, 16);
	OFF(ledger_instance, command, 24);
	OFF(ledger_instance, status, 28);
	OFF(ledger_instance, exit_code, 32);
	OFF(ledger_instance, flags, 36);
	OFF(ledger_instance, estimate, 40);
	OFF(ledger_instance, reserved, 48);
	OFF(ledger_instance, requests, 56);
	OFF(ledger_instance, refused_prediction, 64);
	OFF(ledger_instance, max_under, 72);
	OFF(ledger_instance, unreported, 80);
	OFF(ledger_instance, usd_estimate, 88);
	OFF(ledger_instance, usd_reserved, 96);
	OFF(ledger_instance, usd_refused_prediction, 104);
	OFF(ledger_instance, usd_max_under, 112);
	OFF(ledger_instance, used, 120);
	OFF(ledger_instance, cost_micro_usd, 168);
	OFF(ledger_instance, results, 176);
	OFF(ledger_instance, anomalies, 184);
	OFF(ledger_instance, result_subtype, 224);
	OFF(ledger_instance, note, 256);
	OFF(ledger_instance, model, 376);
	OFF(ledger_instance, unfinal, 440);
	/* The last field ends the struct: no trailing padding. */
	assert_int_equal(offsetof(struct ledger_instance, unfinal) + sizeof(uint64_t),
			 sizeof(struct ledger_instance));
}

static void test_header(void **state)
{
	(void)state;
	OFF(ledger_header, magic, 0);
	OFF(ledger_header, version, 8);
	OFF(ledger_header, header_size, 12);
	OFF(ledger_header, size, 16);
	OFF(ledger_header, creator_pid, 24);
	OFF(ledger_header, uid, 32);
	OFF(ledger_header, mode, 36);
	OFF(ledger_header, estimate, 40);
	OFF(ledger_header, weights, 48);
	OFF(ledger_header, n_commands, 64);
	OFF(ledger_header, n_instances, 68);
	OFF(ledger_header, unlisted, 72);
	OFF(ledger_header, overall, 80);
	OFF(ledger_header, commands, 288);
	OFF(ledger_header, instances, 13600);
	/* The last instance ends exactly at the end of the header: no trailing padding. */
	assert_int_equal(offsetof(struct ledger_header, instances) +
				 LEDGER_MAX_INSTANCES * sizeof(struct ledger_instance),
			 sizeof(struct ledger_header));
}

/* Enum values and flag bits are stored in the ledger as numbers. */
static void test_enums(void **state)
{
	(void)state;
	assert_int_equal(LEDGER_MODE_WARN, 0);
	assert_int_equal(LEDGER_MODE_BLOCK, 1);
	assert_int_equal(LEDGER_INST_FREE, 0);
	assert_int_equal(LEDGER_INST_RUNNING, 1);
	assert_int_equal(LEDGER_INST_REFUSED, 2);
	assert_int_equal(LEDGER_INST_STOPPED, 3);
	assert_int_equal(LEDGER_INST_EXITED, 4);
	assert_int_equal(LEDGER_F_NESTED, 1);
	assert_int_equal(LEDGER_F_UNBOUND, 2);
	assert_int_equal(LEDGER_F_OVER_AT_BIND, 4);
	assert_int_equal(LEDGER_F_UNMETERED, 8);
	assert_int_equal(LEDGER_F_ADOPTED, 16);
	assert_int_equal(LEDGER_F_UNPRICED, 32);
	assert_int_equal(METER_INPUT, 0);
	assert_int_equal(METER_OUTPUT, 1);
	assert_int_equal(METER_CACHE_CREATION, 2);
	assert_int_equal(METER_CACHE_READ, 3);
	assert_int_equal(METER_NFIELDS, 4);
	assert_int_equal(METER_ANOM_NOT_JSON, 0);
	assert_int_equal(METER_ANOM_BAD_NUMBER, 1);
	assert_int_equal(METER_ANOM_OVERSIZE, 2);
	assert_int_equal(METER_ANOM_GAP, 3);
	assert_int_equal(METER_ANOM_ORPHAN_DELTA, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),  cmocka_unit_test(test_counts),
		cmocka_unit_test(test_budget), cmocka_unit_test(test_instance),
		cmocka_unit_test(test_header), cmocka_unit_test(test_enums),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
