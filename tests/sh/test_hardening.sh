#!/usr/bin/env bash
# What must not kill tbwrap or lose a run, each case failing without the fix it names:
#   - a storm of signals tbwrap does not act on: passed on to the command, tbwrap lives, the
#     report is exact; SIGTSTP stops the command and tbwrap, SIGCONT continues both;
#   - the ledger needs no /dev/shm (a 64 KiB, full one changes nothing), and memory it cannot
#     have is an error with the cause and the fix (exit 125), never a signal;
#   - a --report-json path that cannot be written is refused before the command runs (exit 2);
#   - more agents than the agent table holds: warn mode runs the rest unmetered and says so,
#     block mode refuses them; more seccomp listeners than agents (agents whose children live on)
#     are all served;
#   - a libc without one of the functions the library hooks: the hook makes the system call.
source "$(dirname "$0")/libtest.sh"
setup
require_files "$TBWRAP" "$LIBTBWRAP" "$FAKE_AGENT" "$HELPERS/hide_sym.so"

AGENTS=$(agent_dir)
C=$AGENTS/claude
AGENT=("$C" -p /test --mode raw --output-format stream-json --stdout "$FIX/stdout.stream-json.jsonl"
	--transcript "$FIX/transcript.stream-json.jsonl")

# ---- a signal storm ----
cat >"$T/storm.sh" <<EOF
for s in USR1 USR2 WINCH ALRM PIPE; do trap "echo \$s >>'$T/got'" \$s; done
echo ready >'$T/ready'
${AGENT[*]} --delay-ms 30 >'$T/storm.out'
while ! [ -e '$T/done' ]; do sleep 0.05; done
EOF
rm -f "$T/got" "$T/ready" "$T/done"
start_bg "$TBWRAP" --disable-budget-visuals --report-json "$T/storm.json" -- bash "$T/storm.sh" \
	>"$T/storm.stdout" 2>"$T/storm.err"
tb=$BG_PID
wait_until 10 test -e "$T/ready"
for i in $(seq 1 40); do
	for s in USR1 USR2 WINCH ALRM PIPE; do kill -"$s" "$tb" 2>/dev/null; done
done
wait_until 20 sh -c "[ \$(sort -u '$T/got' 2>/dev/null | wc -l) -eq 5 ]"
touch "$T/done"
wait "$tb"
rc=$?
assert_eq "$rc" 0 "signal storm: tbwrap lived and exits with the command's status (0)"
assert_eq "$(sort -u "$T/got" | tr '\n' ' ')" "ALRM PIPE USR1 USR2 WINCH " \
	"signal storm: every kind of signal was passed on to the command"
assert_file_eq "$T/storm.out" "$FIX/stdout.stream-json.jsonl" "signal storm: the agent's output is intact"
assert_eq "$(json_get "$T/storm.json" overall.used.total):$(json_get "$T/storm.json" agents.0.status)" \
	"17000:exited" "signal storm: the agent was metered exactly"

# SIGTSTP: the command stops, then tbwrap; SIGCONT continues both (job control keeps working).
# The kernel discards SIGTSTP in an orphaned process group: tbwrap runs as a job of a shell with
# job control, as from a terminal.
rm -f "$T/tstp" "$T/tstp.pid"
# (wait returns when the job stops: the shell waits again until it has ended.)
start_bg bash -c 'set -m; "$@" & p=$!; echo $p >"'"$T/tstp.pid"'"
	while :; do wait $p; rc=$?; kill -0 $p 2>/dev/null || break; sleep 0.05; done
	echo rc=$rc >>"'"$T/tstp"'"' _ \
	"$TBWRAP" --disable-budget-visuals -- sh -c 'echo ready >>"$0"; sleep 2; echo out >>"$0"' "$T/tstp" \
	2>/dev/null
wait_until 10 grep -qs ready "$T/tstp"
tb=$(cat "$T/tstp.pid")
child=$(pgrep -P "$tb" | head -1)
state() { sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null; }
is_stopped() { [[ $(state "$1") == T ]]; }
kill -TSTP "$tb"
if wait_until 10 is_stopped "$child" && wait_until 10 is_stopped "$tb"; then
	ok "SIGTSTP: the command stops, and tbwrap too"
else
	not_ok "SIGTSTP: the command stops, and tbwrap too" "tbwrap $(state "$tb"), command $(state "$child")"
fi
sleep 2.5
assert_eq "$(tr '\n' ' ' <"$T/tstp")" "ready " "SIGTSTP: nothing ran on while stopped"
kill -CONT "$tb"
wait_until 10 grep -qs rc= "$T/tstp"
assert_eq "$(tr '\n' ' ' <"$T/tstp")" "ready out rc=0 " "SIGCONT: both went on, and the command finished"

# ---- resources ----
if unshare --mount --propagation private true 2>/dev/null; then
	run unshare --mount --propagation private bash -c '
		mount -t tmpfs -o size=64k tmpfs /dev/shm &&
		dd if=/dev/zero of=/dev/shm/fill bs=1k count=64 status=none 2>/dev/null
		exec "$@"' _ "$TBWRAP" --disable-budget-visuals --report-json "$T/shm.json" -- "${AGENT[@]}"
	assert_eq "$status:$(json_get "$T/shm.json" overall.used.total)" "0:17000" \
		"a 64 KiB, full /dev/shm: tbwrap needs none of it, the agent is metered exactly"
