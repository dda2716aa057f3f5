#!/usr/bin/env bash
# Delta benchmark: Ferry vs bsdiff, xdelta3 -9, zstd --patch-from and HDiffPatch on pairs fetched
# from the npm registry into a cache (default target/delta-bench-cache), plus a Cortex-M firmware
# pair (raw .bin and ELF) built from bench/firmware/.
# Needs: npm, tar, make, a C/C++ compiler, pip, and the Debian packages bsdiff xdelta3 zstd time
# gcc-arm-none-eabi libnewlib-arm-none-eabi (installed here when running as root).
# HDiffPatch: a real `hdiffz`/`hpatchz` on PATH is used as is; otherwise (Debian has no package)
# both CLIs are built from the HDiffPatch C sources shipped in the PyPI `hdiffpatch` sdist
# (bench/hdiffpatch/build.sh). Only if that fails, the PyPI package itself is driven through the
# bench/hdiffpatch/{hdiffz,hpatchz} shims (its apply works in memory: its RSS is not hpatchz's).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${1:-target/delta-bench-cache}"
mkdir -p "$cache"
need=()
for tool in bsdiff:bsdiff xdelta3:xdelta3 zstd:zstd /usr/bin/time:time \
  arm-none-eabi-gcc:gcc-arm-none-eabi /usr/lib/arm-none-eabi/lib/libc.a:libnewlib-arm-none-eabi; do
  if ! command -v "${tool%%:*}" >/dev/null && [ ! -e "${tool%%:*}" ]; then need+=("${tool#*:}"); fi
done
if [ "${#need[@]}" -gt 0 ] && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
if command -v arm-none-eabi-gcc >/dev/null; then
  if [ ! -f "$cache/firmware-2/fw.bin" ] || [ bench/firmware/fw.c -nt "$cache/firmware-2/fw.bin" ]; then
    bash bench/firmware/build.sh "$cache"
  fi
else
  echo "gcc-arm-none-eabi missing: the Cortex-M pairs are skipped" >&2
fi
if ! command -v hdiffz >/dev/null; then
  hdp="$PWD/target/hdiffpatch-cli"
  if [ ! -x "$hdp/hdiffz" ] || [ ! -x "$hdp/hpatchz" ]; then
    bash bench/hdiffpatch/build.sh "$hdp" || echo "building hdiffz/hpatchz failed" >&2
  fi
  if [ -x "$hdp/hdiffz" ] && [ -x "$hdp/hpatchz" ]; then
    export PATH="$hdp:$PATH"
  else
    venv=target/hdiffpatch-venv
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import hdiffpatch' 2>/dev/null; then
      python3 -m venv "$venv" && "$venv/bin/pip" install -q hdiffpatch==2.6.0 || echo "HDiffPatch unavailable: pip install hdiffpatch failed" >&2
    fi
    if "$venv/bin/python" -c 'import hdiffpatch' 2>/dev/null; then
      export PATH="$PWD/bench/hdiffpatch:$PWD/$venv/bin:$PATH"
    fi
  fi
fi
cargo build --release -q -p ferry-delta --examples
FERRY_DELTA_APPLY="$PWD/target/release/examples/delta_apply" exec target/release/examples/delta_bench "$cache"
