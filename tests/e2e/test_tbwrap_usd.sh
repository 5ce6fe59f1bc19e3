#!/usr/bin/env bash
# Budgets in dollars, with the real CLI against the stand-in:
#   - tbwrap's price of every call equals a hand computation from the provider's rates (written
#     out below, not read from data/prices.txt), 1-hour cache writes included, in text, json and
#     stream-json mode;
#   - --overall-usd-budget in block mode: never crossed, and not more conservative than one
#     call; in warn mode: the crossing is reported, nothing is stopped;
#   - --count input,output: a token budget the four-class total would exceed at the first call;
#   - a model the price table lacks: block mode under a USD budget stops the agent naming the
#     model and the fix, warn mode warns once and prices it at the table's highest rates;
#   - a --prices file of one's own, a malformed one (exit 2, its line, nothing run), and
#     `tbwrap prices`.
# Claude Code 1.0.x shows its calls' real output only in its result line (README, Limits): the
# exact-price checks run on 2.1.x.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_setup
tbwrap_require

USAGE='"usage": {"input": 1000, "cache_creation": 200, "cache_read": 3000, "output": 50}, "cache_1h": 100'
THREE=$(scenario_file three "{\"turns\": 2, $USAGE, \"bash\": \"echo ran >> marker\", \"delay_ms\": 20, \"text\": \"Turn {turn}. \"}")
SIX=$(scenario_file six "{\"turns\": 5, $USAGE, \"bash\": \"echo ran >> marker\", \"delay_ms\": 20, \"text\": \"Turn {turn}. \"}")

# hand_usd [LOG] [RATES]: what the stand-in billed, priced by hand: USD per million tokens of each
# model the CLIs ask for (platform.claude.com/docs/en/about-claude/pricing, read 2026-10): input,
# 5-minute cache write, 1-hour cache write, cache read, output. RATES "model=i,w5,w1,r,o;..."
# replaces them. Exact decimals.
hand_usd() {
	python3 - "${1:-$STANDIN_LOG}" "${2:-}" <<'PY'
import json, sys
from decimal import Decimal as D
rates = {
    "claude-opus-4-8": "5 6.25 10 0.50 25",
    "claude-opus-5-5": "4 5 8 0.20 20",
}
if sys.argv[2]:
    rates = dict(kv.split("=") for kv in sys.argv[2].split(";"))
    rates = {k: v.replace(",", " ") for k, v in rates.items()}
total = D(0)
for r in map(json.loads, open(sys.argv[1])):
    b = r.get("billed")
    if not b:
        continue
    i, w5, w1, rd, o = map(D, rates[r["model"]].split())
    h1 = b.get("cache_1h", 0)
    micro = b["input"] * i + (b["cache_creation"] - h1) * w5 + h1 * w1 + b["cache_read"] * rd + b["output"] * o
    total += micro / D(1000000)
print(total.normalize() if total else "0")
PY
}

# report_usd REPORT [EXPR]: a USD figure of the report, exactly as written (overall used by
# default).
report_usd() {
	python3 - "$1" "${2:-r['overall']['used']['usd']}" <<'PY'
import json, sys
from decimal import Decimal
r = json.load(open(sys.argv[1]), parse_float=Decimal, parse_int=Decimal)
v = eval(sys.argv[2], {"r": r})
print(v.normalize() if v else "0")
PY
}

# dec_le A B: A <= B as exact decimals.
dec_le() {
	python3 -c 'import sys; from decimal import Decimal as D; sys.exit(0 if D(sys.argv[1]) <= D(sys.argv[2]) else 1)' "$1" "$2"
}

# ---- tbwrap prices ------------------------------------------------------------------------------
"$TBWRAP" prices >"$E2E_TMP/prices.out" 2>"$E2E_TMP/prices.err"
assert_eq "$?" "0" "tbwrap prices: exit 0"
assert_line_match "$(cat "$E2E_TMP/prices.out")" "^claude-opus-4-\[5-8\] +- +- +5 +6\.25 +10 +0\.50 +25 +platform\.claude\.com/docs/en/about-claude/pricing, read 2026-10$" \
	"tbwrap prices: the Opus 4.5-4.8 row, dated and sourced"
