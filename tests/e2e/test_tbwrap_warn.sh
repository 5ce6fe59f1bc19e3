#!/usr/bin/env bash
# Warn mode with the real Claude Code CLI: budgets the session crosses are reported once per
# threshold (70 %, 90 %, exceeded) and budget, nothing is stopped or refused, and the totals are
# exact. Three agents run one after the other under one tbwrap: /test (6 calls), /slow (3 calls)
# and /test again, which starts after its budget is already exceeded.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_setup
tbwrap_require

# warn: /test = 6 calls of 1000/50/200/3000 (25500), /slow = 3 calls of 700/30/0/1500 (6690).
# Two /test sessions and one /slow: /test 51000 of 20000 (all three thresholds), /slow 6690 of
# 9000 (74 %: 70 % only), overall 57690 of 60000 (96 %: 70 % and 90 %, not exceeded). The side
# calls of 1.0.x (tool-less, one per Bash run) cost nothing in this scenario (side_usage), so
# that every version crosses the same thresholds; they are still made and counted as calls.
standin_start warn
script=$E2E_TMP/warn.sh
cat >"$script" <<'SH'
#!/usr/bin/env bash
claude -p /test --allowedTools Bash >a1.out 2>a1.err </dev/null
echo $? >a1.status
claude -p /slow --allowedTools Bash --output-format json >a2.out 2>a2.err </dev/null
echo $? >a2.status
claude -p /test --allowedTools Bash --output-format stream-json --verbose >a3.out 2>a3.err </dev/null
echo $? >a3.status
SH
report=$E2E_TMP/warn.json
err=$E2E_TMP/warn.err
run_tbwrap "$E2E_TMP/warn.out" "$err" --budget-enforcement-mode warn --overall-token-budget 60000 \
	--command-budget /test=20000 --command-budget /slow=9000 --report-json "$report" -- bash "$script"
echo "# 3 sequential agents (15 API calls) in warn mode: $TBWRAP_MS ms"
assert_eq "$TBWRAP_RC" "0" "warn: tbwrap exits 0"
assert_eq "$(cat "$E2E_PROJECT"/a{1,2,3}.status | tr '\n' ' ' | sed 's/ $//')" "0 0 0" "warn: all three agents exit 0"
if [[ ! -s $report ]]; then
	not_ok "warn: tbwrap wrote the report" "$(head -c 2000 "$err")"
	exit 1
fi
assert_eq "$(main_calls "")" "15" "warn: all 15 calls made (6 + 3 + 6)"
assert_eq "$(wc -l <"$E2E_PROJECT/test.marker") $(wc -l <"$E2E_PROJECT/slow.marker")" "10 2" \
	"warn: every Bash tool turn ran (5 + 5 for /test, 2 for /slow)"
assert_eq "$(sed 's/ *$//' "$E2E_PROJECT/a1.out")" "Turn 5." "warn: the first /test agent printed its final answer"
assert_eq "$(result_field "$E2E_PROJECT/a2.out" subtype) $(result_field "$E2E_PROJECT/a3.out" subtype)" "success success" \
	"warn: the json and stream-json agents finished with success"

# count PATTERN: lines of tbwrap's stderr matching the extended regex exactly.
count() {
	grep -cxE "$1" "$err"
}
N='[0-9]+(\.[0-9])?[KM]?'
assert_eq "$(count "tbwrap: warning: /test budget at 70%: $N/20\.0K") $(count "tbwrap: warning: /test budget at 90%: $N/20\.0K") $(count "tbwrap: warning: /test budget exceeded: $N/20\.0K \(warn mode: nothing is stopped\)")" "1 1 1" \
	"warn: /test (51000 of 20000): one line each for 70 %, 90 %, exceeded"
assert_eq "$(count "tbwrap: warning: /slow budget at 70%: $N/9\.0K") $(count "tbwrap: warning: /slow budget at 90%: .*") $(count "tbwrap: warning: /slow budget exceeded: .*")" "1 0 0" \
	"warn: /slow (6690 of 9000): one line for 70 %, none for 90 % or exceeded"
assert_eq "$(count "tbwrap: warning: overall budget at 70%: $N/60\.0K") $(count "tbwrap: warning: overall budget at 90%: $N/60\.0K") $(count "tbwrap: warning: overall budget exceeded: .*")" "1 1 0" \
	"warn: overall (57690 of 60000): one line each for 70 % and 90 %, none for exceeded"
assert_eq "$(grep -c '^tbwrap: warning: ' "$err")" "6" "warn: 6 warning lines in all"
assert_eq "$(grep -cE '^tbwrap(\[[0-9]+\])?: (stopping|refused)' "$err" "$E2E_PROJECT"/a*.err | awk -F: '{s += $NF} END {print s}')" "0" \
	"warn: nothing stopped or refused"
# Each warning is printed when the crossing happens, so the value it shows is past the threshold.
bad=$(python3 - "$err" <<'PY'
import re, sys
for line in open(sys.argv[1]):
    m = re.match(r"tbwrap: warning: (\S+) budget (?:at (\d+)%|exceeded): ([\d.]+)K/([\d.]+)K", line)
    if m:
        pct = int(m.group(2) or 100)
        used, limit = float(m.group(3)), float(m.group(4))
        if used * 100 < limit * pct - 5:  # shown to one decimal: allow its rounding
            print(line.strip())
PY
)
assert_eq "$bad" "" "warn: every warning shows a value at or past its threshold"

for c in /test /slow; do
	assert_eq "$(report_usage "$report" $c)" "$(ground_truth $c)" "warn: report $c usage equals the ground truth"
done
assert_eq "$(report_usage "$report")" "$(ground_truth)" "warn: report overall usage equals the ground truth"
assert_eq "$(report_get "$report" '[[c["used"]["total"] for c in r["commands"] if c["name"] == n][0] for n in ("/test", "/slow")] + [r["overall"]["used"]["total"]]')" \
	"51000 6690 57690" \
	"warn: report totals /test 51000, /slow 6690, overall 57690"
assert_eq "$(report_get "$report" '[r["mode"]] + [a["status"] for a in r["agents"]] + [sum(c["stopped"] for c in r["commands"]), sum(c["refused"] for c in r["commands"])]')" \
	"warn exited exited exited 0 0" \
	"warn: report: mode warn, 3 agents exited, none stopped or refused"
