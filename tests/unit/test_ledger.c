/*
 * The ledger on one process (and a few forked ones where a crash or a second mapping is the point):
 * create/open round trip, every refusal of ledger_open (with the segment's bytes compared before
 * and after, since a refusal must not write), config validation, admission, reservations,
 * settling, the over-limit boundary, robust-mutex recovery and metering a real capture.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "shm_cleanup.h"
#include "tbwrap/ledger.h"

#define FIXTURE_DIR "tests/fixtures/claude-code-2.1.197/"

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

static char *shm_path(const char *name)
{
	static char path[128];

	snprintf(path, sizeof(path), "/dev/shm%s", name);
	return path;
}

/* The segment's bytes as a file, so that a truncated or unreadable mapping cannot fault us. */
static unsigned char *read_segment(const char *name, size_t *len)
{
	int fd = open(shm_path(name), O_RDONLY);
	struct stat st;
	unsigned char *buf;
	size_t got = 0;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return buf;
}

static int count_own_segments(void)
{
	char prefix[64];
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	snprintf(prefix, sizeof(prefix), "tbwrap-%ld-", (long)getpid());
	while ((e = readdir(d)))
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

static void test_create_open_round_trip(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_BLOCK, 300);
	struct ledger c, o, ro;
	char err[256] = "", pattern[64];
	struct stat st;
	regex_t re;
	pid_t pid;
	int status;

	(void)state;
	cfg.weights[METER_OUTPUT] = 5;
	create_or_fail(&c, &cfg);
	assert_true(c.is_creator);
	snprintf(pattern, sizeof(pattern), "^/tbwrap-%ld-[0-9a-f]{16}$", (long)getpid());
	assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	assert_int_equal(regexec(&re, c.name, 0, NULL, 0), 0);
	regfree(&re);

	assert_int_equal(stat(shm_path(c.name), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(st.st_size, sizeof(struct ledger_header));

	assert_int_equal(ledger_open(&o, c.name, true, err, sizeof(err)), 0);
	assert_false(o.is_creator);
	assert_string_equal(o.name, c.name);
	assert_true(o.h != c.h);
	assert_true(o.h->magic == LEDGER_MAGIC);
	assert_int_equal(o.h->version, LEDGER_VERSION);
	assert_int_equal(o.h->header_size, sizeof(struct ledger_header));
	assert_int_equal(o.h->size, sizeof(struct ledger_header));
	assert_int_equal(o.h->creator_pid, getpid());
	assert_int_equal(o.h->uid, geteuid());
	assert_int_equal(o.h->mode, LEDGER_MODE_BLOCK);
	assert_int_equal(o.h->estimate, 300);
	assert_true(o.h->tag != 0);
	assert_true(o.h->tag == c.h->tag);
	assert_int_equal(o.h->weights[METER_INPUT], 1);
	assert_int_equal(o.h->weights[METER_OUTPUT], 5);
	assert_int_equal(o.h->weights[METER_CACHE_CREATION], 1);
	assert_int_equal(o.h->weights[METER_CACHE_READ], 1);
	assert_int_equal(o.h->n_commands, 2);
	assert_int_equal(o.h->n_instances, 0);
	assert_string_equal(o.h->overall.name, "");
	assert_int_equal(o.h->overall.limit, 1000);
	assert_string_equal(o.h->commands[0].name, "/test");
	assert_int_equal(o.h->commands[0].limit, 500);
	assert_string_equal(o.h->commands[1].name, "/review");
	assert_true(o.h->commands[1].limit == LEDGER_NO_LIMIT);
	assert_int_equal(ledger_command_index(&o, "/review", false), 1);

	/* A write through one mapping is seen through the other: one segment. */
	assert_int_equal(ledger_command_index(&o, "/fix", true), 2);
	assert_int_equal(ledger_command_index(&c, "/fix", false), 2);
	assert_true(c.h->commands[2].limit == LEDGER_NO_LIMIT);

	/* Read-only: the mapping really cannot be written. */
	assert_int_equal(ledger_open(&ro, c.name, false, err, sizeof(err)), 0);
	assert_int_equal(ro.h->n_commands, 3);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* CMocka's handler would turn the fault into a test failure inside the child. */
		signal(SIGSEGV, SIG_DFL);
		ro.h->flags = 1;
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSEGV);
	assert_int_equal(c.h->flags, 0);

	/* Only the creator unlinks. */
	ledger_close(&ro);
	ledger_close(&o);
	assert_null(o.h);
	assert_int_equal(access(shm_path(c.name), F_OK), 0);
	char name[LEDGER_NAME_LEN];
	snprintf(name, sizeof(name), "%s", c.name);
	ledger_close(&c);
	assert_int_equal(access(shm_path(name), F_OK), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(ledger_open(&o, name, true, err, sizeof(err)), -1);
	char want[256];
	snprintf(want, sizeof(want), "cannot open ledger %s: No such file or directory", name);
	assert_string_equal(err, want);
}

/* Each case damages a fresh segment in one way and expects ledger_open to refuse it with the given
 * message, leaving every byte as it was. */
enum damage {
	DMG_MAGIC,
	DMG_VERSION,
	DMG_SIZE_FIELD,
	DMG_UID_FIELD,
	DMG_N_COMMANDS,
	DMG_N_INSTANCES,
	DMG_TRUNCATED,
	DMG_TOO_LARGE,
	DMG_MODE_0644,
	DMG_FOREIGN_OWNER,
};

static void expect_refusal(enum damage dmg, bool writable)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_BLOCK, 300);
	const size_t hs = sizeof(struct ledger_header);
	struct ledger c, o;
	char err[512] = "", want[512];
	unsigned char *before, *after;
	size_t before_len, after_len;
	int fd;

	create_or_fail(&c, &cfg);
	fd = open(shm_path(c.name), O_RDWR);
	assert_true(fd >= 0);
	switch (dmg) {
	case DMG_MAGIC:
		c.h->magic = UINT64_C(0x0123456789abcdef);
		snprintf(want, sizeof(want),
			 "ledger %s has a bad magic number (0x0123456789abcdef, expected "
			 "0x31474c5257425454): not a tbwrap ledger or not fully created",
			 c.name);
		break;
	case DMG_VERSION:
		c.h->version = 2;
		snprintf(want, sizeof(want), "ledger %s has version 2, this tbwrap reads version 1",
			 c.name);
		break;
	case DMG_SIZE_FIELD:
		c.h->size = 4096;
		snprintf(want, sizeof(want),
			 "ledger %s records header size %zu and size 4096, expected %zu for both",
			 c.name, hs, hs);
		break;
	case DMG_UID_FIELD:
		c.h->uid = 4242;
		snprintf(want, sizeof(want), "ledger %s was created by uid 4242, not by uid %u",
			 c.name, (unsigned)geteuid());
		break;
	case DMG_N_COMMANDS:
		c.h->n_commands = LEDGER_MAX_COMMANDS + 1;
		snprintf(want, sizeof(want),
			 "ledger %s is corrupt: 65 commands (at most 64), 0 instances (at most "
			 "1024)",
			 c.name);
		break;
	case DMG_N_INSTANCES:
		c.h->n_instances = 5000;
		snprintf(want, sizeof(want),
			 "ledger %s is corrupt: 2 commands (at most 64), 5000 instances (at most "
			 "1024)",
			 c.name);
		break;
	case DMG_TRUNCATED:
		assert_int_equal(ftruncate(fd, 4096), 0);
		snprintf(want, sizeof(want), "ledger %s is truncated (4096 bytes, expected %zu)",
			 c.name, hs);
		break;
	case DMG_TOO_LARGE:
		assert_int_equal(ftruncate(fd, (off_t)hs + 4096), 0);
		snprintf(want, sizeof(want), "ledger %s is too large (%zu bytes, expected %zu)",
			 c.name, hs + 4096, hs);
		break;
	case DMG_MODE_0644:
		assert_int_equal(fchmod(fd, 0644), 0);
		snprintf(want, sizeof(want), "ledger %s has mode 0644, expected 0600", c.name);
		break;
	case DMG_FOREIGN_OWNER:
		assert_int_equal(fchown(fd, 65534, 65534), 0);
		snprintf(want, sizeof(want), "ledger %s is owned by uid 65534, not by uid %u",
			 c.name, (unsigned)geteuid());
		break;
	}
	close(fd);

	before = read_segment(c.name, &before_len);
	assert_int_equal(ledger_open(&o, c.name, writable, err, sizeof(err)), -1);
	assert_string_equal(err, want);
	assert_null(o.h);
	after = read_segment(c.name, &after_len);
	assert_int_equal(after_len, before_len);
	assert_memory_equal(after, before, before_len);
	free(before);
	free(after);
	ledger_close(&c);
}

