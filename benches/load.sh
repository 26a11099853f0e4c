#!/usr/bin/env bash
# Load benchmark: hitcounter against a ceiling server (examples/ceiling.rs: warp answering a fixed
# SVG, nothing else) on the same core, with wrk on another core, endpoint by endpoint.
#
# Timings on a shared 2-core machine are noisy, so the two servers take turns and what is reported
# is the ratio ours/ceiling of each round and its median, not absolute numbers. The machine's speed
# drifts from second to second (other guests on its host), by 20% over ten seconds at times, so a
# round does not give each server its DURATION in one go: they take turns in slices of SLICE
# seconds (ours, ceiling, ours, ceiling, ...), and a round's req/s are its slices' answers over
# their time (BENCHMARKS.md gives the spread this leaves). Every counting run is also a
# correctness check: the stored count must have grown by the number of 2xx responses wrk saw,
# give or take the requests still in flight when wrk stopped.
#
# Usage: benches/load.sh                    (defaults: ROUNDS=5 DURATION=10 SLICE=1 CONNECTIONS=64)
#        ROUNDS=1 DURATION=2 benches/load.sh (a smoke run)
# ONLY="hot distinct nocount text" picks runs (all by default). FLOOR=1 measures a third server in
# every round, `ceiling --floor` (our counting route's warp filters and reply, none of our work),
# and adds a table of floor/ceiling and ours/floor. OURS_BIN measures another build of ours (an
# earlier commit's, for a baseline) against the ceiling. VS_BIN measures a second build of ours in
# every round beside the first (e.g. the static one: VS_BIN=target/x86_64-unknown-linux-musl/
# release/hitcounter) and adds a table of vs/ours and both peak RSS; the store checks are made on
# the first only. SLICE=$DURATION gives each server its round in one turn. Other settings: WARMUP
# (seconds, 3), OURS_PORT (18080), CEILING_PORT (18081), FLOOR_PORT (18082), VS_PORT (18083),
# SERVER_CPU (0), WRK_CPU (1).
# Needs wrk (apt-get install -y wrk), curl and taskset. Loopback only; everything it starts is
# stopped on exit. Exits non-zero when a correctness check fails; a missed throughput target is
# reported (MISS), not a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
SLICE=${SLICE:-1}
CONNECTIONS=${CONNECTIONS:-64}
WARMUP=${WARMUP:-3}
OURS_PORT=${OURS_PORT:-18080}
CEILING_PORT=${CEILING_PORT:-18081}
FLOOR=${FLOOR:-0}
FLOOR_PORT=${FLOOR_PORT:-18082}
VS_BIN=${VS_BIN:-}
VS_PORT=${VS_PORT:-18083}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
# shellcheck source=benches/load/preflight.sh
source benches/load/preflight.sh
preflight load.sh ROUNDS DURATION SLICE CONNECTIONS WARMUP OURS_PORT CEILING_PORT FLOOR_PORT VS_PORT SERVER_CPU WRK_CPU
if [[ -n $VS_BIN && ! -x $VS_BIN ]]; then
    echo "load.sh: VS_BIN ($VS_BIN) is not an executable file" >&2
    exit 2
fi
if ((DURATION % SLICE != 0)); then
    echo "load.sh: DURATION ($DURATION) must be a whole number of SLICEs ($SLICE)" >&2
    exit 2
fi

LUA=benches/load
OURS_BIN=${OURS_BIN:-target/release/hitcounter}
CEILING_BIN=target/release/examples/ceiling
# Distinct keys in the distinct-keys endpoint, and the ones whose counts are checked after it.
DISTINCT_KEYS=100000
SAMPLE_KEYS=(0 1 777 31337 50000 99998 99999)
CLK_TCK=$(getconf CLK_TCK)

echo "== building release binaries"
cargo build --release --bin hitcounter --example ceiling

work=$(mktemp -d "${TMPDIR:-/tmp}/hitcounter-load.XXXXXX")
ours_pid=""
ceiling_pid=""
floor_pid=""
vs_pid=""
failures=0

