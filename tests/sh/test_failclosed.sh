#!/usr/bin/env bash
# Failing closed: when the supervisor dies under a running agent the agent stops at once, says why
# and exits 88 (it does not hang on a notified write, and it does not go on unmetered); an agent
# started after that cannot reach the supervisor and exits 88 too; an agent whose socket leads to
# something that is not a tbwrap supervisor refuses to run; an agent's filter sets no_new_privs
# for everything below it and makes io_uring unavailable there, so nothing in its tree can write
# around the meter.
source "$(dirname "$0")/libtest.sh"
setup
require_files "$TBWRAP" "$LIBTBWRAP" "$FAKE_AGENT"

AGENTS=$(agent_dir)
C=$AGENTS/claude

for i in $(seq 1 50); do
	printf '{"type":"assistant","message":{"id":"msg_%02d","type":"message","role":"assistant","model":"claude-opus-4-8","usage":{"input_tokens":10,"output_tokens":1}}}\n' "$i"
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
	# Refused once the supervisor's socket is gone; reset when the agent connected while the
	# killed process was still closing its files (a loaded machine): fail-closed either way.
	assert_match "$(cat "$T/err")" \
		"(^|"$'\n'")tbwrap\[[0-9]+\]: (cannot reach the supervisor \(@tbwrap-$(id -u)-$tb-[0-9a-f]{16}\): Connection refused|the supervisor \(@tbwrap-$(id -u)-$tb-[0-9a-f]{16}\) went away before it took this agent: Connection reset by peer)("$'\n'"|$)" \
		"$mode: the next agent says it cannot reach the supervisor"
	assert_eq "$(wc -c <"$T/out2" | tr -d ' ')" 0 "$mode: the next agent wrote nothing"
done

# ---- the supervisor killed under its direct child ----
rm -f "$T/out1"
start_bg "$TBWRAP" -- "$C" -p /test --mode raw --delay-ms 200 --output-format stream-json --stdout "$T/slow.jsonl" >"$T/out1" 2>"$T/err"
tb=$BG_PID
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

# ---- a socket that leads nowhere, or to something that is not a supervisor ----
# The agent learns nothing from the environment but where to say hello; everything else is the
# supervisor's verdict. No supervisor, or an impostor: it refuses to run, in one clear line.
run env TBWRAP_SOCKET="tbwrap-no-such-session" LD_PRELOAD="$LIBTBWRAP" \
	"$C" -p /test --output-format stream-json --stdout "$FIX/stdout.text.txt" --transcript "$FIX/transcript.text.jsonl"
assert_eq "$status:$output:$(transcripts)" "88::" "no supervisor: the agent exits 88 and never ran"
assert_line_match "$errout" '^tbwrap\[[0-9]+\]: cannot reach the supervisor \(@tbwrap-no-such-session\): Connection refused$' \
	"no supervisor: one clear line"
for kind in garbage hangup; do
	cat >"$T/impostor.py" <<PY
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind("\0tbwrap-impostor-$$")
s.listen(1)
open("$T/impostor.ready", "w").close()
c, _ = s.accept()
c.recv(4096)
if "$kind" == "garbage":
    c.send(b"\xff" * 528)
c.close()
PY
	rm -f "$T/impostor.ready"
	python3 "$T/impostor.py" &
	imp=$!
	wait_until 10 test -e "$T/impostor.ready"
	run env TBWRAP_SOCKET="tbwrap-impostor-$$" LD_PRELOAD="$LIBTBWRAP" \
		"$C" -p /test --output-format stream-json --stdout "$FIX/stdout.text.txt" --transcript "$FIX/transcript.text.jsonl"
	wait "$imp" 2>/dev/null
	want="the supervisor did not take this agent: Protocol error"
	[[ $kind == hangup ]] && want="the supervisor \(@tbwrap-impostor-$$\) went away before it took this agent: Connection reset by peer"
	assert_eq "$status:$output:$(transcripts)" "88::" "impostor ($kind): the agent exits 88 and never ran"
	assert_line_match "$errout" "^tbwrap\[[0-9]+\]: $want\$" \
		"impostor ($kind): one clear line ($want)"
done
run env TBWRAP_SOCKET="tbwrap-no-such-session" LD_PRELOAD="$LIBTBWRAP" sh -c 'echo plain'
assert_eq "$status:$output" "0:plain" "no supervisor: a program that is no agent still runs"

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
