/*
 * The supervisor's loop (include/tbwrap/supervisor.h; its modules: launcher/sup.h).
 *
 * One epoll set holds the signalfd, the listening socket, every connection, every seccomp
 * listener and the pidfd of every agent. Notifications are served first in each round: a
 * process blocked in a write is waiting for us. A tick (SUP_TICK_MS) looks after what has no
 * event of its own: held requests that waited long enough, the SIGKILL after a stop's grace,
 * the process tree scan, the live line, connections that never said anything.
 */
#include "tbwrap/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sup.h"
#include "tbwrap/env.h"
#include "tbwrap/log.h"
#include "tbwrap/procfs.h"
#include "tbwrap/proto.h"

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1UL
#endif

/* Connections at once: every running agent keeps one (its hang-up tells the agent the
 * supervisor is gone), plus some that are saying hello or asking for status. */
#define MAX_CONNS (SUP_MAX_AGENTS + 256)
#define EVENTS 64

uint64_t sup_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void supervisor_signals(sigset_t *set)
{
	static const int left_out[] = {SIGKILL, SIGSTOP, SIGSEGV, SIGBUS,  SIGFPE, SIGILL,
				       SIGTRAP, SIGSYS,	 SIGABRT, SIGTTIN, SIGTTOU};
	sigemptyset(set);
	for (int sig = 1; sig < SIGRTMIN; sig++)
		sigaddset(set, sig);
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
		sigaddset(set, sig);
	for (size_t i = 0; i < sizeof(left_out) / sizeof(left_out[0]); i++)
		sigdelset(set, left_out[i]);
}

void sup_clear_live(struct sup *s)
{
	if (s->live_drawn) {
		static const char wipe[] = "\r\033[K";
		if (write(STDERR_FILENO, wipe, sizeof(wipe) - 1) < 0) {
			/* nothing to do: stderr is gone */
		}
		s->live_drawn = false;
	}
}

void sup_draw_live(struct sup *s)
{
	if (!s->cfg->live)
		return;
	uint64_t t = sup_now_ms();
	if (t < s->next_live_ms)
		return;
	s->next_live_ms = t + SUP_LIVE_MS;
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

bool sup_watch(struct sup *s, struct watch *w)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, w->fd, &ev) == 0;
}

