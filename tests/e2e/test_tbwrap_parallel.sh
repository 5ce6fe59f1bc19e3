#!/usr/bin/env bash
# One tbwrap, several real Claude Code instances at once: a script runs 2x /test and 2x /slow in
# parallel (different output modes) and the ledger must hold exactly what the API stand-in billed,
# per command and overall, with every agent listed once. Then a nested agent (Claude run by
# another Claude's Bash tool): both metered exactly once, the inner one flagged nested.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_setup
tbwrap_require

# --- four agents in parallel -------------------------------------------------------------------

# three_turns: /test = 4 calls of 1000/50/200/3000; /slow (by_command) = 3 calls of 700/30/0/1500,
# streamed slowly (40 ms per event) so that the sessions overlap.
standin_start three_turns
script=$E2E_TMP/parallel.sh
# Each agent has a config dir of its own: 1.0.x asks a title for the previous session of its
# config dir, and with one dir shared by agents that start at once that call (billed under a
# session no command names) goes to whichever agent saw another's session first.
cat >"$script" <<'SH'
#!/usr/bin/env bash
cfg=$CLAUDE_CONFIG_DIR
mkdir -p "$cfg/t1" "$cfg/t2" "$cfg/s1" "$cfg/s2"
CLAUDE_CONFIG_DIR=$cfg/t1 claude -p /test --allowedTools Bash >t1.out 2>t1.err </dev/null &
p1=$!
CLAUDE_CONFIG_DIR=$cfg/t2 claude -p /test --allowedTools Bash --output-format json >t2.out 2>t2.err </dev/null &
p2=$!
CLAUDE_CONFIG_DIR=$cfg/s1 claude -p /slow --allowedTools Bash --output-format stream-json --verbose >s1.out 2>s1.err </dev/null &
p3=$!
CLAUDE_CONFIG_DIR=$cfg/s2 claude -p /slow --allowedTools Bash --output-format stream-json --verbose \
	--include-partial-messages >s2.out 2>s2.err </dev/null &
p4=$!
rc=0 codes=()
for p in $p1 $p2 $p3 $p4; do
	wait "$p"
	c=$?
	codes+=("$c")
	((c == 0)) || rc=$c
done
echo "${codes[*]}" >agents.status
exit "$rc"
SH
chmod +x "$script"
report=$E2E_TMP/parallel.json
run_tbwrap "$E2E_TMP/parallel.out" "$E2E_TMP/parallel.err" --report-json "$report" -- "$script"
echo "# 4 agents in parallel under one tbwrap: $TBWRAP_MS ms"
assert_eq "$TBWRAP_RC" "0" "parallel: tbwrap (and the script, and all 4 agents) exit 0"
if [[ ! -s $report ]]; then
	not_ok "parallel: tbwrap wrote the report" "$(head -c 2000 "$E2E_TMP/parallel.err")"
	exit 1
fi

assert_eq "$(cli_truth /test)" "8000 400 1600 24000" "parallel: stand-in billed 2 x 4 /test calls (main conversations)"
assert_eq "$(cli_truth /slow)" "4200 180 0 9000" "parallel: stand-in billed 2 x 3 /slow calls (main conversations)"
assert_eq "$(main_calls "")" "14" "parallel: 14 main-conversation calls in all"
# What tbwrap must hold, session by session: everything billed, except (known limit, README) the
# side calls of a Node-build agent in text mode (the first /test agent), which nothing it prints
# or writes contains, nor (1.0.x too) a side call the CLI cut off at the end of a json or
# stream-json session (lib.sh, assert_model_usage). The json agent's session is the one its
# result names. UNSEEN: "SESSION a b c d" lines, what tbwrap cannot see of each session.
text_sid=$(standin_sessions /test | grep -vxF "$(result_field "$E2E_PROJECT/t2.out" session_id)")
UNSEEN=$E2E_TMP/unseen
: >"$UNSEEN"
claude_is_node && echo "$text_sid $(python3 -c '
import json, sys
print(*[sum(r["billed"][k] for r in map(json.loads, open(sys.argv[1])) if r.get("kind") == "side" and r.get("session") == sys.argv[2])
        for k in ("input", "output", "cache_creation", "cache_read")])' "$STANDIN_LOG" "$text_sid")" >>"$UNSEEN"
for f in t2 s1 s2; do
	assert_model_usage "parallel: $f.out" "$E2E_PROJECT/$f.out" &&
		echo "$(result_field "$E2E_PROJECT/$f.out" session_id) $UNCOUNTED" >>"$UNSEEN"
