# shellcheck shell=bash disable=SC2034
# (SC2034: the paths and run's results are set here for the tests that source this file.)
# libtest.sh: sourced by the shell tests (tests/sh/test_*.sh).
#
# Gives every test the same frame: paths of what was built, a private temp dir ($T) that is removed
# on exit together with any process the test left running, the TAP lines and assertions of
# tests/lib/tap.sh (the one TAP library, shared with the end-to-end tests: each assertion takes
# what it got, then what it wants, then the case's name), and small helpers (fake agents on PATH,
# JSON lookups, bounded waits).
#
#   source "$(dirname "$0")/libtest.sh"
#   setup
#   run "$TBWRAP" --budget 100 -- true
#   assert_eq "$status" 0 "tbwrap runs true"
#   done_testing
#
# BUILD=build-asan selects another build directory; KEEP_TMP=1 keeps $T for a post-mortem.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
TBWRAP=$BUILD/tbwrap
LIBTBWRAP=$BUILD/libtbwrap.so
HELPERS=$BUILD/tests/helpers
FAKE_AGENT=$HELPERS/fake_agent
STATIC_WRITER=$HELPERS/static_writer
STATIC_EXEC=$HELPERS/static_exec
BENCH_WRITES=$HELPERS/bench_writes
FIX=$ROOT/tests/fixtures/claude-code-2.1.197

# shellcheck source=tests/lib/tap.sh
source "$ROOT/tests/lib/tap.sh"

_test_pids=()
T=

# ---- frame ----

# setup: makes $T, points Claude's config dir into it, cds there, and arms cleanup on exit.
# A test that ends by a signal still cleans up: INT/TERM turn into an ordinary exit.
setup() {
	T=$(mktemp -d "${TMPDIR:-/tmp}/tbwrap-test.XXXXXX") || {
		echo "Bail out! mktemp failed"
		exit 1
	}
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	# Transcripts of fake and real agents go here, never into the invoking user's ~/.claude.
	export CLAUDE_CONFIG_DIR=$T/claude-config
	mkdir -p "$CLAUDE_CONFIG_DIR"
	# tbwrap's history (and profiles) too: never the invoking user's.
	export XDG_STATE_HOME=$T/state XDG_CONFIG_HOME=$T/config
	cd "$T" || exit 1
}

