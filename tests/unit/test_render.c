/*
 * Rendering: token counts as the seed formats them, bars at every colour boundary (69/70/90/91 %),
 * full, over budget, no budget and zero budget, with and without colour, and the exact text of
 * the report (an agent that could not be metered says so, with why) and the live status line for
 * a ledger built in memory.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tbwrap/render.h"

#define F "\u2588"
#define E "\u2591"

/* ---- token counts ---- */

struct tok_case {
	uint64_t n;
	const char *s;
};

/* Expected values are what the seed's _format_tokens prints (Python "%.1f" rounds the binary
 * value to nearest, ties to even, like glibc), except the 1000.0K -> 1.0M promotion. */
static const struct tok_case tok_cases[] = {
	{0, "0"},
	{1, "1"},
	{999, "999"},
	{1000, "1.0K"},
	{1049, "1.0K"},
	{1050, "1.1K"}, /* 1.05 is stored just above 1.05 */
	{1250, "1.2K"}, /* exact tie: to even */
	{1500, "1.5K"},
	{12345, "12.3K"},
	{50000, "50.0K"},
	{999949, "999.9K"},
	{999950, "1.0M"},
	{999999, "1.0M"},
	{1000000, "1.0M"},
	{1500000, "1.5M"},
	{123456789, "123.5M"},
	{UINT64_C(9007199254740992), "9007199254.7M"},
};

static void test_tokens(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(tok_cases) / sizeof(tok_cases[0]); i++) {
		char buf[32];
		render_tokens(buf, sizeof(buf), tok_cases[i].n);
		if (strcmp(buf, tok_cases[i].s) != 0)
			fail_msg("render_tokens(%llu) = \"%s\", expected \"%s\"",
				 (unsigned long long)tok_cases[i].n, buf, tok_cases[i].s);
	}
	char small[4];
	render_tokens(small, sizeof(small), 12345);
	assert_string_equal(small, "12.");
}

