"""``meshop init`` / ``meshop node add`` with --dry-run: every step and file printed, no secret, nothing
contacted; bad input refused with the field named, no traceback."""

from __future__ import annotations

import contextlib
import io

import pytest

from meshop import __version__
from meshop.cli.main import run


@pytest.fixture
def software(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / f"meshop-{__version__}-py3-none-any.whl").write_bytes(b"wheel")
    (wheels / "click-8.1.7-py3-none-any.whl").write_bytes(b"dep")
    consul = tmp_path / "consul"
    consul.write_bytes(b"\x00binary")
    return ["--wheels", str(wheels), "--consul-binary", str(consul)]


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(["--consul-addr", "127.0.0.1:1", *args])  # nothing listens there: nothing may be contacted
    return code, out.getvalue(), err.getvalue()


def test_node_add_dry_run_prints_every_step(software):
    code, out, err = _run(
        "node",
        "add",
        "root@192.0.2.10",
        "--name",
        "n1",
        "--address",
        "100.64.0.11",
        "--gateway",
        "root@192.0.2.1",
        "--labels",
        "zone=fra1",
        "--dry-run",
        *software,
    )
    assert code == 0, err
    assert "placeholders" in err
    for part in (
        "packages docker.io",
        "file /usr/local/bin/consul (mode 0755): 7 bytes",
        "file /etc/consul.d/consul.json",
        "file /etc/meshop/agent.yaml (mode 0644)",
        "|   zone: fra1",
        "file /etc/meshop/agent.env (mode 0600)",
        "meshop-agent.service",
        "systemd: consul.service meshop-fence.service meshop-agent.service enabled and running",
    ):
        assert part in out
    assert "00000000-0000" not in out and "<redacted>" in out


def test_init_dry_run_prints_every_step(software):
    code, out, err = _run("init", "root@192.0.2.1", "--address", "100.64.0.1", "--dry-run", *software)
    assert code == 0, err
    for part in (
        "ACLs bootstrapped",
        "/etc/meshop/controller.env (0600)",
        "file /etc/meshop/gateway.yaml (mode 0644)",
        "meshop-gateway.service",
        "meshop-acl-sync.service",
        '"default_policy": "deny"',
    ):
        assert part in out
    assert '"encrypt": "<redacted>"' in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "N_1", "--address", "100.64.0.11"], "--name 'N_1'"),
        (["--name", "n1", "--address", "127.0.0.1"], "--address: 127.0.0.1 is a loopback address"),
        (["--name", "n1", "--address", "100.64.0.11", "--labels", "zone"], "--labels 'zone'"),
    ],
    ids=["name", "loopback", "labels"],
)
def test_bad_input_names_the_field(software, args, message):
    code, _, err = _run("node", "add", "root@192.0.2.10", "--gateway", "gw", *args, "--dry-run", *software)
    assert code == 1 and message in err and "Traceback" not in err


def test_missing_wheels_are_explained(tmp_path):
    code, _, err = _run(
        "node",
        "add",
        "h",
        "--name",
        "n1",
        "--address",
        "100.64.0.11",
        "--gateway",
        "gw",
        "--dry-run",
        "--wheels",
        str(tmp_path / "none"),
    )
    assert code == 1 and "scripts/build-wheels.sh" in err


def test_node_remove_dry_run():
    code, out, err = _run("node", "remove", "n1", "--gateway", "root@192.0.2.1", "--dry-run")
    assert code == 0, err
    assert "drain n1" in out and "systemctl disable --now" in out and "consul force-leave" in out
    code, _, err = _run("node", "remove", "N_1", "--gateway", "gw", "--dry-run")
    assert code == 1 and "Traceback" not in err
