/*
 * Ledger: the shared-memory record of budgets and usage.
 *
 * Created by the launcher (POSIX shm, O_EXCL, mode 0600, unguessable name), opened by every
 * agent's preload library and by `tbwrap status`. Fixed-width layout with magic, version and size
 * in the header (asserted by tests/unit/test_ledger_layout.c). Counters are updated with __atomic
 * builtins so that deltas from many processes add up exactly; admission (check-and-reserve) and
 * command-table insertion take the header's robust process-shared mutex, so agents launched at
 * the same instant cannot all slip under a budget that holds only some of them.
 *
 * Only the creator unlinks the segment.
 */
#ifndef TBWRAP_LEDGER_H
#define TBWRAP_LEDGER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tbwrap/meter.h"

#define LEDGER_MAGIC UINT64_C(0x31474c5257425454) /* "TTBWRLG1" little-endian */
#define LEDGER_VERSION 1u
#define LEDGER_MAX_COMMANDS 64
#define LEDGER_MAX_INSTANCES 1024
#define LEDGER_NAME_LEN 64
#define LEDGER_NO_LIMIT UINT64_MAX

/* Key of agents whose prompt is not a slash command (or not known). */
#define LEDGER_CATCH_ALL "(prompt)"

enum ledger_mode { LEDGER_MODE_WARN = 0, LEDGER_MODE_BLOCK = 1 };

enum ledger_status {
	LEDGER_INST_FREE = 0,
	LEDGER_INST_RUNNING,   /* admitted, metered */
	LEDGER_INST_UNMETERED, /* admitted, but no filter could be installed (warn mode) */
	LEDGER_INST_REFUSED,   /* refused at launch (block mode) */
	LEDGER_INST_STOPPED,   /* stopped by tbwrap for its budget */
	LEDGER_INST_EXITED     /* ended on its own */
};

/* Usage counts: the four fields and their weighted total. Updated with __atomic only. */
struct ledger_counts {
	uint64_t n[METER_NFIELDS];
	uint64_t total;
};

struct ledger_budget {
	char name[LEDGER_NAME_LEN]; /* command key ("/test", LEDGER_CATCH_ALL); "" for overall */
	uint64_t limit;		    /* LEDGER_NO_LIMIT when no budget is set */
	struct ledger_counts used;
	uint64_t reserved; /* outstanding reservations of running agents */
	uint64_t agents;   /* agents admitted */
	uint64_t refused;  /* agents refused at launch */
	uint64_t stopped;  /* agents stopped for a budget */
	uint32_t warned;   /* bit i: threshold i (70, 90, 100 %) already reported */
	uint32_t pad;
};

struct ledger_instance {
	pthread_mutex_t lock; /* robust, process-shared: guards core and reserved */
	int64_t pid;
	uint64_t start_ns; /* CLOCK_REALTIME at admission */
	uint64_t end_ns;
	uint32_t command;  /* index into commands[] */
	uint32_t status;   /* enum ledger_status, __atomic */
	int32_t exit_code; /* wait status decoded: code, or 128 + signal; -1 unknown */
	uint32_t flags;	   /* LEDGER_F_* */
	uint64_t estimate; /* reserved at admission */
	uint64_t reserved; /* part of the estimate not yet covered by usage */
	struct ledger_counts used;
	struct meter_core core;
};

#define LEDGER_F_NESTED 1u	 /* ran under another agent's listener */
#define LEDGER_F_LIBC 2u	 /* some usage came through the in-process libc path */
#define LEDGER_F_UNBOUND 4u	 /* prompt came on stdin: key bound from the transcript later */
#define LEDGER_F_OVER_AT_BIND 8u /* bound to a command whose budget had no room for it */

struct ledger_header {
	uint64_t magic;
	uint32_t version;
	uint32_t header_size; /* sizeof(struct ledger_header) */
	uint64_t size;	      /* total mapping size */
	int64_t creator_pid;
	uint32_t uid;
	uint32_t mode;	   /* enum ledger_mode */
	uint64_t estimate; /* default pre-launch estimate per agent */
	uint64_t tag;	   /* marks tagged raw syscalls that the filter lets through */
	uint32_t weights[METER_NFIELDS];
	uint32_t n_commands;  /* __atomic; entries below are immutable once published */
	uint32_t n_instances; /* __atomic; slots handed out */
	uint32_t flags;
	uint32_t pad;
	pthread_mutex_t lock; /* robust, process-shared: admission and command insertion */
	struct ledger_budget overall;
	struct ledger_budget commands[LEDGER_MAX_COMMANDS];
	struct ledger_instance instances[LEDGER_MAX_INSTANCES];
};

