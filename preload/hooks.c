/*
 * The exported hooks of libtbwrap.so: the libc write family, and the exits (so that an agent
 * records its status).
 *
 * Dormant processes (everything not under an agent's filter) pay one predictable branch and call
 * libc. Non-agents under a filter issue the syscall themselves with the filter's tag, which the
 * filter lets through: their output (a Bash tool command printing 100,000 lines) does not take a
 * round trip through the supervisor. Agents issue writes to their sources (stdout when it is
 * JSON, transcripts) and sockets untagged, for the supervisor to meter and judge, and tag the
 * rest (preload_route).
 *
 * pwritev2 with flags uses all six syscall arguments, leaving none for the tag: it is issued
 * untagged and the supervisor sees it.
 *
 * A symbol that libc lacks (dlsym returned NULL) is never called: the hook makes the system call
 * itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <stdlib.h>
#include <unistd.h>

#include "preload.h"

#define likely(x) __builtin_expect(!!(x), 1)

static inline long tagged(long nr, long a0, long a1, long a2, long a3, long a4)
{
	return syscall(nr, a0, a1, a2, a3, a4, (long)preload_tag);
}

static inline void resolve(void *fn)
{
	if (!fn)
		preload_resolve();
}

/* The real function, or NULL when libc has none (then the caller makes the syscall). */
#define REAL(f) (resolve((void *)preload_real.f), preload_real.f)

/* Offsets are split into two longs for pwritev/pwritev2 the way the kernel expects. */
#define LO(off) ((long)(unsigned long)(off))
#define HI(off) ((long)((unsigned long long)(off) >> 32 >> 32))

/* An agent's write: tagged, or untagged for the supervisor to see (preload_route). */
static ssize_t agent_write(long nr, int fd, long a1, long a2, long a3, long a4)
{
	if (preload_route(fd) == PRELOAD_ROUTE_NOTIFY)
		return syscall(nr, fd, a1, a2, a3, a4, 0L);
	return tagged(nr, fd, a1, a2, a3, a4);
}

/* What a process under an agent's filter does instead of calling libc. */
static ssize_t filtered_write(long nr, int fd, long a1, long a2, long a3, long a4)
{
	if (preload_mode == PRELOAD_AGENT)
		return agent_write(nr, fd, a1, a2, a3, a4);
	return tagged(nr, fd, a1, a2, a3, a4);
}

/* Dormant: libc's function, or the syscall when libc lacks it. */
#define DORMANT(f, nr, ...)                                                                        \
	do {                                                                                       \
		if (likely(preload_mode == PRELOAD_DORMANT)) {                                     \
			if (REAL(f))                                                               \
				return preload_real.f(__VA_ARGS__);                                \
			return syscall(nr, __VA_ARGS__);                                           \
		}                                                                                  \
	} while (0)

HOOK ssize_t write(int fd, const void *buf, size_t n)
{
	DORMANT(write, SYS_write, fd, buf, n);
	return filtered_write(SYS_write, fd, (long)buf, (long)n, 0, 0);
}

HOOK ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	DORMANT(writev, SYS_writev, fd, iov, cnt);
	return filtered_write(SYS_writev, fd, (long)iov, cnt, 0, 0);
}

HOOK ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	DORMANT(pwrite, SYS_pwrite64, fd, buf, n, off);
	return filtered_write(SYS_pwrite64, fd, (long)buf, (long)n, (long)off, 0);
}

HOOK ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	DORMANT(pwrite64, SYS_pwrite64, fd, buf, n, off);
	return filtered_write(SYS_pwrite64, fd, (long)buf, (long)n, (long)off, 0);
}

static ssize_t pwritev_raw(int fd, const struct iovec *iov, int cnt, off_t off)
{
	return syscall(SYS_pwritev, fd, iov, cnt, LO(off), HI(off));
}

HOOK ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (likely(preload_mode == PRELOAD_DORMANT))
		return REAL(pwritev) ? preload_real.pwritev(fd, iov, cnt, off)
				     : pwritev_raw(fd, iov, cnt, off);
	return filtered_write(SYS_pwritev, fd, (long)iov, cnt, LO(off), HI(off));
}

HOOK ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (likely(preload_mode == PRELOAD_DORMANT))
		return REAL(pwritev64) ? preload_real.pwritev64(fd, iov, cnt, off)
				       : pwritev_raw(fd, iov, cnt, off);
	return filtered_write(SYS_pwritev, fd, (long)iov, cnt, LO(off), HI(off));
}

static ssize_t do_pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	if (flags != 0)
		/* No argument left for the tag: the supervisor sees this one. */
		return syscall(SYS_pwritev2, fd, iov, cnt, LO(off), HI(off), flags);
	if (off == -1)
		return filtered_write(SYS_writev, fd, (long)iov, cnt, 0, 0);
	return filtered_write(SYS_pwritev, fd, (long)iov, cnt, LO(off), HI(off));
}

static ssize_t pwritev2_raw(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	return syscall(SYS_pwritev2, fd, iov, cnt, LO(off), HI(off), flags);
}

HOOK ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	if (likely(preload_mode == PRELOAD_DORMANT))
		return REAL(pwritev2) ? preload_real.pwritev2(fd, iov, cnt, off, flags)
				      : pwritev2_raw(fd, iov, cnt, off, flags);
	return do_pwritev2(fd, iov, cnt, off, flags);
}

HOOK ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	if (likely(preload_mode == PRELOAD_DORMANT))
		return REAL(pwritev64v2) ? preload_real.pwritev64v2(fd, iov, cnt, off, flags)
					 : pwritev2_raw(fd, iov, cnt, off, flags);
	return do_pwritev2(fd, iov, cnt, off, flags);
}

