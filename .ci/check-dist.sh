#!/usr/bin/env bash
# Checks the release archive that scripts/dist.sh makes: it lists exactly the binary, the unit,
# the README, the licence and SHA256SUMS; the sums and the archive's own .sha256 verify; the
# binary is static ("not a dynamic executable"), and its --version names the version and the
# target; and it serves a badge inside an empty root (a chroot holding only the binary and a
# data dir), on a free loopback port, then stops cleanly on SIGTERM.
#
# Usage: bash .ci/check-dist.sh target/dist/hitcounter-<version>-x86_64-linux-musl.tar.gz
set -euo pipefail
archive=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/check-dist.XXXXXX")
pid=""
cleanup() {
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "check-dist: FAIL: $*" >&2
    exit 1
}

name=$(basename "$archive" .tar.gz)
version=${name#hitcounter-}
version=${version%-x86_64-linux-musl}

echo "== the archive's contents"
listed=$(tar -tzf "$archive" | sort | tr '\n' ' ')
want="$name/ $name/LICENSE $name/README.md $name/SHA256SUMS $name/hitcounter $name/hitcounter.service "
[[ $listed == "$want" ]] || fail "the archive holds '$listed', not '$want'"
(cd "$(dirname "$archive")" && sha256sum -c --quiet "$name.tar.gz.sha256") || fail "the archive's .sha256"
tar -C "$work" -xzf "$archive"
(cd "$work/$name" && sha256sum -c --quiet SHA256SUMS) || fail "SHA256SUMS"

echo "== the binary"
bin=$work/$name/hitcounter
ldd "$bin" 2>&1 | grep -Eq "not a dynamic executable|statically linked" || fail "not static: $(ldd "$bin" 2>&1)"
said=$("$bin" --version)
[[ $said == "hitcounter $version (x86_64-unknown-linux-musl)" ]] || fail "--version says '$said'"
echo "    $said, $(stat -c %s "$bin") bytes"

echo "== a badge from an empty root"
root=$work/root
mkdir -p "$root/data"
cp "$bin" "$root/hitcounter"
if ! chroot "$root" /hitcounter --version >/dev/null 2>&1; then
    echo "check-dist: skipped the empty root: chroot is not allowed here"
    exit 0
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chroot "$root" /hitcounter --bind "127.0.0.1:$port" --data-dir /data >"$work/server.log" 2>&1 &
pid=$!
badge=""
for _ in $(seq 50); do
    badge=$(curl -sf "http://127.0.0.1:$port/count/tag.svg?url=dist.example" || true)
    [[ -n $badge ]] && break
    sleep 0.1
done
[[ $badge == *'aria-label="hits: 1"'* ]] || fail "no badge from the empty root: '$badge' $(cat "$work/server.log")"
kill -TERM "$pid"
wait "$pid" || fail "the server did not stop cleanly on SIGTERM: $(cat "$work/server.log")"
pid=""
[[ $(ls "$root") == $'data\nhitcounter' ]] || fail "the root holds more than it was given: $(ls "$root")"
echo "check-dist: OK: $name: contents, sums, a static binary, a badge from an empty root"
