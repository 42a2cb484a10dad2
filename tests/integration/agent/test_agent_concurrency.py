"""Many services placed at once, on the real engine: the agent creates and starts them together (like
compose, unlike a ``docker run`` loop), and one that Docker refuses costs only itself."""

from __future__ import annotations

import threading

from meshop.agent.engine.docker_driver import DockerDriver
from meshop.agent.engine.runtime import ContainerConfig
from meshop.consul.store import KVStore, TxnOp
from meshop.model import keys
from meshop.model.records import dumps
from tests.integration.agent.helpers import HTTPD, AgentFactory, Engine, make_assignment, observed
from tests.support.procs import wait_until


class CountingDriver(DockerDriver):
    """The real driver, counting how many ``create_and_start`` calls run at the same time."""

    def __init__(self, node: str) -> None:
        super().__init__(node)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.most = 0

    def create_and_start(self, config: ContainerConfig) -> str:
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            return super().create_and_start(config)
        finally:
            with self._lock:
                self.in_flight -= 1


def assign_at_once(store: KVStore, node: str, specs: dict[str, dict]) -> None:
    """Every assignment in one transaction, as the controller writes a ``meshop apply -f DIR``."""
    assignments = [make_assignment(node, name, spec) for name, spec in specs.items()]
    store.transact([TxnOp.set(keys.assignment(node, a.service), dumps(a)) for a in assignments])


def test_services_placed_at_once_are_started_together_and_all_run(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str
) -> None:
    driver = CountingDriver(node)
    start_agent(runtime=driver)
    names = [f"web{i}" for i in range(6)]
    assign_at_once(store, node, dict.fromkeys(names, HTTPD))
    wait_until(lambda: len(engine.running()) == len(names), 30, what="six services running")
    assert sorted(c.labels["meshop.service"] for c in engine.running()) == names
    assert driver.most >= 2, "the creates ran one after the other"
    for name in names:
        record = wait_until(lambda name=name: (o := observed(store, node, name)) and o.containers and o, 10)
        assert record.reason == "" and record.error == ""


def test_a_service_docker_refuses_fails_alone_and_is_reported_for_itself(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str
) -> None:
    start_agent()
    good = ["ok0", "ok1", "ok2"]
    broken = {**HTTPD, "command": ["/bin/no-such-binary"], "args": []}  # created, then refused at start
    assign_at_once(store, node, {**dict.fromkeys(good, HTTPD), "bad": broken})
    wait_until(lambda: len(engine.running()) == len(good), 30, what="the three good services running")
    record = wait_until(
        lambda: (o := observed(store, node, "bad")) and o.reason == "CreateFailed" and o, 15, what="bad's error"
    )
    assert "no-such-binary" in record.error and record.ready == 0
    assert engine.containers("bad") == []  # a container whose start failed is not left behind
    for name in good:
        ok = wait_until(lambda name=name: (o := observed(store, node, name)) and o.containers and o, 10)
        assert ok.reason == "" and ok.error == ""
        assert [c.status for c in engine.containers(name)] == ["running"]
