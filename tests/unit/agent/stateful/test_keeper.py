"""The volume lock keeper with a stepped clock, an in-memory lock table and a recording killer.

The in-memory backend implements Consul's rules that matter here: one session per lock, lock-delay
after an invalidation, a renewal of an unknown session answers False. The real Consul is exercised by
tests/integration/agent/test_volume_locks.py.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field

import pytest

from meshop.agent.cluster.volume_locks import LockRecord
from meshop.agent.stateful import timing
from meshop.agent.stateful.keeper import VolumeLockKeeper
from meshop.errors import ConsulError


def test_the_single_writer_inequality_holds_for_the_constants() -> None:
    """docs/stateful.md: the old copy is dead before any other node can take the lock."""
    dead_by = (timing.GIVE_UP + timing.WATCH_TICK + timing.KILL_BUDGET) * (1 + timing.RATE_ERROR)
    assert dead_by < timing.LOCK_DELAY
    assert timing.margin() == pytest.approx(timing.LOCK_DELAY - dead_by)
    assert timing.GIVE_UP >= 2 * timing.RENEW_EVERY  # one slow renewal does not kill the service
    assert 0 < timing.START_FRESH < timing.GIVE_UP
    assert timing.TTL >= 10.0 and timing.LOCK_DELAY <= 60.0  # Consul's limits
    timing.check()


def test_check_refuses_constants_that_break_the_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timing, "LOCK_DELAY", timing.GIVE_UP + timing.KILL_BUDGET)
    with pytest.raises(AssertionError, match="single-writer timing broken"):
        timing.check()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Table:
    """Consul's sessions and locks, in memory; ``down`` makes every call fail like an unreachable Consul."""

    clock: Clock
    sessions: set[str] = field(default_factory=set)
    locks: dict[tuple[str, str], LockRecord] = field(default_factory=dict)
    delay_until: dict[tuple[str, str], float] = field(default_factory=dict)
    down: bool = False
    made: int = 0

    def _up(self) -> None:
        if self.down:
            raise ConsulError("Consul at 127.0.0.1:8500 failed: connection refused")

    def create_session(self, ttl: float, lock_delay: float) -> str:
        self._up()
        self.made += 1
        self.sessions.add(f"s{self.made}")
        return f"s{self.made}"

    def renew(self, session: str) -> bool:
        self._up()
        return session in self.sessions

    def destroy(self, session: str) -> None:
        self._up()
        self.invalidate(session)

    def invalidate(self, session: str) -> None:
        """As Consul does on TTL expiry or destroy: locks freed, lock-delay starts."""
        self.sessions.discard(session)
        for key, record in list(self.locks.items()):
            if record.session == session:
                self.locks[key] = LockRecord(record.node, record.volume, record.since, None)
                self.delay_until[key] = self.clock() + timing.LOCK_DELAY

    def read(self, service: str, volume: str) -> LockRecord | None:
        self._up()
        return self.locks.get((service, volume))

    def acquire(self, service: str, volume: str, session: str, record: LockRecord) -> bool:
        self._up()
        key = (service, volume)
        held = self.locks.get(key)
        if session not in self.sessions or (held is not None and held.session not in (None, session)):
            return False
        if self.clock() < self.delay_until.get(key, 0.0):
            return False
        self.locks[key] = record
        return True

    def release(self, service: str, volume: str, session: str, value: LockRecord) -> None:
        self._up()
        record = self.locks.get((service, volume))
        if record is not None and record.session == session:
            self.locks[(service, volume)] = LockRecord(value.node, value.volume, value.since, None, value.pending)


class Engine:
    """Running stateful copies by service; ``kill_unlocked`` kills the others, as the Docker driver does."""

    def __init__(self, running: set[str] | None = None) -> None:
        self.running = set(running or ())
        self.killed: list[str] = []

    def kill_unlocked(self, allowed: Set[str]) -> list[str]:
        gone = sorted(s for s in self.running if s not in allowed)
        self.running -= set(gone)
        self.killed += gone
        return gone


