/*
 * The ledger in one process: creation (fields, seals, memory reserved up front), config
 * validation, the command index, admission in block and warn mode with the exact refusal, the
 * instance table filling up, agents recorded without admission, usage, reservations and verdicts
 * (none of which may wrap), per-request admission and how far a budget overshot, the over-limit
 * boundary, rebinding to another command, what the meter publishes, the text of a refusal, every
 * refusal of ledger_map_readonly on a memfd forged by hand, and metering a real Claude Code
 * capture into it.
 *
 * Every ledger is a memfd: a test that fails half-way leaves nothing behind the process.
 * The write protection itself (what the seals forbid) is tests/unit/test_ledger_seal.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "tbwrap/ledger.h"

/* A token amount (no USD). */
#define TOK(n) ((struct amount){{(n), 0}})

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#define ALL_SEALS (F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

#define FIXTURE_DIR "tests/fixtures/claude-code-2.1.197/"
#define HS sizeof(struct ledger_header)

static const char *const two_names[] = {"/test", "/review"};
static const uint64_t two_limits[] = {500, LEDGER_NO_LIMIT};

static struct ledger_config base_config(uint64_t overall, enum ledger_mode mode, uint64_t estimate)
{
	struct ledger_config cfg = {
		.overall_limit = overall,
		.mode = mode,
		.estimate = estimate,
		.weights = {1, 1, 1, 1},
		.n_commands = 2,
		.command_names = two_names,
		.command_limits = two_limits,
	};
	return cfg;
}

static void create_or_fail(struct ledger *l, const struct ledger_config *cfg)
{
	char err[256] = "";

	if (ledger_create(l, cfg, err, sizeof(err)) != 0)
		fail_msg("ledger_create: %s", err);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void assert_fd_closed(int fd)
{
	errno = 0;
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
}

static void test_create_fields(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_BLOCK, 300);
	struct ledger l;
	struct stat st;

	(void)state;
	cfg.weights[METER_OUTPUT] = 5;
	create_or_fail(&l, &cfg);
	assert_true(l.is_writer);
	assert_int_equal(l.size, HS);
	assert_true(l.fd >= 0);
	assert_int_equal(fcntl(l.fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	/* Sealed with exactly these four: nobody else writes, resizes or unseals it. */
	assert_int_equal(fcntl(l.fd, F_GET_SEALS), ALL_SEALS);
	assert_int_equal(fstat(l.fd, &st), 0);
	assert_int_equal(st.st_size, HS);
	/* posix_fallocate reserved every page now (a mapping only touched where the header was
	 * filled would hold a few pages): running out of memory cannot become a SIGBUS later. */
	assert_true((uint64_t)st.st_blocks * 512 >= (HS + 4095) / 4096 * 4096);

	const struct ledger_header *h = l.h;
	assert_true(h->magic == LEDGER_MAGIC);
	assert_int_equal(h->version, LEDGER_VERSION);
	assert_int_equal(h->header_size, HS);
	assert_int_equal(h->size, HS);
	assert_int_equal(h->creator_pid, getpid());
	assert_int_equal(h->uid, geteuid());
	assert_int_equal(h->mode, LEDGER_MODE_BLOCK);
	assert_int_equal(h->estimate, 300);
	assert_int_equal(h->weights[METER_INPUT], 1);
	assert_int_equal(h->weights[METER_OUTPUT], 5);
	assert_int_equal(h->weights[METER_CACHE_CREATION], 1);
	assert_int_equal(h->weights[METER_CACHE_READ], 1);
	assert_int_equal(h->n_commands, 2);
	assert_int_equal(h->n_instances, 0);
	assert_int_equal(h->unlisted, 0);
	assert_string_equal(h->overall.name, "");
	assert_int_equal(h->overall.limit, 1000);
	assert_int_equal(h->overall.used.total, 0);
	assert_string_equal(h->commands[0].name, "/test");
	assert_int_equal(h->commands[0].limit, 500);
	assert_string_equal(h->commands[1].name, "/review");
	assert_true(h->commands[1].limit == LEDGER_NO_LIMIT);
	assert_string_equal(h->commands[2].name, "");

	int fd = l.fd;
	ledger_close(&l);
	assert_null(l.h);
	assert_int_equal(l.fd, -1);
	assert_int_equal(l.size, 0);
	assert_false(l.is_writer);
	assert_fd_closed(fd);
}

static void expect_config_error(const struct ledger_config *cfg, const char *want)
{
	struct ledger l;
	char err[256] = "";
	int fds = count_fds();

	assert_int_equal(ledger_create(&l, cfg, err, sizeof(err)), -1);
	assert_string_equal(err, want);
	assert_null(l.h);
	assert_int_equal(l.fd, -1);
	assert_false(l.is_writer);
	assert_int_equal(count_fds(), fds);
}

static void test_config_validation(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_BLOCK, 300);
	const char *names[LEDGER_MAX_COMMANDS + 1];
	uint64_t limits[LEDGER_MAX_COMMANDS + 1];
	char bufs[LEDGER_MAX_COMMANDS + 1][16];
	char long_name[LEDGER_NAME_LEN + 1];
	struct ledger l;
	char err[256];

	(void)state;
	for (int i = 0; i <= LEDGER_MAX_COMMANDS; i++) {
		snprintf(bufs[i], sizeof(bufs[i]), "/c%d", i);
		names[i] = bufs[i];
		limits[i] = 100;
	}
	cfg.command_names = names;
	cfg.command_limits = limits;

	names[1] = "";
	cfg.n_commands = 3;
	expect_config_error(&cfg, "ledger: command budget 2 has an empty name");
	names[1] = NULL;
	expect_config_error(&cfg, "ledger: command budget 2 has an empty name");

	memset(long_name, 'x', LEDGER_NAME_LEN);
	long_name[0] = '/';
	long_name[LEDGER_NAME_LEN] = '\0';
	names[1] = long_name;
	expect_config_error(&cfg, "ledger: command name \"/xxxxxxxxxxxxxxxxxxx...\" is 64 bytes "
				  "long, at most 63 allowed");

	names[1] = bufs[1];
	names[2] = "/c0";
	expect_config_error(&cfg, "ledger: command \"/c0\" has two budgets");

	names[2] = bufs[2];
	cfg.n_commands = LEDGER_MAX_COMMANDS + 1;
	expect_config_error(&cfg, "ledger: 65 command budgets, at most 63 are supported");
	/* One entry stays for the catch-all. */
	cfg.n_commands = LEDGER_MAX_COMMANDS;
	expect_config_error(&cfg, "ledger: 64 command budgets, at most 63 are supported");

	cfg.n_commands = 2;
	cfg.command_names = NULL;
	expect_config_error(&cfg, "ledger: 2 command budgets given without names or limits");
	cfg.command_names = names;
	cfg.command_limits = NULL;
	expect_config_error(&cfg, "ledger: 2 command budgets given without names or limits");
	cfg.command_limits = limits;

	cfg.mode = (enum ledger_mode)7;
	expect_config_error(&cfg, "ledger: unknown mode 7");

	/* The limits: 63 bytes and 63 budgets are accepted. */
	cfg.mode = LEDGER_MODE_WARN;
	long_name[LEDGER_NAME_LEN - 1] = '\0';
	names[LEDGER_MAX_BUDGETS - 1] = long_name;
	cfg.n_commands = LEDGER_MAX_BUDGETS;
	assert_int_equal(ledger_create(&l, &cfg, err, sizeof(err)), 0);
	assert_int_equal(l.h->n_commands, LEDGER_MAX_BUDGETS);
	assert_int_equal(l.h->mode, LEDGER_MODE_WARN);
	assert_string_equal(l.h->commands[LEDGER_MAX_BUDGETS - 1].name, long_name);
	assert_int_equal(l.h->commands[LEDGER_MAX_BUDGETS - 1].limit, 100);
	assert_int_equal(ledger_command_index(&l, long_name, false), LEDGER_MAX_BUDGETS - 1);
	/* The one entry left is the catch-all's: no other insertion. */
	assert_int_equal(ledger_command_index(&l, "/new", true), -1);
	assert_int_equal(ledger_command_index(&l, LEDGER_CATCH_ALL, true), LEDGER_MAX_BUDGETS);
	assert_int_equal(ledger_command_index(&l, "/new", true), -1);
	assert_int_equal(l.h->n_commands, LEDGER_MAX_COMMANDS);
	ledger_close(&l);

	/* No command budgets at all: names and limits may be NULL. */
	cfg.n_commands = 0;
	cfg.command_names = NULL;
	cfg.command_limits = NULL;
	assert_int_equal(ledger_create(&l, &cfg, err, sizeof(err)), 0);
	assert_int_equal(l.h->n_commands, 0);
	ledger_close(&l);
}

static void test_command_index(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_WARN, 0);
	char long_name[LEDGER_NAME_LEN + 1];
	struct ledger l;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_command_index(&l, "/test", false), 0);
	assert_int_equal(ledger_command_index(&l, "/review", true), 1);
	assert_int_equal(ledger_command_index(&l, LEDGER_CATCH_ALL, false), -1);
	assert_int_equal(l.h->n_commands, 2);
	assert_int_equal(ledger_command_index(&l, LEDGER_CATCH_ALL, true), 2);
	assert_int_equal(ledger_command_index(&l, LEDGER_CATCH_ALL, true), 2);
	assert_int_equal(l.h->n_commands, 3);
	assert_string_equal(l.h->commands[2].name, LEDGER_CATCH_ALL);
	assert_true(l.h->commands[2].limit == LEDGER_NO_LIMIT);
	assert_int_equal(l.h->commands[2].agents, 0);
	assert_int_equal(ledger_command_index(&l, "", true), -1);
	assert_int_equal(ledger_command_index(&l, NULL, true), -1);
	memset(long_name, 'y', LEDGER_NAME_LEN);
	long_name[LEDGER_NAME_LEN] = '\0';
	assert_int_equal(ledger_command_index(&l, long_name, true), -1);
	assert_int_equal(l.h->n_commands, 3);
	for (int i = 3; i < LEDGER_MAX_COMMANDS; i++) {
		char name[16];
		snprintf(name, sizeof(name), "/k%d", i);
		assert_int_equal(ledger_command_index(&l, name, true), i);
	}
	assert_int_equal(ledger_command_index(&l, "/one-too-many", true), -1);
	assert_int_equal(l.h->n_commands, LEDGER_MAX_COMMANDS);
	assert_int_equal(ledger_command_index(&l, "/k63", false), 63);
	ledger_close(&l);

	/* Without a catch-all yet, the last entry is kept for it: a slash command cannot take it,
	 * so every agent can still be counted somewhere. */
	create_or_fail(&l, &cfg);
	for (int i = 2; i < LEDGER_MAX_COMMANDS - 1; i++) {
		char name[16];
		snprintf(name, sizeof(name), "/k%d", i);
		assert_int_equal(ledger_command_index(&l, name, true), i);
	}
	assert_int_equal(ledger_command_index(&l, "/k63", true), -1);
	assert_int_equal(ledger_command_index(&l, LEDGER_CATCH_ALL, true), LEDGER_MAX_COMMANDS - 1);
	assert_int_equal(ledger_command_index(&l, "/k64", true), -1);
	ledger_close(&l);
}

