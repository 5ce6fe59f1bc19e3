#!/usr/bin/env bash
# Agents whose life does not follow the command's: started in the background by a command that
# exits at once, in a PID namespace of their own, signals sent to tbwrap after its command is
# gone, and an agent that execs itself into the real CLI.
source "$(dirname "$0")/libtest.sh"
setup
require_files "$TBWRAP" "$LIBTBWRAP" "$FAKE_AGENT"

AGENTS=$(agent_dir)
RUN=(--mode raw --output-format stream-json --stdout "$FIX/stdout.stream-json.jsonl")

agents_line() {
	python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(" ".join(f'{a["status"]}:{a["exit_code"]}:{a["usage"]["total"]}' for a in r["agents"]))
PY
}

# ---- 'claude ... &' from a command that exits at once ----
# The agent is an orphan before it even registers: tbwrap (its subreaper) waits for it.
run "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- \
	sh -c "'$AGENTS/claude' -p /bg --delay-ms 20 ${RUN[*]} >/dev/null &"
assert_eq "$status" 0 "background agent: tbwrap exits with the command's status"
assert_eq "$(agents_line "$T/r.json")" "exited:0:17000" \
	"background agent: registered after its command exited, metered whole, its exit code known"

# ---- an agent in a PID namespace of its own ----
if has_cmd unshare && unshare -pf true 2>/dev/null; then
	run timeout 30 "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- \
		unshare -pf "$AGENTS/claude" -p /ns "${RUN[@]}" \
		--transcript "$FIX/transcript.stream-json.jsonl"
	assert_eq "$status" 0 "PID namespace: tbwrap ends with the agent (no hang)"
	assert_eq "$(agents_line "$T/r.json")" "exited:0:17000" \
		"PID namespace: the agent is followed by the pid tbwrap sees, metered exactly"
else
	skip "PID namespace" "unshare -p is not available here"
	skip "PID namespace: metered" "unshare -p is not available here"
fi

# ---- SIGTERM to tbwrap after its command exited ----
# The command (sh) is gone; the agent it left runs slowly. The signal goes to the agent.
"$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- \
	sh -c "'$AGENTS/claude' -p /slow --delay-ms 500 ${RUN[*]} >/dev/null &" >/dev/null 2>&1 &
tb=$!
sleep 1
kill -TERM "$tb"
# The bound only turns a hang into a failure.
for ((i = 0; i < 100; i++)); do
	kill -0 "$tb" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$tb" 2>/dev/null; then
	kill -KILL "$tb"
	not_ok "SIGTERM after the command exited: tbwrap ends" "still running after 10 s"
else
	ok "SIGTERM after the command exited: tbwrap ends"
fi
wait "$tb" 2>/dev/null
assert_match "$(agents_line "$T/r.json")" "^exited:143:[0-9]+$" \
	"SIGTERM after the command exited: the agent got it (exit 143)"

# ---- a launcher named like the agent that execs the real CLI ----
# One process, two images: admitted once (block mode would refuse a second admission of an
# estimate that fits only once), metered once.
LA=$T/launcher
mkdir -p "$LA/real"
ln -sf "$HELPERS/exec_launcher" "$LA/claude"
ln -sf "$FAKE_AGENT" "$LA/real/claude"
EXEC_TARGET=$LA/real/claude run "$TBWRAP" --disable-budget-visuals --budget-enforcement-mode block \
	--estimate 5000 --command-budget /test=9000 --report-json "$T/r.json" -- "$LA/claude" -p /test \
	"${RUN[@]}" --transcript "$FIX/transcript.stream-json.jsonl"
assert_eq "$status" 87 "exec launcher: admitted once, then stopped for the budget like one agent (87)"
assert_eq "$(agents_line "$T/r.json")" "stopped:130:$(json_get "$T/r.json" overall.used.total)" \
	"exec launcher: one agent in the report"
EXEC_TARGET=$LA/real/claude run "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- \
	"$LA/claude" -p /test "${RUN[@]}" --transcript "$FIX/transcript.stream-json.jsonl"
assert_eq "$status:$(agents_line "$T/r.json"):$(json_get "$T/r.json" overall.reserved)" \
	"0:exited:0:17000:0" "exec launcher: one agent, metered once, nothing left reserved"

done_testing
