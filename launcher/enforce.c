/*
 * Budgets at run time: threshold warnings (both modes), block mode's stops and its request
 * barrier, and the safety net against an agent whose usage tbwrap cannot read.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "sup.h"
#include "tbwrap/log.h"
#include "tbwrap/render.h"
#include "tbwrap/threshold.h"

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

static uint64_t instance_pusd(const struct sup *s, const struct agent *a)
{
	if (a->inst < 0 || (uint32_t)a->inst >= ledger_n_instances(s->l->h))
		return 0;
	return ledger_load(&s->l->h->instances[a->inst].used.pusd);
}

/* Whether any budget of the session is in dollars. */
static bool has_usd_budget(const struct sup *s)
{
	const struct ledger_header *h = s->l->h;
	if (ledger_has_limit(&h->overall, AMOUNT_USD))
		return true;
	uint32_t nc = ledger_n_commands(h);
	for (uint32_t i = 0; i < nc; i++)
		if (ledger_has_limit(&h->commands[i], AMOUNT_USD))
			return true;
	return false;
}

static const char *command_name(const struct sup *s, const struct agent *a)
{
	const struct ledger_header *h = s->l->h;
	if (a->inst < 0 || (uint32_t)a->inst >= ledger_n_instances(h))
		return "?";
	uint32_t cmd = h->instances[a->inst].command;
	return cmd < ledger_n_commands(h) ? h->commands[cmd].name : "?";
}

/*
 * A stop that leaves the agent's user what the CLI writes: SIGINT first (Claude Code then writes
 * its result object, subtype error_during_execution, and exits), SIGTERM after a grace, SIGKILL
 * after another (the tick escalates). From the first signal on no request of it leaves.
 */
static const int stop_signals[] = {SIGINT, SIGTERM, SIGKILL};

static void set_reservation(struct sup *s, struct agent *a);

/* The next signal of a stop, when it is due. */
static void stop_step(struct agent *a, uint64_t t)
{
	size_t n = sizeof(stop_signals) / sizeof(stop_signals[0]);
	if (!a->stopping || (size_t)a->kill_step >= n)
		return;
	bool due = t >= a->kill_at_ms;
	/* Nothing in flight (no request seen: nothing can still be billed) goes at once. */
	if (a->kill_step == 0 && !due)
		due = a->book.n_open == 0 || (req_settled(&a->book) && t >= a->quiet_until_ms);
	if (!due)
		return;
	kill(a->pid, stop_signals[a->kill_step++]);
	a->kill_at_ms = t + SUPERVISOR_GRACE_MS;
}

