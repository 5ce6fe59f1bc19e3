#!/usr/bin/env bash
# Every agent is seen, whatever it is called, wherever it writes, however it was started, or it is
# refused (block) or reported unmetered (warn), never silently counted as 0:
#   - Claude Code under another name: exec -a, a symlink called otherwise;
#   - started with LD_PRELOAD removed: by env (the exec hooks put it back: metered exactly), by a
#     static launcher the hooks cannot see (found by what it runs: refused / unmetered);
#   - config dirs that are relative, not there yet, or a symlink;
#   - --no-session-persistence: text mode writes usage nowhere (refused / unmetered), json mode
#     carries it on stdout (metered exactly);
#   - a session whose usage lands nowhere tbwrap can read (the safety net);
#   - options that take a value before the prompt, and a prompt on stdin: the right budget key.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_setup
tbwrap_require
STATIC_EXEC=$E2E_BUILD/tests/helpers/static_exec
CLAUDE=$E2E_CLAUDE_BIN/claude

# exact NAME REPORT: the report's /test usage and the agent's equal the stand-in's billing. The
# Node build (1.0.x) reports its side calls only in a result line (README, Limits): without one,
# the ledger is the billing of its main calls.
exact() {
	local truth
	truth=$(ground_truth /test)
	if claude_is_node && [[ $(report_get "$2" 'r["agents"][0]["cost_usd"]') == null ]]; then
		truth=$(cli_truth /test)
	fi
	assert_eq "$(report_usage "$2" /test) $(report_get "$2" 'len(r["agents"])')" "$truth 1" \
		"$1: one agent, metered exactly under /test"
}

# ---- other names ----
standin_start three_turns
run_tbwrap "$E2E_TMP/a.out" "$E2E_TMP/a.err" --report-json "$E2E_TMP/a.json" -- \
	bash -c 'exec -a mybot claude -p /test --allowedTools Bash'
assert_eq "$TBWRAP_RC" "0" "exec -a mybot claude: exit 0"
exact "exec -a mybot claude" "$E2E_TMP/a.json"

mkdir -p "$E2E_TMP/bin"
ln -sf "$(readlink -f "$CLAUDE")" "$E2E_TMP/bin/nightly-agent"
standin_start three_turns
run_tbwrap "$E2E_TMP/b.out" "$E2E_TMP/b.err" --report-json "$E2E_TMP/b.json" -- \
	"$E2E_TMP/bin/nightly-agent" -p /test --allowedTools Bash
exact "a symlink named nightly-agent" "$E2E_TMP/b.json"

# ---- LD_PRELOAD removed ----
standin_start three_turns
run_tbwrap "$E2E_TMP/c.out" "$E2E_TMP/c.err" --report-json "$E2E_TMP/c.json" -- \
	env -u LD_PRELOAD claude -p /test --allowedTools Bash
assert_eq "$TBWRAP_RC" "0" "env -u LD_PRELOAD claude as the command: exit 0"
exact "env -u LD_PRELOAD claude (the library put back)" "$E2E_TMP/c.json"
assert_eq "$(report_get "$E2E_TMP/c.json" 'r["agents"][0]["adopted"]')" "false" \
	"env -u LD_PRELOAD claude: it registered itself (the exec hook put libtbwrap.so back)"

standin_start three_turns
run_tbwrap "$E2E_TMP/d.out" "$E2E_TMP/d.err" --budget-enforcement-mode block --report-json "$E2E_TMP/d.json" -- \
	"$STATIC_EXEC" -u LD_PRELOAD claude -p /test --allowedTools Bash
assert_eq "$TBWRAP_RC $(report_get "$E2E_TMP/d.json" 'r["agents"][0]["status"]') $(billed_calls)" "137 refused 0" \
	"static launcher without LD_PRELOAD, block: killed before any call (137), reported refused"
assert_line_match "$(cat "$E2E_TMP/d.err")" "^tbwrap: stopping process [0-9]+ \((claude|node)\): refused: this agent cannot be metered: it was started without libtbwrap.so outside every agent" \
	"static launcher, block: tbwrap says why"
