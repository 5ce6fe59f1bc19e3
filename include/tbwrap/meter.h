/*
 * Meter: turns the bytes an agent writes into exact token usage.
 *
 * One implementation serves the preload library (libc writes metered in the agent itself) and the
 * supervisor (raw syscalls metered from outside). It knows Claude Code's output formats
 * (stream-json, json, the transcript *.jsonl) and counts each API call once:
 *
 *   - assistant lines carry message.id and usage; the same id repeats once per content block (and
 *     once more in the transcript), so usage is kept per message id as per-field maxima;
 *   - stream_event lines: message_start (message.id + usage snapshot) and message_delta (usage of
 *     the message most recently started on the same stream);
 *   - result lines (and the single object of --output-format json): cumulative usage of the whole
 *     session, plus the sum of modelUsage; authoritative, so the instance total is the per-field
 *     maximum of (sum over distinct messages, result figures) and never goes down.
 *
 * The split: struct meter_core is plain old data (no pointers) so that it can live in the shared
 * ledger and be fed by several processes under the instance lock; struct meter_stream is the
 * per-source line reassembly that lives in whichever process reads that source.
 */
#ifndef TBWRAP_METER_H
#define TBWRAP_METER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum meter_field {
	METER_INPUT = 0,
	METER_OUTPUT,
	METER_CACHE_CREATION,
	METER_CACHE_READ,
	METER_NFIELDS
};

struct meter_usage {
	uint64_t n[METER_NFIELDS];
};

/* Why they are counted: each is a reason a line gave no usage although it looked like it might. */
enum meter_anomaly {
	METER_ANOM_NOT_JSON = 0, /* line had a usage marker but is not one valid JSON value */
	METER_ANOM_BAD_NUMBER,	 /* a usage count negative, fractional, non-numeric or > 2^53 */
	METER_ANOM_OVERSIZE,	 /* line longer than the stream's bound: skipped */
	METER_ANOM_GAP, /* positioned feed skipped bytes: the line in progress is dropped */
	METER_ANOM_ORPHAN_DELTA, /* message_delta with no message_start before it on that stream */
	METER_NANOMALY
};

/* Distinct API calls remembered for de-duplication. Older ones stay in the sums; only a repeat
 * of a message more than this many distinct messages ago could be counted twice. */
#define METER_WINDOW 1024
/* Open-addressed index over the window (slot + 1, 0 = empty): twice the window keeps probes short,
 * so a new id costs a few compares instead of a scan of the whole window. */
#define METER_INDEX (2 * METER_WINDOW)
#define METER_SUBTYPE_LEN 32

/* Models named by one agent's calls (their names are kept once, in the core), and modelUsage
 * entries of one result line. A model beyond the table is priced as unknown: never at 0. */
#define METER_MODELS 16
#define METER_RESULT_MODELS 8
#define METER_MODEL_LEN 64

struct meter_msg {
	uint64_t id_hash; /* 0 = empty slot */
	uint64_t n[METER_NFIELDS];
	uint64_t cache_1h; /* of n[METER_CACHE_CREATION]: written to a 1-hour cache */
	uint64_t pusd;	   /* what it cost so far, in pico-USD (0 without a price function) */
	uint8_t model;	   /* 1 + index into meter_core.models; 0 = not named */
	uint8_t flags;	   /* METER_MSG_* */
};

/* A line showed the call's final usage (an assistant line with its stop_reason, or the stream's
 * message_delta). Without it only the message_start snapshot is known (output 1): Claude Code
 * 2.1.197 writes a content block's line when the block ends, and when its line is written
 * before the stream's message_delta arrived, no line of the call ever has the final output. */
#define METER_MSG_FINAL 0x1
/* A result line with a modelUsage came after it: its figures have the call's final usage (the
 * session's, subagents included). */
#define METER_MSG_COVERED 0x2
/* The most output a message_start snapshot shows (1, at times 2): a line without a stop_reason
 * that shows more has the call's final count. */
#define METER_SNAPSHOT_OUTPUT_MAX 2

/*
 * What a call cost, in pico-USD: set by the supervisor (launcher/prices.c behind it), called
 * whenever a call's counts grow and for each model of a result line. model is "" when no line
 * named it. cache_1h is the part of the cache creation written to a 1-hour cache. is_sum: u is
 * a result line's sum over many calls (no per-call prompt-length tier can be told from it).
 */
typedef uint64_t (*meter_price_fn)(void *ctx, const char *model, const struct meter_usage *u,
				   uint64_t cache_1h, bool is_sum);