assert_line_match "$(head -n 1 "$E2E_TMP/prices.out")" "^# prices in use: built-in \(data/prices\.txt\)" "tbwrap prices: says which table"

# ---- a malformed --prices file: exit 2, its line, nothing run ---------------------------------------
printf '# mine\nclaude-opus-4-8 - - 5 6.25 10 0.50 25 ok\nclaude-x - - 5 6.25 ten 0.50 25 bad\n' >"$E2E_TMP/bad-prices.txt"
standin_start "$THREE"
run_tbwrap "$E2E_TMP/m.out" "$E2E_TMP/m.err" --prices "$E2E_TMP/bad-prices.txt" -- claude -p /test --allowedTools Bash
assert_eq "$TBWRAP_RC $(billed_calls)" "2 0" "malformed --prices: exit 2, no call made"
assert_eq "$(cat "$E2E_TMP/m.err")" \
	"tbwrap: --prices $E2E_TMP/bad-prices.txt:3: write_1h rate 'ten' is not a price in USD per million tokens (like 3 or 0.30, at most 6 decimals)" "malformed --prices: one line naming the file, the line and the field"
"$TBWRAP" prices --prices "$E2E_TMP/bad-prices.txt" >/dev/null 2>&1
assert_eq "$?" "2" "tbwrap prices with the malformed file: exit 2"
run_tbwrap "$E2E_TMP/m.out" "$E2E_TMP/m.err" --prices "$E2E_TMP/none.txt" -- claude -p /test
assert_eq "$TBWRAP_RC $(cat "$E2E_TMP/m.err")" "2 tbwrap: --prices $E2E_TMP/none.txt: No such file or directory" \
	"a missing --prices file: exit 2 with the cause"

if claude_is_node; then
	skip "USD budgets with the real CLI" "Claude Code $(claude_version) shows its calls' real output only in its result line (README, Limits)"
	exit 0
fi

# ---- exact prices in every output mode ------------------------------------------------------------
for mode in text json stream-json; do
	args=(-p /test --allowedTools Bash)
	[[ $mode != text ]] && args+=(--output-format "$mode")
	[[ $mode == stream-json ]] && args+=(--verbose)
	fresh_config
	standin_start "$THREE"
	run_tbwrap "$E2E_TMP/x.out" "$E2E_TMP/x.err" --report-json "$E2E_TMP/x.json" -- claude "${args[@]}"
	want=$(hand_usd)
	assert_eq "$TBWRAP_RC $(report_usd "$E2E_TMP/x.json") $(report_usd "$E2E_TMP/x.json" "r['agents'][0]['usage']['usd']")" "0 $want $want" \
		"$mode: tbwrap's price of the $(billed_calls) calls equals the hand computation (\$$want), overall and for the agent"
	model=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["model"])' "$STANDIN_LOG" 2>/dev/null)
	assert_eq "$(python3 -c 'import json,sys; print([json.loads(l).get("model") for l in open(sys.argv[1]) if json.loads(l).get("billed")][0])' "$STANDIN_LOG") $(report_get "$E2E_TMP/x.json" 'r["agents"][0]["priced"]')" \
		"$(report_get "$E2E_TMP/x.json" '[a["model"] for a in r["agents"]]') true" \
		"$mode: the report names the model that answered, priced"
	[[ $mode == json ]] && echo "# json: tbwrap \$$want, the CLI's own total_cost_usd \$$(report_get "$E2E_TMP/x.json" 'r["agents"][0]["cost_usd"]')"
done
unset model

