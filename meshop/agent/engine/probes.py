"""The agent's own health probes of its replicas (HTTP GET or TCP connect on the published port).

They decide ``ready`` in observed state and gate start-first updates; Consul runs the same check on
its side for discovery. ``HealthMonitor`` probes each target on its own schedule in a small thread
pool (fast, every ``fast_interval``, until a container first passes; then at the spec's interval) and
calls ``on_change`` whenever a result flips, so the reconcile loop runs again at once. A passing
container turns unhealthy after ``failure_threshold`` consecutive failures.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from meshop.agent.planning.desired import host_port
from meshop.agent.planning.plan import Container
from meshop.daemon.threads import DaemonThread
from meshop.model import ServiceSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeTarget:
    kind: str  # http | tcp
    host: str
    port: int
    path: str = "/"
    interval: float = 10.0
    timeout: float = 2.0


def probe_targets(
    containers: Iterable[Container], specs: Mapping[str, ServiceSpec], probe_host: str, host_network_addr: str
) -> dict[str, ProbeTarget]:
    """What to probe: each running container whose service has a health check, on its published port
    (``probe_host``; with host networking on ``host_network_addr``, where the container listens)."""
    targets: dict[str, ProbeTarget] = {}
    for container in containers:
        spec = specs.get(container.service)
        if spec is None or spec.health is None or not container.running:
            continue
        port = host_port(container, spec.health.port, "tcp", spec)
        if not port:
            continue
        host = host_network_addr if spec.network_mode == "host" else probe_host
        health = spec.health
        targets[container.id] = ProbeTarget(
            health.kind, host, port, health.path or "/", health.interval, health.timeout
        )
    return targets


def probe(target: ProbeTarget) -> bool:
    """One probe: an HTTP answer with status 200-399, or a TCP connection accepted, within the timeout."""
    try:
        if target.kind == "tcp":
            with socket.create_connection((target.host, target.port), timeout=target.timeout):
                return True
        conn = http.client.HTTPConnection(target.host, target.port, timeout=target.timeout)
        try:
            conn.request("GET", target.path or "/", headers={"User-Agent": "meshop-agent", "Connection": "close"})
            status = conn.getresponse().status
        finally:
            conn.close()
        return 200 <= status < 400
    except (OSError, http.client.HTTPException):
        return False


@dataclass
class _State:
    target: ProbeTarget
    healthy: bool | None = None
    ever_passed: bool = False
    failures: int = 0
    next_due: float = 0.0
    running: bool = False


class HealthMonitor:
    def __init__(
        self,
        on_change: Callable[[], None],
        *,
        fast_interval: float = 0.2,
        failure_threshold: int = 2,
        workers: int = 8,
        prober: Callable[[ProbeTarget], bool] = probe,
    ) -> None:
        self._on_change = on_change
        self._fast = fast_interval
        self._threshold = failure_threshold
        self._probe = prober
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}
        self._kick = threading.Event()
        self._thread = DaemonThread("health-monitor", self._run, on_stop=self._kick.set)
        self._stop = self._thread.stopping

    def start(self) -> HealthMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.signal()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def update(self, targets: Mapping[str, ProbeTarget]) -> None:
        """Probe exactly these containers from now on (container id -> target)."""
        with self._lock:
            for cid in set(self._states) - set(targets):
                del self._states[cid]
            for cid, target in targets.items():
                state = self._states.get(cid)
                if state is None or state.target != target:
                    self._states[cid] = _State(target)
        self._kick.set()

    def results(self) -> dict[str, bool]:
        """Container id -> latest verdict, for containers probed at least once."""
        with self._lock:
            return {cid: s.healthy for cid, s in self._states.items() if s.healthy is not None}

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                due = [(cid, s) for cid, s in self._states.items() if not s.running and s.next_due <= now]
                for _, state in due:
                    state.running = True
                upcoming = [s.next_due for s in self._states.values() if not s.running]
            for cid, state in due:
                try:
                    self._pool.submit(self._probe_one, cid, state)
                except RuntimeError:  # pool shut down: stopping
                    return
            wait = min(upcoming, default=now + 1.0) - now
            self._kick.wait(max(0.01, min(wait, 1.0)))
            self._kick.clear()

    def _probe_one(self, cid: str, state: _State) -> None:
        ok = self._probe(state.target)
        changed = False
        with self._lock:
            state.running = False
            if self._states.get(cid) is not state:
                return  # replaced or dropped meanwhile
            before = state.healthy
            if ok:
                state.failures = 0
                state.healthy = True
                state.ever_passed = True
            else:
                state.failures += 1
                if not state.ever_passed or state.failures >= self._threshold:
                    state.healthy = False
            interval = state.target.interval if state.ever_passed else min(self._fast, state.target.interval)
            state.next_due = time.monotonic() + interval
            changed = before != state.healthy
        self._kick.set()
        if changed:
            log.debug("container %s is now %s", cid[:12], "healthy" if state.healthy else "unhealthy")
            self._on_change()
