#!/usr/bin/env bash
# Idempotent set-up for `make test` and `make demo` on Debian 12 (also run by CI on a brand-new machine).
#
# Installs only what is missing and reuses what is there: a Docker engine that already answers and a
# `consul` already on PATH are used as they are, never replaced or stopped. A Docker engine started here
# is recorded by PID in .dev/dockerd.pid (stop it with `make down`).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEV="$ROOT/.dev"
BIN="$DEV/bin"
mkdir -p "$BIN"
log() { printf 'setup: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# --- Debian packages -------------------------------------------------------------------------------
missing=()
have() { command -v "$1" >/dev/null 2>&1; }
docker_answers() { timeout 10 docker info >/dev/null 2>&1; }
have curl || missing+=(curl ca-certificates)
have ip || missing+=(iproute2)
have caddy || missing+=(caddy)
have docker-registry || missing+=(docker-registry)
have prometheus || missing+=(prometheus)
have promtool || missing+=(prometheus)
have docker-compose || missing+=(docker-compose)
have sshd || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
if ! have docker || { ! docker_answers && ! have dockerd; }; then missing+=(docker.io); fi
have iptables || missing+=(iptables)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Consul: one on PATH, or 1.8.7 from Debian 11's archive into .dev/bin ---------------------------
if ! have consul && [ ! -x "$BIN/consul" ]; then
  log "fetching consul 1.8.7 from Debian 11 (bullseye) into .dev/bin"
  d=$(mktemp -d)
  trap 'rm -rf "$d"' EXIT
  mkdir -p "$d/parts" "$d/lists/partial" "$d/cache/archives/partial"
  src=/etc/apt/sources.list.d/debian.sources
  if [ -f "$src" ]; then
    awk 'BEGIN{RS="";ORS="\n\n"} NR==1' "$src" | sed 's/^Suites:.*/Suites: bullseye/' > "$d/parts/bullseye.sources"
  else
    # Older sources.list layout: reuse the first configured Debian mirror.
    mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
    printf 'Types: deb\nURIs: %s\nSuites: bullseye\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" > "$d/parts/bullseye.sources"
  fi
  o=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$d/parts" -o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache")
  apt-get "${o[@]}" update -q >/dev/null
  (cd "$d" && apt-get "${o[@]}" -o APT::Sandbox::User=root download consul >/dev/null)
  dpkg -x "$d"/consul_*.deb "$d/x"
  install -m 0755 "$d/x/usr/bin/consul" "$BIN/consul"
fi

# --- Docker engine: use the one that answers, else start dockerd in the background -----------------
if ! docker_answers; then
  if [ -n "${DOCKER_HOST:-}" ]; then
    log "DOCKER_HOST=$DOCKER_HOST does not answer; not starting an engine of our own"; exit 1
  fi
  log "starting dockerd in the background (log: .dev/dockerd.log, pid: .dev/dockerd.pid)"
  $SUDO setsid sh -c "dockerd >'$DEV/dockerd.log' 2>&1 & echo \$! >'$DEV/dockerd.pid'"
  for _ in $(seq 1 60); do docker_answers && break; sleep 0.5; done
  docker_answers || { log "dockerd did not come up; see .dev/dockerd.log"; tail -20 "$DEV/dockerd.log" >&2; exit 1; }
fi

# --- Test image (no public registry is reachable) ----------------------------------------------------
bash "$ROOT/scripts/build-test-image.sh"

# --- Python virtualenv with the package (editable) and its test extra --------------------------------
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  log "creating .venv"
  python3 -m venv "$ROOT/.venv"
fi
stamp="$ROOT/.venv/.meshop-installed"
if [ ! -f "$stamp" ] || [ "$ROOT/setup.cfg" -nt "$stamp" ] || [ "$ROOT/setup.py" -nt "$stamp" ]; then
  log "installing meshop (editable) with its test extra into .venv"
  "$ROOT/.venv/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$ROOT/.venv/bin/python" -m pip install -q -e "$ROOT[test]"
  touch "$stamp"
fi
log "ready"