# ---- a USD budget, block mode ------------------------------------------------------------------------
BUDGET=0.025
for mode in text stream-json; do
	args=(-p /test --allowedTools Bash)
	[[ $mode == stream-json ]] && args+=(--output-format stream-json --verbose)
	fresh_config
	standin_start "$SIX"
	run_tbwrap "$E2E_TMP/b.out" "$E2E_TMP/b.err" --budget-enforcement-mode block --overall-usd-budget "\$$BUDGET" \
		--report-json "$E2E_TMP/b.json" -- claude "${args[@]}"
	billed=$(hand_usd)
	calls=$(billed_calls)
	per_call=$(python3 -c 'import sys; from decimal import Decimal as D; print((D(sys.argv[1]) / int(sys.argv[2])).normalize())' "$billed" "$calls")
	assert_eq "$TBWRAP_RC" "87" "USD budget, block, $mode: the agent is stopped (87)"
	if dec_le "$billed" "$BUDGET" && ! dec_le "$(python3 -c 'import sys; from decimal import Decimal as D; print(D(sys.argv[1]) + D(sys.argv[2]))' "$billed" "$per_call")" "$BUDGET"; then
		ok "USD budget, block, $mode: billed \$$billed <= \$$BUDGET, and one more call (\$$per_call) would not fit ($calls calls)"
	else
		not_ok "USD budget, block, $mode: never crossed, not more conservative than one call" "billed \$$billed in $calls calls, budget \$$BUDGET"
	fi
	assert_eq "$(report_usd "$E2E_TMP/b.json") $(report_usd "$E2E_TMP/b.json" "r['overall']['usd_overshoot']")" "$billed 0" \
		"USD budget, block, $mode: the ledger's USD equals the billing, no overshoot"
	assert_line_match "$(cat "$E2E_TMP/b.err")" "stopping agent [0-9]+ \(/test\): its next request (would not fit|does not fit) the overall USD budget: used \\\$0\.[0-9]+ \+ reserved \\\$[0-9.]+ \+ predicted \\\$0\.[0-9]+ > limit \\\$0\.025 \(block mode\)" \
		"USD budget, block, $mode: one line says which budget, used, reserved and predicted, in dollars"
done
assert_line_match "$(cat "$E2E_TMP/b.err")" "Overall: [0-9.K]+ \(no budget\) \| USD \[[^]]*\] [0-9]+% \\\$0\.[0-9]+/\\\$0\.025" \
	"USD budget: the report shows the dollar budget's bar"

# ---- a USD budget, warn mode: reported, nothing stopped -------------------------------------------
fresh_config
standin_start "$THREE"
run_tbwrap "$E2E_TMP/w.out" "$E2E_TMP/w.err" --overall-usd-budget 0.01 --report-json "$E2E_TMP/w.json" -- \
	claude -p /test --allowedTools Bash
assert_eq "$TBWRAP_RC $(billed_calls)" "0 3" "USD budget, warn: all 3 calls made, exit 0"
assert_line_match "$(cat "$E2E_TMP/w.err")" "warning: overall USD budget exceeded: \\\$0\.[0-9]+/\\\$0\.01 \(warn mode: nothing is stopped\)" \
	"USD budget, warn: the crossing is reported"
assert_eq "$(report_usd "$E2E_TMP/w.json")" "$(hand_usd)" "USD budget, warn: the ledger's USD equals the billing"

