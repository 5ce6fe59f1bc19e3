/*
 * The JSON report of a real ledger (created, admitted, metered from a real Claude Code capture,
 * refused, settled), parsed back with cJSON and checked field by field; its all-or-nothing file
 * write; and `tbwrap status`: which ledger it picks in a directory of segment names, and the
 * report it prints for a live ledger.
 */
#include <cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "tbwrap/ledger.h"
#include "tbwrap/render.h"
#include "tbwrap/report.h"
#include "tbwrap/status.h"

#define FIXTURE "tests/fixtures/claude-code-2.1.197/stdout.stream-json.jsonl"

struct fixture {
	struct ledger l;
	char dir[64];
};

static const char *const names[] = {"/test", "/review"};
static const uint64_t limits[] = {20000, LEDGER_NO_LIMIT};

static void feed_file(struct ledger *l, int inst, const char *path)
{
	struct meter_stream s;
	char buf[997]; /* odd size: lines split across feeds */
	uint64_t pos = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	meter_stream_init(&s, METER_LINE_MAX_DEFAULT);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		ledger_meter_feed(l, inst, &s, pos, buf, (size_t)n);
		pos += (uint64_t)n;
	}
	close(fd);
	ledger_meter_finish(l, inst, &s);
	meter_stream_free(&s);
}

/*
 * Block mode, overall 50K, /test 20K, /review unbudgeted, estimate 1000:
 *   pid 101 /test: the real 4-call capture (17000 tokens, $0.036, success), exited 0;
 *   pid 102 /review: 11 tokens so far, still running, nested;
 *   pid 103 /test: refused (its 40K estimate does not fit in /test's 20K);
 *   pid 104 (prompt): stopped with 143 after 5 input tokens.
 */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];
	struct ledger_config cfg = {
		.overall_limit = 50000,
		.mode = LEDGER_MODE_BLOCK,
		.estimate = 1000,
		.weights = {1, 1, 1, 1},
		.n_commands = 2,
		.command_names = names,
		.command_limits = limits,
	};
	if (!f || ledger_create(&f->l, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "ledger_create: %s\n", err);
		free(f);
		return -1;
	}
	*state = f;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tbwrap-test-report-XXXXXX");
	return mkdtemp(f->dir) ? 0 : -1;
}

static void fill(struct ledger *l)
{
	bool exceeded = false;
	struct ledger_refusal why;
	int refused_slot = -1;

	int a = ledger_admit(l, 0, 101, 1000, &exceeded, &why, &refused_slot);
	assert_int_equal(a, 0);
	feed_file(l, a, FIXTURE);
	ledger_settle(l, a, LEDGER_INST_EXITED, 0);

	int b = ledger_admit(l, 1, 102, 1000, &exceeded, &why, &refused_slot);
	assert_int_equal(b, 1);
	struct meter_usage d = {.n = {10, 1, 0, 0}};
	ledger_record_delta(l, b, &d);
	l->h->instances[b].flags |= LEDGER_F_NESTED;

	assert_int_equal(ledger_admit(l, 0, 103, 40000, &exceeded, &why, &refused_slot), -2);
	assert_int_equal(refused_slot, 2);

	int cmd = ledger_command_index(l, LEDGER_CATCH_ALL, true);
	assert_int_equal(cmd, 2);
	int c = ledger_admit(l, cmd, 104, 1000, &exceeded, &why, &refused_slot);
	assert_int_equal(c, 3);
	struct meter_usage d2 = {.n = {5, 0, 0, 0}};
	ledger_record_delta(l, c, &d2);
	ledger_settle(l, c, LEDGER_INST_STOPPED, 143);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	ledger_close(&f->l);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	char *copy = strdup(buf);
	assert_non_null(copy);
	return copy;
}

static double num(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!cJSON_IsNumber(v))
		fail_msg("\"%s\" is not a number", key);
	return v->valuedouble;
}

static const char *str(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!cJSON_IsString(v))
		fail_msg("\"%s\" is not a string", key);
	return v->valuestring;
}

static void assert_null_field(const cJSON *obj, const char *key)
{
	if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(obj, key)))
		fail_msg("\"%s\" is not null", key);
}

static void assert_usage(const cJSON *obj, const char *key, double in, double out, double cw,
			 double cr)
{
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(obj, key);
	assert_true(cJSON_IsObject(u));
	assert_int_equal(cJSON_GetArraySize(u), 5);
	assert_true(num(u, "input") == in);
	assert_true(num(u, "output") == out);
	assert_true(num(u, "cache_creation") == cw);
	assert_true(num(u, "cache_read") == cr);
	assert_true(num(u, "total") == in + out + cw + cr);
}

