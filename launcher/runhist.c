/*
 * A run's history (include/tbwrap/runhist.h): this run's rows out, other runs' usage in.
 *
 * The ledger stays the only record of this run's own usage that budgets are judged by: the
 * history gives only what the other runs of the scope used (ledger_set_others), and a run
 * never reads its own rows back. A history file that a process of the user rewrites can
 * lower or raise the other runs' figures, never this run's own.
 */
#include "tbwrap/runhist.h"
#include "tbwrap/prices.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tbwrap/log.h"
#include "tbwrap/render.h"

static const char *scope_of(const struct cli_options *o)
{
	return o->scope ? o->scope : HISTORY_DEFAULT_SCOPE;
}

/* "24h", "90m", "7d": days from two days on, else the largest unit that divides the window. */
static void window_text(char *buf, size_t len, uint64_t s)
{
	unsigned long long n = (unsigned long long)s;
	if (n % 86400 == 0 && n >= 2 * 86400)
		snprintf(buf, len, "%llud", n / 86400);
	else if (n % 3600 == 0)
		snprintf(buf, len, "%lluh", n / 3600);
	else if (n % 60 == 0)
		snprintf(buf, len, "%llum", n / 60);
	else
		snprintf(buf, len, "%llus", n);
}

static void join_command(char *buf, size_t len, const struct cli_options *o)
{
	size_t off = 0;
	buf[0] = '\0';
	for (int i = 0; i < o->argc && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? " " : "", o->argv[i]);
}

int runhist_prepare(struct runhist *r, const struct cli_options *o, bool dry_run)
{
	char err[1024];
	memset(r, 0, sizeof(*r));
	r->window_s = o->window_s;
	r->has_window = o->window_s > 0;
	snprintf(r->scope, sizeof(r->scope), "%s", scope_of(o));
	if (o->no_history) {
		if (r->has_window || o->estimate_auto || o->history) {
			log_warn("--no-history: %s needs the history (drop --no-history)",
				 r->has_window	    ? "--window"
				 : o->estimate_auto ? "--estimate auto"
						    : "--history");
			return TBWRAP_EXIT_USAGE;
		}
		return 0;
	}
	if (o->history)
		snprintf(r->path, sizeof(r->path), "%s", o->history);
	else if (history_default_path(r->path, sizeof(r->path)) < 0) {
		if (r->has_window) {
			log_warn("--window needs a history: neither XDG_STATE_HOME nor HOME is set "
				 "(give one with --history FILE)");
			return TBWRAP_EXIT_INTERNAL;
		}
		log_warn("warning: no history (neither XDG_STATE_HOME nor HOME is set; give one "
			 "with --history FILE): this run is not recorded");
		return 0;
	}
	if (!getcwd(r->cwd, sizeof(r->cwd)))
		r->cwd[0] = '\0';
	join_command(r->command_line, sizeof(r->command_line), o);
	r->info = (struct history_run_info){
		.scope = r->scope,
		.cwd = r->cwd,
		.command_line = r->command_line,
		.window_s = r->window_s,
		.mode = o->mode,
		.pid = (int)getpid(),
	};
	/* A dry run writes nothing: a history that is not there yet has nothing to say. */
	if (dry_run && access(r->path, F_OK) != 0)
		return 0;
	if (history_open(&r->h, r->path, !dry_run, HISTORY_BUSY_MS, err, sizeof(err)) < 0) {
		if (r->has_window && !dry_run) {
			log_warn("%s; the window's budgets depend on it, nothing was run", err);
			return TBWRAP_EXIT_INTERNAL;
		}
		log_warn("warning: %s; this run goes on %s", err,
			 dry_run ? "without it" : "and is not recorded");
		return 0;
	}
	if (o->estimate_auto) {
		if (history_estimates(r->h, &r->est, err, sizeof(err)) == 0)
			r->has_estimates = true;
		else
			log_warn("warning: %s; --estimate auto uses the fixed estimate", err);
	}
	return 0;
}

/* Other runs' usage of each budget into the ledger. */
static void apply_others(struct runhist *r, struct ledger *l)
{
	ledger_set_others(l, -1, r->others.overall);
	ledger_set_others_usd(l, -1, r->others.overall_pusd);
	uint32_t n = ledger_n_commands(l->h);
	for (uint32_t i = 0; i < n; i++) {
		const char *name = l->h->commands[i].name;
		ledger_set_others(l, (int)i, history_usage_of(&r->others, name));
		ledger_set_others_usd(l, (int)i, history_usd_usage_of(&r->others, name));
	}
}

