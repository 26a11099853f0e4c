#!/usr/bin/env bash
# Checks the release archive that scripts/dist.sh makes: it lists exactly the binary, the unit,
# the README, the licence and SHA256SUMS; the sums and the archive's own .sha256 verify; the
# binary is static ("not a dynamic executable"), and its --version names the version and the
# target; and it serves a badge inside an empty root (a chroot holding only the binary and a
# data dir), on a free loopback port, then stops cleanly on SIGTERM. Then the README's deploy
# commands (install, upgrade, back up, restore, uninstall) are run as written against the
# archive, in a scratch root: `sudo` runs the command, paths under /usr/local/bin, /etc and
# /var/lib are moved under that root and port 8080 to a free one, and `systemctl` does what
# systemd would with the unit (daemon-reload: `systemd-analyze verify` of the installed unit;
# start, stop, restart: the installed binary with the unit's environment and EnvironmentFile).
# A binary for another architecture (aarch64) runs under qemu's user-mode emulator
# (qemu-<arch>-static, installed from Debian when missing), in the empty root beside it; the
# deploy commands, the same for every architecture, are run with the host's archive only.
#
# Usage: bash .ci/check-dist.sh target/dist/hitcounter-<version>-<arch>-linux-musl.tar.gz
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
arch=${name%-linux-musl}
arch=${arch##*-}
version=${name#hitcounter-}
version=${version%-"$arch"-linux-musl}
# How the binary is run: itself, or under qemu for another architecture.
run=()
if [[ $arch != "$(uname -m)" ]]; then
    command -v "qemu-$arch-static" >/dev/null || apt-get install -y qemu-user-static >&2
    run=("$(command -v "qemu-$arch-static")")
fi

echo "== the archive's contents"
listed=$(tar -tzf "$archive" | sort | tr '\n' ' ')
want="$name/ $name/LICENSE $name/README.md $name/SHA256SUMS $name/hitcounter $name/hitcounter.service "
[[ $listed == "$want" ]] || fail "the archive holds '$listed', not '$want'"
(cd "$(dirname "$archive")" && sha256sum -c --quiet "$name.tar.gz.sha256") || fail "the archive's .sha256"
tar -C "$work" -xzf "$archive"
(cd "$work/$name" && sha256sum -c --quiet SHA256SUMS) || fail "SHA256SUMS"

echo "== the binary"
bin=$work/$name/hitcounter
linked=$(ldd "$bin" 2>&1 || true) # ldd exits 1 for a binary that is not dynamic at all
[[ $linked == *"not a dynamic executable"* || $linked == *"statically linked"* ]] || fail "not static: $linked"
said=$("${run[@]}" "$bin" --version)
[[ $said == "hitcounter $version ($arch-unknown-linux-musl)" ]] || fail "--version says '$said'"
echo "    $said, $(stat -c %s "$bin") bytes"

# The README's deploy commands, block by block, in a scratch root (see the top of this file).
deploy_commands() {
    echo "== the README's deploy commands, in a scratch root"
    local sys=$work/sys blocks=$work/blocks port
    port=$(free_port)
    mkdir -p "$sys/etc/systemd/system" "$sys/usr/local/bin" "$sys/usr/lib/systemd" "$blocks" "$work/deploy"
    local host_units
    for host_units in /usr/lib/systemd/system /lib/systemd/system; do
        [[ -e $host_units/sysinit.target ]] && break
    done
    cp -a "$host_units" "$sys/usr/lib/systemd/system"
    cp "$archive" "$archive.sha256" "$work/deploy/"
    awk -v dir="$blocks" '/^## / { section = ($0 == "## Deploying with systemd") }
        section && /^```sh$/ { n++; on = 1; next } on && /^```$/ { on = 0; next }
        on { print > (dir "/" n ".sh") }' "$(dirname "$0")/../README.md"
    [[ $(ls "$blocks") == $'1.sh\n2.sh\n3.sh\n4.sh\n5.sh' ]] ||
        fail "the deploy section should hold 5 sh blocks (install, upgrade, back up, restore, uninstall), not: $(ls "$blocks")"
    local base=http://127.0.0.1:$port
    (
        set -euo pipefail
        unit_pid=""
        trap '[[ -z $unit_pid ]] || kill -KILL "$unit_pid" 2>/dev/null' EXIT
        cd "$work/deploy"
        export PATH=$sys/usr/local/bin:$PATH
        sudo() { "$@"; }
        start_unit() {
            # The unit's Environment= (%S is /var/lib; a DynamicUser's state lives under private/).
            (set -a && source "$sys/etc/hitcounter/env" &&
                exec env HITCOUNTER_DATA_DIR="$sys/var/lib/private/hitcounter" "$sys/usr/local/bin/hitcounter") \
                >>"$work/unit.log" 2>&1 &
            unit_pid=$!
            for _ in $(seq 100); do
                curl -sf -o /dev/null "$base/healthz" && return 0
                sleep 0.1
            done
            fail "the installed service never answered: $(cat "$work/unit.log")"
        }
        stop_unit() {
            [[ -n $unit_pid ]] || return 0
            kill -TERM "$unit_pid"
            wait "$unit_pid" || fail "the service did not stop cleanly: $(cat "$work/unit.log")"
            unit_pid=""
        }
        systemctl() {
            case "$*" in
                daemon-reload)
                    [[ -e $sys/etc/systemd/system/hitcounter.service ]] || return 0
                    local said
                    said=$(systemd-analyze verify --root="$sys" /etc/systemd/system/hitcounter.service 2>&1) ||
                        fail "verify of the installed unit: $said"
                    [[ -z $said ]] || fail "verify of the installed unit: $said" ;;
                "enable --now hitcounter" | "start hitcounter") start_unit ;;
                "restart hitcounter") stop_unit && start_unit ;;
                "stop hitcounter" | "disable --now hitcounter") stop_unit ;;
                *) fail "the README runs 'systemctl $*', which this check does not know" ;;
            esac
        }
        count_is() {
            local got
            got=$(curl -sf "$base/nocount?url=deploy.example")
            [[ $got == "$1" ]] || fail "after $2, deploy.example counts $got, not $1"
        }
        run_block() {
            echo "    block $1: $(head -1 "$blocks/$1.sh")"
            # shellcheck disable=SC1090 # the README's own commands, paths moved under $sys
            source <(sed -e "s#/usr/local/bin#$sys/usr/local/bin#g" -e "s#/etc/#$sys/etc/#g" \
                -e "s#/var/lib/#$sys/var/lib/#g" -e "s#127.0.0.1:8080#127.0.0.1:$port#g" "$blocks/$1.sh") >/dev/null
        }
        run_block 1 # install
        curl -sf -o /dev/null "$base/count?url=deploy.example"
        run_block 2 # upgrade
        count_is 1 "the upgrade's restart"
        run_block 3 # back up
        grep -q '"url":"deploy.example","total":1' backup.jsonl || fail "the backup lacks deploy.example: $(cat backup.jsonl)"
        curl -sf -o /dev/null "$base/count?url=deploy.example"
        count_is 2 "a hit after the backup"
        run_block 4 # restore
        count_is 1 "the restore"
        run_block 5 # uninstall
        [[ -z $unit_pid ]] || fail "the service still runs after the uninstall"
        for gone in usr/local/bin/hitcounter etc/systemd/system/hitcounter.service var/lib/private/hitcounter etc/hitcounter; do
            [[ ! -e $sys/$gone ]] || fail "/$gone is still there after the uninstall"
        done
    )
    echo "    install, upgrade, back up, restore and uninstall ran as written"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if ((${#run[@]} == 0)); then deploy_commands; fi
echo "== a badge from an empty root"
root=$work/root
mkdir -p "$root/data"
cp "$bin" "$root/hitcounter"
# Inside the root, the emulator (if any) is /qemu.
inside=(/hitcounter)
if ((${#run[@]} > 0)); then
    cp "${run[0]}" "$root/qemu"
    inside=(/qemu /hitcounter)
fi
if ! chroot "$root" "${inside[@]}" --version >/dev/null 2>&1; then
    echo "check-dist: skipped the empty root: chroot is not allowed here"
    exit 0
fi
port=$(free_port)
chroot "$root" "${inside[@]}" --bind "127.0.0.1:$port" --data-dir /data >"$work/server.log" 2>&1 &
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
given=$'data\nhitcounter'
((${#run[@]} == 0)) || given+=$'\nqemu'
[[ $(ls "$root") == "$given" ]] || fail "the root holds more than it was given: $(ls "$root")"
echo "check-dist: OK: $name: contents, sums, a static binary, a badge from an empty root"
