"""Per-key holds with growing delays: ``Backoff`` plus the time each hold ends.

The reconciler holds a service after a failed action (nothing new is tried for it until the hold
ends) and a container after each restart (a crash loop is restarted with growing delays); knowing when
the next hold ends lets the loop sleep exactly that long instead of polling. Every ``now`` is the
caller's monotonic time (``meshop/agent/clocks.py``): a step of the wall clock neither ends a hold
nor stretches it.
"""

from __future__ import annotations

from meshop.daemon.backoff import Backoff


class Holds:
    """``Backoff`` plus the time each hold ends, so the loop can sleep exactly until the next one."""

    def __init__(self, base: float, maximum: float) -> None:
        self.backoff = Backoff(base=base, maximum=maximum)
        self.until: dict[str, float] = {}

    def failed(self, key: str, now: float, minimum: float = 0.0) -> float:
        """Hold ``key`` for the next backoff delay, but at least ``minimum`` seconds; returns the delay."""
        delay = max(self.backoff.failed(key, now), minimum)
        self.until[key] = now + delay
        return delay

    def succeeded(self, key: str) -> None:
        self.backoff.succeeded(key)
        self.until.pop(key, None)

    def held(self, now: float) -> frozenset[str]:
        return frozenset(key for key, until in self.until.items() if until > now)

    def next_release(self, now: float) -> float | None:
        pending = [until - now for until in self.until.values() if until > now]
        return min(pending) if pending else None

    def forget_except(self, keys_: set[str]) -> None:
        self.backoff.forget_except(keys_)
        for key in set(self.until) - keys_:
            del self.until[key]