static void test_admit_block_overall(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_BLOCK, 300);
	struct ledger_refusal why;
	struct ledger l;
	int slot = 99;

	(void)state;
	create_or_fail(&l, &cfg);
	/* /review has no budget of its own: only the overall one applies. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ledger_admit(&l, 1, 1000 + i, TOK(300), &why, &slot),
				 LEDGER_ADMITTED);
		assert_int_equal(slot, i);
	}
	struct ledger_instance *in = &l.h->instances[1];
	assert_int_equal(in->pid, 1001);
	assert_int_equal(in->command, 1);
	assert_int_equal(in->status, LEDGER_INST_RUNNING);
	assert_int_equal(in->estimate, 300);
	assert_int_equal(in->reserved, 300);
	assert_int_equal(in->exit_code, -1);
	assert_int_equal(in->flags, 0);
	assert_int_equal(in->end_ns, 0);
	assert_true(in->start_ns > UINT64_C(1600000000) * 1000000000);
	assert_int_equal(l.h->n_instances, 3);
	assert_int_equal(l.h->overall.reserved, 900);
	assert_int_equal(l.h->commands[1].reserved, 900);
	assert_int_equal(l.h->commands[0].reserved, 0);
	assert_int_equal(l.h->overall.agents, 3);
	assert_int_equal(l.h->commands[1].agents, 3);

	/* 900 + 100 == 1000 fits exactly; 900 + 101 does not. */
	assert_int_equal(ledger_admit(&l, 1, 2000, TOK(101), &why, &slot), LEDGER_REFUSED);
	assert_int_equal(slot, 3);
	assert_true(why.is_overall);
	assert_string_equal(why.name, "");
	assert_int_equal(why.limit, 1000);
	assert_int_equal(why.used, 0);
	assert_int_equal(why.reserved, 900);
	assert_int_equal(why.estimate, 101);
	in = &l.h->instances[3];
	assert_int_equal(in->status, LEDGER_INST_REFUSED);
	assert_int_equal(in->pid, 2000);
	assert_int_equal(in->command, 1);
	assert_int_equal(in->estimate, 101);
	assert_int_equal(in->reserved, 0);
	assert_true(in->start_ns != 0);
	assert_true(in->end_ns == in->start_ns);
	/* Counted on both budgets; nothing reserved, no agent counted. */
	assert_int_equal(l.h->overall.refused, 1);
	assert_int_equal(l.h->commands[1].refused, 1);
	assert_int_equal(l.h->commands[0].refused, 0);
	assert_int_equal(l.h->overall.reserved, 900);
	assert_int_equal(l.h->overall.agents, 3);
	assert_int_equal(l.h->commands[1].agents, 3);

	assert_int_equal(ledger_admit(&l, 1, 2001, TOK(100), &why, &slot), LEDGER_ADMITTED);
	assert_int_equal(slot, 4);
	assert_int_equal(l.h->overall.reserved, 1000);
	/* A bad command index records nothing. */
	slot = 99;
	assert_int_equal(ledger_admit(&l, 7, 2002, TOK(0), &why, &slot), LEDGER_TABLE_FULL);
	assert_int_equal(slot, -1);
	assert_int_equal(ledger_admit(&l, -1, 2002, TOK(0), &why, &slot), LEDGER_TABLE_FULL);
	assert_int_equal(slot, -1);
	assert_int_equal(l.h->n_instances, 5);
	assert_int_equal(l.h->overall.refused, 1);
	ledger_close(&l);
}

/* Rolling windows: other runs' usage counts against a budget at launch, per request and in the
 * over-limit check, and is not this run's usage. */
static void test_window_others(void **state)
{
	struct ledger_config cfg = base_config(10000, LEDGER_MODE_BLOCK, 1000);
	struct ledger_refusal why;
	struct ledger l;
	int slot;
	char buf[160];

	(void)state;
	create_or_fail(&l, &cfg);
	ledger_set_others(&l, -1, 8500);
	assert_int_equal(ledger_budget_used(&l.h->overall), 8500);
	assert_int_equal(l.h->overall.used.total, 0);
	assert_int_equal(ledger_admit(&l, 1, 100, TOK(1000), &why, &slot), LEDGER_ADMITTED);
	/* 8500 + 1000 reserved + 1000 > 10000 */
	assert_int_equal(ledger_admit(&l, 1, 101, TOK(1000), &why, &slot), LEDGER_REFUSED);
	ledger_describe_refusal(&why, buf, sizeof(buf));
	assert_string_equal(buf,
			    "overall budget: used 8.5K + reserved 1.0K + estimate 1.0K > limit "
			    "10.0K");
	assert_false(ledger_request_fits(&l, 0, TOK(1600), TOK(1600), &why));
	assert_true(ledger_request_fits(&l, 0, TOK(1500), TOK(1500), &why));
	assert_false(ledger_over_limit(&l, 0, &why));
	ledger_set_others(&l, -1, 10001);
	assert_true(ledger_over_limit(&l, 0, &why));
	assert_int_equal(why.used, 10001);
	assert_int_equal(l.h->overall.overshoot, 1);
	/* A command's own: index 1 is /review, unbudgeted; out of range changes nothing. */
	ledger_set_others(&l, 1, 77);
	assert_int_equal(l.h->commands[1].others, 77);
	ledger_set_others(&l, 60, 5);
	ledger_close(&l);
}

static void test_admit_block_command(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_BLOCK, 200);
	struct ledger_refusal why;
	struct ledger l;
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 10, TOK(200), &why, &slot), LEDGER_ADMITTED);
	assert_int_equal(slot, 0);
	struct meter_usage d = {{100, 50, 50, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	/* Usage does not release the reservation: the supervisor sets it (its estimate is
	 * covered). */
	assert_int_equal(l.h->commands[0].reserved, 200);
	ledger_set_reserved(&l, 0, TOK(0));
	assert_int_equal(l.h->commands[0].reserved, 0);
	/* /test: used 200 + reserved 0 + 300 = 500 fits; then 200 + 300 + 1 does not. */
	assert_int_equal(ledger_admit(&l, 0, 11, TOK(300), &why, &slot), LEDGER_ADMITTED);
	assert_int_equal(slot, 1);
	assert_int_equal(ledger_admit(&l, 0, 12, TOK(1), &why, &slot), LEDGER_REFUSED);
	assert_false(why.is_overall);
	assert_string_equal(why.name, "/test");
	assert_int_equal(why.limit, 500);
	assert_int_equal(why.used, 200);
	assert_int_equal(why.reserved, 300);
	assert_int_equal(why.estimate, 1);
	assert_int_equal(slot, 2);
	assert_int_equal(l.h->instances[2].status, LEDGER_INST_REFUSED);
	assert_int_equal(l.h->commands[0].refused, 1);
	assert_int_equal(l.h->overall.refused, 1);
	assert_int_equal(l.h->commands[0].agents, 2);
	/* Another command is not affected by /test's budget. */
	assert_int_equal(ledger_admit(&l, 1, 13, TOK(100000), &why, &slot), LEDGER_ADMITTED);
	assert_int_equal(slot, 3);
	assert_int_equal(l.h->instances[3].status, LEDGER_INST_RUNNING);
	assert_int_equal(l.h->commands[1].refused, 0);
	ledger_close(&l);
}

/* Both budgets exceeded: the refusal names the overall one, the one set for the whole run. */
static void test_admit_both_exceeded_names_overall(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_BLOCK, 0);
	struct ledger_refusal why;
	struct ledger l;
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, TOK(2000), &why, &slot), LEDGER_REFUSED);
	assert_true(why.is_overall);
	assert_string_equal(why.name, "");
	assert_int_equal(why.limit, 1000);
	assert_int_equal(why.estimate, 2000);
	/* Only the command budget exceeded: it is named. */
	assert_int_equal(ledger_admit(&l, 0, 2, TOK(600), &why, &slot), LEDGER_REFUSED);
	assert_false(why.is_overall);
	assert_string_equal(why.name, "/test");
	assert_int_equal(why.limit, 500);
	assert_int_equal(why.estimate, 600);
	assert_int_equal(l.h->overall.refused, 2);
	assert_int_equal(l.h->commands[0].refused, 2);
	ledger_close(&l);
}

static void test_admit_warn_mode(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_WARN, 600);
	struct ledger_refusal why;
	struct ledger l;
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 1, 1, TOK(600), &why, &slot), LEDGER_ADMITTED);
	assert_int_equal(slot, 0);
	memset(&why, 0x5a, sizeof(why));
	assert_int_equal(ledger_admit(&l, 1, 2, TOK(600), &why, &slot), LEDGER_ADMITTED_OVER);
	assert_int_equal(slot, 1);
	assert_true(why.is_overall);
	assert_string_equal(why.name, "");
	assert_int_equal(why.limit, 1000);
	assert_int_equal(why.used, 0);
	assert_int_equal(why.reserved, 600);
	assert_int_equal(why.estimate, 600);
	/* Running anyway, with its reservation and counted as an agent, never as refused. */
	assert_int_equal(l.h->instances[1].status, LEDGER_INST_RUNNING);
	assert_int_equal(l.h->instances[1].reserved, 600);
	assert_int_equal(l.h->overall.reserved, 1200);
	assert_int_equal(l.h->overall.agents, 2);
	assert_int_equal(l.h->overall.refused, 0);
	assert_int_equal(l.h->commands[1].refused, 0);
	/* why may be NULL. */
	assert_int_equal(ledger_admit(&l, 1, 3, TOK(600), NULL, &slot), LEDGER_ADMITTED_OVER);
	assert_int_equal(slot, 2);
	/* A command budget alone exceeded names the command. */
	struct ledger_config cfg2 = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_WARN, 0);
	struct ledger l2;
	create_or_fail(&l2, &cfg2);
	assert_int_equal(ledger_admit(&l2, 0, 4, TOK(501), &why, &slot), LEDGER_ADMITTED_OVER);
	assert_int_equal(slot, 0);
	assert_false(why.is_overall);
	assert_string_equal(why.name, "/test");
	assert_int_equal(why.limit, 500);
	assert_int_equal(why.used, 0);
	assert_int_equal(why.reserved, 0);
	assert_int_equal(why.estimate, 501);
	assert_int_equal(l2.h->commands[0].agents, 1);
	assert_int_equal(l2.h->commands[0].reserved, 501);
	ledger_close(&l2);
	ledger_close(&l);
}

