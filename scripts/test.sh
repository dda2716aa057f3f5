#!/usr/bin/env bash
# The test command: installs what the tests need (python-tuf for interop, moto as the
# S3-compatible server), starts moto, then runs every test of the workspace with nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import tuf, moto' 2>/dev/null; then
  echo "installing python test tools (tuf, moto[server])"
  "$PY" -m pip install --quiet --disable-pip-version-check 'tuf==7.0.1' 'moto[server]==5.2.5' \
    || echo "WARNING: pip install failed; interop and S3 tests will skip (or fail under FERRY_REQUIRE_SERVICES=1)"
fi

# Debian packages the tests drive for real: Chromium + ChromeDriver (dashboard browser test),
# faketime (the TUF client reads the clock through libc), busybox-static (sandbox test firmware).
APT_PACKAGES="chromium chromium-driver faketime busybox-static"
missing=""
for pkg in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/tmp/ferry-apt.log 2>&1) \
      || echo "WARNING: apt-get install failed (see /tmp/ferry-apt.log); tests needing$missing will skip (or fail under FERRY_REQUIRE_SERVICES=1)"
  else
    echo "WARNING: not root; install$missing by hand or the tests needing them skip (or fail under FERRY_REQUIRE_SERVICES=1)"
  fi
fi

# The QEMU sandbox backend's guest: qemu-system-x86, busybox-static and a Debian kernel
# (downloaded and unpacked, never installed into this host).
if [ "$(id -u)" = 0 ]; then
  bash scripts/fetch-qemu-guest.sh || echo "WARNING: QEMU guest not prepared; QEMU sandbox tests will skip (or fail under FERRY_REQUIRE_SERVICES=1)"
fi

export FERRY_TEST_S3_ENDPOINT=${FERRY_TEST_S3_ENDPOINT:-http://127.0.0.1:9000}
if ! (exec 3<>/dev/tcp/127.0.0.1/9000) 2>/dev/null; then
  if command -v moto_server >/dev/null 2>&1; then
    echo "starting moto S3 server on 127.0.0.1:9000"
    nohup moto_server -H 127.0.0.1 -p 9000 >/tmp/ferry-moto.log 2>&1 &
    for i in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/9000) 2>/dev/null && break; sleep 0.5; done
  fi
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
cargo nextest run --workspace --all-features --no-fail-fast "$@"
