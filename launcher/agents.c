/*
 * The agent table: who is an agent, where its usage is, and whether it may run.
 *
 * An agent registers (HELLO from libtbwrap.so in its constructor) or is adopted (a process under
 * one of the session's listeners that runs Claude Code but never registered: started with
 * libtbwrap.so removed by a program the exec hooks do not see). Either way the supervisor
 * believes nothing the process says about itself: its pid and uid come from SO_PEERCRED, its
 * argv, executable, environment, working directory and stdio from /proc, read while a registering
 * agent waits in its constructor for the verdict.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sup.h"
#include "tbwrap/env.h"
#include "tbwrap/log.h"
#include "tbwrap/procfs.h"
#include "tbwrap/proto.h"

#define CMDLINE_MAX (256 * 1024)
#define ARGV_MAX 4096

int agent_by_pid(struct sup *s, pid_t pid)
{
	for (int i = 0; i < s->n_agents; i++)
		if (s->agents[i].used && !s->agents[i].ended && s->agents[i].pid == pid)
			return i;
	return -1;
}

void tid_forget_tgid(struct sup *s, pid_t tgid)
{
	for (int i = 0; i < SUP_TID_CACHE; i++)
		if (s->tids[i].tid && s->tids[i].tgid == tgid)
			s->tids[i].tid = 0;
}

bool agents_running(const struct sup *s)
{
	for (int i = 0; i < s->n_agents; i++)
		if (s->agents[i].used && !s->agents[i].ended)
			return true;
	return false;
}

static int new_agent_slot(struct sup *s)
{
	for (int i = 0; i < SUP_MAX_AGENTS; i++) {
		struct agent *a = &s->agents[i];
		if (!a->used || a->ended) {
			memset(a, 0, sizeof(*a));
			if (i >= s->n_agents)
				s->n_agents = i + 1;
			return i;
		}
	}
	return -1;
}

/* What /proc says about a process that may be an agent. */
struct desc {
	char *cmdline; /* heap, CMDLINE_MAX */
	char *argv[ARGV_MAX];
	int argc;
	int first; /* index of the CLI's own first argument */
	char exe[PATH_MAX];
	char script[PATH_MAX];
	char cwd[PATH_MAX];
	struct agent_exec x;
};

static bool describe(pid_t pid, struct desc *d)
{
	d->cmdline = malloc(CMDLINE_MAX);
	if (!d->cmdline)
		return false;
	d->argc = procfs_cmdline(pid, d->cmdline, CMDLINE_MAX, d->argv, ARGV_MAX);
	if (d->argc <= 0)
		return false;
	if (!procfs_link(pid, "exe", d->exe, sizeof(d->exe)))
		d->exe[0] = '\0';
	if (!procfs_link(pid, "cwd", d->cwd, sizeof(d->cwd)))
		d->cwd[0] = '\0';
	d->script[0] = '\0';
	int si = agent_script_index(d->argc, d->argv, d->exe);
	if (si > 0) {
		/* Resolved in the process's own working directory, through its symlinks. */
		char path[PATH_MAX + 64];
		if (d->argv[si][0] == '/')
			snprintf(path, sizeof(path), "%s", d->argv[si]);
		else
			snprintf(path, sizeof(path), "/proc/%d/cwd/%s", (int)pid, d->argv[si]);
		if (!realpath(path, d->script))
			d->script[0] = '\0';
	}
	d->first = si > 0 ? si + 1 : 1;
	d->x = (struct agent_exec){
		.argc = d->argc, .argv = d->argv, .exe = d->exe, .script = d->script};
	return true;
}

static void desc_free(struct desc *d)
{
	free(d->cmdline);
	d->cmdline = NULL;
}

/* The config dir the CLI writes under: CLAUDE_CONFIG_DIR (relative to its working directory at
 * start, as the CLI resolves it) or $HOME/.claude. */
