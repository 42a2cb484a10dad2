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
    fails: int = 0
    deregistered: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # "register" / "pass" / "fail", in order

    def register(self, reg: Registration) -> None:
        self.registered.append(reg)
        self.calls.append("register")

    def ttl_pass(self, check_id: str, note: str = "") -> None:
        if self.fail_ttl:
            raise ConsulUnavailable("Consul at http://127.0.0.1:1 is unreachable (test)")
        self.passes += 1
        self.calls.append("pass")

    def ttl_fail(self, check_id: str, note: str = "") -> None:
        self.fails += 1
        self.calls.append("fail")

    def deregister(self, service_id: str) -> None:
        self.deregistered.append(service_id)


@dataclass
class FakeStore:
    puts: list[tuple[str, str]] = field(default_factory=list)
    reads: int = 0
    down: bool = False  # the Consul servers do not answer (the local agent still does)

    def put(self, key: str, value: str) -> None:
        if self.down:
            raise ConsulUnavailable("Consul at http://127.0.0.1:1 is unreachable (test)")
        self.puts.append((key, value))

    def get(self, key: str) -> None:
        if self.down:
            raise ConsulUnavailable("Consul at http://127.0.0.1:1 is unreachable (test)")
        self.reads += 1


@dataclass
class Passes:
    """The daemon's count of reconcile passes that acted with Consul answering, and the wake-ups asked."""

    count: int = 1
    wakes: int = 0

    def __call__(self) -> int:
        return self.count

    def wake(self) -> None:
        self.wakes += 1


def presence_of(services: FakeServices, store: FakeStore, passes: Passes, **kw: object) -> NodePresence:
    record = NodeRecord("n1", "10.0.0.1", {"zone": "a"})
    return NodePresence(  # type: ignore[arg-type]
        store, services, lambda: record, ttl=10, interval=60, passes=passes, wake=passes.wake, **kw
    )


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
        "meshop-agent-n1",  # a name only n1's token may write
        9464,
        "n1",
    )
    (check,) = reg.checks
    # registered critical (Consul keeps a re-registered check's status), passed in the same beat: settled
    assert (check.check_id, check.ttl, check.initial_status) == ("meshop-agent-n1:ttl", "10s", "critical")
    assert services.calls == ["register", "register", "pass"]
    assert [k for k, _ in store.puts] == ["nodes/n1"]
    presence.beat()
    assert services.passes == 2 and len(store.puts) == 1 and store.reads == 1  # unchanged: read, not rewritten
    services.fail_ttl = True
    presence.beat()
    assert not presence.registered
    services.fail_ttl = False
    presence.beat()
    assert len(services.registered) == 4  # registered again
    presence.stop()
    assert services.deregistered == ["meshop-agent-n1", "meshop-metrics-agent-n1.n1"]


def test_a_starting_agent_holds_its_check_and_record_until_a_pass_acted_then_reports_at_once() -> None:
    """A node back from a power loss is Ready only after its first pass removed its stale copies: until a
    pass acted the check is failed (once: the catalog may hold it passing from before), never passed, and
    the record is not written; a beat that reaches the servers asks for a pass; the poke that follows the
    pass passes the check and writes the record without waiting for the next interval."""
    services, store, passes = FakeServices(), FakeStore(), Passes(count=0)
    presence = presence_of(services, store, passes)
    presence.beat()
    presence.beat()
    assert services.calls == ["register", "fail"] and store.puts == []
    assert passes.wakes == 2 and store.reads == 2
    presence.start()  # its first beat changes nothing; the next is 60 s away
    try:
        wait_until(lambda: presence.beats == 3, 5, what="the thread's first beat")
        assert services.passes == 0
        passes.count = 1
        presence.poke()
        wait_until(lambda: store.puts, 5, what="the record written right after the poke")
        assert services.calls == ["register", "fail", "pass"] and presence.reported
    finally:
        presence.stop(deregister=False)


def test_after_losing_the_servers_the_node_reports_back_only_after_a_new_pass() -> None:
    """A partition: the local Consul agent still takes the TTL, only the beat's read fails. After the heal
    the check is held and the record waits for a pass that acted since; then the record is rewritten
    although unchanged (its ModifyIndex must move: the controller takes a lost node back on that)."""
    services, store, passes = FakeServices(), FakeStore(), Passes(count=1)
    presence = presence_of(services, store, passes)
    presence.beat()
    presence.beat()
    assert len(store.puts) == 1 and services.passes == 2
    store.down = True
    presence.beat()  # cut off
    store.down = False
    presence.beat()  # healed: held, no record, a pass asked for
    assert services.calls[-1] == "fail" and len(store.puts) == 1 and passes.wakes == 1
    passes.count = 2
    presence.beat()
    assert services.calls[-1] == "pass" and len(store.puts) == 2 and store.puts[0] == store.puts[1]


def test_a_frozen_agent_reports_back_only_after_a_new_pass() -> None:
    """Beats more than a TTL apart (the process was stopped): the node may have been declared lost."""
    services, store, passes = FakeServices(), FakeStore(), Passes(count=1)
    presence = presence_of(services, store, passes)
    presence.beat()
    assert presence.reported and presence.last_contact is not None
    presence.last_contact -= 11  # the last answer was more than the 10 s TTL ago
    presence.beat()
    assert not presence.reported and services.calls[-1] == "fail" and len(store.puts) == 1
    passes.count = 2
    presence.beat()
    assert presence.reported and len(store.puts) == 2


def test_a_slow_first_pass_passes_the_check_after_a_ttl_but_writes_no_record() -> None:
    services, store, passes = FakeServices(), FakeStore(), Passes(count=0)
    presence = presence_of(services, store, passes)
    presence.beat()
    presence.waiting_since -= 10
    presence.beat()
    assert services.calls == ["register", "fail", "pass"] and store.puts == []


def _alive(names: set[str]) -> set[str]:
    return {t.name for t in threading.enumerate() if t.name in names and t.is_alive()}


def test_heartbeat_and_lock_keeper_threads_keep_their_names_and_stop_at_once() -> None:
    """Both run on ``daemon.threads.DaemonThread``: named as thread dumps have always shown them, and a
    stop interrupts their waits (the heartbeat's 60 s interval, the keeper's renew and watch ticks)."""
    import time

    from meshop.agent.stateful.keeper import VolumeLockKeeper
    from tests.unit.agent.stateful.test_keeper import Clock, Engine, Table

    names = {"heartbeat", "volume-lock-renewer", "volume-lock-watchdog"}
    assert _alive(names) == set()
    services, store, passes = FakeServices(), FakeStore(), Passes()
    presence = presence_of(services, store, passes).start()
    clock = Clock()
    keeper = VolumeLockKeeper("n1", Table(clock), Engine(), mono=clock).start()
    try:
        wait_until(lambda: _alive(names) == names, 5, what="the three threads, by name")
        wait_until(lambda: presence.beats >= 1, 5, what="a first beat")
    finally:
        began = time.monotonic()
        presence.stop(deregister=False)
        keeper.stop()
    assert time.monotonic() - began < 2.0, "a stop waited out an interval"
    assert _alive(names) == set()
