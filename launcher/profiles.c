/*
 * Budget profiles (include/tbwrap/profiles.h), parsed with libyaml's loader into a document
 * whose nodes carry their marks: every refusal names the line of the node it refuses.
 */
#include "tbwrap/profiles.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "tbwrap/log.h"

/* A profiles file is a few lines; anything this large is not one. */
#define PROFILES_FILE_MAX ((size_t)1 << 20)

struct ctx {
	yaml_document_t *doc;
	const char *fname;
	char *err;
	size_t errlen;
};

static int fail_at(struct ctx *c, const yaml_node_t *n, const char *fmt, ...) TBWRAP_PRINTF(3, 4);

static int fail_at(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (c->errlen > 0)
		snprintf(c->err, c->errlen, "%s:%lu: %s", c->fname,
			 n ? (unsigned long)n->start_mark.line + 1 : 1UL, what);
	return -1;
}

int profiles_default_path(char *out, size_t len)
{
	const char *cfg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	int n;
	if (cfg && cfg[0] == '/')
		n = snprintf(out, len, "%s/tbwrap/budget-profiles.yaml", cfg);
	else if (home && home[0])
		n = snprintf(out, len, "%s/.config/tbwrap/budget-profiles.yaml", home);
	else
		return -1;
	return n > 0 && (size_t)n < len ? 0 : -1;
}

int profiles_parse_usd(const char *s, uint64_t *pusd)
{
	const uint64_t max_whole = UINT64_C(1000000); /* a million dollars is no budget typo */
	uint64_t whole = 0, frac = 0;
	unsigned digits = 0;
	const char *p = s;

	if (!s || *p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		whole = whole * 10 + (uint64_t)(*p - '0');
		if (whole > max_whole)
			return -1;
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (++digits > 12)
				return -1;
			frac = frac * 10 + (uint64_t)(*p - '0');
		}
	}
	if (*p != '\0')
		return -1;
	for (; digits < 12; digits++)
		frac *= 10;
	*pusd = whole * UINT64_C(1000000000000) + frac;
	return 0;
}

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static const char *kind(const yaml_node_t *n)
{
	switch (n ? n->type : YAML_NO_NODE) {
	case YAML_SCALAR_NODE:
		return "a value";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "nothing";
	}
}

static int want_mapping(struct ctx *c, const yaml_node_t *n, const char *what)
{
	if (n && n->type == YAML_MAPPING_NODE)
		return 0;
	return fail_at(c, n, "%s: expected a mapping, got %s", what, kind(n));
}

static int want_scalar(struct ctx *c, const yaml_node_t *n, const char *what, const char **v)
{
	*v = scalar(n);
	if (*v && (*v)[0])
		return 0;
	return fail_at(c, n, "%s: expected a value, got %s", what, *v ? "an empty one" : kind(n));
}

/* A mapping of command keys to counts (tokens) or USD amounts. */
static int parse_commands(struct ctx *c, const yaml_node_t *map, bool usd, size_t *n,
			  char names[][LEDGER_NAME_LEN], uint64_t *limits)
{
	const char *what = usd ? "commands_usd" : "commands";
	if (want_mapping(c, map, what) < 0)
		return -1;
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
	     pr++) {
		const yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
		const yaml_node_t *v = yaml_document_get_node(c->doc, pr->value);
		const char *key, *val;
		if (want_scalar(c, k, what, &key) < 0)
			return -1;
		size_t len = strlen(key);
		if (!cli_is_command_name(key, len))
			return fail_at(c, k, "%s: '%s' is no command key (expected /COMMAND or %s)",
				       what, key, LEDGER_CATCH_ALL);
		if (len >= LEDGER_NAME_LEN)
			return fail_at(c, k, "%s: '%s' is longer than %d bytes", what, key,
				       LEDGER_NAME_LEN - 1);
		for (size_t i = 0; i < *n; i++)
			if (strcmp(names[i], key) == 0)
				return fail_at(c, k, "%s: %s given twice", what, key);
		if (*n >= LEDGER_MAX_BUDGETS)
			return fail_at(c, k, "%s: more than %d command budgets", what,
				       LEDGER_MAX_BUDGETS);
		if (want_scalar(c, v, key, &val) < 0)
			return -1;
		int bad = usd ? profiles_parse_usd(val, &limits[*n])
			      : cli_parse_count(val, &limits[*n]);
		if (bad)
			return fail_at(c, v, "%s %s: '%s': expected %s", what, key, val,
				       usd ? "a USD amount such as 5 or 2.50"
					   : "a token count such as 50000, 50K or 1.5M");
		snprintf(names[*n], LEDGER_NAME_LEN, "%s", key);
		(*n)++;
	}
	return 0;
}