static void test_open_refuses_bad_magic(void **state)
{
	(void)state;
	expect_refusal(DMG_MAGIC, true);
	expect_refusal(DMG_MAGIC, false);
}

static void test_open_refuses_wrong_version(void **state)
{
	(void)state;
	expect_refusal(DMG_VERSION, true);
}

static void test_open_refuses_wrong_size_field(void **state)
{
	(void)state;
	expect_refusal(DMG_SIZE_FIELD, true);
}

static void test_open_refuses_foreign_uid_field(void **state)
{
	(void)state;
	expect_refusal(DMG_UID_FIELD, true);
}

static void test_open_refuses_out_of_bounds_counts(void **state)
{
	(void)state;
	expect_refusal(DMG_N_COMMANDS, true);
	expect_refusal(DMG_N_INSTANCES, false);
}

static void test_open_refuses_truncated(void **state)
{
	(void)state;
	expect_refusal(DMG_TRUNCATED, true);
	expect_refusal(DMG_TOO_LARGE, true);
}

static void test_open_refuses_wrong_mode(void **state)
{
	(void)state;
	expect_refusal(DMG_MODE_0644, true);
	expect_refusal(DMG_MODE_0644, false);
}

static void test_open_refuses_foreign_owner(void **state)
{
	(void)state;
	/* Giving a segment away takes root; as anyone else there is no foreign segment to make. */
	if (geteuid() != 0)
		skip();
	expect_refusal(DMG_FOREIGN_OWNER, true);
}

