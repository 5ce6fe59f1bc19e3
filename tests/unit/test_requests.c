/*
 * Per-request admission's bookkeeping (launcher/requests.c): predictions from a conversation's
 * last call and its tool results, a new conversation from the agent's first call, matching calls
 * to requests, what stays reserved, and the prediction error the report shows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tbwrap/requests.h"

/* The calls the fake meter knows: id -> usage. */
struct fake {
	uint64_t id[16];
	struct meter_usage u[16];
	int n;
};

static bool fake_usage(void *ctx, uint64_t id, struct meter_usage *out)
{
	const struct fake *f = ctx;
	for (int i = 0; i < f->n; i++)
		if (f->id[i] == id) {
			*out = f->u[i];
			return true;
		}
	return false;
}

static uint64_t tokens_of(const struct meter_usage *u)
{
	return u->n[0] + u->n[1] + u->n[2] + u->n[3];
}

/* Tokens, and a price that depends on the model the prediction is priced at: ten pico-USD a
 * token at call 1's model, one elsewhere. */
static struct amount fake_cost(void *ctx, const struct meter_usage *u, uint64_t model_ref)
{
	(void)ctx;
	uint64_t t = tokens_of(u);
	return (struct amount){{t, model_ref == 1 ? 10 * t : t}};
}

static struct amount fake_call_cost(void *ctx, uint64_t id)
{
	struct meter_usage u;
	if (!fake_usage(ctx, id, &u))
		return (struct amount){{0, 0}};
	return fake_cost(ctx, &u, id);
}

static void set_call(struct fake *f, uint64_t id, uint64_t in, uint64_t out, uint64_t cc,
		     uint64_t cr)
{
	for (int i = 0; i < f->n; i++)
		if (f->id[i] == id) {
			f->u[i] = (struct meter_usage){{in, out, cc, cr}};
			return;
		}
	f->id[f->n] = id;
	f->u[f->n++] = (struct meter_usage){{in, out, cc, cr}};
}

#define ENV(f) const struct req_env env = {fake_usage, fake_cost, fake_call_cost, &(f)}

static void test_launch_then_first_call(void **state)
{
	(void)state;
	struct req_book b;
	struct fake f = {0};
	ENV(f);
	uint64_t tools[REQ_MAX_CONV] = {0};
	struct meter_usage pred;
	int conv;

	req_init(&b, 1000, (struct amount){{1000, 1000}});
	/* Before any request: the launch estimate is what is held. */
	assert_int_equal(req_reserved(&b, &env).v[AMOUNT_TOKENS], 1000);
	assert_false(req_unanswered(&b));
	/* Nothing known: a new conversation, predicted as the estimate. */
	req_predict(&b, 7, tools, &env, &pred, &conv);
	assert_int_equal(conv, -1);
	assert_int_equal(tokens_of(&pred), 1000);
	assert_true(req_start(&b, 7, &pred, conv));
	assert_int_equal(b.requests, 1);
	assert_true(req_unanswered(&b));
	assert_int_equal(req_reserved(&b, &env).v[AMOUNT_TOKENS], 1000);
	/* Its call shows up (a message_start snapshot, output 1): what is held shrinks by it. */
	set_call(&f, 11, 100, 1, 0, 300);
	req_message(&b, 0, 11, 0);
	assert_false(req_unanswered(&b));
	assert_int_equal(req_reserved(&b, &env).v[AMOUNT_TOKENS], 1000 - 401);
	/* Larger than predicted: nothing is held any more (never below zero). */
	set_call(&f, 11, 1000, 50, 200, 3000);
	assert_int_equal(req_reserved(&b, &env).v[AMOUNT_TOKENS], 0);
	/* Shown but not in a transcript yet: its request still holds its prediction for it (the
	 * meter's calls without a final usage leave it out, req_holds); in a transcript, not. */
	assert_true(req_holds(&b, 11));
	assert_false(req_holds(&b, 12));
	req_final(&b, 11);
	assert_false(req_holds(&b, 11));
}

