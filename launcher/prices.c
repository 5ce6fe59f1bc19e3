/*
 * Prices (include/tbwrap/prices.h): the table's parser, the lookup and the arithmetic. Pure but
 * for prices_load_file and prices_today; unit-tested in tests/unit/test_prices.c.
 */
#include "tbwrap/prices.h"

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tbwrap/log.h"
#include "tbwrap/sat.h"

/* data/prices.txt, linked in by launcher/prices_data.S. */
extern const char tbwrap_prices_data[];
extern const char tbwrap_prices_data_end[];

/* A table larger than this is not a price table. */
#define PRICES_MAX_BYTES ((size_t)1 << 20)
#define PRICES_MAX_ROWS 4096
/* $1,000,000 per million tokens: above any real rate, and the products stay far from 2^64 for
 * any count a call can have. */
#define PRICES_MAX_RATE_MICRO UINT64_C(1000000000000)

/* A decimal with at most `places` decimals, scaled by 10^places, no sign, no exponent. Returns
 * false unless the whole word is one and it is at most max. */
static bool parse_fixed(const char *s, size_t len, unsigned places, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	unsigned decimals = 0;
	bool digits = false, dot = false;

	for (; i < len; i++) {
		char c = s[i];
		if (c == '.' && !dot) {
			dot = true;
			continue;
		}
		if (c < '0' || c > '9')
			return false;
		if (dot && ++decimals > places)
			return false;
		digits = true;
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(c - '0');
	}
	if (!digits || (dot && decimals == 0))
		return false;
	for (; decimals < places; decimals++) {
		if (v > UINT64_MAX / 10)
			return false;
		v *= 10;
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int32_t days_from_civil(int y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (int32_t)(era * 146097 + (int)doe - 719468);
}

static bool parse_day(const char *s, size_t len, int32_t *out)
{
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (len != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return false;
	int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	unsigned m = (unsigned)((s[5] - '0') * 10 + (s[6] - '0'));
	unsigned d = (unsigned)((s[8] - '0') * 10 + (s[9] - '0'));
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return false;
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return false;
	*out = days_from_civil(y, m, d);
	return true;
}

struct word {
	const char *s;
	size_t len;
};

/* Splits a line into its first n words; the rest of the line (after its spaces) in *rest. */
static size_t split(const char *p, const char *end, struct word *w, size_t n, struct word *rest)
{
	size_t k = 0;
	for (;;) {
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p >= end || k == n)
			break;
		const char *b = p;
		while (p < end && *p != ' ' && *p != '\t')
			p++;
		w[k].s = b;
		w[k].len = (size_t)(p - b);
		k++;
	}
	/* The source keeps its inner spaces; trailing ones go. */
	const char *e = end;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	rest->s = p;
	rest->len = (size_t)(e - p);
	return k;
}

static const char *const class_names[PRICE_NCLASSES] = {"input", "write_5m", "write_1h", "read",
							"output"};

static int parse_row(struct price_row *r, const char *p, const char *end, unsigned line, char *err,
		     size_t errlen)
{
	struct word w[8], rest;
	size_t n = split(p, end, w, 8, &rest);
	if (n < 8)
		return log_error_into(
			err, errlen,
			"line %u: %zu column%s, expected 9: model prompt from input write_5m "
			"write_1h read output source",
			line, n, n == 1 ? "" : "s");
	if (rest.len == 0)
		return log_error_into(err, errlen,
				      "line %u: no source (where and when the rates were read)",
				      line);
	memset(r, 0, sizeof(*r));
	r->line = line;
	if (w[0].len >= PRICE_PATTERN_LEN)
		return log_error_into(err, errlen, "line %u: model pattern longer than %d bytes",
				      line, PRICE_PATTERN_LEN - 1);
	memcpy(r->pattern, w[0].s, w[0].len);
	if (w[1].len == 1 && w[1].s[0] == '-') {
		r->over = 0;
	} else if (w[1].len < 2 || w[1].s[0] != '>' ||
		   !parse_fixed(w[1].s + 1, w[1].len - 1, 0, UINT64_C(1) << 53, &r->over) ||
		   r->over == 0) {
		return log_error_into(
			err, errlen,
			"line %u: prompt '%.*s' is not '-' or '>N' (N a token count above 0)", line,
			(int)w[1].len, w[1].s);
	}
	if (w[2].len == 1 && w[2].s[0] == '-')
		r->from_day = PRICE_NO_DAY;
	else if (!parse_day(w[2].s, w[2].len, &r->from_day))
		return log_error_into(err, errlen,
				      "line %u: from '%.*s' is not '-' or a date YYYY-MM-DD", line,
				      (int)w[2].len, w[2].s);
	for (int c = 0; c < PRICE_NCLASSES; c++) {
		const struct word *x = &w[3 + c];
		if (!parse_fixed(x->s, x->len, 6, PRICES_MAX_RATE_MICRO, &r->rate[c]))
			return log_error_into(
				err, errlen,
				"line %u: %s rate '%.*s' is not a price in USD per million "
				"tokens (like 3 or 0.30, at most 6 decimals)",
				line, class_names[c], (int)x->len, x->s);
	}
	size_t sl = rest.len < PRICE_SOURCE_LEN - 1 ? rest.len : PRICE_SOURCE_LEN - 1;
	memcpy(r->source, rest.s, sl);
	return 0;
}

int prices_parse(struct price_table *t, const char *text, size_t len, const char *origin, char *err,
		 size_t errlen)
{
	memset(t, 0, sizeof(*t));
	if (len > PRICES_MAX_BYTES)
		return log_error_into(err, errlen, "larger than %zu bytes: not a price table",
				      PRICES_MAX_BYTES);
	if (memchr(text, '\0', len))
		return log_error_into(err, errlen, "contains a NUL byte: not a text file");
	struct price_row *rows = NULL;
	size_t n = 0, cap = 0;
	unsigned line = 0;
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		line++;
		const char *q = p;
		while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
			q++;
		if (q < le && *q != '#') {
			if (n == PRICES_MAX_ROWS) {
				free(rows);
				return log_error_into(err, errlen, "line %u: more than %d rows",
						      line, PRICES_MAX_ROWS);
			}
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 32;
				struct price_row *nr = realloc(rows, ncap * sizeof(*rows));
				if (!nr) {
					free(rows);
					return log_error_into(err, errlen, "out of memory");
				}
				rows = nr;
				cap = ncap;
			}
			if (parse_row(&rows[n], q, le, line, err, errlen) < 0) {
				free(rows);
				return -1;
			}
			n++;
		}
		p = nl ? nl + 1 : end;
	}
	if (n == 0) {
		free(rows);
		return log_error_into(err, errlen,
				      "no rows: a price table needs at least one model");
	}
	t->rows = rows;
	t->n = n;
	snprintf(t->origin, sizeof(t->origin), "%s", origin);
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < PRICE_NCLASSES; c++)
			if (rows[i].rate[c] > t->max_rate[c])
				t->max_rate[c] = rows[i].rate[c];
	return 0;
}

