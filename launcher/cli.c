/*
 * Command-line parsing of the launcher. Pure: fills a struct and, on refusal, one line of text;
 * main() decides what to print and how to exit. Every refusal names the argument it refuses and
 * the form that was expected, because a budget typo must never silently run an agent unbudgeted
 * (the seed logged a malformed --command-budget and carried on without it).
 */
#include "tbwrap/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tbwrap/env.h"
#include "tbwrap/history.h"
#include "tbwrap/histreport.h"
#include "tbwrap/log.h"
#include "tbwrap/prices.h"

#define FORM_COUNT "a token count such as 50000, 50K or 1.5M"
#define FORM_COMMAND_BUDGET "/COMMAND=TOKENS (e.g. /test=50K)"
#define FORM_USD "an amount in USD such as 5, 0.25 or $1.50 (at most 6 decimals, at most $10M)"
#define FORM_COMMAND_USD "/COMMAND=USD (e.g. /test=0.50)"
#define FORM_COUNT_CLASSES "a comma list of input, output, cache_creation, cache_read"

enum opt_id {
	OPT_OVERALL,
	OPT_COMMAND_BUDGET,
	OPT_MODE,
	OPT_NO_VISUALS,
	OPT_ESTIMATE,
	OPT_DRY_RUN,
	OPT_MATCH,
	OPT_REPORT_JSON,
	OPT_OVERALL_USD,
	OPT_COMMAND_USD,
	OPT_PRICES,
	OPT_COUNT,
	OPT_HELP,
	OPT_VERSION,
	OPT_HISTORY,
	OPT_NO_HISTORY,
	OPT_WINDOW,
	OPT_SCOPE,
	OPT_PROFILES,
	OPT_PROFILE,
};

struct opt {
	const char *name;
	const char *value_form; /* NULL: the option takes no value */
	enum opt_id id;
};

static const struct opt opts[] = {
	{"--overall-token-budget", "TOKENS", OPT_OVERALL},
	{"--command-budget", "/COMMAND=TOKENS", OPT_COMMAND_BUDGET},
	{"--budget-enforcement-mode", "warn|block", OPT_MODE},
	{"--disable-budget-visuals", NULL, OPT_NO_VISUALS},
	{"--estimate", "TOKENS", OPT_ESTIMATE},
	{"--dry-run", NULL, OPT_DRY_RUN},
	{"--match", "NAME", OPT_MATCH},
	{"--report-json", "FILE", OPT_REPORT_JSON},
	{"--overall-usd-budget", "USD", OPT_OVERALL_USD},
	{"--command-usd-budget", "/COMMAND=USD", OPT_COMMAND_USD},
	{"--prices", "FILE", OPT_PRICES},
	{"--count", "CLASSES", OPT_COUNT},
	{"--help", NULL, OPT_HELP},
	{"-h", NULL, OPT_HELP},
	{"--version", NULL, OPT_VERSION},
	{"--history", "FILE", OPT_HISTORY},
	{"--no-history", NULL, OPT_NO_HISTORY},
	{"--window", "DURATION", OPT_WINDOW},
	{"--scope", "NAME", OPT_SCOPE},
	{"--profiles", "FILE", OPT_PROFILES},
	{"--profile", "NAME", OPT_PROFILE},
};

