# shellcheck shell=bash
# Shared setup of the end-to-end tests: the real Claude Code CLI (scripts/ensure-claude) run
# offline against the local API stand-in (tests/standin/api_standin.py), and TAP helpers.
#
#   source "$(dirname "$0")/lib.sh"
#   e2e_setup                      temp dir, config dir, project with /test and /slow, env, PATH
#   claude_version, claude_is_node the CLI under test: its version; whether it is the Node build
#   claude_has_option OPTION       whether its --help lists OPTION (skip_unless_option: or SKIP)
#   standin_start SCENARIO         starts a stand-in (sets STANDIN_PORT, STANDIN_LOG, base URL)
#   scenario_file NAME JSON        a scenario of the test's own, as a file for standin_start
#   run_claude OUT ERR ARGS...     runs `claude ARGS...` in the project (CLAUDE_RC, CLAUDE_MS)
#   ground_truth [COMMAND]         "input output cache_creation cache_read" billed by the stand-in
#   cli_truth [COMMAND]            the same for the main conversation only (what `usage` covers)
#   result_usage FILE              the same four numbers from the CLI's json/stream-json result
#   result_cost FILE               the CLI's own total_cost_usd from that result
#   transcript_usage FILE          the same four numbers from a transcript, one call per message id
#   ok / not_ok / skip / assert_*  numbered TAP lines of tests/lib/tap.sh; plan printed at exit
#
# The version tested is E2E_CLAUDE_VERSION (default: CLAUDE_PINNED of tests/e2e/versions);
# scripts/run-tests e2e runs every test once per version. Everything started here is stopped
# when the test exits, and the temp dir is removed (kept, and its path printed, when E2E_KEEP=1).

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
E2E_SCENARIOS=$E2E_ROOT/tests/e2e/scenarios
# shellcheck source=tests/e2e/versions
source "$E2E_ROOT/tests/e2e/versions"
E2E_CLAUDE_VERSION=${E2E_CLAUDE_VERSION:-$CLAUDE_PINNED}
E2E_CLAUDE_IS_NODE=no
E2E_CLAUDE_HELP=
E2E_PIDS=()
E2E_STANDIN_PID=
E2E_STANDIN_N=0
E2E_TMP=

# --- TAP: ok, not_ok, skip, diag and the assert_* of tests/lib/tap.sh (got, want, name) ---------

# shellcheck source=tests/lib/tap.sh
source "$E2E_ROOT/tests/lib/tap.sh"

# --- lifetime ----------------------------------------------------------------------------------

e2e_cleanup() {
	local rc=$? pid
	for pid in "${E2E_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	standin_stop
	for pid in "${E2E_PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	if [[ -n $E2E_TMP && -d $E2E_TMP ]]; then
		if [[ ${E2E_KEEP:-0} == 1 ]]; then
			echo "# kept $E2E_TMP"
		else
			rm -rf "$E2E_TMP"
		fi
	fi
	if ! tap_plan && ((rc == 0)); then
		rc=1
	fi
	exit "$rc"
}

# e2e_track PID: stop this process too when the test exits.
e2e_track() {
	E2E_PIDS+=("$1")
}

