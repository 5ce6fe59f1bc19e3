/*
 * Ledger: budgets and usage of a session, written by the supervisor alone (include/tbwrap/ledger.h
 * says why and how it is protected).
 *
 * Single writer: no locks. Every field a reader may look at while it changes is stored with an
 * atomic store, so a reader never sees half of a 64-bit count; a reader may see the usage of one
 * agent a moment before the overall count includes it, which a live view can live with.
 */
#include "tbwrap/ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tbwrap/log.h"
#include "tbwrap/render.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
/* What a supervisor's ledger carries once created: nobody can write it, resize it or unseal it. */
#define LEDGER_SEALS (F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static void errf(char *err, size_t errlen, const char *fmt, ...) TBWRAP_PRINTF(3, 4);

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static uint64_t now_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static void store64(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static void add64(uint64_t *p, uint64_t v)
{
	/* One writer: a load and a store, published whole. Saturating: a corrupt count from the
	 * meter must never wrap a budget back to room. */
	store64(p, sat_add(__atomic_load_n(p, __ATOMIC_RELAXED), v));
}

static void sub64(uint64_t *p, uint64_t v)
{
	uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
	store64(p, cur > v ? cur - v : 0);
}

uint64_t ledger_load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

uint32_t ledger_load32(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

uint32_t ledger_n_commands(const struct ledger_header *h)
{
	uint32_t n = ledger_load32(&h->n_commands);
	return n > LEDGER_MAX_COMMANDS ? LEDGER_MAX_COMMANDS : n;
}

uint32_t ledger_n_instances(const struct ledger_header *h)
{
	uint32_t n = ledger_load32(&h->n_instances);
	return n > LEDGER_MAX_INSTANCES ? LEDGER_MAX_INSTANCES : n;
}

static int validate_config(const struct ledger_config *cfg, char *err, size_t errlen)
{
	if (cfg->mode != LEDGER_MODE_WARN && cfg->mode != LEDGER_MODE_BLOCK) {
		errf(err, errlen, "ledger: unknown mode %d", (int)cfg->mode);
		return -1;
	}
	if (cfg->n_commands > LEDGER_MAX_BUDGETS) {
		errf(err, errlen, "ledger: %zu command budgets, at most %d are supported",
		     cfg->n_commands, LEDGER_MAX_BUDGETS);
		return -1;
	}
	if (cfg->n_commands && (!cfg->command_names || !cfg->command_limits)) {
		errf(err, errlen, "ledger: %zu command budgets given without names or limits",
		     cfg->n_commands);
		return -1;
	}
	for (size_t i = 0; i < cfg->n_commands; i++) {
		const char *name = cfg->command_names[i];
		size_t len = name ? strlen(name) : 0;

		if (len == 0) {
			errf(err, errlen, "ledger: command budget %zu has an empty name", i + 1);
			return -1;
		}
		if (len >= LEDGER_NAME_LEN) {
			errf(err, errlen,
			     "ledger: command name \"%.20s...\" is %zu bytes long, at most %d "
			     "allowed",
			     name, len, LEDGER_NAME_LEN - 1);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(cfg->command_names[j], name) == 0) {
				errf(err, errlen, "ledger: command \"%s\" has two budgets", name);
				return -1;
			}
		}
	}
	return 0;
}

static void fill_header(struct ledger_header *h, const struct ledger_config *cfg)
{
	/* The memfd is zero-filled: only non-zero fields are written. */
	h->version = LEDGER_VERSION;
	h->header_size = (uint32_t)sizeof(*h);
	h->size = sizeof(*h);
	h->creator_pid = getpid();
	h->uid = (uint32_t)geteuid();
	h->mode = (uint32_t)cfg->mode;
	h->estimate = cfg->estimate;
	memcpy(h->weights, cfg->weights, sizeof(h->weights));
	h->overall.limit = cfg->overall_limit;
	for (size_t i = 0; i < cfg->n_commands; i++) {
		snprintf(h->commands[i].name, sizeof(h->commands[i].name), "%s",
			 cfg->command_names[i]);
		h->commands[i].limit = cfg->command_limits[i];
	}
	h->n_commands = (uint32_t)cfg->n_commands;
	/* Last, with release: a reader that sees the magic sees every field above. */
	__atomic_store_n(&h->magic, LEDGER_MAGIC, __ATOMIC_RELEASE);
}

int ledger_create(struct ledger *l, const struct ledger_config *cfg, char *err, size_t errlen)
{
	size_t size = sizeof(struct ledger_header);
	int fd, rc;
	void *map;

	memset(l, 0, sizeof(*l));
	l->fd = -1;
	if (validate_config(cfg, err, errlen) < 0)
		return -1;
	fd = memfd_create("tbwrap-ledger", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		errf(err, errlen, "ledger: memfd_create: %s (Linux 3.17 or later is needed)",
		     strerror(errno));
		return -1;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		errf(err, errlen,
		     "ledger: cannot size the ledger to %zu bytes: %s (a file size limit? check "
		     "ulimit -f)",
		     size, strerror(errno));
		goto fail;
	}
	/* Every page now, so that running out of memory is this error and not a SIGBUS on the
	 * first write to a page deep inside the table, in the middle of a run. */
	rc = posix_fallocate(fd, 0, (off_t)size);
	if (rc != 0) {
		errf(err, errlen,
		     "ledger: cannot reserve %zu bytes of memory for the ledger: %s (free memory, "
		     "or raise the memory limit of this session)",
		     size, strerror(rc));
		goto fail;
	}
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		errf(err, errlen, "ledger: cannot map %zu bytes: %s", size, strerror(errno));
		goto fail;
	}
	/* The command is forked from the supervisor: its copy of this mapping would last until its
	 * exec. Not inherited at all is simpler to reason about. */
	madvise(map, size, MADV_DONTFORK);
	l->h = map;
	fill_header(l->h, cfg);
	/* After the writable mapping exists: the seal keeps it, and refuses every other. */
	if (fcntl(fd, F_ADD_SEALS, LEDGER_SEALS) < 0) {
		errf(err, errlen,
		     "ledger: cannot seal the ledger: %s (F_SEAL_FUTURE_WRITE needs Linux 5.1)",
		     strerror(errno));
		munmap(map, size);
		l->h = NULL;
		goto fail;
	}
	l->size = size;
	l->fd = fd;
	l->is_writer = true;
	return 0;
fail:
	close(fd);
	return -1;
}

