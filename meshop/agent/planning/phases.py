"""Each local container's phase and the crash each service reports: pure, from one pass's picture.

``crashes.phase_of`` names one container's phase; this module applies it to every container of the
node, picks per service the worst crash to report, lists the crash loops that began in this pass (the
reconciler journals them as events) and says when a phase will change by itself, so the agent looks
again then (``minReadySeconds`` elapsing, a restarted container becoming stable, a check about to pass).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from meshop.agent.cluster.registrations import replica_service_id
from meshop.agent.memory.crashes import CrashInfo, Readiness, describe, phase_of, worst
from meshop.agent.planning.plan import Container, Note
from meshop.model import ServiceSpec

FAILING = ("CrashLoopBackOff", "Failed")


@dataclass(frozen=True)
class Assigned:
    """What the phases need of one assigned service: its parsed spec and the spec hash it wants."""

    spec: ServiceSpec
    spec_hash: str


@dataclass(frozen=True)
class Phases:
    by_container: dict[str, str]  # container id -> phase
    notes: dict[str, Note]  # service -> the crash it reports (the worst of its current containers)
    crashed: tuple[tuple[str, str], ...]  # (object, message) for each crash loop that began now
    requeue: float | None  # seconds until some phase changes by itself


def container_phases(
    node: str,
    assigned: Mapping[str, Assigned],
    serving: Mapping[tuple[str, int], str],
    containers: Sequence[Container],
    healthy: Mapping[str, bool],
    checks: Mapping[str, str],
    infos: Mapping[str, CrashInfo],
    now: float,
    stable_after: float,
) -> Phases:
    """``checks`` maps replica service ids to their worst Consul check status; ``serving`` is the plan's
    (service, replica) -> container that should be registered, so only that one may be Ready."""
    phases: dict[str, str] = {}
    notes: dict[str, Note] = {}
    crashed: list[tuple[str, str]] = []
    wake: list[float] = []
    for c in containers:
        item = assigned.get(c.service)
        if item is None:
            continue
        spec, current = item.spec, c.spec_hash == item.spec_hash
        check = checks.get(replica_service_id(node, c.service, c.replica))
        ready = Readiness(
            has_health=spec.health is not None,
            min_ready=spec.min_ready_seconds,
            restart=spec.restart,
            probe=healthy.get(c.id),
            consul=serving.get((c.service, c.replica)) == c.id and check == "passing",
        )
        info = infos.get(c.id, CrashInfo())
        phase = phases[c.id] = phase_of(c, info, ready, now, stable_after)
        if info.loop_since == now and current:  # a crash loop begins
            crashed.append((f"service/{c.service}", describe(c.replica, phase, c, info)))
        if phase in FAILING and current:
            reported = notes[c.service].reason if c.service in notes else ""
            if worst({0: phase, 1: reported}) == phase:
                notes[c.service] = Note(phase, describe(c.replica, phase, c, info))
        if c.running and phase == "Starting":
            if spec.health is None:
                wake.append(max(0.05, c.started_at + spec.min_ready_seconds - now))
            elif now - c.started_at < spec.update.health_timeout:
                wake.append(0.25)  # the probe or Consul's check is about to pass
        elif c.running and phase == "CrashLoopBackOff":  # (not minReadySeconds: that would spin at 50 ms)
            wake.append(max(0.05, c.started_at + stable_after - now))
    return Phases(phases, notes, tuple(crashed), min(wake) if wake else None)
