#!/usr/bin/env bash
# Two paths of the preload library that the other tests do not take:
#   - an agent with no prompt on argv (it reads it from stdin) starts under the catch-all key and
#     is moved, with its usage and reservation, to the command its transcript names;
#   - an agent that cannot install its seccomp filter (seccomp forbidden, or another session's
#     listener above it) is refused in block mode and runs loudly UNMETERED in warn mode, with
#     "metered": false in the report;
#   - an agent started with libtbwrap.so removed from LD_PRELOAD gets it back (the exec hooks),
#     or, started by a program the hooks do not see, is metered from outside below an agent and
#     refused (block) or reported unmetered (warn) outside every agent.
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
	assert_line_match "$errout" "^tbwrap\[[0-9]+\]: refused: this agent cannot be metered: cannot install the seccomp filter that meters it: seccomp filters are not permitted here \(a container or sandbox forbids them\) \(block mode\)$" \
		"no filter, block, $mode: the refusal says why"
	assert_eq "$output" "" "no filter, block, $mode: the agent never ran"
	assert_eq "$(json_get "$T/r.json" agents.0.status):$(json_get "$T/r.json" agents.0.exit_code)" \
		refused:86 "no filter, block, $mode: report: refused, 86"
done

# Warn mode: it runs, both sides say loudly that it is unmetered, and the report says so.
for mode in libc raw; do
	run "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- \
		"$HELPERS/deny_seccomp" "$AGENTS/claude" -p /test --mode "$mode" \
		--output-format stream-json --stdout "$FIX/stdout.text.txt" --transcript "$FIX/transcript.text.jsonl"
	assert_eq "$status" 0 "no filter, warn, $mode: the agent ran (exit 0)"
	assert_file_eq "$T/run.out" "$FIX/stdout.text.txt" "no filter, warn, $mode: its output is intact"
	assert_line_match "$errout" "^tbwrap\[[0-9]+\]: WARNING: this agent runs UNMETERED: cannot install the seccomp filter that meters it: seccomp filters are not permitted here" \
		"no filter, warn, $mode: the agent says it runs unmetered"
	assert_line_match "$errout" "^tbwrap: agent [0-9]+: WARNING: this agent runs UNMETERED: cannot install the seccomp filter" \
		"no filter, warn, $mode: tbwrap says it too"
	assert_line_match "$errout" "^  pid [0-9]+  /test  exited 0  NOT METERED \(cannot install the seccomp filter that meters it: seccomp filters are not permitted here" \
		"no filter, warn, $mode: the final report says NOT METERED, and why"
	assert_eq "$(json_get "$T/r.json" agents.0.status):$(json_get "$T/r.json" agents.0.metered)" \
		"exited:false" "no filter, warn, $mode: report: exited, \"metered\": false"
done

# ---- a tbwrap run inside another tbwrap session's agent ----
# The outer agent's listener is above the inner session's agents: the inner supervisor never
# sees their writes, so it refuses (block) or runs them unmetered (warn). The outer session
# sees them: it adopts the inner agent and meters it from outside.
for row in "block 86 17000" "warn 0 34000"; do
	read -r mode want total <<<"$row"
	inner="'$TBWRAP' --disable-budget-visuals --budget-enforcement-mode $mode -- '$AGENTS/claude' -p /inner --mode raw --output-format stream-json --stdout '$FIX/stdout.stream-json.jsonl' >'$T/inner.out' 2>'$T/inner.err'; echo \$? >'$T/inner.rc'"
	rm -f "$T/inner.rc"
	run "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- "$AGENTS/claude" -p /outer \
		--mode raw --spawn "$inner" --output-format stream-json --stdout "$FIX/stdout.text.txt" --transcript "$FIX/transcript.text.jsonl"
	assert_eq "$status:$(cat "$T/inner.rc" 2>/dev/null)" "0:$want" \
		"tbwrap inside an agent, $mode: the outer agent runs; the inner tbwrap exits $want"
	assert_contains "$(cat "$T/inner.err")" "another seccomp listener (another tbwrap session's agent, or a sandbox) is above this process" \
		"tbwrap inside an agent, $mode: the inner agent says why it cannot be metered there"
	assert_eq "$(json_get "$T/r.json" overall.used.total)" "$total" \
		"tbwrap inside an agent, $mode: the outer session meters every agent below it ($total)"
done

