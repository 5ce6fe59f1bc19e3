#!/usr/bin/env bash
# The launcher's command line and its exit statuses: every malformed command line is refused with
# status 2 and exactly one line naming the bad argument and the form expected, and runs nothing;
# --help, --version and --dry-run answer without running the command; a command that cannot be
# found or executed gets 127 or 126; otherwise the command's own status comes through (128+N for
# a signal).
source "$(dirname "$0")/libtest.sh"
setup
require_files "$TBWRAP" "$LIBTBWRAP"

MARK=$T/marker

# ---- malformed command lines: status 2, exactly one line on stderr, nothing run ----
# Each row: the expected first line ::: the arguments (split on spaces). Every command line ends
# with a command that would create $MARK if anything ran it.
rows=(
	"tbwrap: --command-budget 'test': expected /COMMAND=TOKENS (e.g. /test=50K):::--command-budget test"
	"tbwrap: --command-budget '=5': expected /COMMAND=TOKENS (e.g. /test=50K):::--command-budget =5"
	"tbwrap: --command-budget '/x=abc': expected a token count such as 50000, 50K or 1.5M:::--command-budget /x=abc"
	"tbwrap: --command-budget '/x=-1': expected a token count such as 50000, 50K or 1.5M:::--command-budget /x=-1"
	"tbwrap: --command-budget '/x=1e99': expected a token count such as 50000, 50K or 1.5M:::--command-budget /x=1e99"
	"tbwrap: --command-budget '/x=': expected a token count such as 50000, 50K or 1.5M:::--command-budget /x="
	"tbwrap: --command-budget '/x=1.5': not a whole number of tokens:::--command-budget /x=1.5"
	"tbwrap: --command-budget '/x=9007199254740993': more than 9007199254740992 tokens:::--command-budget /x=9007199254740993"
	"tbwrap: --command-budget '/x=6': /x already has a budget:::--command-budget /x=5 --command-budget /x=6"
	"tbwrap: --command-budget '/a b=5': expected /COMMAND=TOKENS (e.g. /test=50K):::--command-budget=/a@b=5"
	"tbwrap: --overall-token-budget '50Q': expected a token count such as 50000, 50K or 1.5M:::--overall-token-budget 50Q"
	"tbwrap: --overall-token-budget given twice:::--overall-token-budget 5 --overall-token-budget 6"
	"tbwrap: --estimate '-3': expected a token count such as 50000, 50K or 1.5M (or auto):::--estimate -3"
	"tbwrap: unknown option '--bogus' (see tbwrap --help):::--bogus"
	"tbwrap: unknown option '--overall' (see tbwrap --help):::--overall 5"
	"tbwrap: --dry-run takes no value (got '1'):::--dry-run=1"
	"tbwrap: --budget-enforcement-mode 'strict': expected warn or block:::--budget-enforcement-mode strict"
	"tbwrap: --budget-enforcement-mode given twice:::--budget-enforcement-mode warn --budget-enforcement-mode block"
	"tbwrap: --match 'a/b': expected a program name (no '/' or ':', at most 255 bytes):::--match a/b"
	"tbwrap: --match 'a:b': expected a program name (no '/' or ':', at most 255 bytes):::--match a:b"
	"tbwrap: --report-json '': expected a file name (or - for stdout):::--report-json="
)
for row in "${rows[@]}"; do
	want=${row%%:::*}
	read -r -a args <<<"${row#*:::}"
	# "/a@b" stands for an argument with a space (the table is split on spaces).
	args=("${args[@]//@/ }")
	rm -f "$MARK"
	run "$TBWRAP" "${args[@]}" -- touch "$MARK"
	assert_eq "$status:$errout" "2:$want" "refused: ${args[*]}"
	assert_eq "$output" "" "  ... prints nothing on stdout"
	assert_eq "$([[ -e $MARK ]] && echo ran)" "" "  ... ran nothing"
done

# Cases where the command itself is what is missing, so no marker command can follow.
run "$TBWRAP" --overall-token-budget 5
assert_eq "$status:$errout" \
	"2:tbwrap: no command given (usage: tbwrap [OPTIONS] -- COMMAND [ARGS...]; see tbwrap --help)" \
	"no command: refused"
