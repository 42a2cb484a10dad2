"""Replica health as Consul's own checks see it: the fast, agent-independent signal routes follow. Pure.

The controller watches every check in the cluster (``/v1/health/state/any``). Two kinds matter:

* a replica's check (service id ``meshop-<node>-<service>-<replica>``, registered by the node's agent,
  run by the node's Consul agent every few seconds) says whether that copy answers;
* a Consul node's ``serfHealth`` goes critical when the machine stops answering the cluster (power
  off, network cut) — within seconds, while the replica checks it ran keep their last (passing) state.
  Every replica on such a node counts as failing, and a meshop node whose agent is registered there is
  ``dead``.

Registrations are hostile (Consul scopes service rights by name, not by node: every agent may register
the services assigned to it, with any id, on any Consul node): a replica's check counts for meshop node
N only when it runs on the Consul node N's agent (``meshop-agent-N``, a name only N may register) is
registered on, and that Consul node is one (``agent_hosts``: a second ``meshop-agent-N`` elsewhere makes
it unknown rather than anyone's choice). So a
node cannot fail (or pass) another node's replicas, nor declare it dead, from its own Consul agent.

``ReplicaHealth.state(service, node)`` is then ``dead``, ``critical`` (every registered check of that
service on that node fails), ``passing`` (at least one passes) or ``unknown`` (no check: no replica
registered with a check there, or no data). Routes drop ``dead`` and ``critical`` upstreams at once,
and may keep ``passing`` ones when only the agents are unhealthy (``routes.py``: fail open).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from meshop.model.digits import parse_uint

if TYPE_CHECKING:  # a type only: ``meshop apply``'s route check plans with this module, without py-consul
    from meshop.consul.services import CheckState

SERF_HEALTH = "serfHealth"
DEAD, CRITICAL, PASSING, UNKNOWN = "dead", "critical", "passing", "unknown"
_GOOD = ("passing", "warning")
REPLICA_MAX = 9999  # far above any replica count; a longer "number" is not a replica id


def parse_replica_id(service_id: str, service: str) -> tuple[str, int] | None:
    """``meshop-<node>-<service>-<replica>`` -> (node, replica); None for anything else."""
    head = "meshop-"
    if not service or not service_id.startswith(head):
        return None
    rest, _, replica = service_id[len(head) :].rpartition("-")
    node, sep, name = rest.rpartition(f"-{service}")
    number = parse_uint(replica, limit=REPLICA_MAX)
    if number is None or not sep or name or not node:
        return None
    return node, number


@dataclass(frozen=True)
class ReplicaHealth:
    """``replicas``: service -> node -> passing | critical; ``dead``: meshop nodes whose machine is gone."""

    replicas: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    dead: frozenset[str] = frozenset()

    def state(self, service: str, node: str) -> str:
        if node in self.dead:
            return DEAD
        return self.replicas.get(service, {}).get(node, UNKNOWN)


def agent_hosts(agents: Iterable[tuple[str, str]]) -> dict[str, str]:
    """meshop node -> the Consul node its agent is registered on, from (meshop node, Consul node) pairs;
    a meshop node registered on more than one Consul node has none (which one is true is unknowable)."""
    seen: dict[str, set[str]] = {}
    for node, host in agents:
        seen.setdefault(node, set()).add(host)
    return {node: next(iter(hosts)) for node, hosts in seen.items() if len(hosts) == 1}


def replica_health(checks: Iterable[CheckState], agent_hosts: Mapping[str, str]) -> ReplicaHealth:
    """From every check in the cluster and where each meshop node's agent is registered (meshop node ->
    Consul node): each routed replica's effective state, and the meshop nodes whose Consul node is gone."""
    checks = list(checks)
    serf_down = {c.node for c in checks if c.check_id == SERF_HEALTH and c.status == "critical"}
    found: dict[str, dict[str, str]] = {}
    for check in checks:
        parsed = parse_replica_id(check.service_id, check.service_name)
        if parsed is None:
            continue
        node = parsed[0]
        if agent_hosts.get(node) != check.node:
            continue  # not where node's agent runs: another node's registration (or a stale one)
        good = check.status in _GOOD and check.node not in serf_down
        per = found.setdefault(check.service_name, {})
        per[node] = PASSING if good or per.get(node) == PASSING else CRITICAL
    dead = frozenset(node for node, host in agent_hosts.items() if host in serf_down)
    return ReplicaHealth(found, dead)
