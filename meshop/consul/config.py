"""How to reach Consul: flags first, then the standard ``CONSUL_HTTP_*`` variables, then defaults.

Pure data, no I/O: every Consul client meshop makes is built from one ``ConsulConfig``, so the ACL
token and TLS settings are honoured everywhere alike (safety rule 7).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from meshop.errors import MeshopError
from meshop.model.keys import DEFAULT_PREFIX, resolve_prefix

DEFAULT_ADDR = "127.0.0.1:8500"
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class ConsulConfig:
    """Connection settings; ``repr`` never shows the token."""

    host: str = "127.0.0.1"
    port: int = 8500
    scheme: str = "http"
    token: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    timeout: float = DEFAULT_TIMEOUT
    prefix: str = DEFAULT_PREFIX

    @property
    def address(self) -> str:
        """The address as a user would write it, for error messages."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        addr: str | None = None,
        token: str | None = None,
        prefix: str | None = None,
        timeout: float | None = None,
    ) -> ConsulConfig:
        """Build from explicit values (flags) over ``CONSUL_HTTP_*`` variables over defaults."""
        env = os.environ if env is None else env
        raw_addr = addr or env.get("CONSUL_HTTP_ADDR") or DEFAULT_ADDR
        ssl_flag = env.get("CONSUL_HTTP_SSL", "").strip().lower()
        scheme, host, port = parse_addr(raw_addr, default_scheme="https" if ssl_flag == "true" else "http")
        verify_flag = env.get("CONSUL_HTTP_SSL_VERIFY", "").strip().lower()
        return cls(
            host=host,
            port=port,
            scheme=scheme,
            token=token or env.get("CONSUL_HTTP_TOKEN") or _read_token_file(env.get("CONSUL_HTTP_TOKEN_FILE")),
            ca_file=env.get("CONSUL_CACERT") or None,
            cert_file=env.get("CONSUL_CLIENT_CERT") or None,
            key_file=env.get("CONSUL_CLIENT_KEY") or None,
            verify=verify_flag not in ("false", "0", "no"),
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
            prefix=resolve_prefix(prefix, env),
        )

    def with_prefix(self, prefix: str) -> ConsulConfig:
        return replace(self, prefix=prefix.strip("/"))


def parse_addr(raw: str, default_scheme: str = "http") -> tuple[str, str, int]:
    """``host:port``, ``http://host:port`` or ``https://host`` -> (scheme, host, port)."""
    from urllib.parse import urlsplit  # here, not at the top: ``meshop validate`` never parses an address

    text = raw.strip()
    if "://" not in text:
        text = f"{default_scheme}://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise MeshopError(f"Consul address {raw!r} is not host:port or scheme://host:port ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MeshopError(f"Consul address {raw!r} is not host:port or scheme://host:port")
    if port is None:
        port = 8501 if parts.scheme == "https" else 8500
    return parts.scheme, parts.hostname, port


def _read_token_file(path: str | None) -> str | None:
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError as exc:
        raise MeshopError(f"CONSUL_HTTP_TOKEN_FILE {path!r} cannot be read: {exc.strerror}") from None
