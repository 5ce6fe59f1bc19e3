#!/usr/bin/env bash
# Block mode with the real Claude Code CLI: a 6-call session under a /test budget is stopped in
# the API call that crosses the budget (no further call reaches the API), the next /test agent
# is refused before it sends anything, and the same session under the CLI's own
# --max-budget-usd is run for comparison.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_setup
tbwrap_require

SCENARIO=$E2E_SCENARIOS/block.json
LIMIT=10000
USD_LIMIT=0.02

# What the CLI reports of a call while it streams is its message_start snapshot (output 1); the
# native builds write the call's final output count to the transcript once it ends, but with a
# slow stream the Node build (1.0.x) never does: its assistant lines and transcript keep output
# 1 for every call (DESIGN.md §6.4; only its result line, which a stopped agent never prints,
# has the real count). SNAP_ALL: every call counts at its snapshot, not only the one in flight.
SNAP_ALL=no
claude_is_node && SNAP_ALL=yes

# From the scenario: the call that first takes the ledger over LIMIT, and what the ledger holds
# at that moment.
read -r CROSS LEDGER_AT_STOP CALLS_IN_SESSION <<<"$(python3 - "$SCENARIO" "$LIMIT" "$SNAP_ALL" <<'PY'
import json, sys
sc = json.load(open(sys.argv[1]))
u, limit = sc["usage"], int(sys.argv[2])
full = u["input"] + u["cache_creation"] + u["cache_read"] + u["output"]
snap = full - u["output"] + 1
done = snap if sys.argv[3] == "yes" else full
k = 1
while (k - 1) * done + snap <= limit:
    k += 1
print(k, (k - 1) * done + snap, sc["turns"] + 1)
PY
)"
K_FMT=$(python3 -c "import sys; print('%.1fK' % (int(sys.argv[1]) / 1000))" "$LEDGER_AT_STOP")
echo "# scenario: $CALLS_IN_SESSION calls of 4250 tokens; /test=$LIMIT is crossed in call $CROSS (ledger $LEDGER_AT_STOP = $K_FMT)"

# session_calls SESSION: calls of the main conversation of one CLI session in the stand-in's log.
session_calls() {
	python3 - "$1" "$STANDIN_LOG" <<'PY'
import json, sys
print(sum(1 for l in open(sys.argv[2]) if (r := json.loads(l)).get("billed") and r.get("kind") == "main" and r.get("session") == sys.argv[1]))
PY
}

# stopped_truth [COMMAND]: what the ledger of a stopped session holds, from the stand-in's log:
# the main conversation's calls, each at its snapshot output (1) if SNAP_ALL, else only the
# last one (the call in flight). Known difference of the Node build (README, Limits): its side
# calls are in no output a stopped agent prints, and its outputs stay at the snapshot; this is
# the billing minus exactly those.
stopped_truth() {
	python3 - "${1:-}" "$STANDIN_LOG" "$SNAP_ALL" <<'PY'
import json, sys
command, log, snap_all = sys.argv[1], sys.argv[2], sys.argv[3] == "yes"
calls = [r for r in map(json.loads, open(log))
         if r.get("billed") and r.get("kind") == "main" and (not command or r.get("command") == command)]
tot = [0, 0, 0, 0]
for i, r in enumerate(calls):
    b = r["billed"]
    out = 1 if snap_all or i == len(calls) - 1 else b["output"]
    for j, v in enumerate((b["input"], out, b["cache_creation"], b["cache_read"])):
        tot[j] += v
print(*tot)
PY
}
if [[ $SNAP_ALL == yes ]]; then
	STOPPED_WHAT="main calls at their snapshot output (1), side calls unseen"
else
	STOPPED_WHAT="output minus 49 for the call in flight"
fi

# --- the agent is tbwrap's own child: stopped, exit 87 -----------------------------------------

standin_start block
report=$E2E_TMP/block.json
out=$E2E_TMP/block.out
run_tbwrap "$out" "$out.err" --budget-enforcement-mode block --command-budget "/test=$LIMIT" \
	--report-json "$report" -- claude -p /test --allowedTools Bash --output-format stream-json --verbose
lines_at_return=$(wc -l <"$STANDIN_LOG")
block_ms=$TBWRAP_MS
assert_eq "87" "$TBWRAP_RC" "block: tbwrap exits 87 (an agent was stopped for its budget)"
if [[ ! -s $report ]]; then
	not_ok "block: tbwrap wrote the report" "$(head -c 2000 "$out.err")"
	exit 1
