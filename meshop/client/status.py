"""``meshop status``: one row per service and per node from a ``Snapshot``; pure, the clock is in the snapshot.

A service's HEALTH says whether it is fine, still converging or failed:

* ``Healthy``     every desired replica is Ready.
* ``Pending``     the controller has not rolled up this generation yet (no status, or an older one).
* ``Progressing`` agents are still starting, pulling or updating; also ``Unhealthy`` replicas while the
                  Ready condition has been False for less than the spec's ``update.healthTimeout`` (the
                  same patience the agent has before it calls an update failed).
* ``Degraded``    some replicas serve but a failure keeps the rest from it, or its route is not served
                  (``RouteConflict``: another service owns the host; ``OutsideDomains``).
* ``Failed``      nothing serves because of a failure: Invalid, NoMatchingNode, InsufficientCapacity,
                  NodeLost, ImagePullFailed, Unhealthy past the health timeout, ...
* ``Terminating`` the document is gone; the controller is removing what it placed.

A Caddy (a gateway's, ``gateways/<id>/caddy``, or a node's, ``nodes/<node>.caddy``) that refused its last
config keeps serving the previous one, so nothing else looks wrong: each is a ``caddyRefused`` entry (a
red line), and the report is not ready while any is.

A node's STATUS is live: NotReady as soon as its record is missing or its agent's health is not passing
(the operator's ``problems_of``), whatever the controller last wrote; the controller's ``status/nodes``
record adds how long, and whether its work has been moved (NotReady) or is still waiting (Suspect).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from meshop.client.cluster import Leader, Snapshot
from meshop.client.controlplane import ControlPlane
from meshop.client.gateways import GatewayRow, gateway_rows
from meshop.client.rebalance import status_line
from meshop.model.records import DnsStatus, ServiceStatus
from meshop.operator.desired import ParsedService
from meshop.operator.nodes import problems_of

HEALTHY, PENDING, PROGRESSING, DEGRADED, FAILED, TERMINATING = (
    "Healthy",
    "Pending",
    "Progressing",
    "Degraded",
    "Failed",
    "Terminating",
)
CONVERGING = frozenset({PENDING, PROGRESSING, TERMINATING})
PROGRESS_REASONS = frozenset({"Progressing", "Updating", "Pulling"})
DEFAULT_HEALTH_TIMEOUT = 60.0
ROUTE_REASONS = frozenset({"RouteConflict", "OutsideDomains"})  # the route is not served


@dataclass(frozen=True)
class ServiceRow:
    name: str
    health: str  # one of the words above
    ready: int
    desired: int
    nodes: Mapping[str, int] = field(default_factory=dict)  # node -> replicas placed
    image: str = ""
    route: str = ""
    created_at: float = 0.0  # 0: unknown
    reason: str = ""
    message: str = ""
    generation: int = 0
    observed_generation: int = 0

    @property
    def ok(self) -> bool:
        return self.health == HEALTHY

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "health": self.health,
            "converging": self.health in CONVERGING,
            "ready": self.ready,
            "desired": self.desired,
            "nodes": dict(self.nodes),
            "image": self.image,
            "route": self.route,
            "createdAt": self.created_at or None,
            "reason": self.reason,
            "message": self.message,
            "generation": self.generation,
            "observedGeneration": self.observed_generation,
        }


@dataclass(frozen=True)
class NodeRow:
    name: str
    status: str  # Ready | NotReady | Cordoned | Draining | NotReady,Cordoned | NotReady,Draining
    ready: bool
    address: str = ""
    services: tuple[str, ...] = ()
    last_seen: float | None = None  # None: unknown
    labels: Mapping[str, str] = field(default_factory=dict)
    message: str = ""
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "ready": self.ready,
            "address": self.address,
            "services": list(self.services),
            "lastSeen": self.last_seen,
            "labels": dict(self.labels),
            "message": self.message,
            "version": self.version,
        }


@dataclass(frozen=True)
class CaddyRefusal:
    """A Caddy that refused its last config: what the writer (a gateway or an agent) recorded."""

    kind: str  # gateway | node
    name: str
    message: str
    since: float  # wall time the refusals began

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "message": self.message, "since": self.since}


def caddy_refusals(snapshot: Snapshot) -> tuple[CaddyRefusal, ...]:
    """One per gateway (``gateways/<id>/caddy``) and node (its record's ``caddy``) whose Caddy refused."""
    found = [
        CaddyRefusal("gateway", gid, load.message, load.since)
        for gid, load in sorted(snapshot.gateway_loads.items())
        if not load.loaded
    ]
    found += [
        CaddyRefusal("node", name, record.caddy.message, record.caddy.since)
        for name, record in sorted(snapshot.records.items())
        if record.caddy is not None and not record.caddy.loaded
    ]
    return tuple(found)


@dataclass(frozen=True)
class DashboardUnpublished:
    """A gateway that does not serve the Gateway document's dashboard host, and why (its record)."""

    gateway: str
    host: str
    reason: str
    message: str
    since: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "gateway": self.gateway,
            "host": self.host,
            "reason": self.reason,
            "message": self.message,
            "since": self.since,
        }


