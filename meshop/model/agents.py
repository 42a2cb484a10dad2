"""The agent's own Consul service: one name per node, so only that node's token can register it. Pure.

Consul scopes service rights by *name*, not by id or Consul node: a registration is accepted when the
token may write its service name, whatever id it carries and (``/v1/catalog/register`` with
``SkipNodeUpdate``) whatever Consul node it claims. When every agent registered the shared name
``meshop-agent``, any node's token could therefore register ``meshop-agent-<other node>`` with a
critical check, and the controller declared the other node lost (its services moved onto the
forger, whose policy then granted their secrets) and the gateway dropped it from every pool.

So node N's agent registers ``meshop-agent-N`` (id and name alike, ``agent_service``), a name the
ACL renderer grants to N's agent token alone (``meshop.model.acl``), and every reader of agent health
(controller, gateway, ``meshop status``/``watch``, the dashboard) counts an entry for N only under
that name (``own_entries``).

**Upgrade path.** Agents of an older release still register the shared ``LEGACY_AGENT_SERVICE`` with id
``meshop-agent-N``. A reader takes such an entry for N only when no ``meshop-agent-N`` entry exists at
all, so a mixed fleet keeps its old nodes Ready, and once N's new agent registered its own name a
forged shared-name entry for N is ignored. ``meshop acl sync`` keeps the shared name's write grant in
an agent policy only while that policy already has it and the node has no ``meshop-agent-N`` entry in
the catalog yet (``upgraded_agent_nodes``): an upgraded node loses it on the next sync (its agent
replaced the shared-name entry of the same id first, which needs the grant), a new node never gets it,
an old agent that restarts before its upgrade keeps it, and once every node is upgraded no token can
write the shared name again (docs/install.md,
upgrade notes; the residual until then is in docs/security.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from meshop.model.names import is_dns_label

LEGACY_AGENT_SERVICE = "meshop-agent"  # the shared name older agents register (read for the upgrade only)
AGENT_SERVICE_PREFIX = f"{LEGACY_AGENT_SERVICE}-"


def agent_service(node: str) -> str:
    """The Consul service name (and id) of ``node``'s agent: its TTL heartbeat's service."""
    return f"{AGENT_SERVICE_PREFIX}{node}"


def agent_check_id(node: str) -> str:
    return f"{agent_service(node)}:ttl"


def is_agent_service_name(name: str) -> bool:
    """Whether ``name`` may be an agent's own service (per-node, or the shared legacy name)."""
    return name == LEGACY_AGENT_SERVICE or name.startswith(AGENT_SERVICE_PREFIX)


class AgentEntry(Protocol):
    """What the readers see of a registration: a check or a service instance."""

    @property
    def service_name(self) -> str: ...

    @property
    def service_id(self) -> str: ...


E = TypeVar("E", bound=AgentEntry)


def agent_node(service_name: str, service_id: str) -> tuple[str, bool] | None:
    """(node, legacy) for an agent's own registration, None for anything else: ``meshop-agent-N`` with
    id ``meshop-agent-N`` (legacy False), or the shared ``meshop-agent`` with id ``meshop-agent-N``
    (legacy True). N must be an RFC 1123 label."""
    node = service_id.removeprefix(AGENT_SERVICE_PREFIX)
    if node == service_id or not is_dns_label(node):
        return None
    if service_name == agent_service(node):
        return node, False
    if service_name == LEGACY_AGENT_SERVICE:
        return node, True
    return None


def own_entries(entries: Iterable[E]) -> list[tuple[str, E]]:
    """(node, entry) for every entry that speaks for its node: those under ``meshop-agent-N``, and for a
    node that has none of those (an agent not upgraded yet), those under the shared legacy name."""
    per_node: list[tuple[str, E]] = []
    legacy: list[tuple[str, E]] = []
    for entry in entries:
        found = agent_node(entry.service_name, entry.service_id)
        if found is not None:
            (legacy if found[1] else per_node).append((found[0], entry))
    upgraded = {node for node, _ in per_node}
    return per_node + [(node, entry) for node, entry in legacy if node not in upgraded]


def upgraded_agent_nodes(entries: Iterable[AgentEntry]) -> frozenset[str]:
    """The nodes whose agent registered its own ``meshop-agent-N`` among ``entries``."""
    found = (agent_node(e.service_name, e.service_id) for e in entries)
    return frozenset(f[0] for f in found if f is not None and not f[1])