# cleanup: stops what the test started (recorded by start_bg, or left as background jobs):
# SIGTERM to each process group, SIGKILL to what is still there a moment later. Keeps the exit
# status of the test.
cleanup() {
	local rc=$?
	local pids=("${_test_pids[@]}") p
	# Background jobs the test did not register are still ours to stop.
	for p in $(jobs -p); do
		pids+=("$p")
	done
	if ((${#pids[@]})); then
		for p in "${pids[@]}"; do
			kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null
		done
		local i
		for ((i = 0; i < 40; i++)); do
			_any_alive "${pids[@]}" || break
			sleep 0.05
		done
		for p in "${pids[@]}"; do
			kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null
		done
		wait 2>/dev/null
	fi
	cd / || true
	if [[ -n $T && -d $T ]]; then
		if [[ ${KEEP_TMP:-0} == 1 ]]; then
			echo "# kept $T" >&2
		else
			rm -rf "$T"
		fi
	fi
	exit "$rc"
}

_any_alive() {
	local p
	for p in "$@"; do
		kill -0 -- "-$p" 2>/dev/null && return 0
		kill -0 "$p" 2>/dev/null && return 0
	done
	return 1
}

# start_bg CMD...: runs CMD in the background in a process group of its own (so cleanup can stop
# it and everything it forked) and sets BG_PID. Redirect as usual: start_bg cmd >out 2>err
# In a non-interactive shell a background child is never a group leader, so setsid(1) does not
# fork and $! is the pid of CMD itself.
start_bg() {
	setsid "$@" &
	BG_PID=$!
	_test_pids+=("$BG_PID")
}

# ---- TAP: ok, not_ok, skip, diag, done_testing and the assert_* of tests/lib/tap.sh ----

# skip_all REASON: the whole file cannot run here (missing tool, kernel feature).
skip_all() {
	skip "$(basename "$0" .sh)" "$1"
	done_testing
}

# require_files FILE...: stops the test with a failure if something it needs was not built.
require_files() {
	local f missing=()
	for f in "$@"; do
		[[ -e $f ]] || missing+=("$f")
	done
	if ((${#missing[@]})); then
		not_ok "required files exist" "missing: ${missing[*]}" "build them first: make all helpers"
		done_testing
	fi
}

# has_cmd NAME: true when NAME is on PATH.
has_cmd() {
	command -v "$1" >/dev/null 2>&1
}

# ---- running things ----

# run CMD...: runs CMD with stdout in $T/run.out and stderr in $T/run.err; sets status, output
# (stdout) and errout (stderr), both without trailing newlines, like $(...).
run() {
	"$@" >"$T/run.out" 2>"$T/run.err"
	status=$?
	output=$(cat "$T/run.out")
	errout=$(cat "$T/run.err")
	return 0
}

# wait_until SECONDS CMD...: polls CMD every 50 ms until it succeeds; false if it never did.
# Only for waiting on an event that must come (the bound is a safety net, not a measurement).
wait_until() {
	local limit=$1
	shift
	local tries=$((limit * 20)) i
	for ((i = 0; i < tries; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	"$@"
}

# ---- assertions beyond tests/lib/tap.sh's ----

# assert_status WANT NAME CMD...: runs CMD (through run, so $output/$errout are set afterwards)
# and checks its exit status.
assert_status() {
	local want=$1 name=$2
	shift 2
	run "$@"
	if [[ $status == "$want" ]]; then
		ok "$name"
	else
		not_ok "$name" "exit status $status, want $want: $*" "stderr: ${errout:0:2000}"
	fi
}

# ---- helpers for agents ----

# agent_dir [NAME]: makes a directory holding a symlink NAME (default "claude") to fake_agent and
# prints it; put it first on PATH, or run "$(agent_dir)/claude" directly. tbwrap recognises an
# agent by the basename of argv[0], so the symlink is what makes fake_agent an agent.
agent_dir() {
	local name=${1:-claude}
	local dir=$T/agent-bin
	mkdir -p "$dir"
	ln -sf "$FAKE_AGENT" "$dir/$name"
	echo "$dir"
}

# project_slug DIR: the name Claude Code gives DIR under $CLAUDE_CONFIG_DIR/projects (every byte
# that is not an ASCII letter or digit becomes '-').
project_slug() {
	LC_ALL=C sed 's/[^A-Za-z0-9]/-/g' <<<"$1"
}

# transcript_for CMD FIXTURE: a copy of a fixture transcript whose prompt is /CMD instead of /test
# (the supervisor takes the session's command from the transcript), printed as its path.
transcript_for() {
	local out=$T/fixtures-$(tr -c 'A-Za-z0-9\n' _ <<<"$1")-$2
	[[ -f $out ]] || sed -e "s#\"content\":\"/test#\"content\":\"$1#g" \
		-e "s#<command-name>/test<#<command-name>$1<#g" "$FIX/$2" >"$out"
	echo "$out"
}

# transcripts [CONFIG_DIR]: the transcript files under CONFIG_DIR/projects (default
# $CLAUDE_CONFIG_DIR), one per line, sorted.
transcripts() {
	local dir=${1:-$CLAUDE_CONFIG_DIR}
	[[ -d $dir/projects ]] || return 0
	find "$dir/projects" -type f -name '*.jsonl' | LC_ALL=C sort
}

# json_get FILE PATH: prints the value at a dotted PATH of a JSON file (numbers index arrays):
# json_get r.json overall.used.total. Strings print raw, integers as integers, true/false/null as
# in JSON, objects and arrays as compact JSON. Fails (status 1, message on stderr) when the file
# is not JSON or the path is absent.
json_get() {
	python3 - "$1" "$2" <<'PY'
import json, sys
path, dotted = sys.argv[1], sys.argv[2]
try:
    with open(path) as f:
        v = json.load(f)
except (OSError, ValueError) as e:
    sys.exit(f"json_get: {path}: {e}")
for key in dotted.split(".") if dotted else []:
    if isinstance(v, list) and key.lstrip("-").isdigit() and -len(v) <= int(key) < len(v):
        v = v[int(key)]
    elif isinstance(v, dict) and key in v:
        v = v[key]
    else:
        sys.exit(f"json_get: {path}: no '{key}' in '{dotted}'")
if isinstance(v, bool) or v is None:
    print(json.dumps(v))
elif isinstance(v, str):
    print(v)
elif isinstance(v, (int, float)):
    print(v)
else:
    print(json.dumps(v, separators=(",", ":"), sort_keys=True))
PY
}