static void check_report(const char *text)
{
	cJSON *root = cJSON_Parse(text);
	if (!root)
		fail_msg("not JSON:\n%s", text);
	assert_true(num(root, "version") == 1);
	assert_string_equal(str(root, "mode"), "block");
	assert_true(num(root, "estimate") == 1000);

	const cJSON *ov = cJSON_GetObjectItemCaseSensitive(root, "overall");
	assert_true(num(ov, "limit") == 50000);
	assert_usage(ov, "used", 4015, 201, 800, 12000);
	assert_true(num(ov, "reserved") == 989); /* pid 102: 1000 estimate - 11 used */
	assert_true(num(ov, "agents") == 3);
	assert_true(num(ov, "refused") == 1);
	assert_true(num(ov, "stopped") == 1);

	const cJSON *cmds = cJSON_GetObjectItemCaseSensitive(root, "commands");
	assert_int_equal(cJSON_GetArraySize(cmds), 3);
	const cJSON *t = cJSON_GetArrayItem(cmds, 0);
	assert_string_equal(str(t, "name"), "/test");
	assert_true(num(t, "limit") == 20000);
	assert_usage(t, "used", 4000, 200, 800, 12000);
	assert_true(num(t, "reserved") == 0);
	assert_true(num(t, "agents") == 1);
	assert_true(num(t, "refused") == 1);
	assert_true(num(t, "stopped") == 0);
	const cJSON *r = cJSON_GetArrayItem(cmds, 1);
	assert_string_equal(str(r, "name"), "/review");
	assert_null_field(r, "limit");
	assert_usage(r, "used", 10, 1, 0, 0);
	assert_true(num(r, "reserved") == 989);
	const cJSON *p = cJSON_GetArrayItem(cmds, 2);
	assert_string_equal(str(p, "name"), "(prompt)");
	assert_null_field(p, "limit");
	assert_true(num(p, "stopped") == 1);

	const cJSON *ag = cJSON_GetObjectItemCaseSensitive(root, "agents");
	assert_int_equal(cJSON_GetArraySize(ag), 4);

	const cJSON *a = cJSON_GetArrayItem(ag, 0);
	assert_true(num(a, "pid") == 101);
	assert_string_equal(str(a, "command"), "/test");
	assert_string_equal(str(a, "status"), "exited");
	assert_true(num(a, "exit_code") == 0);
	assert_usage(a, "usage", 4000, 200, 800, 12000);
	assert_true(num(a, "cost_usd") == 0.036);
	assert_string_equal(str(a, "result_subtype"), "success");
	const cJSON *an = cJSON_GetObjectItemCaseSensitive(a, "anomalies");
	assert_int_equal(cJSON_GetArraySize(an), METER_NANOMALY);
	static const char *const keys[] = {"not_json", "bad_number", "oversize", "gap",
					   "orphan_delta"};
	for (size_t k = 0; k < 5; k++)
		assert_true(num(an, keys[k]) == 0);
	assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(a, "nested")));

	const cJSON *b = cJSON_GetArrayItem(ag, 1);
	assert_true(num(b, "pid") == 102);
	assert_string_equal(str(b, "command"), "/review");
	assert_string_equal(str(b, "status"), "running");
	assert_null_field(b, "exit_code");
	assert_usage(b, "usage", 10, 1, 0, 0);
	assert_null_field(b, "cost_usd");
	assert_null_field(b, "result_subtype");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "nested")));

	const cJSON *c = cJSON_GetArrayItem(ag, 2);
	assert_true(num(c, "pid") == 103);
	assert_string_equal(str(c, "status"), "refused");
	assert_usage(c, "usage", 0, 0, 0, 0);

	const cJSON *d = cJSON_GetArrayItem(ag, 3);
	assert_true(num(d, "pid") == 104);
	assert_string_equal(str(d, "command"), "(prompt)");
	assert_string_equal(str(d, "status"), "stopped");
	assert_true(num(d, "exit_code") == 143);
	assert_usage(d, "usage", 5, 0, 0, 0);
	cJSON_Delete(root);
}

