/*
 * What the supervisor reads about other processes from /proc. Every reader returns false (or -1)
 * when the process is gone or the file cannot be read, and never trusts a length it did not
 * bound itself.
 */
#ifndef TBWRAP_PROCFS_H
#define TBWRAP_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Reads the start of a small /proc file (NUL-terminated, at most len - 1 bytes). */
bool procfs_read(const char *path, char *buf, size_t len);

/* Thread group (process) of a thread, -1 when gone. */
pid_t procfs_tgid(pid_t tid);

/* Parent and start time (clock ticks since boot) of a process. */
bool procfs_stat(pid_t pid, pid_t *ppid, uint64_t *start);

/* A process's argv, read from /proc/PID/cmdline into buf (NUL-separated), split into argv[]
 * (at most max - 1 entries, argv[n] = NULL). Returns argc, or -1. */
int procfs_cmdline(pid_t pid, char *buf, size_t len, char **argv, int max);

/* readlink of /proc/PID/<what> ("exe", "cwd", "fd/3"): NUL-terminated, false when it fails. */
bool procfs_link(pid_t pid, const char *what, char *out, size_t len);

/* Value of one variable of a process's initial environment ("" when unset: returns false). */
bool procfs_environ_var(pid_t pid, const char *name, char *out, size_t len);

/* stat of the open file behind a process's fd. */
bool procfs_fd_stat(pid_t pid, int fd, struct stat *st);

/* File offset and O_APPEND of a process's fd, from /proc/PID/fdinfo. */
bool procfs_fd_position(pid_t pid, int fd, uint64_t *pos, bool *append);

/* The pid a pidfd of a process refers to (the "Pid:" line of its fdinfo), -1 when not one. */
pid_t procfs_pidfd_pid(pid_t pid, int fd);

/* Exit status of a process that is not our child, read while it is a zombie (field 52 of
 * /proc/PID/stat), decoded like a wait status (code, or 128 + signal). -1 when unknown. */
int procfs_zombie_exit_code(pid_t pid);

/* A wait status as tbwrap reports it: code, or 128 + signal. */
int procfs_wait_code(int status);

#endif
