#!/usr/bin/env bash
# scripts/install-deps: with everything present it changes nothing and needs no root; without
# root and with something missing it names what is missing, says how to install it, and stops.
# A missing package is simulated by hiding its header in a private mount namespace.
source "$(dirname "$0")/libtest.sh"
setup

if [[ $(id -u) -ne 0 ]] || ! has_cmd unshare || ! has_cmd setpriv; then
	skip_all "needs root, unshare and setpriv to run the script as another user in a namespace"
fi
# A copy the unprivileged user can read wherever the repository lives (the test's temp dir goes
# with it at the end).
dir=$T/deps
mkdir -p "$dir"
cp "$ROOT/scripts/install-deps" "$dir/"
chmod 755 "$T" "$dir" "$dir/install-deps"
as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)

run "${as_nobody[@]}" bash "$dir/install-deps"
assert_eq "$status" 0 "everything present: exit 0 without root"
assert_eq "$output$errout" "" "everything present: nothing said, nothing done"

run unshare -m sh -c "mount -t tmpfs none /usr/include/cjson && exec ${as_nobody[*]} bash '$dir/install-deps'"
assert_eq "$status" 1 "libcjson-dev missing, not root: exit 1"
assert_eq "$errout" "install-deps: missing: libcjson-dev
install-deps: install them (as root on Debian: apt-get install libcjson-dev) and run again" \
	"libcjson-dev missing, not root: it names the package and how to install it"

done_testing
