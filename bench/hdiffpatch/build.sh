#!/usr/bin/env bash
# Builds HDiffPatch's `hdiffz` and `hpatchz` command-line programs into OUT_DIR from the
# HDiffPatch C/C++ sources (with its bundled zstd, lzma, zlib, bzip2, libdeflate, md5) that the
# PyPI `hdiffpatch` sdist ships under hdiffpatch/_c_src/ (Debian has no HDiffPatch package).
# Needs: pip, make, cc, c++. xxHash is not in the sdist, so it is built without (XXH=0).
set -euo pipefail
out="${1:?usage: build.sh OUT_DIR}"
version=2.6.0
mkdir -p "$out/src"
out="$(cd "$out" && pwd)"
sdist="$out/src/hdiffpatch-$version.tar.gz"
if [ ! -f "$sdist" ]; then
  # --no-binary: the sdist, not a wheel (pip prepares its metadata with setuptools + Cython).
  python3 -m pip download -q --no-deps --no-binary :all: "hdiffpatch==$version" -d "$out/src"
fi
tar xzf "$sdist" -C "$out/src"
src="$out/src/hdiffpatch-$version/hdiffpatch/_c_src/HDiffPatch"
make -C "$src" -j"$(nproc)" XXH=0 hdiffz hpatchz >"$out/src/make.log" 2>&1 ||
  { tail -20 "$out/src/make.log" >&2; exit 1; }
cp "$src/hdiffz" "$src/hpatchz" "$out/"
"$out/hdiffz" -v 2>&1 | head -1
