#!/usr/bin/env bash
# Scale and memory checks: a flood of 1,000,000 distinct pages through /count/tag.svg, each hit
# once, while our server's RSS is sampled; then a graceful stop, and a check that every hit is
# stored; the bytes on disk per page; the cold start on that data dir; and the start after a
# kill -9 in the middle of a flood of new pages on it.
#
# Targets: peak RSS during the flood < 64 MiB, ≤ 200 B on disk per page, cold start (exec to the
# first answered /nocount) ≤ 100 ms, median of STARTS starts. A missed target is reported (MISS),
# not a failure; a lost hit or a failed restart is a failure (non-zero exit).
#
# Usage: benches/scale.sh
# Settings: KEYS (1000000), CONNECTIONS (64), FLOOD_MAX_SECS (600: the flood's time bound),
# STARTS (10), CRASHES (3), CRASH_FLOOD_SECS (20: the flood before each kill -9), PASSES (1; more floods of the same pages, one after another, show what RSS does
# under a sustained load: the target is about the first), PORT (18090), SERVER_CPU (0), WRK_CPU
# (1), OURS_BIN (another build of ours, e.g. an earlier commit's, to measure a baseline on the same
# machine).
# Needs wrk, curl, taskset. Loopback only; everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-1000000}
CONNECTIONS=${CONNECTIONS:-64}
FLOOD_MAX_SECS=${FLOOD_MAX_SECS:-600}
STARTS=${STARTS:-10}
CRASHES=${CRASHES:-3}
CRASH_FLOOD_SECS=${CRASH_FLOOD_SECS:-20}
PASSES=${PASSES:-1}
PORT=${PORT:-18090}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
# shellcheck source=benches/load/preflight.sh
source benches/load/preflight.sh
preflight scale.sh KEYS CONNECTIONS FLOOD_MAX_SECS STARTS CRASHES CRASH_FLOOD_SECS PASSES PORT SERVER_CPU WRK_CPU

OURS_BIN=${OURS_BIN:-target/release/hitcounter}
SUM_BIN=target/release/examples/sum_counts
# /nocount requests after the flood: enough that every connection's last counting request has
# been answered before wrk stops.
TAIL=$((CONNECTIONS * 20))

echo "== building release binaries"
cargo build --release --bin hitcounter --example sum_counts

work=$(mktemp -d "${TMPDIR:-/tmp}/hitcounter-scale.XXXXXX")
data=$work/data
ours_pid=""
wrk_pid=""
failures=0

# Stops process $1: SIGTERM (ours then flushes), SIGKILL if it is still there after 30 s.
# Sets STOP_STATUS to its exit status.
stop() {
    local pid=$1
    STOP_STATUS=0
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || STOP_STATUS=$?
}
cleanup() {
    stop "$wrk_pid"
    stop "$ours_pid"
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "    FAILED: $*"
    failures=$((failures + 1))
}

start_ours() {
    env HITCOUNTER_NEW_PAGES_PER_MINUTE=0 HITCOUNTER_MAX_PAGES=0 taskset -c "$SERVER_CPU" "$OURS_BIN" --bind "127.0.0.1:$PORT" --data-dir "$data" \
        --cookie-window-secs 0 2>>"$work/ours.log" &
    ours_pid=$!
}

# Waits (at most 30 s) for a 2xx from /nocount?url=$1; prints its body.
first_answer() {
    for _ in $(seq 300); do
        if curl -sf --max-time 10 "http://127.0.0.1:$PORT/nocount?url=$1"; then
            return 0
        fi
        kill -0 "$ours_pid" 2>/dev/null || break
        sleep 0.01
    done
    echo "scale.sh: the server never answered (log: $(tail -3 "$work/ours.log"))" >&2
    exit 1
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
    ok = (op == "<" ? v < t : v <= t); print (ok ? "PASS" : "MISS") }'; }

echo
echo "== flood: $KEYS distinct pages through /count/tag.svg, each once a pass, $PASSES pass(es)" \
    "(at most ${FLOOD_MAX_SECS} s each)"
