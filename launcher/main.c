/*
 * tbwrap: parses the command line and dispatches. Running a command means: create the ledger,
 * open the supervisor's socket in a private directory, start the command with libtbwrap.so
 * preloaded, and stay its parent until it and every agent below it have ended.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tbwrap/cli.h"
#include "tbwrap/env.h"
#include "tbwrap/histreport.h"
#include "tbwrap/ledger.h"
#include "tbwrap/log.h"
#include "tbwrap/prices.h"
#include "tbwrap/profiles.h"
#include "tbwrap/proto.h"
#include "tbwrap/render.h"
#include "tbwrap/report.h"
#include "tbwrap/runhist.h"
#include "tbwrap/status.h"
#include "tbwrap/supervisor.h"

/* From the build's gen/version.h (Makefile): VERSION and the git commit. */
#ifndef TBWRAP_VERSION
#define TBWRAP_VERSION "unknown"
#endif
#ifndef TBWRAP_COMMIT
#define TBWRAP_COMMIT "unknown"
#endif

/* libtbwrap.so next to the executable (the build tree), or in ../lib/tbwrap (an install). */
static bool find_library(char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	const char *dir = dirname(exe);
	static const char *const rel[] = {"libtbwrap.so", "../lib/tbwrap/libtbwrap.so"};
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		snprintf(out, len, "%s/%s", dir, rel[i]);
		if (access(out, R_OK) == 0)
			return true;
	}
	return false;
}

/* The supervisor's socket, in the abstract namespace: nothing on disk that a process of the
 * session could unlink or replace by one of its own, and nothing left behind after a crash.
 * The name carries uid and pid (tbwrap status finds sessions by them) and 64 random bits. */
static int open_socket(char *name, size_t len)
{
	uint64_t rnd;
	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		log_die_errno(TBWRAP_EXIT_INTERNAL, "getrandom");
	snprintf(name, len, PROTO_NAME_PREFIX "%u-%d-%016" PRIx64, (unsigned)geteuid(),
		 (int)getpid(), rnd);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	memcpy(sa.sun_path + 1, name, n);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		log_die_errno(TBWRAP_EXIT_INTERNAL, "socket");
	socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	if (bind(fd, (struct sockaddr *)&sa, alen) < 0)
		log_die_errno(TBWRAP_EXIT_INTERNAL, "bind @%s", name);
	if (listen(fd, 128) < 0)
		log_die_errno(TBWRAP_EXIT_INTERNAL, "listen @%s", name);
	return fd;
}

static void print_dry_run(const struct cli_options *o, const char *lib,
			  const struct price_table *prices)
{
	static const char *const class_names[METER_NFIELDS] = {"input", "output", "cache_creation",
							       "cache_read"};
	char t[32];
	printf("mode: %s\n", o->mode == LEDGER_MODE_BLOCK ? "block" : "warn");
	render_tokens(t, sizeof(t), o->estimate);
	printf("estimate per agent: %s (%llu tokens)\n", t, (unsigned long long)o->estimate);
	printf("token budgets count:");
	for (int f = 0, first = 1; f < METER_NFIELDS; f++)
		if (o->weights[f]) {
			printf("%s%s", first ? " " : ", ", class_names[f]);
			first = 0;
		}
	printf("\nprices: %s (%zu rows)\n", prices->origin, prices->n);
	if (o->overall_limit == LEDGER_NO_LIMIT) {
		printf("overall budget: none\n");
	} else {
		render_tokens(t, sizeof(t), o->overall_limit);
		printf("overall budget: %s (%llu tokens)\n", t,
		       (unsigned long long)o->overall_limit);
	}
	if (o->overall_usd_limit != LEDGER_NO_LIMIT) {
		render_usd(t, sizeof(t), o->overall_usd_limit);
		printf("overall USD budget: %s\n", t);
	}
	for (size_t i = 0; i < o->n_commands; i++) {
		if (o->command_limits[i] != LEDGER_NO_LIMIT) {
			render_tokens(t, sizeof(t), o->command_limits[i]);
			printf("command budget %s: %s (%llu tokens)\n", o->command_names[i], t,
			       (unsigned long long)o->command_limits[i]);
		}
		if (o->command_usd_limits[i] != LEDGER_NO_LIMIT) {
			render_usd(t, sizeof(t), o->command_usd_limits[i]);
			printf("command USD budget %s: %s\n", o->command_names[i], t);
		}
	}
	printf("agents: programs named");
	for (size_t i = 0; i < o->n_match; i++)
		printf(" %s", o->match[i]);
	printf("\npreload: %s\nwould run:", lib);
	for (int i = 0; i < o->argc; i++)
		printf(" %s", o->argv[i]);
	printf("\n");
}

