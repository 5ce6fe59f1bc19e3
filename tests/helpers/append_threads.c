/*
 * append_threads N: an agent (run it as `claude`) whose two threads append N usage lines each,
 * with distinct message ids (1 input token apiece), to one transcript opened O_APPEND under
 * $CLAUDE_CONFIG_DIR/projects/threads/ - with raw write syscalls, released together by a barrier
 * each round, so their notifications overlap. Every line must be metered: 2 * N input tokens.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "project_dir.h"

static int transcript;
static int rounds;
static pthread_barrier_t barrier;

static void *writer(void *arg)
{
	long k = (long)arg;
	char line[512];
	for (int i = 0; i < rounds; i++) {
		int n = snprintf(line, sizeof(line),
				 "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_%ld_%d\","
				 "\"model\":\"claude-opus-4-8\","
				 "\"usage\":{\"input_tokens\":1}}}\n",
				 k, i);
		pthread_barrier_wait(&barrier);
		if (syscall(SYS_write, transcript, line, (size_t)n) != n)
			abort();
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *cfg = getenv("CLAUDE_CONFIG_DIR");
	if (argc < 2 || !cfg || (rounds = atoi(argv[1])) <= 0) {
		fprintf(stderr, "usage: CLAUDE_CONFIG_DIR=DIR append_threads N\n");
		return 2;
	}
	char dir[4096], path[4200];
	if (!project_dir(cfg, "threads", dir, sizeof(dir)))
		return 1;
	snprintf(path, sizeof(path), "%s/session.jsonl", dir);
	transcript = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (transcript < 0)
		return 1;
	pthread_barrier_init(&barrier, NULL, 2);
	pthread_t a, b;
	pthread_create(&a, NULL, writer, (void *)1L);
	pthread_create(&b, NULL, writer, (void *)2L);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	return 0;
}
