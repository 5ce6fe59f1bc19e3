#!/usr/bin/env bash
# What tbwrap costs per write: 200,000 writes of 200 B to /dev/null by bench_writes, side by side
#   bare             no tbwrap at all
#   dormant preload  under tbwrap, not an agent (libtbwrap.so loaded, one branch per write)
#   agent, libc      bench_writes is the agent (--match bench_writes), write(2) through libc:
#                    routed by fd (not a source), issued as a tagged syscall the filter lets through
#   agent, raw       the agent issues raw write syscalls: each is notified to the supervisor
#   ... SYNC_WAKE_UP off  the same with the listener's SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP left off
#                    (TBWRAP_BENCH_NO_SYNC_WAKEUP=1), to show what that flag changes
# The runs are interleaved BENCH_N times (default 3; the median counts) so that drift in the
# machine's load hits every row alike. Also says whether the supervisor's listener got
# SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (launcher/supervisor.c set_sync_wakeup), which changes the
# cost of the notified path. No thresholds: the bench fails only when a run fails or an agent run
# was not one.
#
# BENCH_BASELINE=DIR (the build directory of another tree, e.g. the commit before a change) adds
# its dormant, libc and raw rows, interleaved with this build's: before and after from one run.
#
#   bash tests/bench/bench_write.sh      BENCH_N=5 BENCH_COUNT=1000000 to change the sizes
set -uo pipefail
source "$(dirname "$0")/../sh/libtest.sh"

N=${BENCH_N:-3}
W=${BENCH_COUNT:-200000}
SIZE=200
for v in "$N" "$W"; do
	if ! [[ $v =~ ^[1-9][0-9]*$ ]]; then
		echo "bench_write: BENCH_N and BENCH_COUNT must be positive integers, not '$v'" >&2
		exit 2
	fi
done

setup
for f in "$TBWRAP" "$LIBTBWRAP" "$BENCH_WRITES"; do
	if [[ ! -x $f && ! -f $f ]]; then
		echo "bench_write: $f is missing; build it with make all helpers" >&2
		exit 1
	fi
done

rows=("bare, libc write" "bare, raw syscall" "dormant preload (not an agent)" \
	"agent, libc path (tagged syscall)" "agent, raw path (supervisor notified)" \
	"agent, raw path, SYNC_WAKE_UP off")
BASE=${BENCH_BASELINE:-}
if [[ -n $BASE ]]; then
	if [[ ! -x $BASE/tbwrap || ! -f $BASE/libtbwrap.so ]]; then
		echo "bench_write: BENCH_BASELINE=$BASE holds no tbwrap and libtbwrap.so" >&2
		exit 2
	fi
	rows+=("baseline: dormant preload" "baseline: agent, libc path" "baseline: agent, raw path")
fi
# Rows of agent runs (their report is checked).
is_agent_row() { [[ $1 == 3 || $1 == 4 || $1 == 5 || $1 == 7 || $1 == 8 ]]; }
# The command of each row; $REP is the report of an agent run.
row_cmd() {
	case $1 in
	0) echo "$BENCH_WRITES $W $SIZE libc" ;;
	1) echo "$BENCH_WRITES $W $SIZE raw" ;;
	2) echo "$TBWRAP --disable-budget-visuals -- $BENCH_WRITES $W $SIZE libc" ;;
	3) echo "$TBWRAP --disable-budget-visuals --match bench_writes --report-json $T/rep -- $BENCH_WRITES $W $SIZE libc" ;;
	4) echo "$TBWRAP --disable-budget-visuals --match bench_writes --report-json $T/rep -- $BENCH_WRITES $W $SIZE raw" ;;
	5) echo "env TBWRAP_BENCH_NO_SYNC_WAKEUP=1 $TBWRAP --disable-budget-visuals --match bench_writes --report-json $T/rep -- $BENCH_WRITES $W $SIZE raw" ;;
	6) echo "$BASE/tbwrap --disable-budget-visuals -- $BENCH_WRITES $W $SIZE libc" ;;
	7) echo "$BASE/tbwrap --disable-budget-visuals --match bench_writes --report-json $T/rep -- $BENCH_WRITES $W $SIZE libc" ;;
	8) echo "$BASE/tbwrap --disable-budget-visuals --match bench_writes --report-json $T/rep -- $BENCH_WRITES $W $SIZE raw" ;;
	esac
}

declare -A ns
failed=0
for ((run = 1; run <= N; run++)); do
	for i in "${!rows[@]}"; do
		rm -f "$T/rep"
		read -r -a cmd <<<"$(row_cmd "$i")"
		# stdout is a pipe here, never /dev/null: the agent's stdout must not be the file
		# it benchmarks writes to, or those writes would be its metered stdout.
		out=$("${cmd[@]}" 2>"$T/err")
		rc=$?
		v=$(sed -n "s/^writes=$W ns_per_write=\([0-9.]*\)$/\1/p" <<<"$out")
		if ((rc != 0)) || [[ -z $v ]]; then
			echo "bench_write: '${rows[$i]}' failed (status $rc): $out $(head -c 500 "$T/err")" >&2
			failed=1
			continue
		fi
		if is_agent_row "$i"; then
			agents=$(json_get "$T/rep" overall.agents 2>/dev/null)
			status_=$(json_get "$T/rep" agents.0.status 2>/dev/null)
			if [[ $agents != 1 || $status_ != exited ]]; then
				echo "bench_write: '${rows[$i]}' did not run as one metered agent (agents=$agents status=$status_)" >&2
				failed=1
			fi
		fi
		ns[$i]+="$v "
	done
done

median() {
	tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# SYNC_WAKE_UP: the supervisor's ioctl on its listener, seen by strace, or unknown without it.
sync_wakeup="unknown (strace not installed)"
if has_cmd strace; then
	strace -e trace=ioctl -o "$T/strace" "$TBWRAP" --disable-budget-visuals --match bench_writes -- \
		"$BENCH_WRITES" 10 "$SIZE" raw >/dev/null 2>&1
	# SECCOMP_IOCTL_NOTIF_SET_FLAGS = _IOW('!', 4, __u64); older strace prints it raw.
	line=$(grep -E 'SECCOMP_IOCTL_NOTIF_SET_FLAGS|_IOC\(_IOC_WRITE, 0x21, 0x4, 0x8\)' "$T/strace" | head -1)
	if [[ -z $line ]]; then
		sync_wakeup="not requested"
	elif [[ $line =~ =\ 0$ ]]; then
		sync_wakeup="active (SECCOMP_IOCTL_NOTIF_SET_FLAGS accepted)"
	else
		sync_wakeup="refused by this kernel: ${line##*= }"
	fi
fi

echo "bench_write: $W writes of $SIZE B to /dev/null, median of $N interleaved runs"
echo "kernel $(uname -r), $(nproc) CPUs; SYNC_WAKE_UP: $sync_wakeup"
printf '%-40s %12s %10s   %s\n' "path" "ns/write" "x bare" "runs (ns/write)"
base=$(median <<<"${ns[0]:-}")
for i in "${!rows[@]}"; do
	m=$(median <<<"${ns[$i]:-}")
	if [[ -n $m && -n $base ]]; then
		ratio=$(awk -v a="$m" -v b="$base" 'BEGIN {printf "%.2f", a / b}')
	else
		ratio=-
	fi
	printf '%-40s %12s %10s   %s\n' "${rows[$i]}" "${m:--}" "$ratio" "${ns[$i]:-}"
done
exit "$failed"