/* Everything a mapped ledger must satisfy before any field of it is believed. */
static int check_header(const struct ledger_header *h, size_t size, char *err, size_t errlen)
{
	uint64_t magic = __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE);

	if (magic != LEDGER_MAGIC) {
		errf(err, errlen,
		     "ledger has a bad magic number (0x%016" PRIx64 ", expected 0x%016" PRIx64
		     "): not a tbwrap ledger, or one of another tbwrap version",
		     magic, LEDGER_MAGIC);
		return -1;
	}
	if (h->version != LEDGER_VERSION) {
		errf(err, errlen, "ledger has version %" PRIu32 ", this tbwrap reads version %u",
		     h->version, LEDGER_VERSION);
		return -1;
	}
	if (h->header_size != sizeof(*h) || h->size != sizeof(*h) || size != sizeof(*h)) {
		errf(err, errlen,
		     "ledger records header size %" PRIu32 " and size %" PRIu64
		     " in %zu bytes, expected %zu for all three",
		     h->header_size, h->size, size, sizeof(*h));
		return -1;
	}
	if (h->mode != LEDGER_MODE_WARN && h->mode != LEDGER_MODE_BLOCK) {
		errf(err, errlen, "ledger has an unknown mode %" PRIu32, h->mode);
		return -1;
	}
	return 0;
}

