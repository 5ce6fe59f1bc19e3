/*
 * Meter throughput against the obvious alternative and against the ceiling.
 *
 *   meter    meter_feed() over the corpus in 64 KiB chunks, as a supervisor or libc hook sees it;
 *   cJSON    split lines, cJSON_ParseWithLength() every one, extract usage with the same rules
 *            (per-id maxima, result lines, max of the two): what a straightforward meter costs;
 *   memchr   one pass counting newlines: no meter can split lines faster than this.
 *
 * Prints MB/s and the ratios. Exits 1 only when the meter and the baseline disagree on the totals
 * (timing never fails the run: machines differ). Each measurement is the best of a few passes
 * over the corpus held in memory, so that disk and page faults are out of the figures.
 *
 * usage: bench_meter [CORPUS]   (default build/bench/corpus.jsonl, made by scripts/gen-corpus.py)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "tbwrap/meter.h"

#define CHUNK (64 * 1024)
#define PASSES 5

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *read_corpus(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "bench_meter: %s: %s (make it with scripts/gen-corpus.py)\n", path,
			strerror(errno));
		exit(2);
	}
	if (fseek(f, 0, SEEK_END) != 0) {
		fprintf(stderr, "bench_meter: %s: cannot seek\n", path);
		exit(2);
	}
	long size = ftell(f);
	rewind(f);
	char *data = size > 0 ? malloc((size_t)size) : NULL;
	if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) {
		fprintf(stderr, "bench_meter: %s: cannot read\n", path);
		exit(2);
	}
	fclose(f);
	*len = (size_t)size;
	return data;
}

/* ------------------------------------------------------------------------------------------ */
/* Baseline: cJSON on every line */

struct seen {
	uint64_t id_hash;
	uint64_t n[METER_NFIELDS];
};

struct baseline {
	struct seen *table; /* open addressing, never full: sized from the line count */
	size_t mask;
	struct meter_usage msg_sum, result;
	uint64_t cur_msg;
	uint64_t cost_micro_usd;
};

static const char *const snake[METER_NFIELDS] = {
	"input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"};
static const char *const camel[METER_NFIELDS] = {
	"inputTokens", "outputTokens", "cacheCreationInputTokens", "cacheReadInputTokens"};

static struct seen *lookup(struct baseline *b, uint64_t h)
{
	size_t i = h & b->mask;
	while (b->table[i].id_hash && b->table[i].id_hash != h)
		i = (i + 1) & b->mask;
	b->table[i].id_hash = h;
	return &b->table[i];
}

static void get_counts(const cJSON *usage, const char *const *names, uint64_t *n, bool is_summed)
{
	for (int f = 0; f < METER_NFIELDS; f++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(usage, names[f]);
		uint64_t x =
			cJSON_IsNumber(v) && v->valuedouble >= 0 ? (uint64_t)v->valuedouble : 0;
		n[f] = is_summed ? n[f] + x : x;
	}
}

static void raise(struct baseline *b, uint64_t h, const cJSON *usage)
{
	uint64_t n[METER_NFIELDS];
	struct seen *s = lookup(b, h);
	get_counts(usage, snake, n, false);
	for (int f = 0; f < METER_NFIELDS; f++)
		if (n[f] > s->n[f]) {
			b->msg_sum.n[f] += n[f] - s->n[f];
			s->n[f] = n[f];
		}
}

static void baseline_line(struct baseline *b, const char *line, size_t len)
{
	cJSON *root = cJSON_ParseWithLength(line, len);
	if (!root)
		return;
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
	const char *t = cJSON_IsString(type) ? type->valuestring : "";
	if (!strcmp(t, "assistant")) {
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "message");
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
		const cJSON *usage = cJSON_GetObjectItemCaseSensitive(msg, "usage");
		if (cJSON_IsString(id) && cJSON_IsObject(usage))
			raise(b, meter_hash_id(id->valuestring, strlen(id->valuestring)), usage);
	} else if (!strcmp(t, "stream_event")) {
		const cJSON *ev = cJSON_GetObjectItemCaseSensitive(root, "event");
		const cJSON *et = cJSON_GetObjectItemCaseSensitive(ev, "type");
		if (cJSON_IsString(et) && !strcmp(et->valuestring, "message_start")) {
			const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ev, "message");
			const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
			const cJSON *usage = cJSON_GetObjectItemCaseSensitive(msg, "usage");
			if (cJSON_IsString(id) && cJSON_IsObject(usage)) {
				b->cur_msg =
					meter_hash_id(id->valuestring, strlen(id->valuestring));
				raise(b, b->cur_msg, usage);
			}
		} else if (cJSON_IsString(et) && !strcmp(et->valuestring, "message_delta") &&
			   b->cur_msg) {
			const cJSON *usage = cJSON_GetObjectItemCaseSensitive(ev, "usage");
			if (cJSON_IsObject(usage))
				raise(b, b->cur_msg, usage);
		}
	} else if (!strcmp(t, "result")) {
		uint64_t u[METER_NFIELDS] = {0}, m[METER_NFIELDS] = {0};
		const cJSON *mu = cJSON_GetObjectItemCaseSensitive(root, "modelUsage");
		const cJSON *model;
		get_counts(cJSON_GetObjectItemCaseSensitive(root, "usage"), snake, u, false);
		cJSON_ArrayForEach(model, mu)
		{
			get_counts(model, camel, m, true);
		}
		for (int f = 0; f < METER_NFIELDS; f++) {
			uint64_t x = u[f] > m[f] ? u[f] : m[f];
			if (x > b->result.n[f])
				b->result.n[f] = x;
		}
		const cJSON *cost = cJSON_GetObjectItemCaseSensitive(root, "total_cost_usd");
		if (cJSON_IsNumber(cost) && cost->valuedouble >= 0) {
			uint64_t micro = (uint64_t)(cost->valuedouble * 1e6 + 0.5);
			if (micro > b->cost_micro_usd)
				b->cost_micro_usd = micro;
		}
	}
	cJSON_Delete(root);
}

