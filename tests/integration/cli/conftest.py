from __future__ import annotations

import contextlib
import io
from collections.abc import Callable

import pytest

from meshop.cli.main import run


def invoke(consul_addr: str, prefix: str, *args: str) -> tuple[int, str, str]:
    """Run one meshop command in-process: (exit code, stdout, stderr). Usable from any fixture scope."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(["--consul-addr", consul_addr, "--prefix", prefix, *args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def meshop(consul_server, prefix: str, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run a meshop command in-process against the test Consul and prefix: (exit code, stdout, stderr)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run(["--consul-addr", consul_server.addr, "--prefix", prefix, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke
