#!/usr/bin/env bash
# The live status line and colours: drawn on stderr only when it is a terminal (a pty made by
# script(1) here), coloured unless NO_COLOR is set, gone with --disable-budget-visuals; a file
# gets neither redraws nor escape codes.
source "$(dirname "$0")/libtest.sh"
setup
require_files "$TBWRAP" "$LIBTBWRAP" "$FAKE_AGENT"
has_cmd script || skip_all "script(1) (util-linux) is not installed: no pty to test with"

AGENTS=$(agent_dir)
# A slow agent (12 lines, 150 ms apart) so that the line is redrawn a few times.
AGENT="'$AGENTS/claude' -p /test --mode raw --output-format stream-json --delay-ms 150 --stdout '$FIX/stdout.stream-json.jsonl' >/dev/null"
ESC=$'\033'

on_pty() { # on_pty OUT ENV... -- TBWRAP-ARGS: runs tbwrap with a pty as its stderr
	local out=$1
	shift
	script -qfec "env $* '$TBWRAP' --overall-token-budget 100K -- sh -c \"$AGENT\"" /dev/null >"$out" 2>&1
}

on_pty "$T/pty" NO_COLOR=
grep -q $'\r'"$ESC\\[Ktbwrap: overall \\[" "$T/pty" && ok "pty: the live line is drawn in place" ||
	not_ok "pty: the live line is drawn in place" "$(head -c 300 "$T/pty" | cat -v)"
# The live line's own bar, not only the final report's: green right after its '['.
grep -q $'\r'"$ESC\\[Ktbwrap: overall \\[$ESC\\[92m" "$T/pty" && ok "pty: the live line's bar is coloured (green below 70 %)" ||
	not_ok "pty: the live line's bar is coloured" "$(head -c 300 "$T/pty" | cat -v)"
assert_contains "$(cat "$T/pty")" "BUDGET STATUS (warn mode)" "pty: the final report follows"

on_pty "$T/nocolor" NO_COLOR=1
grep -q $'\r'"$ESC\\[Ktbwrap: overall \\[" "$T/nocolor" && ok "NO_COLOR: the live line is still drawn" ||
	not_ok "NO_COLOR: the live line is still drawn" "$(head -c 300 "$T/nocolor" | cat -v)"
assert_eq "$(grep -c "$ESC\\[9[0-9]m" "$T/nocolor")" 0 "NO_COLOR: no colour code anywhere"

script -qfec "'$TBWRAP' --disable-budget-visuals --overall-token-budget 100K -- sh -c \"$AGENT\"" \
	/dev/null >"$T/novis" 2>&1
assert_eq "$(grep -c $'\r'"$ESC\\[K" "$T/novis")" 0 "--disable-budget-visuals: no live line"
assert_eq "$(grep -c '█' "$T/novis")" 0 "--disable-budget-visuals: no bars"
assert_contains "$(cat "$T/novis")" "Overall: 17% 17.0K/100.0K" "--disable-budget-visuals: the numbers stay"

# stderr to a file: no redraws, no escapes at all.
"$TBWRAP" --overall-token-budget 100K -- sh -c "$AGENT" 2>"$T/file"
assert_eq "$(grep -c "$ESC" "$T/file")" 0 "stderr to a file: no escape codes, no live line"
assert_contains "$(cat "$T/file")" "Overall: [" "stderr to a file: the report has its bars"

done_testing
