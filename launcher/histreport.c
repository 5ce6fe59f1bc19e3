/*
 * `tbwrap report` and `tbwrap suggest` (include/tbwrap/histreport.h).
 */
#include "tbwrap/histreport.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tbwrap/cli.h"
#include "tbwrap/log.h"
#include "tbwrap/render.h"

/* ---- collecting ------------------------------------------------------------------------- */

struct vec {
	uint64_t *v;
	size_t n, cap;
};

static bool vec_push(struct vec *v, uint64_t x)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		uint64_t *p = realloc(v->v, cap * sizeof(*p));
		if (!p)
			return false;
		v->v = p;
		v->cap = cap;
	}
	v->v[v->n++] = x;
	return true;
}

static const char where_sql[] = " WHERE (?1 IS NULL OR scope = ?1) AND (?2 IS NULL OR command = ?2)"
				" AND started_ms >= ?3";

static void bind_filter(sqlite3_stmt *st, const struct histreport_filter *f)
{
	if (f->scope)
		sqlite3_bind_text(st, 1, f->scope, -1, SQLITE_STATIC);
	if (f->command)
		sqlite3_bind_text(st, 2, f->command, -1, SQLITE_STATIC);
	uint64_t span = f->since_s * 1000;
	sqlite3_bind_int64(st, 3,
			   f->since_s && f->now_ms > span ? (sqlite3_int64)(f->now_ms - span) : 0);
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);
	return v > 0 ? (uint64_t)v : 0;
}

static void finish_command(struct histreport_command *c, struct vec *v)
{
	c->p50 = history_percentile(v->v, v->n, 50);
	c->p75 = history_percentile(v->v, v->n, 75);
	c->p95 = history_percentile(v->v, v->n, 95);
	v->n = 0;
}

static int collect_runs(sqlite3 *db, const struct histreport_filter *f, struct histreport *r,
			struct vec *v)
{
	char sql[512];
	sqlite3_stmt *st = NULL;
	snprintf(sql, sizeof(sql),
		 "SELECT run_id, sum(total) FROM agents%s AND status != 'refused' GROUP BY run_id",
		 where_sql);
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		bind_filter(st, f);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			if (!vec_push(v, col_u64(st, 1)))
				rc = SQLITE_NOMEM;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE) {
		r->tbwrap_runs = v->n;
		r->run_p95 = history_percentile(v->v, v->n, 95);
	}
	v->n = 0;
	return rc;
}

int histreport_collect(struct history *h, const struct histreport_filter *f, struct histreport *r,
		       char *err, size_t errlen)
{
	sqlite3 *db = history_db(h);
	sqlite3_stmt *st = NULL;
	struct vec v = {0};
	char sql[512];
	memset(r, 0, sizeof(*r));
	snprintf(sql, sizeof(sql),
		 "SELECT command, total, usd_pico, status FROM agents%s ORDER BY command",
		 where_sql);
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		bind_filter(st, f);
		struct histreport_command *c = NULL;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			const char *name = (const char *)sqlite3_column_text(st, 0);
			const char *status = (const char *)sqlite3_column_text(st, 3);
			if (!name || !status)
				continue;
			if (!c || strcmp(c->name, name) != 0) {
				if (c)
					finish_command(c, &v);
				if (r->n >= HISTREPORT_MAX_COMMANDS) {
					c = NULL;
					break;
				}
				c = &r->c[r->n++];
				snprintf(c->name, sizeof(c->name), "%s", name);
			}
			if (strcmp(status, "refused") == 0) {
				c->refused++;
				r->refused++;
				continue;
			}
			uint64_t t = col_u64(st, 1), p = col_u64(st, 2);
			c->runs++;
			c->tokens += t;
			c->pusd += p;
			r->runs++;
			r->tokens += t;
			r->pusd += p;
			if (strcmp(status, "stopped") == 0) {
				c->stopped++;
				r->stopped++;
			}
			if (!vec_push(&v, t)) {
				rc = SQLITE_NOMEM;
				break;
			}
		}
		if (c && rc == SQLITE_DONE)
			finish_command(c, &v);
		else if (rc == SQLITE_ROW)
			rc = SQLITE_DONE; /* more commands than the report holds: the first ones */
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		rc = collect_runs(db, f, r, &v);
	free(v.v);
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "history %s: cannot read: %s", history_path(h),
			 sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

