/*
 * The supervisor's poll loop (see include/tbwrap/supervisor.h).
 *
 * Metering raw syscalls: a notification names the thread, the syscall and its arguments. The
 * written bytes are read with process_vm_readv, the notification id is checked again afterwards
 * (the thread may have died and its id been reused while we read), the bytes are fed to the
 * ledger for the agent's stdout (identified by the open file, DESIGN.md 1.3) or transcript, and
 * the syscall is let through with SECCOMP_USER_NOTIF_FLAG_CONTINUE.
 *
 * CONTINUE means we see what the process asked to write, not what it wrote. Each source therefore
 * gets a stream position for what it is fed: the file offset for regular files (O_APPEND: the
 * size), and for pipes the rule that a retry (EAGAIN, restart, the rest of a partial write) is
 * issued by the same thread from the same buffer, ending where the previous one ended, with the
 * same bytes. The meter skips bytes before the position it has reached, so a re-sent write never
 * counts twice.
 */
#include "tbwrap/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tbwrap/agent.h"
#include "tbwrap/env.h"
#include "tbwrap/log.h"
#include "tbwrap/proto.h"

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1UL
#endif

#define MAX_AGENTS LEDGER_MAX_INSTANCES
/* Every running agent keeps its connection (its hang-up tells the agent the supervisor is gone),
 * plus a few that are still saying hello or were not ours. */
#define MAX_CONNS (LEDGER_MAX_INSTANCES + 16)
/* stdout and transcripts (the session's, and one per subagent) of one agent */
#define MAX_SOURCES 64
#define TID_CACHE 4096
#define READ_CHUNK ((size_t)1 << 20)
/* Bytes of a pipe write kept to recognise its retry; a longer write is not compared. */
#define RETRY_KEEP ((size_t)1 << 20)
#define TICK_MS 100
/* Block mode: a socket write after this much socket silence starts a new API request. */
#define REQUEST_GAP_MS 50
/* Longest a request waits for the previous call's usage to be written. */
#define HOLD_MS 1000
/* How long orphans of an exited command may take to become agents and register. */
#define ORPHAN_GRACE_MS 1000
#define LIVE_MS 500

enum src_kind { SRC_STDOUT = 1, SRC_TRANSCRIPT };

struct source {
	dev_t dev;
	ino_t ino;
	int kind;
	bool seekable;
	struct meter_stream s;
	/* regular files: where this agent's last write to it ended, and its length */
	bool file_seen;
	uint64_t file_next;
	size_t file_last_len;
	/* last write, to recognise a retry on a pipe */
	pid_t last_tid;
	uint64_t last_addr;
	size_t last_len;
	uint64_t last_start;
	char *last_data;
	size_t last_cap;
};

struct agent {
	bool used;
	bool ended;
	bool stopping;
	bool unmetered;
	bool warned_sources;
	pid_t pid;
	int inst;
	int pidfd;
	uint64_t kill_at_ms;
	dev_t stdout_dev;
	ino_t stdout_ino;
	char config_dir[PROTO_PATH_LEN];
	size_t config_len;
	int n_sources;
	struct source sources[MAX_SOURCES];
	/* Block mode's request barrier (see hold_request). */
	uint64_t last_sock_ms;	   /* last socket write of the agent */
	uint64_t usage_at_request; /* instance total when its last request started */
	bool had_request;
	bool held; /* a request is waiting in held_lfd/held_id */
	int held_lfd;
	uint64_t held_id;
	uint64_t held_until_ms;
};

struct listener {
	int fd;
	pid_t owner;
};

struct tid_entry {
	pid_t tid;
	pid_t tgid;
	int agent; /* index, -1 for a non-agent */
};

