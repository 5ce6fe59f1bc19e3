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

# 3 tool turns + the final answer = 4 calls of 1000 input / 50 output / 200 cc / 3000 cr in the
# main conversation; 1.0.128 adds a side call per Bash run (tests/standin/README).
expect="4000 200 800 12000"

# check_mode NAME HAS_RESULT ARGS...: the same /test session without, then with tbwrap, each
# against a fresh stand-in so that each log holds one session only.
check_mode() {
	local name=$1 has_result=$2
	shift 2
	local plain=$E2E_TMP/$name.plain wrapped=$E2E_TMP/$name.wrapped report=$E2E_TMP/$name.report.json

	# Each run has its own config dir: a session's side calls may depend on the sessions before
	# it there (fresh_config in lib.sh), and the two stdouts are compared.
	standin_start three_turns
	fresh_config
	rm -f "$E2E_PROJECT/test.marker"
	run_claude "$plain" "$plain.err" -p "/test" --allowedTools Bash "$@"
	if ((CLAUDE_RC != 0)); then
		not_ok "$name: the session runs without tbwrap" "claude exited $CLAUDE_RC" "$(head -c 2000 "$plain.err")"
		return
	fi
	local plain_ms=$CLAUDE_MS plain_log=$STANDIN_LOG

	standin_start three_turns
	fresh_config
	rm -f "$E2E_PROJECT/test.marker"
	run_tbwrap "$wrapped" "$wrapped.err" --report-json "$report" -- claude -p "/test" --allowedTools Bash "$@"
	echo "# $name: unwrapped $plain_ms ms, under tbwrap $TBWRAP_MS ms"
	assert_eq "$TBWRAP_RC" "0" "$name: tbwrap exits 0"
	if [[ ! -s $report ]]; then
		not_ok "$name: tbwrap wrote the report" "$(head -c 2000 "$wrapped.err")"
		return
	fi
	assert_eq "$(tr '\n' ' ' <"$E2E_PROJECT/test.marker" 2>/dev/null | sed 's/ $//')" "tool-ran tool-ran tool-ran" \
		"$name: the Bash tool ran 3 times under tbwrap"

	local truth truth_all what="equals the ground truth"
	truth=$(ground_truth /test)
	truth_all=$(ground_truth)
	assert_eq "$(cli_truth /test)" "$expect" "$name: stand-in billed the 4 calls of the main conversation"
	assert_eq "$truth_all" "$truth" "$name: every call billed belongs to /test"
	if claude_is_node && [[ $name == text ]]; then
		# Known limit (README, Limits): the Node build's text mode has no usage source for its
		# side calls (tool-less calls to a small model, one per Bash run); they are only in the
		# result's modelUsage, which text mode does not print, and in no transcript. So the
		# ledger is exactly the ground truth minus the side calls the stand-in billed.
		truth=$(usage_minus "$truth" "$(side_truth /test)")
		truth_all=$truth
		what="equals the ground truth minus the $(billed_of calls side /test) side calls ($(side_truth /test))"
		echo "# $name: $(claude_version) text mode: tbwrap cannot see the side calls: $(side_truth /test) of $(ground_truth /test)"
	elif [[ $has_result == yes ]] && assert_model_usage "$name" "$wrapped" && [[ $UNCOUNTED != "0 0 0 0" ]]; then
		# Known limit: a 1.0.x side call still streaming when the session ends is billed and
		# counted nowhere, not even in the result's modelUsage.
		truth=$(usage_minus "$truth" "$UNCOUNTED")
		truth_all=$truth
		what="equals the ground truth minus the side call the CLI cut off at its end ($UNCOUNTED)"
	fi
	assert_eq "$(report_usage "$report" /test)" "$truth" "$name: report /test usage $what"
	assert_eq "$(report_usage "$report")" "$truth_all" "$name: report overall usage $what"
	assert_eq "$(report_get "$report" '[c["used"]["total"] for c in r["commands"] if c["name"] == "/test"][0]') $(report_get "$report" 'r["overall"]["used"]["total"]')" \
		"$(sum_of "$truth") $(sum_of "$truth_all")" \
		"$name: report totals (/test, overall) are $(sum_of "$truth")"
	assert_eq "$(report_get "$report" '[len(r["agents"]), r["agents"][0]["command"], r["agents"][0]["status"], r["agents"][0]["exit_code"]] + [r["agents"][0]["usage"][k] for k in ("input", "output", "cache_creation", "cache_read")]')" \
		"1 /test exited 0 $truth" \
		"$name: one agent, /test, exited with status 0, its own usage exact"
	if [[ $has_result == yes ]]; then
		# The CLI's own cost, as its result line says (prices differ between versions).
		assert_eq "$(report_get "$report" '[r["agents"][0]["cost_usd"], r["agents"][0]["result_subtype"]]')" "$(result_cost "$wrapped") success" \
			"$name: agent cost_usd and subtype are the result line's (\$$(result_cost "$wrapped"), success)"
	fi

	if [[ $name == text ]]; then
		if cmp -s "$plain" "$wrapped"; then
			ok "$name: stdout is byte-identical to the run without tbwrap"
		else
			not_ok "$name: stdout is byte-identical to the run without tbwrap" \
				"$(diff <(od -c "$plain") <(od -c "$wrapped") | head -20)"
		fi
	else
		local d side_models=
		# The Node build's side calls are not made the same number of times in two runs of one
		# session (the one after the last Bash run races the session's end, and a session can
		# first ask for a title of another one in the config dir): its result's cost and the
		# small model's modelUsage entry follow them. They are masked here only; the ledger
		# checks above hold them exactly.
		claude_is_node && side_models=$(cat "$plain_log" "$STANDIN_LOG" | side_models)
		if d=$(diff <(normalize "$plain" | mask_side "$side_models") <(normalize "$wrapped" | mask_side "$side_models")); then
			ok "$name: stdout ($(wc -l <"$wrapped") lines) equals the run without tbwrap (ids, timings normalised)"
		else
			not_ok "$name: stdout equals the run without tbwrap (ids, timings normalised)" "$(head -c 3000 <<<"$d")"
		fi
		assert_eq "$(result_usage "$wrapped")" "$(cli_truth /test)" "$name: the CLI's own result usage is its main conversation"
		assert_eq "$(result_model_usage "$wrapped")" "$truth" "$name: the CLI's own result modelUsage agrees with the ledger"
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
