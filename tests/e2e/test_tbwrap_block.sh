#!/usr/bin/env bash
# Block mode with the real Claude Code CLI: a 6-call session under a /test budget is stopped at
# the first request that would not fit (never sent: the budget is never crossed), in stream-json
# and in text mode; the stopped agent exits 87, not the 0 the CLI gives after a SIGINT; the next
# /test agent is refused before it sends anything (its first call is predicted as the first call
# of the agent before it); and the same session under the CLI's own --max-budget-usd is run for
# comparison.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_setup
tbwrap_require

SCENARIO=$E2E_SCENARIOS/block.json
LIMIT=10000
USD_LIMIT=0.02
CALL=4250 # every call of the scenario: 1000 + 200 + 3000 + 50

# ledger_check NAME REPORT: the ledger equals the billing. The Node build (1.0.x) writes each
# call's output as its stream's first snapshot and its side calls nowhere a stopped agent shows
# (README, Limits): its ledger holds the main calls' input and cache counts, and each side call
# is held as a call reported nowhere.
ledger_check() {
	if claude_is_node; then
		read -r wi _ wc wr <<<"$(cli_truth /test)"
		read -r gi _ gc gr <<<"$(report_usage "$2" /test)"
		assert_eq "$gi $gc $gr" "$wi $wc $wr" "$1: the ledger holds the main calls' input and cache counts (1.0.x)"
		assert_eq "$(report_get "$2" 'sum(a["unreported_calls"] for a in r["agents"])')" "$(billed_of calls side /test)" \
			"$1: each side call is held as a call reported nowhere (1.0.x)"
	else
		assert_eq "$(report_usage "$2" /test)" "$(ground_truth /test)" "$1: the ledger equals the billing"
	fi
}

# edge_check NAME REPORT: what was admitted fits the budget, and the request refused would not
# have: used + held + its prediction > LIMIT >= used + held.
edge_check() {
	local used held pred
	read -r used held pred <<<"$(report_get "$2" '[[c["used"]["total"] for c in r["commands"] if c["name"] == "/test"][0], sum(a["held"] for a in r["agents"]), r["agents"][0]["refused_prediction"]]')"
	if [[ $pred =~ ^[0-9]+$ ]] && ((used + held <= LIMIT && used + held + pred > LIMIT && pred >= CALL - 50)); then
		ok "$1: used $used + held $held <= $LIMIT < that + the refused request's prediction $pred"
	else
		not_ok "$1: the refused request is the first that would not fit" "used $used, held $held, prediction $pred, limit $LIMIT"
	fi
}

# --- the agent is tbwrap's own child: stopped, exit 87 -----------------------------------------

standin_start block
rm -f "$E2E_PROJECT/block.marker"
report=$E2E_TMP/block.json
out=$E2E_TMP/block.out
run_tbwrap "$out" "$out.err" --budget-enforcement-mode block --command-budget "/test=$LIMIT" \
	--report-json "$report" -- claude -p /test --allowedTools Bash --output-format stream-json --verbose
lines_at_return=$(wc -l <"$STANDIN_LOG")
block_ms=$TBWRAP_MS
assert_eq "$TBWRAP_RC" "87" "block: tbwrap exits 87 (an agent was stopped for its budget)"
if [[ ! -s $report ]]; then
	not_ok "block: tbwrap wrote the report" "$(head -c 2000 "$out.err")"
	exit 1
fi
pid=$(report_get "$report" 'r["agents"][0]["pid"]')
sid=$(standin_sessions /test)
assert_eq "$(wc -l <<<"$sid")" "1" "block: the stand-in saw one session"
billed=$(sum_of "$(ground_truth /test)")
tb_calls=$(billed_calls /test)
tb_main=$(main_calls /test)
if ((billed <= LIMIT && billed > LIMIT - 2 * CALL)); then
	ok "block: billed $billed <= $LIMIT in $tb_calls calls, less than two calls short"
else
	not_ok "block: billed within the budget" "billed $billed in $tb_calls calls"
fi
sleep 1 # anything the stopped agent still had queued would arrive now
assert_eq "$(wc -l <"$STANDIN_LOG")" "$lines_at_return" "block: a second after tbwrap returned, no request of any kind"
assert_eq "$(grep -cE "^tbwrap: stopping agent $pid \(/test\): its next request does not fit command budget /test: used [0-9.]+K \+ reserved [0-9.]+K? \+ predicted [0-9.]+K > limit 10\.0K \(block mode\)$" "$out.err")" "1" \
	"block: one line names the budget, used, reserved and the refused request's prediction"
assert_eq "$(report_get "$report" '[r["agents"][0]["status"], r["agents"][0]["exit_code"]]')" "stopped 87" \
	"block: report: agent stopped, exit_code 87 (not the 0 the CLI exits with after SIGINT)"
assert_eq "$(report_get "$report" '[[c["stopped"], c["refused"], c["agents"], c["overshoot"]] for c in r["commands"] if c["name"] == "/test"][0]')" "1 0 1 0" \
	"block: report: /test stopped 1, refused 0, agents 1, overshoot 0"