DB = {"db": [("data", "meshop-n1-db-data")]}


def keeper(table: Table, engine: Engine, clock: Clock, node: str = "n1") -> tuple[VolumeLockKeeper, list[str]]:
    lost: list[str] = []
    k = VolumeLockKeeper(node, table, engine, mono=clock, wall=lambda: 1.7e9, on_lost=lambda s, why: lost.append(s))
    return k, lost


def test_takes_the_lock_then_may_run_and_the_watchdog_leaves_the_copy_alone() -> None:
    clock = Clock()
    table, engine = Table(clock), Engine()
    k, _ = keeper(table, engine, clock)
    assert k.sync(DB, set()) == {}
    assert k.may_run("db")
    engine.running.add("db")
    for _ in range(10):  # renewing on schedule, for much longer than GIVE_UP
        clock.now += timing.RENEW_EVERY
        k.renew_once()
        assert k.watch_once() == []
    assert engine.running == {"db"}
    assert table.locks[("db", "data")].node == "n1" and table.locks[("db", "data")].volume == "meshop-n1-db-data"


def test_a_copy_running_without_a_lock_is_killed_at_the_first_look() -> None:
    """After an agent restart (or a reboot) nothing is held yet: whatever stateful copy runs dies."""
    clock = Clock()
    engine = Engine({"db"})
    k, _ = keeper(Table(clock), engine, clock)
    assert k.watch_once() == ["db"]
    assert engine.running == set()


@pytest.mark.parametrize("failure", ["consul-down", "renewal-hangs"])
def test_cannot_renew_kills_before_give_up_plus_a_tick(failure: str) -> None:
    clock = Clock()
    table, engine = Table(clock), Engine()
    k, lost = keeper(table, engine, clock)
    k.sync(DB, set())
    engine.running.add("db")
    last_ok = clock.now
    if failure == "consul-down":
        table.down = True
    step = timing.WATCH_TICK
    while "db" in engine.running:
        clock.now += step
        if failure == "consul-down" and round((clock.now - last_ok) / step) % 10 == 0:
            k.renew_once()  # fails: last_ok stays
        k.watch_once()
        assert clock.now - last_ok <= timing.GIVE_UP + step + 1e-9, "the copy outlived GIVE_UP"
    assert clock.now - last_ok > timing.GIVE_UP
    assert lost == ["db"] and not k.may_run("db")
    if failure == "consul-down":  # it starts nothing while Consul is away: the next pass is fenced
        assert k.sync(DB, set())["db"].reason == "VolumeLockStale"
        # Consul is back and the session still valid (it renewed before its TTL ran out in Consul):
        # the same session still holds the lock, so the service may run again, with no new session
        table.down = False
        k.renew_once()
        assert k.sync(DB, set()) == {} and k.may_run("db") and table.made == 1


def test_never_two_writers_across_a_partition_with_a_takeover() -> None:
    """n1 is cut off; its session expires in Consul; n2 waits out lock-delay, takes the lock and runs.
    At every step at most one copy runs, and n1's copy is dead before n2 may take the lock."""
    clock = Clock()
    table = Table(clock)
    e1, e2 = Engine(), Engine()
    k1, _ = keeper(table, e1, clock, "n1")
    k2, _ = keeper(table, e2, clock, "n2")
    assert k1.sync(DB, set()) == {}
    e1.running.add("db")
    session = table.locks[("db", "data")].session
    assert k2.sync(DB, set())["db"].reason == "VolumeLocked"
    table.down = True  # n1 is partitioned: its calls fail (n2's are separate in reality; see below)
    cut = clock.now
    expired = False
    while clock.now - cut < 60:
        clock.now += timing.WATCH_TICK
        table.down = True
        k1.renew_once()
        k1.watch_once()
        table.down = False
        if not expired and clock.now - cut >= timing.TTL:  # the earliest Consul may expire the session
            table.invalidate(str(session))
            expired = True
        if k2.sync(DB, set()) == {}:
            e2.running.add("db")
        assert not (e1.running and e2.running), f"two writers at +{clock.now - cut:.1f}s"
    assert e2.running == {"db"} and e1.running == set()
    assert table.locks[("db", "data")].node == "n2"
    taken = k2.taken("db")["data"]
    assert taken.previous is not None and taken.previous.node == "n1"  # a move: failover restores