struct sup {
	const struct supervisor_config *cfg;
	struct ledger *l;
	struct agent agents[MAX_AGENTS];
	int n_agents; /* high-water mark of agents[] */
	struct listener listeners[MAX_AGENTS];
	int n_listeners;
	int conns[MAX_CONNS];
	int n_conns;
	struct tid_entry tids[TID_CACHE];
	pid_t rogue[64]; /* agents by name that never registered, already reported */
	int n_rogue;
	struct seccomp_notif *req;
	struct seccomp_notif_resp *resp;
	size_t req_size, resp_size;
	char *buf;
	bool child_done;
	bool has_orphans;
	uint64_t child_done_ms;
	int child_status;
	bool child_stopped;
	bool live_drawn;
	uint64_t next_lost_ms;
	bool last_was_source; /* the write just handled went to a metered source */
	uint64_t next_live_ms;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The live line is redrawn in place; anything else printed must first wipe it. */
static void clear_live(struct sup *s)
{
	if (s->live_drawn) {
		static const char wipe[] = "\r\033[K";
		if (write(STDERR_FILENO, wipe, sizeof(wipe) - 1) < 0) {
			/* nothing to do: stderr is gone */
		}
		s->live_drawn = false;
	}
}

static void draw_live(struct sup *s)
{
	if (!s->cfg->live)
		return;
	uint64_t t = now_ms();
	if (t < s->next_live_ms)
		return;
	s->next_live_ms = t + LIVE_MS;
	char *line = render_status_line(s->l->h, &s->cfg->render);
	if (!line)
		return;
	char buf[2048];
	int n = snprintf(buf, sizeof(buf), "\r\033[K%s", line);
	free(line);
	if (n > 0 &&
	    write(STDERR_FILENO, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1) > 0)
		s->live_drawn = true;
}

/* ---- agents ---------------------------------------------------------------------------- */

static int agent_by_pid(struct sup *s, pid_t pid)
{
	for (int i = 0; i < s->n_agents; i++)
		if (s->agents[i].used && !s->agents[i].ended && s->agents[i].pid == pid)
			return i;
	return -1;
}

static void tid_forget_tgid(struct sup *s, pid_t tgid)
{
	for (int i = 0; i < TID_CACHE; i++)
		if (s->tids[i].tid && s->tids[i].tgid == tgid)
			s->tids[i].tid = 0;
}

/* Reads the start of a small /proc file (NUL-terminated); false when the process is gone. */
static bool read_proc(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return true;
}

static pid_t read_tgid(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	if (!read_proc(path, buf, sizeof(buf)))
		return -1;
	char *p = strstr(buf, "\nTgid:");
	return p ? (pid_t)strtol(p + 6, NULL, 10) : -1;
}

/*
 * A process below an agent (it is under the agent's filter) that is itself an agent by name but
 * never registered: started with libtbwrap.so removed from LD_PRELOAD. Its writes reach us, but
 * we cannot tell its usage from its other writes: never silently. Warn mode says so; block mode
 * stops it, as it would refuse an agent it cannot meter.
 */
static void check_unregistered(struct sup *s, pid_t tgid)
{
	for (int i = 0; i < s->n_rogue; i++)
		if (s->rogue[i] == tgid)
			return;
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)tgid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	char *argv[3] = {buf, NULL, NULL};
	int argc = 1;
	char *second = memchr(buf, '\0', (size_t)n);
	if (second && second + 1 < buf + n) {
		argv[1] = second + 1;
		argc = 2;
	}
	if (!agent_is_match(argc, argv, s->cfg->match))
		return;
	if (s->n_rogue < (int)(sizeof(s->rogue) / sizeof(s->rogue[0])))
		s->rogue[s->n_rogue++] = tgid;
	clear_live(s);
	if (s->l->h->mode == LEDGER_MODE_BLOCK) {
		log_warn("stopping process %d (%s): an agent without libtbwrap.so (LD_PRELOAD "
			 "removed?) cannot be metered (block mode)",
			 (int)tgid, buf);
		kill(tgid, SIGKILL);
	} else {
		log_warn("WARNING: process %d (%s) is an agent without libtbwrap.so (LD_PRELOAD "
			 "removed?): its usage is NOT metered",
			 (int)tgid, buf);
	}
}

/* Which agent a notifying thread belongs to (-1: not an agent). */
static int agent_of_tid(struct sup *s, pid_t tid, pid_t *tgid)
{
	struct tid_entry *e = &s->tids[(unsigned)tid % TID_CACHE];
	if (e->tid != tid) {
		pid_t g = read_tgid(tid);
		if (g < 0)
			return -1; /* gone already */
		e->tid = tid;
		e->tgid = g;
		e->agent = agent_by_pid(s, g);
		if (e->agent < 0)
			check_unregistered(s, g);
	}
	*tgid = e->tgid;
	return e->agent;
}

static void free_sources(struct agent *a)
{
	for (int i = 0; i < a->n_sources; i++) {
		meter_stream_free(&a->sources[i].s);
		free(a->sources[i].last_data);
	}
	a->n_sources = 0;
}

static void stop_agent(struct sup *s, struct agent *a, const struct ledger_refusal *why)
{
	if (a->stopping)
		return;
	char used[32], lim[32], res[32];
	render_tokens(used, sizeof(used), why->used);
	render_tokens(lim, sizeof(lim), why->limit);
	render_tokens(res, sizeof(res), why->reserved);
	const struct ledger_budget *b = &s->l->h->commands[s->l->h->instances[a->inst].command];
	clear_live(s);
	if (why->is_overall)
		log_warn("stopping agent %d (%s): overall budget exceeded, used %s/%s (block mode)",
			 (int)a->pid, b->name, used, lim);
	else if (why->used <= why->limit)
		/* Its prompt came on stdin: bound to a command with no room for it. */
		log_warn("stopping agent %d (%s): command budget %s has no room for it, used %s + "
			 "reserved %s of %s (block mode)",
			 (int)a->pid, b->name, why->name, used, res, lim);
	else
		log_warn("stopping agent %d (%s): command budget %s exceeded, used %s/%s "
			 "(block mode)",
			 (int)a->pid, b->name, why->name, used, lim);
	a->stopping = true;
	a->kill_at_ms = now_ms() + SUPERVISOR_GRACE_MS;
	/* Through ledger_settle, not a bare status store: it counts the stop in the overall and
	 * command budgets (only on the first STOPPED verdict) and releases the reservation now. */
	ledger_settle(s->l, a->inst, LEDGER_INST_STOPPED, -1);
	if (a->pid == s->cfg->child)
		s->child_stopped = true;
	kill(a->pid, SIGTERM);
}

static void warn_thresholds(struct sup *s, struct ledger_budget *b)
{
	static const unsigned pct[] = {70, 90, 100};
	uint64_t limit = b->limit;
	if (limit == LEDGER_NO_LIMIT || limit == 0)
		return;
	uint64_t used = ledger_load(&b->used.total);
	for (unsigned i = 0; i < 3; i++) {
		/* 100 % means exceeded (used > limit), like block mode's stop. */
		bool crossed = pct[i] == 100 ? used > limit
					     : (unsigned __int128)used * 100 >=
						       (unsigned __int128)limit * pct[i];
		if (!crossed || (b->warned & (1u << i)))
			continue;
		b->warned |= 1u << i;
		char u[32], lm[32];
		render_tokens(u, sizeof(u), used);
		render_tokens(lm, sizeof(lm), limit);
		clear_live(s);
		const char *what = b->name[0] ? b->name : "overall";
		if (pct[i] == 100)
			log_warn("warning: %s budget exceeded: %s/%s%s", what, u, lm,
				 s->l->h->mode == LEDGER_MODE_WARN
					 ? " (warn mode: nothing is stopped)"
					 : "");
		else
			log_warn("warning: %s budget at %u%%: %s/%s", what, pct[i], u, lm);
	}
}

