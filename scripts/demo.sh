#!/usr/bin/env bash
# `make demo` / `make demo-down`: meshop on this machine with the example apps.
#
#   up    start (or reuse) a Consul dev agent with ACLs on (default deny), the role policies and tokens
#         (`meshop acl init` / `acl token`, in the state dir, 0600) and `meshop acl sync --watch`, then a
#         controller, an agent for node "local" and a gateway (Caddy with its internal CA), each with its
#         own role's token; apply charts/examples/ with the operator token, wait until every service is
#         Ready, print `meshop status` and a request answered through Caddy. Re-runnable: what runs is
#         reused. (A Consul the demo did not start is used as it is, without ACL set-up.)
#   down  stop exactly what `up` started (by the PIDs in the state dir, never by name), remove the demo
#         node's containers and volumes, and the agent's state. Idempotent.
#
# Every process the demo starts carries MESHOP_DEMO_DIR=<state dir> in its environment; a PID is only
# ever signalled after /proc/<pid>/environ shows that marker (so a recycled PID is never hit).
# Settings (environment variables, so tests can run an isolated demo next to a real one):
#   MESHOP_DEMO_DIR          state dir: PIDs, logs, Caddy's state        [.dev/demo]
#   MESHOP_DEMO_CONSUL_PORT  Consul HTTP port (serf LAN/WAN and server use the next three)  [18500]
#   MESHOP_DEMO_HTTPS_PORT   gateway HTTPS port                           [8443]
#   MESHOP_DEMO_HTTP_PORT    gateway HTTP port (redirects to HTTPS)       [8080]
#   MESHOP_DEMO_INGRESS_PORT the node Caddy's HTTP port (the agent's --ingress-port)  [18081]
#   MESHOP_DEMO_NODE         the agent's node name                        [local]
#   MESHOP_DEMO_TIMEOUT      seconds to wait for the services to be Ready [120]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$(mkdir -p "${MESHOP_DEMO_DIR:-$ROOT/.dev/demo}" && cd "${MESHOP_DEMO_DIR:-$ROOT/.dev/demo}" && pwd)
CONSUL_PORT=${MESHOP_DEMO_CONSUL_PORT:-18500}
HTTPS_PORT=${MESHOP_DEMO_HTTPS_PORT:-8443}
HTTP_PORT=${MESHOP_DEMO_HTTP_PORT:-8080}
INGRESS_PORT=${MESHOP_DEMO_INGRESS_PORT:-18081}
NODE=${MESHOP_DEMO_NODE:-local}
TIMEOUT=${MESHOP_DEMO_TIMEOUT:-120}
EXAMPLES="$ROOT/charts/examples"
MESHOP="$ROOT/.venv/bin/meshop"
CA="$DIR/caddy/data/caddy/pki/authorities/local/root.crt"

export MESHOP_DEMO_DIR="$DIR" CONSUL_HTTP_ADDR="127.0.0.1:$CONSUL_PORT" PYTHONUNBUFFERED=1
# the demo's Consul has its own ACL tokens and no TLS: a user's settings for another Consul must not leak in
unset CONSUL_HTTP_TOKEN CONSUL_HTTP_TOKEN_FILE CONSUL_HTTP_SSL CONSUL_HTTP_SSL_VERIFY CONSUL_CACERT \
  CONSUL_CLIENT_CERT CONSUL_CLIENT_KEY MESHOP_PREFIX

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD="" PLAIN=""; fi
say() { printf '%sdemo:%s %s\n' "$BOLD" "$PLAIN" "$*"; }
fail() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

# --- processes, by PID file ----------------------------------------------------------------------------
ours() {  # ours PID: alive and started by this demo (its environment carries our marker)
  local env
  [ -n "$1" ] && env=$({ tr '\0' '\n' <"/proc/$1/environ"; } 2>/dev/null) && grep -qxF "MESHOP_DEMO_DIR=$DIR" <<<"$env"
}
pid_of() { cat "$DIR/$1.pid" 2>/dev/null || true; }
running() { ours "$(pid_of "$1")"; }

start() {  # start NAME COMMAND...: in its own session, logs in NAME.log, PID in NAME.pid
  local name=$1; shift
  if running "$name"; then say "$name already running (pid $(pid_of "$name")), reusing it"; return; fi
  ( exec setsid "$@" >>"$DIR/$name.log" 2>&1 </dev/null ) &
  echo $! >"$DIR/$name.pid"
  say "started $name (pid $!, log $DIR/$name.log)"
}

stop() {  # stop NAME: SIGTERM, then SIGKILL after 15 s; only a PID that is ours
  local name=$1 pid
  pid=$(pid_of "$name")
  if ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do ours "$pid" || break; sleep 0.1; done
    if ours "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    say "stopped $name (pid $pid)"
  fi
  rm -f "$DIR/$name.pid"
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt "$deadline" ] || return 1
    sleep 0.25
  done
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
consul_answers() { local leader; leader=$(curl -fsS "http://127.0.0.1:$CONSUL_PORT/v1/status/leader" 2>/dev/null) && [[ $leader == *:* ]]; }

