#!/usr/bin/env bash
# The real Claude Code CLI against the local API stand-in, without tbwrap: proves the harness
# the other end-to-end tests stand on. In every output mode the CLI must finish, really run the
# Bash tool, and report exactly the usage the stand-in billed: its result `usage` and its
# transcript the main conversation's calls, its result `modelUsage` every call billed (side
# calls included); two parallel instances must each get their own sequence. What each version
# sends besides its agent loop is checked against the table below.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_setup
VERSION=$(claude_version)
assert_eq "$(claude --version | awk '{print $1}')" "$VERSION" "Claude Code CLI $VERSION at $E2E_CLAUDE_BIN/claude"

# What each version sends besides its agent loop, measured with -p and nonessential traffic off
# (tests/standin/README). SIDE is the number of side calls (streamed, tool-less, to a small
# model) per Bash tool use; HEAD the number of HEAD / requests per process. With nonessential
# traffic allowed and a prompt that is no slash command: TITLE session-title calls, NE_HEAD HEADs.
# 1.0.128's count is one per Bash run give or take one per process: the call after the last Bash
# run races the session's end (under load it is sometimes never sent), and a session may first
# ask for a title of another session in the same config dir (two started at once, one did).
case $VERSION in
2.1.197) HEAD=1 SIDE=0 TITLE=1 NE_HEAD=1 ;;
2.1.332) HEAD=0 SIDE=0 TITLE=0 NE_HEAD=1 ;;
1.0.128) HEAD=0 SIDE=1 TITLE=0 NE_HEAD=0 ;;
*) HEAD='' ;;
esac
# check_kinds NAME PROCESSES MAIN_CALLS BASH_RUNS [TITLES] [HEADS]: the requests the stand-in
# saw, against the table.
check_kinds() {
	local seen want
	seen=$(standin_kinds "$STANDIN_LOG")
	if [[ -z $HEAD ]]; then
		skip "$1: the requests besides the agent loop are those of Claude Code $VERSION" \
			"no record of what $VERSION sends (saw: $seen); add it to the table in test_standin.sh"
		return
	fi
	local side=$((SIDE * $4)) got_side
	got_side=$(awk '{print $6}' <<<"$seen")
	if ((SIDE > 0 && got_side >= side - $2 && got_side <= side + $2)); then
		side=$got_side
	fi
	want="head $((${6:-$HEAD} * $2)) main $3 side $side title ${5:-0} subagent 0 other 0"
	local per="$SIDE side call per Bash run"
	((SIDE == 0)) || per="$per, give or take one per process"
	assert_eq "$seen" "$want" "$1: requests as Claude Code $VERSION makes them ($per; $HEAD HEAD per process)"
}

# --- the stand-in itself -----------------------------------------------------------------------

bad=$E2E_TMP/bad.json
echo '{"turns": -1}' >"$bad"
err=$(python3 "$E2E_ROOT/tests/standin/api_standin.py" --scenario "$bad" \
	--port-file "$E2E_TMP/bad.port" --log "$E2E_TMP/bad.log" 2>&1)
rc=$?
assert_eq "$rc" "2" "stand-in: invalid scenario exits with status 2"
assert_contains "$err" "'turns' must be an integer >= 0" "stand-in: invalid scenario names the bad field"
assert_eq "$([[ -e $E2E_TMP/bad.port ]] && echo yes || echo no)" "no" "stand-in: invalid scenario writes no port file"
echo '{"agents": 2, "agent_usage": {"input": -5}}' >"$bad"
err=$(python3 "$E2E_ROOT/tests/standin/api_standin.py" --scenario "$bad" \
	--port-file "$E2E_TMP/bad.port" --log "$E2E_TMP/bad.log" 2>&1)
assert_eq "$?: ${err##*: }" "2: agent_usage.input must be an integer >= 0" "stand-in: a bad subagent field is refused and named"

standin_start three_turns
listen=$(ss -Hltn "sport = :$STANDIN_PORT" | awk '{print $4}' | sort -u | tr '\n' ' ')
assert_eq "$listen" "127.0.0.1:$STANDIN_PORT " "stand-in listens on 127.0.0.1 only"

