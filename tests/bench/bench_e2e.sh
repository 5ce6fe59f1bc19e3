#!/usr/bin/env bash
# What tbwrap costs a real Claude Code session: the same session run N times without and N times
# under tbwrap, interleaved (so drift in the machine's load hits both alike), against the local
# API stand-in. Prints the median wall time of each and their ratio; no thresholds. A run that
# fails, or a wrapped run whose ledger differs from the stand-in's ground truth, fails the bench.
#
# BENCH_BASELINE=DIR (the build directory of another tree) adds a third column: the same session
# under that tbwrap, interleaved with the other two, so before and after come from one run.
#
#   bash tests/bench/bench_e2e.sh        BENCH_N=9 for more runs (default 5)
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../e2e/lib.sh"

N=${BENCH_N:-5}
if ! [[ $N =~ ^[1-9][0-9]*$ ]]; then
	echo "bench_e2e: BENCH_N must be a positive integer, not '$N'" >&2
	exit 2
fi

e2e_setup
tbwrap_require
BASE=${BENCH_BASELINE:-}
if [[ -n $BASE && ! -x $BASE/tbwrap ]]; then
	echo "bench_e2e: BENCH_BASELINE=$BASE holds no tbwrap" >&2
	exit 2
fi

median() {
	tr ' ' '\n' | sort -n | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2)}'
}

ROWS=()

# gaps: ms between consecutive billed calls in the stand-in's log: the CLI's work between two
# calls, i.e. mostly the Bash tool command of that turn.
gaps() {
	python3 - "$STANDIN_LOG" <<'PY'
import json, sys
ts = [r["ts"] for r in map(json.loads, open(sys.argv[1])) if r.get("billed")]
print(" ".join("%d" % ((b - a) * 1000) for a, b in zip(ts, ts[1:])))
PY
}

# bench NAME SCENARIO TURN_LABELS ARGS...: N interleaved pairs of `claude ARGS` and
# `tbwrap -- claude ARGS`, each against a fresh stand-in (so each log is one session's ground
# truth). TURN_LABELS ("a|b|c", or "") adds a row per tool turn: the time between its calls.
bench() {
	local name=$1 scenario=$2 labels=$3
	shift 3
	local plain=() wrapped=() based=() pg=() wg=() i bad=0 report=$E2E_TMP/bench.json
	for ((i = 0; i < N; i++)); do
		standin_start "$scenario"
		run_claude "$E2E_TMP/bench.out" "$E2E_TMP/bench.err" "$@"
		((CLAUDE_RC == 0)) || bad=1
		plain+=("$CLAUDE_MS")
		pg+=("$(gaps)")
		standin_start "$scenario"
		run_tbwrap "$E2E_TMP/bench.out" "$E2E_TMP/bench.err" --report-json "$report" -- claude "$@"
		((TBWRAP_RC == 0)) || bad=1
		[[ $(report_usage "$report") == "$(ground_truth "")" ]] || bad=$((bad | 2))
		wrapped+=("$TBWRAP_MS")
		wg+=("$(gaps)")
		if [[ -n $BASE ]]; then
			standin_start "$scenario"
			TBWRAP=$BASE/tbwrap run_tbwrap "$E2E_TMP/bench.out" "$E2E_TMP/bench.err" --report-json "$report" -- claude "$@"
			((TBWRAP_RC == 0)) || bad=1
			based+=("$TBWRAP_MS")
		fi
	done
	if ((bad & 1)); then
		not_ok "$name: all $((2 * N)) runs exit 0" "$(head -c 1000 "$E2E_TMP/bench.err")"
	else
		ok "$name: all $((2 * N)) runs exit 0"
	fi
	if ((bad & 2)); then
		not_ok "$name: every wrapped run's ledger equals the ground truth"
	else
		ok "$name: every wrapped run's ledger equals the ground truth"
	fi
	local mp mw mb=
	mp=$(median <<<"${plain[*]}")
	mw=$(median <<<"${wrapped[*]}")
	[[ -n $BASE ]] && mb=$(median <<<"${based[*]}")
	echo "# $name: unwrapped ${plain[*]} ms; tbwrap ${wrapped[*]} ms${BASE:+; baseline ${based[*]} ms}"
	row "$name" "$mp" "$mw" "$mb"
	[[ -n $labels ]] || return 0
	local IFS='|' label k=0
	for label in $labels; do
		k=$((k + 1))
		mp=$(for g in "${pg[@]}"; do cut -d' ' -f"$k" <<<"$g"; done | median)
		mw=$(for g in "${wg[@]}"; do cut -d' ' -f"$k" <<<"$g"; done | median)
		row "  turn $k: $label" "$mp" "$mw"
	done
}

row() {
	local line
	line=$(printf '%-52s %10s %10s %7s' "$1" "$2" "$3" "$(awk -v a="$3" -v b="$2" 'BEGIN {printf "%.2f", a / b}')")
	if [[ -n ${4:-} ]]; then
		line+=$(printf ' %10s %7s' "$4" "$(awk -v a="$4" -v b="$2" 'BEGIN {printf "%.2f", a / b}')")
	fi
	ROWS+=("$line")
}

bench "3-turn session, 4 API calls (json)" three_turns "" -p /test --allowedTools Bash --output-format json
bench "3-turn session, 4 API calls (text)" three_turns "" -p /test --allowedTools Bash
bench "3 Bash commands of 100,000 lines (stream)" bash_output \
	"seq 1 100000 > file|bash echo loop > file|seq 1 100000 to the CLI" \
	-p /test --allowedTools Bash --output-format stream-json --verbose

echo
printf '%-52s %10s %10s %7s%s\n' "median of $N runs, wall ms" "unwrapped" "tbwrap" "ratio" \
	"${BASE:+$(printf ' %10s %7s' baseline ratio)}"
printf '%s\n' "${ROWS[@]}"
echo
