/*
 * Rendering of budgets and usage for people. Follows the seed's visualisation (20-cell bar of
 * '█'/'░', green/yellow/red, K/M token counts) with two corrections: the printed percent is the
 * real one instead of being capped at 100 % (an overrun must be visible), and it is rounded down
 * so that a bar never claims 70 % or 100 % before the budget is really there.
 *
 * The ledger may be live: counters are read with atomic loads, names are bounded by their field
 * size (a torn or corrupt segment must not make us read past it), indexes are range-checked.
 */
#include "tbwrap/render.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tbwrap/log.h"
#include "tbwrap/threshold.h"

#define CELL_FULL "\u2588"  /* █ */
#define CELL_EMPTY "\u2591" /* ░ */

void render_buf_printf(struct render_buf *b, const char *fmt, ...)
{
	if (b->failed)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if (b->p && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

char *render_buf_finish(struct render_buf *b)
{
	if (b->failed) {
		free(b->p);
		return NULL;
	}
	if (!b->p)
		render_buf_printf(b, "%s", "");
	return b->failed ? NULL : b->p;
}

static uint32_t load32(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

void render_tokens(char *buf, size_t len, uint64_t n)
{
	if (len == 0)
		return;
	if (n < 1000) {
		snprintf(buf, len, "%" PRIu64, n);
		return;
	}
	if (n < 1000000) {
		char k[32];
		snprintf(k, sizeof(k), "%.1f", (double)n / 1e3);
		/* 999950 and up round to "1000.0": that is a million, say so. */
		if (strcmp(k, "1000.0") != 0) {
			snprintf(buf, len, "%sK", k);
			return;
		}
	}
	snprintf(buf, len, "%.1fM", (double)n / 1e6);
}

void render_cost(char *buf, size_t len, uint64_t micro_usd)
{
	char frac[8];
	snprintf(frac, sizeof(frac), "%06" PRIu64, micro_usd % 1000000);
	size_t keep = 6;
	while (keep > 2 && frac[keep - 1] == '0')
		keep--;
	snprintf(buf, len, "$%" PRIu64 ".%.*s", micro_usd / 1000000, (int)keep, frac);
}

void render_usd(char *buf, size_t len, uint64_t pusd)
{
	/* To micro-USD, rounded half up: what render_cost shows. */
	uint64_t micro = pusd / 1000000 + (pusd % 1000000 >= 500000);
	render_cost(buf, len, micro);
}

void render_amount(char *buf, size_t len, enum amount_unit unit, uint64_t v)
{
	if (unit == AMOUNT_USD)
		render_usd(buf, len, v);
	else
		render_tokens(buf, len, v);
}

static int bar_width(const struct render_opts *o)
{
	if (o->width <= 0)
		return RENDER_BAR_WIDTH;
	return o->width > RENDER_BAR_WIDTH_MAX ? RENDER_BAR_WIDTH_MAX : o->width;
}

/* used * 100 / limit rounded down, saturating; limit > 0. */
static uint64_t percent(uint64_t used, uint64_t limit)
{
	unsigned __int128 p = (unsigned __int128)used * 100 / limit;
	return p > UINT64_MAX ? UINT64_MAX : (uint64_t)p;
}

static const char *bar_color(uint64_t used, uint64_t limit)
{
	static const char *const colour[] = {
		[THRESHOLD_GREEN] = RENDER_GREEN,
		[THRESHOLD_YELLOW] = RENDER_YELLOW,
		[THRESHOLD_RED] = RENDER_RED,
	};
	return colour[threshold_band(used, limit)];
}

size_t render_bar(char *buf, size_t len, uint64_t used, uint64_t limit, const struct render_opts *o)
{
	char tmp[RENDER_BAR_WIDTH_MAX * sizeof(CELL_FULL) + 64];
	int n;

	if (limit == LEDGER_NO_LIMIT) {
		n = snprintf(tmp, sizeof(tmp), "[NO BUDGET SET]");
	} else if (limit == 0) {
		n = snprintf(tmp, sizeof(tmp), "[%sZERO BUDGET%s]", o->color ? RENDER_RED : "",
			     o->color ? RENDER_RESET : "");
	} else {
		int width = bar_width(o);
		uint64_t capped = used < limit ? used : limit;
		int filled = (int)((unsigned __int128)capped * (unsigned)width / limit);
		size_t pos = 0;
		tmp[pos++] = '[';
		if (o->color)
			pos += (size_t)snprintf(tmp + pos, sizeof(tmp) - pos, "%s",
						bar_color(used, limit));
		for (int i = 0; i < width; i++) {
			const char *cell = i < filled ? CELL_FULL : CELL_EMPTY;
			memcpy(tmp + pos, cell, sizeof(CELL_FULL) - 1);
			pos += sizeof(CELL_FULL) - 1;
		}
		n = snprintf(tmp + pos, sizeof(tmp) - pos, "%s] %" PRIu64 "%%",
			     o->color ? RENDER_RESET : "", percent(used, limit));
		n += (int)pos;
	}
	if (len > 0)
		snprintf(buf, len, "%s", tmp);
	return (size_t)n;
}

bool render_use_color(int fd)
{
	const char *nc = getenv("NO_COLOR");
	return isatty(fd) && (!nc || !nc[0]);
}

const char *render_status_name(uint32_t status)
{
	switch (status) {
	case LEDGER_INST_RUNNING:
		return "running";
	case LEDGER_INST_REFUSED:
		return "refused";
	case LEDGER_INST_STOPPED:
		return "stopped";
	case LEDGER_INST_EXITED:
		return "exited";
	default:
		return "free";
	}
}

/* "[bar] 40% 20.0K/50.0K", "40% 20.0K/50.0K" without bars, "20.0K (no budget)"; the same in
 * dollars for a USD budget. */
static void sb_amount(struct render_buf *b, enum amount_unit unit, uint64_t used, uint64_t limit,
		      const struct render_opts *o)
{
	char u[32], l[32], bar[RENDER_BAR_WIDTH_MAX * 3 + 64];

	render_amount(u, sizeof(u), unit, used);
	if (limit == LEDGER_NO_LIMIT) {
		render_buf_printf(b, "%s (no budget)", u);
		return;
	}
	render_amount(l, sizeof(l), unit, limit);
	if (o->bars) {
		render_bar(bar, sizeof(bar), used, limit, o);
		render_buf_printf(b, "%s %s/%s", bar, u, l);
	} else if (limit == 0) {
		render_buf_printf(b, "%s/0 (zero budget)", u);
	} else {
		render_buf_printf(b, "%" PRIu64 "%% %s/%s", percent(used, limit), u, l);
	}
}

static void sb_reserved(struct render_buf *b, enum amount_unit unit, const struct ledger_budget *bd)
{
	uint64_t r = ledger_load(unit == AMOUNT_USD ? &bd->usd_reserved : &bd->reserved);
	if (r) {
		char t[32];
		render_amount(t, sizeof(t), unit, r);
		render_buf_printf(b, ", %s reserved", t);
	}
}

/* How far a budget went over its limit, when it did. */
static void sb_overshoot(struct render_buf *b, enum amount_unit unit,
			 const struct ledger_budget *bd)
{
	uint64_t o = ledger_load(unit == AMOUNT_USD ? &bd->usd_overshoot : &bd->overshoot);
	if (o) {
		char t[32];
		render_amount(t, sizeof(t), unit, o);
		render_buf_printf(b, ", over by %s", t);
	}
}

/* A budget in tokens, then in dollars: "| USD [bar] 30% $0.30/$1.00, $0.02 reserved" when it has
 * a USD budget, else ", $0.0213" when anything was priced. */
static void sb_budget(struct render_buf *b, const struct ledger_budget *bd,
		      const struct render_opts *o)
{
	sb_amount(b, AMOUNT_TOKENS, ledger_load(&bd->used.total), ledger_load(&bd->limit), o);
	sb_reserved(b, AMOUNT_TOKENS, bd);
	sb_overshoot(b, AMOUNT_TOKENS, bd);
	uint64_t usd = ledger_load(&bd->used.pusd), usd_limit = ledger_load(&bd->usd_limit);
	if (usd_limit != LEDGER_NO_LIMIT) {
		render_buf_printf(b, " | USD ");
		sb_amount(b, AMOUNT_USD, usd, usd_limit, o);
		sb_reserved(b, AMOUNT_USD, bd);
		sb_overshoot(b, AMOUNT_USD, bd);
	} else if (usd) {
		char t[32];
		render_usd(t, sizeof(t), usd);
		render_buf_printf(b, ", %s", t);
	}
}

static uint32_t n_commands(const struct ledger_header *h)
{
	uint32_t n = load32(&h->n_commands);
	return n > LEDGER_MAX_COMMANDS ? LEDGER_MAX_COMMANDS : n;
}

static uint32_t n_instances(const struct ledger_header *h)
{
	uint32_t n = load32(&h->n_instances);
	return n > LEDGER_MAX_INSTANCES ? LEDGER_MAX_INSTANCES : n;
}

/* Length of a name field that may lack its NUL. */
static int name_len(const char *name)
{
	return (int)strnlen(name, LEDGER_NAME_LEN);
}

static const char *plural(uint64_t n)
{
	return n == 1 ? "" : "s";
}

/* Whether any budget of the session is in dollars. */
static bool any_usd_limit(const struct ledger_header *h)
{
	if (ledger_load(&h->overall.usd_limit) != LEDGER_NO_LIMIT)
		return true;
	uint32_t nc = load32(&h->n_commands);
	for (uint32_t i = 0; i < nc && i < LEDGER_MAX_COMMANDS; i++)
		if (ledger_load(&h->commands[i].usd_limit) != LEDGER_NO_LIMIT)
			return true;
	return false;
}

static void sb_agent(struct render_buf *b, const struct ledger_header *h,
		     const struct ledger_instance *in)
{
	uint32_t status = load32(&in->status);
	uint32_t cmd = load32(&in->command);
	const char *name = cmd < n_commands(h) ? h->commands[cmd].name : "?";
	int32_t code = __atomic_load_n(&in->exit_code, __ATOMIC_ACQUIRE);
	char total[32], cost[48];

	render_buf_printf(b, "  pid %" PRId64 "  %.*s  %s", in->pid, name_len(name), name,
			  render_status_name(status));
	if (status != LEDGER_INST_RUNNING && code >= 0)
		render_buf_printf(b, " %d", (int)code);
	if (load32(&in->flags) & LEDGER_F_UNMETERED) {
		/* Its counts are not its usage: say so where the counts are. The precision is the
		 * length of what is printed (the note's is bounded by its field). */
		const char *why = in->note[0] ? in->note : "reason unknown";
		render_buf_printf(b, "  NOT METERED (%.*s)", (int)strnlen(why, sizeof(in->note)),
				  why);
	}
	render_tokens(total, sizeof(total), ledger_load(&in->used.total));
	render_buf_printf(b,
			  "  %s tokens (input %" PRIu64 ", output %" PRIu64
			  ", cache creation %" PRIu64 ", cache read %" PRIu64 ")",
			  total, ledger_load(&in->used.n[METER_INPUT]),
			  ledger_load(&in->used.n[METER_OUTPUT]),
			  ledger_load(&in->used.n[METER_CACHE_CREATION]),
			  ledger_load(&in->used.n[METER_CACHE_READ]));
	/* tbwrap's price, then the CLI's own where a result line stated one (without one it is
	 * unknown, not zero). */
	uint64_t pusd = ledger_load(&in->used.pusd), micro = ledger_load(&in->cost_micro_usd);
	bool has_cli = micro || ledger_load(&in->results);
	if (pusd || has_cli) {
		render_usd(cost, sizeof(cost), pusd);
		render_buf_printf(b, "  %s", cost);
		if (has_cli) {
			render_cost(cost, sizeof(cost), micro);
			render_buf_printf(b, " (the CLI said %s)", cost);
		}
	}
	if (load32(&in->flags) & LEDGER_F_UNPRICED)
		render_buf_printf(b, "  UNPRICED MODEL %.*s (at the highest rates)",
				  (int)strnlen(in->model, sizeof(in->model)), in->model);
	uint64_t refused = ledger_load(&in->refused_prediction);
	uint64_t usd_refused = ledger_load(&in->usd_refused_prediction);
	if (refused || usd_refused) {
		char t[32], d[32];
		render_tokens(t, sizeof(t), refused);
		render_usd(d, sizeof(d), usd_refused);
		if (any_usd_limit(h))
			render_buf_printf(b, "  next request (predicted %s, %s) refused", t, d);
		else
			render_buf_printf(b, "  next request (predicted %s) refused", t);
	}
	uint64_t unrep = ledger_load(&in->unreported), unfinal = ledger_load(&in->unfinal);
	if (unrep)
		render_buf_printf(b, "  + %" PRIu64 " call%s the CLI reported nowhere", unrep,
				  unrep == 1 ? "" : "s");
	if (unfinal)
		render_buf_printf(b, "%s %" PRIu64 " call%s without final usage",
				  unrep ? " and" : "  +", unfinal, unfinal == 1 ? "" : "s");
	if ((unrep || unfinal) && ledger_load(&in->reserved)) {
		char t[32];
		render_tokens(t, sizeof(t), ledger_load(&in->reserved));
		render_buf_printf(b, " (%s held)", t);
	}
	if (in->flags & LEDGER_F_NESTED)
		render_buf_printf(b, "  (nested)");
	render_buf_printf(b, "\n");
}

char *render_report(const struct ledger_header *h, const struct render_opts *o)
{
	struct render_buf b = {0};
	uint32_t nc = n_commands(h), ni = n_instances(h);

	render_buf_printf(&b, "BUDGET STATUS (%s mode)\n",
			  h->mode == LEDGER_MODE_BLOCK ? "block" : "warn");
	render_buf_printf(&b, "Overall: ");
	sb_budget(&b, &h->overall, o);
	render_buf_printf(&b, "\n");

	if (nc > 0) {
		/* Aligned like the seed's {name:<30}, but only as wide as the longest name. */
		int w = 8;
		for (uint32_t i = 0; i < nc; i++)
			if (name_len(h->commands[i].name) > w)
				w = name_len(h->commands[i].name);
		render_buf_printf(&b, "Command Budgets:\n");
		for (uint32_t i = 0; i < nc; i++) {
			const struct ledger_budget *bd = &h->commands[i];
			uint64_t agents = ledger_load(&bd->agents);
			uint64_t refused = ledger_load(&bd->refused);
			uint64_t stopped = ledger_load(&bd->stopped);
			render_buf_printf(&b, "  %-*.*s ", w, name_len(bd->name), bd->name);
			sb_budget(&b, bd, o);
			render_buf_printf(&b, ", %" PRIu64 " agent%s", agents, plural(agents));
			if (refused)
				render_buf_printf(&b, ", %" PRIu64 " refused", refused);
			if (stopped)
				render_buf_printf(&b, ", %" PRIu64 " stopped", stopped);
			render_buf_printf(&b, "\n");
		}
	}

	bool any = false;
	for (uint32_t i = 0; i < ni; i++) {
		const struct ledger_instance *in = &h->instances[i];
		if (load32(&in->status) == LEDGER_INST_FREE)
			continue;
		if (!any)
			render_buf_printf(&b, "Agents:\n");
		any = true;
		sb_agent(&b, h, in);
	}
	if (!any)
		render_buf_printf(&b, "Agents: none\n");
	return render_buf_finish(&b);
}

/* A budget on the live line: its token budget (or its usage when it has none but has a USD
 * budget), then its USD budget. */
static void sb_live(struct render_buf *b, const struct ledger_budget *bd,
		    const struct render_opts *o)
{
	uint64_t limit = ledger_load(&bd->limit), usd_limit = ledger_load(&bd->usd_limit);
	if (limit != LEDGER_NO_LIMIT || usd_limit == LEDGER_NO_LIMIT)
		sb_amount(b, AMOUNT_TOKENS, ledger_load(&bd->used.total), limit, o);
	if (usd_limit != LEDGER_NO_LIMIT) {
		if (limit != LEDGER_NO_LIMIT)
			render_buf_printf(b, " ");
		sb_amount(b, AMOUNT_USD, ledger_load(&bd->used.pusd), usd_limit, o);
	}
}

char *render_status_line(const struct ledger_header *h, const struct render_opts *o)
{
	struct render_buf b = {0};
	uint32_t nc = n_commands(h), ni = n_instances(h);
	uint64_t running = 0, refused = 0, stopped = 0;

	render_buf_printf(&b, "tbwrap: overall ");
	sb_live(&b, &h->overall, o);
	for (uint32_t i = 0; i < nc; i++) {
		const struct ledger_budget *bd = &h->commands[i];
		if (bd->limit == LEDGER_NO_LIMIT && bd->usd_limit == LEDGER_NO_LIMIT)
			continue;
		render_buf_printf(&b, " | %.*s ", name_len(bd->name), bd->name);
		sb_live(&b, bd, o);
	}
	for (uint32_t i = 0; i < ni; i++) {
		switch (load32(&h->instances[i].status)) {
		case LEDGER_INST_RUNNING:
			running++;
			break;
		case LEDGER_INST_REFUSED:
			refused++;
			break;
		case LEDGER_INST_STOPPED:
			stopped++;
			break;
		default:
			break;
		}
	}
	render_buf_printf(&b, " | %" PRIu64 " running", running);
	if (refused)
		render_buf_printf(&b, ", %" PRIu64 " refused", refused);
	if (stopped)
		render_buf_printf(&b, ", %" PRIu64 " stopped", stopped);
	return render_buf_finish(&b);
}
