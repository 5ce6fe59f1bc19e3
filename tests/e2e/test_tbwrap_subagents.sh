#!/usr/bin/env bash
# Subagents: a /test session whose first answer starts two subagents at once (the CLI's Agent
# tool, "Task" in 1.0.x), each with a Bash turn of its own, then a Bash turn of the main
# conversation. The subagents run inside the agent's process and call the API in parallel; their
# usage is in their own transcripts and never in the CLI's result `usage`. In text, json and
# stream-json modes tbwrap's report must equal the stand-in's billing exactly (main + subagents),
# while the CLI's own `usage` leaves the subagents out.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_setup
tbwrap_require

# agents.json: main 3 calls of 1000/50/200/3000 (the Agent turn, a Bash turn, the answer);
# 2 subagents, 2 calls each of 500/20/100/700 (a Bash turn, the answer).
MAIN="3000 150 600 9000"
SUBS="2000 80 400 2800"

# transcript_split FILE: usage of a transcript's assistant lines by message id (as
# transcript_usage), "main a b c d | sidechain a b c d": 1.0.x writes its subagents' lines into
# the session transcript, marked isSidechain.
transcript_split() {
	python3 - "$1" <<'PY'
import json, sys
calls = {}
for line in open(sys.argv[1], encoding="utf-8"):
    o = json.loads(line)
    m = o.get("message") if o.get("type") == "assistant" else None
    if not isinstance(m, dict) or "usage" not in m:
        continue
    u = m["usage"]
    v = (u.get("input_tokens", 0), u.get("output_tokens", 0), u.get("cache_creation_input_tokens", 0), u.get("cache_read_input_tokens", 0))
    key = (bool(o.get("isSidechain")), m["id"])
    calls[key] = tuple(max(a, b) for a, b in zip(calls.get(key, (0, 0, 0, 0)), v))
for side in (False, True):
    print("sidechain" if side else "main", *(sum(c[i] for k, c in calls.items() if k[0] == side) for i in range(4)), end=" | " if not side else "\n")
PY
}

# subagent_timing: "yes" when both subagents' first calls reached the stand-in before either
# made its last one (they ran at once), with each subagent's call count.
subagent_timing() {
	python3 - "$STANDIN_LOG" <<'PY'
import json, sys
seqs = {}
for r in map(json.loads, open(sys.argv[1])):
    if r.get("kind") == "subagent":
        seqs.setdefault(r["agent"], []).append(r["seq"])
firsts, lasts = [min(s) for s in seqs.values()], [max(s) for s in seqs.values()]
at_once = len(seqs) == 2 and max(firsts) < min(lasts)
print("yes" if at_once else "no", " ".join("%s:%d" % (k, len(v)) for k, v in sorted(seqs.items())))
PY
}

