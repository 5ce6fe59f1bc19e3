/*
 * libtbwrap.so: loaded into every process below tbwrap (LD_PRELOAD), dormant unless the process
 * is an agent.
 *
 * In an agent the constructor, before the host's main() runs:
 *   1. reads argv for the budget key of the prompt ("/test --x" -> "/test");
 *   2. admits the agent against the ledger: an atomic check-and-reserve of the estimate (block
 *      mode refuses with one line on stderr and exit status 86; warn mode says it and runs);
 *   3. installs the seccomp notify filter on itself and hands the listener fd to the supervisor
 *      (a nested agent, already under a listener, registers its pid instead);
 *   4. arms a signal on its connection (F_SETSIG), so that a supervisor that dies stops the
 *      agent loudly instead of leaving its writes failing in silence.
 * Its libc write family is then metered in-line (hooks.c); raw syscalls go to the supervisor.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "tbwrap/render.h"

int preload_mode = PRELOAD_DORMANT;
uint64_t preload_tag;
struct preload_real preload_real;

static struct ledger ledger;
static int inst = -1;
static int sup_fd = -1;
static bool is_block;
static dev_t stdout_dev;
static ino_t stdout_ino;
static char config_dir[PROTO_PATH_LEN];
static size_t config_dir_len;

/*
 * In-process knowledge of fds: what each number was when it was classified. A source (stdout,
 * a transcript) is checked with one fstat on every write, which is rare; anything else costs no
 * syscall, and its entry is cleared whenever libc hands out that number again (the open, dup and
 * socket families and fopen are hooked: hooks.c), so a transcript opened on a reused number is
 * classified afresh. A number reused by a raw syscall behind libc is not seen (README, Limits).
 */
enum fd_kind { FD_UNKNOWN = 0, FD_OTHER, FD_SOURCE, FD_SOCKET };
#define FD_TRACK 4096
struct fd_entry {
	dev_t dev;
	ino_t ino;
	uint8_t kind;
};
static struct fd_entry fd_cache[FD_TRACK];
/* Set while this thread accounts (it holds the instance lock): a write made meanwhile, from a
 * signal handler, must neither take the lock again nor wait on the supervisor, which may be
 * waiting for that lock. Initial-exec: no allocation on first use, in a signal handler. */
static __thread bool in_account __attribute__((tls_model("initial-exec")));
#define MAX_TRANSCRIPTS 64 /* the session's, and one per subagent */
static struct meter_stream stdout_stream;
static struct {
	dev_t dev;
	ino_t ino;
	struct meter_stream s;
} transcripts[MAX_TRANSCRIPTS];
static int n_transcripts;

static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;

static void *must_sym(const char *name, void *self)
{
	void *p = dlsym(RTLD_NEXT, name);
	/* Resolving to ourselves would recurse forever: better to stop here, loudly. */
	if (p == self)
		log_die(TBWRAP_EXIT_INTERNAL,
			"%s resolves to the hook itself; preload order broken", name);
	return p;
}

static void resolve_all(void)
{
	preload_real.write = must_sym("write", (void *)write);
	preload_real.writev = must_sym("writev", (void *)writev);
	preload_real.pwrite = must_sym("pwrite", (void *)pwrite);
	preload_real.pwrite64 = must_sym("pwrite64", (void *)pwrite64);
	preload_real.pwritev = must_sym("pwritev", (void *)pwritev);
	preload_real.pwritev64 = must_sym("pwritev64", (void *)pwritev64);
	preload_real.pwritev2 = must_sym("pwritev2", (void *)pwritev2);
	preload_real.pwritev64v2 = must_sym("pwritev64v2", (void *)pwritev64v2);
	preload_real._exit = must_sym("_exit", (void *)_exit);
	preload_real.quick_exit = must_sym("quick_exit", (void *)quick_exit);
	preload_real.open = must_sym("open", (void *)open);
	preload_real.open64 = must_sym("open64", (void *)open64);
	preload_real.openat = must_sym("openat", (void *)openat);
	preload_real.openat64 = must_sym("openat64", (void *)openat64);
	preload_real.open_2 = must_sym("__open_2", (void *)__open_2);
	preload_real.open64_2 = must_sym("__open64_2", (void *)__open64_2);
	preload_real.openat_2 = must_sym("__openat_2", (void *)__openat_2);
	preload_real.openat64_2 = must_sym("__openat64_2", (void *)__openat64_2);
	preload_real.creat = must_sym("creat", (void *)creat);
	preload_real.creat64 = must_sym("creat64", (void *)creat64);
	preload_real.fopen = must_sym("fopen", (void *)fopen);
	preload_real.fopen64 = must_sym("fopen64", (void *)fopen64);
	preload_real.freopen = must_sym("freopen", (void *)freopen);
	preload_real.dup = must_sym("dup", (void *)dup);
	preload_real.dup2 = must_sym("dup2", (void *)dup2);
	preload_real.dup3 = must_sym("dup3", (void *)dup3);
	preload_real.socket = must_sym("socket", (void *)socket);
	preload_real.accept = must_sym("accept", (void *)accept);
	preload_real.accept4 = must_sym("accept4", (void *)accept4);
	preload_real._Exit = must_sym("_Exit", (void *)_Exit);
}

