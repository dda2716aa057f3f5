#!/usr/bin/env bash
# Delta benchmark: Ferry vs bsdiff, xdelta3 -9, zstd --patch-from and HDiffPatch (when hdiffz is
# on PATH) on pairs fetched from the npm registry into a cache (default target/delta-bench-cache).
# Needs: npm, tar, and the Debian packages bsdiff xdelta3 zstd time.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${1:-target/delta-bench-cache}"
if [ "$(id -u)" = 0 ] && ! command -v bsdiff >/dev/null; then
  apt-get install -y -qq bsdiff xdelta3 zstd time >/dev/null
fi
cargo build --release -q -p ferry-delta --examples
FERRY_DELTA_APPLY="$PWD/target/release/examples/delta_apply" exec target/release/examples/delta_bench "$cache"
