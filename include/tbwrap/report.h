/*
 * The machine-readable end-of-run report (--report-json FILE).
 *
 * Schema (version 5), counts are JSON numbers, unknown values are null:
 *   {"version":5, "mode":"warn"|"block", "estimate":N, "counted":["input",...], "unlisted":N,
 *    "overall":  {"limit":N|null, "used":USAGE, "reserved":N, "agents":N, "refused":N,
 *                 "stopped":N, "overshoot":N, "usd_limit":USD|null, "usd_reserved":USD,
 *                 "usd_overshoot":USD},
 *    "commands": [{"name":"/test", "limit":N|null, "used":USAGE, "reserved":N,
 *                  "agents":N, "refused":N, "stopped":N, "overshoot":N,
 *                  "usd_limit":USD|null, "usd_reserved":USD, "usd_overshoot":USD}],
 *    "agents":   [{"pid":N, "command":"/test",
 *                  "status":"running"|"refused"|"stopped"|"exited",
 *                  "exit_code":N|null, "usage":USAGE, "model":"claude-opus-4-8"|null,
 *                  "priced":bool, "cost_usd":0.036|null,
 *                  "result_subtype":"success"|null,
 *                  "anomalies":{"not_json":N, "bad_number":N, "oversize":N, "gap":N,
 *                               "orphan_delta":N},
 *                  "requests":N, "refused_prediction":N|null,
 *                  "refused_prediction_usd":USD|null, "max_prediction_error":N,
 *                  "max_prediction_error_usd":USD, "unreported_calls":N,
 *                  "unfinal_calls":N, "held":N, "held_usd":USD, "nested":bool,
 *                  "adopted":bool, "metered":bool,
 *                  "note":"why it was refused, stopped or not metered"|null}]}
 * "metered": false says tbwrap could not read that agent's usage: its counts are not its
 * usage. "unlisted" counts agents that ran beyond the agent table (warn mode, unmetered).
 * "overshoot": the most the budget's usage ever exceeded its limit (0: never). Per agent
 * (block mode's request admission, README "Never cross"): "requests" admitted (warn mode:
 * started), the prediction of the request refused, the largest amount a call exceeded its
 * prediction, and calls whose usage nothing reported (Claude Code 1.0.x's side calls when it
 * writes no result) with what the budgets still hold for them. "unfinal_calls" (both modes):
 * calls the CLI wrote only the stream's first usage snapshot of (meter_unfinal: no stop_reason
 * nor more output than a snapshot, no result line with a modelUsage after them): their output
 * is counted as shown; block mode holds what they would add at the agent's largest output in
 * "held".
 * USD figures are tbwrap's own prices (launcher/prices.c), written as exact decimals
 * ("0.018375"); "cost_usd" is the CLI's own total_cost_usd where a result line gave one.
 * "priced": false when a call was of a model the price table lacks ("model"), priced at the
 * table's highest rates. "counted": the classes --count made the token totals of.
 *   USAGE = {"input":N, "output":N, "cache_creation":N, "cache_read":N, "total":N, "usd":USD}
 */
#ifndef TBWRAP_REPORT_H
#define TBWRAP_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "tbwrap/ledger.h"

/* The report as JSON text ending with a newline; malloc'd, NULL when out of memory. */
char *report_json(const struct ledger_header *h);

#define REPORT_VERSION 5

/* A report file opened before the command runs (so that a path that cannot be written is an
 * error before anything was spent) and written at the end. */
struct report_file {
	const char *path;
	char *tmp;
	int fd;
	bool is_stdout;
};

/*
 * Checks and opens where the report goes (path, or "-": standard output): creates path.tmp now.
 * Returns 0, or -1 with one line in err (cause and fix; no "tbwrap: " prefix).
 */
int report_open(struct report_file *f, const char *path, char *err, size_t errlen);

/* Writes the report: path.tmp, fsync, renamed over path, so a reader never sees half a report
 * and a failure leaves any old path intact. Returns 0, or -1 with one line in err. */
int report_commit(struct report_file *f, const struct ledger_header *h, char *err, size_t errlen);

/* Removes path.tmp (the run did not happen). */
void report_abandon(struct report_file *f);

#endif