/* A used-up budget admits nobody, even an agent that reserves nothing (--estimate 0). */
static void test_used_up_admits_nobody(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_BLOCK, 0);
	struct ledger_refusal why;
	struct meter_usage d;
	struct ledger l, w, z;
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 1, 1, TOK(0), &why, &slot), LEDGER_ADMITTED);
	d = (struct meter_usage){{999, 0, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	/* 999 used: an estimate of 1 fits exactly, 0 fits, 2 does not. */
	assert_int_equal(ledger_admit(&l, 1, 2, TOK(0), &why, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&l, 1, 3, TOK(1), &why, &slot), LEDGER_ADMITTED);
	assert_int_equal(l.h->overall.reserved, 1);
	ledger_settle(&l, 2, LEDGER_INST_EXITED, 0);
	assert_int_equal(l.h->overall.reserved, 0);
	assert_int_equal(ledger_admit(&l, 1, 4, TOK(2), &why, &slot), LEDGER_REFUSED);
	d = (struct meter_usage){{0, 1, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	assert_int_equal(l.h->overall.used.total, 1000);
	assert_false(ledger_over_limit(&l, 0, NULL));
	assert_int_equal(ledger_admit(&l, 1, 5, TOK(0), &why, &slot), LEDGER_REFUSED);
	assert_int_equal(slot, 4);
	assert_true(why.is_overall);
	assert_int_equal(why.limit, 1000);
	assert_int_equal(why.used, 1000);
	assert_int_equal(why.reserved, 0);
	assert_int_equal(why.estimate, 0);

	/* A used-up command budget refuses its own agents only. */
	struct ledger_config c2 = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_BLOCK, 0);
	struct ledger m;
	create_or_fail(&m, &c2);
	assert_int_equal(ledger_admit(&m, 0, 1, TOK(0), &why, &slot), LEDGER_ADMITTED);
	d = (struct meter_usage){{500, 0, 0, 0}};
	ledger_record_delta(&m, 0, &d, 0);
	assert_int_equal(ledger_admit(&m, 0, 2, TOK(0), &why, &slot), LEDGER_REFUSED);
	assert_false(why.is_overall);
	assert_string_equal(why.name, "/test");
	assert_int_equal(why.used, 500);
	assert_int_equal(why.estimate, 0);
	assert_int_equal(ledger_admit(&m, 1, 3, TOK(0), &why, &slot), LEDGER_ADMITTED);
	ledger_close(&m);

	/* Warn mode: admitted, but said to be over. */
	struct ledger_config c3 = base_config(1000, LEDGER_MODE_WARN, 0);
	create_or_fail(&w, &c3);
	assert_int_equal(ledger_admit(&w, 1, 1, TOK(0), &why, &slot), LEDGER_ADMITTED);
	d = (struct meter_usage){{1000, 0, 0, 0}};
	ledger_record_delta(&w, 0, &d, 0);
	assert_int_equal(ledger_admit(&w, 1, 2, TOK(0), &why, &slot), LEDGER_ADMITTED_OVER);
	assert_true(why.is_overall);
	assert_int_equal(why.used, 1000);
	ledger_close(&w);

	/* A zero budget ("no agent may run") with an estimate of 0. */
	struct ledger_config c4 = base_config(0, LEDGER_MODE_BLOCK, 0);
	create_or_fail(&z, &c4);
	assert_int_equal(ledger_admit(&z, 1, 1, TOK(0), &why, &slot), LEDGER_REFUSED);
	assert_true(why.is_overall);
	assert_int_equal(why.limit, 0);
	assert_int_equal(why.used, 0);
	assert_int_equal(why.estimate, 0);
	assert_int_equal(z.h->instances[0].status, LEDGER_INST_REFUSED);
	ledger_close(&z);
	ledger_close(&l);
}

static void test_admit_table_full(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_BLOCK, 1);
	struct ledger_refusal why;
	struct ledger l, w;
	int slot = 5;

	(void)state;
	create_or_fail(&l, &cfg);
	for (int i = 0; i < LEDGER_MAX_INSTANCES; i++) {
		assert_int_equal(ledger_admit(&l, 1, i + 1, TOK(1), &why, &slot), LEDGER_ADMITTED);
		assert_int_equal(slot, i);
	}
	assert_int_equal(ledger_admit(&l, 1, 999, TOK(1), &why, &slot), LEDGER_TABLE_FULL);
	assert_int_equal(slot, -1);
	/* Nothing recorded: no agent, no reservation. */
	assert_int_equal(l.h->n_instances, LEDGER_MAX_INSTANCES);
	assert_int_equal(l.h->overall.agents, LEDGER_MAX_INSTANCES);
	assert_int_equal(l.h->overall.reserved, LEDGER_MAX_INSTANCES);
	assert_int_equal(l.h->commands[1].agents, LEDGER_MAX_INSTANCES);
	assert_int_equal(l.h->unlisted, 0);
	/* Refused with a full table: still refused and counted, no slot to record it in. */
	slot = 5;
	assert_int_equal(ledger_admit(&l, 0, 999, TOK(501), &why, &slot), LEDGER_REFUSED);
	assert_int_equal(slot, -1);
	assert_false(why.is_overall);
	assert_string_equal(why.name, "/test");
	assert_int_equal(l.h->commands[0].refused, 1);
	assert_int_equal(l.h->overall.refused, 1);
	assert_int_equal(l.h->n_instances, LEDGER_MAX_INSTANCES);
	ledger_close(&l);

	/* Warn mode: an agent over budget with a full table is not counted either. */
	cfg.mode = LEDGER_MODE_WARN;
	create_or_fail(&w, &cfg);
	for (int i = 0; i < LEDGER_MAX_INSTANCES; i++)
		assert_int_equal(ledger_admit(&w, 1, i + 1, TOK(1), &why, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&w, 0, 999, TOK(501), &why, &slot), LEDGER_TABLE_FULL);
	assert_int_equal(slot, -1);
	assert_int_equal(w.h->commands[0].agents, 0);
	assert_int_equal(w.h->commands[0].reserved, 0);
	assert_int_equal(w.h->commands[0].refused, 0);
	ledger_close(&w);
}

static void test_record_unadmitted(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_BLOCK, 300);
	struct ledger l;
	char long_note[LEDGER_NOTE_LEN + 20];

	(void)state;
	create_or_fail(&l, &cfg);
	/* REFUSED: counted refused on both budgets, nothing reserved, not an agent. */
	int s = ledger_record_unadmitted(&l, 0, 50, LEDGER_INST_REFUSED, "it runs as uid 0");
	assert_int_equal(s, 0);
	struct ledger_instance *in = &l.h->instances[0];
	assert_int_equal(in->status, LEDGER_INST_REFUSED);
	assert_int_equal(in->pid, 50);
	assert_int_equal(in->command, 0);
	assert_int_equal(in->estimate, 0);
	assert_int_equal(in->reserved, 0);
	assert_int_equal(in->flags, 0);
	assert_int_equal(in->exit_code, -1);
	assert_string_equal(in->note, "it runs as uid 0");
	assert_true(in->start_ns != 0);
	assert_true(in->end_ns == in->start_ns);
	assert_int_equal(l.h->overall.refused, 1);
	assert_int_equal(l.h->commands[0].refused, 1);
	assert_int_equal(l.h->overall.agents, 0);
	assert_int_equal(l.h->commands[0].agents, 0);
	assert_int_equal(l.h->overall.reserved, 0);

	/* RUNNING: an agent that runs unmetered, counted as an agent, flagged, with its note. */
	s = ledger_record_unadmitted(&l, 1, 51, LEDGER_INST_RUNNING, "no seccomp filter");
	assert_int_equal(s, 1);
	in = &l.h->instances[1];
	assert_int_equal(in->status, LEDGER_INST_RUNNING);
	assert_int_equal(in->flags, LEDGER_F_UNMETERED);
	assert_string_equal(in->note, "no seccomp filter");
	assert_int_equal(in->end_ns, 0);
	assert_int_equal(in->reserved, 0);
	assert_int_equal(l.h->overall.agents, 1);
	assert_int_equal(l.h->commands[1].agents, 1);
	assert_int_equal(l.h->commands[0].agents, 0);
	assert_int_equal(l.h->overall.refused, 1);
	assert_int_equal(l.h->overall.reserved, 0);
	/* Its exit keeps the flag. */
	ledger_settle(&l, 1, LEDGER_INST_EXITED, 0);
	assert_int_equal(in->status, LEDGER_INST_EXITED);
	assert_int_equal(in->flags, LEDGER_F_UNMETERED);
	assert_int_equal(in->exit_code, 0);

	/* No note: an empty one. A long note is cut to the field, NUL-terminated. */
	s = ledger_record_unadmitted(&l, 1, 52, LEDGER_INST_RUNNING, NULL);
	assert_int_equal(s, 2);
	assert_string_equal(l.h->instances[2].note, "");
	assert_int_equal(l.h->instances[2].flags, LEDGER_F_UNMETERED);
	memset(long_note, 'n', sizeof(long_note) - 1);
	long_note[sizeof(long_note) - 1] = '\0';
	s = ledger_record_unadmitted(&l, 1, 53, LEDGER_INST_RUNNING, long_note);
	assert_int_equal(s, 3);
	assert_int_equal(strlen(l.h->instances[3].note), LEDGER_NOTE_LEN - 1);
	assert_memory_equal(l.h->instances[3].note, long_note, LEDGER_NOTE_LEN - 1);

	/* A bad command records and counts nothing. */
	assert_int_equal(ledger_record_unadmitted(&l, -1, 54, LEDGER_INST_RUNNING, "x"), -1);
	assert_int_equal(ledger_record_unadmitted(&l, 2, 54, LEDGER_INST_REFUSED, "x"), -1);
	assert_int_equal(l.h->n_instances, 4);
	assert_int_equal(l.h->overall.agents, 3);
	assert_int_equal(l.h->overall.refused, 1);

	/* A full table: a running agent is counted and "unlisted"; a refused one only refused. */
	for (int i = 4; i < LEDGER_MAX_INSTANCES; i++)
		assert_int_equal(ledger_record_unadmitted(&l, 1, 100 + i, LEDGER_INST_RUNNING, ""),
				 i);
	assert_int_equal(l.h->overall.agents, LEDGER_MAX_INSTANCES - 1);
	assert_int_equal(l.h->unlisted, 0);
	assert_int_equal(ledger_record_unadmitted(&l, 1, 9000, LEDGER_INST_RUNNING, "full"), -1);
	assert_int_equal(l.h->unlisted, 1);
	assert_int_equal(l.h->overall.agents, LEDGER_MAX_INSTANCES);
	assert_int_equal(l.h->commands[1].agents, LEDGER_MAX_INSTANCES);
	assert_int_equal(ledger_record_unadmitted(&l, 0, 9001, LEDGER_INST_RUNNING, "full"), -1);
	assert_int_equal(l.h->unlisted, 2);
	assert_int_equal(l.h->commands[0].agents, 1);
	assert_int_equal(ledger_record_unadmitted(&l, 0, 9002, LEDGER_INST_REFUSED, "full"), -1);
	assert_int_equal(l.h->unlisted, 2);
	assert_int_equal(l.h->overall.refused, 2);
	assert_int_equal(l.h->commands[0].refused, 2);
	assert_int_equal(l.h->n_instances, LEDGER_MAX_INSTANCES);
	ledger_close(&l);
}

