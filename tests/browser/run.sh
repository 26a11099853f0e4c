#!/usr/bin/env bash
# Runs the browser tests: the tool page and anti-refresh through a real browser's cookie jar,
# in Debian's Chromium driven by playwright-core, against the real binary on loopback ports.
# Installs what is missing (Debian's chromium, playwright-core from npm) and builds the binary.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Debian's chromium"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "== installing playwright-core"
  npm install --prefix tests/browser --no-audit --no-fund --silent
fi
cargo build --quiet --bin hitcounter
mkdir -p target/browser
HITCOUNTER_BIN="$PWD/target/debug/hitcounter" node --test --test-concurrency=1 tests/browser/
