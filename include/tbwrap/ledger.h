/*
 * Ledger: the published record of budgets and usage of one tbwrap session.
 *
 * The supervisor is its only writer. It lives in a memfd that the supervisor maps read-write and
 * then seals with F_SEAL_FUTURE_WRITE (and against growing, shrinking and further sealing): from
 * then on no process can write it through any new mapping, write(2), a reopened /proc/PID/fd
 * link or a hole punch; only the supervisor's own mapping, made before the seal, stays writable.
 * Readers (`tbwrap status` from another terminal) receive the fd over the supervisor's socket and
 * map it read-only. There is no name in /dev/shm and nothing to remove after a crash.
 *
 * Fixed-width layout with magic, version and size in the header (asserted by
 * tests/unit/test_ledger_layout.c). The supervisor writes counters with atomic stores so that a
 * reader sees whole values while they change; single writer, so no locks. The meter's
 * de-duplication state is not here: it is the supervisor's private memory.
 *
 * Whoever maps a ledger trusts nothing in it until size, magic, version and bounds have been
 * checked, and bounds every index and string it reads from it.
 */
#ifndef TBWRAP_LEDGER_H
#define TBWRAP_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tbwrap/amount.h"
#include "tbwrap/meter.h"

#define LEDGER_MAGIC UINT64_C(0x35474c5257425454) /* "TTBWRLG5" little-endian */
#define LEDGER_VERSION 5u
#define LEDGER_MAX_COMMANDS 64
/* Budgets the command line may set: one entry of the table stays for the catch-all key. */
#define LEDGER_MAX_BUDGETS (LEDGER_MAX_COMMANDS - 1)
#define LEDGER_MAX_INSTANCES 1024
#define LEDGER_NAME_LEN 64
#define LEDGER_NOTE_LEN 120
#define LEDGER_NO_LIMIT UINT64_MAX

/* Key of agents whose prompt is not a slash command (or not known). */
#define LEDGER_CATCH_ALL "(prompt)"

enum ledger_mode { LEDGER_MODE_WARN = 0, LEDGER_MODE_BLOCK = 1 };

enum ledger_status {
	LEDGER_INST_FREE = 0,
	LEDGER_INST_RUNNING, /* admitted */
	LEDGER_INST_REFUSED, /* refused at launch (block mode) */
	LEDGER_INST_STOPPED, /* stopped by tbwrap (block mode) */
	LEDGER_INST_EXITED   /* ended on its own */
};

/* Usage counts: the four fields, their total as --count counts it, and what they cost. */
struct ledger_counts {
	uint64_t n[METER_NFIELDS];
	uint64_t total;
	uint64_t pusd; /* pico-USD, as tbwrap priced each call (launcher/prices.c) */
};

struct ledger_budget {
	char name[LEDGER_NAME_LEN]; /* command key ("/test", LEDGER_CATCH_ALL); "" for overall */
	uint64_t limit;		    /* LEDGER_NO_LIMIT when no budget is set */
	struct ledger_counts used;
	uint64_t reserved;   /* outstanding reservations of running agents */
	uint64_t agents;     /* agents admitted */
	uint64_t refused;    /* agents refused at launch */
	uint64_t stopped;    /* agents stopped for a budget */
	uint64_t overshoot;  /* largest amount used ever went over limit (0: never) */
	uint32_t warned;     /* bit i: threshold i (70, 90, 100 %) already reported */
	uint32_t usd_warned; /* the same for the USD budget */
	/* The same budget in USD (pico-USD): an agent is held to whichever it reaches first. */
	uint64_t usd_limit; /* LEDGER_NO_LIMIT when no USD budget is set */
	uint64_t usd_reserved;
	uint64_t usd_overshoot;
	/* Rolling windows (--window): what other runs of the scope used inside the window, read
	 * from the history, in tokens and pico-USD. Admission, stops and thresholds count it on top
	 * of used; 0 without a window. */
	uint64_t others;
	uint64_t usd_others;
};

