#!/usr/bin/env bash
# Programs that are not agents keep their output and exit status under tbwrap: a shell loop, a
# dynamically linked program (it loads libtbwrap.so, which stays dormant), a static program that
# writes with raw syscalls - both directly under tbwrap and started from inside an agent, where
# they inherit the agent's seccomp filter (dynamic ones then write tagged, static ones are
# notified and let through). Their bytes never count as usage.
source "$(dirname "$0")/libtest.sh"
setup
require_files "$TBWRAP" "$LIBTBWRAP" "$FAKE_AGENT" "$STATIC_WRITER"

AGENTS=$(agent_dir)
LOOP='for i in $(seq 1 10000); do echo "line $i of a shell loop"; done; exit 6'

# Baselines, without tbwrap.
bash -c "$LOOP" >"$T/loop.want"
assert_eq "$?:$(wc -l <"$T/loop.want" | tr -d ' ')" "6:10000" "baseline: the loop prints 10,000 lines, exits 6"
"$STATIC_WRITER" 10000 3 >"$T/static.want"
assert_eq "$?:$(wc -l <"$T/static.want" | tr -d ' ')" "3:10000" "baseline: static_writer prints 10,000 lines, exits 3"
seq 1 100000 >"$T/seq.want"

# ---- directly under tbwrap ----
"$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- bash -c "$LOOP" >"$T/loop.got" 2>"$T/err"
assert_eq "$?" 6 "under tbwrap: the loop's exit status 6 comes through"
assert_file_eq "$T/loop.got" "$T/loop.want" "under tbwrap: the loop's output is byte-identical"
assert_eq "$(json_get "$T/r.json" overall.agents):$(json_get "$T/r.json" agents)" "0:[]" \
	"under tbwrap: a shell is no agent"

"$TBWRAP" --disable-budget-visuals -- "$STATIC_WRITER" 10000 3 >"$T/static.got" 2>"$T/err"
assert_eq "$?" 3 "under tbwrap: static_writer's exit status 3 comes through"
assert_file_eq "$T/static.got" "$T/static.want" "under tbwrap: static_writer's output is byte-identical"

"$TBWRAP" --disable-budget-visuals -- seq 1 100000 2>"$T/err" | (sleep 0.2; cat >"$T/seq.got")
assert_file_eq "$T/seq.got" "$T/seq.want" "under tbwrap: seq to a slow pipe is byte-identical"

# fake_agent under its own name is no agent: its output (usage lines included) is not metered.
"$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- "$FAKE_AGENT" --mode raw \
	--output-format stream-json --stdout "$FIX/stdout.stream-json.jsonl" >"$T/fa.got" 2>"$T/err"
assert_eq "$?" 0 "under tbwrap: a program not named claude runs"
assert_file_eq "$T/fa.got" "$FIX/stdout.stream-json.jsonl" "  ... with its output intact"
assert_eq "$(json_get "$T/r.json" overall.agents):$(json_get "$T/r.json" overall.used.total)" "0:0" \
	"  ... and is not metered"

# ---- started from inside an agent (under its filter) ----
# The spawned commands write their outputs to files and record their exit statuses.
SPAWN="bash -c '$LOOP' >'$T/in-loop.got'; echo \$? >'$T/in-loop.rc';
'$STATIC_WRITER' 10000 3 >'$T/in-static.got'; echo \$? >'$T/in-static.rc';
'$STATIC_WRITER' 100000 | (sleep 0.2; cat >'$T/in-static-pipe.got');
seq 1 100000 | (sleep 0.2; cat >'$T/in-seq.got');
grep NoNewPrivs /proc/self/status >'$T/in-nnp'"
"$STATIC_WRITER" 100000 >"$T/static100k.want"
for mode in raw libc; do
	rm -f "$T"/in-*
	rm -rf "$CLAUDE_CONFIG_DIR/projects"
	"$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- "$AGENTS/claude" -p "/test" \
		--mode "$mode" --spawn "$SPAWN" --output-format stream-json --stdout "$FIX/stdout.stream-json.jsonl" \
		--transcript "$FIX/transcript.stream-json.jsonl" >"$T/agent.out" 2>"$T/err"
	assert_eq "$?" 0 "$mode agent with children: exits 0"
	assert_eq "$(cat "$T/in-nnp" 2>/dev/null)" $'NoNewPrivs:\t1' \
		"$mode agent: its children run under its filter (no_new_privs is set)"
	assert_file_eq "$T/in-loop.got" "$T/loop.want" "$mode agent: a shell loop it runs prints byte-identical output"
	assert_eq "$(cat "$T/in-loop.rc" 2>/dev/null)" 6 "$mode agent: ... and exits 6"
	assert_file_eq "$T/in-static.got" "$T/static.want" "$mode agent: static_writer it runs prints byte-identical output"
	assert_eq "$(cat "$T/in-static.rc" 2>/dev/null)" 3 "$mode agent: ... and exits 3"
	assert_file_eq "$T/in-static-pipe.got" "$T/static100k.want" \
		"$mode agent: static_writer into a slow pipe: byte-identical"
	assert_file_eq "$T/in-seq.got" "$T/seq.want" "$mode agent: seq into a slow pipe: byte-identical"
	assert_file_eq "$T/agent.out" "$FIX/stdout.stream-json.jsonl" "$mode agent: its own stdout is intact"
	assert_eq "$(json_get "$T/r.json" overall.agents):$(json_get "$T/r.json" overall.used.total)" "1:17000" \
		"$mode agent: only the agent is metered, exactly (its children's output is not usage)"
	assert_eq "$(json_get "$T/r.json" agents.0.anomalies)" \
		'{"bad_number":0,"gap":0,"not_json":0,"orphan_delta":0,"oversize":0}' \
		"$mode agent: no anomaly (no child's byte reached the agent's meter)"
done

done_testing
