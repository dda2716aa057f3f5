#!/usr/bin/env bash
# Delta benchmark: Ferry vs bsdiff, xdelta3 -9, zstd --patch-from and HDiffPatch on pairs fetched
# from the npm registry into a cache (default target/delta-bench-cache).
# Needs: npm, tar, and the Debian packages bsdiff xdelta3 zstd time. HDiffPatch: a real `hdiffz`
# on PATH is used as is; otherwise (Debian has no package) the PyPI `hdiffpatch` package (the
# HDiffPatch library) is installed into target/hdiffpatch-venv and driven through the
# bench/hdiffpatch/{hdiffz,hpatchz} shims (its apply works in memory: its RSS is not hpatchz's).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${1:-target/delta-bench-cache}"
if [ "$(id -u)" = 0 ] && ! command -v bsdiff >/dev/null; then
  apt-get install -y -qq bsdiff xdelta3 zstd time >/dev/null
fi
if ! command -v hdiffz >/dev/null; then
  venv=target/hdiffpatch-venv
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import hdiffpatch' 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/pip" install -q hdiffpatch || echo "HDiffPatch unavailable: pip install hdiffpatch failed" >&2
  fi
  if "$venv/bin/python" -c 'import hdiffpatch' 2>/dev/null; then
    export PATH="$PWD/bench/hdiffpatch:$PWD/$venv/bin:$PATH"
  fi
fi
cargo build --release -q -p ferry-delta --examples
FERRY_DELTA_APPLY="$PWD/target/release/examples/delta_apply" exec target/release/examples/delta_bench "$cache"
