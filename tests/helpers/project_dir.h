/*
 * For the small agents in tests/helpers: the project folder under the config dir where Claude
 * Code keeps transcripts, $CLAUDE_CONFIG_DIR/projects/NAME, created when missing.
 */
#ifndef TBWRAP_TEST_PROJECT_DIR_H
#define TBWRAP_TEST_PROJECT_DIR_H

#include <stdio.h>
#include <sys/stat.h>

/* Writes the folder's path to out; false when it does not fit. */
static inline bool project_dir(const char *cfg, const char *name, char *out, size_t len)
{
	mkdir(cfg, 0700);
	int n = snprintf(out, len, "%s/projects", cfg);
	if (n < 0 || (size_t)n >= len)
		return false;
	mkdir(out, 0700);
	n = snprintf(out, len, "%s/projects/%s", cfg, name);
	if (n < 0 || (size_t)n >= len)
		return false;
	mkdir(out, 0700);
	return true;
}

#endif
