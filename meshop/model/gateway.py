"""Gateway document value object: served domains, TLS mode, optional DNS updates (RFC 2136 or PowerDNS)
and the host the dashboard is published at."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from meshop.errors import DocumentError
from meshop.model.frozen import FrozenDict, freeze
from meshop.model.schema import API_VERSION, apply_defaults, load_schema


@dataclass(frozen=True)
class GatewayDNS:
    provider: str = "none"  # "none" | "rfc2136" | "powerdns"
    server: str | None = None  # rfc2136: host:port
    zone: str | None = None
    key_name: str | None = None
    key_secret_key: str | None = None  # Consul key holding the TSIG secret or API key (never the secret)
    key_algorithm: str = "hmac-sha256"
    ttl: int = 60
    records: str = "hosts"  # hosts | wildcard
    owner_id: str | None = None  # default: the Gateway's name
    api_url: str | None = None  # powerdns: http(s)://host[:port][/path]
    server_id: str = "localhost"  # powerdns: the API's server id

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "provider": self.provider,
            "keyAlgorithm": self.key_algorithm,
            "ttl": self.ttl,
            "records": self.records,
            "serverId": self.server_id,
        }
        for key, value in (
            ("ownerId", self.owner_id),
            ("server", self.server),
            ("zone", self.zone),
            ("keyName", self.key_name),
            ("keySecretKey", self.key_secret_key),
            ("apiUrl", self.api_url),
        ):
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GatewayDNS:
        return cls(
            str(d["provider"]),
            d.get("server"),
            d.get("zone"),
            d.get("keyName"),
            d.get("keySecretKey"),
            str(d["keyAlgorithm"]),
            int(d.get("ttl", 60)),
            str(d.get("records", "hosts")),
            d.get("ownerId"),
            d.get("apiUrl"),
            str(d.get("serverId", "localhost")),
        )


DEFAULT_DASHBOARD_UPSTREAM = "127.0.0.1:8080"  # `meshop dashboard`'s default listener, beside the gateway


@dataclass(frozen=True)
class GatewayDashboard:
    """``spec.dashboard``: the gateway serves ``host`` with TLS, proxying to ``upstream`` (``IP:port``)
    once that dashboard has shown it requires a login (``meshop.gateway.dashboard``)."""

    host: str
    upstream: str = DEFAULT_DASHBOARD_UPSTREAM

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "upstream": self.upstream}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GatewayDashboard:
        return cls(str(d["host"]), str(d.get("upstream", DEFAULT_DASHBOARD_UPSTREAM)))


@dataclass(frozen=True)
class Gateway:
    name: str
    domains: tuple[str, ...]
    tls_mode: str = "acme"  # "acme" | "internal" | "off"
    tls_email: str | None = None
    dns: GatewayDNS = field(default_factory=GatewayDNS)
    labels: FrozenDict = field(default_factory=FrozenDict)
    annotations: FrozenDict = field(default_factory=FrozenDict)
    dashboard: GatewayDashboard | None = None

    def to_dict(self) -> dict[str, Any]:
        metadata = {"name": self.name, "labels": dict(self.labels), "annotations": dict(self.annotations)}
        tls: dict[str, Any] = {"mode": self.tls_mode}
        if self.tls_email is not None:
            tls["email"] = self.tls_email
        spec = {"domains": list(self.domains), "tls": tls, "dns": self.dns.to_dict()}
        if self.dashboard is not None:
            spec["dashboard"] = self.dashboard.to_dict()
        return {"apiVersion": API_VERSION, "kind": "Gateway", "metadata": metadata, "spec": spec}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Gateway:
        """Read a Gateway document (or ``to_dict()`` output) with defaults, without validating it."""
        try:
            d = copy.deepcopy(dict(doc))
            apply_defaults(d, load_schema("Gateway"), load_schema("Gateway"))
            meta, spec = d["metadata"], d["spec"]
            return cls(
                str(meta["name"]),
                tuple(str(x) for x in spec["domains"]),
                str(spec["tls"]["mode"]),
                spec["tls"].get("email"),
                GatewayDNS.from_dict(spec["dns"]),
                freeze(meta["labels"]),
                freeze(meta["annotations"]),
                GatewayDashboard.from_dict(spec["dashboard"]) if "dashboard" in spec else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DocumentError(f"malformed gateway document: {type(exc).__name__}: {exc}") from None