static void test_record_delta_and_settle(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_BLOCK, 1000);
	struct ledger l;
	int slot;

	(void)state;
	cfg.weights[METER_OUTPUT] = 5;
	cfg.weights[METER_CACHE_READ] = 0;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, TOK(400), NULL, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&l, 1, 2, TOK(1000), NULL, &slot), LEDGER_ADMITTED);
	assert_int_equal(l.h->overall.reserved, 1400);

	/* 100 + 5*20 + 30 + 0*1000 = 230 weighted. */
	struct meter_usage d = {{100, 20, 30, 1000}};
	ledger_record_delta(&l, 0, &d, 0);
	struct ledger_instance *in = &l.h->instances[0];
	assert_int_equal(in->used.n[METER_INPUT], 100);
	assert_int_equal(in->used.n[METER_OUTPUT], 20);
	assert_int_equal(in->used.n[METER_CACHE_CREATION], 30);
	assert_int_equal(in->used.n[METER_CACHE_READ], 1000);
	assert_int_equal(in->used.total, 230);
	assert_int_equal(l.h->commands[0].used.total, 230);
	assert_int_equal(l.h->commands[0].used.n[METER_CACHE_READ], 1000);
	assert_int_equal(l.h->commands[1].used.total, 0);
	assert_int_equal(l.h->overall.used.total, 230);
	assert_int_equal(l.h->overall.used.n[METER_OUTPUT], 20);
	/* Usage leaves every reservation as it was: they are the supervisor's to set. */
	assert_int_equal(in->reserved, 400);
	assert_int_equal(l.h->commands[0].reserved, 400);
	assert_int_equal(l.h->commands[1].reserved, 1000);
	assert_int_equal(l.h->overall.reserved, 1400);
	ledger_set_reserved(&l, 0, TOK(170));
	assert_int_equal(in->reserved, 170);
	assert_int_equal(l.h->commands[0].reserved, 170);
	assert_int_equal(l.h->commands[1].reserved, 1000);
	assert_int_equal(l.h->overall.reserved, 1170);

	ledger_record_delta(&l, 0, &d, 0);
	assert_int_equal(in->used.total, 460);
	assert_int_equal(in->reserved, 170);
	ledger_set_reserved(&l, 0, TOK(0));
	assert_int_equal(in->reserved, 0);
	assert_int_equal(l.h->commands[0].reserved, 0);
	assert_int_equal(l.h->overall.reserved, 1000);

	/* Settling releases the rest of a reservation. */
	struct meter_usage d2 = {{300, 0, 0, 0}};
	ledger_record_delta(&l, 1, &d2, 0);
	assert_int_equal(l.h->overall.reserved, 1000);
	ledger_set_reserved(&l, 1, TOK(700));
	assert_int_equal(l.h->overall.reserved, 700);
	ledger_settle(&l, 1, LEDGER_INST_EXITED, 3);
	assert_int_equal(l.h->instances[1].reserved, 0);
	assert_int_equal(l.h->commands[1].reserved, 0);
	assert_int_equal(l.h->overall.reserved, 0);
	assert_int_equal(l.h->instances[1].status, LEDGER_INST_EXITED);
	assert_int_equal(l.h->instances[1].exit_code, 3);
	assert_true(l.h->instances[1].end_ns >= l.h->instances[1].start_ns);
	assert_true(l.h->instances[1].end_ns != 0);
	assert_int_equal(l.h->overall.used.total, 760);
	assert_int_equal(l.h->overall.stopped, 0);
	/* An unknown exit code later keeps the recorded one. */
	ledger_settle(&l, 1, LEDGER_INST_EXITED, -1);
	assert_int_equal(l.h->instances[1].exit_code, 3);

	/* Out-of-range instances change nothing. */
	ledger_record_delta(&l, 2, &d, 0);
	ledger_record_delta(&l, -1, &d, 0);
	ledger_settle(&l, 5, LEDGER_INST_STOPPED, 0);
	ledger_settle(&l, -1, LEDGER_INST_STOPPED, 0);
	assert_int_equal(l.h->overall.used.total, 760);
	assert_int_equal(l.h->overall.stopped, 0);
	assert_int_equal(l.h->instances[2].status, LEDGER_INST_FREE);
	ledger_close(&l);
}

/* The supervisor settles a stopped agent as STOPPED when it signals it, then as EXITED when it
 * reaps it: the verdict stays, the reaped code is kept, and the stop is counted once. */
static void test_settle_counts_stop_once(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_BLOCK, 100);
	struct ledger l;
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, TOK(100), NULL, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&l, 1, 2, TOK(100), NULL, &slot), LEDGER_ADMITTED);
	struct ledger_instance *in = &l.h->instances[0];
	ledger_settle(&l, 0, LEDGER_INST_STOPPED, -1);
	assert_int_equal(in->status, LEDGER_INST_STOPPED);
	assert_int_equal(in->exit_code, -1);
	assert_int_equal(in->reserved, 0);
	assert_int_equal(l.h->overall.reserved, 100);
	assert_int_equal(l.h->overall.stopped, 1);
	assert_int_equal(l.h->commands[0].stopped, 1);
	assert_int_equal(l.h->commands[1].stopped, 0);
	ledger_settle(&l, 0, LEDGER_INST_EXITED, 128 + 15);
	assert_int_equal(in->status, LEDGER_INST_STOPPED);
	assert_int_equal(in->exit_code, 143);
	ledger_settle(&l, 0, LEDGER_INST_STOPPED, 143);
	assert_int_equal(in->status, LEDGER_INST_STOPPED);
	assert_int_equal(l.h->overall.stopped, 1);
	assert_int_equal(l.h->commands[0].stopped, 1);
	assert_int_equal(l.h->overall.reserved, 100);
	ledger_close(&l);
}

static void test_settle_keeps_refused(void **state)
{
	struct ledger_config cfg = base_config(100, LEDGER_MODE_BLOCK, 1000);
	struct ledger_refusal why;
	struct ledger l;
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, TOK(1000), &why, &slot), LEDGER_REFUSED);
	assert_int_equal(slot, 0);
	ledger_settle(&l, 0, LEDGER_INST_EXITED, 86);
	assert_int_equal(l.h->instances[0].status, LEDGER_INST_REFUSED);
	assert_int_equal(l.h->instances[0].exit_code, 86);
	ledger_settle(&l, 0, LEDGER_INST_STOPPED, 86);
	assert_int_equal(l.h->instances[0].status, LEDGER_INST_REFUSED);
	/* A refused agent was never stopped, and reserved nothing to release. */
	assert_int_equal(l.h->overall.stopped, 0);
	assert_int_equal(l.h->commands[0].stopped, 0);
	assert_int_equal(l.h->overall.reserved, 0);
	assert_int_equal(l.h->commands[0].reserved, 0);
	assert_int_equal(l.h->overall.refused, 1);
	ledger_close(&l);
}

/* Counts and reservations saturate or stop at zero: a corrupt or huge count must never wrap a
 * budget back to room, and a release must never wrap a reservation to 2^64 - 1. */
static void test_counts_never_wrap(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_BLOCK, 0);
	struct ledger_refusal why;
	struct ledger l;
	int slot;

	(void)state;
	cfg.weights[METER_OUTPUT] = 5;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 1, 1, TOK(10), &why, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&l, 1, 2, TOK(0), &why, &slot), LEDGER_ADMITTED);
	struct meter_usage d = {{UINT64_MAX - 5, 0, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	struct ledger_instance *in = &l.h->instances[0];
	assert_true(in->used.n[METER_INPUT] == UINT64_MAX - 5);
	assert_true(in->used.total == UINT64_MAX - 5);
	assert_int_equal(in->reserved, 10);
	assert_int_equal(l.h->overall.reserved, 10);
	d = (struct meter_usage){{10, 0, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	/* A wrap would leave 4. */
	assert_true(in->used.n[METER_INPUT] == UINT64_MAX);
	assert_true(in->used.total == UINT64_MAX);
	assert_true(l.h->overall.used.total == UINT64_MAX);
	assert_true(l.h->commands[1].used.total == UINT64_MAX);
	assert_true(ledger_over_limit(&l, 0, &why));
	assert_true(why.used == UINT64_MAX);
	/* The weighted total saturates too: 5 * 2^62 wrapped would be 2^62. */
	d = (struct meter_usage){{0, UINT64_C(1) << 62, 0, 0}};
	ledger_record_delta(&l, 1, &d, 0);
	assert_true(l.h->instances[1].used.n[METER_OUTPUT] == UINT64_C(1) << 62);
	assert_true(l.h->instances[1].used.total == UINT64_MAX);
	assert_true(l.h->overall.used.total == UINT64_MAX);
	ledger_close(&l);

	/* Reservations: setting one agent's moves only its own; settling twice releases once. */
	cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_BLOCK, 0);
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, TOK(100), &why, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&l, 0, 2, TOK(100), &why, &slot), LEDGER_ADMITTED);
	d = (struct meter_usage){{500, 0, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	ledger_set_reserved(&l, 0, TOK(0));
	assert_int_equal(l.h->instances[0].reserved, 0);
	assert_int_equal(l.h->commands[0].reserved, 100);
	assert_int_equal(l.h->overall.reserved, 100);
	ledger_settle(&l, 0, LEDGER_INST_EXITED, 0);
	ledger_settle(&l, 0, LEDGER_INST_EXITED, 0);
	assert_int_equal(l.h->overall.reserved, 100);
	ledger_settle(&l, 1, LEDGER_INST_EXITED, 0);
	assert_int_equal(l.h->overall.reserved, 0);
	assert_int_equal(l.h->commands[0].reserved, 0);
	ledger_settle(&l, 1, LEDGER_INST_EXITED, 0);
	assert_int_equal(l.h->overall.reserved, 0);
	assert_int_equal(l.h->instances[1].reserved, 0);
	ledger_close(&l);

	/* used + reserved + estimate saturates: a sum that would wrap past zero must not fit. */
	cfg = base_config(UINT64_MAX - 1, LEDGER_MODE_BLOCK, 0);
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 1, 1, TOK(UINT64_MAX - 1), &why, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&l, 1, 2, TOK(2), &why, &slot), LEDGER_REFUSED);
	assert_true(why.is_overall);
	assert_true(why.reserved == UINT64_MAX - 1);
	assert_int_equal(why.estimate, 2);
	assert_int_equal(slot, 1);
	/* A reservation saturates rather than wrapping to a small number. */
	cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_WARN, 0);
	struct ledger w;
	create_or_fail(&w, &cfg);
	assert_int_equal(ledger_admit(&w, 1, 1, TOK(UINT64_MAX - 1), &why, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&w, 1, 2, TOK(10), &why, &slot), LEDGER_ADMITTED);
	assert_true(w.h->overall.reserved == UINT64_MAX);
	assert_true(w.h->commands[1].reserved == UINT64_MAX);
	ledger_close(&w);
	ledger_close(&l);
}