/* ---- JSON and text ---------------------------------------------------------------------- */

static double usd(uint64_t pusd)
{
	return (double)pusd / 1e12;
}

static void add_counts(cJSON *o, uint64_t runs, uint64_t tokens, uint64_t pusd)
{
	cJSON_AddNumberToObject(o, "runs", (double)runs);
	cJSON_AddNumberToObject(o, "tokens", (double)tokens);
	cJSON_AddNumberToObject(o, "usd", usd(pusd));
}

char *histreport_json(const struct histreport *r, const struct histreport_filter *f)
{
	cJSON *root = cJSON_CreateObject(), *cmds = cJSON_CreateArray(), *total;
	if (!root || !cmds) {
		cJSON_Delete(root);
		cJSON_Delete(cmds);
		return NULL;
	}
	if (f->since_s)
		cJSON_AddNumberToObject(root, "since_seconds", (double)f->since_s);
	else
		cJSON_AddNullToObject(root, "since_seconds");
	if (f->scope)
		cJSON_AddStringToObject(root, "scope", f->scope);
	else
		cJSON_AddNullToObject(root, "scope");
	if (f->command)
		cJSON_AddStringToObject(root, "command", f->command);
	else
		cJSON_AddNullToObject(root, "command");
	cJSON_AddItemToObject(root, "commands", cmds);
	for (size_t i = 0; i < r->n; i++) {
		const struct histreport_command *c = &r->c[i];
		cJSON *o = cJSON_CreateObject();
		if (!o)
			break;
		cJSON_AddItemToArray(cmds, o);
		cJSON_AddStringToObject(o, "command", c->name);
		add_counts(o, c->runs, c->tokens, c->pusd);
		cJSON_AddNumberToObject(o, "p50", (double)c->p50);
		cJSON_AddNumberToObject(o, "p75", (double)c->p75);
		cJSON_AddNumberToObject(o, "p95", (double)c->p95);
		cJSON_AddNumberToObject(o, "stopped", (double)c->stopped);
		cJSON_AddNumberToObject(o, "refused", (double)c->refused);
	}
	total = cJSON_AddObjectToObject(root, "total");
	if (total) {
		add_counts(total, r->runs, r->tokens, r->pusd);
		cJSON_AddNumberToObject(total, "stopped", (double)r->stopped);
		cJSON_AddNumberToObject(total, "refused", (double)r->refused);
		cJSON_AddNumberToObject(total, "tbwrap_runs", (double)r->tbwrap_runs);
	}
	char *s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!s)
		return NULL;
	struct render_buf b = {0};
	render_buf_printf(&b, "%s\n", s);
	cJSON_free(s);
	return render_buf_finish(&b);
}

static void describe_filter(struct render_buf *b, const struct histreport_filter *f)
{
	char since[32] = "all time";
	if (f->since_s)
		snprintf(since, sizeof(since), "the last %llus", (unsigned long long)f->since_s);
	render_buf_printf(b, "scope %s, %s%s%s", f->scope ? f->scope : "all", since,
			  f->command ? ", command " : "", f->command ? f->command : "");
}

