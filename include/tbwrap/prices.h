/*
 * Prices: what an API call cost in USD, from a price table (data/prices.txt, whose header says
 * the format; built into tbwrap, or a file given with --prices).
 *
 * Money is kept in integers: rates in pico-USD per token (= micro-USD per million tokens, the
 * table's six decimals exactly), costs in pico-USD. Every figure tbwrap prints or budgets is
 * then the exact sum of what its calls cost, with no rounding until it is printed.
 */
#ifndef TBWRAP_PRICES_H
#define TBWRAP_PRICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tbwrap/meter.h"

/* The five rates of a row, in the table's column order. */
enum price_class {
	PRICE_INPUT = 0,
	PRICE_WRITE_5M,
	PRICE_WRITE_1H,
	PRICE_READ,
	PRICE_OUTPUT,
	PRICE_NCLASSES
};

#define PRICE_PATTERN_LEN 64
#define PRICE_SOURCE_LEN 160
#define PRICE_NO_DAY INT32_MIN
#define PRICE_PICO_PER_USD UINT64_C(1000000000000)

struct price_row {
	char pattern[PRICE_PATTERN_LEN]; /* fnmatch(3) pattern */
	uint64_t over;		       /* the row prices calls whose prompt is over this; 0: any */
	int32_t from_day;	       /* days since 1970-01-01 (UTC); PRICE_NO_DAY: always */
	uint64_t rate[PRICE_NCLASSES]; /* pico-USD per token */
	char source[PRICE_SOURCE_LEN];
	unsigned line; /* in the table's text */
};

struct price_table {
	struct price_row *rows;
	size_t n;
	char origin[256];		   /* "built-in (data/prices.txt)" or the file's path */
	uint64_t max_rate[PRICE_NCLASSES]; /* highest rate of each class: what an unknown model
					      costs */
};

/* Parses a table's text. Returns 0, or -1 with "LINE N: reason" (no table is kept then). */
int prices_parse(struct price_table *t, const char *text, size_t len, const char *origin, char *err,
		 size_t errlen);

/* The table built into tbwrap (data/prices.txt at build time). */
int prices_load_builtin(struct price_table *t, char *err, size_t errlen);

/* A table file (--prices FILE). On failure err says "FILE: ..." or "FILE:LINE: ...". */
int prices_load_file(struct price_table *t, const char *path, char *err, size_t errlen);

void prices_free(struct price_table *t);

/* The model's name as the table looks it up: without a trailing "[...]" tag and a trailing
 * "-YYYYMMDD" date. */
void prices_model_key(const char *model, char *out, size_t outlen);

/* The row that prices a call of model with this prompt size on that day; NULL when none. */
const struct price_row *prices_lookup(const struct price_table *t, const char *model,
				      uint64_t prompt, int32_t day);

/*
 * What a call cost, in pico-USD: u's four counts, cache_1h of its cache creation written to a
 * 1-hour cache (the rest to a 5-minute one). *known is false when no row prices the model: it is
 * then priced at the table's highest rate of each class, never at 0. Saturates.
 */
uint64_t prices_cost(const struct price_table *t, const char *model, const struct meter_usage *u,
		     uint64_t cache_1h, int32_t day, bool *known);

/* The same for a sum over many calls (a result line's modelUsage): no prompt-length tier can
 * be told from a sum, so the model's base row prices it; no 1-hour split either. */
uint64_t prices_cost_sum(const struct price_table *t, const char *model,
			 const struct meter_usage *u, int32_t day, bool *known);

/* Today, in days since 1970-01-01 UTC. */
int32_t prices_today(void);

/* Prints the table as `tbwrap prices` shows it. Returns 0, or -1 when writing failed. */
int prices_print(FILE *f, const struct price_table *t);

/* Parses a USD amount: "5", "0.25", "$1.50" (at most 6 decimals, at most $10,000,000).
 * Returns 0 with *pico set, or -1. */
int prices_parse_usd(const char *s, uint64_t *pico);

#endif
