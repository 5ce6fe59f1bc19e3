#!/usr/bin/env bash
# `make demo` (scripts/demo), the README's first command, runs its scene to the end: three Claude
# Code agents under one tbwrap in block mode, one stopped before the request that would cross
# its command budget, one refused at launch, the final report, what the stand-in billed beside what tbwrap counted; and it leaves
# nothing running and no temp files behind.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_setup
tbwrap_require
if [[ $(claude_version) != "$CLAUDE_PINNED" ]]; then
	# scripts/demo installs and runs the pinned CLI itself: a run per version would repeat it.
	skip "make demo runs its scene to the end" "the demo runs the pinned Claude Code $CLAUDE_PINNED, not $(claude_version); tested with e2e-$CLAUDE_PINNED"
	exit 0
fi

out=$E2E_TMP/demo.out
before=$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'tbwrap-demo.*' | wc -l)
(cd "$E2E_ROOT" && exec timeout -k 5 120 scripts/demo) >"$out" 2>&1 </dev/null
rc=$?
assert_eq "$rc" "0" "the demo exits 0"
text=$(cat "$out")
assert_line_match "$text" "tbwrap: stopping agent [0-9]+ \(/review\): its next request (does|would) not fit command budget /review: used [0-9.]+K \+ reserved [0-9.]+K? \+ predicted [0-9.]+K > limit 20\.0K \(block mode\)" \
	"an agent is stopped at the request that would cross its command budget"
# Its first call is predicted as the first /review agent's first call (8,380: 8.4K), not --estimate.
assert_line_match "$text" "tbwrap\[[0-9]+\]: refused command budget /review: used [0-9.]+K \+ reserved [0-9.]+K? \+ estimate 8\.4K > limit 20\.0K \(block mode\)" \
	"the next agent of that command is refused at launch"
assert_line_match "$text" "scene: the /review agent exited 87|the /review agent exited 87" "the stopped agent exits 87"
assert_line_match "$text" "/review +API calls [0-9]+, billed +([0-9]+) tokens; tbwrap counted +\1 \(limit 20000\)" \
	"the /review agents' usage equals what the stand-in billed"
review=$(grep -oE "/review +API calls [0-9]+, billed +[0-9]+" <<<"$text" | grep -oE "[0-9]+$")
if [[ $review =~ ^[0-9]+$ ]] && ((review <= 20000)); then
	ok "/review billed $review <= its budget of 20000"
else
	not_ok "/review billed within its budget" "billed '$review'"
fi
assert_contains "$text" "BUDGET STATUS (block mode)" "the final report is printed"
assert_line_match "$text" "/test +API calls 8, billed +34000 tokens; tbwrap counted +34000" \
	"the /test agents' usage equals what the stand-in billed"
assert_eq "$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'tbwrap-demo.*' | wc -l)" "$before" \
	"no temp dir left behind"
assert_eq "$(pgrep -fc 'api_standin.py --scenario tests/e2e/scenarios/demo.json' || true)" "0" \
	"no stand-in left running"
