"""The executor: replicas acted on in parallel up to its bound, each replica's actions in order, and one
failure confined to its own service (the real engine: tests/integration/agent/test_agent_concurrency.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from meshop.agent.engine.executor import Executor
from meshop.agent.engine.puller import Puller
from meshop.agent.engine.runtime import ContainerConfig, NameConflict
from meshop.agent.planning.plan import Container, Create, NodePlan, Remove, Replace
from meshop.errors import DriverError


def config(service: str, replica: int, config_hash: str) -> ContainerConfig:
    return ContainerConfig(
        name=f"meshop-n1-{service}-{replica}-{config_hash}",
        image="img:1",
        labels={"meshop.service": service, "meshop.replica": str(replica)},
    )


def old(service: str, replica: int) -> Container:
    return Container(f"old-{service}-{replica}", f"old-{service}", service, replica, "h0", "h0", 1, "img:1", "running")


@dataclass
class GatedRuntime:
    """Every create waits at a gate until ``release()``; counts how many wait at once."""

    fail: dict[str, Exception] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    in_flight: int = 0
    most: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _open: bool = False
    graces: dict[str, float] = field(default_factory=dict)

    def create_and_start(self, cfg: ContainerConfig) -> str:
        service = cfg.labels["meshop.service"]
        with self._cond:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._open, timeout=10)
            self.in_flight -= 1
            self.log.append(f"create {service}/{cfg.labels['meshop.replica']}")
        if service in self.fail:
            raise self.fail[service]
        return f"id-{cfg.name}"

    def remove(self, container_id: str, grace: float) -> None:
        with self._cond:
            self.log.append(f"remove {container_id}")
            self.graces[container_id] = grace

    def wait_in_flight(self, count: int) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.in_flight >= count, timeout=10)

    def release(self) -> None:
        with self._cond:
            self._open = True
            self._cond.notify_all()


def run_in_background(executor: Executor, plan: NodePlan) -> tuple[threading.Thread, dict]:
    out: dict = {}
    thread = threading.Thread(target=lambda: out.setdefault("result", executor.apply(plan, config)))
    thread.start()
    return thread, out


@pytest.mark.parametrize(
    ("workers", "services"),
    [
        pytest.param(1, 4, id="one-worker-one-at-a-time"),
        pytest.param(3, 8, id="bounded-by-the-workers"),
        pytest.param(8, 8, id="all-at-once-within-the-bound"),
    ],
)
def test_replicas_are_created_in_parallel_up_to_the_bound(workers: int, services: int) -> None:
    runtime = GatedRuntime()
    executor = Executor(runtime, Puller(runtime, lambda: None), workers=workers)  # type: ignore[arg-type]
    plan = NodePlan(create=tuple(Create(f"s{i}", 0, "h1", "missing") for i in range(services)))
    thread, out = run_in_background(executor, plan)
    try:
        assert runtime.wait_in_flight(workers), f"only {runtime.in_flight} create(s) at once, expected {workers}"
    finally:
        runtime.release()
        thread.join(10)
        executor.stop()
    assert runtime.most == workers  # never more than the bound
    assert len(out["result"].done) == services and out["result"].errors == {}


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        pytest.param(DriverError("starting meshop-n1-bad-0 failed: exec: /nope"), "CreateFailed", id="docker"),
        pytest.param(NameConflict("container name meshop-n1-bad-0 is in use"), "NameConflict", id="name-taken"),
        pytest.param(RuntimeError("a bug"), "CreateFailed", id="crash"),
    ],
)
def test_a_failing_create_is_reported_for_its_service_only(failure: Exception, reason: str) -> None:
    runtime = GatedRuntime(fail={"bad": failure})
    runtime.release()
    executor = Executor(runtime, Puller(runtime, lambda: None), workers=4)  # type: ignore[arg-type]
    names = ["a", "bad", "b", "c", "d", "e"]
    try:
        result = executor.apply(NodePlan(create=tuple(Create(n, 0, "h1", "missing") for n in names)), config)
    finally:
        executor.stop()
    assert set(result.errors) == {"bad"}
    assert result.errors["bad"].reason == reason
    assert sorted(a.service for a in result.done) == ["a", "b", "c", "d", "e"]


def test_a_replicas_actions_stay_in_order_while_other_services_run() -> None:
    runtime = GatedRuntime()
    runtime.release()
    executor = Executor(runtime, Puller(runtime, lambda: None), workers=8)  # type: ignore[arg-type]
    plan = NodePlan(
        remove=(Remove(old("web", 2), "scale-down"),),
        replace=(Replace((old("web", 0),), "web", 0, "h1", "update"),),
        create=tuple(Create(f"s{i}", 0, "h1", "missing") for i in range(5)),
    )
    try:
        result = executor.apply(plan, config)
    finally:
        executor.stop()
    assert result.errors == {} and len(result.done) == 7
    assert runtime.log.index("remove old-web-0") < runtime.log.index("create web/0")  # stop-first: old goes first


def test_a_container_never_served_is_killed_and_a_served_one_gets_its_grace() -> None:
    """``Remove.kill`` (the planner's word: this agent never served it) means no stop grace; a stopped
    container never gets one either."""
    runtime = GatedRuntime()
    runtime.release()
    executor = Executor(runtime, Puller(runtime, lambda: None), grace=7.0)  # type: ignore[arg-type]
    stopped = Container("old-db-0", "old-db", "db", 0, "h0", "h0", 1, "img:1", "exited")
    plan = NodePlan(
        remove=(Remove(old("stale", 0), "orphan", True), Remove(old("web", 0), "orphan"), Remove(stopped, "orphan"))
    )
    try:
        result = executor.apply(plan, config)
    finally:
        executor.stop()
    assert result.errors == {}
    assert runtime.graces == {"old-stale-0": 0.0, "old-web-0": 7.0, "old-db-0": 0.0}
