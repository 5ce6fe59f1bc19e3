/*
 * `tbwrap status [PID]`: shows the ledger of a running tbwrap.
 *
 * Ledgers are found by name: the launcher names its segment "/tbwrap-<launcher pid>-<random>",
 * which POSIX shared memory shows as <dir>/tbwrap-<pid>-<random> (dir is /dev/shm on Linux).
 */
#ifndef TBWRAP_STATUS_H
#define TBWRAP_STATUS_H

#include <stddef.h>
#include <sys/types.h>

#include "tbwrap/render.h"

#define STATUS_SHM_DIR "/dev/shm"

/*
 * Picks the ledger to show. pid 0: the only one whose launcher is alive; pid N: the one of
 * launcher N (alive or not, so that what a dead launcher left can still be read).
 * Returns 0 with its shm name ("/tbwrap-...") in name, 1 when there is none, 2 when there are
 * several and no pid was given; err then holds one line (no "tbwrap: " prefix).
 */
int status_select(const char *dir, pid_t pid, char *name, size_t namelen, char *err, size_t errlen);

/* Prints the report of the selected ledger on stdout. Returns the exit status: 0 shown,
 * 1 none found or unreadable, 2 several running and no PID given. */
int status_main(pid_t pid, const struct render_opts *o);

#endif
