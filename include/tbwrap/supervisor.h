/*
 * The supervisor: tbwrap stays the parent of the command (like timeout(1)) and serves, in one
 * epoll loop, the socket agents register on, every seccomp listener they hand over, their pidfds
 * and a signalfd. It meters what agents write, enforces block mode, prints threshold warnings
 * and the live status line. It alone writes the ledger. Its modules are listed in launcher/sup.h.
 */
#ifndef TBWRAP_SUPERVISOR_H
#define TBWRAP_SUPERVISOR_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "tbwrap/history.h"
#include "tbwrap/ledger.h"
#include "tbwrap/prices.h"
#include "tbwrap/render.h"

struct supervisor_config {
	struct ledger *ledger;
	int listen_fd;	   /* bound, listening SOCK_SEQPACKET socket */
	int signal_fd;	   /* signalfd for supervisor_signals() */
	pid_t child;	   /* the command */
	bool live;	   /* draw the live status line on stderr */
	const char *match; /* ':'-separated agent names (as TBWRAP_MATCH) */
	struct render_opts render;
	const struct price_table *prices; /* what each call costs (USD budgets, the report) */
	/* --estimate auto: each command's launch estimate from the history; NULL: --estimate. */
	const struct history_estimates *estimates;
	/* Called on every tick (the history's sync: this run's usage out, other runs' in through
	 * ledger_set_others); NULL for none. */
	void (*tick_hook)(void *ctx, struct ledger *l);
	void *tick_ctx;
};

/* Runs until the command has exited and no registered agent is left. Returns tbwrap's exit
 * status: the command's own (code, or 128 + signal), TBWRAP_EXIT_STOPPED when tbwrap stopped
 * the command itself for its budget, TBWRAP_EXIT_INTERNAL on a supervisor failure. */
int supervisor_run(const struct supervisor_config *cfg);

/*
 * The signals tbwrap takes through its signalfd, like tini: every asynchronous signal it can be
 * sent, so that none of them kills it while its command runs. SIGCHLD reaps; SIGTSTP is passed
 * on and then stops tbwrap too (job control keeps working); every other one is passed on to the
 * command, or to the agents still running once the command has exited. Left out: SIGKILL and
 * SIGSTOP (they cannot be caught), the synchronous faults, and SIGTTIN and SIGTTOU, which
 * tbwrap ignores (a background tbwrap may still draw on the terminal). A SIGPIPE or SIGXFSZ that
 * tbwrap's own write raised is not passed on: the failed write is reported instead.
 */
void supervisor_signals(sigset_t *set);

/* Grace between SIGTERM and SIGKILL for an agent stopped for its budget. */
#define SUPERVISOR_GRACE_MS 2000

#endif