fi
pid=$(report_get "$report" 'r["agents"][0]["pid"]')
sid=$(standin_sessions /test)
assert_eq "1" "$(wc -l <<<"$sid")" "block: the stand-in saw one session"
assert_eq "$CROSS" "$(session_calls "$sid")" "block: exactly $CROSS calls of the session's main conversation billed (stopped in the crossing call)"
sleep 1 # anything the stopped agent still had queued would arrive now
assert_eq "$CROSS $lines_at_return" "$(session_calls "$sid") $(wc -l <"$STANDIN_LOG")" \
	"block: a second after tbwrap returned, still $CROSS calls and no request of any kind"
stop_line="tbwrap: stopping agent $pid (/test): command budget /test exceeded, used $K_FMT/10.0K (block mode)"
assert_eq "1" "$(grep -cxF "$stop_line" "$out.err")" "block: stderr says '$stop_line'"
assert_eq "stopped 143" "$(report_get "$report" '[r["agents"][0]["status"], r["agents"][0]["exit_code"]]')" \
	"block: report: agent status stopped, exit_code 143 (SIGTERM)"
assert_eq "1 0 1" "$(report_get "$report" '[[c["stopped"], c["refused"], c["agents"]] for c in r["commands"] if c["name"] == "/test"][0]')" \
	"block: report: /test stopped 1, refused 0, agents 1"
# The call in flight counts as the CLI reported it so far: its message_start snapshot (output 1,
# the final output arrives later), so the ledger's output is the truth minus (output - 1).
assert_eq "$(stopped_truth /test)" "$(report_usage "$report" /test)" \
	"block: report /test usage = ground truth, $STOPPED_WHAT"
assert_eq "$(stopped_truth)" "$(report_usage "$report")" "block: report overall usage likewise"
if [[ $SNAP_ALL == yes ]]; then
	echo "# block: $(claude_version) billed $(ground_truth /test), the ledger holds $(report_usage "$report" /test): side calls $(side_truth /test) unseen, outputs at 1"
fi
assert_eq "$LEDGER_AT_STOP" "$(report_get "$report" 'r["overall"]["used"]["total"]')" "block: ledger total $LEDGER_AT_STOP at the stop"
assert_eq "$((CROSS - 1))" "$(wc -l <"$E2E_PROJECT/block.marker" 2>/dev/null || echo 0)" \
	"block: the Bash tool ran for the $((CROSS - 1)) calls before the crossing one only"
tb_calls=$(session_calls "$sid")

# --- text mode: the usage arrives with the transcript ------------------------------------------

# Text mode prints no usage; a call's usage reaches tbwrap when the CLI writes it to its
# transcript, which it does only once the next call has been sent. Block mode holds each new
# request until the previous call's usage is in, so the request after the crossing call is
# refused: exactly the crossing call is the last one billed, and the ledger holds it in full.
standin_start block
rm -f "$E2E_PROJECT/block.marker"
report=$E2E_TMP/block-text.json
out=$E2E_TMP/block-text.out
run_tbwrap "$out" "$out.err" --budget-enforcement-mode block --command-budget "/test=$LIMIT" \
	--report-json "$report" -- claude -p /test --allowedTools Bash
lines_at_return=$(wc -l <"$STANDIN_LOG")
text_calls=$(main_calls /test)
assert_eq "87" "$TBWRAP_RC" "block, text mode: tbwrap exits 87"
assert_eq "$CROSS" "$text_calls" "block, text mode: stopped in the crossing call (no request after it)"
sleep 1
assert_eq "$lines_at_return" "$(wc -l <"$STANDIN_LOG")" "block, text mode: no request after tbwrap returned"
full_calls=$(python3 - "$SCENARIO" "$CROSS" "$SNAP_ALL" <<'PY'
import json, sys
u, k = json.load(open(sys.argv[1]))["usage"], int(sys.argv[2])
out = 1 if sys.argv[3] == "yes" else u["output"]
print(k * u["input"], k * out, k * u["cache_creation"], k * u["cache_read"])
PY
)
if [[ $SNAP_ALL == yes ]]; then
	assert_eq "$full_calls" "$(report_usage "$report" /test)" \
		"block, text mode: the ledger holds the first $CROSS calls as the transcript has them (output 1, no side calls)"
else
	assert_eq "$full_calls" "$(report_usage "$report" /test)" "block, text mode: the ledger holds the first $CROSS calls in full"
fi
assert_eq "stopped 143" "$(report_get "$report" '[r["agents"][0]["status"], r["agents"][0]["exit_code"]]')" \
	"block, text mode: report: agent stopped, exit_code 143"
echo "# block, text mode: $text_calls calls reached the API, the ledger holds $CROSS ($(sum_of "$full_calls") tokens)"

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
assert_eq "143 86" "$(cat "$E2E_PROJECT/a1.status") $(cat "$E2E_PROJECT/a2.status")" \
	"refuse: first agent killed by SIGTERM (143), second refused with exit 86"
