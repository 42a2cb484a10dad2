from __future__ import annotations

from collections.abc import Callable

import pytest

from meshop.cli.main import run


@pytest.fixture
def meshop(consul_server, prefix: str, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run a meshop command in-process against the test Consul and prefix: (exit code, stdout, stderr)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run(["--consul-addr", consul_server.addr, "--prefix", prefix, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke
