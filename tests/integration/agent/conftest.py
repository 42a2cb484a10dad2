"""Fixtures for the node agent against the real Docker engine and a real Consul.

Every test gets its own node name (``t<random>``), and ``other_node`` a second one, so its containers,
volumes and Consul registrations are told apart from any other test's or engineer's on the shared
engine; teardown removes exactly the containers and volumes labelled with that node, and its
registrations. ``start_agent`` / ``start_other_agent`` start in-process agents of either node (one
place for every step an agent of a test needs).
"""

from __future__ import annotations

import contextlib
import secrets
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meshop.consul.config import ConsulConfig
from tests.integration.agent.helpers import AgentFactory, Engine, registrations
from tests.support import acl


def remove_node(client: Any, consul_server: Any, name: str) -> None:
    """Remove exactly what test node ``name`` left: its labelled containers and volumes, its registrations."""
    for container in client.containers.list(all=True, filters={"label": [f"meshop.node={name}"]}):
        with contextlib.suppress(Exception):  # already gone
            container.remove(force=True, v=True)
    for volume in client.volumes.list(filters={"label": [f"meshop.node={name}"]}):
        with contextlib.suppress(Exception):
            volume.remove(force=True)
    try:
        for sid in registrations(consul_server.addr, name):
            url = f"{consul_server.url}/v1/agent/service/deregister/{sid}"
            request = urllib.request.Request(url, method="PUT", headers=acl.auth_headers(consul_server.addr))
            urllib.request.urlopen(request, timeout=5).close()
    except OSError:
        pass


@pytest.fixture
def node(docker_client: Any, consul_server: Any) -> Iterator[str]:
    name = f"t{secrets.token_hex(4)}"
    yield name
    remove_node(docker_client, consul_server, name)


@pytest.fixture
def other_node(docker_client: Any, consul_server: Any) -> Iterator[str]:
    """A second node name on the shared engine, for tests with two agents (``start_other_agent``)."""
    name = f"t{secrets.token_hex(4)}"
    yield name
    remove_node(docker_client, consul_server, name)


@pytest.fixture
def engine(docker_client: Any, node: str) -> Engine:
    return Engine(docker_client, node)


@pytest.fixture
def start_agent(node: str, role_config: Callable[..., ConsulConfig], tmp_path: Path) -> Iterator[AgentFactory]:
    """In-process agents of ``node``, with that node's agent token."""
    factory = AgentFactory(node, role_config("agent", node), tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture
def start_other_agent(
    other_node: str, role_config: Callable[..., ConsulConfig], tmp_path: Path
) -> Iterator[AgentFactory]:
    """In-process agents of ``other_node``, with that node's agent token; stopped before its cleanup."""
    factory = AgentFactory(other_node, role_config("agent", other_node), tmp_path / "second")
    yield factory
    factory.stop_all()
