/*
 * libtbwrap.so: loaded into every process below tbwrap (LD_PRELOAD), dormant unless the process
 * is an agent.
 *
 * In an agent the constructor, before the host's main() runs:
 *   1. connects to the supervisor's socket;
 *   2. installs the seccomp notify filter on itself with a tag of its own (a nested agent,
 *      already under a listener of the session, does not);
 *   3. says HELLO, handing over the listener fd, and waits for the verdict: the supervisor reads
 *      the agent's argv, executable, environment and stdio from /proc, admits it against the
 *      budgets (block mode may refuse: the agent prints the reason and exits 86) or says it
 *      cannot be metered (block mode refuses, warn mode runs it with a loud warning);
 *   4. arms a signal on its connection (F_SETSIG), so that a supervisor that dies stops the
 *      agent loudly instead of leaving its writes failing in silence.
 * The library holds no budget state and writes none: it has nothing an agent could change to
 * lift its budget. Its writes to sources (stdout when it is JSON, transcripts) and sockets reach
 * the supervisor as notified syscalls, which the supervisor meters; all other writes are tagged
 * and skip it. Non-agents under an agent's filter tag all their libc writes.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "preload.h"
#include "tbwrap/agent.h"
#include "tbwrap/env.h"
#include "tbwrap/log.h"
#include "tbwrap/proto.h"

int preload_mode = PRELOAD_DORMANT;
uint64_t preload_tag;
struct preload_real preload_real;

static int sup_fd = -1;
static dev_t stdout_dev;
static ino_t stdout_ino;

/*
 * In-process knowledge of fds: what each number was when it was classified. A source is checked
 * with one fstat on every write, which is rare; anything else costs no syscall, and its entry is
 * cleared whenever libc hands out that number again (the open, dup and socket families and fopen
 * are hooked: hooks.c), so a transcript opened on a reused number is classified afresh. A number
 * reused by a raw syscall behind libc is not seen (README, Limits); the supervisor meters what it
 * is shown, so an fd wrongly thought a source only costs a notification.
 */
enum fd_kind { FD_UNKNOWN = 0, FD_OTHER, FD_SOURCE, FD_SOCKET };
#define FD_TRACK 4096
struct fd_entry {
	dev_t dev;
	ino_t ino;
	uint8_t kind;
};
static struct fd_entry fd_cache[FD_TRACK];

static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;

static void *real_sym(const char *name, void *self)
{
	void *p = dlsym(RTLD_NEXT, name);
	/* Resolving to ourselves would recurse forever: better to stop here, loudly. */
	if (p == self)
		log_die(TBWRAP_EXIT_INTERNAL,
			"%s resolves to the hook itself; preload order broken", name);
	return p;
}

#define RESOLVE(field, sym) preload_real.field = real_sym(#sym, (void *)(sym))

static void resolve_all(void)
{
	RESOLVE(write, write);
	RESOLVE(writev, writev);
	RESOLVE(pwrite, pwrite);
	RESOLVE(pwrite64, pwrite64);
	RESOLVE(pwritev, pwritev);
	RESOLVE(pwritev64, pwritev64);
	RESOLVE(pwritev2, pwritev2);
	RESOLVE(pwritev64v2, pwritev64v2);
	RESOLVE(_exit, _exit);
	RESOLVE(quick_exit, quick_exit);
	RESOLVE(_Exit, _Exit);
	RESOLVE(open, open);
	RESOLVE(open64, open64);
	RESOLVE(openat, openat);
	RESOLVE(openat64, openat64);
	RESOLVE(open_2, __open_2);
	RESOLVE(open64_2, __open64_2);
	RESOLVE(openat_2, __openat_2);
	RESOLVE(openat64_2, __openat64_2);
	RESOLVE(creat, creat);
	RESOLVE(creat64, creat64);
	RESOLVE(fopen, fopen);
	RESOLVE(fopen64, fopen64);
	RESOLVE(freopen, freopen);
	RESOLVE(dup, dup);
	RESOLVE(dup2, dup2);
	RESOLVE(dup3, dup3);
	RESOLVE(socket, socket);
	RESOLVE(accept, accept);
	RESOLVE(accept4, accept4);
	RESOLVE(execve, execve);
	RESOLVE(execvpe, execvpe);
	RESOLVE(execveat, execveat);
	RESOLVE(fexecve, fexecve);
	RESOLVE(posix_spawn, posix_spawn);
	RESOLVE(posix_spawnp, posix_spawnp);
}

