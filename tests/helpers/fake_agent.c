/*
 * fake_agent: stands in for the Claude Code CLI in the shell tests.
 *
 * It replays a captured stdout stream and a captured transcript, written the ways that matter to
 * tbwrap:
 *   --mode libc    write(2) through the PLT, so an LD_PRELOAD hook sees every call;
 *   --mode writev  writev(2) through the PLT, each chunk split over two iovecs;
 *   --mode stdio   fputs/fwrite on stdout (glibc's stdio reaches the kernel through its internal
 *                  __write, not through the exported write symbol);
 * --ignore INT,TERM ignores those signals (an agent slow to stop: block mode escalates).
 *   --mode raw     what the Bun-compiled CLI does (docs/design.md §1): stdout is duplicated with
 *                  fcntl(1, F_DUPFD_CLOEXEC, 0) and written through the duplicate with raw
 *                  syscalls (pwritev2 + RWF_NOWAIT on a pipe, write otherwise), the transcript
 *                  with raw write on an O_APPEND fd, plus eventfd writes from the main thread and
 *                  from a second thread. Nothing passes through libc's write family.
 * The two streams are interleaved line by line, transcript first, as the real CLI does. Whatever
 * the mode, stdout ends up byte-identical to the --stdout file and the transcript to the
 * --transcript file.
 *
 * Tests run it through a symlink named "claude", so it accepts and ignores Claude's own arguments
 * (a prompt, -p, --output-format X, --verbose, ...); its own options may appear anywhere.
 * Exit status: --exit N (default 0); 2 for a bad command line (nothing is written then); 1 when a
 * write fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_LIBC, MODE_WRITEV, MODE_STDIO, MODE_RAW };

struct options {
	const char *stdout_path;
	const char *transcript_path;
	const char *stderr_path;
	const char *spawn_cmd;
	const char *session_id;
	enum mode mode;
	long chunk; /* 0: one write per line */
	long delay_ms;
	long exit_status;
	long sleep_after_ms;
	long pipe_size; /* 0: leave the pipe as it is */
	bool sigpwr;
	bool stats;
	bool ignore_int, ignore_term; /* --ignore INT,TERM: an agent that does not stop at once */
};

struct blob {
	char *data;
	size_t len;
};

/* Counted so that tests can prove the EAGAIN and partial-write paths really ran. */
struct stats {
	unsigned long writes;
	unsigned long eagain;
	unsigned long partial;
	unsigned long eventfd_writes;
	atomic_ulong thread_writes;
	unsigned long signals;
};

static struct stats stats;
static atomic_ulong sigpwr_seen;

