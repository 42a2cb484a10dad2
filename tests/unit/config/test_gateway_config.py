"""``GatewayConfig``: every field's refusal names the field; file and flags merge; it builds the
``GatewaySettings`` the flags built."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from meshop.config.gateway import FIELDS, GatewayConfig
from meshop.errors import ConfigError
from meshop.gateway.config import GatewaySettings

BASE = {"caddy_dir": "/var/lib/meshop/gateway"}

# (id, given, the field named, words of the reason)
REFUSED = [
    ("caddy-dir-and-admin", {"caddy_admin": "127.0.0.1:2019"}, "caddy_dir", "exactly one of"),
    ("caddy-dir-type", {"caddy_dir": 1}, "caddy_dir", "expected text"),
    ("caddy-admin-type", {"caddy_dir": None, "caddy_admin": 2019}, "caddy_admin", "expected text"),
    ("caddy-bin", {"caddy_bin": None}, "caddy_bin", "expected text"),
    ("http-port", {"http_port": 0}, "http_port", "not in 1..65535"),
    ("https-port", {"https_port": "443"}, "https_port", "an integer"),
    ("bind", {"bind": "0.0.0.0"}, "bind", "a list"),
    ("tls", {"tls": "on"}, "tls", "not one of internal, acme, off"),
    ("metrics-addr", {"metrics_addr": 9466}, "metrics_addr", "expected text"),
    ("id", {"id": "Bad_Id", "advertise_addr": "100.64.0.1"}, "id", "RFC 1123"),
    ("upstream-dns", {"upstream_dns": None}, "upstream_dns", "expected text"),
    ("resync", {"resync": -1}, "resync", "below 0"),
    ("advertise-loopback", {"advertise_addr": "127.0.0.1"}, "advertise_addr", "loopback"),
    ("check-interval", {"check_interval": 61}, "check_interval", "not in 0.5..60"),
    ("drain", {"drain": 3601}, "drain", "not in 0..3600"),
    ("share-certs", {"share_certs": "no"}, "share_certs", "true or false"),
    ("certs-interval", {"certs_interval": 0}, "certs_interval", "not in 1..3600"),
    ("local-cluster", {"local_cluster": 1}, "local_cluster", "true or false"),
    ("log-level", {"log_level": "trace"}, "log_level", "not one of"),
    ("log-format", {"log_format": "xml"}, "log_format", "not one of"),
]


def test_every_field_has_a_refusal_in_the_table() -> None:
    assert {field for _, _, field, _ in REFUSED} == set(FIELDS)


@pytest.mark.parametrize(("given", "field", "reason"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_a_refused_value_names_its_field(given: dict[str, object], field: str, reason: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        GatewayConfig.load({**BASE, **given})
    assert (refused.value.field, refused.value.source) == (field, "")
    assert reason in refused.value.reason
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({**BASE, **given}))
    with pytest.raises(ConfigError) as refused:
        GatewayConfig.load({}, path)
    assert (refused.value.field, refused.value.source) == (field, str(path))


def test_the_flags_given_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("caddy_dir: /var/lib/meshop/gateway\nbind: [0.0.0.0]\ntls: acme\nshare_certs: false\nid: g1\n")
    config = GatewayConfig.load({"tls": "internal", "bind": ["100.64.0.1"]}, path)
    assert (config.tls, config.bind, config.share_certs, config.id) == ("internal", ("100.64.0.1",), False, "g1")
    assert config.metrics_addr == "127.0.0.1:9466" and config.https_port == 443  # defaults
    path.write_text("caddy_dir: /g\nbogus: 1\n")
    with pytest.raises(ConfigError, match="bogus: unknown key"):
        GatewayConfig.load({}, path)


def test_the_id_defaults_to_the_host_name() -> None:
    assert GatewayConfig.load(BASE).id == socket.gethostname()


def test_a_resolved_advertise_address_is_checked_again() -> None:
    config = GatewayConfig.load({**BASE, "advertise_addr": "tailscale", "id": "g1"})
    assert config.with_advertise("100.64.0.9").advertise_addr == "100.64.0.9"
    with pytest.raises(ConfigError, match="loopback") as refused:
        config.with_advertise("127.0.0.1")
    assert refused.value.field == "advertise_addr"


def test_it_builds_the_gateway_settings_the_flags_built() -> None:
    config = GatewayConfig.load({"caddy_admin": "127.0.0.1:2019", "bind": ["0.0.0.0"], "tls": "off", "http_port": 8080})
    assert config.admin_address() == "127.0.0.1:2019"
    assert config.settings("127.0.0.1:2019") == GatewaySettings(
        admin="127.0.0.1:2019", http_port=8080, https_port=443, bind=("0.0.0.0",), tls_mode="off"
    )
    assert GatewayConfig.load({"caddy_dir": Path("/g")}).admin_address() == "unix//g/admin.sock"


def test_the_dataclass_defaults_are_the_fields_defaults() -> None:
    """One default per key: ``GatewayConfig(...)`` built directly agrees with ``load``."""
    assert GatewayConfig.load({**BASE, "id": "g1"}) == GatewayConfig(id="g1", caddy_dir=Path(BASE["caddy_dir"]))
