#!/usr/bin/env bash
# A real Claude Agent SDK program (tests/e2e/sdk/agent.mjs, Node, the SDK that
# scripts/ensure-claude --sdk installs) under tbwrap. The SDK spawns its bundled CLI with a UNIX
# socketpair as stdin/stdout/stderr (not a pipe), the prompt on stdin and stream-json output, and
# through libuv's fork + libc execvp. tbwrap must meter it exactly (the report equals the
# stand-in's billing), read its stdout as stdout (cost and result subtype from the result line),
# in block mode must not hold its stdout writes as if they were API requests (the session runs
# to its end: every request reaches the stand-in, the agent exits 0), and must still meter it
# when the program builds the CLI's environment without LD_PRELOAD (tbwrap's exec hooks put the
# library back).
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_setup
tbwrap_require
if [[ $(claude_version) != "$CLAUDE_LATEST" ]]; then
	# The SDK runs its own bundled CLI whatever the suite's version: one run is enough.
	skip "the Agent SDK $AGENT_SDK under tbwrap" \
		"the SDK runs its bundled CLI (that of $CLAUDE_LATEST), not $(claude_version); tested with e2e-$CLAUDE_LATEST"
	exit 0
fi
if ! command -v node >/dev/null 2>&1; then
	not_ok "node is installed (the Agent SDK is a Node package)"
	exit 1
fi
if ! sdk=$("$E2E_ROOT/scripts/ensure-claude" --sdk 2>"$E2E_TMP/ensure-sdk.err"); then
	not_ok "Agent SDK $AGENT_SDK installed (scripts/ensure-claude --sdk)" "$(grep -v '^ensure-claude: installing' "$E2E_TMP/ensure-sdk.err")"
	exit 1
fi
case $(uname -m) in
x86_64) platform=linux-x64 ;;
aarch64) platform=linux-arm64 ;;
esac
bundled=$sdk/node_modules/@anthropic-ai/claude-agent-sdk-${platform:-none}/claude
assert_eq "$(timeout 60 "$bundled" --version 2>/dev/null | awk '{print $1; exit}')" "$CLAUDE_LATEST" \
	"the SDK $AGENT_SDK bundles Claude Code $CLAUDE_LATEST (tests/e2e/versions)"
if cmp -s "$bundled" "$(readlink -f "$E2E_CLAUDE_BIN/claude")"; then
	ok "its binary is byte-identical to the claude-code $CLAUDE_LATEST install's"
else
	not_ok "its binary is byte-identical to the claude-code $CLAUDE_LATEST install's" \
		"$bundled differs from $(readlink -f "$E2E_CLAUDE_BIN/claude"): pick the SDK release that bundles $CLAUDE_LATEST"
fi

# The program imports the SDK by its package name, as a user's project does.
APP=$E2E_TMP/app
mkdir -p "$APP"
cp "$E2E_ROOT/tests/e2e/sdk/agent.mjs" "$APP/"
ln -s "$sdk/node_modules" "$APP/node_modules"

# sdk.json: 4 calls of 1000/50/200/3000; the first Bash turn notes the CLI's LD_PRELOAD, its
# stdout and its executable (the Bash tool's parent is the CLI).
# run_sdk NAME ENV_MODE [TBWRAP_OPTION...]: runs the program (under tbwrap unless NAME is
# "plain"); sets RC and MS, keeps stdout, stderr and the probe files in $E2E_TMP/NAME.
run_sdk() {
	local name=$1 env_mode=$2 dir=$E2E_TMP/$1
	shift 2
	mkdir -p "$dir"
	standin_start sdk
	fresh_config
	rm -f "$E2E_PROJECT"/test.marker "$E2E_PROJECT"/cli.*
	local t0 t1 cmd=(node "$APP/agent.mjs" "$E2E_PROJECT" "$env_mode")
	[[ $name == plain ]] || cmd=("$TBWRAP" --report-json "$dir/report.json" "$@" -- "${cmd[@]}")
	t0=$(date +%s%N)
	(cd "$E2E_PROJECT" && exec timeout -k 5 300 "${cmd[@]}") >"$dir/out" 2>"$dir/err" </dev/null
	RC=$?
	t1=$(date +%s%N)
	MS=$(((t1 - t0) / 1000000))
	cp "$E2E_PROJECT"/cli.* "$dir/" 2>/dev/null
	cp "$STANDIN_LOG" "$dir/requests.jsonl"
	echo "# $name: exit $RC after $MS ms"
}