static void baseline_run(struct baseline *b, const char *data, size_t len, size_t lines,
			 struct meter_usage *total)
{
	size_t slots = 1;
	while (slots < 2 * lines + 2)
		slots <<= 1;
	free(b->table);
	memset(b, 0, sizeof(*b));
	b->table = calloc(slots, sizeof(*b->table));
	if (!b->table) {
		fprintf(stderr, "bench_meter: out of memory\n");
		exit(2);
	}
	b->mask = slots - 1;

	const char *p = data, *end = data + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		baseline_line(b, p, l);
		p += l + 1;
	}
	for (int f = 0; f < METER_NFIELDS; f++)
		total->n[f] = b->msg_sum.n[f] > b->result.n[f] ? b->msg_sum.n[f] : b->result.n[f];
}

/* ------------------------------------------------------------------------------------------ */

static void meter_run(struct meter_core *core, const char *data, size_t len,
		      struct meter_usage *delta)
{
	struct meter_stream s;

	memset(core, 0, sizeof(*core));
	memset(delta, 0, sizeof(*delta));
	meter_stream_init(&s, 0);
	for (size_t off = 0; off < len; off += CHUNK) {
		size_t n = len - off < CHUNK ? len - off : CHUNK;
		if (!meter_feed(core, &s, METER_POS_APPEND, data + off, n, delta)) {
			fprintf(stderr, "bench_meter: meter_feed: out of memory\n");
			exit(2);
		}
	}
	meter_finish(core, &s, delta);
	meter_stream_free(&s);
}

static size_t memchr_run(const char *data, size_t len)
{
	size_t lines = 0;
	const char *p = data, *end = data + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		lines++;
		p = nl + 1;
	}
	return lines;
}

static void print_usage(const char *what, const struct meter_usage *u)
{
	printf("  %-8s input %" PRIu64 ", output %" PRIu64 ", cache_creation %" PRIu64
	       ", cache_read %" PRIu64 "\n",
	       what, u->n[METER_INPUT], u->n[METER_OUTPUT], u->n[METER_CACHE_CREATION],
	       u->n[METER_CACHE_READ]);
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "build/bench/corpus.jsonl";
	size_t len, lines = 0;
	char *data = read_corpus(path, &len);
	struct meter_core *core = calloc(1, sizeof(*core));
	struct meter_usage delta, base_total;
	struct baseline base = {0};
	double best_meter = 1e9, best_cjson = 1e9, best_memchr = 1e9;

	if (!core)
		return 2;
	for (int pass = 0; pass < PASSES; pass++) {
		double t0 = now();
		lines = memchr_run(data, len);
		double t1 = now();
		meter_run(core, data, len, &delta);
		double t2 = now();
		baseline_run(&base, data, len, lines, &base_total);
		double t3 = now();
		if (t1 - t0 < best_memchr)
			best_memchr = t1 - t0;
		if (t2 - t1 < best_meter)
			best_meter = t2 - t1;
		if (t3 - t2 < best_cjson)
			best_cjson = t3 - t2;
	}

	double mb = (double)len / 1e6;
	double meter_mbs = mb / best_meter, cjson_mbs = mb / best_cjson,
	       memchr_mbs = mb / best_memchr;
	printf("bench_meter: %s: %.1f MB, %zu lines, %" PRIu64 " API calls, best of %d passes\n",
	       path, mb, lines, core->messages, PASSES);
	printf("  meter (64 KiB feeds)       %9.1f MB/s\n", meter_mbs);
	printf("  cJSON every line           %9.1f MB/s\n", cjson_mbs);
	printf("  memchr newlines (ceiling)  %9.1f MB/s\n", memchr_mbs);
	printf("  meter/cJSON  %.2fx   meter/memchr  %.2fx\n", meter_mbs / cjson_mbs,
	       meter_mbs / memchr_mbs);
	print_usage("meter", &core->total);
	print_usage("cJSON", &base_total);

	int rc = 0;
	if (memcmp(&core->total, &base_total, sizeof(base_total)) != 0) {
		printf("FAIL: meter and cJSON baseline disagree on the totals\n");
		rc = 1;
	}
	if (memcmp(&delta, &core->total, sizeof(delta)) != 0) {
		printf("FAIL: the meter's deltas do not add up to its total\n");
		rc = 1;
	}
	if (core->cost_micro_usd != base.cost_micro_usd) {
		printf("FAIL: cost differs: meter %" PRIu64 ", cJSON %" PRIu64 " micro-USD\n",
		       core->cost_micro_usd, base.cost_micro_usd);
		rc = 1;
	}
	for (int a = 0; a < METER_NANOMALY; a++)
		if (core->anomalies[a]) {
			printf("FAIL: %" PRIu64 " anomalies of kind %d on a clean corpus\n",
			       core->anomalies[a], a);
			rc = 1;
		}
	if (!rc)
		printf("  totals agree (cost %" PRIu64 " micro-USD)\n", core->cost_micro_usd);
	free(base.table);
	free(core);
	free(data);
	return rc;
}
