/*
 * What an agent's preload library and the supervisor say to each other over the supervisor's
 * Unix socket (SOCK_SEQPACKET, one message per record).
 *
 *   agent -> supervisor  PROTO_HELLO, with the seccomp listener fd attached (SCM_RIGHTS), or
 *                        flagged PROTO_F_NESTED (already under a listener the supervisor holds:
 *                        it only needs the pid), or PROTO_F_UNMETERED (no filter could be
 *                        installed; warn mode runs the agent anyway, loudly).
 *   supervisor -> agent  struct proto_reply: status 0 = metered from now on.
 *   agent -> supervisor  PROTO_POKE: the in-process path recorded usage; check budgets now.
 *
 * The HELLO that carries the listener fd is sent with a tagged raw sendmsg: an untagged one would
 * wait for a supervisor that does not hold the listener yet.
 */
#ifndef TBWRAP_PROTO_H
#define TBWRAP_PROTO_H

#include <stdint.h>

#define PROTO_MAGIC 0x54425731u /* "TBW1" */
#define PROTO_PATH_LEN 512

enum proto_type { PROTO_HELLO = 1, PROTO_POKE = 2 };

#define PROTO_F_LISTENER 1u  /* the listener fd is attached */
#define PROTO_F_NESTED 2u    /* under an outer agent's listener */
#define PROTO_F_UNMETERED 4u /* no filter: the agent runs unmetered (warn mode) */
#define PROTO_F_ADOPT 8u     /* the same agent after an exec: already registered */

struct proto_msg {
	uint32_t magic;
	uint32_t type;
	int32_t pid;
	int32_t inst; /* ledger instance slot */
	uint32_t flags;
	uint32_t pad;
	uint64_t stdout_dev; /* identity of the open file on fd 1 at start (DESIGN.md 1.3) */
	uint64_t stdout_ino;
	char config_dir[PROTO_PATH_LEN]; /* transcripts are <config_dir>/projects/.../x.jsonl */
};

struct proto_reply {
	uint32_t magic;
	int32_t status; /* 0 ok, else -errno */
};

#endif