void preload_resolve(void)
{
	pthread_once(&resolve_once, resolve_all);
}

ssize_t preload_tagged_write(int fd, const void *buf, size_t len)
{
	return syscall(SYS_write, fd, buf, len, 0, 0, (long)preload_tag);
}

static bool is_transcript_path(int fd)
{
	char link[64], path[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return false;
	path[n] = '\0';
	return agent_transcript_shape(path, (size_t)n, NULL);
}

static uint8_t classify_fd(int fd, struct fd_entry *e)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return FD_OTHER; /* the kernel answers the write with EBADF */
	e->dev = st.st_dev;
	e->ino = st.st_ino;
	if (S_ISSOCK(st.st_mode))
		return FD_SOCKET;
	if (stdout_ino && st.st_dev == stdout_dev && st.st_ino == stdout_ino)
		return FD_SOURCE;
	return S_ISREG(st.st_mode) && is_transcript_path(fd) ? FD_SOURCE : FD_OTHER;
}

int preload_route(int fd)
{
	if (fd < 0 || fd >= FD_TRACK)
		return PRELOAD_ROUTE_NOTIFY; /* untracked: the supervisor decides */
	struct fd_entry *e = &fd_cache[fd];
	uint8_t kind = __atomic_load_n(&e->kind, __ATOMIC_ACQUIRE);
	if (kind == FD_SOURCE) {
		/* Still the same file? A source's writes are few: one fstat each. */
		struct stat st;
		if (fstat(fd, &st) < 0 || st.st_dev != e->dev || st.st_ino != e->ino)
			kind = FD_UNKNOWN;
	}
	if (kind == FD_UNKNOWN) {
		kind = classify_fd(fd, e);
		__atomic_store_n(&e->kind, kind, __ATOMIC_RELEASE);
	}
	return kind == FD_OTHER ? PRELOAD_ROUTE_TAGGED : PRELOAD_ROUTE_NOTIFY;
}

void preload_new_fd(int fd)
{
	if (fd >= 0 && fd < FD_TRACK)
		__atomic_store_n(&fd_cache[fd].kind, FD_UNKNOWN, __ATOMIC_RELEASE);
}

void preload_record_exit(int status)
{
	struct proto_msg m = {.magic = PROTO_MAGIC, .type = PROTO_EXIT, .value = status & 0xff};
	/* Tagged, on a non-blocking socket: an exiting agent never waits for the supervisor. The
	 * supervisor reads it before it handles the agent's end. */
	if (sup_fd >= 0)
		syscall(SYS_write, sup_fd, &m, sizeof(m), 0, 0, (long)preload_tag);
}

/* Whether the supervisor has said this agent is being stopped for its budget (PROTO_STOPPED: the
 * only message it sends after the verdict). Read once, at exit. */
static bool told_stopped(void)
{
	static int told = -1;
	if (told < 0) {
		struct proto_msg m;
		told = 0;
		while (sup_fd >= 0 &&
		       recv(sup_fd, &m, sizeof(m), MSG_DONTWAIT) == (ssize_t)sizeof(m))
			if (m.magic == PROTO_MAGIC && m.type == PROTO_STOPPED)
				told = 1;
	}
	return told == 1;
}

int preload_exit_status(int status)
{
	if (preload_mode == PRELOAD_AGENT && (status & 0xff) == 0 && told_stopped())
		return TBWRAP_EXIT_STOPPED;
	return status;
}

static void on_agent_exit(int status, void *arg)
{
	(void)arg;
	int now = preload_exit_status(status);
	preload_record_exit(now);
	if (now != status) {
		/* The last handler to run (registered first, in the constructor): what is left is
		 * stdio's flush, done here, and the exit with the stopped status. */
		fflush(NULL);
		syscall(SYS_exit_group, now);
	}
}