char *histreport_text(const struct histreport *r, const struct histreport_filter *f)
{
	struct render_buf b = {0};
	char t[5][32];
	render_buf_printf(&b, "HISTORY (");
	describe_filter(&b, f);
	render_buf_printf(&b, "): %llu agent runs in %llu tbwrap runs\n",
			  (unsigned long long)r->runs, (unsigned long long)r->tbwrap_runs);
	render_buf_printf(&b, "%-20s %6s %10s %10s %8s %8s %8s %7s %7s\n", "command", "runs",
			  "tokens", "USD", "p50", "p75", "p95", "stopped", "refused");
	for (size_t i = 0; i < r->n; i++) {
		const struct histreport_command *c = &r->c[i];
		render_tokens(t[0], sizeof(t[0]), c->tokens);
		render_tokens(t[1], sizeof(t[1]), c->p50);
		render_tokens(t[2], sizeof(t[2]), c->p75);
		render_tokens(t[3], sizeof(t[3]), c->p95);
		snprintf(t[4], sizeof(t[4]), "%.2f", usd(c->pusd));
		render_buf_printf(&b, "%-20s %6llu %10s %10s %8s %8s %8s %7llu %7llu\n", c->name,
				  (unsigned long long)c->runs, t[0], t[4], t[1], t[2], t[3],
				  (unsigned long long)c->stopped, (unsigned long long)c->refused);
	}
	render_tokens(t[0], sizeof(t[0]), r->tokens);
	snprintf(t[4], sizeof(t[4]), "%.2f", usd(r->pusd));
	render_buf_printf(&b, "%-20s %6llu %10s %10s %8s %8s %8s %7llu %7llu\n", "total",
			  (unsigned long long)r->runs, t[0], t[4], "", "", "",
			  (unsigned long long)r->stopped, (unsigned long long)r->refused);
	return render_buf_finish(&b);
}

/* ---- HTML ------------------------------------------------------------------------------- */

static void html_escape(struct render_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			render_buf_printf(b, "&amp;");
			break;
		case '<':
			render_buf_printf(b, "&lt;");
			break;
		case '>':
			render_buf_printf(b, "&gt;");
			break;
		case '"':
			render_buf_printf(b, "&quot;");
			break;
		case '\'':
			render_buf_printf(b, "&#39;");
			break;
		default:
			render_buf_printf(b, "%c", *s);
		}
	}
}

#define CHART_W 900
#define CHART_H 320
#define CHART_PAD 50

/* One polyline per command: x the agent's start time, y its tokens. */
static int html_chart(struct history *h, const struct histreport *r,
		      const struct histreport_filter *f, struct render_buf *b)
{
	static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
					     "#9467bd", "#8c564b", "#e377c2", "#17becf"};
	sqlite3 *db = history_db(h);
	sqlite3_stmt *st = NULL;
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "SELECT min(started_ms), max(started_ms), max(total) FROM agents%s AND status != "
		 "'refused'",
		 where_sql);
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	uint64_t t0 = 0, t1 = 0, ymax = 0;
	if (rc == SQLITE_OK) {
		bind_filter(st, f);
		if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			t0 = col_u64(st, 0);
			t1 = col_u64(st, 1);
			ymax = col_u64(st, 2);
			rc = SQLITE_DONE;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -1;
	if (t1 <= t0)
		t1 = t0 + 1;
	if (ymax == 0)
		ymax = 1;
	char top[32];
	render_tokens(top, sizeof(top), ymax);
	render_buf_printf(
		b,
		"<svg id=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"tokens per run over time\">\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n"
		"<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n"
		"<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n"
		"<text x=\"4\" y=\"%d\" font-size=\"12\">%s</text>\n"
		"<text x=\"4\" y=\"%d\" font-size=\"12\">0</text>\n",
		CHART_W, CHART_H, CHART_W, CHART_H, CHART_PAD, CHART_H - CHART_PAD,
		CHART_W - CHART_PAD, CHART_H - CHART_PAD, CHART_PAD, CHART_PAD, CHART_PAD,
		CHART_H - CHART_PAD, CHART_PAD + 4, top, CHART_H - CHART_PAD);
	snprintf(sql, sizeof(sql),
		 "SELECT started_ms, total FROM agents%s AND status != 'refused' AND command = ?4 "
		 "ORDER BY started_ms",
		 where_sql);
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < r->n; i++) {
		const char *color = colors[i % (sizeof(colors) / sizeof(colors[0]))];
		sqlite3_reset(st);
		bind_filter(st, f);
		sqlite3_bind_text(st, 4, r->c[i].name, -1, SQLITE_STATIC);
		struct render_buf pts = {0};
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			double x = CHART_PAD + (double)(col_u64(st, 0) - t0) *
						       (CHART_W - 2 * CHART_PAD) /
						       (double)(t1 - t0);
			double y =
				CHART_H - CHART_PAD -
				(double)col_u64(st, 1) * (CHART_H - 2 * CHART_PAD) / (double)ymax;
			render_buf_printf(&pts, "%s%.1f,%.1f", pts.len ? " " : "", x, y);
		}
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
		char *p = render_buf_finish(&pts);
		render_buf_printf(b, "<polyline class=\"series\" data-command=\"");
		html_escape(b, r->c[i].name);
		render_buf_printf(
			b,
			"\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>\n"
			"<text x=\"%d\" y=\"%zu\" font-size=\"13\" fill=\"%s\">",
			color, p ? p : "", CHART_W - CHART_PAD + 4 - 120, 20 + 16 * i, color);
		html_escape(b, r->c[i].name);
		render_buf_printf(b, "</text>\n");
		free(p);
	}
	sqlite3_finalize(st);
	render_buf_printf(b, "</svg>\n");
	return rc == SQLITE_OK ? 0 : -1;
}

