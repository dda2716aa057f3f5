#!/usr/bin/env bash
# Starts the local services Ferry's tests talk to, if they are down (commands from the machine doc).
set -uo pipefail
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! up 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! up 1883; then
  echo "starting Mosquitto"
  mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
fi
for i in $(seq 1 30); do up 5432 && break; sleep 1; done
up 5432 || echo "WARNING: PostgreSQL is still not reachable on 127.0.0.1:5432"
exit 0