start_ours
first_answer bench.example/ready >/dev/null
echo "    server started, RSS $(mib "$(awk '/^VmRSS:/ { print $2 }' "/proc/$ours_pid/status")") MiB"
declare -A W
complete=1
# One pass of the flood: wrk in the background; every 0.5 s, our RSS (into $work/rss.<pass>) and
# whether the last page of the flood has this pass's hit. Once it has, the /nocount tail lets
# every connection's last counting request finish, flood.lua stops wrk's thread, and SIGINT
# makes wrk print its summary (it would otherwise idle until -d). Sets W, flood_secs, rate and
# peak_kib (the pass's peak RSS sampled).
flood_pass() {
    local pass=$1 t0 t1="" line errors wrk_status=0
    t0=$(date +%s%N)
    timeout $((FLOOD_MAX_SECS + 60)) taskset -c "$WRK_CPU" \
        wrk -t1 -c"$CONNECTIONS" -d"${FLOOD_MAX_SECS}s" --timeout 10s -s benches/load/flood.lua \
        "http://127.0.0.1:$PORT" -- "$KEYS" "$TAIL" >"$work/wrk.out" 2>&1 &
    wrk_pid=$!
    : >"$work/rss.$pass"
    for _ in $(seq $((FLOOD_MAX_SECS * 2 + 20))); do
        awk '/^VmRSS:/ { print $2 }' "/proc/$ours_pid/status" >>"$work/rss.$pass"
        kill -0 "$wrk_pid" 2>/dev/null || break
        if [[ -z $t1 ]] &&
            [[ $(curl -sf --max-time 2 "http://127.0.0.1:$PORT/nocount?url=bench.example/f$((KEYS - 1))") == "$pass" ]]; then
            t1=$(date +%s%N)
            sleep 1 # the tail
            kill -INT "$wrk_pid" 2>/dev/null || true
        fi
        sleep 0.5
    done
    wait "$wrk_pid" || wrk_status=$?
    wrk_pid=""
    if ((wrk_status != 0)); then
        echo "scale.sh: wrk failed (status $wrk_status):" >&2
        cat "$work/wrk.out" >&2
        exit 1
    fi
    sleep 1 # the flusher's catch-up
    awk '/^VmRSS:/ { print $2 }' "/proc/$ours_pid/status" >>"$work/rss.$pass"
    line=$(grep '^WRK ' "$work/wrk.out") || {
        echo "scale.sh: no WRK line from wrk:" >&2
        cat "$work/wrk.out" >&2
        exit 1
    }
    W=()
    for field in ${line#WRK }; do W[${field%%=*}]=${field#*=}; done
    # The pass's time: from wrk's start to the poll that saw its last page counted (±0.5 s).
    flood_secs=$(awk -v a="$t0" -v b="${t1:-$(date +%s%N)}" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    rate=$(awk -v k="$KEYS" -v s="$flood_secs" 'BEGIN { printf "%.0f", k / s }')
    errors=$((W[connect] + W[read] + W[write] + W[timeout]))
    echo "    pass $pass, wrk: ${W[requests]} answers (${W[started]} requests handed out); the $KEYS pages in" \
        "${flood_secs} s, ${rate} req/s; p50 ${W[p50_us]} us, p99 ${W[p99_us]} us; non-2xx ${W[non2xx]};" \
        "socket errors c/r/w/t ${W[connect]}/${W[read]}/${W[write]}/${W[timeout]}"
    peak_kib=$(sort -n "$work/rss.$pass" | tail -1)
    echo "    pass $pass, RSS: peak sampled $(mib "$peak_kib") MiB, after it" \
        "$(mib "$(tail -1 "$work/rss.$pass")") MiB, $(wc -l <"$work/rss.$pass") samples"
    if [[ -z $t1 ]] || ((W[started] < KEYS + TAIL || W[non2xx] != 0 || errors != 0)); then
        complete=0
        fail "pass $pass of the flood did not complete cleanly (raise FLOOD_MAX_SECS, or see the errors above)"
    fi
}
flood_pass 1
# The first pass is the flood the target is about; its figures go into the table.
first_secs=$flood_secs first_rate=$rate first_p99_us=${W[p99_us]} rss_peak_kib=$peak_kib
for pass in $(seq 2 "$PASSES"); do
    flood_pass "$pass"
done
hwm_kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$ours_pid/status")
echo "    RSS: peak of the first pass $(mib "$rss_peak_kib") MiB; VmHWM $(mib "$hwm_kib") MiB"
if ((PASSES > 1)); then
    later_peak_kib=$(cat "$work"/rss.* | sort -n | tail -1)
    later_end_kib=$(tail -1 "$work/rss.$PASSES")
fi
hits=$((KEYS * PASSES))

echo
echo "== graceful stop, then every hit read back from the data dir"
stop "$ours_pid"
ours_pid=""
if ((STOP_STATUS != 0)); then
    fail "the server exited with status $STOP_STATUS on SIGTERM"
fi
grep -E 'final flush|ERROR|WARN' "$work/ours.log" | tail -3 | sed 's/^/    log: /'
disk_bytes=$(du -sb "$data" | cut -f1)
seq 0 $((KEYS - 1)) | sed 's|^|bench.example/f|' | "$SUM_BIN" "$data" >"$work/sum"
read -r keys_line <"$work/sum"
declare -A S
for field in $keys_line; do S[${field%%=*}]=${field#*=}; done
echo "    store: ${S[keys]} keys; the $KEYS flood pages: ${S[found]} found, counts sum ${S[sum]}"
if ((complete)); then
    if ((S[sum] == hits && S[found] == KEYS && S[keys] == KEYS)); then
        echo "    check: $hits counted 2xx answers, $KEYS pages stored with $PASSES hit(s) each: ok"
    else
        fail "$hits counted 2xx answers, but ${S[found]} pages stored summing to ${S[sum]} (${S[keys]} keys)"
    fi
fi
per_key=$(awk -v b="$disk_bytes" -v k="${S[keys]}" 'BEGIN { printf "%.0f", k ? b / k : 0 }')
echo "    disk: $disk_bytes bytes in the data dir, $per_key B per page"

echo
echo "== cold start on the $KEYS-page data dir: exec to the first answered /nocount, $STARTS starts"
starts_ms=()
for i in $(seq "$STARTS"); do
    # A different page each start: a hit of the flood, answered from the store, not a cache.
    page=bench.example/f$(((i * 99991) % KEYS))
    t0=$(date +%s%N)
    start_ours
    answer=$(first_answer "$page")
    t1=$(date +%s%N)
    starts_ms+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')")
    if [[ $answer != "$PASSES" ]]; then
        fail "$page answers '$answer' after restart, not $PASSES"
    fi
    stop "$ours_pid"
    ours_pid=""
    if ((STOP_STATUS != 0)); then
        fail "the server exited with status $STOP_STATUS on SIGTERM"
    fi
done
cold_ms=$(printf '%s\n' "${starts_ms[@]}" | sort -g | awk '{ v[NR] = $1 } END {
    print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
echo "    ms: ${starts_ms[*]}; median $cold_ms ms"

echo
echo "== start after kill -9 mid-flood: $CRASHES times, ${CRASH_FLOOD_SECS} s of new pages each, then exec to"
echo "   the first answered /nocount"
crash_ms=()
for i in $(seq "$CRASHES"); do
    start_ours
    first_answer bench.example/ready >/dev/null
    # New pages (bench.example/p<n>), so the crash leaves a journal and sled log to recover.
    timeout $((CRASH_FLOOD_SECS + 30)) taskset -c "$WRK_CPU" \
        wrk -t1 -c"$CONNECTIONS" -d"$((CRASH_FLOOD_SECS + 20))s" --timeout 10s -s benches/load/distinct.lua \
        "http://127.0.0.1:$PORT" -- /count/tag.svg "$KEYS" >/dev/null 2>&1 &
    wrk_pid=$!
    sleep "$CRASH_FLOOD_SECS"
    kill -KILL "$ours_pid"
    wait "$ours_pid" 2>/dev/null || true
    stop "$wrk_pid"
    wrk_pid=""
    journal_bytes=$(stat -c %s "$data/journal" 2>/dev/null || echo 0)
    t0=$(date +%s%N)
    start_ours
    answer=$(first_answer "bench.example/f$((i * 7919 % KEYS))")
    t1=$(date +%s%N)
    crash_ms+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')")
    echo "    crash $i: journal $journal_bytes B, start ${crash_ms[-1]} ms," \
        "$(grep -c 'replayed the journal' "$work/ours.log" || true) replays logged so far"
    if [[ $answer != "$PASSES" ]]; then
        fail "a flood page answers '$answer' after a kill -9, not $PASSES"
    fi
    stop "$ours_pid"
    ours_pid=""
done
crash_median_ms=$(printf '%s\n' "${crash_ms[@]}" | sort -g | awk '{ v[NR] = $1 } END {
    print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
crash_max_ms=$(printf '%s\n' "${crash_ms[@]}" | sort -g | tail -1)
echo "    ms: ${crash_ms[*]}; median $crash_median_ms ms, slowest $crash_max_ms ms"

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit (uncommitted changes)"
[[ $OURS_BIN == target/release/hitcounter ]] || commit="$commit, ours from $OURS_BIN"
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "== Markdown for BENCHMARKS.md"
echo
echo "$(date -u +%Y-%m-%d), commit $commit, $(nproc) × $cpu, $(uname -sr); server pinned to one core,"
echo "wrk (\`-t1 -c$CONNECTIONS\`) on another; default settings (cache of"
echo "150,000 pages, flush every 1 s)."
echo
echo "| check | measured | target | |"
echo "|---|---:|---|---|"
echo "| flood of $KEYS distinct pages, each once | ${first_secs} s, ${first_rate} req/s, p99 $(awk -v u="$first_p99_us" 'BEGIN { printf "%.1f", u / 1000 }') ms | | |"
echo "| peak RSS during the flood | $(mib "$rss_peak_kib") MiB | < 64 MiB | $(verdict "$(mib "$rss_peak_kib")" "<" 64) |"
if ((PASSES > 1)); then
    echo "| peak RSS over $PASSES passes of the flood (at the end) | $(mib "$later_peak_kib") MiB ($(mib "$later_end_kib") MiB) | | |"
fi
echo "| hits stored after SIGTERM and reopen | ${S[sum]} of $hits | all | $( ((complete && S[sum] == hits)) && echo PASS || echo FAIL) |"
echo "| disk per page after the final flush | $per_key B | ≤ 200 B | $(verdict "$per_key" "<=" 200) |"
echo "| cold start, exec to first answer (median of $STARTS) | $cold_ms ms | ≤ 100 ms | $(verdict "$cold_ms" "<=" 100) |"
echo "| start after kill -9 mid-flood (median, slowest of $CRASHES) | $crash_median_ms ms, $crash_max_ms ms | ≤ 3000 ms | $(verdict "$crash_max_ms" "<=" 3000) |"
echo
if ((failures > 0)); then
    echo "scale.sh: $failures check(s) FAILED" >&2
    exit 1
fi
echo "all correctness checks passed"
