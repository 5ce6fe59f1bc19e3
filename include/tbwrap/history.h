/*
 * History: every agent of every tbwrap run, in an SQLite database of the user's
 * ($XDG_STATE_HOME/tbwrap/history.db, else ~/.local/state/tbwrap/history.db).
 *
 * It is what makes budgets remember: `--estimate auto` (an agent's launch reservation is the
 * 75th percentile of the last runs of its command), rolling windows (`--window 24h`: the
 * budgets count the usage of every run of the same scope inside the window) and
 * `tbwrap report` / `tbwrap suggest`.
 *
 * Two tables: runs (one row per tbwrap run) and agents (one row per agent of a run, updated
 * while it runs). WAL mode, so that readers never wait for writers; every write is one
 * transaction, and a busy database is waited for (busy_timeout), so that many runs writing at
 * once lose nothing. A run writes only its own rows and reads the others': its own usage is
 * always the ledger's, which only its supervisor can write.
 *
 * Every function that can fail returns -1 with one line in err: the file, the cause, and the
 * fix. None of them exits.
 */
#ifndef TBWRAP_HISTORY_H
#define TBWRAP_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tbwrap/ledger.h"

#define HISTORY_DEFAULT_SCOPE "default"
/* --estimate auto: the p75 of this many of a command's last runs, from this many on. */
#define HISTORY_ESTIMATE_RUNS 20
#define HISTORY_ESTIMATE_MIN_RUNS 3
#define HISTORY_ESTIMATE_PCT 75
/* How often a running supervisor writes its usage and reads the other runs' (ms). */
#define HISTORY_SYNC_MS 1000
/* How long a write waits for another run's (ms): at launch and at the end, and inside the
 * supervisor's loop, which must not stall its agents for longer. */
#define HISTORY_BUSY_MS 2000
#define HISTORY_BUSY_LOOP_MS 50
#define HISTORY_SCOPE_MAX 64
#define HISTORY_MAX_ESTIMATES LEDGER_MAX_COMMANDS

struct history;

/* The default path into out: $XDG_STATE_HOME/tbwrap/history.db, else
 * $HOME/.local/state/tbwrap/history.db. -1 when neither is set. */
int history_default_path(char *out, size_t len);

/* Opens (creating the file, its directory and the schema when create is set) the history at
 * path. A file that is not an SQLite database, is locked for longer than busy_ms, or cannot be
 * written (when create is set) is refused. */
int history_open(struct history **out, const char *path, bool create, int busy_ms, char *err,
		 size_t errlen);
void history_close(struct history *h);
/* Changes how long a write waits for another run's. */
void history_set_busy(struct history *h, int busy_ms);
const char *history_path(const struct history *h);

/* Parses a window length: a whole number and a unit: s, m, h, d or w ("90m", "24h", "7d").
 * Refuses 0, no unit, anything else and more than 10 years. Returns 0 (*seconds set) or -1. */
int history_parse_duration(const char *s, uint64_t *seconds);

/* The pct-th percentile of n values by nearest rank (the smallest value with at least pct % of
 * the values at or below it); sorts v. 0 when n is 0. */
uint64_t history_percentile(uint64_t *v, size_t n, unsigned pct);

/* ---- a run ------------------------------------------------------------------------------ */

struct history_run_info {
	const char *scope;
	const char *cwd;
	const char *command_line; /* the command tbwrap runs, words joined by spaces */
	uint64_t window_s;	  /* 0: no window */
	enum ledger_mode mode;
	int pid;
};

/* Inserts this run's row (time now); *run_id gets its id. */
int history_run_begin(struct history *h, const struct history_run_info *r, int64_t *run_id,
		      char *err, size_t errlen);

/* Writes (inserts or updates) the rows of every agent in the ledger for run run_id, in one
 * transaction. final: the run is over, with tbwrap's exit status. */
int history_sync(struct history *h, int64_t run_id, const struct ledger_header *lh,
		 const struct history_run_info *r, bool final, int exit_status, char *err,
		 size_t errlen);

/* The pico-USD of an instance and its model: seams for the USD ledger. */
uint64_t history_usd_of_instance(const struct ledger_header *lh, const struct ledger_instance *in);
const char *history_model_of_instance(const struct ledger_header *lh,
				      const struct ledger_instance *in);

/* ---- windows ---------------------------------------------------------------------------- */

struct history_usage {
	uint64_t overall; /* tokens of every command */
	uint64_t overall_pusd;
	size_t n;
	char names[LEDGER_MAX_COMMANDS][LEDGER_NAME_LEN];
	uint64_t totals[LEDGER_MAX_COMMANDS];
	uint64_t pusd[LEDGER_MAX_COMMANDS];
};

/* What the agents of scope that started at or after since_ms used (and, while they run, hold
 * reserved), except those of run exclude_run (this run: its own usage is the ledger's). */
int history_window_usage(struct history *h, const char *scope, uint64_t since_ms,
			 int64_t exclude_run, struct history_usage *u, char *err, size_t errlen);

/* u's tokens of command name (0 when none). */
uint64_t history_usage_of(const struct history_usage *u, const char *name);
/* The same in pico-USD. */
uint64_t history_usd_usage_of(const struct history_usage *u, const char *name);

/* ---- estimates -------------------------------------------------------------------------- */

struct history_estimates {
	size_t n;
	char names[HISTORY_MAX_ESTIMATES][LEDGER_NAME_LEN];
	uint64_t value[HISTORY_MAX_ESTIMATES]; /* p75 of the last runs */
	unsigned runs[HISTORY_MAX_ESTIMATES];  /* how many runs it is of */
};

/* Per command key that has history: the p75 of the totals of its last HISTORY_ESTIMATE_RUNS
 * agents that ran to an end (refused ones and those still running are left out). */
int history_estimates(struct history *h, struct history_estimates *e, char *err, size_t errlen);

/* The estimate of command name: the p75 when it is of HISTORY_ESTIMATE_MIN_RUNS runs or more,
 * else fallback. *runs (may be NULL) gets how many runs it had. */
uint64_t history_estimate_for(const struct history_estimates *e, const char *name,
			      uint64_t fallback, unsigned *runs);

/* Now, in ms since the epoch (CLOCK_REALTIME). */
uint64_t history_now_ms(void);

/* The raw database handle, for the report (launcher/histreport.c). */
struct sqlite3 *history_db(struct history *h);

#endif