int ledger_map_readonly(struct ledger *l, int fd, char *err, size_t errlen)
{
	struct stat st;
	void *map;

	memset(l, 0, sizeof(*l));
	l->fd = -1;
	if (fstat(fd, &st) < 0) {
		errf(err, errlen, "cannot stat the ledger: %s", strerror(errno));
		close(fd);
		return -1;
	}
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & LEDGER_SEALS) != LEDGER_SEALS) {
		errf(err, errlen,
		     "the ledger received is not sealed: not from a tbwrap supervisor");
		close(fd);
		return -1;
	}
	if (st.st_size != (off_t)sizeof(struct ledger_header)) {
		errf(err, errlen,
		     "the ledger is %lld bytes, expected %zu (another tbwrap version?)",
		     (long long)st.st_size, sizeof(struct ledger_header));
		close(fd);
		return -1;
	}
	map = mmap(NULL, sizeof(struct ledger_header), PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		errf(err, errlen, "cannot map the ledger: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (check_header(map, (size_t)st.st_size, err, errlen) < 0) {
		munmap(map, sizeof(struct ledger_header));
		close(fd);
		return -1;
	}
	l->h = map;
	l->size = sizeof(struct ledger_header);
	l->fd = fd;
	return 0;
}

void ledger_close(struct ledger *l)
{
	if (l->h)
		munmap(l->h, l->size);
	if (l->fd >= 0)
		close(l->fd);
	l->h = NULL;
	l->size = 0;
	l->fd = -1;
	l->is_writer = false;
}

static bool valid_instance(const struct ledger *l, int inst)
{
	return inst >= 0 && (uint32_t)inst < ledger_n_instances(l->h);
}

static bool valid_command(const struct ledger *l, uint32_t cmd)
{
	return cmd < ledger_n_commands(l->h);
}

static int find_command(const struct ledger *l, const char *name)
{
	uint32_t n = ledger_n_commands(l->h);

	for (uint32_t i = 0; i < n; i++) {
		if (strncmp(l->h->commands[i].name, name, LEDGER_NAME_LEN) == 0)
			return (int)i;
	}
	return -1;
}

int ledger_command_index(struct ledger *l, const char *name, bool create)
{
	struct ledger_header *h = l->h;
	size_t len = name ? strlen(name) : 0;
	int idx;
	uint32_t n;

	if (len == 0 || len >= LEDGER_NAME_LEN)
		return -1;
	idx = find_command(l, name);
	if (idx >= 0 || !create)
		return idx;
	n = ledger_n_commands(h);
	/* The last entry is kept for the catch-all: an agent always has a key to be counted
	 * under, however many slash commands came first. */
	if (n >= LEDGER_MAX_COMMANDS ||
	    (n == LEDGER_MAX_COMMANDS - 1 && strcmp(name, LEDGER_CATCH_ALL) != 0 &&
	     find_command(l, LEDGER_CATCH_ALL) < 0))
		return -1;
	struct ledger_budget *b = &h->commands[n];
	memset(b, 0, sizeof(*b));
	memcpy(b->name, name, len + 1);
	b->limit = LEDGER_NO_LIMIT;
	/* Published after the entry is filled: readers iterate up to n_commands. */
	__atomic_store_n(&h->n_commands, n + 1, __ATOMIC_RELEASE);
	return (int)n;
}

static void fill_refusal(struct ledger_refusal *why, const struct ledger_budget *b, bool is_overall,
			 uint64_t used, uint64_t reserved, uint64_t estimate)
{
	memset(why, 0, sizeof(*why));
	why->is_overall = is_overall;
	memcpy(why->name, b->name, sizeof(why->name));
	why->name[sizeof(why->name) - 1] = '\0';
	why->limit = b->limit;
	why->used = used;
	why->reserved = reserved;
	why->estimate = estimate;
}

