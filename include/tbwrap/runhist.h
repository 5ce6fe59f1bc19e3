/*
 * A run's history: what one tbwrap run records of itself and reads of the other runs
 * (include/tbwrap/history.h is the database). main() calls it in this order:
 *
 *   runhist_prepare   before the ledger: the options, the history opened, the estimates
 *   runhist_start     after the ledger: other runs' usage inside the window into the ledger,
 *                     the launch check of a spent window, this run's row
 *   runhist_tick      from the supervisor's loop (supervisor_config.tick_hook): this run's
 *                     usage out, every HISTORY_SYNC_MS when it changed; other runs' usage in
 *   runhist_finish    after the supervisor: the final rows, the history closed
 *
 * What a failure means depends on whether a budget depends on the history: with a window it
 * is an exit (TBWRAP_EXIT_INTERNAL at launch, with the cause and the fix); otherwise a
 * one-line warning and the run goes on unrecorded.
 */
#ifndef TBWRAP_RUNHIST_H
#define TBWRAP_RUNHIST_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "tbwrap/cli.h"
#include "tbwrap/history.h"
#include "tbwrap/ledger.h"

struct runhist {
	struct history *h; /* NULL: this run keeps no history */
	bool has_window;
	uint64_t window_s;
	int64_t run_id;
	bool has_estimates;
	struct history_estimates est;
	struct history_run_info info;
	char scope[HISTORY_SCOPE_MAX];
	char path[PATH_MAX];
	char cwd[PATH_MAX];
	char command_line[4096];
	uint64_t next_sync_ms;
	uint64_t last_signature; /* of the ledger's usage at the last write */
	bool warned;		 /* a failure while running was said once */
	struct history_usage others;
};

/* Opens the history the options ask for (none with --no-history) and reads the estimates.
 * Returns 0, or the exit status after a one-line message: TBWRAP_EXIT_USAGE for options that
 * contradict each other, TBWRAP_EXIT_INTERNAL when a window needs a history that cannot be
 * used. dry_run: open nothing for writing. */
int runhist_prepare(struct runhist *r, const struct cli_options *o, bool dry_run);

/* Other runs' usage into the ledger, and this run's row. Returns 0, or TBWRAP_EXIT_REFUSED
 * (block mode) when the overall budget of the window has no room for an agent: the line says
 * which budget, window, scope and usage; nothing is to be started. TBWRAP_EXIT_INTERNAL when
 * the window's usage cannot be read. */
int runhist_start(struct runhist *r, struct ledger *l, const struct cli_options *o);

/* The supervisor's tick (ctx is the struct runhist). */
void runhist_tick(void *ctx, struct ledger *l);

/* The final rows with tbwrap's exit status; prints the window's line on stderr. l NULL (a dry
 * run): only closes. */
void runhist_finish(struct runhist *r, struct ledger *l, int exit_status);

/* --dry-run: the estimate per command and where it comes from, and the window. */
void runhist_print_dry_run(const struct runhist *r, const struct cli_options *o);

#endif
