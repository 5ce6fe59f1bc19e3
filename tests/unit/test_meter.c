/*
 * Meter tests: the real Claude Code captures fed in every way a writer can split, repeat or
 * interleave them, then each malformed case on its own with the anomaly it must raise; the
 * one-line array of `--output-format json --verbose`; the calls and tool results a stream
 * follows for per-request admission.
 *
 * Every expectation is an exact number. The fixtures' sessions are known: 4 API calls of
 * 1000 input / 200 cache creation / 3000 cache read / 50 output each (the max-budget run: 2).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tbwrap/meter.h"

#define FIXTURE_DIR "tests/fixtures/claude-code-2.1.197/"
#define SEEDS 200

/* ------------------------------------------------------------------------------------------ */
/* Helpers */

struct blob {
	char *data;
	size_t len;
};

static bool read_file(const char *path, struct blob *b)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	size_t cap = 1 << 16, len = 0;
	char *data = malloc(cap);
	assert_non_null(data);
	for (;;) {
		size_t n = fread(data + len, 1, cap - len, f);
		len += n;
		if (len < cap)
			break;
		cap *= 2;
		data = realloc(data, cap);
		assert_non_null(data);
	}
	fclose(f);
	b->data = data;
	b->len = len;
	return true;
}

/* Tests run from the repository root; next to the binary (build/tests/) is the fallback. */
static struct blob fixture(const char *name)
{
	struct blob b;
	char path[PATH_MAX + 64], exe[PATH_MAX];

	snprintf(path, sizeof(path), FIXTURE_DIR "%s", name);
	if (read_file(path, &b))
		return b;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	assert_non_null(slash);
	*slash = '\0';
	if (snprintf(path, sizeof(path), "%s/../../" FIXTURE_DIR "%s", exe, name) >=
		    (int)sizeof(path) ||
	    !read_file(path, &b))
		fail_msg("fixture %s not found (run from the repository root)", name);
	return b;
}

static size_t count_newlines(const struct blob *b)
{
	size_t n = 0;
	for (size_t i = 0; i < b->len; i++)
		n += b->data[i] == '\n';
	return n;
}

/* splitmix64: small, seedable, the same sequence everywhere. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static size_t rng_below(uint64_t *state, size_t n)
{
	return n ? (size_t)(rng_next(state) % n) : 0;
}

/* Chunk sizes from 1 byte to a few KiB, biased to small ones so that lines split everywhere. */
static size_t random_chunk(uint64_t *rng)
{
	switch (rng_below(rng, 4)) {
	case 0:
		return 1 + rng_below(rng, 3);
	case 1:
		return 1 + rng_below(rng, 64);
	case 2:
		return 1 + rng_below(rng, 700);
	default:
		return 1 + rng_below(rng, 5000);
	}
}

/* One source being fed: how far it got. */
struct source {
	const struct blob *b;
	struct meter_stream s;
	size_t fed;
};

/* Feeds the next random chunk of src at its true position, and sometimes a random stretch of
 * what was already fed again (possibly running on past the end, as a retried write does). */
static void feed_step(struct meter_core *core, struct source *src, uint64_t *rng, bool with_dups,
		      struct meter_usage *delta)
{
	size_t n = random_chunk(rng);
	if (n > src->b->len - src->fed)
		n = src->b->len - src->fed;
	assert_true(meter_feed(core, &src->s, with_dups ? src->fed : METER_POS_APPEND,
			       src->b->data + src->fed, n, delta));
	src->fed += n;
	if (with_dups && rng_below(rng, 3) == 0) {
		size_t a = rng_below(rng, src->fed + 1);
		size_t b = a + rng_below(rng, src->fed - a + 1);
		if (rng_below(rng, 4) == 0) /* overlap past the end: the new part is taken in */
			b += rng_below(rng, src->b->len - b + 1);
		assert_true(meter_feed(core, &src->s, a, src->b->data + a, b - a, delta));
		if (b > src->fed)
			src->fed = b;
	}
}

static void assert_usage(const struct meter_usage *u, uint64_t in, uint64_t cc, uint64_t cr,
			 uint64_t out)
{
	assert_int_equal(u->n[METER_INPUT], in);
	assert_int_equal(u->n[METER_CACHE_CREATION], cc);
	assert_int_equal(u->n[METER_CACHE_READ], cr);
	assert_int_equal(u->n[METER_OUTPUT], out);
}