static void test_open_refuses_bad_names(void **state)
{
	struct ledger o;
	char err[256];

	(void)state;
	assert_int_equal(ledger_open(&o, "tbwrap-1-00", true, err, sizeof(err)), -1);
	assert_string_equal(err, "ledger name \"tbwrap-1-00\" is not a shared-memory name like "
				 "/tbwrap-PID-XXXX");
	assert_int_equal(ledger_open(&o, "/a/b", true, err, sizeof(err)), -1);
	assert_string_equal(err, "ledger name \"/a/b\" is not a shared-memory name like "
				 "/tbwrap-PID-XXXX");
}

static void expect_config_error(const struct ledger_config *cfg, const char *want)
{
	struct ledger l;
	char err[256] = "";
	int before = count_own_segments();

	assert_int_equal(ledger_create(&l, cfg, err, sizeof(err)), -1);
	assert_string_equal(err, want);
	assert_null(l.h);
	assert_int_equal(count_own_segments(), before);
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
	expect_config_error(&cfg, "ledger: 65 command budgets, at most 64 are supported");

	cfg.n_commands = 2;
	cfg.mode = (enum ledger_mode)7;
	expect_config_error(&cfg, "ledger: unknown mode 7");

	/* The limits: 63 bytes and 64 commands are accepted. */
	cfg.mode = LEDGER_MODE_WARN;
	long_name[LEDGER_NAME_LEN - 1] = '\0';
	names[LEDGER_MAX_COMMANDS - 1] = long_name;
	cfg.n_commands = LEDGER_MAX_COMMANDS;
	assert_int_equal(ledger_create(&l, &cfg, err, sizeof(err)), 0);
	assert_int_equal(l.h->n_commands, LEDGER_MAX_COMMANDS);
	assert_string_equal(l.h->commands[LEDGER_MAX_COMMANDS - 1].name, long_name);
	assert_int_equal(ledger_command_index(&l, long_name, false), LEDGER_MAX_COMMANDS - 1);
	/* Full table: no insertion. */
	assert_int_equal(ledger_command_index(&l, "/new", true), -1);
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
	ledger_close(&l);
}