standin_start three_turns
run_tbwrap "$E2E_TMP/e.out" "$E2E_TMP/e.err" --report-json "$E2E_TMP/e.json" -- \
	"$STATIC_EXEC" -u LD_PRELOAD claude -p /test --allowedTools Bash
assert_eq "$TBWRAP_RC $(report_get "$E2E_TMP/e.json" '[r["agents"][0][k] for k in ("status", "metered")]')" "0 exited false" \
	"static launcher without LD_PRELOAD, warn: it runs, reported \"metered\": false"
assert_line_match "$(cat "$E2E_TMP/e.err")" "^  pid [0-9]+  /test  exited 0  NOT METERED \(it was started without libtbwrap.so outside every agent" \
	"static launcher, warn: the report says NOT METERED where its counts are"

# ---- config dirs ----
for kind in relative absent symlink; do
	rm -rf "$E2E_TMP/real-config" "$E2E_PROJECT/cfg"
	case $kind in
	relative) dir=cfg ;;
	absent) dir=$E2E_TMP/not/there/yet ;;
	symlink)
		mkdir -p "$E2E_TMP/real-config"
		ln -sfn "$E2E_TMP/real-config" "$E2E_TMP/config-link"
		dir=$E2E_TMP/config-link
		;;
	esac
	standin_start three_turns
	CLAUDE_CONFIG_DIR=$dir run_tbwrap "$E2E_TMP/f.out" "$E2E_TMP/f.err" --report-json "$E2E_TMP/f.json" -- \
		claude -p /test --allowedTools Bash
	exact "CLAUDE_CONFIG_DIR $kind ($dir), text mode" "$E2E_TMP/f.json"
done

# ---- --no-session-persistence ----
if skip_unless_option --no-session-persistence "--no-session-persistence: text mode refused, json and stream-json metered"; then
	standin_start three_turns
	run_tbwrap "$E2E_TMP/g.out" "$E2E_TMP/g.err" --budget-enforcement-mode block --report-json "$E2E_TMP/g.json" -- \
		claude -p /test --allowedTools Bash --no-session-persistence
	assert_eq "$TBWRAP_RC $(billed_calls)" "86 0" "--no-session-persistence, text, block: refused at launch (86), no call"
	assert_line_match "$(cat "$E2E_TMP/g.err")" "^tbwrap\[[0-9]+\]: refused: this agent cannot be metered: text mode with --no-session-persistence writes its usage nowhere tbwrap can read \(drop --no-session-persistence, or add --output-format json\) \(block mode\)$" \
		"--no-session-persistence, text, block: one line naming the reason and the flag"
	standin_start three_turns
	run_tbwrap "$E2E_TMP/h.out" "$E2E_TMP/h.err" --report-json "$E2E_TMP/h.json" -- \
		claude -p /test --allowedTools Bash --no-session-persistence
	assert_eq "$TBWRAP_RC $(report_get "$E2E_TMP/h.json" 'r["agents"][0]["metered"]')" "0 false" \
		"--no-session-persistence, text, warn: runs, \"metered\": false"
	assert_line_match "$(cat "$E2E_TMP/h.err")" "^tbwrap\[[0-9]+\]: WARNING: this agent runs UNMETERED: text mode with --no-session-persistence" \
		"--no-session-persistence, text, warn: a loud warning"
	standin_start three_turns
	run_tbwrap "$E2E_TMP/i.out" "$E2E_TMP/i.err" --report-json "$E2E_TMP/i.json" -- \
		claude -p /test --allowedTools Bash --no-session-persistence --output-format json
	exact "--no-session-persistence with --output-format json, warn (usage on stdout at the end)" "$E2E_TMP/i.json"
	assert_eq "$(report_get "$E2E_TMP/i.json" 'r["agents"][0]["metered"]')" "true" \
		"--no-session-persistence with json, warn: metered (the safety net waits for the result line)"
	standin_start three_turns
	run_tbwrap "$E2E_TMP/i.out" "$E2E_TMP/i.err" --budget-enforcement-mode block --report-json "$E2E_TMP/i.json" -- \
		claude -p /test --allowedTools Bash --no-session-persistence --output-format json
	assert_eq "$TBWRAP_RC $(billed_calls)" "86 0" \
		"--no-session-persistence with json, block: refused at launch (its usage would come too late), no call"
	standin_start three_turns
	run_tbwrap "$E2E_TMP/i.out" "$E2E_TMP/i.err" --budget-enforcement-mode block --report-json "$E2E_TMP/i.json" -- \
		claude -p /test --allowedTools Bash --no-session-persistence --output-format stream-json --verbose
	assert_eq "$TBWRAP_RC" "0" "--no-session-persistence with stream-json, block: runs (usage streams on stdout)"
	exact "--no-session-persistence with stream-json, block" "$E2E_TMP/i.json"
