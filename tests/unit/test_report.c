/*
 * The JSON report of a real ledger (created, admitted, metered from a real Claude Code capture,
 * refused, stopped, run unmetered), parsed back with cJSON and checked field by field against the
 * schema of include/tbwrap/report.h; report_open's refusals (before anything runs) and
 * report_commit's all-or-nothing write (a temporary file renamed over the old report).
 *
 * And `tbwrap status`: which session status_select picks from a listing in the format of
 * /proc/net/unix (crafted files, then the real one with a socket of our own), and status_main
 * against a stand-in supervisor that hands out the sealed ledger, or refuses to.
 */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "tbwrap/ledger.h"
#include "tbwrap/prices.h"
#include "tbwrap/proto.h"
#include "tbwrap/render.h"
#include "tbwrap/report.h"
#include "tbwrap/status.h"

/* A token amount (no USD). */
#define TOK(n) ((struct amount){{(n), 0}})

#define FIXTURE "tests/fixtures/claude-code-2.1.197/stdout.stream-json.jsonl"

struct fixture {
	struct ledger l;
	char dir[64];
	int session_fd; /* a stand-in supervisor's listening socket, closed by teardown */
};

static const char *const names[] = {"/test", "/review"};
static const uint64_t limits[] = {20000, LEDGER_NO_LIMIT};

/* The built-in price table, as the supervisor prices calls. */
static struct price_table prices;

static uint64_t price_call(void *ctx, const char *model, const struct meter_usage *u,
			   uint64_t cache_1h, bool is_sum)
{
	(void)ctx;
	if (is_sum)
		return prices_cost_sum(&prices, model, u, prices_today(), NULL);
	return prices_cost(&prices, model, u, cache_1h, prices_today(), NULL);
}

static void feed_file(struct ledger *l, int inst, const char *path)
{
	struct meter_core *core = calloc(1, sizeof(*core));
	if (!prices.rows && prices_load_builtin(&prices, NULL, 0) < 0)
		fail_msg("the built-in price table does not load");
	struct meter_usage delta;
	struct meter_stream s;
	char buf[997]; /* odd size: lines split across feeds */
	uint64_t pos = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY);

	assert_non_null(core);
	assert_true(fd >= 0);
	core->price = price_call;
	meter_stream_init(&s, METER_LINE_MAX_DEFAULT);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		delta = (struct meter_usage){{0}};
		uint64_t before = core->pusd_total;
		meter_feed(core, &s, pos, buf, (size_t)n, &delta);
		ledger_record_delta(l, inst, &delta, core->pusd_total - before);
		pos += (uint64_t)n;
	}
	close(fd);
	delta = (struct meter_usage){{0}};
	uint64_t before = core->pusd_total;
	meter_finish(core, &s, &delta);
	ledger_record_delta(l, inst, &delta, core->pusd_total - before);
	ledger_set_model(l, inst, meter_last_model(core), false);
	ledger_publish_meter(l, inst, core);
	meter_stream_free(&s);
	free(core);
}

/*
 * Block mode, overall 50K, /test 20K, /review unbudgeted, estimate 1000:
 *   pid 101 /test: the real 4-call capture (17000 tokens, $0.036, success), exited 0;
 *   pid 102 /review: 11 tokens so far, still running, nested;
 *   pid 103 /test: refused (its 10K estimate does not fit in what is left of /test's 20K);
 *   pid 104 (prompt): stopped with 143 after 5 input tokens;
 *   pid 105 /review: found by the supervisor, running unmetered;
 * and 3 agents that ran beyond the agent table.
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
	f->session_fd = -1;
	*state = f;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tbwrap-test-report-XXXXXX");
	return mkdtemp(f->dir) ? 0 : -1;
}

static const char refusal_103[] =
	"command budget /test: used 17.0K + reserved 0 + estimate 10.0K > limit 20.0K";

static void fill(struct ledger *l)
{
	struct ledger_refusal why;
	char text[256];
	int a, b, c, d, e;

	assert_int_equal(ledger_admit(l, 0, 101, TOK(1000), &why, &a), LEDGER_ADMITTED);
	assert_int_equal(a, 0);
	feed_file(l, a, FIXTURE);
	/* As the supervisor's request book reports them: 4 calls, the worst 250 above its
	 * prediction. */
	ledger_note_requests(l, a, 4, TOK(250));
	ledger_settle(l, a, LEDGER_INST_EXITED, 0);

	assert_int_equal(ledger_admit(l, 1, 102, TOK(1000), &why, &b), LEDGER_ADMITTED);
	assert_int_equal(b, 1);
	struct meter_usage u = {.n = {10, 1, 0, 0}};
	ledger_record_delta(l, b, &u, 0);
	/* The reservation is the supervisor's: what is left of the estimate. */
	ledger_set_reserved(l, b, TOK(989));
	ledger_note_requests(l, b, 1, TOK(0));
	ledger_mark(l, b, LEDGER_F_NESTED, NULL);

	/* As the supervisor records a refusal: its exit status and why. */
	assert_int_equal(ledger_admit(l, 0, 103, TOK(10000), &why, &c), LEDGER_REFUSED);
	assert_int_equal(c, 2);
	ledger_describe_refusal(&why, text, sizeof(text));
	assert_string_equal(text, refusal_103);
	ledger_set_exit_code(l, c, 86);
	ledger_mark(l, c, 0, text);

	int cmd = ledger_command_index(l, LEDGER_CATCH_ALL, true);
	assert_int_equal(cmd, 2);
	assert_int_equal(ledger_admit(l, cmd, 104, TOK(1000), &why, &d), LEDGER_ADMITTED);
	assert_int_equal(d, 3);
	struct meter_usage u2 = {.n = {5, 0, 0, 0}};
	ledger_record_delta(l, d, &u2, 0);
	ledger_note_requests(l, d, 2, TOK(7));
	/* Its next request was refused before it was sent. */
	ledger_note_refused(l, d, TOK(1500));
	ledger_mark(l, d, 0, "stopped: overall budget");
	ledger_settle(l, d, LEDGER_INST_STOPPED, 143);
	/* Stopped with a call whose usage nothing reported and two whose final usage never
	 * showed: what they may cost stays held. */
	ledger_hold_unreported(l, d, 1, 2, TOK(1200));

	e = ledger_record_unadmitted(l, 1, 105, LEDGER_INST_RUNNING,
				     "no libtbwrap.so in it:\tstatic binary");
	assert_int_equal(e, 4);
	ledger_mark(l, e, LEDGER_F_ADOPTED, NULL);

	/* Filling the table to count "unlisted" agents would make a 1024-agent report: the
	 * supervisor's count is set directly (test_ledger.c tests how it grows). */
	__atomic_store_n(&l->h->unlisted, 3, __ATOMIC_RELEASE);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	if (f->session_fd >= 0)
		close(f->session_fd);
	ledger_close(&f->l);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "re");
	assert_non_null(fp);
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	char *copy = strdup(buf);
	assert_non_null(copy);
	return copy;
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "we");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