int prices_load_builtin(struct price_table *t, char *err, size_t errlen)
{
	size_t len = (size_t)(tbwrap_prices_data_end - tbwrap_prices_data);
	char why[200];
	if (prices_parse(t, tbwrap_prices_data, len, "built-in (data/prices.txt)", why,
			 sizeof(why)) < 0)
		return log_error_into(err, errlen, "the built-in price table: %s", why);
	return 0;
}

int prices_load_file(struct price_table *t, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return log_error_into(err, errlen, "%s: %s", path, strerror(errno));
	char *buf = malloc(PRICES_MAX_BYTES + 1);
	if (!buf) {
		fclose(f);
		return log_error_into(err, errlen, "%s: out of memory", path);
	}
	size_t len = fread(buf, 1, PRICES_MAX_BYTES + 1, f);
	int read_err = ferror(f) ? errno : 0;
	fclose(f);
	if (read_err) {
		free(buf);
		return log_error_into(err, errlen, "%s: %s", path, strerror(read_err));
	}
	char why[200];
	int rc = prices_parse(t, buf, len, path, why, sizeof(why));
	free(buf);
	if (rc < 0) {
		/* "FILE:LINE: reason" like a compiler, so that an editor can jump there. */
		if (!strncmp(why, "line ", 5))
			return log_error_into(err, errlen, "%s:%s", path, why + 5);
		return log_error_into(err, errlen, "%s: %s", path, why);
	}
	return 0;
}

void prices_free(struct price_table *t)
{
	free(t->rows);
	memset(t, 0, sizeof(*t));
}

void prices_model_key(const char *model, char *out, size_t outlen)
{
	if (outlen == 0)
		return;
	size_t n = strnlen(model, outlen - 1);
	if (n > 0 && model[n - 1] == ']') {
		const char *open = memchr(model, '[', n);
		if (open)
			n = (size_t)(open - model);
	}
	if (n > 9 && model[n - 9] == '-') {
		bool is_date = true;
		for (size_t i = n - 8; i < n; i++)
			is_date = is_date && model[i] >= '0' && model[i] <= '9';
		if (is_date)
			n -= 9;
	}
	memcpy(out, model, n);
	out[n] = '\0';
}

