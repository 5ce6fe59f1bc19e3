#!/usr/bin/env bash
# Which writes of an agent are API calls: only requests to the API host (ANTHROPIC_BASE_URL's,
# else api.anthropic.com), told by the Host header of plain HTTP and by the server name of a TLS
# ClientHello (the real ones of Claude Code, tests/fixtures/wire/). wire_client, run as
# "claude", writes requests and no usage at all, so the safety net is the witness: after 2
# answered calls without usage block mode stops it (87), warn mode says it is NOT metered; a
# connection to another host (error reports, telemetry) makes no call, and nothing happens.
source "$(dirname "$0")/libtest.sh"
setup
WIRE=$HELPERS/wire_client
require_files "$TBWRAP" "$LIBTBWRAP" "$WIRE"

mkdir -p "$T/bin"
ln -sf "$WIRE" "$T/bin/claude"
HELLO=$ROOT/tests/fixtures/wire/clienthello-2.1.332.bin # its server name is "localhost"

# case LABEL BASE_URL WANT_RC WANT_REQUESTS MODE CLIENT_ARGS...: runs one wire_client session.
wire_case() {
	local label=$1 url=$2 want_rc=$3 want_req=$4 mode=$5
	shift 5
	rm -f "$T/r.json"
	ANTHROPIC_BASE_URL=$url run "$TBWRAP" --budget-enforcement-mode "$mode" --disable-budget-visuals \
		--overall-token-budget 100000 --report-json "$T/r.json" -- "$T/bin/claude" -p /test "$@"
	assert_eq "$status $(json_get "$T/r.json" agents.0.requests 2>&1)" "$want_rc $want_req" \
		"$label: tbwrap exits $want_rc, $want_req API requests counted"
}

# ---- plain HTTP: the Host header ----
wire_case "POST to the API host (block)" "http://127.0.0.1:9" 87 2 block --host 127.0.0.1:9
assert_match "$errout" "stopping agent [0-9]+ \(/test\): no usage metered after 2 API calls" \
	"POST to the API host (block): the safety net stopped it after 2 calls"
wire_case "POST to the API host in another case, no port (block)" "http://API.Stand-In.test" 87 2 block \
	--host api.stand-in.TEST
wire_case "POST to another host (block)" "http://127.0.0.1:9" 0 0 block --host telemetry.example.com
assert_not_contains "$errout" "stopping" "POST to another host (block): nothing stopped"
wire_case "POST to another host (warn)" "http://127.0.0.1:9" 0 0 warn --host statsig.anthropic.com
assert_not_contains "$errout" "NOT metered" "POST to another host (warn): no warning"
wire_case "POST to the API host (warn)" "http://127.0.0.1:9" 0 3 warn --host 127.0.0.1
assert_match "$errout" "WARNING: agent [0-9]+ \(/test\) is NOT metered: no usage metered after 2 API calls" \
	"POST to the API host (warn): NOT metered, said"
# No ANTHROPIC_BASE_URL: the Anthropic API's host.
wire_case "POST to api.anthropic.com, no base URL (block)" "" 87 2 block --host api.anthropic.com
wire_case "POST to another host, no base URL (block)" "" 0 0 block --host 127.0.0.1

# ---- TLS: the ClientHello's server name ----
wire_case "TLS to the API host (block)" "https://localhost:9" 87 2 block --tls "$HELLO"
wire_case "TLS to another host (block)" "https://api.anthropic.com" 0 0 block --tls "$HELLO"
wire_case "TLS to another host (warn)" "" 0 0 warn --tls "$HELLO"

# ---- the cloud providers: every host may be the API's ----
CLAUDE_CODE_USE_BEDROCK=1 wire_case "Bedrock: any host is taken for the API (block)" "" 87 2 block \
	--host telemetry.example.com

done_testing