struct ledger {
	struct ledger_header *h;
	size_t size;
	bool is_creator;
	char name[LEDGER_NAME_LEN]; /* shm name, "/tbwrap-..." */
};

struct ledger_config {
	uint64_t overall_limit; /* LEDGER_NO_LIMIT for none */
	enum ledger_mode mode;
	uint64_t estimate;
	uint32_t weights[METER_NFIELDS];
	size_t n_commands;
	const char *const *command_names;
	const uint64_t *command_limits;
};

/* Which budget refused or was crossed. */
struct ledger_refusal {
	bool is_overall; /* else the command budget */
	char name[LEDGER_NAME_LEN];
	uint64_t limit;
	uint64_t used;
	uint64_t reserved;
	uint64_t estimate;
};

/* Creates the segment with an unguessable name (O_EXCL, 0600) and fills it from cfg.
 * Returns 0, or -1 with a one-line reason in err. */
int ledger_create(struct ledger *l, const struct ledger_config *cfg, char *err, size_t errlen);

/* Opens an existing segment read-write (or read-only when !writable). Validates magic, version,
 * size and owner; refuses a foreign, truncated or corrupt segment without writing to it.
 * Returns 0, or -1 with a one-line reason in err. */
int ledger_open(struct ledger *l, const char *name, bool writable, char *err, size_t errlen);

/* Unmaps; the creator also unlinks the name. */
void ledger_close(struct ledger *l);

/* Index of the command key, inserting an unbudgeted entry when create is set. -1 when absent
 * (or the table is full). */
int ledger_command_index(struct ledger *l, const char *name, bool create);

/*
 * Check-and-reserve in one step under the ledger lock: admits an agent of command cmd when, for
 * the overall budget and the command budget, used + reserved + estimate <= limit. In warn mode it
 * always admits but still reports the budget that would be exceeded through *why (return 1).
 * Returns the instance slot (>= 0) when admitted with no budget exceeded, -2 when refused (block
 * mode; *why says which budget; a slot is still recorded with status REFUSED when one is free and
 * its index is stored in *refused_slot, else -1), -3 when the instance table is full.
 * In warn mode an admission that exceeds a budget returns the slot and sets *exceeded.
 */
int ledger_admit(struct ledger *l, int cmd, pid_t pid, uint64_t estimate, bool *exceeded,
		 struct ledger_refusal *why, int *refused_slot);

/* Adds a usage delta to an instance, its command and the overall counters (atomics), and releases
 * the same amount of the instance's outstanding reservation. */
void ledger_record_delta(struct ledger *l, int inst, const struct meter_usage *delta);

/* Ends an instance: releases what is left of its reservation, records status and exit code
 * (exit_code -1, unknown, keeps what the agent recorded itself when it called exit()). */
void ledger_settle(struct ledger *l, int inst, enum ledger_status status, int exit_code);

/* True when the overall or the instance's command budget is exceeded (used > limit), or the
 * instance was bound after launch to a command whose budget had no room for it; fills *why. */
bool ledger_over_limit(const struct ledger *l, int inst, struct ledger_refusal *why);

/* Locks an instance's robust mutex (recovering it when its owner died). */
void ledger_instance_lock(struct ledger *l, int inst);
void ledger_instance_unlock(struct ledger *l, int inst);

/* Feeds metered bytes of one instance's source: under the instance lock, meter_feed() into the
 * instance's core, then ledger_record_delta() of what changed. Returns true when usage changed. */
bool ledger_meter_feed(struct ledger *l, int inst, struct meter_stream *s, uint64_t pos,
		       const void *data, size_t len);

/* Same for the end of a source. */
bool ledger_meter_finish(struct ledger *l, int inst, struct meter_stream *s);

/* Moves an instance, with its usage and outstanding reservation, to command cmd (an agent whose
 * prompt came on stdin, once its transcript names the command). Clears LEDGER_F_UNBOUND; sets
 * LEDGER_F_OVER_AT_BIND when cmd's budget, counting this instance, is exceeded (launch admission
 * would have refused it). Returns false when nothing moved. */
bool ledger_rebind(struct ledger *l, int inst, int cmd);

/* Atomic load helper for readers (status, report). */
uint64_t ledger_load(const uint64_t *p);

#endif