char *histreport_html(struct history *h, const struct histreport *r,
		      const struct histreport_filter *f, char *err, size_t errlen)
{
	struct render_buf b = {0};
	render_buf_printf(
		&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
		    "<title>tbwrap report</title>\n<style>body{font-family:sans-serif;margin:2em}"
		    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
		    "text-align:right}td:first-child,th:first-child{text-align:left}</style>\n"
		    "</head><body>\n<h1>tbwrap report</h1>\n<p>");
	struct render_buf d = {0};
	describe_filter(&d, f);
	char *ds = render_buf_finish(&d);
	html_escape(&b, ds ? ds : "");
	free(ds);
	render_buf_printf(
		&b,
		": %llu agent runs in %llu tbwrap runs. Chart: tokens of each run of an agent "
		"by the time it started.</p>\n",
		(unsigned long long)r->runs, (unsigned long long)r->tbwrap_runs);
	if (html_chart(h, r, f, &b) < 0) {
		free(render_buf_finish(&b));
		snprintf(err, errlen, "history %s: cannot read: %s", history_path(h),
			 sqlite3_errmsg(history_db(h)));
		return NULL;
	}
	render_buf_printf(&b,
			  "<table id=\"commands\"><tr><th>command</th><th>runs</th><th>tokens</th>"
			  "<th>USD</th><th>p50</th><th>p75</th><th>p95</th><th>stopped</th>"
			  "<th>refused</th></tr>\n");
	for (size_t i = 0; i < r->n; i++) {
		const struct histreport_command *c = &r->c[i];
		render_buf_printf(&b, "<tr><td>");
		html_escape(&b, c->name);
		render_buf_printf(
			&b,
			"</td><td>%llu</td><td>%llu</td><td>%.2f</td><td>%llu</td><td>%llu</td>"
			"<td>%llu</td><td>%llu</td><td>%llu</td></tr>\n",
			(unsigned long long)c->runs, (unsigned long long)c->tokens, usd(c->pusd),
			(unsigned long long)c->p50, (unsigned long long)c->p75,
			(unsigned long long)c->p95, (unsigned long long)c->stopped,
			(unsigned long long)c->refused);
	}
	render_buf_printf(&b, "</table>\n</body></html>\n");
	char *s = render_buf_finish(&b);
	if (!s)
		snprintf(err, errlen, "out of memory");
	return s;
}

