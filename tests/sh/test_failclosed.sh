#!/usr/bin/env bash
# Failing closed: when the supervisor dies under a running agent the agent stops at once, says why
# and exits 88 (it does not hang on a notified write, and it does not go on unmetered); an agent
# started after that cannot reach the supervisor and exits 88 too; an agent given a corrupt or
# missing ledger refuses to run; an agent's filter sets no_new_privs for everything below it and
# makes io_uring unavailable there, so nothing in its tree can write around the meter.
source "$(dirname "$0")/libtest.sh"
setup
require_files "$TBWRAP" "$LIBTBWRAP" "$FAKE_AGENT"

AGENTS=$(agent_dir)
C=$AGENTS/claude
# The socket directory of a tbwrap killed with SIGKILL is left behind: keep it inside $T.
export TMPDIR=$T
shm_segments=()

# Ledgers of killed launchers stay in /dev/shm (only their creator unlinks them): remove ours.
remove_segments() {
	local p
	for p in "${shm_segments[@]}"; do
		rm -f /dev/shm/tbwrap-"$p"-* 2>/dev/null
	done
	rm -f /dev/shm/"tbwrap-failclosed-$$" 2>/dev/null
}
# cleanup exits with the status it is entered with: hand it the test's own.
trap '_rc=$?; remove_segments; (exit $_rc); cleanup' EXIT

for i in $(seq 1 50); do
	printf '{"type":"assistant","message":{"id":"msg_%02d","type":"message","role":"assistant","usage":{"input_tokens":10,"output_tokens":1}}}\n' "$i"
done >"$T/slow.jsonl"

# ---- the supervisor killed under an agent started by a script ----
for mode in raw libc; do
	rm -f "$T/rc" "$T/out1" "$T/out2"
	cat >"$T/script.sh" <<EOF
"$C" -p /test --mode $mode --delay-ms 200 --output-format stream-json --stdout "$T/slow.jsonl" >"$T/out1"
echo first=\$? >>"$T/rc"
"$C" -p /test --mode $mode --output-format stream-json --stdout "$T/slow.jsonl" >"$T/out2"
echo second=\$? >>"$T/rc"
EOF
	start_bg "$TBWRAP" -- bash "$T/script.sh" 2>"$T/err"
	tb=$BG_PID
	shm_segments+=("$tb")
	# Kill the supervisor once the agent is metered and streaming.
	wait_until 10 test -s "$T/out1"
	kill -KILL "$tb"
	if wait_until 10 grep -q second= "$T/rc"; then
		ok "$mode: after SIGKILL of tbwrap the script's agents end (no hang)"
	else
		not_ok "$mode: after SIGKILL of tbwrap the script's agents end (no hang)" "rc: $(cat "$T/rc" 2>/dev/null)"
	fi
	assert_eq "$(cat "$T/rc" 2>/dev/null | tr '\n' ' ')" "first=88 second=88 " \
		"$mode: the running agent and the next one exit 88"
	assert_match "$(grep -c '' "$T/out1")" '^[1-9]$|^[1-4][0-9]$' "$mode: the first agent stopped part-way (of 50 lines)"
	assert_match "$(cat "$T/err")" \
		'(^|'$'\n'')tbwrap\[[0-9]+\]: supervisor is gone; stopping this agent \(its usage can no longer be metered\)('$'\n''|$)' \
		"$mode: the running agent says the supervisor is gone"
	assert_match "$(cat "$T/err")" \
		"(^|"$'\n'")tbwrap\[[0-9]+\]: cannot reach the supervisor at $T/tbwrap-[A-Za-z0-9]{6}/sock: Connection refused("$'\n'"|$)" \
		"$mode: the next agent says it cannot reach the supervisor"
	assert_eq "$(wc -c <"$T/out2" | tr -d ' ')" 0 "$mode: the next agent wrote nothing"
done

# ---- the supervisor killed under its direct child ----
rm -f "$T/out1"
start_bg "$TBWRAP" -- "$C" -p /test --mode raw --delay-ms 200 --output-format stream-json --stdout "$T/slow.jsonl" >"$T/out1" 2>"$T/err"
tb=$BG_PID
shm_segments+=("$tb")
wait_until 10 test -s "$T/out1"
agent=$(pgrep -P "$tb" | head -1)
kill -KILL "$tb"
if [[ -n $agent ]] && wait_until 10 sh -c "! kill -0 $agent 2>/dev/null"; then
	ok "direct child: the agent ends after tbwrap is killed"
