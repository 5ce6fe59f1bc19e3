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
#include "tbwrap/sat.h"
#include "tbwrap/threshold.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
/* What a supervisor's ledger carries once created: nobody can write it, resize it or unseal it. */
#define LEDGER_SEALS (F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static uint64_t now_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
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
		log_error_into(err, errlen, "ledger: unknown mode %d", (int)cfg->mode);
		return -1;
	}
	if (cfg->n_commands > LEDGER_MAX_BUDGETS) {
		log_error_into(err, errlen, "ledger: %zu command budgets, at most %d are supported",
			       cfg->n_commands, LEDGER_MAX_BUDGETS);
		return -1;
	}
	if (cfg->n_commands && (!cfg->command_names || !cfg->command_limits)) {
		log_error_into(err, errlen,
			       "ledger: %zu command budgets given without names or limits",
			       cfg->n_commands);
		return -1;
	}
	for (size_t i = 0; i < cfg->n_commands; i++) {
		const char *name = cfg->command_names[i];
		size_t len = name ? strlen(name) : 0;

		if (len == 0) {
			log_error_into(err, errlen, "ledger: command budget %zu has an empty name",
				       i + 1);
			return -1;
		}
		if (len >= LEDGER_NAME_LEN) {
			log_error_into(
				err, errlen,
				"ledger: command name \"%.20s...\" is %zu bytes long, at most %d "
				"allowed",
				name, len, LEDGER_NAME_LEN - 1);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(cfg->command_names[j], name) == 0) {
				log_error_into(err, errlen,
					       "ledger: command \"%s\" has two budgets", name);
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
	h->overall.usd_limit = cfg->overall_usd_limit ? *cfg->overall_usd_limit : LEDGER_NO_LIMIT;
	for (size_t i = 0; i < cfg->n_commands; i++) {
		snprintf(h->commands[i].name, sizeof(h->commands[i].name), "%s",
			 cfg->command_names[i]);
		h->commands[i].limit = cfg->command_limits[i];
		h->commands[i].usd_limit =
			cfg->command_usd_limits ? cfg->command_usd_limits[i] : LEDGER_NO_LIMIT;
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
		log_error_into(err, errlen,
			       "ledger: memfd_create: %s (Linux 3.17 or later is needed)",
			       strerror(errno));
		return -1;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		log_error_into(
			err, errlen,
			"ledger: cannot size the ledger to %zu bytes: %s (a file size limit? check "
			"ulimit -f)",
			size, strerror(errno));
		goto fail;
	}
	/* Every page now, so that running out of memory is this error and not a SIGBUS on the
	 * first write to a page deep inside the table, in the middle of a run. */
	rc = posix_fallocate(fd, 0, (off_t)size);
	if (rc != 0) {
		log_error_into(err, errlen,
			       "ledger: cannot reserve %zu bytes of memory for the ledger: %s "
			       "(free memory, "
			       "or raise the memory limit of this session)",
			       size, strerror(rc));
		goto fail;
	}
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		log_error_into(err, errlen, "ledger: cannot map %zu bytes: %s", size,
			       strerror(errno));
		goto fail;
	}
	/* The command is forked from the supervisor: its copy of this mapping would last until its
	 * exec. Not inherited at all is simpler to reason about. */
	madvise(map, size, MADV_DONTFORK);
	l->h = map;
	fill_header(l->h, cfg);
	/* After the writable mapping exists: the seal keeps it, and refuses every other. */
	if (fcntl(fd, F_ADD_SEALS, LEDGER_SEALS) < 0) {
		log_error_into(
			err, errlen,
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
		log_error_into(err, errlen,
			       "ledger has a bad magic number (0x%016" PRIx64
			       ", expected 0x%016" PRIx64
			       "): not a tbwrap ledger, or one of another tbwrap version",
			       magic, LEDGER_MAGIC);
		return -1;
	}
	if (h->version != LEDGER_VERSION) {
		log_error_into(err, errlen,
			       "ledger has version %" PRIu32 ", this tbwrap reads version %u",
			       h->version, LEDGER_VERSION);
		return -1;
	}
	if (h->header_size != sizeof(*h) || h->size != sizeof(*h) || size != sizeof(*h)) {
		log_error_into(err, errlen,
			       "ledger records header size %" PRIu32 " and size %" PRIu64
			       " in %zu bytes, expected %zu for all three",
			       h->header_size, h->size, size, sizeof(*h));
		return -1;
	}
	if (h->mode != LEDGER_MODE_WARN && h->mode != LEDGER_MODE_BLOCK) {
		log_error_into(err, errlen, "ledger has an unknown mode %" PRIu32, h->mode);
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
		log_error_into(err, errlen, "cannot stat the ledger: %s", strerror(errno));
		close(fd);
		return -1;
	}
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & LEDGER_SEALS) != LEDGER_SEALS) {
		log_error_into(err, errlen,
			       "the ledger received is not sealed: not from a tbwrap supervisor");
		close(fd);
		return -1;
	}
	if (st.st_size != (off_t)sizeof(struct ledger_header)) {
		log_error_into(err, errlen,
			       "the ledger is %lld bytes, expected %zu (another tbwrap version?)",
			       (long long)st.st_size, sizeof(struct ledger_header));
		close(fd);
		return -1;
	}
	map = mmap(NULL, sizeof(struct ledger_header), PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		log_error_into(err, errlen, "cannot map the ledger: %s", strerror(errno));
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
	b->usd_limit = LEDGER_NO_LIMIT;
	/* Published after the entry is filled: readers iterate up to n_commands. */
	__atomic_store_n(&h->n_commands, n + 1, __ATOMIC_RELEASE);
	return (int)n;
}