MASTER="$DIR/consul-master.token"
acl_on() { [ -s "$MASTER" ]; }
token_env() {  # token_env ROLE: the variable that gives a process ROLE's token (for `start NAME env ...`)
  if acl_on; then echo "CONSUL_HTTP_TOKEN_FILE=$DIR/$1.token"; else echo "MESHOP_DEMO_ACL=off"; fi
}
acl_ready() { curl -fsS -H "X-Consul-Token: $(cat "$MASTER")" "http://127.0.0.1:$CONSUL_PORT/v1/acl/token/self" >/dev/null; }
acl_setup() {  # the role policies and one token per role, each in DIR/ROLE.token (0600); idempotent
  local role
  wait_for 30 "Consul's ACLs" acl_ready || fail "Consul's ACL system did not come up; see $DIR/consul.log"
  CONSUL_HTTP_TOKEN_FILE="$MASTER" "$MESHOP" acl init >/dev/null
  for role in controller gateway operator readonly; do
    (umask 077; CONSUL_HTTP_TOKEN_FILE="$MASTER" "$MESHOP" acl token "$role" >"$DIR/$role.token")
  done
  (umask 077; CONSUL_HTTP_TOKEN_FILE="$MASTER" "$MESHOP" acl token agent --node "$NODE" >"$DIR/agent.token")
  say "ACLs on (default deny): role tokens in $DIR/<role>.token"
}

consul_bin() {
  if [ -x "$ROOT/.dev/bin/consul" ]; then echo "$ROOT/.dev/bin/consul"; return; fi
  command -v consul || fail "no consul binary: run \`make setup\`"
}