static void test_next_call_rule(void **state)
{
	(void)state;
	struct req_book b;
	struct fake f = {0};
	ENV(f);
	uint64_t tools[REQ_MAX_CONV] = {0};
	struct meter_usage pred;
	int conv;

	req_init(&b, 1000, (struct amount){{1000, 1000}});
	req_predict(&b, 7, tools, &env, &pred, &conv);
	req_start(&b, 7, &pred, conv);
	set_call(&f, 11, 1000, 50, 200, 3000);
	req_message(&b, 0, 11, 0);
	req_final(&b, 11);
	/* The tool's result: 401 bytes of transcript lines, ceil(401 / 4) = 101 tokens. */
	tools[0] = 401;
	req_predict(&b, 7, tools, &env, &pred, &conv);
	assert_int_equal(conv, 0);
	assert_int_equal(pred.n[METER_INPUT], 1000);
	assert_int_equal(pred.n[METER_CACHE_READ], 3200);
	assert_int_equal(pred.n[METER_CACHE_CREATION], 50 + 101);
	assert_int_equal(pred.n[METER_OUTPUT], 50);
	/* The same connection: the first request is over, its error recorded (4250 - 1000). */
	assert_int_equal(b.n_open, 0);
	assert_int_equal(b.max_under.v[AMOUNT_TOKENS], 3250);
	/* The output allowance is the largest output the conversation has shown. */
	req_start(&b, 7, &pred, conv);
	set_call(&f, 12, 1000, 400, 151, 3200);
	req_message(&b, 0, 12, 401);
	req_final(&b, 12);
	set_call(&f, 13, 1000, 20, 100, 3000);
	tools[0] = 401;
	req_predict(&b, 7, tools, &env, &pred, &conv);
	assert_int_equal(pred.n[METER_OUTPUT], 400);
	/* The error of call 12 (4751 against a prediction of 4401) is below the first one's. */
	assert_int_equal(b.max_under.v[AMOUNT_TOKENS], 3250);
}

static void test_parallel_conversations(void **state)
{
	(void)state;
	struct req_book b;
	struct fake f = {0};
	ENV(f);
	uint64_t tools[REQ_MAX_CONV] = {0};
	struct meter_usage pred;
	int conv;

	req_init(&b, 1000, (struct amount){{1000, 1000}});
	req_predict(&b, 1, tools, &env, &pred, &conv);
	req_start(&b, 1, &pred, conv);
	set_call(&f, 11, 1000, 50, 200, 3000);
	req_message(&b, 0, 11, 0);
	/* Two subagents call at once on two connections, while the main call is still open
	 * (connection 1 has not written again). Its call has shown: the first new request may be
	 * its next call (the CLI may use another connection), predicted from it; the main
	 * conversation then waits for that call, so the second is a new conversation, predicted
	 * as the agent's first call. Either way no less than a fresh context costs. */
	int sub1 = req_conv_new(&b), sub2 = req_conv_new(&b);
	assert_int_equal(sub1, 1);
	assert_int_equal(sub2, 2);
	req_predict(&b, 2, tools, &env, &pred, &conv);
	assert_int_equal(conv, 0);
	assert_int_equal(tokens_of(&pred), 1000 + 3200 + 50 + 50);
	req_start(&b, 2, &pred, conv);
	req_predict(&b, 3, tools, &env, &pred, &conv);
	assert_int_equal(conv, -1);
	assert_int_equal(tokens_of(&pred), 4250);
	req_start(&b, 3, &pred, conv);
	assert_int_equal(b.n_open, 3);
	/* Held: the main call's remainder (0) and both predictions. */
	assert_int_equal(req_reserved(&b, &env).v[AMOUNT_TOKENS], 4300 + 4250);
	/* Subagent 2's call shows first: it answers the oldest request predicted as new. */
	set_call(&f, 22, 500, 20, 100, 700);
	req_message(&b, sub2, 22, 0);
	assert_int_equal(b.open[2].msg_id, 22);
	assert_int_equal(b.open[2].conv, sub2);
	assert_int_equal(req_reserved(&b, &env).v[AMOUNT_TOKENS], 4300 + (4250 - 1320));
	/* The next call of subagent 2 is predicted from its own call, not from main's. */
	struct amount others;
	assert_true(req_predict_next(&b, sub2, tools, &env, &pred, &others));
	assert_int_equal(tokens_of(&pred), 500 + 800 + 20 + 20);
	/* What the others hold: the request predicted for main, main's remainder (0). */
	assert_int_equal(others.v[AMOUNT_TOKENS], 4300);
	assert_false(req_predict_next(&b, sub1, tools, &env, &pred, &others));
	req_close_all(&b, &env);
	assert_int_equal(b.n_open, 0);
	assert_int_equal(req_reserved(&b, &env).v[AMOUNT_TOKENS], 0);
}

