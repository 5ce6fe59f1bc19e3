/*
 * Internals of libtbwrap.so shared by its files. Nothing here is exported: the library is built
 * with -fvisibility=hidden and only the hooks in hooks.c and exec.c are marked visible.
 */
#ifndef TBWRAP_PRELOAD_H
#define TBWRAP_PRELOAD_H

#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#define HOOK __attribute__((visibility("default")))

/* What this process is. Read on every hook; written once by the constructor. */
enum preload_mode {
	PRELOAD_DORMANT = 0, /* not under tbwrap's filter: hooks call libc */
	PRELOAD_TAGGED,	     /* a non-agent under an agent's filter: tagged raw syscalls */
	PRELOAD_AGENT	     /* an agent: sources and sockets to the supervisor, the rest tagged */
};

extern int preload_mode;
extern uint64_t preload_tag;

struct preload_real {
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*pwrite)(int, const void *, size_t, off_t);
	ssize_t (*pwrite64)(int, const void *, size_t, off_t);
	ssize_t (*pwritev)(int, const struct iovec *, int, off_t);
	ssize_t (*pwritev64)(int, const struct iovec *, int, off_t);
	ssize_t (*pwritev2)(int, const struct iovec *, int, off_t, int);
	ssize_t (*pwritev64v2)(int, const struct iovec *, int, off_t, int);
	void (*_exit)(int) __attribute__((noreturn));
	void (*quick_exit)(int) __attribute__((noreturn));
	void (*_Exit)(int) __attribute__((noreturn));
	/* fd creators: an agent classifies the numbers they hand out afresh */
	int (*open)(const char *, int, ...);
	int (*open64)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	int (*openat64)(int, const char *, int, ...);
	int (*open_2)(const char *, int);
	int (*open64_2)(const char *, int);
	int (*openat_2)(int, const char *, int);
	int (*openat64_2)(int, const char *, int);
	int (*creat)(const char *, mode_t);
	int (*creat64)(const char *, mode_t);
	FILE *(*fopen)(const char *, const char *);
	FILE *(*fopen64)(const char *, const char *);
	FILE *(*freopen)(const char *, const char *, FILE *);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*socket)(int, int, int);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	/* exec family: the session's environment is put back where a command removed it */
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*execveat)(int, const char *, char *const[], char *const[], int);
	int (*fexecve)(int, char *const[], char *const[]);
	int (*posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
			   const posix_spawnattr_t *, char *const[], char *const[]);
	int (*posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *,
			    const posix_spawnattr_t *, char *const[], char *const[]);
};

extern struct preload_real preload_real;

/* glibc's fortified open variants (-D_FORTIFY_SOURCE), declared only in its private headers. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

/* Resolves the real symbols once (constructor, or first use from an earlier constructor). A
 * symbol libc lacks stays NULL: its hook then issues the system call itself (or fails with
 * ENOSYS where there is none), never calls through NULL. */
void preload_resolve(void);

/* Tagged raw write: passes the filter without a notification. */
ssize_t preload_tagged_write(int fd, const void *buf, size_t len);

/* In an agent: reports the status it is about to exit with (for agents that are not tbwrap's
 * child, whose status tbwrap cannot wait for). */
void preload_record_exit(int status);
/* The status an agent exits with: TBWRAP_EXIT_STOPPED instead of 0 once the supervisor has said
 * it is stopping it for its budget (PROTO_STOPPED). */
int preload_exit_status(int status);

/* In an agent: where a write to fd goes. TAGGED: a tagged syscall, the supervisor does not see
 * it (anything but a source or a socket); NOTIFY: untagged, for the supervisor to see and meter
 * (stdout when it carries JSON, files shaped like transcripts, sockets). */
enum { PRELOAD_ROUTE_TAGGED = 0, PRELOAD_ROUTE_NOTIFY };
int preload_route(int fd);

/* In an agent: libc handed out fd (open, dup, socket families): classify it afresh. */
void preload_new_fd(int fd);

/* Builds and loads the notify filter; returns the listener fd, or -1 with errno (EBUSY: a
 * listener is already above this process). */
int preload_install_filter(uint64_t tag);

/* The session's environment entries, captured by the constructor (exec.c puts them back into
 * the environment of an exec that dropped them). */
void preload_capture_session(const char *self_path);
/* After the constructor changed TBWRAP_FILTERED (an agent that installed its filter). */
void preload_session_filtered(const char *value);

#endif