/* The agent names as one ':'-separated string (TBWRAP_MATCH). */
static void match_list(const struct cli_options *o, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < o->n_match && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ":" : "", o->match[i]);
}

static void set_child_env(const struct cli_options *o, const char *lib, const char *sock)
{
	char buf[PATH_MAX * 2];
	const char *old = getenv(TBWRAP_ENV_PRELOAD);
	if (old && *old)
		snprintf(buf, sizeof(buf), "%s:%s", lib, old);
	else
		snprintf(buf, sizeof(buf), "%s", lib);
	setenv(TBWRAP_ENV_PRELOAD, buf, 1);
	setenv(TBWRAP_ENV_SOCKET, sock, 1);
	match_list(o, buf, sizeof(buf));
	setenv(TBWRAP_ENV_MATCH, buf, 1);
	/* A tbwrap run from inside an agent starts a session of its own. */
	unsetenv(TBWRAP_ENV_FILTERED);
}

/* More descriptors for the supervisor (a connection, a listener and a pidfd per agent); the
 * command gets the limit it had. */
static struct rlimit raise_nofile(void)
{
	struct rlimit old = {0}, more;
	if (getrlimit(RLIMIT_NOFILE, &old) == 0) {
		more = old;
		more.rlim_cur = old.rlim_max;
		setrlimit(RLIMIT_NOFILE, &more);
	}
	return old;
}

/* The price table in use: --prices FILE, else the built-in one. A file that cannot be read or
 * parsed is a bad command line (exit 2, nothing run), with its line. */
static void load_prices(const struct cli_options *o, struct price_table *t)
{
	char err[512];
	if (o->prices) {
		if (prices_load_file(t, o->prices, err, sizeof(err)) < 0) {
			log_warn("--prices %s", err);
			exit(TBWRAP_EXIT_USAGE);
		}
	} else if (prices_load_builtin(t, err, sizeof(err)) < 0) {
		log_die(TBWRAP_EXIT_INTERNAL, "%s", err);
	}
}

