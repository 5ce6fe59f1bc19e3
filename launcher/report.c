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
#include <unistd.h>

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
	uint32_t status = __atomic_load_n(&in->status, __ATOMIC_ACQUIRE);
	int32_t code = __atomic_load_n(&in->exit_code, __ATOMIC_ACQUIRE);
	char name[LEDGER_NAME_LEN];

	check(b, cJSON_AddNumberToObject(a, "pid", (double)in->pid));
	if (in->command < n_commands) {
		copy_name(name, h->commands[in->command].name, sizeof(name));
		check(b, cJSON_AddStringToObject(a, "command", name));
	} else {
		check(b, cJSON_AddNullToObject(a, "command"));
	}
	check(b, cJSON_AddStringToObject(a, "status", render_status_name(status)));
	if (code >= 0 && status != LEDGER_INST_RUNNING && status != LEDGER_INST_UNMETERED)
		check(b, cJSON_AddNumberToObject(a, "exit_code", code));
	else
		check(b, cJSON_AddNullToObject(a, "exit_code"));
	add_usage(b, a, "usage", &in->used);

	/* No result line, no cost: unknown is null, not 0. */
	uint64_t micro = ledger_load(&in->core.cost_micro_usd);
	/* Known once a result line was seen, even when the CLI reported $0. */
	if (micro || ledger_load(&in->core.results))
		check(b, cJSON_AddNumberToObject(a, "cost_usd", (double)micro / 1e6));
	else
		check(b, cJSON_AddNullToObject(a, "cost_usd"));

	/* The subtype comes from the agent's own output: keep printable ASCII only. */
	char sub[METER_SUBTYPE_LEN];
	copy_name(sub, in->core.result_subtype, sizeof(sub));
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
		add_u64(b, an, anomaly_names[k], ledger_load(&in->core.anomalies[k]));
	check(b, cJSON_AddBoolToObject(a, "nested", (in->flags & LEDGER_F_NESTED) != 0));
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
}

char *report_json(const struct ledger_header *h)
{
	struct builder b = {false};
	cJSON *root = cJSON_CreateObject();
	if (!root)
		return NULL;

	uint32_t nc = __atomic_load_n(&h->n_commands, __ATOMIC_ACQUIRE);
	uint32_t ni = __atomic_load_n(&h->n_instances, __ATOMIC_ACQUIRE);
	if (nc > LEDGER_MAX_COMMANDS)
		nc = LEDGER_MAX_COMMANDS;
	if (ni > LEDGER_MAX_INSTANCES)
		ni = LEDGER_MAX_INSTANCES;

	check(&b, cJSON_AddNumberToObject(root, "version", 1));
	check(&b, cJSON_AddStringToObject(root, "mode",
					  h->mode == LEDGER_MODE_BLOCK ? "block" : "warn"));
	add_u64(&b, root, "estimate", h->estimate);

	cJSON *overall = cJSON_AddObjectToObject(root, "overall");
	check(&b, overall);
	if (overall) {
		add_limit(&b, overall, h->overall.limit);
		add_usage(&b, overall, "used", &h->overall.used);
		add_u64(&b, overall, "reserved", ledger_load(&h->overall.reserved));
		add_u64(&b, overall, "agents", ledger_load(&h->overall.agents));
		add_u64(&b, overall, "refused", ledger_load(&h->overall.refused));
		add_u64(&b, overall, "stopped", ledger_load(&h->overall.stopped));
	}

	cJSON *commands = cJSON_AddArrayToObject(root, "commands");
	check(&b, commands);
	for (uint32_t i = 0; commands && i < nc; i++)
		add_command(&b, commands, &h->commands[i]);

	cJSON *agents = cJSON_AddArrayToObject(root, "agents");
	check(&b, agents);
	for (uint32_t i = 0; agents && i < ni; i++) {
		const struct ledger_instance *in = &h->instances[i];
		if (__atomic_load_n(&in->status, __ATOMIC_ACQUIRE) != LEDGER_INST_FREE)
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

int report_write_json(const struct ledger_header *h, const char *path, char *err, size_t errlen)
{
	char *text = report_json(h);
	if (!text) {
		snprintf(err, errlen, "report %s: out of memory", path);
		return -1;
	}
	size_t len = strlen(text);

	if (strcmp(path, "-") == 0) {
		/* Whatever stdio holds must come out before our bytes. */
		fflush(stdout);
		int rc = write_all(STDOUT_FILENO, text, len);
		if (rc < 0)
			snprintf(err, errlen, "report to standard output: %s", strerror(errno));
		free(text);
		return rc;
	}

	size_t plen = strlen(path);
	char *tmp = malloc(plen + sizeof(".tmp"));
	if (!tmp) {
		free(text);
		snprintf(err, errlen, "report %s: out of memory", path);
		return -1;
	}
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp", sizeof(".tmp"));

	int rc = -1;
	/* O_NOFOLLOW: a planted symlink at path.tmp must not redirect the write elsewhere. */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "report %s: cannot create %s: %s", path, tmp,
			 strerror(errno));
		goto out;
	}
	/* fsync before rename: after a crash the name holds the old report or the whole new one. */
	if (write_all(fd, text, len) < 0 || fsync(fd) < 0) {
		snprintf(err, errlen, "report %s: cannot write %s: %s", path, tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	if (close(fd) < 0) {
		snprintf(err, errlen, "report %s: cannot write %s: %s", path, tmp, strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "report %s: cannot rename %s: %s", path, tmp,
			 strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	free(tmp);
	free(text);
	return rc;
}
