/*
 * exec_launcher: a launcher named like the agent (run it as `claude`) that execs the real one,
 * $EXEC_TARGET, with the same argv - as version managers and install shims do. Under tbwrap it
 * is one agent: its second image adopts the instance of the first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	(void)argc;
	const char *target = getenv("EXEC_TARGET");
	if (!target) {
		fprintf(stderr, "exec_launcher: set EXEC_TARGET\n");
		return 2;
	}
	execv(target, argv);
	perror("exec_launcher: execv");
	return 127;
}
