"""ConsulConfig: flags over CONSUL_HTTP_* variables over defaults; the token never shows."""

from __future__ import annotations

import pytest

from meshop.consul.config import ConsulConfig, parse_addr
from meshop.errors import MeshopError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("127.0.0.1:8500", ("http", "127.0.0.1", 8500)),
        ("consul.internal:9500", ("http", "consul.internal", 9500)),
        ("http://10.0.0.1:8500", ("http", "10.0.0.1", 8500)),
        ("https://consul.internal", ("https", "consul.internal", 8501)),
        ("localhost", ("http", "localhost", 8500)),
    ],
    ids=["hostport", "name", "http-url", "https-default-port", "bare-host"],
)
def test_parse_addr(raw: str, expected: tuple[str, str, int]) -> None:
    assert parse_addr(raw) == expected


@pytest.mark.parametrize("raw", ["ftp://x:1", "127.0.0.1:notaport", "http://:8500"])
def test_parse_addr_rejects_garbage_with_a_clear_message(raw: str) -> None:
    with pytest.raises(MeshopError, match="is not host:port or scheme://host:port"):
        parse_addr(raw)


def test_environment_is_read() -> None:
    env = {
        "CONSUL_HTTP_ADDR": "10.1.2.3:8600",
        "CONSUL_HTTP_TOKEN": "secret-token",
        "CONSUL_HTTP_SSL": "true",
        "CONSUL_CACERT": "/etc/ca.pem",
        "CONSUL_CLIENT_CERT": "/etc/c.pem",
        "CONSUL_CLIENT_KEY": "/etc/k.pem",
        "CONSUL_HTTP_SSL_VERIFY": "false",
    }
    cfg = ConsulConfig.from_env(env)
    assert (cfg.scheme, cfg.host, cfg.port) == ("https", "10.1.2.3", 8600)
    assert cfg.token == "secret-token"
    assert (cfg.ca_file, cfg.cert_file, cfg.key_file) == ("/etc/ca.pem", "/etc/c.pem", "/etc/k.pem")
    assert cfg.verify is False
    assert cfg.prefix == "meshop"


def test_flags_win_and_the_token_never_shows_in_repr() -> None:
    cfg = ConsulConfig.from_env(
        {"CONSUL_HTTP_ADDR": "10.0.0.1:8500", "CONSUL_HTTP_TOKEN": "env-token"},
        addr="127.0.0.1:9000",
        token="flag-token",
        prefix="/custom/",
    )
    assert (cfg.host, cfg.port, cfg.token, cfg.prefix) == ("127.0.0.1", 9000, "flag-token", "custom")
    assert "flag-token" not in repr(cfg)


def test_token_file(tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    assert ConsulConfig.from_env({"CONSUL_HTTP_TOKEN_FILE": str(token_file)}).token == "file-token"
    with pytest.raises(MeshopError, match=r"CONSUL_HTTP_TOKEN_FILE .* cannot be read"):
        ConsulConfig.from_env({"CONSUL_HTTP_TOKEN_FILE": str(tmp_path / "missing")})


def test_every_client_reads_consistently() -> None:
    """A restarted server answers default-mode reads from its half-replayed log (see
    tests/integration/faults/test_restart_reads.py); every meshop client asks for consistent reads."""
    from meshop.consul.client import make_client

    assert make_client(ConsulConfig()).consistency == "consistent"
