/*
 * The supervisor: tbwrap stays the parent of the command (like timeout(1)) and serves, in one
 * poll loop, the socket agents register on, every seccomp listener they hand over, their pidfds,
 * a signalfd and a timer. It meters what agents write through raw syscalls, enforces block mode,
 * prints threshold warnings and the live status line.
 */
#ifndef TBWRAP_SUPERVISOR_H
#define TBWRAP_SUPERVISOR_H

#include <stdbool.h>
#include <sys/types.h>

#include "tbwrap/ledger.h"
#include "tbwrap/render.h"

struct supervisor_config {
	struct ledger *ledger;
	int listen_fd;	   /* bound, listening SOCK_SEQPACKET socket */
	int signal_fd;	   /* signalfd for SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT */
	pid_t child;	   /* the command */
	bool live;	   /* draw the live status line on stderr */
	const char *match; /* ':'-separated agent names (as TBWRAP_MATCH) */
	struct render_opts render;
};

/* Runs until the command has exited and no registered agent is left. Returns tbwrap's exit
 * status: the command's own (code, or 128 + signal), TBWRAP_EXIT_STOPPED when tbwrap stopped
 * the command itself for its budget, TBWRAP_EXIT_INTERNAL on a supervisor failure. */
int supervisor_run(const struct supervisor_config *cfg);

/* Grace between SIGTERM and SIGKILL for an agent stopped for its budget. */
#define SUPERVISOR_GRACE_MS 2000

#endif