static void die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int status, const char *fmt, ...)
{
	va_list ap;
	fputs("fake_agent: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("fake_agent: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nusage: fake_agent [--stdout FILE] [--transcript FILE] [--mode "
	      "libc|writev|stdio|raw]\n"
	      "       [--chunk N] [--delay-ms N] [--exit N] [--sleep-after MS] [--stderr FILE]\n"
	      "       [--spawn CMD] [--session-id ID] [--pipe-size N] [--sigpwr] [--stats]\n"
	      "       [Claude's own arguments, ignored]\n",
	      stderr);
	exit(2);
}

static long parse_long(const char *opt, const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		usage_error("%s: '%s' is not a number in [%ld, %ld]", opt, s, min, max);
	return v;
}

/* Claude options that take a value: their value must not be mistaken for one of ours. Options not
 * listed here are taken as flags; a value that follows one is then a positional and ignored too. */
static bool claude_option_takes_value(const char *name)
{
	static const char *const with_value[] = {
		"--output-format",
		"--input-format",
		"--model",
		"--fallback-model",
		"--max-turns",
		"--max-budget-usd",
		"--allowedTools",
		"--allowed-tools",
		"--disallowedTools",
		"--disallowed-tools",
		"--tools",
		"--append-system-prompt",
		"--system-prompt",
		"--system-prompt-file",
		"--append-system-prompt-file",
		"--permission-mode",
		"--permission-prompt-tool",
		"--settings",
		"--setting-sources",
		"--add-dir",
		"--mcp-config",
		"--agents",
		"--agent",
		"--json-schema",
		"--plugin-dir",
		"--betas",
		"--resume",
		"-r",
		"--replay-user-messages-file",
	};
	for (size_t i = 0; i < sizeof with_value / sizeof with_value[0]; i++)
		if (strcmp(name, with_value[i]) == 0)
			return true;
	return false;
}

static void parse_args(int argc, char **argv, struct options *o)
{
	memset(o, 0, sizeof *o);
	o->mode = MODE_LIBC;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--") == 0)
			break; /* the rest is the prompt */
		if (arg[0] != '-' || arg[1] == '\0')
			continue; /* a positional prompt */

		/* "--name=value" and "--name value" are both accepted for our own options. */
		char name[64];
		const char *value = NULL;
		const char *eq = strchr(arg, '=');
		size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
		if (name_len >= sizeof name)
			continue; /* longer than any option we know: Claude's, ignored */
		memcpy(name, arg, name_len);
		name[name_len] = '\0';
		if (eq)
			value = eq + 1;

		static const char *const ours_with_value[] = {
			"--stdout",	"--transcript",	 "--stderr",	"--spawn",
			"--session-id", "--mode",	 "--chunk",	"--delay-ms",
			"--exit",	"--sleep-after", "--pipe-size", "--ignore",
		};
		bool is_ours = false;
		for (size_t k = 0; k < sizeof ours_with_value / sizeof ours_with_value[0]; k++)
			if (strcmp(name, ours_with_value[k]) == 0)
				is_ours = true;
		if (is_ours && !value) {
			if (i + 1 >= argc)
				usage_error("%s needs a value", name);
			value = argv[++i];
		}

		if (strcmp(name, "--stdout") == 0) {
			o->stdout_path = value;
		} else if (strcmp(name, "--transcript") == 0) {
			o->transcript_path = value;
		} else if (strcmp(name, "--stderr") == 0) {
			o->stderr_path = value;
		} else if (strcmp(name, "--spawn") == 0) {
			o->spawn_cmd = value;
		} else if (strcmp(name, "--session-id") == 0) {
			if (value[0] == '\0' || strchr(value, '/') || strcmp(value, ".") == 0 ||
			    strcmp(value, "..") == 0)
				usage_error("--session-id: '%s' cannot be a file name", value);
			o->session_id = value;
		} else if (strcmp(name, "--mode") == 0) {
			if (strcmp(value, "libc") == 0)
				o->mode = MODE_LIBC;
			else if (strcmp(value, "writev") == 0)
				o->mode = MODE_WRITEV;
			else if (strcmp(value, "stdio") == 0)
				o->mode = MODE_STDIO;
			else if (strcmp(value, "raw") == 0)
				o->mode = MODE_RAW;
			else
				usage_error("--mode: '%s' is not libc, writev, stdio or raw",
					    value);
		} else if (strcmp(name, "--chunk") == 0) {
			o->chunk = parse_long(name, value, 1, 1L << 30);
		} else if (strcmp(name, "--delay-ms") == 0) {
			o->delay_ms = parse_long(name, value, 0, 3600000);
		} else if (strcmp(name, "--exit") == 0) {
			o->exit_status = parse_long(name, value, 0, 255);
		} else if (strcmp(name, "--sleep-after") == 0) {
			o->sleep_after_ms = parse_long(name, value, 0, 3600000);
		} else if (strcmp(name, "--pipe-size") == 0) {
			o->pipe_size = parse_long(name, value, 1, INT_MAX);
		} else if (strcmp(name, "--ignore") == 0) {
			for (const char *p = value; *p;) {
				size_t n = strcspn(p, ",");
				if (n == 3 && !strncmp(p, "INT", 3))
					o->ignore_int = true;
				else if (n == 4 && !strncmp(p, "TERM", 4))
					o->ignore_term = true;
				else
					usage_error("--ignore: '%s' is not INT, TERM or INT,TERM",
						    value);
				p += n + (p[n] == ',');
			}
		} else if (strcmp(name, "--sigpwr") == 0) {
			o->sigpwr = true;
		} else if (strcmp(name, "--stats") == 0) {
			o->stats = true;
		} else if (strcmp(name, "-p") == 0 || strcmp(name, "--print") == 0) {
			/* Claude's print flag; a prompt right after it is ignored like any other.
			 */
			if (!eq && i + 1 < argc && argv[i + 1][0] != '-')
				i++;
		} else if (claude_option_takes_value(name)) {
			if (!eq && i + 1 < argc)
				i++;
		}
		/* Anything else is one of Claude's flags (--verbose, --debug, -c, ...): ignored. */
	}
	if (o->sigpwr && o->mode != MODE_RAW)
		usage_error(
			"--sigpwr needs --mode raw (the signalling thread is part of Bun's noise)");
}