/* After usage changed anywhere: warnings, then block mode's stops. */
static void check_budgets(struct sup *s)
{
	struct ledger_header *h = s->l->h;
	warn_thresholds(s, &h->overall);
	uint32_t nc = __atomic_load_n(&h->n_commands, __ATOMIC_ACQUIRE);
	for (uint32_t i = 0; i < nc && i < LEDGER_MAX_COMMANDS; i++)
		warn_thresholds(s, &h->commands[i]);
	if (h->mode != LEDGER_MODE_BLOCK)
		return;
	for (int i = 0; i < s->n_agents; i++) {
		struct agent *a = &s->agents[i];
		struct ledger_refusal why;
		if (a->used && !a->ended && !a->stopping && ledger_over_limit(s->l, a->inst, &why))
			stop_agent(s, a, &why);
	}
}

static void end_agent(struct sup *s, int idx, int exit_code)
{
	struct agent *a = &s->agents[idx];
	if (!a->used || a->ended)
		return;
	a->held = false; /* its thread is gone with it */
	for (int i = 0; i < a->n_sources; i++)
		ledger_meter_finish(s->l, a->inst, &a->sources[i].s);
	ledger_settle(s->l, a->inst, a->stopping ? LEDGER_INST_STOPPED : LEDGER_INST_EXITED,
		      exit_code);
	free_sources(a);
	if (a->pidfd >= 0)
		close(a->pidfd);
	a->pidfd = -1;
	a->ended = true;
	tid_forget_tgid(s, a->pid);
	check_budgets(s);
}

static int new_agent_slot(struct sup *s)
{
	for (int i = 0; i < MAX_AGENTS; i++) {
		if (!s->agents[i].used || s->agents[i].ended) {
			if (s->agents[i].used)
				memset(&s->agents[i], 0, sizeof(s->agents[i]));
			if (i >= s->n_agents)
				s->n_agents = i + 1;
			return i;
		}
	}
	return -1;
}

static void set_sync_wakeup(int fd)
{
	/* Linux 6.6: the supervisor is woken on the same CPU, about 14 instead of 24 us per
	 * notification (DESIGN.md 1.9). Older kernels refuse it; nothing else changes then. */
	uint64_t flags = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
	const char *off = getenv(TBWRAP_ENV_BENCH_NO_SYNC_WAKEUP);
	if (off && *off == '1')
		return; /* tests/bench compares the two */
	(void)ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags);
}

static void handle_hello(struct sup *s, int conn, const struct proto_msg *m, int listener)
{
	struct proto_reply r = {.magic = PROTO_MAGIC, .status = 0};
	int idx = -1;
	/* The agent's pid as we see it: the kernel translates it out of a PID namespace
	 * (unshare -p, a container), where the agent's own getpid() means another process here. */
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	pid_t pid =
		getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 ? cred.pid : m->pid;
	if (m->inst < 0 || m->inst >= LEDGER_MAX_INSTANCES ||
	    ledger_load((const uint64_t *)&s->l->h->instances[m->inst].pid) != (uint64_t)m->pid) {
		r.status = -EINVAL;
	} else if ((m->flags & PROTO_F_ADOPT) && (idx = agent_by_pid(s, pid)) >= 0 &&
		   s->agents[idx].inst == m->inst) {
		/* The same agent after an exec: everything stands; its new image only needed
		 * a connection to watch. */
		if (listener >= 0)
			close(listener);
		tid_forget_tgid(s, pid);
		send(conn, &r, sizeof(r), MSG_NOSIGNAL);
		return;
	} else if ((idx = new_agent_slot(s)) < 0) {
		r.status = -ENOSPC;
	}
	if (r.status == 0) {
		struct agent *a = &s->agents[idx];
		memset(a, 0, sizeof(*a));
		a->used = true;
		a->pid = pid;
		a->inst = m->inst;
		a->unmetered = m->flags & PROTO_F_UNMETERED;
		a->stdout_dev = (dev_t)m->stdout_dev;
		a->stdout_ino = (ino_t)m->stdout_ino;
		memcpy(a->config_dir, m->config_dir, sizeof(a->config_dir));
		a->config_dir[sizeof(a->config_dir) - 1] = '\0';
		a->config_len = strlen(a->config_dir);
		a->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (a->unmetered) {
			__atomic_store_n(&s->l->h->instances[m->inst].status, LEDGER_INST_UNMETERED,
					 __ATOMIC_RELEASE);
			clear_live(s);
			log_warn("WARNING: agent %d runs UNMETERED: it could not install the "
				 "seccomp filter",
				 (int)pid);
		}
		if (m->flags & PROTO_F_NESTED)
			__atomic_or_fetch(&s->l->h->instances[m->inst].flags, LEDGER_F_NESTED,
					  __ATOMIC_RELAXED);
		tid_forget_tgid(s, pid);
		if (listener >= 0) {
			set_sync_wakeup(listener);
			s->listeners[s->n_listeners].fd = listener;
			s->listeners[s->n_listeners].owner = pid;
			s->n_listeners++;
			listener = -1;
		}
	}
	if (listener >= 0)
		close(listener);
	if (send(conn, &r, sizeof(r), MSG_NOSIGNAL) < 0 && idx >= 0)
		end_agent(s, idx, -1);
}