/* Would admitting one more agent with this estimate go over b? */
static bool budget_exceeded(const struct ledger_budget *b, uint64_t estimate, bool is_overall,
			    struct ledger_refusal *why)
{
	uint64_t used = ledger_budget_used(b), reserved = b->reserved;
	/* Room for the estimate, and room at all: with --estimate 0 a budget that is used up (or
	 * 0, "no agent may run") must still refuse. */
	uint64_t held = sat_add(used, reserved);
	if (b->limit == LEDGER_NO_LIMIT || (sat_add(held, estimate) <= b->limit && held < b->limit))
		return false;
	if (why)
		fill_refusal(why, b, is_overall, used, reserved, estimate);
	return true;
}

/* Takes the next free slot. -1 when the table is full. */
static int new_slot(struct ledger *l, int cmd, pid_t pid, uint64_t estimate,
		    enum ledger_status status)
{
	struct ledger_header *h = l->h;
	uint32_t n = ledger_n_instances(h);

	if (n >= LEDGER_MAX_INSTANCES)
		return -1;
	struct ledger_instance *in = &h->instances[n];
	memset(in, 0, sizeof(*in));
	in->pid = pid;
	in->command = (uint32_t)cmd;
	in->start_ns = now_realtime_ns();
	in->exit_code = -1;
	in->estimate = estimate;
	in->reserved = status == LEDGER_INST_RUNNING ? estimate : 0;
	in->status = (uint32_t)status;
	if (status != LEDGER_INST_RUNNING)
		in->end_ns = in->start_ns;
	/* Published after the slot is filled: readers iterate up to n_instances. */
	__atomic_store_n(&h->n_instances, n + 1, __ATOMIC_RELEASE);
	return (int)n;
}

enum ledger_admission ledger_admit(struct ledger *l, int cmd, pid_t pid, uint64_t estimate,
				   struct ledger_refusal *why, int *slot)
{
	struct ledger_header *h = l->h;
	struct ledger_refusal unused;

	*slot = -1;
	if (!why)
		why = &unused;
	if (cmd < 0 || !valid_command(l, (uint32_t)cmd))
		return LEDGER_TABLE_FULL;
	struct ledger_budget *overall = &h->overall, *command = &h->commands[cmd];
	/* The overall budget is reported first when both are exceeded: it is the one the user set
	 * for the whole run. */
	bool over_overall = budget_exceeded(overall, estimate, true, why);
	bool over_command = budget_exceeded(command, estimate, false, over_overall ? NULL : why);

	if ((over_overall || over_command) && h->mode == LEDGER_MODE_BLOCK) {
		/* Counted on both budgets, like agents: each budget's report tells how many of
		 * its agents were turned away; *why tells which budget did it. */
		add64(&overall->refused, 1);
		add64(&command->refused, 1);
		*slot = new_slot(l, cmd, pid, estimate, LEDGER_INST_REFUSED);
		return LEDGER_REFUSED;
	}
	*slot = new_slot(l, cmd, pid, estimate, LEDGER_INST_RUNNING);
	if (*slot < 0)
		return LEDGER_TABLE_FULL;
	add64(&overall->reserved, estimate);
	add64(&command->reserved, estimate);
	add64(&overall->agents, 1);
	add64(&command->agents, 1);
	return over_overall || over_command ? LEDGER_ADMITTED_OVER : LEDGER_ADMITTED;
}

static void set_note(struct ledger_instance *in, const char *note)
{
	/* Written before the flag or status that makes readers look at it. */
	snprintf(in->note, sizeof(in->note), "%s", note);
}