/* Why s is not a count, or NULL when it is one (then *out holds it). */
static const char *count_error(const char *s, uint64_t *out)
{
	static const char *const form = "expected " FORM_COUNT;
	const char *p = s;
	uint64_t whole = 0;
	bool too_big = false;

	if (*p < '0' || *p > '9')
		return form;
	for (; *p >= '0' && *p <= '9'; p++) {
		/* Saturate instead of wrapping; anything this large is refused below anyway. */
		if (whole > CLI_COUNT_MAX)
			too_big = true;
		else
			whole = whole * 10 + (uint64_t)(*p - '0');
	}

	/* Fraction digits, without trailing zeros: "1.50K" is "1.5K". */
	uint64_t frac = 0;
	unsigned frac_digits = 0;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return form;
		const char *start = p;
		while (*p >= '0' && *p <= '9')
			p++;
		const char *end = p;
		while (end > start && end[-1] == '0')
			end--;
		/* The largest multiplier is 10^6: more significant digits can never be whole. */
		if (end - start > 6)
			return "not a whole number of tokens";
		for (const char *q = start; q < end; q++) {
			frac = frac * 10 + (uint64_t)(*q - '0');
			frac_digits++;
		}
	}

	uint64_t mult = 1;
	if (*p == 'k' || *p == 'K') {
		mult = 1000;
		p++;
	} else if (*p == 'm' || *p == 'M') {
		mult = 1000000;
		p++;
	}
	if (*p != '\0')
		return form;

	uint64_t scale = 1;
	for (unsigned i = 0; i < frac_digits; i++)
		scale *= 10;
	if ((frac * mult) % scale != 0)
		return "not a whole number of tokens";
	if (too_big || whole > CLI_COUNT_MAX / mult)
		return "more than 9007199254740992 tokens";
	uint64_t v = whole * mult + frac * mult / scale;
	if (v > CLI_COUNT_MAX)
		return "more than 9007199254740992 tokens";
	*out = v;
	return NULL;
}

int cli_parse_count(const char *s, uint64_t *out)
{
	uint64_t v;
	if (!s || count_error(s, &v))
		return -1;
	*out = v;
	return 0;
}

/* A slash command as Claude Code names it (.claude/commands/NAME.md, namespaces with ':'), or
 * the catch-all key. Whitespace would make it a different prompt word than the user meant. */
static bool is_command_name(const char *name, size_t len)
{
	if (len == strlen(LEDGER_CATCH_ALL) && memcmp(name, LEDGER_CATCH_ALL, len) == 0)
		return true;
	if (len < 2 || name[0] != '/')
		return false;
	for (size_t i = 1; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= ' ' || c == 0x7f || c == '/')
			return false;
	}
	return true;
}

/* --command-budget /CMD=TOKENS and --command-usd-budget /CMD=USD: one entry per command, with
 * a limit in either unit or both. */
static int parse_command_budget(struct cli_options *o, const char *v, bool is_usd, char *err,
				size_t errlen)
{
	const char *opt = is_usd ? "--command-usd-budget" : "--command-budget";
	const char *eq = strchr(v, '=');
	if (!eq || !is_command_name(v, (size_t)(eq - v)))
		return log_error_into(err, errlen, "%s '%s': expected %s", opt, v,
				      is_usd ? FORM_COMMAND_USD : FORM_COMMAND_BUDGET);
	size_t len = (size_t)(eq - v);
	if (len >= LEDGER_NAME_LEN)
		return log_error_into(err, errlen, "%s '%s': command name longer than %d bytes",
				      opt, v, LEDGER_NAME_LEN - 1);
	uint64_t limit;
	if (is_usd) {
		if (prices_parse_usd(eq + 1, &limit) < 0)
			return log_error_into(err, errlen,
					      "%s '%s': expected " FORM_USD " after '='", opt, v);
	} else {
		const char *why = count_error(eq + 1, &limit);
		if (why)
			return log_error_into(err, errlen, "%s '%s': %s", opt, v, why);
	}
	size_t k = 0;
	while (k < o->n_commands &&
	       !(strlen(o->command_names[k]) == len && memcmp(o->command_names[k], v, len) == 0))
		k++;
	if (k == o->n_commands) {
		if (o->n_commands >= LEDGER_MAX_BUDGETS)
			return log_error_into(err, errlen, "%s '%s': more than %d command budgets",
					      opt, v, LEDGER_MAX_BUDGETS);
		memcpy(o->command_names[k], v, len);
		o->command_names[k][len] = '\0';
		o->command_limits[k] = LEDGER_NO_LIMIT;
		o->command_usd_limits[k] = LEDGER_NO_LIMIT;
		o->n_commands++;
	}
	uint64_t *slot = is_usd ? &o->command_usd_limits[k] : &o->command_limits[k];
	if (*slot != LEDGER_NO_LIMIT)
		return log_error_into(err, errlen, "%s '%s': %.*s already has a %sbudget", opt, v,
				      (int)len, v, is_usd ? "USD " : "");
	*slot = limit;
	return 0;
}