static int read_others(struct runhist *r, char *err, size_t errlen)
{
	uint64_t now = history_now_ms(), span = r->window_s * 1000;
	return history_window_usage(r->h, r->scope, now > span ? now - span : 0, r->run_id,
				    &r->others, err, errlen);
}

int runhist_start(struct runhist *r, struct ledger *l, const struct cli_options *o)
{
	char err[1024];
	if (!r->h)
		return 0;
	if (r->has_window) {
		/* run_id 0 is no run: every row counts. */
		if (read_others(r, err, sizeof(err)) < 0) {
			log_warn("%s; the window's budgets depend on it, nothing was run", err);
			return TBWRAP_EXIT_INTERNAL;
		}
		apply_others(r, l);
		const struct ledger_budget *b = &l->h->overall;
		uint64_t used = ledger_budget_used(b);
		uint64_t usd = ledger_load(&b->used.pusd) + ledger_load(&b->usd_others);
		if (b->usd_limit != LEDGER_NO_LIMIT && usd >= b->usd_limit) {
			/* The USD window is spent: no agent could make one call. */
			char u[32], lim[32], w[32];
			render_usd(u, sizeof(u), usd);
			render_usd(lim, sizeof(lim), b->usd_limit);
			window_text(w, sizeof(w), r->window_s);
			bool block = o->mode == LEDGER_MODE_BLOCK;
			log_warn("%s overall USD budget of scope %s over the last %s: used %s by "
				 "other "
				 "runs >= limit %s (%s)",
				 block ? "refused:" : "warning:", r->scope, w, u, lim,
				 block ? "block mode: nothing was started"
				       : "warn mode: running anyway");
			if (block) {
				history_close(r->h);
				r->h = NULL;
				return TBWRAP_EXIT_REFUSED;
			}
		}
		/* The test ledger_admit makes: no room for one agent's estimate, or none at all. */
		if (b->limit != LEDGER_NO_LIMIT &&
		    (used >= b->limit || used + o->estimate > b->limit)) {
			char u[32], e[32], lim[32], w[32];
			render_tokens(u, sizeof(u), used);
			render_tokens(e, sizeof(e), o->estimate);
			render_tokens(lim, sizeof(lim), b->limit);
			window_text(w, sizeof(w), r->window_s);
			bool block = o->mode == LEDGER_MODE_BLOCK;
			log_warn("%s overall budget of scope %s over the last %s: used %s by other "
				 "runs + estimate %s > limit %s (%s)",
				 block ? "refused:" : "warning:", r->scope, w, u, e, lim,
				 block ? "block mode: nothing was started"
				       : "warn mode: running anyway");
			if (block) {
				if (history_run_begin(r->h, &r->info, &r->run_id, err,
						      sizeof(err)) == 0)
					history_sync(r->h, r->run_id, l->h, &r->info, true,
						     TBWRAP_EXIT_REFUSED, err, sizeof(err));
				history_close(r->h);
				r->h = NULL;
				return TBWRAP_EXIT_REFUSED;
			}
		}
	}
	if (history_run_begin(r->h, &r->info, &r->run_id, err, sizeof(err)) < 0) {
		if (r->has_window) {
			log_warn("%s; the window's budgets depend on it, nothing was run", err);
			return TBWRAP_EXIT_INTERNAL;
		}
		log_warn("warning: %s; this run is not recorded", err);
		history_close(r->h);
		r->h = NULL;
		return 0;
	}
	r->next_sync_ms = history_now_ms() + HISTORY_SYNC_MS;
	return 0;
}

/* Changes whenever a row of this run would: an agent more, usage, a status, a reservation. */
static uint64_t signature(const struct ledger_header *h)
{
	uint32_t n = ledger_n_instances(h);
	uint64_t sig = n;
	for (uint32_t i = 0; i < n; i++) {
		const struct ledger_instance *in = &h->instances[i];
		sig = sig * 1000003 + ledger_load(&in->used.total);
		sig = sig * 1000003 + ledger_load(&in->reserved);
		sig = sig * 1000003 + ledger_load(&in->used.pusd);
		sig = sig * 1000003 + ledger_load(&in->usd_reserved);
		sig = sig * 31 + ledger_load32(&in->status) + ledger_load32(&in->command);
	}
	return sig;
}