def test_a_lock_taken_away_in_consul_kills_at_the_next_renewal() -> None:
    clock = Clock()
    table, engine = Table(clock), Engine()
    k, lost = keeper(table, engine, clock)
    k.sync(DB, set())
    engine.running.add("db")
    table.locks[("db", "data")] = LockRecord("n9", "x", 0.0, "someone-else")
    k.renew_once()
    assert engine.running == set() and lost == ["db"]


def test_session_unknown_to_consul_loses_every_lock_and_a_new_one_is_made() -> None:
    clock = Clock()
    table, engine = Table(clock), Engine()
    k, lost = keeper(table, engine, clock)
    k.sync(DB, set())
    engine.running.add("db")
    table.invalidate("s1")  # an operator's `consul session destroy`, or its TTL ran out
    k.renew_once()
    assert engine.running == set() and lost == ["db"]
    assert k.sync(DB, set())["db"].reason == "VolumeLockDelay"  # lock-delay holds for its old holder too
    clock.now += timing.LOCK_DELAY
    k.renew_once()
    assert k.sync(DB, set()) == {}
    assert table.made == 2


def test_locks_are_released_once_the_service_and_its_containers_are_gone() -> None:
    clock = Clock()
    table, engine = Table(clock), Engine()
    k, _ = keeper(table, engine, clock)
    k.sync(DB, set())
    k.sync({}, {"db"})  # unassigned, but its container is still here
    assert table.locks[("db", "data")].session is not None
    k.sync({}, set())
    assert table.locks[("db", "data")].session is None
    assert table.delay_until == {}  # a release, not an invalidation: the next holder need not wait


def test_stop_kills_releases_and_ends_the_session() -> None:
    clock = Clock()
    table, engine = Table(clock), Engine()
    k, _ = keeper(table, engine, clock)
    k.sync(DB, set())
    engine.running.add("db")
    k.stop()
    assert engine.running == set()
    assert table.locks[("db", "data")].session is None and table.sessions == set()
    assert table.delay_until == {}


def test_a_stale_lock_starts_nothing_new() -> None:
    clock = Clock()
    table, engine = Table(clock), Engine()
    k, _ = keeper(table, engine, clock)
    k.sync(DB, set())
    clock.now += timing.START_FRESH + 0.1
    assert not k.may_run("db")
    assert k.sync(DB, set())["db"].reason == "VolumeLockStale"
    k.renew_once()
    assert k.may_run("db")


def test_a_service_with_two_volumes_runs_only_with_both_locks() -> None:
    clock = Clock()
    table, engine = Table(clock), Engine()
    k, lost = keeper(table, engine, clock)
    table.locks[("db", "logs")] = LockRecord("n2", "meshop-n2-db-logs", 0.0, "theirs")
    table.sessions.add("theirs")
    two = {"db": [("data", "meshop-n1-db-data"), ("logs", "meshop-n1-db-logs")]}
    assert k.sync(two, set())["db"].reason == "VolumeLocked"
    assert not k.may_run("db")
    engine.running.add("db")
    for _ in range(3):
        clock.now += timing.RENEW_EVERY
        k.renew_once()
        k.watch_once()
    assert engine.killed == ["db"] and lost == []  # killed as unlocked; nothing it held was lost
    table.invalidate("theirs")
    clock.now += timing.LOCK_DELAY
    k.renew_once()
    assert k.sync(two, set()) == {} and k.may_run("db")


