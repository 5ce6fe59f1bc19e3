#!/usr/bin/env bash
# A metered Claude Code agent whose Bash tool writes 100,000 lines (seq to a file, a bash echo
# loop to a file, seq to the tool's own output): every byte must arrive as it does without
# tbwrap, and the agent's usage must still be exact.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_setup
tbwrap_require

# bash_output: 3 tool turns (the three commands) + the final answer = 4 calls of 1000/50/200/3000.
files=(seq.txt loop.txt)

# saved_file OUT: where the CLI says it saved a large tool output (2.x), or nothing.
saved_file() {
	grep -o "Full output saved to: [^ ]*tool-results/[0-9A-Za-z]*\.txt" "$1" | head -n 1 | sed 's/^Full output saved to: //'
}

# session DIR WRAP: runs the session (WRAP=yes under tbwrap), keeps its files, its stdout and
# the CLI's saved copy of a large tool output (DIR/saved.txt) in DIR.
session() {
	local dir=$1 wrap=$2
	mkdir -p "$dir"
	standin_start bash_output
	# Both runs from an empty config dir, so that they make the same side calls (lib.sh).
	fresh_config
	rm -f "${files[@]/#/$E2E_PROJECT/}"
	if [[ $wrap == yes ]]; then
		run_tbwrap "$dir/out" "$dir/err" --report-json "$dir/report.json" -- \
			claude -p /test --allowedTools Bash --output-format stream-json --verbose
		RC=$TBWRAP_RC MS=$TBWRAP_MS
	else
		run_claude "$dir/out" "$dir/err" -p /test --allowedTools Bash --output-format stream-json --verbose
		RC=$CLAUDE_RC MS=$CLAUDE_MS
	fi
	local f
	for f in "${files[@]}"; do
		mv "$E2E_PROJECT/$f" "$dir/$f" 2>/dev/null
	done
	local saved
	saved=$(saved_file "$dir/out")
	[[ -n $saved ]] && cp "$saved" "$dir/saved.txt"
	cp "$STANDIN_LOG" "$dir/requests.jsonl"
}

session "$E2E_TMP/plain" no
plain_ms=$MS
assert_eq "$RC" "0" "without tbwrap: claude exits 0"
session "$E2E_TMP/wrapped" yes
echo "# 100,000-line Bash commands: unwrapped $plain_ms ms, under tbwrap $MS ms"
assert_eq "$RC" "0" "under tbwrap: tbwrap exits 0"

for f in "${files[@]}"; do
	assert_eq "$(wc -l <"$E2E_TMP/wrapped/$f" 2>/dev/null)" "100000" "under tbwrap: $f has 100,000 lines"
	assert_eq "$(sha256sum <"$E2E_TMP/wrapped/$f" 2>/dev/null)" "$(sha256sum <"$E2E_TMP/plain/$f")" \
		"under tbwrap: $f has the same sha256 as without tbwrap"
done
assert_eq "$(sha256sum <"$E2E_TMP/wrapped/seq.txt")" "$(seq 1 100000 | sha256sum)" "under tbwrap: seq.txt is exactly seq 1 100000"
assert_eq "$(tail -n 1 "$E2E_TMP/wrapped/loop.txt")" "line 100000 of the loop" "under tbwrap: the loop's last line is intact"

# What the Bash tool handed back to the CLI (its stream-json tool results), run by run: 2.x
# prints the tool's stdout in tool_use_result, 1.0.x only the tool_result block it sends back
# (the third one cut to 30,000 characters, "... [N lines truncated] ...").
tool_outputs() {
	python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o.get("type") != "user":
        continue
    if isinstance(o.get("tool_use_result"), dict):
        out = o["tool_use_result"].get("stdout", "")
    else:
        blocks = [b for b in o.get("message", {}).get("content", []) if isinstance(b, dict) and b.get("type") == "tool_result"]
        if not blocks or not isinstance(blocks[0].get("content"), str):
            continue
        out = blocks[0]["content"]
    print(len(out), out.splitlines()[-1] if out else "")
PY
}
expect_tools=$(tool_outputs "$E2E_TMP/plain/out")
assert_eq "$(tool_outputs "$E2E_TMP/wrapped/out")" "$expect_tools" \
	"under tbwrap: the three tool results (lengths, last lines) equal those without tbwrap"
