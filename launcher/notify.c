/*
 * Seccomp notifications: a process under one of the session's listeners made a write-family
 * system call without the tag (or one of the guarded calls), and waits for the answer.
 *
 * A notification names the thread, the syscall and its arguments. The written bytes are read
 * with process_vm_readv; the notification id is checked again afterwards (the thread may have
 * died and its id been reused while we read); the bytes are fed to the agent's meter when the fd
 * is one of its sources (stdout when it carries JSON, identified by the open file since Claude
 * Code writes through a duplicate of fd 1; transcripts by path); the syscall is then let through
 * with SECCOMP_USER_NOTIF_FLAG_CONTINUE. Sockets other than the agent's stdio are its API
 * traffic: block mode's request barrier holds and judges them.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sup.h"
#include "tbwrap/log.h"
#include "tbwrap/procfs.h"

#define REMOTE_IOV_MAX 1024

void notify_respond(struct sup *s, int fd, uint64_t id, int error)
{
	struct seccomp_notif_resp *r = s->resp;
	memset(r, 0, s->resp_size);
	r->id = id;
	if (error)
		r->error = -error;
	else
		r->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	while (ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, r) < 0 && errno == EINTR) {
	}
	/* ENOENT: the thread is gone (killed while waiting); nothing to answer. */
}

static void respond(struct sup *s, int fd, int error)
{
	notify_respond(s, fd, s->req->id, error);
}

void notify_respond_value(struct sup *s, int fd, uint64_t id, int64_t val)
{
	struct seccomp_notif_resp *r = s->resp;
	memset(r, 0, s->resp_size);
	r->id = id;
	r->val = val;
	while (ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, r) < 0 && errno == EINTR) {
	}
}

static bool read_remote(pid_t pid, uint64_t addr, void *dst, size_t len)
{
	struct iovec local = {.iov_base = dst, .iov_len = len};
	struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};
	return process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)len;
}