def test_letting_go_when_the_release_is_refused_destroys_the_session() -> None:
    """``meshop acl sync`` may take the lock rights away before the agent releases: the session's end
    frees the lock (after lock-delay), and this node renews it no more."""
    clock = Clock()
    table, engine = Table(clock), Engine()
    k, _ = keeper(table, engine, clock)
    k.sync(DB, set())

    def refused(*_: object) -> None:
        raise ConsulError("denied releasing locks/volumes/db/data: ACL permission denied")

    table.release = refused  # type: ignore[method-assign]
    k.sync({}, set())
    assert table.sessions == set()
    assert table.locks[("db", "data")].session is None
    assert ("db", "data") in table.delay_until


def test_each_renewal_stamps_the_record_and_a_successor_bounds_its_loss_window() -> None:
    from meshop.agent.stateful.restore import loss_window

    clock = Clock()
    table, engine = Table(clock), Engine()
    walls = iter(float(t) for t in range(1000, 2000, 2))
    k = VolumeLockKeeper("n1", table, engine, mono=clock, wall=lambda: next(walls))
    k.sync(DB, set())
    for _ in range(3):
        clock.now += timing.RENEW_EVERY
        k.renew_once()
    stamped = table.locks[("db", "data")]
    assert stamped.renewed == 1006.0 and stamped.node == "n1"
    # the old copy wrote until at most GIVE_UP + KILL_BUDGET after that stamp, whenever it is read
    loss, _ = loss_window(1000.0, stamped, now=5000.0)
    assert loss == 6.0 + timing.GIVE_UP + timing.KILL_BUDGET
    assert loss_window(1000.0, None, now=1030.0)[0] == 30.0  # no stamp: the snapshot's age
    assert loss_window(1000.0, stamped, now=1008.0)[0] == 8.0  # never more than the age


class Remembered:
    def __init__(self) -> None:
        self.saved: dict[str, tuple[str, dict[str, str]]] = {}

    def save(self, sessions: dict[str, tuple[str, dict[str, str]]]) -> None:
        self.saved = dict(sessions)

    def load(self) -> dict[str, tuple[str, dict[str, str]]]:
        return dict(self.saved)


def test_a_crashed_agent_adopts_its_live_session_and_keeps_its_copy() -> None:
    clock = Clock()
    table, engine, memory = Table(clock), Engine(), Remembered()
    first = VolumeLockKeeper("n1", table, engine, mono=clock, memory=memory)
    first.sync(DB, set())
    engine.running.add("db")
    assert memory.saved == {"db": ("s1", {"data": "meshop-n1-db-data"})}
    # the process dies (no stop()); the next one starts within the session's TTL
    clock.now += timing.RENEW_EVERY
    second = VolumeLockKeeper("n1", table, engine, mono=clock, memory=memory)
    assert second.adopt() == ["db"]
    assert second.watch_once() == [] and engine.running == {"db"}
    assert second.sync(DB, {"db"}) == {} and table.made == 1


def test_a_session_that_ended_is_not_adopted_and_the_copy_dies() -> None:
    clock = Clock()
    table, engine, memory = Table(clock), Engine(), Remembered()
    first = VolumeLockKeeper("n1", table, engine, mono=clock, memory=memory)
    first.sync(DB, set())
    engine.running.add("db")
    table.invalidate("s1")  # down longer than its TTL
    second = VolumeLockKeeper("n1", table, engine, mono=clock, memory=memory)
    assert second.adopt() == []
    assert second.watch_once() == ["db"]


def test_a_clean_stop_leaves_nothing_to_adopt() -> None:
    clock = Clock()
    table, engine, memory = Table(clock), Engine(), Remembered()
    first = VolumeLockKeeper("n1", table, engine, mono=clock, memory=memory)
    first.sync(DB, set())
    first.stop()
    assert memory.saved == {}