static struct blob read_whole(const char *path)
{
	struct blob b = {0};
	FILE *f = fopen(path, "rb");
	if (!f)
		die(2, "cannot read '%s': %s", path, strerror(errno));
	size_t cap = 65536;
	b.data = malloc(cap);
	if (!b.data)
		die(1, "out of memory");
	for (;;) {
		if (b.len == cap) {
			cap *= 2;
			char *p = realloc(b.data, cap);
			if (!p)
				die(1, "out of memory");
			b.data = p;
		}
		size_t n = fread(b.data + b.len, 1, cap - b.len, f);
		b.len += n;
		if (n == 0)
			break;
	}
	if (ferror(f))
		die(2, "cannot read '%s': %s", path, strerror(errno));
	fclose(f);
	return b;
}

/* Next line of *b starting at *pos (newline included; the last line may lack one). */
static bool next_line(const struct blob *b, size_t *pos, const char **line, size_t *len)
{
	if (*pos >= b->len)
		return false;
	const char *start = b->data + *pos;
	const char *nl = memchr(start, '\n', b->len - *pos);
	*len = nl ? (size_t)(nl - start) + 1 : b->len - *pos;
	*line = start;
	*pos += *len;
	return true;
}

/* ---- raw syscalls, as the Bun binary issues them ---- */

static long raw_write(int fd, const void *buf, size_t len)
{
	return syscall(SYS_write, fd, buf, len);
}

/* pwritev2(fd, iov, 1, -1, RWF_NOWAIT) with every argument register filled the way Zig's
 * std.os.linux.pwritev2 fills them: pos_l is the whole 64-bit offset (-1 = current position, the
 * only offset a pipe accepts) and pos_h its upper half. The kernel ignores pos_h on 64-bit, but a
 * filter or a supervisor looking for a spare argument must not find one here. */
static long raw_pwritev2_nowait(int fd, const void *buf, size_t len)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	uint64_t offset = (uint64_t)-1;
	return syscall(SYS_pwritev2, fd, &iov, 1, (unsigned long)offset,
		       (unsigned long)(offset >> 32), RWF_NOWAIT);
}

static void wait_writable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	/* EINTR (SIGPWR from the noise thread) just means: poll again. */
	while (poll(&p, 1, -1) < 0)
		if (errno != EINTR)
			die(1, "poll: %s", strerror(errno));
}

struct raw_out {
	int fd;
	bool is_pipe;
	bool nowait_ok; /* cleared if this kernel refuses RWF_NOWAIT on the file */
};

/* Writes exactly len bytes: an EAGAIN retries the same remainder after poll(POLLOUT), a partial
 * write continues from the first byte not written, so the reader gets every byte once. */
static void raw_write_all(struct raw_out *out, const char *buf, size_t len, const char *what)
{
	while (len > 0) {
		long n;
		if (out->is_pipe && out->nowait_ok)
			n = raw_pwritev2_nowait(out->fd, buf, len);
		else
			n = raw_write(out->fd, buf, len);
		stats.writes++;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				stats.eagain++;
				wait_writable(out->fd);
				continue;
			}
			if (errno == EOPNOTSUPP && out->is_pipe && out->nowait_ok) {
				out->nowait_ok = false;
				continue;
			}
			die(1, "write to %s: %s", what, strerror(errno));
		}
		if ((size_t)n < len)
			stats.partial++;
		buf += n;
		len -= (size_t)n;
	}
}

/* ---- libc paths ---- */

static void libc_write_all(int fd, const char *buf, size_t len, const char *what)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		stats.writes++;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die(1, "write to %s: %s", what, strerror(errno));
		}
		if ((size_t)n < len)
			stats.partial++;
		buf += n;
		len -= (size_t)n;
	}
}