static int parse_estimate(struct ctx *c, const yaml_node_t *v, const char *val, struct profile *p)
{
	p->has_estimate = true;
	if (strcmp(val, "auto") == 0) {
		p->estimate_auto = true;
		return 0;
	}
	if (cli_parse_count(val, &p->estimate) < 0)
		return fail_at(c, v, "estimate: '%s': expected a token count or auto", val);
	return 0;
}

/* One key of a profile. */
static int parse_key(struct ctx *c, const yaml_node_t *k, const char *key, const yaml_node_t *v,
		     struct profile *p)
{
	const char *val = NULL;
	if (strcmp(key, "commands") == 0)
		return parse_commands(c, v, false, &p->n_commands, p->command_names,
				      p->command_limits);
	if (strcmp(key, "commands_usd") == 0)
		return parse_commands(c, v, true, &p->n_usd, p->usd_names, p->usd_limits);
	if (strcmp(key, "overall") != 0 && strcmp(key, "mode") != 0 && strcmp(key, "window") != 0 &&
	    strcmp(key, "scope") != 0 && strcmp(key, "estimate") != 0 &&
	    strcmp(key, "overall_usd") != 0)
		return fail_at(c, k,
			       "unknown key '%s' (expected overall, commands, mode, window, scope, "
			       "estimate, overall_usd or commands_usd)",
			       key);
	if (want_scalar(c, v, key, &val) < 0)
		return -1;
	if (strcmp(key, "overall") == 0) {
		p->has_overall = true;
		if (cli_parse_count(val, &p->overall) < 0)
			return fail_at(c, v,
				       "overall: '%s': expected a token count such as 50000, 50K "
				       "or 1.5M",
				       val);
	} else if (strcmp(key, "mode") == 0) {
		p->has_mode = true;
		if (strcmp(val, "warn") == 0)
			p->mode = LEDGER_MODE_WARN;
		else if (strcmp(val, "block") == 0)
			p->mode = LEDGER_MODE_BLOCK;
		else
			return fail_at(c, v, "mode: '%s': expected warn or block", val);
	} else if (strcmp(key, "window") == 0) {
		if (history_parse_duration(val, &p->window_s) < 0)
			return fail_at(c, v,
				       "window: '%s': expected a duration such as 90m, 24h or 7d",
				       val);
	} else if (strcmp(key, "scope") == 0) {
		if (strlen(val) >= sizeof(p->scope))
			return fail_at(c, v, "scope: longer than %zu bytes", sizeof(p->scope) - 1);
		snprintf(p->scope, sizeof(p->scope), "%s", val);
	} else if (strcmp(key, "estimate") == 0) {
		return parse_estimate(c, v, val, p);
	} else if (profiles_parse_usd(val, &p->overall_pusd) < 0) {
		return fail_at(c, v, "overall_usd: '%s': expected a USD amount such as 5 or 2.50",
			       val);
	}
	return 0;
}