static void test_admit_block_overall(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_BLOCK, 300);
	struct ledger_refusal why;
	struct ledger l;
	bool exceeded = true;
	int refused_slot = 99;

	(void)state;
	create_or_fail(&l, &cfg);
	/* /review has no budget of its own: only the overall one applies. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ledger_admit(&l, 1, 1000 + i, 300, &exceeded, &why, &refused_slot),
				 i);
		assert_false(exceeded);
		assert_int_equal(refused_slot, -1);
	}
	struct ledger_instance *in = &l.h->instances[1];
	assert_int_equal(in->pid, 1001);
	assert_int_equal(in->command, 1);
	assert_int_equal(in->status, LEDGER_INST_RUNNING);
	assert_int_equal(in->estimate, 300);
	assert_int_equal(in->reserved, 300);
	assert_int_equal(in->exit_code, -1);
	assert_true(in->start_ns > UINT64_C(1600000000) * 1000000000);
	assert_int_equal(l.h->overall.reserved, 900);
	assert_int_equal(l.h->commands[1].reserved, 900);
	assert_int_equal(l.h->overall.agents, 3);
	assert_int_equal(l.h->commands[1].agents, 3);

	/* 900 + 100 == 1000 fits exactly; 900 + 101 does not. */
	assert_int_equal(ledger_admit(&l, 1, 2000, 101, &exceeded, &why, &refused_slot), -2);
	assert_int_equal(refused_slot, 3);
	assert_true(why.is_overall);
	assert_string_equal(why.name, "");
	assert_int_equal(why.limit, 1000);
	assert_int_equal(why.used, 0);
	assert_int_equal(why.reserved, 900);
	assert_int_equal(why.estimate, 101);
	assert_int_equal(l.h->instances[3].status, LEDGER_INST_REFUSED);
	assert_int_equal(l.h->instances[3].pid, 2000);
	assert_int_equal(l.h->instances[3].command, 1);
	assert_int_equal(l.h->instances[3].reserved, 0);
	assert_true(l.h->instances[3].start_ns != 0);
	assert_int_equal(l.h->overall.refused, 1);
	assert_int_equal(l.h->commands[1].refused, 1);
	assert_int_equal(l.h->overall.reserved, 900);
	assert_int_equal(l.h->overall.agents, 3);

	assert_int_equal(ledger_admit(&l, 1, 2001, 100, &exceeded, &why, &refused_slot), 4);
	assert_int_equal(l.h->overall.reserved, 1000);
	/* A bad command index is an error, not an admission. */
	assert_int_equal(ledger_admit(&l, 7, 2002, 0, &exceeded, &why, &refused_slot), -1);
	assert_int_equal(ledger_admit(&l, -1, 2002, 0, &exceeded, &why, &refused_slot), -1);
	assert_int_equal(l.h->n_instances, 5);
	ledger_close(&l);
}

static void test_admit_block_command(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_BLOCK, 200);
	struct ledger_refusal why;
	struct ledger_instance *in;
	struct ledger l;
	bool exceeded;
	int refused_slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 10, 200, &exceeded, &why, &refused_slot), 0);
	struct meter_usage d = {{100, 50, 50, 0}};
	ledger_record_delta(&l, 0, &d);
	/* /test: used 200 + reserved 0 + 300 = 500 fits; then 200 + 300 + 1 does not. */
	assert_int_equal(ledger_admit(&l, 0, 11, 300, &exceeded, &why, &refused_slot), 1);
	assert_int_equal(ledger_admit(&l, 0, 12, 1, &exceeded, &why, &refused_slot), -2);
	assert_false(why.is_overall);
	assert_string_equal(why.name, "/test");
	assert_int_equal(why.limit, 500);
	assert_int_equal(why.used, 200);
	assert_int_equal(why.reserved, 300);
	assert_int_equal(why.estimate, 1);
	assert_int_equal(refused_slot, 2);
	assert_int_equal(l.h->commands[0].refused, 1);
	assert_int_equal(l.h->overall.refused, 1);
	/* Another command is not affected by /test's budget. */
	assert_int_equal(ledger_admit(&l, 1, 13, 100000, &exceeded, &why, &refused_slot), 3);
	assert_false(exceeded);
	in = &l.h->instances[3];
	assert_int_equal(in->status, LEDGER_INST_RUNNING);
	ledger_close(&l);
}