static void test_over_limit_boundary(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_BLOCK, 0);
	struct ledger_refusal why;
	struct meter_usage d;
	struct ledger l;
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, TOK(7), &why, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&l, 1, 2, TOK(0), &why, &slot), LEDGER_ADMITTED);

	/* Command /test: limit 500. Exactly 500 is not over, 501 is. */
	d = (struct meter_usage){{500, 0, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	ledger_set_reserved(&l, 0, TOK(0));
	assert_false(ledger_over_limit(&l, 0, &why));
	d = (struct meter_usage){{0, 1, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	memset(&why, 0, sizeof(why));
	assert_true(ledger_over_limit(&l, 0, &why));
	assert_false(why.is_overall);
	assert_string_equal(why.name, "/test");
	assert_int_equal(why.limit, 500);
	assert_int_equal(why.used, 501);
	assert_int_equal(why.reserved, 0);
	assert_int_equal(why.estimate, 7);
	/* why may be NULL. */
	assert_true(ledger_over_limit(&l, 0, NULL));
	/* /review has no limit of its own and overall (501 of 1000) is not crossed. */
	assert_false(ledger_over_limit(&l, 1, &why));

	/* Overall: exactly 1000 is not over, 1001 is, for every instance. */
	d = (struct meter_usage){{0, 0, 499, 0}};
	ledger_record_delta(&l, 1, &d, 0);
	assert_int_equal(l.h->overall.used.total, 1000);
	assert_false(ledger_over_limit(&l, 1, &why));
	d = (struct meter_usage){{0, 0, 0, 1}};
	ledger_record_delta(&l, 1, &d, 0);
	assert_true(ledger_over_limit(&l, 1, &why));
	assert_true(why.is_overall);
	assert_string_equal(why.name, "");
	assert_int_equal(why.limit, 1000);
	assert_int_equal(why.used, 1001);
	assert_true(ledger_over_limit(&l, 0, &why));
	assert_true(why.is_overall);
	/* No instance: the overall budget alone. */
	assert_true(ledger_over_limit(&l, -1, &why));
	assert_true(why.is_overall);
	assert_int_equal(why.estimate, 0);
	ledger_close(&l);

	cfg = base_config(1000, LEDGER_MODE_BLOCK, 0);
	create_or_fail(&l, &cfg);
	assert_false(ledger_over_limit(&l, -1, &why));
	assert_false(ledger_over_limit(&l, 3, &why));
	ledger_close(&l);
}

static void test_no_limit_never_over(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_BLOCK, 0);
	struct ledger_refusal why;
	struct ledger l;
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 1, 1, TOK(1000000), &why, &slot), LEDGER_ADMITTED);
	struct meter_usage d = {{1000000, 1000000, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	assert_false(ledger_over_limit(&l, 0, &why));
	assert_int_equal(ledger_admit(&l, 1, 2, TOK(UINT64_MAX / 2), &why, &slot), LEDGER_ADMITTED);
	assert_int_equal(slot, 1);
	ledger_close(&l);
}

static void test_rebind(void **state)
{
	struct ledger_config cfg = base_config(10000, LEDGER_MODE_BLOCK, 0);
	struct ledger_refusal why;
	struct ledger l;
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	int catch_all = ledger_command_index(&l, LEDGER_CATCH_ALL, true);
	assert_int_equal(catch_all, 2);
	/* A prompt on stdin: starts under (prompt), bound later. */
	assert_int_equal(ledger_admit(&l, catch_all, 1, TOK(300), &why, &slot), LEDGER_ADMITTED);
	ledger_mark(&l, 0, LEDGER_F_UNBOUND | LEDGER_F_NESTED, NULL);
	struct meter_usage d = {{100, 20, 30, 50}};
	ledger_record_delta(&l, 0, &d, 0);
	/* As the supervisor sets it: what is left of the estimate. */
	ledger_set_reserved(&l, 0, TOK(100));
	struct ledger_instance *in = &l.h->instances[0];
	assert_int_equal(in->reserved, 100);

	assert_true(ledger_rebind(&l, 0, 1));
	const struct ledger_budget *rv = &l.h->commands[1], *pr = &l.h->commands[2];
	assert_int_equal(in->command, 1);
	assert_int_equal(rv->used.n[METER_INPUT], 100);
	assert_int_equal(rv->used.n[METER_OUTPUT], 20);
	assert_int_equal(rv->used.n[METER_CACHE_CREATION], 30);
	assert_int_equal(rv->used.n[METER_CACHE_READ], 50);
	assert_int_equal(rv->used.total, 200);
	assert_int_equal(rv->reserved, 100);
	assert_int_equal(rv->agents, 1);
	for (int f = 0; f < METER_NFIELDS; f++)
		assert_int_equal(pr->used.n[f], 0);
	assert_int_equal(pr->used.total, 0);
	assert_int_equal(pr->reserved, 0);
	assert_int_equal(pr->agents, 0);
	/* The overall counts do not move. */
	assert_int_equal(l.h->overall.used.total, 200);
	assert_int_equal(l.h->overall.reserved, 100);
	assert_int_equal(l.h->overall.agents, 1);
	/* UNBOUND cleared, other flags kept, no budget had to be crossed. */
	assert_int_equal(in->flags, LEDGER_F_NESTED);
	assert_false(ledger_over_limit(&l, 0, &why));
	/* Later usage goes to the new command. */
	d = (struct meter_usage){{10, 0, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	ledger_set_reserved(&l, 0, TOK(90));
	assert_int_equal(rv->used.total, 210);
	assert_int_equal(pr->used.total, 0);
	assert_int_equal(rv->reserved, 90);
	assert_int_equal(pr->reserved, 0);

	/* Nothing to move: same command, bad instance, bad command. */
	assert_false(ledger_rebind(&l, 0, 1));
	assert_false(ledger_rebind(&l, 1, 0));
	assert_false(ledger_rebind(&l, -1, 0));
	assert_false(ledger_rebind(&l, 0, 3));
	assert_false(ledger_rebind(&l, 0, -1));
	assert_int_equal(in->command, 1);
	assert_int_equal(rv->used.total, 210);

	/* /test (limit 500) already holds 200 of another agent. Moving 210 used + 90 reserved
	 * into it makes exactly 500: launch admission would have let it in. */
	assert_int_equal(ledger_admit(&l, 0, 2, TOK(0), &why, &slot), LEDGER_ADMITTED);
	d = (struct meter_usage){{200, 0, 0, 0}};
	ledger_record_delta(&l, 1, &d, 0);
	assert_true(ledger_rebind(&l, 0, 0));
	assert_int_equal(l.h->commands[0].used.total, 410);
	assert_int_equal(l.h->commands[0].reserved, 90);
	assert_int_equal(l.h->commands[0].agents, 2);
	assert_int_equal(rv->agents, 0);
	assert_int_equal(in->flags & LEDGER_F_OVER_AT_BIND, 0);
	assert_false(ledger_over_limit(&l, 0, &why));

	/* One more token of estimate does not fit: bound over its budget, stopped in block
	 * mode although /test's usage (410 of 500) is not over. */
	assert_int_equal(ledger_admit(&l, catch_all, 3, TOK(1), &why, &slot), LEDGER_ADMITTED);
	assert_int_equal(slot, 2);
	ledger_mark(&l, 2, LEDGER_F_UNBOUND, NULL);
	assert_true(ledger_rebind(&l, 2, 0));
	assert_int_equal(l.h->instances[2].flags, LEDGER_F_OVER_AT_BIND);
	assert_int_equal(l.h->commands[0].reserved, 91);
	memset(&why, 0, sizeof(why));
	assert_true(ledger_over_limit(&l, 2, &why));
	assert_false(why.is_overall);
	assert_string_equal(why.name, "/test");
	assert_int_equal(why.limit, 500);
	assert_int_equal(why.used, 410);
	assert_int_equal(why.reserved, 91);
	assert_int_equal(why.estimate, 1);
	/* The others are not affected by its flag. */
	assert_false(ledger_over_limit(&l, 0, &why));
	assert_false(ledger_over_limit(&l, 1, &why));
	ledger_close(&l);
}

/* ledger_set_reserved moves the instance's, its command's and the overall reservation by the
 * difference, up or down, and never below 0. */
static void test_set_reserved(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_BLOCK, 0);
	struct ledger l;
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, TOK(100), NULL, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&l, 1, 2, TOK(50), NULL, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&l, 0, 3, TOK(30), NULL, &slot), LEDGER_ADMITTED);
	struct ledger_instance *a = &l.h->instances[0], *b = &l.h->instances[1],
			       *c = &l.h->instances[2];
	assert_int_equal(l.h->overall.reserved, 180);
	assert_int_equal(l.h->commands[0].reserved, 130);
	assert_int_equal(l.h->commands[1].reserved, 50);

	/* Up by 150. */
	ledger_set_reserved(&l, 0, TOK(250));
	assert_int_equal(a->reserved, 250);
	assert_int_equal(l.h->commands[0].reserved, 280);
	assert_int_equal(l.h->overall.reserved, 330);
	assert_int_equal(l.h->commands[1].reserved, 50);
	assert_int_equal(b->reserved, 50);
	assert_int_equal(c->reserved, 30);
	/* The same value: nothing moves. */
	ledger_set_reserved(&l, 0, TOK(250));
	assert_int_equal(a->reserved, 250);
	assert_int_equal(l.h->commands[0].reserved, 280);
	assert_int_equal(l.h->overall.reserved, 330);
	/* Down by 210, then to 0. */
	ledger_set_reserved(&l, 0, TOK(40));
	assert_int_equal(a->reserved, 40);
	assert_int_equal(l.h->commands[0].reserved, 70);
	assert_int_equal(l.h->overall.reserved, 120);
	ledger_set_reserved(&l, 0, TOK(0));
	assert_int_equal(a->reserved, 0);
	assert_int_equal(l.h->commands[0].reserved, 30);
	assert_int_equal(l.h->overall.reserved, 80);
	/* Another command's instance moves its own command only. */
	ledger_set_reserved(&l, 1, TOK(75));
	assert_int_equal(b->reserved, 75);
	assert_int_equal(l.h->commands[1].reserved, 75);
	assert_int_equal(l.h->commands[0].reserved, 30);
	assert_int_equal(l.h->overall.reserved, 105);
	/* Only reservations: usage, agents and the estimate stay. */
	assert_int_equal(l.h->overall.used.total, 0);
	assert_int_equal(l.h->overall.agents, 3);
	assert_int_equal(a->estimate, 100);

	/* A budget holding less than the difference (never the case unless the counts are
	 * damaged) stops at 0 rather than wrapping to 2^64 - 1. */
	l.h->commands[0].reserved = 10;
	ledger_set_reserved(&l, 2, TOK(0));
	assert_int_equal(c->reserved, 0);
	assert_int_equal(l.h->commands[0].reserved, 0);
	assert_int_equal(l.h->overall.reserved, 75);
	l.h->overall.reserved = 5;
	ledger_set_reserved(&l, 1, TOK(0));
	assert_int_equal(b->reserved, 0);
	assert_int_equal(l.h->overall.reserved, 0);
	assert_int_equal(l.h->commands[1].reserved, 0);

	/* Out of range: nothing. */
	ledger_set_reserved(&l, 1, TOK(10));
	assert_int_equal(l.h->overall.reserved, 10);
	ledger_set_reserved(&l, 3, TOK(500));
	ledger_set_reserved(&l, -1, TOK(500));
	assert_int_equal(l.h->overall.reserved, 10);
	assert_int_equal(l.h->commands[0].reserved, 0);
	assert_int_equal(l.h->commands[1].reserved, 10);
	assert_int_equal(l.h->instances[3].reserved, 0);

	/* Up saturates rather than wrapping to a small number. */
	ledger_set_reserved(&l, 0, TOK(UINT64_MAX));
	assert_true(a->reserved == UINT64_MAX);
	assert_true(l.h->overall.reserved == UINT64_MAX);
	assert_true(l.h->commands[0].reserved == UINT64_MAX);
	assert_int_equal(l.h->commands[1].reserved, 10);
	ledger_close(&l);
}

/*
 * Per-request admission: a request fits when used + (the budget's reservation without this
 * agent's) + the agent's new reservation <= limit, for the overall and the command budget.
 * overall 1000, /test 500, /review unbudgeted.
 */
static void test_admit_request(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_BLOCK, 0);
	struct ledger_refusal why;
	struct ledger l;
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, TOK(100), NULL, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&l, 1, 2, TOK(200), NULL, &slot), LEDGER_ADMITTED);
	struct meter_usage d = {{150, 0, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	d = (struct meter_usage){{0, 100, 0, 0}};
	ledger_record_delta(&l, 1, &d, 0);
	struct ledger_instance *t = &l.h->instances[0], *r = &l.h->instances[1];
	/* Overall: used 250, reserved 300; /test: used 150, reserved 100. */

	/* /test's agent: its own 100 is replaced, not added to. The command budget allows
	 * 150 + 350 = 500 exactly; the overall one 250 + 200 + 350 = 800. */
	assert_true(ledger_admit_request(&l, 0, TOK(350), TOK(350), &why));
	assert_int_equal(t->reserved, 350);
	assert_int_equal(l.h->commands[0].reserved, 350);
	assert_int_equal(l.h->overall.reserved, 550);
	assert_int_equal(t->refused_prediction, 0);

	/* One more token does not fit /test: named with what the agent's other requests hold. */
	memset(&why, 0x5a, sizeof(why));
	assert_false(ledger_admit_request(&l, 0, TOK(351), TOK(1), &why));
	assert_false(why.is_overall);
	assert_string_equal(why.name, "/test");
	assert_int_equal(why.limit, 500);
	assert_int_equal(why.used, 150);
	assert_int_equal(why.reserved, 350);
	assert_int_equal(why.estimate, 1);
	assert_int_equal(t->refused_prediction, 1);
	/* Nothing else changed. */
	assert_int_equal(t->reserved, 350);
	assert_int_equal(l.h->commands[0].reserved, 350);
	assert_int_equal(l.h->overall.reserved, 550);
	assert_int_equal(l.h->overall.refused, 0);
	assert_int_equal(l.h->commands[0].refused, 0);
	assert_int_equal(t->status, LEDGER_INST_RUNNING);

	/* /review's agent, overall only: 250 + (550 - 200) + 400 = 1000 fits exactly. */
	assert_true(ledger_admit_request(&l, 1, TOK(400), TOK(150), &why));
	assert_int_equal(r->reserved, 400);
	assert_int_equal(l.h->commands[1].reserved, 400);
	assert_int_equal(l.h->overall.reserved, 750);
	memset(&why, 0x5a, sizeof(why));
	assert_false(ledger_admit_request(&l, 1, TOK(401), TOK(101), &why));
	assert_true(why.is_overall);
	assert_string_equal(why.name, "");
	assert_int_equal(why.limit, 1000);
	assert_int_equal(why.used, 250);
	/* Others' 350 + this agent's other requests in flight (401 - 101). */
	assert_int_equal(why.reserved, 650);
	assert_int_equal(why.estimate, 101);
	assert_int_equal(r->refused_prediction, 101);
	assert_int_equal(r->reserved, 400);
	assert_int_equal(l.h->overall.reserved, 750);
	assert_int_equal(t->refused_prediction, 1);

	/* Both refuse: the overall budget is named. /test: 150 + 1000 > 500; overall:
	 * 250 + 400 + 1000 > 1000. */
	memset(&why, 0x5a, sizeof(why));
	assert_false(ledger_admit_request(&l, 0, TOK(1000), TOK(600), &why));
	assert_true(why.is_overall);
	assert_string_equal(why.name, "");
	assert_int_equal(why.used, 250);
	assert_int_equal(why.reserved, 400 + 400);
	assert_int_equal(why.estimate, 600);
	assert_int_equal(t->refused_prediction, 600);
	assert_int_equal(t->reserved, 350);

	/* A smaller reservation is admitted and lowers the budgets. */
	assert_true(ledger_admit_request(&l, 0, TOK(100), TOK(100), &why));
	assert_int_equal(t->reserved, 100);
	assert_int_equal(l.h->commands[0].reserved, 100);
	assert_int_equal(l.h->overall.reserved, 500);
	/* An admitted request leaves the last refused prediction for the report. */
	assert_int_equal(t->refused_prediction, 600);

	/* why may be NULL; a bad instance is refused and records nothing. */
	assert_false(ledger_admit_request(&l, 0, TOK(10000), TOK(5), NULL));
	assert_int_equal(t->refused_prediction, 5);
	assert_false(ledger_admit_request(&l, 2, TOK(0), TOK(0), &why));
	assert_false(ledger_admit_request(&l, -1, TOK(0), TOK(0), &why));
	assert_int_equal(l.h->instances[2].refused_prediction, 0);
	assert_int_equal(l.h->instances[2].reserved, 0);
	assert_int_equal(l.h->overall.reserved, 500);
	ledger_close(&l);
}

/* A used-up budget refuses every request, even one predicted to cost nothing. */
static void test_admit_request_used_up(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_BLOCK, 0);
	struct ledger_refusal why;
	struct meter_usage d;
	struct ledger l;
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 1, 1, TOK(0), NULL, &slot), LEDGER_ADMITTED);
	d = (struct meter_usage){{999, 0, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	/* 999 used: 1 fits exactly, 2 does not. */
	assert_false(ledger_admit_request(&l, 0, TOK(2), TOK(2), &why));
	assert_true(ledger_admit_request(&l, 0, TOK(1), TOK(1), &why));
	assert_true(ledger_admit_request(&l, 0, TOK(0), TOK(0), &why));
	d = (struct meter_usage){{1, 0, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	assert_int_equal(l.h->overall.used.total, 1000);
	memset(&why, 0x5a, sizeof(why));
	assert_false(ledger_admit_request(&l, 0, TOK(0), TOK(0), &why));
	assert_true(why.is_overall);
	assert_int_equal(why.limit, 1000);
	assert_int_equal(why.used, 1000);
	assert_int_equal(why.reserved, 0);
	assert_int_equal(why.estimate, 0);
	assert_false(ledger_request_fits(&l, 0, TOK(0), TOK(0), NULL));
	ledger_close(&l);

	/* A used-up command budget, the overall one far from it. */
	cfg = base_config(100000, LEDGER_MODE_BLOCK, 0);
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, TOK(0), NULL, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&l, 1, 2, TOK(0), NULL, &slot), LEDGER_ADMITTED);
	d = (struct meter_usage){{500, 0, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	memset(&why, 0x5a, sizeof(why));
	assert_false(ledger_admit_request(&l, 0, TOK(0), TOK(0), &why));
	assert_false(why.is_overall);
	assert_string_equal(why.name, "/test");
	assert_int_equal(why.limit, 500);
	assert_int_equal(why.used, 500);
	assert_int_equal(why.reserved, 0);
	assert_int_equal(why.estimate, 0);
	/* /review's agent is not held to /test's budget. */
	assert_true(ledger_admit_request(&l, 1, TOK(5000), TOK(5000), &why));
	ledger_close(&l);

	/* A zero budget (warn mode lets the agent start at all). */
	cfg = base_config(0, LEDGER_MODE_WARN, 0);
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 1, 1, TOK(0), NULL, &slot), LEDGER_ADMITTED_OVER);
	assert_false(ledger_admit_request(&l, 0, TOK(0), TOK(0), &why));
	assert_true(why.is_overall);
	assert_int_equal(why.limit, 0);
	ledger_close(&l);
}

/* ledger_request_fits asks the same question as ledger_admit_request and changes nothing. */
static void test_request_fits_no_side_effects(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_BLOCK, 0);
	struct ledger_refusal why, why2;
	struct ledger l;
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, TOK(100), NULL, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&l, 1, 2, TOK(300), NULL, &slot), LEDGER_ADMITTED);
	struct meter_usage d = {{200, 0, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	ledger_note_refused(&l, 0, TOK(77));
	struct ledger_header *before = malloc(HS);
	assert_non_null(before);
	memcpy(before, l.h, HS);

	/* /test: 200 + 300 = 500 fits; 301 does not. */
	assert_true(ledger_request_fits(&l, 0, TOK(300), TOK(300), &why));
	assert_memory_equal(l.h, before, HS);
	memset(&why, 0x5a, sizeof(why));
	assert_false(ledger_request_fits(&l, 0, TOK(301), TOK(201), &why));
	assert_memory_equal(l.h, before, HS);
	assert_false(why.is_overall);
	assert_string_equal(why.name, "/test");
	assert_int_equal(why.limit, 500);
	assert_int_equal(why.used, 200);
	assert_int_equal(why.reserved, 100);
	assert_int_equal(why.estimate, 201);
	/* /review's agent, overall only: 200 + 100 + 700 = 1000 fits; 701 does not. */
	assert_true(ledger_request_fits(&l, 1, TOK(700), TOK(200), &why));
	assert_false(ledger_request_fits(&l, 1, TOK(701), TOK(200), &why));
	assert_true(why.is_overall);
	assert_int_equal(why.used, 200);
	assert_int_equal(why.reserved, 100 + 501);
	assert_int_equal(why.estimate, 200);
	assert_false(ledger_request_fits(&l, 1, TOK(701), TOK(200), NULL));
	/* A prediction above the whole reservation is taken as all of it: the agent's other
	 * requests hold 0, not 2^64 - 100. */
	assert_false(ledger_request_fits(&l, 1, TOK(800), TOK(900), &why));
	assert_true(why.is_overall);
	assert_int_equal(why.reserved, 100);
	assert_int_equal(why.estimate, 800);
	assert_false(ledger_request_fits(&l, 2, TOK(0), TOK(0), &why));
	assert_false(ledger_request_fits(&l, -1, TOK(0), TOK(0), &why));
	assert_memory_equal(l.h, before, HS);

	/* The same answer, and the same refusal, as admission gives. */
	memset(&why2, 0x5a, sizeof(why2));
	assert_false(ledger_admit_request(&l, 0, TOK(301), TOK(201), &why2));
	memset(&why, 0x5a, sizeof(why));
	assert_false(ledger_request_fits(&l, 0, TOK(301), TOK(201), &why));
	assert_memory_equal(&why, &why2, sizeof(why));
	free(before);
	ledger_close(&l);
}

/* A budget's overshoot is the largest amount its usage ever went over its limit. */
static void test_overshoot(void **state)
{
	/* Warn mode: agents are admitted past a budget, which block mode would refuse. */
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_WARN, 0);
	struct meter_usage d;
	struct ledger l;
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	int catch_all = ledger_command_index(&l, LEDGER_CATCH_ALL, true);
	assert_int_equal(ledger_admit(&l, 0, 1, TOK(0), NULL, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&l, 1, 2, TOK(0), NULL, &slot), LEDGER_ADMITTED);
	const struct ledger_budget *ov = &l.h->overall, *t = &l.h->commands[0],
				   *r = &l.h->commands[1];

	/* Within, then exactly at /test's 500: none. */
	d = (struct meter_usage){{400, 0, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	assert_int_equal(t->overshoot, 0);
	d = (struct meter_usage){{0, 100, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	assert_int_equal(t->used.total, 500);
	assert_int_equal(t->overshoot, 0);
	assert_int_equal(ov->overshoot, 0);
	/* 30 over /test, overall (530 of 1000) within. */
	d = (struct meter_usage){{0, 0, 30, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	assert_int_equal(t->overshoot, 30);
	assert_int_equal(ov->overshoot, 0);
	/* Overall exactly at 1000, then 20 over; /review has no limit and never overshoots;
	 * /test's stays. */
	d = (struct meter_usage){{470, 0, 0, 0}};
	ledger_record_delta(&l, 1, &d, 0);
	assert_int_equal(ov->used.total, 1000);
	assert_int_equal(ov->overshoot, 0);
	d = (struct meter_usage){{0, 0, 0, 20}};
	ledger_record_delta(&l, 1, &d, 0);
	assert_int_equal(ov->overshoot, 20);
	assert_int_equal(r->overshoot, 0);
	assert_int_equal(t->overshoot, 30);
	/* Weighted like the total it is measured on. */
	d = (struct meter_usage){{5, 0, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	assert_int_equal(t->overshoot, 35);
	assert_int_equal(ov->overshoot, 25);

	/* The largest excess stays when usage moves away (a rebind), and later usage below it
	 * does not lower it. */
	assert_true(ledger_rebind(&l, 0, catch_all));
	assert_int_equal(t->used.total, 0);
	assert_int_equal(t->overshoot, 35);
	assert_int_equal(l.h->commands[catch_all].overshoot, 0);
	assert_int_equal(ledger_admit(&l, 0, 3, TOK(0), NULL, &slot), LEDGER_ADMITTED_OVER);
	assert_int_equal(slot, 2);
	d = (struct meter_usage){{510, 0, 0, 0}};
	ledger_record_delta(&l, slot, &d, 0);
	assert_int_equal(t->overshoot, 35);
	assert_int_equal(ov->overshoot, 535);
	d = (struct meter_usage){{40, 0, 0, 0}};
	ledger_record_delta(&l, slot, &d, 0);
	assert_int_equal(t->overshoot, 50);

	/* Usage rebound into a budget takes it over as well. */
	assert_true(ledger_rebind(&l, 1, 0));
	assert_int_equal(t->used.total, 550 + 490);
	assert_int_equal(t->overshoot, 540);
	ledger_close(&l);

	/* No overall limit: never. */
	cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_WARN, 0);
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 1, 1, TOK(0), NULL, &slot), LEDGER_ADMITTED);
	d = (struct meter_usage){{UINT64_MAX / 2, 0, 0, 0}};
	ledger_record_delta(&l, 0, &d, 0);
	assert_int_equal(l.h->overall.overshoot, 0);
	assert_int_equal(l.h->commands[1].overshoot, 0);
	ledger_close(&l);
}

static void test_note_requests_and_refused(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_BLOCK, 0);
	struct ledger l;
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, TOK(0), NULL, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&l, 1, 2, TOK(0), NULL, &slot), LEDGER_ADMITTED);
	struct ledger_instance *in = &l.h->instances[0];
	assert_int_equal(in->requests, 0);
	assert_int_equal(in->max_under, 0);
	assert_int_equal(in->refused_prediction, 0);
	ledger_note_requests(&l, 0, 3, TOK(1234));
	assert_int_equal(in->requests, 3);
	assert_int_equal(in->max_under, 1234);
	/* Stored as given (the supervisor's book holds the figures), not accumulated. */
	ledger_note_requests(&l, 0, 5, TOK(17));
	assert_int_equal(in->requests, 5);
	assert_int_equal(in->max_under, 17);
	ledger_note_refused(&l, 0, TOK(4321));
	assert_int_equal(in->refused_prediction, 4321);
	ledger_note_refused(&l, 0, TOK(99));
	assert_int_equal(in->refused_prediction, 99);
	assert_int_equal(in->requests, 5);
	/* Neither touches usage, reservations or another instance. */
	assert_int_equal(in->reserved, 0);
	assert_int_equal(l.h->overall.reserved, 0);
	assert_int_equal(l.h->instances[1].requests, 0);
	assert_int_equal(l.h->instances[1].refused_prediction, 0);
	assert_int_equal(l.h->instances[1].max_under, 0);
	/* Out of range: nothing. */
	ledger_note_requests(&l, 2, 9, TOK(9));
	ledger_note_requests(&l, -1, 9, TOK(9));
	ledger_note_refused(&l, 2, TOK(9));
	ledger_note_refused(&l, -1, TOK(9));
	assert_int_equal(l.h->instances[2].requests, 0);
	assert_int_equal(l.h->instances[2].max_under, 0);
	assert_int_equal(l.h->instances[2].refused_prediction, 0);
	assert_int_equal(l.h->n_instances, 2);
	ledger_close(&l);
}

static void test_mark_and_exit_code(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_BLOCK, 0);
	char long_note[2 * LEDGER_NOTE_LEN];
	struct ledger l;
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, TOK(0), NULL, &slot), LEDGER_ADMITTED);
	struct ledger_instance *in = &l.h->instances[0];
	ledger_mark(&l, 0, LEDGER_F_NESTED, NULL);
	assert_int_equal(in->flags, LEDGER_F_NESTED);
	assert_string_equal(in->note, "");
	/* Flags accumulate; a note replaces the last; NULL keeps it. */
	ledger_mark(&l, 0, LEDGER_F_ADOPTED, "found by the supervisor");
	assert_int_equal(in->flags, LEDGER_F_NESTED | LEDGER_F_ADOPTED);
	assert_string_equal(in->note, "found by the supervisor");
	ledger_mark(&l, 0, 0, "stopped: over budget");
	assert_int_equal(in->flags, LEDGER_F_NESTED | LEDGER_F_ADOPTED);
	assert_string_equal(in->note, "stopped: over budget");
	ledger_mark(&l, 0, LEDGER_F_UNMETERED, NULL);
	assert_int_equal(in->flags, LEDGER_F_NESTED | LEDGER_F_ADOPTED | LEDGER_F_UNMETERED);
	assert_string_equal(in->note, "stopped: over budget");
	memset(long_note, 'q', sizeof(long_note) - 1);
	long_note[sizeof(long_note) - 1] = '\0';
	ledger_mark(&l, 0, 0, long_note);
	assert_int_equal(strlen(in->note), LEDGER_NOTE_LEN - 1);
	/* Out of range: nothing. */
	ledger_mark(&l, 1, LEDGER_F_NESTED, "x");
	ledger_mark(&l, -1, LEDGER_F_NESTED, "x");
	assert_int_equal(l.h->instances[1].flags, 0);
	assert_string_equal(l.h->instances[1].note, "");

	/* The code the agent reports itself survives a settle that does not know it. */
	ledger_set_exit_code(&l, 0, 86);
	assert_int_equal(in->exit_code, 86);
	assert_int_equal(in->status, LEDGER_INST_RUNNING);
	ledger_settle(&l, 0, LEDGER_INST_EXITED, -1);
	assert_int_equal(in->exit_code, 86);
	assert_int_equal(in->status, LEDGER_INST_EXITED);
	/* A reaped code replaces it. */
	ledger_settle(&l, 0, LEDGER_INST_EXITED, 137);
	assert_int_equal(in->exit_code, 137);
	ledger_set_exit_code(&l, 1, 5);
	ledger_set_exit_code(&l, -1, 5);
	assert_int_equal(l.h->instances[1].exit_code, 0);
	ledger_close(&l);
}