static void test_cost(void **state)
{
	(void)state;
	static const struct {
		uint64_t micro;
		const char *s;
	} cases[] = {
		{36000, "$0.036"}, {1, "$0.000001"},	     {1500000, "$1.50"},
		{0, "$0.00"},	   {12345678, "$12.345678"}, {100000, "$0.10"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[48];
		render_cost(buf, sizeof(buf), cases[i].micro);
		assert_string_equal(buf, cases[i].s);
	}
	/* Pico-USD: to micro-USD rounded half up, then as render_cost. */
	char buf[48];
	render_usd(buf, sizeof(buf), UINT64_C(18375000000));
	assert_string_equal(buf, "$0.018375");
	render_usd(buf, sizeof(buf), UINT64_C(499999));
	assert_string_equal(buf, "$0.00");
	render_usd(buf, sizeof(buf), UINT64_C(500000));
	assert_string_equal(buf, "$0.000001");
	render_usd(buf, sizeof(buf), UINT64_C(5000000000000));
	assert_string_equal(buf, "$5.00");
}

/* ---- bars ---- */

struct bar_case {
	uint64_t used, limit;
	bool color;
	int width;
	const char *expect;
};

#define G RENDER_GREEN
#define Y RENDER_YELLOW
#define R RENDER_RED
#define X RENDER_RESET
#define F4 F F F F
#define E4 E E E E
#define F2 F F

static const struct bar_case bar_cases[] = {
	{0, 100, false, 20, "[" E4 E4 E4 E4 E4 "] 0%"},
	{40, 100, false, 20, "[" F4 F4 E4 E4 E4 "] 40%"},
	{0, 100, true, 20, "[" G E4 E4 E4 E4 E4 X "] 0%"},
	/* 69 %: green, 13.8 cells -> 13 */
	{69, 100, true, 20, "[" G F4 F4 F4 F E E4 E E X "] 69%"},
	/* 69.99 %: still green, printed rounded down */
	{6999, 10000, true, 20, "[" G F4 F4 F4 F E E4 E E X "] 69%"},
	{70, 100, true, 20, "[" Y F4 F4 F4 F F E4 E E X "] 70%"},
	{90, 100, true, 20, "[" Y F4 F4 F4 F4 F F E E X "] 90%"},
	/* 90.01 %: the ratio is above 90 % even though it prints 90 */
	{9001, 10000, true, 20, "[" R F4 F4 F4 F4 F F E E X "] 90%"},
	{91, 100, true, 20, "[" R F4 F4 F4 F4 F F E E X "] 91%"},
	{999, 1000, true, 20, "[" R F4 F4 F4 F4 F F F E X "] 99%"},
	{100, 100, true, 20, "[" R F4 F4 F4 F4 F4 X "] 100%"},
	{130, 100, true, 20, "[" R F4 F4 F4 F4 F4 X "] 130%"},
	{130, 100, false, 20, "[" F4 F4 F4 F4 F4 "] 130%"},
	{1, 3, false, 10, "[" F F F E E E E E E E "] 33%"},
	{5, 10, false, 0, "[" F4 F4 F F E4 E4 E E "] 50%"}, /* width 0: default 20 */
	{UINT64_MAX, 1, false, 4, "[" F4 "] 18446744073709551615%"},
	{UINT64_MAX / 2 - 1000, UINT64_MAX - 1, false, 4, "[" F E E E "] 49%"},
	{500, LEDGER_NO_LIMIT, false, 20, "[NO BUDGET SET]"},
	{500, LEDGER_NO_LIMIT, true, 20, "[NO BUDGET SET]"},
	{0, 0, false, 20, "[ZERO BUDGET]"},
	{7, 0, true, 20, "[" R "ZERO BUDGET" X "]"},
};

static void test_bars(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bar_cases) / sizeof(bar_cases[0]); i++) {
		const struct bar_case *c = &bar_cases[i];
		struct render_opts o = {.color = c->color, .bars = true, .width = c->width};
		char buf[1024];
		size_t n = render_bar(buf, sizeof(buf), c->used, c->limit, &o);
		if (strcmp(buf, c->expect) != 0)
			fail_msg("case %zu: render_bar(%llu, %llu) =\n  \"%s\"\nexpected\n  \"%s\"",
				 i, (unsigned long long)c->used, (unsigned long long)c->limit, buf,
				 c->expect);
		assert_int_equal(n, strlen(c->expect));
	}
}

static void test_bar_truncated(void **state)
{
	(void)state;
	struct render_opts o = {.color = false, .bars = true, .width = 20};
	char buf[8];
	size_t n = render_bar(buf, sizeof(buf), 40, 100, &o);
	/* Like snprintf: the length of the whole text, a NUL-terminated prefix in buf. */
	assert_int_equal(n, strlen("[" F4 F4 E4 E4 E4 "] 40%"));
	assert_int_equal(strlen(buf), 7);
	assert_memory_equal(buf, "[" F F, 7);

	/* Wider than the cap: capped at RENDER_BAR_WIDTH_MAX cells. */
	o.width = 100000;
	char big[2048];
	n = render_bar(big, sizeof(big), 1, 1, &o);
	assert_int_equal(n, 1 + RENDER_BAR_WIDTH_MAX * strlen(F) + strlen("] 100%"));
}

/* ---- report and status line ---- */

static void set_counts(struct ledger_counts *c, uint64_t in, uint64_t out, uint64_t cw, uint64_t cr)
{
	c->n[METER_INPUT] = in;
	c->n[METER_OUTPUT] = out;
	c->n[METER_CACHE_CREATION] = cw;
	c->n[METER_CACHE_READ] = cr;
	c->total = in + out + cw + cr;
}

