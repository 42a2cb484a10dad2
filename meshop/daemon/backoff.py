"""The one backoff policy: exponential growth with jitter, capped, reset on success.

controller-runtime's requeue rule for everything meshop retries: the n-th consecutive failure waits
``base * factor**(n-1)``, at most ``maximum``, and a success starts again from ``base``. Jitter takes a
random fraction (up to ``jitter``) off each delay, so a fleet that failed together does not retry in
step; taking it *off* keeps two promises: the cap is a real cap, and a retry never comes later than the
plain exponential schedule (the reconcile loop's first retry is never slower than its old fixed 2 s).

Three shapes of one rule, all pure with the random source injected (tests pass a constant):

* ``BackoffPolicy.delay(failures, random)``: the delay itself;
* ``Streak``: one thing retried (a watch's blocking query, the Docker events stream, the reconcile
  loop's passes): ``failed()`` returns the next delay, ``succeeded()`` resets;
* ``Backoff``: one streak per key with the clock passed in (``failed(key, now)``, ``due(key, now)``),
  so one broken object is retried slowly without blocking the others (the agent's holds).

Single calls retried a few times (a Docker pull) go through tenacity with this policy as its wait:
``meshop.daemon.retry``.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass

Random = Callable[[], float]
"""A uniform draw from [0, 1): ``random.random`` in production, a constant in tests."""


@dataclass(frozen=True)
class BackoffPolicy:
    base: float = 1.0
    maximum: float = 300.0
    factor: float = 2.0
    jitter: float = 0.0  # fraction of each delay that may be taken off at random: 0 (exact) to 1

    def __post_init__(self) -> None:
        if not (0 < self.base <= self.maximum and self.factor >= 1 and 0 <= self.jitter <= 1):
            raise ValueError(f"backoff policy out of range: {self}")

    def delay(self, failures: int, random: Random | None = None) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (0 before the first)."""
        if failures < 1:
            return 0.0
        try:
            grown = self.base * self.factor ** (failures - 1)
        except OverflowError:  # days of failures: 2.0 ** 1100 overflows a float; the cap holds long before
            grown = self.maximum
        return min(self.maximum, grown) * (1.0 - self.jitter * (random or _random.random)())


class Streak:
    """Consecutive failures of one thing retried: ``failed()`` gives the next delay, ``succeeded()`` resets."""

    def __init__(self, policy: BackoffPolicy, random: Random | None = None) -> None:
        self.policy = policy
        self.random = random or _random.random
        self.failures = 0

    def failed(self) -> float:
        self.failures += 1
        return self.policy.delay(self.failures, self.random)

    def succeeded(self) -> None:
        self.failures = 0


@dataclass
class _Entry:
    failures: int
    next_try: float


class Backoff:
    """Per-key streaks with the clock passed in: ``failed(key, now)`` schedules the next try,
    ``due(key, now)`` says whether to try now, ``succeeded(key)`` forgets the key."""

    def __init__(
        self,
        base: float = 1.0,
        maximum: float = 300.0,
        factor: float = 2.0,
        *,
        jitter: float = 0.0,
        random: Random | None = None,
    ) -> None:
        self.policy = BackoffPolicy(base, maximum, factor, jitter)
        self.random = random or _random.random
        self._entries: dict[str, _Entry] = {}

    def failed(self, key: str, now: float) -> float:
        """Record a failure; returns the delay until the next try."""
        entry = self._entries.get(key)
        failures = entry.failures + 1 if entry else 1
        delay = self.policy.delay(failures, self.random)
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
