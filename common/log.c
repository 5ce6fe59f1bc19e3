/*
 * Message helpers shared by the launcher and the preload library. Each message is formatted into
 * one buffer and written with one call, so lines from parallel agents do not interleave mid-line,
 * and stdio is never used (the preload library must not touch the host's stdio buffers).
 */
#include "tbwrap/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int prefix_pid;
static log_writer_fn *writer = write;

void log_set_prefix_pid(int pid)
{
	prefix_pid = pid;
}

void log_set_writer(log_writer_fn *fn)
{
	writer = fn ? fn : write;
}

static void emit(int saved_errno, bool with_errno, const char *fmt, va_list ap)
{
	char buf[1024];
	int n;

	if (prefix_pid)
		n = snprintf(buf, sizeof(buf), "tbwrap[%d]: ", prefix_pid);
	else
		n = snprintf(buf, sizeof(buf), "tbwrap: ");
	if (n < 0)
		return;
	size_t len = (size_t)n;
	int m = vsnprintf(buf + len, sizeof(buf) - len, fmt, ap);
	if (m > 0)
		len += (size_t)m < sizeof(buf) - len ? (size_t)m : sizeof(buf) - len - 1;
	if (with_errno && len < sizeof(buf) - 1) {
		m = snprintf(buf + len, sizeof(buf) - len, ": %s", strerror(saved_errno));
		if (m > 0)
			len += (size_t)m < sizeof(buf) - len ? (size_t)m : sizeof(buf) - len - 1;
	}
	if (len > sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';
	const char *p = buf;
	while (len > 0) {
		ssize_t w = writer(STDERR_FILENO, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		p += w;
		len -= (size_t)w;
	}
}

int log_error_into(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

void log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	emit(saved, false, fmt, ap);
	va_end(ap);
	errno = saved;
}

void log_warn_errno(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	emit(saved, true, fmt, ap);
	va_end(ap);
	errno = saved;
}

void log_die(int status, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	emit(saved, false, fmt, ap);
	va_end(ap);
	_exit(status);
}

void log_die_errno(int status, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	emit(saved, true, fmt, ap);
	va_end(ap);
	_exit(status);
}
