/*
 * Budgets at run time: threshold warnings (both modes), block mode's stops and its request
 * barrier, and the safety net against an agent whose usage tbwrap cannot read.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "sup.h"
#include "tbwrap/log.h"
#include "tbwrap/render.h"

static bool is_block(const struct sup *s)
{
	return s->l->h->mode == LEDGER_MODE_BLOCK;
}

static uint64_t instance_total(const struct sup *s, const struct agent *a)
{
	if (a->inst < 0 || (uint32_t)a->inst >= ledger_n_instances(s->l->h))
		return 0;
	return ledger_load(&s->l->h->instances[a->inst].used.total);
}

static const char *command_name(const struct sup *s, const struct agent *a)
{
	const struct ledger_header *h = s->l->h;
	if (a->inst < 0 || (uint32_t)a->inst >= ledger_n_instances(h))
		return "?";
	uint32_t cmd = h->instances[a->inst].command;
	return cmd < ledger_n_commands(h) ? h->commands[cmd].name : "?";
}

/* The first signal of a stop; the tick escalates to SIGKILL after the grace. */
static void begin_stop(struct sup *s, struct agent *a, const char *note)
{
	a->stopping = true;
	a->kill_step = 0;
	a->kill_at_ms = sup_now_ms() + SUPERVISOR_GRACE_MS;
	/* Through ledger_settle: it counts the stop on the agent's budgets (only on the first
	 * STOPPED verdict) and releases its reservation now. */
	ledger_mark(s->l, a->inst, 0, note);
	ledger_settle(s->l, a->inst, LEDGER_INST_STOPPED, -1);
	if (a->pid == s->cfg->child)
		s->child_stopped = true;
	kill(a->pid, SIGTERM);
}

void enforce_stop(struct sup *s, struct agent *a, const struct ledger_refusal *why)
{
	if (a->stopping)
		return;
	char used[32], lim[32], res[32], note[256];
	render_tokens(used, sizeof(used), why->used);
	render_tokens(lim, sizeof(lim), why->limit);
	render_tokens(res, sizeof(res), why->reserved);
	sup_clear_live(s);
	if (why->is_overall)
		snprintf(note, sizeof(note), "overall budget exceeded, used %s/%s", used, lim);
	else if (why->used <= why->limit)
		/* Its prompt came on stdin: bound to a command with no room for it. */
		snprintf(note, sizeof(note),
			 "command budget %s has no room for it, used %s + reserved %s of %s",
			 why->name, used, res, lim);
	else
		snprintf(note, sizeof(note), "command budget %s exceeded, used %s/%s", why->name,
			 used, lim);
	log_warn("stopping agent %d (%s): %s (block mode)", (int)a->pid, command_name(s, a), note);
	begin_stop(s, a, note);
}

void enforce_stop_blind(struct sup *s, struct agent *a, const char *why)
{
	if (a->stopping)
		return;
	sup_clear_live(s);
	log_warn("stopping agent %d (%s): %s (block mode)", (int)a->pid, command_name(s, a), why);
	ledger_mark(s->l, a->inst, LEDGER_F_UNMETERED, why);
	begin_stop(s, a, why);
}

static void warn_thresholds(struct sup *s, struct ledger_budget *b)
{
	static const unsigned pct[] = {70, 90, 100};
	uint64_t limit = b->limit;
	if (limit == LEDGER_NO_LIMIT || limit == 0)
		return;
	uint64_t used = ledger_load(&b->used.total);
	for (unsigned i = 0; i < 3; i++) {
		/* 100 % means exceeded (used > limit), like block mode's stop. */
		bool crossed = pct[i] == 100 ? used > limit
					     : (unsigned __int128)used * 100 >=
						       (unsigned __int128)limit * pct[i];
		if (!crossed || (b->warned & (1u << i)))
			continue;
		__atomic_or_fetch(&b->warned, 1u << i, __ATOMIC_RELAXED);
		char u[32], lm[32];
		render_tokens(u, sizeof(u), used);
		render_tokens(lm, sizeof(lm), limit);
		sup_clear_live(s);
		const char *what = b->name[0] ? b->name : "overall";
		if (pct[i] == 100)
			log_warn("warning: %s budget exceeded: %s/%s%s", what, u, lm,
				 is_block(s) ? "" : " (warn mode: nothing is stopped)");
		else
			log_warn("warning: %s budget at %u%%: %s/%s", what, pct[i], u, lm);
	}
}

