"""The controller's clocks against a real Consul: a step of the wall clock (NTP, a VM resumed, an
operator's ``date -s``) marks no node NotReady and moves no work; monotonic time past the grace period
still does. Both clocks are injected: the real ones plus an offset each, so time still passes."""

from __future__ import annotations

import time
from collections.abc import Callable

from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import NodeStatus, loads_json
from meshop.operator.controller import Controller
from tests.integration.operator.sim import SimNode, events_of, placement_of, service_doc
from tests.support.procs import wait_until

GRACE = 60.0  # far longer than the test runs in real time: only the injected jump can end it


class Shifted:
    """A real clock plus an offset the test moves."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.offset = 0.0

    def __call__(self) -> float:
        return self.clock() + self.offset


def node_status(store: KVStore, node: str) -> NodeStatus | None:
    entry = store.get(keys.STATUS_NODES + node)
    return NodeStatus.from_dict(loads_json(entry.value)) if entry else None


def settle(ctl: Controller) -> None:
    """A whole pass that started after now: the first one waited for may have been in flight already."""
    for _ in range(2):
        passes = ctl.loop.passes
        ctl.wakeup.notify("test")
        wait_until(lambda passes=passes: ctl.loop.passes > passes, 10, what="one more pass")


def test_wall_clock_steps_mark_nothing_lost_and_monotonic_time_past_the_grace_does(
    store: KVStore, sim_nodes: Callable[..., SimNode], controllers: Callable[..., Controller]
) -> None:
    n1, n2 = sim_nodes("n1"), sim_nodes("n2")
    wall, mono = Shifted(time.time), Shifted(time.monotonic)
    ctl = controllers(grace_period=GRACE, clocks={"clock": wall, "monotonic": mono})
    wait_until(lambda: ctl.election.is_leader and ctl.loop.passes > 0, 15, what="the controller to lead")
    store.put(keys.desired_service("web"), service_doc("web", replicas=1))
    wait_until(lambda: placement_of(store, "web") == {n1.name: 1}, 5, what="web on n1")
    n1.report("web")

    n1.stop_agent()
    wait_until(lambda: getattr(node_status(store, n1.name), "state", "") == "Suspect", 10, what="n1 Suspect")
    settle(ctl)
    before = {n: node_status(store, n) for n in (n1.name, n2.name)}
    assert before[n2.name] is not None and before[n2.name].state == "Ready"

    for step in (3600.0, -3600.0, 0.0):
        wall.offset = step
        settle(ctl)
        assert {n: node_status(store, n) for n in before} == before, f"wall clock {step:+.0f} s"
        assert placement_of(store, "web") == {n1.name: 1}
        assert events_of(store, "NodeLost") == [] and events_of(store, "Rescheduled") == []

    mono.offset = GRACE  # the grace period passes (on the clock that measures it)
    ctl.wakeup.notify("test")
    wait_until(lambda: placement_of(store, "web") == {n2.name: 1}, 10, what="web rescheduled to n2")
    lost = node_status(store, n1.name)
    assert lost is not None and lost.state == "NotReady"
    assert lost.since == before[n1.name].since  # type: ignore[union-attr]  # first seen unhealthy: unchanged
    assert [e.object for e in events_of(store, "NodeLost")] == [f"node/{n1.name}"]
    assert node_status(store, n2.name) == before[n2.name]