/* The signal the kernel sends when the supervisor connection changes (F_SETSIG). Not SIGIO: the
 * Bun runtime of Claude Code puts SIGIO back to its default action after our constructor, and
 * the agent then died of it without a word. A real-time signal it leaves alone. */
#define PRELOAD_HUP_SIGNAL (SIGRTMAX - 3)

/* The connection's signal: either a hang-up (the supervisor is gone) or nothing. */
static void on_hangup_signal(int sig)
{
	(void)sig;
	char c;
	int saved = errno;
	ssize_t n = recv(sup_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
		static const char msg[] = ": supervisor is gone; stopping this agent (its usage "
					  "can no longer be metered)\n";
		/* No snprintf in a signal handler: the pid by hand. */
		char head[32] = "tbwrap[";
		char digits[16];
		int nd = 0;
		for (unsigned v = (unsigned)getpid(); v || nd == 0; v /= 10)
			digits[nd++] = (char)('0' + v % 10);
		size_t h = 7;
		while (nd > 0)
			head[h++] = digits[--nd];
		head[h++] = ']';
		preload_tagged_write(STDERR_FILENO, head, h);
		preload_tagged_write(STDERR_FILENO, msg, sizeof(msg) - 1);
		_exit(TBWRAP_EXIT_LOST);
	}
	errno = saved;
}

