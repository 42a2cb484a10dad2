"""The agent's side of the fence: it writes the leases and tells whether a fence watches.

The keeper (``keeper.py``) calls ``grant`` after each successful renewal and each take, and ``revoke``
when it lets go or loses the locks; both run under one mutex, and ``grant`` computes the deadline
inside it, so a revoke is never overtaken by a grant computed before it. ``unguarded`` is asked before
a copy is started: a stale fence heartbeat or a lease that cannot be written means no start (a copy
already running keeps running; the agent's own watchdog still guards it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from meshop.agent.stateful import timing
from meshop.agent.stateful.leases import Lease, Untrusted

log = logging.getLogger(__name__)

NO_FENCE = "no fence watches this node's stateful copies"


class LeaseBook(Protocol):
    """``leases.LeaseDir``: the lease folder shared with the fence."""

    def grant(self, lease: Lease, /) -> None: ...

    def revoke(self, service: str, /) -> None: ...

    def heartbeat(self) -> float | None: ...


class Guard:
    def __init__(self, leases: LeaseBook | None) -> None:
        self.leases = leases  # None: this agent keeps no leases (no fence asked for)
        self._mu = threading.Lock()
        self._granted: dict[str, float] = {}  # service -> the deadline its lease file holds
        self._problems: dict[str, str] = {}  # service -> why its lease could not be written

    def grant(self, service: str, deadline: Callable[[], float | None]) -> None:
        """Write the lease of ``service`` with ``deadline()`` (None: it holds no fresh locks: nothing)."""
        if self.leases is None:
            return
        with self._mu:
            until = deadline()
            if until is None or self._granted.get(service) == until:
                return
            try:
                self.leases.grant(Lease(service, until))
            except (OSError, Untrusted) as exc:
                problem = f"cannot write its lease for the fence: {exc}"
                if self._problems.get(service) != problem:
                    log.error("%s: %s", service, problem)
                self._problems[service] = problem
                return
            self._granted[service] = until
            self._problems.pop(service, None)

    def revoke(self, service: str) -> None:
        if self.leases is None:
            return
        with self._mu:
            self._granted.pop(service, None)
            self._problems.pop(service, None)
            try:
                self.leases.revoke(service)
            except (OSError, Untrusted) as exc:  # its deadline passes anyway; the fence then kills
                log.warning("removing the lease of %s failed: %s", service, exc)

    def unguarded(self, service: str, now: float) -> str | None:
        """Why no copy of ``service`` may be started at ``now`` (monotonic): no fence watches (its
        heartbeat is missing, untrusted or older than ``FENCE_STALE``) or its lease cannot be written.
        None when the fence guards it, or when no leases are kept."""
        if self.leases is None:
            return None
        with self._mu:
            problem = self._problems.get(service)
        if problem is not None:
            return problem
        try:
            beat = self.leases.heartbeat()
        except (OSError, Untrusted) as exc:
            return f"{NO_FENCE}: {exc}"
        if beat is None:
            return "no fence watches this node's stateful copies (meshop-fence.service: no heartbeat)"
        if not now - timing.FENCE_STALE <= beat <= now + 1.0:  # one clock: a beat from the future is not one
            return (
                f"no fence watches this node's stateful copies (meshop-fence.service: heartbeat {now - beat:.0f}s old)"
            )
        return None