static void assert_absent(const char *path)
{
	errno = 0;
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(errno, ENOENT);
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

static void assert_bool(const cJSON *obj, const char *key, bool want)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!cJSON_IsBool(v))
		fail_msg("\"%s\" is not a boolean", key);
	if (cJSON_IsTrue(v) != want)
		fail_msg("\"%s\" is %s, expected %s", key, want ? "false" : "true",
			 want ? "true" : "false");
}

/* The object has exactly these keys, in this order (the schema, nothing more). */
static void assert_keys(const cJSON *obj, const char *const *keys, size_t n)
{
	assert_true(cJSON_IsObject(obj));
	assert_int_equal(cJSON_GetArraySize(obj), n);
	const cJSON *item = obj->child;
	for (size_t i = 0; i < n; i++, item = item->next)
		assert_string_equal(item->string, keys[i]);
}

#define KEYS(obj, ...)                                                                             \
	do {                                                                                       \
		static const char *const k_[] = {__VA_ARGS__};                                     \
		assert_keys((obj), k_, sizeof(k_) / sizeof(k_[0]));                                \
	} while (0)

static void assert_usage(const cJSON *obj, const char *key, double in, double out, double cw,
			 double cr)
{
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(obj, key);
	KEYS(u, "input", "output", "cache_creation", "cache_read", "total", "usd");
	assert_true(num(u, "input") == in);
	assert_true(num(u, "output") == out);
	assert_true(num(u, "cache_creation") == cw);
	assert_true(num(u, "cache_read") == cr);
	assert_true(num(u, "total") == in + out + cw + cr);
}

static void assert_budget(const cJSON *b, double reserved, double agents, double refused,
			  double stopped, double overshoot)
{
	assert_true(num(b, "reserved") == reserved);
	assert_true(num(b, "agents") == agents);
	assert_true(num(b, "refused") == refused);
	assert_true(num(b, "stopped") == stopped);
	assert_true(num(b, "overshoot") == overshoot);
}

/* What the supervisor's request book recorded for an agent; refused < 0: none (null). */
static void assert_requests(const cJSON *a, double requests, double refused, double max_error)
{
	assert_true(num(a, "requests") == requests);
	if (refused < 0)
		assert_null_field(a, "refused_prediction");
	else
		assert_true(num(a, "refused_prediction") == refused);
	assert_true(num(a, "max_prediction_error") == max_error);
}

#define AGENT_KEYS                                                                                 \
	"pid", "command", "status", "exit_code", "usage", "model", "priced", "cost_usd",           \
		"result_subtype", "anomalies", "requests", "refused_prediction",                   \
		"refused_prediction_usd", "max_prediction_error", "max_prediction_error_usd",      \
		"unreported_calls", "unfinal_calls", "held", "held_usd", "nested", "adopted",      \
		"metered", "note"

static void assert_no_anomalies(const cJSON *a)
{
	const cJSON *an = cJSON_GetObjectItemCaseSensitive(a, "anomalies");
	KEYS(an, "not_json", "bad_number", "oversize", "gap", "orphan_delta");
	for (const cJSON *k = an->child; k; k = k->next)
		assert_true(cJSON_IsNumber(k) && k->valuedouble == 0);
}

