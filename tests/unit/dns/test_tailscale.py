"""``--advertise-addr tailscale``: the tailnet address from the ``tailscale`` CLI (a fake one on PATH
stands in for it here: only the parse and the error paths are tested, not Tailscale itself)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshop.tailscale import TailscaleError, parse_ip_output, resolve_advertise


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("100.101.102.103\n", "100.101.102.103"),
        ("fd7a:115c:a1e0::1\n", "fd7a:115c:a1e0::1"),
        ("Warning: client version != tailscaled\n100.64.0.7\n", "100.64.0.7"),
        ("", None),
        ("not running\n", None),
    ],
    ids=["ipv4", "ipv6", "warning-first", "empty", "garbage"],
)
def test_parse_ip_output(text: str, address: str | None) -> None:
    assert parse_ip_output(text) == address


def fake_tailscale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    binary = tmp_path / "tailscale"
    binary.write_text(f"#!/bin/sh\n{script}\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


def test_keyword_takes_the_tailnet_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tailscale(tmp_path, monkeypatch, '[ "$1 $2" = "ip -4" ] && echo 100.90.1.2 && exit 0; exit 1')
    assert resolve_advertise("tailscale") == "100.90.1.2"
    assert resolve_advertise("10.0.0.5") == "10.0.0.5"


def test_ipv6_only_tailnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tailscale(tmp_path, monkeypatch, '[ "$2" = "-6" ] && echo fd7a:115c:a1e0::9 && exit 0; echo no v4 >&2; exit 1')
    assert resolve_advertise("tailscale") == "fd7a:115c:a1e0::9"


def test_stopped_tailscale_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tailscale(tmp_path, monkeypatch, "echo 'Tailscale is stopped.' >&2; exit 1")
    with pytest.raises(TailscaleError, match=r"no tailnet address.*Tailscale is stopped"):
        resolve_advertise("tailscale")


def test_without_the_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TailscaleError, match="no `tailscale` command on PATH"):
        resolve_advertise("tailscale")