# --- one run per output mode -------------------------------------------------------------------

# 3 tool turns + the final answer = 4 calls of 1000/50/200/3000.
expect="4000 200 800 12000"

# check_run NAME MODE ARGS...: runs `claude -p /test ARGS...` against a fresh stand-in, with a
# fresh config dir.
check_run() {
	local name=$1 mode=$2
	shift 2
	standin_start three_turns
	fresh_config
	rm -f "$E2E_PROJECT/test.marker"
	local out=$E2E_TMP/$name.out errf=$E2E_TMP/$name.err
	run_claude "$out" "$errf" -p "/test" --allowedTools Bash "$@"
	echo "# $name: claude exited $CLAUDE_RC after $CLAUDE_MS ms (4 API calls, 3 Bash runs)"
	assert_eq "$CLAUDE_RC" "0" "$name: claude exits 0" || true
	if ((CLAUDE_RC != 0)); then
		echo "# stderr: $(head -c 2000 "$errf")"
	fi
	assert_eq "$(tr '\n' ' ' <"$E2E_PROJECT/test.marker" 2>/dev/null | sed 's/ $//')" "tool-ran tool-ran tool-ran" \
		"$name: the Bash tool ran 3 times"

	local truth
	truth=$(cli_truth /test)
	assert_eq "$truth" "$expect" "$name: stand-in billed the 4 calls of the main conversation"
	assert_eq "$(main_calls /test)" "4" "$name: the main conversation made exactly 4 calls"
	check_kinds "$name" 1 4 3
	echo "# $name: side calls billed $(side_truth /test) (all calls: $(ground_truth /test))"

	local sid
	case $mode in
	text)
		assert_eq "$(sed 's/ *$//' "$out")" "Turn 3." "$name: stdout is the final answer"
		sid=$(standin_sessions /test)
		;;
	*)
		assert_eq "$(result_usage "$out")" "$truth" "$name: result usage equals the main conversation's calls"
		assert_model_usage "$name" "$out"
		assert_line_match "$(result_cost "$out")" '^0\.[0-9]*[1-9][0-9]*$' "$name: the CLI's own total_cost_usd is a positive figure"
		echo "# $name: the CLI's own cost: \$$(result_cost "$out")"
		sid=$(result_field "$out" session_id)
		assert_eq "$(standin_sessions /test)" "$sid" "$name: the stand-in saw the result's session id"
		;;
	esac
	if [[ $mode == partial ]]; then
		local deltas
		deltas=$(grep -c '"type":"stream_event".*"type":"message_delta".*"output_tokens":50' "$out")
		assert_eq "$deltas" "4" "$name: 4 message_delta stream events carry output_tokens 50"
	fi

	local transcript
	if transcript=$(transcript_file "$sid"); then
		ok "$name: transcript ${transcript#"$CLAUDE_CONFIG_DIR"/} exists"
		assert_eq "$(transcript_usage "$transcript")" "$truth" "$name: transcript usage by message id equals the ground truth"
	else
		not_ok "$name: transcript of session '$sid' exists under \$CLAUDE_CONFIG_DIR/projects" \
			"$(find "$CLAUDE_CONFIG_DIR" -name '*.jsonl')"
		not_ok "$name: transcript usage by message id equals the ground truth"
	fi
}

check_run text text
check_run json json --output-format json
check_run stream-json stream-json --output-format stream-json --verbose
check_run stream-json-partial partial --output-format stream-json --verbose --include-partial-messages

# --- two instances in parallel, different commands, one stand-in -------------------------------

