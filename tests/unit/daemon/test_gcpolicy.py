"""The cyclic GC policy every daemon's loop applies (``meshop.daemon.gcpolicy``), and that the controller's loop
applies it. Real ``gc`` state of this process: each test restores what it changes."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import pytest

from meshop.consul.config import ConsulConfig
from meshop.daemon import gcpolicy
from meshop.daemon.loop import ReconcileLoop
from meshop.daemon.wakeup import Wakeup
from meshop.operator.controller import Controller, ControllerOptions


class Node:
    """A GC-tracked object that can be part of a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


def tracked(obj: object) -> bool:
    """True while the collector may walk ``obj`` (frozen objects are in no generation)."""
    return any(o is obj for o in gc.get_objects())


@pytest.fixture(autouse=True)
def policy_to_ourselves(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``make test`` runs every test in one process, where another loop may still run passes. Each test
    holds the policy's lock from a moment no pass is in flight, so no other pass begins or ends meanwhile."""
    original, held = gcpolicy._lock, threading.RLock()
    held.acquire()
    deadline = time.monotonic() + 60
    while True:
        with original:
            if gcpolicy._pauses == 0:
                gcpolicy._lock = held  # type: ignore[assignment]
                break
        assert time.monotonic() < deadline, "another loop's pass has been in flight for 60 s"
        time.sleep(0.01)
    monkeypatch.setattr(gcpolicy, "_last_refresh", 0.0)  # refresh only when a test asks for it
    try:
        yield
        assert gc.isenabled()
    finally:
        with original:
            gcpolicy._lock = original
            held.release()


def test_paused_counts_overlapping_passes() -> None:
    with gcpolicy.paused():
        assert not gc.isenabled()
        with gcpolicy.paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "one pass ended, the other still runs"
    assert gc.isenabled()


def test_settle_freezes_what_survived_a_pass() -> None:
    with gcpolicy.paused():
        kept = [Node()]
    assert tracked(kept)
    assert gcpolicy.settle(now=1.0)
    assert not tracked(kept)
    assert kept[0].other is None  # frozen is still alive and usable


def test_settle_frees_cycles_made_in_the_pass_instead_of_freezing_them() -> None:
    with gcpolicy.paused():
        node, ref = cycle()
        del node
        assert ref() is not None, "paused: the cycle waits"
    gcpolicy.settle(now=1.0)
    assert ref() is None


def test_a_frozen_cycle_that_becomes_garbage_is_freed_by_the_refresh() -> None:
    node, ref = cycle()
    gcpolicy.settle(now=1.0)  # frozen while still referenced
    del node
    gcpolicy.settle(now=2.0)
    gc.collect()
    assert ref() is not None, "frozen: out of the collector's reach until the refresh"
    gcpolicy.settle(now=2.0 + gcpolicy.REFRESH_SECONDS)
    assert ref() is None


def test_settle_waits_while_a_pass_is_in_flight() -> None:
    with gcpolicy.paused():
        in_flight = [Node()]
        assert not gcpolicy.settle(now=1.0)
        assert tracked(in_flight)


def test_the_loop_pauses_during_a_pass_and_settles_after_a_clean_one() -> None:
    seen: list[bool] = []
    made: list[list[Node]] = []

    def reconcile() -> None:
        seen.append(gc.isenabled())
        made.append([Node()])

    loop = ReconcileLoop("test", reconcile, Wakeup())
    loop.run_once()
    assert seen == [False]
    assert gc.isenabled()
    assert not tracked(made[0])


def test_the_controller_loop_applies_the_policy() -> None:
    ctl = Controller(ConsulConfig.from_env({}, addr="127.0.0.1:1"), ControllerOptions("gc-test"))
    seen: list[bool] = []
    ctl.loop.reconcile = lambda: seen.append(gc.isenabled())  # type: ignore[assignment, func-returns-value]
    assert ctl.loop.run_once() is None
    assert seen == [False]
    assert gc.isenabled()
