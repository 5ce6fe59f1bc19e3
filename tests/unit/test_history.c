/*
 * The history database and what is read from it: duration parsing, percentiles by nearest
 * rank, rows written from a ledger and updated in place, the p75 estimate after runs of known
 * sizes (the last 20 only, fewer than 3: the fixed estimate), a window's usage by scope and
 * time without this run's own rows, the report's JSON and the suggestions exactly, and a file
 * that is not a database.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>
#include <cmocka.h>

#include "tbwrap/history.h"
#include "tbwrap/histreport.h"
#include "tbwrap/ledger.h"

/* A token amount (no USD). */
#define TOK(n) ((struct amount){{(n), 0}})

static char dir[] = "/tmp/tbwrap-history-test.XXXXXX";

static int make_dir(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void db_path(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static struct history *open_new(const char *name)
{
	char path[256], err[512] = "";
	struct history *h;
	db_path(path, sizeof(path), name);
	if (history_open(&h, path, true, 1000, err, sizeof(err)) < 0)
		fail_msg("history_open: %s", err);
	return h;
}

static void exec(struct history *h, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(history_db(h), sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

static void test_duration(void **state)
{
	static const struct {
		const char *s;
		uint64_t want; /* 0: refused */
	} cases[] = {
		{"90m", 5400},
		{"24h", 86400},
		{"7d", 604800},
		{"30s", 30},
		{"2w", 1209600},
		{"1h", 3600},
		{"0h", 0},
		{"24", 0},
		{"h", 0},
		{"", 0},
		{"1.5h", 0},
		{"-1h", 0},
		{"1hh", 0},
		{"1H", 0},
		{"3660d", 316224000},
		{"3661d", 0},
		{"99999999999999999999s", 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 12345;
		int rc = history_parse_duration(cases[i].s, &v);
		if (cases[i].want == 0) {
			if (rc != -1)
				fail_msg("'%s' accepted as %llu", cases[i].s,
					 (unsigned long long)v);
			assert_int_equal(v, 12345);
		} else {
			if (rc != 0 || v != cases[i].want)
				fail_msg("'%s': rc %d, %llu", cases[i].s, rc,
					 (unsigned long long)v);
		}
	}
	assert_int_equal(history_parse_duration(NULL, NULL), -1);
}

static void test_percentile(void **state)
{
	uint64_t five[] = {21250, 4250, 17000, 8500, 12750};
	uint64_t one[] = {7};
	uint64_t four[] = {40, 10, 30, 20};
	uint64_t twenty[20];
	(void)state;
	assert_int_equal(history_percentile(five, 5, 75), 17000);
	assert_int_equal(history_percentile(five, 5, 50), 12750);
	assert_int_equal(history_percentile(five, 5, 95), 21250);
	assert_int_equal(five[0], 4250); /* sorted */
	assert_int_equal(history_percentile(one, 1, 75), 7);
	assert_int_equal(history_percentile(four, 4, 75), 30);
	assert_int_equal(history_percentile(four, 4, 50), 20);
	assert_int_equal(history_percentile(four, 4, 0), 10);
	assert_int_equal(history_percentile(four, 4, 100), 40);
	assert_int_equal(history_percentile(NULL, 0, 75), 0);
	for (int i = 0; i < 20; i++)
		twenty[i] = (uint64_t)(20 - i) * 100;
	assert_int_equal(history_percentile(twenty, 20, 75), 1500);
	assert_int_equal(history_percentile(twenty, 20, 95), 1900);
}

static void test_default_path(void **state)
{
	char p[256];
	(void)state;
	setenv("XDG_STATE_HOME", "/x/state", 1);
	assert_int_equal(history_default_path(p, sizeof(p)), 0);
	assert_string_equal(p, "/x/state/tbwrap/history.db");
	setenv("XDG_STATE_HOME", "relative", 1);
	setenv("HOME", "/home/u", 1);
	assert_int_equal(history_default_path(p, sizeof(p)), 0);
	assert_string_equal(p, "/home/u/.local/state/tbwrap/history.db");
	unsetenv("XDG_STATE_HOME");
	unsetenv("HOME");
	assert_int_equal(history_default_path(p, sizeof(p)), -1);
}

/* A ledger with agents of the given commands and totals (one call's input each). */
static void make_ledger(struct ledger *l, size_t n, const char *const *cmds, const uint64_t *totals,
			enum ledger_status end)
{
	static const char *const names[] = {"/test", "/review"};
	static const uint64_t limits[] = {LEDGER_NO_LIMIT, LEDGER_NO_LIMIT};
	struct ledger_config cfg = {.overall_limit = LEDGER_NO_LIMIT,
				    .mode = LEDGER_MODE_WARN,
				    .estimate = 1000,
				    .weights = {1, 1, 1, 1},
				    .n_commands = 2,
				    .command_names = names,
				    .command_limits = limits};
	char err[256];
	if (ledger_create(l, &cfg, err, sizeof(err)) < 0)
		fail_msg("ledger_create: %s", err);
	for (size_t i = 0; i < n; i++) {
		int slot, cmd = ledger_command_index(l, cmds[i], true);
		struct ledger_refusal why;
		ledger_admit(l, cmd, (pid_t)(100 + i), TOK(1000), &why, &slot);
		struct meter_usage u = {.n = {totals[i], 0, 0, 0}};
		ledger_record_delta(l, slot, &u, 0);
		if (end != LEDGER_INST_RUNNING)
			ledger_settle(l, slot, end, 0);
	}
}

static const struct history_run_info info = {.scope = "default",
					     .cwd = "/w",
					     .command_line = "./nightly.sh",
					     .mode = LEDGER_MODE_WARN,
					     .pid = 42};

/* One tbwrap run of agents in scope, recorded and finished. */
static void record_run(struct history *h, const char *scope, size_t n, const char *const *cmds,
		       const uint64_t *totals)
{
	struct ledger l;
	char err[512];
	int64_t id;
	struct history_run_info r = info;
	r.scope = scope;
	make_ledger(&l, n, cmds, totals, LEDGER_INST_EXITED);
	if (history_run_begin(h, &r, &id, err, sizeof(err)) < 0 ||
	    history_sync(h, id, l.h, &r, true, 0, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	ledger_close(&l);
}

static void test_rows(void **state)
{
	struct history *h = open_new("rows.db");
	struct ledger l;
	char err[512];
	int64_t id;
	static const char *const cmds[] = {"/test", "/lint"};
	static const uint64_t totals[] = {500, 700};
	(void)state;
	make_ledger(&l, 2, cmds, totals, LEDGER_INST_RUNNING);
	assert_int_equal(history_run_begin(h, &info, &id, err, sizeof(err)), 0);
	assert_int_equal(id, 1);
	assert_int_equal(history_sync(h, id, l.h, &info, false, 0, err, sizeof(err)), 0);
	struct meter_usage more = {.n = {0, 50, 0, 0}};
	ledger_record_delta(&l, 0, &more, 0);
	ledger_settle(&l, 0, LEDGER_INST_STOPPED, 87);
	/* Written again: updated in place, never a second row. */
	assert_int_equal(history_sync(h, id, l.h, &info, true, 3, err, sizeof(err)), 0);
	sqlite3_stmt *st;
	assert_int_equal(
		sqlite3_prepare_v2(history_db(h),
				   "SELECT group_concat(slot || ':' || command || ':' || "
				   "input || ':' || output || ':' || total || ':' || status "
				   "|| ':' || ifnull(exit_code, 'null') || ':' || reserved, "
				   "' ') FROM (SELECT * FROM agents ORDER BY slot)",
				   -1, &st, NULL),
		SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0),
			    "0:/test:500:50:550:stopped:87:0 1:/lint:700:0:700:running:null:1000");
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(history_db(h),
					    "SELECT scope, exit_status, ended_ms IS NOT NULL, "
					    "command_line FROM runs",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "default");
	assert_int_equal(sqlite3_column_int(st, 1), 3);
	assert_int_equal(sqlite3_column_int(st, 2), 1);
	assert_string_equal((const char *)sqlite3_column_text(st, 3), "./nightly.sh");
	sqlite3_finalize(st);
	ledger_close(&l);
	history_close(h);
}

static void test_estimates(void **state)
{
	struct history *h = open_new("est.db");
	struct history_estimates e;
	char err[512];
	unsigned runs;
	static const char *const t[] = {"/test"}, *const r[] = {"/review"};
	(void)state;
	assert_int_equal(history_estimates(h, &e, err, sizeof(err)), 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(history_estimate_for(&e, "/test", 1000, &runs), 1000);
	assert_int_equal(runs, 0);
	static const uint64_t sizes[] = {4250, 8500, 21250, 12750, 17000};
	for (size_t i = 0; i < 5; i++)
		record_run(h, "default", 1, t, &sizes[i]);
	static const uint64_t small[] = {300, 400};
	for (size_t i = 0; i < 2; i++)
		record_run(h, "default", 1, r, &small[i]);
	assert_int_equal(history_estimates(h, &e, err, sizeof(err)), 0);
	assert_int_equal(e.n, 2);
	assert_int_equal(history_estimate_for(&e, "/test", 1000, &runs), 17000);
	assert_int_equal(runs, 5);
	/* Two runs: the fixed estimate. */
	assert_int_equal(history_estimate_for(&e, "/review", 1000, &runs), 1000);
	assert_int_equal(runs, 2);
	assert_int_equal(history_estimate_for(NULL, "/test", 1000, &runs), 1000);
	/* Twenty more of 100 tokens: only the last 20 count. */
	static const uint64_t hundred = 100;
	for (int i = 0; i < 20; i++)
		record_run(h, "default", 1, t, &hundred);
	assert_int_equal(history_estimates(h, &e, err, sizeof(err)), 0);
	assert_int_equal(history_estimate_for(&e, "/test", 1000, &runs), 100);
	assert_int_equal(runs, 20);
	history_close(h);
}

static void test_window(void **state)
{
	struct history *h = open_new("window.db");
	struct history_usage u;
	char err[512];
	static const char *const two[] = {"/test", "/review"};
	static const uint64_t a[] = {1000, 200}, b[] = {30, 4};
	(void)state;
	record_run(h, "nightly", 2, two, a); /* run 1 */
	record_run(h, "nightly", 2, two, b); /* run 2 */
	record_run(h, "other", 2, two, a);   /* run 3 */
	assert_int_equal(history_window_usage(h, "nightly", 0, 0, &u, err, sizeof(err)), 0);
	assert_int_equal(u.overall, 1234);
	assert_int_equal(history_usage_of(&u, "/test"), 1030);
	assert_int_equal(history_usage_of(&u, "/review"), 204);
	assert_int_equal(history_usage_of(&u, "/none"), 0);
	/* Without run 2 (this run: its own usage is the ledger's). */
	assert_int_equal(history_window_usage(h, "nightly", 0, 2, &u, err, sizeof(err)), 0);
	assert_int_equal(u.overall, 1200);
	/* Run 1 started two hours ago: outside a 90 minute window. */
	exec(h, "UPDATE agents SET started_ms = started_ms - 7200000 WHERE run_id = 1");
	uint64_t since = history_now_ms() - 5400000;
	assert_int_equal(history_window_usage(h, "nightly", since, 0, &u, err, sizeof(err)), 0);
	assert_int_equal(u.overall, 34);
	assert_int_equal(history_window_usage(h, "none", 0, 0, &u, err, sizeof(err)), 0);
	assert_int_equal(u.overall, 0);
	assert_int_equal(u.n, 0);
	history_close(h);
}

static void test_report_json(void **state)
{
	struct history *h = open_new("report.db");
	struct histreport r;
	char err[512];
	static const char *const t[] = {"/test"}, *const two[] = {"/test", "/review"};
	static const uint64_t sizes[] = {4250, 8500, 12750}, pair[] = {17000, 6690};
	(void)state;
	for (size_t i = 0; i < 3; i++)
		record_run(h, "ci", 1, t, &sizes[i]);
	record_run(h, "ci", 2, two, pair);
	record_run(h, "other", 1, t, &sizes[0]);
	exec(h, "UPDATE agents SET status = 'stopped' WHERE run_id = 4 AND slot = 0");
	exec(h, "UPDATE agents SET status = 'refused', total = 0 WHERE run_id = 5");
	struct histreport_filter f = {.scope = "ci", .now_ms = history_now_ms()};
	assert_int_equal(histreport_collect(h, &f, &r, err, sizeof(err)), 0);
	char *json = histreport_json(&r, &f);
	assert_string_equal(
		json,
		"{\"since_seconds\":null,\"scope\":\"ci\",\"command\":null,\"commands\":["
		"{\"command\":\"/review\",\"runs\":1,\"tokens\":6690,\"usd\":0,\"p50\":6690,"
		"\"p75\":6690,\"p95\":6690,\"stopped\":0,\"refused\":0},"
		"{\"command\":\"/test\",\"runs\":4,\"tokens\":42500,\"usd\":0,\"p50\":8500,"
		"\"p75\":12750,\"p95\":17000,\"stopped\":1,\"refused\":0}],"
		"\"total\":{\"runs\":5,\"tokens\":49190,\"usd\":0,\"stopped\":1,\"refused\":0,"
		"\"tbwrap_runs\":4}}\n");
	free(json);
	/* Every scope, one command, the last week. */
	struct histreport_filter g = {
		.command = "/test", .since_s = 604800, .now_ms = history_now_ms()};
	assert_int_equal(histreport_collect(h, &g, &r, err, sizeof(err)), 0);
	json = histreport_json(&r, &g);
	assert_string_equal(
		json,
		"{\"since_seconds\":604800,\"scope\":null,\"command\":\"/test\",\"commands\":["
		"{\"command\":\"/test\",\"runs\":4,\"tokens\":42500,\"usd\":0,\"p50\":8500,"
		"\"p75\":12750,\"p95\":17000,\"stopped\":1,\"refused\":1}],"
		"\"total\":{\"runs\":4,\"tokens\":42500,\"usd\":0,\"stopped\":1,\"refused\":1,"
		"\"tbwrap_runs\":4}}\n");
	free(json);
	/* USD from the history's pico-USD column. */
	exec(h, "UPDATE agents SET usd_pico = 1500000000000 WHERE command = '/review'");
	assert_int_equal(histreport_collect(h, &f, &r, err, sizeof(err)), 0);
	json = histreport_json(&r, &f);
	assert_non_null(
		strstr(json, "{\"command\":\"/review\",\"runs\":1,\"tokens\":6690,\"usd\":1.5,"));
	free(json);
	char *s = histreport_suggest(&r, 25);
	assert_string_equal(s, "# /review: 1 run, too few for a suggestion (3 needed)\n"
			       "# /test: p95 17.0K of 4 runs + 25% = 22K\n"
			       "# overall: p95 23.7K of 4 tbwrap runs + 25% = 30K\n"
			       "tbwrap --overall-token-budget 30K --command-budget /test=22K --\n");
	free(s);
	char *page = histreport_html(h, &r, &f, err, sizeof(err));
	assert_non_null(page);
	assert_non_null(strstr(page, "<polyline class=\"series\" data-command=\"/test\""));
	assert_non_null(strstr(page, "<polyline class=\"series\" data-command=\"/review\""));
	/* Nothing loaded from elsewhere. */
	assert_null(strstr(page, "src="));
	assert_null(strstr(page, "href="));
	assert_null(strstr(page, "url("));
	free(page);
	history_close(h);
}

static void test_suggest_limit(void **state)
{
	(void)state;
	assert_int_equal(histreport_suggest_limit(17000, 25), 22000);
	assert_int_equal(histreport_suggest_limit(4000, 25), 5000);
	assert_int_equal(histreport_suggest_limit(4001, 25), 5100);
	assert_int_equal(histreport_suggest_limit(0, 25), 100);
	assert_int_equal(histreport_suggest_limit(8000, 0), 8000);
	assert_int_equal(histreport_suggest_limit(10001, 0), 11000);
}

static void test_not_a_database(void **state)
{
	char path[256], err[512];
	struct history *h;
	(void)state;
	db_path(path, sizeof(path), "garbage.db");
	FILE *f = fopen(path, "w");
	for (int i = 0; i < 4096; i++)
		fputc(i * 7 % 251, f);
	fclose(f);
	assert_int_equal(history_open(&h, path, true, 100, err, sizeof(err)), -1);
	assert_null(h);
	char want[512];
	snprintf(want, sizeof(want),
		 "history %s: cannot open: file is not a database (it is not a tbwrap history "
		 "(corrupt?); move it away, or give another file with --history)",
		 path);
	assert_string_equal(err, want);
	db_path(path, sizeof(path), "missing.db");
	assert_int_equal(history_open(&h, path, false, 100, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot open"));
	assert_int_equal(access(path, F_OK), -1); /* reading creates nothing */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),       cmocka_unit_test(test_percentile),
		cmocka_unit_test(test_default_path),   cmocka_unit_test(test_rows),
		cmocka_unit_test(test_estimates),      cmocka_unit_test(test_window),
		cmocka_unit_test(test_report_json),    cmocka_unit_test(test_suggest_limit),
		cmocka_unit_test(test_not_a_database),
	};
	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
