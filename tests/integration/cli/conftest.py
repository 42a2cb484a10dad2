from __future__ import annotations

import contextlib
import io
from collections.abc import Callable

import pytest

from meshop.cli.main import run
from tests.support import acl


def command_line(consul_addr: str, prefix: str, args: tuple[str, ...], role_token: bool = True) -> list[str]:
    token = acl.token_for(consul_addr, prefix, list(args)) if role_token else None
    return ["--consul-addr", consul_addr, "--prefix", prefix, *(["--token", token] if token else []), *args]


def invoke(consul_addr: str, prefix: str, *args: str, role_token: bool = True) -> tuple[int, str, str]:
    """Run one meshop command in-process, with its role's token unless ``role_token`` is False: (exit code,
    stdout, stderr). Usable from any fixture scope."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(command_line(consul_addr, prefix, args, role_token))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def meshop(consul_server, prefix: str, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run a meshop command in-process against the test Consul and prefix, with the token of the command's
    role (read-only, or operator for apply/delete/nodes): (exit code, stdout, stderr)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run(command_line(consul_server.addr, prefix, args))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke
