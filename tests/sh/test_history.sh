#!/usr/bin/env bash
# Budgets that remember, with fake agents metered exactly (4,250 tokens per call): the history's
# rows, --estimate auto's p75 at launch, a rolling window spent across runs (the last refused at
# launch, exit 86), scopes that do not mix, four runs finishing at once, profiles, tbwrap report
# and suggest, and a history that is locked, corrupt or unwritable.
source "$(dirname "$0")/libtest.sh"
setup
require_files "$TBWRAP" "$LIBTBWRAP" "$FAKE_AGENT"
has_cmd sqlite3 || skip_all "needs the sqlite3 command (apt-get install sqlite3)"

AGENTS=$(agent_dir)
# calls N: N API calls of 4,250 tokens each, distinct ids, as stream-json lines.
calls() {
	local f=$T/calls-$1.jsonl i
	for ((i = 1; i <= $1; i++)); do
		printf '{"type":"assistant","message":{"id":"msg_%02d","type":"message","role":"assistant","model":"claude-opus-4-8","usage":{"input_tokens":1000,"cache_creation_input_tokens":200,"cache_read_input_tokens":3000,"output_tokens":50}}}\n' "$i"
	done >"$f"
	echo "$f"
}
# agent CMD N [tbwrap options...]: one tbwrap run of one agent of CMD making N calls.
agent() {
	local cmd=$1 n=$2
	shift 2
	run "$TBWRAP" --disable-budget-visuals --history "$H" "$@" -- \
		"$AGENTS/claude" -p "$cmd" --mode raw --output-format stream-json --stdout "$(calls "$n")"
}
q() {
	sqlite3 "$H" "$1"
}

# ---- the rows --------------------------------------------------------------------------------
H=$T/h.db
agent /test 4
assert_eq "$status" 0 "a run with a history exits with its agent's status"
# 4 calls at claude-opus-4-8's rates: 4000 x 5 + 200 x 25 + 800 x 6.25 + 12000 x 0.50 = 36000
# micro-USD.
assert_eq "$(q "select scope, command, input, output, cache_creation, cache_read, total, usd_pico, model, status, exit_code, metered, cwd from agents")" \
	"default|/test|4000|200|800|12000|17000|36000000000|claude-opus-4-8|exited|0|1|$T" "one row per agent: scope, command, the four counts, total, usd, model, status, exit code, cwd"
assert_eq "$(q "select count(*), sum(ended_ms >= started_ms), min(exit_status), min(scope) from runs")" "1|1|0|default" "one row per run, ended, with tbwrap's exit status"
assert_eq "$(q "pragma journal_mode")" "wal" "the history is in WAL mode"
assert_eq "$(stat -c %a "$H")" 600 "the history is the user's own (0600)"

# ---- --estimate auto: p75 of the last runs ---------------------------------------------------
H=$T/p75.db
for n in 1 2; do agent /test "$n"; done
run "$TBWRAP" --history "$H" --estimate auto --dry-run -- true
assert_contains "$output" "estimate /test: 1.0K (1000 tokens, the fixed estimate: 2 runs in the history)" \
	"fewer than 3 runs: the fixed estimate, and why"
for n in 5 3 4; do agent /test "$n"; done
# 4,250 8,500 12,750 17,000 21,250: nearest rank ceil(0.75 * 5) = 4th = 17,000
run "$TBWRAP" --history "$H" --estimate auto --dry-run -- true
assert_contains "$output" "estimate /test: 17.0K (17000 tokens, p75 of 5 runs)" "p75 of 5 runs of known sizes"
agent /test 1 --estimate auto --budget-enforcement-mode block --overall-token-budget 16K
assert_eq "$status" 86 "block mode: an agent whose p75 does not fit is refused at launch"
assert_match "$errout" 'refused overall budget: used 0 \+ reserved 0 \+ estimate 17\.0K > limit 16\.0K \(block mode\)' \
	"the refusal names the estimate from the history"
agent /test 1 --budget-enforcement-mode block --overall-token-budget 16K
assert_eq "$status" 0 "without --estimate auto the same agent runs (fixed estimate)"
for n in 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1; do agent /test "$n"; done
run "$TBWRAP" --history "$H" --estimate auto --dry-run -- true
assert_contains "$output" "estimate /test: 4.2K (4250 tokens, p75 of 20 runs)" "only the last 20 runs count"

