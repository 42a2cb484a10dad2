"""Active health checks of the gateway's DNS-served upstreams, done by the gateway itself.

Caddy 2.6 checks only the static upstreams of a ``reverse_proxy``, and keeps the result per dial
address: the names its ``dynamic srv`` lookups return are other addresses to it, so its own checks
never reach them. The gateway therefore probes every upstream of a route with a ``healthPath`` the way
Caddy would (``GET`` of the path with the route's Host, every ``interval``, ``timeout`` each; a status
from 200 to 399 passes) and leaves the failing ones out of its DNS answer (``dynamic_sites``).
"""

from __future__ import annotations

import http.client
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

Target = tuple[str, str, str, int]  # (route host, health path, address, port)


def probe(target: Target, timeout: float) -> bool:
    host, path, address, port = target
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "User-Agent": "meshop-gateway-probe"})
        response = conn.getresponse()
        response.read(65536)
        return 200 <= response.status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class Prober:
    """Probes ``targets`` (set by the daemon each pass) every ``interval`` s; ``failing`` is the set that
    failed their last probe. ``on_change`` runs (in the prober's thread) when that set changes."""

    def __init__(self, on_change: Callable[[], None], interval: float = 5.0, timeout: float = 2.0) -> None:
        self.on_change = on_change
        self.interval = interval
        self.timeout = timeout
        self._targets: frozenset[Target] = frozenset()
        self.failing: frozenset[Target] = frozenset()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="gateway-probe")

    def set_targets(self, targets: Iterable[Target]) -> None:
        targets = frozenset(targets)
        if targets - self._targets:
            self._wake.set()  # a new upstream is probed at once, not up to ``interval`` later
        self._targets = targets

    def start(self) -> Prober:
        self._thread = threading.Thread(target=self._run, name="gateway-prober", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self.probe_once()
            self._wake.wait(self.interval)

    def probe_once(self) -> None:
        targets = sorted(self._targets)
        results = list(self._pool.map(lambda t: probe(t, self.timeout), targets))
        failing = frozenset(t for t, ok in zip(targets, results, strict=True) if not ok)
        if failing != self.failing:
            for host, path, address, port in sorted(failing - self.failing):
                log.warning("upstream %s:%d of %s fails its health path %s", address, port, host, path)
            self.failing = failing
            self.on_change()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)