/* An agent reports its status before it goes: tbwrap cannot wait for an agent it did not start.
 * An agent stopped for its budget that would exit 0 exits TBWRAP_EXIT_STOPPED (preload.c).
 * exit() passes it to an on_exit handler (preload.c); these three skip those handlers. The Bun
 * runtime of Claude Code ends with quick_exit(). Without a real function, exit_group is what
 * every one of them ends in. */
#define EXIT_HOOK(f)                                                                               \
	HOOK void f(int status)                                                                    \
	{                                                                                          \
		status = preload_exit_status(status);                                              \
		if (preload_mode == PRELOAD_AGENT)                                                 \
			preload_record_exit(status);                                               \
		if (REAL(f))                                                                       \
			preload_real.f(status);                                                    \
		syscall(SYS_exit_group, status);                                                   \
		__builtin_unreachable();                                                           \
	}

EXIT_HOOK(quick_exit)
EXIT_HOOK(_exit)
EXIT_HOOK(_Exit)

/* ---- fd creators: an agent classifies the numbers they hand out afresh (preload_route) ---- */

static inline int fresh_fd(int fd)
{
	if (preload_mode == PRELOAD_AGENT && fd >= 0)
		preload_new_fd(fd);
	return fd;
}

static inline FILE *fresh_file(FILE *f)
{
	if (preload_mode == PRELOAD_AGENT && f)
		preload_new_fd(fileno(f));
	return f;
}

/* open's mode argument is there only with O_CREAT or O_TMPFILE. */
#define OPEN_MODE(flags)                                                                           \
	mode_t mode = 0;                                                                           \
	if ((flags) & (O_CREAT | O_TMPFILE)) {                                                     \
		va_list ap;                                                                        \
		va_start(ap, flags);                                                               \
		mode = va_arg(ap, mode_t);                                                         \
		va_end(ap);                                                                        \
	}

/* An fd creator: libc's, or the syscall that does the same when libc lacks it. */
#define FD_HOOK(f, raw, ...) return fresh_fd(REAL(f) ? preload_real.f(__VA_ARGS__) : (int)(raw))

HOOK int open(const char *path, int flags, ...)
{
	OPEN_MODE(flags);
	FD_HOOK(open, syscall(SYS_openat, AT_FDCWD, path, flags, mode), path, flags, mode);
}

HOOK int open64(const char *path, int flags, ...)
{
	OPEN_MODE(flags);
	FD_HOOK(open64, syscall(SYS_openat, AT_FDCWD, path, flags, mode), path, flags, mode);
}

HOOK int openat(int dirfd, const char *path, int flags, ...)
{
	OPEN_MODE(flags);
	FD_HOOK(openat, syscall(SYS_openat, dirfd, path, flags, mode), dirfd, path, flags, mode);
}

HOOK int openat64(int dirfd, const char *path, int flags, ...)
{
	OPEN_MODE(flags);
	FD_HOOK(openat64, syscall(SYS_openat, dirfd, path, flags, mode), dirfd, path, flags, mode);
}

/* What -D_FORTIFY_SOURCE builds call instead of open/openat. */
HOOK int __open_2(const char *path, int flags)
{
	FD_HOOK(open_2, syscall(SYS_openat, AT_FDCWD, path, flags, 0), path, flags);
}

HOOK int __open64_2(const char *path, int flags)
{
	FD_HOOK(open64_2, syscall(SYS_openat, AT_FDCWD, path, flags, 0), path, flags);
}

HOOK int __openat_2(int dirfd, const char *path, int flags)
{
	FD_HOOK(openat_2, syscall(SYS_openat, dirfd, path, flags, 0), dirfd, path, flags);
}

HOOK int __openat64_2(int dirfd, const char *path, int flags)
{
	FD_HOOK(openat64_2, syscall(SYS_openat, dirfd, path, flags, 0), dirfd, path, flags);
}

HOOK int creat(const char *path, mode_t mode)
{
	FD_HOOK(creat, syscall(SYS_creat, path, mode), path, mode);
}

HOOK int creat64(const char *path, mode_t mode)
{
	FD_HOOK(creat64, syscall(SYS_creat, path, mode), path, mode);
}

/* No syscall makes a FILE: without libc's function there is none to hand out. */
#define FILE_HOOK(f, ...)                                                                          \
	do {                                                                                       \
		if (!REAL(f)) {                                                                    \
			errno = ENOSYS;                                                            \
			return NULL;                                                               \
		}                                                                                  \
		return fresh_file(preload_real.f(__VA_ARGS__));                                    \
	} while (0)

HOOK FILE *fopen(const char *path, const char *how)
{
	FILE_HOOK(fopen, path, how);
}

HOOK FILE *fopen64(const char *path, const char *how)
{
	FILE_HOOK(fopen64, path, how);
}

HOOK FILE *freopen(const char *path, const char *how, FILE *f)
{
	FILE_HOOK(freopen, path, how, f);
}

HOOK int dup(int fd)
{
	FD_HOOK(dup, syscall(SYS_dup, fd), fd);
}

HOOK int dup2(int oldfd, int newfd)
{
	FD_HOOK(dup2, syscall(SYS_dup2, oldfd, newfd), oldfd, newfd);
}

HOOK int dup3(int oldfd, int newfd, int flags)
{
	FD_HOOK(dup3, syscall(SYS_dup3, oldfd, newfd, flags), oldfd, newfd, flags);
}

HOOK int socket(int domain, int type, int protocol)
{
	FD_HOOK(socket, syscall(SYS_socket, domain, type, protocol), domain, type, protocol);
}

HOOK int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	FD_HOOK(accept, syscall(SYS_accept, fd, addr, len), fd, addr, len);
}

HOOK int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	FD_HOOK(accept4, syscall(SYS_accept4, fd, addr, len, flags), fd, addr, len, flags);
}
