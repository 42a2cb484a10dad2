"""The systemd units meshop installs, checked by systemd itself: ``systemd-analyze verify`` on the rendered
text (the binaries the units name are stand-ins in a private root, so the check needs no install), and
``systemd-analyze security --offline`` for what the internet-facing gateway may do.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from meshop.bootstrap import render

ANALYZE = shutil.which("systemd-analyze") or "systemd-analyze"  # installed by scripts/setup.sh (Debian's systemd)
SYSTEM_UNITS = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir())


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private root holding the rendered units, the host's own system units (targets the units name)
    and an executable stand-in at every path an ``ExecStart`` names."""
    root = tmp_path_factory.mktemp("units")
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for name, text in render.UNITS.items():
        (root / "etc/systemd/system" / name).write_text(text)
        for line in text.splitlines():
            if line.startswith(("ExecStart=", "ExecReload=")):
                binary = root / line.split("=", 1)[1].split()[0].lstrip("/")
                binary.parent.mkdir(parents=True, exist_ok=True)
                if not binary.exists():
                    binary.write_text("#!/bin/sh\n")
                    binary.chmod(0o755)
    return root


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ANALYZE, *args, f"--root={root}"], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", sorted(render.UNITS))
def test_every_unit_passes_systemd_analyze_verify(root: Path, name: str) -> None:
    done = analyze(root, "verify", "--man=no", str(root / "etc/systemd/system" / name))
    # verify exits 0 on warnings such as an unknown key or a bad value (which systemd then ignores): any output fails
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_verify_catches_what_it_should(root: Path) -> None:
    """The check above can fail: a misspelt key and a capability systemd does not know are reported."""
    bad = root / "etc/systemd/system/meshop-bad.service"
    bad.write_text(render.UNITS["meshop-gateway.service"] + "[Service]\nAmbientCapability=CAP_NET_BIND_SERVICE\n")
    try:
        done = analyze(root, "verify", "--man=no", str(bad))
    finally:
        bad.unlink()
    assert "Unknown key 'AmbientCapability'" in done.stderr


def exposure(root: Path, name: str) -> dict[str, bool]:
    done = analyze(root, "security", "--offline=true", "--json=short", name)
    assert done.returncode == 0, done.stderr
    return {check["json_field"]: check["set"] for check in json.loads(done.stdout)}


def test_the_gateway_runs_as_no_root_user_with_only_the_bind_capability(root: Path) -> None:
    checks = exposure(root, "meshop-gateway.service")
    assert checks["UserOrDynamicUser"] is True  # before: no User=, the gateway and its Caddy ran as root
    # every capability but binding ports below 1024 is out of the bounding set: not even a child regains it
    for cap in ("SYS_ADMIN", "DAC_FOWNER_IPC_OWNER", "SYS_PTRACE", "NET_ADMIN", "KILL", "SYS_RAWIO", "SETUID_SETGID"):
        assert checks.get(f"CapabilityBoundingSet_CAP_{cap}", True) is True, cap
    assert checks["NoNewPrivileges"] is True
    text = render.UNITS["meshop-gateway.service"]
    assert "\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n" in text
    assert "\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n" in text
    assert "\nStateDirectory=meshop/gateway\n" in text  # the Caddy folder gateway.yaml names, owned by that user


@pytest.mark.parametrize("name", ["meshop-controller.service", "meshop-acl-sync.service"])
def test_the_daemons_that_need_no_host_access_run_as_no_root_user(root: Path, name: str) -> None:
    assert exposure(root, name)["UserOrDynamicUser"] is True