static void config_dir_of(pid_t pid, const char *cwd, char *out, size_t len)
{
	char v[PATH_MAX];
	int n = -1;
	if (procfs_environ_var(pid, "CLAUDE_CONFIG_DIR", v, sizeof(v)))
		n = v[0] == '/' ? snprintf(out, len, "%s", v) : snprintf(out, len, "%s/%s", cwd, v);
	else if (procfs_environ_var(pid, "HOME", v, sizeof(v)))
		n = snprintf(out, len, "%s/.claude", v);
	/* Too long to be a path the CLI can open: no transcript will be found (the safety net
	 * then says so). */
	if (n < 0 || (size_t)n >= len)
		out[0] = '\0';
}

/* The host its API calls go to (include/tbwrap/wire.h): ANTHROPIC_BASE_URL's, else the
 * Anthropic API's; "" (any host) for the cloud providers' endpoints and a URL without a host. */
static void api_host_of(pid_t pid, char *out, size_t len)
{
	static const char *const clouds[] = {"CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX",
					     "CLAUDE_CODE_USE_FOUNDRY"};
	char v[PATH_MAX];
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(clouds) / sizeof(clouds[0]); i++)
		if (procfs_environ_var(pid, clouds[i], v, sizeof(v)) && strcmp(v, "0") != 0)
			return;
	if (procfs_environ_var(pid, "ANTHROPIC_BASE_URL", v, sizeof(v))) {
		if (!wire_url_host(v, out, len))
			out[0] = '\0';
		return;
	}
	snprintf(out, len, "%s", "api.anthropic.com");
}

static void fill_agent(struct agent *a, pid_t pid, const struct desc *d)
{
	struct agent_output out;
	agent_output_of(d->argc, d->argv, d->first, &out);
	a->stdout_json = out.stdout_json;
	a->stdout_stream = out.stdout_stream;
	/* Its usage comes with its result line, at the end: no request finds any before. */
	a->usage_at_end = out.no_persistence && !out.stdout_stream;
	for (int fd = 0; fd < 3; fd++) {
		struct stat st;
		if (!procfs_fd_stat(pid, fd, &st))
			continue;
		if (fd == 1 && a->stdout_json)
			a->stdout_id = (struct file_id){st.st_dev, st.st_ino};
		if (S_ISSOCK(st.st_mode))
			a->stdio_sock[fd] = (struct file_id){st.st_dev, st.st_ino};
	}
	config_dir_of(pid, d->cwd, a->config_dir, sizeof(a->config_dir));
	api_host_of(pid, a->api_host, sizeof(a->api_host));
}

/* admit_agent's flag for an agent the scan found outside every listener. */
#define ADMIT_UNSEEN (1u << 16)

/* Why an agent cannot be metered, or NULL. */
static const char *unmeterable(const struct desc *d, uint32_t flags, int err, bool block, char *buf,
			       size_t len)
{
	struct agent_output out;
	agent_output_of(d->argc, d->argv, d->first, &out);
	if (flags & ADMIT_UNSEEN)
		return "it was started without libtbwrap.so outside every agent (LD_PRELOAD "
		       "removed by a program that does not exec through libc): none of its writes "
		       "reaches tbwrap";
	if (flags & PROTO_F_NO_FILTER) {
		const char *why =
			err == EBUSY ? "another seccomp listener (another tbwrap "
				       "session's agent, or a sandbox) is above this process"
			: err == EPERM || err == EACCES
				? "seccomp filters are not permitted here (a container or "
				  "sandbox forbids them)"
			: err == ENOSYS ? "this kernel has no seccomp user notification"
					: strerror(err);
		snprintf(buf, len, "cannot install the seccomp filter that meters it: %s", why);
		return buf;
	}
	if (out.no_persistence && !out.stdout_json)
		return "text mode with --no-session-persistence writes its usage nowhere tbwrap "
		       "can read (drop --no-session-persistence, or add --output-format json)";
	if (block && out.no_persistence && !out.stdout_stream)
		return "with --output-format json and --no-session-persistence its usage arrives "
		       "only when it ends, too late to stop it at a budget (use --output-format "
		       "stream-json, or drop --no-session-persistence)";
	return NULL;
}

static void set_reply(struct proto_reply *r, enum proto_verdict v, int status, const char *fmt, ...)
	TBWRAP_PRINTF(4, 5);

