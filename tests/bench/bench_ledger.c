/*
 * How fast usage reaches the ledger: ledger_record_delta() calls per second from one process, then
 * from two processes recording on the same instance at once (so the instance, command and overall
 * counters bounce between the two cores' caches, as they do when an agent's libc path and the
 * supervisor meter the same agent). Printed side by side with their ratio; no thresholds.
 *
 * Takes no arguments; exits 0 unless the ledger cannot be created or a count comes out wrong.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tbwrap/ledger.h"

/* Enough calls for a run of a few tenths of a second per figure on a 2-core machine. */
#define CALLS 5000000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void record_many(struct ledger *l, int inst)
{
	/* Every field non-zero: the most atomic operations a call can make. */
	const struct meter_usage d = {{3, 1, 2, 5}};

	for (int i = 0; i < CALLS; i++)
		ledger_record_delta(l, inst, &d);
}

static int run_two(struct ledger *l, double *elapsed)
{
	int go[2], ready[2];
	pid_t pids[2];
	char c;

	if (pipe(go) < 0 || pipe(ready) < 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			return -1;
		if (pids[i] == 0) {
			close(go[1]);
			close(ready[0]);
			/* Tell the parent we are here, then wait for everyone's start signal. */
			if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 0)
				_exit(2);
			record_many(l, 0);
			_exit(0);
		}
	}
	close(go[0]);
	close(ready[1]);
	for (int i = 0; i < 2; i++) {
		if (read(ready[0], &c, 1) != 1)
			return -1;
	}
	close(ready[0]);
	double t0 = now_s();
	close(go[1]); /* EOF releases both children at once */
	for (int i = 0; i < 2; i++) {
		int status;

		while (waitpid(pids[i], &status, 0) < 0) {
			if (errno != EINTR)
				return -1;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			return -1;
	}
	*elapsed = now_s() - t0;
	return 0;
}

int main(void)
{
	const char *const names[] = {"/bench"};
	const uint64_t limits[] = {LEDGER_NO_LIMIT};
	struct ledger_config cfg = {
		.overall_limit = LEDGER_NO_LIMIT,
		.mode = LEDGER_MODE_WARN,
		.estimate = 0,
		.weights = {1, 1, 1, 1},
		.n_commands = 1,
		.command_names = names,
		.command_limits = limits,
	};
	struct ledger l;
	char err[256];
	double one, two;

	if (ledger_create(&l, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench_ledger: %s\n", err);
		return 1;
	}
	/* Admitted with a reservation, like a real agent: the first calls release it through the
	 * CAS loop, the rest find it used up (one load). */
	if (ledger_admit(&l, 0, getpid(), 1000, NULL, NULL, NULL) != 0) {
		fprintf(stderr, "bench_ledger: cannot admit the benchmark instance\n");
		ledger_close(&l);
		return 1;
	}

	double t0 = now_s();
	record_many(&l, 0);
	one = now_s() - t0;

	if (run_two(&l, &two) < 0) {
		fprintf(stderr, "bench_ledger: the two-process run failed\n");
		ledger_close(&l);
		return 1;
	}

	/* Three runs of CALLS deltas of weighted total 11 each: anything else is a lost update. */
	uint64_t want = (uint64_t)3 * CALLS * 11, got = ledger_load(&l.h->overall.used.total);
	ledger_close(&l);
	if (got != want) {
		fprintf(stderr, "bench_ledger: overall total %llu, expected %llu\n",
			(unsigned long long)got, (unsigned long long)want);
		return 1;
	}

	double rate1 = CALLS / one, rate2 = 2.0 * CALLS / two;
	printf("ledger_record_delta   %-24s %-24s %s\n", "1 process", "2 processes (same inst)",
	       "ratio 2p/1p");
	printf("calls/s               %-24.0f %-24.0f %.2f\n", rate1, rate2, rate2 / rate1);
	printf("ns/call (per process) %-24.1f %-24.1f %.2f\n", one / CALLS * 1e9, two / CALLS * 1e9,
	       (two / CALLS) / (one / CALLS));
	return 0;
}
