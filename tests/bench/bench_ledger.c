/*
 * How fast usage reaches the ledger: ledger_record_delta() calls per second (the supervisor is
 * the ledger's only writer: atomic stores, no read-modify-write across processes), side by side
 * with its baseline, the same additions to a plain struct in private memory: the least any
 * ledger could cost. Printed with their ratio; no thresholds.
 *
 * Takes no arguments; exits 0 unless the ledger cannot be created or a count comes out wrong.
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "tbwrap/ledger.h"

/* A token amount (no USD). */
#define TOK(n) ((struct amount){{(n), 0}})

/* Enough calls for a run of a few tenths of a second per figure on a 2-core machine. */
#define CALLS 5000000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The baseline: the counts the ledger keeps (instance, command, overall), added plainly. */
struct plain_counts {
	uint64_t n[3][METER_NFIELDS + 1];
};

static void __attribute__((noinline)) plain_add(struct plain_counts *p, const struct meter_usage *d)
{
	for (int k = 0; k < 3; k++) {
		uint64_t total = 0;
		for (int f = 0; f < METER_NFIELDS; f++) {
			p->n[k][f] += d->n[f];
			total += d->n[f];
		}
		p->n[k][METER_NFIELDS] += total;
	}
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
	struct ledger_refusal why;
	char err[256];
	int slot;

	if (ledger_create(&l, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench_ledger: %s\n", err);
		return 1;
	}
	/* Admitted with a reservation, like a real agent: the first calls release it. */
	if (ledger_admit(&l, 0, 1, TOK(1000), &why, &slot) != LEDGER_ADMITTED) {
		fprintf(stderr, "bench_ledger: cannot admit the benchmark instance\n");
		ledger_close(&l);
		return 1;
	}
	/* Every field non-zero: the most stores a call can make. */
	const struct meter_usage d = {{3, 1, 2, 5}};
	static struct plain_counts plain;

	double t0 = now_s();
	for (int i = 0; i < CALLS; i++)
		ledger_record_delta(&l, slot, &d, 0);
	double ledger_s = now_s() - t0;
	t0 = now_s();
	for (int i = 0; i < CALLS; i++)
		plain_add(&plain, &d);
	double plain_s = now_s() - t0;

	/* CALLS deltas of weighted total 11 each: anything else is a lost update. */
	uint64_t want = (uint64_t)CALLS * 11, got = ledger_load(&l.h->overall.used.total);
	ledger_close(&l);
	if (got != want || plain.n[2][METER_NFIELDS] != want) {
		fprintf(stderr, "bench_ledger: overall total %llu (plain %llu), expected %llu\n",
			(unsigned long long)got, (unsigned long long)plain.n[2][METER_NFIELDS],
			(unsigned long long)want);
		return 1;
	}
	printf("%-22s %-20s %-20s %s\n", "", "ledger_record_delta", "plain additions", "ratio");
	printf("%-22s %-20.0f %-20.0f %.2f\n", "calls/s", CALLS / ledger_s, CALLS / plain_s,
	       plain_s / ledger_s);
	printf("%-22s %-20.1f %-20.1f %.2f\n", "ns/call", ledger_s / CALLS * 1e9,
	       plain_s / CALLS * 1e9, ledger_s / plain_s);
	return 0;
}