static void set_reply(struct proto_reply *r, enum proto_verdict v, int status, const char *fmt, ...)
{
	va_list ap;
	r->magic = PROTO_MAGIC;
	r->verdict = v;
	r->exit_status = status;
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

static bool is_block(const struct sup *s)
{
	return s->l->h->mode == LEDGER_MODE_BLOCK;
}

static int command_of(struct sup *s, const struct desc *d, bool *unbound)
{
	char key[LEDGER_NAME_LEN];
	*unbound = false;
	if (!agent_command_key(d->argc, d->argv, d->first, key, sizeof(key)) || !key[0]) {
		/* No prompt on argv (it comes on stdin): the catch-all key until the transcript
		 * names the command. */
		snprintf(key, sizeof(key), "%s", LEDGER_CATCH_ALL);
		*unbound = true;
	}
	int cmd = ledger_command_index(s->l, key, true);
	if (cmd < 0)
		cmd = ledger_command_index(s->l, LEDGER_CATCH_ALL, true);
	return cmd;
}

/*
 * The verdict on a new agent: admitted (its table entry is returned), refused, or unmetered.
 * r gets the line the agent prints (adopted agents have no stderr of theirs: the supervisor
 * prints it).
 */
static int admit_agent(struct sup *s, pid_t pid, uid_t uid, const struct desc *d, uint32_t flags,
		       int err, bool adopted, struct proto_reply *r)
{
	char why[PROTO_TEXT_LEN - 64], buf[PROTO_TEXT_LEN - 64];
	bool unbound;
	int cmd = command_of(s, d, &unbound);
	const char *reason = NULL;
	if (uid != s->uid) {
		snprintf(buf, sizeof(buf),
			 "it runs as uid %u and tbwrap as uid %u: tbwrap cannot read its writes",
			 (unsigned)uid, (unsigned)s->uid);
		reason = buf;
	} else {
		reason = unmeterable(d, flags, err, is_block(s), buf, sizeof(buf));
	}
	if (reason && is_block(s)) {
		int slot = ledger_record_unadmitted(s->l, cmd, pid, LEDGER_INST_REFUSED, reason);
		ledger_set_exit_code(s->l, slot, TBWRAP_EXIT_REFUSED);
		set_reply(r, PROTO_REFUSE, TBWRAP_EXIT_REFUSED,
			  "refused: this agent cannot be metered: %s (block mode)", reason);
		return -1;
	}
	int idx = new_agent_slot(s);
	if (idx < 0) {
		set_reply(r, is_block(s) ? PROTO_REFUSE : PROTO_UNMETERED, TBWRAP_EXIT_REFUSED,
			  "%s: tbwrap's table of %d running agents is full",
			  is_block(s) ? "refused" : "WARNING: this agent runs UNMETERED",
			  SUP_MAX_AGENTS);
		return -1;
	}
	struct agent *a = &s->agents[idx];
	a->pid = pid;
	a->inst = -1;
	a->adopted = adopted;
	a->metered = reason == NULL;
	if (reason) {
		a->inst = ledger_record_unadmitted(s->l, cmd, pid, LEDGER_INST_RUNNING, reason);
		set_reply(r, PROTO_UNMETERED, 0,
			  "WARNING: this agent runs UNMETERED: %s (warn mode)", reason);
	} else {
		struct ledger_refusal refusal;
		int slot;
		switch (ledger_admit(s->l, cmd, pid, enforce_launch_estimate(s, cmd), &refusal,
				     &slot)) {
		case LEDGER_REFUSED:
			ledger_describe_refusal(&refusal, why, sizeof(why));
			ledger_set_exit_code(s->l, slot, TBWRAP_EXIT_REFUSED);
			ledger_mark(s->l, slot, 0, why);
			set_reply(r, PROTO_REFUSE, TBWRAP_EXIT_REFUSED, "refused %s (block mode)",
				  why);
			a->used = false;
			return -1;
		case LEDGER_TABLE_FULL:
			if (is_block(s)) {
				set_reply(r, PROTO_REFUSE, TBWRAP_EXIT_REFUSED,
					  "refused: the ledger's table of %d agents is full (block "
					  "mode)",
					  LEDGER_MAX_INSTANCES);
				a->used = false;
				return -1;
			}
			ledger_record_unadmitted(s->l, cmd, pid, LEDGER_INST_RUNNING, NULL);
			a->metered = false;
			set_reply(
				r, PROTO_UNMETERED, 0,
				"WARNING: the ledger's table of %d agents is full; this agent runs "
				"UNMETERED and is not listed in the report (warn mode)",
				LEDGER_MAX_INSTANCES);
			break;
		case LEDGER_ADMITTED_OVER:
			ledger_describe_refusal(&refusal, why, sizeof(why));
			set_reply(r, PROTO_RUN, 0, "warning: %s (warn mode: running anyway)", why);
			a->inst = slot;
			break;
		case LEDGER_ADMITTED:
			set_reply(r, PROTO_RUN, 0, "%s", "");
			a->inst = slot;
			break;
		}
	}
	a->used = true;
	struct amount launch = enforce_launch_estimate(s, cmd);
	req_init(&a->book, launch.v[AMOUNT_TOKENS], launch);
	if (a->metered) {
		a->core = calloc(1, sizeof(*a->core));
		if (!a->core) {
			log_warn("out of memory for agent %d's meter", (int)pid);
			a->metered = false;
			ledger_mark(s->l, a->inst, LEDGER_F_UNMETERED, "tbwrap ran out of memory");
		} else {
			memset(&a->pricing, 0, sizeof(a->pricing));
			a->pricing.table = s->cfg->prices;
			a->core->price = enforce_price;
			a->core->price_ctx = &a->pricing;
		}
		fill_agent(a, pid, d);
		if (unbound)
			ledger_mark(s->l, a->inst, LEDGER_F_UNBOUND, NULL);
	}
	if (adopted)
		ledger_mark(s->l, a->inst, LEDGER_F_ADOPTED, NULL);
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	a->pidw = (struct watch){.kind = W_PIDFD, .fd = pidfd};
	if (pidfd >= 0)
		sup_watch(s, &a->pidw);
	tid_forget_tgid(s, pid);
	return idx;
}

static void send_reply(struct sup *s, struct conn *c, const struct proto_reply *r)
{
	(void)s;
	if (send(c->w.fd, r, sizeof(*r), MSG_NOSIGNAL) < 0 && c->agent >= 0)
		agents_end(s, c->agent, -1);
}

static bool peer(int fd, pid_t *pid, uid_t *uid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.pid <= 0)
		return false;
	*pid = cred.pid;
	*uid = cred.uid;
	return true;
}

