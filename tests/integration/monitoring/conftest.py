"""One controller + agent + gateway stack per module on the session's Consul, under its own prefix;
teardown stops the daemons by PID and removes exactly the containers labelled with the stack's node."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.monitoring.stack import Stack
from tests.support import acl
from tests.support.consul_server import ConsulServer


def remove_node_containers(docker_client: Any, node: str) -> None:
    for container in docker_client.containers.list(all=True, filters={"label": [f"meshop.node={node}"]}):
        with contextlib.suppress(Exception):  # already gone
            container.remove(force=True, v=True)


@pytest.fixture(scope="module")
def stack(consul_server: ConsulServer, docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(consul_server.addr, f"t-{secrets.token_hex(4)}", tmp_path_factory.mktemp("stack")).start()
    try:
        yield running
    finally:
        running.stop()
        remove_node_containers(docker_client, running.node)
        acl.close(consul_server.addr, running.prefix)
