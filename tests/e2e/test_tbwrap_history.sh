#!/usr/bin/env bash
# Budgets that remember, with the real Claude Code CLI: every run's agents in the history equal
# the stand-in's billing; --estimate auto reserves the p75 of runs of known sizes (and refuses an
# agent before it sends anything when that does not fit); a window spent across three runs (the
# third refused at launch, exit 86, nothing sent); two scopes that do not mix; four runs finishing
# at once all recorded; a profile, an override, a malformed profile; tbwrap report's JSON exact;
# a history that is locked or corrupt. Side calls cost nothing here (side_usage), so that every
# version bills the same per session.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_setup
tbwrap_require
has_sqlite() { command -v sqlite3 >/dev/null 2>&1; }
if ! has_sqlite; then
	skip "history" "needs the sqlite3 command (apt-get install sqlite3)"
	exit 0
fi
printf 'Do a small thing.\n' >"$E2E_PROJECT/.claude/commands/small.md"

H=$E2E_TMP/history.db
q() {
	sqlite3 "$H" "$1"
}
# session OUT_PREFIX TBWRAP_OPTIONS... -- PROMPT: one tbwrap run of one text-mode agent.
session() {
	local name=$1
	shift
	local opts=() prompt
	while [[ $1 != -- ]]; do
		opts+=("$1")
		shift
	done
	prompt=$2
	run_tbwrap "$E2E_TMP/$name.out" "$E2E_TMP/$name.err" --disable-budget-visuals --history "$H" \
		"${opts[@]}" -- claude -p "$prompt" --allowedTools Bash
}
billed_total() {
	sum_of "$(ground_truth "${1:-}")"
}

# ---- p75 of runs of known sizes --------------------------------------------------------------
# /test: 2 calls of 4,250 (8,500) twice, 2 calls of 6,250 (12,500), 3 calls of 4,250 (12,750).
sizes=
for sc in history history history_big history_long; do
	standin_start "$sc"
	session p75 -- /test
	sizes+="$TBWRAP_RC:$(billed_total /test) "
done
assert_eq "$sizes" "0:8500 0:8500 0:12500 0:12750 " "four /test runs of known sizes, billed as planned"
assert_eq "$(q "select group_concat(total, ' ') from (select total from agents order by run_id)")" "8500 8500 12500 12750" \
	"the history holds each run's agent with the billed total"
assert_eq "$(q "select distinct command, status, exit_code, metered, cwd from agents")" "/test|exited|0|1|$E2E_PROJECT" \
	"each row: command, how it ended, metered, cwd"
run_tbwrap "$E2E_TMP/dry.out" "$E2E_TMP/dry.err" --history "$H" --estimate auto --dry-run -- claude -p /test
assert_contains "$(cat "$E2E_TMP/dry.out")" "estimate /test: 12.5K (12500 tokens, p75 of 4 runs)" \
	"--dry-run: the estimate and where it came from"
standin_start history
session auto --estimate auto --budget-enforcement-mode block --overall-token-budget 12K -- /test
assert_eq "$TBWRAP_RC:$(billed_calls)" "86:0" "--estimate auto: the p75 (12.5K) does not fit 12K: refused at launch, nothing sent"
assert_line_match "$(cat "$E2E_TMP/auto.err")" 'refused overall budget: used 0 \+ reserved 0 \+ estimate 12\.5K > limit 12\.0K \(block mode\)' \
	"--estimate auto: the refusal names the estimate"

# ---- report JSON exact -----------------------------------------------------------------------
run_tbwrap "$E2E_TMP/report.json" "$E2E_TMP/report.err" report --json --history "$H" --command /test
# USD: what the runs' rows hold (tbwrap's price of each agent, checked against the billing by
# test_tbwrap_usd.sh), summed; the model's rates differ between Claude Code versions.
usd=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("select sum(usd_pico) from agents where command = ?", ("/test",)).fetchone()[0] / 1e12)' "$H")
assert_eq "$(python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1])), separators=(",", ":")))' "$E2E_TMP/report.json")" \
	"{\"since_seconds\":null,\"scope\":null,\"command\":\"/test\",\"commands\":[{\"command\":\"/test\",\"runs\":4,\"tokens\":42250,\"usd\":$usd,\"p50\":8500,\"p75\":12500,\"p95\":12750,\"stopped\":0,\"refused\":1}],\"total\":{\"runs\":4,\"tokens\":42250,\"usd\":$usd,\"stopped\":0,\"refused\":1,\"tbwrap_runs\":4}}" \
	"tbwrap report --json: runs, tokens, USD (\$$usd), p50/p75/p95, refused, exactly"