static void test_admit_warn_mode(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_WARN, 600);
	struct ledger_refusal why;
	struct ledger l;
	bool exceeded;
	int refused_slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 1, 1, 600, &exceeded, &why, &refused_slot), 0);
	assert_false(exceeded);
	assert_int_equal(ledger_admit(&l, 1, 2, 600, &exceeded, &why, &refused_slot), 1);
	assert_true(exceeded);
	assert_int_equal(refused_slot, -1);
	assert_true(why.is_overall);
	assert_int_equal(why.limit, 1000);
	assert_int_equal(why.reserved, 600);
	assert_int_equal(why.estimate, 600);
	assert_int_equal(l.h->instances[1].status, LEDGER_INST_RUNNING);
	assert_int_equal(l.h->overall.reserved, 1200);
	assert_int_equal(l.h->overall.agents, 2);
	assert_int_equal(l.h->overall.refused, 0);
	/* Optional outputs may be NULL. */
	assert_int_equal(ledger_admit(&l, 1, 3, 600, NULL, NULL, NULL), 2);
	ledger_close(&l);
}

static void test_admit_table_full(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_BLOCK, 1);
	struct ledger_refusal why;
	struct ledger l;
	bool exceeded;
	int refused_slot = 5;

	(void)state;
	create_or_fail(&l, &cfg);
	for (int i = 0; i < LEDGER_MAX_INSTANCES; i++)
		assert_int_equal(ledger_admit(&l, 1, i + 1, 1, &exceeded, &why, &refused_slot), i);
	assert_int_equal(ledger_admit(&l, 1, 999, 1, &exceeded, &why, &refused_slot), -3);
	assert_int_equal(l.h->n_instances, LEDGER_MAX_INSTANCES);
	assert_int_equal(l.h->overall.agents, LEDGER_MAX_INSTANCES);
	assert_int_equal(l.h->overall.reserved, LEDGER_MAX_INSTANCES);
	/* Refused with a full table: still refused, no slot to record it in. */
	assert_int_equal(ledger_admit(&l, 0, 999, 501, &exceeded, &why, &refused_slot), -2);
	assert_int_equal(refused_slot, -1);
	assert_string_equal(why.name, "/test");
	assert_int_equal(l.h->commands[0].refused, 1);
	ledger_close(&l);
}

