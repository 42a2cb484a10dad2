"""The controller's pure core: ``plan(state, now) -> Plan`` and ``diff(state, plan) -> Changes``.

``plan`` decides the whole controller-owned part of KV (assignments, service and node statuses, routes)
from the desired documents, the nodes and observed state; ``diff`` keeps only what differs from what KV
holds now, grouped so that one service's assignment changes (a move: new copies and removed ones) are
written atomically.
Re-planning after applying a plan yields no changes (a hypothesis property in the tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from meshop.model.records import (
    Assignment,
    NodeStatus,
    Observed,
    RebalanceStatus,
    RouteRecord,
    ServiceStatus,
    dumps,
)
from meshop.operator import moving
from meshop.operator.nodes import node_statuses
from meshop.operator.placement import ServicePlacement, place
from meshop.operator.replicas import ReplicaHealth
from meshop.operator.routes import build_routes, fail_open_note
from meshop.operator.status import bounded, ready_copies, roll_up
from meshop.operator.view import DesiredService, NodeView, Workload


@dataclass(frozen=True)
class ClusterState:
    """Everything a pass plans from. Assignments and observed are indexed service -> node -> record."""

    services: Mapping[str, DesiredService]
    nodes: Mapping[str, NodeView]
    assignments: Mapping[str, Mapping[str, Assignment]] = field(default_factory=dict)
    observed: Mapping[str, Mapping[str, Observed]] = field(default_factory=dict)
    statuses: Mapping[str, ServiceStatus] = field(default_factory=dict)
    routes: Mapping[str, RouteRecord] = field(default_factory=dict)
    node_statuses: Mapping[str, NodeStatus] = field(default_factory=dict)
    domains: tuple[str, ...] = ()  # the Gateway document's; empty: every host is served
    dashboard_host: str = ""  # the Gateway document's spec.dashboard.host: no service may route it
    health: ReplicaHealth = field(default_factory=ReplicaHealth)  # Consul's checks of the replicas
    rebalance: moving.RebalanceInput = field(default_factory=moving.RebalanceInput)
    homes: Mapping[str, str] = field(default_factory=dict)  # stateful service -> the node its volume lock names
    relocations: Mapping[str, str] = field(default_factory=dict)  # stateful service -> `restore --to-node` node


@dataclass(frozen=True)
class PlannedEvent:
    kind: str  # Scheduled | Rescheduled | Invalid
    object: str  # service/<name>
    message: str


@dataclass(frozen=True)
class Plan:
    """The controller-owned state as it should be."""

    assignments: Mapping[str, Mapping[str, Assignment]]
    statuses: Mapping[str, ServiceStatus]
    routes: Mapping[str, RouteRecord]
    placements: Mapping[str, ServicePlacement]
    events: Mapping[str, tuple[PlannedEvent, ...]]
    node_statuses: Mapping[str, NodeStatus] = field(default_factory=dict)
    rebalance: moving.Outcome = field(default_factory=lambda: moving.Outcome(RebalanceStatus()))


@dataclass(frozen=True)
class ServiceWrite:
    """One service's assignment changes and events: written in one transaction (never half a move)."""

    service: str
    put: tuple[Assignment, ...] = ()
    delete: tuple[str, ...] = ()  # nodes whose assignment of this service goes
    events: tuple[PlannedEvent, ...] = ()


@dataclass(frozen=True)
class Changes:
    services: tuple[ServiceWrite, ...] = ()
    put_status: tuple[ServiceStatus, ...] = ()
    delete_status: tuple[str, ...] = ()
    put_routes: tuple[RouteRecord, ...] = ()
    delete_routes: tuple[str, ...] = ()
    events: tuple[PlannedEvent, ...] = ()  # about no one service: NodeLost, NodeReady, LeaderElected
    put_node_status: tuple[NodeStatus, ...] = ()
    delete_node_status: tuple[str, ...] = ()
    put_rebalance: RebalanceStatus | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.services
            or self.put_status
            or self.delete_status
            or self.put_routes
            or self.delete_routes
            or self.events
            or self.put_node_status
            or self.delete_node_status
            or self.put_rebalance is not None
        )


