/*
 * What an agent's connection talks to (include/tbwrap/wire.h). Every length read from the bytes
 * is checked against what is there: the input is whatever an agent process writes.
 */
#include "tbwrap/wire.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

/* Copies a host name of n bytes, lower case, without its port or IPv6 brackets. */
static void set_host(struct wire_head *out, const char *s, size_t n)
{
	out->host[0] = '\0';
	while (n && (s[0] == ' ' || s[0] == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n && s[0] == '[') {
		const char *end = memchr(s, ']', n);
		if (!end)
			return;
		n = (size_t)(end - s) - 1;
		s++;
	} else {
		const char *colon = memchr(s, ':', n);
		if (colon)
			n = (size_t)(colon - s);
	}
	if (n && s[n - 1] == '.')
		n--;
	if (n == 0 || n >= sizeof(out->host))
		return;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		/* Control bytes or spaces inside: not a host name. */
		if (c <= ' ' || c == 0x7f) {
			out->host[0] = '\0';
			return;
		}
		out->host[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	out->host[n] = '\0';
}

static size_t be(const unsigned char *p, int bytes)
{
	size_t v = 0;
	for (int i = 0; i < bytes; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * The server name of a ClientHello (RFC 8446 4.1.2, RFC 6066 3): record header (5), handshake
 * header (4), version (2), random (32), then session id, cipher suites and compression methods
 * with their lengths, then the extensions; server_name is extension 0, a list whose host_name
 * entries have type 0. Only the first record is read: a ClientHello split across records
 * (over 16 KB) leaves the host unknown.
 */
static void client_hello(const unsigned char *b, size_t n, struct wire_head *out)
{
	size_t rec_end = 5 + be(b + 3, 2);
	if (rec_end < n)
		n = rec_end;
	size_t p = 5 + 4 + 2 + 32;
	if (p + 1 > n)
		return;
	p += 1 + b[p]; /* session id */
	if (p + 2 > n)
		return;
	p += 2 + be(b + p, 2); /* cipher suites */
	if (p + 1 > n)
		return;
	p += 1 + b[p]; /* compression methods */
	if (p + 2 > n)
		return;
	size_t ext_end = p + 2 + be(b + p, 2);
	p += 2;
	if (ext_end < n)
		n = ext_end;
	while (p + 4 <= n) {
		size_t type = be(b + p, 2), len = be(b + p + 2, 2);
		p += 4;
		if (p + len > n)
			return;
		if (type == 0) {
			size_t q = p + 2, end = p + len;
			while (q + 3 <= end) {
				size_t name_len = be(b + q + 1, 2);
				if (q + 3 + name_len > end)
					return;
				if (b[q] == 0) {
					set_host(out, (const char *)b + q + 3, name_len);
					return;
				}
				q += 3 + name_len;
			}
			return;
		}
		p += len;
	}
}

static const char *const methods[] = {"GET",	 "HEAD",  "POST",    "PUT",  "DELETE",
				      "OPTIONS", "PATCH", "CONNECT", "TRACE"};

/* "METHOD target HTTP/1.x\r\n" then headers: the method, and the host (CONNECT's target, else
 * the Host header). */
static bool http_request(const unsigned char *b, size_t n, struct wire_head *out)
{
	const char *s = (const char *)b;
	size_t m = 0;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		size_t len = strlen(methods[i]);
		if (n > len && memcmp(s, methods[i], len) == 0 && s[len] == ' ') {
			m = len;
			break;
		}
		/* A write of only part of the method: still the start of a request. */
		if (n <= len && memcmp(s, methods[i], n) == 0) {
			out->kind = WIRE_HTTP;
			out->is_post = i == 2;
			out->is_connect = i == 7;
			return true;
		}
	}
	if (!m)
		return false;
	out->kind = WIRE_HTTP;
	out->is_post = m == 4 && memcmp(s, "POST", 4) == 0;
	out->is_connect = m == 7;
	const char *line_end = memchr(s, '\n', n);
	if (out->is_connect) {
		const char *t = s + m + 1, *limit = line_end ? line_end : s + n;
		const char *sp = memchr(t, ' ', (size_t)(limit - t));
		if (sp)
			set_host(out, t, (size_t)(sp - t));
		return true;
	}
	/* Header lines until the empty line: "Host:" in any case, value up to CR/LF. */
	const char *p = line_end ? line_end + 1 : s + n, *end = s + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break; /* a truncated line: its value may be cut */
		size_t len = (size_t)(nl - p);
		if (len && p[len - 1] == '\r')
			len--;
		if (len == 0)
			break;
		if (len > 5 && strncasecmp(p, "host:", 5) == 0) {
			set_host(out, p + 5, len - 5);
			break;
		}
		p = nl + 1;
	}
	return true;
}

void wire_classify(const unsigned char *buf, size_t n, struct wire_head *out)
{
	memset(out, 0, sizeof(*out));
	if (n >= 1 && n < 5 && buf[0] >= 0x14 && buf[0] <= 0x17 && (n < 2 || buf[1] == 0x03)) {
		out->kind = buf[0] == 0x17 ? WIRE_TLS_DATA : WIRE_TLS_OTHER;
		return;
	}
	if (n >= 5 && buf[0] >= 0x14 && buf[0] <= 0x17 && buf[1] == 0x03) {
		if (buf[0] == 0x17) {
			out->kind = WIRE_TLS_DATA;
		} else if (buf[0] == 0x16 && n >= 6 && buf[5] == 0x01) {
			out->kind = WIRE_TLS_HELLO;
			client_hello(buf, n, out);
		} else {
			out->kind = WIRE_TLS_OTHER;
		}
		return;
	}
	if (n && http_request(buf, n, out))
		return;
	out->kind = WIRE_UNKNOWN;
}

bool wire_url_host(const char *url, char *host, size_t len)
{
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	size_t n = strcspn(p, "/?#");
	/* userinfo@host */
	const char *at = memchr(p, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	struct wire_head h;
	set_host(&h, p, n);
	if (!h.host[0] || strlen(h.host) >= len)
		return false;
	memcpy(host, h.host, strlen(h.host) + 1);
	return true;
}

bool wire_host_is(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	if (na && a[na - 1] == '.')
		na--;
	if (nb && b[nb - 1] == '.')
		nb--;
	return na == nb && na > 0 && strncasecmp(a, b, na) == 0;
}