static void release_on_usage(struct sup *s);

static void handle_conn(struct sup *s, int ci)
{
	int conn = s->conns[ci];
	struct proto_msg m;
	struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};
	ssize_t n = recvmsg(conn, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	int fd = -1;
	struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (n <= 0) {
		/* The agent closed its end (it exited): its pidfd tells the rest. */
		close(conn);
		s->conns[ci] = s->conns[--s->n_conns];
		return;
	}
	if ((size_t)n != sizeof(m) || m.magic != PROTO_MAGIC) {
		if (fd >= 0)
			close(fd);
		return; /* not ours: ignore, change nothing */
	}
	if (m.type == PROTO_HELLO) {
		if ((fd >= 0) != !!(m.flags & PROTO_F_LISTENER)) {
			if (fd >= 0)
				close(fd);
			fd = -1;
		}
		handle_hello(s, conn, &m, fd);
	} else {
		if (fd >= 0)
			close(fd);
		/* PROTO_POKE: usage came in through an agent's libc path. */
		check_budgets(s);
		release_on_usage(s);
	}
}

/* ---- notifications --------------------------------------------------------------------- */

static void respond_id(struct sup *s, int fd, uint64_t id, int error)
{
	struct seccomp_notif_resp *r = s->resp;
	memset(r, 0, s->resp_size);
	r->id = id;
	if (error) {
		r->error = -error;
	} else {
		r->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	}
	while (ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, r) < 0 && errno == EINTR) {
	}
	/* ENOENT: the thread is gone (killed while waiting); nothing to answer. */
}

static void respond(struct sup *s, int fd, int error)
{
	respond_id(s, fd, s->req->id, error);
}

static bool is_transcript(const struct agent *a, pid_t tgid, int fd)
{
	char link[64], path[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)tgid, fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return false;
	path[n] = '\0';
	return a->config_len > 0 && (size_t)n > a->config_len + 16 &&
	       memcmp(path, a->config_dir, a->config_len) == 0 &&
	       strncmp(path + a->config_len, "/projects/", 10) == 0 &&
	       strcmp(path + n - 6, ".jsonl") == 0;
}

/* The metered source the open file st (the agent's fd) is, or NULL. */
static struct source *classify(struct agent *a, pid_t tgid, int fd, const struct stat *st)
{
	for (int i = 0; i < a->n_sources; i++)
		if (a->sources[i].dev == st->st_dev && a->sources[i].ino == st->st_ino)
			return &a->sources[i];
	int kind = 0;
	if (a->stdout_ino && st->st_dev == a->stdout_dev && st->st_ino == a->stdout_ino)
		kind = SRC_STDOUT;
	else if (S_ISREG(st->st_mode) && is_transcript(a, tgid, fd))
		kind = SRC_TRANSCRIPT;
	if (!kind)
		return NULL;
	if (a->n_sources == MAX_SOURCES) {
		if (!a->warned_sources) {
			a->warned_sources = true;
			log_warn(
				"WARNING: agent %d writes more than %d transcripts; what it writes "
				"to the others is NOT metered",
				(int)a->pid, MAX_SOURCES);
		}
		return NULL;
	}
	struct source *src = &a->sources[a->n_sources++];
	memset(src, 0, sizeof(*src));
	src->dev = st->st_dev;
	src->ino = st->st_ino;
	src->kind = kind;
	src->seekable = S_ISREG(st->st_mode) || S_ISBLK(st->st_mode);
	meter_stream_init(&src->s, METER_LINE_MAX_DEFAULT);
	return src;
}

/* File offset and O_APPEND of a target's fd, from /proc/PID/fdinfo. */
static bool fd_position(pid_t tgid, int fd, uint64_t *pos, bool *append)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)tgid, fd);
	if (!read_proc(path, buf, sizeof(buf)))
		return false;
	char *p = strstr(buf, "pos:");
	char *fl = strstr(buf, "flags:");
	if (!p || !fl)
		return false;
	*pos = strtoull(p + 4, NULL, 10);
	*append = strtoul(fl + 6, NULL, 8) & O_APPEND;
	return true;
}

static bool read_remote(pid_t tgid, uint64_t addr, void *dst, size_t len)
{
	struct iovec local = {.iov_base = dst, .iov_len = len};
	struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};
	return process_vm_readv(tgid, &local, 1, &remote, 1, 0) == (ssize_t)len;
}

