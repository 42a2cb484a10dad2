"""A short memory of usage for the dashboard's charts: per node and per service, the last hour.

Fed by the ``usage/`` watch (``live.py``): a node's point is added when its record is new (a later
``sampledAt``), a service's when any record changed (its replicas summed over the nodes whose record is
not stale). Bounded three ways: ``window`` seconds, ``max_points`` per series, ``max_series`` series (a
new name beyond it is not followed); a series with no point in the window is dropped. Kept in the
dashboard process only: a restarted dashboard starts with empty charts.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from meshop.client.usage import NodeUsage, service_rows

WINDOW = 3600.0
MAX_POINTS = 400  # an hour at the agents' most frequent writes (one per 10 s) and some
MAX_SERIES = 2000


@dataclass(frozen=True)
class Point:
    t: float  # wall clock
    cpu: float  # percent of one core
    memory: float  # bytes


class UsageHistory:
    def __init__(self, window: float = WINDOW, max_points: int = MAX_POINTS, max_series: int = MAX_SERIES) -> None:
        self.window = window
        self.max_points = max_points
        self.max_series = max_series
        self._nodes: dict[str, deque[Point]] = {}
        self._services: dict[str, deque[Point]] = {}
        self._lock = threading.Lock()

    def add(self, usage: Mapping[str, NodeUsage], now: float) -> bool:
        """Take the latest records; True when a point was added."""
        with self._lock:
            added = False
            for node, u in usage.items():
                series = self._series(self._nodes, node)
                if series is not None and (not series or u.record.sampled_at > series[-1].t):
                    series.append(Point(u.record.sampled_at, u.record.cpu, float(u.record.memory)))
                    added = True
            if added:
                fresh = {n: u for n, u in usage.items() if not u.stale}
                for row in service_rows(fresh):
                    series = self._series(self._services, row.service)
                    if series is not None:
                        series.append(Point(now, row.cpu, float(row.memory)))
            self._trim(now)
            return added

    def node(self, name: str) -> tuple[Point, ...]:
        with self._lock:
            return tuple(self._nodes.get(name, ()))

    def service(self, name: str) -> tuple[Point, ...]:
        with self._lock:
            return tuple(self._services.get(name, ()))

    def sizes(self) -> tuple[int, int]:
        """(series, points) held: what the bounds bound."""
        with self._lock:
            every = [*self._nodes.values(), *self._services.values()]
            return len(every), sum(len(s) for s in every)

    def _series(self, table: dict[str, deque[Point]], name: str) -> deque[Point] | None:
        if name not in table:
            if len(self._nodes) + len(self._services) >= self.max_series:
                return None
            table[name] = deque(maxlen=self.max_points)
        return table[name]

    def _trim(self, now: float) -> None:
        for table in (self._nodes, self._services):
            for name in list(table):
                series = table[name]
                while series and series[0].t < now - self.window:
                    series.popleft()
                if not series:
                    del table[name]