struct ledger_instance {
	int64_t pid;
	uint64_t start_ns; /* CLOCK_REALTIME at admission */
	uint64_t end_ns;
	uint32_t command;  /* index into commands[] */
	uint32_t status;   /* enum ledger_status */
	int32_t exit_code; /* code, or 128 + signal; -1 unknown */
	uint32_t flags;	   /* LEDGER_F_* */
	uint64_t estimate; /* reserved at admission */
	uint64_t reserved; /* held for it: the estimate, or (block mode) its requests in flight */
	uint64_t requests; /* API requests it started (calls) */
	uint64_t refused_prediction; /* block mode: the prediction of the request refused */
	uint64_t max_under;	     /* largest amount a call exceeded its prediction */
	uint64_t unreported; /* block mode: calls it made whose usage nothing reported (reserved
			      * keeps holding their predictions after it ended) */
	/* The same in pico-USD. */
	uint64_t usd_estimate;
	uint64_t usd_reserved;
	uint64_t usd_refused_prediction;
	uint64_t usd_max_under;
	struct ledger_counts used;
	uint64_t cost_micro_usd; /* largest total_cost_usd of a result line */
	uint64_t results;	 /* result lines seen (a cost of 0 is known once one was) */
	uint64_t anomalies[METER_NANOMALY];
	char result_subtype[METER_SUBTYPE_LEN];
	char note[LEDGER_NOTE_LEN];  /* why it was refused, stopped or not metered; "" when none */
	char model[METER_MODEL_LEN]; /* the model of its latest call that named one; "" none */
	uint64_t unfinal; /* calls whose final usage it never wrote (only the stream's first
			   * snapshot): their output is counted as shown; block mode holds what
			   * they would add at its largest output (meter_unfinal) */
};

#define LEDGER_F_NESTED 1u	 /* ran under another agent's listener */
#define LEDGER_F_UNBOUND 2u	 /* prompt came on stdin: key bound from the transcript later */
#define LEDGER_F_OVER_AT_BIND 4u /* bound to a command whose budget had no room for it */
#define LEDGER_F_UNMETERED 8u	 /* ran, but its usage could not be metered (note says why) */
#define LEDGER_F_ADOPTED 16u	 /* found by the supervisor, not registered (no libtbwrap.so) */
#define LEDGER_F_UNPRICED                                                                          \
	32u /* a call of a model the price table does not have: priced at                          \
	     * the table's highest rates (model says which) */

struct ledger_header {
	uint64_t magic;
	uint32_t version;
	uint32_t header_size; /* sizeof(struct ledger_header) */
	uint64_t size;	      /* total mapping size */
	int64_t creator_pid;
	uint32_t uid;
	uint32_t mode;			 /* enum ledger_mode */
	uint64_t estimate;		 /* default pre-launch estimate per agent */
	uint32_t weights[METER_NFIELDS]; /* --count: 1 for a class the token budgets count */
	uint32_t n_commands;		 /* entries below are immutable once published */
	uint32_t n_instances;		 /* slots handed out */
	uint64_t unlisted; /* agents that ran beyond the instance table (warn mode, unmetered) */
	struct ledger_budget overall;
	struct ledger_budget commands[LEDGER_MAX_COMMANDS];
	struct ledger_instance instances[LEDGER_MAX_INSTANCES];
};

struct ledger {
	struct ledger_header *h;
	size_t size;
	int fd;		/* the memfd: sealed once created; -1 for a reader that closed it */
	bool is_writer; /* the supervisor's own read-write mapping */
};

struct ledger_config {
	uint64_t overall_limit; /* LEDGER_NO_LIMIT for none */
	/* USD budgets in pico-USD: NULL (or LEDGER_NO_LIMIT) for none. Pointers, so that a
	 * config that does not mention them has none. */
	const uint64_t *overall_usd_limit;
	enum ledger_mode mode;
	uint64_t estimate;
	uint32_t weights[METER_NFIELDS];
	size_t n_commands;
	const char *const *command_names;
	const uint64_t *command_limits; /* LEDGER_NO_LIMIT: no token budget for it */
	const uint64_t *command_usd_limits;
};

