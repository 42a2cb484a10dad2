"""Fault tests of issue 12: the agent against real Consul and Docker, with failures injected.

They reuse the agent suite's fixtures (``node``, ``engine``, ``start_agent``) and add a Consul of their
own where a test restarts it (the session's shared Consul must never be restarted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meshop.cli.main import run
from tests.integration.agent.conftest import engine, node, start_agent  # noqa: F401 - fixtures
from tests.integration.cli.conftest import command_line
from tests.integration.operator.conftest import controllers  # noqa: F401 - fixture
from tests.support.consul_server import ConsulServer

Cli = Callable[..., tuple[int, str, str]]  # meshop(*args) -> (exit code, stdout, stderr)


@pytest.fixture
def meshop(consul_server: ConsulServer, prefix: str, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run a meshop command in-process with the command's role token for this test's prefix."""

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run(command_line(consul_server.addr, prefix, args))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture
def own_consul(tmp_path: Path) -> Iterator[ConsulServer]:
    """A dev Consul for this test only: restarting it forgets every key, as after a dev-mode restart."""
    server = ConsulServer(tmp_path / "own-consul").start()
    try:
        yield server
    finally:
        server.stop()