static int parse_profile(struct ctx *c, const yaml_node_t *k, const char *name,
			 const yaml_node_t *map, struct profile *p)
{
	memset(p, 0, sizeof(*p));
	p->overall_pusd = CLI_NO_USD;
	p->line = (unsigned)k->start_mark.line + 1;
	if (strlen(name) >= sizeof(p->name))
		return fail_at(c, k, "profile name longer than %zu bytes", sizeof(p->name) - 1);
	snprintf(p->name, sizeof(p->name), "%s", name);
	char what[PROFILES_NAME_MAX + 16];
	snprintf(what, sizeof(what), "profile %s", name);
	if (want_mapping(c, map, what) < 0)
		return -1;
	unsigned seen = 0;
	static const char *const keys[] = {"overall", "commands", "mode",	 "window",
					   "scope",   "estimate", "overall_usd", "commands_usd"};
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
	     pr++) {
		const yaml_node_t *kn = yaml_document_get_node(c->doc, pr->key);
		const yaml_node_t *vn = yaml_document_get_node(c->doc, pr->value);
		const char *key;
		if (want_scalar(c, kn, what, &key) < 0)
			return -1;
		for (unsigned i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			if (strcmp(key, keys[i]) != 0)
				continue;
			if (seen & (1u << i))
				return fail_at(c, kn, "%s: %s given twice", what, key);
			seen |= 1u << i;
		}
		if (parse_key(c, kn, key, vn, p) < 0)
			return -1;
	}
	return 0;
}

static int parse_doc(struct ctx *c, const char *name, struct profile *out)
{
	const yaml_node_t *root = yaml_document_get_root_node(c->doc);
	if (!root)
		return fail_at(c, NULL, "empty file (expected 'profiles:' and a profile below it)");
	if (want_mapping(c, root, "the file") < 0)
		return -1;
	const yaml_node_t *profiles = NULL, *profiles_key = NULL;
	for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
	     pr < root->data.mapping.pairs.top; pr++) {
		const yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
		const char *key = scalar(k);
		if (!key || strcmp(key, "profiles") != 0)
			return fail_at(c, k, "unknown key '%s' (expected profiles)",
				       key ? key : kind(k));
		if (profiles)
			return fail_at(c, k, "profiles given twice");
		profiles = yaml_document_get_node(c->doc, pr->value);
		profiles_key = k;
	}
	if (!profiles)
		return fail_at(c, root, "no 'profiles:' mapping");
	if (want_mapping(c, profiles, "profiles") < 0)
		return -1;
	bool found = false;
	char names[512] = "";
	size_t off = 0;
	struct profile *p = malloc(sizeof(*p));
	if (!p)
		return fail_at(c, NULL, "out of memory");
	for (yaml_node_pair_t *pr = profiles->data.mapping.pairs.start;
	     pr < profiles->data.mapping.pairs.top; pr++) {
		const yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
		const yaml_node_t *v = yaml_document_get_node(c->doc, pr->value);
		const char *pname;
		if (want_scalar(c, k, "profiles", &pname) < 0 ||
		    parse_profile(c, k, pname, v, p) < 0) {
			free(p);
			return -1;
		}
		if (strcmp(pname, name) == 0) {
			if (found) {
				free(p);
				return fail_at(c, k, "profile %s given twice", pname);
			}
			found = true;
			*out = *p;
		}
		if (off < sizeof(names))
			off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s",
						off ? ", " : "", pname);
	}
	free(p);
	if (!found)
		return fail_at(c, profiles_key, "no profile '%s' (it has: %s)", name,
			       names[0] ? names : "none");
	return 0;
}

int profiles_parse(const char *text, size_t len, const char *fname, const char *name,
		   struct profile *p, char *err, size_t errlen)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct ctx c = {.doc = &doc, .fname = fname, .err = err, .errlen = errlen};
	int rc = -1;

	if (!yaml_parser_initialize(&parser))
		return fail_at(&c, NULL, "cannot start the YAML parser");
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		/* The problem's own mark: where the YAML stops making sense. */
		if (errlen > 0)
			snprintf(err, errlen, "%s:%lu: not valid YAML: %s%s%s", fname,
				 (unsigned long)parser.problem_mark.line + 1,
				 parser.problem ? parser.problem : "malformed",
				 parser.context ? " " : "", parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
		return -1;
	}
	rc = parse_doc(&c, name, p);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return rc;
}

