"""Leader election under restarts and freezes, with real Consul and real ``meshop controller run`` processes.

Issue 12 item 2: a leader SIGKILLed and started again with the same ``--id`` within about a second left
the cluster leaderless for good (the new process re-registered the check the old session hung on, so it
never went critical). And a controller resumed after SIGSTOP could answer ``/readyz`` "leader" while
another one led.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meshop.consul.store import KVStore
from meshop.model import keys
from tests.integration.faults.ctl_support import (
    ControllerProc,
    HangingProxy,
    ReadyzRecorder,
    controller_proc,
    wait_serving,
)
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until

LOCK_DELAY = 2
CHECK_TTL = 10  # longer than any restart here takes (Python start-up is 1-3 s on a busy machine)
FLAGS = ("--lock-delay", str(LOCK_DELAY), "--check-ttl", str(CHECK_TTL), "--grace-period", "5")


@pytest.fixture
def controllers(consul_server: ConsulServer, prefix: str, tmp_path: Path) -> Iterator[Callable[..., ControllerProc]]:
    made: list[ControllerProc] = []

    def make(short: str, flags: tuple[str, ...] = FLAGS) -> ControllerProc:
        proc = controller_proc(consul_server.addr, prefix, short, tmp_path, *flags)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        proc.stop()


def holder(store: KVStore) -> str | None:
    """The --id of the controller whose live session holds ``leader`` (None: nobody)."""
    entry = store.get(keys.LEADER)
    if entry is None or not entry.session:
        return None
    return str(json.loads(entry.value)["id"])


def one_leader(store: KVStore, procs: list[ControllerProc]) -> str | None:
    """The one controller that holds the key AND is the only one answering "leader"; else None."""
    who = holder(store)
    answers = {p.ident: p.readyz(1.0) for p in procs}
    leaders = [ident for ident, body in answers.items() if body == "leader"]
    return who if who is not None and leaders == [who] else None


@pytest.mark.parametrize("delay", [0.0, 0.5, 1.0, 2.0, 4.0], ids=lambda d: f"restart-after-{d}s")
def test_a_killed_leader_restarted_with_the_same_id_leaves_exactly_one_leader(
    store: KVStore, controllers: Callable[..., ControllerProc], delay: float
) -> None:
    a, b = controllers("a"), controllers("b")
    wait_until(lambda: one_leader(store, [a, b]), 30, what=f"one leader\n{a.log()}\n{b.log()}")
    leader = a if holder(store) == a.ident else b

    leader.process.kill()  # SIGKILL: no release, no deregistration
    time.sleep(delay)
    leader.start()  # the same command line, the same --id
    wait_serving(leader)
    serving = time.monotonic()

    # Nobody may wait on the dead process: from the moment its successor runs, the cluster has exactly
    # one leader within lock-delay + 3 s (the dead session ends at once; Consul holds the key lock-delay).
    deadline = serving + LOCK_DELAY + 3
    wait_until(
        lambda: one_leader(store, [a, b]),
        max(0.1, deadline - time.monotonic()),
        interval=0.05,
        what=f"exactly one leader after a restart {delay}s after the kill\n{a.log()}\n{b.log()}",
    )
    for _ in range(10):  # and it stays exactly one
        assert one_leader(store, [a, b]), (holder(store), a.readyz(), b.readyz())
        time.sleep(0.1)


def test_a_frozen_and_resumed_controller_never_answers_leader_while_another_leads(
    store: KVStore, controllers: Callable[..., ControllerProc]
) -> None:
    # A short check TTL, so that most pauses outlast it plus lock-delay and the other controller takes over.
    flags = ("--lock-delay", str(LOCK_DELAY), "--check-ttl", "1", "--grace-period", "5")
    a, b = controllers("a", flags), controllers("b", flags)
    wait_until(lambda: one_leader(store, [a, b]), 30, what=f"one leader\n{a.log()}\n{b.log()}")
    # Two pollers per controller with a long timeout: requests sent to the frozen one are all answered
    # the moment it resumes, before it has had any chance to look at Consul.
    with ReadyzRecorder([a, b, a, b], lambda: holder(store), timeout=15.0) as recorder:
        for pause in (4.0, 0.5, 1.5, 5.0, 2.5, 3.5, 6.0):
            leader = a if holder(store) == a.ident else b
            leader.process.signal(signal.SIGSTOP)
            time.sleep(pause)
            leader.process.signal(signal.SIGCONT)
            wait_until(lambda: one_leader(store, [a, b]), LOCK_DELAY + CHECK_TTL + 10, interval=0.05, what="one leader")
    wrong = recorder.false_leaders()
    assert not wrong, wrong[:3]
    assert sum(1 for x in recorder.answers if x.body == "leader") > 50  # the recorder did see leaders


def test_a_leader_cut_off_from_consul_stops_answering_leader_before_another_one_leads(
    consul_server: ConsulServer, prefix: str, tmp_path: Path, store: KVStore
) -> None:
    """The leader's connections to Consul hang (no reset): its session dies and another controller leads.
    The cut-off one cannot see that, so it must stop claiming leadership on its own, in time."""
    proxy = HangingProxy(consul_server.addr)
    flags = ("--lock-delay", str(LOCK_DELAY), "--check-ttl", "1", "--grace-period", "5")
    token = acl.token_for(consul_server.addr, prefix, ["controller", "run"])
    a = controller_proc(proxy.addr, prefix, "a", tmp_path, *flags, token=token)
    b: ControllerProc | None = None
    try:
        wait_until(lambda: a.readyz() == "leader", 30, what=f"a to lead\n{a.log()}")
        b = controller_proc(consul_server.addr, prefix, "b", tmp_path, *flags)
        wait_until(lambda: b.readyz() == "standby", 30, what=f"b on standby\n{b.log()}")
        with ReadyzRecorder([a, b, a, b], lambda: holder(store), timeout=2.0) as recorder:
            proxy.freeze()
            wait_until(lambda: holder(store) == b.ident, 20, interval=0.05, what=f"b to lead\n{b.log()}")
            wait_until(lambda: b.readyz() == "leader", 5, what="b to answer leader")
            time.sleep(3)  # a is still cut off: it must not claim leadership
            assert a.readyz() not in ("leader", None), a.readyz()
        wrong = recorder.false_leaders()
        assert not wrong, wrong[:3]
        proxy.thaw()
        wait_until(lambda: one_leader(store, [a, b]) == b.ident, 30, what=f"b alone leads\n{a.log()}")
    finally:
        proxy.close()
        a.stop()
        if b is not None:
            b.stop()
