"""The node Caddy flags of ``meshop agent run``: which combinations are accepted, and what they become."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshop.agent.ingress.node_caddy import CaddyOptions
from meshop.agent.reconciler import AgentSettings
from meshop.config.agent import AgentConfig
from meshop.errors import ConfigError, MeshopError

SETTINGS = AgentSettings(node="n1", advertise_addr="100.64.0.7")
LOOPBACK = ("127.0.0.1",)


def options(**kw: object) -> CaddyOptions | None:
    """What ``meshop agent run`` builds from these node Caddy flags (``AgentConfig``, keys of the config file)."""
    given = {"node": SETTINGS.node, "advertise_addr": SETTINGS.advertise_addr, **kw}
    return AgentConfig.load(given).caddy(SETTINGS)


def test_without_caddy_flags_the_agent_routes_nothing() -> None:
    assert options() is None
    with pytest.raises(ConfigError, match="--caddy-dir"):
        options(ingress_port=8088)


def test_caddy_dir_needs_an_ingress_port_and_becomes_a_managed_caddy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="required with --caddy-dir"):
        options(caddy_dir=tmp_path)
    got = options(caddy_dir=tmp_path, ingress_port=8088, ingress_bind=("100.64.0.7",))
    assert got == CaddyOptions(ingress_port=8088, ingress_bind=("100.64.0.7",), directory=tmp_path.resolve())
    assert got.socket_path == tmp_path.resolve() / "admin.sock"
    assert got.snippet_folder == tmp_path.resolve() / "sites"


def test_a_caddy_of_your_own_needs_all_three_flags_and_not_caddy_dir(tmp_path: Path) -> None:
    own = {"caddy_admin": "unix//run/caddy/admin.sock", "caddy_config": tmp_path / "Caddyfile"}
    with pytest.raises(MeshopError, match="all of"):
        options(ingress_port=8088, **own)
    got = options(ingress_port=8088, caddy_snippets=tmp_path / "sites", **own)
    assert got is not None and got.directory is None and got.snippet_folder == (tmp_path / "sites").resolve()
    with pytest.raises(MeshopError, match="not both"):
        options(ingress_port=8088, caddy_dir=tmp_path, caddy_snippets=tmp_path / "sites", **own)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("ingress_bind", ("localhost",)),
        ("ingress_bind", ("0.0.0.0 {",)),
        ("ingress_trusted_proxy", ("private_ranges",)),
    ],
    ids=["bind-name", "bind-brace", "proxy-keyword"],
)
def test_addresses_are_ip_addresses_and_networks(tmp_path: Path, flag: str, value: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError):
        options(caddy_dir=tmp_path, ingress_port=8088, **{flag: value})


def test_a_caddy_dir_too_long_for_a_unix_socket_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MeshopError, match="too long"):
        options(caddy_dir=tmp_path / ("x" * 120), ingress_port=8088)