done
# expected_usage [COMMAND]: that sum, from the stand-in's log.
expected_usage() {
	python3 - "${1:-}" "$STANDIN_LOG" "$UNSEEN" <<'PY'
import json, sys
command, log, unseen = sys.argv[1:4]
tot = [0, 0, 0, 0]
for r in map(json.loads, open(log)):
    if not r.get("billed") or (command and r.get("command") != command):
        continue
    for i, k in enumerate(("input", "output", "cache_creation", "cache_read")):
        tot[i] += r["billed"][k]
commands = {r["session"]: r["command"] for r in map(json.loads, open(log)) if r.get("billed")}
for line in open(unseen):
    sid, *u = line.split()
    if not command or commands.get(sid) == command:
        tot = [t - int(x) for t, x in zip(tot, u)]
print(*tot)
PY
}
truth_test=$(expected_usage /test)
truth_slow=$(expected_usage /slow)
claude_is_node && echo "# parallel: $(claude_version): side calls in nothing tbwrap can see: /test $(usage_minus "$(ground_truth /test)" "$truth_test"), /slow $(usage_minus "$(ground_truth /slow)" "$truth_slow")"
assert_eq "$(report_usage "$report" /test)" "$truth_test" "parallel: report /test usage equals its ground truth"
assert_eq "$(report_usage "$report" /slow)" "$truth_slow" "parallel: report /slow usage equals its ground truth"
assert_eq "$(report_usage "$report")" "$(expected_usage)" "parallel: report overall usage equals the ground truth"
assert_eq "$(report_get "$report" '[[c["used"]["total"] for c in r["commands"] if c["name"] == n][0] for n in ("/test", "/slow")] + [r["overall"]["used"]["total"]]')" \
	"$(sum_of "$truth_test") $(sum_of "$truth_slow") $(($(sum_of "$truth_test") + $(sum_of "$truth_slow")))" \
	"parallel: report totals /test $(sum_of "$truth_test"), /slow $(sum_of "$truth_slow"), overall $(($(sum_of "$truth_test") + $(sum_of "$truth_slow")))"
assert_eq "$(report_get "$report" 'len(r["agents"])')" "4" "parallel: 4 agents listed"
assert_eq "$(report_get "$report" 'sorted(a["command"] for a in r["agents"])')" "/slow /slow /test /test" \
	"parallel: the agents are 2 x /slow and 2 x /test"
assert_eq "$(cat "$E2E_PROJECT/agents.status")" "0 0 0 0" "parallel: all 4 agents exited with status 0 (their shell's wait)"
# tbwrap reaps only its own child (here the script), so the agents' codes are 0 or unknown.
# Not tbwrap's children: the agents recorded their own status (the CLI ends with quick_exit).
assert_eq "$(report_get "$report" '["%s:%s" % (a["status"], a["exit_code"]) for a in r["agents"]]')" \
	"exited:0 exited:0 exited:0 exited:0" \
	"parallel: report lists all 4 agents as exited with code 0"
assert_eq "$(report_get "$report" '[a["nested"] for a in r["agents"]]')" "false false false false" \
	"parallel: none is nested"
assert_eq "$(report_get "$report" '[[c["agents"] for c in r["commands"] if c["name"] == n][0] for n in ("/test", "/slow")]')" "2 2" \
	"parallel: each command counted 2 agents"

# Each agent's own usage must be one whole session: per-session sums from the stand-in's log.
sessions=$(python3 - "$STANDIN_LOG" "$UNSEEN" <<'PY'
import json, sys
s = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("billed"):
        t = s.setdefault((r["command"], r["session"]), [0, 0, 0, 0])
        for i, k in enumerate(("input", "output", "cache_creation", "cache_read")):
            t[i] += r["billed"][k]
for line in open(sys.argv[2]):  # what tbwrap cannot see (above)
    sid, *u = line.split()
    for key in s:
        if key[1] == sid:
            s[key] = [t - int(x) for t, x in zip(s[key], u)]
print(" | ".join(sorted("%s %s" % (c, " ".join(map(str, v))) for (c, _), v in s.items())))
PY
)
agents=$(report_get "$report" '" | ".join(sorted("%s %d %d %d %d" % (a["command"], a["usage"]["input"], a["usage"]["output"], a["usage"]["cache_creation"], a["usage"]["cache_read"]) for a in r["agents"]))')
assert_eq "$agents" "$sessions" "parallel: each agent's usage equals its own session's ground truth"
assert_eq "$(wc -l <"$E2E_PROJECT/test.marker") $(wc -l <"$E2E_PROJECT/slow.marker")" "6 4" \
	"parallel: the Bash tool ran 6 /test and 4 /slow commands"