static void test_publish_meter(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_WARN, 0);
	struct meter_core *core = calloc(1, sizeof(*core));
	struct ledger l;
	int slot;

	(void)state;
	assert_non_null(core);
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, TOK(0), NULL, &slot), LEDGER_ADMITTED);
	core->cost_micro_usd = 36000;
	core->results = 2;
	for (int k = 0; k < METER_NANOMALY; k++)
		core->anomalies[k] = (uint64_t)(k + 1) * 11;
	snprintf(core->result_subtype, sizeof(core->result_subtype), "success");
	/* Usage is not published here: that is ledger_record_delta's. */
	core->total.n[METER_INPUT] = 999;
	ledger_publish_meter(&l, 0, core);
	struct ledger_instance *in = &l.h->instances[0];
	assert_int_equal(in->cost_micro_usd, 36000);
	assert_int_equal(in->results, 2);
	for (int k = 0; k < METER_NANOMALY; k++)
		assert_int_equal(in->anomalies[k], (k + 1) * 11);
	assert_string_equal(in->result_subtype, "success");
	assert_int_equal(in->used.n[METER_INPUT], 0);
	assert_int_equal(in->used.total, 0);

	/* A later state replaces the earlier one, a shorter subtype included. */
	core->cost_micro_usd = 1500000;
	core->results = 3;
	core->anomalies[METER_ANOM_GAP] = 0;
	snprintf(core->result_subtype, sizeof(core->result_subtype), "error_max_turns");
	ledger_publish_meter(&l, 0, core);
	assert_int_equal(in->cost_micro_usd, 1500000);
	assert_int_equal(in->results, 3);
	assert_int_equal(in->anomalies[METER_ANOM_GAP], 0);
	assert_int_equal(in->anomalies[METER_ANOM_NOT_JSON], 11);
	assert_string_equal(in->result_subtype, "error_max_turns");
	snprintf(core->result_subtype, sizeof(core->result_subtype), "ok");
	ledger_publish_meter(&l, 0, core);
	assert_string_equal(in->result_subtype, "ok");

	/* Out of range: nothing. */
	ledger_publish_meter(&l, 1, core);
	ledger_publish_meter(&l, -1, core);
	assert_int_equal(l.h->instances[1].cost_micro_usd, 0);
	assert_int_equal(l.h->instances[1].results, 0);
	assert_string_equal(l.h->instances[1].result_subtype, "");
	ledger_close(&l);
	free(core);
}