/* --count input,output: which classes the token budgets count. */
static int parse_count_classes(struct cli_options *o, const char *v, char *err, size_t errlen)
{
	static const char *const names[METER_NFIELDS] = {
		[METER_INPUT] = "input",
		[METER_OUTPUT] = "output",
		[METER_CACHE_CREATION] = "cache_creation",
		[METER_CACHE_READ] = "cache_read",
	};
	uint32_t w[METER_NFIELDS] = {0};
	const char *p = v;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		int f = -1;
		for (int k = 0; k < METER_NFIELDS; k++)
			if (strlen(names[k]) == n && !memcmp(names[k], p, n))
				f = k;
		if (f < 0)
			return log_error_into(err, errlen,
					      "--count '%s': '%.*s' is not a class (expected %s)",
					      v, (int)n, p, FORM_COUNT_CLASSES);
		if (w[f])
			return log_error_into(err, errlen, "--count '%s': %s given twice", v,
					      names[f]);
		w[f] = 1;
		if (!comma)
			break;
		p = comma + 1;
	}
	memcpy(o->weights, w, sizeof(w));
	return 0;
}

static int parse_match(struct cli_options *o, bool *match_given, const char *v, char *err,
		       size_t errlen)
{
	/* TBWRAP_MATCH is ':'-separated and compared with a basename: neither may appear. */
	if (v[0] == '\0' || strchr(v, '/') || strchr(v, ':') || strlen(v) > CLI_MATCH_NAME_MAX)
		return log_error_into(
			err, errlen,
			"--match '%s': expected a program name (no '/' or ':', at most %d bytes)",
			v, CLI_MATCH_NAME_MAX);
	if (!*match_given) {
		/* The first --match replaces the default instead of adding to it. */
		*match_given = true;
		o->n_match = 0;
	}
	if (o->n_match >= CLI_MAX_MATCH)
		return log_error_into(err, errlen, "--match '%s': more than %d names", v,
				      CLI_MAX_MATCH);
	o->match[o->n_match++] = v;
	return 0;
}

static void set_defaults(struct cli_options *o)
{
	memset(o, 0, sizeof(*o));
	o->action = CLI_RUN;
	o->overall_limit = LEDGER_NO_LIMIT;
	o->overall_usd_limit = LEDGER_NO_LIMIT;
	for (int f = 0; f < METER_NFIELDS; f++)
		o->weights[f] = 1;
	o->mode = LEDGER_MODE_WARN;
	o->visuals = true;
	o->estimate = CLI_DEFAULT_ESTIMATE;
	o->n_match = 1;
	o->match[0] = TBWRAP_DEFAULT_MATCH;
	o->profile_overall_pusd = CLI_NO_USD;
}

/* `tbwrap status [--disable-budget-visuals] [PID]` */
static int parse_status(int argc, char **argv, int i, struct cli_options *o, char *err,
			size_t errlen)
{
	bool pid_given = false;
	o->action = CLI_STATUS;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--disable-budget-visuals") == 0) {
			o->visuals = false;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			o->action = CLI_HELP;
			return 0;
		}
		if (a[0] == '-')
			return log_error_into(err, errlen,
					      "status: unknown option '%s' (usage: tbwrap status "
					      "[--disable-budget-visuals] [PID])",
					      a);
		if (pid_given)
			return log_error_into(err, errlen,
					      "status: unexpected argument '%s' (usage: tbwrap "
					      "status [--disable-budget-visuals] [PID])",
					      a);
		char *end;
		errno = 0;
		long pid = strtol(a, &end, 10);
		if (a[0] < '0' || a[0] > '9' || *end != '\0' || errno || pid <= 0 || pid > INT_MAX)
			return log_error_into(
				err, errlen,
				"status '%s': expected the process id of a running tbwrap", a);
		o->status_pid = (pid_t)pid;
		pid_given = true;
	}
	return 0;
}