static void test_record_delta_and_settle(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_BLOCK, 1000);
	struct ledger l;
	bool exceeded;
	int refused_slot;

	(void)state;
	cfg.weights[METER_OUTPUT] = 5;
	cfg.weights[METER_CACHE_READ] = 0;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, 400, &exceeded, NULL, &refused_slot), 0);
	assert_int_equal(ledger_admit(&l, 1, 2, 1000, &exceeded, NULL, &refused_slot), 1);
	assert_int_equal(l.h->overall.reserved, 1400);

	/* 100 + 5*20 + 30 + 0*1000 = 230 weighted. */
	struct meter_usage d = {{100, 20, 30, 1000}};
	ledger_record_delta(&l, 0, &d);
	struct ledger_instance *in = &l.h->instances[0];
	assert_int_equal(in->used.n[METER_INPUT], 100);
	assert_int_equal(in->used.n[METER_OUTPUT], 20);
	assert_int_equal(in->used.n[METER_CACHE_CREATION], 30);
	assert_int_equal(in->used.n[METER_CACHE_READ], 1000);
	assert_int_equal(in->used.total, 230);
	assert_int_equal(in->reserved, 170);
	assert_int_equal(l.h->commands[0].used.total, 230);
	assert_int_equal(l.h->commands[0].used.n[METER_CACHE_READ], 1000);
	assert_int_equal(l.h->commands[0].reserved, 170);
	assert_int_equal(l.h->commands[1].used.total, 0);
	assert_int_equal(l.h->commands[1].reserved, 1000);
	assert_int_equal(l.h->overall.used.total, 230);
	assert_int_equal(l.h->overall.reserved, 1170);

	/* Usage beyond the estimate releases only what is left, never below zero. */
	ledger_record_delta(&l, 0, &d);
	assert_int_equal(in->used.total, 460);
	assert_int_equal(in->reserved, 0);
	assert_int_equal(l.h->commands[0].reserved, 0);
	assert_int_equal(l.h->overall.reserved, 1000);

	/* Settling releases the rest of a reservation. */
	struct meter_usage d2 = {{300, 0, 0, 0}};
	ledger_record_delta(&l, 1, &d2);
	assert_int_equal(l.h->overall.reserved, 700);
	ledger_settle(&l, 1, LEDGER_INST_EXITED, 3);
	assert_int_equal(l.h->instances[1].reserved, 0);
	assert_int_equal(l.h->commands[1].reserved, 0);
	assert_int_equal(l.h->overall.reserved, 0);
	assert_int_equal(l.h->instances[1].status, LEDGER_INST_EXITED);
	assert_int_equal(l.h->instances[1].exit_code, 3);
	assert_true(l.h->instances[1].end_ns >= l.h->instances[1].start_ns);
	assert_int_equal(l.h->overall.used.total, 760);
	assert_int_equal(l.h->overall.stopped, 0);

	/* STOPPED wins over a later EXITED; the later exit code is kept; counted once. */
	ledger_settle(&l, 0, LEDGER_INST_STOPPED, -1);
	assert_int_equal(in->status, LEDGER_INST_STOPPED);
	assert_int_equal(l.h->overall.stopped, 1);
	assert_int_equal(l.h->commands[0].stopped, 1);
	ledger_settle(&l, 0, LEDGER_INST_EXITED, 128 + 15);
	assert_int_equal(in->status, LEDGER_INST_STOPPED);
	assert_int_equal(in->exit_code, 143);
	ledger_settle(&l, 0, LEDGER_INST_STOPPED, 143);
	assert_int_equal(l.h->overall.stopped, 1);
	assert_int_equal(l.h->commands[0].stopped, 1);
	assert_int_equal(l.h->commands[1].stopped, 0);

	/* UNMETERED stays when the agent exits; an unknown exit code keeps the recorded one. */
	__atomic_store_n(&l.h->instances[1].status, LEDGER_INST_UNMETERED, __ATOMIC_RELEASE);
	ledger_settle(&l, 1, LEDGER_INST_EXITED, -1);
	assert_int_equal(l.h->instances[1].status, LEDGER_INST_UNMETERED);
	assert_int_equal(l.h->instances[1].exit_code, 3);

	/* Out-of-range instances change nothing. */
	ledger_record_delta(&l, 2, &d);
	ledger_record_delta(&l, -1, &d);
	ledger_settle(&l, 5, LEDGER_INST_STOPPED, 0);
	assert_int_equal(l.h->overall.used.total, 760);
	assert_int_equal(l.h->overall.stopped, 1);
	ledger_close(&l);
}

static void test_settle_keeps_refused(void **state)
{
	struct ledger_config cfg = base_config(100, LEDGER_MODE_BLOCK, 1000);
	struct ledger_refusal why;
	struct ledger l;
	bool exceeded;
	int refused_slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, 1000, &exceeded, &why, &refused_slot), -2);
	assert_int_equal(refused_slot, 0);
	ledger_settle(&l, 0, LEDGER_INST_EXITED, 86);
	assert_int_equal(l.h->instances[0].status, LEDGER_INST_REFUSED);
	ledger_settle(&l, 0, LEDGER_INST_STOPPED, 86);
	assert_int_equal(l.h->instances[0].status, LEDGER_INST_REFUSED);
	assert_int_equal(l.h->overall.stopped, 0);
	assert_int_equal(l.h->overall.reserved, 0);
	assert_int_equal(l.h->instances[0].exit_code, 86);
	ledger_close(&l);
}

