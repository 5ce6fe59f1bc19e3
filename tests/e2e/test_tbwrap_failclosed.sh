#!/usr/bin/env bash
# Fail closed and loud with the real Claude Code CLI: when the supervisor dies (tbwrap killed with
# SIGKILL) in the middle of a session, the agent does not hang and does not go on unmetered: it
# says why and exits 88, and the stand-in receives no request from it afterwards.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_setup
tbwrap_require

# block.json: 6 calls, slow streaming (60 ms per event), so the session is still running when
# tbwrap is killed after its first call.
standin_start block
out=$E2E_TMP/fc.out
err=$E2E_TMP/fc.err
(cd "$E2E_PROJECT" && exec "$TBWRAP" -- bash -c \
	'claude -p /test --allowedTools Bash --output-format stream-json --verbose; echo "claude-rc=$?" >&2') \
	>"$out" 2>"$err" </dev/null &
tb=$!
e2e_track "$tb"
# Readiness wait, not a speed check: until the first call has been billed.
for ((i = 0; i < 300; i++)); do
	[[ $(billed_calls /test) -ge 1 ]] && break
	sleep 0.05
done
assert_eq "$(($(billed_calls /test) >= 1))" "1" "the session was under way when tbwrap was killed"
kill -KILL "$tb"
wait "$tb" 2>/dev/null
# The agent must end by itself; the bound only turns a hang into a failure.
for ((i = 0; i < 200; i++)); do
	grep -q '^claude-rc=' "$err" && break
	sleep 0.05
done
assert_contains "$(cat "$err")" "claude-rc=88" "the agent exited 88 (supervisor lost), it did not hang"
assert_contains "$(cat "$err")" "supervisor is gone; stopping this agent" "the agent said why"
calls=$(billed_calls /test)
sleep 1
assert_eq "$(billed_calls /test)" "$calls" "no request from the agent after it stopped"
# A tbwrap killed with SIGKILL leaves nothing behind: its ledger was a memfd, its socket abstract.
assert_eq "$(find /dev/shm -maxdepth 1 -name "tbwrap-*" | wc -l | tr -d ' '):$(grep -c "@tbwrap-$(id -u)-$tb-" /proc/net/unix)" "0:0" \
	"the killed tbwrap left no ledger in /dev/shm and no socket"
