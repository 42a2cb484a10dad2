"""The usage sampler's pass: rates from two reads, a write only when worth it, series for gone replicas
removed, and a replica whose read fails left out of that pass only."""

from __future__ import annotations

from prometheus_client import REGISTRY

from meshop.agent.clocks import Clocks
from meshop.agent.planning.plan import Container
from meshop.agent.planning.usage import ContainerSample, HostSample
from meshop.agent.sampler import UsageSampler
from meshop.errors import ConsulError, DriverError
from meshop.model.records import UsageRecord


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Stats:
    def __init__(self) -> None:
        self.cpu: dict[str, int] = {}
        self.fail: set[str] = set()

    def stats(self, container_id: str) -> ContainerSample | None:
        if container_id in self.fail:
            raise DriverError(f"{container_id}: gone")
        cpu = self.cpu.get(container_id, 0)
        return ContainerSample(cpu, 0, 1, 50 * 2**20, 2**30, cpu // 1000, 0, 0, 0)


class Host:
    def __init__(self) -> None:
        self.busy = 0

    def sample(self) -> HostSample:
        self.busy += 50
        return HostSample(self.busy, self.busy * 2, 2, 2**30, 2**32, (0.1, 0.1, 0.1), 1, 2)


class Sink:
    def __init__(self) -> None:
        self.records: list[UsageRecord] = []
        self.down = False

    def publish(self, record: UsageRecord) -> None:
        if self.down:
            raise ConsulError("Consul unreachable")
        self.records.append(record)


def _container(cid: str, service: str, replica: int, state: str = "running") -> Container:
    return Container(cid, f"{service}-{replica}", service, replica, "h", "c", 1, "img", state)


def _sampler() -> tuple[UsageSampler, Stats, Sink, Clock, list[Container]]:
    stats, sink, clock = Stats(), Sink(), Clock()
    containers = [_container("a", "web", 0), _container("b", "web", 1), _container("c", "db", 0, "exited")]
    sampler = UsageSampler(
        "sampler-n1", stats, lambda: containers, Host(), sink, clocks=Clocks(wall=clock, mono=clock), interval=10
    )
    return sampler, stats, sink, clock, containers


def _gauge(service: str, replica: str) -> float | None:
    labels = {"service": service, "replica": replica, "node": "sampler-n1"}
    return REGISTRY.get_sample_value("meshop_replica_cpu_percent", labels)


def test_rates_writes_and_series() -> None:
    sampler, stats, sink, clock, containers = _sampler()
    try:
        assert sampler.sample_once() is None  # the first pass has nothing to compare with
        clock.t += 10
        stats.cpu = {"a": 5 * 10**9, "b": 10**9}  # 5 s and 1 s of CPU in 10 s
        record = sampler.sample_once()
        assert record is not None and sink.records == [record]
        assert [(r.service, r.replica, r.cpu) for r in record.replicas] == [("web", 0, 50.0), ("web", 1, 10.0)]
        assert record.cpu == 100.0 and record.memory == 2**30 and record.refresh == 30.0
        assert _gauge("web", "0") == 50.0
        clock.t += 10
        stats.cpu = {"a": 10 * 10**9, "b": 2 * 10**9}  # the same rates: no write
        sampler.sample_once()
        assert len(sink.records) == 1
        clock.t += 10
        stats.fail = {"b"}  # web-1's read fails: left out, its series goes
        stats.cpu["a"] = 15 * 10**9
        record = sampler.sample_once()
        assert record is not None and [r.replica for r in record.replicas] == [0]
        assert len(sink.records) == 2 and _gauge("web", "1") is None
        containers.pop(0)
        clock.t += 10
        assert sampler.sample_once() is not None and _gauge("web", "0") is None
    finally:
        sampler.stop()


def test_consul_down_skips_the_write_and_retries_next_pass() -> None:
    sampler, _stats, sink, clock, _ = _sampler()
    try:
        sampler.sample_once()
        sink.down = True
        clock.t += 10
        sampler.sample_once()
        assert sink.records == []
        sink.down = False
        clock.t += 10
        sampler.sample_once()
        assert len(sink.records) == 1
    finally:
        sampler.stop()