/* `tbwrap prices [--prices FILE]` */
static int parse_prices(int argc, char **argv, int i, struct cli_options *o, char *err,
			size_t errlen)
{
	o->action = CLI_PRICES;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			o->action = CLI_HELP;
			return 0;
		}
		const char *v = NULL;
		if (strcmp(a, "--prices") == 0) {
			if (i + 1 >= argc)
				return log_error_into(
					err, errlen,
					"prices: --prices: missing value (expected FILE)");
			v = argv[++i];
		} else if (strncmp(a, "--prices=", 9) == 0) {
			v = a + 9;
		} else {
			return log_error_into(
				err, errlen,
				"prices: unexpected argument '%s' (usage: tbwrap prices [--prices "
				"FILE])",
				a);
		}
		if (o->prices)
			return log_error_into(err, errlen, "prices: --prices given twice");
		if (!*v)
			return log_error_into(err, errlen,
					      "prices: --prices '': expected a file name");
		o->prices = v;
	}
	return 0;
}

static const struct opt *find_opt(const char *a, const char **inline_value)
{
	for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
		size_t n = strlen(opts[k].name);
		if (strncmp(a, opts[k].name, n) != 0)
			continue;
		if (a[n] == '\0') {
			*inline_value = NULL;
			return &opts[k];
		}
		if (a[n] == '=' && opts[k].name[1] == '-') {
			*inline_value = a + n + 1;
			return &opts[k];
		}
	}
	return NULL;
}

/* A file name, a profile or scope name: given once, not empty. */
static int set_once(const char **slot, const char *name, const char *v, char *err, size_t errlen)
{
	if (*slot)
		return log_error_into(err, errlen, "%s given twice", name);
	if (v[0] == '\0')
		return log_error_into(err, errlen, "%s '': expected a non-empty value", name);
	*slot = v;
	return 0;
}

/* The options of budgets that remember: --history, --no-history, --window, --scope,
 * --profiles, --profile. */
static int parse_memory_option(struct cli_options *o, const struct opt *opt, const char *v,
			       char *err, size_t errlen)
{
	switch (opt->id) {
	case OPT_HISTORY:
		return set_once(&o->history, opt->name, v, err, errlen);
	case OPT_NO_HISTORY:
		o->no_history = true;
		return 0;
	case OPT_WINDOW:
		if (o->window_s)
			return log_error_into(err, errlen, "--window given twice");
		if (history_parse_duration(v, &o->window_s) < 0)
			return log_error_into(
				err, errlen,
				"--window '%s': expected a duration such as 90m, 24h or 7d "
				"(a whole number and s, m, h, d or w)",
				v);
		return 0;
	case OPT_SCOPE:
		if (set_once(&o->scope, opt->name, v, err, errlen) < 0)
			return -1;
		if (strlen(v) >= HISTORY_SCOPE_MAX)
			return log_error_into(err, errlen, "--scope '%s': longer than %d bytes", v,
					      HISTORY_SCOPE_MAX - 1);
		return 0;
	case OPT_PROFILES:
		return set_once(&o->profiles, opt->name, v, err, errlen);
	case OPT_PROFILE:
		return set_once(&o->profile, opt->name, v, err, errlen);
	default:
		return 0;
	}
}

