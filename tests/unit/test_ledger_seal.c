/*
 * The security property of the ledger: once ledger_create() has sealed it, nobody but the
 * supervisor's own mapping (made before the seal) can change a byte of it. A reader holds the very
 * fd the supervisor holds (the same open file description, O_RDWR, arrives over SCM_RIGHTS), so
 * every way of writing through an fd or a mapping is tried here, in a forked child with the
 * inherited fd and in this process with the ledger's own fd and with a fresh one reopened through
 * /proc/self/fd. Each must fail with the errno this kernel gives (asserted exactly, with the rule
 * that gives it), and the supervisor's view must be byte for byte what it was. A MAP_PRIVATE
 * writable mapping is allowed, and must change nothing but the writer's private copy.
 *
 * The errnos are the ones Linux 6.18 returns (measured); the rules behind them are listed with
 * the expectations below. F_SEAL_FUTURE_WRITE needs Linux 5.1.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <cmocka.h>

#include "tbwrap/ledger.h"

/* A token amount (no USD). */
#define TOK(n) ((struct amount){{(n), 0}})

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#define ALL_SEALS (F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* What each attempt would write if it could: distinct from every byte of a real header. */
static const unsigned char pattern[8] = {0xa5, 0x5a, 0xa5, 0x5a, 0xa5, 0x5a, 0xa5, 0x5a};

enum attempt {
	W_MMAP_SHARED_RW,
	W_MMAP_SHARED_WO,
	W_MPROTECT_RW,
	W_MADV_REMOVE,
	W_WRITE,
	W_PWRITE,
	W_PWRITE_PAST_END,
	W_PWRITEV2,
	W_SPLICE,
	W_SENDFILE,
	W_COPY_FILE_RANGE,
	W_OPEN_TRUNC,
	W_FTRUNCATE_GROW,
	W_FTRUNCATE_SHRINK,
	W_FTRUNCATE_ZERO,
	W_PUNCH_HOLE,
	W_FALLOCATE_GROW,
	W_ADD_SEALS,
	W_ADD_NO_SEALS,
	W_PROC_MEM,
	W_PROCESS_VM_WRITEV,
	W_N
};

struct expectation {
	const char *what;
	int err;
};

/* The kernel's rules (mm/memfd.c, mm/shmem.c, mm/mmap.c, mm/gup.c, fs/proc/base.c):
 *   - seal_check_write(): a new shared mapping with PROT_WRITE of a file sealed with
 *     F_SEAL_FUTURE_WRITE is refused with EPERM; a read-only shared one is made without
 *     VM_MAYWRITE, so mprotect() cannot add PROT_WRITE later (EACCES, as for any permission a
 *     mapping may not have) and madvise(MADV_REMOVE), which needs a writable shared mapping,
 *     gets EACCES;
 *   - every write path into tmpfs (write, pwrite, pwritev2, and splice, sendfile and
 *     copy_file_range, which write through it) reaches shmem's write path, which refuses a
 *     write-sealed file with EPERM (shmem_write_begin);
 *   - shmem_setattr() refuses any size change with EPERM under F_SEAL_SHRINK / F_SEAL_GROW
 *     (ftruncate, and open with O_TRUNC, which truncates through it);
 *   - shmem_fallocate() refuses a hole punch in a write-sealed file and growth of a grow-sealed
 *     one with EPERM;
 *   - memfd_add_seals() refuses any change once F_SEAL_SEAL is set with EPERM, and there is no
 *     call that removes a seal;
 *   - /proc/PID/mem writes with FOLL_FORCE, which may override a missing PROT_WRITE only in a
 *     private (copy-on-write) mapping: for a shared one GUP fails, nothing is copied, and
 *     mem_rw() reports EIO;
 *   - process_vm_writev() has no FOLL_FORCE: the page is not writable, EFAULT. */