def dashboards_unpublished(snapshot: Snapshot) -> tuple[DashboardUnpublished, ...]:
    """One per gateway whose ``gateways/<id>/dashboard`` says the dashboard host is not published."""
    return tuple(
        DashboardUnpublished(gid, d.host, d.reason, d.message, d.since)
        for gid, d in sorted(snapshot.dashboards.items())
        if not d.published
    )


@dataclass(frozen=True)
class StatusReport:
    now: float
    services: tuple[ServiceRow, ...]
    nodes: tuple[NodeRow, ...]
    leader: Leader | None
    gateways: tuple[GatewayRow, ...] = ()
    dns: DnsStatus | None = None
    control_plane: ControlPlane | None = None
    caddy_refused: tuple[CaddyRefusal, ...] = ()
    dashboard_unpublished: tuple[DashboardUnpublished, ...] = ()  # not in all_ready: the fleet serves
    rebalance: str | None = None  # the line saying the placement is out of balance (client/rebalance.py)

    def fingerprint(self) -> str:
        """The report without what changes by itself with time: equal fingerprints need no redraw."""
        data = self.to_dict()
        data.pop("time")
        for node in data["nodes"]:
            if node["ready"]:
                node.pop("lastSeen")
        return json.dumps(data, sort_keys=True)

    @property
    def all_ready(self) -> bool:
        """What ``--check`` tests: a controller leads, every service is Healthy and every node Ready
        (cordoned/draining count), and no Caddy refused its config. Without a leader nothing converges,
        however green the rows look."""
        return (
            self.leader is not None
            and not self.caddy_refused
            and all(row.ok for row in self.services)
            and all(row.ready for row in self.nodes)
        )

    def to_dict(self) -> dict[str, Any]:
        leader = None if self.leader is None else {"id": self.leader.controller_id, "since": self.leader.since}
        return {
            "time": self.now,
            "controller": {"leader": leader},
            "ready": self.all_ready,
            "services": [row.to_dict() for row in self.services],
            "nodes": [row.to_dict() for row in self.nodes],
            **({"gateways": [row.to_dict() for row in self.gateways]} if self.gateways else {}),
            **({"dns": self.dns.to_dict()} if self.dns else {}),
            **({"controlPlane": self.control_plane.to_dict()} if self.control_plane else {}),
            **({"caddyRefused": [r.to_dict() for r in self.caddy_refused]} if self.caddy_refused else {}),
            **(
                {"dashboardUnpublished": [d.to_dict() for d in self.dashboard_unpublished]}
                if self.dashboard_unpublished
                else {}
            ),
            **({"rebalance": self.rebalance} if self.rebalance else {}),
        }


def build_report(snapshot: Snapshot) -> StatusReport:
    return StatusReport(
        snapshot.now,
        service_rows(snapshot),
        node_rows(snapshot),
        snapshot.leader,
        gateway_rows(snapshot.gateways, snapshot.dns),
        snapshot.dns,
        snapshot.control_plane,
        caddy_refusals(snapshot),
        dashboards_unpublished(snapshot),
        status_line(snapshot.rebalance),
    )


def service_rows(snapshot: Snapshot) -> tuple[ServiceRow, ...]:
    names = sorted(set(snapshot.services) | set(snapshot.statuses))
    return tuple(service_row(name, snapshot) for name in names)


def service_row(name: str, snapshot: Snapshot) -> ServiceRow:
    parsed = snapshot.services.get(name)
    status = snapshot.statuses.get(name)
    desired = parsed.desired if parsed else None
    base = ServiceRow(
        name=name,
        health=PENDING,
        ready=status.ready_replicas if status else 0,
        desired=status.replicas if status else (desired.replicas if desired else 0),
        nodes=dict(status.placement) if status else {},
        image=(status.image if status else "") or (desired.image if desired else ""),
        route=(status.route if status else "") or _route(parsed),
        created_at=status.created_at if status else 0.0,
        generation=parsed.generation if parsed else 0,
        observed_generation=status.observed_generation if status else 0,
    )
    health, reason, message = classify(parsed, status, snapshot)
    return replace(base, health=health, reason=reason, message=message)