int cli_parse(int argc, char **argv, struct cli_options *o, char *err, size_t errlen)
{
	bool overall_given = false, mode_given = false, estimate_given = false;
	bool match_given = false;
	int i = 1;

	set_defaults(o);
	if (errlen > 0)
		err[0] = '\0';
	if (argc > 1 && strcmp(argv[1], "status") == 0)
		return parse_status(argc, argv, 2, o, err, errlen);
	if (argc > 1 && strcmp(argv[1], "prices") == 0)
		return parse_prices(argc, argv, 2, o, err, errlen);
	bool overall_usd_given = false, count_given = false;

	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-')
			break;

		const char *v;
		const struct opt *opt = find_opt(a, &v);
		if (!opt)
			return log_error_into(err, errlen,
					      "unknown option '%s' (see tbwrap --help)", a);
		if (!opt->value_form && v)
			return log_error_into(err, errlen, "%s takes no value (got '%s')",
					      opt->name, v);
		if (opt->value_form && !v) {
			if (i + 1 >= argc)
				return log_error_into(err, errlen,
						      "%s: missing value (expected %s)", opt->name,
						      opt->value_form);
			v = argv[++i];
		}

		const char *why;
		switch (opt->id) {
		case OPT_OVERALL:
			if (overall_given)
				return log_error_into(err, errlen,
						      "--overall-token-budget given twice");
			overall_given = true;
			why = count_error(v, &o->overall_limit);
			if (why)
				return log_error_into(err, errlen,
						      "--overall-token-budget '%s': %s", v, why);
			break;
		case OPT_COMMAND_BUDGET:
		case OPT_COMMAND_USD:
			if (parse_command_budget(o, v, opt->id == OPT_COMMAND_USD, err, errlen) < 0)
				return -1;
			break;
		case OPT_OVERALL_USD:
			if (overall_usd_given)
				return log_error_into(err, errlen,
						      "--overall-usd-budget given twice");
			overall_usd_given = true;
			if (prices_parse_usd(v, &o->overall_usd_limit) < 0)
				return log_error_into(
					err, errlen,
					"--overall-usd-budget '%s': expected " FORM_USD, v);
			break;
		case OPT_PRICES:
			if (o->prices)
				return log_error_into(err, errlen, "--prices given twice");
			if (v[0] == '\0')
				return log_error_into(err, errlen,
						      "--prices '': expected a file name");
			o->prices = v;
			break;
		case OPT_COUNT:
			if (count_given)
				return log_error_into(err, errlen, "--count given twice");
			count_given = true;
			if (parse_count_classes(o, v, err, errlen) < 0)
				return -1;
			break;
		case OPT_MODE:
			if (mode_given)
				return log_error_into(err, errlen,
						      "--budget-enforcement-mode given twice");
			mode_given = true;
			if (strcmp(v, "warn") == 0)
				o->mode = LEDGER_MODE_WARN;
			else if (strcmp(v, "block") == 0)
				o->mode = LEDGER_MODE_BLOCK;
			else
				return log_error_into(
					err, errlen,
					"--budget-enforcement-mode '%s': expected warn or block",
					v);
			break;
		case OPT_NO_VISUALS:
			o->visuals = false;
			break;
		case OPT_ESTIMATE:
			if (estimate_given)
				return log_error_into(err, errlen, "--estimate given twice");
			estimate_given = true;
			if (strcmp(v, "auto") == 0) {
				o->estimate_auto = true;
				break;
			}
			why = count_error(v, &o->estimate);
			if (why)
				return log_error_into(err, errlen, "--estimate '%s': %s (or auto)",
						      v, why);
			break;
		case OPT_DRY_RUN:
			o->dry_run = true;
			break;
		case OPT_MATCH:
			if (parse_match(o, &match_given, v, err, errlen) < 0)
				return -1;
			break;
		case OPT_REPORT_JSON:
			if (o->report_json)
				return log_error_into(err, errlen, "--report-json given twice");
			if (v[0] == '\0')
				return log_error_into(
					err, errlen,
					"--report-json '': expected a file name (or - for stdout)");
			o->report_json = v;
			break;
		case OPT_HELP:
			o->action = CLI_HELP;
			return 0;
		case OPT_VERSION:
			o->action = CLI_VERSION;
			return 0;
		case OPT_HISTORY:
		case OPT_NO_HISTORY:
		case OPT_WINDOW:
		case OPT_SCOPE:
		case OPT_PROFILES:
		case OPT_PROFILE:
			if (parse_memory_option(o, opt, v, err, errlen) < 0)
				return -1;
			break;
		}
	}
	o->overall_given = overall_given;
	o->mode_given = mode_given;
	o->estimate_given = estimate_given;

	if (i >= argc)
		return log_error_into(err, errlen,
				      "no command given (usage: tbwrap [OPTIONS] -- COMMAND "
				      "[ARGS...]; see tbwrap --help)");
	o->argv = argv + i;
	o->argc = argc - i;
	return 0;
}

