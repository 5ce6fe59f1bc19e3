#!/usr/bin/env bash
# Warn mode: crossing 70 %, 90 % and 100 % of a command budget and of the overall budget is said
# exactly once per threshold and budget, with the numbers at the moment of crossing; nothing is
# stopped and the agent runs to its end; an agent that would exceed a budget at launch runs anyway
# after a "warning:" line.
source "$(dirname "$0")/libtest.sh"
setup
require_files "$TBWRAP" "$LIBTBWRAP" "$FAKE_AGENT"

AGENTS=$(agent_dir)

# 10 API calls with distinct message ids, 4250 tokens each (42,500 in all), each line with its
# final usage (a stop_reason: a line without one is the stream's first snapshot, which tbwrap
# reports as a call without a final usage). Budgets chosen so that
# each threshold is crossed by a different call:
#   /test 34K:   70 % (23.8K) at call 6 (25.5K), 90 % (30.6K) at call 8 (34.0K), >100 % at call 9
#   overall 42K: 70 % (29.4K) at call 7 (29.75K), 90 % (37.8K) at call 9, >100 % at call 10
for i in $(seq 1 10); do
	printf '{"type":"assistant","message":{"id":"msg_%02d","type":"message","role":"assistant","model":"claude-opus-4-8","stop_reason":"end_turn","usage":{"input_tokens":1000,"cache_creation_input_tokens":200,"cache_read_input_tokens":3000,"output_tokens":50}}}\n' "$i"
done >"$T/calls.jsonl"

WANT="tbwrap: warning: /test budget at 70%: 25.5K/34.0K
tbwrap: warning: overall budget at 70%: 29.8K/42.0K
tbwrap: warning: /test budget at 90%: 34.0K/34.0K
tbwrap: warning: overall budget at 90%: 38.2K/42.0K
tbwrap: warning: /test budget exceeded: 38.2K/34.0K (warn mode: nothing is stopped)
tbwrap: warning: overall budget exceeded: 42.5K/42.0K (warn mode: nothing is stopped)"

for mode in raw libc stdio; do
	run "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" --command-budget /test=34K \
		--overall-token-budget 42K -- "$AGENTS/claude" -p "/test" --mode "$mode" --delay-ms 20 \
		--output-format stream-json --stdout "$T/calls.jsonl"
	assert_eq "$status" 0 "$mode: warn mode runs the agent to its end (exit 0)"
	assert_file_eq "$T/run.out" "$T/calls.jsonl" "$mode: every line of the agent came out"
	warnings=$(grep '^tbwrap: warning:' "$T/run.err")
	if [[ $mode == raw ]]; then
		# A notified write is metered and checked before it is let through: the numbers
		# in each line are the ones at the crossing, whatever the timing.
		assert_eq "$warnings" "$WANT" "$mode: exactly the six warnings, in order, with exact numbers"
	else
		# The libc path is checked on a poke; two crossings may share one check, so only
		# the count of each line is exact here.
		for pat in "/test budget at 70%" "overall budget at 70%" "/test budget at 90%" \
			"overall budget at 90%" "/test budget exceeded: " "overall budget exceeded: "; do
			assert_eq "$(grep -cF "warning: $pat" <<<"$warnings")" 1 "$mode: one '$pat' warning"
		done
		assert_eq "$(wc -l <<<"$warnings")" 6 "$mode: six warnings in all"
		# (stdio to a file flushes once at exit: every crossing then happens at 42.5K.)
		assert_match "$warnings" "tbwrap: warning: /test budget exceeded: [0-9.]+K/34\.0K \(warn mode: nothing is stopped\)" \
			"$mode: the 100 % line says nothing is stopped"
	fi
	assert_not_contains "$errout" "stopping" "$mode: nothing stopped"
	assert_eq "$(json_get "$T/r.json" overall.used.total):$(json_get "$T/r.json" overall.stopped):$(json_get "$T/r.json" agents.0.status):$(json_get "$T/r.json" agents.0.exit_code)" \
		"42500:0:exited:0" "$mode: report: all 42,500 tokens metered, none stopped, exited 0"
done

# Two agents share the overall budget: the thresholds are crossed by their sum and still said
# once each, although each agent alone stays below.
cat >"$T/two.sh" <<EOF
"$AGENTS/claude" -p /a --mode raw --output-format stream-json --stdout "$T/calls.jsonl" >/dev/null || exit 1
"$AGENTS/claude" -p /b --mode raw --output-format stream-json --stdout "$T/calls.jsonl" >/dev/null || exit 1
EOF
run "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" --overall-token-budget 60K -- bash "$T/two.sh"
assert_eq "$status" 0 "two agents over the overall budget in warn mode: exit 0"
assert_eq "$(grep '^tbwrap: warning:' "$T/run.err")" "tbwrap: warning: overall budget at 70%: 42.5K/60.0K
tbwrap: warning: overall budget at 90%: 55.2K/60.0K
tbwrap: warning: overall budget exceeded: 63.8K/60.0K (warn mode: nothing is stopped)" \
	"two agents: each overall threshold said once, at the sum"
assert_eq "$(json_get "$T/r.json" overall.used.total)" 85000 "two agents: 85,000 metered"

# A budget already exhausted at launch: warn mode runs the agent after saying so.
rm -rf "$CLAUDE_CONFIG_DIR/projects"
run "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" --overall-token-budget 0 -- \
	"$AGENTS/claude" -p "/test" --output-format stream-json --stdout "$FIX/stdout.text.txt" --transcript "$FIX/transcript.text.jsonl"
assert_eq "$status:$output" "0:Turn 3. " "warn mode: an agent over its budget at launch runs"
assert_match "$(grep '^tbwrap\[' "$T/run.err")" \
	'^tbwrap\[[0-9]+\]: warning: overall budget: used 0 \+ reserved 0 \+ estimate 1\.0K > limit 0 \(warn mode: running anyway\)$' \
	"warn mode: the launch says which budget it exceeds, once"
assert_eq "$(json_get "$T/r.json" agents.0.status):$(json_get "$T/r.json" overall.used.total):$(json_get "$T/r.json" overall.refused)" \
	"exited:17000:0" "warn mode: nothing refused, the run is metered"
run "$TBWRAP" --disable-budget-visuals --command-budget /test=500 -- \
	"$AGENTS/claude" -p "/test" --output-format stream-json --stdout "$FIX/stdout.text.txt"
assert_match "$(grep '^tbwrap\[' "$T/run.err")" \
	'^tbwrap\[[0-9]+\]: warning: command budget /test: used 0 \+ reserved 0 \+ estimate 1\.0K > limit 500 \(warn mode: running anyway\)$' \
	"warn mode: a command budget below the estimate is named at launch"
assert_eq "$status:$output" "0:Turn 3. " "  ... and the agent runs"

done_testing