static int connect_supervisor(const char *name)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(name);
	if (len + 1 > sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* Abstract namespace: a leading NUL, then the name (no terminator counted). */
	memcpy(sa.sun_path + 1, name, len);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
	if (connect(fd, (struct sockaddr *)&sa, alen) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Sends the HELLO (with the listener fd when there is one) and waits for the verdict. */
static int say_hello(uint32_t flags, int value, int listener, struct proto_reply *r)
{
	struct proto_msg m = {
		.magic = PROTO_MAGIC, .type = PROTO_HELLO, .flags = flags, .value = value};
	struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (listener >= 0) {
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &listener, sizeof(int));
	}
	/* Tagged: an untagged sendmsg would be notified to a listener nobody holds yet. */
	if (syscall(SYS_sendmsg, sup_fd, &mh, 0, 0, 0, (long)preload_tag) < 0)
		return -errno;
	ssize_t n;
	do
		n = recv(sup_fd, r, sizeof(*r), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	if (n != (ssize_t)sizeof(*r) || r->magic != PROTO_MAGIC)
		return -EPROTO;
	r->text[sizeof(r->text) - 1] = '\0';
	return 0;
}

static uint64_t parse_tag(const char *v)
{
	char *end;
	errno = 0;
	unsigned long long t = v ? strtoull(v, &end, 16) : 0;
	if (!v || errno || *end || end - v != 16)
		return 0;
	return t;
}

static uint64_t new_tag(void)
{
	uint64_t t = 0;
	/* 0 is what an untagged call passes in the spare argument: never a tag. */
	while (t == 0)
		if (getrandom(&t, sizeof(t), 0) != (ssize_t)sizeof(t))
			log_die(TBWRAP_EXIT_INTERNAL, "getrandom failed: %s", strerror(errno));
	return t;
}

static void become_agent(const char *sock, const struct agent_exec *x, int first)
{
	log_set_prefix_pid(getpid());
	const char *filtered = getenv(TBWRAP_ENV_FILTERED);
	uint64_t tag = filtered ? parse_tag(filtered) : 0;
	uint32_t flags = 0;
	int value = 0, listener = -1;

	sup_fd = connect_supervisor(sock);
	if (sup_fd < 0)
		log_die_errno(TBWRAP_EXIT_LOST, "cannot reach the supervisor (@%s)", sock);

	if (tag) {
		flags = PROTO_F_NESTED;
	} else {
		tag = new_tag();
		listener = preload_install_filter(tag);
		if (listener >= 0) {
			flags = PROTO_F_LISTENER;
		} else {
			flags = PROTO_F_NO_FILTER;
			value = errno;
		}
	}
	/* From here on the process may be under the filter: our own messages go tagged. */
	preload_tag = tag;
	log_set_writer(preload_tagged_write);

	struct proto_reply r;
	int rc = say_hello(flags, value, listener, &r);
	if (listener >= 0)
		close(listener);
	if (rc == -ECONNRESET || rc == -EPIPE) {
		/* A supervisor killed while this agent connected: its listening socket still
		 * took the connection as the process went, then closed it unanswered. */
		errno = -rc;
		log_die_errno(TBWRAP_EXIT_LOST,
			      "the supervisor (@%s) went away before it took this agent", sock);
	}
	if (rc < 0) {
		errno = -rc;
		log_die_errno(TBWRAP_EXIT_LOST, "the supervisor did not take this agent");
	}
	if (r.text[0])
		log_warn("%s", r.text);
	if (r.verdict == PROTO_REFUSE)
		_exit(r.exit_status > 0 && r.exit_status < 256 ? r.exit_status
							       : TBWRAP_EXIT_REFUSED);

	/* stdout is a source only when the CLI writes JSON there; a zero identity makes it none. */
	struct agent_output out;
	struct stat st;
	agent_output_of(x->argc, x->argv, first, &out);
	if (out.stdout_json && fstat(STDOUT_FILENO, &st) == 0) {
		stdout_dev = st.st_dev;
		stdout_ino = st.st_ino;
	}

	char hex[17];
	snprintf(hex, sizeof(hex), "%016" PRIx64, tag);
	setenv(TBWRAP_ENV_FILTERED, hex, 1);
	preload_session_filtered(hex);

	struct sigaction sa = {.sa_handler = on_hangup_signal, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	sigaction(PRELOAD_HUP_SIGNAL, &sa, NULL);
	fcntl(sup_fd, F_SETOWN, getpid());
	fcntl(sup_fd, F_SETSIG, PRELOAD_HUP_SIGNAL);
	fcntl(sup_fd, F_SETFL, fcntl(sup_fd, F_GETFL) | O_ASYNC | O_NONBLOCK);
	/* exit() and a return from main() pass the status to on_exit handlers: the report then
	 * knows how an agent ended that is not tbwrap's child (tbwrap cannot wait for it). */
	on_exit(on_agent_exit, NULL);
	preload_mode = PRELOAD_AGENT;
}

/* Real path of the executable, and of the script when it is an interpreter. */
static void describe_self(int argc, char **argv, char *exe, char *script, struct agent_exec *x,
			  int *first)
{
	ssize_t n = readlink("/proc/self/exe", exe, PATH_MAX - 1);
	exe[n > 0 ? n : 0] = '\0';
	script[0] = '\0';
	int si = agent_script_index(argc, argv, exe);
	if (si > 0 && !realpath(argv[si], script))
		script[0] = '\0';
	*x = (struct agent_exec){.argc = argc, .argv = argv, .exe = exe, .script = script};
	*first = si > 0 ? si + 1 : 1;
}

static void self_path(char *out, size_t len)
{
	Dl_info info;
	out[0] = '\0';
	if (dladdr((void *)preload_resolve, &info) && info.dli_fname)
		snprintf(out, len, "%s", info.dli_fname);
}

__attribute__((constructor)) static void preload_init(int argc, char **argv, char **envp)
{
	(void)envp;
	preload_resolve();
	const char *sock = getenv(TBWRAP_ENV_SOCKET);
	if (!sock || !*sock)
		return; /* loaded outside tbwrap: stay out of the way */
	char lib[PATH_MAX];
	self_path(lib, sizeof(lib));
	preload_capture_session(lib);

	const char *match = getenv(TBWRAP_ENV_MATCH);
	char exe[PATH_MAX], script[PATH_MAX];
	struct agent_exec x;
	int first;
	describe_self(argc, argv, exe, script, &x, &first);
	if (agent_is_match(&x, match && *match ? match : TBWRAP_DEFAULT_MATCH)) {
		become_agent(sock, &x, first);
		return;
	}
	uint64_t tag = parse_tag(getenv(TBWRAP_ENV_FILTERED));
	if (tag) {
		/* Under an agent's filter: tag our writes so they skip the supervisor. */
		preload_tag = tag;
		log_set_writer(preload_tagged_write);
		preload_mode = PRELOAD_TAGGED;
	}
}
