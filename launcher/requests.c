/*
 * Per-request admission, the bookkeeping (include/tbwrap/requests.h). No system calls: every
 * fact comes from the caller, which is what lets the rules be unit-tested
 * (tests/unit/test_requests.c).
 */
#include "tbwrap/requests.h"
#include "tbwrap/sat.h"

#include <string.h>

void req_init(struct req_book *b, uint64_t estimate, struct amount launch)
{
	memset(b, 0, sizeof(*b));
	b->estimate = estimate;
	b->launch = launch;
	b->launch_pending = true;
	b->conv[0].used = true; /* the main conversation */
}

int req_conv_new(struct req_book *b)
{
	for (int c = 1; c < REQ_MAX_CONV; c++)
		if (!b->conv[c].used) {
			memset(&b->conv[c], 0, sizeof(b->conv[c]));
			b->conv[c].used = true;
			return c;
		}
	return -1;
}

uint64_t req_model_ref(const struct req_book *b, int conv)
{
	/* A new conversation (a subagent's first call) may use another model than the agent's
	 * (a Haiku agent can start an Opus subagent): priced at the highest rates, never less. */
	if (conv >= 0 && conv < REQ_MAX_CONV && b->conv[conv].used && b->conv[conv].has_call)
		return b->conv[conv].last_id;
	return 0;
}

static void note_outputs(struct req_book *b, const struct req_env *env);

/* What request r still holds: its prediction less what its call has shown (in each unit). */
static struct amount still_held(const struct req_open *r, const struct req_env *env)
{
	struct amount want = env->cost(env->ctx, &r->predicted, r->model_ref);
	if (!r->msg_id)
		return want;
	return amount_sub(want, env->call_cost(env->ctx, r->msg_id));
}

static void drop(struct req_book *b, int i, const struct req_env *env)
{
	struct req_open *r = &b->open[i];
	/* A call larger than its prediction: the prediction's error, kept for the report. */
	if (r->msg_id) {
		struct amount over = amount_sub(env->call_cost(env->ctx, r->msg_id),
						env->cost(env->ctx, &r->predicted, r->model_ref));
		b->max_under = amount_max(b->max_under, over);
	}
	memmove(&b->open[i], &b->open[i + 1], sizeof(b->open[0]) * (size_t)(b->n_open - i - 1));
	b->n_open--;
}

/* Whether conversation c has a request whose call has not shown yet: then a new request is not
 * its next call (a conversation makes one call at a time). One whose call has shown may still
 * be open (its connection carried nothing since; the CLI may use another one next): the
 * conversation has had its answer, and a new request is its next call. */
static bool conv_busy(const struct req_book *b, int c)
{
	for (int i = 0; i < b->n_open; i++)
		if (b->open[i].conv == c && !b->open[i].orphan && !b->open[i].msg_id)
			return true;
	return false;
}

static void new_conversation(const struct req_book *b, const struct req_env *env,
			     struct meter_usage *pred)
{
	memset(pred, 0, sizeof(*pred));
	/* A fresh context is sent what the agent's first call was sent: the system prompt and
	 * the tools, the same for a subagent. Before any call: the launch estimate, as input. */
	if (b->first_id && env->usage(env->ctx, b->first_id, pred))
		return;
	pred->n[METER_INPUT] = b->estimate;
}

/* The rule (include/tbwrap/requests.h): conversation c's next call from its latest one. */
static bool predict_conv(const struct req_book *b, int c, const uint64_t *tool_bytes,
			 const struct req_env *env, struct meter_usage *pred)
{
	const struct req_conv *cv = &b->conv[c];
	struct meter_usage last;
	if (!env->usage(env->ctx, cv->last_id, &last))
		return false;
	uint64_t since = tool_bytes[c] > cv->tool_mark ? tool_bytes[c] - cv->tool_mark : 0;
	uint64_t tools = (since + REQ_BYTES_PER_TOKEN - 1) / REQ_BYTES_PER_TOKEN;
	/* Everything sent before is now cached; what it answered and the tool results are new;
	 * the uncached tail is as long as before. */
	memset(pred, 0, sizeof(*pred));
	pred->n[METER_INPUT] = last.n[METER_INPUT];
	pred->n[METER_CACHE_READ] = sat_add(last.n[METER_CACHE_READ], last.n[METER_CACHE_CREATION]);
	pred->n[METER_CACHE_CREATION] = sat_add(last.n[METER_OUTPUT], tools);
	pred->n[METER_OUTPUT] =
		cv->max_output > last.n[METER_OUTPUT] ? cv->max_output : last.n[METER_OUTPUT];
	return true;
}

void req_predict(struct req_book *b, uint64_t sock, const uint64_t *tool_bytes,
		 const struct req_env *env, struct meter_usage *pred, int *conv)
{
	note_outputs(b, env);
	/* HTTP/1.1 answers a connection's requests in order: a new one means the last is over.
	 * Over, its call may still lack its final usage (stream-json shows a call's first
	 * snapshot, output 1; the transcript's final line comes after the next request left): it
	 * stays held until that line, or until the connection's next request after this one. */
	for (int i = b->n_open - 1; i >= 0; i--) {
		struct req_open *r = &b->open[i];
		if (r->sock != sock || r->orphan)
			continue;
		if (r->msg_id && (r->final || r->followed))
			drop(b, i, env);
		else if (r->msg_id)
			r->followed = true;
		else
			r->orphan = true;
	}
	*conv = -1;
	for (int c = 0; c < REQ_MAX_CONV; c++) {
		if (b->conv[c].used && b->conv[c].has_call && !conv_busy(b, c) &&
		    predict_conv(b, c, tool_bytes, env, pred)) {
			*conv = c;
			return;
		}
	}
	new_conversation(b, env, pred);
}

