"""One read-only picture of the cluster for ``meshop status`` / ``get``: documents, records, agent health.

``read_snapshot`` makes the requests (five KV listings — ``gateways/`` for each gateway's
``<id>/caddy``, ``backups/`` for the stateful volumes' backups — the leader key, the agents' health (every
``meshop-agent-<node>``: one name per node, read from every check) and ``meshop-gateway``'s);
``Snapshot.build`` is pure, so ``--watch`` builds the same picture from its blocking-query watches.
Nothing here writes to Consul.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from meshop.client.controlplane import ControlPlane, control_plane
from meshop.client.gateways import GATEWAY_SERVICE
from meshop.client.volumes import parse_backups
from meshop.consul.config import ConsulConfig
from meshop.consul.servers import raft_servers
from meshop.consul.services import InstanceHealth, Services
from meshop.consul.store import Entry, KVStore, Listing
from meshop.model import keys
from meshop.model.names import is_dns_label
from meshop.model.records import (
    BackupRecord,
    CaddyLoad,
    DashboardPublication,
    DnsStatus,
    NodeRecord,
    NodeStatus,
    RebalanceStatus,
    ServiceStatus,
    loads_json,
)
from meshop.operator.controller import agent_instances
from meshop.operator.desired import Memo, ParsedNode, ParsedService, parse_node_entry, parse_service_entry
from meshop.operator.nodes import agent_status

# the prefixes a snapshot is built from (and ``--watch`` blocks on)
PREFIXES = (keys.DESIRED, keys.NODES, "status/", keys.GATEWAYS, keys.BACKUPS)


@dataclass(frozen=True)
class Leader:
    """Who holds the controller's leader lock, from the ``leader`` key (None in a snapshot: nobody)."""

    controller_id: str
    host: str = ""
    since: float = 0.0

    @classmethod
    def from_entry(cls, entry: Entry | None) -> Leader | None:
        if entry is None or not entry.session:
            return None
        try:
            data = loads_json(entry.value)
        except ValueError:
            return cls("unknown")
        ident, host, since = data.get("id", "unknown"), data.get("host", ""), data.get("since", 0.0)
        if not (isinstance(ident, str) and isinstance(host, str) and type(since) in (int, float)):
            return cls("unknown")  # written by a controller: another shape is not worth guessing at
        return cls(ident, host, float(since))


@dataclass(frozen=True)
class Snapshot:
    """What ``meshop status`` shows, as read at ``now``; every mapping is keyed by service or node name."""

    now: float
    services: Mapping[str, ParsedService] = field(default_factory=dict)  # desired documents, validated
    service_entries: Mapping[str, Entry] = field(default_factory=dict)
    node_docs: Mapping[str, ParsedNode] = field(default_factory=dict)
    node_doc_entries: Mapping[str, Entry] = field(default_factory=dict)
    records: Mapping[str, NodeRecord] = field(default_factory=dict)
    statuses: Mapping[str, ServiceStatus] = field(default_factory=dict)
    node_statuses: Mapping[str, NodeStatus] = field(default_factory=dict)
    agents: Mapping[str, str] = field(default_factory=dict)  # node -> worst status of its agent's checks
    leader: Leader | None = None
    dns: DnsStatus | None = None  # the leader's DNS writer (status/dns)
    gateways: tuple[InstanceHealth, ...] = ()  # meshop-gateway registrations (not followed by --watch)
    control_plane: ControlPlane | None = None  # Consul's Raft servers (None: not read, e.g. --watch)
    gateway_loads: Mapping[str, CaddyLoad] = field(default_factory=dict)  # gateways/<id>/caddy, by id
    backups: Mapping[tuple[str, str], BackupRecord] = field(default_factory=dict)  # (node, service): backups/
    dashboards: Mapping[str, DashboardPublication] = field(default_factory=dict)  # gateways/<id>/dashboard
    rebalance: RebalanceStatus | None = None  # the leader's rebalancing record (status/rebalance)

    @classmethod
    def build(
        cls,
        listings: Iterable[Listing],
        instances: Iterable[InstanceHealth],
        leader: Entry | None,
        now: float,
        memo: Parsers | None = None,
        gateways: Iterable[InstanceHealth] = (),
    ) -> Snapshot:
        """Pure: sort every entry of ``listings`` (any of PREFIXES) into the snapshot's tables."""
        memo = memo or Parsers()
        services: dict[str, ParsedService] = {}
        service_entries: dict[str, Entry] = {}
        node_docs: dict[str, ParsedNode] = {}
        node_doc_entries: dict[str, Entry] = {}
        records: dict[str, NodeRecord] = {}
        statuses: dict[str, ServiceStatus] = {}
        node_statuses: dict[str, NodeStatus] = {}
        dns: dict[str, DnsStatus] = {}
        rebalance: dict[str, RebalanceStatus] = {}
        gateway_loads: dict[str, CaddyLoad] = {}
        backup_entries: list[Entry] = []
        dashboards: dict[str, DashboardPublication] = {}
        for entry in (e for listing in listings for e in listing.entries):
            key = entry.key
            if key.startswith(keys.BACKUPS):
                backup_entries.append(entry)
            if _name(key, keys.DESIRED_SERVICES):
                name = _name(key, keys.DESIRED_SERVICES)
                services[name], service_entries[name] = memo.services.get(entry), entry
            elif _name(key, keys.DESIRED_NODES):
                name = _name(key, keys.DESIRED_NODES)
                node_docs[name], node_doc_entries[name] = memo.nodes.get(entry), entry
            elif _name(key, keys.NODES):
                _put(records, _name(key, keys.NODES), entry.value, NodeRecord.from_dict)
            elif _name(key, keys.STATUS_SERVICES):
                _put(statuses, _name(key, keys.STATUS_SERVICES), entry.value, ServiceStatus.from_dict)
            elif _name(key, keys.STATUS_NODES):
                _put(node_statuses, _name(key, keys.STATUS_NODES), entry.value, NodeStatus.from_dict)
            elif key == keys.STATUS_DNS:
                _put(dns, "dns", entry.value, DnsStatus.from_dict)
            elif key == keys.STATUS_REBALANCE:
                _put(rebalance, "rebalance", entry.value, RebalanceStatus.from_dict)
            elif (
                key.startswith(keys.GATEWAYS)
                and key.endswith(_CADDY)
                and is_dns_label(gid := key[len(keys.GATEWAYS) : -len(_CADDY)])
            ):
                _put(gateway_loads, gid, entry.value, CaddyLoad.from_dict)
            elif (
                key.startswith(keys.GATEWAYS)
                and key.endswith(_DASHBOARD)
                and is_dns_label(gid := key[len(keys.GATEWAYS) : -len(_DASHBOARD)])
            ):
                _put(dashboards, gid, entry.value, DashboardPublication.from_dict)
        return cls(
            now=now,
            services=services,
            service_entries=service_entries,
            node_docs=node_docs,
            node_doc_entries=node_doc_entries,
            records=records,
            statuses=statuses,
            node_statuses=node_statuses,
            agents=agent_status((node, i.status) for node, i in agent_instances(instances)),
            leader=Leader.from_entry(leader),
            dns=dns.get("dns"),
            gateways=tuple(gateways),
            gateway_loads=gateway_loads,
            backups=parse_backups(backup_entries),
            dashboards=dashboards,
            rebalance=rebalance.get("rebalance"),
        )