/* Which budget refused or was crossed; the figures are in its unit. */
struct ledger_refusal {
	bool is_overall; /* else the command budget */
	enum amount_unit unit;
	char name[LEDGER_NAME_LEN];
	uint64_t limit;
	uint64_t used;
	uint64_t reserved;
	uint64_t estimate;
};

/* Creates the ledger: a memfd reserved in full (posix_fallocate, so that a full memory limit is
 * an error now and never a SIGBUS later), mapped read-write, filled from cfg and sealed.
 * Returns 0, or -1 with a one-line reason (cause and fix) in err. */
int ledger_create(struct ledger *l, const struct ledger_config *cfg, char *err, size_t errlen);

/* Maps a ledger fd received from a supervisor read-only. Checks size, seals, magic, version and
 * bounds without writing anything. Takes ownership of fd. Returns 0, or -1 with a reason. */
int ledger_map_readonly(struct ledger *l, int fd, char *err, size_t errlen);

/* Unmaps and closes. */
void ledger_close(struct ledger *l);

/* Index of the command key, inserting an unbudgeted entry when create is set. -1 when absent
 * (or the table is full). */
int ledger_command_index(struct ledger *l, const char *name, bool create);

enum ledger_admission {
	LEDGER_ADMITTED,      /* a slot, no budget exceeded */
	LEDGER_ADMITTED_OVER, /* warn mode: a slot, but a budget is exceeded (*why says which) */
	LEDGER_REFUSED,	      /* block mode: refused (*why); a REFUSED slot when one was free */
	LEDGER_TABLE_FULL     /* no slot left: nothing recorded */
};

/*
 * Check-and-reserve: admits an agent of command cmd when, for the overall budget and the command
 * budget, used + reserved + estimate <= limit (and a used-up budget admits nobody, even with an
 * estimate of 0). *slot gets the instance (-1 when none was recorded).
 */
enum ledger_admission ledger_admit(struct ledger *l, int cmd, pid_t pid, struct amount estimate,
				   struct ledger_refusal *why, int *slot);

/* Records an agent that was refused or could not be metered before it got a slot of its own
 * (status REFUSED or RUNNING+UNMETERED), with the note. Returns the slot or -1. */
int ledger_record_unadmitted(struct ledger *l, int cmd, pid_t pid, enum ledger_status status,
			     const char *note);

/* Adds a usage delta (and what it cost, pico-USD) to an instance, its command and the overall
 * counters (and raises a budget's overshoot when it takes it over its limit). Reservations are
 * the caller's: ledger_set_reserved. */
void ledger_record_delta(struct ledger *l, int inst, const struct meter_usage *delta,
			 uint64_t pusd);

/* Sets what is reserved for an instance (its budgets change by the difference). */
void ledger_set_reserved(struct ledger *l, int inst, struct amount reserved);

/* The instance's latest model, and whether the price table lacked it (LEDGER_F_UNPRICED). */
void ledger_set_model(struct ledger *l, int inst, const char *model, bool is_unpriced);

/*
 * Per-request admission (block mode): would the instance's reservation becoming `reserved` (what
 * it holds for its requests in flight, the new one's prediction included) keep used + reserved
 * within the overall and its command budget? Yes: it is set, true. No: nothing changes, *why says
 * which budget (its estimate field holds the prediction), false.
 */
bool ledger_admit_request(struct ledger *l, int inst, struct amount reserved,
			  struct amount prediction, struct ledger_refusal *why);

/* The same question without an answer recorded: nothing changes. */
bool ledger_request_fits(const struct ledger *l, int inst, struct amount reserved,
			 struct amount prediction, struct ledger_refusal *why);

