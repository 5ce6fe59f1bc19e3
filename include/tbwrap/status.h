/*
 * `tbwrap status [PID]`: shows the ledger of a running tbwrap.
 *
 * Sessions are found by their supervisor's socket: the launcher listens on the abstract name
 * "tbwrap-<uid>-<launcher pid>-<random>", which /proc/net/unix lists (as "@tbwrap-..."). status
 * connects, checks that the supervisor runs as the same user, and receives the sealed ledger,
 * which it maps read-only.
 */
#ifndef TBWRAP_STATUS_H
#define TBWRAP_STATUS_H

#include <stddef.h>
#include <sys/types.h>

#include "tbwrap/render.h"

#define STATUS_NET_UNIX "/proc/net/unix"

/*
 * Picks the session to show from a listing in the format of /proc/net/unix: pid 0, the only
 * listening session of this user; pid N, the one of launcher N. Returns 0 with its socket name
 * (no leading NUL) in name, 1 when there is none, 2 when there are several and no pid was
 * given; err then holds one line (no "tbwrap: " prefix).
 */
int status_select(const char *listing, pid_t pid, char *name, size_t namelen, char *err,
		  size_t errlen);

/* Prints the report of the selected session on stdout. Returns the exit status: 0 shown,
 * 1 none found or unreadable, 2 several running and no PID given. */
int status_main(pid_t pid, const struct render_opts *o);

#endif