ledger_check "block" "$report"
edge_check "block" "$report"
assert_eq "$(wc -l <"$E2E_PROJECT/block.marker" 2>/dev/null || echo 0)" "$(main_calls /test)" \
	"block: the Bash tool ran once for each main call made (the next call never left)"

# --- text mode: the usage arrives with the transcript ------------------------------------------

# Text mode prints no usage; a call's usage reaches tbwrap when the CLI writes it to its
# transcript, which it does only once the next request has been sent. Block mode holds each
# new request until the previous call's usage is in, then predicts and admits it.
standin_start block
rm -f "$E2E_PROJECT/block.marker"
report=$E2E_TMP/block-text.json
out=$E2E_TMP/block-text.out
run_tbwrap "$out" "$out.err" --budget-enforcement-mode block --command-budget "/test=$LIMIT" \
	--report-json "$report" -- claude -p /test --allowedTools Bash
lines_at_return=$(wc -l <"$STANDIN_LOG")
text_calls=$(billed_calls /test)
assert_eq "$TBWRAP_RC" "87" "block, text mode: tbwrap exits 87"
# 1.0.x makes its side calls as its own timing goes: the main calls are the session's.
assert_eq "$(main_calls /test)" "$tb_main" "block, text mode: the same $tb_main main calls as in stream-json mode"
sleep 1
assert_eq "$(wc -l <"$STANDIN_LOG")" "$lines_at_return" "block, text mode: no request after tbwrap returned"
assert_line_match "$(cat "$out.err")" "tbwrap: stopping agent [0-9]+ \(/test\): its next request (would|does) not fit command budget /test" \
	"block, text mode: the stop names the request that would not fit"
assert_eq "$(report_get "$report" '[r["agents"][0]["status"], r["agents"][0]["exit_code"]]')" "stopped 87" \
	"block, text mode: report: agent stopped, exit_code 87"
ledger_check "block, text mode" "$report"
edge_check "block, text mode" "$report"
echo "# block, text mode: $text_calls calls reached the API, $(sum_of "$(ground_truth /test)") tokens billed"

# --- in a script: stopped, then the next /test agent is refused before it sends anything -------

standin_start block
rm -f "$E2E_PROJECT/block.marker"
report=$E2E_TMP/refuse.json
cat >"$E2E_TMP/refuse.sh" <<'SH'
#!/usr/bin/env bash
claude -p /test --allowedTools Bash --output-format stream-json --verbose >a1.out 2>a1.err </dev/null
echo $? >a1.status
wc -l <"$STANDIN_LOG" >log.before
claude -p /test --allowedTools Bash --output-format stream-json --verbose >a2.out 2>a2.err </dev/null
echo $? >a2.status
wc -l <"$STANDIN_LOG" >log.after
SH
export STANDIN_LOG
run_tbwrap "$E2E_TMP/refuse.out" "$E2E_TMP/refuse.err" --budget-enforcement-mode block \
	--command-budget "/test=$LIMIT" --report-json "$report" -- bash "$E2E_TMP/refuse.sh"
echo "# script with a stopped and a refused agent: tbwrap exited $TBWRAP_RC (the script's own status)"
assert_eq "$(cat "$E2E_PROJECT/a1.status") $(cat "$E2E_PROJECT/a2.status")" "87 86" \
	"refuse: first agent stopped (87), second refused with exit 86"
pid2=$(report_get "$report" '[a["pid"] for a in r["agents"] if a["status"] == "refused"][0]')
# The second agent's first call is predicted as the first agent's first call (4250: "4.2K"), not
# as --estimate (1000), which would have fitted and then crossed the budget.
assert_line_match "$(cat "$E2E_PROJECT/a2.err")" "^tbwrap\[$pid2\]: refused command budget /test: used [0-9.]+K \+ reserved [0-9.]+K? \+ estimate 4\.2K > limit 10\.0K \(block mode\)$" \
	"refuse: the refused agent's one line: its estimate is the first agent's first call (4.2K)"
assert_eq "$(cat "$E2E_PROJECT/a2.out")" "" "refuse: the refused agent printed nothing on stdout"
assert_eq "$(cat "$E2E_PROJECT/log.after")" "$(cat "$E2E_PROJECT/log.before")" \
	"refuse: the stand-in received no request at all from the refused agent"
assert_eq "$(standin_sessions /test | wc -l)" "1" "refuse: only the first agent's session reached the stand-in"
assert_eq "$(report_get "$report" '[a["status"] for a in r["agents"]]')" "stopped refused" \
	"refuse: report lists the stopped agent, then the refused one"
assert_eq "$(report_get "$report" '[[c["stopped"], c["refused"], c["agents"], c["overshoot"]] for c in r["commands"] if c["name"] == "/test"][0]')" "1 1 1 0" \
	"refuse: report: /test stopped 1, refused 1, agents 1 (a refused agent never ran), overshoot 0"
