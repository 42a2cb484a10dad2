"""Every parse site of a number in outside text refuses what is not ASCII digits with its own error,
never a bare ``ValueError`` from ``int()`` (``meshop.model.digits``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshop.caddy import dns_child
from meshop.caddy.admin import check_admin_address
from meshop.caddy.render import UnsafeValue, _safe_resolver, _safe_upstream
from meshop.daemon.status_server import parse_listen
from meshop.errors import MeshopError

BAD_PORTS = ["²", "8²", "\uff18\uff10", "١٢", "+80", " 80", "8_0", "", "9" * 5000, "65536"]


@pytest.mark.parametrize("port", BAD_PORTS, ids=repr)
def test_listen_addresses(port: str) -> None:
    with pytest.raises(MeshopError, match="not HOST:PORT"):
        parse_listen(f"127.0.0.1:{port}")


def test_listen_address_good() -> None:
    assert parse_listen(":0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:9464") == ("::1", 9464)


@pytest.mark.parametrize("port", BAD_PORTS, ids=repr)
def test_caddy_admin_addresses(port: str) -> None:
    with pytest.raises(MeshopError, match="not unix//PATH or HOST:PORT"):
        check_admin_address(f"127.0.0.1:{port}")


@pytest.mark.parametrize("port", BAD_PORTS, ids=repr)
def test_caddy_upstreams_and_resolvers(port: str) -> None:
    with pytest.raises(UnsafeValue):
        _safe_upstream(f"10.0.0.1:{port}")
    with pytest.raises(UnsafeValue):
        _safe_resolver(f"127.0.0.1:{port}")


@pytest.mark.parametrize(
    "argv",
    [[], ["3"], ["²", "t", "1"], ["3", "t", "²"], ["+3", "t", "1"], ["3", "t", "9" * 5000], ["3", "t", " 1"]],
    ids=repr,
)
def test_dns_child_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert dns_child.main(argv) == 2
    assert "usage:" in capsys.readouterr().out


def test_dns_child_table_takes_only_string_addresses_and_int_ports(tmp_path: Path) -> None:
    path = tmp_path / "table.json"
    path.write_text(
        json.dumps(
            {"web": [["10.0.0.1", 80], ["10.0.0.2", True], [5, 80], ["10.0.0.3", 70000], ["10.0.0.4", "80"], "x"]}
        )
    )
    assert dns_child.read_table(str(path)) == {"web": (("10.0.0.1", 80),)}