static struct ledger_instance *add_instance(struct ledger_header *h, int64_t pid, uint32_t cmd,
					    enum ledger_status st, int32_t code)
{
	struct ledger_instance *in = &h->instances[h->n_instances++];
	in->pid = pid;
	in->command = cmd;
	in->status = st;
	in->exit_code = code;
	return in;
}

/* A zeroed header, with no USD budget anywhere (0 would be a zero budget). */
static struct ledger_header *new_header(void)
{
	struct ledger_header *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->overall.usd_limit = LEDGER_NO_LIMIT;
	for (int i = 0; i < LEDGER_MAX_COMMANDS; i++)
		h->commands[i].usd_limit = LEDGER_NO_LIMIT;
	return h;
}

/*
 * A session in block mode: overall 50K with 20K used and 1K reserved; /test 10K with 8K used
 * (three agents: one exited, one stopped, one refused); the catch-all without a budget (one
 * nested agent still running); a free slot in between that must not show.
 */
static int setup_ledger(void **state)
{
	struct ledger_header *h = new_header();
	if (!h)
		return -1;
	h->mode = LEDGER_MODE_BLOCK;
	h->estimate = 1000;
	h->overall.limit = 50000;
	set_counts(&h->overall.used, 5000, 1000, 2000, 12000);
	h->overall.reserved = 1000;

	h->n_commands = 2;
	strcpy(h->commands[0].name, "/test");
	h->commands[0].limit = 10000;
	set_counts(&h->commands[0].used, 4000, 200, 800, 3000);
	h->commands[0].agents = 3;
	h->commands[0].refused = 1;
	h->commands[0].stopped = 1;
	strcpy(h->commands[1].name, LEDGER_CATCH_ALL);
	h->commands[1].limit = LEDGER_NO_LIMIT;
	set_counts(&h->commands[1].used, 1000, 50, 150, 0);
	h->commands[1].agents = 1;

	struct ledger_instance *in = add_instance(h, 1234, 0, LEDGER_INST_EXITED, 0);
	set_counts(&in->used, 4000, 200, 800, 12000);
	in->used.pusd = UINT64_C(18375000000); /* $0.018375 */
	in->cost_micro_usd = 36000;
	in->results = 1;
	in = add_instance(h, 1235, 0, LEDGER_INST_STOPPED, 143);
	set_counts(&in->used, 2000, 100, 400, 6000);
	/* A note on a metered agent is for the JSON report: the text shows it only when unmetered.
	 */
	snprintf(in->note, sizeof(in->note), "stopped: command budget /test exceeded");
	h->n_instances++; /* a slot handed out and never used */
	in = add_instance(h, 1236, 1, LEDGER_INST_RUNNING, -1);
	set_counts(&in->used, 1000, 50, 150, 0);
	in->flags = LEDGER_F_NESTED;
	add_instance(h, 1237, 0, LEDGER_INST_REFUSED, -1);
	*state = h;
	return 0;
}

static int teardown_ledger(void **state)
{
	free(*state);
	return 0;
}

#define AGENTS                                                                                     \
	"Agents:\n"                                                                                \
	"  pid 1234  /test  exited 0  17.0K tokens (input 4000, output 200, cache creation 800, "  \
	"cache read 12000)  $0.018375 (the CLI said $0.036)\n"                                     \
	"  pid 1235  /test  stopped 143  8.5K tokens (input 2000, output 100, cache creation "     \
	"400, cache read 6000)\n"                                                                  \
	"  pid 1236  (prompt)  running  1.2K tokens (input 1000, output 50, cache creation 150, "  \
	"cache read 0)  (nested)\n"                                                                \
	"  pid 1237  /test  refused  0 tokens (input 0, output 0, cache creation 0, cache read "   \
	"0)\n"

static void expect_text(const char *got, const char *want)
{
	if (strcmp(got, want) != 0)
		fail_msg("got:\n%s\nexpected:\n%s", got, want);
}