static void assert_no_anomaly(const struct meter_core *core)
{
	for (int a = 0; a < METER_NANOMALY; a++)
		assert_int_equal(core->anomalies[a], 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Fixtures */

struct fixture_case {
	const char *stdout_name;
	const char *transcript_name;
	unsigned stdout_events; /* lines of stdout that carry usage (0: none at all) */
	unsigned transcript_events;
	uint64_t in, cc, cr, out;
	uint64_t cost_micro_usd;  /* of the result line, 0 when stdout has none */
	uint64_t stdout_messages; /* distinct message ids on stdout */
	uint64_t messages;	  /* distinct message ids in the transcript */
};

static const struct fixture_case fixture_cases[] = {
	{"stdout.text.txt", "transcript.text.jsonl", 0, 7, 4000, 800, 12000, 200, 0, 0, 4},
	{"stdout.json.json", "transcript.json.jsonl", 1, 7, 4000, 800, 12000, 200, 36000, 0, 4},
	{"stdout.stream-json.jsonl", "transcript.stream-json.jsonl", 8, 7, 4000, 800, 12000, 200,
	 36000, 4, 4},
	{"stdout.stream-json-partial.jsonl", "transcript.stream-json-partial.jsonl", 16, 7, 4000,
	 800, 12000, 200, 36000, 4, 4},
	{"stdout.stream-json-max-budget.jsonl", "transcript.stream-json-max-budget.jsonl", 5, 4,
	 2000, 400, 6000, 100, 18000, 2, 2},
};

enum feed_mode {
	FEED_STDOUT,
	FEED_TRANSCRIPT,
	FEED_BOTH,
};

/* Runs one fixture case in one mode: one core, one or two streams, a seeded feeding order. */
static void run_fixture(const struct fixture_case *fc, enum feed_mode mode, uint64_t seed,
			bool with_dups, bool one_byte)
{
	struct blob out = fixture(fc->stdout_name), tr = fixture(fc->transcript_name);
	struct meter_core *core = calloc(1, sizeof(*core));
	struct meter_usage delta = {{0}};
	struct source src[2] = {{.b = &out}, {.b = &tr}};
	uint64_t rng = seed;
	bool is_used[2] = {mode != FEED_TRANSCRIPT, mode != FEED_STDOUT};

	assert_non_null(core);
	for (int i = 0; i < 2; i++)
		meter_stream_init(&src[i].s, 0);
	for (;;) {
		int pending[2], npending = 0;
		for (int i = 0; i < 2; i++)
			if (is_used[i] && src[i].fed < src[i].b->len)
				pending[npending++] = i;
		if (!npending)
			break;
		struct source *sp = &src[pending[rng_below(&rng, (size_t)npending)]];
		if (one_byte) {
			assert_true(meter_feed(core, &sp->s, METER_POS_APPEND,
					       sp->b->data + sp->fed, 1, &delta));
			sp->fed++;
		} else {
			feed_step(core, sp, &rng, with_dups, &delta);
		}
	}
	for (int i = 0; i < 2; i++)
		if (is_used[i])
			meter_finish(core, &src[i].s, &delta);

	bool has_result = is_used[0] && fc->cost_micro_usd;
	assert_usage(&core->total, fc->in, fc->cc, fc->cr, fc->out);
	assert_memory_equal(&delta, &core->total, sizeof(delta)); /* deltas add up to the total */
	assert_int_equal(core->cost_micro_usd, has_result ? fc->cost_micro_usd : 0);
	assert_int_equal(core->results, has_result ? 1 : 0);
	assert_no_anomaly(core);

	size_t lines = 0, events = 0;
	if (is_used[0]) {
		lines += count_newlines(&out);
		events += fc->stdout_events;
	}
	if (is_used[1]) {
		lines += count_newlines(&tr);
		events += fc->transcript_events;
	}
	assert_int_equal(core->lines, lines);		       /* none twice, none lost */
	assert_int_equal(core->lines_ignored, lines - events); /* the rest carried usage */
	assert_int_equal(core->messages, is_used[1] ? fc->messages : fc->stdout_messages);
	if (has_result)
		assert_string_equal(core->result_subtype, fc->cost_micro_usd == 18000
								  ? "error_max_budget_usd"
								  : "success");

	for (int i = 0; i < 2; i++)
		meter_stream_free(&src[i].s);
	free(core);
	free(out.data);
	free(tr.data);
}

static void fixture_all_modes(const struct fixture_case *fc, enum feed_mode mode)
{
	run_fixture(fc, mode, 0, false, true); /* one byte at a time */
	for (uint64_t seed = 1; seed <= SEEDS; seed++) {
		run_fixture(fc, mode, seed, false, false);
		run_fixture(fc, mode, seed * 7919, true, false);
	}
}

static void test_fixture(void **state)
{
	const struct fixture_case *fc = *state;
	if (fc->stdout_events)
		fixture_all_modes(fc, FEED_STDOUT);
	fixture_all_modes(fc, FEED_TRANSCRIPT);
	fixture_all_modes(fc, FEED_BOTH);
}

/* The stdout of text mode carries no usage: nothing counts, nothing is an anomaly. */
static void test_text_stdout_alone(void **state)
{
	(void)state;
	struct blob out = fixture("stdout.text.txt");
	struct meter_core core = {0};
	struct meter_stream s;
	struct meter_usage delta = {{0}};

	meter_stream_init(&s, 0);
	assert_true(meter_feed(&core, &s, 0, out.data, out.len, &delta));
	meter_finish(&core, &s, &delta);
	assert_usage(&core.total, 0, 0, 0, 0);
	assert_usage(&delta, 0, 0, 0, 0);
	assert_int_equal(core.lines, 1);
	assert_int_equal(core.lines_ignored, 1);
	assert_no_anomaly(&core);
	meter_stream_free(&s);
	free(out.data);
}

/* What each kind of fixture line is classified as. */
static void test_parse_fixture_lines(void **state)
{
	(void)state;
	struct blob b = fixture("stdout.stream-json-partial.jsonl");
	unsigned kinds[5] = {0};
	const char *line = b.data, *end = b.data + b.len;

	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		assert_non_null(nl);
		struct meter_event ev;
		enum meter_anomaly an;
		assert_int_equal(meter_parse_line(line, (size_t)(nl - line), &ev, &an), 0);
		kinds[ev.kind]++;
		if (ev.kind == METER_EV_MESSAGE_START) {
			assert_non_null(memmem(line, (size_t)(nl - line), "msg_", 4));
			const char *id = memmem(line, (size_t)(nl - line), "msg_", 4);
			assert_int_equal(ev.id_hash, meter_hash_id(id, 28));
			assert_usage(&ev.usage, 1000, 200, 3000, 1);
		} else if (ev.kind == METER_EV_MESSAGE_DELTA) {
			assert_usage(&ev.usage, 0, 0, 0, 50);
		} else if (ev.kind == METER_EV_RESULT) {
			assert_usage(&ev.usage, 4000, 800, 12000, 200);
			assert_true(ev.has_cost);
			assert_int_equal(ev.cost_micro_usd, 36000);
			assert_string_equal(ev.subtype, "success");
		}
		line = nl + 1;
	}
	assert_int_equal(kinds[METER_EV_NONE], 33);
	assert_int_equal(kinds[METER_EV_MESSAGE], 7);
	assert_int_equal(kinds[METER_EV_MESSAGE_START], 4);
	assert_int_equal(kinds[METER_EV_MESSAGE_DELTA], 4);
	assert_int_equal(kinds[METER_EV_RESULT], 1);
	free(b.data);
}

/* The max-budget result line's usage is the last call only: modelUsage carries the session. */
static void test_max_budget_result_uses_model_usage(void **state)
{
	(void)state;
	struct blob b = fixture("stdout.stream-json-max-budget.jsonl");
	const char *last = b.data + b.len - 1;
	while (last > b.data && last[-1] != '\n')
		last--;
	struct meter_event ev;
	enum meter_anomaly an;
	assert_int_equal(meter_parse_line(last, (size_t)(b.data + b.len - 1 - last), &ev, &an), 0);
	assert_int_equal(ev.kind, METER_EV_RESULT);
	assert_usage(&ev.usage, 2000, 400, 6000, 100);
	assert_int_equal(ev.cost_micro_usd, 18000);
	assert_string_equal(ev.subtype, "error_max_budget_usd");
	free(b.data);
}

/* Random damage to a real stream (bytes replaced, lines cut and spliced): never a crash, every
 * complete line processed once, the deltas still add up, the total never goes down. */
static void test_damaged_stream(void **state)
{
	(void)state;
	static const unsigned char junk[] = {'"',  '{',	 '}',  '[',  ']',  ',',	 ':',
					     '\\', '\n', '\r', '\0', 0xff, 0xc3, 0xed,
					     '-',  '.',	 'e',  '9',  ' ',  'u'};
	struct blob b = fixture("stdout.stream-json-partial.jsonl");

	for (uint64_t seed = 1; seed <= SEEDS; seed++) {
		uint64_t rng = seed;
		char *data = malloc(b.len);
		assert_non_null(data);
		memcpy(data, b.data, b.len);
		for (int i = 0; i < 20; i++)
			data[rng_below(&rng, b.len)] = (char)junk[rng_below(&rng, sizeof(junk))];
		struct blob d = {data, b.len};
		struct meter_core *core = calloc(1, sizeof(*core));
		struct meter_usage delta = {{0}}, last = {{0}};
		struct source src = {.b = &d};
		assert_non_null(core);
		meter_stream_init(&src.s, 512 + rng_below(&rng, 8192));
		while (src.fed < d.len) {
			feed_step(core, &src, &rng, true, &delta);
			for (int f = 0; f < METER_NFIELDS; f++)
				assert_true(core->total.n[f] >= last.n[f]);
			last = core->total;
		}
		meter_finish(core, &src.s, &delta);
		assert_memory_equal(&delta, &core->total, sizeof(delta));
		/* Every newline ends a line that was either processed or skipped as oversize. */
		size_t newlines = count_newlines(&d);
		bool ends_open = d.data[d.len - 1] != '\n';
		assert_int_equal(core->lines + core->anomalies[METER_ANOM_OVERSIZE],
				 newlines + (ends_open ? 1 : 0));
		assert_true(core->results <= 1); /* damage never makes two results of one */
		meter_stream_free(&src.s);
		free(core);
		free(data);
	}
	free(b.data);
}

/* ------------------------------------------------------------------------------------------ */
/* Malformed and edge lines, one at a time */

#define L(s) s, sizeof(s) - 1
#define ASSISTANT(usage)                                                                           \
	"{\"type\":\"assistant\",\"message\":{\"id\":\"msg_1\",\"usage\":{" usage "}}}"
#define IGNORED (-1)

struct line_case {
	const char *name;
	const char *line;
	size_t len;
	int anomaly;  /* expected anomaly, or IGNORED (no usage, no anomaly), or METER_NANOMALY
			 (counts) */
	uint64_t in;  /* expected total input when it counts */
	uint64_t out; /* expected total output when it counts */
};

static char deep_ok[4096], deep_bad[4096];

static const struct line_case line_cases[] = {
	/* Counted: the reference line and the accepted extremes. */
	{"valid assistant", L(ASSISTANT("\"input_tokens\":7,\"output_tokens\":2")), METER_NANOMALY,
	 7, 2},
	{"count 2^53 accepted", L(ASSISTANT("\"input_tokens\":9007199254740992")), METER_NANOMALY,
	 9007199254740992ULL, 0},
	{"count 0 accepted", L(ASSISTANT("\"input_tokens\":0,\"output_tokens\":3")), METER_NANOMALY,
	 0, 3},
	{"other usage keys ignored",
	 L(ASSISTANT("\"input_tokens\":5,\"server_tool_use\":{\"web_search_requests\":-1},"
		     "\"cache_creation\":{\"ephemeral_5m_input_tokens\":1.5},\"iterations\":[{"
		     "\"a\":[]}],"
		     "\"service_tier\":\"standard\",\"output_tokens\":1")),
	 METER_NANOMALY, 5, 1},
	{"type after message (transcript order)",
	 L("{\"message\":{\"usage\":{\"input_tokens\":11,\"output_tokens\":4},\"id\":\"msg_1\"},"
	   "\"type\":\"assistant\"}"),
	 METER_NANOMALY, 11, 4},
	{"whitespace everywhere",
	 L(" { \"type\" : \"assistant\" , \"message\" : { \"id\" : \"msg_1\" , \"usage\" : { "
	   "\"input_tokens\" : 3 } } } \t"),
	 METER_NANOMALY, 3, 0},
	{"escapes and UTF-8 in strings",
	 L("{\"type\":\"assistant\",\"x\":\"\\u00e9\\n\\\"\\\\\\/ \xc3\xa9 \xe2\x82\xac "
	   "\xf0\x9f\x98\x80\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":9}}}"),
	 METER_NANOMALY, 9, 0},

	/* Counts that are not counts: the whole line is refused. */
	{"negative", L(ASSISTANT("\"input_tokens\":-5,\"output_tokens\":2")), METER_ANOM_BAD_NUMBER,
	 0, 0},
	{"negative zero", L(ASSISTANT("\"input_tokens\":-0")), METER_ANOM_BAD_NUMBER, 0, 0},
	{"fractional", L(ASSISTANT("\"input_tokens\":1.5")), METER_ANOM_BAD_NUMBER, 0, 0},
	{"fraction .0", L(ASSISTANT("\"output_tokens\":1.0")), METER_ANOM_BAD_NUMBER, 0, 0},
	{"exponent", L(ASSISTANT("\"input_tokens\":1e3")), METER_ANOM_BAD_NUMBER, 0, 0},
	{"string", L(ASSISTANT("\"input_tokens\":\"12\"")), METER_ANOM_BAD_NUMBER, 0, 0},
	/* null is "absent" (the API's counts are number-or-null): the rest of the line counts. */
	{"null is absent", L(ASSISTANT("\"input_tokens\":7,\"cache_read_input_tokens\":null")),
	 METER_NANOMALY, 7, 0},
	{"true", L(ASSISTANT("\"input_tokens\":true")), METER_ANOM_BAD_NUMBER, 0, 0},
	{"object", L(ASSISTANT("\"input_tokens\":{}")), METER_ANOM_BAD_NUMBER, 0, 0},
	{"array", L(ASSISTANT("\"cache_creation_input_tokens\":[1]")), METER_ANOM_BAD_NUMBER, 0, 0},
	{"2^53+1", L(ASSISTANT("\"input_tokens\":9007199254740993")), METER_ANOM_BAD_NUMBER, 0, 0},
	{"17 digits", L(ASSISTANT("\"input_tokens\":10000000000000000")), METER_ANOM_BAD_NUMBER, 0,
	 0},
	{"above 2^64", L(ASSISTANT("\"input_tokens\":123456789012345678901234")),
	 METER_ANOM_BAD_NUMBER, 0, 0},
	{"bad count in message_start",
	 L("{\"type\":\"stream_event\",\"event\":{\"type\":\"message_start\",\"message\":{\"id\":"
	   "\"msg_1\",\"usage\":{\"input_tokens\":-1}}}}"),
	 METER_ANOM_BAD_NUMBER, 0, 0},
	{"bad count in message_delta",
	 L("{\"type\":\"stream_event\",\"event\":{\"type\":\"message_delta\",\"usage\":{"
	   "\"output_tokens\":5.5}}}"),
	 METER_ANOM_BAD_NUMBER, 0, 0},
	{"bad count in result usage",
	 L("{\"type\":\"result\",\"usage\":{\"input_tokens\":\"4000\"},\"total_cost_usd\":0.1}"),
	 METER_ANOM_BAD_NUMBER, 0, 0},
	{"bad count in modelUsage",
	 L("{\"type\":\"result\",\"usage\":{\"input_tokens\":4},\"modelUsage\":{\"m\":{"
	   "\"inputTokens\":-4}}}"),
	 METER_ANOM_BAD_NUMBER, 0, 0},
	{"negative cost",
	 L("{\"type\":\"result\",\"usage\":{\"input_tokens\":4},"
	   "\"total_cost_usd\":-0.5}"),
	 METER_ANOM_BAD_NUMBER, 0, 0},
	{"string cost",
	 L("{\"type\":\"result\",\"usage\":{\"input_tokens\":4},"
	   "\"total_cost_usd\":\"0.5\"}"),
	 METER_ANOM_BAD_NUMBER, 0, 0},

	/* Not one valid JSON value. */
	{"invalid UTF-8 byte", L(ASSISTANT("\"input_tokens\":5") "\xff"), METER_ANOM_NOT_JSON, 0,
	 0},
	{"invalid UTF-8 in string",
	 L("{\"type\":\"assistant\",\"x\":\"a\xff\",\"message\":{\"id\":\"m\",\"usage\":{"
	   "\"input_tokens\":5}}}"),
	 METER_ANOM_NOT_JSON, 0, 0},
	{"overlong UTF-8",
	 L("{\"type\":\"assistant\",\"x\":\"\xc0\xaf\",\"message\":{\"id\":\"m\",\"usage\":{"
	   "\"input_tokens\":5}}}"),
	 METER_ANOM_NOT_JSON, 0, 0},
	{"overlong 3-byte UTF-8",
	 L("{\"type\":\"assistant\",\"x\":\"\xe0\x80\xaf\",\"message\":{\"id\":\"m\",\"usage\":{"
	   "\"input_tokens\":5}}}"),
	 METER_ANOM_NOT_JSON, 0, 0},
	{"UTF-8 surrogate",
	 L("{\"type\":\"assistant\",\"x\":\"\xed\xa0\x80\",\"message\":{\"id\":\"m\",\"usage\":{"
	   "\"input_tokens\":5}}}"),
	 METER_ANOM_NOT_JSON, 0, 0},
	{"UTF-8 above U+10FFFF",
	 L("{\"type\":\"assistant\",\"x\":\"\xf4\x90\x80\x80\",\"message\":{\"id\":\"m\",\"usage\":"
	   "{"
	   "\"input_tokens\":5}}}"),
	 METER_ANOM_NOT_JSON, 0, 0},
	{"truncated UTF-8",
	 L("{\"type\":\"assistant\",\"x\":\"\xe2\x82\",\"message\":{\"id\":\"m\",\"usage\":{"
	   "\"input_tokens\":5}}}"),
	 METER_ANOM_NOT_JSON, 0, 0},
	{"NUL in string",
	 L("{\"type\":\"assistant\",\"x\":\"a\0b\",\"message\":{\"id\":\"m\",\"usage\":{"
	   "\"input_tokens\":5}}}"),
	 METER_ANOM_NOT_JSON, 0, 0},
	{"NUL between tokens", L(ASSISTANT("\"input_tokens\":5") "\0"), METER_ANOM_NOT_JSON, 0, 0},
	{"raw control in string",
	 L("{\"type\":\"assistant\",\"x\":\"a\tb\",\"message\":{\"id\":\"m\",\"usage\":{"
	   "\"input_tokens\":5}}}"),
	 METER_ANOM_NOT_JSON, 0, 0},
	{"bad escape",
	 L("{\"type\":\"assistant\",\"x\":\"\\q\",\"message\":{\"id\":\"m\",\"usage\":{"
	   "\"input_tokens\":5}}}"),
	 METER_ANOM_NOT_JSON, 0, 0},
	{"short \\u escape",
	 L("{\"type\":\"assistant\",\"x\":\"\\u12\",\"message\":{\"id\":\"m\",\"usage\":{"
	   "\"input_tokens\":5}}}"),
	 METER_ANOM_NOT_JSON, 0, 0},
	{"trailing garbage", L(ASSISTANT("\"input_tokens\":5") " x"), METER_ANOM_NOT_JSON, 0, 0},
	{"two objects spliced", L(ASSISTANT("\"input_tokens\":5") ASSISTANT("\"input_tokens\":6")),
	 METER_ANOM_NOT_JSON, 0, 0},
	{"truncated line",
	 L("{\"type\":\"assistant\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":5}}"),
	 METER_ANOM_NOT_JSON, 0, 0},
	{"leading zero", L(ASSISTANT("\"input_tokens\":05")), METER_ANOM_NOT_JSON, 0, 0},
	{"trailing comma", L(ASSISTANT("\"input_tokens\":5,")), METER_ANOM_NOT_JSON, 0, 0},
	{"missing colon", L(ASSISTANT("\"input_tokens\" 5")), METER_ANOM_NOT_JSON, 0, 0},
	{"single quotes", L("{'type':'assistant','usage':1}"), METER_ANOM_NOT_JSON, 0, 0},
	{"bare minus", L(ASSISTANT("\"input_tokens\":-")), METER_ANOM_NOT_JSON, 0, 0},
	{"misspelt literal",
	 L("{\"type\":\"assistant\",\"x\":nul,\"message\":{\"id\":\"m\",\"usage\":{"
	   "\"input_tokens\":5}}}"),
	 METER_ANOM_NOT_JSON, 0, 0},
	{"text mentioning usage", L("Token usage: 4000 input"), METER_ANOM_NOT_JSON, 0, 0},
	{"nesting beyond the bound", deep_bad, 0, METER_ANOM_NOT_JSON, 0, 0},

	/* No usage here, and nothing wrong either. */
	{"plain text", L("Turn 3. "), IGNORED, 0, 0},
	{"text with NUL bytes", L("a\0b\0c"), IGNORED, 0, 0},
	{"invalid UTF-8 without usage", L("\xff\xfe{"), IGNORED, 0, 0},
	{"JSON without usage", L("{\"type\":\"system\",\"subtype\":\"init\"}"), IGNORED, 0, 0},
	{"usage only in a string",
	 L("{\"type\":\"user\",\"message\":{\"content\":\"the usage of \\\"usage\\\"\"}}"), IGNORED,
	 0, 0},
	{"usage in a user line",
	 L("{\"type\":\"user\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":5}}}"),
	 IGNORED, 0, 0},
	{"assistant without id",
	 L("{\"type\":\"assistant\",\"message\":{\"usage\":{\"input_tokens\":5}}}"), IGNORED, 0, 0},
	{"assistant with usage null",
	 L("{\"type\":\"assistant\",\"message\":{\"id\":\"m\",\"usage\":null}}"), IGNORED, 0, 0},
	{"array root", L("[{\"type\":\"assistant\",\"usage\":1}]"), IGNORED, 0, 0},
	{"other stream event",
	 L("{\"type\":\"stream_event\",\"event\":{\"type\":\"content_block_delta\",\"usage\":{"
	   "\"output_tokens\":9}}}"),
	 IGNORED, 0, 0},
	{"nesting within the bound", deep_ok, 0, METER_NANOMALY, 5, 0},
};

