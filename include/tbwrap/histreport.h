/*
 * What the history says: `tbwrap report` (per command the runs, tokens, USD, p50/p75/p95 per
 * run, stopped and refused; as text, JSON or a self-contained HTML page with a chart) and
 * `tbwrap suggest` (per-command budgets from history: p95 x a margin, as flags).
 *
 *   tbwrap report [--json] [--html FILE] [--since DURATION] [--command /CMD] [--scope NAME]
 *                 [--history FILE]
 *   tbwrap suggest [--margin PCT] [--since DURATION] [--command /CMD] [--scope NAME]
 *                 [--history FILE]
 *
 * A run of an agent is one row of the history's agents table; refused agents count as refused
 * and are no run. The collecting and the formatting are separate, so that the unit tests check
 * the JSON and the suggestions of a known history exactly.
 */
#ifndef TBWRAP_HISTREPORT_H
#define TBWRAP_HISTREPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tbwrap/history.h"
#include "tbwrap/ledger.h"

#define HISTREPORT_MAX_COMMANDS 256
#define HISTREPORT_DEFAULT_MARGIN 25 /* percent above p95 */

struct histreport_filter {
	uint64_t since_s;    /* 0: all of the history */
	uint64_t now_ms;     /* what since counts back from */
	const char *command; /* NULL: every command */
	const char *scope;   /* NULL: every scope */
};

struct histreport_command {
	char name[LEDGER_NAME_LEN];
	uint64_t runs, tokens, pusd, stopped, refused;
	uint64_t p50, p75, p95;
};

struct histreport {
	size_t n;
	struct histreport_command c[HISTREPORT_MAX_COMMANDS];
	uint64_t runs, tokens, pusd, stopped, refused;
	uint64_t tbwrap_runs; /* distinct tbwrap runs with an agent in the selection */
	uint64_t run_p95;     /* p95 of the tokens of a tbwrap run (for suggest's overall) */
};

/* The figures of the rows f selects, commands in name order. */
int histreport_collect(struct history *h, const struct histreport_filter *f, struct histreport *r,
		       char *err, size_t errlen);

/* One line of JSON (malloc'd, ends with a newline); NULL when out of memory. */
char *histreport_json(const struct histreport *r, const struct histreport_filter *f);

/* The text table (malloc'd). */
char *histreport_text(const struct histreport *r, const struct histreport_filter *f);

/* A self-contained HTML page (malloc'd): the table and an inline SVG chart of every run's
 * tokens per command over time. */
char *histreport_html(struct history *h, const struct histreport *r,
		      const struct histreport_filter *f, char *err, size_t errlen);

/* The suggested budget for a p95 and a margin: p95 x (100 + margin) / 100, rounded up to 100
 * tokens (below 10K) or 1K. */
uint64_t histreport_suggest_limit(uint64_t p95, unsigned margin_pct);

/* The suggestions (malloc'd): a comment line per command and one ready-to-use command line. */
char *histreport_suggest(const struct histreport *r, unsigned margin_pct);

/* `tbwrap report ...` / `tbwrap suggest ...`: argv[0] is "report" or "suggest". Returns the
 * exit status (2 for a bad command line, 1 when the history cannot be read). */
int histreport_main(int argc, char **argv);

#endif
