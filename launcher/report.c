/*
 * JSON report of a ledger (schema in include/tbwrap/report.h). Built with cJSON so that names
 * and subtypes are escaped properly; counts stay exact because every count is at most 2^53 (the
 * meter refuses larger ones and the command line caps budgets there).
 */
#include "tbwrap/report.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tbwrap/prices.h"
#include "tbwrap/render.h"

static const char *const anomaly_names[METER_NANOMALY] = {
	[METER_ANOM_NOT_JSON] = "not_json",	    [METER_ANOM_BAD_NUMBER] = "bad_number",
	[METER_ANOM_OVERSIZE] = "oversize",	    [METER_ANOM_GAP] = "gap",
	[METER_ANOM_ORPHAN_DELTA] = "orphan_delta",
};

/* cJSON_Add* return NULL when out of memory; one flag collects that for the whole tree. */
struct builder {
	bool failed;
};

static void check(struct builder *b, const void *added)
{
	if (!added)
		b->failed = true;
}

static void add_u64(struct builder *b, cJSON *obj, const char *key, uint64_t v)
{
	check(b, cJSON_AddNumberToObject(obj, key, (double)v));
}

static void add_limit(struct builder *b, cJSON *obj, uint64_t limit)
{
	if (limit == LEDGER_NO_LIMIT)
		check(b, cJSON_AddNullToObject(obj, "limit"));
	else
		add_u64(b, obj, "limit", limit);
}

/* Pico-USD as an exact decimal JSON number ("0.018375", "12", "0.000000125"): a double would
 * round what tbwrap summed exactly. */
static void add_usd(struct builder *b, cJSON *obj, const char *key, uint64_t pico)
{
	char text[48], frac[16];
	snprintf(frac, sizeof(frac), "%012llu", (unsigned long long)(pico % PRICE_PICO_PER_USD));
	size_t n = strlen(frac);
	while (n > 0 && frac[n - 1] == '0')
		frac[--n] = '\0';
	snprintf(text, sizeof(text), "%llu%s%s", (unsigned long long)(pico / PRICE_PICO_PER_USD),
		 n ? "." : "", frac);
	check(b, cJSON_AddRawToObject(obj, key, text));
}

static void add_usd_limit(struct builder *b, cJSON *obj, uint64_t limit)
{
	if (limit == LEDGER_NO_LIMIT)
		check(b, cJSON_AddNullToObject(obj, "usd_limit"));
	else
		add_usd(b, obj, "usd_limit", limit);
}

static void add_usage(struct builder *b, cJSON *obj, const char *key, const struct ledger_counts *c)
{
	cJSON *u = cJSON_AddObjectToObject(obj, key);
	check(b, u);
	if (!u)
		return;
	add_u64(b, u, "input", ledger_load(&c->n[METER_INPUT]));
	add_u64(b, u, "output", ledger_load(&c->n[METER_OUTPUT]));
	add_u64(b, u, "cache_creation", ledger_load(&c->n[METER_CACHE_CREATION]));
	add_u64(b, u, "cache_read", ledger_load(&c->n[METER_CACHE_READ]));
	add_u64(b, u, "total", ledger_load(&c->total));
	add_usd(b, u, "usd", ledger_load(&c->pusd));
}

