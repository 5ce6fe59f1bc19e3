/*
 * The exported hooks of libtbwrap.so: the libc write family, and the exits (so that an agent
 * records its status).
 *
 * Dormant processes (everything not under an agent's filter) pay one predictable branch and call
 * libc. Non-agents under a filter issue the syscall themselves with the session's tag, which the
 * filter lets through: their output (a Bash tool command printing 100,000 lines) does not take a
 * round trip through the supervisor. Agents meter what was written to a source, from the return
 * value, so a retried or partial write is counted once; their socket writes go untagged, for
 * the supervisor to see (preload_route).
 *
 * pwritev2 with flags uses all six syscall arguments, leaving none for the tag: it is issued
 * untagged and the supervisor meters it; the in-process meter stays out of the way.
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

#define HOOK __attribute__((visibility("default")))
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

/* Offsets are split into two longs for pwritev/pwritev2 the way the kernel expects. */
#define LO(off) ((long)(unsigned long)(off))
#define HI(off) ((long)((unsigned long long)(off) >> 32 >> 32))

/* An agent's write: routed (preload_route), issued, and accounted when it went to a source. */
static ssize_t agent_write(long nr, int fd, long a1, long a2, long a3, long a4,
			   const struct iovec *iov, int cnt)
{
	int route = preload_route(fd);
	ssize_t r = route == PRELOAD_ROUTE_NOTIFY ? syscall(nr, fd, a1, a2, a3, a4, 0L)
						  : tagged(nr, fd, a1, a2, a3, a4);
	if (route == PRELOAD_ROUTE_METER && r > 0)
		preload_account(fd, iov, cnt, (size_t)r);
	return r;
}

static ssize_t agent_write_buf(long nr, int fd, const void *buf, size_t n, long a3)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
	return agent_write(nr, fd, (long)buf, (long)n, a3, 0, &iov, 1);
}

HOOK ssize_t write(int fd, const void *buf, size_t n)
{
	if (likely(preload_mode == PRELOAD_DORMANT)) {
		resolve((void *)preload_real.write);
		return preload_real.write(fd, buf, n);
	}
	if (preload_mode == PRELOAD_AGENT)
		return agent_write_buf(SYS_write, fd, buf, n, 0);
	return tagged(SYS_write, fd, (long)buf, (long)n, 0, 0);
}

HOOK ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	if (likely(preload_mode == PRELOAD_DORMANT)) {
		resolve((void *)preload_real.writev);
		return preload_real.writev(fd, iov, cnt);
	}
	if (preload_mode == PRELOAD_AGENT)
		return agent_write(SYS_writev, fd, (long)iov, cnt, 0, 0, iov, cnt);
	return tagged(SYS_writev, fd, (long)iov, cnt, 0, 0);
}

static ssize_t do_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (preload_mode == PRELOAD_AGENT)
		return agent_write_buf(SYS_pwrite64, fd, buf, n, (long)off);
	return tagged(SYS_pwrite64, fd, (long)buf, (long)n, (long)off, 0);
}

HOOK ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (likely(preload_mode == PRELOAD_DORMANT)) {
		resolve((void *)preload_real.pwrite);
		return preload_real.pwrite(fd, buf, n, off);
	}
	return do_pwrite(fd, buf, n, off);
}

HOOK ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	if (likely(preload_mode == PRELOAD_DORMANT)) {
		resolve((void *)preload_real.pwrite64);
		return preload_real.pwrite64(fd, buf, n, off);
	}
	return do_pwrite(fd, buf, n, off);
}

static ssize_t do_pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (preload_mode == PRELOAD_AGENT)
		return agent_write(SYS_pwritev, fd, (long)iov, cnt, LO(off), HI(off), iov, cnt);
	return tagged(SYS_pwritev, fd, (long)iov, cnt, LO(off), HI(off));
}

HOOK ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (likely(preload_mode == PRELOAD_DORMANT)) {
		resolve((void *)preload_real.pwritev);
		return preload_real.pwritev(fd, iov, cnt, off);
	}
	return do_pwritev(fd, iov, cnt, off);
}

HOOK ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (likely(preload_mode == PRELOAD_DORMANT)) {
		resolve((void *)preload_real.pwritev64);
		return preload_real.pwritev64(fd, iov, cnt, off);
	}
	return do_pwritev(fd, iov, cnt, off);
}

static ssize_t do_pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	if (flags != 0)
		/* No argument left for the tag: the supervisor sees and meters this one. */
		return syscall(SYS_pwritev2, fd, iov, cnt, LO(off), HI(off), flags);
	if (off == -1)
		return writev(fd, iov, cnt);
	return do_pwritev(fd, iov, cnt, off);
}

HOOK ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	if (likely(preload_mode == PRELOAD_DORMANT)) {
		resolve((void *)preload_real.pwritev2);
		return preload_real.pwritev2(fd, iov, cnt, off, flags);
	}
	return do_pwritev2(fd, iov, cnt, off, flags);
}

