/*
 * wire_client: an agent's API connection without an API. Run through a symlink named "claude"
 * (so that tbwrap takes it for an agent), it opens one TCP connection to a listener of its own
 * and writes N requests on it, GAP_MS apart, then exits without writing any usage:
 *   --host H      plain HTTP: "POST /v1/messages HTTP/1.1" with "Host: H"
 *   --tls FILE    TLS: FILE (a captured ClientHello) first, then one application-data record
 *                 per request
 *   --posts N     requests (default 3)
 *   --gap-ms G    silence between them (default 120: more than tbwrap's burst gap)
 * Claude's own arguments (-p, a prompt, ...) are ignored. Exit status 0; 2 for a bad command
 * line; 1 when a socket call fails.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void fail(const char *what)
{
	fprintf(stderr, "wire_client: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			fail("write");
		c += w;
		n -= (size_t)w;
	}
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	const char *host = NULL, *tls = NULL;
	long posts = 3, gap = 120;
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(argv[i], "--host") == 0 && v)
			host = v, i++;
		else if (strcmp(argv[i], "--tls") == 0 && v)
			tls = v, i++;
		else if (strcmp(argv[i], "--posts") == 0 && v)
			posts = strtol(v, NULL, 10), i++;
		else if (strcmp(argv[i], "--gap-ms") == 0 && v)
			gap = strtol(v, NULL, 10), i++;
	}
	if ((!host) == (!tls) || posts < 0 || posts > 100 || gap < 0 || gap > 10000) {
		fputs("usage: wire_client (--host H | --tls FILE) [--posts N] [--gap-ms G]\n",
		      stderr);
		return 2;
	}
	unsigned char hello[16384];
	size_t hello_len = 0;
	if (tls) {
		FILE *f = fopen(tls, "rb");
		if (!f)
			fail(tls);
		hello_len = fread(hello, 1, sizeof(hello), f);
		fclose(f);
	}

	int lsn = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(addr);
	if (lsn < 0 || bind(lsn, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    listen(lsn, 1) != 0 || getsockname(lsn, (struct sockaddr *)&addr, &alen) != 0)
		fail("listen");
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&addr, sizeof(addr)) != 0)
		fail("connect");
	int peer = accept(lsn, NULL, NULL);
	if (peer < 0)
		fail("accept");

	if (tls)
		write_all(c, hello, hello_len);
	char req[512];
	for (long i = 0; i < posts; i++) {
		sleep_ms(gap);
		if (tls) {
			/* An encrypted request: application data, 64 bytes of it. */
			unsigned char rec[5 + 64] = {0x17, 0x03, 0x03, 0x00, 64};
			memset(rec + 5, 0xa5, 64);
			write_all(c, rec, sizeof(rec));
		} else {
			int n = snprintf(
				req, sizeof(req),
				"POST /v1/messages HTTP/1.1\r\nHost: %s\r\n"
				"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
				host);
			write_all(c, req, (size_t)n);
		}
	}
	sleep_ms(gap);
	close(c);
	close(peer);
	close(lsn);
	return 0;
}