# --- up ---------------------------------------------------------------------------------------------------
up() {
  [ -x "$MESHOP" ] || fail "$MESHOP is missing: run \`make setup\` first"
  cd "$DIR"
  if running consul; then
    say "consul already running (pid $(pid_of consul)), reusing it"
  elif consul_answers; then
    say "a Consul not started by the demo answers on 127.0.0.1:$CONSUL_PORT; using it (demo-down leaves it running)"
  else
    for port in "$CONSUL_PORT" $((CONSUL_PORT + 1)) $((CONSUL_PORT + 2)) $((CONSUL_PORT + 3)); do
      port_free "$port" || fail "port $port is in use; set MESHOP_DEMO_CONSUL_PORT to a free range"
    done
    (umask 077; cat /proc/sys/kernel/random/uuid >"$MASTER")
    local master; master=$(cat "$MASTER")
    start consul "$(consul_bin)" agent -dev -node meshop-demo -bind 127.0.0.1 -client 127.0.0.1 \
      -http-port "$CONSUL_PORT" -dns-port -1 -grpc-port -1 -serf-lan-port $((CONSUL_PORT + 1)) \
      -serf-wan-port $((CONSUL_PORT + 2)) -server-port $((CONSUL_PORT + 3)) -log-level warn \
      -hcl "acl { enabled = true, default_policy = \"deny\", tokens { master = \"$master\", agent = \"$master\" } }"
    wait_for 30 consul consul_answers || fail "Consul did not come up; see $DIR/consul.log"
  fi
  if running consul && acl_on; then
    acl_setup
    start acl-sync env CONSUL_HTTP_TOKEN_FILE="$MASTER" "$MESHOP" acl sync --watch
  else
    rm -f "$MASTER"
  fi

  start controller env "$(token_env controller)" "$MESHOP" controller run --id demo-controller --metrics-addr 127.0.0.1:0 --grace-period 10 \
    --local-cluster --trust-node-records  # one node, this host: its own record is all the demo has
  # the agent runs the node's own Caddy: the gateway proxies to it, and it to the local containers
  if ! running agent; then
    port_free "$INGRESS_PORT" || fail "port $INGRESS_PORT is in use; set MESHOP_DEMO_INGRESS_PORT"
  fi
  # the fence beside it (docs/stateful.md): a stateful service starts only while one watches
  start fence "$MESHOP" fence run --node "$NODE" --lease-dir "$DIR/fence"
  start agent env "$(token_env agent)" "$MESHOP" agent run --node "$NODE" --advertise-addr 127.0.0.1 --state-dir "$DIR/agent" \
    --lease-dir "$DIR/fence" --metrics-addr 127.0.0.1:0 --stop-grace 1 --labels demo=true \
    --caddy-dir "$DIR/node-caddy" --ingress-port "$INGRESS_PORT"
  if ! running gateway; then
    for port in "$HTTPS_PORT" "$HTTP_PORT"; do
      port_free "$port" || fail "port $port is in use; set MESHOP_DEMO_HTTPS_PORT / MESHOP_DEMO_HTTP_PORT"
    done
  fi
  start gateway env "$(token_env gateway)" "$MESHOP" gateway run --caddy-dir "$DIR/caddy" --https-port "$HTTPS_PORT" \
    --http-port "$HTTP_PORT" --tls internal --metrics-addr 127.0.0.1:0 --local-cluster

  if acl_on; then export CONSUL_HTTP_TOKEN_FILE="$DIR/operator.token"; fi  # apply, status: the operator's
  say "applying $EXAMPLES (the Node document as node \"$NODE\")"
  for file in "$EXAMPLES"/*.yaml; do
    case $(basename "$file") in node-*) continue ;; esac
    "$MESHOP" apply -f "$file"
  done
  sed "s/^  name: local$/  name: $NODE/" "$EXAMPLES/node-local.yaml" | "$MESHOP" apply -f -

  say "waiting (up to ${TIMEOUT}s) until every service is Ready"
  if ! wait_for "$TIMEOUT" ready "$MESHOP" status --check; then
    "$MESHOP" status || true
    fail "not every service became Ready within ${TIMEOUT}s; see the logs in $DIR (controller.log, agent.log, gateway.log)"
  fi
  "$MESHOP" status
  echo

  say "a request through the gateway's Caddy (TLS from its internal CA):"
  local hosts=(hello.localhost whoami.localhost)
  for host in "${hosts[@]}"; do
    wait_for 30 "$host" request "$host" / ||
      fail "https://$host:$HTTPS_PORT/ did not answer; see $DIR/gateway.log"
  done
  local curl="curl --cacert $CA --resolve"
  echo "\$ $curl hello.localhost:$HTTPS_PORT:127.0.0.1 https://hello.localhost:$HTTPS_PORT/"
  request hello.localhost / | sed '1,/^$/d'
  echo "\$ $curl whoami.localhost:$HTTPS_PORT:127.0.0.1 https://whoami.localhost:$HTTPS_PORT/cgi-bin/env   (excerpt)"
  request whoami.localhost /cgi-bin/env | grep -E '^(HTTP/|HTTP_HOST|HTTP_X_FORWARDED|SERVER_SOFTWARE)' || true
  echo
  say "meshop is running. Try:"
  echo "  export CONSUL_HTTP_ADDR=127.0.0.1:$CONSUL_PORT"
  if acl_on; then echo "  export CONSUL_HTTP_TOKEN_FILE=$DIR/operator.token   # or readonly.token (docs/security.md)"; fi
  echo "  .venv/bin/meshop status --watch          # redraws on every change"
  echo "  .venv/bin/meshop describe service hello"
  echo "  .venv/bin/meshop events --follow"
  echo "  curl --cacert $CA --resolve hello.localhost:$HTTPS_PORT:127.0.0.1 https://hello.localhost:$HTTPS_PORT/"
  echo "  make demo-down                           # stops exactly what the demo started"
}

request() {  # request HOST PATH: one HTTPS request through the gateway, verified with Caddy's internal CA
  curl -fsS -i --max-time 5 --cacert "$CA" --resolve "$1:$HTTPS_PORT:127.0.0.1" "https://$1:$HTTPS_PORT$2" | tr -d '\r'
}

# --- down -------------------------------------------------------------------------------------------------
down() {
  cd "$DIR"
  if acl_on; then export CONSUL_HTTP_TOKEN_FILE="$DIR/operator.token"; fi
  if running consul && running controller && running agent; then
    # the meshop way first: delete the documents and let the agent remove its containers
    for name in $("$MESHOP" get services -o json 2>/dev/null | "$ROOT/.venv/bin/python" -c \
      'import json,sys; print(" ".join(s["metadata"]["name"] for s in json.load(sys.stdin)))' 2>/dev/null); do
      "$MESHOP" delete service "$name" >/dev/null 2>&1 || true
    done
    wait_for 20 "containers to go" no_containers || say "some containers are still there; removing them by label"
  fi
  stop gateway
  stop_caddy "$DIR/caddy" "gateway's"
  stop agent
  stop fence
  stop_caddy "$DIR/node-caddy" "node's"
  stop controller
  stop acl-sync
  stop consul
  rm -f "$MASTER" "$DIR"/*.token  # the dev Consul forgot them
  # safety net: the demo node's containers and volumes, found by meshop's labels (nothing else is touched)
  local ids
  ids=$(docker ps -aq --filter label=meshop.managed=true --filter "label=meshop.node=$NODE" 2>/dev/null || true)
  if [ -n "$ids" ]; then docker rm -f -v $ids >/dev/null && say "removed containers of node $NODE: $(echo $ids)"; fi
  ids=$(docker volume ls -q --filter label=meshop.managed=true --filter "label=meshop.node=$NODE" 2>/dev/null || true)
  if [ -n "$ids" ]; then docker volume rm -f $ids >/dev/null && say "removed volumes of node $NODE: $(echo $ids)"; fi
  rm -rf "$DIR/agent" "$DIR/fence"
  say "down (logs kept in $DIR)"
}

stop_caddy() {  # stop_caddy DIR WHOSE: a Caddy its daemon left behind (a clean stop already stopped it)
  local pid
  pid=$(cat "$1/caddy.pid" 2>/dev/null || true)
  if ours "$pid"; then kill -TERM "$pid" 2>/dev/null || true; say "stopped the $2 caddy (pid $pid)"; fi
}

no_containers() {
  [ -z "$(docker ps -aq --filter label=meshop.managed=true --filter "label=meshop.node=$NODE")" ]
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 64 ;;
esac