else
	skip "a 64 KiB, full /dev/shm" "no private mount namespace (needs root and unshare)"
fi
# A file size limit below the ledger's size: ftruncate fails (SIGXFSZ is not tbwrap's death).
run bash -c 'ulimit -f 64; exec "$@"' _ "$TBWRAP" -- touch "$T/ran"
assert_eq "$status" 125 "ledger memory refused (ulimit -f 64): exit 125, not a signal"
assert_line_match "$errout" '^tbwrap: ledger: cannot size the ledger to [0-9]+ bytes: File too large \(a file size limit\? check ulimit -f\)$' \
	"  ... one line with the cause and the fix"
assert_eq "$(test -e "$T/ran" && echo ran)" "" "  ... and the command never ran"

# ---- output paths are checked before anything runs ----
run "$TBWRAP" --report-json "$T/no/such/dir/r.json" -- touch "$T/ran"
assert_eq "$status:$(test -e "$T/ran" && echo ran)" "2:" "--report-json into a missing directory: exit 2, nothing ran"
assert_eq "$errout" "tbwrap: --report-json $T/no/such/dir/r.json: cannot create $T/no/such/dir/r.json.tmp: No such file or directory (its directory does not exist)" \
	"  ... and the message names the path and the cause"
run "$TBWRAP" --report-json "$T" -- touch "$T/ran"
assert_eq "$status:$errout" "2:tbwrap: --report-json $T: is a directory (name a file in it)" \
	"--report-json naming a directory: exit 2, before anything ran"
run bash -c 'exec >&-; exec "$@"' _ "$TBWRAP" --report-json - -- touch "$T/ran"
assert_eq "$status:$(test -e "$T/ran" && echo ran)" "2:" "--report-json - with stdout closed: exit 2, nothing ran"

# ---- more agents than the table holds, and more listeners than agents ----
# Each agent leaves a child behind that keeps its seccomp filter (and its listener) alive for a
# while: after 1024 agents, more than 1024 listeners are served at once.
cat >"$T/many.sh" <<EOF
for i in \$(seq 1 1025); do
	'$C' -p /many --mode raw --spawn 'sleep 4 >/dev/null 2>&1 &' --stdout /dev/null >/dev/null 2>>'$T/many.err'
	echo \$? >>'$T/many.codes'
done
EOF
for mode in warn block; do
	rm -f "$T/many.err" "$T/many.codes"
	run "$TBWRAP" --disable-budget-visuals --budget-enforcement-mode "$mode" --report-json "$T/many.json" \
		-- bash "$T/many.sh"
	codes=$(sort "$T/many.codes" | uniq -c | awk '{print $2 "x" $1}' | tr '\n' ' ')
	if [[ $mode == warn ]]; then
		assert_eq "$codes" "0x1025 " "1025 agents, warn: all ran (the last one unmetered)"
		assert_line_match "$(cat "$T/many.err")" \
			"^tbwrap\[[0-9]+\]: WARNING: the ledger's table of 1024 agents is full; this agent runs UNMETERED and is not listed in the report \(warn mode\)$" \
			"1025 agents, warn: the last one says it runs unmetered"
		assert_eq "$(json_get "$T/many.json" overall.agents):$(json_get "$T/many.json" unlisted)" "1025:1" \
			"1025 agents, warn: the report counts 1025 agents, 1 of them unlisted"
	else
		assert_eq "$codes" "0x1024 86x1 " "1025 agents, block: the last one is refused (86)"
		assert_line_match "$(cat "$T/many.err")" \
			"^tbwrap\[[0-9]+\]: refused: the ledger's table of 1024 agents is full \(block mode\)$" \
			"1025 agents, block: the refusal says why"
	fi
	assert_eq "$status" 0 "1025 agents, $mode: tbwrap ends normally"
done

# ---- a function libc does not have ----
# hide_sym.so, preloaded first, makes dlsym(RTLD_NEXT, ...) return NULL for these names.
hide=write,writev,pwrite64,pwritev2,open,openat,open64,dup,dup2,execve,execvp,_exit,fopen
cat >"$T/nosym.py" <<'PY'
import os, sys
os.write(1, b"write\n")
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.writev(fd, [b"wr", b"itev\n"])
os.pwrite(fd, b"pwrite\n", 7)
os.pwritev(fd, [b"pwritev2\n"], 14, os.RWF_DSYNC)
os.dup2(fd, 9)
os.close(fd)
print(open(sys.argv[1]).read().replace("\n", " "))
sys.stdout.flush()
os._exit(3)
PY
run env LD_PRELOAD="$HELPERS/hide_sym.so:$LIBTBWRAP" HIDE_SYMBOLS="$hide" TBWRAP_SOCKET=tbwrap-none \
	python3 "$T/nosym.py" "$T/nosym.txt"
assert_eq "$status:$output" "3:write
writev pwrite pwritev2 " "libc without write, open, exec... : the hooks make the system calls themselves"
run env LD_PRELOAD="$HELPERS/hide_sym.so:$LIBTBWRAP" HIDE_SYMBOLS=execvp,execve TBWRAP_SOCKET=tbwrap-none \
	env echo exec-ok
assert_eq "$status:$output" "0:exec-ok" "libc without execve and execvp: env still runs its command"

done_testing