/* ---- suggest ---------------------------------------------------------------------------- */

uint64_t histreport_suggest_limit(uint64_t p95, unsigned margin_pct)
{
	unsigned __int128 v = (unsigned __int128)p95 * (100 + margin_pct);
	uint64_t x = (uint64_t)((v + 99) / 100);
	uint64_t step = x < 10000 ? 100 : 1000;
	x = (x + step - 1) / step * step;
	return x ? x : step;
}

/* As the command line takes it: "22K", "2500". */
static void count_text(char *buf, size_t len, uint64_t n)
{
	if (n >= 1000 && n % 1000 == 0)
		snprintf(buf, len, "%lluK", (unsigned long long)(n / 1000));
	else
		snprintf(buf, len, "%llu", (unsigned long long)n);
}

char *histreport_suggest(const struct histreport *r, unsigned margin_pct)
{
	struct render_buf b = {0}, flags = {0};
	char p[32], lim[32];
	for (size_t i = 0; i < r->n; i++) {
		const struct histreport_command *c = &r->c[i];
		if (c->runs < HISTORY_ESTIMATE_MIN_RUNS) {
			render_buf_printf(
				&b, "# %s: %llu run%s, too few for a suggestion (%d needed)\n",
				c->name, (unsigned long long)c->runs, c->runs == 1 ? "" : "s",
				HISTORY_ESTIMATE_MIN_RUNS);
			continue;
		}
		uint64_t l = histreport_suggest_limit(c->p95, margin_pct);
		render_tokens(p, sizeof(p), c->p95);
		count_text(lim, sizeof(lim), l);
		render_buf_printf(&b, "# %s: p95 %s of %llu runs + %u%% = %s\n", c->name, p,
				  (unsigned long long)c->runs, margin_pct, lim);
		render_buf_printf(&flags, " --command-budget %s=%s", c->name, lim);
	}
	if (r->tbwrap_runs >= HISTORY_ESTIMATE_MIN_RUNS) {
		uint64_t l = histreport_suggest_limit(r->run_p95, margin_pct);
		render_tokens(p, sizeof(p), r->run_p95);
		count_text(lim, sizeof(lim), l);
		render_buf_printf(&b, "# overall: p95 %s of %llu tbwrap runs + %u%% = %s\n", p,
				  (unsigned long long)r->tbwrap_runs, margin_pct, lim);
		struct render_buf all = {0};
		render_buf_printf(&all, " --overall-token-budget %s%s", lim,
				  flags.p ? flags.p : "");
		free(render_buf_finish(&flags));
		flags = all;
	}
	char *fl = render_buf_finish(&flags);
	if (fl && fl[0])
		render_buf_printf(&b, "tbwrap%s --\n", fl);
	else
		render_buf_printf(&b,
				  "# nothing to suggest yet: fewer than %d runs of every command\n",
				  HISTORY_ESTIMATE_MIN_RUNS);
	free(fl);
	return render_buf_finish(&b);
}

/* ---- the command ------------------------------------------------------------------------ */

static void usage(FILE *f, bool suggest)
{
	if (suggest)
		fprintf(f, "Usage: tbwrap suggest [--margin PCT] [--since DURATION] [--command "
			   "/CMD] [--scope NAME]\n                      [--history FILE]\n");
	else
		fprintf(f, "Usage: tbwrap report [--json] [--html FILE] [--since DURATION] "
			   "[--command /CMD]\n                     [--scope NAME] [--history "
			   "FILE]\n");
}

struct report_args {
	bool json;
	const char *html;
	const char *history;
	unsigned margin;
	struct histreport_filter f;
};