run "$TBWRAP" --overall-token-budget 5 --
assert_eq "$status:$errout" \
	"2:tbwrap: no command given (usage: tbwrap [OPTIONS] -- COMMAND [ARGS...]; see tbwrap --help)" \
	"no command after --: refused"
run "$TBWRAP" --dry-run --report-json
assert_eq "$status:$errout" "2:tbwrap: --report-json: missing value (expected FILE)" \
	"missing value of --report-json: refused"
run "$TBWRAP" --command-budget
assert_eq "$status:$errout" \
	"2:tbwrap: --command-budget: missing value (expected /COMMAND=TOKENS)" \
	"missing value of --command-budget: refused"
# The value of a budget option is taken as given, even when it is "--": a budget of "--" is a
# typo and must not silently become "no budget".
rm -f "$MARK"
run "$TBWRAP" --overall-token-budget -- touch "$MARK"
assert_eq "$status:$errout" \
	"2:tbwrap: --overall-token-budget '--': expected a token count such as 50000, 50K or 1.5M" \
	"'--' as a budget value: refused"
assert_eq "$([[ -e $MARK ]] && echo ran)" "" "  ... ran nothing"
run "$TBWRAP" status --bogus
assert_eq "$status:$errout" \
	"2:tbwrap: status: unknown option '--bogus' (usage: tbwrap status [--disable-budget-visuals] [PID])" \
	"status --bogus: refused"
run "$TBWRAP" status 12x
assert_eq "$status:$errout" \
	"2:tbwrap: status '12x': expected the process id of a running tbwrap" \
	"status 12x: refused"