static const struct expectation expected[W_N] = {
	[W_MMAP_SHARED_RW] = {"mmap(PROT_READ|PROT_WRITE, MAP_SHARED)", EPERM},
	[W_MMAP_SHARED_WO] = {"mmap(PROT_WRITE, MAP_SHARED)", EPERM},
	[W_MPROTECT_RW] = {"mprotect(PROT_READ|PROT_WRITE) of a read-only shared mapping", EACCES},
	[W_MADV_REMOVE] = {"madvise(MADV_REMOVE) of a read-only shared mapping", EACCES},
	[W_WRITE] = {"write", EPERM},
	[W_PWRITE] = {"pwrite at 0", EPERM},
	[W_PWRITE_PAST_END] = {"pwrite at the end (growing)", EPERM},
	[W_PWRITEV2] = {"pwritev2", EPERM},
	[W_SPLICE] = {"splice from a pipe", EPERM},
	[W_SENDFILE] = {"sendfile from a memfd", EPERM},
	[W_COPY_FILE_RANGE] = {"copy_file_range from a memfd", EPERM},
	[W_OPEN_TRUNC] = {"open(/proc/self/fd/N, O_RDWR|O_TRUNC)", EPERM},
	[W_FTRUNCATE_GROW] = {"ftruncate growing", EPERM},
	[W_FTRUNCATE_SHRINK] = {"ftruncate shrinking", EPERM},
	[W_FTRUNCATE_ZERO] = {"ftruncate to 0", EPERM},
	[W_PUNCH_HOLE] = {"fallocate(FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE)", EPERM},
	[W_FALLOCATE_GROW] = {"fallocate growing", EPERM},
	[W_ADD_SEALS] = {"F_ADD_SEALS F_SEAL_WRITE", EPERM},
	[W_ADD_NO_SEALS] = {"F_ADD_SEALS 0", EPERM},
	[W_PROC_MEM] = {"pwrite to /proc/self/mem at a read-only shared mapping", EIO},
	[W_PROCESS_VM_WRITEV] = {"process_vm_writev to a read-only shared mapping", EFAULT},
};

struct outcome {
	long rc;
	int err;
};

/* What one run of every attempt saw; plain data, so that a child can send it whole. */
struct report {
	struct outcome o[W_N];
	int seals_after;
	bool private_written;  /* a MAP_PRIVATE writable mapping took the pattern */
	bool shared_unchanged; /* ... and a shared view of the same bytes did not */
	uint64_t sum_after;    /* checksum of a fresh read-only view, after everything */
	bool setup_failed;
};

