"""Updates: a changed spec hash replaces containers; start-first without a gap, rollback, stop-first, scaling."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from meshop.consul.store import KVStore
from tests.conftest import TEST_IMAGE
from tests.integration.agent.helpers import (
    SLEEPER,
    AgentFactory,
    Engine,
    assign,
    http_spec,
    http_status,
    observed,
    passing,
    registrations,
)
from tests.support.procs import free_port, wait_until


@pytest.fixture
def second_tag(docker_client: Any, node: str) -> Iterator[str]:
    reference = f"meshop-test/busybox:{node}"
    docker_client.images.get(TEST_IMAGE).tag(reference)
    yield reference
    with contextlib.suppress(Exception):
        docker_client.images.remove(reference)


def test_image_tag_change_replaces_the_container(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, second_tag: str
) -> None:
    start_agent()
    first = assign(store, node, "app", SLEEPER)
    wait_until(lambda: engine.running("app"), 5, what="the first container")
    old_id = engine.running("app")[0].id
    second = assign(store, node, "app", {**SLEEPER, "image": second_tag}, generation=2)
    assert second.spec_hash != first.spec_hash

    def replaced() -> bool:
        containers = engine.containers("app")
        return (
            len(containers) == 1
            and containers[0].status == "running"
            and containers[0].labels["meshop.spec-hash"] == second.spec_hash
        )

    wait_until(replaced, 10, what="the container replaced by one with the new image")
    (container,) = engine.containers("app")
    assert container.id != old_id
    assert container.attrs["Config"]["Image"] == second_tag
    assert container.labels["meshop.generation"] == "2"
    wait_until(
        lambda: (o := observed(store, node, "app")) and o.generation == 2 and o.ready == 1,
        5,
        what="observed generation 2",
    )


def test_start_first_update_serves_every_request(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, consul_server: Any
) -> None:
    """A bounded loop of requests to the Consul-registered address during the update: zero failures."""
    start_agent(drain=0.5)
    spec = http_spec(update={"strategy": "start-first", "healthTimeout": "20s"})
    first = assign(store, node, "web", spec)
    wait_until(lambda: len(passing(consul_server.addr, "web", node)) == 1, 10, what="the first replica passing")
    ((_, old_port),) = passing(consul_server.addr, "web", node)
    results: list[tuple[object, int | None]] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set() and len(results) < 20000:
            instances = passing(consul_server.addr, "web", node)
            if not instances:
                results.append(("no passing instance", None))
                continue
            address, port = random.choice(instances)
            try:
                results.append((http_status(f"http://{address}:{port}/", timeout=2.0), port))
            except OSError as exc:
                results.append((repr(exc), port))

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(results) > 20, 10, what="requests before the update")
        # the new version needs a while before it answers: serving it too early would fail requests
        slow_start = {"command": ["/bin/sh"], "args": ["-c", "sleep 1.5; exec httpd -f -p 8080 -h /www"]}
        second = assign(store, node, "web", {**spec, **slow_start}, generation=2)
        assert second.spec_hash != first.spec_hash

        def updated() -> bool:
            containers = engine.containers("web")
            return len(containers) == 1 and containers[0].labels["meshop.spec-hash"] == second.spec_hash

        wait_until(updated, 20, what="the old container removed after the new one took over")
        count = len(results)
        wait_until(lambda: len(results) > count + 50, 10, what="requests after the update")
    finally:
        stop.set()
        thread.join(5)
    failures = [r for r in results if r[0] != 200]
    assert failures == [], failures[:5]
    ports = {port for _, port in results}
    new_port = engine.containers("web")[0].ports["8080/tcp"][0]["HostPort"]
    assert old_port in ports and int(new_port) in ports and int(new_port) != old_port


def test_unhealthy_start_first_update_rolls_back(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, consul_server: Any
) -> None:
    agent = start_agent(drain=0.2)
    spec = http_spec(update={"strategy": "start-first", "healthTimeout": "3s", "autoRollback": True})
    first = assign(store, node, "web", spec)
    wait_until(lambda: len(passing(consul_server.addr, "web", node)) == 1, 10, what="the first replica passing")
    old_id = engine.running("web")[0].id
    # the new version listens on 9090, so its health check on the 8080 port never passes
    broken = {**spec, "args": ["-f", "-p", "9090", "-h", "/www"]}
    second = assign(store, node, "web", broken, generation=2)
    wait_until(lambda: len(engine.containers("web")) == 2, 5, what="the new container next to the old one")
    record = wait_until(
        lambda: (o := observed(store, node, "web")) and o.reason == "UpdateFailed" and o,
        15,
        what="UpdateFailed in observed state",
    )
    assert "not healthy within 3s" in record.error

    def only_old() -> list[Any]:
        containers = engine.containers("web")
        return containers if [c.id for c in containers] == [old_id] else []

    (remaining,) = wait_until(only_old, 5, what="only the old container left")
    assert remaining.labels["meshop.spec-hash"] == first.spec_hash
    # the failed version is retried later (backoff), not sooner than its healthTimeout
    assert agent.daemon.reconciler.memory.services.until["web"] - time.monotonic() > 1.5
    assert len(passing(consul_server.addr, "web", node)) == 1
    assert second.spec_hash != first.spec_hash


def test_fixed_host_port_is_published_and_updated_stop_first(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, consul_server: Any
) -> None:
    start_agent()
    port = free_port()
    spec = http_spec(ports=[{"name": "http", "container": 8080, "host": port}], update={"strategy": "stop-first"})
    assign(store, node, "fixed", spec)
    wait_until(lambda: http_status(f"http://127.0.0.1:{port}/") == 200, 10, what="the fixed host port answering")
    old_id = engine.running("fixed")[0].id
    second = assign(store, node, "fixed", {**spec, "env": [{"name": "V", "value": "2"}]}, generation=2)

    def replaced() -> bool:
        running = engine.running("fixed")
        return [c.labels["meshop.spec-hash"] for c in engine.containers("fixed")] == [second.spec_hash] and bool(
            running
        )

    wait_until(replaced, 15, what="stop-first replacement on the same host port")
    assert engine.running("fixed")[0].id != old_id
    wait_until(lambda: http_status(f"http://127.0.0.1:{port}/") == 200, 10, what="the new container on the port")
    wait_until(
        lambda: passing(consul_server.addr, "fixed", node) == [("127.0.0.1", port)],
        10,
        what="registered on the fixed port",
    )


def test_scale_up_and_down(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, consul_server: Any
) -> None:
    start_agent()
    assign(store, node, "web", http_spec(), replicas=3)
    wait_until(lambda: len(passing(consul_server.addr, "web", node)) == 3, 10, what="three replicas passing")
    assign(store, node, "web", http_spec(), replicas=1)
    wait_until(
        lambda: [c.labels["meshop.replica"] for c in engine.containers("web")] == ["0"],
        10,
        what="scaled down to replica 0",
    )
    wait_until(
        lambda: (
            {sid for sid, b in registrations(consul_server.addr, node).items() if b["Service"] == "web"}
            == {f"meshop-{node}-web-0"}
        ),
        5,
        what="replicas 1 and 2 deregistered",
    )
