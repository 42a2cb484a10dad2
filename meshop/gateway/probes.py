"""Active health checks of the gateway's DNS-served upstreams, done by the gateway itself.

Caddy 2.6 checks only the static upstreams of a ``reverse_proxy`` and keeps health per dial address;
the upstreams its ``dynamic srv`` lookups return live for one request, so neither its active checks nor
its passive failure counts carry over to the next request. The gateway therefore checks them itself
and leaves the failing ones out of its DNS answer (``dynamic_sites``):

* every distinct upstream address (a node's Caddy): a TCP connect every ``tcp_interval`` (1 s, 1 s
  timeout), so a powered-off node leaves every route within about 2 s, before Consul's failure
  detection says so and without each request waiting for a dial timeout there first;
* every upstream of a route with a ``healthPath``, the way Caddy's active check would: ``GET`` of the
  path with the route's Host every ``http_interval`` (5 s), ``timeout`` each; 200 to 399 passes.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from meshop.daemon.threads import DaemonThread

log = logging.getLogger(__name__)

Target = tuple[str, str, str, int]  # (route host, health path, address, port); ("", "", a, p): TCP connect


def probe(target: Target, timeout: float) -> bool:
    host, path, address, port = target
    if not path:
        try:
            socket.create_connection((address, port), timeout=timeout).close()
        except OSError:
            return False
        return True
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

    def __init__(
        self,
        on_change: Callable[[], None],
        http_interval: float = 5.0,
        tcp_interval: float = 1.0,
        timeout: float = 2.0,
        tcp_timeout: float = 1.0,
    ) -> None:
        self.on_change = on_change
        self.http_interval = http_interval
        self.tcp_interval = tcp_interval
        self.timeout = timeout
        self.tcp_timeout = tcp_timeout
        self._http_done = -float("inf")  # monotonic time of the last round of HTTP probes
        self._results: dict[Target, bool] = {}
        self._targets: frozenset[Target] = frozenset()
        self.failing: frozenset[Target] = frozenset()
        self._wake = threading.Event()
        self._thread = DaemonThread("gateway-prober", self._run, on_stop=self._wake.set)
        self._stop = self._thread.stopping
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="gateway-probe")

    def set_targets(self, targets: Iterable[Target]) -> None:
        targets = frozenset(targets)
        if targets - self._targets:
            self._wake.set()  # a new upstream is probed at once, not up to ``interval`` later
        self._targets = targets

    def start(self) -> Prober:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self.probe_once(time.monotonic())
            self._wake.wait(self.tcp_interval)

    def probe_once(self, now: float) -> None:
        """TCP targets every round, HTTP targets every ``http_interval``, new targets at once."""
        targets = self._targets
        due_http = now - self._http_done >= self.http_interval
        if due_http:
            self._http_done = now
        chosen = sorted(t for t in targets if not t[1] or due_http or t not in self._results)
        results = self._pool.map(lambda t: probe(t, self.timeout if t[1] else self.tcp_timeout), chosen)
        known = {t: ok for t, ok in self._results.items() if t in targets}
        known.update(zip(chosen, results, strict=True))
        self._results = known
        failing = frozenset(t for t, ok in known.items() if not ok)
        if failing != self.failing:
            for host, path, address, port in sorted(failing - self.failing):
                if path:
                    log.warning("upstream %s:%d of %s fails its health path %s", address, port, host, path)
                else:
                    log.warning("upstream %s:%d does not accept connections", address, port)
            for _host, _path, address, port in sorted(self.failing - failing):
                log.info("upstream %s:%d passes its check again", address, port)
            self.failing = failing
            self.on_change()

    def stop(self) -> None:
        self._thread.stop(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)