static bool still_valid(int fd, uint64_t id)
{
	return ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

/*
 * Where in the source's stream (the bytes this agent wrote to it, in order) this write's bytes
 * start; METER_POS_APPEND when they simply follow.
 *
 * Regular files: the file offset says it. A write that starts before where this agent's last
 * write ended, by no more than that write's length, re-sends bytes (the rest of a short write);
 * one that starts later follows other writers of a shared file (a script's log that several
 * agents write to): the agent's own stream has no gap there.
 */
static uint64_t write_position(struct source *src, pid_t tid, pid_t tgid, int fd, bool has_off,
			       uint64_t off, const struct stat *st, uint64_t addr, size_t len,
			       int lfd, uint64_t id)
{
	if (src->seekable) {
		uint64_t at = off;
		bool append = false;
		if (!has_off && !fd_position(tgid, fd, &at, &append))
			return METER_POS_APPEND;
		if (append)
			at = (uint64_t)st->st_size;
		uint64_t pos = METER_POS_APPEND;
		uint64_t back = src->file_next - at;
		/* Only the same thread re-sends (the rest of its own short write): another thread
		 * appending at the same moment sees a size the first write has not grown yet. */
		if (src->file_seen && src->last_tid == tid && at < src->file_next &&
		    back <= src->file_last_len && back <= src->s.end)
			pos = src->s.end - back;
		src->file_seen = true;
		src->file_next = at + len;
		src->file_last_len = len;
		src->last_tid = tid;
		return pos;
	}
	/* A pipe, socket or terminal: a retry comes from the same thread, ends where the last
	 * write ended, and carries the same bytes. */
	if (src->last_tid == tid && src->last_len && addr >= src->last_addr &&
	    addr + len == src->last_addr + src->last_len && src->last_data &&
	    src->last_len <= RETRY_KEEP && len <= READ_CHUNK) {
		size_t skip = (size_t)(addr - src->last_addr);
		char tmp_small[4096];
		char *tmp = len <= sizeof(tmp_small) ? tmp_small : malloc(len);
		bool same = tmp && read_remote(tgid, addr, tmp, len) && still_valid(lfd, id) &&
			    memcmp(tmp, src->last_data + skip, len) == 0;
		if (tmp != tmp_small)
			free(tmp);
		if (same)
			return src->last_start + skip;
	}
	return METER_POS_APPEND;
}

static void remember_write(struct source *src, pid_t tid, uint64_t addr, size_t len, uint64_t start,
			   const char *data, size_t have)
{
	src->last_tid = tid;
	src->last_addr = addr;
	src->last_len = len;
	src->last_start = start;
	if (src->seekable || len > RETRY_KEEP || have != len) {
		src->last_len = 0;
		return;
	}
	if (src->last_cap < len) {
		char *p = realloc(src->last_data, len);
		if (!p) {
			src->last_len = 0;
			return;
		}
		src->last_data = p;
		src->last_cap = len;
	}
	memcpy(src->last_data, data, len);
}

/* An agent whose prompt came on stdin gets its budget key when its transcript names it. */
static void bind_from_transcript(struct sup *s, struct agent *a, const char *data, size_t len)
{
	struct ledger_instance *in = &s->l->h->instances[a->inst];
	if (!(__atomic_load_n(&in->flags, __ATOMIC_ACQUIRE) & LEDGER_F_UNBOUND))
		return;
	char key[LEDGER_NAME_LEN];
	if (!agent_prompt_from_transcript(data, len, key, sizeof(key)))
		return;
	int cmd = ledger_command_index(s->l, key, true);
	if (cmd >= 0)
		ledger_rebind(s->l, a->inst, cmd);
	__atomic_and_fetch(&in->flags, ~LEDGER_F_UNBOUND, __ATOMIC_RELEASE);
}

/* Feeds one remote buffer; returns bytes fed. */
static size_t feed_remote(struct sup *s, struct agent *a, struct source *src, pid_t tgid,
			  uint64_t addr, size_t len, uint64_t pos, int lfd, uint64_t id,
			  bool *changed)
{
	size_t done = 0;
	while (done < len) {
		size_t n = len - done < READ_CHUNK ? len - done : READ_CHUNK;
		if (!read_remote(tgid, addr + done, s->buf, n) || !still_valid(lfd, id))
			break;
		uint64_t p = pos == METER_POS_APPEND ? METER_POS_APPEND : pos + done;
		if (src->kind == SRC_TRANSCRIPT)
			bind_from_transcript(s, a, s->buf, n);
		*changed |= ledger_meter_feed(s->l, a->inst, &src->s, p, s->buf, n);
		done += n;
	}
	return done;
}

static bool handle_write(struct sup *s, struct agent *a, pid_t tid, pid_t tgid, int lfd,
			 const struct stat *st)
{
	const struct seccomp_data *d = &s->req->data;
	int nr = d->nr;
	int fd = (int)d->args[0];
	bool is_vec = nr == SYS_writev || nr == SYS_pwritev || nr == SYS_pwritev2;
	bool has_off = nr == SYS_pwrite64 || ((nr == SYS_pwritev || nr == SYS_pwritev2) &&
					      (int64_t)(d->args[3] | (d->args[4] << 32)) != -1);
	uint64_t off = nr == SYS_pwrite64 ? d->args[3] : (d->args[3] | (d->args[4] << 32));
	struct source *src = classify(a, tgid, fd, st);
	s->last_was_source = src != NULL;
	if (!src)
		return false;

	struct iovec one, vec[64];
	int cnt = 1;
	if (is_vec) {
		cnt = (int)d->args[2];
		if (cnt <= 0)
			return false;
		if (cnt > 64)
			cnt = 64; /* beyond: the rest is not metered (IOV_MAX is 1024; Claude uses
				     1) */
		if (!read_remote(tgid, d->args[1], vec, sizeof(vec[0]) * (size_t)cnt))
			return false;
	} else {
		one.iov_base = (void *)(uintptr_t)d->args[1];
		one.iov_len = (size_t)d->args[2];
		vec[0] = one;
	}
	size_t total = 0;
	for (int i = 0; i < cnt; i++)
		total += vec[i].iov_len;
	uint64_t first = (uint64_t)(uintptr_t)vec[0].iov_base;
	uint64_t pos = write_position(src, tid, tgid, fd, has_off, off, st, cnt == 1 ? first : 0,
				      total, lfd, s->req->id);
	uint64_t start = pos == METER_POS_APPEND ? src->s.end : pos;

	bool changed = false;
	size_t fed = 0;
	for (int i = 0; i < cnt; i++) {
		uint64_t p = pos == METER_POS_APPEND ? METER_POS_APPEND : pos + fed;
		size_t n = feed_remote(s, a, src, tgid, (uint64_t)(uintptr_t)vec[i].iov_base,
				       vec[i].iov_len, p, lfd, s->req->id, &changed);
		fed += n;
		if (n < vec[i].iov_len)
			break;
	}
	if (cnt == 1)
		remember_write(src, tid, first, total, start, fed <= READ_CHUNK ? s->buf : NULL,
			       fed <= READ_CHUNK ? fed : 0);
	else
		src->last_len = 0;
	return changed;
}

/* The open file behind a target's fd (one stat of /proc/PID/fd/N: the only per-write lookup). */
static bool fd_stat(pid_t tgid, int fd, struct stat *st)
{
	char link[64];
	snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)tgid, fd);
	return stat(link, st) == 0;
}