/* A budget's figures in one unit. */
static uint64_t limit_of(const struct ledger_budget *b, int u)
{
	return u == AMOUNT_USD ? ledger_load(&b->usd_limit) : ledger_load(&b->limit);
}

/* What counts against b: this run's usage and, with a window, other runs'. */
static uint64_t used_of(const struct ledger_budget *b, int u)
{
	if (u == AMOUNT_USD)
		return sat_add(ledger_load(&b->used.pusd), ledger_load(&b->usd_others));
	return sat_add(ledger_load(&b->used.total), ledger_load(&b->others));
}

static uint64_t *reserved_of(struct ledger_budget *b, int u)
{
	return u == AMOUNT_USD ? &b->usd_reserved : &b->reserved;
}

static uint64_t *inst_reserved(struct ledger_instance *in, int u)
{
	return u == AMOUNT_USD ? &in->usd_reserved : &in->reserved;
}

bool ledger_has_limit(const struct ledger_budget *b, enum amount_unit unit)
{
	return limit_of(b, unit) != LEDGER_NO_LIMIT;
}

static void fill_refusal(struct ledger_refusal *why, const struct ledger_budget *b, bool is_overall,
			 int unit, uint64_t used, uint64_t reserved, uint64_t estimate)
{
	memset(why, 0, sizeof(*why));
	why->is_overall = is_overall;
	why->unit = (enum amount_unit)unit;
	memcpy(why->name, b->name, sizeof(why->name));
	why->name[sizeof(why->name) - 1] = '\0';
	why->limit = limit_of(b, unit);
	why->used = used;
	why->reserved = reserved;
	why->estimate = estimate;
}

/* Would admitting one more agent with this estimate go over b, in either unit? */
static bool budget_exceeded(struct ledger_budget *b, struct amount estimate, bool is_overall,
			    struct ledger_refusal *why)
{
	for (int u = 0; u < AMOUNT_NUNITS; u++) {
		uint64_t limit = limit_of(b, u), used = used_of(b, u),
			 reserved = *reserved_of(b, u);
		/* Room for the estimate, and room at all: with --estimate 0 a budget that is used
		 * up (or 0, "no agent may run") must still refuse. */
		uint64_t held = sat_add(used, reserved);
		if (limit == LEDGER_NO_LIMIT ||
		    (sat_add(held, estimate.v[u]) <= limit && held < limit))
			continue;
		if (why)
			fill_refusal(why, b, is_overall, u, used, reserved, estimate.v[u]);
		return true;
	}
	return false;
}

