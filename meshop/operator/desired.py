"""From KV entries to the controller's view: documents validated, records read, results memoised.

Every reader here is keyed by the KV entry's ModifyIndex, so an unchanged document is parsed once, not
on every pass (this is what keeps a pass over thousands of services fast). A document that cannot be
read is never an exception for the pass: an invalid Service carries its violations, an unreadable
record is skipped and logged once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from meshop.consul.store import Entry
from meshop.errors import DocumentError, ValidationFailed, Violation
from meshop.model import (
    PERMISSIVE_POLICY,
    NodeDoc,
    ServiceSpec,
    keys,
    load_documents,
    parse_gateway,
    parse_node,
    parse_service,
    spec_hash,
)
from meshop.model.addresses import port_problem
from meshop.model.hashing import spec_size_problem
from meshop.model.inventory import choose_address
from meshop.model.names import is_dns_label
from meshop.model.records import Assignment, NodeRecord, loads_json
from meshop.operator.nodes import NodeHealth
from meshop.operator.view import DesiredService, NodeView, RouteSpec, Workload

log = logging.getLogger(__name__)

T = TypeVar("T")


class Memo(Generic[T]):
    """``key -> (ModifyIndex, value)``: recompute a value only when its KV entry changed."""

    def __init__(self, build: Callable[[Entry], T]) -> None:
        self._build = build
        self._values: dict[str, tuple[int, T]] = {}

    def get(self, entry: Entry) -> T:
        cached = self._values.get(entry.key)
        if cached is not None and cached[0] == entry.modify_index:
            return cached[1]
        value = self._build(entry)
        self._values[entry.key] = (entry.modify_index, value)
        return value

    def keep_only(self, keys: Iterable[str]) -> None:
        wanted = set(keys)
        for key in [k for k in self._values if k not in wanted]:
            del self._values[key]

    def __len__(self) -> int:
        return len(self._values)


def workload_of(name: str, spec: ServiceSpec) -> Workload:
    return Workload(
        name=name,
        replicas=spec.replicas,
        node=spec.placement.node,
        node_selector=dict(spec.placement.node_selector),
        spread=spec.placement.spread,
        group=spec.placement.group,
        memory=spec.resources.memory or 0,
        cpus=spec.resources.cpus or 0.0,
        privileged=spec.privileged,
        host_network=spec.network_mode == "host",
        bind_mounts=any(v.host_path for v in spec.volumes),
        host_ports=frozenset(f"{p.host}/{p.protocol}" for p in spec.ports if p.host),
        rebalance=spec.placement.rebalance,
        failover=spec.failover if spec.stateful_volumes else None,
    )


def route_of(spec: ServiceSpec) -> RouteSpec | None:
    """The route, with the HTTP health path when a request through the route can reach it: same container
    port, and inside the route's path (which Caddy matches as a prefix)."""
    if spec.route is None:
        return None
    health_path = ""
    if spec.health is not None and spec.health.kind == "http" and spec.health.port == spec.route.port:
        path = spec.health.path or "/"
        health_path = path if path.startswith(spec.route.path.rstrip("/")) else ""
    return RouteSpec(spec.route.host, spec.route.path, spec.route.port, health_path)


def desired_from_spec(name: str, generation: int, spec: ServiceSpec, created: int = 0) -> DesiredService:
    route = route_of(spec)
    return DesiredService(
        name=name,
        generation=generation,
        created=created,
        workload=workload_of(name, spec),
        spec=spec.to_dict(),
        spec_hash=spec_hash(spec),
        image=spec.image,
        route=route,
    )


@dataclass(frozen=True)
class ParsedService:
    """A ``desired/services/<name>`` entry after validation: the service, or every violation."""

    name: str
    generation: int
    desired: DesiredService | None = None
    violations: tuple[Violation, ...] = ()
    created: int = 0  # the document's CreateIndex


def _one_document(entry: Entry, source: str) -> dict:
    """The single document a desired key holds (a YAML stream of several is an error, not the first)."""
    docs = load_documents(entry.value, source)
    if len(docs) != 1:
        raise ValidationFailed([Violation("", f"holds {len(docs)} documents; this key holds exactly one")], source)
    return docs[0]


