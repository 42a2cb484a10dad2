"""Each local container's phase and the crash each service reports: pure, from one pass's picture.

Every time here is on one clock: the monotonic one, with Docker's start and creation times moved onto
it when the agent first saw each container (``memory/ages.py``), so a step of the wall clock changes
no phase. The phases:

* ``CrashLoopBackOff``: it exited and is being restarted (``restarting``; ``exited`` with a restart
  policy that restarts it; or ``running`` for less than ``stable_after`` seconds since a crash);
* ``Failed``: it exited and nothing will start it again (restart ``no``, ``on-failure`` after exit 0
  counts as ``Completed``), or it has been crash-looping for ``FAIL_RESTARTS`` restarts or
  ``FAIL_AFTER`` seconds (Docker keeps retrying with its own backoff; the word says it is no blip);
* ``Ready``: running and, with a health check, its own probe *and* its check in Consul pass; without
  one, running ``minReadySeconds`` without a crash;
* ``Unhealthy`` (probe failing), ``Starting`` (not ready yet), ``NotRunning`` (created, paused, dead).

``phase_of`` names one container's phase (``CrashInfo``: what ``memory/crashes.py`` remembers of it);
``container_phases`` applies it to every container of the node, picks per service the worst crash to
report, lists the crash loops that began in this pass (the reconciler journals them as events) and
says when a phase will change by itself, so the agent looks again then (``minReadySeconds`` elapsing,
a restarted container becoming stable, a check about to pass).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from meshop.agent.planning.labels import replica_service_id
from meshop.agent.planning.plan import Container, Note, restart_allowed
from meshop.model import ServiceSpec

FAIL_RESTARTS = 10
FAIL_AFTER = 120.0


@dataclass(frozen=True)
class Exit:
    code: int
    at: float | None = None  # Docker's wall time of the exit, when its event told it (for people only)


@dataclass(frozen=True)
class CrashInfo:
    """What the agent knows about one container beyond Docker's current state."""

    last_exit: Exit | None = None
    restarts: int = 0  # Docker's restart count plus the agent's own starts
    loop_since: float | None = None  # monotonic time it was first seen crash-looping (None: it is not)
    loop_restarts: int = 0  # restarts since then


@dataclass(frozen=True)
class ReplicaReadiness:
    has_health: bool
    min_ready: float
    restart: str
    probe: bool | None = None  # the agent's own probe (None: no result yet)
    consul: bool | None = None  # the replica's check in Consul passes (None: unknown)


def crashing(container: Container, info: CrashInfo, now: float, stable_after: float) -> bool:
    if container.state == "restarting":
        return True
    if container.state == "exited":
        return container.exit_code != 0 or info.restarts > 0
    if container.running and info.last_exit is not None and info.restarts > 0:
        return now - container.started_at < stable_after
    return False


def phase_of(
    container: Container, info: CrashInfo, ready: ReplicaReadiness, now: float, stable_after: float = 10.0
) -> str:
    if container.state == "exited" and not restart_allowed(ready.restart, container.exit_code):
        return "Completed" if container.exit_code == 0 else "Failed"
    if crashing(container, info, now, stable_after):
        if info.loop_since is not None and (info.loop_restarts >= FAIL_RESTARTS or now - info.loop_since >= FAIL_AFTER):
            return "Failed"
        return "CrashLoopBackOff"
    if not container.running:
        return "Starting" if container.state == "exited" else "NotRunning"
    if ready.has_health:
        if ready.probe is False:
            return "Unhealthy"
        return "Ready" if ready.probe and ready.consul else "Starting"
    return "Ready" if now - container.started_at >= ready.min_ready else "Starting"


def describe(replica: int, phase: str, container: Container, info: CrashInfo) -> str:
    """One line for ``Observed.error``: never mentions a health check, only what Docker reported."""
    code = info.last_exit.code if info.last_exit else container.exit_code
    text = f"replica {replica} exited with code {code}"
    if info.restarts:
        text += f", restarted {info.restarts} time(s)"
    if phase == "Failed" and container.state == "exited":
        return text + "; its restart policy does not start it again"
    if phase == "Failed":
        return text + f" and keeps crashing (Docker retries with growing delays; since {info.loop_restarts} restarts)"
    return text + "; restarting with a growing delay"


def worst(phases: Mapping[int, str]) -> str | None:
    """The phase that names a service's problem: Failed before CrashLoopBackOff; None if neither."""
    for phase in ("Failed", "CrashLoopBackOff"):
        if phase in phases.values():
            return phase
    return None


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
        ready = ReplicaReadiness(
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