if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)' "$usd"; then
	ok "the history's USD of the /test runs is tbwrap's price, not 0 (\$$usd)"
else
	not_ok "the history's USD of the /test runs is tbwrap's price" "usd $usd"
fi
# The fixed estimate admits the same agent under the same budget. (1.0.x is stopped later by
# the predictions of its side calls, which its text mode reports nowhere: admitted all the same.)
session fixed --budget-enforcement-mode block --overall-token-budget 12K -- /test
assert_eq "$( (($(billed_calls) >= 1)) && echo yes || echo no):$(grep -c 'refused overall budget' "$E2E_TMP/fixed.err")" "yes:0" \
	"the fixed estimate (1.0K): the same agent is admitted and sends its calls"

# ---- a window spent across three runs; two scopes --------------------------------------------
H=$E2E_TMP/window.db
standin_start history
W=(--window 24h --scope nightly --overall-token-budget 17K)
session w1 "${W[@]}" -- /test
rc1=$TBWRAP_RC
session w2 "${W[@]}" -- /test
assert_eq "$rc1 $TBWRAP_RC $(q "select count(*) from agents") $(billed_total)" "0 0 2 17000" \
	"window: two runs of 8,500 spend the 17K window of scope nightly"
assert_contains "$(cat "$E2E_TMP/w2.err")" "tbwrap: window 24h of scope nightly: this run 8.5K + other runs 8.5K, overall budget 17.0K" \
	"window: the second run counts the first"
calls_before=$(billed_calls)
session w3 "${W[@]}" --budget-enforcement-mode block -- /test
assert_eq "$TBWRAP_RC:$(billed_calls)" "86:$calls_before" "window: the third run is refused at launch (86), nothing sent"
assert_eq "$(cat "$E2E_TMP/w3.err")" \
	"tbwrap: refused: overall budget of scope nightly over the last 24h: used 17.0K by other runs + estimate 1.0K > limit 17.0K (block mode: nothing was started)" "window: one line naming budget, scope, window and usage"
session w4 --window 24h --scope weekly --overall-token-budget 17K -- /test
assert_eq "$TBWRAP_RC:$(billed_total)" "0:25500" "scopes do not mix: scope weekly runs its session"
assert_eq "$(grep -c 'warning: overall budget of scope' "$E2E_TMP/w4.err"):$(grep -c 'window 24h of scope weekly: this run 8.5K + other runs 0, overall budget 17.0K' "$E2E_TMP/w4.err")" "0:1" \
	"scopes do not mix: no launch warning, no other runs' usage in scope weekly"
assert_eq "$(q "select group_concat(scope || '|' || t, ' ') from (select scope, sum(total) t from agents group by scope order by scope)")" "nightly|17000 weekly|8500" \
	"each scope's usage in the history"

# ---- four runs finishing at once -------------------------------------------------------------
H=$E2E_TMP/four.db
standin_start history
pids=()
for i in 1 2 3 4; do
	(cd "$E2E_PROJECT" && exec timeout -k 5 120 "$TBWRAP" --disable-budget-visuals --history "$H" -- \
		claude -p /small --allowedTools Bash) >"$E2E_TMP/four$i.out" 2>"$E2E_TMP/four$i.err" </dev/null &
	pids+=($!)
done
rcs=
for p in "${pids[@]}"; do
	wait "$p"
	rcs+=$?