# e2e_setup: installs/finds the CLI of E2E_CLAUDE_VERSION (a failure fails the test: the CI
# machine reaches npm), creates the temp tree and exports the environment every claude run of
# the test uses.
e2e_setup() {
	E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/tbwrap-e2e.XXXXXX") || {
		not_ok "create the test's temp dir"
		exit 1
	}
	trap e2e_cleanup EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT

	local claude reason
	if ! claude=$("$E2E_ROOT/scripts/ensure-claude" "$E2E_CLAUDE_VERSION" 2>"$E2E_TMP/ensure-claude.err"); then
		reason=$(grep -v '^ensure-claude: installing' "$E2E_TMP/ensure-claude.err")
		not_ok "Claude Code CLI $E2E_CLAUDE_VERSION installed (scripts/ensure-claude)" "${reason:-no reason given}"
		exit 1
	fi
	E2E_CLAUDE_BIN=$(dirname "$claude")
	# ensure-claude checked that this link runs and prints E2E_CLAUDE_VERSION. A Node build is
	# a script (cli.js, "#!/usr/bin/env node"), a native one an ELF file.
	local build="native build"
	if [[ $(head -c 2 "$(readlink -f "$claude")") == '#!' ]]; then
		E2E_CLAUDE_IS_NODE=yes
		build="Node build"
	fi
	echo "# Claude Code $E2E_CLAUDE_VERSION ($build): $claude"

	E2E_PROJECT=$E2E_TMP/project
	mkdir -p "$E2E_PROJECT/.claude/commands" "$E2E_TMP/config" "$E2E_TMP/home"
	printf 'Run the test suite and report the result.\n' >"$E2E_PROJECT/.claude/commands/test.md"
	printf 'Run the slow checks and report the result.\n' >"$E2E_PROJECT/.claude/commands/slow.md"

	export CLAUDE_CONFIG_DIR=$E2E_TMP/config
	# A private HOME keeps the CLI away from the real user's files.
	export HOME=$E2E_TMP/home
	export ANTHROPIC_API_KEY=test
	export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1
	export DISABLE_AUTOUPDATER=1
	export DISABLE_TELEMETRY=1
	export PATH=$E2E_CLAUDE_BIN:$PATH
	unset ANTHROPIC_AUTH_TOKEN ANTHROPIC_MODEL CLAUDE_CODE_USE_BEDROCK CLAUDE_CODE_USE_VERTEX
}

# --- the CLI under test ------------------------------------------------------------------------

# claude_version: the version of the CLI the test runs (what its --version printed).
claude_version() {
	echo "$E2E_CLAUDE_VERSION"
}

# claude_is_node: true for the Node-based build (1.0.x: node runs npm's bin/claude = cli.js).
claude_is_node() {
	[[ $E2E_CLAUDE_IS_NODE == yes ]]
}

# claude_help_load: reads the CLI's --help once per test into E2E_CLAUDE_HELP (not on a
# terminal, with the test's private HOME and config dir). A --help that fails or prints no usage
# is a failed case and status 1, never an empty text (which would make every option look missing
# and its cases skip). Call it in the test's own shell, not in $(...): it counts a TAP case.
claude_help_load() {
	[[ -z $E2E_CLAUDE_HELP ]] || return 0
	local help rc
	help=$(cd "$E2E_PROJECT" && timeout -k 5 60 claude --help 2>&1 </dev/null)
	rc=$?
	if ((rc != 0)) || ! grep -q '^Usage:' <<<"$help"; then
		not_ok "claude --help of $(claude_version) prints its usage" "exit status $rc" "${help:0:2000}"
		return 1
	fi
	E2E_CLAUDE_HELP=$help
}

# claude_has_option OPTION: true when --help lists OPTION (e.g. --no-session-persistence); status
# 2 when --help could not be read (claude_help_load has said so).
claude_has_option() {
	claude_help_load || return 2
	grep -qE -- "(^|[ ,])$1([ ,=]|$)" <<<"$E2E_CLAUDE_HELP"
}

# skip_unless_option OPTION WHAT: true when the CLI has OPTION; otherwise prints a SKIP line for
# WHAT that names the version and the missing option (or, when --help could not be read, a
# failed case), and returns false.
skip_unless_option() {
	claude_has_option "$1"
	case $? in
	0) return 0 ;;
	1) skip "$2" "Claude Code $(claude_version) has no $1 option" ;;
	*) not_ok "$2" "the options of Claude Code $(claude_version) are unknown: its --help failed" ;;
	esac
	return 1
}

# fresh_config: empties CLAUDE_CONFIG_DIR (the same path, which the CLI prints in its init line)
# for the runs that follow. A session's side calls can depend on the sessions before it in the
# same config dir (1.0.128 sometimes first asks its small model for a title of the previous
# session), so runs whose requests or outputs are compared each start from an empty one.
fresh_config() {
	rm -rf "$CLAUDE_CONFIG_DIR" && mkdir -p "$CLAUDE_CONFIG_DIR"
}

