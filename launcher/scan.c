/*
 * The command's process tree, looked at every tick: an agent that started without libtbwrap.so
 * outside every agent (a static or Go launcher that dropped LD_PRELOAD, which the exec hooks do
 * not see) is under no listener of the session, so none of its writes reaches the supervisor.
 * It is found here by what it runs: block mode kills it (refused), warn mode says loudly that it
 * runs unmetered and lists it so. Agents below an agent are not judged here: they are under a
 * listener, and the supervisor adopts them at their first notified write (agents.c).
 *
 * tbwrap is the subreaper of the tree, so a process is in it when its parent is tbwrap, the
 * command or another process of the tree; membership is sticky (orphans come back to tbwrap).
 * Each tick reads /proc/PID/stat only for pids it has not seen, and readlink(/proc/PID/exe) for
 * the tree's processes (an exec that turns one of them into an agent changes it).
 */
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sup.h"
#include "tbwrap/env.h"
#include "tbwrap/log.h"
#include "tbwrap/procfs.h"

/* An agent that has libtbwrap.so in its environment is given this long to register. */
#define REGISTER_GRACE_MS 2000

struct tree_entry {
	pid_t pid;
	pid_t ppid;
	uint64_t start;
	uint64_t exe_hash;
	bool in_tree;
	bool resolved;
	bool judged;
	uint64_t first_ms;
};

struct tree {
	struct tree_entry *e;
	size_t n, cap;
};

static struct tree cur, next_tree;
static int base_filters = -1;

static uint64_t hash_str(const char *p)
{
	uint64_t h = 1469598103934665603ull;
	for (; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return h;
}

static struct tree_entry *find(struct tree *t, pid_t pid)
{
	/* Kept sorted by pid: /proc lists in pid order. */
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (t->e[mid].pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < t->n && t->e[lo].pid == pid ? &t->e[lo] : NULL;
}

static int filters_of(pid_t pid)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!procfs_read(path, buf, sizeof(buf)))
		return -1;
	char *p = strstr(buf, "\nSeccomp_filters:");
	return p ? atoi(p + 17) : 0;
}

/* Whether a process's initial environment will make it register (libtbwrap.so preloaded and
 * this session's socket named). */
static bool will_register(pid_t pid)
{
	char v[PATH_MAX];
	if (!procfs_environ_var(pid, TBWRAP_ENV_SOCKET, v, sizeof(v)))
		return false;
	if (!procfs_environ_var(pid, TBWRAP_ENV_PRELOAD, v, sizeof(v)))
		return false;
	return strstr(v, TBWRAP_LIBRARY_NAME) != NULL;
}

static void judge(struct sup *s, struct tree_entry *e, uint64_t now)
{
	if (agent_by_pid(s, e->pid) >= 0) {
		e->judged = true;
		return;
	}
	/* Under more seccomp filters than tbwrap itself: under an agent's (its listener sees its
	 * writes, and adoption judges it there). */
	int f = filters_of(e->pid);
	if (f < 0 || f > base_filters) {
		e->judged = true;
		return;
	}
	if (!agents_unseen_is_agent(s, e->pid)) {
		e->judged = true;
		return;
	}
	if (!e->first_ms)
		e->first_ms = now;
	if (will_register(e->pid) && now < e->first_ms + REGISTER_GRACE_MS)
		return; /* in its constructor, about to say hello */
	e->judged = true;
	agents_unseen(s, e->pid);
}

static bool grow(struct tree *t)
{
	if (t->n < t->cap)
		return true;
	size_t cap = t->cap ? t->cap * 2 : 512;
	struct tree_entry *n = realloc(t->e, cap * sizeof(*n));
	if (!n)
		return false;
	t->e = n;
	t->cap = cap;
	return true;
}

static bool resolve_tree(struct sup *s, struct tree *t, struct tree_entry *e, int depth)
{
	if (e->resolved || depth > 64)
		return e->in_tree;
	e->resolved = true;
	pid_t self = getpid();
	if (e->pid == s->cfg->child || e->ppid == self || e->ppid == s->cfg->child) {
		e->in_tree = true;
	} else {
		struct tree_entry *p = find(t, e->ppid);
		e->in_tree = p && resolve_tree(s, t, p, depth + 1);
	}
	return e->in_tree;
}

void scan_tree(struct sup *s)
{
	if (base_filters < 0)
		base_filters = filters_of(getpid());
	DIR *d = opendir("/proc");
	if (!d)
		return;
	uint64_t now = sup_now_ms();
	next_tree.n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || pid == getpid() || !grow(&next_tree))
			continue;
		struct tree_entry *old = find(&cur, (pid_t)pid);
		struct tree_entry e;
		pid_t ppid;
		uint64_t start;
		if (old) {
			e = *old;
		} else {
			if (!procfs_stat((pid_t)pid, &ppid, &start))
				continue;
			e = (struct tree_entry){.pid = (pid_t)pid, .ppid = ppid, .start = start};
		}
		next_tree.e[next_tree.n++] = e;
	}
	closedir(d);
	/* readdir of /proc is in pid order; keep it so for find(). */
	for (size_t i = 1; i < next_tree.n; i++)
		if (next_tree.e[i - 1].pid > next_tree.e[i].pid) {
			struct tree_entry t = next_tree.e[i];
			size_t j = i;
			for (; j > 0 && next_tree.e[j - 1].pid > t.pid; j--)
				next_tree.e[j] = next_tree.e[j - 1];
			next_tree.e[j] = t;
		}
	for (size_t i = 0; i < next_tree.n; i++) {
		struct tree_entry *e = &next_tree.e[i];
		if (!resolve_tree(s, &next_tree, e, 0))
			continue;
		/* An exec may turn a process of the tree into an agent: its executable changes. */
		char exe[PATH_MAX];
		uint64_t h = procfs_link(e->pid, "exe", exe, sizeof(exe)) ? hash_str(exe) : 0;
		if (h != e->exe_hash) {
			e->exe_hash = h;
			e->judged = false;
			e->first_ms = 0;
		}
		if (!e->judged)
			judge(s, e, now);
	}
	struct tree t = cur;
	cur = next_tree;
	next_tree = t;
}