done
assert_eq "$rcs" "0000" "four runs at once: all exit 0"
assert_eq "$(q "select count(*), sum(total), count(distinct run_id), (select count(*) from runs where ended_ms is not null) from agents")" "4|17000|4|4" \
	"four runs at once: all four agents recorded (17,000 = 4 x 4,250), every run ended"
assert_eq "$(billed_total)" "17000" "four runs at once: the billing agrees"

# ---- profiles ---------------------------------------------------------------------------------
H=$E2E_TMP/profiles.db
P=$E2E_TMP/budget-profiles.yaml
cat >"$P" <<'EOF'
profiles:
  testing:
    overall: 50K
    commands:
      /test: 8K
    mode: block
EOF
standin_start history
session prof --profiles "$P" --profile testing --report-json "$E2E_TMP/prof.json" -- /test
assert_eq "$TBWRAP_RC:$(report_get "$E2E_TMP/prof.json" '[c["limit"] for c in r["commands"] if c["name"] == "/test"][0]'):$(report_get "$E2E_TMP/prof.json" 'r["mode"]')" "87:8000:block" \
	"profile testing: block mode and /test 8K stop the 8,500-token session (87)"
assert_eq "$(billed_total)" "4250" "profile: the request that would not fit was never sent"
session over --profiles "$P" --profile testing --command-budget /test=20K -- /test
assert_eq "$TBWRAP_RC:$(billed_total)" "0:12750" "a flag overrides the profile: /test=20K runs the session"
printf 'profiles:\n  testing:\n    overall: 50K\n    commands:\n      /test: eight\n' >"$E2E_TMP/bad.yaml"
calls_before=$(billed_calls)
session bad --profiles "$E2E_TMP/bad.yaml" --profile testing -- /test
assert_eq "$TBWRAP_RC:$(billed_calls)" "2:$calls_before" "a malformed profile exits 2, nothing runs"
assert_eq "$(cat "$E2E_TMP/bad.err")" \
	"tbwrap: $E2E_TMP/bad.yaml:5: commands /test: 'eight': expected a token count such as 50000, 50K or 1.5M" "a malformed profile: file and line"

# ---- a history that cannot be used -----------------------------------------------------------
H=$E2E_TMP/corrupt.db
head -c 8192 /dev/urandom >"$H"
standin_start history
session corrupt --report-json "$E2E_TMP/corrupt.json" -- /small
assert_eq "$TBWRAP_RC:$(billed_total):$(report_get "$E2E_TMP/corrupt.json" 'r["overall"]["used"]["total"]')" "0:4250:4250" \
	"corrupt history, no window: the run goes on, metered exactly"
assert_line_match "$(cat "$E2E_TMP/corrupt.err")" "^tbwrap: warning: history $H: cannot open: file is not a database .*this run goes on and is not recorded$" \
	"corrupt history: one warning line with the cause"
calls_before=$(billed_calls)
session corruptw --window 24h --overall-token-budget 1M -- /small
assert_eq "$TBWRAP_RC:$(billed_calls)" "125:$calls_before" "corrupt history under a window: exit 125, nothing sent"

H=$E2E_TMP/locked.db
standin_start history
session seed -- /small
python3 "$E2E_ROOT/tests/helpers/lock_history.py" "$H" "$E2E_TMP/locked" 20 &
locker=$!
e2e_track "$locker"
for ((i = 0; i < 100; i++)); do [[ -e $E2E_TMP/locked ]] && break; sleep 0.05; done
session locked -- /small
assert_eq "$TBWRAP_RC:$(billed_total)" "0:8500" "locked history, no window: the run goes on"
assert_contains "$(cat "$E2E_TMP/locked.err")" "database is locked (another process holds it locked; wait for it, or give another file with --history)" \
	"locked history: the cause and the fix"
calls_before=$(billed_calls)
session lockedw --window 24h --overall-token-budget 1M -- /small
assert_eq "$TBWRAP_RC:$(billed_calls)" "125:$calls_before" "locked history under a window: exit 125, nothing sent"
kill "$locker" 2>/dev/null
wait "$locker" 2>/dev/null
assert_eq "$(q "select count(*) from agents")" "1" "the locked history kept what it had (the runs under the lock are not in it)"