# ---- an agent below an agent with libtbwrap.so removed from LD_PRELOAD ----
# `env` execs through libc: its exec hook puts the library back, the inner agent registers as
# any nested agent and is metered exactly.
inner="env -u LD_PRELOAD '$AGENTS/claude' -p /inner --mode raw --output-format stream-json --stdout '$FIX/stdout.stream-json.jsonl' >/dev/null; echo \$? >'$T/inner.rc'"
for mode in warn block; do
	rm -f "$T/inner.rc"
	run "$TBWRAP" --disable-budget-visuals --budget-enforcement-mode "$mode" --report-json "$T/r.json" \
		-- "$AGENTS/claude" -p /outer --mode raw --spawn "$inner" --stdout "$FIX/stdout.text.txt" \
		--transcript "$FIX/transcript.text.jsonl"
	assert_eq "$status:$(cat "$T/inner.rc" 2>/dev/null)" "0:0" "env -u LD_PRELOAD below an agent, $mode: both agents ran"
	assert_eq "$(json_get "$T/r.json" overall.used.total):$(json_get "$T/r.json" overall.agents)" "34000:2" \
		"env -u LD_PRELOAD below an agent, $mode: the library was put back, both metered exactly"
	assert_eq "$(json_get "$T/r.json" agents.0.nested):$(json_get "$T/r.json" agents.0.adopted) $(json_get "$T/r.json" agents.1.nested):$(json_get "$T/r.json" agents.1.adopted)" \
		"false:false true:false" "env -u LD_PRELOAD below an agent, $mode: the inner one registered itself (nested, not adopted)"
done
# A static launcher drops it where no hook sees: the supervisor finds the agent by its writes
# under the outer agent's filter and meters it from outside (adopted).
inner="'$STATIC_EXEC' -u LD_PRELOAD '$AGENTS/claude' -p /inner --mode raw --output-format stream-json --stdout '$FIX/stdout.stream-json.jsonl' >/dev/null; echo \$? >'$T/inner.rc'"
rm -f "$T/inner.rc"
run "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- "$AGENTS/claude" -p /outer \
	--mode raw --spawn "$inner" --stdout "$FIX/stdout.text.txt" --transcript "$FIX/transcript.text.jsonl"
assert_line_match "$errout" "^tbwrap: process [0-9]+ \([^)]*claude\) is an agent started without libtbwrap.so: tbwrap meters it from outside" \
	"static launcher below an agent: tbwrap says it meters the agent from outside"
assert_eq "$(json_get "$T/r.json" overall.used.total):$(json_get "$T/r.json" overall.agents):$(json_get "$T/r.json" agents.1.adopted)" \
	"34000:2:true" "static launcher below an agent: adopted and metered exactly"
# Block mode with no room for it: refused (killed) before its first request. It is admitted with
# the largest first call seen so far (the outer agent's, 4,250: it spawns halfway through), as
# its own command has had none.
rm -f "$T/inner.rc"
run "$TBWRAP" --disable-budget-visuals --budget-enforcement-mode block --command-budget /inner=500 \
	--report-json "$T/r.json" -- "$AGENTS/claude" -p /outer \
	--mode raw --spawn "$inner" --stdout "$FIX/stdout.text.txt" --transcript "$FIX/transcript.text.jsonl"
assert_line_match "$errout" "^tbwrap: stopping process [0-9]+ \([^)]*claude\): an agent started without libtbwrap.so: refused command budget /inner: used 0 \+ reserved 0 \+ estimate 4\.2K > limit 500 \(block mode\)" \
	"static launcher below an agent, block, no room: refused, and why"
assert_eq "$(cat "$T/inner.rc" 2>/dev/null)" 137 "static launcher below an agent, block, no room: the agent was killed (137)"

# ---- outside every agent: nothing sees its writes ----
# The process-tree scan finds it by what it runs: block mode kills it, warn mode says loudly that
# it is not metered and lists it so.
for row in "block ^tbwrap: stopping process [0-9]+ \([^)]*claude\): refused: this agent cannot be metered: it was started without libtbwrap.so outside every agent" \
	"warn ^tbwrap: process [0-9]+ \([^)]*claude\): WARNING: this agent runs UNMETERED: it was started without libtbwrap.so outside every agent"; do
	mode=${row%% *}
	want=${row#* }
	run "$TBWRAP" --disable-budget-visuals --budget-enforcement-mode "$mode" --report-json "$T/r.json" \
		-- "$STATIC_EXEC" -u LD_PRELOAD "$AGENTS/claude" -p /test --mode raw --delay-ms 100 \
		--output-format stream-json --stdout "$FIX/stdout.stream-json.jsonl"
	assert_line_match "$errout" "$want" "static launcher at the top, $mode: tbwrap says so"
	if [[ $mode == block ]]; then
		assert_eq "$status:$(json_get "$T/r.json" agents.0.status)" "137:refused" \
			"static launcher at the top, block: killed (137), reported refused"
	else
		assert_eq "$status:$(json_get "$T/r.json" agents.0.status):$(json_get "$T/r.json" agents.0.metered)" \
			"0:exited:false" "static launcher at the top, warn: ran, reported \"metered\": false"
	fi
done

done_testing