static void test_report_bars(void **state)
{
	struct render_opts o = {.color = false, .bars = true, .width = 20};
	char *text = render_report(*state, &o);
	assert_non_null(text);
	expect_text(text, "BUDGET STATUS (block mode)\n"
			  "Overall: [" F4 F4 E4 E4 E4 "] 40% 20.0K/50.0K, 1.0K reserved\n"
			  "Command Budgets:\n"
			  "  /test    [" F4 F4 F4 F4 E4 "] 80% 8.0K/10.0K, 3 agents, 1 refused, "
			  "1 stopped\n"
			  "  (prompt) 1.2K (no budget), 1 agent\n" AGENTS);
	free(text);
}

static void test_report_color(void **state)
{
	struct render_opts o = {.color = true, .bars = true, .width = 10};
	char *text = render_report(*state, &o);
	assert_non_null(text);
	expect_text(text, "BUDGET STATUS (block mode)\n"
			  "Overall: [" G F4 E4 E E X "] 40% 20.0K/50.0K, 1.0K reserved\n"
			  "Command Budgets:\n"
			  "  /test    [" Y F4 F4 E E X "] 80% 8.0K/10.0K, 3 agents, 1 refused, "
			  "1 stopped\n"
			  "  (prompt) 1.2K (no budget), 1 agent\n" AGENTS);
	free(text);
}

/* --disable-budget-visuals: the bars go, every number stays. */
static void test_report_no_bars(void **state)
{
	struct render_opts o = {.color = true, .bars = false, .width = 20};
	char *text = render_report(*state, &o);
	assert_non_null(text);
	expect_text(text, "BUDGET STATUS (block mode)\n"
			  "Overall: 40% 20.0K/50.0K, 1.0K reserved\n"
			  "Command Budgets:\n"
			  "  /test    80% 8.0K/10.0K, 3 agents, 1 refused, 1 stopped\n"
			  "  (prompt) 1.2K (no budget), 1 agent\n" AGENTS);
	assert_null(strchr(text, '\033'));
	free(text);
}

static void test_report_empty(void **state)
{
	(void)state;
	struct ledger_header *h = new_header();
	assert_non_null(h);
	h->mode = LEDGER_MODE_WARN;
	h->overall.limit = LEDGER_NO_LIMIT;
	struct render_opts o = {.color = false, .bars = true, .width = 20};
	char *text = render_report(h, &o);
	expect_text(text, "BUDGET STATUS (warn mode)\nOverall: 0 (no budget)\nAgents: none\n");
	free(text);

	/* A zero budget, with and without bars. */
	h->overall.limit = 0;
	set_counts(&h->overall.used, 10, 0, 0, 0);
	text = render_report(h, &o);
	expect_text(text, "BUDGET STATUS (warn mode)\nOverall: [ZERO BUDGET] 10/0\nAgents: none\n");
	free(text);
	o.bars = false;
	text = render_report(h, &o);
	expect_text(text, "BUDGET STATUS (warn mode)\nOverall: 10/0 (zero budget)\nAgents: none\n");
	free(text);

	/* A corrupt count of commands or instances is clamped, not followed out of the struct;
	 * an instance whose command index is out of range shows "?". */
	h->overall.limit = LEDGER_NO_LIMIT;
	h->n_commands = 1000;
	h->n_instances = 100000;
	h->instances[LEDGER_MAX_INSTANCES - 1].status = LEDGER_INST_EXITED;
	h->instances[LEDGER_MAX_INSTANCES - 1].pid = 9;
	h->instances[LEDGER_MAX_INSTANCES - 1].command = 5000;
	h->instances[LEDGER_MAX_INSTANCES - 1].exit_code = 1;
	memset(h->commands[3].name, 'x', LEDGER_NAME_LEN); /* no NUL */
	text = render_report(h, &o);
	assert_non_null(text);
	assert_non_null(strstr(text, "  pid 9  ?  exited 1  0 tokens"));
	char name64[LEDGER_NAME_LEN + 2];
	memset(name64, 'x', LEDGER_NAME_LEN);
	name64[LEDGER_NAME_LEN] = ' ';
	name64[LEDGER_NAME_LEN + 1] = '\0';
	assert_non_null(strstr(text, name64));
	free(text);
	free(h);
}