/* A request refused before it was sent: its prediction, for the report. */
void ledger_note_refused(struct ledger *l, int inst, struct amount prediction);

/* Per-request figures for the report. */
void ledger_note_requests(struct ledger *l, int inst, uint64_t requests, struct amount max_under);

/* An ended agent's calls that nothing reported (unreported) and those whose final usage it never
 * wrote (unfinal): held as its reservation from now on (after ledger_settle, which released
 * what it held). held is zero in warn mode, which holds nothing. */
void ledger_hold_unreported(struct ledger *l, int inst, uint64_t unreported, uint64_t unfinal,
			    struct amount held);

/* Publishes what the meter knows beyond counts: cost, result lines, subtype, anomalies. */
void ledger_publish_meter(struct ledger *l, int inst, const struct meter_core *core);

/* Ends an instance: releases what is left of its reservation, records status and exit code. A
 * STOPPED or REFUSED verdict stays when the agent is later reaped as EXITED (with its code). The
 * first STOPPED verdict counts the stop on the instance's budgets. exit_code -1 keeps a code the
 * agent reported itself. */
void ledger_settle(struct ledger *l, int inst, enum ledger_status status, int exit_code);

/* The status an agent said it exits with (its own report, before it is reaped). */
void ledger_set_exit_code(struct ledger *l, int inst, int exit_code);

/* Sets flags on an instance, and its note when note is not NULL. */
void ledger_mark(struct ledger *l, int inst, uint32_t flags, const char *note);

/* True when the overall or the instance's command budget is exceeded (used > limit), or the
 * instance was bound after launch to a command whose budget had no room for it; fills *why. */
bool ledger_over_limit(const struct ledger *l, int inst, struct ledger_refusal *why);

/* Moves an instance, with its usage and outstanding reservation, to command cmd (the transcript
 * named another command than argv, or the prompt came on stdin). Clears LEDGER_F_UNBOUND; sets
 * LEDGER_F_OVER_AT_BIND when cmd's budget, counting this instance, is exceeded (launch admission
 * would have refused it). Returns false when nothing moved. */
bool ledger_rebind(struct ledger *l, int inst, int cmd);

/* One line for a refusal: "command budget /test: used 12.7K + reserved 0 + estimate 1.0K > limit
 * 10.0K" (or "overall budget: ...", "overall USD budget: used $0.0123 + ..."). */
void ledger_describe_refusal(const struct ledger_refusal *why, char *buf, size_t len);

/* Whether a budget has a limit in that unit. */
bool ledger_has_limit(const struct ledger_budget *b, enum amount_unit unit);

/* Rolling windows: sets what other runs used of budget idx (-1: overall, else a command index),
 * in tokens and in pico-USD. Only the supervisor calls them. */
void ledger_set_others(struct ledger *l, int idx, uint64_t others);
void ledger_set_others_usd(struct ledger *l, int idx, uint64_t pusd);

/* Threshold warnings are said once per run: marks the THRESHOLD_* bits of crossed as reported
 * for budget b in that unit and returns those that had not been (the ones to say now). */
unsigned ledger_claim_thresholds(struct ledger_budget *b, enum amount_unit unit, unsigned crossed);

/* What counts against budget b in tokens: this run's usage plus other runs' in the window. */
uint64_t ledger_budget_used(const struct ledger_budget *b);

/* The same in either unit, and b's limit in it (LEDGER_NO_LIMIT when none is set). */
uint64_t ledger_budget_used_in(const struct ledger_budget *b, enum amount_unit unit);
uint64_t ledger_budget_limit(const struct ledger_budget *b, enum amount_unit unit);

/* Atomic load helpers for readers (status, report, render). */
uint64_t ledger_load(const uint64_t *p);
uint32_t ledger_load32(const uint32_t *p);

/* Bounded counts of a mapped header (a reader never loops on a number it did not check). */
uint32_t ledger_n_commands(const struct ledger_header *h);
uint32_t ledger_n_instances(const struct ledger_header *h);

#endif