standin_start three_turns
fresh_config
rm -f "$E2E_PROJECT"/*.marker
t0=$(date +%s%N)
(cd "$E2E_PROJECT" && exec timeout -k 5 300 claude -p "/test" --allowedTools Bash --output-format json) \
	>"$E2E_TMP/par-test.out" 2>"$E2E_TMP/par-test.err" </dev/null &
pid_test=$!
e2e_track "$pid_test"
(cd "$E2E_PROJECT" && exec timeout -k 5 300 claude -p "/slow" --allowedTools Bash --output-format stream-json --verbose) \
	>"$E2E_TMP/par-slow.out" 2>"$E2E_TMP/par-slow.err" </dev/null &
pid_slow=$!
e2e_track "$pid_slow"
wait "$pid_test"
rc_test=$?
wait "$pid_slow"
rc_slow=$?
echo "# parallel /test + /slow: both done after $((($(date +%s%N) - t0) / 1000000)) ms"
assert_eq "$rc_test $rc_slow" "0 0" "parallel: both instances exit 0"

# /slow: 2 tool turns + final answer = 3 calls of 700/30/0/1500.
assert_eq "$(cli_truth /test)" "$expect" "parallel: /test's main conversation is its own 4 calls"
assert_eq "$(cli_truth /slow)" "2100 90 0 4500" "parallel: /slow's main conversation is its own 3 calls"
assert_eq "$(result_usage "$E2E_TMP/par-test.out")" "$(cli_truth /test)" "parallel: /test result usage equals its main calls"
assert_eq "$(result_usage "$E2E_TMP/par-slow.out")" "$(cli_truth /slow)" "parallel: /slow result usage equals its main calls"
assert_model_usage "parallel: /test" "$E2E_TMP/par-test.out"
assert_model_usage "parallel: /slow" "$E2E_TMP/par-slow.out"
check_kinds parallel 2 7 5
assert_eq "$(tr '\n' ' ' <"$E2E_PROJECT/test.marker" | sed 's/ $//')" "tool-ran tool-ran tool-ran" "parallel: /test ran its 3 commands"
assert_eq "$(tr '\n' ' ' <"$E2E_PROJECT/slow.marker" | sed 's/ $//')" "slow-1 slow-2" "parallel: /slow ran its 2 commands in order"
overlap=$(python3 - "$STANDIN_LOG" <<'EOF'
import json, sys
spans = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("billed"):
        lo, hi = spans.get(r["command"], (r["ts"], r["ts"]))
        spans[r["command"]] = (min(lo, r["ts"]), max(hi, r["ts"]))
a, b = spans.get("/test"), spans.get("/slow")
print("yes" if a and b and a[0] <= b[1] and b[0] <= a[1] else "no")
EOF
)
echo "# parallel: the two sessions' requests overlapped in time: $overlap"

# --- nonessential traffic: a session-title call, billed, in modelUsage only ---------------------

# With nonessential traffic allowed and a plain prompt, 2.1.197 first asks for a session title
# (a streamed, tool-less call, alongside the first agent call). A real API bills it, and the CLI
# counts it in its result's modelUsage and total_cost_usd, not in `usage` or the transcript.
standin_start three_turns
fresh_config
rm -f "$E2E_PROJECT/test.marker"
CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC='' run_claude "$E2E_TMP/title.out" "$E2E_TMP/title.err" \
	-p "please run the tests" --allowedTools Bash --output-format json
assert_eq "$CLAUDE_RC" "0" "title: claude exits 0"
check_kinds title 1 4 3 "$TITLE" "$NE_HEAD"
assert_eq "$(cli_truth)" "$expect" "title: the main conversation is the 4 agent calls"
assert_eq "$(result_usage "$E2E_TMP/title.out")" "$(cli_truth)" "title: result usage equals the main conversation's calls"
assert_model_usage "title (the title call included)" "$E2E_TMP/title.out"

# --- how long a one-turn session takes ---------------------------------------------------------

standin_start one_turn
fresh_config
run_claude "$E2E_TMP/one.out" "$E2E_TMP/one.err" -p "/test" --output-format json
echo "# one-turn session (1 API call, json): $CLAUDE_MS ms"
assert_eq "$CLAUDE_RC" "0" "one-turn session exits 0"
assert_eq "$(result_usage "$E2E_TMP/one.out")" "1000 50 200 3000" "one-turn session: result usage is the single call"
