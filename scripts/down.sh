#!/usr/bin/env bash
# Stops the Docker engine that scripts/setup.sh started, by its recorded PID (never by name).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
pidfile="$ROOT/.dev/dockerd.pid"
[ -f "$pidfile" ] || { echo "down: setup started no Docker engine here"; exit 0; }
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
  kill "$pid"
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
fi
rm -f "$pidfile"
echo "down: stopped dockerd (pid $pid)"
