/*
 * What processes say to the supervisor over its Unix socket (SOCK_SEQPACKET, one message per
 * record, in the abstract namespace: a name no process can unlink or replace while the
 * supervisor holds it).
 *
 *   agent -> supervisor   PROTO_HELLO, with the seccomp listener fd attached (SCM_RIGHTS,
 *                         PROTO_F_LISTENER), or flagged PROTO_F_NESTED (already under a
 *                         listener of this session), or PROTO_F_NO_FILTER (no filter could be
 *                         installed; value = errno). The supervisor learns nothing else from
 *                         the agent's words: pid and uid come from SO_PEERCRED, argv, exe,
 *                         environment, cwd and stdio from /proc.
 *   supervisor -> agent   struct proto_reply: the verdict, and one line to print.
 *   agent -> supervisor   PROTO_EXIT (value = the status it is about to exit with).
 *   supervisor -> agent   PROTO_STOPPED, before the first signal of a stop for the budget: an
 *                         agent that would then exit 0 (Claude Code does after SIGINT) exits
 *                         TBWRAP_EXIT_STOPPED instead, so that a script never takes a stopped
 *                         agent for one that finished.
 *   anyone -> supervisor  PROTO_STATUS: the reply carries the sealed, read-only ledger fd.
 *
 * The HELLO that carries a listener fd is sent with a tagged raw sendmsg: an untagged one would
 * wait for a supervisor that does not hold the listener yet.
 */
#ifndef TBWRAP_PROTO_H
#define TBWRAP_PROTO_H

#include <stdint.h>

#define PROTO_MAGIC 0x54425732u /* "TBW2" */
#define PROTO_TEXT_LEN 512
/* Abstract socket names are "tbwrap-<uid>-<pid>-<16 hex digits>" (see status.c). */
#define PROTO_NAME_PREFIX "tbwrap-"
#define PROTO_NAME_LEN 64

enum proto_type { PROTO_HELLO = 1, PROTO_EXIT = 2, PROTO_STATUS = 3, PROTO_STOPPED = 4 };

#define PROTO_F_LISTENER 1u  /* the listener fd is attached */
#define PROTO_F_NESTED 2u    /* under a listener of this session (TBWRAP_FILTERED was set) */
#define PROTO_F_NO_FILTER 4u /* no filter could be installed: value is the errno */

struct proto_msg {
	uint32_t magic;
	uint32_t type;
	uint32_t flags;
	int32_t value;
};

enum proto_verdict {
	PROTO_RUN = 0,	     /* metered from now on */
	PROTO_REFUSE = 1,    /* print text, exit with exit_status */
	PROTO_UNMETERED = 2, /* print text (a loud warning), run: tbwrap cannot meter it */
};

struct proto_reply {
	uint32_t magic;
	int32_t verdict;     /* enum proto_verdict */
	int32_t exit_status; /* PROTO_REFUSE: the status to exit with */
	uint32_t pad;
	char text[PROTO_TEXT_LEN]; /* NUL-terminated; "" when there is nothing to say */
};

#endif
