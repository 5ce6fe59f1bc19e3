/*
 * Budget profiles: named sets of budgets in a YAML file, the seed's format
 * ($XDG_CONFIG_HOME/tbwrap/budget-profiles.yaml, else ~/.config/tbwrap/budget-profiles.yaml):
 *
 *   profiles:
 *     nightly:
 *       overall: 2M              # tokens, as on the command line (5000, 50K, 1.5M)
 *       commands:
 *         /test: 500K
 *       mode: block              # optional: warn or block
 *       window: 24h              # optional: a rolling window (--window)
 *       scope: nightly           # optional: the window's scope (--scope)
 *       estimate: auto           # optional: tokens, or auto (--estimate)
 *       overall_usd: 20          # optional: USD budgets (pico-USD inside)
 *       commands_usd:
 *         /test: 5.50
 *
 * Parsed with libyaml's loader; every error names the file and the line. The whole file is
 * checked, not only the profile asked for: a typo in another profile is found the first time.
 * Pure: no output, no exit.
 */
#ifndef TBWRAP_PROFILES_H
#define TBWRAP_PROFILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tbwrap/cli.h"
#include "tbwrap/history.h"
#include "tbwrap/ledger.h"

#define PROFILES_NAME_MAX 64

struct profile {
	char name[PROFILES_NAME_MAX];
	unsigned line; /* where it starts in its file (1-based) */
	bool has_overall;
	uint64_t overall;
	size_t n_commands;
	char command_names[LEDGER_MAX_BUDGETS][LEDGER_NAME_LEN];
	uint64_t command_limits[LEDGER_MAX_BUDGETS];
	bool has_mode;
	enum ledger_mode mode;
	uint64_t window_s; /* 0: none */
	char scope[HISTORY_SCOPE_MAX];
	bool has_estimate;
	bool estimate_auto;
	uint64_t estimate;
	uint64_t overall_pusd; /* CLI_NO_USD: none */
	size_t n_usd;
	char usd_names[LEDGER_MAX_BUDGETS][LEDGER_NAME_LEN];
	uint64_t usd_limits[LEDGER_MAX_BUDGETS]; /* pico-USD */
};

/* $XDG_CONFIG_HOME/tbwrap/budget-profiles.yaml, else $HOME/.config/...; -1 when neither is
 * set. */
int profiles_default_path(char *out, size_t len);

/* Parses the profiles in text (len bytes; fname names it in errors) and fills *p with the one
 * called name. Returns 0, or -1 with "FILE:LINE: what is wrong" in err (an unknown profile
 * names those there are). */
int profiles_parse(const char *text, size_t len, const char *fname, const char *name,
		   struct profile *p, char *err, size_t errlen);

/* The same from a file. */
int profiles_load(const char *path, const char *name, struct profile *p, char *err, size_t errlen);

/* Parses a USD amount ("20", "5.50", "0.000001"; at most 12 decimals) into pico-USD. */
int profiles_parse_usd(const char *s, uint64_t *pusd);

/* Applies p to o: every budget, mode, window, scope and estimate the command line did not
 * give. Command budgets of the command line win over the profile's of the same command.
 * Returns 0, or -1 when the budgets together are too many for the ledger. */
int profiles_apply(const struct profile *p, struct cli_options *o, char *err, size_t errlen);

#endif
