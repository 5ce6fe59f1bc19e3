/*
 * Ledger: budgets and usage shared by the launcher, every agent and `tbwrap status`.
 *
 * The segment is one fixed-width struct ledger_header in POSIX shared memory. Counters change only
 * through __atomic read-modify-writes, so deltas recorded by many processes at once add up
 * exactly without a lock on the hot path. Two things do need mutual exclusion and take the
 * header's robust mutex: admission (the budget check and the reservation must be one step, or
 * agents launched at the same instant would all see room for themselves) and insertion into the
 * command table. Robust mutexes because block mode SIGKILLs agents, possibly while they hold one.
 *
 * Whoever opens a segment trusts nothing in it until owner, mode, size, magic, version and bounds
 * have been checked; a segment that fails any check is refused without a single write.
 */
#include "tbwrap/ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tbwrap/log.h"

#define LEDGER_SHM_PREFIX "/tbwrap-"
/* Attempts at a fresh name: with 64 random bits a collision means something else is wrong. */
#define LEDGER_CREATE_TRIES 8

/*
 * Memory orders. Usage counters are independent sums: relaxed RMWs keep them exact (atomicity,
 * not ordering, is what makes concurrent additions add up). Reservations are released with
 * acq_rel after the usage that replaces them has been added, and admission loads reserved with
 * acquire before it loads used: an admission that sees a released reservation therefore also sees
 * the usage that took its place, so used + reserved is never under-read in between.
 */

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