# Stops one server: SIGTERM (ours then flushes), SIGKILL if it is still there after 15 s.
stop() {
    local pid=$1
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop "$ours_pid"
    stop "$ceiling_pid"
    stop "$floor_pid"
    stop "$vs_pid"
    rm -rf "$work"
}
trap cleanup EXIT

# Waits (at most 5 s) until GET $2 answers 2xx, while process $1 lives.
wait_ready() {
    local pid=$1 url=$2
    for _ in $(seq 100); do
        curl -sf -o /dev/null "$url" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "load.sh: server $pid never answered $url" >&2
    exit 1
}

start_ceiling() {
    taskset -c "$SERVER_CPU" "$CEILING_BIN" --bind "127.0.0.1:$CEILING_PORT" 2>>"$work/ceiling.log" &
    ceiling_pid=$!
    wait_ready "$ceiling_pid" "http://127.0.0.1:$CEILING_PORT/"
}

start_floor() {
    taskset -c "$SERVER_CPU" "$CEILING_BIN" --bind "127.0.0.1:$FLOOR_PORT" --floor 2>>"$work/floor.log" &
    floor_pid=$!
    wait_ready "$floor_pid" "http://127.0.0.1:$FLOOR_PORT/count"
}

# Starts ours on a fresh data dir; cookies off, so every hit counts and wrk needs no cookie jar;
# no page limits (as variables, which older builds ignore), since one wrk client makes every
# distinct page on purpose. start_ours PID_VARIABLE BINARY PORT.
start_ours() {
    local -n pid=$1
    local dir
    dir=$(mktemp -d "$work/data.XXXXXX")
    env HITCOUNTER_NEW_PAGES_PER_MINUTE=0 HITCOUNTER_MAX_PAGES=0 taskset -c "$SERVER_CPU" "$2" --bind "127.0.0.1:$3" --data-dir "$dir" \
        --cookie-window-secs 0 2>>"$work/ours.log" &
    pid=$!
    wait_ready "$pid" "http://127.0.0.1:$3/nocount?url=bench.example/ready"
}

# Peak RSS of process $1, in MiB.
peak_rss() {
    awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# The stored count of page $1, as /nocount answers it (it never counts).
count_of() {
    curl -sf --max-time 5 "http://127.0.0.1:$OURS_PORT/nocount?url=$1"
}

# CPU time of process $1 (all threads, user + system), in clock ticks.
process_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# Busy and total clock ticks of the servers' core (busy: everything but idle and iowait).
core_ticks() {
    awk -v cpu="cpu$SERVER_CPU" '$1 == cpu {
        busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6 }' /proc/stat
}