static uint64_t instance_total(struct sup *s, const struct agent *a)
{
	return ledger_load(&s->l->h->instances[a->inst].used.total);
}

/* Lets a held request go, or refuses it when the agent is over a budget by now. */
static void release_request(struct sup *s, struct agent *a)
{
	if (!a->held)
		return;
	a->held = false;
	struct ledger_refusal why;
	if (!a->stopping && ledger_over_limit(s->l, a->inst, &why))
		stop_agent(s, a, &why);
	respond_id(s, a->held_lfd, a->held_id, a->stopping ? EPERM : 0);
	a->usage_at_request = instance_total(s, a);
}

/* Held requests of agents whose usage arrived without a notified write (the libc path, told by
 * a poke or seen at a tick): the previous call is accounted, they may go (or be refused). */
static void release_on_usage(struct sup *s)
{
	for (int i = 0; i < s->n_agents; i++) {
		struct agent *a = &s->agents[i];
		if (a->used && !a->ended && a->held && instance_total(s, a) != a->usage_at_request)
			release_request(s, a);
	}
}

/*
 * Block mode's request barrier. Claude Code in text and json mode writes a call's usage to its
 * transcript only when the next call has been sent (measured: the transcript write follows the
 * request by about 30 ms), so a budget crossed by call k would be noticed only after call k+1
 * went out. When a new request starts (a socket write after REQUEST_GAP_MS of socket silence)
 * and no usage has arrived since the previous one started, the request waits - for the next
 * write to one of the agent's metered sources (fed first, so its usage counts) or HOLD_MS - and
 * is then refused if that usage crossed a budget. In stream-json mode usage arrives during each
 * call, so requests do not wait. Returns true when the request is held.
 */
static bool hold_request(struct sup *s, struct agent *a, int lfd)
{
	uint64_t t = now_ms();
	bool is_new = t - a->last_sock_ms > REQUEST_GAP_MS;
	a->last_sock_ms = t;
	if (!is_new || a->held)
		return false;
	uint64_t total = instance_total(s, a);
	if (a->had_request && total == a->usage_at_request) {
		a->held = true;
		a->held_lfd = lfd;
		a->held_id = s->req->id;
		a->held_until_ms = t + HOLD_MS;
		return true;
	}
	a->had_request = true;
	a->usage_at_request = total;
	return false;
}

static void handle_notification(struct sup *s, int lfd)
{
	memset(s->req, 0, s->req_size);
	if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, s->req) < 0)
		return; /* EINTR, or ENOENT: the target died before we received it */
	pid_t tid = (pid_t)s->req->pid, tgid = -1;
	int idx = agent_of_tid(s, tid, &tgid);
	if (idx < 0) {
		respond(s, lfd, 0); /* not an agent: answered at once */
		return;
	}
	struct agent *a = &s->agents[idx];
	int nr = s->req->data.nr;
	int fd = (int)s->req->data.args[0];
	bool block = s->l->h->mode == LEDGER_MODE_BLOCK;
	struct stat st;
	bool is_sock = nr == SYS_sendto || nr == SYS_sendmsg;
	if (!is_sock) {
		if (!fd_stat(tgid, fd, &st)) {
			respond(s, lfd, 0); /* a bad fd: the kernel answers it */
			return;
		}
		is_sock = S_ISSOCK(st.st_mode);
	}
	if (is_sock) {
		/* A stopped agent makes no further request to its API, even during the grace. */
		if (a->stopping)
			respond(s, lfd, EPERM);
		else if (!block || !hold_request(s, a, lfd))
			respond(s, lfd, 0);
		return;
	}
	bool changed = false;
	s->last_was_source = false;
	if (!a->unmetered)
		changed = handle_write(s, a, tid, tgid, lfd, &st);
	respond(s, lfd, 0);
	/* After the answer: the write that crossed a budget still reaches its file, so the output
	 * ends with the line that was counted. */
	if (changed)
		check_budgets(s);
	if (a->held && s->last_was_source)
		release_request(s, a);
}

/* ---- loop ------------------------------------------------------------------------------ */

static int wait_status_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return TBWRAP_EXIT_INTERNAL;
}

/* Exit status of a process that is not our child, read while it is a zombie (field 52 of
 * /proc/PID/stat, in waitpid's form). Its parent may have reaped it already: then -1, unknown. */
static int zombie_exit_code(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!read_proc(path, buf, sizeof(buf)))
		return -1;
	/* The command name (field 2) may contain anything: count fields after its ')'. */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] != 'Z')
		return -1;
	int field = 2;
	for (; *p && field < 52; p++)
		if (*p == ' ')
			field++;
	if (field != 52)
		return -1;
	return wait_status_code((int)strtol(p, NULL, 10));
}

