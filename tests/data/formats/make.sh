#!/usr/bin/env bash
# Makes the test data of one earlier data format, for tests/it/formats.rs: builds hitcounter at
# COMMIT in a throwaway worktree, and with that binary
#   1. imports 10,000 pages with two past days each (pages.jsonl, made here);
#   2. serves the dir and counts hits on a few pages over HTTP, then is killed with SIGKILL after
#      its journal has them (so the dir holds that version's journal of an unclean stop too);
#   3. exports a copy of the dir (replaying the journal): expected.jsonl, what every later
#      binary must read from it.
# Writes tests/data/formats/format-NAME.tar.gz (the dir as killed, as `data/`) and
# format-NAME.expected.jsonl. Made once per format; the commits used are in README.md beside.
#
# Usage: bash tests/data/formats/make.sh COMMIT NAME     e.g. make.sh 97de784 1
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 COMMIT NAME" >&2; exit 2; }
commit=$1 name=$2
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/hitcounter-format.XXXXXX")
pid=""
cleanup() {
    [[ -z $pid ]] || kill -KILL "$pid" 2>/dev/null || true
    git -C "$repo" worktree remove --force "$work/src" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

git -C "$repo" worktree add --detach "$work/src" "$commit" >&2
# The repo's own target dir: the dependencies are built once for every commit.
cargo build --manifest-path "$work/src/Cargo.toml" --target-dir "$repo/target/formats" --bin hitcounter >&2
bin=$repo/target/formats/debug/hitcounter

for i in $(seq 0 9999); do
    printf '{"url":"site-%d.example/post/%d","total":%d,"days":{"2026-11-20":%d,"2026-11-21":%d}}\n' \
        $((i % 97)) "$i" $((i * 7 % 1000 + 10)) $((i % 5)) $((i % 3))
done >"$work/pages.jsonl"
"$bin" import "$work/pages.jsonl" --mode replace --data-dir "$work/data" >&2

port=$((20000 + RANDOM % 20000))
"$bin" --bind "127.0.0.1:$port" --data-dir "$work/data" --cookie-window-secs 0 \
    --flush-interval-ms 100 2>"$work/server.log" &
pid=$!
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/nocount?url=ready.example" && break
    sleep 0.1
done
for page in example.com/hot example.com/hot example.com/hot site-1.example/post/1 example.com/new; do
    curl -sf -o /dev/null "http://127.0.0.1:$port/count?url=$page"
done
sleep 1 # ten flush intervals: the hits are in the journal
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
pid=""

cp -a "$work/data" "$work/copy"
"$bin" export --data-dir "$work/copy" | LC_ALL=C sort >"$here/format-$name.expected.jsonl"
tar -C "$work" --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -czf "$here/format-$name.tar.gz" data
ls -l "$here/format-$name.tar.gz" "$here/format-$name.expected.jsonl" >&2