static void begin_stop(struct sup *s, struct agent *a, const char *note)
{
	uint64_t t = sup_now_ms();
	/* No request leaves from now on. The first signal waits until the calls already in
	 * flight (a subagent's, or the one whose usage is still being written) have shown their
	 * usage: they are billed whatever happens, and interrupted they never reach a
	 * transcript. The tick sends it (SUP_SETTLE_MS after the last usage, SUP_DRAIN_MS at
	 * most). */
	a->stopping = true;
	a->kill_step = 0;
	a->kill_at_ms = t + SUP_DRAIN_MS;
	a->quiet_until_ms = t + SUP_SETTLE_MS;
	/* Through ledger_settle: it counts the stop on the agent's budgets (only on the first
	 * STOPPED verdict) and releases its reservation now. */
	ledger_mark(s->l, a->inst, 0, note);
	ledger_settle(s->l, a->inst, LEDGER_INST_STOPPED, -1);
	/* Its calls in flight are billed all the same: what is predicted for them stays held. */
	set_reservation(s, a);
	if (a->pid == s->cfg->child)
		s->child_stopped = true;
	/* Before any signal: Claude Code exits 0 after a SIGINT, and a stopped agent must not
	 * look like one that finished. The preload library exits TBWRAP_EXIT_STOPPED instead. */
	if (a->conn) {
		struct proto_msg m = {.magic = PROTO_MAGIC, .type = PROTO_STOPPED};
		if (send(a->conn->w.fd, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			log_warn("agent %d was not told of its stop: %s (it may exit 0)",
				 (int)a->pid, strerror(errno));
	}
	stop_step(a, t);
}

void enforce_stop(struct sup *s, struct agent *a, const struct ledger_refusal *why)
{
	if (a->stopping)
		return;
	char used[32], lim[32], res[32], note[256];
	render_amount(used, sizeof(used), why->unit, why->used);
	render_amount(lim, sizeof(lim), why->unit, why->limit);
	render_amount(res, sizeof(res), why->unit, why->reserved);
	const char *kind = why->unit == AMOUNT_USD ? " USD" : "";
	sup_clear_live(s);
	if (why->is_overall)
		snprintf(note, sizeof(note), "overall%s budget exceeded, used %s/%s", kind, used,
			 lim);
	else if (why->used <= why->limit)
		/* Its prompt came on stdin: bound to a command with no room for it. */
		snprintf(note, sizeof(note),
			 "command%s budget %s has no room for it, used %s + reserved %s of %s",
			 kind, why->name, used, res, lim);
	else
		snprintf(note, sizeof(note), "command%s budget %s exceeded, used %s/%s", kind,
			 why->name, used, lim);
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

/* Says each threshold budget b has newly crossed in unit, once per run (common/threshold.c
 * decides which, the ledger remembers what was said). */
static void warn_thresholds(struct sup *s, struct ledger_budget *b, enum amount_unit unit)
{
	uint64_t limit = ledger_budget_limit(b, unit);
	if (limit == LEDGER_NO_LIMIT || limit == 0)
		return;
	uint64_t used = ledger_budget_used_in(b, unit);
	unsigned say = ledger_claim_thresholds(b, unit, threshold_crossed(used, limit));
	for (unsigned bit = 1; bit & THRESHOLD_ALL; bit <<= 1) {
		if (!(say & bit))
			continue;
		char u[32], lm[32];
		render_amount(u, sizeof(u), unit, used);
		render_amount(lm, sizeof(lm), unit, limit);
		sup_clear_live(s);
		const char *what = b->name[0] ? b->name : "overall";
		const char *kind = unit == AMOUNT_USD ? " USD" : "";
		if (bit == THRESHOLD_EXCEEDED)
			log_warn("warning: %s%s budget exceeded: %s/%s%s", what, kind, u, lm,
				 is_block(s) ? "" : " (warn mode: nothing is stopped)");
		else
			log_warn("warning: %s%s budget at %u%%: %s/%s", what, kind,
				 threshold_percent(bit), u, lm);
	}
}

void enforce_check(struct sup *s)
{
	struct ledger_header *h = s->l->h;
	uint32_t nc = ledger_n_commands(h);
	for (int u = 0; u < AMOUNT_NUNITS; u++) {
		warn_thresholds(s, &h->overall, (enum amount_unit)u);
		for (uint32_t i = 0; i < nc; i++)
			warn_thresholds(s, &h->commands[i], (enum amount_unit)u);
	}
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

/*
 * The safety net: an agent that has had SUP_BLIND_ANSWERED API calls answered and has no usage
 * metered at all writes it where tbwrap does not look (an output format or transcript place of
 * a Claude Code version tbwrap does not know). Never silently: block mode stops it, warn mode
 * says so once and marks it unmetered. Returns true when the agent was stopped.
 */
static bool blind(struct sup *s, struct agent *a)
{
	if (!a->metered || a->usage_at_end || a->answered < SUP_BLIND_ANSWERED ||
	    instance_total(s, a) != 0)
		return false;
	char why[LEDGER_NOTE_LEN];
	snprintf(why, sizeof(why),
		 "no usage metered after %llu API calls: tbwrap cannot read where this agent "
		 "writes it",
		 (unsigned long long)a->answered);
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

/* ---- the request book's view of the meter --------------------------------------------- */

static bool book_usage(void *ctx, uint64_t id, struct meter_usage *out)
{
	const struct agent *a = ctx;
	return a->core && meter_message_usage(a->core, id, out);
}

struct book_ctx {
	struct sup *s;
	struct agent *a;
};

static bool env_usage(void *ctx, uint64_t id, struct meter_usage *out)
{
	return book_usage(((struct book_ctx *)ctx)->a, id, out);
}

/* A prediction in both units: its tokens as --count counts them; its price at the model of call
 * model_ref (the conversation's latest, or the agent's first), a 1-hour cache write when that
 * call wrote one; with no call known, the table's highest rates (never less than it may be). */
static struct amount env_cost(void *ctx, const struct meter_usage *u, uint64_t model_ref)
{
	const struct book_ctx *b = ctx;
	const char *model = "";
	uint64_t ref_1h = 0;
	if (model_ref && b->a->core)
		meter_message_model(b->a->core, model_ref, &ref_1h, &model);
	struct amount c = {{meter_usage_total(u, b->s->l->h->weights), 0}};
	if (b->s->cfg->prices)
		c.v[AMOUNT_USD] =
			prices_cost(b->s->cfg->prices, model, u,
				    ref_1h ? u->n[METER_CACHE_CREATION] : 0, prices_today(), NULL);
	return c;
}

/* What a call has cost so far, in both units. */
static struct amount env_call_cost(void *ctx, uint64_t id)
{
	const struct book_ctx *b = ctx;
	struct meter_usage u;
	struct amount c = {{0, 0}};
	if (!b->a->core || !meter_message_usage(b->a->core, id, &u))
		return c;
	c.v[AMOUNT_TOKENS] = meter_usage_total(&u, b->s->l->h->weights);
	c.v[AMOUNT_USD] = meter_message_pusd(b->a->core, id);
	return c;
}

#define BOOK_ENV(s, a)                                                                             \
	struct book_ctx bctx_ = {(s), (a)};                                                        \
	const struct req_env env = {env_usage, env_cost, env_call_cost, &bctx_}

/* Tool-result bytes per conversation: the largest count among its sources (stdout and the
 * transcript both carry the main conversation's). */
static void conv_tool_bytes(const struct agent *a, uint64_t *out)
{
	memset(out, 0, sizeof(out[0]) * REQ_MAX_CONV);
	for (int i = 0; i < a->n_sources; i++) {
		const struct source *src = &a->sources[i];
		if (src->conv >= 0 && src->conv < REQ_MAX_CONV &&
		    src->s.tool_bytes > out[src->conv])
			out[src->conv] = src->s.tool_bytes;
	}
}

static bool held_by_book(const void *ctx, uint64_t id)
{
	return req_holds(ctx, id);
}

/* What the agent's calls that never showed their final usage would add at its largest output
 * (meter_unfinal), in both units; *calls of them (calls may be NULL). Those whose requests
 * still hold their prediction are left out: req_reserved has them. */
static struct amount unfinal_gap(const struct sup *s, const struct agent *a, uint64_t *calls)
{
	struct meter_unfinal u = {0};
	if (a->core)
		meter_unfinal(a->core, held_by_book, &a->book, &u);
	if (calls)
		*calls = u.calls;
	struct meter_usage more = {{0}};
	more.n[METER_OUTPUT] = u.gap;
	return (struct amount){{meter_usage_total(&more, s->l->h->weights), u.gap_pusd}};
}

/* What the ledger holds for the agent: in block mode its requests in flight (the launch
 * estimate until the first) and what its calls without a final usage may still add; in warn
 * mode the estimate, less the usage that has come in. */
static void set_reservation(struct sup *s, struct agent *a)
{
	if (a->inst < 0 || a->ended)
		return;
	struct amount want;
	if (is_block(s)) {
		BOOK_ENV(s, a);
		want = amount_add(req_reserved(&a->book, &env), unfinal_gap(s, a, NULL));
	} else {
		struct amount used = {{instance_total(s, a), instance_pusd(s, a)}};
		want = amount_sub(a->book.launch, used);
	}
	ledger_set_reserved(s->l, a->inst, want);
}

static void judge_next_call(struct sup *s, struct agent *a, struct source *src);

struct amount enforce_launch_estimate(const struct sup *s, int cmd)
{
	/* --estimate's tokens (with --estimate auto: the p75 of the command's last runs,
	 * history_estimate_for), priced as input at the table's highest input rate. */
	uint64_t tokens = s->l->h->estimate;
	if (s->cfg->estimates && cmd >= 0 && (uint32_t)cmd < ledger_n_commands(s->l->h))
		tokens = history_estimate_for(s->cfg->estimates, s->l->h->commands[cmd].name,
					      tokens, NULL);
	struct meter_usage as_input = {{0}};
	as_input.n[METER_INPUT] = tokens;
	struct amount est = {{tokens, 0}};
	if (s->cfg->prices)
		est.v[AMOUNT_USD] = prices_cost(s->cfg->prices, "", &as_input, 0, 0, NULL);
	struct amount seen = s->first_call_any;
	if (cmd >= 0 && cmd < LEDGER_MAX_COMMANDS && !amount_is_zero(s->first_call[cmd]))
		seen = s->first_call[cmd];
	return amount_max(seen, est);
}

/* The agent's first call, as far as it has shown its usage: the model of the next agents'. */
static void learn_first_call(struct sup *s, struct agent *a)
{
	if (!a->book.first_id || a->inst < 0)
		return;
	struct book_ctx ctx = {s, a};
	struct amount cost = env_call_cost(&ctx, a->book.first_id);
	if (amount_is_zero(cost))
		return;
	uint32_t cmd = s->l->h->instances[a->inst].command;
	if (cmd < LEDGER_MAX_COMMANDS)
		s->first_call[cmd] = amount_max(s->first_call[cmd], cost);
	s->first_call_any = amount_max(s->first_call_any, cost);
}

uint64_t enforce_price(void *ctx, const char *model, const struct meter_usage *u, uint64_t cache_1h,
		       bool is_sum)
{
	struct pricing *p = ctx;
	/* Nothing used costs nothing, whatever its model (the CLI's own "<synthetic>" messages). */
	if (!p->table || meter_usage_total(u, NULL) == 0)
		return 0;
	bool known = true;
	uint64_t c = is_sum ? prices_cost_sum(p->table, model, u, prices_today(), &known)
			    : prices_cost(p->table, model, u, cache_1h, prices_today(), &known);
	const char *name = model && *model ? model : "(not named)";
	/* Each model the table lacks, once: enforce.c acts on the latest (act_on_unpriced). */
	if (!known && strncmp(p->model, name, sizeof(p->model)) != 0) {
		p->unpriced = true;
		p->acted = false;
		snprintf(p->model, sizeof(p->model), "%s", name);
	}
	return c;
}

/* A model the price table lacks, once per agent: block mode with a USD budget stops the agent
 * (no dollar budget can hold calls of an unknown price); otherwise one warning per model, and
 * its calls are priced at the table's highest rates. */
static void act_on_unpriced(struct sup *s, struct agent *a)
{
	if (!a->pricing.unpriced || a->pricing.acted)
		return;
	a->pricing.acted = true;
	const char *origin = s->cfg->prices ? s->cfg->prices->origin : "none";
	char why[LEDGER_NOTE_LEN];
	if (is_block(s) && has_usd_budget(s)) {
		snprintf(
			why, sizeof(why),
			"model %.40s is not in the price table: give its prices with --prices FILE",
			a->pricing.model);
		if (!a->stopping) {
			sup_clear_live(s);
			log_warn("stopping agent %d (%s): model %s is not in the price table "
				 "(%s): a USD budget cannot hold calls of an unknown price; give "
				 "its prices with --prices FILE (block mode)",
				 (int)a->pid, command_name(s, a), a->pricing.model, origin);
			begin_stop(s, a, why);
		}
		return;
	}
	for (unsigned i = 0; i < s->n_unpriced; i++)
		if (!strcmp(s->unpriced[i], a->pricing.model))
			return;
	if (s->n_unpriced < sizeof(s->unpriced) / sizeof(s->unpriced[0]))
		snprintf(s->unpriced[s->n_unpriced++], sizeof(s->unpriced[0]), "%s",
			 a->pricing.model);
	sup_clear_live(s);
	log_warn("warning: model %s is not in the price table (%s): its calls are priced at the "
		 "table's highest rates; give its prices with --prices FILE",
		 a->pricing.model, origin);
}

void enforce_record(struct sup *s, struct agent *a, const struct meter_usage *delta,
		    uint64_t pusd_before)
{
	uint64_t now = a->core ? a->core->pusd_total : pusd_before;
	ledger_record_delta(s->l, a->inst, delta, now > pusd_before ? now - pusd_before : 0);
	if (!a->core)
		return;
	ledger_set_model(s->l, a->inst, meter_last_model(a->core), a->pricing.unpriced);
	act_on_unpriced(s, a);
}

void enforce_usage_changed(struct sup *s, struct agent *a, struct source *src)
{
	if (a->stopping)
		a->quiet_until_ms = sup_now_ms() + SUP_SETTLE_MS;
	if (a->core)
		ledger_publish_meter(s->l, a->inst, a->core);
	if (src) {
		struct meter_fresh fresh[METER_FRESH];
		unsigned n = meter_take_calls(&src->s, fresh, METER_FRESH);
		for (unsigned i = 0; i < n; i++) {
			if (fresh[i].is_new)
				req_message(&a->book, src->conv, fresh[i].id_hash,
					    fresh[i].tool_bytes);
			if (src->kind == SRC_TRANSCRIPT)
				req_final(&a->book, fresh[i].id_hash);
		}
	}
	learn_first_call(s, a);
	set_reservation(s, a);
	if (src)
		judge_next_call(s, a, src);
}

static void warn_unfinal(struct sup *s, const struct agent *a, uint64_t calls, struct amount gap)
{
	bool is_one = calls == 1;
	char held[160] = "";
	if (gap.v[AMOUNT_TOKENS] || gap.v[AMOUNT_USD]) {
		char t[32], d[32] = "";
		render_tokens(t, sizeof(t), gap.v[AMOUNT_TOKENS]);
		if (s->cfg->prices)
			render_usd(d, sizeof(d), gap.v[AMOUNT_USD]);
		snprintf(held, sizeof(held),
			 "; at the agent's largest output: %s tokens%s%s%s more%s", t,
			 d[0] ? " (" : "", d, d[0] ? ")" : "",
			 is_block(s) ? ", held against its budgets" : "");
	}
	sup_clear_live(s);
	log_warn(
		"warning: agent %d (%s): %llu API call%s with no final usage in anything the CLI "
		"wrote (no stop_reason, no result after %s): counted at %s shown output, which may "
		"be low%s",
		(int)a->pid, command_name(s, a), (unsigned long long)calls, is_one ? "" : "s",
		is_one ? "it" : "them", is_one ? "its" : "their", held);
}

void enforce_agent_end(struct sup *s, struct agent *a)
{
	BOOK_ENV(s, a);
	/* Called after ledger_settle. Requests whose call was never seen, with no result line to
	 * sum them up (Claude Code 1.0.x's side calls, when it was stopped): billed, reported
	 * nowhere. Their predictions stay held, so that the budget still counts them. */
	uint64_t n = 0;
	struct amount held = {{0, 0}};
	if (is_block(s) && a->core && a->core->results == 0)
		held = req_unreported(&a->book, &env, &n);
	req_close_all(&a->book, &env);
	/* Calls the CLI wrote only the first snapshot of (meter_unfinal): their output is counted
	 * as shown; block mode holds what they may add. */
	uint64_t unfinal = 0;
	struct amount gap = unfinal_gap(s, a, &unfinal);
	if (unfinal)
		warn_unfinal(s, a, unfinal, gap);
	if (n || unfinal)
		ledger_hold_unreported(s->l, a->inst, n, unfinal,
				       is_block(s) ? amount_add(held, gap) : held);
	/* Block mode counts the requests admitted; warn mode, those started. */
	uint64_t made = is_block(s) ? a->book.requests : a->requests;
	ledger_note_requests(s->l, a->inst, made, a->book.max_under);
	/* The safety net's last word: an agent that ended before SUP_BLIND_ANSWERED calls were
	 * answered, having made calls and shown no usage at all, is no 0 either. */
	if (a->metered && made > 0 && a->inst >= 0 && instance_total(s, a) == 0 && a->core &&
	    a->core->results == 0 &&
	    !(ledger_load32(&s->l->h->instances[a->inst].flags) & LEDGER_F_UNMETERED)) {
		char why[LEDGER_NOTE_LEN];
		snprintf(why, sizeof(why),
			 "it made %llu API call%s and ended with no usage metered: tbwrap cannot "
			 "read where this agent writes it",
			 (unsigned long long)made, made == 1 ? "" : "s");
		sup_clear_live(s);
		log_warn("WARNING: agent %d (%s) was NOT metered: %s", (int)a->pid,
			 command_name(s, a), why);
		ledger_mark(s->l, a->inst, LEDGER_F_UNMETERED, why);
	}
}

/* ---- per-request admission -------------------------------------------------------------- */

/* One line: which budget, used, reserved and predicted; then the stop. early: the request was
 * not made yet (its call asked for a tool, the next call's prediction does not fit). */
static void stop_for_request(struct sup *s, struct agent *a, const struct ledger_refusal *why,
			     struct amount cost, bool early)
{
	char used[32], lim[32], res[32], pr[32], note[320], budget[96];
	render_amount(used, sizeof(used), why->unit, why->used);
	render_amount(lim, sizeof(lim), why->unit, why->limit);
	render_amount(res, sizeof(res), why->unit, why->reserved);
	render_amount(pr, sizeof(pr), why->unit, cost.v[why->unit]);
	const char *kind = why->unit == AMOUNT_USD ? " USD" : "";
	if (why->is_overall)
		snprintf(budget, sizeof(budget), "the overall%s budget", kind);
	else
		snprintf(budget, sizeof(budget), "command%s budget %s", kind, why->name);
	snprintf(note, sizeof(note),
		 "its next request %s %s: used %s + reserved %s + predicted %s > limit %s",
		 early ? "would not fit" : "does not fit", budget, used, res, pr, lim);
	sup_clear_live(s);
	log_warn("stopping agent %d (%s): %s (block mode)", (int)a->pid, command_name(s, a), note);
	ledger_note_refused(s->l, a->inst, cost);
	begin_stop(s, a, note);
}

/*
 * A call that asked for a tool will be followed by another: when even the least that call will
 * cost (without the tool's results, which are still to come) does not fit, a text or json mode
 * agent is stopped now, while the tool runs. Measured with Claude Code 2.1.197 and 2.1.332: in
 * json mode an interrupt while the tool runs still gets the result object written, one while a
 * request waits for its first answer gets none; in stream-json mode it is the other way round,
 * so a stream-json agent is stopped at the request that does not fit.
 */
static void judge_next_call(struct sup *s, struct agent *a, struct source *src)
{
	if (!is_block(s) || a->stopping || a->stdout_stream || !src->s.tool_use_id ||
	    src->s.tool_use_id == src->preempt_id || src->conv < 0 || src->conv >= REQ_MAX_CONV ||
	    a->book.conv[src->conv].last_id != src->s.tool_use_id)
		return;
	src->preempt_id = src->s.tool_use_id;
	BOOK_ENV(s, a);
	uint64_t tools[REQ_MAX_CONV];
	struct amount others;
	struct meter_usage pred;
	conv_tool_bytes(a, tools);
	if (!req_predict_next(&a->book, src->conv, tools, &env, &pred, &others))
		return;
	struct amount cost = env_cost(&bctx_, &pred, req_model_ref(&a->book, src->conv));
	struct ledger_refusal why;
	if (a->inst >= 0 &&
	    !ledger_request_fits(s->l, a->inst, amount_add(others, cost), cost, &why))
		stop_for_request(s, a, &why, cost, true);
}

/* A request may go: predicted, admitted against the budgets (block mode), booked. Returns the
 * answer: 0 (it goes), or EPERM when the agent is stopping (refused: the stop began here). */
static int admit_request(struct sup *s, struct agent *a, uint64_t sock)
{
	if (a->stopping)
		return EPERM;
	if (!blind(s, a) && !is_block(s))
		return 0;
	if (a->stopping)
		return EPERM;
	BOOK_ENV(s, a);
	uint64_t tools[REQ_MAX_CONV];
	struct meter_usage pred;
	int conv;
	conv_tool_bytes(a, tools);
	req_predict(&a->book, sock, tools, &env, &pred, &conv);
	struct amount cost = env_cost(&bctx_, &pred, req_model_ref(&a->book, conv));
	/* What the agent would hold: its requests in flight, and this one. */
	struct amount others = {{0}};
	if (!a->book.launch_pending)
		others = req_reserved(&a->book, &env);
	struct amount want = amount_add(others, cost);
	struct ledger_refusal why;
	if (a->inst >= 0 && !ledger_admit_request(s->l, a->inst, want, cost, &why)) {
		stop_for_request(s, a, &why, cost, false);
		return EPERM;
	}
	if (!req_start(&a->book, sock, &pred, conv)) {
		/* More requests in flight than the book follows: none of them can be judged. */
		enforce_stop_blind(s, a, "more API requests in flight at once than tbwrap follows");
		return EPERM;
	}
	set_reservation(s, a);
	ledger_note_requests(s->l, a->inst, a->book.requests, a->book.max_under);
	return 0;
}

void enforce_release(struct sup *s, struct agent *a)
{
	uint64_t t = sup_now_ms();
	/* They wait for the calls in flight to show their usage, so that the prediction starts
	 * from it (a subagent's first call from the agent's first), SUP_HOLD_MS at most. */
	bool answered = !req_unanswered(&a->book);
	for (int i = 0; i < a->n_held;) {
		struct held_request h = a->held[i];
		if (!answered && t < h.until_ms && !a->stopping) {
			i++;
			continue;
		}
		memmove(&a->held[i], &a->held[i + 1],
			sizeof(a->held[0]) * (size_t)(a->n_held - i - 1));
		a->n_held--;
		int answer = a->stopping ? EPERM : admit_request(s, a, h.sock);
		if (a->stopping)
			notify_swallow(s, h.lfd, h.id, h.len);
		else
			notify_respond(s, h.lfd, h.id, answer);
	}
}

/*
 * Block mode's request barrier. Claude Code in text and json mode writes a call's usage to its
 * transcript only when the next call has been sent (measured: the transcript write follows the
 * request by about 30 ms when the tool was quick), so a budget crossed by call k would be
 * noticed only after call k+1 went out. A new request therefore waits while a call in flight has
 * not shown its usage - until a write to one of the agent's metered sources (fed first, so its
 * usage counts) has shown it, or SUP_HOLD_MS - and is then predicted and admitted. In stream-json
 * mode usage arrives during each call, so requests do not wait. Warn mode only counts requests (for
 * the safety net).
 */
int enforce_request(struct sup *s, struct agent *a, int lfd, uint64_t id, uint64_t sock,
		    int64_t len)
{
	a->requests++;
	if (a->stopping)
		return EPERM;
	if (is_block(s) && (req_unanswered(&a->book) || a->n_held > 0) &&
	    a->n_held < REQ_MAX_OPEN) {
		a->held[a->n_held++] =
			(struct held_request){.lfd = lfd,
					      .id = id,
					      .sock = sock,
					      .len = len,
					      .until_ms = sup_now_ms() + SUP_HOLD_MS};
		return -1;
	}
	return admit_request(s, a, sock);
}

void enforce_tick(struct sup *s)
{
	uint64_t t = sup_now_ms();
	for (int i = 0; i < s->n_agents; i++) {
		struct agent *a = &s->agents[i];
		if (!a->used || a->ended)
			continue;
		if (a->n_held)
			enforce_release(s, a);
		stop_step(a, t);
	}
	enforce_check(s);
}
