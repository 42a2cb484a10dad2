"""Fixtures for the node agent against the real Docker engine and a real Consul.

Every test gets its own node name (``t<random>``), so its containers, volumes and Consul
registrations are told apart from any other test's or engineer's on the shared engine; teardown
removes exactly the containers and volumes labelled with that node, and its registrations.
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


@pytest.fixture
def node(docker_client: Any, consul_server: Any) -> Iterator[str]:
    name = f"t{secrets.token_hex(4)}"
    yield name
    for container in docker_client.containers.list(all=True, filters={"label": [f"meshop.node={name}"]}):
        with contextlib.suppress(Exception):  # already gone
            container.remove(force=True, v=True)
    for volume in docker_client.volumes.list(filters={"label": [f"meshop.node={name}"]}):
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
def engine(docker_client: Any, node: str) -> Engine:
    return Engine(docker_client, node)


@pytest.fixture
def start_agent(node: str, role_config: Callable[..., ConsulConfig], tmp_path: Path) -> Iterator[AgentFactory]:
    """In-process agents of ``node``, with that node's agent token."""
    factory = AgentFactory(node, role_config("agent", node), tmp_path)
    yield factory
    factory.stop_all()
