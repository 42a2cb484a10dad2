"""Crash accounting across passes: what Docker forgets about a crashing container.

Docker restarts a crashing container itself (restart policy), so between two crashes it is briefly
``running`` with exit code 0 and looks fine. ``CrashTracker`` remembers the last exit of each container
(from Docker's ``die`` events, which carry the exit code, or from its state), the restarts the agent
made itself, and since when (monotonic time) a container has been crash-looping. The rules that turn
this into a phase are pure and live in ``planning/phases.py``.
"""

from __future__ import annotations

from collections.abc import Iterable

from meshop.agent.planning.phases import CrashInfo, Exit, crashing
from meshop.agent.planning.plan import Container


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
        """``now`` and the containers' times on the monotonic clock (``memory/ages.py``)."""
        result: dict[str, CrashInfo] = {}
        alive = set()
        for c in containers:
            alive.add(c.id)
            if c.state in ("exited", "restarting") and c.exit_code and c.id not in self.exits:
                self.exits[c.id] = Exit(c.exit_code)
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

    def died(self, container_id: str, code: int, at: float | None = None) -> None:
        """From the Docker events thread; ``at`` is Docker's wall time of the exit (kept for people)."""
        self.exits[container_id] = Exit(code, at)