static void check_report(const char *text)
{
	cJSON *root = cJSON_Parse(text);
	if (!root)
		fail_msg("not JSON:\n%s", text);
	KEYS(root, "version", "mode", "estimate", "counted", "overall", "unlisted", "commands",
	     "agents");
	assert_true(num(root, "version") == 5);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "counted")), 4);
	assert_string_equal(str(root, "mode"), "block");
	assert_true(num(root, "estimate") == 1000);
	assert_true(num(root, "unlisted") == 3);

	const cJSON *ov = cJSON_GetObjectItemCaseSensitive(root, "overall");
	KEYS(ov, "limit", "used", "reserved", "agents", "refused", "stopped", "overshoot",
	     "usd_limit", "usd_reserved", "usd_overshoot");
	assert_null_field(ov, "usd_limit");
	assert_true(num(ov, "limit") == 50000);
	assert_usage(ov, "used", 4015, 201, 800, 12000);
	/* pid 102: 1000 estimate - 11 used; pid 105 reserved nothing. */
	assert_budget(ov, 2189, 4, 1, 1, 0); /* 989 for b, 1200 held for d */

	const cJSON *cmds = cJSON_GetObjectItemCaseSensitive(root, "commands");
	assert_true(cJSON_IsArray(cmds));
	assert_int_equal(cJSON_GetArraySize(cmds), 3);
	const cJSON *t = cJSON_GetArrayItem(cmds, 0);
	KEYS(t, "name", "limit", "used", "reserved", "agents", "refused", "stopped", "overshoot",
	     "usd_limit", "usd_reserved", "usd_overshoot");
	assert_string_equal(str(t, "name"), "/test");
	assert_true(num(t, "limit") == 20000);
	assert_usage(t, "used", 4000, 200, 800, 12000);
	assert_budget(t, 0, 1, 1, 0, 0);
	const cJSON *r = cJSON_GetArrayItem(cmds, 1);
	assert_string_equal(str(r, "name"), "/review");
	assert_null_field(r, "limit");
	assert_usage(r, "used", 10, 1, 0, 0);
	assert_budget(r, 989, 2, 0, 0, 0);
	const cJSON *p = cJSON_GetArrayItem(cmds, 2);
	assert_string_equal(str(p, "name"), "(prompt)");
	assert_null_field(p, "limit");
	assert_usage(p, "used", 5, 0, 0, 0);
	assert_budget(p, 1200, 1, 0, 1, 0);

	const cJSON *ag = cJSON_GetObjectItemCaseSensitive(root, "agents");
	assert_true(cJSON_IsArray(ag));
	assert_int_equal(cJSON_GetArraySize(ag), 5);

	const cJSON *a = cJSON_GetArrayItem(ag, 0);
	KEYS(a, AGENT_KEYS);
	assert_true(num(a, "pid") == 101);
	assert_string_equal(str(a, "command"), "/test");
	assert_string_equal(str(a, "status"), "exited");
	assert_true(num(a, "exit_code") == 0);
	assert_usage(a, "usage", 4000, 200, 800, 12000);
	assert_true(num(a, "cost_usd") == 0.036);
	/* tbwrap's price of the same four calls of claude-opus-4-8 (5 / 6.25 / 0.50 / 25 per
	 * MTok): 4000 x 5 + 800 x 6.25 + 12000 x 0.50 + 200 x 25 = 36000 micro-USD, as the CLI
	 * said. */
	assert_true(num(cJSON_GetObjectItemCaseSensitive(a, "usage"), "usd") == 0.036);
	assert_string_equal(str(a, "model"), "claude-opus-4-8");
	assert_bool(a, "priced", true);
	assert_string_equal(str(a, "result_subtype"), "success");
	assert_no_anomalies(a);
	assert_requests(a, 4, -1, 250);
	assert_bool(a, "nested", false);
	assert_bool(a, "adopted", false);
	assert_bool(a, "metered", true);
	assert_null_field(a, "note");

	const cJSON *b = cJSON_GetArrayItem(ag, 1);
	KEYS(b, AGENT_KEYS);
	assert_true(num(b, "pid") == 102);
	assert_string_equal(str(b, "command"), "/review");
	assert_string_equal(str(b, "status"), "running");
	assert_null_field(b, "exit_code");
	assert_usage(b, "usage", 10, 1, 0, 0);
	assert_null_field(b, "cost_usd");
	assert_null_field(b, "result_subtype");
	assert_no_anomalies(b);
	assert_requests(b, 1, -1, 0);
	/* Reserved while it runs, but nothing unreported: nothing held for such calls. */
	assert_true(num(b, "unreported_calls") == 0);
	assert_true(num(b, "unfinal_calls") == 0);
	assert_true(num(b, "held") == 0);
	assert_bool(b, "nested", true);
	assert_bool(b, "adopted", false);
	assert_bool(b, "metered", true);
	assert_null_field(b, "note");

	const cJSON *c = cJSON_GetArrayItem(ag, 2);
	KEYS(c, AGENT_KEYS);
	assert_true(num(c, "pid") == 103);
	assert_string_equal(str(c, "command"), "/test");
	assert_string_equal(str(c, "status"), "refused");
	assert_true(num(c, "exit_code") == 86);
	assert_usage(c, "usage", 0, 0, 0, 0);
	assert_null_field(c, "cost_usd");
	assert_requests(c, 0, -1, 0);
	/* Refused agents ran nothing: their usage (0) is known. */
	assert_bool(c, "metered", true);
	assert_string_equal(str(c, "note"), refusal_103);

	const cJSON *d = cJSON_GetArrayItem(ag, 3);
	KEYS(d, AGENT_KEYS);
	assert_true(num(d, "pid") == 104);
	assert_string_equal(str(d, "command"), "(prompt)");
	assert_string_equal(str(d, "status"), "stopped");
	assert_true(num(d, "exit_code") == 143);
	assert_usage(d, "usage", 5, 0, 0, 0);
	assert_requests(d, 2, 1500, 7);
	assert_true(num(d, "unreported_calls") == 1);
	assert_true(num(d, "unfinal_calls") == 2);
	assert_true(num(d, "held") == 1200);
	assert_bool(d, "metered", true);
	assert_string_equal(str(d, "note"), "stopped: overall budget");

	const cJSON *e = cJSON_GetArrayItem(ag, 4);
	KEYS(e, AGENT_KEYS);
	assert_true(num(e, "pid") == 105);
	assert_string_equal(str(e, "command"), "/review");
	assert_string_equal(str(e, "status"), "running");
	assert_null_field(e, "exit_code");
	assert_usage(e, "usage", 0, 0, 0, 0);
	assert_requests(e, 0, -1, 0);
	assert_bool(e, "nested", false);
	assert_bool(e, "adopted", true);
	/* Its counts are not its usage. */
	assert_bool(e, "metered", false);
	/* The tab (a control character from wherever the note came from) is replaced. */
	assert_string_equal(str(e, "note"), "no libtbwrap.so in it:?static binary");
	cJSON_Delete(root);
}

