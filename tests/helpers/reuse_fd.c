/*
 * reuse_fd FIXTURE [raw|libc]: an agent (run it as `claude`) that writes to a scratch file, closes
 * that fd with a raw close syscall (as libuv does) or libc close(), then opens its transcript
 * under $CLAUDE_CONFIG_DIR/projects/reuse/ - on the same fd number - and writes FIXTURE there
 * with libc write(). The number's old classification must not outlive the file it described.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "project_dir.h"

int main(int argc, char **argv)
{
	const char *cfg = getenv("CLAUDE_CONFIG_DIR");
	if (argc < 2 || !cfg) {
		fprintf(stderr, "usage: CLAUDE_CONFIG_DIR=DIR reuse_fd FIXTURE [raw|libc]\n");
		return 2;
	}
	char dir[4096], path[4200], scratch[4200];
	if (!project_dir(cfg, "reuse", dir, sizeof(dir)))
		return 1;
	snprintf(scratch, sizeof(scratch), "%s/scratch.txt", dir);
	int fd = open(scratch, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "x\n", 2) != 2)
		return 1;
	if (argc > 2 && strcmp(argv[2], "raw") == 0)
		syscall(SYS_close, fd);
	else
		close(fd);
	snprintf(path, sizeof(path), "%s/session.jsonl", dir);
	int t = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (t != fd) {
		fprintf(stderr, "reuse_fd: the transcript got fd %d, not %d\n", t, fd);
		return 1;
	}
	FILE *in = fopen(argv[1], "r");
	if (!in)
		return 1;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, in)) > 0)
		if (write(t, line, (size_t)n) != n)
			return 1;
	free(line);
	fclose(in);
	return 0;
}