bool req_predict_next(struct req_book *b, int conv, const uint64_t *tool_bytes,
		      const struct req_env *env, struct meter_usage *pred, struct amount *others)
{
	if (conv < 0 || conv >= REQ_MAX_CONV || !b->conv[conv].used || !b->conv[conv].has_call)
		return false;
	note_outputs(b, env);
	if (!predict_conv(b, conv, tool_bytes, env, pred))
		return false;
	/* Its own requests are answered by then: only the others stay held. */
	memset(others, 0, sizeof(*others));
	for (int i = 0; i < b->n_open; i++) {
		const struct req_open *r = &b->open[i];
		if (r->conv == conv || r->final)
			continue;
		*others = amount_add(*others, still_held(r, env));
	}
	return true;
}

bool req_start(struct req_book *b, uint64_t sock, const struct meter_usage *pred, int conv)
{
	if (b->n_open == REQ_MAX_OPEN)
		return false;
	struct req_open *r = &b->open[b->n_open++];
	memset(r, 0, sizeof(*r));
	r->conv = conv;
	r->sock = sock;
	r->predicted = *pred;
	r->model_ref = req_model_ref(b, conv);
	b->requests++;
	b->launch_pending = false;
	return true;
}

void req_message(struct req_book *b, int conv, uint64_t id, uint64_t tool_bytes)
{
	if (conv < 0 || conv >= REQ_MAX_CONV || !b->conv[conv].used)
		return;
	struct req_conv *cv = &b->conv[conv];
	cv->has_call = true;
	cv->last_id = id;
	cv->tool_mark = tool_bytes;
	if (!b->first_id)
		b->first_id = id;
	/* Which request it answers: the oldest of its conversation, else the oldest predicted as
	 * a new conversation (a subagent's first call), else the oldest of all. */
	int pick = -1;
	for (int pass = 0; pass < 3 && pick < 0; pass++)
		for (int i = 0; i < b->n_open && pick < 0; i++) {
			const struct req_open *r = &b->open[i];
			if (r->msg_id)
				continue;
			if ((pass == 0 && r->conv == conv) || (pass == 1 && r->conv == -1) ||
			    pass == 2)
				pick = i;
		}
	if (pick >= 0) {
		b->open[pick].msg_id = id;
		b->open[pick].conv = conv;
		/* A late call for a request already followed on its connection: it is over. */
		if (b->open[pick].orphan)
			b->open[pick].orphan = false, b->open[pick].sock = 0;
	}
}

/* The largest output seen, per conversation, once its call's usage is in. */
static void note_outputs(struct req_book *b, const struct req_env *env)
{
	for (int c = 0; c < REQ_MAX_CONV; c++) {
		struct req_conv *cv = &b->conv[c];
		struct meter_usage u;
		if (cv->used && cv->has_call && env->usage(env->ctx, cv->last_id, &u) &&
		    u.n[METER_OUTPUT] > cv->max_output)
			cv->max_output = u.n[METER_OUTPUT];
	}
}

struct amount req_reserved(struct req_book *b, const struct req_env *env)
{
	if (b->launch_pending)
		return b->launch;
	note_outputs(b, env);
	struct amount sum = {{0}};
	for (int i = 0; i < b->n_open; i++) {
		const struct req_open *r = &b->open[i];
		/* A call whose final usage is in costs what it shows: nothing more to hold. */
		if (!r->final)
			sum = amount_add(sum, still_held(r, env));
	}
	return sum;
}

struct amount req_unreported(const struct req_book *b, const struct req_env *env, uint64_t *n)
{
	struct amount sum = {{0}};
	*n = 0;
	for (int i = 0; i < b->n_open; i++)
		if (!b->open[i].msg_id) {
			sum = amount_add(sum, env->cost(env->ctx, &b->open[i].predicted,
							b->open[i].model_ref));
			(*n)++;
		}
	return sum;
}

void req_close_all(struct req_book *b, const struct req_env *env)
{
	while (b->n_open > 0)
		drop(b, b->n_open - 1, env);
	b->launch_pending = false;
}

void req_final(struct req_book *b, uint64_t id)
{
	for (int i = 0; i < b->n_open; i++)
		if (b->open[i].msg_id == id)
			b->open[i].final = true;
}

bool req_holds(const struct req_book *b, uint64_t id)
{
	for (int i = 0; i < b->n_open; i++)
		if (b->open[i].msg_id == id && !b->open[i].final)
			return true;
	return false;
}

bool req_settled(const struct req_book *b)
{
	for (int i = 0; i < b->n_open; i++)
		if (!b->open[i].final && !b->open[i].orphan)
			return false;
	return true;
}

bool req_unanswered(const struct req_book *b)
{
	for (int i = 0; i < b->n_open; i++)
		if (!b->open[i].msg_id && !b->open[i].orphan)
			return true;
	return false;
}