static void test_json_text(void **state)
{
	struct fixture *f = *state;

	fill(&f->l);
	char *text = report_json(f->l.h);
	assert_non_null(text);
	assert_int_equal(text[strlen(text) - 1], '\n');
	check_report(text);
	free(text);
}

/* A subtype from the agent's own output is kept to printable ASCII. */
static void test_json_sanitizes_subtype(void **state)
{
	struct fixture *f = *state;
	struct meter_core *core = calloc(1, sizeof(*core));
	int slot;

	assert_non_null(core);
	assert_int_equal(ledger_admit(&f->l, 1, 7, TOK(0), NULL, &slot), LEDGER_ADMITTED);
	core->results = 1;
	memcpy(core->result_subtype, "ok\x01\xff\"x", 7);
	ledger_publish_meter(&f->l, slot, core);
	free(core);
	char *text = report_json(f->l.h);
	cJSON *root = cJSON_Parse(text);
	assert_non_null(root);
	const cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "agents"), 0);
	assert_string_equal(str(a, "result_subtype"), "ok??\"x");
	/* A result line with a cost of $0: the cost is known, and 0. */
	assert_true(num(a, "cost_usd") == 0);
	cJSON_Delete(root);
	free(text);
}

/* How far each budget went over its limit (the largest excess seen), and the prediction of a
 * request refused against a budget already over. */
static void test_json_overshoot(void **state)
{
	struct fixture *f = *state;
	struct ledger_refusal why;
	int a, b;

	assert_int_equal(ledger_admit(&f->l, 0, 201, TOK(1000), &why, &a), LEDGER_ADMITTED);
	assert_int_equal(ledger_admit(&f->l, 1, 202, TOK(1000), &why, &b), LEDGER_ADMITTED);
	struct meter_usage u = {.n = {20700, 0, 0, 0}};
	ledger_record_delta(&f->l, a, &u, 0);
	u = (struct meter_usage){.n = {0, 29800, 0, 0}};
	ledger_record_delta(&f->l, b, &u, 0);
	u = (struct meter_usage){.n = {0, 0, 100, 0}};
	ledger_record_delta(&f->l, a, &u, 0);
	assert_false(ledger_admit_request(&f->l, a, TOK(5000), TOK(5000), &why));

	char *text = report_json(f->l.h);
	assert_non_null(text);
	cJSON *root = cJSON_Parse(text);
	assert_non_null(root);
	/* Overall: 50600 of 50000; /test: 20800 of 20000; /review has no limit to go over. */
	const cJSON *ov = cJSON_GetObjectItemCaseSensitive(root, "overall");
	assert_usage(ov, "used", 20700, 29800, 100, 0);
	assert_budget(ov, 2000, 2, 0, 0, 600);
	const cJSON *cmds = cJSON_GetObjectItemCaseSensitive(root, "commands");
	assert_int_equal(cJSON_GetArraySize(cmds), 2);
	const cJSON *t = cJSON_GetArrayItem(cmds, 0);
	assert_string_equal(str(t, "name"), "/test");
	assert_budget(t, 1000, 1, 0, 0, 800);
	const cJSON *r = cJSON_GetArrayItem(cmds, 1);
	assert_string_equal(str(r, "name"), "/review");
	assert_usage(r, "used", 0, 29800, 0, 0);
	assert_budget(r, 1000, 1, 0, 0, 0);
	const cJSON *ag = cJSON_GetObjectItemCaseSensitive(root, "agents");
	const cJSON *ga = cJSON_GetArrayItem(ag, 0);
	KEYS(ga, AGENT_KEYS);
	assert_requests(ga, 0, 5000, 0);
	assert_requests(cJSON_GetArrayItem(ag, 1), 0, -1, 0);
	cJSON_Delete(root);
	free(text);
}

