#!/usr/bin/env bash
# Tests of the test helpers themselves, run WITHOUT tbwrap: the shell tests trust fake_agent to
# write its stream the way the real CLI does (and byte-identically), static_writer and
# bench_writes to do what they say, and libtest.sh to report and clean up correctly. If any of
# that were wrong, every tbwrap test built on it would prove nothing.
# shellcheck source=tests/sh/libtest.sh
source "$(dirname "$0")/libtest.sh"
setup
require_files "$FAKE_AGENT" "$STATIC_WRITER" "$BENCH_WRITES"

# A reader that drains its stdin 1 KiB at a time with a pause between reads, so a writer meets a
# full pipe (EAGAIN on RWF_NOWAIT, partial writes) again and again.
cat >"$T/slow_reader.py" <<'PY'
import os, sys, time
with open(sys.argv[1], "wb") as out:
    while True:
        b = os.read(0, 1024)
        if not b:
            break
        out.write(b)
        time.sleep(0.0005)
PY

# A preload shim that counts the libc write/writev calls it sees (what an LD_PRELOAD hook can
# see), written to $SHIM_OUT at exit as "write_fd1=N writev_fd1=N write_all=N".
cat >"$T/shim.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>
static unsigned long write_fd1, writev_fd1, write_all;
__attribute__((visibility("default"))) ssize_t write(int fd, const void *b, size_t n)
{
	static ssize_t (*real)(int, const void *, size_t);
	if (!real)
		real = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	__atomic_add_fetch(&write_all, 1, __ATOMIC_RELAXED);
	if (fd == 1)
		__atomic_add_fetch(&write_fd1, 1, __ATOMIC_RELAXED);
	return real(fd, b, n);
}
__attribute__((visibility("default"))) ssize_t writev(int fd, const struct iovec *v, int n)
{
	static ssize_t (*real)(int, const struct iovec *, int);
	if (!real)
		real = (ssize_t(*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
	if (fd == 1)
		__atomic_add_fetch(&writev_fd1, 1, __ATOMIC_RELAXED);
	return real(fd, v, n);
}
__attribute__((destructor)) static void report(void)
{
	const char *p = getenv("SHIM_OUT");
	FILE *f = p ? fopen(p, "w") : NULL;
	if (f) {
		fprintf(f, "write_fd1=%lu writev_fd1=%lu write_all=%lu\n", write_fd1, writev_fd1,
			write_all);
		fclose(f);
	}
}
C
SHIM=
if gcc -shared -fPIC -O1 -o "$T/shim.so" "$T/shim.c" -ldl 2>"$T/shim.err"; then
	SHIM=$T/shim.so
fi

# A big stream with lines longer than a page, so a one-page pipe forces partial writes.
python3 - "$T/big.jsonl" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for k in range(120):
        f.write('{"k":%d,"pad":"%s"}\n' % (k, "y" * (k * 137 % 9000)))
PY

# stats_of FILE KEY: a counter from fake_agent's --stats line.
stats_of() {
	sed -n "s/.*fake_agent: stats .*\b$2=\([0-9]*\).*/\1/p" "$1"
}

# fresh_config: an empty config dir for one run, so exactly one transcript can appear there.
fresh_config() {
	rm -rf "$CLAUDE_CONFIG_DIR"
	mkdir -p "$CLAUDE_CONFIG_DIR"
}

# check_transcript NAME WANT_FILE: exactly one transcript was written, identical to WANT_FILE.
check_transcript() {
	local files
	mapfile -t files < <(transcripts)
	if ((${#files[@]} != 1)); then
		not_ok "$1" "expected one transcript, found ${#files[@]}: ${files[*]}"
		return
	fi
	assert_file_eq "${files[0]}" "$2" "$1"
}

# ---- every mode x chunk size x destination: stdout and transcript byte-identical ----

so=$FIX/stdout.stream-json-partial.jsonl
tr=$FIX/transcript.stream-json-partial.jsonl
for mode in libc writev stdio raw; do
	for chunk in line 1 7 4096; do
		copt=()
		[[ $chunk == line ]] || copt=(--chunk "$chunk")
		for dest in file devnull pipe; do
			label="$mode chunk=$chunk to $dest"
			fresh_config
			rm -f "$T/out"
			case $dest in
			file)
				"$FAKE_AGENT" --mode "$mode" "${copt[@]}" --stdout "$so" --transcript "$tr" \
					>"$T/out" 2>"$T/err"
				rc=$?
				;;
			devnull)
				"$FAKE_AGENT" --mode "$mode" "${copt[@]}" --stdout "$so" --transcript "$tr" \
					>/dev/null 2>"$T/err"
				rc=$?
				;;
			pipe)
				"$FAKE_AGENT" --mode "$mode" "${copt[@]}" --pipe-size 4096 --stdout "$so" \
					--transcript "$tr" 2>"$T/err" | python3 "$T/slow_reader.py" "$T/out"
				rc=${PIPESTATUS[0]}
				;;
			esac
			if [[ $rc != 0 ]]; then
				not_ok "$label: exit 0" "status $rc: $(cat "$T/err")"
				continue
			fi
			[[ $dest == devnull ]] || assert_file_eq "$T/out" "$so" "$label: stdout identical"
			check_transcript "$label: transcript identical" "$tr"
		done
	done
done

# Every captured output mode, with its own transcript (uneven line counts interleave correctly).
for kind in text.txt:text json.json:json stream-json.jsonl:stream-json \
	stream-json-max-budget.jsonl:stream-json-max-budget; do
	out_fix=$FIX/stdout.${kind%%:*}
	tr_fix=$FIX/transcript.${kind#*:}.jsonl
	for mode in libc raw; do
		fresh_config
		"$FAKE_AGENT" --mode "$mode" --stdout "$out_fix" --transcript "$tr_fix" >"$T/out" 2>"$T/err"
		assert_file_eq "$T/out" "$out_fix" "fixture ${kind#*:} $mode: stdout identical"
		check_transcript "fixture ${kind#*:} $mode: transcript identical" "$tr_fix"
	done
done

# ---- the raw path through a full one-page pipe: EAGAIN and partial writes really happen ----

for chunk in line 7; do
	copt=()
	[[ $chunk == line ]] || copt=(--chunk "$chunk")
	"$FAKE_AGENT" --mode raw "${copt[@]}" --pipe-size 4096 --stats --stdout "$T/big.jsonl" \
		2>"$T/err" | python3 "$T/slow_reader.py" "$T/out"
	assert_eq "${PIPESTATUS[0]}" 0 "raw chunk=$chunk slow pipe: exit 0"
	assert_file_eq "$T/out" "$T/big.jsonl" "raw chunk=$chunk slow pipe: stdout identical"
	eagain=$(stats_of "$T/err" eagain)
	partial=$(stats_of "$T/err" partial)
	assert_match "$eagain" '^[1-9][0-9]*$' "raw chunk=$chunk slow pipe: EAGAIN retried ($eagain times)"
	if [[ $chunk == line ]]; then
		# Lines up to 9 KB against a 4 KiB pipe: the kernel takes a page and returns short.
		assert_match "$partial" '^[1-9][0-9]*$' "raw whole lines slow pipe: partial writes resumed ($partial)"
	fi
done

# Bun's SIGPWR (SA_RESTART) during the run: interrupted waits resume and nothing is lost or doubled.
"$FAKE_AGENT" --mode raw --sigpwr --pipe-size 4096 --stats --stdout "$T/big.jsonl" 2>"$T/err" |
	python3 "$T/slow_reader.py" "$T/out"
assert_eq "${PIPESTATUS[0]}" 0 "raw --sigpwr: exit 0"
assert_file_eq "$T/out" "$T/big.jsonl" "raw --sigpwr: stdout identical"
assert_match "$(stats_of "$T/err" signals)" '^[1-9][0-9]*$' "raw --sigpwr: signals were delivered"
assert_match "$(stats_of "$T/err" thread_writes)" '^[1-9][0-9]*$' "raw: the second thread wrote the eventfd"
assert_eq "$(stats_of "$T/err" eventfd_writes)" 120 "raw: the main thread wrote the eventfd once per line"

# libc mode through the same slow pipe: blocking writes, same bytes.
"$FAKE_AGENT" --mode libc --chunk 7 --pipe-size 4096 --stdout "$T/big.jsonl" 2>"$T/err" |
	python3 "$T/slow_reader.py" "$T/out"
assert_file_eq "$T/out" "$T/big.jsonl" "libc chunk=7 slow pipe: stdout identical"

# ---- what a preload hook can see ----

if [[ -n $SHIM ]]; then
	so=$FIX/stdout.stream-json.jsonl # 12 lines
	for mode in libc writev stdio raw; do
		fresh_config
		SHIM_OUT=$T/shim.out LD_PRELOAD=$SHIM "$FAKE_AGENT" --mode "$mode" --stdout "$so" \
			--transcript "$FIX/transcript.stream-json.jsonl" >"$T/out" 2>"$T/err"
		assert_file_eq "$T/out" "$so" "under a write hook, $mode: stdout identical"
		case $mode in
		libc) want="write_fd1=12 writev_fd1=0 write_all=30" ;;  # 12 stdout + 18 transcript lines
		writev) want="write_fd1=0 writev_fd1=12 write_all=0" ;;
		# glibc's stdio calls its internal __write: an interposed write() never sees it.
		stdio) want="write_fd1=0 writev_fd1=0 write_all=0" ;;
		# Bun-like raw syscalls: nothing at all reaches a libc hook.
		raw) want="write_fd1=0 writev_fd1=0 write_all=0" ;;
		esac
		assert_eq "$(cat "$T/shim.out")" "$want" "a write hook sees what $mode mode should show it"
	done
