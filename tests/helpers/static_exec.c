/*
 * static_exec [-u NAME]... [-a ARGV0] CMD [ARGS...]: execs CMD (searched in PATH) with the
 * variables NAME removed from the environment, as argv[0] ARGV0 when given.
 *
 * Linked statically (the Makefile builds every static_* helper with -static): libtbwrap.so never
 * enters it, so its exec cannot be seen by the preload's exec hooks. It stands for the launchers
 * that drop LD_PRELOAD where tbwrap cannot put it back (a Go program, a static binary); the
 * agents they start must still be found by what they run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *argv0 = NULL;
	int i = 1;
	for (; i < argc; i++) {
		if (strcmp(argv[i], "-u") == 0 && i + 1 < argc) {
			unsetenv(argv[++i]);
		} else if (strcmp(argv[i], "-a") == 0 && i + 1 < argc) {
			argv0 = argv[++i];
		} else {
			break;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "usage: static_exec [-u NAME]... [-a ARGV0] CMD [ARGS...]\n");
		return 2;
	}
	const char *cmd = argv[i];
	if (argv0)
		argv[i] = (char *)argv0;
	execvp(cmd, argv + i);
	fprintf(stderr, "static_exec: cannot run %s: %s\n", cmd, strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