static void test_describe_refusal(void **state)
{
	struct ledger_refusal why = {
		.is_overall = true, .limit = 10000, .used = 12700, .reserved = 0, .estimate = 1000};
	char buf[256], small[16];

	(void)state;
	ledger_describe_refusal(&why, buf, sizeof(buf));
	assert_string_equal(buf, "overall budget: used 12.7K + reserved 0 + estimate 1.0K > "
				 "limit 10.0K");
	why.is_overall = false;
	snprintf(why.name, sizeof(why.name), "/test");
	ledger_describe_refusal(&why, buf, sizeof(buf));
	assert_string_equal(buf, "command budget /test: used 12.7K + reserved 0 + estimate 1.0K "
				 "> limit 10.0K");
	why = (struct ledger_refusal){
		.limit = 2500000, .used = 999, .reserved = 1500000, .estimate = 1000001};
	snprintf(why.name, sizeof(why.name), LEDGER_CATCH_ALL);
	ledger_describe_refusal(&why, buf, sizeof(buf));
	assert_string_equal(buf, "command budget (prompt): used 999 + reserved 1.5M + estimate "
				 "1.0M > limit 2.5M");
	/* Cut to the buffer, NUL-terminated. */
	ledger_describe_refusal(&why, small, sizeof(small));
	assert_string_equal(small, "command budget ");

	/* The refusal admission produces reads the same. */
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_BLOCK, 0);
	struct ledger l;
	int slot;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, TOK(400), &why, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&l, 0, 2, TOK(101), &why, &slot), LEDGER_REFUSED);
	ledger_describe_refusal(&why, buf, sizeof(buf));
	assert_string_equal(buf, "command budget /test: used 0 + reserved 400 + estimate 101 > "
				 "limit 500");
	ledger_close(&l);
}

/* ---- ledger_map_readonly on memfds built by hand ---- */

/* A header that ledger_map_readonly accepts, for the tests to damage one field at a time. */
static struct ledger_header *good_header(void)
{
	struct ledger_header *h = calloc(1, HS);

	assert_non_null(h);
	h->magic = LEDGER_MAGIC;
	h->version = LEDGER_VERSION;
	h->header_size = (uint32_t)HS;
	h->size = HS;
	h->creator_pid = getpid();
	h->uid = (uint32_t)geteuid();
	h->mode = LEDGER_MODE_BLOCK;
	h->estimate = 1000;
	h->overall.limit = 4242;
	return h;
}

