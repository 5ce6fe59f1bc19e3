#!/usr/bin/env bash
# Two paths of the preload library that the other tests do not take:
#   - an agent with no prompt on argv (it reads it from stdin) starts under the catch-all key and
#     is moved, with its usage and reservation, to the command its transcript names;
#   - an agent that cannot install its seccomp filter (seccomp forbidden, or another session's
#     listener above it) is refused in block mode and runs loudly UNMETERED in warn mode (its
#     libc writes are still metered in-process).
source "$(dirname "$0")/libtest.sh"
setup
require_files "$TBWRAP" "$LIBTBWRAP" "$FAKE_AGENT" "$HELPERS/deny_seccomp"

AGENTS=$(agent_dir)
# fake_agent's own options in --opt=value form: no word is left that reads as a prompt.
NOPROMPT=(--output-format=stream-json --stdout="$FIX/stdout.text.txt" --transcript="$FIX/transcript.text.jsonl")

commands() {
	python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(" ".join(f'{c["name"]}:{c["agents"]}:{c["used"]["total"]}:{c["reserved"]}'
               for c in sorted(r["commands"], key=lambda c: c["name"])),
      "|", " ".join(f'{a["command"]}:{a["status"]}:{a["usage"]["total"]}' for a in r["agents"]))
PY
}

# ---- no prompt on argv: the transcript's enqueue line ("/test --real-services") binds it ----
for mode in raw libc; do
	run "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" --command-budget /test=50K \
		-- "$AGENTS/claude" --mode="$mode" "${NOPROMPT[@]}"
	assert_eq "$status" 0 "stdin prompt, $mode: the agent ran (exit 0)"
	assert_eq "$(commands "$T/r.json")" "(prompt):0:0:0 /test:1:17000:0 | /test:exited:17000" \
		"stdin prompt, $mode: bound to /test with all its usage; nothing left on the catch-all"
done

# Block mode: once bound, the /test budget applies to it.
run "$TBWRAP" --disable-budget-visuals --budget-enforcement-mode block --report-json "$T/r.json" \
	--command-budget /test=5000 -- "$AGENTS/claude" --mode=raw --delay-ms=100 "${NOPROMPT[@]}"
assert_eq "$status" 87 "stdin prompt, block: stopped for the /test budget it was bound to (87)"
assert_contains "$errout" "command budget /test exceeded" "stdin prompt, block: the stop names /test"

# Block mode: bound to a command whose budget has no room for its estimate, it is stopped as it
# would have been refused at launch with the prompt on argv.
run "$TBWRAP" --disable-budget-visuals --budget-enforcement-mode block --report-json "$T/r.json" \
	--command-budget /test=500 --estimate 1000 -- "$AGENTS/claude" --mode=raw --delay-ms=100 \
	"${NOPROMPT[@]}"
assert_eq "$status" 87 "stdin prompt, block, no room: stopped once bound to /test (87)"
assert_match "$errout" "tbwrap: stopping agent [0-9]+ \(/test\): command budget /test has no room for it, used [0-9.K]+ \+ reserved 1\.0K of 500 \(block mode\)" \
	"stdin prompt, block, no room: the stop says why"

# ---- no filter possible ----
for mode in raw libc; do
	run "$TBWRAP" --disable-budget-visuals --budget-enforcement-mode block \
		--report-json "$T/r.json" -- "$HELPERS/deny_seccomp" "$AGENTS/claude" -p /test \
		--mode "$mode" --output-format stream-json --stdout "$FIX/stdout.text.txt" --transcript "$FIX/transcript.text.jsonl"
	assert_eq "$status" 86 "no filter, block, $mode: refused (86)"
	assert_match "$errout" "tbwrap\[[0-9]+\]: refused: cannot install the seccomp filter that meters this agent \(block mode\): " \
		"no filter, block, $mode: the refusal says why"
	assert_eq "$output" "" "no filter, block, $mode: the agent never ran"
	assert_eq "$(json_get "$T/r.json" agents.0.status)" refused "no filter, block, $mode: report: refused"
done