int ledger_record_unadmitted(struct ledger *l, int cmd, pid_t pid, enum ledger_status status,
			     const char *note)
{
	struct ledger_header *h = l->h;

	if (cmd < 0 || !valid_command(l, (uint32_t)cmd))
		return -1;
	if (status == LEDGER_INST_REFUSED) {
		add64(&h->overall.refused, 1);
		add64(&h->commands[cmd].refused, 1);
	} else {
		add64(&h->overall.agents, 1);
		add64(&h->commands[cmd].agents, 1);
	}
	int slot = new_slot(l, cmd, pid, 0, status);
	if (slot >= 0) {
		struct ledger_instance *in = &h->instances[slot];
		set_note(in, note ? note : "");
		if (status == LEDGER_INST_RUNNING)
			__atomic_or_fetch(&in->flags, LEDGER_F_UNMETERED, __ATOMIC_RELEASE);
	} else if (status != LEDGER_INST_REFUSED) {
		add64(&h->unlisted, 1);
	}
	return slot;
}

static void add_counts(struct ledger_counts *c, const struct meter_usage *d, uint64_t total)
{
	for (int f = 0; f < METER_NFIELDS; f++)
		if (d->n[f])
			add64(&c->n[f], d->n[f]);
	if (total)
		add64(&c->total, total);
}

static void note_overshoot(struct ledger_budget *b)
{
	uint64_t used = ledger_budget_used(b);
	if (b->limit != LEDGER_NO_LIMIT && used > b->limit && used - b->limit > b->overshoot)
		store64(&b->overshoot, used - b->limit);
}

static void release_reserved(struct ledger *l, struct ledger_instance *in, uint64_t amount)
{
	struct ledger_header *h = l->h;

	if (amount == 0)
		return;
	sub64(&in->reserved, amount);
	sub64(&h->overall.reserved, amount);
	if (valid_command(l, in->command))
		sub64(&h->commands[in->command].reserved, amount);
}

void ledger_record_delta(struct ledger *l, int inst, const struct meter_usage *delta)
{
	struct ledger_header *h = l->h;

	if (!valid_instance(l, inst))
		return;
	struct ledger_instance *in = &h->instances[inst];
	uint64_t total = meter_usage_total(delta, h->weights);

	add_counts(&in->used, delta, total);
	if (valid_command(l, in->command)) {
		add_counts(&h->commands[in->command].used, delta, total);
		note_overshoot(&h->commands[in->command]);
	}
	add_counts(&h->overall.used, delta, total);
	note_overshoot(&h->overall);
}

void ledger_set_reserved(struct ledger *l, int inst, uint64_t reserved)
{
	if (!valid_instance(l, inst))
		return;
	struct ledger_instance *in = &l->h->instances[inst];
	if (reserved >= in->reserved) {
		uint64_t more = reserved - in->reserved;
		if (!more)
			return;
		add64(&l->h->overall.reserved, more);
		if (valid_command(l, in->command))
			add64(&l->h->commands[in->command].reserved, more);
		store64(&in->reserved, reserved);
	} else {
		release_reserved(l, in, in->reserved - reserved);
	}
}

/* Would b hold used + reserved - mine + want within its limit? */
static bool request_fits(const struct ledger_budget *b, bool is_overall, uint64_t mine,
			 uint64_t want, uint64_t prediction, struct ledger_refusal *why)
{
	if (b->limit == LEDGER_NO_LIMIT)
		return true;
	uint64_t others = b->reserved > mine ? b->reserved - mine : 0;
	uint64_t used = ledger_budget_used(b);
	uint64_t held = sat_add(used, sat_add(others, want));
	if (held <= b->limit && used < b->limit)
		return true;
	if (why) {
		fill_refusal(why, b, is_overall, used, sat_add(others, want - prediction),
			     prediction);
	}
	return false;
}

bool ledger_request_fits(const struct ledger *l, int inst, uint64_t reserved, uint64_t prediction,
			 struct ledger_refusal *why)
{
	if (!valid_instance(l, inst))
		return false;
	const struct ledger_header *h = l->h;
	const struct ledger_instance *in = &h->instances[inst];
	if (prediction > reserved)
		prediction = reserved;
	/* The overall budget is named first when both refuse, as at launch. */
	return request_fits(&h->overall, true, in->reserved, reserved, prediction, why) &&
	       (!valid_command(l, in->command) ||
		request_fits(&h->commands[in->command], false, in->reserved, reserved, prediction,
			     why));
}