# ---- a rolling window spent across three runs ------------------------------------------------
H=$T/window.db
W=(--window 24h --scope nightly --overall-token-budget 34K --budget-enforcement-mode block)
agent /test 4 "${W[@]}"
assert_eq "$status" 0 "window: the first run (17,000) runs"
assert_contains "$errout" "tbwrap: window 24h of scope nightly: this run 17.0K + other runs 0, overall budget 34.0K" "window: the first run's line"
agent /test 4 "${W[@]}"
assert_eq "$status" 0 "window: the second run (17,000 more: 34,000 = the budget) runs"
assert_contains "$errout" "this run 17.0K + other runs 17.0K" "window: the second run counts the first"
rows=$(q "select count(*) from agents")
agent /test 4 "${W[@]}"
assert_eq "$status" 86 "window: the third run is refused at launch (exit 86)"
assert_eq "$errout" "tbwrap: refused: overall budget of scope nightly over the last 24h: used 34.0K by other runs + estimate 1.0K > limit 34.0K (block mode: nothing was started)" \
	"window: one line naming budget, scope, window and usage"
assert_eq "$(q "select count(*) from agents"):$(q "select exit_status from runs order by id desc limit 1")" "$rows:86" \
	"window: nothing was started (no agent row), the refused run is recorded with 86"
agent /test 4 --window 24h --scope other --overall-token-budget 34K --budget-enforcement-mode block
assert_eq "$status" 0 "scopes do not mix: another scope's window is empty"
assert_contains "$errout" "window 24h of scope other: this run 17.0K + other runs 0" "scope other counts only itself"
agent /test 1 --window 24h --scope nightly --overall-token-budget 34K
assert_eq "$status" 0 "warn mode: a spent window warns and runs"
assert_contains "$errout" "tbwrap: warning: overall budget of scope nightly over the last 24h: used 34.0K by other runs + estimate 1.0K > limit 34.0K (warn mode: running anyway)" \
	"warn mode: the warning line"
# Rows older than the window do not count.
q "update agents set started_ms = started_ms - 90 * 60 * 1000 where scope = 'nightly'"
agent /test 4 --window 90m --scope nightly --overall-token-budget 34K --budget-enforcement-mode block
assert_eq "$status" 0 "a 90m window: runs from 90 minutes ago no longer count"

# A running run sees the other runs' usage while it runs: a second run that spends the window
# while the first one's agent is running takes the first one over its budget (block: stopped).
H=$T/live.db
start_bg "$TBWRAP" --disable-budget-visuals --history "$H" --window 1h --scope live --overall-token-budget 25K \
	--budget-enforcement-mode block -- "$AGENTS/claude" -p /test --mode raw --output-format stream-json \
	--stdout "$(calls 2)" --sleep-after 6000 >/dev/null 2>"$T/live.err"
live=$BG_PID
wait_until 5 bash -c "[[ \$(sqlite3 '$H' 'select count(*) from agents' 2>/dev/null) == 1 ]]"
agent /test 4 --window 1h --scope live --overall-token-budget 25K
assert_eq "$status" 0 "live: a second run (warn mode) runs beside the first"
wait "$live"
assert_eq "$?" 87 "live: the first run's agent is stopped once the other run's usage is read (exit 87)"
assert_contains "$(cat "$T/live.err")" "overall budget exceeded, used 25.5K/25.0K" "live: 8,500 own + 17,000 of the other run"

# ---- four runs finishing at once -------------------------------------------------------------
H=$T/four.db
pids=()
for i in 1 2 3 4; do
	"$TBWRAP" --disable-budget-visuals --history "$H" -- "$AGENTS/claude" -p "/four" --mode raw \
		--output-format stream-json --stdout "$(calls 4)" --sleep-after 500 >/dev/null 2>"$T/four$i.err" &
	pids+=($!)
done
rcs=
for p in "${pids[@]}"; do
	wait "$p"
	rcs+="$?"
done
assert_eq "$rcs" "0000" "four runs at once: all exit 0"
assert_eq "$(q "select count(*), sum(total), count(distinct run_id) from agents where command = '/four'")" "4|68000|4" \
	"four runs at once: all four recorded, exactly"
assert_eq "$(q "select count(*) from runs where ended_ms is not null")" 4 "four runs at once (on a new history): every run ended"
assert_eq "$(cat "$T"/four*.err | grep -c 'history')" 0 "four runs at once: no history warning"

# ---- profiles -------------------------------------------------------------------------------
H=$T/profiles.db
P=$T/budget-profiles.yaml
cat >"$P" <<'EOF'
profiles:
  testing:
    overall: 5000
    commands:
      /test: 2000
      /analyze: 1000
  nightly:
    overall: 2M
    commands:
      /test: 500K
    mode: block
    window: 24h
    scope: nightly
    estimate: auto
    overall_usd: 20
    commands_usd:
      /test: 5.50