# ---- --help, --version ----
run "$TBWRAP" --help
assert_eq "$status" 0 "--help exits 0"
assert_eq "$errout" "" "--help writes nothing on stderr"
help=$output
# Every option the parser accepts (its table in launcher/cli.c) is documented in --help.
mapfile -t flags < <(sed -n 's/^[[:space:]]*{"\(-[-a-z]*\)",.*/\1/p' "$ROOT/launcher/cli.c")
if ((${#flags[@]} < 10)); then
	not_ok "option table of launcher/cli.c found" "got ${#flags[@]} options: ${flags[*]}"
fi
for f in "${flags[@]}"; do
	if grep -qE -- "(^|[ ,])$f([ ,=]|$)" <<<"$help"; then
		ok "--help mentions $f"
	else
		not_ok "--help mentions $f"
	fi
done
for s in "tbwrap status" " 86 " " 87 " " 88 " "125 " "126 " "127 "; do
	assert_contains "$help" "$s" "--help mentions '$s'"
done
run "$TBWRAP" -h
assert_eq "$status:$output" "0:$help" "-h prints the same text"
rm -f "$MARK"
run "$TBWRAP" --help -- touch "$MARK"
[[ $status == 0 && ! -e $MARK ]] && ok "--help before a command runs nothing" ||
	not_ok "--help before a command runs nothing" "status $status"

run "$TBWRAP" --version
assert_match "$status:$output" '^0:tbwrap [0-9]+\.[0-9]+\.[0-9]+ \(commit ([0-9a-f]{12}(-modified)?|unknown)\)$' \
	"--version prints 'tbwrap X.Y.Z (commit HASH)'"

# ---- --dry-run ----
rm -f "$MARK"
run "$TBWRAP" --overall-token-budget 50K --command-budget /test=1.5M --command-budget '(prompt)=7k' \
	--estimate 2K --budget-enforcement-mode block --match claude --match other --dry-run \
	-- touch "$MARK" second
assert_eq "$status" 0 "--dry-run exits 0"
assert_eq "$output" "mode: block
estimate per agent: 2.0K (2000 tokens)
token budgets count: input, output, cache_creation, cache_read
prices: built-in (data/prices.txt) (20 rows)
overall budget: 50.0K (50000 tokens)
command budget /test: 1.5M (1500000 tokens)
command budget (prompt): 7.0K (7000 tokens)
agents: programs named claude other
preload: $LIBTBWRAP
would run: touch $MARK second" "--dry-run prints the resolved budgets and the command"
assert_eq "$([[ -e $MARK ]] && echo ran)" "" "--dry-run runs nothing"
run "$TBWRAP" --dry-run -- true
assert_eq "$output" "mode: warn
estimate per agent: 1.0K (1000 tokens)
token budgets count: input, output, cache_creation, cache_read
prices: built-in (data/prices.txt) (20 rows)
overall budget: none
agents: programs named claude
preload: $LIBTBWRAP
would run: true" "--dry-run with defaults"
run "$TBWRAP" --dry-run --overall-token-budget=0 -- true
assert_contains "$output" "overall budget: 0 (0 tokens)" "--dry-run shows a zero overall budget as 0, not none"

# ---- running commands ----
run "$TBWRAP" -- "$T/no-such-command"
assert_eq "$status" 127 "a command that does not exist: 127"
assert_contains "$errout" "tbwrap: cannot run '$T/no-such-command': No such file or directory" \
	"  ... with a message naming it"
run "$TBWRAP" -- tbwrap-no-such-command-on-path
assert_eq "$status" 127 "a command not on PATH: 127"
assert_contains "$errout" "tbwrap: cannot run 'tbwrap-no-such-command-on-path': No such file or directory" \
	"  ... with a message naming it"
printf '#!/bin/sh\ntouch "%s"\n' "$MARK" >"$T/noexec.sh"
chmod 644 "$T/noexec.sh"
rm -f "$MARK"
run "$TBWRAP" -- "$T/noexec.sh"
assert_eq "$status" 126 "a command that is not executable: 126"
assert_contains "$errout" "tbwrap: cannot run '$T/noexec.sh': Permission denied" "  ... with a message naming it"
run "$TBWRAP" -- "$T"
assert_eq "$status" 126 "a directory as command: 126"

run "$TBWRAP" -- sh -c 'echo out; echo err >&2; exit 3'
assert_eq "$status" 3 "the command's exit status 3 comes through"
assert_eq "$output" "out" "  ... with its stdout"
assert_contains "$errout" "err" "  ... and its stderr"
run "$TBWRAP" -- sh -c 'exit 0'
assert_eq "$status" 0 "exit 0 comes through"
run "$TBWRAP" -- sh -c 'exit 255'
assert_eq "$status" 255 "exit 255 comes through"
run "$TBWRAP" -- sh -c 'kill -TERM $$'
assert_eq "$status" 143 "a command killed by SIGTERM: 128+15"
run "$TBWRAP" -- sh -c 'kill -KILL $$'
assert_eq "$status" 137 "a command killed by SIGKILL: 128+9"
run "$TBWRAP" -- sh -c 'kill -SEGV $$'
assert_eq "$status" 139 "a command killed by SIGSEGV: 128+11"
# A command that is a non-option word ends the options: its own flags are its own.
run "$TBWRAP" echo --overall-token-budget x
assert_eq "$status:$output" "0:--overall-token-budget x" "options end at the command; its arguments are passed on"

# A signal sent to tbwrap goes to the command (like timeout(1)), and tbwrap reports its end.
mkdir "$T/tmpdir"
start_bg env TMPDIR="$T/tmpdir" "$TBWRAP" -- sh -c 'trap "echo got-term; exit 7" TERM; echo ready; while :; do sleep 0.05; done' \
	>"$T/sig.out" 2>"$T/sig.err"
pid=$BG_PID
wait_until 10 grep -q ready "$T/sig.out"
# The supervisor's socket is in the abstract namespace: listening, named by uid and pid, and
# nothing of tbwrap's on disk (TMPDIR, /dev/shm) that a process of the session could replace.
assert_line_match "$(cat /proc/net/unix)" " @tbwrap-$(id -u)-$pid-[0-9a-f]{16}\$" \
	"while running: the supervisor listens on @tbwrap-UID-PID-RANDOM"
assert_eq "$(ls -A "$T/tmpdir"):$(compgen -G "/dev/shm/tbwrap-$pid-*" || true)" ":" \
	"while running: nothing in TMPDIR or /dev/shm"
kill -TERM "$pid"
wait "$pid"
rc=$?
assert_eq "$rc:$(head -1 "$T/sig.out"):$(sed -n 2p "$T/sig.out")" "7:ready:got-term" \
	"SIGTERM to tbwrap reaches the command; its status comes through"

# Nothing is left behind.
assert_eq "$(grep -c "@tbwrap-$(id -u)-$pid-" /proc/net/unix)" 0 "after it ended: its socket is gone"

done_testing