else
	not_ok "direct child: the agent ends after tbwrap is killed" "agent pid '$agent'"
fi
assert_match "$(cat "$T/err")" "tbwrap\[$agent\]: supervisor is gone; stopping this agent" \
	"direct child: it says so, with its pid"

# ---- a corrupt or missing ledger ----
seg=tbwrap-failclosed-$$
agent_env=(env TBWRAP_LEDGER="/$seg" TBWRAP_SOCKET="$T/no-such-socket" LD_PRELOAD="$LIBTBWRAP")
# A segment of the right size (read from the refusal of an empty one) with a bad magic number.
rm -f "/dev/shm/$seg"
(umask 077 && : >"/dev/shm/$seg")
run "${agent_env[@]}" "$C" -p /test --output-format stream-json --stdout "$FIX/stdout.text.txt"
size=$(sed -n 's/.*is truncated (0 bytes, expected \([0-9]*\)).*/\1/p' <<<"$errout")
assert_match "$status:$size" '^86:[0-9]+$' "empty ledger: refused (86), the message names the expected size"
truncate -s "$size" "/dev/shm/$seg"
printf 'BADMAGIC' | dd of="/dev/shm/$seg" conv=notrunc status=none
before=$(md5sum <"/dev/shm/$seg")
rm -rf "$CLAUDE_CONFIG_DIR/projects"
run "${agent_env[@]}" "$C" -p /test --output-format stream-json --stdout "$FIX/stdout.text.txt" --transcript "$FIX/transcript.text.jsonl"
assert_eq "$status" 86 "bad magic: the agent refuses to run (86)"
assert_match "$errout" \
	"^tbwrap\[[0-9]+\]: refusing to run this agent unmetered: ledger /$seg has a bad magic number \(0x434947414d444142, expected 0x31474c5257425454\)" \
	"bad magic: one clear line"
assert_eq "$output:$(transcripts)" ":" "bad magic: the agent never ran (no stdout, no transcript)"
assert_eq "$(md5sum <"/dev/shm/$seg")" "$before" "bad magic: the segment was not written to"
run "${agent_env[@]}" sh -c 'echo plain'
assert_eq "$status:$output" "0:plain" "bad ledger: a program that is no agent still runs"
rm -f "/dev/shm/$seg"
run "${agent_env[@]}" "$C" -p /test --output-format stream-json --stdout "$FIX/stdout.text.txt"
assert_eq "$status:$output" "86:" "missing ledger: refused, nothing written"
assert_match "$errout" "^tbwrap\[[0-9]+\]: refusing to run this agent unmetered: cannot open ledger /$seg: No such file or directory" \
	"missing ledger: one clear line"

# ---- what an agent's tree can and cannot do ----
run "$TBWRAP" -- grep NoNewPrivs /proc/self/status
assert_eq "$output" $'NoNewPrivs:\t0' "a program that is no agent keeps no_new_privs unset"
"$TBWRAP" -- "$C" -p /test --spawn "grep NoNewPrivs /proc/self/status >'$T/nnp'" >/dev/null 2>&1
assert_eq "$(cat "$T/nnp" 2>/dev/null)" $'NoNewPrivs:\t1' "an agent's child runs with no_new_privs"

cat >"$T/iouring.py" <<'PY'
import ctypes, errno, sys
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)  # struct io_uring_params
fd = libc.syscall(425, 4, params)          # io_uring_setup(4, &params)
print("ok" if fd >= 0 else errno.errorcode.get(ctypes.get_errno(), "?"))
PY
if ! python3 -c 'import ctypes; ctypes.CDLL(None).syscall' 2>/dev/null; then
	skip "io_uring_setup fails with ENOSYS below an agent" "python3 has no usable ctypes"
else
	bare=$(python3 "$T/iouring.py")
	"$TBWRAP" -- "$C" -p /test --spawn "python3 '$T/iouring.py' >'$T/iou'" >/dev/null 2>&1
	if [[ $bare == ENOSYS ]]; then
		skip "io_uring_setup fails with ENOSYS below an agent" "this kernel has no io_uring"
	else
		assert_eq "$(cat "$T/iou" 2>/dev/null)" ENOSYS \
			"io_uring_setup fails with ENOSYS below an agent (outside: $bare)"
	fi
	run "$TBWRAP" -- python3 "$T/iouring.py"
	assert_eq "$output" "$bare" "io_uring is untouched for a program that is no agent"
fi

done_testing