static void reap(struct sup *s)
{
	int status;
	pid_t p;
	while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
		int idx = agent_by_pid(s, p);
		if (idx >= 0)
			end_agent(s, idx, wait_status_code(status));
		if (p == s->cfg->child) {
			s->child_done = true;
			s->child_done_ms = now_ms();
			s->child_status = status;
		}
	}
	/* 0: children left (orphans of the command, reparented to us as subreaper). */
	s->has_orphans = p == 0 && s->child_done;
}

static bool agents_running(const struct sup *s);

/* Whether ledger slot inst belongs to an agent that registered with us. */
static bool is_registered(const struct sup *s, uint32_t inst)
{
	for (int k = 0; k < s->n_agents; k++)
		if (s->agents[k].used && s->agents[k].inst == (int)inst)
			return true;
	return false;
}

/* An agent admitted to the ledger that has not registered yet (still in its constructor). */
static bool registering(struct sup *s)
{
	struct ledger_header *h = s->l->h;
	uint32_t n = __atomic_load_n(&h->n_instances, __ATOMIC_ACQUIRE);
	for (uint32_t i = 0; i < n && i < LEDGER_MAX_INSTANCES; i++) {
		if (__atomic_load_n(&h->instances[i].status, __ATOMIC_ACQUIRE) !=
		    LEDGER_INST_RUNNING)
			continue;
		pid_t pid = (pid_t)__atomic_load_n(&h->instances[i].pid, __ATOMIC_RELAXED);
		if (!is_registered(s, i) && kill(pid, 0) == 0)
			return true;
	}
	return false;
}

/* The command has exited: go on while agents run, while one is registering, and for a short
 * grace while orphans the command left behind may still become agents ('claude ... &'). */
static bool keep_serving(struct sup *s)
{
	if (!s->child_done || agents_running(s))
		return true;
	if (s->has_orphans && now_ms() < s->child_done_ms + ORPHAN_GRACE_MS)
		return true;
	return registering(s);
}

static void handle_signal(struct sup *s)
{
	struct signalfd_siginfo si;
	while (read(s->cfg->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			reap(s);
		} else if (!s->child_done) {
			/* Like timeout(1): tbwrap passes what it is sent on to the command. */
			kill(s->cfg->child, (int)si.ssi_signo);
		} else {
			/* The command is gone but agents it left run on: they get it instead, or
			 * tbwrap could not be interrupted at all. By pidfd: never a reused pid. */
			for (int i = 0; i < s->n_agents; i++)
				if (s->agents[i].used && !s->agents[i].ended &&
				    s->agents[i].pidfd >= 0)
					syscall(SYS_pidfd_send_signal, s->agents[i].pidfd,
						(int)si.ssi_signo, NULL, 0);
		}
	}
}

/*
 * Settles ledger slots of agents that were admitted but are gone without ever registering (killed
 * in their constructor): their reservation would otherwise hold budget room for the rest of the
 * session. At the end (final) every slot still running is settled.
 */
static void settle_lost(struct sup *s, bool final)
{
	struct ledger_header *h = s->l->h;
	uint32_t n = __atomic_load_n(&h->n_instances, __ATOMIC_ACQUIRE);
	for (uint32_t i = 0; i < n && i < LEDGER_MAX_INSTANCES; i++) {
		uint32_t st = __atomic_load_n(&h->instances[i].status, __ATOMIC_ACQUIRE);
		if (st != LEDGER_INST_RUNNING && st != LEDGER_INST_UNMETERED)
			continue;
		pid_t pid = (pid_t)__atomic_load_n(&h->instances[i].pid, __ATOMIC_RELAXED);
		if (final || (!is_registered(s, i) && kill(pid, 0) < 0 && errno == ESRCH))
			ledger_settle(s->l, (int)i, LEDGER_INST_EXITED, -1);
	}
}

static void tick(struct sup *s)
{
	uint64_t t = now_ms();
	/* Thread ids are reused once they wrap (pid_max): an entry older than a tick could name
	 * another process by now. Reading /proc/TID/status again costs a few µs per active thread
	 * per tick; a wrap within one tick is out of reach. */
	memset(s->tids, 0, sizeof(s->tids));
	for (int i = 0; i < s->n_agents; i++) {
		struct agent *a = &s->agents[i];
		if (!a->used || a->ended)
			continue;
		if (a->held && t >= a->held_until_ms)
			release_request(s, a);
		if (a->stopping && t >= a->kill_at_ms) {
			kill(a->pid, SIGKILL);
			a->kill_at_ms = UINT64_MAX;
		}
	}
	if (t >= s->next_lost_ms) {
		settle_lost(s, false);
		s->next_lost_ms = t + 1000;
	}
	/* Usage from the in-process path arrives by poke, but a lost poke must not matter. */
	check_budgets(s);
	release_on_usage(s);
	draw_live(s);
}

static bool agents_running(const struct sup *s)
{
	for (int i = 0; i < s->n_agents; i++)
		if (s->agents[i].used && !s->agents[i].ended)
			return true;
	return false;
}

