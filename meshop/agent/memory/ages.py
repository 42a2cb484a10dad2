"""Docker's timestamps moved onto the monotonic clock, once per container start.

Docker reports when a container was created and started as wall times. Compared with the wall clock
on every pass, a step of that clock (NTP, a suspended VM) would make every container look just
started (minReadySeconds, "stable after a crash" and health timeouts begin again) or hours old. So the
agent compares them with the wall clock once, when it first sees a container's start, and from then on
counts on the monotonic clock: ``on_mono`` returns the containers with ``created_at`` and
``started_at`` on the monotonic clock (0 stays 0: never). A timestamp in the future (the wall clock
was stepped back) counts as "just now".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from meshop.agent.planning.plan import Container

Key = tuple[str, float, float]  # (container id, created_at, started_at) as Docker reports them


class DockerTimes:
    """Remembers, per container start, its times on the monotonic clock (the reconcile loop owns it)."""

    def __init__(self) -> None:
        self._known: dict[Key, tuple[float, float]] = {}

    def on_mono(self, containers: Iterable[Container], wall: float, mono: float) -> list[Container]:
        """``containers`` with their times on the monotonic clock; ``wall`` and ``mono``: now on each."""
        known: dict[Key, tuple[float, float]] = {}
        moved = []
        for c in containers:
            key = (c.id, c.created_at, c.started_at)
            times = self._known.get(key) or (_moved(c.created_at, wall, mono), _moved(c.started_at, wall, mono))
            known[key] = times
            moved.append(replace(c, created_at=times[0], started_at=times[1]))
        self._known = known
        return moved


def _moved(at: float, wall: float, mono: float) -> float:
    return mono - max(0.0, wall - at) if at else 0.0
