/*
 * The machine-readable end-of-run report (--report-json FILE).
 *
 * Schema (version 1), counts are JSON numbers, unknown values are null:
 *   {"version":1, "mode":"warn"|"block", "estimate":N,
 *    "overall":  {"limit":N|null, "used":USAGE, "reserved":N, "agents":N, "refused":N,
 *                 "stopped":N},
 *    "commands": [{"name":"/test", "limit":N|null, "used":USAGE, "reserved":N,
 *                  "agents":N, "refused":N, "stopped":N}],
 *    "agents":   [{"pid":N, "command":"/test",
 *                  "status":"running"|"unmetered"|"refused"|"stopped"|"exited",
 *                  "exit_code":N|null, "usage":USAGE, "cost_usd":0.036|null,
 *                  "result_subtype":"success"|null,
 *                  "anomalies":{"not_json":N, "bad_number":N, "oversize":N, "gap":N,
 *                               "orphan_delta":N},
 *                  "nested":bool}]}
 *   USAGE = {"input":N, "output":N, "cache_creation":N, "cache_read":N, "total":N}
 */
#ifndef TBWRAP_REPORT_H
#define TBWRAP_REPORT_H

#include <stddef.h>

#include "tbwrap/ledger.h"

/* The report as JSON text ending with a newline; malloc'd, NULL when out of memory. */
char *report_json(const struct ledger_header *h);

/*
 * Writes the report to path ("-": standard output). A file is written as path.tmp and renamed
 * over path, so a reader never sees half a report and a failure leaves any old path intact.
 * Returns 0, or -1 with one line in err (no "tbwrap: " prefix).
 */
int report_write_json(const struct ledger_header *h, const char *path, char *err, size_t errlen);

#endif