bool ledger_admit_request(struct ledger *l, int inst, uint64_t reserved, uint64_t prediction,
			  struct ledger_refusal *why)
{
	if (!valid_instance(l, inst))
		return false;
	if (!ledger_request_fits(l, inst, reserved, prediction, why)) {
		store64(&l->h->instances[inst].refused_prediction, prediction);
		return false;
	}
	ledger_set_reserved(l, inst, reserved);
	return true;
}

void ledger_note_refused(struct ledger *l, int inst, uint64_t prediction)
{
	if (valid_instance(l, inst))
		store64(&l->h->instances[inst].refused_prediction, prediction);
}

void ledger_note_requests(struct ledger *l, int inst, uint64_t requests, uint64_t max_under)
{
	if (!valid_instance(l, inst))
		return;
	store64(&l->h->instances[inst].requests, requests);
	store64(&l->h->instances[inst].max_under, max_under);
}

void ledger_hold_unreported(struct ledger *l, int inst, uint64_t n, uint64_t held)
{
	if (!valid_instance(l, inst))
		return;
	store64(&l->h->instances[inst].unreported, n);
	ledger_set_reserved(l, inst, held);
}

void ledger_publish_meter(struct ledger *l, int inst, const struct meter_core *core)
{
	if (!valid_instance(l, inst))
		return;
	struct ledger_instance *in = &l->h->instances[inst];
	store64(&in->cost_micro_usd, core->cost_micro_usd);
	for (int k = 0; k < METER_NANOMALY; k++)
		store64(&in->anomalies[k], core->anomalies[k]);
	if (strncmp(in->result_subtype, core->result_subtype, sizeof(in->result_subtype)) != 0)
		memcpy(in->result_subtype, core->result_subtype, sizeof(in->result_subtype));
	/* Last: a reader that sees a result line counted sees its cost. */
	__atomic_store_n(&in->results, core->results, __ATOMIC_RELEASE);
}

void ledger_settle(struct ledger *l, int inst, enum ledger_status status, int exit_code)
{
	struct ledger_header *h = l->h;

	if (!valid_instance(l, inst))
		return;
	struct ledger_instance *in = &h->instances[inst];
	release_reserved(l, in, in->reserved);
	uint32_t cur = in->status, next = (uint32_t)status;
	/* The supervisor settles a stopped agent as STOPPED when it signals it and again as EXITED
	 * when it reaps it: the first verdict stays, the exit code and time are the reaped ones. */
	if (cur == LEDGER_INST_REFUSED ||
	    (cur == LEDGER_INST_STOPPED && status == LEDGER_INST_EXITED))
		next = cur;
	if (cur != LEDGER_INST_STOPPED && cur != LEDGER_INST_REFUSED &&
	    status == LEDGER_INST_STOPPED) {
		add64(&h->overall.stopped, 1);
		if (valid_command(l, in->command))
			add64(&h->commands[in->command].stopped, 1);
	}
	/* -1 is "not known here": it never overwrites a code the agent reported itself. */
	if (exit_code != -1)
		__atomic_store_n(&in->exit_code, exit_code, __ATOMIC_RELAXED);
	store64(&in->end_ns, now_realtime_ns());
	__atomic_store_n(&in->status, next, __ATOMIC_RELEASE);
}

void ledger_set_exit_code(struct ledger *l, int inst, int exit_code)
{
	if (valid_instance(l, inst))
		__atomic_store_n(&l->h->instances[inst].exit_code, exit_code, __ATOMIC_RELAXED);
}

void ledger_mark(struct ledger *l, int inst, uint32_t flags, const char *note)
{
	if (!valid_instance(l, inst))
		return;
	struct ledger_instance *in = &l->h->instances[inst];
	if (note)
		set_note(in, note);
	__atomic_or_fetch(&in->flags, flags, __ATOMIC_RELEASE);
}

