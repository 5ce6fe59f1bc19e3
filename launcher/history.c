/*
 * The history database (include/tbwrap/history.h).
 *
 * Times are milliseconds since the epoch; counts are integers (SQLite's are 64-bit). The schema
 * is created in one IMMEDIATE transaction, so that runs opening a new file at once cannot
 * interleave. A run's rows are keyed by (run_id, slot): writing them again is an update, which
 * is how a running supervisor keeps its usage current without ever adding a row twice.
 */
#include "tbwrap/history.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tbwrap/log.h"
#include "tbwrap/render.h"

struct history {
	sqlite3 *db;
	char path[PATH_MAX];
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS runs ("
	" id INTEGER PRIMARY KEY,"
	" started_ms INTEGER NOT NULL,"
	" ended_ms INTEGER,"
	" updated_ms INTEGER NOT NULL,"
	" scope TEXT NOT NULL,"
	" window_s INTEGER NOT NULL DEFAULT 0,"
	" mode TEXT NOT NULL,"
	" pid INTEGER NOT NULL,"
	" cwd TEXT,"
	" command_line TEXT,"
	" exit_status INTEGER);"
	"CREATE TABLE IF NOT EXISTS agents ("
	" run_id INTEGER NOT NULL REFERENCES runs(id),"
	" slot INTEGER NOT NULL,"
	" started_ms INTEGER NOT NULL,"
	" scope TEXT NOT NULL,"
	" command TEXT NOT NULL,"
	" input INTEGER NOT NULL,"
	" output INTEGER NOT NULL,"
	" cache_creation INTEGER NOT NULL,"
	" cache_read INTEGER NOT NULL,"
	" total INTEGER NOT NULL,"
	" reserved INTEGER NOT NULL DEFAULT 0," /* held for it while it runs */
	" usd_pico INTEGER NOT NULL DEFAULT 0,"
	" usd_reserved INTEGER NOT NULL DEFAULT 0," /* the same in pico-USD */
	" model TEXT,"
	" duration_ms INTEGER NOT NULL,"
	" status TEXT NOT NULL," /* running, exited, stopped, refused */
	" exit_code INTEGER,"
	" metered INTEGER NOT NULL,"
	" pid INTEGER NOT NULL,"
	" cwd TEXT,"
	" PRIMARY KEY (run_id, slot));"
	"CREATE INDEX IF NOT EXISTS agents_scope_time ON agents (scope, started_ms);"
	"CREATE INDEX IF NOT EXISTS agents_command_time ON agents (command, started_ms);";

/* The cause of an SQLite failure and what to do about it, in words. */
static int db_fail(struct history *h, int rc, const char *what, char *err, size_t errlen)
{
	int base = rc & 0xff;
	const char *fix;
	if (base == SQLITE_BUSY || base == SQLITE_LOCKED)
		fix = "another process holds it locked; wait for it, or give another file with "
		      "--history";
	else if (base == SQLITE_NOTADB || base == SQLITE_CORRUPT)
		fix = "it is not a tbwrap history (corrupt?); move it away, or give another file "
		      "with --history";
	else if (base == SQLITE_READONLY || base == SQLITE_CANTOPEN || base == SQLITE_PERM ||
		 base == SQLITE_IOERR || base == SQLITE_FULL)
		fix = "make it (and its directory) writable, or give another file with --history";
	else
		fix = "give another file with --history, or run with --no-history";
	const char *msg = h && h->db ? sqlite3_errmsg(h->db) : sqlite3_errstr(rc);
	return log_error_into(err, errlen, "history %s: %s: %s (%s)", h ? h->path : "?", what, msg,
			      fix);
}

uint64_t history_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int history_default_path(char *out, size_t len)
{
	const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	int n;
	/* The XDG spec: a relative XDG_STATE_HOME is invalid and is ignored. */
	if (state && state[0] == '/')
		n = snprintf(out, len, "%s/tbwrap/history.db", state);
	else if (home && home[0])
		n = snprintf(out, len, "%s/.local/state/tbwrap/history.db", home);
	else
		return -1;
	return n > 0 && (size_t)n < len ? 0 : -1;
}

/* mkdir -p of the file's directory, private to the user (0700) where it creates one. */
static int make_parent(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int exec_sql(struct history *h, const char *sql, const char *what, char *err, size_t errlen)
{
	int rc = sqlite3_exec(h->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : db_fail(h, rc, what, err, errlen);
}

/* A history made before a column was added gets it (with its default): rows of old runs read
 * as they were written. */
static int add_missing_columns(struct history *h, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	bool has = false;
	int rc = sqlite3_prepare_v2(h->db,
				    "SELECT 1 FROM pragma_table_info('agents') WHERE name = "
				    "'usd_reserved'",
				    -1, &st, NULL);
	if (rc == SQLITE_OK)
		has = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return db_fail(h, rc, "cannot read its tables", err, errlen);
	if (has)
		return 0;
	return exec_sql(h, "ALTER TABLE agents ADD COLUMN usd_reserved INTEGER NOT NULL DEFAULT 0",
			"cannot add a column to its tables", err, errlen);
}

/* Switches a connection to WAL. Several runs opening a new history at once race to do it: the
 * switch can answer SQLITE_BUSY at once, without the busy handler (it needs the database to
 * itself for a moment), so it is tried again for up to busy_ms. */
static int wal_mode(struct history *h, int busy_ms)
{
	/* By the clock: one try may itself wait in the busy handler. */
	uint64_t deadline = history_now_ms() + (uint64_t)(busy_ms > 0 ? busy_ms : 0);
	for (;;) {
		sqlite3_stmt *st = NULL;
		int rc = sqlite3_prepare_v2(h->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		sqlite3_finalize(st);
		int base = rc & 0xff;
		if ((base != SQLITE_BUSY && base != SQLITE_LOCKED) || history_now_ms() >= deadline)
			return rc;
		usleep(10000);
	}
}

int history_open(struct history **out, const char *path, bool create, int busy_ms, char *err,
		 size_t errlen)
{
	*out = NULL;
	if (!path || !path[0])
		return log_error_into(err, errlen, "history: no file name");
	struct history *h = calloc(1, sizeof(*h));
	if (!h)
		return log_error_into(err, errlen, "history %s: out of memory", path);
	snprintf(h->path, sizeof(h->path), "%s", path);
	if (create) {
		if (make_parent(path) < 0) {
			int e = errno;
			free(h);
			return log_error_into(
				err, errlen,
				"history %s: cannot make its directory: %s (make it writable, "
				"or give another file with --history)",
				path, strerror(e));
		}
		/* The history is the user's own: created private (SQLite would use 0644). */
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			int e = errno;
			free(h);
			return log_error_into(
				err, errlen,
				"history %s: cannot open: %s (make it writable, or give another "
				"file with --history)",
				path, strerror(e));
		}
		close(fd);
	}
	int flags = create ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
	int rc = sqlite3_open_v2(path, &h->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		db_fail(h, rc, "cannot open", err, errlen);
		history_close(h);
		return -1;
	}
	sqlite3_busy_timeout(h->db, busy_ms);
	sqlite3_extended_result_codes(h->db, 1);
	if (create) {
		/* WAL: readers never wait for a writer and a writer only for another writer.
		 * NORMAL: a commit is durable at the next checkpoint, enough for usage counts. */
		rc = wal_mode(h, busy_ms);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			db_fail(h, rc, "cannot open", err, errlen);
			history_close(h);
			return -1;
		}
		if (exec_sql(h, "PRAGMA synchronous=NORMAL", "cannot open", err, errlen) < 0 ||
		    exec_sql(h, "BEGIN IMMEDIATE", "cannot open", err, errlen) < 0) {
			history_close(h);
			return -1;
		}
		if (exec_sql(h, schema, "cannot create its tables", err, errlen) < 0 ||
		    add_missing_columns(h, err, errlen) < 0 ||
		    exec_sql(h, "COMMIT", "cannot create its tables", err, errlen) < 0) {
			sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
			history_close(h);
			return -1;
		}
	} else {
		/* Read only: the tables must be there (and the file a database at all). */
		if (exec_sql(h, "SELECT count(*) FROM agents, runs WHERE 0", "cannot read", err,
			     errlen) < 0) {
			history_close(h);
			return -1;
		}
	}
	*out = h;
	return 0;
}

void history_close(struct history *h)
{
	if (!h)
		return;
	if (h->db)
		sqlite3_close_v2(h->db);
	free(h);
}

void history_set_busy(struct history *h, int busy_ms)
{
	sqlite3_busy_timeout(h->db, busy_ms);
}

const char *history_path(const struct history *h)
{
	return h->path;
}

struct sqlite3 *history_db(struct history *h)
{
	return h->db;
}

int history_parse_duration(const char *s, uint64_t *seconds)
{
	static const struct {
		char unit;
		uint64_t seconds;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800}};
	const uint64_t max = UINT64_C(10) * 366 * 86400;
	uint64_t n = 0;
	const char *p = s;

	if (!s || *p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		n = n * 10 + (uint64_t)(*p - '0');
		if (n > max)
			return -1;
	}
	if (n == 0 || p[0] == '\0' || p[1] != '\0')
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (units[i].unit != p[0])
			continue;
		if (n > max / units[i].seconds)
			return -1;
		*seconds = n * units[i].seconds;
		return 0;
	}
	return -1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

uint64_t history_percentile(uint64_t *v, size_t n, unsigned pct)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(v[0]), cmp_u64);
	if (pct > 100)
		pct = 100;
	/* Nearest rank: ceil(pct/100 * n), counted from 1. */
	size_t rank = ((size_t)pct * n + 99) / 100;
	if (rank == 0)
		rank = 1;
	return v[rank - 1];
}

