#!/usr/bin/env bash
# Metering of one agent, exact to the token, across the ways an agent writes (libc write, stdio,
# raw syscalls through a duplicate of fd 1), the captured output formats of Claude Code 2.1.197
# (text, json, stream-json, stream-json with partial messages, a run stopped by --max-budget-usd),
# write sizes (one byte, 7 bytes, whole lines) and where stdout goes (a file, a pipe whose reader
# is slow, /dev/null). Every run must meter exactly the usage of the capture and leave stdout
# byte-identical to it.
source "$(dirname "$0")/libtest.sh"
setup
require_files "$TBWRAP" "$LIBTBWRAP" "$FAKE_AGENT"

AGENTS=$(agent_dir)

# usage_of FILE: "input output cache_creation cache_read total | agents status exit_code" of a
# report with one agent, in one python start (the matrix runs this 135 times).
usage_of() {
	python3 - "$1" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    print(f"no report: {e}")
    sys.exit(0)
u = r["overall"]["used"]
a = r["agents"]
st = ",".join(f'{x["status"]}:{x["exit_code"]}' for x in a)
print(u["input"], u["output"], u["cache_creation"], u["cache_read"], u["total"], "|",
      r["overall"]["agents"], st)
PY
}

FULL="4000 200 800 12000 17000 | 1 exited:0"
HALF="2000 100 400 6000 8500 | 1 exited:0"

# name stdout-fixture transcript-fixture expected
pairs=(
	"text stdout.text.txt transcript.text.jsonl $FULL"
	"json stdout.json.json transcript.json.jsonl $FULL"
	"stream-json stdout.stream-json.jsonl transcript.stream-json.jsonl $FULL"
	"partial stdout.stream-json-partial.jsonl transcript.stream-json-partial.jsonl $FULL"
	"max-budget stdout.stream-json-max-budget.jsonl transcript.stream-json-max-budget.jsonl $HALF"
)

# One case: a fixture pair written in MODE with CHUNK ("" = whole lines) to SINK. Prints one TAP
# line for the usage and one for stdout.
meter_case() {
	local name=$1 so=$2 tr=$3 want=$4 mode=$5 chunk=$6 sink=$7
	local label="$name/$mode/chunk=${chunk:-line}/$sink"
	local copt=() out=$T/out rep=$T/r.json
	[[ -n $chunk ]] && copt=(--chunk "$chunk")
	rm -f "$out" "$rep"
	rm -rf "$CLAUDE_CONFIG_DIR/projects"
	local cmd=("$TBWRAP" --disable-budget-visuals --report-json "$rep" --
		"$AGENTS/claude" -p "/test $label" --output-format x --mode "$mode" "${copt[@]}"
		--output-format stream-json --stdout "$FIX/$so" --transcript "$FIX/$tr")
	case $sink in
	file)
		"${cmd[@]}" >"$out" 2>"$T/err"
		;;
	pipe)
		# A 4 KiB pipe whose reader starts late: the agent meets a full pipe (EAGAIN under
		# RWF_NOWAIT, partial writes) and must retry; retries must not count twice.
		"${cmd[@]}" --pipe-size 4096 --stats 2>"$T/err" | (sleep 0.2; cat >"$out")
		;;
	null)
		"${cmd[@]}" >/dev/null 2>"$T/err"
		;;
	esac
	local got
	got=$(usage_of "$rep")
	assert_eq "$got" "$want" "$label: metered usage"
	[[ $got == "$want" ]] || diag "stderr of the run: $(head -c 1500 "$T/err")"
	if [[ $sink != null ]]; then
		assert_file_eq "$out" "$FIX/$so" "$label: stdout byte-identical"
	fi
	# The transcript the agent wrote under tbwrap is the capture, byte for byte.
	local t
	t=$(transcripts)
	if [[ $(wc -l <<<"$t") == 1 && -f $t ]] && cmp -s "$t" "$FIX/$tr"; then
		ok "$label: transcript intact"
	else
		not_ok "$label: transcript intact" "transcripts: $t"
	fi
}

for pair in "${pairs[@]}"; do
	read -r name so tr want <<<"$pair"
	for mode in libc stdio raw; do
		for chunk in 1 7 ""; do
			for sink in file pipe null; do
				meter_case "$name" "$so" "$tr" "$want" "$mode" "$chunk" "$sink"
			done
		done
	done
done

# The slow pipe really exercises the retry paths. Lines longer than the pipe (10 KiB each, 20 API
# calls of 4250 tokens) force partial writes as well as EAGAIN on a raw RWF_NOWAIT writer; a
# retried remainder must not count again, and a line split over several writes must count once.
python3 - "$T/big.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(20):
        f.write(json.dumps({"type": "assistant", "message": {
            "id": "msg_big_%02d" % i, "type": "message", "role": "assistant", "model": "claude-opus-4-8",
            "content": [{"type": "text", "text": ("%02d" % i) * 5000}],
            "usage": {"input_tokens": 1000, "cache_creation_input_tokens": 200,
                      "cache_read_input_tokens": 3000, "output_tokens": 50}}}) + "\n")