int profiles_load(const char *path, const char *name, struct profile *p, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s: cannot read the profiles: %s", path, strerror(e));
		return -1;
	}
	char *buf = malloc(PROFILES_FILE_MAX + 1);
	size_t n = buf ? fread(buf, 1, PROFILES_FILE_MAX + 1, f) : 0;
	bool bad = !buf || ferror(f);
	fclose(f);
	if (bad || n > PROFILES_FILE_MAX) {
		snprintf(err, errlen, "%s: cannot read the profiles: %s", path,
			 bad ? "read error" : "larger than 1 MiB");
		free(buf);
		return -1;
	}
	int rc = profiles_parse(buf, n, path, name, p, err, errlen);
	free(buf);
	return rc;
}

/* The token (or USD) limit of command name in o, the entry added (with no limits) when the
 * command line has none; NULL with err when the table is full. */
static uint64_t *command_slot(const struct profile *p, struct cli_options *o, const char *name,
			      bool is_usd, char *err, size_t errlen)
{
	size_t k = 0;
	while (k < o->n_commands && strcmp(o->command_names[k], name) != 0)
		k++;
	if (k == o->n_commands) {
		if (o->n_commands >= LEDGER_MAX_BUDGETS) {
			snprintf(err, errlen,
				 "profile %s: more than %d command budgets with the command line's",
				 p->name, LEDGER_MAX_BUDGETS);
			return NULL;
		}
		snprintf(o->command_names[k], LEDGER_NAME_LEN, "%s", name);
		o->command_limits[k] = LEDGER_NO_LIMIT;
		o->command_usd_limits[k] = LEDGER_NO_LIMIT;
		o->n_commands++;
	}
	return is_usd ? &o->command_usd_limits[k] : &o->command_limits[k];
}

int profiles_apply(const struct profile *p, struct cli_options *o, char *err, size_t errlen)
{
	if (p->has_overall && !o->overall_given)
		o->overall_limit = p->overall;
	if (p->has_mode && !o->mode_given)
		o->mode = p->mode;
	if (p->has_estimate && !o->estimate_given) {
		o->estimate_auto = p->estimate_auto;
		if (!p->estimate_auto)
			o->estimate = p->estimate;
	}
	if (p->window_s && !o->window_s)
		o->window_s = p->window_s;
	if (p->scope[0] && !o->scope)
		o->scope = p->scope;
	/* Each command's token and USD budget from the profile, unless the command line gave
	 * that one (a command line with only /test's USD budget still takes /test's tokens). */
	for (size_t i = 0; i < p->n_commands; i++) {
		uint64_t *slot = command_slot(p, o, p->command_names[i], false, err, errlen);
		if (!slot)
			return -1;
		if (*slot == LEDGER_NO_LIMIT)
			*slot = p->command_limits[i];
	}
	o->profile_overall_pusd = p->overall_pusd;
	o->n_profile_usd = p->n_usd;
	if (p->overall_pusd != CLI_NO_USD && o->overall_usd_limit == LEDGER_NO_LIMIT)
		o->overall_usd_limit = p->overall_pusd;
	for (size_t i = 0; i < p->n_usd; i++) {
		snprintf(o->profile_usd_names[i], LEDGER_NAME_LEN, "%s", p->usd_names[i]);
		o->profile_usd_limits[i] = p->usd_limits[i];
		uint64_t *slot = command_slot(p, o, p->usd_names[i], true, err, errlen);
		if (!slot)
			return -1;
		if (*slot == LEDGER_NO_LIMIT)
			*slot = p->usd_limits[i];
	}
	return 0;
}
