"""The agent's background threads with in-memory stand-ins: events follower reconnects, heartbeat
re-registers (both also run against real Docker and Consul in tests/integration/agent)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from meshop.agent.cluster.presence import NodePresence
from meshop.agent.engine.event_watcher import DockerEventsWatcher
from meshop.consul.services import Registration
from meshop.daemon.wakeup import Wakeup
from meshop.errors import ConsulUnavailable, DriverError
from meshop.model.records import NodeRecord
from tests.support.procs import wait_until


class FlakyEvents:
    """First stream breaks after one event; the second delivers events until closed."""

    def __init__(self) -> None:
        self.opened = 0
        self.streams: list[FlakyEvents.Stream] = []

    def events(self) -> FlakyEvents.Stream:
        self.opened += 1
        self.streams.append(FlakyEvents.Stream(self.opened))
        return self.streams[-1]

    class Stream:
        def __init__(self, number: int) -> None:
            self.number = number
            self.closed = threading.Event()

        def __iter__(self) -> Iterator[dict]:
            yield {"Action": "die", "id": "c1"}
            if self.number == 1:
                raise DriverError("Docker events stream broke (test)")
            yield {"Action": "start", "id": "c1"}  # not a drift signal
            yield {"Action": "destroy", "id": "c1"}
            self.closed.wait(5)

        def close(self) -> None:
            self.closed.set()


def test_events_follower_wakes_on_drift_and_reconnects() -> None:
    runtime = FlakyEvents()
    wakeup = Wakeup()
    watcher = DockerEventsWatcher(runtime, wakeup, max_backoff=0.05).start()  # type: ignore[arg-type]
    try:
        wait_until(lambda: runtime.opened == 2 and watcher.received >= 4, 5, what="a reconnect and four events")
        reasons: set[str] = set()
        wait_until(
            lambda: reasons.update(wakeup.wait(0.01)) or {"docker", "docker-connect"} <= reasons,
            5,
            what="docker and reconnect wake-ups",
        )
        assert watcher.connected.is_set()
    finally:
        watcher.stop()
    assert all(stream.closed.is_set() for stream in runtime.streams)


@dataclass
class FakeServices:
    fail_ttl: bool = False
    registered: list[Registration] = field(default_factory=list)
    passes: int = 0
    deregistered: list[str] = field(default_factory=list)

    def register(self, reg: Registration) -> None:
        self.registered.append(reg)

    def ttl_pass(self, check_id: str, note: str = "") -> None:
        if self.fail_ttl:
            raise ConsulUnavailable("Consul at http://127.0.0.1:1 is unreachable (test)")
        self.passes += 1

    def deregister(self, service_id: str) -> None:
        self.deregistered.append(service_id)


@dataclass
class FakeStore:
    puts: list[tuple[str, str]] = field(default_factory=list)

    def put(self, key: str, value: str) -> None:
        self.puts.append((key, value))


def test_heartbeat_registers_passes_and_registers_again_after_a_failure() -> None:
    services, store = FakeServices(), FakeStore()
    record = NodeRecord("n1", "10.0.0.1", {"zone": "a"})
    presence = NodePresence(  # type: ignore[arg-type]
        store, services, lambda: record, port=9464, metrics_listen="127.0.0.1:9464", ttl=10, interval=3
    )
    presence.beat()
    reg, scrape = services.registered
    expected = ("meshop-metrics-agent-n1.n1", "meshop-metrics-agent-n1", 9464)
    assert (scrape.service_id, scrape.name, scrape.port) == expected
    assert (reg.service_id, reg.name, reg.port, dict(reg.meta)["node"]) == (
        "meshop-agent-n1",
        "meshop-agent",
        9464,
        "n1",
    )
    (check,) = reg.checks
    assert (check.check_id, check.ttl, check.initial_status) == ("meshop-agent-n1:ttl", "10s", "passing")
    assert [k for k, _ in store.puts] == ["nodes/n1"]
    presence.beat()
    assert services.passes == 1 and len(store.puts) == 1  # unchanged record: not rewritten
    services.fail_ttl = True
    presence.beat()
    assert not presence.registered
    services.fail_ttl = False
    presence.beat()
    assert len(services.registered) == 4 and len(store.puts) == 2  # registered and written again
    presence.stop()
    assert services.deregistered == ["meshop-agent-n1", "meshop-metrics-agent-n1.n1"]
