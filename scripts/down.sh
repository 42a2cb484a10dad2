#!/usr/bin/env bash
# Stops the Docker engine that scripts/setup.sh started, by its recorded PID (never by name).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
pidfile="$ROOT/.dev/dockerd.pid"
[ -f "$pidfile" ] || { echo "down: setup started no Docker engine here"; exit 0; }
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
  kill "$pid"
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then  # keep the PID file: the engine is still ours to stop
    echo "down: dockerd (pid $pid) is still stopping after 30 s; run make down again, or kill -9 $pid" >&2
    exit 1
  fi
fi
rm -f "$pidfile"
echo "down: stopped dockerd (pid $pid)"
