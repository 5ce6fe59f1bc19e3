/*
 * `tbwrap status [PID]`. Opens the ledger read-only: looking must never change what a running
 * session counts, and a read-only mapping makes that a property of the kernel, not of this code.
 */
#include "tbwrap/status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tbwrap/ledger.h"
#include "tbwrap/log.h"

#define NAME_PREFIX "tbwrap-"
#define LIST_MAX 8 /* pids named in the "several" message */

/* Launcher pid of a segment name "tbwrap-<pid>-<random>", or 0 when it is not one of ours. */
static pid_t name_pid(const char *d_name)
{
	size_t plen = strlen(NAME_PREFIX);
	if (strncmp(d_name, NAME_PREFIX, plen) != 0)
		return 0;
	const char *p = d_name + plen;
	long pid = 0;
	if (*p < '1' || *p > '9')
		return 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		pid = pid * 10 + (*p - '0');
		if (pid > INT_MAX)
			return 0;
	}
	if (p[0] != '-' || p[1] == '\0')
		return 0;
	/* The name must fit the ledger's name field with its leading '/'. */
	if (strlen(d_name) + 1 >= LEDGER_NAME_LEN)
		return 0;
	return (pid_t)pid;
}

static bool is_alive(pid_t pid)
{
	return kill(pid, 0) == 0 || errno == EPERM;
}

int status_select(const char *dir, pid_t pid, char *name, size_t namelen, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(err, errlen, "cannot list %s: %s", dir, strerror(errno));
		return 1;
	}
	size_t found = 0;
	pid_t pids[LIST_MAX];
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		pid_t p = name_pid(e->d_name);
		if (p == 0 || (pid != 0 && p != pid) || (pid == 0 && !is_alive(p)))
			continue;
		/* Other users' sessions are not ours to show (and we could not open them). */
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    st.st_uid != geteuid())
			continue;
		if (found < LIST_MAX)
			pids[found] = p;
		if (found == 0)
			snprintf(name, namelen, "/%s", e->d_name);
		found++;
	}
	closedir(d);

	if (found == 1)
		return 0;
	if (found == 0) {
		if (pid)
			snprintf(err, errlen, "no tbwrap with pid %d found (looked for %s/%s%d-*)",
				 (int)pid, dir, NAME_PREFIX, (int)pid);
		else
			snprintf(err, errlen, "no running tbwrap found (looked for %s/%s*)", dir,
				 NAME_PREFIX);
		return 1;
	}
	if (pid) {
		/* Two segments of one launcher cannot happen unless pids were reused across a
		 * crash; which one is current is unknowable, so refuse to guess. */
		snprintf(err, errlen, "several ledgers of pid %d in %s; remove the stale ones",
			 (int)pid, dir);
		return 2;
	}
	/* Sorted so that the message is stable whatever order readdir gives. */
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

int status_main(pid_t pid, const struct render_opts *o)
{
	char name[LEDGER_NAME_LEN], err[512];
	int rc = status_select(STATUS_SHM_DIR, pid, name, sizeof(name), err, sizeof(err));
	if (rc != 0) {
		log_warn("%s", err);
		return rc;
	}

	struct ledger l;
	if (ledger_open(&l, name, false, err, sizeof(err)) < 0) {
		log_warn("%s", err);
		return 1;
	}
	pid_t creator = (pid_t)l.h->creator_pid;
	if (!is_alive(creator))
		log_warn("launcher %d is no longer running; its ledger is shown as it was left",
			 (int)creator);

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
