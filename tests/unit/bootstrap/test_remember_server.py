"""The script ``node add --server`` runs on the gateway to add a server to its Consul's ``retry_join``
(``meshop.client.bootstrap.REMEMBER_SERVER_SCRIPT``), run here with the gateway's ``python3`` on a file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from meshop.client.bootstrap import REMEMBER_SERVER_SCRIPT


def remember(path: Path, address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-", str(path), address], input=REMEMBER_SERVER_SCRIPT, capture_output=True, text=True
    )


def test_each_server_is_added_once_sorted_keeping_mode_and_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text(json.dumps({"bootstrap_expect": 1, "server": True}))
    real.chmod(0o600)
    config = tmp_path / "consul.json"
    config.symlink_to(real)  # a config folder managed elsewhere: the link stays, its target changes
    answers = [remember(config, a).stdout.strip() for a in ("100.64.0.12", "100.64.0.11", "100.64.0.12")]
    assert answers == ["changed", "changed", "same"]
    assert json.loads(real.read_text()) == {
        "bootstrap_expect": 1,
        "retry_join": ["100.64.0.11", "100.64.0.12"],
        "server": True,
    }
    assert config.is_symlink() and real.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["consul.json", "real.json"]  # no temporary left


def test_a_retry_join_of_another_shape_is_left_alone_with_a_reason(tmp_path: Path) -> None:
    config = tmp_path / "consul.json"
    config.write_text(json.dumps({"retry_join": "100.64.0.11"}))
    result = remember(config, "100.64.0.12")
    assert result.returncode != 0 and "not a list of addresses" in result.stderr
    assert json.loads(config.read_text()) == {"retry_join": "100.64.0.11"}
