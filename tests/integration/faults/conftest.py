"""Fault tests of issue 12: the agent against real Consul and Docker, with failures injected.

They reuse the agent suite's fixtures (``node``, ``engine``, ``start_agent``) and add a Consul of their
own where a test restarts it (the session's shared Consul must never be restarted).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.agent.conftest import engine, node, start_agent  # noqa: F401 - fixtures
from tests.integration.operator.conftest import controllers  # noqa: F401 - fixture
from tests.support.consul_server import ConsulServer


@pytest.fixture
def own_consul(tmp_path: Path) -> Iterator[ConsulServer]:
    """A dev Consul for this test only: restarting it forgets every key, as after a dev-mode restart."""
    server = ConsulServer(tmp_path / "own-consul").start()
    try:
        yield server
    finally:
        server.stop()