static void test_commit_file(void **state)
{
	struct fixture *f = *state;
	char path[128], tmp[160], linked[160], err[256] = "";
	struct report_file rf;
	struct stat st_tmp, st_path;

	fill(&f->l);
	snprintf(path, sizeof(path), "%s/report.json", f->dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	snprintf(linked, sizeof(linked), "%s/old-report", f->dir);
	write_file(path, "old\n");
	assert_int_equal(link(path, linked), 0);

	/* Opened before the run: path.tmp exists (empty), the old report is untouched. */
	assert_int_equal(report_open(&rf, path, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_false(rf.is_stdout);
	assert_true(rf.fd >= 0);
	assert_string_equal(rf.tmp, tmp);
	assert_int_equal(stat(tmp, &st_tmp), 0);
	assert_int_equal(st_tmp.st_size, 0);
	mode_t mask = umask(0);
	umask(mask);
	assert_int_equal(st_tmp.st_mode & 07777, 0644 & ~mask);
	char *old = slurp(path);
	assert_string_equal(old, "old\n");
	free(old);

	assert_int_equal(report_commit(&rf, f->l.h, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(rf.fd, -1);
	assert_null(rf.tmp);
	/* Renamed, not rewritten: path is now the inode written as path.tmp, and the old one,
	 * still linked elsewhere, kept its bytes. */
	assert_absent(tmp);
	assert_int_equal(stat(path, &st_path), 0);
	assert_true(st_path.st_ino == st_tmp.st_ino);
	char *kept = slurp(linked);
	assert_string_equal(kept, "old\n");
	free(kept);
	char *text = slurp(path);
	check_report(text);
	char *direct = report_json(f->l.h);
	assert_string_equal(text, direct);
	free(direct);
	free(text);
}

static void test_commit_stdout(void **state)
{
	struct fixture *f = *state;
	char path[128], err[256] = "";
	struct report_file rf;

	fill(&f->l);
	snprintf(path, sizeof(path), "%s/stdout", f->dir);
	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	int rc_open = report_open(&rf, "-", err, sizeof(err));
	/* Buffered by stdio, not yet written: it must come out before the report. */
	printf("before the report\n");
	int rc = rc_open == 0 ? report_commit(&rf, f->l.h, err, sizeof(err)) : -1;
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	assert_int_equal(rc_open, 0);
	assert_true(rf.is_stdout);
	assert_null(rf.tmp);
	assert_int_equal(rc, 0);
	char *text = slurp(path);
	const char *head = "before the report\n";
	assert_memory_equal(text, head, strlen(head));
	check_report(text + strlen(head));
	free(text);
}

static void expect_open_refused(const char *path, const char *want)
{
	struct report_file rf;
	char err[512] = "";

	assert_int_equal(report_open(&rf, path, err, sizeof(err)), -1);
	assert_string_equal(err, want);
	assert_int_equal(rf.fd, -1);
	assert_null(rf.tmp);
}

/* Refused before the command runs, with nothing left behind. */
static void test_open_refusals(void **state)
{
	struct fixture *f = *state;
	char path[128], tmp[160], want[512];

	snprintf(path, sizeof(path), "%s/none/r.json", f->dir);
	snprintf(want, sizeof(want),
		 "--report-json %s: cannot create %s.tmp: No such file or directory (its "
		 "directory does not exist)",
		 path, path);
	expect_open_refused(path, want);

	snprintf(path, sizeof(path), "%s/adir", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(want, sizeof(want), "--report-json %s: is a directory (name a file in it)", path);
	expect_open_refused(path, want);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_absent(tmp);

	/* A planted symlink at path.tmp is not followed. */
	snprintf(path, sizeof(path), "%s/r.json", f->dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	char target[160];
	snprintf(target, sizeof(target), "%s/elsewhere", f->dir);
	assert_int_equal(symlink(target, tmp), 0);
	snprintf(want, sizeof(want),
		 "--report-json %s: cannot create %s: Too many levels of symbolic links", path,
		 tmp);
	expect_open_refused(path, want);
	assert_absent(target);
	assert_absent(path);

	/* Standard output closed, or open for reading only. */
	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	assert_true(saved >= 0);
	/* Opened first: with fd 1 closed, it would take that number. */
	int ro = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(ro >= 0);
	close(STDOUT_FILENO);
	struct report_file rf;
	char err[256] = "";
	int rc_closed = report_open(&rf, "-", err, sizeof(err));
	char err_closed[256];
	snprintf(err_closed, sizeof(err_closed), "%s", err);
	dup2(ro, STDOUT_FILENO);
	close(ro);
	int rc_ro = report_open(&rf, "-", err, sizeof(err));
	dup2(saved, STDOUT_FILENO);
	close(saved);
	assert_int_equal(rc_closed, -1);
	assert_string_equal(err_closed, "--report-json -: standard output is closed");
	assert_int_equal(rc_ro, -1);
	assert_string_equal(err, "--report-json -: standard output is not open for writing");
}

/* A report that cannot be written leaves the old one as it was and no temporary file. */
static void test_commit_failures_keep_old(void **state)
{
	struct fixture *f = *state;
	char path[128], tmp[160], err[512] = "", want[512];
	struct report_file rf;

	fill(&f->l);
	/* The rename fails (a directory took the name during the run). */
	snprintf(path, sizeof(path), "%s/later-a-dir", f->dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(report_open(&rf, path, err, sizeof(err)), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(report_commit(&rf, f->l.h, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "report %s: cannot rename %s: Is a directory", path, tmp);
	assert_string_equal(err, want);
	assert_absent(tmp);
	assert_null(rf.tmp);
	assert_int_equal(rf.fd, -1);

	/* The write fails (a file size limit): the old report stays whole. */
	snprintf(path, sizeof(path), "%s/limited.json", f->dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	write_file(path, "old\n");
	assert_int_equal(report_open(&rf, path, err, sizeof(err)), 0);
	struct rlimit saved, small = {.rlim_cur = 100, .rlim_max = RLIM_INFINITY};
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	small.rlim_max = saved.rlim_max;
	void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	int rc = report_commit(&rf, f->l.h, err, sizeof(err));
	setrlimit(RLIMIT_FSIZE, &saved);
	signal(SIGXFSZ, old_handler);
	assert_int_equal(rc, -1);
	snprintf(want, sizeof(want), "report %s: cannot write %s: File too large", path, tmp);
	assert_string_equal(err, want);
	assert_absent(tmp);
	char *text = slurp(path);
	assert_string_equal(text, "old\n");
	free(text);
}

/* The run did not happen: the temporary file goes, an old report stays. */
static void test_abandon(void **state)
{
	struct fixture *f = *state;
	char path[128], tmp[160], err[256];
	struct report_file rf;

	snprintf(path, sizeof(path), "%s/report.json", f->dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	write_file(path, "old\n");
	assert_int_equal(report_open(&rf, path, err, sizeof(err)), 0);
	assert_int_equal(access(tmp, F_OK), 0);
	report_abandon(&rf);
	assert_absent(tmp);
	assert_int_equal(rf.fd, -1);
	assert_null(rf.tmp);
	report_abandon(&rf); /* twice is harmless */
	char *text = slurp(path);
	assert_string_equal(text, "old\n");
	free(text);
}

/* ---- tbwrap status: choosing a session ---- */

#define HEX16 "0123456789abcdef"
#define ACCEPTCON 0x00010000u

/* A listing in the format of /proc/net/unix. */
struct listing {
	char text[16384];
	size_t len;
};

static void add_socket(struct listing *ls, unsigned flags, const char *state, const char *path)
{
	int n = snprintf(ls->text + ls->len, sizeof(ls->text) - ls->len,
			 "%016zx: 00000002 00000000 %08X 0005 %s %5zu%s%s\n", ls->len, flags, state,
			 1000 + ls->len, path ? " " : "", path ? path : "");
	assert_true(n > 0 && (size_t)n < sizeof(ls->text) - ls->len);
	ls->len += (size_t)n;
}

static void add_session(struct listing *ls, unsigned uid, long pid)
{
	char path[128];
	snprintf(path, sizeof(path), "@tbwrap-%u-%ld-" HEX16, uid, pid);
	add_socket(ls, ACCEPTCON, "01", path);
}

static void begin_listing(struct listing *ls)
{
	ls->len = 0;
	ls->text[0] = '\0';
	int n = snprintf(ls->text, sizeof(ls->text),
			 "Num       RefCount Protocol Flags    Type St Inode Path\n");
	ls->len = (size_t)n;
}

static const char *save_listing(const struct fixture *f, const struct listing *ls)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/unix", f->dir);
	write_file(path, ls->text);
	return path;
}

static int select_in(const struct fixture *f, const struct listing *ls, pid_t pid, char *name,
		     size_t namelen, char *err, size_t errlen)
{
	name[0] = err[0] = '\0';
	return status_select(save_listing(f, ls), pid, name, namelen, err, errlen);
}

static unsigned my_uid(void)
{
	return (unsigned)geteuid();
}

static void test_status_select_none(void **state)
{
	struct fixture *f = *state;
	struct listing ls;
	char name[PROTO_NAME_LEN], err[512], want[512];

	begin_listing(&ls);
	add_socket(&ls, 0, "03", NULL);
	add_socket(&ls, ACCEPTCON, "01", "/run/systemd/private");
	assert_int_equal(select_in(f, &ls, 0, name, sizeof(name), err, sizeof(err)), 1);
	snprintf(want, sizeof(want), "no running tbwrap found (as uid %u)", my_uid());
	assert_string_equal(err, want);
	assert_int_equal(select_in(f, &ls, 4321, name, sizeof(name), err, sizeof(err)), 1);
	snprintf(want, sizeof(want), "no tbwrap with pid 4321 is running (as uid %u)", my_uid());
	assert_string_equal(err, want);

	char missing[128];
	snprintf(missing, sizeof(missing), "%s/missing", f->dir);
	assert_int_equal(status_select(missing, 0, name, sizeof(name), err, sizeof(err)), 1);
	snprintf(want, sizeof(want), "cannot read %s: No such file or directory", missing);
	assert_string_equal(err, want);
}

static void test_status_select_one(void **state)
{
	struct fixture *f = *state;
	struct listing ls;
	char name[PROTO_NAME_LEN], err[512], want[128];

	begin_listing(&ls);
	add_socket(&ls, 0, "03", NULL);
	add_session(&ls, my_uid(), 4321);
	add_socket(&ls, 0, "03", "@some-other-abstract-name");
	assert_int_equal(select_in(f, &ls, 0, name, sizeof(name), err, sizeof(err)), 0);
	/* The name without its '@' (the leading NUL of an abstract address). */
	snprintf(want, sizeof(want), "tbwrap-%u-4321-" HEX16, my_uid());
	assert_string_equal(name, want);
	assert_int_equal(select_in(f, &ls, 4321, name, sizeof(name), err, sizeof(err)), 0);
	assert_string_equal(name, want);
}

static void test_status_select_several_sorted(void **state)
{
	struct fixture *f = *state;
	struct listing ls;
	char name[PROTO_NAME_LEN], err[512], want[128];

	begin_listing(&ls);
	add_session(&ls, my_uid(), 300);
	add_session(&ls, my_uid(), 20);
	add_session(&ls, my_uid(), 1000);
	assert_int_equal(select_in(f, &ls, 0, name, sizeof(name), err, sizeof(err)), 2);
	assert_string_equal(err, "3 tbwrap sessions are running (pids 20, 300, 1000); name one: "
				 "tbwrap status PID");
	/* Named by pid: that one. */
	assert_int_equal(select_in(f, &ls, 300, name, sizeof(name), err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "tbwrap-%u-300-" HEX16, my_uid());
	assert_string_equal(name, want);
	assert_int_equal(select_in(f, &ls, 1000, name, sizeof(name), err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "tbwrap-%u-1000-" HEX16, my_uid());
	assert_string_equal(name, want);

	/* More than the message lists. */
	begin_listing(&ls);
	for (int p = 1; p <= 10; p++)
		add_session(&ls, my_uid(), p);
	assert_int_equal(select_in(f, &ls, 0, name, sizeof(name), err, sizeof(err)), 2);
	assert_string_equal(err, "10 tbwrap sessions are running (pids 1, 2, 3, 4, 5, 6, 7, 8, "
				 "...); name one: tbwrap status PID");

	/* Two sockets claiming one pid (one of them is not what it says). */
	begin_listing(&ls);
	add_session(&ls, my_uid(), 55);
	char other[128];
	snprintf(other, sizeof(other), "@tbwrap-%u-55-fedcba9876543210", my_uid());
	add_socket(&ls, ACCEPTCON, "01", other);
	assert_int_equal(select_in(f, &ls, 55, name, sizeof(name), err, sizeof(err)), 2);
	assert_string_equal(err, "several sessions claim pid 55; name none");
}

static void test_status_select_ignores_other_uid(void **state)
{
	struct fixture *f = *state;
	struct listing ls;
	char name[PROTO_NAME_LEN], err[512], want[128];

	begin_listing(&ls);
	add_session(&ls, my_uid() + 1, 77);
	/* A uid of which ours is a prefix ("tbwrap-1000-" is not "tbwrap-100-"). */
	add_session(&ls, my_uid() * 10 + 7, 78);
	assert_int_equal(select_in(f, &ls, 0, name, sizeof(name), err, sizeof(err)), 1);
	assert_int_equal(select_in(f, &ls, 77, name, sizeof(name), err, sizeof(err)), 1);
	add_session(&ls, my_uid(), 79);
	assert_int_equal(select_in(f, &ls, 0, name, sizeof(name), err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "tbwrap-%u-79-" HEX16, my_uid());
	assert_string_equal(name, want);
}

/* Only a listening socket is a session: an accepted connection has the same name. */
static void test_status_select_ignores_not_listening(void **state)
{
	struct fixture *f = *state;
	struct listing ls;
	char name[PROTO_NAME_LEN], err[512], path[128], want[128];

	begin_listing(&ls);
	snprintf(path, sizeof(path), "@tbwrap-%u-80-" HEX16, my_uid());
	add_socket(&ls, 0, "03", path);
	add_socket(&ls, 0, "01", path); /* bound, never listened */
	assert_int_equal(select_in(f, &ls, 0, name, sizeof(name), err, sizeof(err)), 1);
	assert_int_equal(select_in(f, &ls, 80, name, sizeof(name), err, sizeof(err)), 1);
	add_socket(&ls, ACCEPTCON, "01", path);
	assert_int_equal(select_in(f, &ls, 0, name, sizeof(name), err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s", path + 1);
	assert_string_equal(name, want);
}

static void test_status_select_ignores_malformed(void **state)
{
	struct fixture *f = *state;
	struct listing ls;
	char name[PROTO_NAME_LEN], err[512], path[160], want[160];
	unsigned u = my_uid();
	static const char *const tails[] = {
		"abc-" HEX16,	       /* pid not a number */
		"0-" HEX16,	       /* pid 0 */
		"012-" HEX16,	       /* leading zero */
		"-5-" HEX16,	       /* negative */
		"99999999999-" HEX16,  /* beyond a pid */
		"55-0123456789abcde",  /* 15 hex digits */
		"55-" HEX16 "0",       /* 17 */
		"55-0123456789ABCDEF", /* upper case */
		"55-0123456789abcdeg", /* not hex */
		"55" HEX16,	       /* no dash */
		"55-",		       /* nothing after it */
		"55",		       /* nor a dash */
	};

	begin_listing(&ls);
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		snprintf(path, sizeof(path), "@tbwrap-%u-%s", u, tails[i]);
		add_socket(&ls, ACCEPTCON, "01", path);
	}
	/* A path name, not an abstract one: anyone could have made it. */
	snprintf(path, sizeof(path), "/tmp/tbwrap-%u-56-" HEX16, u);
	add_socket(&ls, ACCEPTCON, "01", path);
	snprintf(path, sizeof(path), "@xtbwrap-%u-57-" HEX16, u);
	add_socket(&ls, ACCEPTCON, "01", path);
	snprintf(path, sizeof(path), "@tbwrap%u-58-" HEX16, u);
	add_socket(&ls, ACCEPTCON, "01", path);
	/* Lines that are not socket lines at all. */
	ls.len +=
		(size_t)snprintf(ls.text + ls.len, sizeof(ls.text) - ls.len,
				 "garbage\n\n0000: 1 2 zz 0005 01 7 @tbwrap-%u-59-" HEX16 "\n", u);
	assert_int_equal(select_in(f, &ls, 0, name, sizeof(name), err, sizeof(err)), 1);
	snprintf(want, sizeof(want), "no running tbwrap found (as uid %u)", u);
	assert_string_equal(err, want);

	/* The largest pid there can be is still one. */
	add_session(&ls, u, 2147483647);
	assert_int_equal(select_in(f, &ls, 0, name, sizeof(name), err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "tbwrap-%u-2147483647-" HEX16, u);
	assert_string_equal(name, want);
}

static int listen_abstract(const char *name, bool do_listen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	memcpy(sa.sun_path + 1, name, n);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, alen), 0);
	if (do_listen)
		assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/* The real /proc/net/unix, with a session socket of our own (named with our pid, so that no
 * other session on the machine can be the one chosen). */
static void test_status_select_real_proc_net_unix(void **state)
{
	struct fixture *f = *state;
	char name[PROTO_NAME_LEN], got[PROTO_NAME_LEN], err[512];

	snprintf(name, sizeof(name), "tbwrap-%u-%d-00000000deadbeef", my_uid(), (int)getpid());
	int fd = listen_abstract(name, false);
	/* Bound but not listening: not a session. */
	assert_int_equal(
		status_select(STATUS_NET_UNIX, getpid(), got, sizeof(got), err, sizeof(err)), 1);
	assert_int_equal(listen(fd, 4), 0);
	f->session_fd = fd;
	assert_int_equal(
		status_select(STATUS_NET_UNIX, getpid(), got, sizeof(got), err, sizeof(err)), 0);
	assert_string_equal(got, name);
}

/* ---- tbwrap status: showing it ---- */

/* A stand-in supervisor in a child: answers one PROTO_STATUS with reply text and, when
 * ledger_fd >= 0, that fd. Exits 0 when the request was a well-formed PROTO_STATUS. */
static pid_t serve_once(int lfd, int ledger_fd, const char *text)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid)
		return pid;
	alarm(10); /* never outlive a test that did not connect */
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	struct proto_msg m;
	ssize_t got = c >= 0 ? recv(c, &m, sizeof(m), 0) : -1;
	bool ok = got == (ssize_t)sizeof(m) && m.magic == PROTO_MAGIC && m.type == PROTO_STATUS;
	struct proto_reply r;
	memset(&r, 0, sizeof(r));
	r.magic = PROTO_MAGIC;
	r.verdict = ledger_fd >= 0 ? PROTO_RUN : PROTO_REFUSE;
	snprintf(r.text, sizeof(r.text), "%s", text);
	struct iovec iov = {.iov_base = &r, .iov_len = sizeof(r)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (ledger_fd >= 0) {
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &ledger_fd, sizeof(int));
	}
	if (c < 0 || sendmsg(c, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(r))
		ok = false;
	_exit(ok ? 0 : 1);
}

static void wait_ok(pid_t pid)
{
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Runs status_main(getpid()) with stdout and stderr in files; returns its status. */
static int run_status(const struct fixture *f, const struct render_opts *o, char **out,
		      char **errout)
{
	char opath[128], epath[128];
	snprintf(opath, sizeof(opath), "%s/status.out", f->dir);
	snprintf(epath, sizeof(epath), "%s/status.err", f->dir);
	fflush(stdout);
	fflush(stderr);
	int so = dup(STDOUT_FILENO), se = dup(STDERR_FILENO);
	int fo = open(opath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int fe = open(epath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(so >= 0 && se >= 0 && fo >= 0 && fe >= 0);
	dup2(fo, STDOUT_FILENO);
	dup2(fe, STDERR_FILENO);
	close(fo);
	close(fe);
	int rc = status_main(getpid(), o);
	fflush(stdout);
	dup2(so, STDOUT_FILENO);
	dup2(se, STDERR_FILENO);
	close(so);
	close(se);
	*out = slurp(opath);
	*errout = slurp(epath);
	return rc;
}

static void test_status_main_shows_the_ledger(void **state)
{
	struct fixture *f = *state;
	struct render_opts o = {.color = false, .bars = true, .width = 20};
	char name[PROTO_NAME_LEN], *out, *errout;

	fill(&f->l);
	snprintf(name, sizeof(name), "tbwrap-%u-%d-" HEX16, my_uid(), (int)getpid());
	f->session_fd = listen_abstract(name, true);
	pid_t server = serve_once(f->session_fd, f->l.fd, "");
	int rc = run_status(f, &o, &out, &errout);
	wait_ok(server);
	assert_int_equal(rc, 0);
	assert_string_equal(errout, "");
	char *want = render_report(f->l.h, &o);
	assert_string_equal(out, want);
	assert_non_null(strstr(out, "  pid 101  /test  exited 0  17.0K tokens (input 4000, "
				    "output 200, cache creation 800, cache read 12000)  $0.036 "
				    "(the CLI said $0.036)\n"));
	assert_non_null(strstr(out, "  pid 105  /review  running  NOT METERED (no libtbwrap.so in "
				    "it:"));
	free(want);
	free(out);
	free(errout);
}

static void test_status_main_refusals(void **state)
{
	struct fixture *f = *state;
	struct render_opts o = {.color = false, .bars = true, .width = 20};
	char name[PROTO_NAME_LEN], want[512], *out, *errout;

	/* Nobody there. */
	int rc = run_status(f, &o, &out, &errout);
	assert_int_equal(rc, 1);
	assert_string_equal(out, "");
	snprintf(want, sizeof(want), "tbwrap: no tbwrap with pid %d is running (as uid %u)\n",
		 (int)getpid(), my_uid());
	assert_string_equal(errout, want);
	free(out);
	free(errout);

	snprintf(name, sizeof(name), "tbwrap-%u-%d-" HEX16, my_uid(), (int)getpid());
	f->session_fd = listen_abstract(name, true);

	/* The session answers without a ledger, and says why. */
	pid_t server = serve_once(f->session_fd, -1, "this tbwrap session belongs to another user");
	rc = run_status(f, &o, &out, &errout);
	wait_ok(server);
	assert_int_equal(rc, 1);
	assert_string_equal(out, "");
	snprintf(want, sizeof(want),
		 "tbwrap: the session @%s sent no ledger: this tbwrap session belongs to another "
		 "user\n",
		 name);
	assert_string_equal(errout, want);
	free(out);
	free(errout);

	/* The session sends an fd that is not a sealed ledger: not believed, not shown. */
	int fake = memfd_create("not-a-ledger", MFD_CLOEXEC);
	assert_true(fake >= 0);
	assert_int_equal(ftruncate(fake, (off_t)sizeof(struct ledger_header)), 0);
	server = serve_once(f->session_fd, fake, "");
	close(fake);
	rc = run_status(f, &o, &out, &errout);
	wait_ok(server);
	assert_int_equal(rc, 1);
	assert_string_equal(out, "");
	assert_string_equal(errout, "tbwrap: the ledger received is not sealed: not from a tbwrap "
				    "supervisor\n");
	free(out);
	free(errout);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_json_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_sanitizes_subtype, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_overshoot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_stdout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_failures_keep_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abandon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_select_none, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_select_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_select_several_sorted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_select_ignores_other_uid, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_status_select_ignores_not_listening, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_status_select_ignores_malformed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_status_select_real_proc_net_unix, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_status_main_shows_the_ledger, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_main_refusals, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
