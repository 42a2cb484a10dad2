"""Blocking-query watches: wake a reconcile loop when something under a prefix changes.

The loop follows Consul's rules for blocking queries: it starts from index 0 and then never blocks on
an index below 1, resets when the index goes backwards (a restarted or restored server) and re-reads
without blocking after any failed request (the server it reaches next may be such a one), waits at least
``min_interval`` between queries (so a flapping key cannot spin it), and backs off while Consul is
unreachable with the shared policy (``meshop.daemon.backoff``: 0.1 s doubling up to ``max_backoff``,
up to a fifth less at random; reset by the first answer). It is a loop of its own rather than a
tenacity retry because a watch is not one call retried: every answer changes the next query (its
index), a failure changes it too (back to 0), and it runs until stopped, never "gives up".
``stop()`` returns at once; the thread is a ``DaemonThread`` and delivers nothing after it.

A daemon passes its ``component``: the watch then counts its wake-ups (``meshop_watch_wakeups_total``)
and failed requests (``meshop_consul_errors_total{operation="watch"}``) itself, because only the watch
sees every blocking query; without one (library use, tests) it exports nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from meshop import metrics
from meshop.consul.services import CheckState, Services
from meshop.consul.store import KVStore, Listing
from meshop.daemon.backoff import BackoffPolicy, Random, Streak
from meshop.daemon.threads import DaemonThread
from meshop.errors import ConsulError

T = TypeVar("T")
Fetch = Callable[[int, str | None], tuple[int, T]]

log = logging.getLogger(__name__)


class Watch(Generic[T]):
    """Runs ``fetch(index, wait)`` as a blocking query in a thread; keeps the latest result."""

    def __init__(
        self,
        name: str,
        fetch: Fetch[T],
        on_change: Callable[[T], None] | None = None,
        *,
        wait: str = "30s",
        min_interval: float = 0.02,
        max_backoff: float = 10.0,
        component: str | None = None,
        random: Random | None = None,
    ) -> None:
        self.name = name
        self.component = component
        self._fetch = fetch
        self._on_change = on_change
        self._wait = wait
        self._min_interval = min_interval
        policy = BackoffPolicy(base=min(0.1, max_backoff), maximum=max_backoff, jitter=0.2)
        self._streak = Streak(policy, random)
        self._thread = DaemonThread(f"watch-{name}", self._run)
        self._stopping = self._thread.stopping
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._latest: T | None = None
        self.index = 0
        self.errors = 0
        self.wakeups = 0
        self.last_error: str | None = None
        self.connected = False
        if component:  # create both series at zero, so a rate works from the first event
            metrics.watch_wakeups_total.labels(component, name)
            metrics.consul_errors_total.labels(component, "watch")

    def start(self) -> Watch[T]:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Returns at once; a blocking query in flight ends with its wait, delivering nothing."""
        self._thread.signal()

    def join(self, timeout: float | None = None) -> bool:
        """False (and a warning) when the thread is still in its query after ``timeout``."""
        return self._thread.join(timeout)

    def wait_ready(self, timeout: float) -> bool:
        """True once a first result arrived (Consul answered at least once)."""
        return self._ready.wait(timeout)

    @property
    def latest(self) -> T | None:
        with self._lock:
            return self._latest

    def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                new_index, value = self._fetch(self.index, self._wait if self.index else None)
            except ConsulError as exc:
                delay = self._streak.failed()
                self._record_error(exc, self._streak.failures)
                self._stopping.wait(delay)
                continue
            self._streak.succeeded()
            self.connected = True
            self._deliver(new_index, value)
            elapsed = time.monotonic() - started
            if elapsed < self._min_interval:
                self._stopping.wait(self._min_interval - elapsed)

    def _deliver(self, new_index: int, value: T) -> None:
        if self._stopping.is_set():
            return
        changed = new_index != self.index or not self._ready.is_set()
        if new_index < self.index:
            log.info("watch %s: index went backwards (%d -> %d); resetting", self.name, self.index, new_index)
            self.index = 0  # re-read without blocking, then block on the fresh index
        else:
            self.index = max(new_index, 1)  # never block on 0: that would return at once, forever
        if not changed:
            return
        with self._lock:
            self._latest = value
        self.wakeups += 1
        log.debug("watch %s: index %d", self.name, new_index)
        if self.component:
            metrics.watch_wakeups_total.labels(self.component, self.name).inc()
        self._ready.set()
        if self._on_change is not None:
            try:
                self._on_change(value)
            except Exception:  # a consumer bug must not kill the watch
                log.exception("watch %s: change handler failed", self.name)

    def _record_error(self, exc: ConsulError, attempt: int) -> None:
        self.errors += 1
        if self.component:
            metrics.consul_errors_total.labels(self.component, "watch").inc()
        # after a failure, re-read without blocking: a restarted or restored server may now be at a lower
        # index, and a blocking query on the old one would hang for the whole wait before noticing
        self.index = 0
        self.connected = False
        self.last_error = str(exc)
        if attempt in (1, 5) or attempt % 50 == 0:
            log.warning("watch %s: %s (attempt %d, backing off)", self.name, exc, attempt)


def watch_prefix(
    store: KVStore,
    prefix: str,
    on_change: Callable[[Listing], None] | None = None,
    *,
    wait: str = "30s",
    min_interval: float = 0.02,
    component: str | None = None,
) -> Watch[Listing]:
    """A started watch on every key under ``prefix`` (relative to the store's prefix)."""

    def fetch(index: int, wait: str | None) -> tuple[int, Listing]:
        listing = store.list(prefix, index=index, wait=wait)
        return listing.index, listing

    return Watch(f"kv:{prefix}", fetch, on_change, wait=wait, min_interval=min_interval, component=component).start()


def watch_checks(
    services: Services,
    on_change: Callable[[list[CheckState]], None] | None = None,
    *,
    wait: str = "30s",
    component: str | None = None,
) -> Watch[list[CheckState]]:
    """A started watch on every health check in the datacenter (``/v1/health/state/any``): agents register
    one service name per node (``meshop-agent-<node>``), so their checks are not one service's."""
    return Watch("health:any", services.all_checks, on_change, wait=wait, component=component).start()
