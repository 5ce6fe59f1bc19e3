/*
 * /proc readers of the supervisor (include/tbwrap/procfs.h). The processes read are agents and
 * what runs below them, as the same user: anything in these files may be hostile, so every
 * number is parsed with an end check and every buffer is bounded here.
 */
#include "tbwrap/procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tbwrap/log.h"

/* Reads up to len - 1 bytes of path into buf and NUL-terminates them; the count, or -1 when it
 * cannot be opened. /proc files are generated per read(2): read until EOF, not once. */
static ssize_t read_upto(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t got = 0;
	while (got < len - 1) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

bool procfs_read(const char *path, char *buf, size_t len)
{
	return read_upto(path, buf, len) > 0;
}

static bool parse_long(const char *p, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(p, &end, 10);
	if (errno || end == p)
		return false;
	*out = v;
	return true;
}

pid_t procfs_tgid(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	if (!procfs_read(path, buf, sizeof(buf)))
		return -1;
	char *p = strstr(buf, "\nTgid:");
	long v;
	return p && parse_long(p + 6, &v) && v > 0 ? (pid_t)v : -1;
}

bool procfs_stat(pid_t pid, pid_t *ppid, uint64_t *start)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!procfs_read(path, buf, sizeof(buf)))
		return false;
	/* The command name (field 2) may contain anything: count fields after its last ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return false;
	int field = 2;
	long pp = -1;
	unsigned long long st = 0;
	for (char *q = p + 1; *q; q++) {
		if (*q != ' ')
			continue;
		field++;
		if (field == 4 && !parse_long(q + 1, &pp))
			return false;
		if (field == 22) {
			char *end;
			st = strtoull(q + 1, &end, 10);
			if (end == q + 1)
				return false;
			break;
		}
	}
	if (field != 22 || pp < 0)
		return false;
	*ppid = (pid_t)pp;
	*start = st;
	return true;
}

int procfs_cmdline(pid_t pid, char *buf, size_t len, char **argv, int max)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	ssize_t r = read_upto(path, buf, len);
	if (r <= 0)
		return -1; /* gone, a zombie or a kernel thread */
	size_t got = (size_t)r;
	int argc = 0;
	for (size_t i = 0; i < got && argc < max - 1;) {
		argv[argc++] = buf + i;
		i += strlen(buf + i) + 1;
	}
	argv[argc] = NULL;
	return argc;
}

bool procfs_link(pid_t pid, const char *what, char *out, size_t len)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	ssize_t n = readlink(path, out, len - 1);
	if (n <= 0)
		return false;
	out[n] = '\0';
	return true;
}

bool procfs_environ_var(pid_t pid, const char *name, char *out, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	/* Read in blocks, keeping a partial entry: environments can be large. */
	char buf[8192];
	size_t have = 0, nlen = strlen(name);
	bool found = false, skipping = false;
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		size_t start = 0;
		for (size_t i = 0; i < have; i++) {
			if (buf[i] != '\0')
				continue;
			const char *e = buf + start;
			if (skipping)
				skipping = false;
			else if (i - start > nlen && memcmp(e, name, nlen) == 0 && e[nlen] == '=') {
				snprintf(out, len, "%s", e + nlen + 1);
				found = true;
			}
			start = i + 1;
		}
		if (found)
			break;
		/* An entry longer than the buffer is not one we look for: drop it. */
		if (start == 0) {
			have = 0;
			skipping = true;
		}
		memmove(buf, buf + start, have - start);
		have -= start;
	}
	close(fd);
	return found && out[0];
}

bool procfs_fd_stat(pid_t pid, int fd, struct stat *st)
{
	char link[64];
	snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)pid, fd);
	return stat(link, st) == 0;
}

bool procfs_fd_position(pid_t pid, int fd, uint64_t *pos, bool *append)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
	if (!procfs_read(path, buf, sizeof(buf)))
		return false;
	char *p = strstr(buf, "pos:");
	char *fl = strstr(buf, "flags:");
	if (!p || !fl)
		return false;
	char *end;
	*pos = strtoull(p + 4, &end, 10);
	if (end == p + 4)
		return false;
	unsigned long flags = strtoul(fl + 6, &end, 8);
	if (end == fl + 6)
		return false;
	*append = flags & O_APPEND;
	return true;
}

pid_t procfs_pidfd_pid(pid_t pid, int fd)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
	if (!procfs_read(path, buf, sizeof(buf)))
		return -1;
	char *p = strstr(buf, "\nPid:");
	long v;
	return p && parse_long(p + 5, &v) && v > 0 ? (pid_t)v : -1;
}

int procfs_wait_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return TBWRAP_EXIT_INTERNAL;
}

int procfs_zombie_exit_code(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!procfs_read(path, buf, sizeof(buf)))
		return -1;
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] != 'Z')
		return -1;
	int field = 2;
	for (; *p && field < 52; p++)
		if (*p == ' ')
			field++;
	long v;
	if (field != 52 || !parse_long(p, &v))
		return -1;
	return procfs_wait_code((int)v);
}