void preload_resolve(void)
{
	pthread_once(&resolve_once, resolve_all);
}

ssize_t preload_tagged_write(int fd, const void *buf, size_t len)
{
	return syscall(SYS_write, fd, buf, len, 0, 0, (long)preload_tag);
}

static void poke_supervisor(void)
{
	struct proto_msg m = {
		.magic = PROTO_MAGIC, .type = PROTO_POKE, .pid = getpid(), .inst = inst};
	/* A tagged write, not sendto (which has no argument left for the tag): a poke must not
	 * take a round trip through the very supervisor it pokes. The socket is non-blocking: a
	 * full buffer means pokes are pending already. */
	syscall(SYS_write, sup_fd, &m, sizeof(m), 0, 0, (long)preload_tag);
}

/* Index of the transcript's stream, -1 when more transcripts than tracked are open. */
static int transcript_stream(dev_t dev, ino_t ino)
{
	for (int i = 0; i < n_transcripts; i++)
		if (transcripts[i].dev == dev && transcripts[i].ino == ino)
			return i;
	if (n_transcripts == MAX_TRANSCRIPTS) {
		static bool warned;
		if (!warned) {
			warned = true;
			log_warn("WARNING: this agent writes more than %d transcripts; what it "
				 "writes "
				 "to the others is NOT metered",
				 MAX_TRANSCRIPTS);
		}
		return -1;
	}
	transcripts[n_transcripts].dev = dev;
	transcripts[n_transcripts].ino = ino;
	meter_stream_init(&transcripts[n_transcripts].s, METER_LINE_MAX_DEFAULT);
	return n_transcripts++;
}

