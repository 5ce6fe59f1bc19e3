/*
 * What a connection talks to (common/wire.c): the server name of the real ClientHellos each
 * pinned Claude Code version sends (tests/fixtures/wire/, captured with ANTHROPIC_BASE_URL
 * https://localhost:PORT), plain HTTP requests as the CLI writes them to a stand-in, proxies'
 * CONNECT, and every truncation of those bytes: a cut never reads past its end and never
 * yields a wrong host.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tbwrap/wire.h"

#define FIXTURE_DIR "tests/fixtures/wire/"

struct blob {
	unsigned char *p;
	size_t n;
};

static struct blob fixture(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), FIXTURE_DIR "%s", name);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("fixture %s not found (run from the repository root)", path);
	struct blob b = {malloc(WIRE_HEAD_MAX * 2), 0};
	assert_non_null(b.p);
	b.n = fread(b.p, 1, WIRE_HEAD_MAX * 2, f);
	fclose(f);
	return b;
}

/* Classifies a copy of exactly n bytes in a buffer of its own (ASan sees any read past it). */
static void classify_n(const unsigned char *p, size_t n, struct wire_head *h)
{
	unsigned char *copy = malloc(n ? n : 1);
	assert_non_null(copy);
	memcpy(copy, p, n);
	wire_classify(copy, n, h);
	free(copy);
}

static void check_hello(const char *name, size_t want_len)
{
	struct blob b = fixture(name);
	assert_int_equal(b.n, want_len);
	struct wire_head h;
	classify_n(b.p, b.n, &h);
	assert_int_equal(h.kind, WIRE_TLS_HELLO);
	assert_string_equal(h.host, "localhost");
	/* Every cut: still a ClientHello, and the host is the right one or unknown. */
	for (size_t n = 6; n < b.n; n++) {
		classify_n(b.p, n, &h);
		assert_int_equal(h.kind, WIRE_TLS_HELLO);
		if (h.host[0])
			assert_string_equal(h.host, "localhost");
	}
	free(b.p);
}

static void test_hello_2_1_332(void **state)
{
	(void)state;
	check_hello("clienthello-2.1.332.bin", 1500);
}

static void test_hello_2_1_197(void **state)
{
	(void)state;
	check_hello("clienthello-2.1.197.bin", 517);
}

static void test_hello_1_0_128(void **state)
{
	(void)state;
	check_hello("clienthello-1.0.128.bin", 382);
}

/* The server name is found wherever it is among the extensions (1.0.128's starts at byte 200,
 * the name "localhost" ending at 218) only when its whole entry is there. */
static void test_hello_cut_in_name(void **state)
{
	(void)state;
	struct blob b = fixture("clienthello-1.0.128.bin");
	struct wire_head h;
	classify_n(b.p, 217, &h);
	assert_string_equal(h.host, "");
	classify_n(b.p, 218, &h);
	assert_string_equal(h.host, "localhost");
	free(b.p);
}

static void test_tls_records(void **state)
{
	(void)state;
	static const unsigned char data[] = {0x17, 0x03, 0x03, 0x00, 0x20, 0xaa};
	static const unsigned char ccs[] = {0x14, 0x03, 0x03, 0x00, 0x01, 0x01};
	static const unsigned char alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00};
	static const unsigned char finished[] = {0x16, 0x03, 0x03, 0x00, 0x04, 0x14, 0, 0, 0};
	struct wire_head h;
	classify_n(data, sizeof(data), &h);
	assert_int_equal(h.kind, WIRE_TLS_DATA);
	classify_n(data, 1, &h);
	assert_int_equal(h.kind, WIRE_TLS_DATA);
	classify_n(ccs, sizeof(ccs), &h);
	assert_int_equal(h.kind, WIRE_TLS_OTHER);
	classify_n(alert, sizeof(alert), &h);
	assert_int_equal(h.kind, WIRE_TLS_OTHER);
	classify_n(finished, sizeof(finished), &h);
	assert_int_equal(h.kind, WIRE_TLS_OTHER);
	assert_string_equal(h.host, "");
}

/* A ClientHello whose lengths point past the record: no host, no read past it. */
static void test_hello_lying_lengths(void **state)
{
	(void)state;
	struct blob b = fixture("clienthello-2.1.197.bin");
	struct wire_head h;
	for (size_t i = 43; i < 120; i++) {
		unsigned char saved = b.p[i];
		b.p[i] = 0xff;
		classify_n(b.p, b.n, &h);
		assert_int_equal(h.kind, WIRE_TLS_HELLO);
		if (h.host[0])
			assert_string_equal(h.host, "localhost");
		b.p[i] = saved;
	}
	free(b.p);
}

