"""Host exposure through bind mounts: only below the folders the agent allows, whatever the path says.

Attack: a Service (or a container that can write inside an allowed folder) plants a symlink
``<allowed>/escape -> <a host folder with secrets>`` and asks for ``hostPath: <allowed>/escape``. Before,
bind mounts were all or nothing (``--allow-bind-mounts``), so any allowed node mounted any host path,
symlinks included. Now the path is resolved on the host and must stay below an ``--allow-bind-mount``
folder; the resolved path is what Docker mounts.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner

from meshop.cli.main import cli
from meshop.consul.store import KVStore
from tests.integration.agent.helpers import SLEEPER, AgentFactory, Engine, assign, observed
from tests.support.procs import wait_until


@pytest.fixture
def host(tmp_path: Path) -> tuple[Path, Path, str]:
    """``allowed/`` with a public file and a symlink ``escape`` to ``secret/``, which holds a token."""
    allowed, secret = tmp_path / "allowed", tmp_path / "secret"
    (allowed / "public").mkdir(parents=True)
    (allowed / "public" / "hello.txt").write_text("hello\n")
    secret.mkdir()
    token = f"host-secret-{secrets.token_hex(6)}"
    (secret / "token").write_text(token)
    os.symlink(secret, allowed / "escape")
    return allowed, secret, token


def mount_spec(host_path: str) -> dict:
    return {**SLEEPER, "volumes": [{"hostPath": host_path, "mountPath": "/host", "readOnly": True}]}


def test_a_symlink_out_of_an_allowed_folder_is_refused(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, host: tuple[Path, Path, str]
) -> None:
    allowed, secret, token = host
    start_agent(bind_mounts=(str(allowed),))
    assign(store, node, "escape", mount_spec(str(allowed / "escape")))
    assign(store, node, "fine", mount_spec(str(allowed / "public")))
    record = wait_until(
        lambda: (o := observed(store, node, "escape")) and (o.reason or o.containers) and o, 10, what="a verdict"
    )
    assert record.reason == "PolicyRefused" and str(secret) in record.error and engine.containers("escape") == []
    # the control: a path inside the allowed folder is mounted, and reads what it should
    container = wait_until(lambda: (c := engine.running("fine")) and c[0], 10, what="the allowed mount")
    assert container.exec_run(["/bin/cat", "/host/hello.txt"]).output == b"hello\n"
    assert [m["Source"] for m in container.attrs["Mounts"]] == [str((allowed / "public").resolve())]
    assert token.encode() not in container.exec_run(["/bin/ls", "-R", "/host"]).output


def test_a_path_outside_every_allowed_folder_is_refused(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, host: tuple[Path, Path, str]
) -> None:
    allowed, secret, _ = host
    start_agent(bind_mounts=(str(allowed),))
    assign(store, node, "outside", mount_spec(str(secret)))
    record = wait_until(lambda: (o := observed(store, node, "outside")) and o.reason and o, 10, what="a verdict")
    assert record.reason == "PolicyRefused" and "--allow-bind-mount" in record.error
    assert engine.containers("outside") == []


@pytest.mark.parametrize("path", ["relative/dir", "/", "/tmp/.."], ids=["relative", "root", "root-in-disguise"])
def test_the_agent_refuses_an_allow_list_that_is_not_a_folder(path: str) -> None:
    result = CliRunner().invoke(
        cli, ["agent", "run", "--node", "n1", "--advertise-addr", "127.0.0.1", "--allow-bind-mount", path]
    )
    assert result.exit_code == 2 and "Invalid value for --allow-bind-mount" in result.output
    assert "not an absolute path" in result.output or "the whole host" in result.output