# run_wrk PID SECONDS URL [SCRIPT_ARGS...]: one wrk run against server PID; sets W[requests],
# W[duration_us], W[p50_us], W[p99_us], W[non2xx], W[connect], W[read], W[write], W[timeout],
# W[started], W[ok]; and, in clock ticks, W[ticks] (the server's CPU time), W[busy] and
# W[total] (its core's busy and total time), which `add_slice` sums over a round.
declare -A W
run_wrk() {
    local pid=$1 seconds=$2 url=$3 script=$LUA/report.lua
    shift 3
    local ticks0 busy0 total0 ticks1 busy1 total1
    ticks0=$(process_ticks "$pid")
    read -r busy0 total0 < <(core_ticks)
    if (($# > 0)); then
        script=$LUA/distinct.lua
        set -- -- "$@"
    fi
    local out=$work/wrk.out
    if ! timeout $((seconds + 30)) taskset -c "$WRK_CPU" \
        wrk -t1 -c"$CONNECTIONS" -d"${seconds}s" --timeout 5s -s "$script" "$url" "$@" >"$out" 2>&1; then
        echo "load.sh: wrk failed on $url:" >&2
        cat "$out" >&2
        exit 1
    fi
    local line field
    line=$(grep '^WRK ' "$out") || {
        echo "load.sh: no WRK line from wrk on $url:" >&2
        cat "$out" >&2
        exit 1
    }
    W=()
    for field in ${line#WRK }; do
        W[${field%%=*}]=${field#*=}
    done
    ticks1=$(process_ticks "$pid")
    read -r busy1 total1 < <(core_ticks)
    W[ok]=$((W[requests] - W[non2xx]))
    W[ticks]=$((ticks1 - ticks0)) W[busy]=$((busy1 - busy0)) W[total]=$((total1 - total0))
}

# ratio A B: A / B to three decimals (0 when B is 0).
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'
}

# median VALUES...: the median (mean of the middle two for an even count).
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Checks that page $1 grew by the 2xx responses of the last run: at least that many, at most that
# many plus the requests wrk may have left in flight or lost (connections, timeouts, socket errors).
# Says nothing when it did; a failure is printed and counted.
check_count() {
    local key=$1 before=$2 after=$3
    local delta=$((after - before)) low=${W[ok]}
    local high=$((W[ok] + CONNECTIONS + W[timeout] + W[read] + W[write]))
    if ((delta < low || delta > high)); then
        echo "    check $key: +$delta stored for ${W[ok]} 2xx (allowed $low..$high): FAILED"
        failures=$((failures + 1))
    fi
}

# The distinct run hit page p<k> once per pass over the keys: floor(started / keys) times, plus one
# if k comes before where the last pass stopped. The last request of a key may have been in flight
# when wrk stopped (counted or not), so one less is accepted too. The total over all 100,000 keys
# is not read back (that would be 100,000 requests); the hot and text keys are checked exactly.
declare -a SAMPLE_BEFORE SAMPLE_AFTER # indexed by key number (sparse)
check_sample() {
    local k expected delta bad=0
    for k in "${SAMPLE_KEYS[@]}"; do
        expected=$((W[started] / DISTINCT_KEYS + (k < W[started] % DISTINCT_KEYS ? 1 : 0)))
        delta=$((SAMPLE_AFTER[k] - SAMPLE_BEFORE[k]))
        if ((delta < expected - 1 || delta > expected)); then
            echo "    check p$k: +$delta stored, expected $((expected - 1))..$expected: FAILED"
            bad=1
        fi
    done
    failures=$((failures + bad))
}

# What one of our runs must leave in the store, checked after it. check_before CHECK reads what is
# there before the run; check_after CHECK compares (see `bench` for CHECK).
check_before() {
    local k
    case $1 in
        sample) for k in "${SAMPLE_KEYS[@]}"; do SAMPLE_BEFORE[k]=$(count_of "bench.example/p$k"); done ;;
        *) CHECK_BEFORE=$(count_of "${1#*:}") ;;
    esac
}
check_after() {
    local k after
    sleep 0.3 # let the requests wrk left in flight finish
    case $1 in
        count:*) check_count "${1#*:}" "$CHECK_BEFORE" "$(count_of "${1#*:}")" ;;
        zero:*) after=$(count_of "${1#*:}")
            if ((after != CHECK_BEFORE)); then
                echo "    check ${1#*:}: $CHECK_BEFORE -> $after under /nocount: FAILED"
                failures=$((failures + 1))
            fi ;;
        sample)
            for k in "${SAMPLE_KEYS[@]}"; do SAMPLE_AFTER[k]=$(count_of "bench.example/p$k"); done
            check_sample ;;
    esac
}

# One server's round, summed over its slices: an associative array that `round_start` empties,
# `add_slice` adds the last run_wrk to, and `round_end` completes with rps, cpu_us (CPU time per
# answer, in microseconds: far less sensitive to other work on the machine than req/s), p50_us and
# p99_us (the median of the slices'), others (the percentage of the core that went to anything but
# the server: other processes, the hypervisor, interrupts) and errors (connect/read/write/timeout).
declare -A R_OURS R_CEILING R_FLOOR R_VS
round_start() {
    local -n r=$1
    r=([requests]=0 [duration_us]=0 [non2xx]=0 [ticks]=0 [busy]=0 [total]=0 [p50s]="" [p99s]=""
        [connect]=0 [read]=0 [write]=0 [timeout]=0)
}
add_slice() {
    local -n r=$1
    local field
    for field in requests duration_us non2xx ticks busy total connect read write timeout; do
        r[$field]=$((r[$field] + W[$field]))
    done
    r[p50s]+=" ${W[p50_us]}" r[p99s]+=" ${W[p99_us]}"
}
round_end() {
    local -n r=$1
    r[rps]=$(awk -v q="${r[requests]}" -v d="${r[duration_us]}" 'BEGIN { printf "%.0f", d ? q * 1e6 / d : 0 }')
    r[cpu_us]=$(awk -v t="${r[ticks]}" -v hz="$CLK_TCK" -v q="${r[requests]}" \
        'BEGIN { printf "%.2f", q ? t * 1e6 / hz / q : 0 }')
    r[others]=$(awk -v b=$((r[busy] - r[ticks])) -v t="${r[total]}" \
        'BEGIN { o = t ? 100 * b / t : 0; printf "%.0f", (o < 0 ? 0 : o) }')
    # shellcheck disable=SC2086 # the slices' values, split on purpose
    r[p50_us]=$(median ${r[p50s]}) r[p99_us]=$(median ${r[p99s]})
    r[errors]="${r[connect]}/${r[read]}/${r[write]}/${r[timeout]}"
}