def classify(parsed: ParsedService | None, status: ServiceStatus | None, snapshot: Snapshot) -> tuple[str, str, str]:
    """(health, reason, message) for one service."""
    if parsed is None:
        return TERMINATING, "Deleted", "the document is deleted; the controller is removing what it placed"
    if status is None or status.observed_generation < parsed.generation:
        waiting = "no controller is leading" if snapshot.leader is None else "waiting for the controller"
        seen = f" (status is of generation {status.observed_generation})" if status else ""
        return PENDING, "Pending", f"generation {parsed.generation} not rolled up yet{seen}: {waiting}"
    valid = status.condition("Valid")
    if valid is not None and valid.status == "False":
        return FAILED, valid.reason or "Invalid", valid.message
    ready = status.condition("Ready")
    degraded = status.condition("Degraded")
    if ready is not None and ready.status == "True":
        if degraded is not None and degraded.status == "True":
            return DEGRADED, degraded.reason, degraded.message
        return HEALTHY, "", ""
    if degraded is not None and degraded.status == "True" and degraded.reason in ROUTE_REASONS:
        # not served by the gateway whatever its replicas do: say that first
        return (DEGRADED if status.ready_replicas > 0 else FAILED), degraded.reason, degraded.message
    reason = ready.reason if ready else "Unknown"
    message = ready.message if ready else "no Ready condition"
    if reason in PROGRESS_REASONS:
        return PROGRESSING, reason, message
    starting = ready is not None and snapshot.now - ready.last_transition < _health_timeout(parsed)
    if reason == "Unhealthy" and starting:
        return PROGRESSING, reason, message
    return (DEGRADED if status.ready_replicas > 0 else FAILED), reason, message


def _health_timeout(parsed: ParsedService) -> float:
    spec = parsed.desired.spec if parsed.desired else {}
    try:
        return float(spec["update"]["healthTimeout"])
    except (KeyError, TypeError, ValueError):
        return DEFAULT_HEALTH_TIMEOUT


def _route(parsed: ParsedService | None) -> str:
    route = parsed.desired.route if parsed and parsed.desired else None
    return f"{route.host}{route.path}" if route else ""


def node_rows(snapshot: Snapshot) -> tuple[NodeRow, ...]:
    placed: dict[str, list[str]] = {}
    for name, status in snapshot.statuses.items():
        for node, replicas in status.placement.items():
            if replicas > 0:
                placed.setdefault(node, []).append(name)
    known = set(snapshot.records) | set(snapshot.node_docs) | set(snapshot.node_statuses) | set(placed)
    problems = problems_of(known, snapshot.records, snapshot.agents)
    return tuple(node_row(name, problems[name], sorted(placed.get(name, [])), snapshot) for name in sorted(known))


def node_row(name: str, problem: str | None, services: list[str], snapshot: Snapshot) -> NodeRow:
    record = snapshot.records.get(name)
    parsed = snapshot.node_docs.get(name)
    verdict = snapshot.node_statuses.get(name)
    doc = parsed.doc if parsed else None
    labels = dict(record.labels) if record else {}
    labels.update(doc.labels if doc else {})
    drain = bool(doc and doc.drain)
    cordon = bool(doc and doc.cordon) or (parsed is not None and doc is None)  # an invalid document cordons
    mode = "Draining" if drain else "Cordoned" if cordon else ""
    notes = []
    if parsed is not None and doc is None:
        notes.append("invalid Node document (cordoned until fixed): " + "; ".join(str(v) for v in parsed.violations))
    if problem is None:
        status, last_seen = mode or "Ready", snapshot.now
    else:
        status = f"NotReady,{mode}" if mode else "NotReady"
        unhealthy = verdict is not None and verdict.state != "Ready"
        last_seen = verdict.since if verdict is not None and unhealthy else None
        notes.insert(0, _problem(problem, verdict.state if unhealthy and verdict else "", last_seen, snapshot.now))
    if record is not None and record.caddy is not None and not record.caddy.loaded:
        notes.append(f"its Caddy refused its config (the previous one serves): {record.caddy.message}")
    held = bool(record and record.problem)  # the agent does not trust the KV: it changes nothing (agent.md)
    if held and record is not None:
        status = f"{status},Held"
        notes.insert(0, record.problem)
    return NodeRow(
        name=name,
        status=status,
        ready=problem is None and not held,
        address=record.address if record else "",
        services=tuple(services),
        last_seen=last_seen,
        labels=labels,
        message="; ".join(notes),
        version=record.version if record else "",
    )


def _problem(problem: str, state: str, since: float | None, now: float) -> str:
    if since is None:
        return problem
    held = f"{problem} for {max(0.0, now - since):.0f}s"
    if state == "NotReady":
        return f"{held}; its work is placed elsewhere"
    return f"{held}; keeps its work until the grace period ends"
