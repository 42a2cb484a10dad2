"""A real agent on a real Docker engine and Consul whose wall clock is stepped by +1 h, then -2 h, while
it runs: no container is restarted or replaced, nothing is held, every replica stays Ready and its
observed record is not even rewritten. The monotonic clock is real."""

from __future__ import annotations

import threading
import time

from meshop.agent.clocks import Clocks
from meshop.consul.store import KVStore
from tests.integration.agent.helpers import SLEEPER, AgentFactory, Engine, assign, observed, run_passes
from tests.support.procs import wait_until

HOUR = 3600.0


class SteppedWall:
    """``time.time`` plus an offset that the test steps while the agent's threads read it."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def step(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds


def test_wall_clock_steps_restart_hold_and_mark_nothing(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str
) -> None:
    wall = SteppedWall()
    agent = start_agent(resync=600, clocks=Clocks(wall=wall, mono=time.monotonic))
    assign(store, node, "web", SLEEPER, replicas=2)
    assign(store, node, "slow", {**SLEEPER, "minReadySeconds": 3})

    def ready() -> bool:
        records = [observed(store, node, s) for s in ("web", "slow")]
        return [r.ready if r else 0 for r in records] == [2, 1]

    wait_until(ready, 20, what="every replica Ready")
    started = {c.id: c.attrs["State"]["StartedAt"] for c in engine.containers()}
    assert len(started) == 3
    memory = agent.daemon.reconciler.memory
    records = [observed(store, node, s) for s in ("web", "slow")]
    for step in (HOUR, -2 * HOUR):
        wall.step(step)
        run_passes(agent, 3)
        for container in engine.containers():
            container.reload()
        assert {c.id: c.attrs["State"]["StartedAt"] for c in engine.containers()} == started  # none restarted
        assert memory.restarts.until == {} and memory.services.until == {}  # nothing held
        for service in ("web", "slow"):
            record = observed(store, node, service)
            assert record is not None and record.reason == "" and {c.phase for c in record.containers} == {"Ready"}
        assert [observed(store, node, s) for s in ("web", "slow")] == records  # not even rewritten