/* Two iovecs per call so that a hook must walk the vector, not just its first element. */
static void libc_writev_all(int fd, const char *buf, size_t len, const char *what)
{
	while (len > 0) {
		size_t half = len / 2;
		struct iovec iov[2] = {
			{.iov_base = (void *)buf, .iov_len = half},
			{.iov_base = (void *)(buf + half), .iov_len = len - half},
		};
		ssize_t n = writev(fd, iov, 2);
		stats.writes++;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die(1, "writev to %s: %s", what, strerror(errno));
		}
		if ((size_t)n < len)
			stats.partial++;
		buf += n;
		len -= (size_t)n;
	}
}

static void stdio_write_all(FILE *f, const char *buf, size_t len, bool whole_line, const char *what)
{
	/* fputs for whole lines (the common case in programs that print text), fwrite for chunks
	 * and for anything fputs cannot carry (an embedded NUL). */
	if (whole_line && !memchr(buf, '\0', len)) {
		char *copy = strndup(buf, len);
		if (!copy)
			die(1, "out of memory");
		int rc = fputs(copy, f);
		free(copy);
		stats.writes++;
		if (rc == EOF)
			die(1, "fputs to %s: %s", what, strerror(errno));
		return;
	}
	stats.writes++;
	if (fwrite(buf, 1, len, f) != len)
		die(1, "fwrite to %s: %s", what, strerror(errno));
}

/* ---- Bun-like noise: eventfd wakeups from a second thread, optional SIGPWR ---- */

struct noise {
	int efd;
	pthread_t thread;
	pthread_t main_thread;
	atomic_bool stop;
	bool sigpwr;
};

static void on_sigpwr(int sig)
{
	(void)sig;
	atomic_fetch_add(&sigpwr_seen, 1);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	/* Restart with the remaining time: a signal must not shorten the pause. */
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void *noise_thread(void *arg)
{
	struct noise *nz = arg;
	const uint64_t one = 1;
	/* do/while: even a run shorter than one period gets a write from this thread. */
	do {
		if (raw_write(nz->efd, &one, sizeof one) == (long)sizeof one)
			atomic_fetch_add(&stats.thread_writes, 1);
		if (nz->sigpwr)
			pthread_kill(nz->main_thread, SIGPWR);
		sleep_ms(1);
	} while (!atomic_load(&nz->stop));
	return NULL;
}

static void noise_start(struct noise *nz, bool sigpwr)
{
	nz->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (nz->efd < 0)
		die(1, "eventfd: %s", strerror(errno));
	nz->sigpwr = sigpwr;
	nz->main_thread = pthread_self();
	atomic_store(&nz->stop, false);
	if (sigpwr) {
		/* Bun suspends threads for its GC with SIGPWR and SA_RESTART: interrupted syscalls
		 * are restarted (and seen again by a supervisor). */
		struct sigaction sa = {0};
		sa.sa_handler = on_sigpwr;
		sa.sa_flags = SA_RESTART;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGPWR, &sa, NULL) < 0)
			die(1, "sigaction: %s", strerror(errno));
	}
	int rc = pthread_create(&nz->thread, NULL, noise_thread, nz);
	if (rc != 0)
		die(1, "pthread_create: %s", strerror(rc));
}

static void noise_tick(struct noise *nz)
{
	const uint64_t one = 1;
	if (raw_write(nz->efd, &one, sizeof one) == (long)sizeof one)
		stats.eventfd_writes++;
}

static void noise_stop(struct noise *nz)
{
	atomic_store(&nz->stop, true);
	pthread_join(nz->thread, NULL);
	close(nz->efd);
	stats.signals = atomic_load(&sigpwr_seen);
}

/* ---- the transcript's place, as Claude Code names it ---- */

static void mkdir_p(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			die(1, "mkdir '%s': %s", path, strerror(errno));
		*p = '/';
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		die(1, "mkdir '%s': %s", path, strerror(errno));
}

static void make_session_id(char *out, size_t size)
{
	unsigned char r[16];
	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
		die(1, "getrandom: %s", strerror(errno));
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* version 4 */
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, size, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
		 r[13], r[14], r[15]);
}