void enforce_check(struct sup *s)
{
	struct ledger_header *h = s->l->h;
	warn_thresholds(s, &h->overall);
	uint32_t nc = ledger_n_commands(h);
	for (uint32_t i = 0; i < nc; i++)
		warn_thresholds(s, &h->commands[i]);
	if (!is_block(s))
		return;
	for (int i = 0; i < s->n_agents; i++) {
		struct agent *a = &s->agents[i];
		struct ledger_refusal why;
		if (a->used && !a->ended && !a->stopping && a->inst >= 0 &&
		    ledger_over_limit(s->l, a->inst, &why))
			enforce_stop(s, a, &why);
	}
}

void enforce_usage_changed(struct sup *s, struct agent *a)
{
	if (a->core)
		ledger_publish_meter(s->l, a->inst, a->core);
}

/*
 * The safety net: an agent that has started SUP_BLIND_REQUESTS API requests and has no usage
 * metered at all writes it where tbwrap does not look (an output format or transcript place of
 * a Claude Code version tbwrap does not know). Never silently: block mode stops it, warn mode
 * says so once and marks it unmetered. Returns true when the agent was stopped.
 */
static bool blind(struct sup *s, struct agent *a)
{
	if (!a->metered || a->usage_at_end || a->requests < SUP_BLIND_REQUESTS ||
	    instance_total(s, a) != 0)
		return false;
	char why[LEDGER_NOTE_LEN];
	snprintf(why, sizeof(why),
		 "no usage metered after %llu API requests: tbwrap cannot read where this agent "
		 "writes it",
		 (unsigned long long)a->requests);
	if (is_block(s)) {
		enforce_stop_blind(s, a, why);
		return true;
	}
	if (!a->warned_blind) {
		a->warned_blind = true;
		sup_clear_live(s);
		log_warn("WARNING: agent %d (%s) is NOT metered: %s (warn mode)", (int)a->pid,
			 command_name(s, a), why);
		ledger_mark(s->l, a->inst, LEDGER_F_UNMETERED, why);
	}
	return false;
}

void enforce_release(struct sup *s, struct agent *a)
{
	if (!a->held)
		return;
	a->held = false;
	struct ledger_refusal why;
	if (!a->stopping && a->inst >= 0 && ledger_over_limit(s->l, a->inst, &why))
		enforce_stop(s, a, &why);
	if (!a->stopping)
		blind(s, a);
	notify_respond(s, a->held_lfd, a->held_id, a->stopping ? EPERM : 0);
	a->usage_at_request = instance_total(s, a);
}

void enforce_release_on_usage(struct sup *s)
{
	for (int i = 0; i < s->n_agents; i++) {
		struct agent *a = &s->agents[i];
		if (a->used && !a->ended && a->held && instance_total(s, a) != a->usage_at_request)
			enforce_release(s, a);
	}
}

/*
 * Block mode's request barrier. Claude Code in text and json mode writes a call's usage to its
 * transcript only when the next call has been sent (measured: the transcript write follows the
 * request by about 30 ms), so a budget crossed by call k would be noticed only after call k+1
 * went out. When a new request starts (a socket write after SUP_REQUEST_GAP_MS of socket
 * silence) and no usage has arrived since the previous one started, the request waits - for the
 * next write to one of the agent's metered sources (fed first, so its usage counts) or
 * SUP_HOLD_MS - and is then refused if that usage crossed a budget. In stream-json mode usage
 * arrives during each call, so requests do not wait. Warn mode only counts requests (for the
 * safety net).
 */
bool enforce_hold_request(struct sup *s, struct agent *a, int lfd, uint64_t id)
{
	uint64_t t = sup_now_ms();
	bool is_new = t - a->last_sock_ms > SUP_REQUEST_GAP_MS;
	a->last_sock_ms = t;
	if (!is_new || a->held)
		return false;
	a->requests++;
	if (!is_block(s)) {
		blind(s, a);
		return false;
	}
	uint64_t total = instance_total(s, a);
	if (a->had_request && total == a->usage_at_request) {
		a->held = true;
		a->held_lfd = lfd;
		a->held_id = id;
		a->held_until_ms = t + SUP_HOLD_MS;
		return true;
	}
	a->had_request = true;
	a->usage_at_request = total;
	return false;
}

void enforce_tick(struct sup *s)
{
	uint64_t t = sup_now_ms();
	for (int i = 0; i < s->n_agents; i++) {
		struct agent *a = &s->agents[i];
		if (!a->used || a->ended)
			continue;
		if (a->held && t >= a->held_until_ms)
			enforce_release(s, a);
		if (a->stopping && t >= a->kill_at_ms && a->kill_step == 0) {
			kill(a->pid, SIGKILL);
			a->kill_step = 1;
			a->kill_at_ms = UINT64_MAX;
		}
	}
	enforce_check(s);
	enforce_release_on_usage(s);
}