/* A memfd of size bytes holding h (as much of it as fits), sealed with seals. */
static int forged_memfd(const struct ledger_header *h, size_t size, unsigned seals)
{
	int fd = memfd_create("forged-ledger", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	size_t n = size < HS ? size : HS;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	assert_int_equal(pwrite(fd, h, n, 0), (ssize_t)n);
	if (seals)
		assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

static void expect_map_refused(int fd, const char *want)
{
	struct ledger r;
	char err[512] = "";

	memset(&r, 0x5a, sizeof(r));
	assert_int_equal(ledger_map_readonly(&r, fd, err, sizeof(err)), -1);
	assert_string_equal(err, want);
	assert_null(r.h);
	assert_int_equal(r.fd, -1);
	assert_int_equal(r.size, 0);
	assert_false(r.is_writer);
	/* It took ownership: closed on refusal too. */
	assert_fd_closed(fd);
}

/* The control for the refusals below: the forged memfd they damage is accepted as it is. */
static void test_map_readonly_accepts_forged_good_header(void **state)
{
	struct ledger_header *h = good_header();
	struct ledger r;
	char err[256] = "";

	(void)state;
	int fd = forged_memfd(h, HS, ALL_SEALS);
	assert_int_equal(ledger_map_readonly(&r, fd, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(r.fd, fd);
	assert_int_equal(r.size, HS);
	assert_false(r.is_writer);
	assert_int_equal(r.h->overall.limit, 4242);
	ledger_close(&r);
	assert_fd_closed(fd);
	free(h);
}

static void test_map_readonly_refuses_unsealed(void **state)
{
	struct ledger_header *h = good_header();
	const char *want = "the ledger received is not sealed: not from a tbwrap supervisor";

	(void)state;
	expect_map_refused(forged_memfd(h, HS, 0), want);
	/* Every seal but F_SEAL_FUTURE_WRITE: its sender could still write it. */
	expect_map_refused(forged_memfd(h, HS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), want);
	/* Write-sealed but still growable. */
	expect_map_refused(forged_memfd(h, HS, F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_SEAL),
			   want);
	/* Not a memfd at all: a regular file has no seals. */
	char path[] = "/tmp/tbwrap-test-ledger-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(pwrite(fd, h, HS, 0), (ssize_t)HS);
	expect_map_refused(fd, want);
	free(h);
}

static void test_map_readonly_refuses_wrong_size(void **state)
{
	struct ledger_header *h = good_header();
	char want[256];

	(void)state;
	snprintf(want, sizeof(want),
		 "the ledger is 4096 bytes, expected %zu (another tbwrap version?)", HS);
	expect_map_refused(forged_memfd(h, 4096, ALL_SEALS), want);
	snprintf(want, sizeof(want),
		 "the ledger is %zu bytes, expected %zu (another tbwrap version?)", HS + 8, HS);
	expect_map_refused(forged_memfd(h, HS + 8, ALL_SEALS), want);
	snprintf(want, sizeof(want),
		 "the ledger is 0 bytes, expected %zu (another tbwrap version?)", HS);
	expect_map_refused(forged_memfd(h, 0, ALL_SEALS), want);
	free(h);
}

static void test_map_readonly_refuses_bad_magic(void **state)
{
	struct ledger_header *h = good_header();

	(void)state;
	h->magic = UINT64_C(0x0123456789abcdef);
	expect_map_refused(forged_memfd(h, HS, ALL_SEALS),
			   "ledger has a bad magic number (0x0123456789abcdef, expected "
			   "0x35474c5257425454): not a tbwrap ledger, or one of another tbwrap "
			   "version");
	/* The version 1 to 3 ledgers' magics ("TTBWRLG1" ... "TTBWRLG3"). */
	h->magic = UINT64_C(0x31474c5257425454);
	expect_map_refused(forged_memfd(h, HS, ALL_SEALS),
			   "ledger has a bad magic number (0x31474c5257425454, expected "
			   "0x35474c5257425454): not a tbwrap ledger, or one of another tbwrap "
			   "version");
	h->magic = UINT64_C(0x32474c5257425454);
	expect_map_refused(forged_memfd(h, HS, ALL_SEALS),
			   "ledger has a bad magic number (0x32474c5257425454, expected "
			   "0x35474c5257425454): not a tbwrap ledger, or one of another tbwrap "
			   "version");
	h->magic = UINT64_C(0x33474c5257425454);
	expect_map_refused(forged_memfd(h, HS, ALL_SEALS),
			   "ledger has a bad magic number (0x33474c5257425454, expected "
			   "0x35474c5257425454): not a tbwrap ledger, or one of another tbwrap "
			   "version");
	free(h);
}

static void test_map_readonly_refuses_wrong_version(void **state)
{
	struct ledger_header *h = good_header();

	(void)state;
	h->version = 4;
	expect_map_refused(forged_memfd(h, HS, ALL_SEALS),
			   "ledger has version 4, this tbwrap reads version 5");
	h->version = 6;
	expect_map_refused(forged_memfd(h, HS, ALL_SEALS),
			   "ledger has version 6, this tbwrap reads version 5");
	free(h);
}

static void test_map_readonly_refuses_size_fields(void **state)
{
	struct ledger_header *h = good_header();
	char want[256];

	(void)state;
	h->header_size = 64;
	snprintf(want, sizeof(want),
		 "ledger records header size 64 and size %zu in %zu bytes, expected %zu for all "
		 "three",
		 HS, HS, HS);
	expect_map_refused(forged_memfd(h, HS, ALL_SEALS), want);
	h->header_size = (uint32_t)HS;
	h->size = 1 << 30;
	snprintf(want, sizeof(want),
		 "ledger records header size %zu and size 1073741824 in %zu bytes, expected %zu "
		 "for all three",
		 HS, HS, HS);
	expect_map_refused(forged_memfd(h, HS, ALL_SEALS), want);
	free(h);
}

static void test_map_readonly_refuses_unknown_mode(void **state)
{
	struct ledger_header *h = good_header();

	(void)state;
	h->mode = 7;
	expect_map_refused(forged_memfd(h, HS, ALL_SEALS), "ledger has an unknown mode 7");
	h->mode = 2;
	expect_map_refused(forged_memfd(h, HS, ALL_SEALS), "ledger has an unknown mode 2");
	free(h);
}

/* The supervisor's own ledger, through a second fd as a reader receives it: the same pages,
 * mapped read-only. */
static void test_map_readonly_accepts_created(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_WARN, 300);
	struct ledger l, r;
	char err[256] = "", line[512];
	int slot;

	(void)state;
	create_or_fail(&l, &cfg);
	int fd = dup(l.fd);
	assert_true(fd >= 0);
	assert_int_equal(ledger_map_readonly(&r, fd, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_false(r.is_writer);
	assert_int_equal(r.fd, fd);
	assert_int_equal(r.size, HS);
	assert_true(r.h != l.h);
	assert_true(r.h->magic == LEDGER_MAGIC);
	assert_int_equal(r.h->mode, LEDGER_MODE_WARN);
	assert_int_equal(r.h->estimate, 300);
	assert_int_equal(r.h->n_commands, 2);
	assert_string_equal(r.h->commands[1].name, "/review");
	assert_memory_equal(r.h, l.h, HS);

	/* What the writer does afterwards shows through: one memory. */
	assert_int_equal(ledger_admit(&l, 0, 77, TOK(300), NULL, &slot), LEDGER_ADMITTED);
	assert_int_equal(ledger_n_instances(r.h), 1);
	assert_int_equal(r.h->instances[0].pid, 77);
	assert_int_equal(ledger_load(&r.h->overall.reserved), 300);

	/* Mapped read-only and shared: "r--s" in /proc/self/maps. */
	FILE *maps = fopen("/proc/self/maps", "re");
	assert_non_null(maps);
	char want[32];
	snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)r.h);
	bool found = false;
	while (fgets(line, sizeof(line), maps)) {
		if (strncmp(line, want, strlen(want)) == 0) {
			found = true;
			const char *perms = strchr(line, ' ');
			assert_non_null(perms);
			assert_memory_equal(perms + 1, "r--s", 4);
		}
	}
	fclose(maps);
	assert_true(found);

	/* Closing the reader closes its fd only. */
	ledger_close(&r);
	assert_fd_closed(fd);
	assert_int_equal(fcntl(l.fd, F_GET_SEALS), ALL_SEALS);
	assert_int_equal(l.h->instances[0].pid, 77);
	ledger_close(&l);
}

/* What the supervisor holds for an agent in warn mode: the estimate less its usage so far. */
static void warn_reservation(struct ledger *l, int inst)
{
	uint64_t used = l->h->instances[inst].used.total, est = l->h->estimate;
	ledger_set_reserved(l, inst, TOK(est > used ? est - used : 0));
}

static void test_meter_feed_fixture(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_WARN, 5000);
	struct meter_core *core = calloc(1, sizeof(*core));
	struct meter_usage delta;
	struct meter_stream s;
	struct ledger l;
	char buf[4096];
	int fd, slot;
	uint64_t pos = 0;
	ssize_t n;

	(void)state;
	assert_non_null(core);
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 1, getpid(), TOK(5000), NULL, &slot), LEDGER_ADMITTED);
	meter_stream_init(&s, METER_LINE_MAX_DEFAULT);
	fd = open(FIXTURE_DIR "stdout.stream-json.jsonl", O_RDONLY);
	assert_true(fd >= 0);
	/* Odd chunk sizes so that lines are split across feeds. */
	while ((n = read(fd, buf, 997)) > 0) {
		delta = (struct meter_usage){{0}};
		assert_true(meter_feed(core, &s, pos, buf, (size_t)n, &delta));
		ledger_record_delta(&l, 0, &delta, 0);
		warn_reservation(&l, 0);
		pos += (uint64_t)n;
	}
	close(fd);
	delta = (struct meter_usage){{0}};
	meter_finish(core, &s, &delta);
	ledger_record_delta(&l, 0, &delta, 0);
	warn_reservation(&l, 0);
	ledger_publish_meter(&l, 0, core);

	/* Re-feeding the same bytes at the same positions adds nothing. */
	fd = open(FIXTURE_DIR "stdout.stream-json.jsonl", O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf));
	assert_true(n > 0);
	close(fd);
	delta = (struct meter_usage){{0}};
	assert_true(meter_feed(core, &s, 0, buf, (size_t)n, &delta));
	assert_int_equal(meter_usage_total(&delta, NULL), 0);
	ledger_record_delta(&l, 0, &delta, 0);
	meter_stream_free(&s);

	const struct ledger_counts *o = &l.h->overall.used;
	assert_int_equal(o->n[METER_INPUT], 4000);
	assert_int_equal(o->n[METER_OUTPUT], 200);
	assert_int_equal(o->n[METER_CACHE_CREATION], 800);
	assert_int_equal(o->n[METER_CACHE_READ], 12000);
	assert_int_equal(o->total, 17000);
	assert_int_equal(l.h->commands[1].used.total, 17000);
	assert_int_equal(l.h->commands[1].used.n[METER_CACHE_READ], 12000);
	const struct ledger_instance *in = &l.h->instances[0];
	assert_int_equal(in->used.total, 17000);
	assert_int_equal(in->used.n[METER_CACHE_READ], 12000);
	assert_int_equal(in->cost_micro_usd, 36000);
	assert_int_equal(in->results, 1);
	assert_string_equal(in->result_subtype, "success");
	for (int k = 0; k < METER_NANOMALY; k++)
		assert_int_equal(in->anomalies[k], 0);
	/* The 5000 estimate was covered by usage. */
	assert_int_equal(in->reserved, 0);
	assert_int_equal(l.h->overall.reserved, 0);
	ledger_close(&l);
	free(core);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_fields),
		cmocka_unit_test(test_config_validation),
		cmocka_unit_test(test_command_index),
		cmocka_unit_test(test_admit_block_overall),
		cmocka_unit_test(test_window_others),
		cmocka_unit_test(test_admit_block_command),
		cmocka_unit_test(test_admit_both_exceeded_names_overall),
		cmocka_unit_test(test_admit_warn_mode),
		cmocka_unit_test(test_used_up_admits_nobody),
		cmocka_unit_test(test_admit_table_full),
		cmocka_unit_test(test_record_unadmitted),
		cmocka_unit_test(test_record_delta_and_settle),
		cmocka_unit_test(test_settle_counts_stop_once),
		cmocka_unit_test(test_settle_keeps_refused),
		cmocka_unit_test(test_counts_never_wrap),
		cmocka_unit_test(test_over_limit_boundary),
		cmocka_unit_test(test_no_limit_never_over),
		cmocka_unit_test(test_rebind),
		cmocka_unit_test(test_set_reserved),
		cmocka_unit_test(test_admit_request),
		cmocka_unit_test(test_admit_request_used_up),
		cmocka_unit_test(test_request_fits_no_side_effects),
		cmocka_unit_test(test_overshoot),
		cmocka_unit_test(test_note_requests_and_refused),
		cmocka_unit_test(test_mark_and_exit_code),
		cmocka_unit_test(test_publish_meter),
		cmocka_unit_test(test_describe_refusal),
		cmocka_unit_test(test_map_readonly_accepts_forged_good_header),
		cmocka_unit_test(test_map_readonly_refuses_unsealed),
		cmocka_unit_test(test_map_readonly_refuses_wrong_size),
		cmocka_unit_test(test_map_readonly_refuses_bad_magic),
		cmocka_unit_test(test_map_readonly_refuses_wrong_version),
		cmocka_unit_test(test_map_readonly_refuses_size_fields),
		cmocka_unit_test(test_map_readonly_refuses_unknown_mode),
		cmocka_unit_test(test_map_readonly_accepts_created),
		cmocka_unit_test(test_meter_feed_fixture),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
