/*
 * Names the launcher uses to talk to the preload library through the environment. They live here
 * and nowhere else.
 */
#ifndef TBWRAP_ENV_H
#define TBWRAP_ENV_H

#define TBWRAP_ENV_LEDGER "TBWRAP_LEDGER" /* shm name of the ledger, "/tbwrap-..." */
#define TBWRAP_ENV_SOCKET "TBWRAP_SOCKET" /* path of the supervisor's Unix socket */
#define TBWRAP_ENV_MATCH "TBWRAP_MATCH"	  /* ':'-separated program names that are agents */
#define TBWRAP_ENV_FILTERED                                                                        \
	"TBWRAP_FILTERED" /* set by an agent for its descendants: a filter                         \
			     of this session is above them */
#define TBWRAP_ENV_AGENT                                                                           \
	"TBWRAP_AGENT" /* "pid:slot" of an agent, for its own image after an                       \
				exec (a launcher that execs the real CLI) */
#define TBWRAP_ENV_ESTIMATE "TBWRAP_ESTIMATE" /* per-agent estimate override (tokens) */
#define TBWRAP_ENV_PRELOAD "LD_PRELOAD"
/* Read by the supervisor, for benchmarks only: "1" leaves SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP off.
 */
#define TBWRAP_ENV_BENCH_NO_SYNC_WAKEUP "TBWRAP_BENCH_NO_SYNC_WAKEUP"

#define TBWRAP_DEFAULT_MATCH "claude"

#endif