void cli_usage(FILE *f)
{
	fprintf(f,
		"Usage: tbwrap [OPTIONS] [--] COMMAND [ARGS...]\n"
		"       tbwrap status [--disable-budget-visuals] [PID]\n"
		"       tbwrap prices [--prices FILE]\n"
		"       tbwrap report [--json] [--html FILE] [--since DURATION] [--command /CMD]\n"
		"                     [--scope NAME] [--history FILE]\n"
		"       tbwrap suggest [--margin PCT] [--since DURATION] [--command /CMD]\n"
		"                      [--scope NAME] [--history FILE]\n"
		"\n"
		"Runs COMMAND with token budgets on every AI coding agent started below it "
		"(Claude\n"
		"Code by default), metering their usage as they write it.\n"
		"\n"
		"Options (each VALUE may also be given as --option=VALUE):\n"
		"  --overall-token-budget TOKENS     budget of the whole session, all agents "
		"together;\n"
		"                                    0 means no agent may run\n"
		"  --command-budget /COMMAND=TOKENS  budget of the agents whose prompt starts "
		"with\n"
		"                                    /COMMAND (e.g. /test=50K); repeatable, at "
		"most %d;\n"
		"                                    %s=TOKENS budgets prompts that are no "
		"command\n"
		"  --overall-usd-budget USD          the same in dollars, as tbwrap prices each "
		"call\n"
		"                                    (USD: 5, 0.25, $1.50); an agent is held to "
		"the\n"
		"                                    token and the USD budget, whichever comes "
		"first\n"
		"  --command-usd-budget /COMMAND=USD a command's budget in dollars; repeatable\n"
		"  --prices FILE                     the price table to use instead of the "
		"built-in\n"
		"                                    one (tbwrap prices shows it and its format)\n"
		"  --count CLASSES                   what the token budgets count: a comma list "
		"of\n"
		"                                    input,output,cache_creation,cache_read "
		"(default:\n"
		"                                    all four; the report keeps all four "
		"counts)\n"
		"  --budget-enforcement-mode warn|block\n"
		"                                    warn (default): report each budget crossing "
		"at\n"
		"                                    70, 90 and 100%%; block: refuse agents that "
		"would\n"
		"                                    exceed a budget and stop those that cross "
		"one\n"
		"  --estimate TOKENS                 tokens reserved for an agent when it starts\n"
		"                                    (default %d), released as its real usage "
		"arrives\n"
		"  --match NAME                      program name that is an agent (of argv[0], "
		"of the\n"
		"                                    executable, or of an interpreter's script);\n"
		"                                    repeatable, replaces the default '%s' (which\n"
		"                                    finds Claude Code under any name)\n"
		"  --disable-budget-visuals          no progress bars in reports (numbers stay)\n"
		"  --report-json FILE                write the final report as JSON to FILE\n"
		"                                    ('-' for standard output); checked before\n"
		"                                    the command runs\n"
		"  --dry-run                         print the budgets and the command, run "
		"nothing\n"
		"  -h, --help                        show this text\n"
		"  --version                         show the release and the git commit\n"
		"\n"
		"Budgets that remember (history in $XDG_STATE_HOME/tbwrap/history.db, else\n"
		"~/.local/state/tbwrap/history.db; profiles in $XDG_CONFIG_HOME/tbwrap/\n"
		"budget-profiles.yaml, else ~/.config/tbwrap/budget-profiles.yaml):\n"
		"  --estimate auto                   each agent's launch estimate is the p75 of "
		"the\n"
		"                                    last %d runs of its command (fewer than %d "
		"runs:\n"
		"                                    the fixed estimate)\n"
		"  --window DURATION                 the budgets count every run of the scope in "
		"the\n"
		"                                    last DURATION (90m, 24h, 7d: s, m, h, d or "
		"w)\n"
		"  --scope NAME                      the runs a window counts (default '%s')\n"
		"  --history FILE                    the history database to record into and read\n"
		"  --no-history                      record nothing, read nothing\n"
		"  --profile NAME                    the budgets of profile NAME; options given "
		"on\n"
		"                                    the command line override them\n"
		"  --profiles FILE                   the profiles file\n"
		"\n"
		"TOKENS is a whole number, optionally with K (1000) or M (1000000): 50000, 50K, "
		"1.5M.\n"
		"Options end at '--' or at the first word that is not an option; a command named\n"
		"'status', 'prices', 'report' or 'suggest' needs '--' before it.\n"
		"\n"
		"tbwrap status [PID] shows the budgets and agents of a running tbwrap of this "
		"user\n"
		"(the only one, or the one whose process id is PID).\n"
		"tbwrap prices prints the price table in use (USD per million tokens, dated and\n"
		"sourced); a model it lacks is priced at its highest rates, and stops an agent "
		"under\n"
		"a USD budget in block mode.\n"
		"tbwrap report shows the history per command: runs, tokens, USD, p50/p75/p95 per\n"
		"run, stopped and refused (--json: as JSON; --html FILE: a page with a chart).\n"
		"tbwrap suggest proposes per-command budgets from it: p95 + PCT %% (default %d).\n"
		"\n"
		"Exit status: the command's own status, or\n"
		"  %3d  bad command line, a bad --profile (file and line named), a --report-json\n"
		"       path that cannot be written, or a --prices file that cannot be read (its\n"
		"       line is named)\n"
		"       (nothing was run)\n"
		"  %3d  an agent was refused at launch (block mode), or the run was: its\n"
		"       window's overall budget is spent (nothing was started)\n"
		"  %3d  an agent was stopped for its budget (block mode)\n"
		"  %3d  the supervisor went away under a running agent, or could not be reached\n"
		"  %3d  tbwrap itself failed, or a window's history cannot be used\n"
		"  %3d  the command could not be executed\n"
		"  %3d  the command was not found\n"
		"tbwrap status exits 0, 1 when no tbwrap is running, 2 when several are and no "
		"PID\n"
		"was given. tbwrap report and suggest exit 0, 1 when the history cannot be read,\n"
		"2 for a bad command line.\n",
		LEDGER_MAX_BUDGETS, LEDGER_CATCH_ALL, CLI_DEFAULT_ESTIMATE, TBWRAP_DEFAULT_MATCH,
		HISTORY_ESTIMATE_RUNS, HISTORY_ESTIMATE_MIN_RUNS, HISTORY_DEFAULT_SCOPE,
		HISTREPORT_DEFAULT_MARGIN, TBWRAP_EXIT_USAGE, TBWRAP_EXIT_REFUSED,
		TBWRAP_EXIT_STOPPED, TBWRAP_EXIT_LOST, TBWRAP_EXIT_INTERNAL, TBWRAP_EXIT_NOEXEC,
		TBWRAP_EXIT_NOTFOUND);
}

bool cli_is_command_name(const char *name, size_t len)
{
	return is_command_name(name, len);
}