static bool still_valid(int fd, uint64_t id)
{
	return ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

/* Reads bytes [off, off + n) of what a remote iovec array holds into dst. */
static bool read_span(pid_t pid, const struct iovec *riov, int cnt, uint64_t off, char *dst,
		      size_t n)
{
	struct iovec part[REMOTE_IOV_MAX];
	int k = 0;
	size_t want = n;
	for (int i = 0; i < cnt && want > 0; i++) {
		size_t len = riov[i].iov_len;
		if (off >= len) {
			off -= len;
			continue;
		}
		size_t take = len - off < want ? len - off : want;
		part[k].iov_base = (char *)riov[i].iov_base + off;
		part[k].iov_len = take;
		k++;
		want -= take;
		off = 0;
	}
	struct iovec local = {.iov_base = dst, .iov_len = n};
	return k > 0 && process_vm_readv(pid, &local, 1, part, (unsigned long)k, 0) == (ssize_t)n;
}

/* The buffers a write-family syscall writes, read from the writer; -1 when unreadable. */
static int remote_buffers(pid_t pid, const struct seccomp_data *d, struct iovec *riov)
{
	int nr = d->nr;
	uint64_t vec = 0, cnt = 0;
	if (nr == SYS_write || nr == SYS_pwrite64 || nr == SYS_sendto) {
		riov[0].iov_base = (void *)(uintptr_t)d->args[1];
		riov[0].iov_len = (size_t)d->args[2];
		return 1;
	}
	if (nr == SYS_writev || nr == SYS_pwritev || nr == SYS_pwritev2) {
		vec = d->args[1];
		cnt = d->args[2];
	} else if (nr == SYS_sendmsg) {
		struct msghdr mh;
		if (!read_remote(pid, d->args[1], &mh, sizeof(mh)))
			return -1;
		vec = (uint64_t)(uintptr_t)mh.msg_iov;
		cnt = mh.msg_iovlen;
	} else {
		return -1;
	}
	/* The kernel refuses more than IOV_MAX: such a write writes nothing. */
	if (cnt == 0 || cnt > REMOTE_IOV_MAX)
		return -1;
	if (!read_remote(pid, vec, riov, sizeof(riov[0]) * (size_t)cnt))
		return -1;
	return (int)cnt;
}

/* Where a write to a seekable source goes: the syscall's own offset, else the fd's. */
static bool write_offset(pid_t tgid, const struct seccomp_data *d, const struct stat *st,
			 uint64_t *off)
{
	int nr = d->nr;
	if (nr == SYS_pwrite64) {
		*off = d->args[3];
		return true;
	}
	if ((nr == SYS_pwritev || nr == SYS_pwritev2) &&
	    (int64_t)(d->args[3] | (d->args[4] << 32)) != -1) {
		*off = d->args[3] | (d->args[4] << 32);
		return true;
	}
	bool append = false;
	if (!procfs_fd_position(tgid, (int)d->args[0], off, &append))
		return false;
	if (append)
		*off = (uint64_t)st->st_size;
	return true;
}

/* The transcript names the session's command: it confirms or corrects the key from argv (and
 * binds a prompt that came on stdin). Only the prompt before the first answer counts: a tool
 * result later in the transcript may contain anything. */
static void confirm_key(struct sup *s, struct agent *a, const char *data, size_t len)
{
	static const char answer[] = "\"type\":\"assistant\"";
	const char *first = memmem(data, len, answer, sizeof(answer) - 1);
	size_t upto = first ? (size_t)(first - data) : len;
	char key[LEDGER_NAME_LEN];
	if (agent_prompt_from_transcript(data, upto, key, sizeof(key))) {
		int cmd = ledger_command_index(s->l, key, true);
		if (cmd >= 0)
			ledger_rebind(s->l, a->inst, cmd);
		a->key_settled = true;
	}
	if (first)
		a->key_settled = true;
}

/* Meters one write to a source. Returns true when the agent's usage changed. */
static bool meter_write(struct sup *s, struct agent *a, struct source *src, pid_t tid, pid_t tgid,
			int lfd, const struct stat *st)
{
	const struct seccomp_data *d = &s->req->data;
	struct iovec riov[REMOTE_IOV_MAX];
	int cnt = remote_buffers(tgid, d, riov);
	if (cnt <= 0)
		return false;
	size_t total = 0;
	for (int i = 0; i < cnt; i++)
		total = riov[i].iov_len > SIZE_MAX - total ? SIZE_MAX : total + riov[i].iov_len;
	if (total == 0)
		return false;
	size_t first = total < SUP_READ_CHUNK ? total : SUP_READ_CHUNK;
	if (!read_span(tgid, riov, cnt, 0, s->buf, first) || !still_valid(lfd, s->req->id))
		return false;

	struct stream_write w = {.tid = tid,
				 .addr = cnt == 1 ? (uint64_t)(uintptr_t)riov[0].iov_base : 0,
				 .len = total,
				 .data = s->buf,
				 .have = first};
	if (src->pos.seekable)
		w.has_offset = write_offset(tgid, d, st, &w.offset);
	uint64_t pos = streampos_locate(&src->pos, &w, src->s.end);
	uint64_t start = pos == METER_POS_APPEND ? src->s.end : pos;
	streampos_remember(&src->pos, &w, start);

	struct meter_usage delta = {{0}};
	uint64_t pusd_before = a->core->pusd_total;
	for (size_t done = 0; done < total;) {
		size_t n = total - done < SUP_READ_CHUNK ? total - done : SUP_READ_CHUNK;
		if (done > 0 &&
		    (!read_span(tgid, riov, cnt, done, s->buf, n) || !still_valid(lfd, s->req->id)))
			break;
		if (src->kind == SRC_TRANSCRIPT && !src->subagent && !a->key_settled)
			confirm_key(s, a, s->buf, n);
		meter_feed(a->core, &src->s, pos == METER_POS_APPEND ? pos : pos + done, s->buf, n,
			   &delta);
		done += n;
	}
	enforce_record(s, a, &delta, pusd_before);
	enforce_usage_changed(s, a, src);
	return meter_usage_total(&delta, NULL) > 0;
}

/* ptrace attach, process_vm_writev, pidfd_getfd: refused when they aim at an agent (or at the
 * supervisor, which the kernel already protects: it is not dumpable). */
static bool guarded(struct sup *s, int lfd, pid_t tgid)
{
	const struct seccomp_data *d = &s->req->data;
	pid_t target;
	if (d->nr == SYS_ptrace)
		target = (pid_t)d->args[1];
	else if (d->nr == SYS_process_vm_writev)
		target = (pid_t)d->args[0];
	else if (d->nr == SYS_pidfd_getfd)
		target = procfs_pidfd_pid(tgid, (int)d->args[0]);
	else
		return false;
	pid_t tt = target > 0 ? procfs_tgid(target) : -1;
	bool deny = tt > 0 && (tt == getpid() || agent_by_pid(s, tt) >= 0);
	if (deny) {
		sup_clear_live(s);
		log_warn("refused: process %d tried to take over agent %d (%s)", (int)tgid, (int)tt,
			 d->nr == SYS_ptrace		  ? "ptrace"
			 : d->nr == SYS_process_vm_writev ? "process_vm_writev"
							  : "pidfd_getfd");
	}
	respond(s, lfd, deny ? EPERM : 0);
	return true;
}

/*
 * Whether a socket write starts an API call. A connection's host is learnt from its first bytes
 * (the ClientHello's server name, the Host header, a proxy's CONNECT: include/tbwrap/wire.h);
 * writes to another host than the API's are never calls. On a TLS connection the requests are
 * encrypted: the first application-data write after SUP_REQUEST_GAP_MS of silence on it starts
 * a call (handshake, alert and change-cipher records do not, and do not end the wait for it).
 * On plain HTTP each request line is a request, and only a POST bills (the CLI's HEAD /
 * connectivity check bills nothing). Unreadable or unrecognised bytes at the start of a burst
 * count as a call: to be safe.
 */
static bool peer_is_api(const struct agent *a, const char *host)
{
	return !a->api_host[0] || wire_host_is(host, a->api_host);
}

static void learn_peer(const struct agent *a, struct sock_seen *slot, const struct wire_head *h)
{
	if (h->host[0])
		slot->peer = peer_is_api(a, h->host) ? PEER_API : PEER_OTHER;
}

/* The first bytes of the write being notified; 0 when unreadable. */
static size_t write_head(struct sup *s, pid_t tgid, unsigned char *head, size_t max)
{
	struct iovec riov[REMOTE_IOV_MAX];
	int cnt = remote_buffers(tgid, &s->req->data, riov);
	size_t total = 0;
	for (int i = 0; i < cnt; i++)
		total += riov[i].iov_len;
	size_t n = total < max ? total : max;
	if (cnt <= 0 || n == 0 || !read_span(tgid, riov, cnt, 0, (char *)head, n))
		return 0;
	return n;
}

static bool starts_call(struct sup *s, struct agent *a, pid_t tgid, const struct stat *st)
{
	uint64_t key = ((uint64_t)st->st_dev << 40) ^ (uint64_t)st->st_ino, t = sup_now_ms();
	struct sock_seen *slot = NULL, *oldest = &a->socks[0];
	for (int i = 0; i < SUP_SOCKETS; i++) {
		if (a->socks[i].key == key) {
			slot = &a->socks[i];
			break;
		}
		if (a->socks[i].last_ms < oldest->last_ms)
			oldest = &a->socks[i];
	}
	bool burst = !slot || t - slot->last_ms > SUP_REQUEST_GAP_MS;
	if (!slot) {
		slot = oldest;
		memset(slot, 0, sizeof(*slot));
		slot->key = key;
	}
	slot->last_ms = t;
	if (burst)
		slot->in_call = false;
	if (slot->peer == PEER_OTHER || (slot->in_call && !slot->plain))
		return false;
	unsigned char head[WIRE_HEAD_MAX];
	size_t n = write_head(s, tgid, head, sizeof(head));
	struct wire_head h;
	bool call;
	if (n == 0) {
		call = !slot->in_call;
	} else {
		wire_classify(head, n, &h);
		switch (h.kind) {
		case WIRE_TLS_HELLO:
			learn_peer(a, slot, &h);
			slot->plain = false;
			return false;
		case WIRE_TLS_OTHER:
			return false;
		case WIRE_HTTP:
			learn_peer(a, slot, &h);
			/* A CONNECT opens a tunnel: its ClientHello names the host again. */
			if (h.is_connect || slot->peer == PEER_OTHER)
				return false;
			slot->plain = true;
			call = h.is_post;
			if (!call)
				slot->in_call = false;
			break;
		case WIRE_TLS_DATA:
		case WIRE_UNKNOWN:
		default:
			/* Plain HTTP: the rest of a request (its body). */
			call = !slot->in_call && !(slot->plain && h.kind == WIRE_UNKNOWN);
			break;
		}
	}
	if (!call)
		return false;
	slot->in_call = true;
	if (slot->had_call)
		a->answered++;
	slot->had_call = true;
	return true;
}

/*
 * A stopped agent sends nothing more to its API, even during the grace: its socket writes are
 * answered as if made, and dropped. Answered with an error, Claude Code would retry and then end
 * without its result object; waiting for an answer that never comes, it handles the SIGINT of
 * the stop as a user's interrupt and writes its result (subtype error_during_execution).
 */
static int64_t write_length(pid_t tgid, const struct seccomp_data *d)
{
	struct iovec riov[REMOTE_IOV_MAX];
	int cnt = remote_buffers(tgid, d, riov);
	int64_t total = 0;
	for (int i = 0; i < cnt; i++)
		total += (int64_t)riov[i].iov_len;
	return cnt < 0 ? -1 : total;
}

void notify_swallow(struct sup *s, int lfd, uint64_t id, int64_t len)
{
	if (len < 0)
		notify_respond(s, lfd, id, EFAULT);
	else
		notify_respond_value(s, lfd, id, len);
}

static bool is_stdio_socket(const struct agent *a, const struct stat *st)
{
	for (int i = 0; i < 3; i++)
		if (a->stdio_sock[i].ino && a->stdio_sock[i].dev == st->st_dev &&
		    a->stdio_sock[i].ino == st->st_ino)
			return true;
	return false;
}

void notify_handle(struct sup *s, int lfd)
{
	memset(s->req, 0, s->req_size);
	if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, s->req) < 0)
		return; /* EINTR, or ENOENT: the target died before we received it */
	pid_t tid = (pid_t)s->req->pid, tgid = -1;
	int idx = agent_of_tid(s, tid, &tgid);
	if (tgid > 0 && guarded(s, lfd, tgid))
		return;
	if (idx == -2) {
		respond(s, lfd, EPERM); /* an agent refused: not one more write */
		return;
	}
	if (idx < 0) {
		respond(s, lfd, 0); /* not an agent: answered at once */
		return;
	}
	struct agent *a = &s->agents[idx];
	int fd = (int)s->req->data.args[0];
	struct stat st;
	if (!procfs_fd_stat(tgid, fd, &st)) {
		respond(s, lfd, 0); /* a bad fd: the kernel answers it */
		return;
	}
	if (S_ISSOCK(st.st_mode) && !is_stdio_socket(a, &st)) {
		int answer = 0;
		int64_t len = write_length(tgid, &s->req->data);
		if (!a->stopping && starts_call(s, a, tgid, &st))
			answer = enforce_request(s, a, lfd, s->req->id,
						 ((uint64_t)st.st_dev << 40) ^ st.st_ino, len);
		if (answer == -1)
			return; /* held: the barrier answers it */
		if (a->stopping)
			notify_swallow(s, lfd, s->req->id, len);
		else
			respond(s, lfd, answer);
		return;
	}
	struct source *src = a->core ? agents_source(s, a, tgid, fd, &st) : NULL;
	bool changed = src && meter_write(s, a, src, tid, tgid, lfd, &st);
	respond(s, lfd, 0);
	/* After the answer: the write that crossed a budget still reaches its file, so the output
	 * ends with the line that was counted. */
	if (changed)
		enforce_check(s);
	if (a->n_held && src)
		enforce_release(s, a);
}