pid2=$(report_get "$report" '[a["pid"] for a in r["agents"] if a["status"] == "refused"][0]')
refuse_line="tbwrap[$pid2]: refused command budget /test: used $K_FMT + reserved 0 + estimate 1.0K > limit 10.0K (block mode)"
assert_eq "$refuse_line" "$(cat "$E2E_PROJECT/a2.err")" "refuse: the refused agent's stderr is exactly '$refuse_line'"
assert_eq "" "$(cat "$E2E_PROJECT/a2.out")" "refuse: the refused agent printed nothing on stdout"
assert_eq "$(cat "$E2E_PROJECT/log.before")" "$(cat "$E2E_PROJECT/log.after")" \
	"refuse: the stand-in received no request at all from the refused agent"
assert_eq "1" "$(standin_sessions /test | wc -l)" "refuse: only the first agent's session reached the stand-in"
assert_eq "$CROSS" "$(main_calls /test)" "refuse: $CROSS calls of a main conversation billed in all"
assert_eq "stopped refused" "$(report_get "$report" '[a["status"] for a in r["agents"]]')" \
	"refuse: report lists the stopped agent, then the refused one"
assert_eq "1 1 1" "$(report_get "$report" '[[c["stopped"], c["refused"], c["agents"]] for c in r["commands"] if c["name"] == "/test"][0]')" \
	"refuse: report: /test stopped 1, refused 1, agents 1 (a refused agent never ran)"
assert_eq "0 0 0 0" "$(report_get "$report" '[a["usage"][k] for a in r["agents"] if a["status"] == "refused" for k in ("input", "output", "cache_creation", "cache_read")]')" \
	"refuse: the refused agent used nothing"
assert_eq "$(stopped_truth /test)" "$(report_usage "$report" /test)" \
	"refuse: report /test usage = ground truth, $STOPPED_WHAT"

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
	assert_eq "0 1" "$CLAUDE_RC $(main_calls /test)" "max-budget-usd: a one-call session gives the CLI's price of a call (\$$per_call)"

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
	assert_eq "1" "$CLAUDE_RC" "max-budget-usd: claude exits 1"
	assert_eq "Reached maximum budget (\$$USD_LIMIT)" "$(result_field "$out" errors | tr -d "[]'")" \
		"max-budget-usd: the result line's errors name the USD budget"
	assert_eq "error_max_budget_usd" "$(result_field "$out" subtype)" "max-budget-usd: result subtype error_max_budget_usd"
	assert_eq "$usd_expect" "$usd_calls" "max-budget-usd: stopped after call $usd_expect, the first to take the cost over \$$USD_LIMIT"
	assert_eq "$usd_expect_cost" "$(python3 -c 'import sys; print(round(float(sys.argv[1] or 0), 6))' "$usd_cost")" \
		"max-budget-usd: its total_cost_usd is $usd_expect calls at its own price"
	# Its result line's "usage" leaves out the last call; modelUsage holds the whole session.
	assert_eq "$(ground_truth /test)" "$(result_model_usage "$out")" "max-budget-usd: its result's modelUsage is every call in full"
	echo "# max-budget-usd: the result line's own usage field says $(result_usage "$out") (one call short)"

	# The same run under tbwrap (warn mode, no budget): the ledger is the whole truth although
	# the result line's usage field is one call short.
	standin_start block
	rm -f "$E2E_PROJECT/block.marker"
	report=$E2E_TMP/usd.json
	run_tbwrap "$out" "$out.err" --report-json "$report" -- claude -p /test --allowedTools Bash \
		--output-format stream-json --verbose --max-budget-usd "$USD_LIMIT"
	assert_eq "1" "$TBWRAP_RC" "max-budget-usd under tbwrap: the CLI's exit status 1 passes through"
	assert_eq "$(ground_truth /test)" "$(report_usage "$report" /test)" \
		"max-budget-usd under tbwrap: report /test usage equals the ground truth ($usd_expect calls)"
	assert_eq "exited 1 error_max_budget_usd $(result_cost "$out")" \
		"$(report_get "$report" '[r["agents"][0][k] for k in ("status", "exit_code", "result_subtype", "cost_usd")]')" \
		"max-budget-usd under tbwrap: agent exited 1, subtype error_max_budget_usd, cost_usd the result line's"
	usd_summary="# --max-budget-usd $USD_LIMIT: stopped after $usd_calls calls, between calls (the last one complete), \$$(printf '%.4f' "$usd_cost") = $(sum_of "$(ground_truth /test)") tokens, exit 1, ${usd_ms} ms; per instance only, a new instance starts from \$0"
fi

echo "# tbwrap block (/test=$LIMIT tokens): stopped after $tb_calls calls, in call $CROSS as it streamed, ledger $LEDGER_AT_STOP tokens, exit 87, ${block_ms} ms; next /test agent refused before any request (exit 86)"
[[ -z $usd_summary ]] || echo "$usd_summary"
