#!/usr/bin/env bash
# How close to a budget each way of holding it ends: the same sessions, side by side in one run,
# under tbwrap's block mode (a token budget) and under the CLI's own --max-budget-usd (the same
# budget in dollars at the CLI's own price for the session's tokens), against the local API
# stand-in. Prints, per scenario and way: the budget, what the stand-in billed (tokens, and
# dollars at the CLI's price), the overshoot (billed over the budget, in % of it), the API calls.
# No thresholds: the figures are the result. A run whose ledger differs from the billing fails.
#
# Scenarios: constant-size calls (4,250 tokens each), growing calls (the input side is the real
# request's size, the output 400 tokens longer each turn), three agents in parallel, and two
# subagents calling at once. --max-budget-usd is per CLI instance: with three agents each gets a
# third of the budget (what a team would set to hold the total).
#
#   bash tests/bench/bench_nevercross.sh      (the pinned Claude Code; E2E_CLAUDE_VERSION=V for another)
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../e2e/lib.sh"

e2e_setup
tbwrap_require
if ! claude_has_option --max-budget-usd; then
	echo "bench_nevercross: Claude Code $(claude_version) has no --max-budget-usd" >&2
	exit 2
fi

SC=$E2E_TMP/sc
mkdir -p "$SC"
USAGE='"usage": {"input": 1000, "cache_creation": 200, "cache_read": 3000, "output": 50}'
echo "{\"turns\": 7, $USAGE, \"bash\": \"echo ran >> marker\", \"delay_ms\": 20}" >"$SC/constant.json"
echo '{"turns": 8, "usage": {"input": 20, "cache_creation": 0, "cache_read": 0, "output": 60}, "usage_from_body": true, "output_step": 400, "bash": "seq 1 20", "delay_ms": 20}' >"$SC/growing.json"
echo "{\"turns\": 3, $USAGE, \"agents\": 2, \"agent_turns\": 3, \"delay_ms\": 20}" >"$SC/subagents.json"

# usd_of: the CLI's price of what the stand-in billed, from a run of the same scenario without a
# budget: its total_cost_usd per billed token, per scenario (prices differ by token kind, so
# the rate is the session's own).
declare -A RATE
rate_of() {
	local name=$1 out=$E2E_TMP/rate.out
	shift
	fresh_config
	standin_start "$SC/$name.json"
	run_claude "$out" "$out.err" -p /test --allowedTools Bash --output-format json "$@"
	# Set here, not printed for a $(...): the stand-in started above keeps such a pipe open.
	RATE[$name]=$(python3 -c 'import sys; print(float(sys.argv[1]) / int(sys.argv[2]))' "$(result_cost "$out")" "$(sum_of "$(ground_truth)")")
}

ROWS=()
# row SCENARIO WAY BUDGET_TOKENS RATE: one line of the table from the stand-in's log.
row() {
	local billed calls usd over
	billed=$(sum_of "$(ground_truth)")
	calls=$(billed_calls)
	usd=$(python3 -c 'import sys; print("%.4f" % (int(sys.argv[1]) * float(sys.argv[2])))' "$billed" "$4")
	over=$(python3 -c 'import sys; b, l = int(sys.argv[1]), int(sys.argv[2]); print("%+.1f%%" % (100.0 * (b - l) / l))' "$billed" "$3")
	ROWS+=("$(printf '%-10s %-26s %9s %9s %8s %9s %5s' "$1" "$2" "$3" "$billed" "\$$usd" "$over" "$calls")")
}

bad=0
# run_pair LABEL SCENARIO BUDGET AGENTS: AGENTS sessions at once under both ways.
run_pair() {
	local label=$1 name=$2 budget=$3 agents=$4
	local rate=${RATE[$name]}
	local usd
	usd=$(python3 -c 'import sys; print("%.6f" % (int(sys.argv[1]) * float(sys.argv[2]) / int(sys.argv[3])))' "$budget" "$rate" "$agents")
	local par="" i
	for ((i = 1; i <= agents; i++)); do
		par+="claude -p /test --allowedTools Bash --output-format stream-json --verbose \$EXTRA >a$i.out 2>a$i.err </dev/null & "
	done
	echo "$par wait" >"$E2E_TMP/run.sh"

	fresh_config
	standin_start "$SC/$name.json"
	EXTRA="" run_tbwrap "$E2E_TMP/t.out" "$E2E_TMP/t.err" --budget-enforcement-mode block --estimate 4250 \
		--overall-token-budget "$budget" --report-json "$E2E_TMP/t.json" -- bash "$E2E_TMP/run.sh"
	if [[ $(ground_truth) != "$(report_usage "$E2E_TMP/t.json")" ]] && ! claude_is_node; then
		echo "bench_nevercross: $label: the ledger $(report_usage "$E2E_TMP/t.json") is not the billing $(ground_truth)" >&2
		bad=1
	fi
	row "$label" "tbwrap block" "$budget" "$rate"

	fresh_config
	standin_start "$SC/$name.json"
	(cd "$E2E_PROJECT" && EXTRA="--max-budget-usd $usd" timeout -k 5 300 bash "$E2E_TMP/run.sh") >/dev/null 2>&1
	local per=""
	((agents > 1)) && per=" ($agents x \$$usd)"
	row "$label" "--max-budget-usd$per" "$budget" "$rate"
}

rate_of constant
rate_of growing
rate_of subagents
export EXTRA
run_pair constant constant 15000 1
run_pair growing growing 80000 1
run_pair parallel constant 30000 3
if claude_is_node; then
	echo "# subagents: Claude Code $(claude_version) runs them in the session transcript; left out"
else
	run_pair subagents subagents 20000 1
fi

echo "# Claude Code $(claude_version); budgets in tokens; --max-budget-usd gets the same budget in dollars at the CLI's price for the scenario's tokens"
printf '%-10s %-26s %9s %9s %8s %9s %5s\n' scenario way budget billed "billed\$" over calls
printf '%s\n' "${ROWS[@]}"
exit "$bad"