/* An agent tbwrap could not meter says so where its counts are, with the reason. */
static void test_report_unmetered(void **state)
{
	(void)state;
	struct ledger_header *h = new_header();
	assert_non_null(h);
	h->mode = LEDGER_MODE_WARN;
	h->overall.limit = LEDGER_NO_LIMIT;
	h->n_commands = 1;
	strcpy(h->commands[0].name, "/test");
	h->commands[0].limit = LEDGER_NO_LIMIT;
	h->commands[0].agents = 4;
	set_counts(&h->overall.used, 10, 2, 0, 0);
	set_counts(&h->commands[0].used, 10, 2, 0, 0);

	struct ledger_instance *in = add_instance(h, 41, 0, LEDGER_INST_EXITED, 0);
	in->flags = LEDGER_F_UNMETERED;
	snprintf(in->note, sizeof(in->note), "it runs as uid 1001 and tbwrap as uid 1000");
	in = add_instance(h, 42, 0, LEDGER_INST_RUNNING, -1);
	in->flags = LEDGER_F_UNMETERED | LEDGER_F_NESTED | LEDGER_F_ADOPTED;
	/* A result line that said $0: the cost is known, and 0. */
	in = add_instance(h, 43, 0, LEDGER_INST_EXITED, 1);
	in->results = 1;
	set_counts(&in->used, 10, 2, 0, 0);
	/* A note that fills its field without a NUL is cut at the field. */
	in = add_instance(h, 44, 0, LEDGER_INST_STOPPED, 137);
	in->flags = LEDGER_F_UNMETERED;
	memset(in->note, 'z', sizeof(in->note));

	struct render_opts o = {.color = false, .bars = true, .width = 20};
	char *text = render_report(h, &o);
	assert_non_null(text);
	char z[LEDGER_NOTE_LEN + 1];
	memset(z, 'z', LEDGER_NOTE_LEN);
	z[LEDGER_NOTE_LEN] = '\0';
	char want[2048];
	snprintf(
		want, sizeof(want),
		"BUDGET STATUS (warn mode)\n"
		"Overall: 12 (no budget)\n"
		"Command Budgets:\n"
		"  /test    12 (no budget), 4 agents\n"
		"Agents:\n"
		"  pid 41  /test  exited 0  NOT METERED (it runs as uid 1001 and tbwrap as uid "
		"1000)  0 tokens (input 0, output 0, cache creation 0, cache read 0)\n"
		"  pid 42  /test  running  NOT METERED (reason unknown)  0 tokens (input 0, output "
		"0, cache creation 0, cache read 0)  (nested)\n"
		"  pid 43  /test  exited 1  12 tokens (input 10, output 2, cache creation 0, cache "
		"read 0)  $0.00 (the CLI said $0.00)\n"
		"  pid 44  /test  stopped 137  NOT METERED (%s)  0 tokens (input 0, output 0, "
		"cache "
		"creation 0, cache read 0)\n",
		z);
	expect_text(text, want);
	free(text);
	free(h);
}

/* Calls reported nowhere and calls without a final usage are said on the agent's line; block mode
 * adds what is held for them, warn mode holds nothing. */