def plan(state: ClusterState, now: float) -> Plan:
    valid = {n: s for n, s in state.services.items() if s.valid and s.workload is not None}
    frozen: dict[str, tuple[Workload, Mapping[str, int]]] = {}
    for name, service in state.services.items():
        if name not in valid and service.workload is not None:
            frozen[name] = (service.workload, _counts(state.assignments.get(name, {})))
    current = {name: _counts(state.assignments.get(name, {})) for name in valid}
    ready = {
        name: {
            node: ready_copies(a, state.observed.get(name, {}).get(node), state.nodes.get(node))
            for node, a in state.assignments.get(name, {}).items()
        }
        for name in valid
    }
    workloads = {
        n: replace(s.workload, home=state.homes.get(n), relocate=state.relocations.get(n))
        if s.workload.failover is not None
        else s.workload
        for n, s in valid.items()
        if s.workload
    }
    placements, outcome = _place_and_rebalance(state, workloads, current, ready, frozen, now)

    assignments: dict[str, dict[str, Assignment]] = {}
    events: dict[str, tuple[PlannedEvent, ...]] = {}
    for name, service in state.services.items():
        existing = state.assignments.get(name, {})
        if name in placements:
            assignments[name] = _assignments(service, placements[name], existing)
            events[name] = _move_events(name, outcome) or _placement_events(name, existing, placements[name])
        else:
            assignments[name] = dict(existing)  # invalid: the last valid version keeps running untouched
            events[name] = _invalid_event(service, state.statuses.get(name))
    routes, route_problems = build_routes(
        state.services,
        assignments,
        state.observed,
        state.nodes,
        state.health,
        state.routes,
        state.domains,
        reserved=state.dashboard_host,
    )
    notes = {r.service: fail_open_note(r) for r in routes.values() if r.fail_open}
    statuses = {
        name: roll_up(
            service,
            placements.get(name),
            assignments[name],
            state.observed.get(name, {}),
            state.nodes,
            state.statuses.get(name),
            now,
            route_problems.get(name),
            notes.get(name, ""),
        )
        for name, service in state.services.items()
    }
    return Plan(
        assignments={n: a for n, a in assignments.items() if a},
        statuses=statuses,
        routes=routes,
        placements=placements,
        events={n: e for n, e in events.items() if e},
        node_statuses=node_statuses(state.nodes, state.node_statuses, now),
        rebalance=outcome,
    )


def _place_and_rebalance(
    state: ClusterState,
    workloads: Mapping[str, Workload],
    current: Mapping[str, Mapping[str, int]],
    ready: Mapping[str, Mapping[str, int]],
    frozen: Mapping[str, tuple[Workload, Mapping[str, int]]],
    now: float,
) -> tuple[dict[str, ServicePlacement], moving.Outcome]:
    """Placement with the rebalancing moves in flight, then again with the moves started in this pass."""
    given = state.rebalance
    active, abandoned = moving.active_moves(given, workloads, state.nodes, current)
    routed = moving.routed_ready(ready, active, state.services, state.routes)
    moves = {name: (m.source, m.target) for name, m in active.items()}
    moves.update({m.service: (m.target, m.source) for m, _ in abandoned if m.service in workloads})  # undo it
    placements = place(workloads, state.nodes, current, routed, frozen, moves)
    done = moving.completed(active, placements)
    updating = frozenset(
        name
        for name in workloads
        if any(a.spec_hash != state.services[name].spec_hash for a in state.assignments.get(name, {}).values())
    )
    view = moving.PassView(workloads, frozen, placements, current, ready, state.nodes, updating)
    outcome = moving.decide(given, view, moving.Moves(active, done, tuple(abandoned)), now)
    if outcome.started:
        moves.update({m.service: (m.source, m.target) for m in outcome.started})
        placements = place(workloads, state.nodes, current, routed, frozen, moves)
    return placements, outcome


def _move_events(name: str, outcome: moving.Outcome) -> tuple[PlannedEvent, ...]:
    """RebalanceStarted / Rebalanced / RebalanceAbandoned for ``name``'s move in this pass, with why."""
    obj = f"service/{name}"
    found = [
        PlannedEvent("RebalanceStarted", obj, f"moving one replica {m.source} -> {m.target} (start-first): {m.reason}")
        for m in outcome.started
        if m.service == name
    ]
    found += [
        PlannedEvent("Rebalanced", obj, f"moved one replica {m.source} -> {m.target}: the new copy is Ready and routed")
        for m in outcome.done
        if m.service == name
    ]
    found += [
        PlannedEvent("RebalanceAbandoned", obj, f"move {m.source} -> {m.target} abandoned: {why}")
        for m, why in outcome.abandoned
        if m.service == name
    ]
    return tuple(found)