/* FNV-1a: any change of any byte changes it (with overwhelming probability). */
static uint64_t checksum(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

static void record(struct outcome *o, long rc)
{
	o->rc = rc;
	o->err = rc < 0 ? errno : 0;
}

/* A mapping that should not have been possible: prove it by writing through it. */
static void scribble(void *map, size_t size)
{
	if (map != MAP_FAILED) {
		memcpy(map, pattern, sizeof(pattern));
		munmap(map, size);
	}
}

static long map_result(void *map)
{
	return map == MAP_FAILED ? -1 : 0;
}

static int memfd_with_bytes(void)
{
	int fd = memfd_create("source", MFD_CLOEXEC);
	if (fd >= 0 && pwrite(fd, pattern, sizeof(pattern), 0) != (ssize_t)sizeof(pattern)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Tries every way to write the ledger through fd, with no cmocka calls (it runs in children). */
static void try_all(int fd, size_t size, struct report *rep)
{
	struct outcome *o = rep->o;
	void *m;
	char path[64];

	memset(rep, 0, sizeof(*rep));
	for (int i = 0; i < W_N; i++)
		o[i].rc = 12345;

	errno = 0;
	m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	record(&o[W_MMAP_SHARED_RW], map_result(m));
	scribble(m, size);
	errno = 0;
	m = mmap(NULL, size, PROT_WRITE, MAP_SHARED, fd, 0);
	record(&o[W_MMAP_SHARED_WO], map_result(m));
	scribble(m, size);

	unsigned char *ro = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (ro == MAP_FAILED) {
		rep->setup_failed = true;
		return;
	}
	errno = 0;
	long rc = mprotect(ro, size, PROT_READ | PROT_WRITE);
	record(&o[W_MPROTECT_RW], rc);
	if (rc == 0) {
		memcpy(ro, pattern, sizeof(pattern));
		mprotect(ro, size, PROT_READ);
	}
	errno = 0;
	record(&o[W_MADV_REMOVE], madvise(ro, 4096, MADV_REMOVE));

	errno = 0;
	record(&o[W_WRITE], write(fd, pattern, sizeof(pattern)));
	errno = 0;
	record(&o[W_PWRITE], pwrite(fd, pattern, sizeof(pattern), 0));
	errno = 0;
	record(&o[W_PWRITE_PAST_END], pwrite(fd, pattern, sizeof(pattern), (off_t)size));
	struct iovec iov = {.iov_base = (void *)pattern, .iov_len = sizeof(pattern)};
	errno = 0;
	record(&o[W_PWRITEV2], pwritev2(fd, &iov, 1, 0, 0));

	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0 || write(p[1], pattern, sizeof(pattern)) < 0) {
		rep->setup_failed = true;
		return;
	}
	off64_t off = 0;
	errno = 0;
	record(&o[W_SPLICE], splice(p[0], NULL, fd, &off, sizeof(pattern), 0));
	close(p[0]);
	close(p[1]);

	int src = memfd_with_bytes();
	if (src < 0) {
		rep->setup_failed = true;
		return;
	}
	off_t soff = 0;
	errno = 0;
	record(&o[W_SENDFILE], sendfile(fd, src, &soff, sizeof(pattern)));
	off64_t in_off = 0, out_off = 0;
	errno = 0;
	record(&o[W_COPY_FILE_RANGE],
	       copy_file_range(src, &in_off, fd, &out_off, sizeof(pattern), 0));
	close(src);

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	errno = 0;
	int t = open(path, O_RDWR | O_TRUNC | O_CLOEXEC);
	record(&o[W_OPEN_TRUNC], t < 0 ? -1 : 0);
	if (t >= 0)
		close(t);

	errno = 0;
	record(&o[W_FTRUNCATE_GROW], ftruncate(fd, (off_t)size * 2));
	errno = 0;
	record(&o[W_FTRUNCATE_SHRINK], ftruncate(fd, 4096));
	errno = 0;
	record(&o[W_FTRUNCATE_ZERO], ftruncate(fd, 0));
	errno = 0;
	record(&o[W_PUNCH_HOLE],
	       fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)size));
	errno = 0;
	record(&o[W_FALLOCATE_GROW], fallocate(fd, 0, 0, (off_t)size * 2));
	errno = 0;
	record(&o[W_ADD_SEALS], fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
	errno = 0;
	record(&o[W_ADD_NO_SEALS], fcntl(fd, F_ADD_SEALS, 0));
	rep->seals_after = fcntl(fd, F_GET_SEALS);

	int mem = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	if (mem < 0) {
		rep->setup_failed = true;
		return;
	}
	errno = 0;
	record(&o[W_PROC_MEM], pwrite(mem, pattern, sizeof(pattern), (off_t)(uintptr_t)ro));
	close(mem);
	struct iovec local = {.iov_base = (void *)pattern, .iov_len = sizeof(pattern)};
	struct iovec remote = {.iov_base = ro, .iov_len = sizeof(pattern)};
	errno = 0;
	record(&o[W_PROCESS_VM_WRITEV], process_vm_writev(getpid(), &local, 1, &remote, 1, 0));

	/* Allowed: a private copy. Written, it must stay private. */
	unsigned char *priv = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (priv != MAP_FAILED) {
		unsigned char before[sizeof(pattern)];
		memcpy(before, ro, sizeof(before));
		memcpy(priv, pattern, sizeof(pattern));
		rep->private_written = memcmp(priv, pattern, sizeof(pattern)) == 0;
		rep->shared_unchanged = memcmp(ro, before, sizeof(before)) == 0 &&
					memcmp(ro, pattern, sizeof(pattern)) != 0;
		munmap(priv, size);
	}
	munmap(ro, size);

	/* A fresh view after everything, in case one of the attempts replaced the pages. */
	ro = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (ro == MAP_FAILED) {
		rep->setup_failed = true;
		return;
	}
	rep->sum_after = checksum(ro, size);
	munmap(ro, size);
}

static void check_report(const struct report *rep, uint64_t sum_before, const char *where)
{
	if (rep->setup_failed)
		fail_msg("%s: the attempts could not be set up", where);
	for (int i = 0; i < W_N; i++) {
		const struct outcome *o = &rep->o[i];
		if (o->rc != -1 || o->err != expected[i].err)
			fail_msg("%s: %s returned %ld with errno %d (%s); expected -1 with %d (%s)",
				 where, expected[i].what, o->rc, o->err, strerror(o->err),
				 expected[i].err, strerror(expected[i].err));
	}
	assert_int_equal(rep->seals_after, ALL_SEALS);
	assert_true(rep->private_written);
	assert_true(rep->shared_unchanged);
	assert_true(rep->sum_after == sum_before);
}

struct fixture {
	struct ledger l;
	unsigned char *snapshot;
	uint64_t sum;
};

/* A ledger with something in it: two agents, usage, a refusal, a note. */
static int setup(void **state)
{
	static const char *const names[] = {"/test", "/review"};
	static const uint64_t limits[] = {5000, LEDGER_NO_LIMIT};
	struct ledger_config cfg = {
		.overall_limit = 20000,
		.mode = LEDGER_MODE_BLOCK,
		.estimate = 1000,
		.weights = {1, 1, 1, 1},
		.n_commands = 2,
		.command_names = names,
		.command_limits = limits,
	};
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];
	int slot;

	if (!f)
		return -1;
	if (ledger_create(&f->l, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "ledger_create: %s\n", err);
		free(f);
		return -1;
	}
	ledger_admit(&f->l, 0, 100, TOK(1000), NULL, &slot);
	struct meter_usage d = {{1200, 34, 500, 3000}};
	ledger_record_delta(&f->l, slot, &d, 0);
	ledger_admit(&f->l, 0, 101, TOK(9000), NULL, &slot);
	ledger_mark(&f->l, slot, 0, "over budget");
	f->snapshot = malloc(f->l.size);
	if (!f->snapshot)
		return -1;
	memcpy(f->snapshot, f->l.h, f->l.size);
	f->sum = checksum(f->l.h, f->l.size);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ledger_close(&f->l);
	free(f->snapshot);
	free(f);
	return 0;
}