EOF
run "$TBWRAP" --history "$H" --profiles "$P" --profile testing --dry-run -- true
assert_eq "$(grep -E '^(mode|overall budget|command budget)' <<<"$output")" "mode: warn
overall budget: 5.0K (5000 tokens)
command budget /test: 2.0K (2000 tokens)
command budget /analyze: 1.0K (1000 tokens)" "profile testing: the seed's format"
run "$TBWRAP" --history "$H" --profiles "$P" --profile nightly --command-budget /test=100K --overall-token-budget 1M --dry-run -- true
assert_eq "$(grep -E '^(mode|overall budget|command budget|window|estimate auto)' <<<"$output")" "mode: block
overall budget: 1.0M (1000000 tokens)
command budget /test: 100.0K (100000 tokens)
window: 24h, scope nightly
estimate auto: p75 of the last 20 runs of a command (from 3 runs on), else 1.0K" \
	"profile nightly: mode, window, scope, estimate; the command line's budgets override it"
run "$TBWRAP" --history "$H" --profiles "$P" --profile nightly --scope mine --budget-enforcement-mode warn --dry-run -- true
assert_contains "$output" "window: 24h, scope mine" "a --scope overrides the profile's"
assert_contains "$output" "mode: warn" "a mode on the command line overrides the profile's"
XDG_CONFIG_HOME=$T/xdg
mkdir -p "$XDG_CONFIG_HOME/tbwrap" && cp "$P" "$XDG_CONFIG_HOME/tbwrap/budget-profiles.yaml"
run env XDG_CONFIG_HOME="$XDG_CONFIG_HOME" "$TBWRAP" --history "$H" --profile testing --dry-run -- true
assert_contains "$output" "overall budget: 5.0K (5000 tokens)" "the default profiles file: \$XDG_CONFIG_HOME/tbwrap/budget-profiles.yaml"
assert_status 2 "an unknown profile exits 2" "$TBWRAP" --history "$H" --profiles "$P" --profile nope -- true
assert_eq "$errout" "tbwrap: $P:1: no profile 'nope' (it has: testing, nightly)" "an unknown profile names those there are"
printf 'profiles:\n  testing:\n    overall: 5000\n    commands:\n      /test: lots\n' >"$T/bad1.yaml"
assert_status 2 "a bad count exits 2" "$TBWRAP" --history "$H" --profiles "$T/bad1.yaml" --profile testing -- true
assert_eq "$errout" "tbwrap: $T/bad1.yaml:5: commands /test: 'lots': expected a token count such as 50000, 50K or 1.5M" "a bad count: file and line"
printf 'profiles:\n  testing:\n    overall: 5000\n   commands: [\n' >"$T/bad2.yaml"
assert_status 2 "malformed YAML exits 2" "$TBWRAP" --history "$H" --profiles "$T/bad2.yaml" --profile testing -- true
assert_match "$errout" "^tbwrap: $T/bad2.yaml:[0-9]+: not valid YAML: " "malformed YAML: file and line"
printf 'profiles:\n  testing:\n    overal: 5000\n' >"$T/bad3.yaml"
assert_status 2 "an unknown key exits 2" "$TBWRAP" --history "$H" --profiles "$T/bad3.yaml" --profile testing -- true
assert_contains "$errout" "bad3.yaml:3: unknown key 'overal'" "an unknown key: file and line"
assert_eq "$(ls "$H" 2>&1)" "ls: cannot access '$H': No such file or directory" "a refused profile ran nothing and recorded nothing"

# ---- report and suggest ---------------------------------------------------------------------
H=$T/report.db
for n in 1 2 3 4; do agent /test "$n" --scope ci; done
agent /review 2 --scope ci
agent /review 3 --scope other
agent /test 2 --scope ci --command-budget /test=500 --budget-enforcement-mode block
run "$TBWRAP" report --json --history "$H" --scope ci
assert_eq "$output" '{"since_seconds":null,"scope":"ci","command":null,"commands":[{"command":"/review","runs":1,"tokens":8500,"usd":0.018,"p50":8500,"p75":8500,"p95":8500,"stopped":0,"refused":0},{"command":"/test","runs":4,"tokens":42500,"usd":0.09,"p50":8500,"p75":12750,"p95":17000,"stopped":0,"refused":1}],"total":{"runs":5,"tokens":51000,"usd":0.108,"stopped":0,"refused":1,"tbwrap_runs":5}}' \
	"report --json: exact per command (runs, tokens, usd, p50/p75/p95, stopped, refused)"
run "$TBWRAP" report --json --history "$H" --command /review --since 7d
assert_eq "$(json_get "$T/run.out" commands.0.runs):$(json_get "$T/run.out" total.tokens):$(json_get "$T/run.out" since_seconds)" "2:21250:604800" \
	"report --command --since: every scope, one command"