PY
for mode in raw libc stdio; do
	"$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- "$AGENTS/claude" -p "/test" \
		--mode "$mode" --pipe-size 4096 --stats --output-format stream-json --stdout "$T/big.jsonl" 2>"$T/err" |
		(sleep 0.3; cat >"$T/out")
	if [[ $mode == raw ]]; then
		eagain=$(sed -n 's/.*fake_agent: stats .*eagain=\([0-9]*\).*/\1/p' "$T/err")
		partial=$(sed -n 's/.*fake_agent: stats .*partial=\([0-9]*\).*/\1/p' "$T/err")
		assert_match "$eagain" '^[1-9][0-9]*$' "big lines/raw/slow 4 KiB pipe: the writer met EAGAIN ($eagain times)"
		assert_match "$partial" '^[1-9][0-9]*$' "big lines/raw/slow 4 KiB pipe: the writer made partial writes ($partial)"
	fi
	assert_eq "$(usage_of "$T/r.json")" "20000 1000 4000 60000 85000 | 1 exited:0" \
		"big lines/$mode/slow 4 KiB pipe: every call metered exactly once"
	# De-duplication alone would hide a retried remainder counted again; a remainder fed as new
	# bytes breaks its line, which the meter reports. None may be reported.
	assert_eq "$(json_get "$T/r.json" agents.0.anomalies)" \
		'{"bad_number":0,"gap":0,"not_json":0,"orphan_delta":0,"oversize":0}' \
		"big lines/$mode/slow 4 KiB pipe: no anomaly (each retry recognised as a retry)"
	assert_file_eq "$T/out" "$T/big.jsonl" "big lines/$mode/slow 4 KiB pipe: stdout intact"
done

# ---- stdout counts only where the CLI writes JSON there ----
# In text mode stdout is the model's answer: a line in it that looks like usage (here: a whole
# stream-json capture, result line included) is the model's words and adds nothing. With
# --output-format stream-json (or json, also as --output-format=json) the same bytes count.
AG=$(agent_dir)
for row in "none 0" "--output-format=text 0" "--output-format=json 17000" "--output-format stream-json 17000"; do
	want=${row##* }
	fmt=${row% *}
	[[ $fmt == none ]] && fmt=
	# shellcheck disable=SC2086 # fmt is one or two words on purpose
	run "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- "$AG/claude" -p /test \
		$fmt --mode raw --stdout "$FIX/stdout.stream-json.jsonl"
	assert_eq "$(json_get "$T/r.json" overall.used.total)" "$want" \
		"stdout as a source, ${fmt:-no --output-format}: $want tokens"
	assert_file_eq "$T/run.out" "$FIX/stdout.stream-json.jsonl" "stdout intact, ${fmt:-no --output-format}"
done

# ---- an fd number reused for the transcript after a close the hooks did not see ----
RA=$T/reuse
mkdir -p "$RA"
ln -sf "$HELPERS/reuse_fd" "$RA/claude"
for how in raw libc; do
	rm -rf "$CLAUDE_CONFIG_DIR/projects/reuse"
	run "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- "$RA/claude" \
		"$FIX/transcript.text.jsonl" "$how"
	assert_eq "$status:$(json_get "$T/r.json" overall.used.total)" "0:17000" \
		"fd reused for the transcript after a $how close: metered exactly"
done

# ---- two threads appending to one transcript at the same moment ----
TA=$T/threads
mkdir -p "$TA"
ln -sf "$HELPERS/append_threads" "$TA/claude"
rm -rf "$CLAUDE_CONFIG_DIR/projects/threads"
run "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- "$TA/claude" 500
assert_eq "$status:$(json_get "$T/r.json" overall.used.input):$(wc -l <"$CLAUDE_CONFIG_DIR/projects/threads/session.jsonl" | tr -d ' ')" \
	"0:1000:1000" "two threads appending to one transcript: all 1000 lines metered"

# ---- a signal handler that writes to a source while the in-process meter holds the lock ----
SA=$T/signals
mkdir -p "$SA"
ln -sf "$HELPERS/signal_writer" "$SA/claude"
rm -rf "$CLAUDE_CONFIG_DIR/projects/signals"
# The bound only turns a hang into a failure.
run timeout 120 "$TBWRAP" --disable-budget-visuals --report-json "$T/r.json" -- "$SA/claude" \
	--output-format stream-json 20000
assert_eq "$status:$(json_get "$T/r.json" overall.used.input)" "0:20000" \
	"signal handler writing during accounting: no hang, all 20000 lines metered"
assert_match "$errout" "signal_writer: [1-9][0-9]* signals" "signal handler writing during accounting: the timer fired"

done_testing