assert_contains "$expect_tools" "100000 seq.txt" "the first tool result is wc's '100000 seq.txt'"
# (The Node build's side calls may differ in number between the runs: lib.sh, mask_side.)
side_models=
claude_is_node && side_models=$(cat "$E2E_TMP/plain/requests.jsonl" "$E2E_TMP/wrapped/requests.jsonl" | side_models)
# drop_bg_tasks: stdin without the system lines 2.1.x prints when it moves a Bash command that
# runs long into a background task (task_started, task_notification). Whether it does depends on
# how long the command ran: the 100,000 writes of the loop take seconds under tbwrap, where every
# write of the agent's process tree passes the supervisor (0.7 s without, 3 s with, measured).
drop_bg_tasks() {
	python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    try:
        o = json.loads(line)
    except json.JSONDecodeError:
        o = None
    if isinstance(o, dict) and o.get("type") == "system" and o.get("subtype") in ("task_started", "task_notification"):
        n += 1
        continue
    sys.stdout.write(line)
print(n, file=sys.stderr)'
}
bg=$(normalize "$E2E_TMP/wrapped/out" | drop_bg_tasks 2>&1 >/dev/null)
((bg == 0)) || echo "# under tbwrap the CLI reported $bg background-task lines: it moved a slow Bash command to the background"
if d=$(diff <(normalize "$E2E_TMP/plain/out" | mask_side "$side_models" | drop_bg_tasks 2>/dev/null) \
	<(normalize "$E2E_TMP/wrapped/out" | mask_side "$side_models" | drop_bg_tasks 2>/dev/null)); then
	ok "under tbwrap: stdout equals the run without tbwrap (ids, timings normalised)"
else
	not_ok "under tbwrap: stdout equals the run without tbwrap (ids, timings normalised)" "$(head -c 3000 <<<"$d")"
fi

# The CLI itself saved the third command's 100,000 lines (too large for the conversation) to a
# file: written by the agent through the metered path, it must be intact too. (Each session kept
# its copy: the next one starts from an empty config dir.)
plain_saved=$(saved_file "$E2E_TMP/plain/out")
wrapped_saved=$(saved_file "$E2E_TMP/wrapped/out")
[[ -n $plain_saved ]] && plain_saved=$E2E_TMP/plain/saved.txt
[[ -n $wrapped_saved ]] && wrapped_saved=$E2E_TMP/wrapped/saved.txt
if [[ -z $plain_saved && -z $wrapped_saved ]] && grep -q 'lines truncated\] \.\.\.' "$E2E_TMP/plain/out"; then
	# 1.0.x keeps no copy: it cuts the tool result (compared above) and drops the rest.
	skip "under tbwrap: the CLI's saved copy of the large output equals the one without tbwrap" \
		"Claude Code $(claude_version) saves no copy of a large tool output, it truncates it"
	skip "under tbwrap: the saved copy is seq 1 100000" "Claude Code $(claude_version) saves no copy"
elif [[ -f $wrapped_saved && -f $plain_saved ]]; then
	assert_eq "$(sha256sum <"$wrapped_saved") $(wc -c <"$wrapped_saved")" "$(sha256sum <"$plain_saved") $(wc -c <"$plain_saved")" \
		"under tbwrap: the CLI's saved copy of the seq output ($(wc -c <"$wrapped_saved") bytes) equals the one without tbwrap"
	assert_eq "$( (cat "$wrapped_saved"; [[ $(tail -c 1 "$wrapped_saved") == "" ]] || echo) | sha256sum)" "$(seq 1 100000 | sha256sum)" \
		"under tbwrap: the saved copy is seq 1 100000"
else
	not_ok "the CLI saved the large tool output to a file in both runs" "plain: '$plain_saved'" "wrapped: '$wrapped_saved'"
fi

report=$E2E_TMP/wrapped/report.json
cost=$(result_cost "$E2E_TMP/wrapped/out")
assert_eq "$(cli_truth /test)" "4000 200 800 12000" "stand-in billed the 4 calls of the main conversation"
# Every call billed, but (1.0.x) a side call the CLI cut off at its end (lib.sh, assert_model_usage).
assert_model_usage "under tbwrap" "$E2E_TMP/wrapped/out"
truth=$(usage_minus "$(ground_truth /test)" "$UNCOUNTED")
assert_eq "$(report_usage "$report" /test)" "$truth" "report /test usage equals the ground truth (every call billed)"
assert_eq "$(report_usage "$report")" "$truth" "report overall usage equals the ground truth"
assert_eq "$(report_get "$report" '[r["agents"][0][k] for k in ("status", "exit_code", "cost_usd")] + [r["agents"][0]["anomalies"]["not_json"], r["agents"][0]["anomalies"]["oversize"]]')" \
	"exited 0 $cost 0 0" \
	"report: agent exited 0, cost_usd the result line's \$$cost, no unparsable or oversize line"
