"""Status roll-up: ``status/services/<name>`` from the document, its placement and observed state. Pure.

Conditions follow the Kubernetes conventions: ``Valid``, ``Scheduled``, ``Ready`` and ``Degraded``, each
with True/False/Unknown, a CamelCase reason, a message, the generation it describes, and a last
transition time that changes only when the status does (``now`` is passed in).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from meshop.model.records import Assignment, Condition, Observed, ServiceStatus
from meshop.operator.placement import NODE_LOST, ServicePlacement
from meshop.operator.view import DesiredService, NodeState, NodeView

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"
INVALID = "Invalid"
UNHEALTHY = "Unhealthy"
PROGRESSING = "Progressing"
ROUTE_CONFLICT = "RouteConflict"
OUTSIDE_DOMAINS = "OutsideDomains"
ROUTE_FAIL_OPEN = "RouteFailOpen"


def ready_copies(assignment: Assignment, observed: Observed | None, view: NodeView | None) -> int:
    """Replicas of ``assignment`` that its agent reports Ready (on a node that is not NotReady)."""
    if observed is None or observed.spec_hash != assignment.spec_hash:
        return 0
    if view is None or view.state is NodeState.NOT_READY:
        return 0
    return max(0, min(observed.ready, assignment.replicas))


def roll_up(
    service: DesiredService,
    placement: ServicePlacement | None,
    assignments: Mapping[str, Assignment],
    observed: Mapping[str, Observed],
    nodes: Mapping[str, NodeView],
    previous: ServiceStatus | None,
    now: float,
    route_problem: tuple[str, str] | None = None,
    route_fail_open: str = "",
) -> ServiceStatus:
    """The status of one service after this plan (``placement`` is None for an invalid document).

    ``assignments`` and ``observed`` are this service's, by node: the assignments as this plan leaves them.
    """
    generation = service.generation
    wanted = service.replicas
    summary: dict[str, dict[str, Any]] = {}
    ready = 0
    for node in sorted(set(assignments) | set(observed)):
        assignment, seen, view = assignments.get(node), observed.get(node), nodes.get(node)
        copies = ready_copies(assignment, seen, view) if assignment else 0
        if assignment and assignment.spec_hash == service.spec_hash:
            ready += copies
        summary[node] = {
            "replicas": assignment.replicas if assignment else 0,
            "ready": copies,
            "state": view.state.value if view else "Unknown",
            "reason": _clip(seen.reason, 64) if seen else "",
            "error": _clip(seen.error, MAX_TEXT) if seen else "",
        }

    earlier = {c.type: c for c in previous.conditions} if previous else {}

    def condition(kind: str, status: str, reason: str = "", message: str = "") -> Condition:
        before = earlier.get(kind)
        since = before.last_transition if before is not None and before.status == status else now
        return Condition(kind, status, reason, message, since, generation)

    conditions = [_valid(service, condition)]
    conditions.append(_scheduled(service, placement, previous, condition))
    conditions.extend(_ready_degraded(service, placement, assignments, observed, nodes, ready, condition))
    if route_problem is not None:  # RouteConflict or OutsideDomains: the route is not served
        conditions[-1] = condition("Degraded", TRUE, *route_problem)
    elif route_fail_open:
        conditions[-1] = condition("Degraded", TRUE, ROUTE_FAIL_OPEN, route_fail_open)
    route = f"{service.route.host}{service.route.path}" if service.route else ""
    return ServiceStatus(
        name=service.name,
        observed_generation=generation,
        conditions=tuple(conditions),
        placement={n: a.replicas for n, a in sorted(assignments.items())},
        replicas=wanted,
        ready_replicas=ready,
        nodes=summary,
        image=service.image,
        route=route,
        spec_hash=service.spec_hash,
        created_at=_created_at(previous, now),
    )


def _created_at(previous: ServiceStatus | None, now: float) -> float:
    """Kept from the previous status; a status written before ``createdAt`` existed uses its oldest condition."""
    if previous is None:
        return now
    if previous.created_at:
        return previous.created_at
    return min((c.last_transition for c in previous.conditions if c.last_transition), default=now)


MAX_LISTED = 10  # violations spelled out in a status or an event; the rest are counted
MAX_TEXT = 300  # characters of one violation, one agent error


def bounded(items: Sequence[object], limit: int = MAX_LISTED, width: int = MAX_TEXT) -> str:
    """``a; b; c and 7 more``: what status and events say about a list of problems, bounded in size
    whatever the document (a hostile one can hold thousands of violations, or a 400 KiB key name)."""
    shown = [_clip(str(item), width) for item in items[:limit]]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return "; ".join(shown) + more


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _valid(service: DesiredService, condition: Any) -> Condition:
    if service.valid:
        return condition("Valid", TRUE, "Valid", "")
    errors = bounded(service.violations)
    keeping = " (the last valid version keeps running)" if service.workload else ""
    return condition("Valid", FALSE, INVALID, f"{errors}{keeping}")


def _scheduled(
    service: DesiredService, placement: ServicePlacement | None, previous: ServiceStatus | None, condition: Any
) -> Condition:
    if placement is None:
        before = previous.condition("Scheduled") if previous else None
        if before is not None:
            return condition("Scheduled", before.status, before.reason, before.message)
        return condition("Scheduled", UNKNOWN, INVALID, "the document is invalid and no valid version runs")
    if not placement.scheduled:
        return condition("Scheduled", FALSE, placement.reason, placement.message)
    where = ", ".join(f"{n}={c}" if c > 1 else n for n, c in placement.placed.items())
    message = f"{placement.wanted} replica(s) on {where}" if placement.wanted else "scaled to 0"
    if placement.moving:
        moving = ", ".join(f"{n} ({placement.leaving.get(n, 'moving')})" for n in placement.moving)
        message += f"; keeping {sum(placement.moving.values())} copy(ies) on {moving} until replacements are Ready"
    return condition("Scheduled", TRUE, "Scheduled", message)


def _ready_degraded(
    service: DesiredService,
    placement: ServicePlacement | None,
    assignments: Mapping[str, Assignment],
    observed: Mapping[str, Observed],
    nodes: Mapping[str, NodeView],
    ready: int,
    condition: Any,
) -> list[Condition]:
    wanted = service.replicas
    if not service.valid and service.workload is None:
        return [
            condition("Ready", FALSE, INVALID, "no valid version of the document has run"),
            condition("Degraded", FALSE),
        ]
    if ready >= wanted:
        return [condition("Ready", TRUE, "Ready", f"{ready}/{wanted} replicas ready"), condition("Degraded", FALSE)]
    reason, detail = _not_ready_reason(service, placement, assignments, observed, nodes)
    message = f"{ready}/{wanted} replicas ready; {detail}"
    degraded = condition("Degraded", TRUE, reason, message) if ready > 0 else condition("Degraded", FALSE)
    return [condition("Ready", FALSE, reason, message), degraded]


def _not_ready_reason(
    service: DesiredService,
    placement: ServicePlacement | None,
    assignments: Mapping[str, Assignment],
    observed: Mapping[str, Observed],
    nodes: Mapping[str, NodeView],
) -> tuple[str, str]:
    for node in sorted(assignments):
        seen = observed.get(node)
        if seen is not None and seen.reason and seen.spec_hash in ("", assignments[node].spec_hash):
            return _clip(seen.reason, 64), _clip(f"{node}: {seen.error or seen.reason}", MAX_TEXT)
    lost = sorted(n for n in assignments if n not in nodes or nodes[n].state is NodeState.NOT_READY)
    if lost:
        return NODE_LOST, f"node(s) {', '.join(lost)} NotReady"
    if placement is not None and not placement.scheduled:
        return placement.reason, placement.message
    for node in sorted(assignments):
        seen = observed.get(node)
        if seen is not None and seen.spec_hash == assignments[node].spec_hash and seen.containers:
            wanted = assignments[node].replicas
            if service.spec.get("health"):
                return UNHEALTHY, f"{node}: {seen.ready}/{wanted} replicas pass their health check"
            # no health check to blame: say what the agent saw (never a check that does not exist)
            phases = sorted({c.phase for c in seen.containers if c.phase and c.phase != "Ready"})
            detail = f" ({', '.join(phases)})" if phases else ""
            return PROGRESSING, f"{node}: {seen.ready}/{wanted} replicas ready{detail}"
    return PROGRESSING, f"waiting for agents to run generation {service.generation}"
