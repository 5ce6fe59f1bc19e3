/*
 * static_writer N [STATUS]: prints "line 1\n" ... "line N\n" and exits with STATUS (default 0).
 *
 * Linked statically (the Makefile builds every static_* helper with -static), so the preload
 * library never enters it, and it writes with raw write syscalls, so nothing in libc could hide
 * them either. It stands for the plain programs an agent runs (git, compilers, shells): under
 * tbwrap their output and exit status must come through unchanged, and a seccomp filter inherited
 * from an agent must not break them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long parse_arg(const char *what, const char *s, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > max) {
		fprintf(stderr, "static_writer: %s '%s' is not a number in [0, %ld]\n", what, s,
			max);
		exit(2);
	}
	return v;
}

/* Writes all of buf, continuing after partial writes (a pipe with a slow reader). */
static int write_all(const char *buf, size_t len)
{
	while (len > 0) {
		long n = syscall(SYS_write, 1, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: static_writer N [STATUS]\n");
		return 2;
	}
	long lines = parse_arg("N", argv[1], 100000000L);
	long status = argc == 3 ? parse_arg("STATUS", argv[2], 255) : 0;

	char buf[32];
	for (long k = 1; k <= lines; k++) {
		int len = snprintf(buf, sizeof buf, "line %ld\n", k);
		if (write_all(buf, (size_t)len) < 0) {
			fprintf(stderr, "static_writer: write: %s\n", strerror(errno));
			return 1;
		}
	}
	return (int)status;
}
