"""Truthful container state: crash loops, exit codes, restart counts and readiness, per container.

Docker restarts a crashing container itself (restart policy), so between two crashes it is briefly
``running`` with exit code 0 and looks fine. ``CrashTracker`` remembers what Docker forgets: the last
exit of each container (from Docker's ``die`` events, which carry the exit code, or from its state),
the restarts the agent made itself, and since when a container has been crash-looping.
``phase_of`` (pure) turns that into one word per container:

* ``CrashLoopBackOff``: it exited and is being restarted (``restarting``; ``exited`` with a restart
  policy that restarts it; or ``running`` for less than ``stable_after`` seconds since a crash);
* ``Failed``: it exited and nothing will start it again (restart ``no``, ``on-failure`` after exit 0
  counts as ``Completed``), or it has been crash-looping for ``fail_restarts`` restarts or
  ``fail_after`` seconds (Docker keeps retrying with its own backoff; the word says it is no blip);
* ``Ready``: running and, with a health check, its own probe *and* its check in Consul pass; without
  one, running ``minReadySeconds`` without a crash;
* ``Unhealthy`` (probe failing), ``Starting`` (not ready yet), ``NotRunning`` (created, paused, dead).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meshop.agent.planning.plan import Container, restart_allowed

FAIL_RESTARTS = 10
FAIL_AFTER = 120.0


@dataclass(frozen=True)
class Exit:
    code: int
    at: float


@dataclass(frozen=True)
class CrashInfo:
    """What the agent knows about one container beyond Docker's current state."""

    last_exit: Exit | None = None
    restarts: int = 0  # Docker's restart count plus the agent's own starts
    loop_since: float | None = None  # when it was first seen crash-looping (None: it is not)
    loop_restarts: int = 0  # restarts since then


@dataclass(frozen=True)
class Readiness:
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


def phase_of(container: Container, info: CrashInfo, ready: Readiness, now: float, stable_after: float = 10.0) -> str:
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


class CrashTracker:
    """Remembers exits, the agent's own starts and crash-loop beginnings across passes (not thread-safe:
    the reconcile loop owns it; ``exits`` may be fed from the Docker events thread, a plain dict)."""

    def __init__(self, stable_after: float = 10.0) -> None:
        self.stable_after = stable_after
        self.exits: dict[str, Exit] = {}  # container id -> last exit (events thread writes, loop reads)
        self.agent_starts: dict[str, int] = {}
        self._loops: dict[str, tuple[float, int]] = {}  # container id -> (since, restarts then)

    def started(self, container_id: str) -> None:
        self.agent_starts[container_id] = self.agent_starts.get(container_id, 0) + 1

    def observe(self, containers: Iterable[Container], now: float) -> dict[str, CrashInfo]:
        result: dict[str, CrashInfo] = {}
        alive = set()
        for c in containers:
            alive.add(c.id)
            if c.state in ("exited", "restarting") and c.exit_code and c.id not in self.exits:
                self.exits[c.id] = Exit(c.exit_code, now)
            restarts = c.restart_count + self.agent_starts.get(c.id, 0)
            info = CrashInfo(self.exits.get(c.id), restarts)
            if crashing(c, info, now, self.stable_after):
                since, before = self._loops.setdefault(c.id, (now, restarts))
                info = CrashInfo(info.last_exit, restarts, since, restarts - before)
            else:
                self._loops.pop(c.id, None)
            result[c.id] = info
        for gone in [k for k in list(self.exits) if k not in alive]:
            del self.exits[gone]
        for table in (self.agent_starts, self._loops):
            for gone in [k for k in table if k not in alive]:
                del table[gone]
        return result

    def died(self, container_id: str, code: int, at: float) -> None:
        self.exits[container_id] = Exit(code, at)


def worst(phases: Mapping[int, str]) -> str | None:
    """The phase that names a service's problem: Failed before CrashLoopBackOff; None if neither."""
    for phase in ("Failed", "CrashLoopBackOff"):
        if phase in phases.values():
            return phase
    return None
