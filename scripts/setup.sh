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
have docker-compose || missing+=(docker-compose)
have named || [ -x /usr/sbin/named ] || missing+=(bind9)  # a real DNS server for the RFC 2136 tests
# PowerDNS Authoritative with its sqlite3 backend: a real HTTP-API DNS server for the PowerDNS provider tests
have pdns_server || [ -x /usr/sbin/pdns_server ] || missing+=(pdns-server)
[ -e /usr/lib/x86_64-linux-gnu/pdns/libgsqlite3backend.so ] || compgen -G '/usr/lib/*/pdns/libgsqlite3backend.so' >/dev/null \
  || missing+=(pdns-backend-sqlite3)
have sshd || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
if ! have docker || { ! docker_answers && ! have dockerd; }; then missing+=(docker.io); fi
have iptables || missing+=(iptables)
have debootstrap || missing+=(debootstrap)
# `systemd-analyze verify` and `security --offline` check the units meshop installs (tests/unit/bootstrap)
have systemd-analyze || missing+=(systemd)
# the shell-completion tests load meshop's zsh and fish scripts in the real shells (~19 MB installed each)
have zsh || missing+=(zsh)
have fish || missing+=(fish)  # the end-to-end install test's Debian 12 hosts (make test-install)
# the dashboard's browser tests: Debian's headless Chromium and its driver (browsers cannot be downloaded)
have chromium || missing+=(chromium)
have chromedriver || missing+=(chromium-driver)
have certutil || missing+=(libnss3-tools)  # the browser test through the gateway trusts its CA in an NSS db
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Only the programs are wanted: without a policy-rc.d, Debian would also start system services that
  # listen on every interface (named and pdns on :53, sshd, docker-registry on :5000, caddy on :80). A policy
  # that forbids starting them is put in place for the install only, and only when there is none.
  policy=/usr/sbin/policy-rc.d
  made_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# meshop setup.sh: no service starts while it installs packages\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 0755 "$policy"
    made_policy=1
  fi
  status=0
  $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || status=$?
  if [ -n "$made_policy" ]; then $SUDO rm -f "$policy"; fi
  [ "$status" -eq 0 ] || { log "apt-get failed (exit $status)"; exit "$status"; }
fi

# --- Packages from Debian 11 (bullseye), fetched without touching the system's apt configuration ----
# Debian 12 ships no Consul, and its Prometheus 2.42 is built without Consul service discovery
# ("Disable Consul SD until its Debian package is back in shape"); Debian 11 has consul 1.8.7 and
# prometheus 2.24.1 with it. apt is pointed at a private state folder that reuses the configured mirror.
BULLSEYE=""
bullseye_fetch() {  # bullseye_fetch PACKAGE -> extracted into $BULLSEYE/x-PACKAGE
  if [ -z "$BULLSEYE" ]; then
    BULLSEYE=$(mktemp -d)
    chmod 0755 "$BULLSEYE"
    trap 'rm -rf "$BULLSEYE"' EXIT
    mkdir -p "$BULLSEYE/parts" "$BULLSEYE/lists/partial" "$BULLSEYE/cache/archives/partial"
    APT_PRIVATE=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$BULLSEYE/parts"
                 -o "Dir::State::Lists=$BULLSEYE/lists" -o "Dir::Cache=$BULLSEYE/cache")
    src=/etc/apt/sources.list.d/debian.sources
    if [ -f "$src" ]; then
      awk 'BEGIN{RS="";ORS="\n\n"} NR==1' "$src" | sed 's/^Suites:.*/Suites: bullseye/' > "$BULLSEYE/parts/bullseye.sources"
    else
      mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
      printf 'Types: deb\nURIs: %s\nSuites: bullseye\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$mirror" > "$BULLSEYE/parts/bullseye.sources"
    fi
    apt-get "${APT_PRIVATE[@]}" update -q >/dev/null
  fi
  (cd "$BULLSEYE" && apt-get "${APT_PRIVATE[@]}" -o APT::Sandbox::User=root download "$1/bullseye" >/dev/null)
  dpkg -x "$BULLSEYE/$1"_*.deb "$BULLSEYE/x-$1"
}
APT_PRIVATE=()

if ! have consul && [ ! -x "$BIN/consul" ]; then
  log "fetching consul 1.8.7 from Debian 11 into .dev/bin"
  bullseye_fetch consul
  install -m 0755 "$BULLSEYE/x-consul/usr/bin/consul" "$BIN/consul"
fi

if [ ! -x "$BIN/prometheus" ]; then
  log "fetching prometheus 2.24 (with Consul service discovery) from Debian 11 into .dev/bin"
  bullseye_fetch prometheus
  install -m 0755 "$BULLSEYE/x-prometheus/usr/bin/prometheus" "$BIN/prometheus"
  install -m 0755 "$BULLSEYE/x-prometheus/usr/bin/promtool" "$BIN/promtool"
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
# Every dependency comes from requirements.lock, pinned with sha256 hashes (pip refuses any other file,
# e.g. from a tampered mirror); meshop itself is then installed editable without resolving anything.
# Regenerate the lock with scripts/lock-deps.sh after changing setup.cfg's requirements.
stamp="$ROOT/.venv/.meshop-installed"
if [ ! -f "$stamp" ] || [ "$ROOT/setup.cfg" -nt "$stamp" ] || [ "$ROOT/setup.py" -nt "$stamp" ] \
  || [ "$ROOT/requirements.lock" -nt "$stamp" ]; then
  log "installing the locked dependencies (requirements.lock, hashes checked) and meshop (editable) into .venv"
  "$ROOT/.venv/bin/python" -m pip install -q --require-hashes -r "$ROOT/requirements.lock"
  "$ROOT/.venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
  "$ROOT/.venv/bin/python" -m pip check >/dev/null || {
    "$ROOT/.venv/bin/python" -m pip check >&2
    echo "setup: requirements.lock does not satisfy setup.cfg; run scripts/lock-deps.sh" >&2
    exit 1
  }
  touch "$stamp"
fi
case ":$PATH:" in
  *":$ROOT/.venv/bin:"*) ;;
  *) log "meshop is .venv/bin/meshop and consul .dev/bin/consul: export PATH=$ROOT/.venv/bin:$BIN:\$PATH" ;;
esac
log "ready"
