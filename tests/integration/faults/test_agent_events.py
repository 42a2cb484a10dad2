"""The agent's own entries in the event log (issue 12, item 8): before, only the controller wrote
events, so a failed pull, a crash, a rollback, a repaired drift or a removal left no trace there.
Real agent, Consul, Docker and registry; events read back through ``meshop events -o json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from meshop.consul.store import KVStore
from meshop.model import keys
from tests.conftest import TEST_IMAGE
from tests.integration.agent.helpers import (
    SLEEPER,
    AgentFactory,
    Engine,
    assign,
    http_spec,
    passing,
    registry_only_image,
)
from tests.integration.cli.conftest import invoke
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until
from tests.support.registry import RegistryServer


@pytest.fixture
def registry_image(docker_client: Any, registry: RegistryServer, node: str) -> Iterator[str]:
    with registry_only_image(docker_client, registry, f"meshop-events-{node}") as reference:
        yield reference


def _events(consul: ConsulServer, prefix: str, node: str) -> list[dict[str, Any]]:
    code, out, err = invoke(consul.addr, prefix, "events", "-n", "500", "-o", "json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    if len(rows) == 1 and isinstance(rows[0], list):
        rows = rows[0]
    return [r for r in rows if r.get("component") == f"agent/{node}"]


def _has(consul: ConsulServer, prefix: str, node: str, kind: str, obj: str, text: str = "") -> bool:
    return any(e["kind"] == kind and e["object"] == obj and text in e["message"] for e in _events(consul, prefix, node))


def test_agent_writes_its_events(
    consul_server: ConsulServer,
    prefix: str,
    store: KVStore,
    start_agent: AgentFactory,
    engine: Engine,
    node: str,
    registry: RegistryServer,
    registry_image: str,
) -> None:
    start_agent(drain=0.2)
    ev = (consul_server, prefix, node)
    assign(store, node, "pulled", {**SLEEPER, "image": registry_image})
    assign(store, node, "missing", {**SLEEPER, "image": f"{registry.addr}/meshop-missing-{node}:1"})
    assign(store, node, "crasher", {"image": TEST_IMAGE, "command": ["/bin/sh"], "args": ["-c", "exit 3"]})
    wait_until(lambda: _has(*ev, "Pulled", "service/pulled", registry_image), 30, what="Pulled")
    wait_until(lambda: _has(*ev, "Created", "service/pulled"), 10, what="Created")
    wait_until(lambda: _has(*ev, "PullFailed", "service/missing"), 30, what="PullFailed")
    wait_until(lambda: _has(*ev, "Crashed", "service/crasher", "exited with code 3"), 15, what="Crashed")

    engine.running("pulled")[0].remove(force=True)
    wait_until(lambda: _has(*ev, "DriftRepaired", "service/pulled"), 15, what="DriftRepaired")

    spec = http_spec(update={"strategy": "start-first", "healthTimeout": "2s", "autoRollback": True})
    assign(store, node, "web", spec)
    wait_until(lambda: passing(consul_server.addr, "web", node), 20, what="web passing")
    assign(store, node, "web", {**spec, "args": ["-f", "-p", "9090", "-h", "/www"]}, generation=2)
    wait_until(lambda: _has(*ev, "RolledBack", "service/web", "rolled back"), 30, what="RolledBack")

    store.delete(keys.assignment(node, "crasher"))
    wait_until(lambda: _has(*ev, "Removed", "service/crasher", "no longer assigned"), 15, what="Removed")
