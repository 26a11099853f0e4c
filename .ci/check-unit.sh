#!/usr/bin/env bash
# Checks the shipped systemd unit, hitcounter.service:
#   1. `systemd-analyze verify` accepts it with no error and no warning at all
#      (an unknown or malformed directive is only a warning, exit status 0, so
#      any output counts as a failure);
#   2. `systemd-analyze security --offline=yes` rates its exposure <= MAX_EXPOSURE, the
#      score it has had since it was hardened: a change that loosens it fails here.
#
# Usage (from anywhere, typically the repo root):
#   bash .ci/check-unit.sh target/debug/hitcounter
#
# verify insists that ExecStart=/usr/local/bin/hitcounter exists and is
# executable. Rather than install anything on the machine, the check runs
# verify with --root=TMP, a throwaway filesystem root holding: an unmodified
# copy of the unit at TMP/etc/systemd/system/hitcounter.service, the built
# binary given as $1 copied to TMP/usr/local/bin/hitcounter, and a copy of the
# host's /usr/lib/systemd/system for the units it depends on (sysinit.target,
# network-online.target, multi-user.target, ...). The unit is checked exactly
# as shipped, ExecStart path included.
set -euo pipefail

MAX_EXPOSURE=1.1

die() {
    echo "check-unit: FAIL: $*" >&2
    exit 1
}

[[ $# -eq 1 ]] || die "usage: $0 PATH/TO/BUILT/hitcounter"
binary=$1
[[ -f $binary && -x $binary ]] || die "'$binary' is not an executable file (build the binary first)"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
unit=$repo/hitcounter.service
[[ -f $unit ]] || die "no unit file at $unit"

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "check-unit: systemd-analyze missing; installing the systemd package"
    sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd
fi
systemd-analyze --version | head -n 1

# Unit files of the host (Debian: /usr/lib/systemd/system; /lib may be a
# separate directory on systems without the merged /usr).
host_units=
for dir in /usr/lib/systemd/system /lib/systemd/system; do
    if [[ -e $dir/sysinit.target ]]; then
        host_units=$dir
        break
    fi
done
[[ -n $host_units ]] || die "cannot find systemd's own unit files (sysinit.target)"

root=$(mktemp -d "${TMPDIR:-/tmp}/check-unit.XXXXXX")
trap 'rm -rf -- "$root"' EXIT
mkdir -p "$root/etc/systemd/system" "$root/usr/local/bin" "$root/usr/lib/systemd"
cp -a -- "$host_units" "$root/usr/lib/systemd/system"
cp -- "$unit" "$root/etc/systemd/system/hitcounter.service"
cp -- "$binary" "$root/usr/local/bin/hitcounter"
chmod 0755 "$root/usr/local/bin/hitcounter"

echo "== systemd-analyze verify --root=$root /etc/systemd/system/hitcounter.service"
set +e
verify_out=$(systemd-analyze verify --root="$root" /etc/systemd/system/hitcounter.service 2>&1)
verify_rc=$?
set -e
[[ -z $verify_out ]] || printf '%s\n' "$verify_out"
[[ $verify_rc -eq 0 ]] || die "systemd-analyze verify exited with status $verify_rc"
[[ -z $verify_out ]] || die "systemd-analyze verify printed warnings (see above)"
echo "verify: OK (exit 0, no output)"

echo "== systemd-analyze security --offline=yes $unit"
set +e
security_out=$(systemd-analyze security --no-pager --offline=yes "$unit" 2>&1)
security_rc=$?
set -e
printf '%s\n' "$security_out"
[[ $security_rc -eq 0 ]] || die "systemd-analyze security exited with status $security_rc"

score=$(printf '%s\n' "$security_out" |
    sed -nE 's/.*Overall exposure level for [^:]*: ([0-9]+(\.[0-9]+)?).*/\1/p' | tail -n 1)
[[ -n $score ]] || die "could not find the overall exposure level in the output above"

if awk -v s="$score" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(s > max) }'; then
    die "exposure $score is above the allowed $MAX_EXPOSURE"
fi

echo "check-unit: OK: verify clean, security exposure $score (max $MAX_EXPOSURE)"