static int run(const struct cli_options *o)
{
	char lib[PATH_MAX], err[512];
	if (!find_library(lib, sizeof(lib)))
		log_die(TBWRAP_EXIT_INTERNAL,
			"cannot find libtbwrap.so next to the tbwrap executable or in "
			"../lib/tbwrap (build it with make)");
	struct price_table prices;
	load_prices(o, &prices);
	/* Before the command runs: a report that could not be written is found out now. */
	struct report_file report;
	bool has_report = o->report_json != NULL;
	if (has_report && report_open(&report, o->report_json, err, sizeof(err)) < 0) {
		log_warn("%s", err);
		return TBWRAP_EXIT_USAGE;
	}
	struct runhist hist;
	int hrc = runhist_prepare(&hist, o, o->dry_run);
	if (hrc) {
		if (has_report)
			report_abandon(&report);
		return hrc;
	}
	if (o->dry_run) {
		if (has_report)
			report_abandon(&report);
		print_dry_run(o, lib, &prices);
		runhist_print_dry_run(&hist, o);
		runhist_finish(&hist, NULL, 0);
		prices_free(&prices);
		return 0;
	}
	/* Nothing below can read or write our memory, open our fds or attach to us: the budget
	 * state is ours alone (README, Security). The command is dumpable again after its exec. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

	/* Every asynchronous signal through the signalfd from here on (supervisor_signals). */
	sigset_t mask, old;
	supervisor_signals(&mask);
	sigprocmask(SIG_BLOCK, &mask, &old);
	signal(SIGTTIN, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		log_die_errno(TBWRAP_EXIT_INTERNAL, "signalfd");

	const char *names[LEDGER_MAX_COMMANDS];
	for (size_t i = 0; i < o->n_commands; i++)
		names[i] = o->command_names[i];
	struct ledger_config lc = {
		.overall_limit = o->overall_limit,
		.overall_usd_limit = &o->overall_usd_limit,
		.mode = o->mode,
		.estimate = o->estimate,
		.n_commands = o->n_commands,
		.command_names = names,
		.command_limits = o->command_limits,
		.command_usd_limits = o->command_usd_limits,
	};
	memcpy(lc.weights, o->weights, sizeof(lc.weights));
	struct ledger l;
	if (ledger_create(&l, &lc, err, sizeof(err)) < 0) {
		if (has_report)
			report_abandon(&report);
		log_die(TBWRAP_EXIT_INTERNAL, "%s", err);
	}
	hrc = runhist_start(&hist, &l, o);
	if (hrc) {
		if (has_report)
			report_abandon(&report);
		ledger_close(&l);
		return hrc;
	}
	char sock[PROTO_NAME_LEN];
	int lfd = open_socket(sock, sizeof(sock));
	struct rlimit nofile = raise_nofile();
	/* Orphans below the command (an agent started with '&' by a script that has exited) become
	 * our children: their exits are reaped here and the supervisor can wait for them. */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

	pid_t child = fork();
	if (child < 0) {
		if (has_report)
			report_abandon(&report);
		log_die_errno(TBWRAP_EXIT_INTERNAL, "fork");
	}
	if (child == 0) {
		/* The supervisor's ledger mapping came along with the fork: gone with the exec. */
		signal(SIGTTIN, SIG_DFL);
		signal(SIGTTOU, SIG_DFL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		setrlimit(RLIMIT_NOFILE, &nofile);
		set_child_env(o, lib, sock);
		execvp(o->argv[0], o->argv);
		int e = errno;
		log_die_errno(e == ENOENT ? TBWRAP_EXIT_NOTFOUND : TBWRAP_EXIT_NOEXEC,
			      "cannot run '%s'", o->argv[0]);
	}

	char match[PATH_MAX];
	match_list(o, match, sizeof(match));
	struct supervisor_config sc = {
		.ledger = &l,
		.match = match,
		.listen_fd = lfd,
		.signal_fd = sfd,
		.child = child,
		.live = o->visuals && isatty(STDERR_FILENO),
		.render = {.color = render_use_color(STDERR_FILENO), .bars = o->visuals},
		.prices = &prices,
		.estimates = hist.has_estimates ? &hist.est : NULL,
		.tick_hook = runhist_tick,
		.tick_ctx = &hist,
	};
	int rc = supervisor_run(&sc);
	close(lfd);

	char *text = render_report(l.h, &sc.render);
	if (text) {
		fputs(text, stderr);
		free(text);
	}
	if (has_report && report_commit(&report, l.h, err, sizeof(err)) < 0) {
		log_warn("%s", err);
		if (rc == 0)
			rc = TBWRAP_EXIT_INTERNAL;
	}
	runhist_finish(&hist, &l, rc);
	ledger_close(&l);
	prices_free(&prices);
	return rc;
}

/* --profile NAME: its budgets under the command line's. */
static int apply_profile(struct cli_options *o, struct profile *p)
{
	char path[PATH_MAX], err[1024];
	if (!o->profile) {
		if (!o->profiles)
			return 0;
		log_warn("--profiles %s: expected --profile NAME too", o->profiles);
		return TBWRAP_EXIT_USAGE;
	}
	if (o->profiles)
		snprintf(path, sizeof(path), "%s", o->profiles);
	else if (profiles_default_path(path, sizeof(path)) < 0) {
		log_warn("--profile %s: neither XDG_CONFIG_HOME nor HOME is set (give the file "
			 "with --profiles FILE)",
			 o->profile);
		return TBWRAP_EXIT_USAGE;
	}
	if (profiles_load(path, o->profile, p, err, sizeof(err)) < 0 ||
	    profiles_apply(p, o, err, sizeof(err)) < 0) {
		log_warn("%s", err);
		return TBWRAP_EXIT_USAGE;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct cli_options o;
	static struct profile profile;
	char err[512];
	if (argc > 1 && (strcmp(argv[1], "report") == 0 || strcmp(argv[1], "suggest") == 0))
		return histreport_main(argc - 1, argv + 1);
	if (cli_parse(argc, argv, &o, err, sizeof(err)) < 0) {
		log_warn("%s", err); /* one line: the bad argument and the expected form */
		return TBWRAP_EXIT_USAGE;
	}
	switch (o.action) {
	case CLI_HELP:
		cli_usage(stdout);
		return 0;
	case CLI_VERSION:
		printf("tbwrap %s (commit %s)\n", TBWRAP_VERSION, TBWRAP_COMMIT);
		return 0;
	case CLI_PRICES: {
		struct price_table t;
		load_prices(&o, &t);
		int rc = prices_print(stdout, &t) < 0 ? TBWRAP_EXIT_INTERNAL : 0;
		prices_free(&t);
		return rc;
	}
	case CLI_STATUS: {
		struct render_opts ro = {.color = render_use_color(STDOUT_FILENO),
					 .bars = o.visuals};
		return status_main(o.status_pid, &ro);
	}
	case CLI_RUN:
	default: {
		int prc = apply_profile(&o, &profile);
		return prc ? prc : run(&o);
	}
	}
}
