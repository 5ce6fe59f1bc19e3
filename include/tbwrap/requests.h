/*
 * Per-request admission, the bookkeeping: an agent's API requests in flight, the conversations
 * they belong to (the main thread and each subagent), what the next call of each is predicted to
 * cost, and how much is reserved for them. Pure: the supervisor feeds it what it saw (a request
 * started, a call's message appeared on a conversation's source) and asks it for a prediction
 * and for the agent's reservation; usage of a call is looked up through a callback.
 *
 * The prediction (README, "Never cross"): a conversation's next call resends everything its
 * previous call was sent and answered, plus the tool results written since, so its input side
 * (input + cache creation + cache read) is at least
 *     previous input side + previous output + tool result bytes since / REQ_BYTES_PER_TOKEN,
 * and its output is allowed the largest output of that conversation so far. A new conversation
 * (the first call of an agent or of a subagent) is predicted as the agent's first call, else as
 * the launch estimate. A call that turns out larger than predicted (more context added than its
 * tool results, a longer answer than any before) is the prediction's error, and the only way a
 * budget can be exceeded.
 */
#ifndef TBWRAP_REQUESTS_H
#define TBWRAP_REQUESTS_H

#include <stdbool.h>
#include <stdint.h>

#include "tbwrap/amount.h"
#include "tbwrap/meter.h"

#define REQ_MAX_OPEN 32 /* requests of one agent in flight */
#define REQ_MAX_CONV 64 /* conversations of one agent (main + subagents) */
/* Tool results count as one token per this many bytes of their transcript lines, JSON and all:
 * more bytes than text, so the estimate errs on the side of more tokens. */
#define REQ_BYTES_PER_TOKEN 4

struct req_conv {
	bool used;
	bool has_call;	     /* a call of it has been seen */
	uint64_t last_id;    /* message id (hash) of its latest call */
	uint64_t tool_mark;  /* its source's tool bytes when that call was first seen */
	uint64_t max_output; /* largest output of its calls */
};

struct req_open {
	int conv;      /* -1 until its call is seen, when the prediction was for a new one */
	uint64_t sock; /* the connection it was written on */
	struct meter_usage predicted;
	uint64_t model_ref; /* the call whose model prices the prediction (0: none known) */
	uint64_t msg_id;    /* 0 until its call's message is seen */
	bool final;	    /* its call's final usage is in (a transcript line, not a snapshot) */
	bool followed;	    /* its connection carried the next request: over, final usage pending */
	bool orphan;	    /* its connection carried the next request before its call was seen: a
			     * call reported nowhere (1.0.x's side calls), or a non-call (a TLS HEAD);
			     * its prediction stays held until the agent ends or a call claims it */
};

struct req_book {
	struct req_conv conv[REQ_MAX_CONV];
	struct req_open open[REQ_MAX_OPEN];
	int n_open;
	uint64_t estimate; /* the launch estimate (tokens): a call's size when nothing is known */
	struct amount launch;	 /* what is reserved until the first request */
	uint64_t first_id;	 /* the agent's first call, the model of a new conversation */
	uint64_t requests;	 /* calls started */
	struct amount max_under; /* largest amount a call exceeded its prediction by */
	bool launch_pending;	 /* no request yet: the launch estimate is what is reserved */
};

/* What the supervisor tells the book: the usage of a call by message id (false when unknown),
 * what a predicted usage costs in both units, priced at the model of call model_ref (0: no call
 * known, the highest rates), and what a call has cost so far (nothing when unknown). */
struct req_env {
	bool (*usage)(void *ctx, uint64_t id, struct meter_usage *out);
	struct amount (*cost)(void *ctx, const struct meter_usage *u, uint64_t model_ref);
	struct amount (*call_cost)(void *ctx, uint64_t id);
	void *ctx;
};

/* estimate: tokens of a call when nothing is known; launch: what that costs, reserved until the
 * first request. */
void req_init(struct req_book *b, uint64_t estimate, struct amount launch);

/* The call whose model prices a prediction for conversation conv: its latest call; 0 (the price
 * table's highest rates) for a new conversation, whose model is not known yet. */
uint64_t req_model_ref(const struct req_book *b, int conv);

/* The conversation a source's calls belong to: conversation 0 is the main one (stdout and the
 * session transcript); each subagent transcript gets one of its own. Returns -1 when full. */
int req_conv_new(struct req_book *b);

/*
 * A new request is about to leave on connection sock. Closes what it makes certain: a previous
 * request on the same connection was answered (one whose call was never seen stays held, as an
 * orphan: its usage may never be reported). Predicts the call: *conv gets the conversation
 * it was predicted for (-1: a new one). tool_bytes(c) is the tool-result byte count of
 * conversation c's source now.
 */
void req_predict(struct req_book *b, uint64_t sock, const uint64_t *tool_bytes,
		 const struct req_env *env, struct meter_usage *pred, int *conv);

/*
 * The next call of conversation conv, once its latest call has asked for a tool (so a next call
 * will come): its prediction, and what the agent holds for its other requests in flight
 * (*others). False when the conversation has no call yet. Changes nothing.
 */
bool req_predict_next(struct req_book *b, int conv, const uint64_t *tool_bytes,
		      const struct req_env *env, struct meter_usage *pred, struct amount *others);

/* Books the request (after admission). Returns false when too many are in flight (then it is not
 * booked, and the caller refuses it: fail closed). */
bool req_start(struct req_book *b, uint64_t sock, const struct meter_usage *pred, int conv);

/* A call's message appeared for the first time, on conversation conv's source whose tool byte
 * count is tool_bytes: it answers the oldest open request of that conversation (else the oldest
 * one predicted as a new conversation, else the oldest of all). */
void req_message(struct req_book *b, int conv, uint64_t id, uint64_t tool_bytes);

/* Call id reached a transcript: the CLI has written what it writes of it (a stream-json line
 * carries only the call's first snapshot). Whether that was its final usage the meter tells
 * (METER_MSG_FINAL); one that never shows it is held apart (meter_unfinal). */
void req_final(struct req_book *b, uint64_t id);

/* Whether a request in flight still holds its prediction for call id (its call has shown, not
 * yet in a transcript). */
bool req_holds(const struct req_book *b, uint64_t id);

/* Whether every request in flight has its call's final usage in (a stop may interrupt then
 * without losing any billed call from the ledger). */
bool req_settled(const struct req_book *b);

/* What is reserved for the agent's requests in flight: for each, its prediction less the usage
 * its call has shown so far (nothing once its final usage is in); the launch estimate until
 * the first request. */
struct amount req_reserved(struct req_book *b, const struct req_env *env);

/* The requests whose call was never seen (*n of them): what their predictions add up to. Once the
 * agent has ended without a result line to cover them (1.0.x's side calls), they were billed
 * where nothing reports it: the supervisor keeps holding this much for them. */
struct amount req_unreported(const struct req_book *b, const struct req_env *env, uint64_t *n);

/* Every request is over (the agent ended): records prediction errors, empties the book. */
void req_close_all(struct req_book *b, const struct req_env *env);

/* Whether some request in flight has not shown its call yet (block mode waits for it before the
 * next request is judged). */
bool req_unanswered(const struct req_book *b);

#endif