assert_eq "$(report_get "$report" '[a["usage"][k] for a in r["agents"] if a["status"] == "refused" for k in ("input", "output", "cache_creation", "cache_read")]')" "0 0 0 0" \
	"refuse: the refused agent used nothing"
ledger_check "refuse" "$report"

# --- the same session under the CLI's own --max-budget-usd -------------------------------------

usd_summary=
if skip_unless_option --max-budget-usd "max-budget-usd: the same session under the CLI's own USD budget"; then
	# The CLI's own price of one call of this scenario (prices differ between versions and
	# models): a session of that one call.
	python3 -c 'import json, sys; sc = json.load(open(sys.argv[1])); sc.update(turns=0, delay_ms=0); print(json.dumps(sc))' \
		"$SCENARIO" >"$E2E_TMP/one_call.json"
	standin_start "$E2E_TMP/one_call.json"
	run_claude "$E2E_TMP/one.out" "$E2E_TMP/one.err" -p /test --output-format json
	per_call=$(result_cost "$E2E_TMP/one.out")
	assert_eq "$CLAUDE_RC $(main_calls /test)" "0 1" "max-budget-usd: a one-call session gives the CLI's price of a call (\$$per_call)"

	standin_start block
	rm -f "$E2E_PROJECT/block.marker"
	out=$E2E_TMP/usd.out
	run_claude "$out" "$out.err" -p /test --allowedTools Bash --output-format stream-json --verbose \
		--max-budget-usd "$USD_LIMIT"
	usd_ms=$CLAUDE_MS
	usd_calls=$(main_calls /test)
	usd_cost=$(result_cost "$out")
	# The CLI checks its budget between calls: it stops after the first call that takes the cost
	# over, and its cost is that many calls at its own price.
	read -r usd_expect usd_expect_cost <<<"$(python3 -c "
import sys
per, lim = float(sys.argv[1]), float(sys.argv[2])
k = 1
while k * per <= lim + 1e-12:
    k += 1
print(k, round(k * per, 6))" "${per_call:-0}" "$USD_LIMIT")"
	assert_eq "$CLAUDE_RC" "1" "max-budget-usd: claude exits 1"
	assert_eq "$(result_field "$out" errors | tr -d "[]'")" "Reached maximum budget (\$$USD_LIMIT)" \
		"max-budget-usd: the result line's errors name the USD budget"
	assert_eq "$(result_field "$out" subtype)" "error_max_budget_usd" "max-budget-usd: result subtype error_max_budget_usd"
	assert_eq "$usd_calls" "$usd_expect" "max-budget-usd: stopped after call $usd_expect, the first to take the cost over \$$USD_LIMIT"
	assert_eq "$(python3 -c 'import sys; print(round(float(sys.argv[1] or 0), 6))' "$usd_cost")" "$usd_expect_cost" \
		"max-budget-usd: its total_cost_usd is $usd_expect calls at its own price"
	# Its result line's "usage" leaves out the last call; modelUsage holds the whole session.
	assert_eq "$(result_model_usage "$out")" "$(ground_truth /test)" "max-budget-usd: its result's modelUsage is every call in full"
	echo "# max-budget-usd: the result line's own usage field says $(result_usage "$out") (one call short)"

	# The same run under tbwrap (warn mode, no budget): the ledger is the whole truth although
	# the result line's usage field is one call short.
	standin_start block
	rm -f "$E2E_PROJECT/block.marker"
	report=$E2E_TMP/usd.json
	run_tbwrap "$out" "$out.err" --report-json "$report" -- claude -p /test --allowedTools Bash \
		--output-format stream-json --verbose --max-budget-usd "$USD_LIMIT"
	assert_eq "$TBWRAP_RC" "1" "max-budget-usd under tbwrap: the CLI's exit status 1 passes through"
	assert_eq "$(report_usage "$report" /test)" "$(ground_truth /test)" \
		"max-budget-usd under tbwrap: report /test usage equals the ground truth ($usd_expect calls)"
	assert_eq "$(report_get "$report" '[r["agents"][0][k] for k in ("status", "exit_code", "result_subtype", "cost_usd")]')" \
		"exited 1 error_max_budget_usd $(result_cost "$out")" \
		"max-budget-usd under tbwrap: agent exited 1, subtype error_max_budget_usd, cost_usd the result line's"
	usd_summary="# --max-budget-usd $USD_LIMIT: stopped after $usd_calls calls, between calls (the last one complete), \$$(printf '%.4f' "$usd_cost") = $(sum_of "$(ground_truth /test)") tokens, exit 1, ${usd_ms} ms; per instance only, a new instance starts from \$0"
fi

echo "# tbwrap block (/test=$LIMIT tokens): stopped after $tb_calls calls (the next one refused before it was sent), billed $billed tokens, exit 87, ${block_ms} ms; next /test agent refused before any request (exit 86)"
[[ -z $usd_summary ]] || echo "$usd_summary"