# check_mode NAME HAS_RESULT ARGS...
check_mode() {
	local name=$1 has_result=$2
	shift 2
	local out=$E2E_TMP/$name.out report=$E2E_TMP/$name.json
	standin_start agents
	fresh_config
	rm -f "$E2E_PROJECT"/*.marker
	run_tbwrap "$out" "$out.err" --report-json "$report" -- claude -p /test --allowedTools Bash "$@"
	echo "# $name: $TBWRAP_MS ms under tbwrap"
	local first_plan
	first_plan=$(python3 -c 'import json, sys; print(next((r.get("plan") for r in map(json.loads, open(sys.argv[1])) if r.get("kind") == "main"), "no call"))' "$STANDIN_LOG")
	if [[ $first_plan == None ]]; then
		# The stand-in starts subagents only with the tool the CLI offers (Agent or Task).
		skip "$name: subagents metered" "Claude Code $(claude_version) offers no Agent or Task tool"
		return
	fi
	assert_eq "$TBWRAP_RC" "0" "$name: tbwrap exits 0"
	if [[ ! -s $report ]]; then
		not_ok "$name: tbwrap wrote the report" "$(head -c 2000 "$out.err")"
		return
	fi
	assert_eq "$(sort "$E2E_PROJECT/sub.marker" 2>/dev/null | tr '\n' ' ')| $(cat "$E2E_PROJECT/test.marker" 2>/dev/null)" \
		"sub-1 sub-2 | main-ran" \
		"$name: both subagents ran their Bash command, then the main conversation its own"
	assert_eq "$(subagent_timing)" "yes 1:2 2:2" "$name: the two subagents called the API at once, 2 calls each"
	assert_eq "$(cli_truth /test) | $(billed_of usage subagent /test)" "$MAIN | $SUBS" \
		"$name: stand-in billed the main conversation 3 calls, the subagents 4"
	local sid
	sid=$(standin_sessions /test)
	assert_eq "$(wc -l <<<"$sid")" "1" "$name: main conversation and subagents are one session ($sid)"

	# tbwrap: everything billed, in one agent (the subagents run inside its process).
	local truth what="equals the billing (main + subagents)"
	truth=$(ground_truth /test)
	if claude_is_node && [[ $name == text ]]; then
		# Known limit (README, Limits), as in test_tbwrap_modes.sh: the Node build's side calls
		# (one per Bash run, subagents' included) are in no transcript.
		truth=$(usage_minus "$truth" "$(side_truth /test)")
		what="equals the billing minus the $(billed_of calls side /test) side calls ($(side_truth /test))"
	elif [[ $has_result == yes ]] && assert_model_usage "$name" "$out" && [[ $UNCOUNTED != "0 0 0 0" ]]; then
		# As in test_tbwrap_modes.sh: a 1.0.x side call cut off by the session's end.
		truth=$(usage_minus "$truth" "$UNCOUNTED")
		what="equals the billing minus the side call the CLI cut off at its end ($UNCOUNTED)"
	fi
	# Calls the CLI never wrote a final usage of (2.1.197's subagents, now and then: README,
	# Limits) are counted as shown and reported.
	local k missing gap
	read -r k missing gap <<<"$(cli_unfinal "$out")"
	if ((k > 0)); then
		truth=$(usage_minus "$truth" "0 $missing 0 0")
		what="$what, less the output ($missing) of the $k call(s) the CLI never wrote a final usage of"
	fi
	assert_eq "$(report_get "$report" 'sum(a["unfinal_calls"] for a in r["agents"])')" "$k" \
		"$name: the report counts the $k call(s) without a final usage"
	assert_eq "$(report_usage "$report" /test)" "$truth" "$name: report /test usage $what"
	assert_eq "$(report_usage "$report")" "$truth" "$name: report overall usage $what"
	assert_eq "$(report_get "$report" '[len(r["agents"]), r["agents"][0]["status"]] + [r["agents"][0]["usage"][k] for k in ("input", "output", "cache_creation", "cache_read")]')" \
		"1 exited $truth" \
		"$name: one agent, exited, its usage the whole session's"

	# Where the CLI put the subagents' usage.
	local main_t
	if ! main_t=$(transcript_file "$sid"); then
		not_ok "$name: the session's transcript exists" "$(find "$CLAUDE_CONFIG_DIR" -name '*.jsonl')"
		return
	fi
	local dir=${main_t%.jsonl}/subagents
	if claude_is_node; then
		assert_eq "$(transcript_split "$main_t")" "main $MAIN | sidechain $SUBS" \
			"$name: the session transcript holds the main calls and, as sidechain lines, the subagents' ($(claude_version) writes no subagents/ dir)"
	else
		local files=("$dir"/agent-*.jsonl) f sum="0 0 0 0"
		assert_eq "$(find "$dir" -maxdepth 1 -name 'agent-*.jsonl' 2>/dev/null | wc -l)" "2" \
			"$name: two subagent transcripts under <session>/subagents/"
		for f in "${files[@]}"; do
			[[ -f $f ]] && sum=$(usage_plus "$sum" "$(transcript_usage "$f")")
		done
		assert_eq "$sum" "$SUBS" "$name: the subagent transcripts hold the subagents' calls"
		assert_eq "$(transcript_split "$main_t")" "main $MAIN | sidechain 0 0 0 0" \
			"$name: the session transcript holds the main conversation only"
	fi

	if [[ $has_result == yes ]]; then
		assert_eq "$(result_usage "$out")" "$MAIN" "$name: the CLI's own result usage leaves the subagents out"
		assert_eq "$(result_model_usage "$out")" "$truth" "$name: its modelUsage has them (and the side calls it counted)"
		assert_eq "$(usage_minus "$(report_usage "$report" /test)" "$(result_usage "$out")")" "$(usage_minus "$truth" "$MAIN")" \
			"$name: tbwrap counts exactly what the result usage leaves out (the subagents and side calls)"
		assert_eq "$(report_get "$report" 'r["agents"][0]["cost_usd"]')" "$(result_cost "$out")" \
			"$name: the agent's cost_usd is the CLI's own, subagents included (\$$(result_cost "$out"))"
	fi
}

check_mode text no
check_mode json yes --output-format json
check_mode stream-json yes --output-format stream-json --verbose

# ---- a late final usage -------------------------------------------------------------------------
# The stand-in sends each call's message_delta (its final output count) 400 ms after its last
# content block. 2.1.197 has written the subagents' lines by then, with the message_start
# snapshot (output 1) and no stop_reason (measured): no line of those calls has their output.
# tbwrap counts it as shown, says so, reports the calls, and block mode holds what they may add
# at the agent's largest output. 2.1.332 waits for the delta: nothing to report.
LATE=$(scenario_file late "$(python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); s["delta_delay_ms"] = 400; print(json.dumps(s))' "$E2E_SCENARIOS/agents.json")")
# json mode: the result's modelUsage has every call's final usage (subagents included), so
# nothing is left without one.
late_runs=(warn:text block:text warn:json)
if claude_is_node; then
	skip "late final usage: counted as shown, reported, held" "Claude Code $(claude_version) makes side calls that are in no transcript (README, Limits): its billing is not the sum of what it writes"
	late_runs=()
fi
for run in "${late_runs[@]}"; do
	mode=${run%:*} format=${run#*:} name="late final usage, ${run/:/, }"
	args=(-p /test --allowedTools Bash)
	[[ $format == json ]] && args+=(--output-format json)
	fresh_config
	standin_start "$LATE"
	rm -f "$E2E_PROJECT"/*.marker
	run_tbwrap "$E2E_TMP/late.out" "$E2E_TMP/late.err" --budget-enforcement-mode "$mode" \
		--report-json "$E2E_TMP/late.json" -- claude "${args[@]}"
	assert_eq "$TBWRAP_RC" "0" "$name: tbwrap exits 0"
	read -r k missing gap <<<"$(cli_unfinal "$E2E_TMP/late.out")"
	case $(claude_version):$format in
	2.1.197:text)
		# Which of the 4 subagent calls depends on the CLI's timing (block mode holds requests).
		if ((k >= 1 && k <= 4 && missing == k * 19)); then
			ok "$name: 2.1.197 wrote $k of the 4 subagent calls with output 1 only ($k x 19 tokens unwritten)"
		else
			not_ok "$name: 2.1.197 wrote subagent calls with output 1 only" "$k call(s), $missing tokens unwritten"
		fi
		;;
	*:json) assert_eq "$k" "0" "$name: the result's modelUsage covers every call" ;;
	2.1.332:*) assert_eq "$k" "0" "$name: 2.1.332 wrote every call's final usage" ;;
	*) echo "# $name: $(claude_version) left $k call(s) without a final usage" ;;
	esac
	assert_ledger_billing "$name" "$E2E_TMP/late.json" "$E2E_TMP/late.out"
	want_held=0
	[[ $mode == block ]] && want_held=$UNFINAL_GAP
	assert_eq "$(report_get "$E2E_TMP/late.json" 'sum(a["held"] for a in r["agents"])')" "$want_held" \
		"$name: held for them: $want_held"
	if ((k > 0)); then
		assert_line_match "$(cat "$E2E_TMP/late.err")" \
			"tbwrap: warning: agent [0-9]+ \\(/test\\): $k API calls? with no final usage in anything the CLI wrote .*" \
			"$name: tbwrap says so at the agent's end"
	else
		assert_not_contains "$(cat "$E2E_TMP/late.err")" "final usage" "$name: nothing to say"
	fi
done
