# shellcheck shell=bash
# tap.sh: the one TAP library of the shell tests (tests/sh/libtest.sh) and the end-to-end tests
# (tests/e2e/lib.sh), which source it and add their own frames around it.
#
# Numbered TAP lines ("ok N - name", "not ok N - name" with "# " diagnostics, "ok N - name
# # SKIP why") and assertions that print exactly one of them, saying what they got and what they
# wanted. Every assertion takes what the test got first, then what it wants, then the case's name,
# and returns 1 when it failed (so "assert_eq ... || return" can stop a sequence of dependent
# checks).
#
#   assert_eq GOT WANT NAME            equal strings
#   assert_ne GOT UNWANTED NAME        different strings
#   assert_contains TEXT NEEDLE NAME   TEXT has NEEDLE as a substring
#   assert_not_contains TEXT NEEDLE NAME
#   assert_match STRING ERE NAME       the whole STRING matches the ERE ([[ =~ ]]: anchor it yourself)
#   assert_line_match TEXT ERE NAME    some line of TEXT matches the ERE (grep -E; ^ $ per line)
#   assert_file_eq GOT_FILE WANT_FILE NAME   byte-identical files
#
# tap_plan prints the plan ("1..N") and returns 1 if a case failed; done_testing does that and exits.

_tap_n=0
_tap_failed=0

ok() {
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n - $1"
}

# not_ok NAME [REASON...]: a failed case; the reason lines become TAP diagnostics.
not_ok() {
	local name=$1
	shift
	_tap_n=$((_tap_n + 1))
	_tap_failed=$((_tap_failed + 1))
	echo "not ok $_tap_n - $name"
	local line
	for line in "$@"; do
		diag "$line"
	done
	return 1
}

# skip NAME REASON: a case that could not run here, and why.
skip() {
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n - $1 # SKIP $2"
}

# diag TEXT: a TAP comment; multi-line text becomes one comment per line.
diag() {
	local line
	while IFS= read -r line; do
		echo "# $line"
	done <<<"$1"
}

# tap_plan: prints the plan; false if any case failed (and says how many).
tap_plan() {
	echo "1..$_tap_n"
	if ((_tap_failed > 0)); then
		diag "$_tap_failed of $_tap_n failed"
		return 1
	fi
	return 0
}

# done_testing: prints the plan and exits, non-zero if any case failed.
done_testing() {
	tap_plan
	exit
}

assert_eq() {
	local got=$1 want=$2 name=$3
	if [[ $got == "$want" ]]; then
		ok "$name"
	else
		not_ok "$name" "got:  '$got'" "want: '$want'"
	fi
}

assert_ne() {
	local got=$1 unwanted=$2 name=$3
	if [[ $got != "$unwanted" ]]; then
		ok "$name"
	else
		not_ok "$name" "got '$got', which it must not be"
	fi
}

assert_contains() {
	local haystack=$1 needle=$2 name=$3
	if [[ $haystack == *"$needle"* ]]; then
		ok "$name"
	else
		not_ok "$name" "missing: '$needle'" "in: '${haystack:0:2000}'"
	fi
}

assert_not_contains() {
	local haystack=$1 needle=$2 name=$3
	if [[ $haystack != *"$needle"* ]]; then
		ok "$name"
	else
		not_ok "$name" "found: '$needle'" "in: '${haystack:0:2000}'"
	fi
}

assert_match() {
	local string=$1 re=$2 name=$3
	if [[ $string =~ $re ]]; then
		ok "$name"
	else
		not_ok "$name" "'${string:0:2000}'" "does not match /$re/"
	fi
}

assert_line_match() {
	if grep -qE -- "$2" <<<"$1"; then
		ok "$3"
	else
		not_ok "$3" "'${1:0:2000}'" "has no line matching /$2/"
	fi
}

assert_file_eq() {
	local a=$1 b=$2 name=$3
	if [[ ! -f $a ]]; then
		not_ok "$name" "no such file: $a"
	elif [[ ! -f $b ]]; then
		not_ok "$name" "no such file: $b"
	elif cmp -s -- "$a" "$b"; then
		ok "$name"
	else
		not_ok "$name" "$(cmp -- "$a" "$b" 2>&1)" \
			"sizes: $(wc -c <"$a") vs $(wc -c <"$b") bytes ($a vs $b)"
	fi
}
