/*
 * option_arity: prints how tbwrap's argv reader treats each option named on its command line,
 * one "OPTION ARITY" line each, ARITY as agent_option_arity() returns it: 0 a flag, 1 an option
 * that takes a value (or an optional one), 2 a variadic one, -1 an option not in the tables
 * (read as a flag). tests/e2e/test_cli_options.sh compares it with each Claude Code's --help.
 *
 * Linked with the real common/agent.o (see the Makefile), so it reports the very table the
 * preload library and the supervisor use.
 * Exit status: 0; 2 without an option to look up.
 */
#include <stdio.h>

#include "tbwrap/agent.h"

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: option_arity OPTION...\n");
		return 2;
	}
	for (int i = 1; i < argc; i++)
		printf("%s %d\n", argv[i], agent_option_arity(argv[i]));
	return 0;
}