# --- the stand-in ------------------------------------------------------------------------------

# standin_start SCENARIO: SCENARIO is a path or a name in tests/e2e/scenarios (without .json).
# Stops a previous stand-in of this test first, so each one has its own log.
standin_start() {
	local scenario=$1
	[[ -f $scenario ]] || scenario=$E2E_SCENARIOS/$1.json
	standin_stop
	E2E_STANDIN_N=$((E2E_STANDIN_N + 1))
	local dir=$E2E_TMP/standin.$E2E_STANDIN_N
	mkdir -p "$dir"
	STANDIN_LOG=$dir/requests.jsonl
	python3 "$E2E_ROOT/tests/standin/api_standin.py" --scenario "$scenario" \
		--port-file "$dir/port" --log "$STANDIN_LOG" 2>"$dir/stderr" &
	E2E_STANDIN_PID=$!
	# Readiness wait, not a speed check: the port file appears once the socket listens.
	local i
	for ((i = 0; i < 200; i++)); do
		[[ -s $dir/port ]] && break
		if ! kill -0 "$E2E_STANDIN_PID" 2>/dev/null; then
			not_ok "stand-in started with $scenario" "$(cat "$dir/stderr")"
			E2E_STANDIN_PID=
			exit 1
		fi
		sleep 0.05
	done
	if [[ ! -s $dir/port ]]; then
		not_ok "stand-in started with $scenario" "no port file after 10 s" "$(cat "$dir/stderr")"
		exit 1
	fi
	STANDIN_PORT=$(<"$dir/port")
	export ANTHROPIC_BASE_URL=http://127.0.0.1:$STANDIN_PORT
}

# scenario_file NAME JSON: writes JSON as the test's scenario NAME and prints its path (for
# standin_start).
scenario_file() {
	mkdir -p "$E2E_TMP/scenarios" && echo "$2" >"$E2E_TMP/scenarios/$1.json" &&
		echo "$E2E_TMP/scenarios/$1.json"
}

standin_stop() {
	[[ -n $E2E_STANDIN_PID ]] || return 0
	kill -TERM "$E2E_STANDIN_PID" 2>/dev/null
	wait "$E2E_STANDIN_PID" 2>/dev/null
	E2E_STANDIN_PID=
}

# --- running the CLI ---------------------------------------------------------------------------

# run_claude OUT ERR ARGS...: runs `claude ARGS...` in the project dir; sets CLAUDE_RC and
# CLAUDE_MS (elapsed milliseconds). The timeout only turns a hang into a failure.
run_claude() {
	local out=$1 err=$2
	shift 2
	local t0 t1
	t0=$(date +%s%N)
	(cd "$E2E_PROJECT" && exec timeout -k 5 300 claude "$@") >"$out" 2>"$err" </dev/null
	# shellcheck disable=SC2034 # results for the calling test
	CLAUDE_RC=$?
	t1=$(date +%s%N)
	# shellcheck disable=SC2034
	CLAUDE_MS=$(((t1 - t0) / 1000000))
}

# --- usage -------------------------------------------------------------------------------------
# All print "input output cache_creation cache_read".

