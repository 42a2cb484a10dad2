"""End to end: a document put with ``consul kv put`` runs in Docker and its status reaches Ready.

Real everything: Consul, ``meshop controller run``, ``meshop agent run`` on the shared Docker engine, the
local test image, and an HTTP request through the route's upstream. The node name is unique to the test;
teardown removes exactly the containers and volumes labelled with it.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meshop.consul.services import Services
from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import RouteRecord, loads_json
from tests.conftest import TEST_IMAGE
from tests.integration.operator.sim import CliController, condition, consul_kv_put, placement_of, service_doc
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.procs import Process, wait_until


@pytest.fixture
def agent_node(docker_client: Any, store: KVStore, consul_server: ConsulServer, tmp_path: Path) -> Iterator[str]:
    name = f"e2e{secrets.token_hex(3)}"
    meshop = str(Path(sys.executable).parent / "meshop")
    args = [
        meshop,
        "--consul-addr",
        consul_server.addr,
        "--prefix",
        store.prefix,
        "agent",
        "run",
        "--node",
        name,
        "--advertise-addr",
        "127.0.0.1",
        "--state-dir",
        str(tmp_path / "agent-state"),
        "--metrics-addr",
        "127.0.0.1:0",
        "--stop-grace",
        "1",
    ]
    token = acl.token_for(consul_server.addr, store.prefix, args[1:]) or ""  # the agent's own, for its node
    agent = Process(args, tmp_path / "agent.log", env={"CONSUL_HTTP_TOKEN": token}).start()
    try:
        yield name
    finally:
        agent.stop()
        for container in docker_client.containers.list(all=True, filters={"label": [f"meshop.node={name}"]}):
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
        for volume in docker_client.volumes.list(filters={"label": [f"meshop.node={name}"]}):
            with contextlib.suppress(Exception):
                volume.remove(force=True)
        services = Services(store.config, store.client)
        for sid, body in services.local().items():
            if (body.get("Meta") or {}).get("node") == name:
                with contextlib.suppress(Exception):
                    services.deregister(sid)


def test_status_reaches_ready_with_a_real_agent_and_docker(
    consul_server: ConsulServer,
    store: KVStore,
    prefix: str,
    tmp_path: Path,
    agent_node: str,
    docker_client: Any,
    cli_controllers: Callable[..., CliController],
) -> None:
    ctl = cli_controllers("c1", "--grace-period", "5", "--lock-delay", "1")
    wait_until(lambda: store.get(keys.node(agent_node)), 30, what="the agent's node record")
    wait_until(lambda: ctl.get("/readyz") == (200, "leader\n"), 20, what=f"the controller to lead\n{ctl.log()}")

    doc = service_doc(
        "hello",
        image=TEST_IMAGE,
        command=["/bin/httpd"],
        args=["-f", "-p", "8080", "-h", "/www"],
        ports=[{"name": "http", "container": 8080}],
        health={"http": {"path": "/", "port": "http"}, "interval": "1s", "timeout": "1s"},
        route={"host": "hello.test", "port": "http"},
    )
    consul_kv_put(consul_server, f"{prefix}/desired/services/hello", doc, tmp_path)
    wait_until(lambda: placement_of(store, "hello") == {agent_node: 1}, 5, what="the assignment")
    wait_until(lambda: condition(store, "hello", "Ready") == ("True", "Ready"), 60, what="status Ready")
    running = docker_client.containers.list(filters={"label": [f"meshop.node={agent_node}", "meshop.service=hello"]})
    assert len(running) == 1

    def route() -> RouteRecord | None:
        entry = store.get(keys.route("hello.test"))
        return RouteRecord.from_dict(loads_json(entry.value)) if entry else None

    # Routes follow the replica's Consul check too, which may pass up to one check interval (1 s) after
    # the agent's own probe made the replica Ready.
    wait_until(lambda: [u.node for u in route().upstreams] == [agent_node], 5, what="the route")  # type: ignore[union-attr]
    found = route()
    assert found is not None
    upstream = found.upstreams[0]
    with urllib.request.urlopen(f"http://{upstream.address}:{upstream.port}/", timeout=5) as response:
        assert response.status == 200

    store.delete(keys.desired_service("hello"))  # deletion: assignment, route, status and container go
    wait_until(lambda: not placement_of(store, "hello") and store.get(keys.route("hello.test")) is None, 10)
    wait_until(
        lambda: (
            not docker_client.containers.list(
                all=True, filters={"label": [f"meshop.node={agent_node}", "meshop.service=hello"]}
            )
        ),
        30,
        what="the agent to remove the container",
    )
