"""The agent's usage sampler: every ``interval`` seconds, the counters of each running replica (Docker's
stats API, one-shot reads, at most ``workers`` at once, 16 by default) and of the host (/proc), turned into rates by
``planning.usage``, exported as Prometheus gauges and written to ``usage/<node>`` when worth it.

It runs in its own thread, beside the reconcile loop, and never changes anything: it reads the
containers the last pass listed (``containers``), so it makes no listing of its own, and a failed read
of one replica (gone meanwhile, a broken answer) leaves that replica out of this pass only. A Consul
failure skips the write; the next pass tries again (the record is whole each time).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from meshop import metrics
from meshop.agent.clocks import SYSTEM, Clocks
from meshop.agent.planning.plan import Container
from meshop.agent.planning.usage import (
    ContainerSample,
    HostSample,
    node_record,
    replica_usage,
    worth_writing,
)
from meshop.daemon.threads import DaemonThread
from meshop.errors import ConsulError, DriverError
from meshop.model.records import ReplicaUsage, UsageRecord

log = logging.getLogger(__name__)

INTERVAL = 10.0  # seconds between samples: at most 6 KV writes a minute
REFRESH = 30.0  # the record is rewritten at least this often, so readers see a stopped agent as stale
# stats reads at once. Docker answers a one-shot read at its stats collector's next tick (every second,
# for every container at once): the reads in flight share a tick, so 16 make a pass of 50 replicas ~4 s;
# waiting threads cost no CPU. The driver keeps 32 connections: these 16 and the executor's 16.
WORKERS = 16


class StatsSource(Protocol):
    """``engine.runtime.Runtime.stats``."""

    def stats(self, container_id: str, /) -> ContainerSample | None: ...


class HostSource(Protocol):
    """``engine.host.HostReader``."""

    def sample(self) -> HostSample | None: ...


class UsageSink(Protocol):
    """``cluster.usage.UsageWriter``."""

    def publish(self, record: UsageRecord, /) -> None: ...


class UsageSampler:
    def __init__(
        self,
        node: str,
        runtime: StatsSource,
        containers: Callable[[], Sequence[Container]],
        host: HostSource | None = None,
        sink: UsageSink | None = None,
        *,
        clocks: Clocks = SYSTEM,
        interval: float = INTERVAL,
        refresh: float = REFRESH,
        workers: int = WORKERS,
    ) -> None:
        self.node = node
        self.runtime = runtime
        self.containers = containers
        self.host = host
        self.sink = sink
        self.clocks = clocks
        self.interval = interval
        self.refresh = max(refresh, interval)
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="usage-stats")
        self._previous: dict[str, tuple[float, ContainerSample]] = {}  # container id -> (mono, sample)
        self._host_previous: HostSample | None = None
        self._last_mono: float | None = None
        self._written: UsageRecord | None = None
        self._written_at = 0.0
        self._failing = False
        self._series: set[tuple[str, str]] = set()  # (service, replica) with exported gauges
        self.latest: UsageRecord | None = None
        self.thread = DaemonThread(f"usage-{node}", self._run)

    # -- one pass ------------------------------------------------------------------------------------

    def sample_once(self) -> UsageRecord | None:
        """Read, compute, export, maybe write; the record (None on the very first pass: no rates yet)."""
        running = [c for c in self.containers() if c.running and c.replica >= 0]
        samples = dict(zip((c.id for c in running), self._pool.map(self._read, running), strict=True))
        host = self.host.sample() if self.host is not None else None
        now, wall = self.clocks.mono(), self.clocks.wall()
        merged: dict[tuple[str, int], ReplicaUsage] = {}
        for container in running:
            sample, before = samples[container.id], self._previous.get(container.id)
            if sample is None or before is None:
                continue
            usage = replica_usage(container.service, container.replica, before[1], sample, now - before[0])
            if usage is not None:
                key = (usage.service, usage.replica)
                merged[key] = _add(merged[key], usage) if key in merged else usage  # old + new during an update
        self._previous = {cid: (now, s) for cid, s in samples.items() if s is not None}
        host_pair = (self._host_previous, host) if self._host_previous is not None and host is not None else None
        self._host_previous = host
        seconds = now - self._last_mono if self._last_mono is not None else 0.0
        first = self._last_mono is None
        self._last_mono = now
        if first:
            return None
        record = node_record(self.node, wall, seconds, self.refresh, host_pair, list(merged.values()))
        self.latest = record
        self._export(record)
        if self.sink is not None and worth_writing(self._written, record, now - self._written_at):
            try:
                self.sink.publish(record)
            except ConsulError as exc:
                metrics.usage_writes_total.labels("error").inc()
                # once per streak: an agent token from before usage/<node> (acl sync adds it) fails every pass
                log.log(logging.DEBUG if self._failing else logging.WARNING, "cannot write the usage record: %s", exc)
                self._failing = True
            else:
                metrics.usage_writes_total.labels("ok").inc()
                self._written, self._written_at, self._failing = record, now, False
        return record

    def _read(self, container: Container) -> ContainerSample | None:
        try:
            return self.runtime.stats(container.id)
        except DriverError as exc:  # gone meanwhile, engine busy: no sample this time
            log.debug("no stats for %s: %s", container.name, exc)
            return None

    def _export(self, record: UsageRecord) -> None:
        node = self.node
        series: set[tuple[str, str]] = set()
        for r in record.replicas:
            labels = (r.service, str(r.replica), node)
            series.add((r.service, str(r.replica)))
            metrics.replica_cpu_percent.labels(*labels).set(r.cpu)
            metrics.replica_memory_bytes.labels(*labels).set(r.memory)
            metrics.replica_memory_limit_bytes.labels(*labels).set(r.memory_limit)
            for direction in ("rx", "tx", "read", "write"):
                metrics.replica_io_bytes_per_second.labels(*labels, direction).set(getattr(r, direction))
        for service, replica in self._series - series:  # gone: its series go too (bounded label sets)
            for gauge in (
                metrics.replica_cpu_percent,
                metrics.replica_memory_bytes,
                metrics.replica_memory_limit_bytes,
            ):
                _drop(gauge, service, replica, node)
            for direction in ("rx", "tx", "read", "write"):
                _drop(metrics.replica_io_bytes_per_second, service, replica, node, direction)
        self._series = series
        if record.memory_total:
            metrics.node_cpu_percent.labels(node).set(record.cpu)
            metrics.node_memory_bytes.labels(node, "used").set(record.memory)
            metrics.node_memory_bytes.labels(node, "total").set(record.memory_total)
            metrics.node_disk_bytes.labels(node, "used").set(record.disk)
            metrics.node_disk_bytes.labels(node, "total").set(record.disk_total)
            for window, value in (("1m", record.load1), ("5m", record.load5), ("15m", record.load15)):
                metrics.node_load.labels(node, window).set(value)

    # -- the thread ----------------------------------------------------------------------------------

    def start(self) -> UsageSampler:
        self.thread.start()
        return self

    def _run(self) -> None:
        stopping = self.thread.stopping
        while not stopping.is_set():
            began = self.clocks.mono()
            try:
                with metrics.usage_sample_duration_seconds.time():
                    self.sample_once()
            except Exception:  # a bug in sampling must never take the agent down
                log.exception("usage pass failed")
            stopping.wait(max(0.0, self.interval - (self.clocks.mono() - began)))

    def stop(self, timeout: float = 5.0) -> None:
        self.thread.stop(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)


def _add(a: ReplicaUsage, b: ReplicaUsage) -> ReplicaUsage:
    return ReplicaUsage(
        service=a.service,
        replica=a.replica,
        cpu=round(a.cpu + b.cpu, 2),
        memory=a.memory + b.memory,
        memory_limit=max(a.memory_limit, b.memory_limit),
        rx=a.rx + b.rx,
        tx=a.tx + b.tx,
        read=a.read + b.read,
        write=a.write + b.write,
    )


def _drop(gauge: metrics.Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)