static bool is_transcript_path(int fd)
{
	char link[64], path[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return false;
	path[n] = '\0';
	return config_dir_len > 0 && (size_t)n > config_dir_len + 16 &&
	       memcmp(path, config_dir, config_dir_len) == 0 &&
	       strncmp(path + config_dir_len, "/projects/", 10) == 0 &&
	       strcmp(path + n - 6, ".jsonl") == 0;
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
	if (in_account)
		return PRELOAD_ROUTE_TAGGED;
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
	/* The supervisor sees socket writes: block mode holds a request there, and refuses a
	 * stopped agent's. */
	return kind == FD_SOURCE   ? PRELOAD_ROUTE_METER
	       : kind == FD_SOCKET ? PRELOAD_ROUTE_NOTIFY
				   : PRELOAD_ROUTE_TAGGED;
}

void preload_new_fd(int fd)
{
	if (fd >= 0 && fd < FD_TRACK)
		__atomic_store_n(&fd_cache[fd].kind, FD_UNKNOWN, __ATOMIC_RELEASE);
}

/* The stream of a file that preload_route said to meter (instance lock held). */
static struct meter_stream *stream_of(int fd, bool *is_transcript)
{
	struct stat st;
	*is_transcript = false;
	if (fstat(fd, &st) < 0)
		return NULL;
	if (stdout_ino && st.st_dev == stdout_dev && st.st_ino == stdout_ino)
		return &stdout_stream;
	int i = transcript_stream(st.st_dev, st.st_ino);
	*is_transcript = i >= 0;
	return i >= 0 ? &transcripts[i].s : NULL;
}

/* An agent whose prompt came on stdin: the transcript names its command (with the lock held). */
static void bind_from_transcript(const struct iovec *iov, int iovcnt, size_t ret)
{
	char key[LEDGER_NAME_LEN];
	for (int i = 0; i < iovcnt && ret > 0; i++) {
		size_t n = iov[i].iov_len < ret ? iov[i].iov_len : ret;
		if (agent_prompt_from_transcript(iov[i].iov_base, n, key, sizeof(key))) {
			int cmd = ledger_command_index(&ledger, key, true);
			ledger_instance_unlock(&ledger, inst);
			if (cmd >= 0)
				ledger_rebind(&ledger, inst, cmd);
			__atomic_and_fetch(&ledger.h->instances[inst].flags, ~LEDGER_F_UNBOUND,
					   __ATOMIC_RELEASE);
			ledger_instance_lock(&ledger, inst);
			return;
		}
		ret -= n;
	}
}

void preload_account(int fd, const struct iovec *iov, int iovcnt, size_t ret)
{
	in_account = true;
	ledger_instance_lock(&ledger, inst);
	bool is_transcript;
	struct meter_stream *s = stream_of(fd, &is_transcript);
	struct meter_usage delta = {{0}};
	if (s && is_transcript &&
	    (__atomic_load_n(&ledger.h->instances[inst].flags, __ATOMIC_ACQUIRE) &
	     LEDGER_F_UNBOUND))
		bind_from_transcript(iov, iovcnt, ret);
	if (s) {
		for (int i = 0; i < iovcnt && ret > 0; i++) {
			size_t n = iov[i].iov_len < ret ? iov[i].iov_len : ret;
			meter_feed(&ledger.h->instances[inst].core, s, METER_POS_APPEND,
				   iov[i].iov_base, n, &delta);
			ret -= n;
		}
	}
	bool changed = meter_usage_total(&delta, NULL) > 0;
	/* Recorded under the lock, so that a rebind never sees half of it. */
	if (changed)
		ledger_record_delta(&ledger, inst, &delta);
	ledger_instance_unlock(&ledger, inst);
	in_account = false;
	if (changed) {
		__atomic_or_fetch(&ledger.h->instances[inst].flags, LEDGER_F_LIBC,
				  __ATOMIC_RELAXED);
		poke_supervisor();
	}
}

static void on_agent_exit(int status, void *arg)
{
	(void)arg;
	preload_record_exit(status);
}

void preload_record_exit(int status)
{
	__atomic_store_n(&ledger.h->instances[inst].exit_code, status & 0xff, __ATOMIC_RELAXED);
}

/* The signal the kernel sends when the supervisor connection changes (F_SETSIG). Not SIGIO: the
 * Bun runtime of Claude Code puts SIGIO back to its default action after our constructor, and
 * the agent then died of it without a word. A real-time signal it leaves alone. */
#define PRELOAD_HUP_SIGNAL (SIGRTMAX - 3)

/* The connection's signal: either a hang-up (the supervisor is gone) or nothing. */
static void on_sigio(int sig)
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

static void set_config_dir(void)
{
	const char *dir = getenv("CLAUDE_CONFIG_DIR");
	char buf[PROTO_PATH_LEN];
	if (!dir || !*dir) {
		const char *home = getenv("HOME");
		snprintf(buf, sizeof(buf), "%s/.claude", home ? home : "");
		dir = buf;
	}
	/* /proc/self/fd links are canonical; so must the prefix be, when it exists already. */
	char *real = realpath(dir, NULL);
	snprintf(config_dir, sizeof(config_dir), "%s", real ? real : dir);
	free(real);
	config_dir_len = strlen(config_dir);
	while (config_dir_len > 1 && config_dir[config_dir_len - 1] == '/')
		config_dir[--config_dir_len] = '\0';
}

static int connect_supervisor(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Sends the HELLO (with the listener fd when there is one) and waits for the answer. */
static int register_agent(uint32_t flags, int listener)
{
	struct proto_msg m = {.magic = PROTO_MAGIC,
			      .type = PROTO_HELLO,
			      .pid = getpid(),
			      .inst = inst,
			      .flags = flags,
			      .stdout_dev = stdout_dev,
			      .stdout_ino = stdout_ino};
	memcpy(m.config_dir, config_dir, config_dir_len + 1);
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
	struct proto_reply r;
	ssize_t n;
	do
		n = recv(sup_fd, &r, sizeof(r), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(r) || r.magic != PROTO_MAGIC)
		return -EPROTO;
	return r.status;
}

static void describe_refusal(const struct ledger_refusal *why, char *buf, size_t len)
{
	char used[32], res[32], est[32], lim[32];
	render_tokens(used, sizeof(used), why->used);
	render_tokens(res, sizeof(res), why->reserved);
	render_tokens(est, sizeof(est), why->estimate);
	render_tokens(lim, sizeof(lim), why->limit);
	if (why->is_overall)
		snprintf(buf, len, "overall budget: used %s + reserved %s + estimate %s > limit %s",
			 used, res, est, lim);
	else
		snprintf(buf, len,
			 "command budget %s: used %s + reserved %s + estimate %s > limit %s",
			 why->name, used, res, est, lim);
}

/* Stops the agent before its main() in block mode; says why. */
static void refuse(const char *fmt, const char *detail)
{
	log_warn(fmt, detail);
	_exit(TBWRAP_EXIT_REFUSED);
}

/* Admission: the prompt's budget key, then check-and-reserve (block mode refuses here). */
static void admit(int argc, char **argv)
{
	char why_text[256], key[LEDGER_NAME_LEN];
	bool unbound = false;
	if (!agent_command_key(argc, argv, key, sizeof(key)) || key[0] == '\0') {
		/* No prompt on argv (it comes on stdin): the catch-all key until the transcript
		 * names the command. */
		snprintf(key, sizeof(key), "%s", LEDGER_CATCH_ALL);
		unbound = true;
	}
	int cmd = ledger_command_index(&ledger, key, true);
	if (cmd < 0)
		cmd = ledger_command_index(&ledger, LEDGER_CATCH_ALL, true);
	if (cmd < 0)
		log_die(TBWRAP_EXIT_REFUSED, "refused: the ledger's table of %d commands is full",
			LEDGER_MAX_COMMANDS);

	bool exceeded = false;
	struct ledger_refusal why;
	int refused_slot = -1;
	inst = ledger_admit(&ledger, cmd, getpid(), ledger.h->estimate, &exceeded, &why,
			    &refused_slot);
	if (inst == -2) {
		if (refused_slot >= 0)
			__atomic_store_n(&ledger.h->instances[refused_slot].exit_code,
					 TBWRAP_EXIT_REFUSED, __ATOMIC_RELAXED);
		describe_refusal(&why, why_text, sizeof(why_text));
		refuse("refused %s (block mode)", why_text);
	}
	if (inst < 0) {
		if (is_block)
			log_die(TBWRAP_EXIT_REFUSED,
				"refused: the ledger's table of %d agents is full (block mode)",
				LEDGER_MAX_INSTANCES);
		/* Warn mode never stops work: the agent runs, and says it is not counted. */
		log_warn("WARNING: the ledger's table of %d agents is full; this agent runs "
			 "UNMETERED and is not in the report (warn mode)",
			 LEDGER_MAX_INSTANCES);
		ledger_close(&ledger);
		return;
	}
	if (unbound)
		__atomic_or_fetch(&ledger.h->instances[inst].flags, LEDGER_F_UNBOUND,
				  __ATOMIC_RELEASE);
	if (exceeded) {
		describe_refusal(&why, why_text, sizeof(why_text));
		log_warn("warning: %s (warn mode: running anyway)", why_text);
	}
}

/* TBWRAP_AGENT ("pid:slot") names the instance of an agent; the same pid after an exec finds
 * its own, still running, instance there. */
static bool adopt_instance(void)
{
	const char *v = getenv(TBWRAP_ENV_AGENT);
	char *end;
	if (!v)
		return false;
	errno = 0;
	long pid = strtol(v, &end, 10);
	if (errno || *end != ':' || pid != (long)getpid())
		return false;
	long slot = strtol(end + 1, &end, 10);
	if (errno || *end || slot < 0 || slot >= LEDGER_MAX_INSTANCES ||
	    (uint32_t)slot >= __atomic_load_n(&ledger.h->n_instances, __ATOMIC_ACQUIRE))
		return false;
	struct ledger_instance *in = &ledger.h->instances[slot];
	uint32_t st = __atomic_load_n(&in->status, __ATOMIC_ACQUIRE);
	if (in->pid != pid || (st != LEDGER_INST_RUNNING && st != LEDGER_INST_UNMETERED))
		return false;
	inst = (int)slot;
	return true;
}

static void become_agent(int argc, char **argv)
{
	const char *name = getenv(TBWRAP_ENV_LEDGER);
	const char *sock = getenv(TBWRAP_ENV_SOCKET);
	char err[256];

	log_set_prefix_pid(getpid());
	if (ledger_open(&ledger, name, true, err, sizeof(err)) < 0)
		log_die(TBWRAP_EXIT_REFUSED, "refusing to run this agent unmetered: %s", err);
	preload_tag = ledger.h->tag;
	is_block = ledger.h->mode == LEDGER_MODE_BLOCK;

	/* The same process after an exec (a launcher named like the agent that execs the real
	 * CLI): its admission, filter and registration stand; it only reconnects. */
	bool adopted = adopt_instance();
	if (!adopted)
		admit(argc, argv);

	/* stdout is a usage source only when the CLI writes JSON there (agent_stdout_is_json);
	 * a zero identity makes it none, for the supervisor and for the in-process path. */
	struct stat st;
	if (agent_stdout_is_json(argc, argv) && fstat(STDOUT_FILENO, &st) == 0) {
		stdout_dev = st.st_dev;
		stdout_ino = st.st_ino;
	}
	set_config_dir();

	sup_fd = sock ? connect_supervisor(sock) : -1;
	if (sup_fd < 0) {
		ledger_settle(&ledger, inst, LEDGER_INST_REFUSED, -1);
		log_die_errno(TBWRAP_EXIT_LOST, "cannot reach the supervisor at %s",
			      sock ? sock : "(no " TBWRAP_ENV_SOCKET ")");
	}

	uint32_t flags = 0;
	int listener = -1;
	if (adopted) {
		flags = PROTO_F_ADOPT;
	} else if (getenv(TBWRAP_ENV_FILTERED)) {
		flags = PROTO_F_NESTED;
	} else {
		listener = preload_install_filter(preload_tag);
		if (listener >= 0) {
			flags = PROTO_F_LISTENER;
		} else {
			/* EBUSY: a listener is above us that this session's agents did not put
			 * there (TBWRAP_FILTERED is not set): another tbwrap session's agent, or a
			 * sandbox. Its holder would see our writes, not our supervisor. */
			const char *cause =
				errno == EBUSY
					? "another seccomp listener (another tbwrap session's "
					  "agent, or a sandbox) is above this process"
					: strerror(errno);
			if (is_block) {
				ledger_settle(&ledger, inst, LEDGER_INST_REFUSED, -1);
				log_die(TBWRAP_EXIT_REFUSED,
					"refused: cannot install the seccomp filter that meters "
					"this agent (block mode): %s",
					cause);
			}
			log_warn("WARNING: cannot install the seccomp filter; this agent runs "
				 "UNMETERED (warn mode): %s",
				 cause);
			flags = PROTO_F_UNMETERED;
		}
	}
	/* From here on the process may be under the filter: our own messages go tagged. */
	log_set_writer(preload_tagged_write);
	int rc = register_agent(flags, listener);
	if (listener >= 0)
		close(listener);
	if (rc < 0) {
		ledger_settle(&ledger, inst, LEDGER_INST_REFUSED, TBWRAP_EXIT_LOST);
		errno = -rc;
		log_die_errno(TBWRAP_EXIT_LOST, "the supervisor did not take this agent");
	}

	meter_stream_init(&stdout_stream, METER_LINE_MAX_DEFAULT);
	setenv(TBWRAP_ENV_FILTERED, "1", 1);
	char self[48];
	snprintf(self, sizeof(self), "%d:%d", (int)getpid(), inst);
	setenv(TBWRAP_ENV_AGENT, self, 1);

	struct sigaction sa = {.sa_handler = on_sigio, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	sigaction(PRELOAD_HUP_SIGNAL, &sa, NULL);
	fcntl(sup_fd, F_SETOWN, getpid());
	fcntl(sup_fd, F_SETSIG, PRELOAD_HUP_SIGNAL);
	fcntl(sup_fd, F_SETFL, fcntl(sup_fd, F_GETFL) | O_ASYNC | O_NONBLOCK);
	/* exit() and a return from main() pass the status to on_exit handlers: the report then
	 * knows how an agent ended that is not tbwrap's child (tbwrap cannot wait for it). */
	on_exit(on_agent_exit, NULL);
	/* Unmetered agents too: their libc writes are still metered in-process. */
	preload_mode = PRELOAD_AGENT;
}

__attribute__((constructor)) static void preload_init(int argc, char **argv, char **envp)
{
	(void)envp;
	preload_resolve();
	if (!getenv(TBWRAP_ENV_LEDGER))
		return; /* loaded outside tbwrap: stay out of the way */
	const char *match = getenv(TBWRAP_ENV_MATCH);
	if (agent_is_match(argc, argv, match && *match ? match : TBWRAP_DEFAULT_MATCH)) {
		become_agent(argc, argv);
		return;
	}
	if (getenv(TBWRAP_ENV_FILTERED)) {
		/* Under an agent's filter: tag our writes so they skip the supervisor. The tag is
		 * in the ledger; without it (ledger unreadable) we stay dormant and are notified.
		 */
		char err[256];
		struct ledger l;
		if (ledger_open(&l, getenv(TBWRAP_ENV_LEDGER), false, err, sizeof(err)) == 0) {
			preload_tag = l.h->tag;
			ledger_close(&l);
			log_set_writer(preload_tagged_write);
			preload_mode = PRELOAD_TAGGED;
		}
	}
}