def diff(state: ClusterState, target: Plan) -> Changes:
    """What must be written for KV to hold ``target`` (unchanged records are skipped)."""
    writes = []
    for name in sorted(set(state.assignments) | set(target.assignments)):
        before, after = state.assignments.get(name, {}), target.assignments.get(name, {})
        put = tuple(a for node, a in sorted(after.items()) if not _same(before.get(node), a))
        delete = tuple(sorted(set(before) - set(after)))
        events = target.events.get(name, ())
        if put or delete or events:
            writes.append(ServiceWrite(name, put, delete, events))
    for name in sorted(set(target.events) - set(state.assignments) - set(target.assignments)):
        writes.append(ServiceWrite(name, events=target.events[name]))
    return Changes(
        services=tuple(writes),
        put_status=tuple(s for n, s in sorted(target.statuses.items()) if not _same(state.statuses.get(n), s)),
        delete_status=tuple(sorted(set(state.statuses) - set(target.statuses))),
        put_routes=tuple(r for h, r in sorted(target.routes.items()) if not _same(state.routes.get(h), r)),
        delete_routes=tuple(sorted(set(state.routes) - set(target.routes))),
        put_node_status=tuple(
            s for n, s in sorted(target.node_statuses.items()) if not _same(state.node_statuses.get(n), s)
        ),
        delete_node_status=tuple(sorted(set(state.node_statuses) - set(target.node_statuses))),
        put_rebalance=None if _same(state.rebalance.status, target.rebalance.status) else target.rebalance.status,
    )


def apply(state: ClusterState, changes: Changes) -> ClusterState:
    """``state`` with ``changes`` written (what the next pass would read back); for tests and the cache."""
    assignments = {name: dict(nodes) for name, nodes in state.assignments.items()}
    for write in changes.services:
        nodes = assignments.setdefault(write.service, {})
        for node in write.delete:
            nodes.pop(node, None)
        for a in write.put:
            nodes[a.node] = a
        if not nodes:
            del assignments[write.service]
    statuses = dict(state.statuses)
    statuses.update({s.name: s for s in changes.put_status})
    for name in changes.delete_status:
        statuses.pop(name, None)
    routes = dict(state.routes)
    routes.update({r.host: r for r in changes.put_routes})
    for host in changes.delete_routes:
        routes.pop(host, None)
    node_statuses = {**state.node_statuses, **{s.name: s for s in changes.put_node_status}}
    for name in changes.delete_node_status:
        node_statuses.pop(name, None)
    rebalance = state.rebalance
    if changes.put_rebalance is not None:
        rebalance = replace(rebalance, status=changes.put_rebalance)
    return replace(
        state,
        assignments=assignments,
        statuses=statuses,
        routes=routes,
        node_statuses=node_statuses,
        rebalance=rebalance,
    )


def _same(before: object | None, after: object) -> bool:
    return before is not None and (before == after or dumps(before) == dumps(after))


def _counts(assignments: Mapping[str, Assignment]) -> dict[str, int]:
    return {node: a.replicas for node, a in assignments.items() if a.replicas > 0}


def _assignments(
    service: DesiredService, placement: ServicePlacement, existing: Mapping[str, Assignment]
) -> dict[str, Assignment]:
    result = {}
    for node, replicas in placement.nodes.items():
        old = existing.get(node)
        if old is not None and node in placement.moving and node not in placement.placed:
            result[node] = old if old.replicas == replicas else replace(old, replicas=replicas)  # start-first
            continue
        result[node] = Assignment(
            service=service.name,
            node=node,
            replicas=replicas,
            generation=service.generation,
            spec_hash=service.spec_hash,
            spec=service.spec,
        )
    return result


def format_counts(counts: Mapping[str, int]) -> str:
    """``n1=2, n2=1`` (``nowhere`` when empty): how events and ``meshop diff`` show a placement."""
    return ", ".join(f"{n}={c}" for n, c in sorted(counts.items())) or "nowhere"


def _placement_events(
    name: str, existing: Mapping[str, Assignment], placement: ServicePlacement
) -> tuple[PlannedEvent, ...]:
    before, after = _counts(existing), dict(placement.nodes)
    if before == after:
        return ()
    obj = f"service/{name}"
    moved = [n for n in sorted(before) if n not in after and n in placement.leaving]
    if moved:
        why = ", ".join(f"{n} ({placement.leaving[n]})" for n in moved)
        return (PlannedEvent("Rescheduled", obj, f"moved off {why}; now on {format_counts(after)}"),)
    if not before:
        placed = sum(after.values())
        count = f"{placed}" if placed == placement.wanted else f"{placed} of {placement.wanted}"
        return (PlannedEvent("Scheduled", obj, f"placed {count} replica(s) on {format_counts(after)}"),)
    return (PlannedEvent("Scheduled", obj, f"placement {format_counts(before)} -> {format_counts(after)}"),)


def _invalid_event(service: DesiredService, previous: ServiceStatus | None) -> tuple[PlannedEvent, ...]:
    if service.valid:
        return ()
    before = previous.condition("Valid") if previous else None
    if before is not None and before.status == "False" and before.observed_generation == service.generation:
        return ()
    errors = bounded(service.violations)
    return (PlannedEvent("Invalid", f"service/{service.name}", f"generation {service.generation}: {errors}"),)