def parse_service_entry(name: str, entry: Entry, prefix: str = keys.DEFAULT_PREFIX) -> ParsedService:
    """``prefix``: meshop's KV prefix, which the service's secret keys must be under."""
    source = f"desired/services/{name}"
    created = entry.create_index
    try:
        service = parse_service(_one_document(entry, source), PERMISSIVE_POLICY, source, prefix=prefix)
    except ValidationFailed as exc:
        return ParsedService(name, entry.modify_index, violations=tuple(exc.violations), created=created)
    except DocumentError as exc:
        return ParsedService(name, entry.modify_index, violations=(Violation("", str(exc)),), created=created)
    if service.name != name:
        why = f"must be {name!r}, the name in the key {source}"
        return ParsedService(name, entry.modify_index, violations=(Violation("metadata.name", why),), created=created)
    too_large = spec_size_problem(service.spec)
    if too_large:
        return ParsedService(name, entry.modify_index, violations=(Violation("spec", too_large),), created=created)
    # node policy (privileged, host network, bind mounts) is enforced by placement, node by node
    desired = desired_from_spec(name, entry.modify_index, service.spec, created)
    return ParsedService(name, entry.modify_index, desired=desired, created=created)


def with_last_valid(parsed: ParsedService, running: Mapping[str, Assignment]) -> DesiredService:
    """The DesiredService of an invalid document: its violations plus the version its assignments run."""
    base = DesiredService(parsed.name, parsed.generation, violations=parsed.violations, created=parsed.created)
    if not running:
        return base
    latest = max(running.values(), key=lambda a: (a.generation, a.node))
    try:
        spec = ServiceSpec.from_dict(dict(latest.spec))
    except DocumentError as exc:
        log.warning("service %s: cannot read its running spec back (%s)", parsed.name, exc)
        return base
    last = desired_from_spec(parsed.name, parsed.generation, spec)
    return DesiredService(
        name=parsed.name,
        generation=parsed.generation,
        created=parsed.created,
        violations=parsed.violations,
        workload=last.workload,
        spec=latest.spec,
        spec_hash=latest.spec_hash,
        image=last.image,
        route=last.route,
    )


@dataclass(frozen=True)
class ParsedNode:
    doc: NodeDoc | None
    violations: tuple[Violation, ...] = ()


def parse_node_entry(name: str, entry: Entry) -> ParsedNode:
    source = f"desired/nodes/{name}"
    try:
        doc = parse_node(_one_document(entry, source), PERMISSIVE_POLICY, source)
    except ValidationFailed as exc:
        return ParsedNode(None, tuple(exc.violations))
    except DocumentError as exc:
        return ParsedNode(None, (Violation("", str(exc)),))
    if doc.name != name:
        return ParsedNode(None, (Violation("metadata.name", f"must be {name!r}, the name in the key {source}"),))
    return ParsedNode(doc)


GatewayHosts = tuple[tuple[str, ...], str]  # (the Gateway's domains, its dashboard host or "")


def gateway_hosts(entry: Entry) -> GatewayHosts:
    """The domains and the dashboard host of the Gateway document in ``entry``; ((), "") when it is
    invalid (the gateway then keeps its previous settings and logs why; the controller flags no host
    rather than guess — the gateway still refuses a route at the dashboard host it serves)."""
    try:
        gateway = parse_gateway(_one_document(entry, keys.DESIRED_GATEWAY), keys.DESIRED_GATEWAY)
    except (ValidationFailed, DocumentError) as exc:
        log.warning("%s: %s", keys.DESIRED_GATEWAY, exc)
        return (), ""
    return tuple(gateway.domains), gateway.dashboard.host if gateway.dashboard is not None else ""


def read_record(
    factory: Callable[[Mapping], T], refused: Callable[[str], None] | None = None
) -> Callable[[Entry], T | None]:
    """A Memo builder for a JSON record; an unreadable (or refused) value is logged, passed to ``refused``
    (the controller counts it) and read as None."""

    def build(entry: Entry) -> T | None:
        try:
            return factory(loads_json(entry.value))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable record %s: %s", entry.key, exc)
            if refused is not None:
                refused(entry.key)
            return None

    return build