static void test_report_unfinal(void **state)
{
	(void)state;
	for (int block = 0; block < 2; block++) {
		struct ledger_header *h = new_header();
		assert_non_null(h);
		h->mode = block ? LEDGER_MODE_BLOCK : LEDGER_MODE_WARN;
		h->overall.limit = LEDGER_NO_LIMIT;
		h->n_commands = 1;
		strcpy(h->commands[0].name, "/test");
		h->commands[0].limit = LEDGER_NO_LIMIT;
		h->commands[0].agents = 3;
		struct ledger_instance *in = add_instance(h, 51, 0, LEDGER_INST_STOPPED, 87);
		set_counts(&in->used, 10, 1, 0, 0);
		in->unfinal = 1;
		in->reserved = block ? 49 : 0;
		in = add_instance(h, 52, 0, LEDGER_INST_STOPPED, 87);
		in->unreported = 2;
		in->unfinal = 3;
		in->reserved = block ? 8647 : 0;
		in = add_instance(h, 53, 0, LEDGER_INST_STOPPED, 87);
		in->unreported = 1;
		in->reserved = block ? 4200 : 0;

		struct render_opts o = {.color = false, .bars = false, .width = 20};
		char *text = render_report(h, &o);
		assert_non_null(text);
		const char *agents = strstr(text, "Agents:\n");
		assert_non_null(agents);
		expect_text(
			agents,
			block ? "Agents:\n"
				"  pid 51  /test  stopped 87  11 tokens (input 10, output 1, cache "
				"creation 0, cache read 0)  + 1 call without final usage (49 "
				"held)\n"
				"  pid 52  /test  stopped 87  0 tokens (input 0, output 0, cache "
				"creation 0, cache read 0)  + 2 calls the CLI reported nowhere and "
				"3 "
				"calls without final usage (8.6K held)\n"
				"  pid 53  /test  stopped 87  0 tokens (input 0, output 0, cache "
				"creation 0, cache read 0)  + 1 call the CLI reported nowhere "
				"(4.2K "
				"held)\n"
			      : "Agents:\n"
				"  pid 51  /test  stopped 87  11 tokens (input 10, output 1, cache "
				"creation 0, cache read 0)  + 1 call without final usage\n"
				"  pid 52  /test  stopped 87  0 tokens (input 0, output 0, cache "
				"creation 0, cache read 0)  + 2 calls the CLI reported nowhere and "
				"3 "
				"calls without final usage\n"
				"  pid 53  /test  stopped 87  0 tokens (input 0, output 0, cache "
				"creation 0, cache read 0)  + 1 call the CLI reported nowhere\n");
		free(text);
		free(h);
	}
}

static void test_status_line(void **state)
{
	struct render_opts o = {.color = false, .bars = true, .width = 10};
	char *line = render_status_line(*state, &o);
	assert_non_null(line);
	expect_text(line, "tbwrap: overall [" F4 E4 E E "] 40% 20.0K/50.0K | /test [" F4 F4 E E
			  "] 80% 8.0K/10.0K | 1 running, 1 refused, 1 stopped");
	free(line);

	o.bars = false;
	line = render_status_line(*state, &o);
	expect_text(line, "tbwrap: overall 40% 20.0K/50.0K | /test 80% 8.0K/10.0K | 1 running, "
			  "1 refused, 1 stopped");
	free(line);

	struct ledger_header *h = new_header();
	assert_non_null(h);
	h->overall.limit = LEDGER_NO_LIMIT;
	set_counts(&h->overall.used, 1500, 0, 0, 0);
	line = render_status_line(h, &o);
	expect_text(line, "tbwrap: overall 1.5K (no budget) | 0 running");
	free(line);
	free(h);
}

/* USD budgets: a bar of their own after the token one, "$" amounts, reservations and overshoot;
 * a budget with only a USD limit shows it on the live line without a token bar; an agent refused
 * at a request shows both figures of its prediction; an unpriced model is named. */