void runhist_tick(void *ctx, struct ledger *l)
{
	struct runhist *r = ctx;
	char err[1024];
	uint64_t now = history_now_ms();
	if (!r->h || now < r->next_sync_ms)
		return;
	r->next_sync_ms = now + HISTORY_SYNC_MS;
	/* Inside the supervisor's loop: a busy history is tried again next time rather than
	 * waited for while agents wait for their writes to be answered. */
	history_set_busy(r->h, HISTORY_BUSY_LOOP_MS);
	uint64_t sig = signature(l->h);
	int rc = 0;
	if (sig != r->last_signature) {
		rc = history_sync(r->h, r->run_id, l->h, &r->info, false, 0, err, sizeof(err));
		if (rc == 0)
			r->last_signature = sig;
	}
	if (rc == 0 && r->has_window) {
		struct history_usage before = r->others;
		rc = read_others(r, err, sizeof(err));
		if (rc == 0)
			apply_others(r, l);
		else
			r->others = before; /* the last figures read stay until a read works */
	}
	if (rc < 0 && !r->warned) {
		r->warned = true;
		log_warn("warning: %s (tried again every %d ms%s)", err, HISTORY_SYNC_MS,
			 r->has_window ? "; the window keeps the other runs' usage last read" : "");
	}
}

void runhist_finish(struct runhist *r, struct ledger *l, int exit_status)
{
	char err[1024];
	if (!r->h)
		return;
	if (!l) {
		/* A dry run: nothing to record. */
		history_close(r->h);
		r->h = NULL;
		return;
	}
	history_set_busy(r->h, HISTORY_BUSY_MS);
	if (history_sync(r->h, r->run_id, l->h, &r->info, true, exit_status, err, sizeof(err)) < 0)
		log_warn("warning: %s: this run's usage is not recorded", err);
	if (r->has_window) {
		char own[32], others[32], w[32], lim[32];
		render_tokens(own, sizeof(own), ledger_load(&l->h->overall.used.total));
		render_tokens(others, sizeof(others), ledger_load(&l->h->overall.others));
		window_text(w, sizeof(w), r->window_s);
		if (l->h->overall.limit == LEDGER_NO_LIMIT)
			snprintf(lim, sizeof(lim), "none");
		else
			render_tokens(lim, sizeof(lim), l->h->overall.limit);
		log_warn("window %s of scope %s: this run %s + other runs %s, overall budget %s", w,
			 r->scope, own, others, lim);
	}
	history_close(r->h);
	r->h = NULL;
}

void runhist_print_dry_run(const struct runhist *r, const struct cli_options *o)
{
	char t[32], w[32];
	if (r->has_window) {
		window_text(w, sizeof(w), r->window_s);
		printf("window: %s, scope %s\n", w, r->scope);
	}
	/* Said when it matters to this run; the default recording goes without a line. */
	if (o->history || r->has_window || o->estimate_auto)
		printf("history: %s\n", r->path);
	if (!o->estimate_auto)
		return;
	render_tokens(t, sizeof(t), o->estimate);
	printf("estimate auto: p75 of the last %d runs of a command (from %d runs on), else %s\n",
	       HISTORY_ESTIMATE_RUNS, HISTORY_ESTIMATE_MIN_RUNS, t);
	/* Every command with a budget, then every other command the history knows. */
	const struct history_estimates *e = r->has_estimates ? &r->est : NULL;
	size_t n = o->n_commands + (e ? e->n : 0);
	for (size_t i = 0; i < n; i++) {
		const char *name =
			i < o->n_commands ? o->command_names[i] : e->names[i - o->n_commands];
		bool dup = false;
		for (size_t j = 0; j < o->n_commands && i >= o->n_commands && !dup; j++)
			dup = strcmp(o->command_names[j], name) == 0;
		if (dup)
			continue;
		unsigned runs;
		uint64_t v = history_estimate_for(e, name, o->estimate, &runs);
		render_tokens(t, sizeof(t), v);
		if (runs >= HISTORY_ESTIMATE_MIN_RUNS)
			printf("estimate %s: %s (%llu tokens, p75 of %u runs)\n", name, t,
			       (unsigned long long)v, runs);
		else
			printf("estimate %s: %s (%llu tokens, the fixed estimate: %u run%s in the "
			       "history)\n",
			       name, t, (unsigned long long)v, runs, runs == 1 ? "" : "s");
	}
}
