#!/usr/bin/env bash
# The README's manual walkthrough, non-interactive: `ferry server` in the background, then
# `ferry agent --once` updates a directory-based program from 1.0.0 to 1.1.0.
# Usage: examples/walkthrough.sh [path/to/ferry]   (default: ferry on PATH)
set -euo pipefail
FERRY=${1:-ferry}
HERE="$(cd "$(dirname "$0")" && pwd)"
W=$(mktemp -d)
PORT=${FERRY_WALKTHROUGH_PORT:-8440}
cleanup() { [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

"$FERRY" keygen --out "$W/keys"
sed -e "s#@W@#$W#g" -e "s#8440#$PORT#g" "$HERE/server.toml" > "$W/server.toml"
"$FERRY" server --config "$W/server.toml" > "$W/server.log" 2>&1 &
SERVER_PID=$!
for i in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null || { echo "server did not start:"; cat "$W/server.log"; exit 1; }

curl -sf "http://127.0.0.1:$PORT/tuf/1.root.json" > "$W/root.json"
mkdir -p "$W/app"
printf '#!/bin/sh\necho hello from 1.0.0\n' > "$W/app/run.sh"
"$FERRY" artifact build --dir "$W/app" --component main --version 1.0.0 --key "$W/keys/release.key" --out "$W/app-1.0.0.ferry"
printf '#!/bin/sh\necho hello from 1.1.0\n' > "$W/app/run.sh"
"$FERRY" artifact build --dir "$W/app" --component main --version 1.1.0 --key "$W/keys/release.key" --out "$W/app-1.1.0.ferry"
"$FERRY" artifact verify "$W/app-1.1.0.ferry" --key "$W/keys/release.pub.json"
curl -sf -H "Authorization: Bearer operator-secret-0123456789" --data-binary @"$W/app-1.1.0.ferry" "http://127.0.0.1:$PORT/api/v1/releases" >/dev/null

sed -e "s#@W@#$W#g" -e "s#8440#$PORT#g" "$HERE/agent.toml" > "$W/agent.toml"
"$FERRY" agent --config "$W/agent.toml" bootstrap --component main --artifact "$W/app-1.0.0.ferry"
before=$(sh "$W/device/main/current/run.sh")
"$FERRY" agent --config "$W/agent.toml" --once
after=$(sh "$W/device/main/current/run.sh")
echo "before: $before"
echo "after:  $after"
reports=$(curl -sf -H "Authorization: Bearer operator-secret-0123456789" "http://127.0.0.1:$PORT/api/v1/reports")
echo "server archive: $reports"
[ "$after" = "hello from 1.1.0" ] || { echo "walkthrough FAILED: device still runs '$after'"; exit 1; }
echo "$reports" | grep -q '"outcome":"success"' || { echo "walkthrough FAILED: no success report archived"; exit 1; }
echo "walkthrough OK"