# check_wrapped NAME WHAT: the assertions every run under tbwrap must meet.
check_wrapped() {
	local name=$1 what=$2 dir=$E2E_TMP/$1
	local report=$dir/report.json log=$dir/requests.jsonl
	assert_eq "$RC" "0" "$name: the program exits 0 under tbwrap ($what)"
	if [[ ! -s $report ]]; then
		not_ok "$name: tbwrap wrote the report" "$(head -c 2000 "$dir/err")"
		return
	fi
	assert_eq "$(standin_kinds "$log")" "$PLAIN_KINDS" "$name: the stand-in saw the same requests as without tbwrap ($PLAIN_KINDS)"
	assert_eq "$(cli_truth /test "$log")" "4000 200 800 12000" "$name: 4 calls billed"
	assert_eq "$(report_usage "$report" /test)" "$(ground_truth /test "$log")" "$name: report /test usage equals the billing"
	assert_eq "$(report_usage "$report")" "$(ground_truth "" "$log")" "$name: report overall usage equals the billing"
	assert_eq "$(report_get "$report" '[len(r["agents"]), r["agents"][0]["command"], r["agents"][0]["status"], r["agents"][0]["exit_code"]]')" \
		"1 /test exited 0" \
		"$name: one agent (the SDK's CLI, prompt on stdin, key from its transcript), exited 0"
	# Read from the socketpair stdout: the result line's cost and subtype.
	assert_eq "$(report_get "$report" '[r["agents"][0]["cost_usd"], r["agents"][0]["result_subtype"]]')" \
		"$(result_cost "$dir/out") success" \
		"$name: the agent's cost_usd and result_subtype are its result line's (\$$(result_cost "$dir/out"), success)"
	assert_eq "$(result_field "$dir/out" subtype)" "success" "$name: the program got a successful result"
	assert_line_match "$(cat "$dir/cli.stdout" 2>/dev/null)" '^socket:\[[0-9]+\]$' "$name: the CLI's stdout was a socket"
	assert_eq "$(cat "$dir/cli.exe" 2>/dev/null)" "$bundled" "$name: the CLI was the SDK's bundled binary"
}

run_sdk plain inherit
PLAIN_KINDS=$(standin_kinds "$E2E_TMP/plain/requests.jsonl")
assert_eq "$RC $(result_field "$E2E_TMP/plain/out" subtype)" "0 success" "without tbwrap: the program runs the session to a successful result"
assert_eq "$PLAIN_KINDS" "head 0 main 4 side 0 title 0 subagent 0 other 0" "without tbwrap: 4 calls reach the stand-in"
assert_eq "$(cat "$E2E_TMP/plain/cli.preload" 2>/dev/null)" "" "without tbwrap: the CLI has no LD_PRELOAD"
plain_ms=$MS

run_sdk warn inherit
check_wrapped warn "warn mode"
warn_ms=$MS
assert_contains "$(cat "$E2E_TMP/warn/cli.preload" 2>/dev/null)" "libtbwrap.so" "warn: the CLI runs with tbwrap's library (inherited)"

# Block mode holds an agent's new API request until its previous call's usage is in. Stdout is a
# socket here too; were its writes held the same way, the usage they carry could never arrive
# and the session would stall: same requests, exit 0 and the right report prove they are not.
run_sdk block inherit --budget-enforcement-mode block --overall-token-budget 1M --command-budget /test=500K
check_wrapped block "block mode, budgets far above the session"
block_ms=$MS
echo "# timing (not asserted): without tbwrap $plain_ms ms, warn $warn_ms ms, block $block_ms ms; block/warn = $(python3 -c "import sys; print('%.2f' % (int(sys.argv[1]) / max(1, int(sys.argv[2]))))" "$block_ms" "$warn_ms")"

# The program gives the CLI an environment without LD_PRELOAD (options.env).
run_sdk no-preload no-preload
check_wrapped no-preload "options.env without LD_PRELOAD"
assert_contains "$(cat "$E2E_TMP/no-preload/cli.preload" 2>/dev/null)" "libtbwrap.so" \
	"no-preload: the CLI still runs with tbwrap's library (the exec hooks put it back)"
