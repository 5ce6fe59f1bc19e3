#!/usr/bin/env bash
# Block mode: an agent that would not fit its budget is refused before it runs (status 86, a line
# that names the budget and its numbers); a running agent whose usage crosses a budget is stopped
# right after the line that crossed (status 87 for tbwrap when it was the command; the agent gets
# SIGINT, then SIGTERM and SIGKILL after a grace each: 130, 143, 137); agents launched at the same
# instant cannot all slip under a budget that holds only some.
source "$(dirname "$0")/libtest.sh"
setup
require_files "$TBWRAP" "$LIBTBWRAP" "$FAKE_AGENT"

AGENTS=$(agent_dir)
BLOCK=(--budget-enforcement-mode block --disable-budget-visuals)

# report_line FILE: "refused stopped agents | status:exit_code ..." of the overall budget.
report_line() {
	python3 - "$1" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    print(f"no report: {e}")
    sys.exit(0)
o = r["overall"]
print(o["agents"], o["refused"], o["stopped"], o["used"]["total"], o["reserved"], "|",
      " ".join(sorted(f'{a["status"]}:{json.dumps(a["exit_code"])}' for a in r["agents"])))
PY
}

# ---- refused at launch ----
refusal_case() {
	local label=$1 want_line=$2
	shift 2
	rm -rf "$CLAUDE_CONFIG_DIR/projects" "$T/r.json"
	run "$TBWRAP" "${BLOCK[@]}" --report-json "$T/r.json" "$@" -- "$AGENTS/claude" -p "/test now" \
		--output-format stream-json --stdout "$FIX/stdout.text.txt" --transcript "$FIX/transcript.text.jsonl"
	assert_eq "$status" 86 "$label: tbwrap exits 86"
	local line
	line=$(grep -E '^tbwrap\[[0-9]+\]: refused' "$T/run.err")
	assert_match "$line" "^tbwrap\[[0-9]+\]: $want_line\$" "$label: one line names the budget and its numbers"
	assert_eq "$(grep -c '^tbwrap\[' "$T/run.err")" 1 "$label: said once"
	assert_eq "$output" "" "$label: the agent wrote nothing (it never ran)"
	assert_eq "$(transcripts)" "" "$label: no transcript"
	assert_eq "$(report_line "$T/r.json")" "0 1 0 0 0 | refused:86" "$label: the report has it refused"
}
refusal_case "overall budget 0" \
	'refused overall budget: used 0 \+ reserved 0 \+ estimate 1\.0K > limit 0 \(block mode\)' \
	--overall-token-budget 0
refusal_case "command budget below the estimate" \
	'refused command budget /test: used 0 \+ reserved 0 \+ estimate 1\.0K > limit 999 \(block mode\)' \
	--command-budget /test=999
refusal_case "command budget below --estimate" \
	'refused command budget /test: used 0 \+ reserved 0 \+ estimate 20\.0K > limit 17\.0K \(block mode\)' \
	--command-budget /test=17000 --estimate 20K
# The estimate exactly at the limit fits: used + reserved + estimate <= limit.
run "$TBWRAP" "${BLOCK[@]}" --report-json "$T/r.json" --overall-token-budget 1000 -- \
	"$AGENTS/claude" -p "/test" --output-format stream-json --stdout "$FIX/stdout.text.txt"
assert_eq "$status:$output" "0:Turn 3. " "an estimate equal to the budget is admitted"
# Other commands are not held back by /test's budget.
run "$TBWRAP" "${BLOCK[@]}" --report-json "$T/r.json" --command-budget /test=10 -- \
	"$AGENTS/claude" -p "/other" --output-format stream-json --stdout "$FIX/stdout.text.txt"
assert_eq "$status:$output" "0:Turn 3. " "a /test budget does not refuse /other"
# A non-agent is never refused, whatever the budget.
run "$TBWRAP" "${BLOCK[@]}" --overall-token-budget 0 -- sh -c 'echo plain; exit 4'
assert_eq "$status:$output" "4:plain" "a zero budget does not touch a program that is no agent"

# ---- stopped while running ----
# A slow agent: 10 API calls with distinct message ids, one usage line each (4250 tokens), 200 ms
# apart. Under a 10K budget the 3rd line (12,750) crosses.
for i in $(seq 1 10); do
	printf '{"type":"assistant","message":{"id":"msg_%02d","type":"message","role":"assistant","model":"claude-opus-4-8","usage":{"input_tokens":1000,"cache_creation_input_tokens":200,"cache_read_input_tokens":3000,"output_tokens":50}}}\n' "$i"
done >"$T/slow.jsonl"