void sup_unwatch(struct sup *s, struct watch *w)
{
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

/* ---- connections ------------------------------------------------------------------------ */

static void close_conn(struct sup *s, struct conn *c)
{
	for (struct conn **p = &s->conns; *p; p = &(*p)->next) {
		if (*p != c)
			continue;
		*p = c->next;
		break;
	}
	if (c->agent >= 0 && s->agents[c->agent].conn == c)
		s->agents[c->agent].conn = NULL;
	sup_unwatch(s, &c->w);
	close(c->w.fd);
	free(c);
	s->n_conns--;
}

static void accept_conn(struct sup *s)
{
	int fd = accept4(s->cfg->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	struct conn *c = s->n_conns < MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
	if (!c) {
		/* Refused with a hang-up: an agent then stops with "cannot reach". */
		close(fd);
		return;
	}
	c->w = (struct watch){.kind = W_CONN, .fd = fd};
	c->agent = -1;
	c->since_ms = sup_now_ms();
	if (!sup_watch(s, &c->w)) {
		close(fd);
		free(c);
		return;
	}
	c->next = s->conns;
	s->conns = c;
	s->n_conns++;
}

static void handle_conn(struct sup *s, struct conn *c)
{
	struct proto_msg m;
	struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};
	ssize_t n = recvmsg(c->w.fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* Every fd that came along is ours to close unless it is the one listener expected. */
	int fds[4], nfds = 0;
	for (struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			for (size_t k = 0;
			     nfds < 4 && CMSG_LEN((k + 1) * sizeof(int)) <= cm->cmsg_len; k++)
				memcpy(&fds[nfds++], CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
	if (n <= 0) {
		close_conn(s, c); /* it closed its end; an agent's pidfd tells the rest */
		return;
	}
	int listener = -1;
	bool ok = (size_t)n == sizeof(m) && m.magic == PROTO_MAGIC && !(mh.msg_flags & MSG_CTRUNC);
	if (ok && m.type == PROTO_HELLO && (m.flags & PROTO_F_LISTENER) && nfds == 1) {
		/* One fd, the listener, is all a HELLO may carry. */
		listener = fds[0];
		nfds = 0;
	}
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (!ok)
		return; /* not ours: ignore, change nothing */
	switch (m.type) {
	case PROTO_HELLO:
		if (listener >= 0) {
			/* The kernel's SYNC_WAKE_UP: woken on the same CPU, about 14 instead of 24
			 * us per notification. Older kernels refuse it; nothing else changes. */
			const char *off = getenv(TBWRAP_ENV_BENCH_NO_SYNC_WAKEUP);
			uint64_t flags = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
			if (!(off && *off == '1'))
				(void)ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags);
		}
		agents_hello(s, c, &m, listener);
		break;
	case PROTO_EXIT:
		agents_exit_message(s, c, m.value);
		break;
	case PROTO_STATUS:
		agents_status_request(s, c);
		break;
	default:
		if (listener >= 0)
			close(listener);
		break;
	}
}

/* ---- processes -------------------------------------------------------------------------- */

static void reap(struct sup *s)
{
	int status;
	pid_t p;
	while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
		int idx = agent_by_pid(s, p);
		if (idx >= 0)
			agents_end(s, idx, procfs_wait_code(status));
		if (p == s->cfg->child) {
			s->child_done = true;
			s->child_done_ms = sup_now_ms();
			s->child_status = status;
		}
	}
	/* 0: children left (orphans of the command, reparented to us as subreaper). */
	s->has_orphans = p == 0 && s->child_done;
}

static void send_on(struct sup *s, int sig)
{
	if (!s->child_done) {
		/* Like timeout(1): tbwrap passes what it is sent on to the command. */
		kill(s->cfg->child, sig);
		return;
	}
	/* The command is gone but agents it left run on: they get it instead, or tbwrap could
	 * not be interrupted at all. By pidfd: never a reused pid. */
	for (int i = 0; i < s->n_agents; i++)
		if (s->agents[i].used && !s->agents[i].ended && s->agents[i].pidw.fd >= 0)
			syscall(SYS_pidfd_send_signal, s->agents[i].pidw.fd, sig, NULL, 0);
}

static void handle_signals(struct sup *s)
{
	struct signalfd_siginfo si;
	while (read(s->cfg->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int sig = (int)si.ssi_signo;
		/* SIGPIPE and SIGXFSZ that tbwrap's own writes raised are its own errors (the
		 * write fails too): not the command's business. */
		if ((sig == SIGPIPE || sig == SIGXFSZ) && si.ssi_pid == (uint32_t)getpid())
			continue;
		if (sig == SIGCHLD) {
			reap(s);
		} else if (sig == SIGTSTP) {
			/* Job control: the command stops, then tbwrap with it; SIGCONT (passed on
			 * below) continues both. */
			send_on(s, SIGTSTP);
			kill(getpid(), SIGSTOP);
		} else {
			send_on(s, sig);
		}
	}
}

static bool pending_hello(const struct sup *s, uint64_t now)
{
	for (const struct conn *c = s->conns; c; c = c->next)
		if (c->agent < 0 && now < c->since_ms + SUP_HELLO_MS)
			return true;
	return false;
}

/* The command has exited: go on while agents run, for a short grace while orphans the command
 * left behind may still become agents ('claude ... &'), and while one is saying hello. */
static bool keep_serving(struct sup *s)
{
	if (!s->child_done || agents_running(s))
		return true;
	uint64_t now = sup_now_ms();
	if (s->has_orphans && now < s->child_done_ms + SUP_ORPHAN_GRACE_MS)
		return true;
	return pending_hello(s, now);
}

static void tick(struct sup *s)
{
	/* Thread ids are reused once they wrap (pid_max): an entry older than a tick could name
	 * another process by now. Reading /proc/TID/status again costs a few us per active thread
	 * per tick; a wrap within one tick is out of reach. */
	memset(s->tids, 0, sizeof(s->tids));
	uint64_t now = sup_now_ms();
	for (struct conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		if (c->agent < 0 && now >= c->since_ms + SUP_HELLO_MS)
			close_conn(s, c);
	}
	if (s->cfg->tick_hook)
		s->cfg->tick_hook(s->cfg->tick_ctx, s->l);
	enforce_tick(s);
	scan_tree(s);
	sup_draw_live(s);
}

static void close_listener(struct sup *s, struct listener *ln)
{
	for (struct listener **p = &s->listeners; *p; p = &(*p)->next) {
		if (*p != ln)
			continue;
		*p = ln->next;
		break;
	}
	sup_unwatch(s, &ln->w);
	close(ln->w.fd);
	free(ln);
	s->n_listeners--;
}

static bool init(struct sup *s, const struct supervisor_config *cfg)
{
	s->cfg = cfg;
	s->l = cfg->ledger;
	s->uid = geteuid();
	for (int i = 0; i < SUP_MAX_AGENTS; i++)
		s->agents[i].pidw.fd = -1;
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
	s->buf = malloc(SUP_READ_CHUNK);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!s->req || !s->resp || !s->buf || s->epfd < 0) {
		log_warn_errno("cannot set up the supervisor");
		return false;
	}
	s->sigw = (struct watch){.kind = W_SIGNAL, .fd = cfg->signal_fd};
	s->listenw = (struct watch){.kind = W_LISTEN, .fd = cfg->listen_fd};
	if (!sup_watch(s, &s->sigw) || !sup_watch(s, &s->listenw)) {
		log_warn_errno("cannot set up the supervisor's epoll");
		return false;
	}
	return true;
}

static void finish(struct sup *s)
{
	sup_clear_live(s);
	while (s->listeners)
		close_listener(s, s->listeners);
	while (s->conns)
		close_conn(s, s->conns);
	agents_free(s);
	if (s->epfd >= 0)
		close(s->epfd);
	free(s->req);
	free(s->resp);
	free(s->buf);
}

/* One round of events; false on a failure of the loop itself. */
static bool serve(struct sup *s, uint64_t *next_tick)
{
	struct epoll_event ev[EVENTS];
	uint64_t t = sup_now_ms();
	int timeout = *next_tick > t ? (int)(*next_tick - t) : 0;
	int n = epoll_wait(s->epfd, ev, EVENTS, timeout);
	if (n < 0 && errno != EINTR) {
		log_warn_errno("epoll_wait");
		return false;
	}
	if (sup_now_ms() >= *next_tick) {
		tick(s);
		*next_tick = sup_now_ms() + SUP_TICK_MS;
	}
	/* Notifications first: an agent blocked in a write is waiting for us. */
	for (int i = 0; i < n; i++) {
		struct watch *w = ev[i].data.ptr;
		if (w->kind == W_NOTIF && (ev[i].events & EPOLLIN))
			notify_handle(s, w->fd);
	}
	for (int i = 0; i < n; i++) {
		struct watch *w = ev[i].data.ptr;
		switch (w->kind) {
		case W_SIGNAL:
			handle_signals(s);
			break;
		case W_LISTEN:
			accept_conn(s);
			break;
		case W_PIDFD: {
			struct agent *a =
				(struct agent *)((char *)w - offsetof(struct agent, pidw));
			/* The command itself is ended by reap(), which knows its status. */
			if (a->used && !a->ended && a->pid != s->cfg->child)
				agents_end(s, (int)(a - s->agents),
					   procfs_zombie_exit_code(a->pid));
			else if (a->used && !a->ended)
				reap(s);
			break;
		}
		default:
			break;
		}
	}
	/* Connections and listeners last: handling them may free the watch an event names. */
	for (int i = 0; i < n; i++) {
		struct watch *w = ev[i].data.ptr;
		if (w->kind == W_CONN) {
			for (struct conn *c = s->conns; c; c = c->next)
				if (&c->w == w) {
					handle_conn(s, c);
					break;
				}
		} else if (w->kind == W_NOTIF && !(ev[i].events & EPOLLIN) &&
			   (ev[i].events & (EPOLLHUP | EPOLLERR))) {
			/* No process uses that filter any more. */
			for (struct listener *ln = s->listeners; ln; ln = ln->next)
				if (&ln->w == w) {
					close_listener(s, ln);
					break;
				}
		}
	}
	return true;
}

int supervisor_run(const struct supervisor_config *cfg)
{
	struct sup *s = calloc(1, sizeof(*s));
	if (!s) {
		log_warn("out of memory");
		return TBWRAP_EXIT_INTERNAL;
	}
	s->epfd = -1;
	int rc = TBWRAP_EXIT_INTERNAL;
	if (!init(s, cfg))
		goto out;
	uint64_t next_tick = sup_now_ms() + SUP_TICK_MS;
	while (keep_serving(s))
		if (!serve(s, &next_tick))
			goto out;
	sup_clear_live(s);
	enforce_check(s);
	/* Whatever is still listed as running ran without a registration we could follow (an
	 * unlisted or unseen agent): it is over with the session. */
	struct ledger_header *h = s->l->h;
	for (uint32_t i = 0; i < ledger_n_instances(h); i++)
		if (ledger_load32(&h->instances[i].status) == LEDGER_INST_RUNNING)
			ledger_settle(s->l, (int)i, LEDGER_INST_EXITED, -1);
	rc = s->child_stopped ? TBWRAP_EXIT_STOPPED : procfs_wait_code(s->child_status);
out:
	finish(s);
	free(s);
	return rc;
}
