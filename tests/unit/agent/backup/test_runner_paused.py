"""One ``BackupRunner`` serves the backup worker and the restorer (agent/daemon.py): what one thread holds
stopped is in ``paused`` for the reconcile thread, two threads stopping one container take turns, and the
container is always started again — with an in-memory engine that records every stop and start."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from meshop.agent.backup.runner import BackupRunner, Failed
from meshop.errors import DriverError

WAIT = 5.0


class Engine:
    """Records stop/start per container; ``running`` is what a container would be now."""

    def __init__(self, fail_stop: bool = False) -> None:
        self.mu = threading.Lock()
        self.calls: list[tuple[str, str]] = []
        self.running: dict[str, bool] = {}
        self.fail_stop = fail_stop

    def stop(self, cid: str, grace: float) -> None:
        with self.mu:
            self.calls.append(("stop", cid))
            if self.fail_stop:
                raise DriverError("no such container (test)")
            assert self.running.get(cid, True), f"{cid} stopped twice: two callers held it at once"
            self.running[cid] = False

    def start(self, cid: str) -> None:
        with self.mu:
            self.calls.append(("start", cid))
            self.running[cid] = True

    def volume_mountpoint(self, name: str, service: str, volume: str) -> str:
        raise AssertionError("not used")

    def exec_in(self, cid: str, argv: list[str], timeout: float) -> int:
        raise AssertionError("not used")


def runner(engine: Engine) -> BackupRunner:
    return BackupRunner("n1", "meshop", engine, secrets=None, wall=lambda: 0.0, mono=lambda: 0.0)  # type: ignore[arg-type]


def hold(r: BackupRunner, cid: str, inside: threading.Event, release: threading.Event) -> Callable[[], None]:
    def body() -> None:
        def work() -> None:
            inside.set()
            assert release.wait(WAIT)

        r.stopped(cid, work, "restore")

    return body


def test_a_pause_by_one_thread_is_seen_by_every_other_until_it_ends() -> None:
    engine = Engine()
    r = runner(engine)
    inside, release = threading.Event(), threading.Event()
    restore = threading.Thread(target=hold(r, "c1", inside, release))
    restore.start()
    assert inside.wait(WAIT)
    seen_elsewhere: list[frozenset[str]] = []
    reader = threading.Thread(target=lambda: seen_elsewhere.append(r.paused))  # the reconcile thread
    reader.start()
    reader.join(WAIT)
    assert seen_elsewhere == [frozenset({"c1"})]
    release.set()
    restore.join(WAIT)
    assert r.paused == frozenset()
    assert engine.calls == [("stop", "c1"), ("start", "c1")]


def test_two_threads_stopping_one_container_take_turns_and_it_stays_paused_until_both_end() -> None:
    engine = Engine()
    r = runner(engine)
    first_in, first_go = threading.Event(), threading.Event()
    second_in, second_go = threading.Event(), threading.Event()
    first = threading.Thread(target=hold(r, "c1", first_in, first_go))
    second = threading.Thread(target=hold(r, "c1", second_in, second_go))
    first.start()
    assert first_in.wait(WAIT)
    second.start()
    assert not second_in.wait(0.2), "the second stop ran while the first held the container"
    first_go.set()
    assert second_in.wait(WAIT)
    assert r.paused == frozenset({"c1"})  # the first is done, the second holds it: still not a crash
    second_go.set()
    first.join(WAIT)
    second.join(WAIT)
    assert r.paused == frozenset()
    assert engine.calls == [("stop", "c1"), ("start", "c1")] * 2
    assert engine.running == {"c1": True}


def test_many_threads_pausing_different_containers_lose_none() -> None:
    engine = Engine()
    r = runner(engine)
    count = 16
    inside = [threading.Event() for _ in range(count)]
    release = threading.Event()
    threads = [threading.Thread(target=hold(r, f"c{i}", inside[i], release)) for i in range(count)]
    for t in threads:
        t.start()
    for event in inside:
        assert event.wait(WAIT)
    assert r.paused == frozenset(f"c{i}" for i in range(count))
    release.set()
    for t in threads:
        t.join(WAIT)
    assert r.paused == frozenset()
    assert all(engine.running[f"c{i}"] for i in range(count))


def test_a_failed_stop_or_work_still_starts_the_container_and_ends_the_pause() -> None:
    engine = Engine(fail_stop=True)
    r = runner(engine)
    with pytest.raises(Failed, match="stopping the service for its backup"):
        r.stopped("c1", lambda: None, "backup")
    assert r.paused == frozenset() and engine.calls == [("stop", "c1"), ("start", "c1")]

    engine = Engine()
    r = runner(engine)

    def broken() -> None:
        assert r.paused == frozenset({"c2"})
        raise RuntimeError("restic crashed (test)")

    with pytest.raises(RuntimeError):
        r.stopped("c2", broken, "restore")
    assert r.paused == frozenset() and engine.running == {"c2": True}