/* Copies a fixed-size name field that may lack its NUL (corrupt or torn segment). */
static void copy_name(char *dst, const char *src, size_t size)
{
	size_t n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void add_agent(struct builder *b, cJSON *arr, const struct ledger_header *h,
		      const struct ledger_instance *in, uint32_t n_commands)
{
	cJSON *a = cJSON_CreateObject();
	check(b, a);
	if (!a)
		return;
	if (!cJSON_AddItemToArray(arr, a)) {
		cJSON_Delete(a);
		b->failed = true;
		return;
	}
	uint32_t status = ledger_load32(&in->status);
	int32_t code = __atomic_load_n(&in->exit_code, __ATOMIC_ACQUIRE);
	char name[LEDGER_NAME_LEN];

	check(b, cJSON_AddNumberToObject(a, "pid", (double)in->pid));
	uint32_t cmd = ledger_load32(&in->command);
	if (cmd < n_commands) {
		copy_name(name, h->commands[cmd].name, sizeof(name));
		check(b, cJSON_AddStringToObject(a, "command", name));
	} else {
		check(b, cJSON_AddNullToObject(a, "command"));
	}
	check(b, cJSON_AddStringToObject(a, "status", render_status_name(status)));
	if (code >= 0 && status != LEDGER_INST_RUNNING)
		check(b, cJSON_AddNumberToObject(a, "exit_code", code));
	else
		check(b, cJSON_AddNullToObject(a, "exit_code"));
	add_usage(b, a, "usage", &in->used);
	char model[METER_MODEL_LEN];
	copy_name(model, in->model, sizeof(model));
	for (char *p = model; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	if (model[0])
		check(b, cJSON_AddStringToObject(a, "model", model));
	else
		check(b, cJSON_AddNullToObject(a, "model"));
	check(b,
	      cJSON_AddBoolToObject(a, "priced", !(ledger_load32(&in->flags) & LEDGER_F_UNPRICED)));

	/* The CLI's own total_cost_usd. No result line, no cost: unknown is null, not 0. */
	uint64_t micro = ledger_load(&in->cost_micro_usd);
	/* Known once a result line was seen, even when the CLI reported $0. */
	if (micro || ledger_load(&in->results))
		check(b, cJSON_AddNumberToObject(a, "cost_usd", (double)micro / 1e6));
	else
		check(b, cJSON_AddNullToObject(a, "cost_usd"));

	/* The subtype comes from the agent's own output: keep printable ASCII only. */
	char sub[METER_SUBTYPE_LEN];
	copy_name(sub, in->result_subtype, sizeof(sub));
	for (char *p = sub; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	if (sub[0])
		check(b, cJSON_AddStringToObject(a, "result_subtype", sub));
	else
		check(b, cJSON_AddNullToObject(a, "result_subtype"));

	cJSON *an = cJSON_AddObjectToObject(a, "anomalies");
	check(b, an);
	for (int k = 0; an && k < METER_NANOMALY; k++)
		add_u64(b, an, anomaly_names[k], ledger_load(&in->anomalies[k]));
	add_u64(b, a, "requests", ledger_load(&in->requests));
	uint64_t refused = ledger_load(&in->refused_prediction);
	if (refused)
		add_u64(b, a, "refused_prediction", refused);
	else
		check(b, cJSON_AddNullToObject(a, "refused_prediction"));
	if (ledger_load(&in->usd_refused_prediction))
		add_usd(b, a, "refused_prediction_usd", ledger_load(&in->usd_refused_prediction));
	else
		check(b, cJSON_AddNullToObject(a, "refused_prediction_usd"));
	add_u64(b, a, "max_prediction_error", ledger_load(&in->max_under));
	add_usd(b, a, "max_prediction_error_usd", ledger_load(&in->usd_max_under));
	/* Calls nothing reported the usage of, calls whose final usage was never written, and
	 * what the budgets still hold for them. */
	bool is_held = ledger_load(&in->unreported) || ledger_load(&in->unfinal);
	add_u64(b, a, "unreported_calls", ledger_load(&in->unreported));
	add_u64(b, a, "unfinal_calls", ledger_load(&in->unfinal));
	add_u64(b, a, "held", is_held ? ledger_load(&in->reserved) : 0);
	add_usd(b, a, "held_usd", is_held ? ledger_load(&in->usd_reserved) : 0);
	uint32_t flags = ledger_load32(&in->flags);
	check(b, cJSON_AddBoolToObject(a, "nested", (flags & LEDGER_F_NESTED) != 0));
	check(b, cJSON_AddBoolToObject(a, "adopted", (flags & LEDGER_F_ADOPTED) != 0));
	/* Refused agents ran nothing: their usage is known to be 0. */
	check(b, cJSON_AddBoolToObject(a, "metered", !(flags & LEDGER_F_UNMETERED)));
	char note[LEDGER_NOTE_LEN];
	copy_name(note, in->note, sizeof(note));
	for (char *p = note; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (note[0])
		check(b, cJSON_AddStringToObject(a, "note", note));
	else
		check(b, cJSON_AddNullToObject(a, "note"));
}

static void add_command(struct builder *b, cJSON *arr, const struct ledger_budget *bd)
{
	cJSON *c = cJSON_CreateObject();
	check(b, c);
	if (!c)
		return;
	if (!cJSON_AddItemToArray(arr, c)) {
		cJSON_Delete(c);
		b->failed = true;
		return;
	}
	char name[LEDGER_NAME_LEN];
	copy_name(name, bd->name, sizeof(name));
	check(b, cJSON_AddStringToObject(c, "name", name));
	add_limit(b, c, bd->limit);
	add_usage(b, c, "used", &bd->used);
	add_u64(b, c, "reserved", ledger_load(&bd->reserved));
	add_u64(b, c, "agents", ledger_load(&bd->agents));
	add_u64(b, c, "refused", ledger_load(&bd->refused));
	add_u64(b, c, "stopped", ledger_load(&bd->stopped));
	add_u64(b, c, "overshoot", ledger_load(&bd->overshoot));
	add_usd_limit(b, c, ledger_load(&bd->usd_limit));
	add_usd(b, c, "usd_reserved", ledger_load(&bd->usd_reserved));
	add_usd(b, c, "usd_overshoot", ledger_load(&bd->usd_overshoot));
}

char *report_json(const struct ledger_header *h)
{
	struct builder b = {false};
	cJSON *root = cJSON_CreateObject();
	if (!root)
		return NULL;

	uint32_t nc = ledger_n_commands(h), ni = ledger_n_instances(h);

	check(&b, cJSON_AddNumberToObject(root, "version", REPORT_VERSION));
	check(&b, cJSON_AddStringToObject(root, "mode",
					  h->mode == LEDGER_MODE_BLOCK ? "block" : "warn"));
	add_u64(&b, root, "estimate", h->estimate);
	static const char *const classes[METER_NFIELDS] = {"input", "output", "cache_creation",
							   "cache_read"};
	cJSON *counted = cJSON_AddArrayToObject(root, "counted");
	check(&b, counted);
	for (int f = 0; counted && f < METER_NFIELDS; f++) {
		if (!h->weights[f])
			continue;
		cJSON *name = cJSON_CreateString(classes[f]);
		check(&b, name);
		if (name && !cJSON_AddItemToArray(counted, name)) {
			cJSON_Delete(name);
			b.failed = true;
		}
	}

	cJSON *overall = cJSON_AddObjectToObject(root, "overall");
	check(&b, overall);
	if (overall) {
		add_limit(&b, overall, h->overall.limit);
		add_usage(&b, overall, "used", &h->overall.used);
		add_u64(&b, overall, "reserved", ledger_load(&h->overall.reserved));
		add_u64(&b, overall, "agents", ledger_load(&h->overall.agents));
		add_u64(&b, overall, "refused", ledger_load(&h->overall.refused));
		add_u64(&b, overall, "stopped", ledger_load(&h->overall.stopped));
		add_u64(&b, overall, "overshoot", ledger_load(&h->overall.overshoot));
		add_usd_limit(&b, overall, ledger_load(&h->overall.usd_limit));
		add_usd(&b, overall, "usd_reserved", ledger_load(&h->overall.usd_reserved));
		add_usd(&b, overall, "usd_overshoot", ledger_load(&h->overall.usd_overshoot));
	}
	add_u64(&b, root, "unlisted", ledger_load(&h->unlisted));

	cJSON *commands = cJSON_AddArrayToObject(root, "commands");
	check(&b, commands);
	for (uint32_t i = 0; commands && i < nc; i++)
		add_command(&b, commands, &h->commands[i]);

	cJSON *agents = cJSON_AddArrayToObject(root, "agents");
	check(&b, agents);
	for (uint32_t i = 0; agents && i < ni; i++) {
		const struct ledger_instance *in = &h->instances[i];
		if (ledger_load32(&in->status) != LEDGER_INST_FREE)
			add_agent(&b, agents, h, in, nc);
	}

	char *text = b.failed ? NULL : cJSON_Print(root);
	cJSON_Delete(root);
	if (!text)
		return NULL;
	size_t n = strlen(text);
	char *out = malloc(n + 2);
	if (out)
		memcpy(out, text, n);
	cJSON_free(text);
	if (!out)
		return NULL;
	out[n] = '\n';
	out[n + 1] = '\0';
	return out;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int report_open(struct report_file *f, const char *path, char *err, size_t errlen)
{
	memset(f, 0, sizeof(*f));
	f->fd = -1;
	f->path = path;
	if (strcmp(path, "-") == 0) {
		int fl = fcntl(STDOUT_FILENO, F_GETFL);
		if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY) {
			snprintf(err, errlen, "--report-json -: standard output is %s",
				 fl < 0 ? "closed" : "not open for writing");
			return -1;
		}
		f->is_stdout = true;
		return 0;
	}
	size_t plen = strlen(path);
	f->tmp = malloc(plen + sizeof(".tmp"));
	if (!f->tmp) {
		snprintf(err, errlen, "--report-json %s: out of memory", path);
		return -1;
	}
	memcpy(f->tmp, path, plen);
	memcpy(f->tmp + plen, ".tmp", sizeof(".tmp"));
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "--report-json %s: is a directory (name a file in it)", path);
		report_abandon(f);
		return -1;
	}
	/* Created now, before the command runs, so that a path that cannot be written is found
	 * out before anything was spent. O_NOFOLLOW: a planted symlink at path.tmp must not
	 * redirect the write elsewhere. */
	f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (f->fd < 0) {
		snprintf(err, errlen, "--report-json %s: cannot create %s: %s%s", path, f->tmp,
			 strerror(errno), errno == ENOENT ? " (its directory does not exist)" : "");
		report_abandon(f);
		return -1;
	}
	return 0;
}

void report_abandon(struct report_file *f)
{
	if (f->fd >= 0) {
		close(f->fd);
		unlink(f->tmp);
	}
	f->fd = -1;
	free(f->tmp);
	f->tmp = NULL;
}

int report_commit(struct report_file *f, const struct ledger_header *h, char *err, size_t errlen)
{
	char *text = report_json(h);
	int rc = -1;
	if (!text) {
		snprintf(err, errlen, "report %s: out of memory", f->path);
		report_abandon(f);
		return -1;
	}
	size_t len = strlen(text);
	if (f->is_stdout) {
		/* Whatever stdio holds must come out before our bytes. */
		fflush(stdout);
		rc = write_all(STDOUT_FILENO, text, len);
		if (rc < 0)
			snprintf(err, errlen, "report to standard output: %s", strerror(errno));
		free(text);
		return rc;
	}
	/* fsync before rename: after a crash the name holds the old report or the whole new one. */
	if (write_all(f->fd, text, len) < 0 || fsync(f->fd) < 0) {
		snprintf(err, errlen, "report %s: cannot write %s: %s", f->path, f->tmp,
			 strerror(errno));
		goto out;
	}
	if (close(f->fd) < 0) {
		f->fd = -1;
		snprintf(err, errlen, "report %s: cannot write %s: %s", f->path, f->tmp,
			 strerror(errno));
		unlink(f->tmp);
		goto out;
	}
	f->fd = -1;
	if (rename(f->tmp, f->path) < 0) {
		snprintf(err, errlen, "report %s: cannot rename %s: %s", f->path, f->tmp,
			 strerror(errno));
		unlink(f->tmp);
		goto out;
	}
	rc = 0;
out:
	report_abandon(f);
	free(text);
	return rc;
}
