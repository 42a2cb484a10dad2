"""``meshop gateway run``'s configuration: one validated object from defaults, ``/etc/meshop/gateway.yaml``
and flags.

Keys are the flags of ``meshop gateway run`` without ``--``, ``-`` written ``_`` (``--share-certs`` /
``--no-share-certs`` is ``share_certs: true|false``); flags the user gave override the file
(``values.merge``). The gateway role's Consul token stays in the unit's 0600 env file, never in the YAML.
``GatewayConfig.load`` refuses what the gateway cannot run with, naming the field (``ConfigError``); the
object then builds ``GatewaySettings`` unchanged. Key reference: docs/config.md.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from meshop.config import values as v
from meshop.errors import ConfigError
from meshop.gateway.config import GatewaySettings
from meshop.model.addresses import address_problem
from meshop.model.names import is_dns_label
from meshop.tailscale import KEYWORD as TAILSCALE

TLS_MODES = ("internal", "acme", "off")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")

FIELDS: dict[str, v.Field] = {
    "caddy_dir": v.Field(v.optional(v.path)),
    "caddy_admin": v.Field(v.optional(v.text)),
    "caddy_bin": v.Field(v.text, "caddy"),
    "http_port": v.Field(v.port, 80),
    "https_port": v.Field(v.port, 443),
    "bind": v.Field(v.texts, ("127.0.0.1",)),
    "tls": v.Field(v.choice(*TLS_MODES), "internal"),
    "metrics_addr": v.Field(v.text, "127.0.0.1:9466"),
    "id": v.Field(v.optional(v.text)),  # None: this host's name
    "upstream_dns": v.Field(v.text, "unix"),
    "resync": v.Field(v.number(0), 30.0),
    "advertise_addr": v.Field(v.optional(v.text)),
    "check_interval": v.Field(v.number(0.5, 60), 2.0),
    "drain": v.Field(v.number(0, 3600), 0.0),
    "share_certs": v.Field(v.boolean, True),
    "certs_interval": v.Field(v.number(1, 3600), 10.0),
    "local_cluster": v.Field(v.boolean, False),
    "log_level": v.Field(v.choice(*LOG_LEVELS), "info"),
    "log_format": v.Field(v.choice(*LOG_FORMATS), "text"),
}


@dataclass(frozen=True)
class GatewayConfig:
    """The gateway's settings, checked; field names are the config file's keys (``FIELDS``)."""

    id: str
    caddy_dir: Path | None = None
    caddy_admin: str | None = None
    caddy_bin: str = "caddy"
    http_port: int = 80
    https_port: int = 443
    bind: tuple[str, ...] = ("127.0.0.1",)
    tls: str = "internal"
    metrics_addr: str = "127.0.0.1:9466"
    upstream_dns: str = "unix"
    resync: float = 30.0
    advertise_addr: str | None = None  # an IP, ``tailscale`` until ``with_advertise`` resolved it, or None
    check_interval: float = 2.0
    drain: float = 0.0
    share_certs: bool = True
    certs_interval: float = 10.0
    local_cluster: bool = False
    log_level: str = "info"
    log_format: str = "text"

    @classmethod
    def load(cls, given: Mapping[str, object] | None = None, path: Path | None = None) -> GatewayConfig:
        """Defaults < the file at ``path`` < ``given`` (the flags the user gave, by key); checked
        (``ConfigError`` names the field). ``id`` defaults to this host's name."""
        merged = v.merge(FIELDS, given or {}, path)
        values = dict(merged.values)
        values["id"] = values["id"] or socket.gethostname()
        config = cls(**values)  # type: ignore[arg-type]
        problem = config.problem()
        if problem is not None:
            raise merged.error(*problem)
        return config

    def problem(self) -> tuple[str, str] | None:
        """(field, reason) of the first combination the gateway cannot run with, or None."""
        if bool(self.caddy_dir) == bool(self.caddy_admin):
            return (
                "caddy_dir",
                "give exactly one of --caddy-dir (meshop runs Caddy) or --caddy-admin (use a running Caddy)",
            )
        if self.advertise_addr is None:
            return None
        if self.advertise_addr.strip().lower() != TAILSCALE:  # checked again once resolved (with_advertise)
            problem = address_problem(self.advertise_addr, local_cluster=self.local_cluster)
            if problem:
                return "advertise_addr", problem
        if not is_dns_label(self.id):
            return "id", "must be an RFC 1123 label to register the gateway"
        return None

    def with_advertise(self, address: str) -> GatewayConfig:
        """This configuration with the advertise address resolved (``tailscale`` -> the tailnet address),
        checked again."""
        config = replace(self, advertise_addr=address)
        problem = config.problem()
        if problem is not None:
            raise ConfigError(*problem)
        return config

    def admin_address(self) -> str:
        """The Caddy admin API: ``DIR/admin.sock`` of the Caddy meshop runs, else ``caddy_admin``."""
        return f"unix/{self.caddy_dir / 'admin.sock'}" if self.caddy_dir else (self.caddy_admin or "")

    def settings(self, admin: str) -> GatewaySettings:
        return GatewaySettings(
            admin=admin,
            http_port=self.http_port,
            https_port=self.https_port,
            bind=self.bind,
            tls_mode=self.tls,
            local_cluster=self.local_cluster,
        )
