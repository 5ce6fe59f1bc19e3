#!/usr/bin/env bash
# tbwrap around the real Claude Code CLI in each of its output modes: the ledger must hold
# exactly what the API stand-in billed (per command and overall), and the agent's stdout must be
# what the same session prints without tbwrap (byte for byte in text mode; JSON modes after
# replacing ids and timings, which differ between any two runs).
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_setup
tbwrap_require

# 3 tool turns + the final answer = 4 calls of 1000 input / 50 output / 200 cc / 3000 cr.
expect="4000 200 800 12000"

# check_mode NAME HAS_RESULT ARGS...: the same /test session without, then with tbwrap, each
# against a fresh stand-in so that each log holds one session only.
check_mode() {
	local name=$1 has_result=$2
	shift 2
	local plain=$E2E_TMP/$name.plain wrapped=$E2E_TMP/$name.wrapped report=$E2E_TMP/$name.report.json

	standin_start three_turns
	rm -f "$E2E_PROJECT/test.marker"
	run_claude "$plain" "$plain.err" -p "/test" --allowedTools Bash "$@"
	if ((CLAUDE_RC != 0)); then
		not_ok "$name: the session runs without tbwrap" "claude exited $CLAUDE_RC" "$(head -c 2000 "$plain.err")"
		return
	fi
	local plain_ms=$CLAUDE_MS

	standin_start three_turns
	rm -f "$E2E_PROJECT/test.marker"
	run_tbwrap "$wrapped" "$wrapped.err" --report-json "$report" -- claude -p "/test" --allowedTools Bash "$@"
	echo "# $name: unwrapped $plain_ms ms, under tbwrap $TBWRAP_MS ms"
	assert_eq "0" "$TBWRAP_RC" "$name: tbwrap exits 0"
	if [[ ! -s $report ]]; then
		not_ok "$name: tbwrap wrote the report" "$(head -c 2000 "$wrapped.err")"
		return
	fi
	assert_eq "tool-ran tool-ran tool-ran" "$(tr '\n' ' ' <"$E2E_PROJECT/test.marker" 2>/dev/null | sed 's/ $//')" \
		"$name: the Bash tool ran 3 times under tbwrap"

	local truth truth_all
	truth=$(ground_truth /test)
	truth_all=$(ground_truth)
	assert_eq "$expect" "$truth" "$name: stand-in ground truth is 4 calls"
	assert_eq "$truth" "$(report_usage "$report" /test)" "$name: report /test usage equals the ground truth"
	assert_eq "$truth_all" "$(report_usage "$report")" "$name: report overall usage equals the ground truth"
	assert_eq "$(sum_of "$truth") $(sum_of "$truth_all")" \
		"$(report_get "$report" '[c["used"]["total"] for c in r["commands"] if c["name"] == "/test"][0]') $(report_get "$report" 'r["overall"]["used"]["total"]')" \
		"$name: report totals (/test, overall) are 17000"
	assert_eq "1 /test exited 0 $truth" \
		"$(report_get "$report" '[len(r["agents"]), r["agents"][0]["command"], r["agents"][0]["status"], r["agents"][0]["exit_code"]] + [r["agents"][0]["usage"][k] for k in ("input", "output", "cache_creation", "cache_read")]')" \
		"$name: one agent, /test, exited with status 0, its own usage exact"
	if [[ $has_result == yes ]]; then
		assert_eq "0.036 success" "$(report_get "$report" '[r["agents"][0]["cost_usd"], r["agents"][0]["result_subtype"]]')" \
			"$name: agent cost_usd 0.036 and subtype from the result line"
	fi

	if [[ $name == text ]]; then
		if cmp -s "$plain" "$wrapped"; then
			ok "$name: stdout is byte-identical to the run without tbwrap"
		else
			not_ok "$name: stdout is byte-identical to the run without tbwrap" \
				"$(diff <(od -c "$plain") <(od -c "$wrapped") | head -20)"
		fi
	else
		local d
		if d=$(diff <(normalize "$plain") <(normalize "$wrapped")); then
			ok "$name: stdout ($(wc -l <"$wrapped") lines) equals the run without tbwrap (ids, timings normalised)"
		else
			not_ok "$name: stdout equals the run without tbwrap (ids, timings normalised)" "$(head -c 3000 <<<"$d")"
		fi
		assert_eq "$truth" "$(result_usage "$wrapped")" "$name: the CLI's own result line agrees with the ledger"
	fi
	assert_contains "$(cat "$wrapped.err")" "BUDGET STATUS (warn mode)" "$name: the final report is on stderr"
	if [[ $(cat "$wrapped.err") == *"$(cat "$plain.err")"* ]]; then
		ok "$name: the agent's own stderr is passed through"
	else
		not_ok "$name: the agent's own stderr is passed through" "$(head -c 1000 "$wrapped.err")"
	fi
}

check_mode text no
check_mode json yes --output-format json
check_mode stream-json yes --output-format stream-json --verbose
check_mode stream-json-partial yes --output-format stream-json --verbose --include-partial-messages
