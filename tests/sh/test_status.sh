#!/usr/bin/env bash
# `tbwrap status [PID]`: the report of a running session (budgets, agents with their state and
# usage so far), chosen automatically when it is the only one or by the launcher's pid; exit 1 with
# a message when none runs, 2 when several run and no PID was given.
#
# tbwrap status finds sessions by their supervisors' abstract sockets, which every process of a
# network namespace shares; the test runs in a network namespace of its own when it can, so that
# it sees only its own sessions.
if [[ -z ${TBWRAP_STATUS_NS:-} ]] && command -v unshare >/dev/null && unshare --net true 2>/dev/null; then
	export TBWRAP_STATUS_NS=1
	exec unshare --net bash "$0"
fi
source "$(dirname "$0")/libtest.sh"
setup
require_files "$TBWRAP" "$LIBTBWRAP" "$FAKE_AGENT"

AGENTS=$(agent_dir)
private=${TBWRAP_STATUS_NS:-}
for i in $(seq 1 60); do
	printf '{"type":"assistant","message":{"id":"msg_%02d","type":"message","role":"assistant","model":"claude-opus-4-8","usage":{"input_tokens":1000,"cache_creation_input_tokens":200,"cache_read_input_tokens":3000,"output_tokens":50}}}\n' "$i"
done >"$T/slow.jsonl"

# ---- none running ----
if [[ -n $private ]]; then
	run "$TBWRAP" status
	assert_eq "$status:$output" "1:" "no session: status exits 1, nothing on stdout"
	assert_eq "$errout" "tbwrap: no running tbwrap found (as uid $(id -u))" \
		"no session: the message says so"
else
	skip "no session: status exits 1" "no private network namespace (unshare unavailable); other sessions may run"
	skip "no session: the message says so" "no private network namespace"
fi
run "$TBWRAP" status 4194304
assert_eq "$status:$output" "1:" "status of a pid that runs no tbwrap: exits 1"
assert_eq "$errout" "tbwrap: no tbwrap with pid 4194304 is running (as uid $(id -u))" \
	"  ... and names the pid"

# ---- one running ----
start_bg "$TBWRAP" --command-budget /test=500K --overall-token-budget 1M -- "$AGENTS/claude" -p "/test slow" \
	--mode raw --delay-ms 200 --output-format stream-json --stdout "$T/slow.jsonl" >"$T/a.out" 2>"$T/a.err"
tb=$BG_PID
# Status once the agent has streamed two calls (8.5K tokens).
wait_until 15 sh -c "[ \$(wc -l <'$T/a.out') -ge 2 ]"
agent=$(pgrep -P "$tb" | head -1)

# The usage grows while we look; the lines are checked with the numbers as patterns.
AGENT_LINE="  pid $agent  /test  running  [0-9.]+K tokens \(input [0-9]+, output [0-9]+, cache creation [0-9]+, cache read [0-9]+\)  \\\$[0-9.]+"
if [[ -n $private ]]; then
	run "$TBWRAP" status --disable-budget-visuals
	assert_eq "$status" 0 "one session: status (no PID) exits 0"
	assert_match "$output" "^BUDGET STATUS \(warn mode\)
Overall: [0-9]+% [0-9.]+K/1\.0M, \\\$[0-9.]+
Command Budgets:
  /test +[0-9]+% [0-9.]+K/500\.0K, \\\$[0-9.]+, 1 agent
Agents:
$AGENT_LINE\$" "one session: the report shows the budgets and the running agent"
	assert_eq "$errout" "" "one session: nothing on stderr"
else
	skip "one session: status (no PID) exits 0" "no private network namespace"
	skip "one session: the report" "no private network namespace"
	skip "one session: nothing on stderr" "no private network namespace"