/* ---- a run ------------------------------------------------------------------------------ */

static const char *mode_name(enum ledger_mode m)
{
	return m == LEDGER_MODE_BLOCK ? "block" : "warn";
}

int history_run_begin(struct history *h, const struct history_run_info *r, int64_t *run_id,
		      char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	uint64_t now = history_now_ms();
	int rc = sqlite3_prepare_v2(h->db,
				    "INSERT INTO runs (started_ms, updated_ms, scope, window_s, "
				    "mode, pid, cwd, command_line) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
				    -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
		sqlite3_bind_text(st, 3, r->scope, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)r->window_s);
		sqlite3_bind_text(st, 5, mode_name(r->mode), -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 6, r->pid);
		sqlite3_bind_text(st, 7, r->cwd, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 8, r->command_line, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(h, rc, "cannot record the run", err, errlen);
	*run_id = (int64_t)sqlite3_last_insert_rowid(h->db);
	return 0;
}

uint64_t history_usd_of_instance(const struct ledger_header *lh, const struct ledger_instance *in)
{
	(void)lh;
	return ledger_load(&in->used.pusd);
}

const char *history_model_of_instance(const struct ledger_header *lh,
				      const struct ledger_instance *in)
{
	(void)lh;
	/* The model of its latest call (ledger_set_model); NULL when no call named one. */
	size_t n = strnlen(in->model, sizeof(in->model));
	return n > 0 && n < sizeof(in->model) ? in->model : NULL;
}

static int sync_agents(struct history *h, sqlite3_stmt *st, int64_t run_id,
		       const struct ledger_header *lh, const struct history_run_info *r,
		       uint64_t now_ms)
{
	uint32_t n = ledger_n_instances(lh), nc = ledger_n_commands(lh);
	for (uint32_t i = 0; i < n; i++) {
		const struct ledger_instance *in = &lh->instances[i];
		uint32_t status = ledger_load32(&in->status);
		uint32_t cmd = ledger_load32(&in->command);
		uint64_t start = ledger_load(&in->start_ns) / 1000000;
		uint64_t end = ledger_load(&in->end_ns) / 1000000;
		if (status == LEDGER_INST_RUNNING || end < start)
			end = now_ms > start ? now_ms : start;
		int exit_code = __atomic_load_n(&in->exit_code, __ATOMIC_RELAXED);
		const char *model = history_model_of_instance(lh, in);
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		sqlite3_bind_int64(st, 1, run_id);
		sqlite3_bind_int(st, 2, (int)i);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)start);
		sqlite3_bind_text(st, 4, r->scope, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, cmd < nc ? lh->commands[cmd].name : LEDGER_CATCH_ALL, -1,
				  SQLITE_TRANSIENT);
		for (int f = 0; f < METER_NFIELDS; f++)
			sqlite3_bind_int64(st, 6 + f, (sqlite3_int64)ledger_load(&in->used.n[f]));
		sqlite3_bind_int64(st, 10, (sqlite3_int64)ledger_load(&in->used.total));
		sqlite3_bind_int64(st, 11, (sqlite3_int64)history_usd_of_instance(lh, in));
		if (model)
			sqlite3_bind_text(st, 12, model, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 13, (sqlite3_int64)(end - start));
		sqlite3_bind_text(st, 14, render_status_name(status), -1, SQLITE_STATIC);
		if (exit_code >= 0 && status != LEDGER_INST_RUNNING)
			sqlite3_bind_int(st, 15, exit_code);
		sqlite3_bind_int(st, 16,
				 !(ledger_load32(&in->flags) & LEDGER_F_UNMETERED) &&
					 status != LEDGER_INST_REFUSED);
		sqlite3_bind_int64(st, 17, (sqlite3_int64)in->pid);
		sqlite3_bind_text(st, 18, r->cwd, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 19,
				   status == LEDGER_INST_RUNNING
					   ? (sqlite3_int64)ledger_load(&in->reserved)
					   : 0);
		sqlite3_bind_int64(st, 20,
				   status == LEDGER_INST_RUNNING
					   ? (sqlite3_int64)ledger_load(&in->usd_reserved)
					   : 0);
		int rc = sqlite3_step(st);
		if (rc != SQLITE_DONE)
			return rc;
	}
	(void)h;
	return SQLITE_DONE;
}