static int parse_args(int argc, char **argv, bool suggest, struct report_args *a)
{
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
			usage(stdout, suggest);
			return -2;
		}
		if (!suggest && strcmp(o, "--json") == 0) {
			a->json = true;
			continue;
		}
		static const char *const valued[] = {"--since",	  "--command", "--scope",
						     "--history", "--html",    "--margin"};
		bool known = false;
		for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++)
			known = known || strcmp(o, valued[k]) == 0;
		if ((suggest && strcmp(o, "--html") == 0) ||
		    (!suggest && strcmp(o, "--margin") == 0))
			known = false;
		if (!known) {
			log_warn("%s: unknown option '%s' (see tbwrap %s --help)", argv[0], o,
				 argv[0]);
			return -1;
		}
		if (i + 1 >= argc || argv[i + 1][0] == '\0') {
			log_warn("%s %s: missing value", argv[0], o);
			return -1;
		}
		const char *v = argv[++i];
		if (strcmp(o, "--since") == 0) {
			if (history_parse_duration(v, &a->f.since_s) < 0) {
				log_warn("%s --since '%s': expected a duration such as 90m, 24h or "
					 "7d",
					 argv[0], v);
				return -1;
			}
		} else if (strcmp(o, "--command") == 0) {
			if (!cli_is_command_name(v, strlen(v))) {
				log_warn("%s --command '%s': expected /COMMAND or %s", argv[0], v,
					 LEDGER_CATCH_ALL);
				return -1;
			}
			a->f.command = v;
		} else if (strcmp(o, "--scope") == 0) {
			a->f.scope = v;
		} else if (strcmp(o, "--history") == 0) {
			a->history = v;
		} else if (strcmp(o, "--html") == 0) {
			a->html = v;
		} else {
			char *end;
			errno = 0;
			unsigned long m = strtoul(v, &end, 10);
			if (errno || *end || end == v || m > 1000 || v[0] == '-') {
				log_warn("suggest --margin '%s': expected a percentage from 0 to "
					 "1000",
					 v);
				return -1;
			}
			a->margin = (unsigned)m;
		}
	}
	return 0;
}

static int write_file(const char *path, const char *text)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "we");
	if (!f) {
		log_warn_errno("report --html %s: cannot write", path);
		return -1;
	}
	bool ok = fputs(text, f) >= 0;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) < 0) {
		log_warn_errno("report --html %s: cannot write", path);
		unlink(tmp);
		return -1;
	}
	return 0;
}

int histreport_main(int argc, char **argv)
{
	bool suggest = strcmp(argv[0], "suggest") == 0;
	struct report_args a = {.margin = HISTREPORT_DEFAULT_MARGIN};
	char path[PATH_MAX], err[1024];
	int prc = parse_args(argc, argv, suggest, &a);
	if (prc == -2)
		return 0;
	if (prc < 0)
		return TBWRAP_EXIT_USAGE;
	if (a.history)
		snprintf(path, sizeof(path), "%s", a.history);
	else if (history_default_path(path, sizeof(path)) < 0) {
		log_warn("%s: no history (neither XDG_STATE_HOME nor HOME is set; give one with "
			 "--history FILE)",
			 argv[0]);
		return 1;
	}
	a.f.now_ms = history_now_ms();
	struct history *h;
	if (history_open(&h, path, false, HISTORY_BUSY_MS, err, sizeof(err)) < 0) {
		log_warn("%s", err);
		return 1;
	}
	static struct histreport r;
	int rc = 0;
	if (histreport_collect(h, &a.f, &r, err, sizeof(err)) < 0) {
		log_warn("%s", err);
		history_close(h);
		return 1;
	}
	char *out = suggest  ? histreport_suggest(&r, a.margin)
		    : a.json ? histreport_json(&r, &a.f)
			     : histreport_text(&r, &a.f);
	if (out)
		fputs(out, stdout);
	else
		rc = 1;
	free(out);
	if (a.html) {
		char *page = histreport_html(h, &r, &a.f, err, sizeof(err));
		if (!page) {
			log_warn("%s", err);
			rc = 1;
		} else if (write_file(a.html, page) < 0) {
			rc = 1;
		}
		free(page);
	}
	history_close(h);
	return rc;
}
