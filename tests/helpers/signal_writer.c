/*
 * signal_writer N: an agent (run it as `claude --output-format stream-json`) that writes N usage
 * lines to its transcript with libc write() while a 50 µs interval timer's handler writes a
 * newline to stdout - also a metered source - with libc write(). A handler that lands while the
 * in-process meter holds the agent's lock must neither take it again nor wait on the supervisor.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "project_dir.h"

static volatile sig_atomic_t fired;

static void on_alarm(int sig)
{
	(void)sig;
	fired++;
	if (write(STDOUT_FILENO, "\n", 1) < 0) {
		/* nothing to do in a handler */
	}
}

int main(int argc, char **argv)
{
	const char *cfg = getenv("CLAUDE_CONFIG_DIR");
	int n = 0;
	for (int i = 1; i < argc; i++)
		if (argv[i][0] >= '1' && argv[i][0] <= '9')
			n = atoi(argv[i]);
	if (n <= 0 || !cfg) {
		fprintf(stderr, "usage: CLAUDE_CONFIG_DIR=DIR signal_writer [claude options] N\n");
		return 2;
	}
	char dir[4096], path[4200];
	if (!project_dir(cfg, "signals", dir, sizeof(dir)))
		return 1;
	snprintf(path, sizeof(path), "%s/session.jsonl", dir);
	int t = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (t < 0)
		return 1;
	struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {.it_interval = {0, 50}, .it_value = {0, 50}};
	setitimer(ITIMER_REAL, &it, NULL);
	char line[256];
	for (int i = 0; i < n; i++) {
		int len = snprintf(line, sizeof(line),
				   "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_sig_%d\","
				   "\"model\":\"claude-opus-4-8\","
				   "\"usage\":{\"input_tokens\":1}}}\n",
				   i);
		if (write(t, line, (size_t)len) != len)
			return 1;
	}
	struct itimerval off = {{0, 0}, {0, 0}};
	setitimer(ITIMER_REAL, &off, NULL);
	fprintf(stderr, "signal_writer: %d signals\n", (int)fired);
	return 0;
}