int history_sync(struct history *h, int64_t run_id, const struct ledger_header *lh,
		 const struct history_run_info *r, bool final, int exit_status, char *err,
		 size_t errlen)
{
	static const char upsert[] =
		"INSERT INTO agents (run_id, slot, started_ms, scope, command, input, output, "
		"cache_creation, cache_read, total, usd_pico, model, duration_ms, status, "
		"exit_code, metered, pid, cwd, reserved, usd_reserved) VALUES (?, ?, ?, ?, ?, ?, "
		"?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, slot) DO UPDATE "
		"SET command = "
		"excluded.command, "
		"input = excluded.input, output = excluded.output, "
		"cache_creation = excluded.cache_creation, cache_read = excluded.cache_read, "
		"total = excluded.total, usd_pico = excluded.usd_pico, model = excluded.model, "
		"duration_ms = excluded.duration_ms, status = excluded.status, "
		"exit_code = excluded.exit_code, metered = excluded.metered, "
		"reserved = excluded.reserved, usd_reserved = excluded.usd_reserved";
	sqlite3_stmt *st = NULL, *run = NULL;
	uint64_t now = history_now_ms();
	/* IMMEDIATE: the write lock is taken (or waited for) up front, so that a busy database
	 * is a clean SQLITE_BUSY here and never a deadlock half-way through. */
	int rc = sqlite3_exec(h->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_fail(h, rc, "cannot record usage", err, errlen);
	rc = sqlite3_prepare_v2(h->db, upsert, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sync_agents(h, st, run_id, lh, r, now);
	if (rc == SQLITE_DONE)
		rc = sqlite3_prepare_v2(h->db,
					final ? "UPDATE runs SET updated_ms = ?1, ended_ms = ?1, "
						"exit_status = ?2 WHERE id = ?3"
					      : "UPDATE runs SET updated_ms = ?1 WHERE id = ?3",
					-1, &run, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(run, 1, (sqlite3_int64)now);
		if (final)
			sqlite3_bind_int(run, 2, exit_status);
		sqlite3_bind_int64(run, 3, run_id);
		rc = sqlite3_step(run);
	}
	sqlite3_finalize(st);
	sqlite3_finalize(run);
	if (rc == SQLITE_DONE)
		rc = sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK && rc != SQLITE_DONE) {
		db_fail(h, rc, "cannot record usage", err, errlen);
		sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

/* ---- windows ---------------------------------------------------------------------------- */

int history_window_usage(struct history *h, const char *scope, uint64_t since_ms,
			 int64_t exclude_run, struct history_usage *u, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	memset(u, 0, sizeof(*u));
	int rc = sqlite3_prepare_v2(
		h->db,
		"SELECT command, sum(total + reserved), sum(usd_pico + usd_reserved) FROM agents "
		"WHERE "
		"scope = ? AND started_ms >= ? AND run_id != ? GROUP BY command "
		"ORDER BY command",
		-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, scope, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)since_ms);
		sqlite3_bind_int64(st, 3, exclude_run);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			const unsigned char *name = sqlite3_column_text(st, 0);
			sqlite3_int64 tot = sqlite3_column_int64(st, 1);
			sqlite3_int64 usd = sqlite3_column_int64(st, 2);
			uint64_t t = tot > 0 ? (uint64_t)tot : 0, p = usd > 0 ? (uint64_t)usd : 0;
			u->overall += t;
			u->overall_pusd += p;
			if (!name || u->n >= LEDGER_MAX_COMMANDS)
				continue;
			snprintf(u->names[u->n], LEDGER_NAME_LEN, "%s", (const char *)name);
			u->totals[u->n] = t;
			u->pusd[u->n] = p;
			u->n++;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(h, rc, "cannot read the window's usage", err, errlen);
	return 0;
}

uint64_t history_usd_usage_of(const struct history_usage *u, const char *name)
{
	for (size_t i = 0; i < u->n; i++)
		if (strcmp(u->names[i], name) == 0)
			return u->pusd[i];
	return 0;
}

uint64_t history_usage_of(const struct history_usage *u, const char *name)
{
	for (size_t i = 0; i < u->n; i++)
		if (strcmp(u->names[i], name) == 0)
			return u->totals[i];
	return 0;
}

/* ---- estimates -------------------------------------------------------------------------- */

int history_estimates(struct history *h, struct history_estimates *e, char *err, size_t errlen)
{
	sqlite3_stmt *keys = NULL, *st = NULL;
	memset(e, 0, sizeof(*e));
	/* Runs that ended (stopped ones too: what they used is what such a run can cost before
	 * its budget stops it), newest first; refused agents never ran. */
	int rc = sqlite3_prepare_v2(h->db,
				    "SELECT DISTINCT command FROM agents WHERE status IN "
				    "('exited', 'stopped') ORDER BY command",
				    -1, &keys, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(h->db,
					"SELECT total FROM agents WHERE command = ? AND status IN "
					"('exited', 'stopped') ORDER BY started_ms DESC, run_id "
					"DESC, slot DESC LIMIT ?",
					-1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(keys)) == SQLITE_ROW) {
		const unsigned char *name = sqlite3_column_text(keys, 0);
		if (!name || e->n >= HISTORY_MAX_ESTIMATES) {
			rc = SQLITE_OK;
			continue;
		}
		uint64_t v[HISTORY_ESTIMATE_RUNS];
		size_t n = 0;
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, (const char *)name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(st, 2, HISTORY_ESTIMATE_RUNS);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < HISTORY_ESTIMATE_RUNS) {
			sqlite3_int64 t = sqlite3_column_int64(st, 0);
			v[n++] = t > 0 ? (uint64_t)t : 0;
		}
		if (rc != SQLITE_DONE)
			break;
		rc = SQLITE_OK;
		snprintf(e->names[e->n], LEDGER_NAME_LEN, "%s", (const char *)name);
		e->value[e->n] = history_percentile(v, n, HISTORY_ESTIMATE_PCT);
		e->runs[e->n] = (unsigned)n;
		e->n++;
	}
	sqlite3_finalize(keys);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(h, rc, "cannot read estimates", err, errlen);
	return 0;
}

uint64_t history_estimate_for(const struct history_estimates *e, const char *name,
			      uint64_t fallback, unsigned *runs)
{
	if (runs)
		*runs = 0;
	if (!e || !name)
		return fallback;
	for (size_t i = 0; i < e->n; i++) {
		if (strcmp(e->names[i], name) != 0)
			continue;
		if (runs)
			*runs = e->runs[i];
		return e->runs[i] >= HISTORY_ESTIMATE_MIN_RUNS ? e->value[i] : fallback;
	}
	return fallback;
}
