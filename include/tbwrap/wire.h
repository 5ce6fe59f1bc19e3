/*
 * What an agent's connection talks to, from the first bytes of a write on it.
 *
 * An API call is a request to the API host; a connection to any other host (error reports,
 * telemetry, a git server reached by a tool) bills nothing and must neither take a prediction
 * nor count towards the safety net. The host is in the clear once per connection: the TLS
 * ClientHello's server name (SNI), a plain HTTP request's Host header, or a proxy's CONNECT
 * target. Pure: the caller reads the bytes (tests/unit/test_wire.c feeds real ClientHellos of
 * each pinned Claude Code version, tests/fixtures/wire/).
 */
#ifndef TBWRAP_WIRE_H
#define TBWRAP_WIRE_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes worth reading from a write to see its host: a ClientHello with a post-quantum key share
 * is about 1.5 KB (Claude Code 2.1.332: 1500 bytes), HTTP request headers rarely more. */
#define WIRE_HEAD_MAX 4096
#define WIRE_HOST_MAX 256

enum wire_kind {
	WIRE_UNKNOWN,	/* none of the below (binary data, or too short to tell) */
	WIRE_TLS_HELLO, /* a TLS ClientHello: a new connection's handshake */
	WIRE_TLS_OTHER, /* another TLS handshake, alert or change-cipher record */
	WIRE_TLS_DATA,	/* TLS application data: a request, encrypted */
	WIRE_HTTP,	/* a plain HTTP/1.x request line */
};

struct wire_head {
	enum wire_kind kind;
	bool is_post;		  /* WIRE_HTTP: the method is POST */
	bool is_connect;	  /* WIRE_HTTP: a proxy's CONNECT (host is its target) */
	char host[WIRE_HOST_MAX]; /* SNI, Host header or CONNECT target, without port; "" unknown */
};

/* Classifies the first n bytes of a write. Never reads past n; a truncated ClientHello or header
 * block gives the kind with host "". */
void wire_classify(const unsigned char *buf, size_t n, struct wire_head *out);

/* The host of a URL such as ANTHROPIC_BASE_URL ("http://127.0.0.1:8080/x" -> "127.0.0.1",
 * "https://[::1]:443" -> "::1"), lower case. False when it has none or it does not fit. */
bool wire_url_host(const char *url, char *host, size_t len);

/* Whether two host names are the same (ASCII case-insensitive; a trailing dot ignored). */
bool wire_host_is(const char *a, const char *b);

#endif