/* The supervisor's view: its own mapping, exactly as it was, and the same size and seals. */
static void assert_unchanged(const struct fixture *f)
{
	struct stat st;

	assert_int_equal(fstat(f->l.fd, &st), 0);
	assert_int_equal(st.st_size, f->l.size);
	assert_int_equal(fcntl(f->l.fd, F_GET_SEALS), ALL_SEALS);
	assert_true(checksum(f->l.h, f->l.size) == f->sum);
	assert_memory_equal(f->l.h, f->snapshot, f->l.size);
}

static void read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

static void test_forked_child_cannot_write(void **state)
{
	struct fixture *f = *state;
	struct report rep[2];
	int p[2], status;

	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct report out[2];
		char path[64];
		close(p[0]);
		/* A reader holds the fd only: the writable mapping a fork inherits is not what
		 * it has (the launcher's own child loses it at exec). */
		munmap(f->l.h, f->l.size);
		try_all(f->l.fd, f->l.size, &out[0]);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", f->l.fd);
		int fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			out[1].setup_failed = true;
		else
			try_all(fd, f->l.size, &out[1]);
		ssize_t n = write(p[1], out, sizeof(out));
		_exit(n == (ssize_t)sizeof(out) ? 0 : 1);
	}
	close(p[1]);
	read_all(p[0], rep, sizeof(rep));
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	check_report(&rep[0], f->sum, "child, inherited fd");
	check_report(&rep[1], f->sum, "child, fd reopened through /proc/self/fd");
	assert_unchanged(f);
}

static void test_same_process_reopened_fd_cannot_write(void **state)
{
	struct fixture *f = *state;
	struct report rep;
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", f->l.fd);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	/* A new open file description of the same memfd, opened for writing: still sealed. */
	assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
	try_all(fd, f->l.size, &rep);
	close(fd);
	check_report(&rep, f->sum, "this process, fd reopened through /proc/self/fd");
	assert_unchanged(f);
}

/* Not even the supervisor's own fd writes: only the mapping made before the seal does. */
static void test_own_fd_cannot_write(void **state)
{
	struct fixture *f = *state;
	struct report rep;

	assert_int_equal(fcntl(f->l.fd, F_GETFL) & O_ACCMODE, O_RDWR);
	try_all(f->l.fd, f->l.size, &rep);
	check_report(&rep, f->sum, "this process, the ledger's own fd");
	assert_unchanged(f);
}

/* A store through a reader's mapping faults. */
static void test_store_to_reader_mapping_faults(void **state)
{
	struct fixture *f = *state;
	struct ledger r;
	char err[256];
	int status;

	int fd = dup(f->l.fd);
	assert_true(fd >= 0);
	assert_int_equal(ledger_map_readonly(&r, fd, err, sizeof(err)), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* CMocka's handler would turn the fault into a test failure inside the child. */
		signal(SIGSEGV, SIG_DFL);
		__atomic_store_n(&r.h->overall.limit, UINT64_MAX, __ATOMIC_RELAXED);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSEGV);
	ledger_close(&r);
	assert_unchanged(f);
}

/* The control: the comparisons above can see a change. The supervisor's mapping still writes
 * after the seal, and what it writes is what every reader sees. */
static void test_supervisor_still_writes(void **state)
{
	struct fixture *f = *state;
	struct ledger r;
	char err[256];

	int fd = dup(f->l.fd);
	assert_true(fd >= 0);
	assert_int_equal(ledger_map_readonly(&r, fd, err, sizeof(err)), 0);
	uint64_t reader_before = checksum(r.h, r.size);
	assert_true(reader_before == f->sum);
	struct meter_usage d = {{1, 0, 0, 0}};
	ledger_record_delta(&f->l, 0, &d, 0);
	assert_true(checksum(f->l.h, f->l.size) != f->sum);
	assert_true(checksum(r.h, r.size) != reader_before);
	assert_int_equal(ledger_load(&r.h->instances[0].used.n[METER_INPUT]), 1201);
	/* And a private copy made now sees the change, but keeps its own writes to itself. */
	unsigned char *priv =
		mmap(NULL, f->l.size, PROT_READ | PROT_WRITE, MAP_PRIVATE, f->l.fd, 0);
	assert_true(priv != MAP_FAILED);
	assert_memory_equal(priv, f->l.h, f->l.size);
	memcpy(priv, pattern, sizeof(pattern));
	assert_true(f->l.h->magic == LEDGER_MAGIC);
	assert_true(r.h->magic == LEDGER_MAGIC);
	munmap(priv, f->l.size);
	ledger_close(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_forked_child_cannot_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_process_reopened_fd_cannot_write, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_own_fd_cannot_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_to_reader_mapping_faults, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_supervisor_still_writes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