static void test_unmatched_call_and_limits(void **state)
{
	(void)state;
	struct req_book b;
	struct fake f = {0};
	ENV(f);
	uint64_t tools[REQ_MAX_CONV] = {0};
	struct meter_usage pred = {{10, 0, 0, 0}};

	req_init(&b, 0, (struct amount){{0, 0}});
	/* A call with no request seen (the agent's first, before it registered): nothing to
	 * match, but the conversation knows it. */
	set_call(&f, 5, 1, 1, 1, 1);
	req_message(&b, 0, 5, 0);
	assert_int_equal(b.n_open, 0);
	assert_true(b.conv[0].has_call);
	/* A conversation that is not there is ignored. */
	req_message(&b, REQ_MAX_CONV, 6, 0);
	req_message(&b, -1, 6, 0);
	/* The book is bounded: the caller refuses what does not fit. */
	for (int i = 0; i < REQ_MAX_OPEN; i++)
		assert_true(req_start(&b, (uint64_t)(100 + i), &pred, -1));
	assert_false(req_start(&b, 999, &pred, -1));
	assert_int_equal(req_reserved(&b, &env).v[AMOUNT_TOKENS], 10 * REQ_MAX_OPEN);
	for (int c = 1; c < REQ_MAX_CONV; c++)
		assert_int_equal(req_conv_new(&b), c);
	assert_int_equal(req_conv_new(&b), -1);
	(void)tools;
}

/* stream-json shows a call's first snapshot (output 1); its final usage reaches the transcript
 * only after the next request left. The call stays held (its prediction less the snapshot) past
 * that request, until its final line, or until the connection's request after that. */
