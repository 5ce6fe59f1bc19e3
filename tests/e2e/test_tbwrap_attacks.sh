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

LIMIT=10000
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
		"$TBWRAP" --budget-enforcement-mode block --command-budget "/test=$LIMIT" --report-json "$U/$1.json" \
		-- claude -p /test --allowedTools Bash --output-format stream-json --verbose) \
		>"$E2E_TMP/$1.out" 2>"$E2E_TMP/$1.err" </dev/null
	RC=$?
	cp "$U/$1.json" "$E2E_TMP/$1.json" 2>/dev/null
	CALLS=$(billed_calls /test)
	TRUTH=$(ground_truth /test)
}

scenario "echo ran >> marker" >"$E2E_TMP/plain.json"
session plain "$E2E_TMP/plain.json"
plain_rc=$RC plain_calls=$CALLS plain_truth=$TRUTH
assert_eq "87" "$plain_rc" "without the attack: the agent is stopped for its budget (87)"

scenario "/usr/bin/python3 $U/attack.py $U/attack.log" "echo ran >> marker" >"$E2E_TMP/attack.json"
session attack "$E2E_TMP/attack.json"
assert_eq "87" "$RC" "with the attack: the agent is stopped for its budget all the same (87)"
assert_eq "$plain_calls" "$CALLS" "with the attack: the same $plain_calls calls reached the API"
read -r ti to tc tr <<<"$TRUTH"
assert_eq "$ti $((to - 49)) $tc $tr" "$(report_usage "$E2E_TMP/attack.json" /test)" \
	"with the attack: the report equals the billing (output minus 49 for the call in flight)"
assert_eq "$(report_usage "$E2E_TMP/plain.json" /test)" "$(report_usage "$E2E_TMP/attack.json" /test)" \
	"with the attack: the report is the one of the session without it"
assert_eq "stopped 10000" "$(report_get "$E2E_TMP/attack.json" '[r["agents"][0]["status"], [c["limit"] for c in r["commands"] if c["name"] == "/test"][0]]')" \
	"with the attack: the budget and the verdict are tbwrap's own"

log=$(cat "$U/attack.log" 2>/dev/null)
while IFS= read -r line; do echo "#   $line"; done <<<"$log"
assert_eq "done" "$(tail -n 1 <<<"$log")" "the attack ran to its end"
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
	assert_eq "1" "$(grep -cxF -- "$want" <<<"$log")" "attack: $want"
done
assert_match "$log" '^map the ledger writable: blocked \(' "attack: map the ledger writable: blocked"
assert_eq "" "$(grep -E 'SUCCEEDED|FAILED' <<<"$log")" "attack: nothing succeeded"
assert_match "$(cat "$E2E_TMP/attack.err")" "^tbwrap: refused: process [0-9]+ tried to take over agent [0-9]+ \(ptrace\)$" \
	"the supervisor says who tried to take over the agent"
