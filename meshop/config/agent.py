"""``meshop agent run``'s configuration: one validated object from defaults, ``/etc/meshop/agent.yaml`` and flags.

Every key of the file is a flag of ``meshop agent run`` without its ``--``, ``-`` written ``_``
(``--advertise-addr`` is ``advertise_addr``); repeated flags are lists, ``labels`` is a mapping (or the
flag's ``k=v,...`` text). Flags the user gave override the file (``values.merge``). Tokens are not keys: the
agent reads Consul's token from the environment (``CONSUL_HTTP_TOKEN``, the unit's 0600 env file).

``AgentConfig.load`` refuses what the daemon cannot run with, naming the field (``ConfigError``); the
object then builds what the daemon takes, unchanged: ``AgentSettings``, ``CaddyOptions``, ``DaemonOptions``.
Key reference: docs/config.md.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from meshop.agent.ingress.node_caddy import CaddyOptions
from meshop.agent.ingress.snippets import GATEWAYS, TRUSTED_PROXIES
from meshop.agent.planning.labels import is_label
from meshop.agent.reconciler import AgentSettings
from meshop.config import values as v
from meshop.errors import ConfigError
from meshop.model.policy import Policy

if TYPE_CHECKING:
    from meshop.agent.daemon import DaemonOptions
    from meshop.consul.config import ConsulConfig

log = logging.getLogger(__name__)

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


def parse_labels(raw: object) -> dict[str, str]:
    """``k=v,k2=v2`` (the flag) or a mapping (the file) -> dict; empty text -> {}."""
    if isinstance(raw, Mapping):
        if not all(isinstance(k, str) and isinstance(val, str) for k, val in raw.items()):
            raise ValueError("keys and values must be text (quote numbers: zone: '1')")
        return {k.strip(): val.strip() for k, val in raw.items()}
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in v.text(raw).split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


def _node(raw: object) -> str:
    node = v.text(raw)
    if not is_label(node):
        raise ValueError(f"{node!r} is not an RFC 1123 label (a-z, 0-9, '-')")
    return node


def _address(raw: object) -> str:
    if not v.text(raw).strip():
        raise ValueError("must not be empty")
    return str(raw)


def _bind_mounts(raw: object) -> tuple[str, ...]:
    """Host folders bind mounts may come from: absolute paths, never ``/`` itself (that would allow all)."""
    folders = v.texts(raw)
    for folder in folders:
        if not folder.startswith("/") or "\0" in folder:
            raise ValueError(f"{folder!r} is not an absolute path")
        if os.path.realpath(folder) == "/":
            raise ValueError(f"{folder!r} is the whole host; name a folder")
    return folders


def _ip_addresses(raw: object) -> tuple[str, ...]:
    items = v.texts(raw)
    for item in items:
        try:
            ipaddress.ip_address(item)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address") from None
    return items


def _networks(raw: object) -> tuple[str, ...]:
    items = v.texts(raw)
    for item in items:
        if item == GATEWAYS:  # the gateways' claimed addresses, followed as they change
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not a CIDR") from None
    return items


FIELDS: dict[str, v.Field] = {
    "node": v.Field(_node, v.REQUIRED),
    "advertise_addr": v.Field(_address, v.REQUIRED),
    "publish_addr": v.Field(v.optional(v.text)),
    "labels": v.Field(parse_labels, {}),
    "docker_host": v.Field(v.optional(v.text)),
    "state_dir": v.Field(v.path, Path("/var/lib/meshop/agent")),
    "lease_dir": v.Field(v.path, Path("/run/meshop/fence")),
    "metrics_addr": v.Field(v.text, "127.0.0.1:9464"),
    "resync": v.Field(v.number(0.1), 30.0),
    "usage_interval": v.Field(v.number(0), 10.0),
    "drain": v.Field(v.number(0), 1.0),
    "stop_grace": v.Field(v.number(0), 10.0),
    "allow_privileged": v.Field(v.boolean, False),
    "allow_host_network": v.Field(v.boolean, False),
    "allow_bind_mount": v.Field(_bind_mounts, ()),
    "caddy_dir": v.Field(v.optional(v.path)),
    "caddy_admin": v.Field(v.optional(v.text)),
    "caddy_config": v.Field(v.optional(v.path)),
    "caddy_snippets": v.Field(v.optional(v.path)),
    "caddy_bin": v.Field(v.text, "caddy"),
    "ingress_port": v.Field(v.optional(v.port)),
    "ingress_https_port": v.Field(v.optional(v.port)),
    "ingress_bind": v.Field(_ip_addresses, ("127.0.0.1",)),
    "ingress_trusted_proxy": v.Field(_networks, tuple(TRUSTED_PROXIES)),
    "caddy_upstream_dns": v.Field(v.text, "unix"),
    "log_format": v.Field(v.choice(*LOG_FORMATS), "text"),
    "log_level": v.Field(v.choice(*LOG_LEVELS), "info"),
}


@dataclass(frozen=True)
class AgentConfig:
    """The node agent's settings, checked; field names are the config file's keys (``FIELDS``)."""

    node: str
    advertise_addr: str  # an address, or ``tailscale`` until ``with_advertise`` resolved it
    publish_addr: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    docker_host: str | None = None
    state_dir: Path = Path("/var/lib/meshop/agent")
    lease_dir: Path = Path("/run/meshop/fence")  # shared with `meshop fence run`; tmpfs: emptied on boot
    metrics_addr: str = "127.0.0.1:9464"
    resync: float = 30.0
    usage_interval: float = 10.0  # seconds between usage samples; 0: none (docs/monitoring.md, Usage)
    drain: float = 1.0
    stop_grace: float = 10.0
    allow_privileged: bool = False
    allow_host_network: bool = False
    allow_bind_mount: tuple[str, ...] = ()
    caddy_dir: Path | None = None
    caddy_admin: str | None = None
    caddy_config: Path | None = None
    caddy_snippets: Path | None = None
    caddy_bin: str = "caddy"
    ingress_port: int | None = None
    ingress_https_port: int | None = None
    ingress_bind: tuple[str, ...] = ("127.0.0.1",)
    ingress_trusted_proxy: tuple[str, ...] = tuple(TRUSTED_PROXIES)
    caddy_upstream_dns: str = "unix"
    log_format: str = "text"
    log_level: str = "info"

    @classmethod
    def load(cls, given: Mapping[str, object] | None = None, path: Path | None = None) -> AgentConfig:
        """Defaults < the file at ``path`` < ``given`` (the flags the user gave, by key); every value and
        every combination checked (``ConfigError`` names the field)."""
        merged = v.merge(FIELDS, given or {}, path)
        config = cls(**merged.values)  # type: ignore[arg-type]
        problem = config.caddy_problem()
        if problem is not None:
            raise merged.error(*problem)
        return config

    def caddy_problem(self) -> tuple[str, str] | None:
        """(field, reason) of the first node-Caddy combination the agent cannot run, or None."""
        if not (self.caddy_dir or self.caddy_admin or self.caddy_config or self.caddy_snippets):
            if self.ingress_port:
                return "ingress_port", "needs --caddy-dir or a Caddy of your own"
            if self.ingress_https_port:
                return "ingress_https_port", "needs --caddy-dir or a Caddy of your own"
            return None
        if self.ingress_https_port is not None and self.ingress_https_port == self.ingress_port:
            return "ingress_https_port", "must differ from --ingress-port"
        if not self.ingress_port:
            return "ingress_port", "required with --caddy-dir / --caddy-admin"
        return None

    def with_advertise(self, address: str) -> AgentConfig:
        """This configuration with the advertise address resolved (``tailscale`` -> the tailnet address)."""
        return replace(self, advertise_addr=address)

    def settings(self) -> AgentSettings:
        return AgentSettings(
            node=self.node,
            advertise_addr=self.advertise_addr.strip(),
            publish_addr=(self.publish_addr or "").strip(),
            labels=dict(self.labels),
            policy=Policy(
                allow_bind_mounts=bool(self.allow_bind_mount),
                allow_privileged=self.allow_privileged,
                allow_host_network=self.allow_host_network,
            ),
            bind_mounts=tuple(self.allow_bind_mount),
            drain=self.drain,
            stop_grace=self.stop_grace,
        )

    def caddy(self, settings: AgentSettings) -> CaddyOptions | None:
        """The node Caddy's options; None without one (the agent then routes nothing). ``MeshopError`` for a
        combination ``CaddyOptions.check`` refuses."""
        problem = self.caddy_problem()
        if problem is not None:
            raise ConfigError(*problem)
        if self.ingress_port is None:
            return None
        options = CaddyOptions(
            ingress_port=self.ingress_port,
            ingress_bind=tuple(self.ingress_bind),
            directory=self.caddy_dir.resolve() if self.caddy_dir else None,
            admin=self.caddy_admin,
            config=self.caddy_config.resolve() if self.caddy_config else None,
            snippets=self.caddy_snippets.resolve() if self.caddy_snippets else None,
            caddy_bin=self.caddy_bin,
            trusted_proxies=tuple(self.ingress_trusted_proxy),
            upstream_dns=None if self.caddy_upstream_dns == "off" else self.caddy_upstream_dns,
            https_port=self.ingress_https_port,
        )
        options.check()
        bind = self.ingress_bind
        if settings.advertise_addr not in bind and not {"0.0.0.0", "::"} & set(bind):
            log.warning(
                "the gateway reaches this node at %s:%d, but its routes listen on %s only: set --ingress-bind %s",
                settings.advertise_addr,
                self.ingress_port,
                ", ".join(bind),
                settings.advertise_addr,
            )
        return options

    def daemon_options(self, consul: ConsulConfig) -> DaemonOptions:
        """Everything ``AgentDaemon`` takes. Imports the daemon (and with it the Docker SDK): call it only
        to run an agent."""
        from meshop.agent.daemon import DaemonOptions

        settings = self.settings()
        return DaemonOptions(
            settings=settings,
            caddy=self.caddy(settings),
            consul=consul,
            docker_host=self.docker_host or None,
            state_dir=self.state_dir,
            lease_dir=self.lease_dir,
            metrics_addr=self.metrics_addr,
            resync=self.resync,
            usage_interval=self.usage_interval,
        )