static bool init_buffers(struct sup *s)
{
	struct seccomp_notif_sizes sizes;
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) {
		log_warn_errno("seccomp user notification is not available");
		return false;
	}
	/* The kernel may know a larger struct than our headers: allocate what it says. */
	s->req_size = sizes.seccomp_notif > sizeof(*s->req) ? sizes.seccomp_notif : sizeof(*s->req);
	s->resp_size = sizes.seccomp_notif_resp > sizeof(*s->resp) ? sizes.seccomp_notif_resp
								   : sizeof(*s->resp);
	s->req = calloc(1, s->req_size);
	s->resp = calloc(1, s->resp_size);
	s->buf = malloc(READ_CHUNK);
	return s->req && s->resp && s->buf;
}

int supervisor_run(const struct supervisor_config *cfg)
{
	struct sup *s = calloc(1, sizeof(*s));
	if (!s) {
		log_warn("out of memory");
		return TBWRAP_EXIT_INTERNAL;
	}
	s->cfg = cfg;
	s->l = cfg->ledger;
	int rc = TBWRAP_EXIT_INTERNAL;
	if (!init_buffers(s))
		goto out;

	struct pollfd pfd[2 + MAX_CONNS + 2 * MAX_AGENTS];
	enum { K_SIG, K_LISTEN, K_CONN, K_NOTIF, K_PIDFD } kind[2 + MAX_CONNS + 2 * MAX_AGENTS];
	int ref[2 + MAX_CONNS + 2 * MAX_AGENTS];
	uint64_t next_tick = now_ms() + TICK_MS;

	while (keep_serving(s)) {
		int n = 0;
		pfd[n] = (struct pollfd){.fd = cfg->signal_fd, .events = POLLIN};
		kind[n++] = K_SIG;
		if (s->n_conns < MAX_CONNS) {
			pfd[n] = (struct pollfd){.fd = cfg->listen_fd, .events = POLLIN};
			kind[n++] = K_LISTEN;
		}
		for (int i = 0; i < s->n_conns; i++) {
			pfd[n] = (struct pollfd){.fd = s->conns[i], .events = POLLIN};
			kind[n] = K_CONN;
			ref[n++] = i;
		}
		for (int i = 0; i < s->n_listeners; i++) {
			pfd[n] = (struct pollfd){.fd = s->listeners[i].fd, .events = POLLIN};
			kind[n] = K_NOTIF;
			ref[n++] = i;
		}
		for (int i = 0; i < s->n_agents; i++) {
			if (s->agents[i].used && !s->agents[i].ended && s->agents[i].pidfd >= 0) {
				pfd[n] =
					(struct pollfd){.fd = s->agents[i].pidfd, .events = POLLIN};
				kind[n] = K_PIDFD;
				ref[n++] = i;
			}
		}
		uint64_t t = now_ms();
		int timeout = next_tick > t ? (int)(next_tick - t) : 0;
		int r = poll(pfd, (nfds_t)n, timeout);
		if (r < 0 && errno != EINTR) {
			log_warn_errno("poll");
			goto out;
		}
		if (now_ms() >= next_tick) {
			tick(s);
			next_tick = now_ms() + TICK_MS;
		}
		if (r <= 0)
			continue;
		/* Notifications first: an agent blocked in a write is waiting for us. Listener
		 * indices may shift when one closes, so closing happens after the pass. */
		bool hup_listener = false;
		for (int i = 0; i < n; i++) {
			if (kind[i] != K_NOTIF || !pfd[i].revents)
				continue;
			if (pfd[i].revents & POLLIN)
				handle_notification(s, pfd[i].fd);
			else if (pfd[i].revents & (POLLHUP | POLLERR | POLLNVAL))
				hup_listener = true;
		}
		for (int i = 0; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			switch (kind[i]) {
			case K_SIG:
				handle_signal(s);
				break;
			case K_LISTEN: {
				int c = accept4(cfg->listen_fd, NULL, NULL,
						SOCK_CLOEXEC | SOCK_NONBLOCK);
				if (c >= 0)
					s->conns[s->n_conns++] = c;
				break;
			}
			case K_PIDFD:
				/* The command itself is ended by reap(), which knows its status. */
				if (s->agents[ref[i]].pid != cfg->child)
					end_agent(s, ref[i],
						  zombie_exit_code(s->agents[ref[i]].pid));
				break;
			default:
				break;
			}
		}
		/* Connections last, from the highest index, since handling may remove one. */
		for (int i = n - 1; i >= 0; i--)
			if (kind[i] == K_CONN && pfd[i].revents)
				handle_conn(s, ref[i]);
		if (hup_listener) {
			for (int i = 0; i < s->n_listeners;) {
				struct pollfd p = {.fd = s->listeners[i].fd, .events = POLLIN};
				if (poll(&p, 1, 0) == 1 && !(p.revents & POLLIN) &&
				    (p.revents & (POLLHUP | POLLERR | POLLNVAL))) {
					close(s->listeners[i].fd);
					s->listeners[i] = s->listeners[--s->n_listeners];
				} else {
					i++;
				}
			}
		}
	}
	clear_live(s);
	check_budgets(s);
	settle_lost(s, true);
	if (s->child_stopped)
		rc = TBWRAP_EXIT_STOPPED;
	else
		rc = wait_status_code(s->child_status);
out:
	clear_live(s);
	for (int i = 0; i < s->n_listeners; i++)
		close(s->listeners[i].fd);
	for (int i = 0; i < s->n_conns; i++)
		close(s->conns[i]);
	for (int i = 0; i < s->n_agents; i++)
		if (s->agents[i].used && !s->agents[i].ended) {
			free_sources(&s->agents[i]);
			if (s->agents[i].pidfd >= 0)
				close(s->agents[i].pidfd);
		}
	free(s->req);
	free(s->resp);
	free(s->buf);
	free(s);
	return rc;
}