/* Builds {"type":"assistant","deep":[[[...]]],"message":{...usage...}} with `depth` brackets. */
static void make_deep(char *buf, size_t size, unsigned depth)
{
	static const char head[] = "{\"type\":\"assistant\",\"deep\":";
	static const char tail[] = ",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":5}}}";
	size_t n = 0;
	assert_true(sizeof(head) + 2 * depth + sizeof(tail) < size);
	memcpy(buf, head, sizeof(head) - 1);
	n += sizeof(head) - 1;
	memset(buf + n, '[', depth);
	n += depth;
	memset(buf + n, ']', depth);
	n += depth;
	memcpy(buf + n, tail, sizeof(tail));
}

static void test_line_case(void **state)
{
	const struct line_case *lc = *state;
	size_t len = lc->len ? lc->len : strlen(lc->line);
	struct meter_core core = {0};
	struct meter_stream s;
	struct meter_usage delta = {{0}};

	/* Fed whole, then byte by byte through a second stream of another core: same outcome. */
	for (int pass = 0; pass < 2; pass++) {
		memset(&core, 0, sizeof(core));
		memset(&delta, 0, sizeof(delta));
		meter_stream_init(&s, 0);
		if (pass == 0) {
			assert_true(meter_feed(&core, &s, 0, lc->line, len, &delta));
		} else {
			for (size_t i = 0; i < len; i++)
				assert_true(meter_feed(&core, &s, i, lc->line + i, 1, &delta));
		}
		assert_int_equal(core.lines, 0); /* no newline yet: nothing decided */
		assert_true(meter_feed(&core, &s, len, "\n", 1, &delta));
		meter_stream_free(&s);

		assert_int_equal(core.lines, 1);
		for (int a = 0; a < METER_NANOMALY; a++)
			assert_int_equal(core.anomalies[a], a == lc->anomaly ? 1 : 0);
		assert_int_equal(core.lines_ignored, lc->anomaly == IGNORED ? 1 : 0);
		if (lc->anomaly == METER_NANOMALY) {
			assert_int_equal(core.total.n[METER_INPUT], lc->in);
			assert_int_equal(core.total.n[METER_OUTPUT], lc->out);
			assert_int_equal(core.messages, 1);
		} else {
			assert_usage(&core.total, 0, 0, 0, 0);
			assert_int_equal(core.messages, 0);
			assert_int_equal(core.results, 0);
		}
		assert_memory_equal(&delta, &core.total, sizeof(delta));
	}

	/* meter_parse_line agrees, and says why. The line sits in a buffer of exactly its size so
	 * that ASan catches any read past its end. */
	struct meter_event ev;
	enum meter_anomaly an = METER_NANOMALY;
	char *exact = malloc(len ? len : 1);
	assert_non_null(exact);
	memcpy(exact, lc->line, len);
	int rc = meter_parse_line(exact, len, &ev, &an);
	free(exact);
	if (lc->anomaly == IGNORED || lc->anomaly == METER_NANOMALY) {
		assert_int_equal(rc, 0);
		assert_int_equal(ev.kind,
				 lc->anomaly == IGNORED ? METER_EV_NONE : METER_EV_MESSAGE);
	} else {
		assert_int_equal(rc, -1);
		assert_int_equal(an, lc->anomaly);
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Stream handling */

static const char valid_line[] = ASSISTANT("\"input_tokens\":7,\"output_tokens\":2") "\n";

static void feed_bytewise(struct meter_core *core, struct meter_stream *s, const char *data,
			  size_t len, struct meter_usage *delta)
{
	for (size_t i = 0; i < len; i++)
		assert_true(meter_feed(core, s, METER_POS_APPEND, data + i, 1, delta));
}

static void test_oversize_then_valid(void **state)
{
	(void)state;
	char big[600];
	/* An assistant line of 400+ bytes, valid and with usage, but above a 256-byte bound. */
	int n = snprintf(
		big, sizeof(big),
		"{\"type\":\"assistant\",\"pad\":\"%0300d\",\"message\":{\"id\":\"msg_big\","
		"\"usage\":{\"input_tokens\":1000}}}\n%s",
		0, valid_line);
	assert_true(n > 0 && (size_t)n < sizeof(big));

	for (int pass = 0; pass < 3; pass++) {
		struct meter_core core = {0};
		struct meter_stream s;
		struct meter_usage delta = {{0}};
		meter_stream_init(&s, 256);
		if (pass == 0)
			assert_true(
				meter_feed(&core, &s, METER_POS_APPEND, big, (size_t)n, &delta));
		else if (pass == 1)
			feed_bytewise(&core, &s, big, (size_t)n, &delta);
		else /* the oversize line starts in the middle of a chunk and ends in the next */
			for (size_t off = 0; off < (size_t)n; off += 100)
				assert_true(meter_feed(
					&core, &s, off, big + off,
					(size_t)n - off < 100 ? (size_t)n - off : 100, &delta));
		assert_int_equal(core.anomalies[METER_ANOM_OVERSIZE], 1);
		assert_int_equal(core.lines, 1); /* only the valid line was processed */
		assert_usage(&core.total, 7, 0, 0, 2);
		assert_usage(&delta, 7, 0, 0, 2);
		assert_true(s.cap <= 256); /* never more memory than the bound */
		assert_false(s.skipping);
		meter_stream_free(&s);
	}
}

static void test_line_of_exactly_max_counts(void **state)
{
	(void)state;
	size_t len = strlen(valid_line) - 1;
	struct meter_core core = {0};
	struct meter_stream s;
	struct meter_usage delta = {{0}};

	meter_stream_init(&s, len); /* the bound is inclusive */
	feed_bytewise(&core, &s, valid_line, len + 1, &delta);
	assert_int_equal(core.anomalies[METER_ANOM_OVERSIZE], 0);
	assert_usage(&core.total, 7, 0, 0, 2);
	meter_stream_free(&s);

	memset(&core, 0, sizeof(core));
	meter_stream_init(&s, len - 1);
	assert_true(meter_feed(&core, &s, METER_POS_APPEND, valid_line, len + 1, &delta));
	assert_int_equal(core.anomalies[METER_ANOM_OVERSIZE], 1);
	assert_usage(&core.total, 0, 0, 0, 0);
	meter_stream_free(&s);
}

/* The partial-line buffer is allocated once and kept: many lines, no growth past the first. */
static void test_buffer_reused(void **state)
{
	(void)state;
	struct meter_core core = {0};
	struct meter_stream s;
	meter_stream_init(&s, 0);
	feed_bytewise(&core, &s, valid_line, strlen(valid_line), NULL);
	char *buf = s.buf;
	size_t cap = s.cap;
	assert_non_null(buf);
	for (int i = 0; i < 200; i++)
		feed_bytewise(&core, &s, valid_line, strlen(valid_line), NULL);
	assert_ptr_equal(s.buf, buf);
	assert_int_equal(s.cap, cap);
	assert_int_equal(core.lines, 201);
	assert_int_equal(core.messages, 1); /* the same id every time */
	assert_usage(&core.total, 7, 0, 0, 2);
	meter_stream_free(&s);
}

static void test_crlf(void **state)
{
	(void)state;
	static const char data[] = "Turn 3. \r\n" ASSISTANT(
		"\"input_tokens\":7") "\r\n"
				      "{\"type\":\"system\",\"usage\":\"x\"}\r\n";
	struct meter_core core = {0};
	struct meter_stream s;
	struct meter_usage delta = {{0}};

	meter_stream_init(&s, 0);
	assert_true(meter_feed(&core, &s, 0, data, sizeof(data) - 1, &delta));
	assert_int_equal(core.lines, 3);
	assert_int_equal(core.lines_ignored, 2);
	assert_no_anomaly(&core);
	assert_usage(&core.total, 7, 0, 0, 0);
	meter_stream_free(&s);
}

static void test_missing_final_newline(void **state)
{
	(void)state;
	static const char data[] = "hello\n" ASSISTANT("\"input_tokens\":7,\"output_tokens\":2");
	struct meter_core core = {0};
	struct meter_stream s;
	struct meter_usage delta = {{0}};

	meter_stream_init(&s, 0);
	assert_true(meter_feed(&core, &s, 0, data, sizeof(data) - 1, &delta));
	assert_int_equal(core.lines, 1);
	assert_usage(&core.total, 0, 0, 0, 0);
	meter_finish(&core, &s, &delta);
	assert_int_equal(core.lines, 2);
	assert_usage(&core.total, 7, 0, 0, 2);
	assert_usage(&delta, 7, 0, 0, 2);
	meter_finish(&core, &s, &delta); /* twice: nothing more */
	assert_int_equal(core.lines, 2);
	meter_stream_free(&s);
}

/* A line cut by lost bytes must not count; the stream resynchronises at the next newline. */
static void test_gap(void **state)
{
	(void)state;
	static const char a[] = ASSISTANT("\"input_tokens\":7,\"output_tokens\":2") "\n";
	char both[512];
	struct meter_core core = {0};
	struct meter_stream s;
	struct meter_usage delta = {{0}};
	size_t la = sizeof(a) - 1;
	int n = snprintf(both, sizeof(both), "%s%s", a,
			 ASSISTANT("\"input_tokens\":100") "\n" /* id msg_1 again: only the max */
							   "{\"type\":\"assistant\",\"message\":{"
							   "\"id\":\"msg_2\",\"usage\":{"
							   "\"input_tokens\":1}}}\n");
	assert_true(n > 0);

	meter_stream_init(&s, 0);
	/* First 20 bytes of line 1, then a jump to the middle of line 1: the spliced remainder
	 * would be invalid anyway, but even a valid-looking tail must not count. */
	assert_true(meter_feed(&core, &s, 0, both, 20, &delta));
	assert_true(meter_feed(&core, &s, 30, both + 30, la - 30, &delta));
	assert_int_equal(core.anomalies[METER_ANOM_GAP], 1);
	assert_int_equal(core.lines, 0);
	assert_false(s.skipping);
	assert_int_equal(s.len, 0);
	/* A gap landing on a line boundary still drops up to the next newline: where data[0]
	 * falls is unknown. Line 2 is dropped, line 3 counts. */
	size_t l2 = la + strlen(ASSISTANT("\"input_tokens\":100")) + 1;
	assert_true(meter_feed(&core, &s, la + 1, both + la + 1, l2 - la - 1, &delta));
	assert_int_equal(core.anomalies[METER_ANOM_GAP], 2);
	assert_int_equal(core.lines, 0);
	assert_true(meter_feed(&core, &s, l2, both + l2, (size_t)n - l2, &delta));
	assert_int_equal(core.lines, 1);
	assert_usage(&core.total, 1, 0, 0, 0);
	assert_int_equal(s.end, (uint64_t)n);
	meter_stream_free(&s);
}

/* Re-sent bytes (retried, restarted or partial writes) never count twice. */
static void test_refeed_counts_once(void **state)
{
	(void)state;
	struct meter_core core = {0};
	struct meter_stream s;
	struct meter_usage delta = {{0}};
	size_t len = strlen(valid_line);

	meter_stream_init(&s, 0);
	assert_true(meter_feed(&core, &s, 0, valid_line, 10, &delta));
	assert_true(meter_feed(&core, &s, 0, valid_line, 10, &delta)); /* same bytes again */
	assert_true(meter_feed(&core, &s, 5, valid_line + 5, len - 5, &delta)); /* overlap */
	assert_true(meter_feed(&core, &s, 0, valid_line, len, &delta)); /* all of it again */
	assert_int_equal(core.lines, 1);
	assert_int_equal(s.end, len);
	assert_no_anomaly(&core);
	assert_usage(&core.total, 7, 0, 0, 2);
	assert_usage(&delta, 7, 0, 0, 2);
	meter_stream_free(&s);
}

/* ------------------------------------------------------------------------------------------ */
/* Accounting semantics */

#define START(id, out)                                                                             \
	"{\"type\":\"stream_event\",\"event\":{\"type\":\"message_start\",\"message\":{\"id\":"    \
	"\"" id "\",\"usage\":{\"input_tokens\":1000,\"cache_creation_input_tokens\":200,"         \
	"\"cache_read_input_tokens\":3000,\"output_tokens\":" #out "}}}}\n"
#define DELTA(out)                                                                                 \
	"{\"type\":\"stream_event\",\"event\":{\"type\":\"message_delta\",\"usage\":{"             \
	"\"output_tokens\":" #out "}}}\n"
#define RESULT(in, out, cost)                                                                      \
	"{\"type\":\"result\",\"subtype\":\"success\",\"total_cost_usd\":" #cost ",\"usage\":{"    \
	"\"input_tokens\":" #in ",\"output_tokens\":" #out "}}\n"

static void feed_str(struct meter_core *core, struct meter_stream *s, const char *str,
		     struct meter_usage *delta)
{
	assert_true(meter_feed(core, s, METER_POS_APPEND, str, strlen(str), delta));
}

static void test_orphan_delta(void **state)
{
	(void)state;
	struct meter_core core = {0};
	struct meter_stream a, b;
	struct meter_usage delta = {{0}};

	meter_stream_init(&a, 0);
	meter_stream_init(&b, 0);
	feed_str(&core, &a, DELTA(50), &delta);
	assert_int_equal(core.anomalies[METER_ANOM_ORPHAN_DELTA], 1);
	assert_usage(&core.total, 0, 0, 0, 0);
	/* A start on one stream does not adopt a delta of another. */
	feed_str(&core, &a, START("msg_a", 1), &delta);
	feed_str(&core, &b, DELTA(50), &delta);
	assert_int_equal(core.anomalies[METER_ANOM_ORPHAN_DELTA], 2);
	assert_usage(&core.total, 1000, 200, 3000, 1);
	/* Applied without a stream: nothing to attach it to. */
	struct meter_event ev = {.kind = METER_EV_MESSAGE_DELTA, .usage = {{0, 9, 0, 0}}};
	meter_apply(&core, NULL, &ev, &delta);
	assert_int_equal(core.anomalies[METER_ANOM_ORPHAN_DELTA], 3);
	assert_usage(&core.total, 1000, 200, 3000, 1);
	assert_memory_equal(&delta, &core.total, sizeof(delta));
	meter_stream_free(&a);
	meter_stream_free(&b);
}

static void test_delta_raises_output(void **state)
{
	(void)state;
	struct meter_core core = {0};
	struct meter_stream s;
	struct meter_usage delta = {{0}};

	meter_stream_init(&s, 0);
	feed_str(&core, &s, START("msg_a", 1), &delta);
	assert_usage(&delta, 1000, 200, 3000, 1);
	memset(&delta, 0, sizeof(delta));
	feed_str(&core, &s, DELTA(50), &delta);
	assert_usage(&delta, 0, 0, 0, 49); /* only the increase */
	assert_usage(&core.total, 1000, 200, 3000, 50);
	/* The assistant snapshot of the same message (output 1) changes nothing. */
	memset(&delta, 0, sizeof(delta));
	feed_str(&core, &s,
		 "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_a\",\"usage\":{"
		 "\"input_tokens\":1000,\"output_tokens\":1}}}\n",
		 &delta);
	assert_usage(&delta, 0, 0, 0, 0);
	/* A second message: the delta applies to it, not to the first. */
	feed_str(&core, &s, START("msg_b", 1), &delta);
	feed_str(&core, &s, DELTA(20), &delta);
	assert_usage(&core.total, 2000, 400, 6000, 70);
	assert_usage(&core.msg_sum, 2000, 400, 6000, 70);
	assert_int_equal(core.messages, 2);
	meter_stream_free(&s);
}

static void test_total_never_decreases(void **state)
{
	(void)state;
	struct meter_core core = {0};
	struct meter_stream s;
	struct meter_usage delta = {{0}};

	meter_stream_init(&s, 0);
	feed_str(&core, &s, RESULT(4000, 200, 0.036), &delta);
	assert_usage(&core.total, 4000, 0, 0, 200);
	assert_int_equal(core.cost_micro_usd, 36000);
	memset(&delta, 0, sizeof(delta));
	feed_str(&core, &s, RESULT(100, 5, 0.001), &delta); /* smaller, later */
	assert_usage(&delta, 0, 0, 0, 0);
	assert_usage(&core.result, 4000, 0, 0, 200);
	assert_usage(&core.total, 4000, 0, 0, 200);
	assert_int_equal(core.cost_micro_usd, 36000);
	assert_int_equal(core.results, 2);
	/* Messages below the result's figures add nothing to the total... */
	feed_str(&core, &s, START("msg_a", 60), &delta);
	assert_usage(&delta, 0, 200, 3000, 0);
	assert_usage(&core.total, 4000, 200, 3000, 200);
	/* ...until their sum passes it. */
	for (int i = 0; i < 4; i++) {
		char line[256];
		snprintf(line, sizeof(line), START("msg_%d", 60), i);
		feed_str(&core, &s, line, &delta);
	}
	assert_usage(&core.msg_sum, 5000, 1000, 15000, 300);
	assert_usage(&core.total, 5000, 1000, 15000, 300);
	assert_usage(&delta, 1000, 1000, 15000, 100); /* the total's rise since the first result */
	meter_stream_free(&s);
}

static void test_cost_rounding(void **state)
{
	(void)state;
	static const struct {
		const char *cost;
		uint64_t micro;
	} cases[] = {
		{"0.036", 36000},     {"0", 0},
		{"0.0000005", 1},     {"0.00000049", 0},
		{"3.6E-2", 36000},    {"36e-3", 36000},
		{"1.5", 1500000},     {"0.0180000001", 18000},
		{"12", 12000000},     {"1e-30", 0},
		{"1e30", UINT64_MAX}, {"0.000000000000000000000000000000000000001", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char line[256];
		struct meter_event ev;
		enum meter_anomaly an;
		snprintf(line, sizeof(line),
			 "{\"type\":\"result\",\"usage\":{},\"total_cost_usd\":%s}", cases[i].cost);
		assert_int_equal(meter_parse_line(line, strlen(line), &ev, &an), 0);
		assert_int_equal(ev.kind, METER_EV_RESULT);
		assert_true(ev.has_cost);
		assert_int_equal(ev.cost_micro_usd, cases[i].micro);
	}
	/* null cost: a result without a cost, not an anomaly. */
	static const char nocost[] = "{\"type\":\"result\",\"usage\":{},\"total_cost_usd\":null}";
	struct meter_event ev;
	enum meter_anomaly an;
	assert_int_equal(meter_parse_line(nocost, sizeof(nocost) - 1, &ev, &an), 0);
	assert_int_equal(ev.kind, METER_EV_RESULT);
	assert_false(ev.has_cost);
}

static void test_subtype_truncated(void **state)
{
	(void)state;
	/* 30 ASCII bytes then a 2-byte character straddling the 31-byte limit. */
	static const char line[] = "{\"type\":\"result\",\"usage\":{},\"subtype\":"
				   "\"abcdefghijklmnopqrstuvwxyz0123\xc3\xa9xyz\"}";
	struct meter_core core = {0};
	struct meter_stream s;
	meter_stream_init(&s, 0);
	feed_str(&core, &s, line, NULL);
	meter_finish(&core, &s, NULL);
	assert_string_equal(core.result_subtype, "abcdefghijklmnopqrstuvwxyz0123");
	assert_int_equal(core.results, 1);
	meter_stream_free(&s);
}

static void test_weights_and_saturation(void **state)
{
	(void)state;
	struct meter_usage u = {{4000, 200, 800, 12000}};
	static const uint32_t w[METER_NFIELDS] = {[METER_INPUT] = 3,
						  [METER_OUTPUT] = 15,
						  [METER_CACHE_CREATION] = 4,
						  [METER_CACHE_READ] = 0};
	assert_int_equal(meter_usage_total(&u, NULL), 17000);
	assert_int_equal(meter_usage_total(&u, w), 4000 * 3 + 200 * 15 + 800 * 4);

	struct meter_usage big = {{UINT64_MAX / 2, UINT64_MAX / 2, 2, 0}};
	assert_int_equal(meter_usage_total(&big, NULL), UINT64_MAX);
	struct meter_usage huge = {{UINT64_MAX / 3, 0, 0, 0}};
	static const uint32_t w4[METER_NFIELDS] = {4, 1, 1, 1};
	assert_int_equal(meter_usage_total(&huge, w4), UINT64_MAX);

	/* Sums in the core stick at the top instead of wrapping. */
	struct meter_core *core = calloc(1, sizeof(*core));
	struct meter_stream s;
	struct meter_usage delta = {{0}};
	assert_non_null(core);
	core->msg_sum.n[METER_INPUT] = UINT64_MAX - 10;
	meter_stream_init(&s, 0);
	feed_str(core, &s, ASSISTANT("\"input_tokens\":9007199254740992") "\n", &delta);
	assert_int_equal(core->msg_sum.n[METER_INPUT], UINT64_MAX);
	assert_int_equal(core->total.n[METER_INPUT], UINT64_MAX);
	assert_int_equal(delta.n[METER_INPUT], UINT64_MAX);
	meter_stream_free(&s);
	free(core);
}

static void test_hash(void **state)
{
	(void)state;
	assert_int_not_equal(meter_hash_id("", 0), 0);
	assert_int_equal(meter_hash_id("msg_1", 5), meter_hash_id("msg_1", 5));
	assert_int_not_equal(meter_hash_id("msg_1", 5), meter_hash_id("msg_2", 5));
	assert_int_not_equal(meter_hash_id("msg_1", 5), meter_hash_id("msg_1", 4));
}

/* Repeats inside the window count once; the window is what the header promises, no more. */
static void test_window(void **state)
{
	(void)state;
	struct meter_core *core = calloc(1, sizeof(*core));
	struct meter_stream s;
	char line[256];
	assert_non_null(core);
	meter_stream_init(&s, 0);
	for (int i = 0; i < METER_WINDOW; i++) {
		snprintf(line, sizeof(line),
			 "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_%d\",\"usage\":{"
			 "\"input_tokens\":1}}}\n",
			 i);
		feed_str(core, &s, line, NULL);
	}
	assert_int_equal(core->messages, METER_WINDOW);
	assert_int_equal(core->win_used, METER_WINDOW);
	feed_str(core, &s,
		 "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_0\",\"usage\":{"
		 "\"input_tokens\":1}}}\n",
		 NULL);
	assert_int_equal(core->messages, METER_WINDOW); /* oldest still remembered */
	assert_int_equal(core->total.n[METER_INPUT], METER_WINDOW);
	/* One more distinct id pushes msg_0 out; msg_1 (now oldest) is still known. */
	feed_str(core, &s,
		 "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_new\",\"usage\":{"
		 "\"input_tokens\":1}}}\n",
		 NULL);
	feed_str(core, &s,
		 "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_1\",\"usage\":{"
		 "\"input_tokens\":1}}}\n",
		 NULL);
	assert_int_equal(core->messages, METER_WINDOW + 1);
	feed_str(core, &s,
		 "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_0\",\"usage\":{"
		 "\"input_tokens\":1}}}\n",
		 NULL);
	assert_int_equal(core->messages, METER_WINDOW + 2);
	assert_int_equal(core->total.n[METER_INPUT], METER_WINDOW + 2);
	meter_stream_free(&s);
	free(core);
}

/* ------------------------------------------------------------------------------------------ */
/* `--output-format json --verbose`: the whole session as one line holding a JSON array */

/* The lines of a blob (without their newlines). */
struct lines {
	const char *p[64];
	size_t len[64];
	size_t n;
};

static void split_lines(const struct blob *b, struct lines *ls)
{
	const char *p = b->data, *end = b->data + b->len;
	ls->n = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		assert_non_null(nl);
		assert_true(ls->n < sizeof(ls->p) / sizeof(ls->p[0]));
		ls->p[ls->n] = p;
		ls->len[ls->n++] = (size_t)(nl - p);
		p = nl + 1;
	}
}

/* "[" line "," line ... "]\n": what json --verbose prints for the session of those lines. */
static char *join_array(const struct lines *ls, size_t *len)
{
	size_t n = 3;
	for (size_t i = 0; i < ls->n; i++)
		n += ls->len[i] + 1;
	char *a = malloc(n), *q = a;
	assert_non_null(a);
	*q++ = '[';
	for (size_t i = 0; i < ls->n; i++) {
		if (i)
			*q++ = ',';
		memcpy(q, ls->p[i], ls->len[i]);
		q += ls->len[i];
	}
	*q++ = ']';
	*q++ = '\n';
	*len = (size_t)(q - a);
	return a;
}

/* The id hash of the first "msg_..." (28 bytes) of a fixture line. */
static uint64_t line_msg_id(const char *line, size_t len)
{
	const char *id = memmem(line, len, "msg_", 4);
	assert_non_null(id);
	return meter_hash_id(id, 28);
}

/* What two cores must agree on after the same session. */
static void assert_same_session(const struct meter_core *a, const struct meter_core *b)
{
	assert_memory_equal(&a->total, &b->total, sizeof(a->total));
	assert_memory_equal(&a->msg_sum, &b->msg_sum, sizeof(a->msg_sum));
	assert_memory_equal(&a->result, &b->result, sizeof(a->result));
	assert_int_equal(a->cost_micro_usd, b->cost_micro_usd);
	assert_int_equal(a->results, b->results);
	assert_int_equal(a->messages, b->messages);
	assert_string_equal(a->result_subtype, b->result_subtype);
	assert_memory_equal(a->anomalies, b->anomalies, sizeof(a->anomalies));
}

/* The real stream-json session (system init, assistant messages with their ids and usage, tool
 * results, the result) as one array counts exactly as its lines do, fed whole or byte by byte;
 * tool results and calls are followed element by element. */
static void test_json_verbose_array(void **state)
{
	(void)state;
	struct blob b = fixture("stdout.stream-json.jsonl");
	struct lines ls;
	size_t alen;
	split_lines(&b, &ls);
	assert_int_equal(ls.n, 12);
	char *arr = join_array(&ls, &alen);
	struct meter_core *lines = calloc(1, sizeof(*lines)), *whole = calloc(1, sizeof(*whole)),
			  *bytes = calloc(1, sizeof(*bytes));
	struct meter_usage dl = {{0}}, dw = {{0}}, db = {{0}};
	struct meter_stream sl, sw, sb;
	assert_non_null(lines);
	assert_non_null(whole);
	assert_non_null(bytes);
	meter_stream_init(&sl, 0);
	meter_stream_init(&sw, 0);
	meter_stream_init(&sb, 0);
	sl.track_calls = sw.track_calls = sb.track_calls = true;

	assert_true(meter_feed(lines, &sl, METER_POS_APPEND, b.data, b.len, &dl));
	assert_true(meter_feed(whole, &sw, METER_POS_APPEND, arr, alen, &dw));
	for (size_t i = 0; i < alen; i++)
		assert_true(meter_feed(bytes, &sb, METER_POS_APPEND, arr + i, 1, &db));

	assert_usage(&whole->total, 4000, 800, 12000, 200);
	assert_memory_equal(&dw, &whole->total, sizeof(dw));
	assert_int_equal(whole->cost_micro_usd, 36000);
	assert_int_equal(whole->results, 1);
	assert_int_equal(whole->messages, 4);
	assert_string_equal(whole->result_subtype, "success");
	assert_no_anomaly(whole);
	assert_int_equal(whole->lines, 1);
	assert_int_equal(lines->lines, 12);
	assert_same_session(whole, lines);
	assert_same_session(bytes, lines);
	assert_memory_equal(&db, &dw, sizeof(db));
	assert_memory_equal(&dl, &dw, sizeof(dl));

	/* Tool results: the three user elements, byte for byte the lines they were. */
	uint64_t tools = ls.len[3] + ls.len[6] + ls.len[9];
	assert_int_equal(sl.tool_bytes, tools);
	assert_int_equal(sw.tool_bytes, tools);
	assert_int_equal(sb.tool_bytes, tools);
	/* The last call that asked for a tool. */
	assert_true(sw.tool_use_id == line_msg_id(ls.p[8], ls.len[8]));
	assert_true(sl.tool_use_id == sw.tool_use_id);
	assert_true(sb.tool_use_id == sw.tool_use_id);
	/* The same calls, first seen after the same tool results. */
	struct meter_fresh fl[METER_FRESH], fw[METER_FRESH], fb[METER_FRESH];
	assert_int_equal(meter_take_calls(&sl, fl, METER_FRESH), 4);
	assert_int_equal(meter_take_calls(&sw, fw, METER_FRESH), 4);
	assert_int_equal(meter_take_calls(&sb, fb, METER_FRESH), 4);
	static const int first_line[4] = {1, 4, 7, 10};
	const uint64_t tools_before[4] = {0, ls.len[3], ls.len[3] + ls.len[6], tools};
	for (int i = 0; i < 4; i++) {
		uint64_t before = tools_before[i];
		uint64_t id = line_msg_id(ls.p[first_line[i]], ls.len[first_line[i]]);
		assert_true(fw[i].id_hash == id);
		assert_int_equal(fw[i].tool_bytes, before);
		assert_true(fw[i].is_new);
		assert_true(fl[i].id_hash == id && fb[i].id_hash == id);
		assert_int_equal(fl[i].tool_bytes, before);
		assert_int_equal(fb[i].tool_bytes, before);
		assert_true(fl[i].is_new && fb[i].is_new);
	}

	meter_stream_free(&sl);
	meter_stream_free(&sw);
	meter_stream_free(&sb);
	free(lines);
	free(whole);
	free(bytes);
	free(arr);
	free(b.data);
}

#define SYS_INIT "{\"type\":\"system\",\"subtype\":\"init\",\"tools\":[\"Bash\"]}"
#define MSG(id, in, out)                                                                           \
	"{\"type\":\"assistant\",\"message\":{\"id\":\"" id "\",\"usage\":{\"input_tokens\":" #in  \
	",\"output_tokens\":" #out "}}}"
#define TOOL_RESULT                                                                                \
	"{\"type\":\"user\",\"message\":{\"content\":[{\"type\":\"tool_result\",\"content\":"      \
	"\"ok\"}]}}"
#define RESULT_OBJ(in, out)                                                                        \
	"{\"type\":\"result\",\"subtype\":\"success\",\"total_cost_usd\":0.25,\"usage\":{"         \
	"\"input_tokens\":" #in ",\"output_tokens\":" #out "}}"

/* The objects of a small session, with sep between them. */
#define HAND_SESSION(sep)                                                                          \
	SYS_INIT sep MSG("msg_a", 10, 1) sep MSG("msg_a", 10, 5)                                   \
		sep TOOL_RESULT sep MSG("msg_b", 20, 2) sep RESULT_OBJ(30, 7)

/* A small session by hand, one array against the same objects as lines: exact figures. */
static void test_json_verbose_array_by_hand(void **state)
{
	(void)state;
	static const char arr[] = "[ " HAND_SESSION(" ,\t") " ]";
	static const char lines[] = HAND_SESSION("\n") "\n";
	struct meter_core a = {0}, l = {0};
	struct meter_usage da = {{0}}, dl = {{0}};
	struct meter_stream sa, sl;

	meter_stream_init(&sa, 0);
	meter_stream_init(&sl, 0);
	/* Without its newline: the source's end ends the line. */
	feed_str(&a, &sa, arr, &da);
	assert_int_equal(a.lines, 0);
	meter_finish(&a, &sa, &da);
	assert_int_equal(a.lines, 1);
	feed_str(&l, &sl, lines, &dl);
	assert_usage(&a.total, 30, 0, 0, 7);
	assert_usage(&a.msg_sum, 30, 0, 0, 7);
	assert_usage(&a.result, 30, 0, 0, 7);
	assert_int_equal(a.cost_micro_usd, 250000);
	assert_int_equal(a.messages, 2);
	assert_int_equal(a.results, 1);
	assert_string_equal(a.result_subtype, "success");
	assert_no_anomaly(&a);
	assert_same_session(&a, &l);
	assert_memory_equal(&da, &dl, sizeof(da));
	meter_stream_free(&sa);
	meter_stream_free(&sl);
}

/* An array with a malformed element is one NOT_JSON line: what came before the damage counts
 * (whole objects, each once), nothing after it. */
static void test_json_verbose_array_malformed(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		uint64_t in, out; /* counted: the elements before the damage */
		uint64_t messages;
	} cases[] = {
		/* A trailing comma inside the second message. */
		{"[" MSG("msg_a", 10, 1) ",{\"type\":\"assistant\",\"message\":{\"id\":\"msg_b\","
					 "\"usage\":{\"input_tokens\":5},}}," MSG(
						 "msg_c", 7, 1) "," RESULT_OBJ(500, 9) "]\n",
		 10, 1, 1},
		/* Damaged first: nothing. */
		{"[{\"type\":\"assistant\",\"usage\":" MSG("msg_c", 7, 1) "," RESULT_OBJ(500,
											 9) "]\n",
		 0, 0, 0},
		/* Two elements without a comma. */
		{"[" MSG("msg_a", 10, 1) MSG("msg_c", 7, 1) "," RESULT_OBJ(500, 9) "]\n", 10, 1, 1},
		/* A non-object element that is not JSON. */
		{"[" MSG("msg_a", 10, 1) ",tru," RESULT_OBJ(500, 9) "]\n", 10, 1, 1},
		/* Not closed before the line ends. */
		{"[" MSG("msg_a", 10, 1) "," MSG("msg_c", 7, 1) "\n", 17, 2, 2},
		/* Bytes after the closing bracket. */
		{"[" MSG("msg_a", 10, 1) "] x\n", 10, 1, 1},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct meter_core core = {0};
		struct meter_usage delta = {{0}};
		struct meter_stream s;
		meter_stream_init(&s, 0);
		feed_str(&core, &s, cases[i].line, &delta);
		assert_int_equal(core.lines, 1);
		for (int k = 0; k < METER_NANOMALY; k++)
			assert_int_equal(core.anomalies[k], k == METER_ANOM_NOT_JSON ? 1 : 0);
		assert_usage(&core.total, cases[i].in, 0, 0, cases[i].out);
		assert_int_equal(core.messages, cases[i].messages);
		assert_int_equal(core.results, 0);
		assert_int_equal(core.cost_micro_usd, 0);
		assert_string_equal(core.result_subtype, "");
		assert_memory_equal(&delta, &core.total, sizeof(delta));
		meter_stream_free(&s);
	}

	/* A bad count in one element spoils that element only, as on a line of its own. */
	struct meter_core core = {0};
	struct meter_stream s;
	meter_stream_init(&s, 0);
	feed_str(&core, &s,
		 "[" MSG("msg_a", 10, 1) ",{\"type\":\"assistant\",\"message\":{\"id\":\"msg_b\","
					 "\"usage\":{\"input_tokens\":-5}}}," RESULT_OBJ(500,
											 9) "]\n",
		 NULL);
	assert_int_equal(core.anomalies[METER_ANOM_BAD_NUMBER], 1);
	assert_int_equal(core.anomalies[METER_ANOM_NOT_JSON], 0);
	assert_int_equal(core.messages, 1);
	assert_int_equal(core.results, 1);
	assert_usage(&core.total, 500, 0, 0, 9);
	meter_stream_free(&s);
}

/* Arrays that hold no usage object: nothing counts, nothing is wrong. */
static void test_json_verbose_array_without_objects(void **state)
{
	(void)state;
	static const char *const lines[] = {
		"[]\n",
		" [ ] \n",
		"[\"usage\"]\n",
		"[\"usage\", 1, -2.5e3, null, true, false, [[], [\"usage\", {\"usage\": 3}]]]\n",
		"[ \"input_tokens usage\" ,\t[{\"type\":\"assistant\",\"message\":{\"id\":\"m\","
		"\"usage\":{\"input_tokens\":5}}}] ]\n",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		struct meter_core core = {0};
		struct meter_usage delta = {{0}};
		struct meter_stream s;
		meter_stream_init(&s, 0);
		s.track_calls = true;
		feed_str(&core, &s, lines[i], &delta);
		assert_int_equal(core.lines, 1);
		assert_no_anomaly(&core);
		assert_usage(&core.total, 0, 0, 0, 0);
		assert_usage(&delta, 0, 0, 0, 0);
		assert_int_equal(core.messages, 0);
		assert_int_equal(core.results, 0);
		assert_int_equal(s.n_fresh, 0);
		meter_stream_free(&s);
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Call tracking (meter_stream.track_calls) */

/* tool_bytes grows by the length of each line that holds a tool result, and by nothing else. */
static void test_track_tool_bytes(void **state)
{
	(void)state;
	static const char tool[] = TOOL_RESULT;
	/* A tool result whose content mentions usage: still no usage of its own. */
	static const char tool_usage[] = "{\"type\":\"user\",\"message\":{\"content\":[{\"type\":"
					 "\"tool_result\",\"content\":"
					 "\"usage: 5\"}]}}";
	struct meter_core core = {0};
	struct meter_stream s, off;
	uint64_t want = 0;

	meter_stream_init(&s, 0);
	meter_stream_init(&off, 0);
	s.track_calls = true;
	feed_str(&core, &s, SYS_INIT "\n", NULL);
	assert_int_equal(s.tool_bytes, 0);
	feed_str(&core, &s, TOOL_RESULT "\n", NULL);
	want += sizeof(tool) - 1;
	assert_int_equal(s.tool_bytes, want);
	/* The word inside other text is not the "tool_result" string. */
	feed_str(&core, &s, "{\"type\":\"user\",\"x\":\"a tool_result\"}\n", NULL);
	feed_str(&core, &s, "plain text about tool_result\n", NULL);
	assert_int_equal(s.tool_bytes, want);
	/* The string anywhere in a line without usage: the line counts. */
	static const char other[] = "{\"type\":\"user\",\"x\":\"tool_result\"}";
	feed_str(&core, &s, other, NULL);
	feed_str(&core, &s, "\n", NULL);
	want += sizeof(other) - 1;
	assert_int_equal(s.tool_bytes, want);
	/* A call's line that names a tool result is the call, not a result. */
	feed_str(&core, &s,
		 "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_t\",\"content\":[{\"type\":"
		 "\"tool_result\"}],\"usage\":{\"input_tokens\":1}}}\n",
		 NULL);
	assert_int_equal(s.tool_bytes, want);
	assert_int_equal(core.messages, 1);
	feed_str(&core, &s, tool_usage, NULL);
	feed_str(&core, &s, "\n", NULL);
	want += sizeof(tool_usage) - 1;
	assert_int_equal(s.tool_bytes, want);
	/* Split across writes: counted once, whole. */
	for (size_t i = 0; i < sizeof(tool) - 1; i++)
		assert_true(meter_feed(&core, &s, METER_POS_APPEND, tool + i, 1, NULL));
	assert_int_equal(s.tool_bytes, want);
	feed_str(&core, &s, "\n", NULL);
	want += sizeof(tool) - 1;
	assert_int_equal(s.tool_bytes, want);
	/* A tool result that is not valid JSON but carries the marker is an anomaly, no result. */
	feed_str(&core, &s, "{\"type\":\"tool_result\",\"usage\":\n", NULL);
	assert_int_equal(core.anomalies[METER_ANOM_NOT_JSON], 1);
	assert_int_equal(s.tool_bytes, want);

	/* Not tracking: nothing. */
	feed_str(&core, &off, TOOL_RESULT "\n", NULL);
	feed_str(&core, &off, tool_usage, NULL);
	feed_str(&core, &off, "\n", NULL);
	feed_str(&core, &off,
		 "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_u\",\"content\":[{\"type\":"
		 "\"tool_use\"}],\"usage\":{\"input_tokens\":1}}}\n",
		 NULL);
	assert_int_equal(off.tool_bytes, 0);
	assert_int_equal(off.tool_use_id, 0);
	assert_int_equal(off.n_fresh, 0);
	assert_int_equal(off.fresh_lost, 0);
	assert_int_equal(core.messages, 2);
	meter_stream_free(&s);
	meter_stream_free(&off);
}

#define TOOL_USE(id, in)                                                                           \
	"{\"type\":\"assistant\",\"message\":{\"id\":\"" id "\",\"content\":[{\"type\":"           \
	"\"tool_use\",\"id\":\"toolu_1\",\"name\":\"Bash\"}],\"usage\":{\"input_tokens\":" #in     \
	"}}}\n"

/* tool_use_id: the latest call whose assistant line asks for a tool. */
static void test_track_tool_use_id(void **state)
{
	(void)state;
	struct meter_core core = {0};
	struct meter_stream s;
	const uint64_t a = meter_hash_id("msg_a", 5), b = meter_hash_id("msg_b", 5);

	meter_stream_init(&s, 0);
	s.track_calls = true;
	feed_str(&core, &s, MSG("msg_a", 1, 1) "\n", NULL);
	assert_int_equal(s.tool_use_id, 0);
	feed_str(&core, &s, TOOL_USE("msg_a", 1), NULL);
	assert_true(s.tool_use_id == a);
	/* A later call without a tool leaves it; a tool result's "tool_use_id" is not a call. */
	feed_str(&core, &s, MSG("msg_b", 2, 1) "\n", NULL);
	feed_str(&core, &s,
		 "{\"type\":\"user\",\"message\":{\"content\":[{\"tool_use_id\":\"toolu_1\","
		 "\"type\":"
		 "\"tool_result\"}]}}\n",
		 NULL);
	assert_true(s.tool_use_id == a);
	feed_str(&core, &s, TOOL_USE("msg_b", 2), NULL);
	assert_true(s.tool_use_id == b);
	/* A message_start is not an assistant line: it does not say a tool was asked for. */
	feed_str(&core, &s,
		 "{\"type\":\"stream_event\",\"event\":{\"type\":\"message_start\",\"message\":{"
		 "\"id\":\"msg_c\",\"content\":[{\"type\":\"tool_use\"}],\"usage\":{"
		 "\"input_tokens\":1}}}}\n",
		 NULL);
	assert_true(s.tool_use_id == b);
	/* tool_use only as a word in a text. */
	feed_str(&core, &s,
		 "{\"type\":\"assistant\",\"x\":\"no tool_use\",\"message\":{\"id\":\"msg_d\","
		 "\"usage\":{\"input_tokens\":1}}}\n",
		 NULL);
	assert_true(s.tool_use_id == b);
	/* Whichever call's line asked last: an older call read again (its transcript copy) too. */
	feed_str(&core, &s, TOOL_USE("msg_a", 1), NULL);
	assert_true(s.tool_use_id == a);
	meter_stream_free(&s);
}

static void assert_call(const struct meter_fresh *f, const char *id, uint64_t tool_bytes,
			bool is_new)
{
	assert_true(f->id_hash == meter_hash_id(id, strlen(id)));
	assert_int_equal(f->tool_bytes, tool_bytes);
	assert_int_equal(f->is_new, is_new);
}

/* meter_take_calls: the calls a stream showed, in order, each once per stretch of its lines,
 * with the stream's tool_bytes at that moment and whether the core had seen it before; more
 * than METER_FRESH untaken are counted as lost. */
static void test_take_calls(void **state)
{
	(void)state;
	struct meter_core *core = calloc(1, sizeof(*core));
	struct meter_stream s, t, off;
	struct meter_fresh out[METER_FRESH + 4];
	const uint64_t tool_len = sizeof(TOOL_RESULT) - 1;

	assert_non_null(core);
	meter_stream_init(&s, 0);
	meter_stream_init(&t, 0);
	meter_stream_init(&off, 0);
	s.track_calls = t.track_calls = true;
	assert_int_equal(meter_take_calls(&s, out, METER_FRESH), 0);

	feed_str(core, &s, MSG("msg_a", 10, 1) "\n", NULL);
	feed_str(core, &s, MSG("msg_a", 10, 5) "\n", NULL); /* its next content block */
	feed_str(core, &s, TOOL_RESULT "\n", NULL);
	feed_str(core, &s, START("msg_b", 1), NULL); /* a message_start is a call too */
	feed_str(core, &s, DELTA(50), NULL);	     /* a delta is not */
	feed_str(core, &s, TOOL_RESULT "\n" TOOL_RESULT "\n", NULL);
	feed_str(core, &s, MSG("msg_c", 1, 1) "\n", NULL);
	assert_int_equal(s.n_fresh, 3);

	/* Taken in order, as many as asked for. */
	assert_int_equal(meter_take_calls(&s, out, 1), 1);
	assert_call(&out[0], "msg_a", 0, true);
	assert_int_equal(s.n_fresh, 2);
	memset(out, 0, sizeof(out));
	assert_int_equal(meter_take_calls(&s, out, METER_FRESH), 2);
	assert_call(&out[0], "msg_b", tool_len, true);
	assert_call(&out[1], "msg_c", 3 * tool_len, true);
	assert_int_equal(out[2].id_hash, 0); /* no more written than returned */
	assert_int_equal(meter_take_calls(&s, out, METER_FRESH), 0);
	assert_int_equal(meter_take_calls(&s, out, 0), 0);

	/* A call seen again after another (its transcript copy, a result read back): noted
	 * again, as not new; its next lines in a row are not. On another stream: that stream's
	 * own entry, with that stream's tool_bytes. */
	feed_str(core, &s, MSG("msg_b", 1000, 99) "\n", NULL);
	feed_str(core, &s, MSG("msg_b", 1000, 99) "\n", NULL);
	feed_str(core, &t, MSG("msg_a", 10, 5) "\n", NULL);
	feed_str(core, &t, TOOL_RESULT "\n", NULL);
	feed_str(core, &t, MSG("msg_d", 1, 1) "\n", NULL);
	feed_str(core, &t, MSG("msg_d", 1, 2) "\n", NULL);
	feed_str(core, &s, MSG("msg_d", 1, 1) "\n", NULL);
	feed_str(core, &s, MSG("msg_c", 1, 1) "\n", NULL);
	feed_str(core, &s, MSG("msg_d", 1, 1) "\n", NULL);
	assert_int_equal(meter_take_calls(&s, out, METER_FRESH), 4);
	assert_call(&out[0], "msg_b", 3 * tool_len, false);
	assert_call(&out[1], "msg_d", 3 * tool_len, false);
	assert_call(&out[2], "msg_c", 3 * tool_len, false);
	assert_call(&out[3], "msg_d", 3 * tool_len, false);
	assert_int_equal(meter_take_calls(&t, out, METER_FRESH), 2);
	assert_call(&out[0], "msg_a", 0, false);
	assert_call(&out[1], "msg_d", tool_len, true);
	/* Taken or not, the latest call is not noted again while its lines go on. */
	feed_str(core, &s, MSG("msg_d", 1, 3) "\n", NULL);
	assert_int_equal(s.n_fresh, 0);

	/* METER_FRESH + 3 calls untaken: the first METER_FRESH kept, 3 lost. */
	for (int i = 0; i < METER_FRESH + 3; i++) {
		char line[256];
		snprintf(line, sizeof(line), MSG("msg_n%d", 1, 1) "\n", i);
		feed_str(core, &s, line, NULL);
	}
	assert_int_equal(s.n_fresh, METER_FRESH);
	assert_int_equal(s.fresh_lost, 3);
	assert_int_equal(meter_take_calls(&s, out, METER_FRESH + 4), METER_FRESH);
	for (int i = 0; i < METER_FRESH; i++) {
		char id[32];
		snprintf(id, sizeof(id), "msg_n%d", i);
		assert_call(&out[i], id, 3 * tool_len, true);
	}
	/* Room again: the next one is kept; what was lost stays counted. */
	feed_str(core, &s, MSG("msg_z", 1, 1) "\n", NULL);
	assert_int_equal(s.n_fresh, 1);
	assert_int_equal(s.fresh_lost, 3);
	assert_int_equal(t.fresh_lost, 0);
	/* The latest call, pushed out of the window (by another stream) and seen again: new to
	 * the core, so noted although it is the latest. */
	for (int i = 0; i < METER_WINDOW; i++) {
		char line[256];
		snprintf(line, sizeof(line), MSG("msg_w%d", 1, 1) "\n", i);
		feed_str(core, &off, line, NULL);
	}
	feed_str(core, &s, MSG("msg_z", 1, 1) "\n", NULL);
	assert_int_equal(meter_take_calls(&s, out, METER_FRESH), 2);
	assert_call(&out[0], "msg_z", 3 * tool_len, true);
	assert_call(&out[1], "msg_z", 3 * tool_len, true);
	assert_int_equal(off.n_fresh, 0);

	/* Not tracking: nothing noted, nothing lost. */
	for (int i = 0; i < METER_FRESH + 3; i++) {
		char line[256];
		snprintf(line, sizeof(line), MSG("msg_o%d", 1, 1) "\n", i);
		feed_str(core, &off, line, NULL);
	}
	assert_int_equal(off.n_fresh, 0);
	assert_int_equal(off.fresh_lost, 0);
	assert_int_equal(meter_take_calls(&off, out, METER_FRESH), 0);
	meter_stream_free(&s);
	meter_stream_free(&t);
	meter_stream_free(&off);
	free(core);
}

/* meter_message_usage: a call's per-field maxima so far, from any of its lines. */
static void test_message_usage(void **state)
{
	(void)state;
	struct meter_core *core = calloc(1, sizeof(*core));
	struct meter_stream s;
	struct meter_usage u;

	assert_non_null(core);
	meter_stream_init(&s, 0);
	assert_false(meter_message_usage(core, meter_hash_id("msg_a", 5), &u));
	feed_str(core, &s,
		 "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_a\",\"usage\":{\"input_"
		 "tokens\":10,"
		 "\"output_tokens\":1,\"cache_read_input_tokens\":7}}}\n",
		 NULL);
	feed_str(core, &s,
		 "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_a\",\"usage\":{\"input_"
		 "tokens\":8,"
		 "\"output_tokens\":5,\"cache_creation_input_tokens\":3}}}\n",
		 NULL);
	memset(&u, 0x5a, sizeof(u));
	assert_true(meter_message_usage(core, meter_hash_id("msg_a", 5), &u));
	assert_usage(&u, 10, 3, 7, 5);
	/* A delta raises the message it belongs to, and no other. */
	feed_str(core, &s, START("msg_b", 1), NULL);
	feed_str(core, &s, DELTA(50), NULL);
	assert_true(meter_message_usage(core, meter_hash_id("msg_b", 5), &u));
	assert_usage(&u, 1000, 200, 3000, 50);
	assert_true(meter_message_usage(core, meter_hash_id("msg_a", 5), &u));
	assert_usage(&u, 10, 3, 7, 5);
	/* A result line is no message. */
	feed_str(core, &s, RESULT(9999, 999, 0.1), NULL);
	assert_false(meter_message_usage(core, meter_hash_id("msg_c", 5), &u));
	assert_true(meter_message_usage(core, meter_hash_id("msg_a", 5), &u));
	assert_usage(&u, 10, 3, 7, 5);
	/* Pushed out of the window: unknown again. */
	for (int i = 0; i < METER_WINDOW - 1; i++) {
		char line[256];
		snprintf(line, sizeof(line), MSG("msg_w%d", 1, 1) "\n", i);
		feed_str(core, &s, line, NULL);
	}
	assert_false(meter_message_usage(core, meter_hash_id("msg_a", 5), &u));
	assert_true(meter_message_usage(core, meter_hash_id("msg_b", 5), &u));
	assert_usage(&u, 1000, 200, 3000, 50);
	meter_stream_free(&s);
	free(core);
}

/* ------------------------------------------------------------------------------------------ */

/* ---- pricing --------------------------------------------------------------------------------- */

/* A fake price function: model "opus" 10 pico-USD a token (20 for a 1-hour write), "haiku" 1;
 * anything else 1000. Records whether it was asked to price a sum, and the models it saw. */
struct fake_prices {
	int sums, calls;
	char seen[8][METER_MODEL_LEN];
	int n_seen;
};

static uint64_t fake_price(void *ctx, const char *model, const struct meter_usage *u,
			   uint64_t cache_1h, bool is_sum)
{
	struct fake_prices *f = ctx;
	f->calls++;
	f->sums += is_sum;
	if (f->n_seen < 8)
		snprintf(f->seen[f->n_seen++], METER_MODEL_LEN, "%s", model);
	/* As the real table: a "[...]" tag names the same model. */
	bool is_opus = !strcmp(model, "opus") || !strcmp(model, "opus[1m]");
	uint64_t rate = is_opus ? 10 : !strcmp(model, "haiku") ? 1 : 1000;
	uint64_t n = u->n[0] + u->n[1] + u->n[2] + u->n[3];
	return n * rate + (is_opus ? cache_1h * 10 : 0);
}

/* A meter whose calls fake_price prices, with one stream. */
static void priced_meter(struct meter_core *core, struct fake_prices *f, struct meter_stream *s)
{
	memset(core, 0, sizeof(*core));
	memset(f, 0, sizeof(*f));
	core->price = fake_price;
	core->price_ctx = f;
	meter_stream_init(s, 0);
}

/* A result line whose modelUsage holds a side call of another model (1.0.x's small model) adds
 * it to the calls' own price, even where the calls' 1-hour writes make them cost more than the
 * result says of their model. */
static void test_price_side_model_kept(void **state)
{
	(void)state;
	struct meter_core core;
	struct fake_prices f;
	struct meter_stream s;
	struct meter_usage delta = {{0}};
	priced_meter(&core, &f, &s);
	/* One opus call: 100 input, 1000 cache writes all 1-hour: 1100 x 10 + 1000 x 10. */
	feed_str(&core, &s,
		 "{\"type\":\"assistant\",\"message\":{\"id\":\"m1\",\"model\":\"opus\",\"usage\":"
		 "{\"input_tokens\":100,\"cache_creation_input_tokens\":1000,\"cache_creation\":"
		 "{\"ephemeral_5m_input_tokens\":0,\"ephemeral_1h_input_tokens\":1000},"
		 "\"output_tokens\":0}}}\n",
		 &delta);
	assert_int_equal(core.pusd_total, 21000);
	/* The result: opus as above (no split: 11000), and a haiku side call of 500 tokens. */
	feed_str(&core, &s,
		 "{\"type\":\"result\",\"subtype\":\"success\",\"usage\":{\"input_tokens\":100,"
		 "\"cache_creation_input_tokens\":1000,\"output_tokens\":0},\"modelUsage\":{"
		 "\"opus[1m]\":{\"inputTokens\":100,\"cacheCreationInputTokens\":1000,"
		 "\"outputTokens\":0},\"haiku\":{\"inputTokens\":500,\"outputTokens\":0}}}\n",
		 &delta);
	/* opus: max(21000, 11000) + haiku: max(0, 500). */
	assert_int_equal(core.pusd_total, 21500);
	assert_int_equal(f.sums, 2); /* the result's two models, priced as sums */
	meter_stream_free(&s);
}

/* "<synthetic>" messages (the CLI's own, no usage) name no model: not priced, not the agent's
 * model, never an unknown one. */
static void test_price_synthetic_ignored(void **state)
{
	(void)state;
	struct meter_core core;
	struct fake_prices f;
	struct meter_stream s;
	struct meter_usage delta = {{0}};
	priced_meter(&core, &f, &s);
	feed_str(&core, &s,
		 "{\"type\":\"assistant\",\"message\":{\"id\":\"m1\",\"model\":\"opus\",\"usage\":"
		 "{\"input_tokens\":10,\"output_tokens\":1}}}\n"
		 "{\"type\":\"assistant\",\"message\":{\"id\":\"m2\",\"model\":\"<synthetic>\","
		 "\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n",
		 &delta);
	assert_string_equal(meter_last_model(&core), "opus");
	assert_int_equal(core.n_models, 1);
	assert_int_equal(core.pusd_total, 110);
	for (int i = 0; i < f.n_seen; i++)
		assert_string_not_equal(f.seen[i], "<synthetic>");
	meter_stream_free(&s);
}

/* An assistant line of a call: its text block, with stop_reason null (written before the stream's
 * message_delta: the message_start snapshot) or a string (the final usage). */
#define TURN_LINE(id, stop, out)                                                                   \
	"{\"type\":\"assistant\",\"message\":{\"id\":\"" id                                        \
	"\",\"model\":\"opus\",\"stop_reason\":" stop                                              \
	",\"usage\":{\"input_tokens\":10,\"output_tokens\":" #out "}}}\n"

static bool skip_id(const void *ctx, uint64_t id_hash)
{
	return id_hash == *(const uint64_t *)ctx;
}

/* A call is final once a line shows its stop_reason or the stream's message_delta; one that only
 * ever showed its snapshot is counted as shown and reported, with what it would add at the
 * agent's largest output (the gap), priced as the whole call would be. */
static void test_unfinal_calls(void **state)
{
	(void)state;
	struct meter_core core;
	struct fake_prices f;
	struct meter_stream s;
	struct meter_usage delta = {{0}};
	struct meter_unfinal u;
	priced_meter(&core, &f, &s);

	/* m1: snapshot (null), then final on its next block's line: final. */
	feed_str(&core, &s, TURN_LINE("m1", "null", 1) TURN_LINE("m1", "\"tool_use\"", 50), &delta);
	/* m2: both of its lines written before the delta: never final (Claude Code 2.1.197). */
	feed_str(&core, &s, TURN_LINE("m2", "null", 1) TURN_LINE("m2", "null", 1), &delta);
	meter_unfinal(&core, NULL, NULL, &u);
	assert_int_equal(u.calls, 1);
	assert_int_equal(u.gap, 49);
	/* Priced as m2 would be with output 50: (10 + 50) x 10 less its (10 + 1) x 10. */
	assert_int_equal(u.gap_pusd, 490);
	assert_usage(&core.total, 20, 0, 0, 51); /* counted as shown */

	/* A call left out by the caller (its request still holds a prediction). */
	uint64_t m2 = meter_hash_id("m2", 2);
	meter_unfinal(&core, skip_id, &m2, &u);
	assert_int_equal(u.calls, 0);
	assert_int_equal(u.gap, 0);

	/* A stream's message_delta is final usage. */
	feed_str(&core, &s, START("m3", 1), &delta);
	meter_unfinal(&core, NULL, NULL, &u);
	assert_int_equal(u.calls, 2);
	feed_str(&core, &s, DELTA(30), &delta);
	meter_unfinal(&core, NULL, NULL, &u);
	assert_int_equal(u.calls, 1);
	assert_int_equal(u.gap, 49);

	/* A line with stop_reason but a lower count raises nothing and makes the call final. */
	feed_str(&core, &s, TURN_LINE("m2", "\"end_turn\"", 1), &delta);
	meter_unfinal(&core, NULL, NULL, &u);
	assert_int_equal(u.calls, 0);
	meter_stream_free(&s);
}

/* A result line with a modelUsage covers the calls before it (its figures are the session's,
 * subagents included), not those after it; one without (the main conversation's usage, which a
 * subagent's calls in the sum can hide) covers none. A line without a stop_reason that shows
 * more output than a snapshot has the final count (1.0.x's text-only answers). */
static void test_unfinal_result_covers(void **state)
{
	(void)state;
	struct meter_core core = {0};
	struct meter_stream s;
	struct meter_usage delta = {{0}};
	struct meter_unfinal u;
	meter_stream_init(&s, 0);

	feed_str(&core, &s, TURN_LINE("m0", "\"end_turn\"", 50), &delta);
	feed_str(&core, &s, TURN_LINE("m1", "null", 1), &delta);
	feed_str(&core, &s, TURN_LINE("m2", "null", 2), &delta);
	feed_str(&core, &s, TURN_LINE("m3", "null", 3), &delta); /* more than a snapshot */
	meter_unfinal(&core, NULL, NULL, &u);
	assert_int_equal(u.calls, 2);
	assert_int_equal(u.gap, 49 + 48);
	assert_int_equal(u.gap_pusd, 0); /* no price function */

	feed_str(&core, &s, RESULT(40, 106, 0.01), &delta);
	meter_unfinal(&core, NULL, NULL, &u);
	assert_int_equal(u.calls, 2);

	feed_str(&core, &s,
		 "{\"type\":\"result\",\"usage\":{\"input_tokens\":30,\"output_tokens\":90},"
		 "\"modelUsage\":{\"opus\":{\"inputTokens\":50,\"outputTokens\":200}}}\n",
		 &delta);
	meter_unfinal(&core, NULL, NULL, &u);
	assert_int_equal(u.calls, 0);
	assert_usage(&core.total, 50, 0, 0, 200); /* the result's figures */

	/* A call after the result is not covered by it. */
	feed_str(&core, &s, TURN_LINE("m4", "null", 1), &delta);
	meter_unfinal(&core, NULL, NULL, &u);
	assert_int_equal(u.calls, 1);
	assert_int_equal(u.gap, 49);
	meter_stream_free(&s);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_text_stdout_alone),
		cmocka_unit_test(test_parse_fixture_lines),
		cmocka_unit_test(test_damaged_stream),
		cmocka_unit_test(test_max_budget_result_uses_model_usage),
		cmocka_unit_test(test_oversize_then_valid),
		cmocka_unit_test(test_line_of_exactly_max_counts),
		cmocka_unit_test(test_buffer_reused),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_missing_final_newline),
		cmocka_unit_test(test_gap),
		cmocka_unit_test(test_refeed_counts_once),
		cmocka_unit_test(test_orphan_delta),
		cmocka_unit_test(test_delta_raises_output),
		cmocka_unit_test(test_total_never_decreases),
		cmocka_unit_test(test_cost_rounding),
		cmocka_unit_test(test_subtype_truncated),
		cmocka_unit_test(test_weights_and_saturation),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_json_verbose_array),
		cmocka_unit_test(test_json_verbose_array_by_hand),
		cmocka_unit_test(test_json_verbose_array_malformed),
		cmocka_unit_test(test_json_verbose_array_without_objects),
		cmocka_unit_test(test_track_tool_bytes),
		cmocka_unit_test(test_track_tool_use_id),
		cmocka_unit_test(test_take_calls),
		cmocka_unit_test(test_message_usage),
		cmocka_unit_test(test_price_side_model_kept),
		cmocka_unit_test(test_price_synthetic_ignored),
		cmocka_unit_test(test_unfinal_calls),
		cmocka_unit_test(test_unfinal_result_covers),
	};
	enum {
		NFIXED = sizeof(fixed) / sizeof(fixed[0]),
		NFIX = sizeof(fixture_cases) / sizeof(fixture_cases[0]),
		NLINE = sizeof(line_cases) / sizeof(line_cases[0]),
	};
	static struct CMUnitTest tests[NFIXED + NFIX + NLINE];
	static char names[NFIX + NLINE][128];
	size_t n = 0;

	make_deep(deep_ok, sizeof(deep_ok), 1000);   /* 1001 levels with the root object */
	make_deep(deep_bad, sizeof(deep_bad), 1100); /* beyond METER_JSON_MAX_DEPTH */

	for (size_t i = 0; i < NFIX; i++) {
		snprintf(names[n], sizeof(names[n]), "fixture %s + %s",
			 fixture_cases[i].stdout_name, fixture_cases[i].transcript_name);
		tests[n] = (struct CMUnitTest){.name = names[n],
					       .test_func = test_fixture,
					       .initial_state = (void *)&fixture_cases[i]};
		n++;
	}
	for (size_t i = 0; i < NLINE; i++) {
		snprintf(names[n], sizeof(names[n]), "line: %s", line_cases[i].name);
		tests[n] = (struct CMUnitTest){.name = names[n],
					       .test_func = test_line_case,
					       .initial_state = (void *)&line_cases[i]};
		n++;
	}
	for (size_t i = 0; i < NFIXED; i++)
		tests[n++] = fixed[i];
	return _cmocka_run_group_tests("meter", tests, n, NULL, NULL);
}