static void test_usd(void **state)
{
	(void)state;
	struct ledger_header *h = new_header();
	assert_non_null(h);
	h->mode = LEDGER_MODE_BLOCK;
	h->overall.limit = LEDGER_NO_LIMIT;
	h->overall.usd_limit = UINT64_C(1000000000000); /* $1 */
	set_counts(&h->overall.used, 1000, 0, 0, 0);
	h->overall.used.pusd = UINT64_C(250000000000);	 /* $0.25 */
	h->overall.usd_reserved = UINT64_C(20000000000); /* $0.02 */
	h->overall.usd_overshoot = 0;
	h->n_commands = 1;
	strcpy(h->commands[0].name, "/test");
	h->commands[0].limit = 2000;
	h->commands[0].usd_limit = UINT64_C(200000000000); /* $0.20 */
	set_counts(&h->commands[0].used, 1000, 0, 0, 0);
	h->commands[0].used.pusd = UINT64_C(250000000000);
	h->commands[0].usd_overshoot = UINT64_C(50000000000);
	h->commands[0].agents = 1;
	struct ledger_instance *in = add_instance(h, 7, 0, LEDGER_INST_STOPPED, 87);
	set_counts(&in->used, 1000, 0, 0, 0);
	in->used.pusd = UINT64_C(250000000000);
	in->refused_prediction = 1200;
	in->usd_refused_prediction = UINT64_C(15000000000);
	in->flags = LEDGER_F_UNPRICED;
	strcpy(in->model, "claude-future-9");
	struct render_opts o = {.color = false, .bars = true, .width = 10};
	char *text = render_report(h, &o);
	expect_text(
		text,
		"BUDGET STATUS (block mode)\n"
		"Overall: 1.0K (no budget) | USD [" F2 E4 E4 "] 25% $0.25/$1.00, $0.02 "
		"reserved\n"
		"Command Budgets:\n"
		"  /test    [" F4 F E E E E E "] 50% 1.0K/2.0K | USD [" F4 F4 F2 "] 125% "
		"$0.25/$0.20, over by $0.05, 1 agent\n"
		"Agents:\n"
		"  pid 7  /test  stopped 87  1.0K tokens (input 1000, output 0, cache creation 0, "
		"cache read 0)  $0.25  UNPRICED MODEL claude-future-9 (at the highest rates)  next "
		"request (predicted 1.2K, $0.015) refused\n");
	free(text);
	h->commands[0].limit = LEDGER_NO_LIMIT;
	char *line = render_status_line(h, &o);
	expect_text(line, "tbwrap: overall [" F2 E4 E4 "] 25% $0.25/$1.00 | /test [" F4 F4 F2
			  "] 125% $0.25/$0.20 | 0 running, 1 stopped");
	free(line);
	free(h);
}

static void test_use_color(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	unsetenv("NO_COLOR");
	assert_false(render_use_color(p[1])); /* not a terminal */
	close(p[0]);
	close(p[1]);

	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0)
		skip();
	assert_int_equal(grantpt(m), 0);
	assert_int_equal(unlockpt(m), 0);
	int s = open(ptsname(m), O_RDWR | O_NOCTTY);
	assert_true(s >= 0);
	assert_true(render_use_color(s));
	setenv("NO_COLOR", "", 1);
	assert_true(render_use_color(s)); /* empty means unset (no-color.org) */
	setenv("NO_COLOR", "1", 1);
	assert_false(render_use_color(s));
	unsetenv("NO_COLOR");
	close(s);
	close(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tokens),
		cmocka_unit_test(test_cost),
		cmocka_unit_test(test_bars),
		cmocka_unit_test(test_bar_truncated),
		cmocka_unit_test_setup_teardown(test_report_bars, setup_ledger, teardown_ledger),
		cmocka_unit_test_setup_teardown(test_report_color, setup_ledger, teardown_ledger),
		cmocka_unit_test_setup_teardown(test_report_no_bars, setup_ledger, teardown_ledger),
		cmocka_unit_test(test_report_empty),
		cmocka_unit_test(test_report_unmetered),
		cmocka_unit_test(test_report_unfinal),
		cmocka_unit_test_setup_teardown(test_status_line, setup_ledger, teardown_ledger),
		cmocka_unit_test(test_usd),
		cmocka_unit_test(test_use_color),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
