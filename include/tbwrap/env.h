/*
 * Names the launcher uses to talk to the preload library through the environment. They live here
 * and nowhere else.
 */
#ifndef TBWRAP_ENV_H
#define TBWRAP_ENV_H

/* Abstract socket name of the supervisor ("tbwrap-<uid>-<pid>-<random>", no leading NUL). */
#define TBWRAP_ENV_SOCKET "TBWRAP_SOCKET"
/* ':'-separated program names that are agents. */
#define TBWRAP_ENV_MATCH "TBWRAP_MATCH"
/* Set by an agent for its descendants: the tag (16 hex digits) that its filter lets through.
 * Its presence says a filter of this session is above them. */
#define TBWRAP_ENV_FILTERED "TBWRAP_FILTERED"
#define TBWRAP_ENV_PRELOAD "LD_PRELOAD"
/* Read by the supervisor, for benchmarks only: "1" leaves SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP off.
 */
#define TBWRAP_ENV_BENCH_NO_SYNC_WAKEUP "TBWRAP_BENCH_NO_SYNC_WAKEUP"

#define TBWRAP_DEFAULT_MATCH "claude"
#define TBWRAP_LIBRARY_NAME "libtbwrap.so"

#endif
