#!/usr/bin/env bash
# Instructions per request, ours against the ceiling (examples/ceiling.rs), counted by callgrind:
# unlike req/s on a shared machine, the counts repeat exactly for the same binary and requests.
# They cover user space only (the kernel's TCP work is the same for both servers), so the ratio
# here is lower than load.sh's ratio of req/s; use it to see where our own work goes and whether
# a change removed any.
#
# For each endpoint: start the server under callgrind on loopback, send WARM requests, zero the
# counters, send exactly N requests over 8 keep-alive connections (benches/load/client.py), dump,
# stop. Prints Ir/request for each server and the ratio ceiling/ours; and the same for the floor
# (`ceiling --floor`: our counting route's filters and reply, none of our work), so that what is
# left between the floor and ours is our own work.
#
# Usage: benches/instructions.sh            (N=20000, WARM=500; about 6 minutes)
# OURS_BIN measures another build of ours (an earlier commit's, for a baseline).
# Needs valgrind (installed with apt-get if missing), python3, curl. Everything it starts is
# stopped on exit. Keep the callgrind dumps for `callgrind_annotate --inclusive=yes` with KEEP=dir.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-20000}
WARM=${WARM:-500}
PORT=${PORT:-18140}
OURS_BIN=${OURS_BIN:-target/release/hitcounter}
command -v valgrind >/dev/null || apt-get install -y valgrind >/dev/null

echo "== building release binaries"
cargo build --release --bin hitcounter --example ceiling

work=$(mktemp -d "${TMPDIR:-/tmp}/hitcounter-instructions.XXXXXX")
cleanup() {
    # measure runs in a subshell: the server it started, if any is left, is named in $work/pid.
    [[ -s $work/pid ]] && kill -TERM "$(cat "$work/pid")" 2>/dev/null
    if [[ -n ${KEEP:-} ]]; then mkdir -p "$KEEP" && cp "$work"/*.out.* "$KEEP"/ 2>/dev/null; fi
    rm -rf "$work"
}
trap cleanup EXIT

# measure ID SERVER PATH [PRE]: prints Ir per request of SERVER (ours|floor|ceiling) answering PATH
# (PATH "distinct:P" sends P?url=bench.example/p<i>, a new page each); PRE is requested once first.
measure() {
    local name=$1 server=$2 path=$3 pre=${4:-} out="$work/$1-$2.out" first=() warm_first=()
    local -a cmd=(target/release/examples/ceiling --bind "127.0.0.1:$PORT")
    if [[ $server == floor ]]; then
        cmd+=(--floor)
    elif [[ $server == ours ]]; then
        cmd=("$OURS_BIN" --bind "127.0.0.1:$PORT" --data-dir "$work/data-$name"
            --cookie-window-secs 0 --new-pages-per-minute 0 --max-pages 0)
    fi
    if [[ $path == distinct:* ]]; then
        path=${path#distinct:} warm_first=(1000000) first=(0)
    fi
    valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}" 2>"$work/$name-$server.log" &
    local pid=$!
    echo "$pid" >"$work/pid"
    for _ in $(seq 300); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break
        sleep 0.2
    done
    [[ -n $pre ]] && curl -sf -o /dev/null "http://127.0.0.1:$PORT$pre"
    python3 benches/load/client.py "127.0.0.1:$PORT" "$path" "$WARM" 8 "${warm_first[@]}"
    callgrind_control -z "$pid" >/dev/null 2>&1
    python3 benches/load/client.py "127.0.0.1:$PORT" "$path" "$N" 8 "${first[@]}"
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill -TERM "$pid"
    wait "$pid" || true
    : >"$work/pid"
    local dump
    dump=$(ls "$out".* | head -1)
    awk -v n="$N" '/^(summary|totals):/ { printf "%d\n", $2 / n; exit }' "$dump"
}

# report ID NAME PATH [PRE]: one row of the table.
report() {
    local id=$1 name=$2 path=$3 pre=${4:-} ours floor ceiling
    ours=$(measure "$id" ours "$path" "$pre")
    floor=$(measure "$id" floor "$path")
    ceiling=$(measure "$id" ceiling "$path")
    echo "| $name | $ours | $floor | $ceiling | $(awk -v a="$ours" -v f="$floor" -v b="$ceiling" \
        'BEGIN { printf "%.3f | %.3f | %.3f", b / a, b / f, f / a }') |"
}

echo
echo "| endpoint | ours Ir/request | floor Ir/request | ceiling Ir/request | ceiling/ours | ceiling/floor | floor/ours |"
echo "|---|---:|---:|---:|---:|---:|---:|"
report hot "/count/tag.svg, one page" "/count/tag.svg?url=example.com/x"
report nocount "/nocount/tag.svg, one page" "/nocount/tag.svg?url=example.com/x" "/count?url=example.com/x"
report distinct "/count/tag.svg, a new page each" "distinct:/count/tag.svg"