void agents_hello(struct sup *s, struct conn *c, const struct proto_msg *m, int listener)
{
	struct proto_reply r;
	pid_t pid;
	uid_t uid;
	memset(&r, 0, sizeof(r));
	/* The pid as we see it: the kernel translates it out of a PID namespace (unshare -p, a
	 * container), where the agent's own getpid() means another process here. */
	if (c->agent >= 0 || !peer(c->w.fd, &pid, &uid)) {
		if (listener >= 0)
			close(listener);
		return; /* one HELLO per connection */
	}
	int idx = agent_by_pid(s, pid);
	if (idx >= 0) {
		/* The same process after an exec (a launcher that execs the real CLI): its
		 * admission stands; its new image has a connection of its own to watch. */
		if (listener >= 0)
			close(listener);
		set_reply(&r, s->agents[idx].metered ? PROTO_RUN : PROTO_UNMETERED, 0, "%s", "");
		c->agent = idx;
		s->agents[idx].conn = c;
		tid_forget_tgid(s, pid);
		send_reply(s, c, &r);
		return;
	}
	struct desc d;
	if (!describe(pid, &d)) {
		desc_free(&d);
		if (listener >= 0)
			close(listener);
		return; /* gone already */
	}
	if (!agent_is_match(&d.x, s->cfg->match)) {
		/* libtbwrap.so says HELLO only in a process it recognised: anything else is a
		 * process trying to fill the table or hold reservations. Nothing is recorded. */
		desc_free(&d);
		if (listener >= 0)
			close(listener);
		set_reply(&r, PROTO_REFUSE, TBWRAP_EXIT_REFUSED, "refused: not an agent");
		send_reply(s, c, &r);
		return;
	}
	idx = admit_agent(s, pid, uid, &d, m->flags, m->value, false, &r);
	desc_free(&d);
	if (idx >= 0) {
		struct agent *a = &s->agents[idx];
		c->agent = idx;
		a->conn = c;
		if (m->flags & PROTO_F_NESTED)
			ledger_mark(s->l, a->inst, LEDGER_F_NESTED, NULL);
		if (listener >= 0) {
			struct listener *ln = calloc(1, sizeof(*ln));
			if (ln) {
				ln->w = (struct watch){.kind = W_NOTIF, .fd = listener};
				ln->owner = pid;
				if (sup_watch(s, &ln->w)) {
					ln->next = s->listeners;
					s->listeners = ln;
					s->n_listeners++;
					listener = -1;
				} else {
					free(ln);
				}
			}
			if (listener >= 0) {
				/* Nobody would answer its writes: it must not run. */
				close(listener);
				listener = -1;
				set_reply(&r, PROTO_REFUSE, TBWRAP_EXIT_INTERNAL,
					  "tbwrap cannot watch this agent's listener: %s",
					  strerror(errno));
			}
		}
	}
	if (listener >= 0)
		close(listener);
	if (r.verdict == PROTO_UNMETERED) {
		/* The agent prints it on its stderr; the session's own says it too. */
		sup_clear_live(s);
		log_warn("agent %d: %s", (int)pid, r.text);
	}
	send_reply(s, c, &r);
}