const struct price_row *prices_lookup(const struct price_table *t, const char *model,
				      uint64_t prompt, int32_t day)
{
	char key[PRICE_PATTERN_LEN * 2];
	prices_model_key(model, key, sizeof(key));
	for (size_t i = 0; i < t->n; i++) {
		const struct price_row *r = &t->rows[i];
		if (r->from_day != PRICE_NO_DAY && r->from_day > day)
			continue;
		if (r->over && prompt <= r->over)
			continue;
		if (fnmatch(r->pattern, key, 0) == 0)
			return r;
	}
	return NULL;
}

/* The cost of u at the row for this prompt size (0: the base row of a tiered model). */
static uint64_t cost_at(const struct price_table *t, const char *model, const struct meter_usage *u,
			uint64_t cache_1h, uint64_t prompt, int32_t day, bool *known)
{
	const struct price_row *r = model && *model ? prices_lookup(t, model, prompt, day) : NULL;
	const uint64_t *rate = r ? r->rate : t->max_rate;
	if (known)
		*known = r != NULL;
	uint64_t cc = u->n[METER_CACHE_CREATION];
	uint64_t h1 = cache_1h < cc ? cache_1h : cc;
	uint64_t cost = sat_mul(u->n[METER_INPUT], rate[PRICE_INPUT]);
	cost = sat_add(cost, sat_mul(cc - h1, rate[PRICE_WRITE_5M]));
	cost = sat_add(cost, sat_mul(h1, rate[PRICE_WRITE_1H]));
	cost = sat_add(cost, sat_mul(u->n[METER_CACHE_READ], rate[PRICE_READ]));
	return sat_add(cost, sat_mul(u->n[METER_OUTPUT], rate[PRICE_OUTPUT]));
}

uint64_t prices_cost(const struct price_table *t, const char *model, const struct meter_usage *u,
		     uint64_t cache_1h, int32_t day, bool *known)
{
	uint64_t prompt = sat_add(sat_add(u->n[METER_INPUT], u->n[METER_CACHE_CREATION]),
				  u->n[METER_CACHE_READ]);
	return cost_at(t, model, u, cache_1h, prompt, day, known);
}

uint64_t prices_cost_sum(const struct price_table *t, const char *model,
			 const struct meter_usage *u, int32_t day, bool *known)
{
	return cost_at(t, model, u, 0, 0, day, known);
}

int32_t prices_today(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int32_t)(ts.tv_sec / 86400);
}

/* A rate with its trailing zeros cut: 2.500000 -> "2.50", 10.000000 -> "10". */
static void format_rate(char *buf, size_t len, uint64_t micro)
{
	uint64_t whole = micro / 1000000, frac = micro % 1000000;
	if (!frac) {
		snprintf(buf, len, "%" PRIu64, whole);
		return;
	}
	char digits[8];
	snprintf(digits, sizeof(digits), "%06" PRIu64, frac);
	size_t n = 6;
	while (n > 2 && digits[n - 1] == '0')
		n--;
	digits[n] = '\0';
	snprintf(buf, len, "%" PRIu64 ".%s", whole, digits);
}

static void format_day(char *buf, size_t len, int32_t day)
{
	if (day == PRICE_NO_DAY) {
		snprintf(buf, len, "-");
		return;
	}
	time_t t = (time_t)day * 86400;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d", &tm);
}

int prices_print(FILE *f, const struct price_table *t)
{
	fprintf(f, "# prices in use: %s (USD per million tokens)\n", t->origin);
	fprintf(f, "%-22s %-9s %-11s %7s %8s %8s %6s %7s  %s\n", "# model", "prompt", "from",
		"input", "write_5m", "write_1h", "read", "output", "source");
	for (size_t i = 0; i < t->n; i++) {
		const struct price_row *r = &t->rows[i];
		char over[32], day[16], rt[PRICE_NCLASSES][24];
		if (r->over)
			snprintf(over, sizeof(over), ">%" PRIu64, r->over);
		else
			snprintf(over, sizeof(over), "-");
		format_day(day, sizeof(day), r->from_day);
		for (int c = 0; c < PRICE_NCLASSES; c++)
			format_rate(rt[c], sizeof(rt[c]), r->rate[c]);
		fprintf(f, "%-22s %-9s %-11s %7s %8s %8s %6s %7s  %s\n", r->pattern, over, day,
			rt[0], rt[1], rt[2], rt[3], rt[4], r->source);
	}
	fflush(f);
	return ferror(f) ? -1 : 0;
}

int prices_parse_usd(const char *s, uint64_t *pico)
{
	if (*s == '$')
		s++;
	uint64_t micro;
	/* At most $10,000,000: 10^7 * 10^12 pico-USD = 10^19, below 2^64 (1.8 * 10^19). */
	if (!parse_fixed(s, strlen(s), 6, UINT64_C(10000000) * 1000000, &micro))
		return -1;
	*pico = micro * 1000000;
	return 0;
}