fi
run "$TBWRAP" status --disable-budget-visuals "$tb"
assert_eq "$status" 0 "status PID exits 0"
assert_match "$output" "(^|"$'\n'")$AGENT_LINE("$'\n'"|\$)" "status PID shows the agent running"
assert_not_contains "$output" "░" "--disable-budget-visuals: no bars"
run "$TBWRAP" status "$tb"
assert_match "$output" "/test +\[[█░]{20}\] [0-9]+% " "without --disable-budget-visuals: bars"
# Usage while running is what has been metered so far: more than 0, and it grows.
u1=$(sed -n 's/.*running  \([0-9.]*\)K tokens.*/\1/p' <<<"$output")
wait_until 10 sh -c "[ \$(wc -l <'$T/a.out') -ge $(($(wc -l <"$T/a.out") + 2)) ]"
run "$TBWRAP" status --disable-budget-visuals "$tb"
u2=$(sed -n 's/.*running  \([0-9.]*\)K tokens.*/\1/p' <<<"$output")
if [[ -n $u1 && -n $u2 ]] && python3 -c "import sys; sys.exit(not (0 < $u1 < $u2))"; then
	ok "the usage shown grows while the agent runs ($u1K, then ${u2}K)"
else
	not_ok "the usage shown grows while the agent runs" "first '$u1', then '$u2'"
fi
# Looking changes nothing: the ledger is mapped read-only by status.
run "$TBWRAP" status "$tb"
assert_eq "$status" 0 "status can be asked again"

# ---- two running ----
start_bg "$TBWRAP" -- sleep 30 >/dev/null 2>&1
tb2=$BG_PID
wait_until 10 grep -q "@tbwrap-$(id -u)-$tb2-" /proc/net/unix
if [[ -n $private ]]; then
	run "$TBWRAP" status
	first=$((tb < tb2 ? tb : tb2)) second=$((tb < tb2 ? tb2 : tb))
	assert_eq "$status:$output" "2:" "two sessions, no PID: exits 2"
	assert_eq "$errout" "tbwrap: 2 tbwrap sessions are running (pids $first, $second); name one: tbwrap status PID" \
		"two sessions: the message lists both pids"
else
	skip "two sessions, no PID: exits 2" "no private network namespace"
	skip "two sessions: the message lists both pids" "no private network namespace"
fi
run "$TBWRAP" status --disable-budget-visuals "$tb2"
assert_eq "$status:$output" "0:BUDGET STATUS (warn mode)
Overall: 0 (no budget)
Agents: none" "status PID picks the other session (no agents there)"

# ---- a launcher that died: nothing of it is left to show ----
kill -KILL "$tb2"
wait "$tb2" 2>/dev/null
run "$TBWRAP" status --disable-budget-visuals "$tb2"
assert_eq "$status:$output" "1:" "status PID of a killed launcher: exits 1 (it left nothing behind)"
assert_eq "$errout" "tbwrap: no tbwrap with pid $tb2 is running (as uid $(id -u))" \
	"  ... and says no such session runs"

# ---- a socket that looks like a session but is another user's, or an impostor's ----
if [[ $(id -u) == 0 ]] && command -v setpriv >/dev/null && [[ -x /usr/bin/python3 ]]; then
	# As nobody, who cannot read $T: the program on the command line.
	setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 -c '
import socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind("\0tbwrap-0-4000000-0123456789abcdef")
s.listen(1)
time.sleep(30)' &
	fake=$!
	wait_until 10 grep -q "@tbwrap-0-4000000-0123456789abcdef" /proc/net/unix
	run "$TBWRAP" status 4000000
	assert_eq "$status" 1 "a session socket served by another user: not shown (exit 1)"
	assert_eq "$errout" "tbwrap: the session @tbwrap-0-4000000-0123456789abcdef is not served by uid 0: not shown" \
		"  ... and says why"
	kill "$fake" 2>/dev/null
	wait "$fake" 2>/dev/null
else
	skip "a session socket served by another user: not shown" "needs root and setpriv"
	skip "  ... and says why" "needs root and setpriv"
fi

# ---- the session ends ----
kill -TERM "$tb"
wait "$tb" 2>/dev/null
if [[ -n $private ]]; then
	run "$TBWRAP" status
	assert_eq "$status" 1 "after the session ended: status exits 1 again"
else
	skip "after the session ended: status exits 1 again" "no private network namespace"
fi
run "$TBWRAP" status "$tb"
assert_eq "$status" 1 "the ended session's pid: exits 1 (its ledger was removed)"

done_testing