/* Zero-initialised = empty (and priced at nothing until price is set). Plain data but for the
 * price function: the supervisor's private memory, never shared. */
struct meter_core {
	struct meter_usage msg_sum; /* sum over distinct messages of their per-field maxima */
	struct meter_usage result;  /* per-field maximum over result lines (usage and modelUsage) */
	struct meter_usage total;   /* per-field max(msg_sum, result); never decreases */
	uint64_t cost_micro_usd;    /* largest total_cost_usd of a result line, in micro-USD */
	uint64_t messages;	    /* distinct message ids seen */
	uint64_t results;	    /* result lines seen */
	uint64_t largest_output;    /* the largest output count of any of its calls */
	uint64_t lines;		    /* complete lines processed */
	uint64_t lines_ignored;	    /* lines that carried no usage (text, other JSON, non-JSON) */
	uint64_t anomalies[METER_NANOMALY];
	char result_subtype[METER_SUBTYPE_LEN]; /* subtype of the last result line, NUL-terminated
						 */
	uint32_t win_next;			/* next ring slot to fill */
	uint32_t win_used;			/* filled ring slots */
	struct meter_msg win[METER_WINDOW];
	uint16_t index[METER_INDEX];
	/* USD, as the price function prices it (pico-USD), per model (slot 0: calls that named
	 * none, and what a result line holds beyond its models): the sum over its distinct calls,
	 * and the largest result line's figure for it. The total is the sum over models of the
	 * larger of the two (never decreasing): a result's side calls of another model add to
	 * the calls, and the calls' 1-hour writes (which a result cannot split) are not lost. */
	meter_price_fn price;
	void *price_ctx;
	uint64_t model_msg_pusd[METER_MODELS + 1];
	uint64_t model_res_pusd[METER_MODELS + 1];
	uint64_t pusd_total;
	uint32_t n_models;
	uint8_t last_model; /* the model of the latest call that named one (1 + index) */
	char models[METER_MODELS][METER_MODEL_LEN];
};

/* Default bound on one line. A longer line is skipped (METER_ANOM_OVERSIZE) using no more memory
 * than the bound, and metering resumes at the next newline. */
#define METER_LINE_MAX_DEFAULT ((size_t)4 << 20)

/* Position of fed bytes unknown: they follow what was fed before. */
#define METER_POS_APPEND UINT64_MAX

/* Calls seen on a stream, kept until the reader takes them (meter_take_calls): each call once
 * per stretch of lines (a message's content blocks are consecutive lines of the same id). */
#define METER_FRESH 16
struct meter_fresh {
	uint64_t id_hash;
	uint64_t tool_bytes; /* the stream's tool_bytes when the call was seen */
	bool is_new;	     /* the first time the core saw this call, on any stream */
};

/* Per-source line reassembly. Lives in the process that reads the source. */
struct meter_stream {
	char *buf;	  /* partial line; grows on demand up to max_line (never per line) */
	size_t len;	  /* bytes of the partial line in buf */
	size_t cap;	  /* allocated size of buf */
	size_t max_line;  /* bound on one line */
	bool skipping;	  /* inside an oversize line: drop bytes up to the next newline */
	bool has_cur_msg; /* a message_start was seen on this stream */
	uint64_t cur_msg; /* id hash of the message most recently started on this stream */
	uint64_t end;	  /* stream offset just past the last byte taken in */
	/* For per-request admission (set track_calls): the bytes of tool-result lines, and the
	 * calls this stream showed first, in order. */
	bool track_calls;
	uint64_t tool_bytes;
	uint64_t tool_use_id; /* the latest call seen asking for a tool (a next call will come) */
	unsigned n_fresh;
	uint64_t fresh_last; /* the call of the latest entry (a repeat is not noted again) */
	uint64_t fresh_lost; /* calls not kept: the reader took them too late */
	struct meter_fresh fresh[METER_FRESH];
};

/* What one complete line says. */
enum meter_event_kind {
	METER_EV_NONE = 0,	/* carries no usage */
	METER_EV_MESSAGE,	/* assistant line: id + usage */
	METER_EV_MESSAGE_START, /* stream_event message_start: id + usage */
	METER_EV_MESSAGE_DELTA, /* stream_event message_delta: usage of the current message */
	METER_EV_RESULT		/* result line / json output: cumulative usage, cost, subtype */
};

struct meter_model_usage {
	char name[METER_MODEL_LEN];
	struct meter_usage usage;
};