for mode in raw libc; do
	rm -f "$T/r.json"
	run "$TBWRAP" "${BLOCK[@]}" --report-json "$T/r.json" --command-budget /test=10K -- \
		"$AGENTS/claude" -p "/test slow" --mode "$mode" --delay-ms 200 --output-format stream-json --stdout "$T/slow.jsonl"
	assert_eq "$status" 87 "$mode: stopped agent: tbwrap exits 87"
	assert_match "$errout" "(^|"$'\n'")tbwrap: stopping agent [0-9]+ \(/test\): command budget /test exceeded, used 12\.8K/10\.0K \(block mode\)("$'\n'"|$)" \
		"$mode: stderr says which agent, which budget, how much"
	assert_eq "$(report_line "$T/r.json")" "1 0 1 12750 0 | stopped:130" \
		"$mode: ledger holds exactly the crossing total, status stopped, exit 130 (SIGINT)"
	assert_eq "$(json_get "$T/r.json" commands.0.stopped):$(json_get "$T/r.json" commands.0.used.total)" \
		"1:12750" "$mode: the command budget counts the stop and the crossing total"
	# No line after the one that crossed reached stdout (the crossing line itself may be held
	# back: a notified write is answered after the stop).
	n=$(wc -l <"$T/run.out")
	if ((n <= 3)) && cmp -s "$T/run.out" <(head -n "$n" "$T/slow.jsonl"); then
		ok "$mode: stdout stops at the crossing line ($n lines)"
	else
		not_ok "$mode: stdout stops at the crossing line" "$n lines: $(head -c 300 "$T/run.out")"
	fi
done

# The overall budget stops too, and the message says so.
run "$TBWRAP" "${BLOCK[@]}" --report-json "$T/r.json" --overall-token-budget 5000 -- \
	"$AGENTS/claude" -p "/test slow" --mode raw --delay-ms 200 --output-format stream-json --stdout "$T/slow.jsonl"
assert_eq "$status" 87 "overall budget crossed: tbwrap exits 87"
assert_contains "$errout" "overall budget exceeded, used 8.5K/5.0K (block mode)" \
	"overall: stderr names the overall budget"
assert_eq "$(report_line "$T/r.json")" "1 0 1 8500 0 | stopped:130" "overall: stopped at the 2nd line"

# An agent stopped below a script: the script goes on, tbwrap returns the script's status.
run "$TBWRAP" "${BLOCK[@]}" --report-json "$T/r.json" --command-budget /test=10K -- sh -c \
	"\"$AGENTS/claude\" -p /test --mode raw --delay-ms 200 --output-format stream-json --stdout \"$T/slow.jsonl\" >/dev/null; echo agent=\$?; exit 5"
assert_eq "$status:$output" "5:agent=130" "agent below a script: stopped with 130 (SIGINT), tbwrap returns the script's 5"

# An agent that ignores SIGINT gets SIGTERM after the grace; one that ignores both, SIGKILL after
# another (its 10 lines would take 8 s).
for row in "INT 143 SIGTERM" "INT,TERM 137 SIGKILL"; do
	read -r ign want sig <<<"$row"
	start=$(date +%s%N)
	run "$TBWRAP" "${BLOCK[@]}" --report-json "$T/r.json" --command-budget /test=10K -- sh -c \
		"\"$AGENTS/claude\" -p /test --mode raw --delay-ms 800 --ignore $ign --output-format stream-json --stdout \"$T/slow.jsonl\" >/dev/null; echo agent=\$?"
	ms=$((($(date +%s%N) - start) / 1000000))
	assert_eq "$output:$(json_get "$T/r.json" agents.0.status)" "agent=$want:stopped" \
		"an agent ignoring $ign: ended by $sig ($want) after the grace"
	echo "# ignoring $ign: the run took $ms ms (graces of 2 s)"
done

# ---- parallel launches against a budget for 3 estimates ----
# 16 agents start at once; each reserves 1000 of a 3000 budget and holds it for 1 s (it writes
# nothing). The check-and-reserve is atomic, so exactly 3 run. They are not tbwrap's children:
# their exit codes come from the agents themselves (on_exit), the refused ones' from the refusal.
cat >"$T/par.sh" <<EOF
for i in \$(seq 1 16); do
	( "$AGENTS/claude" -p "/test \$i" --spawn "echo ran >>'$T/ran'" --sleep-after 1000
	  echo \$? >>"$T/codes" ) &
done
wait
EOF
rm -f "$T/ran" "$T/codes"
run "$TBWRAP" "${BLOCK[@]}" --report-json "$T/r.json" --estimate 1000 --command-budget /test=3000 \
	-- bash "$T/par.sh"
assert_eq "$status" 0 "parallel: the script itself exits 0"
assert_eq "$(wc -l <"$T/ran" 2>/dev/null | tr -d ' ')" 3 "parallel: exactly 3 agents ran"
assert_eq "$(sort -n "$T/codes" | uniq -c | awk '{print $2 "x" $1}' | tr '\n' ' ')" "0x3 86x13 " \
	"parallel: 3 exited 0, 13 refused with 86"
assert_eq "$(report_line "$T/r.json")" \
	"3 13 0 0 0 | exited:0 exited:0 exited:0 $(printf 'refused:86 %.0s' $(seq 13) | sed 's/ $//')" \
	"parallel: the report has 3 exited and 13 refused, nothing left reserved"
assert_eq "$(grep -c '^tbwrap\[[0-9]*\]: refused command budget /test: ' "$T/run.err")" 13 \
	"parallel: 13 refusal lines"

done_testing