static void test_over_limit_boundary(void **state)
{
	struct ledger_config cfg = base_config(1000, LEDGER_MODE_BLOCK, 0);
	struct ledger_refusal why;
	struct meter_usage d;
	struct ledger l;
	bool exceeded;
	int refused_slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, 0, &exceeded, &why, &refused_slot), 0);
	assert_int_equal(ledger_admit(&l, 1, 2, 0, &exceeded, &why, &refused_slot), 1);

	/* Command /test: limit 500. */
	d = (struct meter_usage){{500, 0, 0, 0}};
	ledger_record_delta(&l, 0, &d);
	assert_false(ledger_over_limit(&l, 0, &why));
	d = (struct meter_usage){{0, 1, 0, 0}};
	ledger_record_delta(&l, 0, &d);
	assert_true(ledger_over_limit(&l, 0, &why));
	assert_false(why.is_overall);
	assert_string_equal(why.name, "/test");
	assert_int_equal(why.limit, 500);
	assert_int_equal(why.used, 501);
	/* /review has no limit of its own and overall (501 of 1000) is not crossed. */
	assert_false(ledger_over_limit(&l, 1, &why));

	/* Overall: exactly 1000 is not over, 1001 is, for every instance. */
	d = (struct meter_usage){{0, 0, 499, 0}};
	ledger_record_delta(&l, 1, &d);
	assert_int_equal(l.h->overall.used.total, 1000);
	assert_false(ledger_over_limit(&l, 1, &why));
	/* A budget used up exactly admits nobody more, even with an estimate of 0. */
	assert_int_equal(ledger_admit(&l, 1, 3, 0, &exceeded, &why, &refused_slot), -2);
	assert_true(why.is_overall);
	assert_int_equal(why.used, 1000);
	d = (struct meter_usage){{0, 0, 0, 1}};
	ledger_record_delta(&l, 1, &d);
	assert_true(ledger_over_limit(&l, 1, &why));
	assert_true(why.is_overall);
	assert_string_equal(why.name, "");
	assert_int_equal(why.limit, 1000);
	assert_int_equal(why.used, 1001);
	assert_true(ledger_over_limit(&l, 0, &why));
	assert_true(why.is_overall);
	ledger_close(&l);
}

static void test_no_limit_never_over(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_BLOCK, 0);
	struct ledger_refusal why;
	struct ledger l;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 1, 1, 1000000, NULL, &why, NULL), 0);
	struct meter_usage d = {{1000000, 1000000, 0, 0}};
	ledger_record_delta(&l, 0, &d);
	assert_false(ledger_over_limit(&l, 0, &why));
	assert_int_equal(ledger_admit(&l, 1, 2, UINT64_MAX / 2, NULL, &why, NULL), 1);
	ledger_close(&l);
}

/* used + reserved + estimate saturates: a sum that would wrap round past zero must not fit. */
static void test_admit_saturates(void **state)
{
	struct ledger_config cfg = base_config(UINT64_MAX - 1, LEDGER_MODE_BLOCK, 0);
	struct ledger_refusal why;
	struct ledger l;
	int refused_slot;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 1, 1, UINT64_MAX - 1, NULL, &why, &refused_slot), 0);
	assert_int_equal(ledger_admit(&l, 1, 2, 2, NULL, &why, &refused_slot), -2);
	assert_true(why.is_overall);
	assert_true(why.reserved == UINT64_MAX - 1);
	assert_int_equal(why.estimate, 2);
	assert_int_equal(refused_slot, 1);
	ledger_close(&l);
}

