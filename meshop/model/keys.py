"""Where each document and record lives in KV, relative to meshop's prefix (``meshop/`` by default).

One place for the layout of ../docs/architecture.md, so no other module builds a key by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_PREFIX = "meshop"
DESIRED = "desired/"
DESIRED_SERVICES = "desired/services/"
DESIRED_NODES = "desired/nodes/"
DESIRED_GATEWAY = "desired/gateway"
NODES = "nodes/"
ASSIGNMENTS = "assignments/"
OBSERVED = "observed/"
USAGE = "usage/"  # usage/<node>: the node's and its replicas' CPU, memory, network (its agent writes)
STATUS_SERVICES = "status/services/"
STATUS_NODES = "status/nodes/"
STATUS_DNS = "status/dns"
STATUS_REBALANCE = "status/rebalance"  # the controller's rebalancing state (moves in flight, pending)
DESIRED_REBALANCE = "desired/rebalance"  # a user's `meshop rebalance` request: its ModifyIndex is the request
ROUTES = "routes/"
EVENTS = "events/"  # events/<writer>/<ns, 20 digits>-<random>: one folder per writer (its own ACL prefix)
CONTROLLER_EVENTS = "controller"  # the controller's and its DNS writer's events
AUDIT_EVENTS = "audit"  # what people did through the dashboard or the CLI: no agent can write here
GATEWAYS = "gateways/"  # gateways/<id>: the address a meshop-gateway-<id> registration may hold
INVENTORY_NODES = "inventory/nodes/"  # inventory/nodes/<node>: the addresses it may claim (operator-written)
LEADER = "leader"
FENCES = "fences/"
SECRETS = "secrets/"
LOCK_ACL_SYNC = "locks/acl-sync"  # the active `acl sync --watch` (one per prefix; management token only)
LOCKS_VOLUMES = "locks/volumes/"  # locks/volumes/<service>/<volume>: the single writer's lock (docs/stateful.md)
KEPT_VOLUMES = "volumes/kept/"  # volumes/kept/<node>/<docker volume>: a stale stateful copy kept aside
BACKUPS = "backups/"  # backups/<node>/<service>: the stateful volumes' backups (that node's agent writes)
REQUESTS = "requests/"  # requests/<service>/backup|restore|move: `meshop volume ...` (operators write, its agent reads)
DNS_SECRETS_OWNER = "meshop-dns"  # secrets/meshop-dns/: the TSIG or API key (Service names meshop-* are reserved)


def agent_events(node: str) -> str:
    """The event folder (under ``events/``) of node ``node``'s agent."""
    return f"agent-{node}"


def events_of(writer: str) -> str:
    """``events/<writer>/``: the folder one writer appends to and trims."""
    return f"{EVENTS}{writer}/"


def inventory_node(name: str) -> str:
    return f"{INVENTORY_NODES}{name}"


def gateway_claim(gateway_id: str) -> str:
    return f"{GATEWAYS}{gateway_id}"


def gateway_caddy(gateway_id: str) -> str:
    """``gateways/<id>/caddy``: whether the gateway's Caddy took its last config (under the gateway's own
    write prefix; two segments deep, so no reader of claims takes it for one)."""
    return f"{GATEWAYS}{gateway_id}/caddy"


def gateway_dashboard(gateway_id: str) -> str:
    """``gateways/<id>/dashboard``: whether the gateway publishes the dashboard host, and why not."""
    return f"{GATEWAYS}{gateway_id}/dashboard"


def resolve_prefix(flag: str | None, env: Mapping[str, str]) -> str:
    """The KV prefix: the ``--prefix`` flag, else ``MESHOP_PREFIX``, else ``meshop``; without slashes at
    the ends. (``ConsulConfig.from_env`` uses it, and ``meshop validate``, which needs nothing else.)"""
    return (flag or env.get("MESHOP_PREFIX") or DEFAULT_PREFIX).strip("/")


def desired_service(name: str) -> str:
    return f"{DESIRED_SERVICES}{name}"


def desired_node(name: str) -> str:
    return f"{DESIRED_NODES}{name}"


def node(name: str) -> str:
    return f"{NODES}{name}"


def node_assignments(node_name: str) -> str:
    return f"{ASSIGNMENTS}{node_name}/"


def assignment(node_name: str, service: str) -> str:
    return f"{ASSIGNMENTS}{node_name}/{service}"


def node_observed(node_name: str) -> str:
    return f"{OBSERVED}{node_name}/"


def observed(node_name: str, service: str) -> str:
    return f"{OBSERVED}{node_name}/{service}"


def usage(node_name: str) -> str:
    return f"{USAGE}{node_name}"


def backups(node_name: str, service: str) -> str:
    return f"{BACKUPS}{node_name}/{service}"


def backup_request(service: str) -> str:
    return f"{REQUESTS}{service}/backup"


def restore_request(service: str) -> str:
    return f"{REQUESTS}{service}/restore"


def move_request(service: str) -> str:
    return f"{REQUESTS}{service}/move"


def service_status(name: str) -> str:
    return f"{STATUS_SERVICES}{name}"


def node_status(name: str) -> str:
    return f"{STATUS_NODES}{name}"


def fence(node_name: str) -> str:
    """The node's fence: the token its agent last confirmed, to recognise the KV it talked to."""
    return f"{FENCES}{node_name}"


def route(host: str) -> str:
    return f"{ROUTES}{host}"


def volume_locks(service: str) -> str:
    """The folder of ``service``'s volume locks: an agent may take them only while it is assigned."""
    return f"{LOCKS_VOLUMES}{service}/"


def volume_lock(service: str, volume: str) -> str:
    """The lock whose holder alone may run a container mounting ``service``'s stateful ``volume``."""
    return f"{LOCKS_VOLUMES}{service}/{volume}"


def kept_volumes(node_name: str) -> str:
    return f"{KEPT_VOLUMES}{node_name}/"


def kept_volume(node_name: str, docker_volume: str) -> str:
    """The record of a stale stateful volume kept aside on ``node_name`` (never deleted by meshop)."""
    return f"{KEPT_VOLUMES}{node_name}/{docker_volume}"


def secrets(service: str) -> str:
    """The folder holding ``service``'s secrets: the only keys its ``valueFrom.consulKey`` may name."""
    return f"{SECRETS}{service}/"


def secret_folder(prefix: str, service: str) -> str:
    """``secrets(service)`` as a full Consul path under ``prefix`` (what a ``consulKey`` holds)."""
    return f"{prefix.strip('/')}/{secrets(service)}" if prefix.strip("/") else secrets(service)


def in_secret_folder(key: str, prefix: str, service: str) -> bool:
    """True when the full key ``key`` names a key inside ``service``'s own secrets folder.

    Compared segment by segment after the plain-segment check of ``names.is_consul_key`` (no '..',
    no empty segment), so ``meshop/secrets/web/../db/x`` or ``meshop/secrets/web2/x`` never pass.
    """
    folder = secret_folder(prefix, service)
    rest = key[len(folder) :] if key.startswith(folder) else ""
    return bool(rest) and all(part not in ("", ".", "..") for part in rest.split("/"))


def split(key: str, prefix: str) -> list[str]:
    """``assignments/n1/web`` with prefix ``assignments/`` -> ``["n1", "web"]``."""
    return key[len(prefix) :].split("/") if key.startswith(prefix) else []
