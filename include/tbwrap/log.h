/*
 * One way to fail. Every message of the launcher starts with "tbwrap: "; messages printed from
 * inside another program (the preload library) start with "tbwrap[PID]: " so that they can be
 * told apart from the host's own output. errno is saved before anything is formatted.
 */
#ifndef TBWRAP_LOG_H
#define TBWRAP_LOG_H

#include <stdbool.h>
#include <stdnoreturn.h>
#include <sys/types.h>

#define TBWRAP_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Exit statuses of tbwrap itself (the command's own status passes through otherwise). */
#define TBWRAP_EXIT_USAGE 2	 /* bad command line: nothing was run */
#define TBWRAP_EXIT_REFUSED 86	 /* an agent was refused at launch (block mode) */
#define TBWRAP_EXIT_STOPPED 87	 /* an agent was stopped for its budget (block mode) */
#define TBWRAP_EXIT_LOST 88	 /* the supervisor went away under a running agent */
#define TBWRAP_EXIT_INTERNAL 125 /* tbwrap itself failed before or while running the command */
#define TBWRAP_EXIT_NOEXEC 126	 /* the command was found but could not be executed */
#define TBWRAP_EXIT_NOTFOUND 127 /* the command was not found */

/* Prefix "tbwrap" or "tbwrap[PID]"; set once by the preload library. */
void log_set_prefix_pid(int pid);

/* How messages reach fd 2; the preload library installs its tagged raw write here so that its own
 * messages never wait on the supervisor. NULL restores write(2). */
typedef ssize_t log_writer_fn(int fd, const void *buf, size_t len);
void log_set_writer(log_writer_fn *fn);

void log_warn(const char *fmt, ...) TBWRAP_PRINTF(1, 2);
void log_warn_errno(const char *fmt, ...) TBWRAP_PRINTF(1, 2);
/* For functions that report a failure in a caller's buffer instead of printing it: formats one
 * line into err (when errlen > 0; cut to fit) and returns -1. */
int log_error_into(char *err, size_t errlen, const char *fmt, ...) TBWRAP_PRINTF(3, 4);
/* Both die helpers end with _exit(): no atexit handlers, no stdio flush (safe inside a host). */
noreturn void log_die(int status, const char *fmt, ...) TBWRAP_PRINTF(2, 3);
noreturn void log_die_errno(int status, const char *fmt, ...) TBWRAP_PRINTF(2, 3);

#endif