struct meter_event {
	enum meter_event_kind kind;
	uint64_t id_hash; /* MESSAGE, MESSAGE_START: hash of message.id (never 0) */
	struct meter_usage usage;
	uint64_t cache_1h;	     /* usage.cache_creation.ephemeral_1h_input_tokens */
	char model[METER_MODEL_LEN]; /* MESSAGE, MESSAGE_START: message.model ("" when absent) */
	bool is_final; /* MESSAGE with a stop_reason or above METER_SNAPSHOT_OUTPUT_MAX; DELTA */
	bool has_cost;
	uint64_t cost_micro_usd;
	char subtype[METER_SUBTYPE_LEN];
	/* RESULT: modelUsage per model; models_over when it had more entries than kept. */
	unsigned n_models;
	bool models_over;
	struct meter_model_usage models[METER_RESULT_MODELS];
};

/* Sum of the four counts, each multiplied by its weight; weights == NULL means all 1 (the seed's
 * total: input + output + cache_creation + cache_read). Saturates instead of wrapping. */
uint64_t meter_usage_total(const struct meter_usage *u, const uint32_t *weights);

/* Classifies one line (without its newline; a trailing CR is allowed). Returns 0 and fills *ev
 * (kind NONE when the line carries no usage), or -1 with *anomaly set when the line looked like a
 * usage line but must not count. Allocates nothing. Lines without the text "usage" are rejected
 * by a single scan, without parsing. */
int meter_parse_line(const char *line, size_t len, struct meter_event *ev,
		     enum meter_anomaly *anomaly);

/* 64-bit hash of a message id (never 0). */
uint64_t meter_hash_id(const char *id, size_t len);

void meter_stream_init(struct meter_stream *s, size_t max_line);
void meter_stream_free(struct meter_stream *s);

/* Applies one event to the core. Adds to *delta the increase of core->total it caused (the caller
 * zeroes *delta when it wants the delta of one call only). */
void meter_apply(struct meter_core *core, struct meter_stream *s, const struct meter_event *ev,
		 struct meter_usage *delta);

/*
 * Feeds bytes of one source. pos is the stream offset of data[0], or METER_POS_APPEND.
 * With a position, bytes before s->end were taken in already and are skipped (re-sent data after
 * a restarted, retried or partial write never counts twice); bytes after a gap drop the line in
 * progress (METER_ANOM_GAP). Every complete line is parsed and applied; the increase of
 * core->total is added to *delta. Returns false only when memory for the line buffer could not be
 * had (the line is then skipped as oversize; nothing is lost silently: the anomaly is counted).
 */
bool meter_feed(struct meter_core *core, struct meter_stream *s, uint64_t pos, const void *data,
		size_t len, struct meter_usage *delta);

/* The usage of a call by message id: its per-field maxima so far. False when the id is unknown
 * (never seen, or pushed out of the window). */
bool meter_message_usage(const struct meter_core *core, uint64_t id_hash, struct meter_usage *out);

/* A call's 1-hour cache writes and the model it named ("" when none) by message id. False when
 * the id is unknown. */
bool meter_message_model(const struct meter_core *core, uint64_t id_hash, uint64_t *cache_1h,
			 const char **model);

/* What call id has cost so far (pico-USD, by the price function); 0 when unknown. */
uint64_t meter_message_pusd(const struct meter_core *core, uint64_t id_hash);

/*
 * The calls whose final usage no line showed and no result line covers (METER_MSG_FINAL,
 * METER_MSG_COVERED): their output is known only as the snapshot shown (at most
 * METER_SNAPSHOT_OUTPUT_MAX). gap is what they would
 * add if each had the largest output of the agent's calls, gap_pusd its price (0 without a price
 * function). Calls for which skip (when not NULL) returns true are left out (their requests
 * still hold a prediction). Over the calls in the de-duplication window.
 */
struct meter_unfinal {
	uint64_t calls;
	uint64_t gap;
	uint64_t gap_pusd;
};
void meter_unfinal(const struct meter_core *core, bool (*skip)(const void *ctx, uint64_t id_hash),
		   const void *ctx, struct meter_unfinal *out);

/* The model of the agent's latest call that named one; "" when none did. */
const char *meter_last_model(const struct meter_core *core);

/* Moves the calls first seen on s since the last take into out (at most max); returns how many. */
unsigned meter_take_calls(struct meter_stream *s, struct meter_fresh *out, unsigned max);

/* End of the source: a last line without a newline is processed. */
void meter_finish(struct meter_core *core, struct meter_stream *s, struct meter_usage *delta);

#endif