# round_line ROUND NAME ARRAY: the round's line for one server.
round_line() {
    local -n r=$3
    printf '  round %s %-8s %s req/s  %s CPU us/req  p50 %s us  p99 %s us  non-2xx %s  errors c/r/w/t %s  core %s to others %s%%\n' \
        "$1" "$2:" "${r[rps]}" "${r[cpu_us]}" "${r[p50_us]}" "${r[p99_us]}" "${r[non2xx]}" "${r[errors]}" "$SERVER_CPU" "${r[others]}"
}

# bench NAME TARGET PATH CHECK [SCRIPT_ARGS...]: warm-up, then ROUNDS rounds, each of DURATION
# seconds per server in slices of SLICE seconds, the servers taking turns slice by slice.
# CHECK: "count:KEY" (the run counts KEY), "zero:KEY" (the run must not change KEY), "sample";
# it is checked after each of our slices.
declare -a TABLE FLOOR_TABLE VS_TABLE
bench() {
    local name=$1 target=$2 path=$3 check=$4
    shift 4
    local ours_url="http://127.0.0.1:$OURS_PORT$path" ceiling_url="http://127.0.0.1:$CEILING_PORT$path"
    local -a ours_rps=() ceiling_rps=() ratios=() cpu_ratios=() p50s=() p99s=() ours_cpu=()
    local -a floor_rps=() floor_ratios=() floor_cpu_ratios=() over_floor=()
    local floor_url="http://127.0.0.1:$FLOOR_PORT$path" vs_url="http://127.0.0.1:$VS_PORT$path"
    local -a vs_rps=() vs_ratios=()
    local non2xx=0 round slice slices=$((DURATION / SLICE)) key=${check#*:} checked
    echo
    echo "== $name: $path $*"
    start_ours ours_pid "$OURS_BIN" "$OURS_PORT"
    if [[ -n $VS_BIN ]]; then start_ours vs_pid "$VS_BIN" "$VS_PORT"; fi
    if [[ $check == zero:* ]]; then
        curl -sf -o /dev/null "http://127.0.0.1:$OURS_PORT/count?url=$key"
        if [[ -n $VS_BIN ]]; then curl -sf -o /dev/null "http://127.0.0.1:$VS_PORT/count?url=$key"; fi
    fi
    run_wrk "$ours_pid" "$WARMUP" "$ours_url" "$@"
    run_wrk "$ceiling_pid" "$WARMUP" "$ceiling_url" "$@"
    if ((FLOOR)); then run_wrk "$floor_pid" "$WARMUP" "$floor_url" "$@"; fi
    if [[ -n $VS_BIN ]]; then run_wrk "$vs_pid" "$WARMUP" "$vs_url" "$@"; fi
    for round in $(seq "$ROUNDS"); do
        round_start R_OURS
        round_start R_CEILING
        round_start R_FLOOR
        round_start R_VS
        checked=$failures
        for slice in $(seq "$slices"); do
            check_before "$check"
            run_wrk "$ours_pid" "$SLICE" "$ours_url" "$@"
            add_slice R_OURS
            check_after "$check"
            run_wrk "$ceiling_pid" "$SLICE" "$ceiling_url" "$@"
            add_slice R_CEILING
            if ((FLOOR)); then
                run_wrk "$floor_pid" "$SLICE" "$floor_url" "$@"
                add_slice R_FLOOR
            fi
            if [[ -n $VS_BIN ]]; then
                run_wrk "$vs_pid" "$SLICE" "$vs_url" "$@"
                add_slice R_VS
            fi
        done
        round_end R_OURS
        round_end R_CEILING
        round_line "$round" ours R_OURS
        if ((failures == checked)); then
            echo "    checks after each of the $slices runs: the store holds what was answered, ok"
        fi
        round_line "$round" ceiling R_CEILING
        local ratio cpu_ratio
        ratio=$(ratio "${R_OURS[rps]}" "${R_CEILING[rps]}")
        cpu_ratio=$(ratio "${R_CEILING[cpu_us]}" "${R_OURS[cpu_us]}")
        echo "  round $round ratio ours/ceiling: ${ratio} by req/s, ${cpu_ratio} by CPU per request"
        non2xx=$((non2xx + R_OURS[non2xx]))
        ours_rps+=("${R_OURS[rps]}") ceiling_rps+=("${R_CEILING[rps]}") ratios+=("$ratio")
        cpu_ratios+=("$cpu_ratio") p50s+=("${R_OURS[p50_us]}") p99s+=("${R_OURS[p99_us]}")
        ours_cpu+=("${R_OURS[cpu_us]}")
        if ((FLOOR)); then
            round_end R_FLOOR
            round_line "$round" floor R_FLOOR
            floor_rps+=("${R_FLOOR[rps]}")
            floor_ratios+=("$(ratio "${R_FLOOR[rps]}" "${R_CEILING[rps]}")")
            over_floor+=("$(ratio "${R_OURS[rps]}" "${R_FLOOR[rps]}")")
            floor_cpu_ratios+=("$(ratio "${R_CEILING[cpu_us]}" "${R_FLOOR[cpu_us]}")")
            echo "  round $round floor/ceiling ${floor_ratios[-1]}, ours/floor ${over_floor[-1]}"
        fi
        if [[ -n $VS_BIN ]]; then
            round_end R_VS
            round_line "$round" vs R_VS
            vs_rps+=("${R_VS[rps]}")
            vs_ratios+=("$(ratio "${R_VS[rps]}" "${R_OURS[rps]}")")
            echo "  round $round vs/ours ${vs_ratios[-1]}"
        fi
    done
    local rss
    rss=$(peak_rss "$ours_pid")
    stop "$ours_pid"
    ours_pid=""
    if [[ -n $VS_BIN ]]; then
        local vs_rss
        vs_rss=$(peak_rss "$vs_pid")
        stop "$vs_pid"
        vs_pid=""
        echo "  => vs $(median "${vs_rps[@]}") req/s, vs/ours ${vs_ratios[*]}, median $(median "${vs_ratios[@]}"), peak RSS vs ${vs_rss} MiB, ours ${rss} MiB"
    fi
    local m_ours m_ceiling m_ratio m_cpu_ratio m_cpu m_p50 m_p99 max_p99 verdict="—"
    m_ours=$(median "${ours_rps[@]}")
    m_ceiling=$(median "${ceiling_rps[@]}")
    m_ratio=$(median "${ratios[@]}")
    m_cpu_ratio=$(median "${cpu_ratios[@]}")
    m_cpu=$(median "${ours_cpu[@]}")
    m_p50=$(median "${p50s[@]}")
    m_p99=$(median "${p99s[@]}")
    max_p99=$(printf '%s\n' "${p99s[@]}" | sort -g | tail -1)
    if [[ $target != - ]]; then
        verdict=$(awk -v r="$m_ratio" -v t="$target" 'BEGIN { print (r >= t ? "PASS" : "MISS") }')
        verdict="≥ $target: $verdict"
    fi
    echo "  => ours ${m_ours} req/s, ceiling ${m_ceiling} req/s, ratios ${ratios[*]}, median ${m_ratio} ($verdict)"
    echo "     by CPU per request: ours ${m_cpu} us, ratios ${cpu_ratios[*]}, median ${m_cpu_ratio}"
    echo "     ours p50 ${m_p50} us, p99 ${m_p99} us (worst ${max_p99} us), non-2xx ${non2xx}, peak RSS ${rss} MiB"
    local label="\`$path\`"
    (($# > 0)) && label="$label × $DISTINCT_KEYS keys"
    if ((FLOOR)); then
        FLOOR_TABLE+=("| $label | $(median "${floor_rps[@]}") | $(median "${floor_ratios[@]}") (${floor_ratios[*]}) |\
 $(median "${floor_cpu_ratios[@]}") | $(median "${over_floor[@]}") (${over_floor[*]}) |")
    fi
    if [[ -n $VS_BIN ]]; then
        VS_TABLE+=("| $label | $m_ours | $(median "${vs_rps[@]}") | $(median "${vs_ratios[@]}") (${vs_ratios[*]}) | $rss | $vs_rss |")
    fi
    TABLE+=("| $label | $m_ours | $m_ceiling | $m_ratio (${ratios[*]}) | $verdict | $m_cpu_ratio | $m_cpu |\
 $(awk -v u="$m_p50" 'BEGIN { printf "%.2f", u / 1000 }') / $(awk -v u="$m_p99" 'BEGIN { printf "%.2f", u / 1000 }') |\
 $non2xx | $rss |")
}

# ONLY: the runs to make, by first word ("hot distinct nocount text"); all when unset.
wanted() { [[ -z ${ONLY:-} || " $ONLY " == *" $1 "* ]]; }

start_ceiling
if ((FLOOR)); then start_floor; fi
! wanted hot || bench "hot key" 0.85 "/count/tag.svg?url=bench.example/hot" count:bench.example/hot
! wanted distinct || bench "distinct keys" 0.75 "/count/tag.svg" sample /count/tag.svg "$DISTINCT_KEYS"
! wanted nocount || bench "nocount" 0.85 "/nocount/tag.svg?url=bench.example/hot" zero:bench.example/hot
! wanted text || bench "text" - "/count?url=bench.example/text" count:bench.example/text

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit (uncommitted changes)"
[[ $OURS_BIN == target/release/hitcounter ]] || commit="$commit, ours from $OURS_BIN"
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "== Markdown for BENCHMARKS.md"
echo
echo "$(date -u +%Y-%m-%d), commit $commit, $(nproc) × $cpu, $(uname -sr); each server pinned to"
echo "one core, wrk (\`-t1 -c$CONNECTIONS\`) on another; $ROUNDS alternating"
echo "rounds of ${DURATION} s per server, taken in turns of ${SLICE} s; req/s are medians; the ratio is ours/ceiling per round (its"
echo "median first); the CPU ratio is the median of ceiling/ours CPU time per answer, which other work"
echo "on the machine disturbs far less."
echo
echo "| endpoint | ours req/s | ceiling req/s | ratio (per round) | target | CPU ratio | ours CPU µs/req | ours p50 / p99 ms | non-2xx | peak RSS MiB |"
echo "|---|---:|---:|---|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${TABLE[@]}"
echo
if ((FLOOR)); then
    echo "The floor (\`ceiling --floor\`): our counting route's warp filters and reply, none of our work;"
    echo "its CPU ratio is the median of ceiling/floor CPU time per answer."
    echo
    echo "| endpoint | floor req/s | floor/ceiling (per round) | floor CPU ratio | ours/floor (per round) |"
    echo "|---|---:|---|---:|---|"
    printf '%s\n' "${FLOOR_TABLE[@]}"
    echo
fi
if [[ -n $VS_BIN ]]; then
    echo "vs: $VS_BIN, measured in the same rounds, in turn with ours."
    echo
    echo "| endpoint | ours req/s | vs req/s | vs/ours (per round) | ours peak RSS MiB | vs peak RSS MiB |"
    echo "|---|---:|---:|---|---:|---:|"
    printf '%s\n' "${VS_TABLE[@]}"
    echo
fi
if ((failures > 0)); then
    echo "load.sh: $failures correctness check(s) FAILED" >&2
    exit 1
fi
echo "all correctness checks passed"
