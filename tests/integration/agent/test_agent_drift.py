"""Drift: containers removed, stopped or left half-created are repaired; crash loops back off;
containers the agent does not own are never touched."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from typing import Any

import docker

from meshop import metrics
from meshop.agent.planning import labels as L
from meshop.consul.store import KVStore
from tests.conftest import TEST_IMAGE
from tests.integration.agent.helpers import SLEEPER, AgentFactory, Engine, assign, observed, run_passes
from tests.support.procs import wait_until


def _wakeups(source: str) -> float:
    return metrics.reconcile_wakeups_total.labels("agent", source)._value.get()


def test_rm_f_is_repaired_from_the_events_stream(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str
) -> None:
    agent = start_agent(resync=600)  # the periodic resync cannot be what repairs it
    wait_until(agent.daemon.events.connected.is_set, 5, what="the Docker events stream")
    assign(store, node, "app", SLEEPER, replicas=2)
    wait_until(lambda: len(engine.running("app")) == 2, 5, what="two replicas")
    victim = next(c for c in engine.running("app") if c.labels["meshop.replica"] == "1")
    before = _wakeups("docker")
    repairs = metrics.drift_repairs_total.labels("missing")._value.get()
    victim.remove(force=True)

    def restored() -> bool:
        replicas = {c.labels["meshop.replica"]: c.id for c in engine.running("app")}
        return set(replicas) == {"0", "1"} and replicas["1"] != victim.id

    # with the resync 600 s away, only the events stream can wake the agent this soon (the repair's
    # time is a figure for benchmarks/, not this test: a parallel test run may take seconds)
    wait_until(restored, 10.0, what="replica 1 back, woken by the events stream")
    assert _wakeups("docker") > before
    wait_until(
        lambda: metrics.drift_repairs_total.labels("missing")._value.get() > repairs, 2, what="the repair counted"
    )


def test_docker_stop_is_started_again_and_repeated_stops_back_off(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str
) -> None:
    """Each restart holds the container for a growing delay; a stop inside the hold stays stopped
    until the hold ends. Timed by the agent's own hold ends, not by how long Docker takes to start a
    container (seconds under load, which drowned the 1 s growth when this test compared gaps)."""
    agent = start_agent(resync=600)
    restarts = agent.daemon.reconciler.memory.restarts
    assign(store, node, "app", SLEEPER)
    wait_until(lambda: engine.running("app"), 5, what="the container")
    container = engine.running("app")[0]
    hold_ends: list[float] = []
    for attempt in range(3):
        container.reload()
        started_at = container.attrs["State"]["StartedAt"]
        container.stop(timeout=0)  # a manual stop: Docker's restart policy leaves it stopped
        if hold_ends:  # stopped inside the hold of the agent's previous restart: it must wait for its end
            while time.monotonic() < hold_ends[-1] - 0.2:  # the agent's clock for holds: monotonic
                container.reload()
                assert container.status != "running", f"restart {attempt + 1} came before its hold ended"
                time.sleep(0.05)

        def started_again(started_at: str = started_at) -> bool:
            container.reload()
            return container.status == "running" and container.attrs["State"]["StartedAt"] != started_at

        wait_until(started_again, 10, what="the stopped container started again")
        wait_until(lambda n=attempt + 1: restarts.backoff.failures(container.id) == n, 5, what="the restart counted")
        hold_ends.append(restarts.until[container.id])
    # the holds grow, 1 s, 2 s, 4 s from each restart; a restart comes no earlier than the previous
    # hold's end, so each hold ends at least its own length after the previous one (load only adds)
    assert hold_ends[1] - hold_ends[0] >= 2.0
    assert hold_ends[2] - hold_ends[1] >= 4.0
    assert [c.id for c in engine.containers("app")] == [container.id]  # restarted, not recreated


def test_crash_loop_is_restarted_with_growing_delay(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, docker_client: Any
) -> None:
    agent = start_agent()
    dies: list[float] = []
    stop = threading.Event()
    events = docker_client.events(decode=True, filters={"label": [f"meshop.node={node}"], "event": "die"})

    def follow() -> None:
        with contextlib.suppress(Exception):
            for _event in events:
                dies.append(time.monotonic())
                if stop.is_set():
                    return

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    try:
        assign(store, node, "crasher", {"image": TEST_IMAGE, "command": ["/bin/sh"], "args": ["-c", "exit 3"]})
        # seven: Docker's restart delay doubles from 0.1 s, so by the sixth gap it outgrows a container
        # start that takes seconds on a loaded machine (five crashes were within start-time noise)
        wait_until(lambda: len(dies) >= 7, 40, what="seven crashes")
    finally:
        stop.set()
        events.close()
    gaps = [b - a for a, b in itertools.pairwise(dies)]
    # Docker waits 0.1 s before the first restart and doubles it: 3.2 s before the seventh crash's
    # start. Load only adds start time to every gap, so the last gap's lower bound holds under any load,
    # and an agent that restarted the container itself would make it short (a start's time)
    assert gaps[-1] >= 3.0 and gaps[-1] > gaps[0], gaps
    wait_until(
        lambda: (o := observed(store, node, "crasher")) and o.containers and o.containers[0].restart_count >= 3 and o,
        10,
        what="the restart count in observed state",
    )
    assert len(engine.containers("crasher")) == 1  # restarted in place, never multiplied
    assert agent.daemon.loop.last_error is None


def test_created_leftover_is_replaced(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, docker_client: Any
) -> None:
    from tests.integration.agent.helpers import make_assignment

    assignment = make_assignment(node, "app", SLEEPER)
    name = L.container_name(node, "app", 0, assignment.spec_hash)
    labels = L.container_labels(node, "app", 0, assignment.spec_hash, assignment.spec_hash, 1)
    leftover = docker_client.containers.create(TEST_IMAGE, ["/bin/sleep", "3600"], name=name, labels=labels)
    assert leftover.status == "created"
    start_agent()
    assign(store, node, "app", SLEEPER)

    def replaced() -> bool:
        containers = engine.containers("app")
        return len(containers) == 1 and containers[0].status == "running" and containers[0].id != leftover.id

    wait_until(replaced, 10, what="the Created leftover replaced by a running container")
    assert engine.containers("app")[0].name == name


def test_containers_the_agent_does_not_own_are_never_touched(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, docker_client: Any
) -> None:
    other_node = f"{node}-other"
    made = []
    try:
        # a hand-made container, one of another node sharing the engine (same service name), and one
        # with this node's label but not marked managed
        made.append(docker_client.containers.run(TEST_IMAGE, ["/bin/sleep", "3600"], name=f"hand-{node}", detach=True))
        made.append(
            docker_client.containers.run(
                TEST_IMAGE,
                ["/bin/sleep", "3600"],
                name=f"other-{node}",
                detach=True,
                labels={L.MANAGED: "true", L.NODE: other_node, L.SERVICE: "app", L.REPLICA: "0"},
            )
        )
        made.append(
            docker_client.containers.run(
                TEST_IMAGE, ["/bin/sleep", "3600"], name=f"unmarked-{node}", detach=True, labels={L.NODE: node}
            )
        )
        agent = start_agent()
        assign(store, node, "app", SLEEPER, replicas=1)
        wait_until(lambda: engine.running("app"), 5, what="the agent's own container")
        own = [c for c in engine.containers("app") if c.labels.get(L.MANAGED) == "true"]
        assert len(own) == 1
        store.delete(f"assignments/{node}/app")
        wait_until(
            lambda: not [c for c in engine.containers("app") if c.labels.get(L.MANAGED) == "true"],
            10,
            what="the agent's own container removed",
        )
        run_passes(agent, 2)
        for container in made:
            container.reload()
            assert container.status == "running", container.name
    finally:
        for container in made:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