static void test_http_post(void **state)
{
	(void)state;
	static const char req[] = "POST /v1/messages?beta=true HTTP/1.1\r\n"
				  "accept: application/json\r\n"
				  "HOST: 127.0.0.1:41234\r\n"
				  "content-length: 2\r\n\r\n{}";
	struct wire_head h;
	classify_n((const unsigned char *)req, strlen(req), &h);
	assert_int_equal(h.kind, WIRE_HTTP);
	assert_true(h.is_post);
	assert_false(h.is_connect);
	assert_string_equal(h.host, "127.0.0.1");
	/* Cut inside the Host line: a request, host unknown (never a part of it). */
	size_t cut = (size_t)(strstr(req, "41234") - req);
	classify_n((const unsigned char *)req, cut, &h);
	assert_int_equal(h.kind, WIRE_HTTP);
	assert_true(h.is_post);
	assert_string_equal(h.host, "");
	/* Only the first bytes of the method. */
	classify_n((const unsigned char *)req, 2, &h);
	assert_int_equal(h.kind, WIRE_HTTP);
	assert_true(h.is_post);
}

static void test_http_other_methods(void **state)
{
	(void)state;
	static const char head[] = "HEAD / HTTP/1.1\r\nHost: api.anthropic.com\r\n\r\n";
	static const char ipv6[] = "GET /x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n";
	static const char no_host[] = "POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
	struct wire_head h;
	classify_n((const unsigned char *)head, strlen(head), &h);
	assert_int_equal(h.kind, WIRE_HTTP);
	assert_false(h.is_post);
	assert_string_equal(h.host, "api.anthropic.com");
	classify_n((const unsigned char *)ipv6, strlen(ipv6), &h);
	assert_string_equal(h.host, "::1");
	classify_n((const unsigned char *)no_host, strlen(no_host), &h);
	assert_true(h.is_post);
	assert_string_equal(h.host, "");
}

static void test_connect(void **state)
{
	(void)state;
	static const char req[] = "CONNECT api.anthropic.com:443 HTTP/1.1\r\n"
				  "Host: api.anthropic.com:443\r\n\r\n";
	struct wire_head h;
	classify_n((const unsigned char *)req, strlen(req), &h);
	assert_int_equal(h.kind, WIRE_HTTP);
	assert_true(h.is_connect);
	assert_false(h.is_post);
	assert_string_equal(h.host, "api.anthropic.com");
}

static void test_unknown(void **state)
{
	(void)state;
	static const char body[] = "{\"model\":\"claude\"}";
	static const char junk[] = "POSTAL service";
	struct wire_head h;
	classify_n((const unsigned char *)body, strlen(body), &h);
	assert_int_equal(h.kind, WIRE_UNKNOWN);
	classify_n((const unsigned char *)junk, strlen(junk), &h);
	assert_int_equal(h.kind, WIRE_UNKNOWN);
	classify_n((const unsigned char *)"", 0, &h);
	assert_int_equal(h.kind, WIRE_UNKNOWN);
}

/* A host name with control bytes or spaces inside is no host. */
static void test_bad_host(void **state)
{
	(void)state;
	static const char req[] = "POST / HTTP/1.1\r\nHost: a\x01"
				  "b\r\n\r\n";
	struct wire_head h;
	classify_n((const unsigned char *)req, strlen(req), &h);
	assert_int_equal(h.kind, WIRE_HTTP);
	assert_string_equal(h.host, "");
}

static void test_url_host(void **state)
{
	(void)state;
	char host[WIRE_HOST_MAX];
	assert_true(wire_url_host("http://127.0.0.1:8080/v1", host, sizeof(host)));
	assert_string_equal(host, "127.0.0.1");
	assert_true(wire_url_host("https://API.Example.COM", host, sizeof(host)));
	assert_string_equal(host, "api.example.com");
	assert_true(wire_url_host("https://user:pw@proxy.local:3128/", host, sizeof(host)));
	assert_string_equal(host, "proxy.local");
	assert_true(wire_url_host("https://[::1]:443", host, sizeof(host)));
	assert_string_equal(host, "::1");
	assert_true(wire_url_host("gateway.internal/anthropic", host, sizeof(host)));
	assert_string_equal(host, "gateway.internal");
	assert_false(wire_url_host("https://", host, sizeof(host)));
	assert_false(wire_url_host("", host, sizeof(host)));
	char small[4];
	assert_false(wire_url_host("https://localhost", small, sizeof(small)));
}

static void test_host_is(void **state)
{
	(void)state;
	assert_true(wire_host_is("api.anthropic.com", "API.anthropic.com."));
	assert_false(wire_host_is("api.anthropic.com", "statsig.anthropic.com"));
	assert_false(wire_host_is("anthropic.com", "api.anthropic.com"));
	assert_false(wire_host_is("", ""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_2_1_332), cmocka_unit_test(test_hello_2_1_197),
		cmocka_unit_test(test_hello_1_0_128), cmocka_unit_test(test_hello_cut_in_name),
		cmocka_unit_test(test_tls_records),   cmocka_unit_test(test_hello_lying_lengths),
		cmocka_unit_test(test_http_post),     cmocka_unit_test(test_http_other_methods),
		cmocka_unit_test(test_connect),	      cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_bad_host),      cmocka_unit_test(test_url_host),
		cmocka_unit_test(test_host_is),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