static bool budget_over(const struct ledger_budget *b, bool is_overall, uint64_t estimate,
			struct ledger_refusal *why)
{
	uint64_t used = ledger_budget_used(b);

	if (b->limit == LEDGER_NO_LIMIT || used <= b->limit)
		return false;
	if (why)
		fill_refusal(why, b, is_overall, used, b->reserved, estimate);
	return true;
}

bool ledger_over_limit(const struct ledger *l, int inst, struct ledger_refusal *why)
{
	const struct ledger_header *h = l->h;

	if (!valid_instance(l, inst))
		return budget_over(&h->overall, true, 0, why);
	const struct ledger_instance *in = &h->instances[inst];
	if (budget_over(&h->overall, true, in->estimate, why))
		return true;
	if (!valid_command(l, in->command))
		return false;
	const struct ledger_budget *b = &h->commands[in->command];
	if (budget_over(b, false, in->estimate, why))
		return true;
	/* Bound to a command after it started (prompt on stdin) whose budget had no room for it:
	 * it would have been refused at launch. */
	if (in->flags & LEDGER_F_OVER_AT_BIND) {
		if (why)
			fill_refusal(why, b, false, ledger_budget_used(b), b->reserved,
				     in->estimate);
		return true;
	}
	return false;
}

static void move_counts(struct ledger_counts *to, struct ledger_counts *from,
			const struct ledger_counts *c)
{
	for (int f = 0; f < METER_NFIELDS; f++) {
		add64(&to->n[f], c->n[f]);
		sub64(&from->n[f], c->n[f]);
	}
	add64(&to->total, c->total);
	sub64(&from->total, c->total);
}

bool ledger_rebind(struct ledger *l, int inst, int cmd)
{
	struct ledger_header *h = l->h;

	if (!valid_instance(l, inst) || cmd < 0 || !valid_command(l, (uint32_t)cmd))
		return false;
	struct ledger_instance *in = &h->instances[inst];
	uint32_t old = in->command;
	if (old == (uint32_t)cmd || !valid_command(l, old))
		return false;
	struct ledger_budget *to = &h->commands[cmd], *from = &h->commands[old];
	/* Into the new command first, then out of the old one: the overall count does not
	 * change, and a reader sees the usage at least once. */
	move_counts(&to->used, &from->used, &in->used);
	note_overshoot(to);
	add64(&to->reserved, in->reserved);
	sub64(&from->reserved, in->reserved);
	add64(&to->agents, 1);
	sub64(&from->agents, 1);
	__atomic_store_n(&in->command, (uint32_t)cmd, __ATOMIC_RELEASE);
	__atomic_and_fetch(&in->flags, ~LEDGER_F_UNBOUND, __ATOMIC_RELEASE);
	/* The check admission would have made: the command's used + reserved now include this
	 * agent's usage and what is left of its estimate, so "> limit" is "used + reserved +
	 * estimate > limit" at launch. Block mode stops it (ledger_over_limit). */
	if (to->limit != LEDGER_NO_LIMIT &&
	    sat_add(ledger_budget_used(to), to->reserved) > to->limit)
		__atomic_or_fetch(&in->flags, LEDGER_F_OVER_AT_BIND, __ATOMIC_RELEASE);
	return true;
}

void ledger_describe_refusal(const struct ledger_refusal *why, char *buf, size_t len)
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

uint64_t ledger_budget_used(const struct ledger_budget *b)
{
	return sat_add(ledger_load(&b->used.total), ledger_load(&b->others));
}

void ledger_set_others(struct ledger *l, int idx, uint64_t others)
{
	struct ledger_budget *b;

	if (idx < 0)
		b = &l->h->overall;
	else if (valid_command(l, (uint32_t)idx))
		b = &l->h->commands[idx];
	else
		return;
	store64(&b->others, others);
	note_overshoot(b);
}