/* Takes the next free slot. -1 when the table is full. */
static int new_slot(struct ledger *l, int cmd, pid_t pid, struct amount estimate,
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
	in->estimate = estimate.v[AMOUNT_TOKENS];
	in->usd_estimate = estimate.v[AMOUNT_USD];
	if (status == LEDGER_INST_RUNNING) {
		in->reserved = estimate.v[AMOUNT_TOKENS];
		in->usd_reserved = estimate.v[AMOUNT_USD];
	}
	in->status = (uint32_t)status;
	if (status != LEDGER_INST_RUNNING)
		in->end_ns = in->start_ns;
	/* Published after the slot is filled: readers iterate up to n_instances. */
	__atomic_store_n(&h->n_instances, n + 1, __ATOMIC_RELEASE);
	return (int)n;
}

enum ledger_admission ledger_admit(struct ledger *l, int cmd, pid_t pid, struct amount estimate,
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
	for (int u = 0; u < AMOUNT_NUNITS; u++) {
		add64(reserved_of(overall, u), estimate.v[u]);
		add64(reserved_of(command, u), estimate.v[u]);
	}
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
	int slot = new_slot(l, cmd, pid, (struct amount){{0}}, status);
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

static void add_counts(struct ledger_counts *c, const struct meter_usage *d, uint64_t total,
		       uint64_t pusd)
{
	for (int f = 0; f < METER_NFIELDS; f++)
		if (d->n[f])
			add64(&c->n[f], d->n[f]);
	if (total)
		add64(&c->total, total);
	if (pusd)
		add64(&c->pusd, pusd);
}

static void note_overshoot(struct ledger_budget *b)
{
	uint64_t used = used_of(b, AMOUNT_TOKENS), pusd = used_of(b, AMOUNT_USD);
	if (b->limit != LEDGER_NO_LIMIT && used > b->limit && used - b->limit > b->overshoot)
		store64(&b->overshoot, used - b->limit);
	if (b->usd_limit != LEDGER_NO_LIMIT && pusd > b->usd_limit &&
	    pusd - b->usd_limit > b->usd_overshoot)
		store64(&b->usd_overshoot, pusd - b->usd_limit);
}

static void release_reserved(struct ledger *l, struct ledger_instance *in, int u, uint64_t amount)
{
	struct ledger_header *h = l->h;

	if (amount == 0)
		return;
	sub64(inst_reserved(in, u), amount);
	sub64(reserved_of(&h->overall, u), amount);
	if (valid_command(l, in->command))
		sub64(reserved_of(&h->commands[in->command], u), amount);
}

void ledger_record_delta(struct ledger *l, int inst, const struct meter_usage *delta, uint64_t pusd)
{
	struct ledger_header *h = l->h;

	if (!valid_instance(l, inst))
		return;
	struct ledger_instance *in = &h->instances[inst];
	uint64_t total = meter_usage_total(delta, h->weights);

	add_counts(&in->used, delta, total, pusd);
	if (valid_command(l, in->command)) {
		add_counts(&h->commands[in->command].used, delta, total, pusd);
		note_overshoot(&h->commands[in->command]);
	}
	add_counts(&h->overall.used, delta, total, pusd);
	note_overshoot(&h->overall);
}

void ledger_set_reserved(struct ledger *l, int inst, struct amount reserved)
{
	if (!valid_instance(l, inst))
		return;
	struct ledger_instance *in = &l->h->instances[inst];
	for (int u = 0; u < AMOUNT_NUNITS; u++) {
		uint64_t *mine = inst_reserved(in, u), want = reserved.v[u];
		if (want >= *mine) {
			uint64_t more = want - *mine;
			if (!more)
				continue;
			add64(reserved_of(&l->h->overall, u), more);
			if (valid_command(l, in->command))
				add64(reserved_of(&l->h->commands[in->command], u), more);
			store64(mine, want);
		} else {
			release_reserved(l, in, u, *mine - want);
		}
	}
}

void ledger_set_model(struct ledger *l, int inst, const char *model, bool is_unpriced)
{
	if (!valid_instance(l, inst))
		return;
	struct ledger_instance *in = &l->h->instances[inst];
	if (model && *model && strncmp(in->model, model, sizeof(in->model)) != 0)
		snprintf(in->model, sizeof(in->model), "%s", model);
	if (is_unpriced)
		__atomic_or_fetch(&in->flags, LEDGER_F_UNPRICED, __ATOMIC_RELEASE);
}

/* Would b hold used + reserved - mine + want within its limit, in every unit? */
static bool request_fits(struct ledger_budget *b, bool is_overall, const struct ledger_instance *in,
			 struct amount want, struct amount prediction, struct ledger_refusal *why)
{
	for (int u = 0; u < AMOUNT_NUNITS; u++) {
		uint64_t limit = limit_of(b, u), used = used_of(b, u);
		if (limit == LEDGER_NO_LIMIT)
			continue;
		uint64_t all = *reserved_of(b, u),
			 mine = *inst_reserved((struct ledger_instance *)in, u);
		uint64_t others = all > mine ? all - mine : 0;
		uint64_t held = sat_add(used, sat_add(others, want.v[u]));
		if (held <= limit && used < limit)
			continue;
		if (why)
			fill_refusal(why, b, is_overall, u, used,
				     sat_add(others, want.v[u] - prediction.v[u]), prediction.v[u]);
		return false;
	}
	return true;
}

bool ledger_request_fits(const struct ledger *l, int inst, struct amount reserved,
			 struct amount prediction, struct ledger_refusal *why)
{
	if (!valid_instance(l, inst))
		return false;
	struct ledger_header *h = l->h;
	const struct ledger_instance *in = &h->instances[inst];
	for (int u = 0; u < AMOUNT_NUNITS; u++)
		if (prediction.v[u] > reserved.v[u])
			prediction.v[u] = reserved.v[u];
	/* The overall budget is named first when both refuse, as at launch. */
	return request_fits(&h->overall, true, in, reserved, prediction, why) &&
	       (!valid_command(l, in->command) ||
		request_fits(&h->commands[in->command], false, in, reserved, prediction, why));
}

bool ledger_admit_request(struct ledger *l, int inst, struct amount reserved,
			  struct amount prediction, struct ledger_refusal *why)
{
	if (!valid_instance(l, inst))
		return false;
	if (!ledger_request_fits(l, inst, reserved, prediction, why)) {
		ledger_note_refused(l, inst, prediction);
		return false;
	}
	ledger_set_reserved(l, inst, reserved);
	return true;
}

void ledger_note_refused(struct ledger *l, int inst, struct amount prediction)
{
	if (!valid_instance(l, inst))
		return;
	store64(&l->h->instances[inst].refused_prediction, prediction.v[AMOUNT_TOKENS]);
	store64(&l->h->instances[inst].usd_refused_prediction, prediction.v[AMOUNT_USD]);
}

void ledger_note_requests(struct ledger *l, int inst, uint64_t requests, struct amount max_under)
{
	if (!valid_instance(l, inst))
		return;
	store64(&l->h->instances[inst].requests, requests);
	store64(&l->h->instances[inst].max_under, max_under.v[AMOUNT_TOKENS]);
	store64(&l->h->instances[inst].usd_max_under, max_under.v[AMOUNT_USD]);
}

void ledger_hold_unreported(struct ledger *l, int inst, uint64_t unreported, uint64_t unfinal,
			    struct amount held)
{
	if (!valid_instance(l, inst))
		return;
	store64(&l->h->instances[inst].unreported, unreported);
	store64(&l->h->instances[inst].unfinal, unfinal);
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
	for (int u = 0; u < AMOUNT_NUNITS; u++)
		release_reserved(l, in, u, *inst_reserved(in, u));
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

static bool budget_over(struct ledger_budget *b, bool is_overall, struct amount estimate,
			struct ledger_refusal *why)
{
	for (int u = 0; u < AMOUNT_NUNITS; u++) {
		uint64_t limit = limit_of(b, u), used = used_of(b, u);
		if (limit == LEDGER_NO_LIMIT || used <= limit)
			continue;
		if (why)
			fill_refusal(why, b, is_overall, u, used, *reserved_of(b, u),
				     estimate.v[u]);
		return true;
	}
	return false;
}

bool ledger_over_limit(const struct ledger *l, int inst, struct ledger_refusal *why)
{
	struct ledger_header *h = l->h;

	if (!valid_instance(l, inst))
		return budget_over(&h->overall, true, (struct amount){{0}}, why);
	const struct ledger_instance *in = &h->instances[inst];
	struct amount est = {{in->estimate, in->usd_estimate}};
	if (budget_over(&h->overall, true, est, why))
		return true;
	if (!valid_command(l, in->command))
		return false;
	struct ledger_budget *b = &h->commands[in->command];
	if (budget_over(b, false, est, why))
		return true;
	/* Bound to a command after it started (prompt on stdin) whose budget had no room for it:
	 * it would have been refused at launch. */
	if (in->flags & LEDGER_F_OVER_AT_BIND) {
		if (why) {
			int u = ledger_has_limit(b, AMOUNT_TOKENS) ? AMOUNT_TOKENS : AMOUNT_USD;
			fill_refusal(why, b, false, u, used_of(b, u), *reserved_of(b, u), est.v[u]);
		}
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
	add64(&to->pusd, c->pusd);
	sub64(&from->pusd, c->pusd);
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
	for (int u = 0; u < AMOUNT_NUNITS; u++) {
		add64(reserved_of(to, u), *inst_reserved(in, u));
		sub64(reserved_of(from, u), *inst_reserved(in, u));
	}
	add64(&to->agents, 1);
	sub64(&from->agents, 1);
	__atomic_store_n(&in->command, (uint32_t)cmd, __ATOMIC_RELEASE);
	__atomic_and_fetch(&in->flags, ~LEDGER_F_UNBOUND, __ATOMIC_RELEASE);
	/* The check admission would have made: the command's used + reserved now include this
	 * agent's usage and what is left of its estimate, so "> limit" is "used + reserved +
	 * estimate > limit" at launch. Block mode stops it (ledger_over_limit). */
	for (int u = 0; u < AMOUNT_NUNITS; u++)
		if (limit_of(to, u) != LEDGER_NO_LIMIT &&
		    sat_add(used_of(to, u), *reserved_of(to, u)) > limit_of(to, u))
			__atomic_or_fetch(&in->flags, LEDGER_F_OVER_AT_BIND, __ATOMIC_RELEASE);
	return true;
}

void ledger_describe_refusal(const struct ledger_refusal *why, char *buf, size_t len)
{
	char used[32], res[32], est[32], lim[32];

	render_amount(used, sizeof(used), why->unit, why->used);
	render_amount(res, sizeof(res), why->unit, why->reserved);
	render_amount(est, sizeof(est), why->unit, why->estimate);
	render_amount(lim, sizeof(lim), why->unit, why->limit);
	const char *kind = why->unit == AMOUNT_USD ? " USD" : "";
	if (why->is_overall)
		snprintf(buf, len,
			 "overall%s budget: used %s + reserved %s + estimate %s > limit %s", kind,
			 used, res, est, lim);
	else
		snprintf(buf, len,
			 "command%s budget %s: used %s + reserved %s + estimate %s > limit %s",
			 kind, why->name, used, res, est, lim);
}

unsigned ledger_claim_thresholds(struct ledger_budget *b, enum amount_unit unit, unsigned crossed)
{
	uint32_t *warned = unit == AMOUNT_USD ? &b->usd_warned : &b->warned;
	crossed &= THRESHOLD_ALL;
	/* One fetch-or: of two claimers of the same bit, exactly one gets it. */
	uint32_t before = __atomic_fetch_or(warned, crossed, __ATOMIC_RELAXED);
	return crossed & ~before;
}

uint64_t ledger_budget_used(const struct ledger_budget *b)
{
	return used_of(b, AMOUNT_TOKENS);
}

uint64_t ledger_budget_used_in(const struct ledger_budget *b, enum amount_unit unit)
{
	return used_of(b, unit);
}

uint64_t ledger_budget_limit(const struct ledger_budget *b, enum amount_unit unit)
{
	return limit_of(b, unit);
}

static struct ledger_budget *budget_at(struct ledger *l, int idx)
{
	if (idx < 0)
		return &l->h->overall;
	return valid_command(l, (uint32_t)idx) ? &l->h->commands[idx] : NULL;
}

static void set_others(struct ledger *l, int idx, enum amount_unit unit, uint64_t v)
{
	struct ledger_budget *b = budget_at(l, idx);
	if (!b)
		return;
	store64(unit == AMOUNT_USD ? &b->usd_others : &b->others, v);
	note_overshoot(b);
}

void ledger_set_others(struct ledger *l, int idx, uint64_t others)
{
	set_others(l, idx, AMOUNT_TOKENS, others);
}

void ledger_set_others_usd(struct ledger *l, int idx, uint64_t pusd)
{
	set_others(l, idx, AMOUNT_USD, pusd);
}