HOOK ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	if (likely(preload_mode == PRELOAD_DORMANT)) {
		resolve((void *)preload_real.pwritev64v2);
		return preload_real.pwritev64v2(fd, iov, cnt, off, flags);
	}
	return do_pwritev2(fd, iov, cnt, off, flags);
}

/* An agent records its status before it goes: tbwrap cannot wait for an agent it did not start.
 * exit() passes it to an on_exit handler (preload.c); these three skip those handlers. The Bun
 * runtime of Claude Code ends with quick_exit(). */
HOOK void quick_exit(int status)
{
	resolve((void *)preload_real.quick_exit);
	if (preload_mode == PRELOAD_AGENT)
		preload_record_exit(status);
	preload_real.quick_exit(status);
}

HOOK void _exit(int status)
{
	resolve((void *)preload_real._exit);
	if (preload_mode == PRELOAD_AGENT)
		preload_record_exit(status);
	preload_real._exit(status);
}

HOOK void _Exit(int status)
{
	resolve((void *)preload_real._Exit);
	if (preload_mode == PRELOAD_AGENT)
		preload_record_exit(status);
	preload_real._Exit(status);
}

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

HOOK int open(const char *path, int flags, ...)
{
	OPEN_MODE(flags);
	resolve((void *)preload_real.open);
	return fresh_fd(preload_real.open(path, flags, mode));
}

HOOK int open64(const char *path, int flags, ...)
{
	OPEN_MODE(flags);
	resolve((void *)preload_real.open64);
	return fresh_fd(preload_real.open64(path, flags, mode));
}

HOOK int openat(int dirfd, const char *path, int flags, ...)
{
	OPEN_MODE(flags);
	resolve((void *)preload_real.openat);
	return fresh_fd(preload_real.openat(dirfd, path, flags, mode));
}

HOOK int openat64(int dirfd, const char *path, int flags, ...)
{
	OPEN_MODE(flags);
	resolve((void *)preload_real.openat64);
	return fresh_fd(preload_real.openat64(dirfd, path, flags, mode));
}

/* What -D_FORTIFY_SOURCE builds call instead of open/openat. */
HOOK int __open_2(const char *path, int flags)
{
	resolve((void *)preload_real.open_2);
	return fresh_fd(preload_real.open_2(path, flags));
}

HOOK int __open64_2(const char *path, int flags)
{
	resolve((void *)preload_real.open64_2);
	return fresh_fd(preload_real.open64_2(path, flags));
}

HOOK int __openat_2(int dirfd, const char *path, int flags)
{
	resolve((void *)preload_real.openat_2);
	return fresh_fd(preload_real.openat_2(dirfd, path, flags));
}

HOOK int __openat64_2(int dirfd, const char *path, int flags)
{
	resolve((void *)preload_real.openat64_2);
	return fresh_fd(preload_real.openat64_2(dirfd, path, flags));
}

HOOK int creat(const char *path, mode_t mode)
{
	resolve((void *)preload_real.creat);
	return fresh_fd(preload_real.creat(path, mode));
}

HOOK int creat64(const char *path, mode_t mode)
{
	resolve((void *)preload_real.creat64);
	return fresh_fd(preload_real.creat64(path, mode));
}

HOOK FILE *fopen(const char *path, const char *how)
{
	resolve((void *)preload_real.fopen);
	return fresh_file(preload_real.fopen(path, how));
}

HOOK FILE *fopen64(const char *path, const char *how)
{
	resolve((void *)preload_real.fopen64);
	return fresh_file(preload_real.fopen64(path, how));
}

HOOK FILE *freopen(const char *path, const char *how, FILE *f)
{
	resolve((void *)preload_real.freopen);
	return fresh_file(preload_real.freopen(path, how, f));
}

HOOK int dup(int fd)
{
	resolve((void *)preload_real.dup);
	return fresh_fd(preload_real.dup(fd));
}

HOOK int dup2(int oldfd, int newfd)
{
	resolve((void *)preload_real.dup2);
	return fresh_fd(preload_real.dup2(oldfd, newfd));
}

HOOK int dup3(int oldfd, int newfd, int flags)
{
	resolve((void *)preload_real.dup3);
	return fresh_fd(preload_real.dup3(oldfd, newfd, flags));
}

HOOK int socket(int domain, int type, int protocol)
{
	resolve((void *)preload_real.socket);
	return fresh_fd(preload_real.socket(domain, type, protocol));
}

HOOK int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	resolve((void *)preload_real.accept);
	return fresh_fd(preload_real.accept(fd, addr, len));
}

HOOK int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	resolve((void *)preload_real.accept4);
	return fresh_fd(preload_real.accept4(fd, addr, len, flags));
}