/* $CLAUDE_CONFIG_DIR/projects/<cwd, every byte that is not an ASCII letter or digit made '-'>/
 * <session id>.jsonl. Claude Code replaces all such characters, not only '/': a temp dir such as
 * /tmp/tmp.AbC gives "-tmp-tmp-AbC". */
static char *transcript_file_path(const char *session_id)
{
	const char *config = getenv("CLAUDE_CONFIG_DIR");
	char *config_alloc = NULL;
	if (!config || !*config) {
		const char *home = getenv("HOME");
		if (!home || !*home)
			die(1, "neither CLAUDE_CONFIG_DIR nor HOME is set: nowhere to write the "
			       "transcript");
		if (asprintf(&config_alloc, "%s/.claude", home) < 0)
			die(1, "out of memory");
		config = config_alloc;
	}
	char *cwd = getcwd(NULL, 0);
	if (!cwd)
		die(1, "getcwd: %s", strerror(errno));
	for (char *p = cwd; *p; p++) {
		unsigned char c = (unsigned char)*p;
		bool alnum =
			(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum)
			*p = '-';
	}
	char *dir;
	if (asprintf(&dir, "%s/projects/%s", config, cwd) < 0)
		die(1, "out of memory");
	mkdir_p(dir);
	char *path;
	if (asprintf(&path, "%s/%s.jsonl", dir, session_id) < 0)
		die(1, "out of memory");
	free(dir);
	free(cwd);
	free(config_alloc);
	return path;
}

/* ---- a child process, like a command run by Claude's Bash tool ---- */

