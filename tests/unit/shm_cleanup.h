/*
 * For the ledger's unit tests: a CMocka teardown that unlinks every segment this test process
 * created, since a failed assertion leaves a test before its ledger_close().
 */
#ifndef TBWRAP_TEST_SHM_CLEANUP_H
#define TBWRAP_TEST_SHM_CLEANUP_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static inline int unlink_own_segments(void **state)
{
	char prefix[64], name[300];
	DIR *d = opendir("/dev/shm");
	struct dirent *e;

	(void)state;
	if (!d)
		return 0;
	snprintf(prefix, sizeof(prefix), "tbwrap-%ld-", (long)getpid());
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
			snprintf(name, sizeof(name), "/%s", e->d_name);
			shm_unlink(name);
		}
	}
	closedir(d);
	return 0;
}

#endif
