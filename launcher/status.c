/*
 * `tbwrap status [PID]` (include/tbwrap/status.h). The ledger arrives sealed and is mapped
 * read-only: looking never changes what a running session counts, and that is a property of
 * the kernel, not of this code.
 */
#include "tbwrap/status.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tbwrap/ledger.h"
#include "tbwrap/log.h"
#include "tbwrap/proto.h"

#define LIST_MAX 8 /* pids named in the "several" message */
#define SO_ACCEPTCON_FLAG 0x00010000u

/* Launcher pid of a socket name "tbwrap-<uid>-<pid>-<hex>" of this user, or 0. */
static pid_t name_pid(const char *name, unsigned uid)
{
	char prefix[48];
	int n = snprintf(prefix, sizeof(prefix), PROTO_NAME_PREFIX "%u-", uid);
	if (strncmp(name, prefix, (size_t)n) != 0)
		return 0;
	const char *p = name + n;
	long pid = 0;
	if (*p < '1' || *p > '9')
		return 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		pid = pid * 10 + (*p - '0');
		if (pid > INT_MAX)
			return 0;
	}
	if (p[0] != '-' || strlen(p + 1) != 16 || strspn(p + 1, "0123456789abcdef") != 16)
		return 0;
	return (pid_t)pid;
}

int status_select(const char *listing, pid_t pid, char *name, size_t namelen, char *err,
		  size_t errlen)
{
	FILE *f = fopen(listing, "re");
	if (!f) {
		snprintf(err, errlen, "cannot read %s: %s", listing, strerror(errno));
		return 1;
	}
	size_t found = 0;
	pid_t pids[LIST_MAX];
	char line[512];
	unsigned uid = (unsigned)geteuid();
	while (fgets(line, sizeof(line), f)) {
		/* Num RefCount Protocol Flags Type St Inode Path */
		unsigned flags;
		char path[256];
		if (sscanf(line, "%*s %*s %*s %x %*s %*s %*s %255s", &flags, path) != 2)
			continue;
		if (path[0] != '@' || !(flags & SO_ACCEPTCON_FLAG))
			continue;
		pid_t p = name_pid(path + 1, uid);
		if (p == 0 || (pid != 0 && p != pid))
			continue;
		if (found < LIST_MAX)
			pids[found] = p;
		if (found == 0)
			snprintf(name, namelen, "%s", path + 1);
		found++;
	}
	fclose(f);

	if (found == 1)
		return 0;
	if (found == 0) {
		if (pid)
			snprintf(err, errlen, "no tbwrap with pid %d is running (as uid %u)",
				 (int)pid, uid);
		else
			snprintf(err, errlen, "no running tbwrap found (as uid %u)", uid);
		return 1;
	}
	if (pid) {
		snprintf(err, errlen, "several sessions claim pid %d; name none", (int)pid);
		return 2;
	}
	/* Sorted so that the message is stable whatever order the listing gives. */
	size_t n = found < LIST_MAX ? found : LIST_MAX;
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && pids[j - 1] > pids[j]; j--) {
			pid_t t = pids[j];
			pids[j] = pids[j - 1];
			pids[j - 1] = t;
		}
	int len = snprintf(err, errlen, "%zu tbwrap sessions are running (pids", found);
	for (size_t i = 0; i < n && len >= 0 && (size_t)len < errlen; i++)
		len += snprintf(err + len, errlen - (size_t)len, "%s %d", i ? "," : "",
				(int)pids[i]);
	if (len >= 0 && (size_t)len < errlen)
		snprintf(err + len, errlen - (size_t)len, "%s); name one: tbwrap status PID",
			 found > n ? ", ..." : "");
	return 2;
}

/* Asks the supervisor behind name for its ledger; returns the fd or -1 with err set. */
static int fetch_ledger(const char *name, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	memcpy(sa.sun_path + 1, name, n);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, alen) < 0) {
		snprintf(err, errlen, "cannot reach the session @%s: %s", name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* Anyone may bind an abstract name: only a supervisor of ours is believed. */
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 || cred.uid != geteuid()) {
		snprintf(err, errlen, "the session @%s is not served by uid %u: not shown", name,
			 (unsigned)geteuid());
		close(fd);
		return -1;
	}
	struct proto_msg m = {.magic = PROTO_MAGIC, .type = PROTO_STATUS};
	struct proto_reply r;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = &r, .iov_len = sizeof(r)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};
	int ledger = -1;
	ssize_t got = -1;
	if (send(fd, &m, sizeof(m), MSG_NOSIGNAL) == (ssize_t)sizeof(m)) {
		do
			got = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
		while (got < 0 && errno == EINTR);
	}
	struct cmsghdr *c = got > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&ledger, CMSG_DATA(c), sizeof(int));
	close(fd);
	if (got != (ssize_t)sizeof(r) || r.magic != PROTO_MAGIC || ledger < 0) {
		r.text[sizeof(r.text) - 1] = '\0';
		int w = snprintf(err, errlen, "the session @%s sent no ledger%s%.200s", name,
				 got == (ssize_t)sizeof(r) && r.text[0] ? ": " : "",
				 got == (ssize_t)sizeof(r) ? r.text : "");
		(void)w; /* a cut reason is still a reason */
		if (ledger >= 0)
			close(ledger);
		return -1;
	}
	return ledger;
}

int status_main(pid_t pid, const struct render_opts *o)
{
	char name[PROTO_NAME_LEN], err[1024];
	int rc = status_select(STATUS_NET_UNIX, pid, name, sizeof(name), err, sizeof(err));
	if (rc != 0) {
		log_warn("%s", err);
		return rc;
	}
	int fd = fetch_ledger(name, err, sizeof(err));
	if (fd < 0) {
		log_warn("%s", err);
		return 1;
	}
	struct ledger l;
	if (ledger_map_readonly(&l, fd, err, sizeof(err)) < 0) {
		log_warn("%s", err);
		return 1;
	}
	char *text = render_report(l.h, o);
	ledger_close(&l);
	if (!text) {
		log_warn("out of memory");
		return 1;
	}
	fputs(text, stdout);
	free(text);
	return fflush(stdout) == 0 ? 0 : 1;
}