static void run_spawn(const char *cmd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		die(1, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		die(1, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* The tool's output goes back to the agent, never to the agent's stdout: that keeps
		 * our stdout byte-identical to the fixture. */
		dup2(p[1], 1);
		dup2(p[1], 2);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char buf[4096];
	for (;;) {
		ssize_t n = read(p[0], buf, sizeof buf);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	close(p[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die(1, "waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr, "fake_agent: spawned command '%s' ended with status %d\n", cmd,
			WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

/* ---- the replay ---- */

struct writer {
	enum mode mode;
	long chunk;
	/* stdout */
	struct raw_out raw_stdout;
	/* transcript */
	int tfd;
	FILE *tfile;
	struct raw_out raw_transcript;
};

static void emit(struct writer *w, bool to_transcript, const char *buf, size_t len)
{
	const char *what = to_transcript ? "the transcript" : "stdout";
	switch (w->mode) {
	case MODE_LIBC:
		libc_write_all(to_transcript ? w->tfd : 1, buf, len, what);
		break;
	case MODE_WRITEV:
		libc_writev_all(to_transcript ? w->tfd : 1, buf, len, what);
		break;
	case MODE_STDIO:
		stdio_write_all(to_transcript ? w->tfile : stdout, buf, len, w->chunk == 0, what);
		break;
	case MODE_RAW:
		raw_write_all(to_transcript ? &w->raw_transcript : &w->raw_stdout, buf, len, what);
		break;
	}
}

static void emit_line(struct writer *w, bool to_transcript, const char *line, size_t len)
{
	if (w->chunk == 0) {
		emit(w, to_transcript, line, len);
	} else {
		for (size_t off = 0; off < len; off += (size_t)w->chunk) {
			size_t n = len - off < (size_t)w->chunk ? len - off : (size_t)w->chunk;
			emit(w, to_transcript, line + off, n);
		}
	}
	/* Claude appends each transcript entry whole and at once; stdio must not hold it back. */
	if (to_transcript && w->mode == MODE_STDIO && fflush(w->tfile) == EOF)
		die(1, "fflush the transcript: %s", strerror(errno));
}

static size_t count_lines(const struct blob *b)
{
	size_t n = 0, pos = 0, len;
	const char *line;
	while (next_line(b, &pos, &line, &len))
		n++;
	return n;
}

static void shrink_stdout_pipe(long size)
{
	struct stat st;
	if (fstat(1, &st) < 0 || !S_ISFIFO(st.st_mode))
		return; /* only a pipe has a size to shrink */
	if (fcntl(1, F_SETPIPE_SZ, (int)size) < 0)
		die(1, "F_SETPIPE_SZ %ld: %s", size, strerror(errno));
}

int main(int argc, char **argv)
{
	struct options o;
	parse_args(argc, argv, &o);
	if (o.ignore_int)
		signal(SIGINT, SIG_IGN);
	if (o.ignore_term)
		signal(SIGTERM, SIG_IGN);

	/* Everything that can fail for a bad argument fails before the first byte is written. */
	struct blob out = {0}, tr = {0}, err = {0};
	if (o.stdout_path)
		out = read_whole(o.stdout_path);
	if (o.transcript_path)
		tr = read_whole(o.transcript_path);
	if (o.stderr_path)
		err = read_whole(o.stderr_path);

	if (o.pipe_size)
		shrink_stdout_pipe(o.pipe_size);

	struct writer w = {.mode = o.mode, .chunk = o.chunk, .tfd = -1};
	struct noise nz = {0};
	char sid_buf[40];
	const char *sid = o.session_id;
	if (!sid) {
		make_session_id(sid_buf, sizeof sid_buf);
		sid = sid_buf;
	}

	if (o.mode == MODE_RAW) {
		/* Bun writes its stream to a private duplicate of fd 1, never to fd 1 itself. */
		long dupfd = syscall(SYS_fcntl, 1, F_DUPFD_CLOEXEC, 0);
		if (dupfd < 0)
			die(1, "fcntl(1, F_DUPFD_CLOEXEC): %s", strerror(errno));
		struct stat st;
		if (fstat((int)dupfd, &st) < 0)
			die(1, "fstat stdout: %s", strerror(errno));
		w.raw_stdout = (struct raw_out){
			.fd = (int)dupfd, .is_pipe = S_ISFIFO(st.st_mode), .nowait_ok = true};
		noise_start(&nz, o.sigpwr);
	}

	char *tpath = NULL;
	if (o.transcript_path) {
		tpath = transcript_file_path(sid);
		if (o.mode == MODE_STDIO) {
			w.tfile = fopen(tpath, "ae");
			if (!w.tfile)
				die(1, "open '%s': %s", tpath, strerror(errno));
		} else {
			w.tfd = open(tpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
			if (w.tfd < 0)
				die(1, "open '%s': %s", tpath, strerror(errno));
			w.raw_transcript = (struct raw_out){.fd = w.tfd};
		}
	}

	size_t n_out = count_lines(&out), n_tr = count_lines(&tr);
	size_t rounds = n_out > n_tr ? n_out : n_tr;
	size_t pos_out = 0, pos_tr = 0, len;
	const char *line;
	for (size_t i = 0; i < rounds; i++) {
		if (o.spawn_cmd && i == rounds / 2)
			run_spawn(o.spawn_cmd);
		if (next_line(&tr, &pos_tr, &line, &len))
			emit_line(&w, true, line, len);
		if (next_line(&out, &pos_out, &line, &len))
			emit_line(&w, false, line, len);
		if (o.mode == MODE_RAW)
			noise_tick(&nz);
		if (o.delay_ms && i + 1 < rounds)
			sleep_ms(o.delay_ms);
	}
	if (o.spawn_cmd && rounds == 0)
		run_spawn(o.spawn_cmd);

	if (o.mode == MODE_STDIO && fflush(stdout) == EOF)
		die(1, "fflush stdout: %s", strerror(errno));
	if (w.tfile && fclose(w.tfile) == EOF)
		die(1, "close the transcript: %s", strerror(errno));
	if (w.tfd >= 0)
		close(w.tfd);
	if (o.mode == MODE_RAW)
		noise_stop(&nz);
	if (err.len)
		libc_write_all(2, err.data, err.len, "stderr");

	if (o.sleep_after_ms)
		sleep_ms(o.sleep_after_ms);

	if (o.stats)
		fprintf(stderr,
			"fake_agent: stats writes=%lu eagain=%lu partial=%lu eventfd_writes=%lu "
			"thread_writes=%lu signals=%lu stdout_fd=%d transcript=%s\n",
			stats.writes, stats.eagain, stats.partial, stats.eventfd_writes,
			atomic_load(&stats.thread_writes), stats.signals,
			o.mode == MODE_RAW ? w.raw_stdout.fd : 1, tpath ? tpath : "-");

	free(tpath);
	free(out.data);
	free(tr.data);
	free(err.data);
	return (int)o.exit_status;
}