def node_address(
    name: str,
    record: NodeRecord | None,
    catalog_address: str = "",
    *,
    allowed: tuple[str, ...] | None = None,
    trust_records: bool = False,
    local_cluster: bool = False,
) -> str:
    """The address upstreams of ``name`` are dialled at, by the inventory rule (``model.inventory``: what
    ``inventory/nodes/<name>`` lets it claim, the record's or the catalog's address when listed there);
    "" when none may be used (logged once: its node then serves no route, everything else about it is
    unchanged). The ingress port must be 0 (no node Caddy) or a port."""
    if record is None:
        return ""
    problem = port_problem(record.ingress_port, zero_ok=True)
    if problem is not None:
        _warn_once(name, problem)
        return ""
    chosen = choose_address(
        record.address, catalog_address, allowed, trust_records=trust_records, local_cluster=local_cluster
    )
    if chosen.problem is not None:
        _warn_once(name, chosen.problem)
    return chosen.address


_warned: dict[str, str] = {}


def _warn_once(name: str, problem: str) -> None:
    if _warned.get(name) != problem:
        _warned[name] = problem
        log.warning("node %s: address for routing: %s", name, problem)


def node_view(
    name: str,
    record: NodeRecord | None,
    node_doc: ParsedNode | None,
    health: NodeHealth,
    *,
    catalog_address: str = "",
    allowed: tuple[str, ...] | None = None,
    trust_records: bool = False,
    local_cluster: bool = False,
) -> NodeView:
    """One node as placement sees it. An invalid Node document cordons its node until it is fixed."""
    doc = node_doc.doc if node_doc else None
    labels = dict(record.labels) if record else {}
    if doc is not None:
        labels.update(doc.labels)
    return NodeView(
        name=name,
        state=health.state,
        address=node_address(
            name, record, catalog_address, allowed=allowed, trust_records=trust_records, local_cluster=local_cluster
        ),
        labels=labels,
        memory=record.capacity.memory if record else 0,
        cpus=record.capacity.cpus if record else 0.0,
        cordon=bool(doc.cordon) if doc else node_doc is not None,
        drain=bool(doc.drain) if doc else False,
        allow_privileged=doc.policy.allow_privileged if doc else False,
        allow_host_network=doc.policy.allow_host_network if doc else False,
        allow_bind_mounts=doc.policy.allow_bind_mounts if doc else False,
        ingress_port=record.ingress_port if record else 0,
        unhealthy_since=health.unhealthy_at,
        problem=health.problem,
    )


def settled_moves(entries: Iterable[Entry], moves: Mapping[str, str]) -> list[str]:
    """The services of ``moves`` (service -> target node) whose every volume lock record names the target
    and is no longer ``pending``: restored there, so the one-shot move is done."""
    seen: dict[str, list[bool]] = {}
    for entry in entries:
        parts = entry.key[len(keys.LOCKS_VOLUMES) :].split("/")
        if not entry.key.startswith(keys.LOCKS_VOLUMES) or len(parts) != 2 or parts[0] not in moves:
            continue
        try:
            data = json.loads(entry.value.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            data = None
        done = isinstance(data, dict) and data.get("node") == moves[parts[0]] and data.get("pending", False) is False
        seen.setdefault(parts[0], []).append(done)
    return sorted(s for s, flags in seen.items() if flags and all(flags))


def volume_homes(entries: Iterable[Entry]) -> dict[str, str]:
    """Stateful service -> the node its volume lock's record names (``locks/volumes/<service>/<volume>``,
    written by agents: read strictly, a record that is not ``{"node": <label>, ...}`` names no one)."""
    homes: dict[str, str] = {}
    for entry in entries:
        parts = entry.key[len(keys.LOCKS_VOLUMES) :].split("/")
        if not entry.key.startswith(keys.LOCKS_VOLUMES) or len(parts) != 2:
            continue
        try:
            data = json.loads(entry.value.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        node = data.get("node") if isinstance(data, dict) else None
        if isinstance(node, str) and is_dns_label(node):
            homes.setdefault(parts[0], node)
    return homes