assert_eq "$(sed 's/ *$//' "$E2E_PROJECT/t1.out")" "Turn 3." "parallel: the text-mode agent printed its answer"
assert_eq "$(result_usage "$E2E_PROJECT/t2.out")" "$(cli_truth /test | awk '{print $1/2, $2/2, $3/2, $4/2}')" \
	"parallel: the json agent's own result line is one /test session"
concurrent=$(python3 - "$STANDIN_LOG" <<'PY'
import json, sys
spans = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("billed"):
        lo, hi = spans.get(r["session"], (r["ts"], r["ts"]))
        spans[r["session"]] = (min(lo, r["ts"]), max(hi, r["ts"]))
# Sessions in flight at each session's start (first to last billed call).
print(max(sum(1 for lo, hi in spans.values() if lo <= t <= hi) for t, _ in spans.values()))
PY
)
echo "# parallel: at most $concurrent of the 4 sessions were between their first and last call at once"

# --- a nested agent ----------------------------------------------------------------------------

# nested: /test makes 1 tool turn whose Bash command runs `claude -p /slow` (3 calls of its own),
# then answers: outer 2 calls of 1000/50/200/3000, inner 3 calls of 700/30/0/1500. The inner
# claude has a config dir of its own, for the reason the parallel agents have (above): in the
# outer's, 1.0.x would ask a title for the outer's session.
standin_start nested
rm -f "$E2E_PROJECT"/inner.* "$E2E_PROJECT/slow.marker"
report=$E2E_TMP/nested.json
run_tbwrap "$E2E_TMP/nested.out" "$E2E_TMP/nested.err" --report-json "$report" -- \
	claude -p /test --allowedTools Bash --output-format json
echo "# nested session under tbwrap: $TBWRAP_MS ms"
assert_eq "$TBWRAP_RC" "0" "nested: tbwrap exits 0"
if [[ ! -s $report ]]; then
	not_ok "nested: tbwrap wrote the report" "$(head -c 2000 "$E2E_TMP/nested.err")"
	exit 1
fi
assert_eq "$(cat "$E2E_PROJECT/inner.status" 2>/dev/null)" "inner-exit=0" "nested: the inner claude ran from the Bash tool and exited 0"
assert_eq "$(tr '\n' ' ' <"$E2E_PROJECT/slow.marker" 2>/dev/null | sed 's/ $//')" "slow-1 slow-2" \
	"nested: the inner claude ran its own 2 Bash commands"
# Every call billed, but (1.0.x) a side call the CLI cut off at the end of a session.
assert_model_usage "nested: outer" "$E2E_TMP/nested.out"
truth_test=$(usage_minus "$(ground_truth /test)" "$UNCOUNTED")
assert_model_usage "nested: inner" "$E2E_PROJECT/inner.json"
truth_slow=$(usage_minus "$(ground_truth /slow)" "$UNCOUNTED")
assert_eq "$(cli_truth /test) | $(cli_truth /slow)" "2000 100 400 6000 | 2100 90 0 4500" \
	"nested: stand-in billed 2 outer and 3 inner calls (main conversations; both agents print json)"
assert_eq "$(report_usage "$report" /test)" "$truth_test" "nested: report /test (outer) usage equals its ground truth"
assert_eq "$(report_usage "$report" /slow)" "$truth_slow" "nested: report /slow (inner) usage equals its ground truth, counted once"
assert_eq "$(report_usage "$report")" "$(usage_plus "$truth_test" "$truth_slow")" "nested: report overall usage equals the ground truth (no double count)"
assert_eq "$(report_get "$report" 'r["overall"]["used"]["total"]')" "$(($(sum_of "$truth_test") + $(sum_of "$truth_slow")))" \
	"nested: overall total $(sum_of "$truth_test") + $(sum_of "$truth_slow")"
assert_eq "$(report_get "$report" 'len(r["agents"])')" "2" "nested: 2 agents listed"
assert_eq "$(report_get "$report" '["%s:%s:%s:%s" % (a["command"], a["status"], a["exit_code"], "true" if a["nested"] else "false") for a in r["agents"]]')" \
	"/test:exited:0:false /slow:exited:0:true" \
	"nested: outer /test exited, not nested; inner /slow exited, flagged nested"
assert_eq "$(report_get "$report" '[a["exit_code"] for a in r["agents"] if a["command"] == "/test"][0]')" "0" \
	"nested: outer agent exit_code 0"
assert_eq "$(result_usage "$E2E_PROJECT/inner.json")" "$(cli_truth /slow)" "nested: the inner claude's own result line agrees"
