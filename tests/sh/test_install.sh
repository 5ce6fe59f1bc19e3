#!/usr/bin/env bash
# make install and make uninstall with PREFIX and DESTDIR: the installed tbwrap finds its library
# where it was put and meters an agent exactly; the man page has no warnings and names every
# option of --help; --version names the release and the commit; the bash completion loads;
# uninstall removes what install put there and nothing else.
source "$(dirname "$0")/libtest.sh"
setup
require_files "$TBWRAP" "$LIBTBWRAP" "$FAKE_AGENT"

DEST=$T/dest
PREFIX=/opt/tb
run make -C "$ROOT" -s install DESTDIR="$DEST" PREFIX="$PREFIX"
assert_eq "$status" 0 "make install DESTDIR PREFIX exits 0"
for f in bin/tbwrap lib/tbwrap/libtbwrap.so share/man/man1/tbwrap.1 share/bash-completion/completions/tbwrap; do
	if [[ -f $DEST$PREFIX/$f ]]; then
		ok "installed $PREFIX/$f"
	else
		not_ok "installed $PREFIX/$f" "$(cd "$DEST" && find . -type f)"
	fi
done
assert_eq "$(stat -c %a "$DEST$PREFIX/bin/tbwrap") $(stat -c %a "$DEST$PREFIX/lib/tbwrap/libtbwrap.so")" "755 644" \
	"modes: the binary 755, the library 644"
assert_eq "$(cd "$DEST" && find . -type f | wc -l)" 4 "nothing else installed"

# The installed binary, away from the build tree, meters the fixture's session exactly.
AGENTS=$(agent_dir)
run "$DEST$PREFIX/bin/tbwrap" --disable-budget-visuals --report-json "$T/r.json" -- \
	"$AGENTS/claude" -p /test --stdout "$FIX/stdout.text.txt" --transcript "$FIX/transcript.text.jsonl"
assert_eq "$status:$(json_get "$T/r.json" overall.used.total)" "0:17000" "the installed tbwrap meters an agent exactly (17,000 tokens)"

version=$("$DEST$PREFIX/bin/tbwrap" --version)
commit=$(git -C "$ROOT" rev-parse --short=12 HEAD)
assert_match "$version" "^tbwrap $(cat "$ROOT/VERSION") \\(commit $commit(-modified)?\\)$" \
	"--version names the release ($(cat "$ROOT/VERSION")) and the commit ($commit)"

if has_cmd man; then
	warnings=$(LC_ALL=C.UTF-8 man --warnings -E UTF-8 -l "$DEST$PREFIX/share/man/man1/tbwrap.1" 2>&1 >/dev/null)
	assert_eq "$warnings" "" "man --warnings: the man page renders without a warning"
	page=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$DEST$PREFIX/share/man/man1/tbwrap.1" 2>/dev/null)
	missing=
	for opt in $("$TBWRAP" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
		grep -qF -- "$opt" <<<"$page" || missing+=" $opt"
	done
	assert_eq "${missing:-none}" "none" "the man page names every option of --help"
	for st in 2 86 87 88 125 126 127; do
		grep -qE "^ +$st\$|^ +$st " <<<"$page" || missing+=" $st"
	done
	assert_eq "${missing:-none}" "none" "the man page lists every exit status"
else
	skip "man --warnings" "man is not installed (scripts/install-deps installs man-db)"
fi

run bash -c "source /usr/share/bash-completion/bash_completion 2>/dev/null; source '$DEST$PREFIX/share/bash-completion/completions/tbwrap' && complete -p tbwrap"
assert_eq "$output" "complete -F _tbwrap tbwrap" "the bash completion loads and registers for tbwrap"

run make -C "$ROOT" -s uninstall DESTDIR="$DEST" PREFIX="$PREFIX"
assert_eq "$status:$(cd "$DEST" && find . -type f | wc -l)" "0:0" "make uninstall removes every installed file"
done_testing