static int random_u64(uint64_t *out)
{
	uint8_t *p = (uint8_t *)out;
	size_t got = 0;

	while (got < sizeof(*out)) {
		ssize_t n = getrandom(p + got, sizeof(*out) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)n;
	}
	return 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static int init_robust_mutex(pthread_mutex_t *m)
{
	pthread_mutexattr_t attr;
	int rc;

	rc = pthread_mutexattr_init(&attr);
	if (rc)
		return rc;
	rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	if (!rc)
		rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	if (!rc)
		rc = pthread_mutex_init(m, &attr);
	pthread_mutexattr_destroy(&attr);
	return rc;
}

/* A holder killed mid-section leaves only counters and fields that were each written whole: the
 * state is usable, so the mutex is marked consistent rather than given up. */
/* Returns true when the previous owner died holding the lock (the state it guards may be half
 * updated: the caller repairs what it can). */
static bool robust_lock(pthread_mutex_t *m)
{
	int rc = pthread_mutex_lock(m);

	if (rc == EOWNERDEAD) {
		pthread_mutex_consistent(m);
		return true;
	}
	if (rc != 0)
		log_warn("ledger: cannot lock a ledger mutex: %s", strerror(rc));
	return false;
}

static int validate_config(const struct ledger_config *cfg, char *err, size_t errlen)
{
	if (cfg->mode != LEDGER_MODE_WARN && cfg->mode != LEDGER_MODE_BLOCK) {
		errf(err, errlen, "ledger: unknown mode %d", (int)cfg->mode);
		return -1;
	}
	if (cfg->n_commands > LEDGER_MAX_COMMANDS) {
		errf(err, errlen, "ledger: %zu command budgets, at most %d are supported",
		     cfg->n_commands, LEDGER_MAX_COMMANDS);
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

static int fill_header(struct ledger_header *h, const struct ledger_config *cfg, char *err,
		       size_t errlen)
{
	int rc;

	/* ftruncate() zero-filled the segment: only non-zero fields are written. */
	h->version = LEDGER_VERSION;
	h->header_size = (uint32_t)sizeof(*h);
	h->size = sizeof(*h);
	h->creator_pid = getpid();
	h->uid = (uint32_t)geteuid();
	h->mode = (uint32_t)cfg->mode;
	h->estimate = cfg->estimate;
	do {
		if (random_u64(&h->tag) < 0) {
			errf(err, errlen, "ledger: getrandom: %s", strerror(errno));
			return -1;
		}
	} while (h->tag == 0); /* 0 is what an untagged call passes in the spare argument */
	memcpy(h->weights, cfg->weights, sizeof(h->weights));

	h->overall.limit = cfg->overall_limit;
	for (size_t i = 0; i < cfg->n_commands; i++) {
		snprintf(h->commands[i].name, sizeof(h->commands[i].name), "%s",
			 cfg->command_names[i]);
		h->commands[i].limit = cfg->command_limits[i];
	}
	h->n_commands = (uint32_t)cfg->n_commands;

	rc = init_robust_mutex(&h->lock);
	for (size_t i = 0; !rc && i < LEDGER_MAX_INSTANCES; i++)
		rc = init_robust_mutex(&h->instances[i].lock);
	if (rc) {
		errf(err, errlen, "ledger: cannot initialise a process-shared mutex: %s",
		     strerror(rc));
		return -1;
	}

	/* Last, with release: a reader that sees the magic sees every field above. */
	__atomic_store_n(&h->magic, LEDGER_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

int ledger_create(struct ledger *l, const struct ledger_config *cfg, char *err, size_t errlen)
{
	int fd = -1;
	void *map;

	memset(l, 0, sizeof(*l));
	if (validate_config(cfg, err, errlen) < 0)
		return -1;

	for (int tries = 0; fd < 0; tries++) {
		uint64_t rnd;

		if (random_u64(&rnd) < 0) {
			errf(err, errlen, "ledger: getrandom: %s", strerror(errno));
			return -1;
		}
		snprintf(l->name, sizeof(l->name), LEDGER_SHM_PREFIX "%ld-%016" PRIx64,
			 (long)getpid(), rnd);
		fd = shm_open(l->name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
		if (fd < 0 && (errno != EEXIST || tries + 1 >= LEDGER_CREATE_TRIES)) {
			errf(err, errlen, "ledger: cannot create %s: %s", l->name, strerror(errno));
			return -1;
		}
	}

	/* The umask can only clear bits, but the mode is part of what openers verify: make it
	 * exactly 0600 whatever umask the launcher inherited. */
	if (fchmod(fd, 0600) < 0 || ftruncate(fd, (off_t)sizeof(struct ledger_header)) < 0) {
		errf(err, errlen, "ledger: cannot size %s: %s", l->name, strerror(errno));
		goto fail_unlink;
	}
	map = mmap(NULL, sizeof(struct ledger_header), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		errf(err, errlen, "ledger: cannot map %s: %s", l->name, strerror(errno));
		goto fail_unlink;
	}
	close(fd);
	fd = -1;

	l->h = map;
	l->size = sizeof(struct ledger_header);
	l->is_creator = true;
	if (fill_header(l->h, cfg, err, errlen) < 0) {
		ledger_close(l);
		return -1;
	}
	return 0;

fail_unlink:
	close(fd);
	shm_unlink(l->name);
	l->name[0] = '\0';
	return -1;
}

/* Everything a segment must satisfy before any field of it is believed. */
static int check_header(const struct ledger_header *h, const char *name, char *err, size_t errlen)
{
	uint64_t magic = __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE);
	uint32_t n_commands, n_instances;

	if (magic != LEDGER_MAGIC) {
		errf(err, errlen,
		     "ledger %s has a bad magic number (0x%016" PRIx64 ", expected 0x%016" PRIx64
		     "): not a tbwrap ledger or not fully created",
		     name, magic, LEDGER_MAGIC);
		return -1;
	}
	if (h->version != LEDGER_VERSION) {
		errf(err, errlen, "ledger %s has version %" PRIu32 ", this tbwrap reads version %u",
		     name, h->version, LEDGER_VERSION);
		return -1;
	}
	if (h->header_size != sizeof(*h) || h->size != sizeof(*h)) {
		errf(err, errlen,
		     "ledger %s records header size %" PRIu32 " and size %" PRIu64
		     ", expected %zu for both",
		     name, h->header_size, h->size, sizeof(*h));
		return -1;
	}
	if (h->uid != (uint32_t)geteuid()) {
		errf(err, errlen, "ledger %s was created by uid %" PRIu32 ", not by uid %u", name,
		     h->uid, (unsigned)geteuid());
		return -1;
	}
	if (h->mode != LEDGER_MODE_WARN && h->mode != LEDGER_MODE_BLOCK) {
		errf(err, errlen, "ledger %s has an unknown mode %" PRIu32, name, h->mode);
		return -1;
	}
	n_commands = __atomic_load_n(&h->n_commands, __ATOMIC_ACQUIRE);
	n_instances = __atomic_load_n(&h->n_instances, __ATOMIC_ACQUIRE);
	if (n_commands > LEDGER_MAX_COMMANDS || n_instances > LEDGER_MAX_INSTANCES) {
		errf(err, errlen,
		     "ledger %s is corrupt: %" PRIu32 " commands (at most %d), %" PRIu32
		     " instances (at most %d)",
		     name, n_commands, LEDGER_MAX_COMMANDS, n_instances, LEDGER_MAX_INSTANCES);
		return -1;
	}
	return 0;
}

int ledger_open(struct ledger *l, const char *name, bool writable, char *err, size_t errlen)
{
	struct stat st;
	void *map;
	int fd;

	memset(l, 0, sizeof(*l));
	if (!name || name[0] != '/' || strlen(name) >= sizeof(l->name) || strchr(name + 1, '/')) {
		errf(err, errlen,
		     "ledger name \"%s\" is not a shared-memory name like /tbwrap-PID-XXXX",
		     name ? name : "");
		return -1;
	}
	fd = shm_open(name, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW, 0);
	if (fd < 0) {
		errf(err, errlen, "cannot open ledger %s: %s", name, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		errf(err, errlen, "cannot stat ledger %s: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	/* Another user's segment could feed us forged limits or a tag; a group- or world-writable
	 * one could be changed under us by someone else. */
	if (st.st_uid != geteuid()) {
		errf(err, errlen, "ledger %s is owned by uid %u, not by uid %u", name,
		     (unsigned)st.st_uid, (unsigned)geteuid());
		close(fd);
		return -1;
	}
	if ((st.st_mode & 07777) != 0600) {
		errf(err, errlen, "ledger %s has mode %04o, expected 0600", name,
		     (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	if (st.st_size != (off_t)sizeof(struct ledger_header)) {
		errf(err, errlen, "ledger %s is %s (%lld bytes, expected %zu)", name,
		     st.st_size < (off_t)sizeof(struct ledger_header) ? "truncated" : "too large",
		     (long long)st.st_size, sizeof(struct ledger_header));
		close(fd);
		return -1;
	}
	map = mmap(NULL, sizeof(struct ledger_header),
		   writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		errf(err, errlen, "cannot map ledger %s: %s", name, strerror(errno));
		return -1;
	}
	if (check_header(map, name, err, errlen) < 0) {
		munmap(map, sizeof(struct ledger_header));
		return -1;
	}
	l->h = map;
	l->size = sizeof(struct ledger_header);
	l->is_creator = false;
	snprintf(l->name, sizeof(l->name), "%s", name);
	return 0;
}

void ledger_close(struct ledger *l)
{
	if (l->h)
		munmap(l->h, l->size);
	if (l->is_creator && l->name[0])
		shm_unlink(l->name);
	l->h = NULL;
	l->size = 0;
	l->is_creator = false;
}

uint64_t ledger_load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static uint32_t n_commands(const struct ledger *l)
{
	return __atomic_load_n(&l->h->n_commands, __ATOMIC_ACQUIRE);
}

static uint32_t n_instances(const struct ledger *l)
{
	return __atomic_load_n(&l->h->n_instances, __ATOMIC_ACQUIRE);
}

static bool valid_instance(const struct ledger *l, int inst)
{
	return inst >= 0 && (uint32_t)inst < n_instances(l);
}

static int find_command(const struct ledger *l, const char *name)
{
	uint32_t n = n_commands(l);

	/* Entries below n_commands were filled before n_commands was published (release), and the
	 * acquire load above makes them visible: names can be compared without the lock. */
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

	robust_lock(&h->lock);
	/* Someone may have inserted it between the unlocked lookup and the lock. */
	idx = find_command(l, name);
	n = n_commands(l);
	if (idx < 0 && n < LEDGER_MAX_COMMANDS) {
		struct ledger_budget *b = &h->commands[n];

		memset(b, 0, sizeof(*b));
		memcpy(b->name, name, len + 1);
		b->limit = LEDGER_NO_LIMIT;
		__atomic_store_n(&h->n_commands, n + 1, __ATOMIC_RELEASE);
		idx = (int)n;
	}
	pthread_mutex_unlock(&h->lock);
	return idx;
}

/* Would admitting one more agent with this estimate go over b? */
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

static bool budget_exceeded(const struct ledger_budget *b, uint64_t estimate, bool is_overall,
			    struct ledger_refusal *why)
{
	uint64_t reserved = __atomic_load_n(&b->reserved, __ATOMIC_ACQUIRE);
	uint64_t used = __atomic_load_n(&b->used.total, __ATOMIC_RELAXED);

	/* Room for the estimate, and room at all: with --estimate 0 a budget that is used up (or
	 * 0, "no agent may run") must still refuse. */
	uint64_t held = sat_add(used, reserved);
	if (b->limit == LEDGER_NO_LIMIT || (sat_add(held, estimate) <= b->limit && held < b->limit))
		return false;
	if (why)
		fill_refusal(why, b, is_overall, used, reserved, estimate);
	return true;
}

/* Takes the next free slot (header lock held). -1 when the table is full. */
static int new_slot(struct ledger *l, int cmd, pid_t pid, uint64_t estimate,
		    enum ledger_status status)
{
	struct ledger_header *h = l->h;
	uint32_t n = n_instances(l);
	struct ledger_instance *in;

	if (n >= LEDGER_MAX_INSTANCES)
		return -1;
	in = &h->instances[n];
	in->pid = pid;
	in->command = (uint32_t)cmd;
	in->start_ns = now_realtime_ns();
	in->end_ns = 0;
	in->exit_code = -1;
	in->flags = 0;
	in->estimate = estimate;
	__atomic_store_n(&in->reserved, status == LEDGER_INST_REFUSED ? 0 : estimate,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&in->status, (uint32_t)status, __ATOMIC_RELAXED);
	/* Published after the slot is filled: readers iterate up to n_instances without a lock. */
	__atomic_store_n(&h->n_instances, n + 1, __ATOMIC_RELEASE);
	return (int)n;
}

int ledger_admit(struct ledger *l, int cmd, pid_t pid, uint64_t estimate, bool *exceeded,
		 struct ledger_refusal *why, int *refused_slot)
{
	struct ledger_header *h = l->h;
	struct ledger_budget *overall = &h->overall, *command;
	bool over_overall, over_command;
	int slot;

	if (exceeded)
		*exceeded = false;
	if (refused_slot)
		*refused_slot = -1;
	if (cmd < 0 || (uint32_t)cmd >= n_commands(l))
		return -1;
	command = &h->commands[cmd];

	robust_lock(&h->lock);
	/* The overall budget is reported first when both are exceeded: it is the one the user set
	 * for the whole run. */
	over_overall = budget_exceeded(overall, estimate, true, why);
	over_command = budget_exceeded(command, estimate, false, over_overall ? NULL : why);

	if ((over_overall || over_command) && h->mode == LEDGER_MODE_BLOCK) {
		/* Counted on both budgets, like agents: each budget's report tells how many of
		 * its agents were turned away; *why tells which budget did it. */
		__atomic_fetch_add(&overall->refused, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&command->refused, 1, __ATOMIC_RELAXED);
		slot = new_slot(l, cmd, pid, estimate, LEDGER_INST_REFUSED);
		if (slot >= 0)
			h->instances[slot].end_ns = h->instances[slot].start_ns;
		pthread_mutex_unlock(&h->lock);
		if (refused_slot)
			*refused_slot = slot;
		return -2;
	}

	slot = new_slot(l, cmd, pid, estimate, LEDGER_INST_RUNNING);
	if (slot < 0) {
		pthread_mutex_unlock(&h->lock);
		return -3;
	}
	/* Reserved under the lock: the next admission, also under the lock, sees it. */
	__atomic_fetch_add(&overall->reserved, estimate, __ATOMIC_ACQ_REL);
	__atomic_fetch_add(&command->reserved, estimate, __ATOMIC_ACQ_REL);
	__atomic_fetch_add(&overall->agents, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&command->agents, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&h->lock);

	if (exceeded)
		*exceeded = over_overall || over_command;
	return slot;
}

static void add_counts(struct ledger_counts *c, const struct meter_usage *d, uint64_t total)
{
	for (int f = 0; f < METER_NFIELDS; f++) {
		if (d->n[f])
			__atomic_fetch_add(&c->n[f], d->n[f], __ATOMIC_RELAXED);
	}
	if (total)
		__atomic_fetch_add(&c->total, total, __ATOMIC_RELAXED);
}

/* Takes up to want from *p without going below zero; returns what was taken. A CAS loop because
 * the supervisor and the agent's own libc path may release the same reservation at once. */
static uint64_t take_reserved(uint64_t *p, uint64_t want)
{
	uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED), take;

	do {
		take = cur < want ? cur : want;
		if (take == 0)
			return 0;
	} while (!__atomic_compare_exchange_n(p, &cur, cur - take, false, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	return take;
}

/* Subtracts without going below zero: a slip in the accounting (an agent that died half-way)
 * must never wrap a reservation into a number that refuses every later agent. */
static void sub_reserved(uint64_t *p, uint64_t amount)
{
	uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);

	while (!__atomic_compare_exchange_n(p, &cur, cur > amount ? cur - amount : 0, false,
					    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
	}
}

static void release_reserved(struct ledger *l, struct ledger_instance *in, uint64_t amount)
{
	struct ledger_header *h = l->h;

	if (amount == 0)
		return;
	sub_reserved(&h->overall.reserved, amount);
	if (in->command < LEDGER_MAX_COMMANDS)
		sub_reserved(&h->commands[in->command].reserved, amount);
}

void ledger_record_delta(struct ledger *l, int inst, const struct meter_usage *delta)
{
	struct ledger_header *h = l->h;
	struct ledger_instance *in;
	uint64_t total;

	if (!valid_instance(l, inst))
		return;
	in = &h->instances[inst];
	total = meter_usage_total(delta, h->weights);

	/* Usage first, reservation second: see the memory-order note at the top. */
	add_counts(&in->used, delta, total);
	if (in->command < LEDGER_MAX_COMMANDS)
		add_counts(&h->commands[in->command].used, delta, total);
	add_counts(&h->overall.used, delta, total);
	release_reserved(l, in, take_reserved(&in->reserved, total));
}

void ledger_settle(struct ledger *l, int inst, enum ledger_status status, int exit_code)
{
	struct ledger_header *h = l->h;
	struct ledger_instance *in;
	uint32_t cur;

	if (!valid_instance(l, inst))
		return;
	in = &h->instances[inst];
	/* Under the instance lock: a rebind moves the reservation between commands in one step,
	 * and this release must come entirely before or after it. */
	ledger_instance_lock(l, inst);
	release_reserved(l, in, __atomic_exchange_n(&in->reserved, 0, __ATOMIC_ACQ_REL));

	/* The supervisor settles a stopped agent as STOPPED when it signals it and again as EXITED
	 * when it reaps it: the first verdict stays, the exit code and time are the reaped ones.
	 * UNMETERED likewise stays when the agent exits. */
	cur = __atomic_load_n(&in->status, __ATOMIC_ACQUIRE);
	for (;;) {
		uint32_t next = (uint32_t)status;

		/* An agent that ran unmetered keeps saying so after it ended. */
		if (cur == LEDGER_INST_REFUSED ||
		    ((cur == LEDGER_INST_STOPPED || cur == LEDGER_INST_UNMETERED) &&
		     status == LEDGER_INST_EXITED))
			next = cur;
		if (next == cur || __atomic_compare_exchange_n(&in->status, &cur, next, false,
							       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			break;
	}
	if (cur != LEDGER_INST_STOPPED && cur != LEDGER_INST_REFUSED &&
	    status == LEDGER_INST_STOPPED) {
		__atomic_fetch_add(&h->overall.stopped, 1, __ATOMIC_RELAXED);
		if (in->command < LEDGER_MAX_COMMANDS)
			__atomic_fetch_add(&h->commands[in->command].stopped, 1, __ATOMIC_RELAXED);
	}
	/* -1 is "not known here": it never overwrites a code the agent reported itself. */
	if (exit_code != -1)
		__atomic_store_n(&in->exit_code, exit_code, __ATOMIC_RELAXED);
	__atomic_store_n(&in->end_ns, now_realtime_ns(), __ATOMIC_RELEASE);
	ledger_instance_unlock(l, inst);
}

static bool budget_over(const struct ledger_budget *b, bool is_overall, uint64_t estimate,
			struct ledger_refusal *why)
{
	uint64_t used = __atomic_load_n(&b->used.total, __ATOMIC_RELAXED);

	if (b->limit == LEDGER_NO_LIMIT || used <= b->limit)
		return false;
	if (why)
		fill_refusal(why, b, is_overall, used,
			     __atomic_load_n(&b->reserved, __ATOMIC_RELAXED), estimate);
	return true;
}

bool ledger_over_limit(const struct ledger *l, int inst, struct ledger_refusal *why)
{
	const struct ledger_header *h = l->h;
	const struct ledger_instance *in;

	if (!valid_instance(l, inst))
		return budget_over(&h->overall, true, 0, why);
	in = &h->instances[inst];
	if (budget_over(&h->overall, true, in->estimate, why))
		return true;
	if (in->command >= n_commands(l))
		return false;
	const struct ledger_budget *b = &h->commands[in->command];
	if (budget_over(b, false, in->estimate, why))
		return true;
	/* Bound to a command after it started (prompt on stdin) whose budget had no room for it:
	 * it would have been refused at launch. */
	if (__atomic_load_n(&in->flags, __ATOMIC_ACQUIRE) & LEDGER_F_OVER_AT_BIND) {
		if (why)
			fill_refusal(why, b, false,
				     __atomic_load_n(&b->used.total, __ATOMIC_RELAXED),
				     __atomic_load_n(&b->reserved, __ATOMIC_RELAXED), in->estimate);
		return true;
	}
	return false;
}

void ledger_instance_lock(struct ledger *l, int inst)
{
	if (inst < 0 || inst >= LEDGER_MAX_INSTANCES)
		return;
	struct ledger_instance *in = &l->h->instances[inst];
	if (!robust_lock(&in->lock))
		return;
	/* The owner died between raising its meter's total and recording the delta (the two are
	 * equal whenever the lock is free): record what is missing, so no usage is lost. */
	struct meter_usage missing = {{0}};
	bool any = false;
	for (int f = 0; f < METER_NFIELDS; f++) {
		uint64_t used = __atomic_load_n(&in->used.n[f], __ATOMIC_RELAXED);
		if (in->core.total.n[f] > used) {
			missing.n[f] = in->core.total.n[f] - used;
			any = true;
		}
	}
	if (any)
		ledger_record_delta(l, inst, &missing);
}

void ledger_instance_unlock(struct ledger *l, int inst)
{
	if (inst >= 0 && inst < LEDGER_MAX_INSTANCES)
		pthread_mutex_unlock(&l->h->instances[inst].lock);
}

static bool usage_nonzero(const struct meter_usage *u)
{
	for (int f = 0; f < METER_NFIELDS; f++) {
		if (u->n[f])
			return true;
	}
	return false;
}

/* The delta is recorded before the lock is dropped so that, for anyone holding the lock, the
 * instance's counters always equal its core's total. */
bool ledger_meter_feed(struct ledger *l, int inst, struct meter_stream *s, uint64_t pos,
		       const void *data, size_t len)
{
	struct meter_usage delta = {{0}};

	if (!valid_instance(l, inst))
		return false;
	ledger_instance_lock(l, inst);
	meter_feed(&l->h->instances[inst].core, s, pos, data, len, &delta);
	ledger_record_delta(l, inst, &delta);
	ledger_instance_unlock(l, inst);
	return usage_nonzero(&delta);
}

bool ledger_meter_finish(struct ledger *l, int inst, struct meter_stream *s)
{
	struct meter_usage delta = {{0}};

	if (!valid_instance(l, inst))
		return false;
	ledger_instance_lock(l, inst);
	meter_finish(&l->h->instances[inst].core, s, &delta);
	ledger_record_delta(l, inst, &delta);
	ledger_instance_unlock(l, inst);
	return usage_nonzero(&delta);
}

static void sub_counts(struct ledger_counts *c, const struct ledger_counts *d)
{
	for (int f = 0; f < METER_NFIELDS; f++)
		__atomic_fetch_sub(&c->n[f], d->n[f], __ATOMIC_RELAXED);
	__atomic_fetch_sub(&c->total, d->total, __ATOMIC_RELAXED);
}

static void add_ledger_counts(struct ledger_counts *c, const struct ledger_counts *d)
{
	for (int f = 0; f < METER_NFIELDS; f++)
		__atomic_fetch_add(&c->n[f], d->n[f], __ATOMIC_RELAXED);
	__atomic_fetch_add(&c->total, d->total, __ATOMIC_RELAXED);
}

bool ledger_rebind(struct ledger *l, int inst, int cmd)
{
	struct ledger_header *h = l->h;
	if (!valid_instance(l, inst) || inst >= LEDGER_MAX_INSTANCES || cmd < 0 ||
	    cmd >= LEDGER_MAX_COMMANDS || (uint32_t)cmd >= n_commands(l))
		return false;
	struct ledger_instance *in = &h->instances[inst];
	ledger_instance_lock(l, inst);
	uint32_t old = in->command;
	if (old == (uint32_t)cmd || old >= LEDGER_MAX_COMMANDS) {
		ledger_instance_unlock(l, inst);
		return false;
	}
	/* Under the instance lock no delta of this instance is being recorded, so its counts are
	 * stable while they move; the reservation moves in the same step. */
	struct ledger_counts used;
	for (int f = 0; f < METER_NFIELDS; f++)
		used.n[f] = __atomic_load_n(&in->used.n[f], __ATOMIC_RELAXED);
	used.total = __atomic_load_n(&in->used.total, __ATOMIC_RELAXED);
	uint64_t reserved = __atomic_load_n(&in->reserved, __ATOMIC_ACQUIRE);
	add_ledger_counts(&h->commands[cmd].used, &used);
	sub_counts(&h->commands[old].used, &used);
	__atomic_fetch_add(&h->commands[cmd].reserved, reserved, __ATOMIC_ACQ_REL);
	sub_reserved(&h->commands[old].reserved, reserved);
	__atomic_fetch_add(&h->commands[cmd].agents, 1, __ATOMIC_RELAXED);
	__atomic_fetch_sub(&h->commands[old].agents, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&in->command, (uint32_t)cmd, __ATOMIC_RELEASE);
	__atomic_and_fetch(&in->flags, ~LEDGER_F_UNBOUND, __ATOMIC_RELEASE);
	/* The check admission would have made: the command's used + reserved now include this
	 * agent's usage and what is left of its estimate, so "> limit" is "used + reserved +
	 * estimate > limit" at launch. Block mode stops it (ledger_over_limit). */
	const struct ledger_budget *b = &h->commands[cmd];
	uint64_t held = sat_add(__atomic_load_n(&b->used.total, __ATOMIC_RELAXED),
				__atomic_load_n(&b->reserved, __ATOMIC_RELAXED));
	if (b->limit != LEDGER_NO_LIMIT && held > b->limit)
		__atomic_or_fetch(&in->flags, LEDGER_F_OVER_AT_BIND, __ATOMIC_RELEASE);
	ledger_instance_unlock(l, inst);
	return true;
}
