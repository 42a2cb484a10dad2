"""What the agent tells Consul it sees: one ``Observed`` record per assigned service; pure.

``ready`` counts replicas whose container of the assigned spec hash is in phase ``Ready``
(``phases.py``: running, not crash-looping, its check passing in Consul, or without a health check
running ``minReadySeconds``); without phases (older callers) a running, healthy container counts.
``reason`` is a CamelCase word; ``error`` carries a message only for failures
(progress like ``Updating`` or ``Pulling`` has a reason and no error). Nothing here comes from env
values, so no secret can reach Consul through it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from meshop.agent.planning.intake import Parsed
from meshop.agent.planning.plan import Container, Note, ServiceTarget
from meshop.model.records import ContainerState, Observed

PROGRESS = frozenset({"Updating", "Pulling"})


def health_word(container: Container, has_health: bool, healthy: bool | None) -> str:
    if not has_health:
        return "none"
    if not container.running:
        return "critical"
    if healthy is None:
        return "starting"
    return "passing" if healthy else "critical"


def ready_count(
    containers: Sequence[Container],
    replicas: int,
    spec_hash: str,
    has_health: bool,
    healthy: Mapping[str, bool],
    phases: Mapping[str, str] | None = None,
) -> int:
    ready = {
        c.replica
        for c in containers
        if 0 <= c.replica < replicas
        and c.running
        and c.spec_hash == spec_hash
        and (phases.get(c.id) == "Ready" if phases is not None else (not has_health or healthy.get(c.id) is True))
    }
    return len(ready)


def observed_record(
    *,
    node: str,
    service: str,
    spec_hash: str,
    generation: int,
    replicas: int,
    containers: Sequence[Container],
    has_health: bool,
    healthy: Mapping[str, bool],
    note: Note | None,
    now: float,
    phases: Mapping[str, str] | None = None,
    exit_codes: Mapping[str, int] | None = None,
) -> Observed:
    states = tuple(
        ContainerState(
            id=c.id[:12],
            name=c.name,
            replica=c.replica,
            image=c.image,
            state=c.state,
            health=health_word(c, has_health, healthy.get(c.id)),
            spec_hash=c.spec_hash,
            restart_count=c.restart_count,
            host_ports=dict(c.host_ports),
            phase=(phases or {}).get(c.id, ""),
            exit_code=(exit_codes or {}).get(c.id),
        )
        for c in sorted(containers, key=lambda c: (c.replica, c.name))
    )
    return Observed(
        service=service,
        node=node,
        spec_hash=spec_hash,
        generation=generation,
        ready=ready_count(containers, replicas, spec_hash, has_health, healthy, phases),
        containers=states,
        reason=note.reason if note else "",
        error=note.message if note and note.reason not in PROGRESS else "",
        last_reconcile=now,
    )


def node_records(
    node: str,
    parsed: Mapping[str, Parsed],
    unreadable: Mapping[str, Note],
    targets: Mapping[str, ServiceTarget],
    containers: Sequence[Container],
    healthy: Mapping[str, bool],
    phases: Mapping[str, str],
    exit_codes: Mapping[str, int],
    notes: Sequence[Mapping[str, Note]],
    now: float,
) -> dict[str, Observed]:
    """One record per assigned (or unreadable) service. Its note is the first that applies: the
    assignment unreadable or invalid, the service held (secrets, policy), then ``notes`` in order
    (the caller's: failed actions, crashes, refused names, routes, the plan's progress)."""
    by_service: dict[str, list[Container]] = {}
    for container in containers:
        by_service.setdefault(container.service, []).append(container)
    records: dict[str, Observed] = {}
    for name in sorted(set(parsed) | set(unreadable)):
        item = parsed.get(name)
        target = targets.get(name)
        note = (
            unreadable.get(name)
            or (item.note if item else None)
            or (target.hold if target else None)
            or next((found[name] for found in notes if name in found), None)
        )
        records[name] = observed_record(
            node=node,
            service=name,
            spec_hash=item.assignment.spec_hash if item else "",
            generation=item.assignment.generation if item else 0,
            replicas=item.assignment.replicas if item else 0,
            containers=by_service.get(name, []),
            has_health=bool(item and item.spec and item.spec.health),
            healthy=healthy,
            note=note,
            now=now,
            phases=phases,
            exit_codes=exit_codes,
        )
    return records
