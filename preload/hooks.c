/*
 * The exported hooks of libtbwrap.so: the libc write family, and close/dup2/dup3 so that what is
 * known about an fd is forgotten when the fd changes.
 *
 * Dormant processes (everything not under an agent's filter) pay one predictable branch and call
 * libc. Non-agents under a filter issue the syscall themselves with the session's tag, which the
 * filter lets through: their output (a Bash tool command printing 100,000 lines) does not take a
 * round trip through the supervisor. Agents meter what was written, from the return value, so a
 * retried or partial write is counted once.
 *
 * pwritev2 with flags uses all six syscall arguments, leaving none for the tag: it is issued
 * untagged and the supervisor meters it; the in-process meter stays out of the way.
 */
#include <errno.h>
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

static void account_buf(int fd, const void *buf, ssize_t ret)
{
	if (ret > 0) {
		struct iovec iov = {.iov_base = (void *)buf, .iov_len = (size_t)ret};
		preload_account(fd, &iov, 1, (size_t)ret);
	}
}

static void account_iov(int fd, const struct iovec *iov, int cnt, ssize_t ret)
{
	if (ret > 0)
		preload_account(fd, iov, cnt, (size_t)ret);
}

HOOK ssize_t write(int fd, const void *buf, size_t n)
{
	if (likely(preload_mode == PRELOAD_DORMANT)) {
		resolve((void *)preload_real.write);
		return preload_real.write(fd, buf, n);
	}
	ssize_t r = tagged(SYS_write, fd, (long)buf, (long)n, 0, 0);
	if (preload_mode == PRELOAD_AGENT)
		account_buf(fd, buf, r);
	return r;
}

HOOK ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	if (likely(preload_mode == PRELOAD_DORMANT)) {
		resolve((void *)preload_real.writev);
		return preload_real.writev(fd, iov, cnt);
	}
	ssize_t r = tagged(SYS_writev, fd, (long)iov, cnt, 0, 0);
	if (preload_mode == PRELOAD_AGENT)
		account_iov(fd, iov, cnt, r);
	return r;
}

static ssize_t do_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t r = tagged(SYS_pwrite64, fd, (long)buf, (long)n, (long)off, 0);
	if (preload_mode == PRELOAD_AGENT)
		account_buf(fd, buf, r);
	return r;
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
	ssize_t r = tagged(SYS_pwritev, fd, (long)iov, cnt, LO(off), HI(off));
	if (preload_mode == PRELOAD_AGENT)
		account_iov(fd, iov, cnt, r);
	return r;
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

HOOK int close(int fd)
{
	resolve((void *)preload_real.close);
	if (preload_mode == PRELOAD_AGENT)
		preload_forget_fd(fd);
	return preload_real.close(fd);
}

HOOK int dup2(int oldfd, int newfd)
{
	resolve((void *)preload_real.dup2);
	int r = preload_real.dup2(oldfd, newfd);
	if (r >= 0 && preload_mode == PRELOAD_AGENT)
		preload_forget_fd(newfd);
	return r;
}

HOOK int dup3(int oldfd, int newfd, int flags)
{
	resolve((void *)preload_real.dup3);
	int r = preload_real.dup3(oldfd, newfd, flags);
	if (r >= 0 && preload_mode == PRELOAD_AGENT)
		preload_forget_fd(newfd);
	return r;
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
