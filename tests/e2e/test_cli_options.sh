#!/usr/bin/env bash
# tbwrap reads an agent's argv with a table of Claude Code's options (common/agent.c): an option
# that takes a value eats the next word, so a wrong entry moves the prompt, and with it the
# agent's budget key. This test parses the --help of the CLI under test (run as the tests run it:
# not on a terminal, a private HOME and config dir) and checks every option that takes a value,
# an optional value or several values, and every flag, against that table as the library itself
# holds it (tests/helpers/option_arity links common/agent.o). A failure names each option the
# table gets wrong.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_setup
ARITY=$E2E_BUILD/tests/helpers/option_arity
if [[ ! -x $ARITY ]]; then
	not_ok "the option_arity helper is built ($ARITY)" "run: make -j2 all helpers"
	exit 1
fi

claude_help_load
help=$E2E_CLAUDE_HELP
assert_line_match "$help" "^Usage: claude \[options\]" "claude --help prints commander's usage line"

# parse_help: one line per option of the help's Options section, "ARITY SPELLING ARG" for each
# spelling ("--allowedTools, --allowed-tools <tools...>" gives two lines), ARITY as the table
# encodes it: 0 flag, 1 value or optional value, 2 variadic. An option line starts with exactly
# two spaces and a dash; a term too long for its column stands alone on its line, and wrapped
# descriptions are indented further (and may start with a dash themselves).
parse_help() {
	python3 -c '
import re, sys
section = None
for line in sys.stdin.read().splitlines():
    if re.match(r"^\S.*:$", line):
        section = line[:-1]
        continue
    if section != "Options" or not re.match(r"^  -[^ ]", line):
        continue
    term = re.split(r"\s{2,}", line.strip())[0]
    parts = [p.strip() for p in term.split(", ")]
    last = parts[-1].split(" ", 1)
    arg = last[1] if len(last) > 1 else ""
    names = [p.split(" ", 1)[0] for p in parts[:-1]] + [last[0]]
    if not arg:
        arity = 0
    elif re.fullmatch(r"<[^>]*\.\.\.>|\[[^\]]*\.\.\.\]", arg):
        arity = 2
    elif re.fullmatch(r"<[^>]*>|\[[^\]]*\]", arg):
        arity = 1
    else:
        sys.exit("cannot read the argument of: " + line)
    for n in names:
        print(arity, n, arg or "-")
'
}

if ! parsed=$(parse_help <<<"$help"); then
	not_ok "the Options section of --help can be read" "$parsed"
	exit 1
fi
n_opts=$(wc -l <<<"$parsed")
n_args=$(awk '$1 > 0' <<<"$parsed" | wc -l)
echo "# Claude Code $(claude_version): $n_opts option spellings in --help, $n_args of them take a value"
# The parser must have found the options every version has, read the right way, or the checks
# below would pass on nothing.
assert_eq "$(for o in -p --print --output-format --allowedTools --resume --help; do
		awk -v o="$o" '$2 == o { printf "%s %s", $1, $2; exit }' <<<"$parsed"
		[[ $o == --help ]] || printf ' | '
	done)" \
	"0 -p | 0 --print | 1 --output-format | 2 --allowedTools | 1 --resume | 0 --help" "--help read: -p/--print flags, --output-format a value, --allowedTools variadic, --resume optional"

# What the table says about each spelling.
mapfile -t spellings < <(awk '{print $2}' <<<"$parsed")
declare -A table
while read -r name arity; do
	table[$name]=$arity
done < <("$ARITY" "${spellings[@]}")

describe() {
	case $1 in
	0) echo "a flag" ;;
	1) echo "a value (or an optional one)" ;;
	2) echo "several values" ;;
	-1) echo "not in the table (read as a flag)" ;;
	*) echo "arity $1" ;;
	esac
}

# Every option that takes something: the table must give it exactly that arity.
while read -r want name arg; do
	((want > 0)) || continue
	got=${table[$name]:-missing}
	if [[ $got == "$want" ]]; then
		ok "$name $arg: the table reads $(describe "$want")"
	else
		not_ok "$name $arg: the table must read $(describe "$want")" "it reads $(describe "$got")" \
			"fix: common/agent.c, options[] (then make; this test again)"
	fi
done <<<"$parsed"

# Flags: a flag the table took for a value option would eat the prompt after it.
wrong=$(while read -r want name _; do
	((want == 0)) || continue
	got=${table[$name]:-missing}
	[[ $got == 0 || $got == -1 ]] || echo "$name (the table: $(describe "$got"))"
done <<<"$parsed")
assert_eq "$wrong" "" "none of the $((n_opts - n_args)) flags of --help is in the table as taking a value"