static void test_json_file(void **state)
{
	struct fixture *f = *state;
	char path[128], tmp[160], err[256] = "";

	fill(&f->l);
	snprintf(path, sizeof(path), "%s/report.json", f->dir);
	assert_int_equal(report_write_json(f->l.h, path, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(access(tmp, F_OK), -1); /* renamed away */
	char *text = slurp(path);
	assert_int_equal(text[strlen(text) - 1], '\n');
	check_report(text);

	/* Same text as report_json(). */
	char *direct = report_json(f->l.h);
	assert_string_equal(direct, text);
	free(direct);
	free(text);
}

static void test_json_stdout(void **state)
{
	struct fixture *f = *state;
	char path[128], err[256] = "";

	fill(&f->l);
	snprintf(path, sizeof(path), "%s/stdout", f->dir);
	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	int rc = report_write_json(f->l.h, "-", err, sizeof(err));
	dup2(saved, STDOUT_FILENO);
	close(saved);
	assert_int_equal(rc, 0);
	char *text = slurp(path);
	check_report(text);
	free(text);
}

/* A failed write leaves the old report as it was and no temporary file behind. */
static void test_json_failures(void **state)
{
	struct fixture *f = *state;
	char path[128], tmp[160], err[512] = "";

	assert_int_equal(report_write_json(f->l.h, "/nonexistent-dir/r.json", err, sizeof(err)),
			 -1);
	assert_string_equal(err, "report /nonexistent-dir/r.json: cannot create "
				 "/nonexistent-dir/r.json.tmp: No such file or directory");

	snprintf(path, sizeof(path), "%s/old.json", f->dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("old\n", fp);
	fclose(fp);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(symlink("/tmp/elsewhere-tbwrap-report", tmp), 0);
	assert_int_equal(report_write_json(f->l.h, path, err, sizeof(err)), -1);
	char want[512];
	snprintf(want, sizeof(want),
		 "report %s: cannot create %s: Too many levels of symbolic links", path, tmp);
	assert_string_equal(err, want);
	assert_int_equal(access("/tmp/elsewhere-tbwrap-report", F_OK), -1);
	char *text = slurp(path);
	assert_string_equal(text, "old\n");
	free(text);
	unlink(tmp);

	/* Renaming over a directory fails after the write: the temporary file is removed. */
	snprintf(path, sizeof(path), "%s/adir", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(report_write_json(f->l.h, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "report %s: cannot rename %s.tmp: Is a directory", path, path);
	assert_string_equal(err, want);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(access(tmp, F_OK), -1);
}

/* ---- tbwrap status ---- */

static void touch(const char *dir, const char *name)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
}

static pid_t dead_pid(void)
{
	pid_t p = fork();
	assert_true(p >= 0);
	if (p == 0)
		_exit(0);
	assert_int_equal(waitpid(p, NULL, 0), p);
	return p;
}

static void test_status_select(void **state)
{
	struct fixture *f = *state;
	char dir[128], name[LEDGER_NAME_LEN], err[512], want[512], entry[64];
	pid_t me = getpid(), parent = getppid(), dead = dead_pid();

	snprintf(dir, sizeof(dir), "%s/shm", f->dir);
	assert_int_equal(mkdir(dir, 0700), 0);

	assert_int_equal(status_select(dir, 0, name, sizeof(name), err, sizeof(err)), 1);
	snprintf(want, sizeof(want), "no running tbwrap found (looked for %s/tbwrap-*)", dir);
	assert_string_equal(err, want);

	/* Names that are not ledgers, and the ledger of a launcher that is gone. */
	touch(dir, "other");
	touch(dir, "tbwrap-x-1");
	touch(dir, "tbwrap-12-");
	touch(dir, "tbwrap-0-abc");
	touch(dir, "sem.tbwrap-1-abc");
	snprintf(entry, sizeof(entry), "tbwrap-%d-dead", (int)dead);
	touch(dir, entry);
	assert_int_equal(status_select(dir, 0, name, sizeof(name), err, sizeof(err)), 1);
	assert_string_equal(err, want);

	/* ... which can still be read when asked for by pid. */
	assert_int_equal(status_select(dir, dead, name, sizeof(name), err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "/tbwrap-%d-dead", (int)dead);
	assert_string_equal(name, want);

	snprintf(entry, sizeof(entry), "tbwrap-%d-00ff", (int)me);
	touch(dir, entry);
	assert_int_equal(status_select(dir, 0, name, sizeof(name), err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "/tbwrap-%d-00ff", (int)me);
	assert_string_equal(name, want);

	snprintf(entry, sizeof(entry), "tbwrap-%d-11aa", (int)parent);
	touch(dir, entry);
	assert_int_equal(status_select(dir, 0, name, sizeof(name), err, sizeof(err)), 2);
	snprintf(want, sizeof(want),
		 "2 tbwrap sessions are running (pids %d, %d); name one: tbwrap status PID",
		 (int)(me < parent ? me : parent), (int)(me < parent ? parent : me));
	assert_string_equal(err, want);
	assert_int_equal(status_select(dir, parent, name, sizeof(name), err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "/tbwrap-%d-11aa", (int)parent);
	assert_string_equal(name, want);

	assert_int_equal(status_select(dir, 999999999, name, sizeof(name), err, sizeof(err)), 1);
	snprintf(want, sizeof(want),
		 "no tbwrap with pid 999999999 found (looked for %s/tbwrap-999999999-*)", dir);
	assert_string_equal(err, want);

	snprintf(want, sizeof(want), "%s/none", f->dir);
	assert_int_equal(status_select(want, 0, name, sizeof(name), err, sizeof(err)), 1);
	assert_non_null(strstr(err, "/none: No such file or directory"));
}

/* status_main on our own live ledger prints exactly render_report of it. */
static void test_status_main(void **state)
{
	struct fixture *f = *state;
	char path[128];
	struct render_opts o = {.color = false, .bars = true, .width = 20};

	fill(&f->l);
	snprintf(path, sizeof(path), "%s/status.out", f->dir);
	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	int rc = status_main(getpid(), &o);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	assert_int_equal(rc, 0);

	char *text = slurp(path);
	char *want = render_report(f->l.h, &o);
	assert_string_equal(text, want);
	assert_non_null(strstr(text,
			       "  pid 101  /test  exited 0  17.0K tokens (input 4000, "
			       "output 200, cache creation 800, cache read 12000)  $0.036\n"));
	free(want);
	free(text);

	/* No ledger of that pid: exit status 1, nothing on stdout. */
	assert_int_equal(status_main(999999999, &o), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_json_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_stdout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_select, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_main, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