void agents_exit_message(struct sup *s, struct conn *c, int status)
{
	if (c->agent >= 0 && c->agent < s->n_agents && s->agents[c->agent].used)
		ledger_set_exit_code(s->l, s->agents[c->agent].inst, status);
}

void agents_status_request(struct sup *s, struct conn *c)
{
	pid_t pid;
	uid_t uid;
	struct proto_reply r;
	memset(&r, 0, sizeof(r));
	r.magic = PROTO_MAGIC;
	/* Another user may connect to an abstract socket: the ledger is only ours to show. */
	if (!peer(c->w.fd, &pid, &uid) || uid != s->uid) {
		r.verdict = PROTO_REFUSE;
		snprintf(r.text, sizeof(r.text), "this tbwrap session belongs to another user");
		send(c->w.fd, &r, sizeof(r), MSG_NOSIGNAL);
		return;
	}
	struct iovec iov = {.iov_base = &r, .iov_len = sizeof(r)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	/* Sealed: the client can map it read-only, and nothing else. */
	memcpy(CMSG_DATA(cm), &s->l->fd, sizeof(int));
	sendmsg(c->w.fd, &mh, MSG_NOSIGNAL);
}

/* Adopted agents refused already (and killed): their last writes are not judged again. */
static uint64_t start_of(pid_t pid)
{
	pid_t ppid;
	uint64_t start = 0;
	return procfs_stat(pid, &ppid, &start) ? start : 0;
}

/* By pid and start time: a pid used again by another process is not refused. */
static bool refused_before(struct sup *s, pid_t tgid)
{
	uint64_t start = 0;
	for (size_t i = 0; i < sizeof(s->refused) / sizeof(s->refused[0]); i++)
		if (s->refused[i].pid == tgid) {
			if (!start)
				start = start_of(tgid);
			if (s->refused[i].start == start)
				return true;
		}
	return false;
}

int agents_adopt(struct sup *s, pid_t tgid)
{
	if (refused_before(s, tgid))
		return -2;
	uint64_t start = start_of(tgid);
	struct desc d;
	if (!describe(tgid, &d)) {
		desc_free(&d);
		return -1;
	}
	if (!agent_is_match(&d.x, s->cfg->match)) {
		desc_free(&d);
		return -1;
	}
	struct stat st;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d", (int)tgid);
	uid_t uid = stat(path, &st) == 0 ? st.st_uid : (uid_t)-1;
	struct proto_reply r;
	memset(&r, 0, sizeof(r));
	int idx = admit_agent(s, tgid, uid, &d, 0, 0, true, &r);
	sup_clear_live(s);
	if (idx < 0 || r.verdict == PROTO_REFUSE) {
		log_warn("stopping process %d (%s): an agent started without libtbwrap.so: %s",
			 (int)tgid, d.argv[0], r.text);
		s->refused[s->n_refused++ % (sizeof(s->refused) / sizeof(s->refused[0]))] =
			(struct pid_start){tgid, start};
		kill(tgid, SIGKILL);
		desc_free(&d);
		return -2;
	}
	log_warn("process %d (%s) is an agent started without libtbwrap.so: tbwrap meters it "
		 "from outside%s%s",
		 (int)tgid, d.argv[0], r.text[0] ? "; " : "", r.text);
	desc_free(&d);
	return idx;
}

bool agents_unseen_is_agent(struct sup *s, pid_t pid)
{
	struct desc d;
	bool yes = describe(pid, &d) && agent_is_match(&d.x, s->cfg->match);
	desc_free(&d);
	return yes;
}

void agents_unseen(struct sup *s, pid_t pid)
{
	struct desc d;
	if (!describe(pid, &d)) {
		desc_free(&d);
		return;
	}
	struct proto_reply r;
	memset(&r, 0, sizeof(r));
	int idx = admit_agent(s, pid, s->uid, &d, ADMIT_UNSEEN, 0, true, &r);
	sup_clear_live(s);
	if (idx < 0) {
		log_warn("stopping process %d (%s): %s", (int)pid, d.argv[0], r.text);
		kill(pid, SIGKILL);
	} else {
		log_warn("process %d (%s): %s", (int)pid, d.argv[0], r.text);
	}
	desc_free(&d);
}

int agent_of_tid(struct sup *s, pid_t tid, pid_t *tgid)
{
	struct tid_entry *e = &s->tids[(unsigned)tid % SUP_TID_CACHE];
	if (e->tid != tid) {
		pid_t g = procfs_tgid(tid);
		if (g < 0)
			return -1; /* gone already */
		e->tid = tid;
		e->tgid = g;
		e->agent = agent_by_pid(s, g);
		if (e->agent < 0)
			e->agent = agents_adopt(s, g);
	}
	*tgid = e->tgid;
	return e->agent;
}

/* Whether the canonical path of a regular file the agent writes is one of its transcripts: the
 * transcript's shape, in the projects directory of the agent's config dir (compared by device
 * and inode, looked up again when it did not exist yet or moved). */
static bool is_transcript(struct agent *a, const char *path, size_t len)
{
	size_t plen;
	if (!a->config_dir[0] || !agent_transcript_shape(path, len, &plen))
		return false;
	char dir[PATH_MAX];
	if (plen >= sizeof(dir))
		return false;
	memcpy(dir, path, plen);
	dir[plen] = '\0';
	struct stat st;
	if (stat(dir, &st) < 0)
		return false;
	if (a->projects.ino && a->projects.dev == st.st_dev && a->projects.ino == st.st_ino)
		return true;
	char mine[sizeof(a->config_dir) + 16];
	struct stat cs;
	snprintf(mine, sizeof(mine), "%s/projects", a->config_dir);
	if (stat(mine, &cs) < 0 || cs.st_dev != st.st_dev || cs.st_ino != st.st_ino)
		return false;
	a->projects = (struct file_id){cs.st_dev, cs.st_ino};
	return true;
}

struct source *agents_source(struct sup *s, struct agent *a, pid_t tgid, int fd,
			     const struct stat *st)
{
	for (int i = 0; i < a->n_sources; i++)
		if (a->sources[i].dev == st->st_dev && a->sources[i].ino == st->st_ino)
			return &a->sources[i];
	int kind = 0;
	char path[PATH_MAX] = "";
	if (a->stdout_id.ino && st->st_dev == a->stdout_id.dev && st->st_ino == a->stdout_id.ino) {
		kind = SRC_STDOUT;
	} else if (S_ISREG(st->st_mode)) {
		char what[32];
		snprintf(what, sizeof(what), "fd/%d", fd);
		if (procfs_link(tgid, what, path, sizeof(path)) &&
		    is_transcript(a, path, strlen(path)))
			kind = SRC_TRANSCRIPT;
	}
	if (!kind)
		return NULL;
	if (a->n_sources == SUP_MAX_SOURCES) {
		if (!a->warned_sources) {
			a->warned_sources = true;
			sup_clear_live(s);
			log_warn(
				"WARNING: agent %d writes more than %d transcripts; what it writes "
				"to the others is NOT metered",
				(int)a->pid, SUP_MAX_SOURCES);
			ledger_mark(s->l, a->inst, 0, "more transcripts than tbwrap follows");
		}
		return NULL;
	}
	if (a->n_sources % 8 == 0) {
		struct source *n = realloc(a->sources, sizeof(*n) * (size_t)(a->n_sources + 8));
		if (!n)
			return NULL;
		a->sources = n;
	}
	struct source *src = &a->sources[a->n_sources++];
	memset(src, 0, sizeof(*src));
	src->dev = st->st_dev;
	src->ino = st->st_ino;
	src->kind = kind;
	src->subagent = kind == SRC_TRANSCRIPT && strstr(path, "/subagents/") != NULL;
	/* Stdout and the session's transcript are the main conversation; each subagent's
	 * transcript is one of its own. */
	src->conv = src->subagent ? req_conv_new(&a->book) : 0;
	src->pos.seekable = S_ISREG(st->st_mode) || S_ISBLK(st->st_mode);
	meter_stream_init(&src->s, METER_LINE_MAX_DEFAULT);
	src->s.track_calls = true;
	return src;
}

/* Messages the agent sent before it went (its exit status) are read before it is settled. */
static void drain_conn(struct sup *s, struct agent *a)
{
	struct proto_msg m;
	if (!a->conn)
		return;
	while (recv(a->conn->w.fd, &m, sizeof(m), MSG_DONTWAIT) == (ssize_t)sizeof(m))
		if (m.magic == PROTO_MAGIC && m.type == PROTO_EXIT)
			agents_exit_message(s, a->conn, m.value);
}

static void free_meter(struct agent *a)
{
	for (int i = 0; i < a->n_sources; i++) {
		meter_stream_free(&a->sources[i].s);
		streampos_free(&a->sources[i].pos);
	}
	free(a->sources);
	a->sources = NULL;
	a->n_sources = 0;
	free(a->core);
	a->core = NULL;
}

void agents_end(struct sup *s, int idx, int exit_code)
{
	struct agent *a = &s->agents[idx];
	if (!a->used || a->ended)
		return;
	a->n_held = 0; /* its threads are gone with it */
	drain_conn(s, a);
	if (a->core) {
		struct meter_usage delta = {{0}};
		uint64_t pusd_before = a->core->pusd_total;
		for (int i = 0; i < a->n_sources; i++) {
			meter_finish(a->core, &a->sources[i].s, &delta);
			enforce_usage_changed(s, a, &a->sources[i]);
		}
		enforce_record(s, a, &delta, pusd_before);
		ledger_publish_meter(s->l, a->inst, a->core);
	}
	ledger_settle(s->l, a->inst, a->stopping ? LEDGER_INST_STOPPED : LEDGER_INST_EXITED,
		      exit_code);
	if (a->core)
		enforce_agent_end(s, a);
	free_meter(a);
	if (a->pidw.fd >= 0) {
		sup_unwatch(s, &a->pidw);
		close(a->pidw.fd);
	}
	a->pidw.fd = -1;
	if (a->conn)
		a->conn->agent = -1;
	a->conn = NULL;
	a->ended = true;
	tid_forget_tgid(s, a->pid);
	enforce_check(s);
}

void agents_free(struct sup *s)
{
	for (int i = 0; i < s->n_agents; i++) {
		struct agent *a = &s->agents[i];
		if (!a->used || a->ended)
			continue;
		free_meter(a);
		if (a->pidw.fd >= 0)
			close(a->pidw.fd);
	}
}
