"""Which stateful volumes are due for a backup, and when the next one is: pure, monotonic clock.

Rule: a volume with a ``backup`` is a *candidate* only while this node runs its service (the caller
passes only volumes of services with a running container here that this node may write). A candidate
is due

* at once when this agent has not tried it yet (a node that has just taken the volume over, or an agent
  that restarted, takes a snapshot soon after, so the restore point is never older than needed);
* ``every`` seconds after its last attempt *began*, when that attempt succeeded (a slow backup does
  not push the schedule back);
* after a failed attempt, the one backoff policy's delay (``RETRY``: 10 s doubling to 5 min; no jitter,
  one node's volumes need no spreading) but at most ``every`` after it began: a brief outage of the
  repository does not wait a whole interval, a broken one is not hammered;
* at once when a ``meshop volume backup`` request (its id) is pending that it has not carried out.

Due volumes are taken most overdue first, one at a time (one restic per node: they share its disk
and network).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from meshop.daemon.backoff import BackoffPolicy

RETRY = BackoffPolicy(base=10.0, maximum=300.0)

VolumeKey = tuple[str, str]  # (service, volume)


@dataclass(frozen=True)
class Candidate:
    service: str
    volume: str
    every: float  # seconds
    request: str = ""  # a pending request's id ("" none)

    @property
    def key(self) -> VolumeKey:
        return (self.service, self.volume)


@dataclass(frozen=True)
class Attempt:
    """The last attempt this agent made for one volume."""

    started: float  # monotonic
    ok: bool
    failures: int = 0  # failed attempts in a row (0 after a success)
    request: str = ""  # the last request id carried out


def retry_delay(failures: int, every: float) -> float:
    return min(every, RETRY.delay(max(1, failures), lambda: 0.0))


def due_at(candidate: Candidate, last: Attempt | None) -> float:
    """The monotonic time ``candidate`` is due (``-inf``: at once)."""
    if last is None or (candidate.request and candidate.request != last.request):
        return float("-inf")
    delay = candidate.every if last.ok else retry_delay(last.failures, candidate.every)
    return last.started + delay


def due(candidates: Sequence[Candidate], history: Mapping[VolumeKey, Attempt], now: float) -> list[Candidate]:
    """The candidates due at ``now``, most overdue first (ties by service, volume)."""
    times = {c.key: due_at(c, history.get(c.key)) for c in candidates}
    ready = [c for c in candidates if times[c.key] <= now]
    return sorted(ready, key=lambda c: (times[c.key], c.key))


def wait_for(candidates: Sequence[Candidate], history: Mapping[VolumeKey, Attempt], now: float) -> float | None:
    """Seconds until the next candidate is due (0: one is due now; None: no candidate)."""
    if not candidates:
        return None
    return max(0.0, min(due_at(c, history.get(c.key)) for c in candidates) - now)
