#!/usr/bin/env bash
# Builds the wheels `meshop init` / `meshop node add` upload (--wheels, default .dev/wheels): meshop's own
# wheel from this checkout and the wheels of its runtime dependencies, at the versions requirements.lock
# pins. Nodes install from this folder only (pip --no-index), so they need no package index.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/.dev/wheels}
PY=${PYTHON:-$ROOT/.venv/bin/python}
mkdir -p "$OUT"
rm -f "$OUT"/meshop-*.whl
pins=$(mktemp)
trap 'rm -f "$pins"' EXIT
grep -E '^[A-Za-z0-9_.-]+==' "$ROOT/requirements.lock" | sed 's/ .*//' > "$pins"
"$PY" -m pip wheel -q --wheel-dir "$OUT" --constraint "$pins" "$ROOT" >&2
ls "$OUT"/meshop-*.whl >/dev/null
echo "$OUT"