# Warn mode: it runs, both sides say loudly that it is unmetered. The libc path still meters
# in-process (17,000); raw writes have nobody to see them (0).
for row in "libc 17000" "raw 0"; do
	read -r mode want <<<"$row"
	run "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- \
		"$HELPERS/deny_seccomp" "$AGENTS/claude" -p /test --mode "$mode" \
		--output-format stream-json --stdout "$FIX/stdout.text.txt" --transcript "$FIX/transcript.text.jsonl"
	assert_eq "$status" 0 "no filter, warn, $mode: the agent ran (exit 0)"
	assert_file_eq "$T/run.out" "$FIX/stdout.text.txt" "no filter, warn, $mode: its output is intact"
	assert_match "$errout" "tbwrap\[[0-9]+\]: WARNING: cannot install the seccomp filter; this agent runs UNMETERED \(warn mode\): " \
		"no filter, warn, $mode: the agent says it runs unmetered"
	assert_match "$errout" "tbwrap: WARNING: agent [0-9]+ runs UNMETERED: it could not install the seccomp filter" \
		"no filter, warn, $mode: tbwrap says it too"
	assert_eq "$(json_get "$T/r.json" agents.0.status):$(json_get "$T/r.json" overall.used.total)" \
		"unmetered:$want" "no filter, warn, $mode: report: unmetered, $want tokens"
done

# ---- a tbwrap run inside another tbwrap session's agent ----
# The outer agent's listener is above the inner session's agents: the inner supervisor would never
# see their writes. Block mode refuses such an agent, warn mode runs it loudly unmetered.
for row in "block 86" "warn 0"; do
	read -r mode want <<<"$row"
	inner="'$TBWRAP' --disable-budget-visuals --budget-enforcement-mode $mode -- '$AGENTS/claude' -p /inner --mode raw --output-format stream-json --stdout '$FIX/stdout.text.txt' >'$T/inner.out' 2>'$T/inner.err'; echo \$? >'$T/inner.rc'"
	rm -f "$T/inner.rc"
	run "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- "$AGENTS/claude" -p /outer \
		--mode raw --spawn "$inner" --output-format stream-json --stdout "$FIX/stdout.text.txt" --transcript "$FIX/transcript.text.jsonl"
	assert_eq "$status:$(cat "$T/inner.rc" 2>/dev/null)" "0:$want" \
		"tbwrap inside an agent, $mode: the outer agent runs; the inner tbwrap exits $want"
	assert_contains "$(cat "$T/inner.err")" "another seccomp listener (another tbwrap session's agent, or a sandbox) is above this process" \
		"tbwrap inside an agent, $mode: the inner agent says why it cannot be metered"
	assert_eq "$(json_get "$T/r.json" overall.used.total)" 17000 \
		"tbwrap inside an agent, $mode: the outer agent is metered exactly"
done

# ---- an agent below an agent with libtbwrap.so removed from LD_PRELOAD ----
# It cannot register, but its writes reach the supervisor through the outer agent's filter: warn
# mode says it is unmetered, block mode stops it.
for row in "warn WARNING: process [0-9]+ \([^)]*claude\) is an agent without libtbwrap.so \(LD_PRELOAD removed\?\): its usage is NOT metered" \
	"block stopping process [0-9]+ \([^)]*claude\): an agent without libtbwrap.so \(LD_PRELOAD removed\?\) cannot be metered \(block mode\)"; do
	mode=${row%% *}
	want=${row#* }
	inner="env -u LD_PRELOAD '$AGENTS/claude' -p /inner --mode raw --delay-ms 50 --output-format stream-json --stdout '$FIX/stdout.stream-json.jsonl' >/dev/null; echo \$? >'$T/inner.rc'"
	rm -f "$T/inner.rc"
	run "$TBWRAP" --disable-budget-visuals --budget-enforcement-mode "$mode" --report-json "$T/r.json" \
		-- "$AGENTS/claude" -p /outer --mode raw --spawn "$inner" --stdout "$FIX/stdout.text.txt" \
		--transcript "$FIX/transcript.text.jsonl"
	assert_match "$errout" "tbwrap: $want" "preload removed, $mode: tbwrap says so"
	want_rc=0
	[[ $mode == block ]] && want_rc=137
	assert_eq "$(cat "$T/inner.rc" 2>/dev/null)" "$want_rc" "preload removed, $mode: the inner agent's end ($want_rc)"
	assert_eq "$(json_get "$T/r.json" overall.used.total):$(json_get "$T/r.json" overall.agents)" "17000:1" \
		"preload removed, $mode: only the outer agent is in the ledger, metered exactly"
done

done_testing
