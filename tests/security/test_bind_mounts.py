"""Host exposure through bind mounts: only below the folders the agent allows, whatever the path says.

Attack: a Service (or a container that can write inside an allowed folder) plants a symlink
``<allowed>/escape -> <a host folder with secrets>`` and asks for ``hostPath: <allowed>/escape``. Before,
bind mounts were all or nothing (``--allow-bind-mounts``), so any allowed node mounted any host path,
symlinks included. Now the path is resolved on the host and must stay below an ``--allow-bind-mount``
folder; the resolved path is what Docker mounts.

Attack on the time between the check and the mount: Docker resolves a bind source again at every start of
the container (a restart by its policy or the daemon, a reboot), long after the agent's check. A writer who
can rename an entry on the way — a container that mounts a parent folder writable, or a local user who
owns a folder on the way — swaps the mounted folder for a symlink to a host folder, and the next start
mounts that. Before, both worked (the restarted container read the host's secret); now such paths are
refused before any container is made (``meshop/agent/engine/hostpaths.py``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from meshop.cli.main import cli
from meshop.consul.store import KVStore
from tests.integration.agent.helpers import SLEEPER, AgentFactory, Engine, assign, observed
from tests.support.procs import wait_until
from tests.support.users import as_user


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


@pytest.fixture
def reachable() -> Iterator[tuple[Path, Path, str]]:
    """``allowed/`` (root's, 0755) in a folder every user can enter, and a 0700 ``secret/`` holding a token."""
    base = Path(tempfile.mkdtemp(prefix="meshop-bind-"))
    base.chmod(0o755)
    allowed, secret = base / "allowed", base / "secret"
    allowed.mkdir(mode=0o755)
    secret.mkdir(mode=0o700)
    token = f"host-secret-{secrets.token_hex(6)}"
    (secret / "token").write_text(token)
    try:
        yield allowed, secret, token
    finally:
        shutil.rmtree(base, ignore_errors=True)


def verdict(store: KVStore, node: str, service: str) -> object:
    return wait_until(
        lambda: (o := observed(store, node, service)) and (o.reason or o.containers) and o, 15, what=service
    )


def restarted_victims_read(engine: Engine, token: str) -> list[bytes]:
    """Docker starts every victim container again (as its restart policy or a reboot would): what each reads."""
    seen = []
    for victim in engine.containers("victim"):
        victim.restart(timeout=1)
        seen.append(victim.exec_run(["/bin/busybox", "cat", "/host/token"]).output)
    return [out for out in seen if token.encode() in out]


def test_a_container_writing_a_parent_folder_cannot_swap_another_services_mount(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, reachable: tuple[Path, Path, str]
) -> None:
    allowed, secret, token = reachable
    (allowed / "shared" / "data").mkdir(parents=True)
    start_agent(bind_mounts=(str(allowed),))
    assign(store, node, "writer", {**SLEEPER, "volumes": [{"hostPath": str(allowed / "shared"), "mountPath": "/w"}]})
    assign(store, node, "victim", mount_spec(str(allowed / "shared" / "data")))
    writer = wait_until(lambda: (c := engine.running("writer")) and c[0], 15, what="the writer running")
    record = verdict(store, node, "victim")
    # the attack: the writer's root renames the victim's folder and leaves a symlink to a host folder there
    swap = f"/bin/busybox mv /w/data /w/old && /bin/busybox ln -s {secret} /w/data"
    assert writer.exec_run(["/bin/busybox", "sh", "-c", swap]).exit_code == 0
    assert restarted_victims_read(engine, token) == []  # before: the restarted victim read the host's token
    assert record.reason == "PolicyRefused" and "which service writer mounts writable" in record.error
    assert engine.containers("victim") == []


def test_a_local_user_owning_a_folder_on_the_way_cannot_swap_the_mount(
    start_agent: AgentFactory,
    store: KVStore,
    engine: Engine,
    node: str,
    reachable: tuple[Path, Path, str],
    other_user: str,
) -> None:
    allowed, secret, token = reachable
    mine = allowed / "mine"
    (mine / "data").mkdir(parents=True)
    shutil.chown(mine, other_user, other_user)
    start_agent(bind_mounts=(str(allowed),))
    assign(store, node, "victim", mount_spec(str(mine / "data")))
    record = verdict(store, node, "victim")
    # the attack: the user renames the folder in its own folder and leaves a symlink to a host folder there
    swap = f"mv {mine}/data {mine}/old && ln -s {secret} {mine}/data"
    subprocess.run([*as_user(other_user), "sh", "-c", swap], check=True, timeout=30)
    assert restarted_victims_read(engine, token) == []  # before: the restarted victim read the host's token
    assert record.reason == "PolicyRefused" and f"folder {mine} belongs to uid" in record.error
    assert engine.containers("victim") == []