# billed_of WHAT KINDS [COMMAND] [LOG]: over the billed calls in the stand-in's log whose kind is
# in KINDS ("all", or a comma list of main, side, subagent) and whose command is COMMAND (empty:
# any), WHAT "usage" prints the four sums, WHAT "calls" the number of calls.
billed_of() {
	python3 - "$1" "$2" "${3:-}" "${4:-$STANDIN_LOG}" <<'EOF'
import json, sys
what, kinds, command, log = sys.argv[1:5]
kinds = None if kinds == "all" else set(kinds.split(","))
tot = {"input": 0, "output": 0, "cache_creation": 0, "cache_read": 0}
n = 0
with open(log, encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        if not r.get("billed") or (command and r.get("command") != command):
            continue
        if kinds is not None and r.get("kind") not in kinds:
            continue
        n += 1
        for k in tot:
            tot[k] += r["billed"][k]
print(n if what == "calls" else "%d %d %d %d" % (tot["input"], tot["output"], tot["cache_creation"], tot["cache_read"]))
EOF
}

# ground_truth [COMMAND] [LOG]: sums what the stand-in billed, i.e. every call a real API would
# bill (the main conversation, side calls, subagents), for one slash command (e.g. /test) or all.
ground_truth() {
	billed_of usage all "${1:-}" "${2:-$STANDIN_LOG}"
}

# cli_truth [COMMAND] [LOG]: the same for the calls of the main conversation only: what the CLI's
# own result `usage` and its session transcript cover (side calls and subagents are not in them).
cli_truth() {
	billed_of usage main "${1:-}" "${2:-$STANDIN_LOG}"
}

# billed_calls [COMMAND] [LOG]: how many calls the stand-in billed.
billed_calls() {
	billed_of calls all "${1:-}" "${2:-$STANDIN_LOG}"
}

# main_calls [COMMAND] [LOG]: how many of them belong to the main conversation.
main_calls() {
	billed_of calls main "${1:-}" "${2:-$STANDIN_LOG}"
}

# standin_kinds [LOG]: how many requests of each kind reached the stand-in, in a fixed order:
# "head H main M side S title T subagent A other O" (HEAD requests are counted apart from the
# other unbilled ones).
standin_kinds() {
	python3 - "${1:-$STANDIN_LOG}" <<'EOF'
import json, sys
n = {k: 0 for k in ("head", "main", "side", "title", "subagent", "other")}
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        k = "head" if r.get("method") == "HEAD" else r.get("kind")
        n[k if k in n else "other"] += 1
print(" ".join("%s %d" % kv for kv in n.items()))
EOF
}

# uncounted_side FILE [LOG]: "K input output cache_creation cache_read": the billed calls of the
# session of FILE's result (json or stream-json) that its modelUsage leaves out, which must be
# the session's last K side calls; K is 0 for every version but 1.0.x, whose side call after
# the last Bash run can still be streaming when the session ends: billed, counted nowhere.
# Fails, saying why, when the difference is anything else.
uncounted_side() {
	python3 - "$1" "${2:-$STANDIN_LOG}" <<'EOF'
import json, sys
res = None
for line in open(sys.argv[1], encoding="utf-8"):
    try:
        o = json.loads(line)
    except json.JSONDecodeError:
        continue
    if isinstance(o, dict) and o.get("type") == "result":
        res = o
if res is None:
    print("no result line")
    sys.exit(1)
keys = ("input", "output", "cache_creation", "cache_read")
calls = [r for r in map(json.loads, open(sys.argv[2], encoding="utf-8"))
         if r.get("billed") and r.get("session") == res.get("session_id")]
def total(rs):
    return [sum(r["billed"][k] for r in rs) for k in keys]
mu = [sum(m.get(k, 0) for m in (res.get("modelUsage") or {}).values())
      for k in ("inputTokens", "outputTokens", "cacheCreationInputTokens", "cacheReadInputTokens")]
diff = [b - m for b, m in zip(total(calls), mu)]
sides = [r for r in calls if r.get("kind") == "side"]
for k in range(len(sides) + 1):
    if total(sides[len(sides) - k:]) == diff:
        print(k, *diff)
        sys.exit(0)
print("billed minus modelUsage is", *diff, "- not the session's last side calls")
sys.exit(1)
EOF
}

# assert_model_usage NAME FILE: one TAP line: the modelUsage of FILE's result holds every call
# billed for its session, except (1.0.x only) its last side call, cut off by the session's end.
# Sets UNCOUNTED to the four counts it leaves out ("0 0 0 0" when none), what no metering of
# that session can see.
assert_model_usage() {
	local unc k rest
	UNCOUNTED="0 0 0 0"
	if ! unc=$(uncounted_side "$2"); then
		not_ok "$1: result modelUsage holds every call billed for its session" "$unc"
		return 1
	fi
	read -r k rest <<<"$unc"
	if ((k == 0)); then
		ok "$1: result modelUsage holds every call billed for its session"
	elif claude_is_node && ((k == 1)); then
		# shellcheck disable=SC2034 # for the calling test
		UNCOUNTED=$rest
		ok "$1: result modelUsage holds every call billed for its session but the last side call ($rest), cut off by the session's end (1.0.x)"
	else
		not_ok "$1: result modelUsage holds every call billed for its session" "it leaves out $k side calls: $rest"
		return 1
	fi
}

# side_models: the models of the side calls in the stand-in logs on stdin, one line, ","-joined.
# With mask_side, for comparing the stdout of two runs of a session whose side calls (1.0.x) need
# not be the same in number: the one after the last Bash run races the session's end, and a
# session may first ask for a title of another one in its config dir.
side_models() {
	python3 -c '
import json, sys
print(",".join(sorted({r.get("model") for r in map(json.loads, sys.stdin) if r.get("kind") == "side"})))'
}

# mask_side MODELS: stdin (normalized json lines) with the result line's total_cost_usd and the
# modelUsage entries of MODELS replaced; nothing changes when MODELS is empty.
mask_side() {
	python3 -c '
import json, sys
models = [m for m in sys.argv[1].split(",") if m]
for line in sys.stdin:
    if models:
        try:
            o = json.loads(line)
        except json.JSONDecodeError:
            o = None
        if isinstance(o, dict) and o.get("type") == "result":
            o["total_cost_usd"] = "COST"
            for m in models:
                if m in (o.get("modelUsage") or {}):
                    o["modelUsage"][m] = "SIDE CALLS"
            line = json.dumps(o, separators=(",", ":"), ensure_ascii=False) + "\n"
    sys.stdout.write(line)' "$1"
}

# side_truth [COMMAND] [LOG]: the usage billed for side calls (tool-less calls to a small model,
# 1.0.x), which the CLI puts in its result's modelUsage only.
side_truth() {
	billed_of usage side "${1:-}" "${2:-$STANDIN_LOG}"
}

# usage_plus "A" "B": the four counts A + B, field by field.
usage_plus() {
	local a b
	read -ra a <<<"$1"
	read -ra b <<<"$2"
	echo "$((a[0] + b[0])) $((a[1] + b[1])) $((a[2] + b[2])) $((a[3] + b[3]))"
}

# usage_minus "A" "B": the four counts A - B, field by field.
usage_minus() {
	local a b
	read -ra a <<<"$1"
	read -ra b <<<"$2"
	echo "$((a[0] - b[0])) $((a[1] - b[1])) $((a[2] - b[2])) $((a[3] - b[3]))"
}

# standin_sessions [COMMAND] [LOG]: the distinct session ids of billed calls, one per line.
standin_sessions() {
	python3 - "${1:-}" "${2:-$STANDIN_LOG}" <<'EOF'
import json, sys
command, log = sys.argv[1], sys.argv[2]
seen = []
with open(log, encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        if r.get("billed") and (not command or r.get("command") == command) and r.get("session") not in seen:
            seen.append(r.get("session"))
print("\n".join(str(s) for s in seen))
EOF
}

# result_usage FILE: usage of the last "result" object of a json or stream-json output.
result_usage() {
	python3 - "$1" <<'EOF'
import json, sys
res = None
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("type") == "result":
            res = obj
if res is None:
    print("no result line")
    sys.exit(1)
u = res["usage"]
print(u["input_tokens"], u["output_tokens"], u["cache_creation_input_tokens"], u["cache_read_input_tokens"])
EOF
}

# result_cost FILE: the CLI's own cost of the session (total_cost_usd of its last result), to
# the micro-dollar as tbwrap keeps it (the CLI prints binary floats: 0.026999999999999996);
# nothing when there is no result or no cost.
result_cost() {
	local c
	c=$(result_field "$1" total_cost_usd)
	[[ -n $c ]] && python3 -c 'import sys; print(round(float(sys.argv[1]), 6))' "$c"
}

# result_model_usage FILE: the four counts of the last result's modelUsage summed over models
# (the CLI's per-model figures, which include side calls and subagents).
result_model_usage() {
	python3 - "$1" <<'EOF'
import json, sys
res = None
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("type") == "result":
            res = obj
if res is None:
    print("no result line")
    sys.exit(1)
keys = ("inputTokens", "outputTokens", "cacheCreationInputTokens", "cacheReadInputTokens")
print(*(sum(m.get(k, 0) for m in (res.get("modelUsage") or {}).values()) for k in keys))
EOF
}

# result_field FILE KEY: a top-level field of the last result object (e.g. session_id).
result_field() {
	python3 - "$1" "$2" <<'EOF'
import json, sys
val = None
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("type") == "result":
            val = obj.get(sys.argv[2])
print("" if val is None else val)
EOF
}

# transcript_file SESSION_ID: the CLI's transcript of that session under the config dir.
transcript_file() {
	local f
	for f in "$CLAUDE_CONFIG_DIR"/projects/*/"$1".jsonl; do
		[[ -f $f ]] && echo "$f" && return 0
	done
	return 1
}

# transcript_usage FILE: assistant lines repeat one call's usage once per content block, so
# each message id is counted once (per-field maximum), then summed.
transcript_usage() {
	python3 - "$1" <<'EOF'
import json, sys
calls = {}
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        obj = json.loads(line)
        msg = obj.get("message") if obj.get("type") == "assistant" else None
        if not isinstance(msg, dict) or "usage" not in msg:
            continue
        u = msg["usage"]
        vals = (u.get("input_tokens", 0), u.get("output_tokens", 0),
                u.get("cache_creation_input_tokens", 0), u.get("cache_read_input_tokens", 0))
        prev = calls.get(msg["id"], (0, 0, 0, 0))
        calls[msg["id"]] = tuple(max(a, b) for a, b in zip(prev, vals))
print(*(sum(c[i] for c in calls.values()) for i in range(4)))
EOF
}

# --- tbwrap ------------------------------------------------------------------------------------
#   tbwrap_require                 fails the test (and exits) unless build/tbwrap is built
#   run_tbwrap OUT ERR ARGS...     runs `tbwrap ARGS...` in the project (TBWRAP_RC, TBWRAP_MS)
#   report_usage REPORT [COMMAND]  "input output cache_creation cache_read" of --report-json
#   report_get REPORT EXPR         a Python expression over the report `r` (e.g. r["mode"])
#   normalize FILE                 FILE with the parts that differ between two identical runs
#                                  (ids, uuids, timings) replaced by fixed placeholders

E2E_BUILD=${E2E_BUILD:-$E2E_ROOT/build}
TBWRAP=$E2E_BUILD/tbwrap

tbwrap_require() {
	if [[ ! -x $TBWRAP || ! -f $E2E_BUILD/libtbwrap.so ]]; then
		not_ok "tbwrap is built ($TBWRAP and libtbwrap.so)" "run: make -j2 all helpers"
		exit 1
	fi
}

# run_tbwrap OUT ERR ARGS...: like run_claude, for `tbwrap ARGS...`. The timeout only turns a
# hang into a failure.
run_tbwrap() {
	local out=$1 err=$2
	shift 2
	local t0 t1
	t0=$(date +%s%N)
	(cd "$E2E_PROJECT" && exec timeout -k 5 300 "$TBWRAP" "$@") >"$out" 2>"$err" </dev/null
	# shellcheck disable=SC2034 # results for the calling test
	TBWRAP_RC=$?
	t1=$(date +%s%N)
	# shellcheck disable=SC2034
	TBWRAP_MS=$(((t1 - t0) / 1000000))
}

# report_usage REPORT [COMMAND]: the same four numbers as ground_truth, read from a
# --report-json file (overall, or the command's entry); "missing" when there is no such entry.
report_usage() {
	python3 - "$1" "${2:-}" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1], encoding="utf-8"))
if sys.argv[2]:
    hits = [c["used"] for c in r["commands"] if c["name"] == sys.argv[2]]
    if not hits:
        print("missing")
        sys.exit(0)
    u = hits[0]
else:
    u = r["overall"]["used"]
print(u["input"], u["output"], u["cache_creation"], u["cache_read"])
PYEOF
}

# report_get REPORT EXPR: prints eval(EXPR) with r = the report; lists are joined by spaces,
# None prints as "null", booleans as "true"/"false".
report_get() {
	python3 - "$1" "$2" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1], encoding="utf-8"))
def show(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return " ".join(show(x) for x in v)
    return str(v)
print(show(eval(sys.argv[2], {"r": r})))
PYEOF
}

# cli_unfinal [STDOUT...]: over the calls the CLI wrote (its transcripts under CLAUDE_CONFIG_DIR,
# and the stdout files given), those it never wrote a final usage of, by the meter's rule
# (README, Limits): no line with a stop_reason or with more output than a snapshot's
# (METER_SNAPSHOT_OUTPUT_MAX, 2), no message_delta, and no result line with a modelUsage in their
# session. Prints "K MISSING GAP": K such calls, MISSING what the stand-in billed of their output
# beyond what was shown, GAP what they would add at the largest output shown in their session
# (one agent's: what block mode holds).
cli_unfinal() {
	python3 - "$STANDIN_LOG" "$CLAUDE_CONFIG_DIR/projects" "$@" <<'PY'
import json, os, sys
log, projects, outs = sys.argv[1], sys.argv[2], sys.argv[3:]
SNAPSHOT_MAX = 2
calls = {}  # id -> {"session", "shown", "final"}
covered = set()  # sessions with a result line that has a modelUsage

def call(mid, session):
    c = calls.setdefault(mid, {"session": session, "shown": 0, "final": False})
    c["session"] = c["session"] or session
    return c

def take(o, session, cur):
    if not isinstance(o, dict):
        return
    session = o.get("session_id") or o.get("sessionId") or session
    if o.get("type") == "result":
        if isinstance(o.get("modelUsage"), dict) and o["modelUsage"]:
            covered.add(session)
        return
    if o.get("type") == "stream_event" and isinstance(o.get("event"), dict):
        ev = o["event"]
        if ev.get("type") == "message_start" and isinstance(ev.get("message"), dict):
            cur[0] = ev["message"].get("id")
        elif ev.get("type") == "message_delta" and cur[0]:
            c = call(cur[0], session)
            c["final"] = True
            c["shown"] = max(c["shown"], (ev.get("usage") or {}).get("output_tokens", 0))
        return
    m = o.get("message") if o.get("type") == "assistant" else None
    if not isinstance(m, dict) or not isinstance(m.get("usage"), dict) or "id" not in m:
        return
    c = call(m["id"], session)
    out = m["usage"].get("output_tokens", 0)
    c["shown"] = max(c["shown"], out)
    c["final"] = c["final"] or isinstance(m.get("stop_reason"), str) or out > SNAPSHOT_MAX

def take_file(path, session):
    cur = [None]
    for line in open(path, encoding="utf-8", errors="replace"):
        try:
            v = json.loads(line)
        except ValueError:
            continue
        for o in v if isinstance(v, list) else [v]:
            take(o, session, cur)

for root, _, files in os.walk(projects):
    for f in files:
        if not f.endswith(".jsonl"):
            continue
        parts = os.path.join(root, f).split(os.sep)
        session = parts[-3] if len(parts) >= 3 and parts[-2] == "subagents" else f[:-6]
        take_file(os.path.join(root, f), session)
for f in outs:
    take_file(f, None)
billed = {}
for r in map(json.loads, open(log, encoding="utf-8")):
    if r.get("billed") and r.get("message_id"):
        billed[r["message_id"]] = r["billed"]["output"]
largest = {}
for c in calls.values():
    largest[c["session"]] = max(largest.get(c["session"], 0), c["shown"])
k = missing = gap = 0
for mid, c in calls.items():
    if c["final"] or c["session"] in covered:
        continue
    k += 1
    missing += max(billed.get(mid, c["shown"]) - c["shown"], 0)
    gap += largest[c["session"]] - c["shown"]
print(k, missing, gap)
PY
}

# assert_ledger_billing NAME REPORT [STDOUT...]: the report's overall usage is the stand-in's
# billing, less the output the CLI never wrote of its calls without a final usage
# (cli_unfinal), and the report counts those calls.
assert_ledger_billing() {
	local name=$1 report=$2 k missing gap what="the ledger equals the billing"
	shift 2
	read -r k missing gap <<<"$(cli_unfinal "$@")"
	local want
	want=$(ground_truth)
	if ((k > 0)); then
		want=$(usage_minus "$want" "0 $missing 0 0")
		what="the ledger equals the billing less the output ($missing) of the $k call(s) the CLI never wrote a final usage of"
	fi
	assert_eq "$(report_usage "$report")" "$want" "$name: $what"
	assert_eq "$(report_get "$report" 'sum(a["unfinal_calls"] for a in r["agents"])')" "$k" \
		"$name: the report counts $k call(s) without a final usage"
	UNFINAL_GAP=$gap
}

# sum_of "a b c d": the token total of four counts (the ledger's total is their plain sum).
sum_of() {
	local a b c d
	read -r a b c d <<<"$1"
	echo $((a + b + c + d))
}

# normalize FILE: prints FILE with what two runs of the same scenario never share replaced:
# session ids and other uuids, message/tool/request ids, timestamps, every *_ms timing, the
# random names of saved tool output, the per-process socket in 2.1.332's init line
# (messaging_socket_path /tmp/cc-socks/PID.sock), and two fields the Node build (1.0.x) prints
# from a message object that later stream events keep filling in, so that their value depends
# on when the line is written: the stop_reason of assistant lines (null or "end_turn" for the
# same call), the content of a message_start stream event ("" or the call's whole text), and
# the order of the init line's slash_commands (directory order).
# JSON lines are rewritten value by value (key order kept); any other line only has its ids
# replaced. Text mode needs none of this: its output is compared byte for byte.
normalize() {
	python3 - "$1" <<'PYEOF'
import json, re, sys
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
IDS = re.compile(r"\b(msg|toolu|req)_[0-9A-Za-z]+")
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
# Large tool output is saved by the CLI under a random name.
SAVED = re.compile(r"tool-results/[0-9A-Za-z]+\.txt")
SOCK = re.compile(r"cc-socks/[0-9]+\.sock")

def text(s):
    s = SAVED.sub("tool-results/ID.txt", STAMP.sub("TIMESTAMP", UUID.sub("UUID", s)))
    s = SOCK.sub("cc-socks/PID.sock", s)
    return IDS.sub(lambda m: m.group(1) + "_ID", s)

def walk(v, key=""):
    if isinstance(v, dict):
        if v.get("type") == "assistant" and isinstance(v.get("message"), dict) and "stop_reason" in v["message"]:
            v = dict(v, message=dict(v["message"], stop_reason="STOP_REASON"))
        if v.get("type") == "message_start" and isinstance(v.get("message"), dict) and "content" in v["message"]:
            v = dict(v, message=dict(v["message"], content="CONTENT"))
        # The Node build lists the project's commands in directory order, which two runs
        # need not share: as a set.
        if v.get("type") == "system" and isinstance(v.get("slash_commands"), list):
            v = dict(v, slash_commands=sorted(v["slash_commands"], key=str))
        return {k: walk(x, k) for k, x in v.items()}
    if isinstance(v, list):
        return [walk(x) for x in v]
    if key.endswith("_ms") and isinstance(v, (int, float)):
        return 0
    if isinstance(v, str):
        return text(v)
    return v

with open(sys.argv[1], encoding="utf-8", newline="") as f:
    for line in f:
        body = line.rstrip("\n")
        try:
            obj = json.loads(body)
        except json.JSONDecodeError:
            sys.stdout.write(text(line))
            continue
        if not isinstance(obj, (dict, list)):
            sys.stdout.write(text(line))
            continue
        sys.stdout.write(json.dumps(walk(obj), separators=(",", ":"), ensure_ascii=False))
        sys.stdout.write(line[len(body):])
PYEOF
}