fi

# ---- the safety net: usage that lands nowhere tbwrap reads ----
# A config dir whose projects/ is a file: the CLI runs, but writes no transcript (text mode).
mkdir -p "$E2E_TMP/blind"
: >"$E2E_TMP/blind/projects"
for mode in block warn; do
	standin_start three_turns
	CLAUDE_CONFIG_DIR=$E2E_TMP/blind run_tbwrap "$E2E_TMP/j.out" "$E2E_TMP/j.err" --budget-enforcement-mode "$mode" \
		--report-json "$E2E_TMP/j.json" -- claude -p "run the checks" --allowedTools Bash
	calls=$(billed_calls)
	if claude_is_node; then
		# 1.0.x gives up after its first call when it cannot make its projects dir (exit 1,
		# measured): too few calls for the safety net to act while it runs; at its end it is
		# reported NOT metered all the same.
		assert_eq "$TBWRAP_RC $(report_get "$E2E_TMP/j.json" '[r["agents"][0][k] for k in ("status", "metered")]') $calls" "1 exited false 1" \
			"no usage anywhere, $mode: the CLI exits 1 after 1 call, reported \"metered\": false ($(claude_version))"
		assert_line_match "$(cat "$E2E_TMP/j.err")" "^tbwrap: WARNING: agent [0-9]+ \(\(prompt\)\) was NOT metered: it made 1 API call and ended with no usage metered: tbwrap cannot read where this agent writes it$" \
			"no usage anywhere, $mode: a loud warning at its end"
	elif [[ $mode == block ]]; then
		assert_eq "$TBWRAP_RC $(report_get "$E2E_TMP/j.json" '[r["agents"][0][k] for k in ("status", "metered")]')" "87 stopped false" \
			"no usage anywhere, block: stopped (87), reported \"metered\": false"
		assert_line_match "$(cat "$E2E_TMP/j.err")" "^tbwrap: stopping agent [0-9]+ \(\(prompt\)\): no usage metered after 2 API calls: tbwrap cannot read where this agent writes it \(block mode\)$" \
			"no usage anywhere, block: the stop says why"
		if ((calls <= 2)); then
			ok "no usage anywhere, block: at most 2 calls went out unmetered ($calls)"
		else
			not_ok "no usage anywhere, block: at most 2 calls went out unmetered" "$calls calls"
		fi
	else
		assert_eq "$TBWRAP_RC $(report_get "$E2E_TMP/j.json" '[r["agents"][0][k] for k in ("status", "metered")]') $calls" "0 exited false 4" \
			"no usage anywhere, warn: runs its 4 calls, reported \"metered\": false"
		assert_line_match "$(cat "$E2E_TMP/j.err")" "^tbwrap: WARNING: agent [0-9]+ \(\(prompt\)\) is NOT metered: no usage metered after 2 API calls" \
			"no usage anywhere, warn: a loud warning"
	fi
done

# ---- budget keys ----
standin_start three_turns
run_tbwrap "$E2E_TMP/k.out" "$E2E_TMP/k.err" --report-json "$E2E_TMP/k.json" --command-budget /test=1M -- \
	claude -p --effort high -n nightly /test --allowedTools Bash
exact "claude -p --effort high -n nightly /test (option values are not the prompt)" "$E2E_TMP/k.json"
standin_start three_turns
(cd "$E2E_PROJECT" && echo /test | timeout -k 5 300 "$TBWRAP" --report-json "$E2E_TMP/l.json" -- claude -p --allowedTools Bash) \
	>"$E2E_TMP/l.out" 2>"$E2E_TMP/l.err"
exact "echo /test | claude -p (the transcript names the command)" "$E2E_TMP/l.json"
