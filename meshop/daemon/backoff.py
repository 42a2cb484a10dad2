"""Per-object exponential backoff, so one broken object is retried slowly without blocking others.

Pure bookkeeping with the clock passed in: ``failed(key, now)`` schedules the next try,
``due(key, now)`` says whether to try now, ``succeeded(key)`` forgets the key.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Entry:
    failures: int
    next_try: float


class Backoff:
    def __init__(self, base: float = 1.0, maximum: float = 300.0, factor: float = 2.0) -> None:
        self.base = base
        self.maximum = maximum
        self.factor = factor
        self._entries: dict[str, _Entry] = {}

    def failed(self, key: str, now: float) -> float:
        """Record a failure; returns the delay until the next try."""
        entry = self._entries.get(key)
        failures = entry.failures + 1 if entry else 1
        delay = min(self.maximum, self.base * self.factor ** (failures - 1))
        self._entries[key] = _Entry(failures, now + delay)
        return delay

    def due(self, key: str, now: float) -> bool:
        entry = self._entries.get(key)
        return entry is None or now >= entry.next_try

    def failures(self, key: str) -> int:
        entry = self._entries.get(key)
        return entry.failures if entry else 0

    def succeeded(self, key: str) -> None:
        self._entries.pop(key, None)

    def next_due(self, now: float) -> float | None:
        """Seconds until the earliest pending retry, or None when nothing waits."""
        if not self._entries:
            return None
        return max(0.0, min(entry.next_try for entry in self._entries.values()) - now)

    def forget_except(self, keys: set[str]) -> None:
        """Drop entries of objects that no longer exist."""
        for key in set(self._entries) - keys:
            del self._entries[key]