run "$TBWRAP" suggest --history "$H" --scope ci
assert_eq "$output" "# /review: 1 run, too few for a suggestion (3 needed)
# /test: p95 17.0K of 4 runs + 25% = 22K
# overall: p95 17.0K of 5 tbwrap runs + 25% = 22K
tbwrap --overall-token-budget 22K --command-budget /test=22K --" "suggest: p95 x 1.25 as flags"
run "$TBWRAP" report --history "$H" --html "$T/report.html"
assert_eq "$status" 0 "report --html writes the page"
assert_contains "$(cat "$T/report.html")" '<polyline class="series" data-command="/test"' "the page has a chart line per command"
assert_not_contains "$(cat "$T/report.html")" "src=" "the page loads nothing from elsewhere"
# The page as a browser renders it: the DOM Chromium builds holds a line per command, and its
# screenshot has the chart's lines drawn in their colours (/review #1f77b4, /test #d62728).
if has_cmd chromium; then
	CHROME=(chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-extensions
		--user-data-dir="$T/chromium" --window-size=1000,800)
	dom=$(timeout 60 "${CHROME[@]}" --dump-dom "file://$T/report.html" 2>/dev/null)
	assert_eq "$(grep -o '<polyline class="series" data-command="[^"]*"' <<<"$dom" | sed 's/.*="//; s/"$//' | tr '\n' ' ')" \
		"/review /test " "chromium: the page's DOM has the chart's two lines"
	timeout 60 "${CHROME[@]}" --screenshot="$T/report.png" "file://$T/report.html" >/dev/null 2>&1
	assert_eq "$(python3 - "$T/report.png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n"
pos, idat, w = 8, b"", 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        bpp = {2: 3, 6: 4}[ctype]
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
raw, stride = zlib.decompress(idat), w * bpp
prev, seen = bytearray(stride), set()
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp):
        seen.add(bytes(line[x:x + 3]))
    prev = line
print(" ".join(name for name, rgb in (("/review", b"\x1f\x77\xb4"), ("/test", b"\xd6\x27\x28")) if rgb in seen))
PY
)" "/review /test" "chromium: the screenshot shows both lines in their colours"
else
	skip "the page renders in chromium" "chromium is not installed (scripts/install-deps installs it)"
	skip "the screenshot shows the chart" "chromium is not installed"
fi
assert_status 2 "report: a bad --since exits 2" "$TBWRAP" report --history "$H" --since 3x
assert_status 1 "report: a missing history exits 1" "$TBWRAP" report --history "$T/none.db"

# ---- a history that cannot be used ---------------------------------------------------------
H=$T/corrupt.db
head -c 8192 /dev/urandom >"$H"
cp "$H" "$T/corrupt.orig"
agent /test 1
assert_eq "$status" 0 "corrupt history, no window: the run goes on"
assert_match "$errout" "tbwrap: warning: history $H: cannot open: file is not a database \(it is not a tbwrap history \(corrupt\?\); move it away, or give another file with --history\); this run goes on and is not recorded" \
	"corrupt history: one warning with the cause and the fix"
agent /test 1 --window 24h --overall-token-budget 1M
assert_eq "$status" 125 "corrupt history, a window depends on it: exit 125"
assert_contains "$errout" "file is not a database" "corrupt history with a window: the cause"
assert_contains "$errout" "the window's budgets depend on it, nothing was run" "corrupt history with a window: nothing ran"
assert_file_eq "$H" "$T/corrupt.orig" "a corrupt history is left as it was"

H=$T/locked.db
agent /test 1
python3 "$ROOT/tests/helpers/lock_history.py" "$H" "$T/locked" 8 &
locker=$!
wait_until 5 test -e "$T/locked"
agent /test 1
assert_eq "$status" 0 "locked history, no window: the run goes on"
assert_contains "$errout" "database is locked (another process holds it locked; wait for it, or give another file with --history)" \
	"locked history: the cause and the fix"
agent /test 1 --window 24h --overall-token-budget 1M
assert_eq "$status" 125 "locked history, a window depends on it: exit 125"
kill "$locker" 2>/dev/null
wait "$locker" 2>/dev/null

mkdir -p "$T/ro" && chmod 500 "$T/ro"
if [[ $(id -u) != 0 ]]; then
	H=$T/ro/h.db
	agent /test 1
	assert_eq "$status" 0 "unwritable history: the run goes on"
	assert_contains "$errout" "cannot" "unwritable history: says why"
else
	skip "unwritable history" "root writes anywhere"
fi
H=$T/bad-input.db
agent /test 1
before=$(q "select count(*) from runs")
assert_status 2 "--window 0 exits 2" "$TBWRAP" --history "$H" --window 0 -- true
assert_eq "$errout" "tbwrap: --window '0': expected a duration such as 90m, 24h or 7d (a whole number and s, m, h, d or w)" "--window 0: the form"
assert_status 2 "--window with --no-history exits 2" "$TBWRAP" --no-history --window 1h -- true
assert_eq "$(q "select count(*) from runs")" "$before" "bad input recorded nothing"
run "$TBWRAP" --no-history --disable-budget-visuals -- true
assert_eq "$status:$(grep -c history <<<"$errout")" "0:0" "--no-history: no history, no warning"

done_testing