else
	skip "what a preload hook can see" "cannot build the test shim: $(head -n1 "$T/shim.err")"
fi

# ---- strace: the raw mode issues the syscalls the Bun binary issues ----

if has_cmd strace && strace -f -qq -o /dev/null true 2>/dev/null; then
	so=$FIX/stdout.stream-json.jsonl
	fresh_config
	strace -f -qq -e trace=fcntl,pwritev2,write,openat,eventfd2 -o "$T/trace" \
		"$FAKE_AGENT" --mode raw --stdout "$so" --transcript "$FIX/transcript.stream-json.jsonl" \
		2>"$T/err" | cat >"$T/out"
	assert_file_eq "$T/out" "$so" "strace raw to a pipe: stdout identical"
	dupfd=$(sed -n 's/.*fcntl(1, F_DUPFD_CLOEXEC, 0) *= *\([0-9]*\)$/\1/p' "$T/trace")
	assert_match "$dupfd" '^[0-9]+$' "strace raw: stdout duplicated with fcntl(1, F_DUPFD_CLOEXEC, 0) (fd $dupfd)"
	# No closing parenthesis: strace splits a call the other thread interrupts into "<unfinished ...>".
	n_pw=$(grep -c "pwritev2($dupfd, .*, 1, -1, RWF_NOWAIT" "$T/trace")
	# 12 lines; an EAGAIN (not expected with a 64 KiB pipe and 7 KB) would only add calls.
	assert_eq "$((n_pw >= 12))" 1 "strace raw: stdout lines written with pwritev2 RWF_NOWAIT on the duplicate ($n_pw calls)"
	assert_eq "$(grep -cE '(write|pwritev2)\(1,' "$T/trace")" 0 "strace raw: nothing written to fd 1 itself"
	tfd=$(sed -n 's/.*openat(.*\/projects\/.*\.jsonl", [^)]*O_APPEND[^)]*) *= *\([0-9]*\)$/\1/p' "$T/trace")
	assert_match "$tfd" '^[0-9]+$' "strace raw: transcript opened with O_APPEND (fd $tfd)"
	assert_eq "$(grep -c "write($tfd, " "$T/trace")" 18 "strace raw: 18 transcript lines written with write(2)"
	efd=$(sed -n 's/.*eventfd2(0, [^)]*) *= *\([0-9]*\)$/\1/p' "$T/trace")
	n_threads=$(grep "write($efd, " "$T/trace" | awk '{print $1}' | sort -u | wc -l)
	assert_eq "$n_threads" 2 "strace raw: eventfd $efd written from two threads"

	strace -f -qq -e trace=pwritev2,write -o "$T/trace" \
		"$FAKE_AGENT" --mode raw --stdout "$so" >"$T/out" 2>"$T/err"
	assert_eq "$(grep -c 'pwritev2(' "$T/trace")" 0 "strace raw to a file: no pwritev2 (RWF_NOWAIT is for pipes)"
	assert_eq "$(grep -cE '^[0-9]+ +write\(3, ' "$T/trace")" 12 "strace raw to a file: 12 write(2) on the duplicate"

	strace -f -qq -e trace=write -o "$T/trace" "$STATIC_WRITER" 3 0 >/dev/null
	assert_eq "$(grep -c 'write(1, "line ' "$T/trace")" 3 "strace static_writer: one write syscall per line"

	strace -f -qq -e trace=write -o "$T/trace" "$BENCH_WRITES" 50 64 raw >/dev/null
	assert_eq "$(grep -c 'write(3, "xxx' "$T/trace")" 50 "strace bench_writes raw: 50 writes to /dev/null"
else
	skip "strace checks of the raw mode" "strace is not installed or cannot trace here"
fi

# ---- Claude's arguments are accepted and ignored; its own options go anywhere ----

ad=$(agent_dir)
assert_eq "$(readlink "$ad/claude")" "$FAKE_AGENT" "agent_dir: claude is a symlink to fake_agent"
so=$FIX/stdout.stream-json.jsonl
tr=$FIX/transcript.stream-json.jsonl
fresh_config
run "$ad/claude" -p "/test --real-services" --output-format stream-json --verbose --mode raw \
	--model claude-sonnet-4-5 --max-turns 3 --allowedTools Bash --stdout="$so" \
	--include-partial-messages --transcript "$tr" --permission-mode default -c \
	"a positional prompt" --max-budget-usd 0.5 --exit 3
assert_eq "$status" 3 "claude-like argv: --exit 3 gives status 3"
assert_file_eq "$T/run.out" "$so" "claude-like argv: stdout identical"
check_transcript "claude-like argv: transcript identical" "$tr"
assert_eq "$errout" "" "claude-like argv: nothing on stderr"

# Transcript placement: the project slug of the cwd, the session id as the file name.
mkdir -p "$T/my_proj.v2"
(
	cd "$T/my_proj.v2" || exit 1
	fresh_config
	"$FAKE_AGENT" --transcript "$tr" --session-id 0123-abc >/dev/null
)
want=$CLAUDE_CONFIG_DIR/projects/$(project_slug "$T/my_proj.v2")/0123-abc.jsonl
assert_eq "$(transcripts)" "$want" "transcript at \$CLAUDE_CONFIG_DIR/projects/<slug of cwd>/<session>.jsonl"
assert_match "$(project_slug /tmp/a_b.c/d)" '^-tmp-a-b-c-d$' "project_slug replaces every non-alphanumeric"

mkdir -p "$T/home"
env -u CLAUDE_CONFIG_DIR HOME="$T/home" "$FAKE_AGENT" --transcript "$tr" >/dev/null
mapfile -t homefiles < <(transcripts "$T/home/.claude")
assert_eq "${#homefiles[@]}" 1 "without CLAUDE_CONFIG_DIR the transcript goes under \$HOME/.claude"
assert_match "$(basename "${homefiles[0]:-none}")" \
	'^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.jsonl$' \
	"a generated session id is a UUID v4"

# --stderr, --spawn, --delay-ms, --sleep-after.
printf 'Error: Exceeded USD budget (0.015)\n' >"$T/stderr.txt"
fresh_config
run "$FAKE_AGENT" --mode raw --stdout "$FIX/stdout.stream-json-max-budget.jsonl" \
	--stderr "$T/stderr.txt" --exit 1 --delay-ms 2 --sleep-after 5 \
	--spawn "echo spawned >'$T/spawned.txt'; echo hidden"
assert_eq "$status" 1 "--exit 1 with --stderr: status 1"
assert_eq "$errout" "Error: Exceeded USD budget (0.015)" "--stderr: the file's text on stderr"
assert_file_eq "$T/run.out" "$FIX/stdout.stream-json-max-budget.jsonl" "--spawn: the child's output stays off stdout"
assert_eq "$(cat "$T/spawned.txt" 2>/dev/null)" "spawned" "--spawn: the command ran"

# ---- bad command lines: status 2, a message, nothing written ----

bad_case() {
	local name=$1 want_msg=$2
	shift 2
	fresh_config
	run "$FAKE_AGENT" "$@"
	if [[ $status == 2 && $errout == *"$want_msg"* && ! -s $T/run.out && -z $(transcripts) ]]; then
		ok "$name"
	else
		not_ok "$name" "status $status (want 2), stderr: $errout" \
			"stdout bytes: $(wc -c <"$T/run.out"), transcripts: $(transcripts | wc -l)"
	fi
}
bad_case "missing --stdout file refused" "cannot read '$T/nope'" --stdout "$T/nope" --transcript "$tr"
bad_case "missing --transcript file refused" "cannot read" --stdout "$so" --transcript "$T/nope"
bad_case "unknown --mode refused" "--mode: 'bogus'" --mode bogus --stdout "$so" --transcript "$tr"
bad_case "--chunk 0 refused" "--chunk: '0'" --chunk 0 --stdout "$so" --transcript "$tr"
bad_case "--chunk 12x refused" "--chunk: '12x'" --chunk 12x --stdout "$so"
bad_case "--exit 256 refused" "--exit: '256'" --exit 256 --stdout "$so"
bad_case "--sigpwr without raw refused" "--sigpwr needs --mode raw" --sigpwr --stdout "$so"
bad_case "--stdout without a value refused" "--stdout needs a value" --transcript "$tr" --stdout
bad_case "--session-id with a slash refused" "cannot be a file name" --session-id a/b --transcript "$tr"

# ---- static_writer ----

run "$STATIC_WRITER" 5 7
assert_eq "$status" 7 "static_writer 5 7: status 7"
assert_eq "$output" "$(printf 'line %d\n' 1 2 3 4 5)" "static_writer 5 7: five lines"
run "$STATIC_WRITER" 0
assert_eq "$status:$(wc -c <"$T/run.out")" "0:0" "static_writer 0: no output, status 0"
run "$STATIC_WRITER" 3x
assert_eq "$status" 2 "static_writer 3x: usage error"
"$STATIC_WRITER" 20000 | python3 "$T/slow_reader.py" "$T/out"
assert_eq "$(wc -l <"$T/out"):$(tail -n1 "$T/out")" "20000:line 20000" "static_writer through a slow pipe: every line"
if has_cmd readelf; then
	assert_eq "$(readelf -l "$STATIC_WRITER" | grep -c INTERP)" 0 "static_writer is statically linked (no ELF interpreter)"
else
	skip "static_writer is statically linked" "readelf is not installed"
fi
if [[ -n $SHIM ]]; then
	rm -f "$T/shim.out"
	SHIM_OUT=$T/shim.out LD_PRELOAD=$SHIM "$STATIC_WRITER" 2 >/dev/null
	assert_eq "$(cat "$T/shim.out" 2>/dev/null)" "" "static_writer: a preload library never loads into it"
fi

# ---- bench_writes ----

run "$BENCH_WRITES" 1000 200 libc
assert_match "$status:$output" '^0:writes=1000 ns_per_write=[0-9]+\.[0-9]$' "bench_writes libc prints writes and ns_per_write"
run "$BENCH_WRITES" 1000 200 raw
assert_match "$status:$output" '^0:writes=1000 ns_per_write=[0-9]+\.[0-9]$' "bench_writes raw prints writes and ns_per_write"
run "$BENCH_WRITES" 1000 200 fast
assert_eq "$status:$errout" "2:bench_writes: 'fast' is not libc or raw" "bench_writes: unknown path refused"
run "$BENCH_WRITES" 0 200
assert_eq "$status" 2 "bench_writes: N=0 refused"
if [[ -n $SHIM ]]; then
	SHIM_OUT=$T/shim.out LD_PRELOAD=$SHIM "$BENCH_WRITES" 100 10 libc >/dev/null
	# 100 timed writes; printf of the result goes through stdio's internal write.
	assert_eq "$(cat "$T/shim.out")" "write_fd1=0 writev_fd1=0 write_all=100" "bench_writes libc: a write hook sees every write"
	SHIM_OUT=$T/shim.out LD_PRELOAD=$SHIM "$BENCH_WRITES" 100 10 raw >/dev/null
	assert_eq "$(cat "$T/shim.out")" "write_fd1=0 writev_fd1=0 write_all=0" "bench_writes raw: a write hook sees none"
fi

# ---- libtest.sh itself ----

cat >"$T/r.json" <<'JSON'
{"overall": {"used": {"total": 17000, "input": 4000}, "ok": true, "cost": 0.018, "none": null},
 "commands": [{"name": "/test", "tags": ["a"]}], "label": "x y"}
JSON
assert_eq "$(json_get "$T/r.json" overall.used.total)" 17000 "json_get: an integer"
assert_eq "$(json_get "$T/r.json" overall.cost)" 0.018 "json_get: a float"
assert_eq "$(json_get "$T/r.json" overall.ok)/$(json_get "$T/r.json" overall.none)" "true/null" "json_get: true and null"
assert_eq "$(json_get "$T/r.json" commands.0.name)" "/test" "json_get: an array index"
assert_eq "$(json_get "$T/r.json" commands.0.tags)" '["a"]' "json_get: an array as JSON"
json_get "$T/r.json" overall.missing >/dev/null 2>"$T/err"
assert_eq "$?:$(cat "$T/err")" "1:json_get: $T/r.json: no 'missing' in 'overall.missing'" "json_get: a missing key fails and says which"

# A test file's exit status and plan, and that cleanup stops what the test left running.
cat >"$T/inner.sh" <<SH
source "$ROOT/tests/sh/libtest.sh"
setup
start_bg sleep 1000
echo "pid=\$BG_PID"
echo "tmp=\$T"
sleep 1000 &
echo "job=\$!"
ok first
not_ok second "because"
skip third "no reason"
done_testing
SH
env -u KEEP_TMP bash "$T/inner.sh" >"$T/inner.out" 2>&1
rc=$?
assert_eq "$rc" 1 "done_testing exits 1 when a case failed"
assert_eq "$(grep -E '^(ok|not ok|1\.\.|#)' "$T/inner.out")" \
	"$(printf '%s\n' 'ok 1 - first' 'not ok 2 - second' '# because' 'ok 3 - third # SKIP no reason' '1..3' '# 1 of 3 failed')" \
	"TAP lines numbered, diagnostics and plan"
inner_pid=$(sed -n 's/^pid=//p' "$T/inner.out")
inner_job=$(sed -n 's/^job=//p' "$T/inner.out")
inner_tmp=$(sed -n 's/^tmp=//p' "$T/inner.out")
assert_eq "$(kill -0 "$inner_pid" 2>/dev/null && echo alive || echo gone)" gone "cleanup stopped the start_bg process"
assert_eq "$(kill -0 "$inner_job" 2>/dev/null && echo alive || echo gone)" gone "cleanup stopped an unregistered background job"
assert_eq "$([[ -n $inner_tmp && ! -e $inner_tmp ]] && echo removed)" removed "cleanup removed the temp dir"

printf 'source "%s"\nsetup\nok a\ndone_testing\n' "$ROOT/tests/sh/libtest.sh" >"$T/pass.sh"
assert_status 0 "done_testing exits 0 when every case passed" env -u KEEP_TMP bash "$T/pass.sh"
assert_eq "$output" "$(printf 'ok 1 - a\n1..1')" "a passing file prints its case and plan"

# The assertions of tests/lib/tap.sh, run apart (their failures must not count here): the argument
# order in the diagnostics, whole-string against per-line matching, a failure's status.
cat >"$T/asserts.sh" <<SH
source "$ROOT/tests/lib/tap.sh"
assert_eq got want eq; echo "rc=\$?"
assert_eq same same eq2; echo "rc=\$?"
assert_match "\$(printf 'a1\nb2')" '^b[0-9]$' whole
assert_line_match "\$(printf 'a1\nb2')" '^b[0-9]$' line
assert_match "\$(printf 'a1\nb2')" '^a1.b2$' whole2
tap_plan; echo "plan=\$?"
SH
bash "$T/asserts.sh" >"$T/asserts.out" 2>&1
assert_eq "$(cat "$T/asserts.out")" \
	"$(printf '%s\n' 'not ok 1 - eq' "# got:  'got'" "# want: 'want'" 'rc=1' 'ok 2 - eq2' 'rc=0' \
		'not ok 3 - whole' "# 'a1" "# b2'" '# does not match /^b[0-9]$/' 'ok 4 - line' 'ok 5 - whole2' \
		'1..5' '# 2 of 5 failed' 'plan=1')" \
	"tap.sh: got before want, assert_match whole string, assert_line_match per line, failures return 1"

done_testing
