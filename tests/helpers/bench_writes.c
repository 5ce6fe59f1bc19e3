/*
 * bench_writes N SIZE [libc|raw]: N writes of SIZE bytes to /dev/null, timed with
 * CLOCK_MONOTONIC; prints "writes=N ns_per_write=X".
 *
 * The benchmark runs it bare, under the dormant preload library, and as an agent: "libc" goes
 * through write(2) in libc (the in-process metered path when it is an agent), "raw" issues
 * syscall(SYS_write) directly like the Bun binary (the path a seccomp supervisor is notified of).
 * The ratios between those runs are the cost tbwrap adds per write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long parse_arg(const char *what, const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "bench_writes: %s '%s' is not a number in [%ld, %ld]\n", what, s,
			min, max);
		exit(2);
	}
	return v;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: bench_writes N SIZE [libc|raw]\n");
		return 2;
	}
	long n = parse_arg("N", argv[1], 1, 1000000000L);
	long size = parse_arg("SIZE", argv[2], 1, 1L << 24);
	int is_raw = 0;
	if (argc == 4) {
		if (strcmp(argv[3], "raw") == 0)
			is_raw = 1;
		else if (strcmp(argv[3], "libc") != 0) {
			fprintf(stderr, "bench_writes: '%s' is not libc or raw\n", argv[3]);
			return 2;
		}
	}

	char *buf = malloc((size_t)size);
	if (!buf) {
		fprintf(stderr, "bench_writes: out of memory\n");
		return 1;
	}
	/* Newline-terminated text, so a meter that inspects the bytes sees ordinary lines. */
	memset(buf, 'x', (size_t)size);
	buf[size - 1] = '\n';

	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "bench_writes: /dev/null: %s\n", strerror(errno));
		return 1;
	}

	int64_t start = now_ns();
	for (long i = 0; i < n; i++) {
		long w = is_raw ? syscall(SYS_write, fd, buf, (size_t)size)
				: (long)write(fd, buf, (size_t)size);
		if (w != size) {
			fprintf(stderr, "bench_writes: write %ld returned %ld: %s\n", i, w,
				w < 0 ? strerror(errno) : "short write");
			return 1;
		}
	}
	int64_t elapsed = now_ns() - start;

	close(fd);
	free(buf);
	printf("writes=%ld ns_per_write=%.1f\n", n, (double)elapsed / (double)n);
	return 0;
}