class Parsers:
    """Validated documents memoised by ModifyIndex, so ``--watch`` re-validates only what changed."""

    def __init__(self, prefix: str = keys.DEFAULT_PREFIX) -> None:
        self.services = Memo[ParsedService](
            lambda e: parse_service_entry(e.key[len(keys.DESIRED_SERVICES) :], e, prefix)
        )
        self.nodes = Memo[ParsedNode](lambda e: parse_node_entry(e.key[len(keys.DESIRED_NODES) :], e))


_CADDY = "/caddy"  # gateways/<id>/caddy (keys.gateway_caddy)
_DASHBOARD = "/dashboard"  # gateways/<id>/dashboard (keys.gateway_dashboard)


def _name(key: str, prefix: str) -> str:
    """The single path segment after ``prefix`` (``""`` when the key is not directly under it)."""
    rest = key[len(prefix) :] if key.startswith(prefix) else ""
    return rest if rest and "/" not in rest else ""


def _put(table: dict[str, Any], name: str, value: bytes, factory: Any) -> None:
    with contextlib.suppress(ValueError, KeyError, TypeError):  # unreadable: shown as missing, rewritten soon
        table[name] = factory(loads_json(value))


def check_access(store: KVStore) -> Entry | None:
    """GET the ``leader`` key. Unlike a listing, which an ACL silently filters to nothing, a GET answers
    403 to a token that may not read meshop's keys: a clear "access denied" instead of an empty table."""
    return store.get(keys.LEADER)


def read_control_plane(store: KVStore, addresses: Mapping[str, str] | None = None) -> ControlPlane:
    """The Raft leader and peers (two requests that need neither a token nor a leader)."""
    leader, peers = raft_servers(store.config, store.client)
    return control_plane(leader, peers, addresses or {})


def read_snapshot(config: ConsulConfig, clock: Any = time.time, plane: ControlPlane | None = None) -> Snapshot:
    """Read everything status needs (six requests; two more for the control plane unless given)."""
    store = KVStore(config)
    plane = plane or read_control_plane(store)
    leader = check_access(store)
    listings = [store.list(prefix) for prefix in PREFIXES]
    services = Services(config, store.client)
    _, instances = services.agents()
    _, gateways = services.instances(GATEWAY_SERVICE)
    snapshot = Snapshot.build(listings, instances, leader, clock(), Parsers(config.prefix), gateways)
    names = {name: record.address for name, record in snapshot.records.items()}
    return replace(snapshot, control_plane=control_plane(plane.leader, plane.peers, names))