# ---- --count input,output --------------------------------------------------------------------------
# Each call is 1000 input + 50 output (4250 with the cache classes): a token budget of 3000
# admits no call of all four classes after the first, and two of input and output.
for count in all io; do
	fresh_config
	standin_start "$SIX"
	extra=()
	[[ $count == io ]] && extra=(--count input,output)
	run_tbwrap "$E2E_TMP/c.out" "$E2E_TMP/c.err" --budget-enforcement-mode block --overall-token-budget 3000 \
		"${extra[@]}" --report-json "$E2E_TMP/c.json" -- claude -p /test --allowedTools Bash
	if [[ $count == io ]]; then
		assert_eq "$TBWRAP_RC $(billed_calls) $(report_get "$E2E_TMP/c.json" 'r["overall"]["used"]["total"]') $(report_usage "$E2E_TMP/c.json") $(report_get "$E2E_TMP/c.json" 'r["counted"]')" \
			"87 2 2100 $(ground_truth) input output" \
			"--count input,output: 2 calls fit 3000 (2100 counted), the report keeps all four counts"
	else
		assert_eq "$TBWRAP_RC $(billed_calls) $(report_get "$E2E_TMP/c.json" 'r["overall"]["used"]["total"]')" "87 1 4250" \
			"the same budget counting all four classes: the first call (4250) already crosses it"
	fi
done

# ---- a model the price table lacks ----------------------------------------------------------------
fresh_config
standin_start "$THREE"
run_tbwrap "$E2E_TMP/u.out" "$E2E_TMP/u.err" --report-json "$E2E_TMP/u.json" -- \
	claude -p /test --allowedTools Bash --model claude-future-9
calls=$(billed_calls)
assert_eq "$TBWRAP_RC $calls $(grep -c 'is not in the price table' "$E2E_TMP/u.err")" "0 3 1" \
	"unknown model, warn: runs, warned once for its $calls calls"
assert_line_match "$(cat "$E2E_TMP/u.err")" "^tbwrap: warning: model claude-future-9 is not in the price table \(built-in \(data/prices\.txt\)\): its calls are priced at the table's highest rates; give its prices with --prices FILE$" \
	"unknown model, warn: the warning names the model and the fix"
# The table's highest rates: Opus 4 and 4.1's 15 / 18.75 / 30 / 1.50 / 75.
assert_eq "$(report_usd "$E2E_TMP/u.json") $(report_get "$E2E_TMP/u.json" '[r["agents"][0][k] for k in ("priced", "model")]')" \
	"$(hand_usd "$STANDIN_LOG" "claude-future-9=15,18.75,30,1.50,75") false claude-future-9" \
	"unknown model, warn: priced at the table's highest rates, never \$0, and marked unpriced"

fresh_config
standin_start "$SIX"
run_tbwrap "$E2E_TMP/u.out" "$E2E_TMP/u.err" --budget-enforcement-mode block --overall-usd-budget 5 \
	--report-json "$E2E_TMP/u.json" -- claude -p /test --allowedTools Bash --model claude-future-9
assert_eq "$TBWRAP_RC $(billed_calls)" "87 1" "unknown model, block with a USD budget: stopped after its first call"
assert_line_match "$(cat "$E2E_TMP/u.err")" "stopping agent [0-9]+ \(/test\): model claude-future-9 is not in the price table \(built-in \(data/prices\.txt\)\): a USD budget cannot hold calls of an unknown price; give its prices with --prices FILE \(block mode\)" \
	"unknown model, block: one line names the model and the fix"

# ---- a price table of one's own -----------------------------------------------------------------------
printf '# negotiated\nclaude-custom-1 - - 1 2 3 0.1 4 our contract, 2026-11\n' >"$E2E_TMP/prices.txt"
fresh_config
standin_start "$THREE"
run_tbwrap "$E2E_TMP/p.out" "$E2E_TMP/p.err" --prices "$E2E_TMP/prices.txt" --report-json "$E2E_TMP/p.json" -- \
	claude -p /test --allowedTools Bash --model claude-custom-1
# 1000 x 1 + 100 x 2 + 100 x 3 + 3000 x 0.1 + 50 x 4 = 2000 micro-USD a call.
assert_eq "$TBWRAP_RC $(hand_usd "$STANDIN_LOG" "claude-custom-1=1,2,3,0.1,4") $(report_usd "$E2E_TMP/p.json")" "0 0.006 0.006" \
	"--prices FILE: its rates price the calls (3 x \$0.002)"
standin_stop

