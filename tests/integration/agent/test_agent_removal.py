"""A deleted assignment: containers removed, registrations gone, observed key deleted, named volumes kept."""

from __future__ import annotations

from typing import Any

from meshop.consul.store import KVStore
from meshop.model import keys
from tests.integration.agent.helpers import AgentFactory, Engine, assign, http_spec, observed, passing, registrations
from tests.support.procs import wait_until


def test_deleted_assignment_removes_deregisters_and_keeps_named_volumes(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, consul_server: Any, docker_client: Any
) -> None:
    start_agent()
    spec = http_spec(
        volumes=[
            {"name": "data", "mountPath": "/data"},
            {"name": "cache", "mountPath": "/cache", "deleteWithService": True},
        ],
        command=["/bin/sh"],
        args=["-c", "echo kept > /data/file; exec httpd -f -p 8080 -h /www"],
    )
    assign(store, node, "db", spec, replicas=2)
    wait_until(lambda: len(passing(consul_server.addr, "db", node)) == 2, 10, what="two replicas passing")
    wait_until(lambda: (o := observed(store, node, "db")) and o.ready == 2, 5, what="observed ready=2")
    volumes = {v.name for v in docker_client.volumes.list(filters={"label": [f"meshop.node={node}"]})}
    assert volumes == {f"meshop-{node}-db-data", f"meshop-{node}-db-cache"}

    store.delete(keys.assignment(node, "db"))
    wait_until(lambda: engine.containers("db") == [], 10, what="the containers removed")
    wait_until(
        lambda: not [s for s, b in registrations(consul_server.addr, node).items() if b["Service"] == "db"],
        5,
        what="the replicas deregistered",
    )
    wait_until(lambda: observed(store, node, "db") is None, 5, what="observed/<node>/db deleted")
    wait_until(
        lambda: (
            {v.name for v in docker_client.volumes.list(filters={"label": [f"meshop.node={node}"]})}
            == {f"meshop-{node}-db-data"}
        ),
        5,
        what="only the deleteWithService volume removed",
    )
    # the kept volume still holds what the service wrote
    output = docker_client.containers.run(
        "meshop-test/busybox:1",
        ["/bin/cat", "/data/file"],
        volumes={f"meshop-{node}-db-data": {"bind": "/data", "mode": "ro"}},
        remove=True,
    )
    assert output.strip() == b"kept"


def test_reassigned_service_finds_its_volume_again(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str
) -> None:
    start_agent()
    spec = {
        "image": "meshop-test/busybox:1",
        "command": ["/bin/sh"],
        "args": ["-c", "date >> /data/boots; sleep 3600"],
        "volumes": [{"name": "data", "mountPath": "/data"}],
    }
    assign(store, node, "db", spec)
    wait_until(lambda: engine.running("db"), 5, what="first run")
    store.delete(keys.assignment(node, "db"))
    wait_until(lambda: engine.containers("db") == [], 10, what="removed")
    assign(store, node, "db", spec)
    wait_until(lambda: engine.running("db"), 5, what="second run")
    container = engine.running("db")[0]
    wait_until(
        lambda: container.exec_run(["/bin/cat", "/data/boots"]).output.count(b"\n") == 2,
        5,
        what="two boots recorded in the kept volume",
    )