/* A process SIGKILLed while holding a lock must not wedge everyone else. */
static void test_robust_mutex_recovery(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_BLOCK, 0);
	struct ledger l;
	pid_t pid;
	int status;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 0, 1, 0, NULL, NULL, NULL), 0);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Dies between raising its meter's total and recording the delta. */
		ledger_instance_lock(&l, 0);
		l.h->instances[0].core.total.n[METER_INPUT] = 1200;
		l.h->instances[0].core.total.n[METER_OUTPUT] = 34;
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	/* The default action of SIGALRM ends the test with a failure instead of hanging it. */
	alarm(20);
	ledger_instance_lock(&l, 0);
	ledger_instance_unlock(&l, 0);
	/* The recovering locker recorded what the dead owner had metered but not recorded. */
	assert_int_equal(l.h->instances[0].used.n[METER_INPUT], 1200);
	assert_int_equal(l.h->instances[0].used.n[METER_OUTPUT], 34);
	assert_int_equal(l.h->instances[0].used.total, 1234);
	assert_int_equal(l.h->overall.used.total, 1234);
	assert_int_equal(l.h->commands[0].used.total, 1234);
	assert_int_equal(pthread_mutex_trylock(&l.h->instances[0].lock), 0);
	pthread_mutex_unlock(&l.h->instances[0].lock);

	/* The header lock: a child dies holding it; insertion still works afterwards. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pthread_mutex_lock(&l.h->lock);
		raise(SIGKILL);
		_exit(1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(ledger_command_index(&l, "/after", true), 2);
	assert_int_equal(ledger_admit(&l, 2, 3, 0, NULL, NULL, NULL), 1);
	alarm(0);
	ledger_close(&l);
}

static void test_meter_feed_fixture(void **state)
{
	struct ledger_config cfg = base_config(LEDGER_NO_LIMIT, LEDGER_MODE_WARN, 5000);
	struct meter_stream s;
	struct ledger l;
	char buf[4096];
	int fd, changes = 0;
	uint64_t pos = 0;
	ssize_t n;

	(void)state;
	create_or_fail(&l, &cfg);
	assert_int_equal(ledger_admit(&l, 1, getpid(), 5000, NULL, NULL, NULL), 0);
	meter_stream_init(&s, METER_LINE_MAX_DEFAULT);
	fd = open(FIXTURE_DIR "stdout.stream-json.jsonl", O_RDONLY);
	assert_true(fd >= 0);
	/* Odd chunk sizes so that lines are split across feeds. */
	while ((n = read(fd, buf, 997)) > 0) {
		changes += ledger_meter_feed(&l, 0, &s, pos, buf, (size_t)n);
		pos += (uint64_t)n;
	}
	close(fd);
	changes += ledger_meter_finish(&l, 0, &s);
	assert_true(changes > 0);

	/* Re-feeding the same bytes at the same positions adds nothing. */
	fd = open(FIXTURE_DIR "stdout.stream-json.jsonl", O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf));
	assert_true(n > 0);
	assert_false(ledger_meter_feed(&l, 0, &s, 0, buf, (size_t)n));
	close(fd);
	meter_stream_free(&s);

	const struct ledger_counts *o = &l.h->overall.used;
	assert_int_equal(o->n[METER_INPUT], 4000);
	assert_int_equal(o->n[METER_OUTPUT], 200);
	assert_int_equal(o->n[METER_CACHE_CREATION], 800);
	assert_int_equal(o->n[METER_CACHE_READ], 12000);
	assert_int_equal(o->total, 17000);
	assert_int_equal(l.h->commands[1].used.total, 17000);
	assert_int_equal(l.h->instances[0].used.total, 17000);
	assert_int_equal(l.h->instances[0].core.total.n[METER_CACHE_READ], 12000);
	/* The 5000 estimate was covered by usage. */
	assert_int_equal(l.h->instances[0].reserved, 0);
	assert_int_equal(l.h->overall.reserved, 0);
	ledger_close(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_create_open_round_trip, unlink_own_segments),
		cmocka_unit_test_teardown(test_open_refuses_bad_magic, unlink_own_segments),
		cmocka_unit_test_teardown(test_open_refuses_wrong_version, unlink_own_segments),
		cmocka_unit_test_teardown(test_open_refuses_wrong_size_field, unlink_own_segments),
		cmocka_unit_test_teardown(test_open_refuses_foreign_uid_field, unlink_own_segments),
		cmocka_unit_test_teardown(test_open_refuses_out_of_bounds_counts,
					  unlink_own_segments),
		cmocka_unit_test_teardown(test_open_refuses_truncated, unlink_own_segments),
		cmocka_unit_test_teardown(test_open_refuses_wrong_mode, unlink_own_segments),
		cmocka_unit_test_teardown(test_open_refuses_foreign_owner, unlink_own_segments),
		cmocka_unit_test_teardown(test_open_refuses_bad_names, unlink_own_segments),
		cmocka_unit_test_teardown(test_config_validation, unlink_own_segments),
		cmocka_unit_test_teardown(test_command_index, unlink_own_segments),
		cmocka_unit_test_teardown(test_admit_block_overall, unlink_own_segments),
		cmocka_unit_test_teardown(test_admit_block_command, unlink_own_segments),
		cmocka_unit_test_teardown(test_admit_warn_mode, unlink_own_segments),
		cmocka_unit_test_teardown(test_admit_table_full, unlink_own_segments),
		cmocka_unit_test_teardown(test_record_delta_and_settle, unlink_own_segments),
		cmocka_unit_test_teardown(test_settle_keeps_refused, unlink_own_segments),
		cmocka_unit_test_teardown(test_over_limit_boundary, unlink_own_segments),
		cmocka_unit_test_teardown(test_no_limit_never_over, unlink_own_segments),
		cmocka_unit_test_teardown(test_admit_saturates, unlink_own_segments),
		cmocka_unit_test_teardown(test_robust_mutex_recovery, unlink_own_segments),
		cmocka_unit_test_teardown(test_meter_feed_fixture, unlink_own_segments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
