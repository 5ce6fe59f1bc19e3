/*
 * Command line of the launcher: `tbwrap [OPTIONS] [--] COMMAND [ARGS...]`,
 * `tbwrap status [--disable-budget-visuals] [PID]` and `tbwrap prices [--prices FILE]`.
 *
 * Parsing has no side effects (no output, no exit), so that every accepted and every refused
 * command line can be checked by a table in tests/unit/test_cli.c; main() prints the one-line
 * error and exits with TBWRAP_EXIT_USAGE.
 */
#ifndef TBWRAP_CLI_H
#define TBWRAP_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "tbwrap/ledger.h"

#define CLI_MAX_MATCH 16
#define CLI_DEFAULT_ESTIMATE 1000
/* Counts are stored exactly by every consumer (the JSON report uses doubles): 2^53 at most. */
#define CLI_COUNT_MAX (UINT64_C(1) << 53)
/* A --match name is compared with the basename of argv[0]; NAME_MAX bounds any basename. */
#define CLI_MATCH_NAME_MAX 255

enum cli_action { CLI_RUN, CLI_STATUS, CLI_PRICES, CLI_HELP, CLI_VERSION };

struct cli_options {
	enum cli_action action;
	uint64_t overall_limit; /* LEDGER_NO_LIMIT when not given; 0 means no agent may run */
	size_t n_commands;
	char command_names[LEDGER_MAX_COMMANDS][LEDGER_NAME_LEN];
	uint64_t command_limits[LEDGER_MAX_COMMANDS];	  /* LEDGER_NO_LIMIT: a USD budget only */
	uint64_t overall_usd_limit;			  /* pico-USD; LEDGER_NO_LIMIT: none */
	uint64_t command_usd_limits[LEDGER_MAX_COMMANDS]; /* LEDGER_NO_LIMIT: none */
	const char *prices;		 /* --prices FILE; NULL: the built-in table */
	uint32_t weights[METER_NFIELDS]; /* --count: 1 for each class counted, else 0 */
	enum ledger_mode mode;		 /* default warn */
	bool visuals;			 /* false with --disable-budget-visuals */
	uint64_t estimate;		 /* default CLI_DEFAULT_ESTIMATE */
	bool dry_run;
	size_t n_match;
	const char *match[CLI_MAX_MATCH]; /* default: {TBWRAP_DEFAULT_MATCH}; point into argv */
	const char *report_json;	  /* NULL when not given; "-" is stdout */
	pid_t status_pid;		  /* CLI_STATUS: 0 = the only running tbwrap */
	char **argv;			  /* CLI_RUN: the command (argv[argc] is NULL) */
	int argc;
	/* Budgets that remember (include/tbwrap/history.h, include/tbwrap/profiles.h). */
	bool estimate_auto;   /* --estimate auto: each command's p75 from the history */
	bool no_history;      /* --no-history */
	const char *history;  /* --history FILE; NULL: the default path */
	uint64_t window_s;    /* --window DURATION in seconds; 0: no window */
	const char *scope;    /* --scope NAME; NULL: HISTORY_DEFAULT_SCOPE */
	const char *profiles; /* --profiles FILE; NULL: the default path */
	const char *profile;  /* --profile NAME; NULL: none */
	/* Given on the command line, so that a profile does not override them. */
	bool overall_given, mode_given, estimate_given;
	/* A profile's USD budgets in pico-USD (CLI_NO_USD: none), for the USD ledger. */
	uint64_t profile_overall_pusd;
	size_t n_profile_usd;
	char profile_usd_names[LEDGER_MAX_COMMANDS][LEDGER_NAME_LEN];
	uint64_t profile_usd_limits[LEDGER_MAX_COMMANDS];
};

#define CLI_NO_USD UINT64_MAX

/*
 * Parses argv (argv[0] is the program name) into *o. Returns 0, or -1 with one line in err (no
 * "tbwrap: " prefix, no newline) naming the bad argument and the expected form. *o is fully
 * initialised either way. Options end at "--" or at the first word that does not start with '-';
 * the rest is the command. --help and --version win over anything after them.
 */
int cli_parse(int argc, char **argv, struct cli_options *o, char *err, size_t errlen);

/*
 * Parses a token count: "50000", "50K", "1.5M", "2k" (K = 1000, M = 1000000, either case; a
 * fraction is allowed when the result is whole). Refuses empty, signed, fractional results,
 * exponents, trailing junk and anything above CLI_COUNT_MAX. Returns 0 or -1.
 */
int cli_parse_count(const char *s, uint64_t *out);

/* A budget key: a slash command ("/test", "/ns:cmd") or LEDGER_CATCH_ALL, len bytes. */
bool cli_is_command_name(const char *name, size_t len);

/* The --help text. */
void cli_usage(FILE *f);

#endif
