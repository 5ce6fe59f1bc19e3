#!/usr/bin/env bash
# Attacks from inside a real agent's Bash tool, as the agent's own unprivileged user: take over
# the supervisor or the agent (ptrace, process_vm_writev, pidfd_getfd, /proc/PID/mem and fds),
# find and write the ledger by every path (/dev/shm, the agent's fds, the sealed fd tbwrap status
# receives: write, pwrite, truncate, writable mapping, hole punch, a read-write reopen), and flood
# the supervisor's socket with garbage, forged messages and idle connections. Block mode must stop
# the agent at its budget exactly as in the same session without the attack, and the report must
# equal the stand-in's billing.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_setup
tbwrap_require

# The whole session runs as an unprivileged user: root could ptrace anything (README, Security).
RUNAS=()
if [[ $(id -u) == 0 ]]; then
	if ! command -v setpriv >/dev/null || [[ ! -x /usr/bin/python3 ]]; then
		not_ok "setpriv and /usr/bin/python3 are there to run the session as nobody"
		exit 1
	fi
	RUNAS=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi
U=$E2E_TMP/user
mkdir -p "$U/project/.claude/commands" "$U/config" "$U/home"
cp "$E2E_PROJECT/.claude/commands/"*.md "$U/project/.claude/commands/"
cp "$E2E_ROOT/tests/e2e/attack.py" "$U/attack.py"
chmod 755 "$E2E_TMP"
[[ ${#RUNAS[@]} -gt 0 ]] && chown -R 65534:65534 "$U"
# The unprivileged user must be able to run the build and the CLI: a checkout below a directory
# only root can enter (mktemp -d makes 0700 ones) cannot host this test; say so plainly.
for f in "$TBWRAP" "$E2E_BUILD/libtbwrap.so" "$(readlink -f "$E2E_CLAUDE_BIN/claude")"; do
	if ! "${RUNAS[@]}" test -r "$f"; then
		not_ok "the unprivileged user can reach $f" \
			"a directory above it is not searchable by uid 65534: $(namei -m "$f" 2>/dev/null | awk '$1 ~ /^d/ && $1 !~ /x$/' | head -n 3)"
		exit 1
	fi
done

# Room for the attack's turn (the first) to run to its end, on every version: block mode stops
# the agent at a later request (1.0.x's side calls each hold a call's prediction).
LIMIT=20000
# Every call costs 4250 (the scenario below): the estimate of a call before any is known.
# 1.0.x makes side calls while a tool runs, each held as a call until the agent ends: room for
# them too.
claude_is_node && LIMIT=40000
# scenario BASH...: the block scenario (6 calls of 4250 tokens) with these Bash tool commands.
scenario() {
	python3 - "$@" <<'PY'
import json, sys
print(json.dumps({"turns": 5, "usage": {"input": 1000, "cache_creation": 200, "cache_read": 3000, "output": 50},
                  "bash": sys.argv[1:], "delay_ms": 60, "text": "Turn {turn}. "}))
PY
}

# session NAME SCENARIO_FILE: one block-mode session as the unprivileged user; sets RC.
session() {
	standin_start "$2"
	(cd "$U/project" && exec timeout -k 5 300 "${RUNAS[@]}" env HOME="$U/home" CLAUDE_CONFIG_DIR="$U/config" \
		"$TBWRAP" --budget-enforcement-mode block --estimate 4250 --command-budget "/test=$LIMIT" --report-json "$U/$1.json" \
		-- claude -p /test --allowedTools Bash --output-format stream-json --verbose) \
		>"$E2E_TMP/$1.out" 2>"$E2E_TMP/$1.err" </dev/null
	RC=$?
	cp "$U/$1.json" "$E2E_TMP/$1.json" 2>/dev/null
	# 1.0.x makes its side calls as its own timing goes: only the main calls are the session's.
	if claude_is_node; then
		CALLS=$(main_calls /test)
	else
		CALLS=$(billed_calls /test)
	fi
	TRUTH=$(ground_truth /test)
}

scenario "echo ran >> marker" >"$E2E_TMP/plain.json"
session plain "$E2E_TMP/plain.json"
plain_rc=$RC plain_calls=$CALLS plain_truth=$TRUTH
assert_eq "$plain_rc" "87" "without the attack: the agent is stopped for its budget (87)"

scenario "/usr/bin/python3 $U/attack.py $U/attack.log" "echo ran >> marker" >"$E2E_TMP/attack.json"
session attack "$E2E_TMP/attack.json"
assert_eq "$RC" "87" "with the attack: the agent is stopped for its budget all the same (87)"
if claude_is_node; then
	# 1.0.x's side calls come as its own timing goes, each held as a call: where the stop
	# falls varies from run to run, with or without the attack. What must hold: the budget,
	# up to the prediction's documented error for 1.0.x (README, Never cross): every call it
	# shows before its result has output 1 of its real 50, so each call billed may be 49 over
	# what it was predicted.
	billed=$(sum_of "$TRUTH")
	all_calls=$(billed_calls /test)
	allowed=$((LIMIT + all_calls * 49))
	if ((billed <= allowed)); then
		ok "with the attack: billed $billed <= $LIMIT + $all_calls x 49 ($CALLS main calls; $plain_calls without it)"
	else
		not_ok "with the attack: billed within the budget and the prediction's error" "billed $billed > $allowed ($all_calls calls)"
	fi
else
	assert_eq "$CALLS" "$plain_calls" "with the attack: the same $plain_calls calls reached the API"
fi
# Block mode never lets the request that does not fit leave: every billed call is complete.
# 1.0.x writes each call's output as its stream's first snapshot (README, Limits) and its side
# calls nowhere: its ledger holds the main calls' input and cache counts.
if claude_is_node; then
	read -r ti _ tc tr <<<"$(cli_truth /test)"
	read -r gi _ gc gr <<<"$(report_usage "$E2E_TMP/attack.json" /test)"
	assert_eq "$gi $gc $gr" "$ti $tc $tr" "with the attack: the report holds the main calls' input and cache counts (1.0.x)"
else
	assert_eq "$(report_usage "$E2E_TMP/attack.json" /test)" "$TRUTH" "with the attack: the report equals the billing"
fi
if ! claude_is_node; then
	assert_eq "$(report_usage "$E2E_TMP/attack.json" /test)" "$(report_usage "$E2E_TMP/plain.json" /test)" \
		"with the attack: the report is the one of the session without it"
fi
assert_eq "$(report_get "$E2E_TMP/attack.json" '[r["agents"][0]["status"], [c["limit"] for c in r["commands"] if c["name"] == "/test"][0]]')" "stopped $LIMIT" \
	"with the attack: the budget and the verdict are tbwrap's own"

log=$(cat "$U/attack.log" 2>/dev/null)
while IFS= read -r line; do echo "#   $line"; done <<<"$log"
assert_eq "$(tail -n 1 <<<"$log")" "done" "the attack ran to its end"
expected=(
	"PTRACE_ATTACH supervisor: blocked (EPERM)"
	"PTRACE_SEIZE supervisor: blocked (EPERM)"
	"process_vm_writev supervisor: blocked (EPERM)"
	"pidfd_getfd supervisor: blocked (EPERM)"
	"PTRACE_ATTACH agent: blocked (EPERM)"
	"PTRACE_SEIZE agent: blocked (EPERM)"
	"process_vm_writev agent: blocked (EPERM)"
	"pidfd_getfd agent: blocked (EPERM)"
	"open /proc/supervisor/mem: blocked (EACCES)"
	"open /proc/supervisor/environ: blocked (EACCES)"
	"open /proc/supervisor/fd/0: blocked (EACCES)"
	"list /proc/supervisor/fd: blocked (EACCES)"
	"list /proc/supervisor/map_files: blocked (EACCES)"
	"a tbwrap segment in /dev/shm: blocked (0 found)"
	"a ledger among the agent's fds: blocked (0 found)"
	"write the ledger: blocked (EPERM)"
	"pwrite the ledger: blocked (EPERM)"
	"truncate the ledger: blocked (EPERM)"
	"punch a hole in the ledger: blocked (EPERM)"
	"reopen the ledger read-write and write: blocked (EPERM)"
	"a HELLO from a process that is no agent: blocked (refused)"
	"the supervisor answers after the flood: ok (status served)"
)
for want in "${expected[@]}"; do
	assert_eq "$(grep -cxF -- "$want" <<<"$log")" "1" "attack: $want"
done
assert_line_match "$log" '^map the ledger writable: blocked \(' "attack: map the ledger writable: blocked"
assert_eq "$(grep -E 'SUCCEEDED|FAILED' <<<"$log")" "" "attack: nothing succeeded"
assert_line_match "$(cat "$E2E_TMP/attack.err")" "^tbwrap: refused: process [0-9]+ tried to take over agent [0-9]+ \(ptrace\)$" \
	"the supervisor says who tried to take over the agent"