static void test_followed_until_final(void **state)
{
	(void)state;
	struct req_book b;
	struct fake f = {0};
	ENV(f);
	uint64_t tools[REQ_MAX_CONV] = {0};
	struct meter_usage pred;
	int conv;

	req_init(&b, 5000, (struct amount){{5000, 5000}});
	req_predict(&b, 7, tools, &env, &pred, &conv);
	assert_true(req_start(&b, 7, &pred, conv));
	set_call(&f, 11, 1000, 1, 200, 3000); /* the snapshot */
	req_message(&b, 0, 11, 0);
	assert_int_equal(req_reserved(&b, &env).v[AMOUNT_TOKENS], 5000 - 4201);
	/* The next request on the same connection: call 11 is over, not final, still held. */
	req_predict(&b, 7, tools, &env, &pred, &conv);
	assert_int_equal(conv, 0);
	assert_int_equal(b.n_open, 1);
	assert_true(b.open[0].followed);
	assert_false(req_unanswered(&b));
	assert_true(req_start(&b, 7, &pred, conv));
	uint64_t next = tokens_of(&pred);
	assert_int_equal(req_reserved(&b, &env).v[AMOUNT_TOKENS], 799 + next);
	/* Its final line: what it cost is known, nothing more is held for it. */
	set_call(&f, 11, 1000, 600, 200, 3000);
	req_final(&b, 11);
	assert_int_equal(req_reserved(&b, &env).v[AMOUNT_TOKENS], next);
	/* The connection's request after: call 11 is dropped; it cost 4800 of the 5000 predicted,
	 * no prediction error. */
	set_call(&f, 12, 1000, 1, 200, 3000);
	req_message(&b, 0, 12, 0);
	req_predict(&b, 7, tools, &env, &pred, &conv);
	assert_int_equal(b.n_open, 1);
	assert_int_equal(b.open[0].msg_id, 12);
	assert_int_equal(b.max_under.v[AMOUNT_TOKENS], 0);
	/* A call whose final line never comes is dropped at the connection's second request
	 * after it (it cannot hold the book forever). */
	assert_true(req_start(&b, 7, &pred, conv));
	set_call(&f, 13, 1000, 1, 200, 3000);
	req_message(&b, 0, 13, 0);
	req_predict(&b, 7, tools, &env, &pred, &conv);
	assert_int_equal(b.n_open, 1);
	assert_int_equal(b.open[0].msg_id, 13);
}

/* 1.0.x's side calls: a request whose call is never reported becomes an orphan when its
 * connection carries the next one; it stays held, and req_unreported sums such requests. */
static void test_orphans_unreported(void **state)
{
	(void)state;
	struct req_book b;
	struct fake f = {0};
	ENV(f);
	uint64_t tools[REQ_MAX_CONV] = {0}, n = 99;
	struct meter_usage pred;
	int conv;

	req_init(&b, 500, (struct amount){{500, 500}});
	assert_int_equal(req_unreported(&b, &env, &n).v[AMOUNT_TOKENS], 0);
	assert_int_equal(n, 0);
	/* The main call on connection 1, answered. */
	req_predict(&b, 1, tools, &env, &pred, &conv);
	assert_true(req_start(&b, 1, &pred, conv));
	set_call(&f, 21, 100, 10, 0, 0);
	req_message(&b, 0, 21, 0);
	req_final(&b, 21);
	/* A side call on connection 2 while the main request is still open (its connection has
	 * carried nothing since): the main call has shown, so it is predicted as main's next
	 * call. It is never reported. */
	req_predict(&b, 2, tools, &env, &pred, &conv);
	assert_int_equal(conv, 0);
	assert_int_equal(tokens_of(&pred), 100 + 10 + 10);
	assert_true(req_start(&b, 2, &pred, conv));
	assert_true(req_unanswered(&b));
	/* The next request on connection 2: the side call is an orphan, answered as far as the
	 * barrier is concerned, settled for a stop, and still held. */
	req_predict(&b, 2, tools, &env, &pred, &conv);
	assert_false(req_unanswered(&b));
	assert_true(req_settled(&b));
	assert_int_equal(req_reserved(&b, &env).v[AMOUNT_TOKENS], 120);
	assert_int_equal(req_unreported(&b, &env, &n).v[AMOUNT_TOKENS], 120);
	assert_int_equal(n, 1);
	/* Another one, never reported either: both are summed (the answered main call is not). */
	assert_true(req_start(&b, 2, &pred, conv));
	assert_int_equal(req_unreported(&b, &env, &n).v[AMOUNT_TOKENS], 240);
	assert_int_equal(n, 2);
	req_close_all(&b, &env);
	assert_int_equal(req_unreported(&b, &env, &n).v[AMOUNT_TOKENS], 0);
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_launch_then_first_call),
		cmocka_unit_test(test_next_call_rule),
		cmocka_unit_test(test_parallel_conversations),
		cmocka_unit_test(test_unmatched_call_and_limits),
		cmocka_unit_test(test_followed_until_final),
		cmocka_unit_test(test_orphans_unreported),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
