"""``meshop agent ...``: the node agent daemon."""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

import click

from meshop.agent.ingress.node_caddy import CaddyOptions
from meshop.agent.ingress.snippets import TRUSTED_PROXIES
from meshop.agent.planning.labels import is_label
from meshop.agent.reconciler import AgentSettings
from meshop.cli.context import CliContext
from meshop.daemon.logs import setup_logging
from meshop.daemon.run import run_daemon
from meshop.model import Policy
from meshop.tailscale import resolve_advertise

log = logging.getLogger(__name__)


def parse_labels(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` -> dict; empty text -> {}."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--labels")
        labels[key.strip()] = value.strip()
    return labels


def caddy_options(
    caddy_dir: Path | None,
    caddy_admin: str | None,
    caddy_config: Path | None,
    caddy_snippets: Path | None,
    caddy_bin: str,
    ingress_port: int | None,
    ingress_bind: tuple[str, ...],
    trusted_proxies: tuple[str, ...],
    settings: AgentSettings,
    upstream_dns: str = "127.0.0.1:0",
    https_port: int | None = None,
) -> CaddyOptions | None:
    """The node Caddy flags -> options; None without any (the agent then routes nothing, as before)."""
    if not (caddy_dir or caddy_admin or caddy_config or caddy_snippets):
        if ingress_port:
            raise click.BadParameter("needs --caddy-dir or a Caddy of your own", param_hint="--ingress-port")
        if https_port:
            raise click.BadParameter("needs --caddy-dir or a Caddy of your own", param_hint="--ingress-https-port")
        return None
    if https_port is not None and https_port == ingress_port:
        raise click.BadParameter("must differ from --ingress-port", param_hint="--ingress-https-port")
    if not ingress_port:
        raise click.BadParameter("required with --caddy-dir / --caddy-admin", param_hint="--ingress-port")
    for address in ingress_bind:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise click.BadParameter(f"{address!r} is not an IP address", param_hint="--ingress-bind") from None
    for network in trusted_proxies:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise click.BadParameter(f"{network!r} is not a CIDR", param_hint="--ingress-trusted-proxy") from None
    options = CaddyOptions(
        ingress_port=ingress_port,
        ingress_bind=tuple(ingress_bind),
        directory=caddy_dir.resolve() if caddy_dir else None,
        admin=caddy_admin,
        config=caddy_config.resolve() if caddy_config else None,
        snippets=caddy_snippets.resolve() if caddy_snippets else None,
        caddy_bin=caddy_bin,
        trusted_proxies=tuple(trusted_proxies),
        upstream_dns=None if upstream_dns == "off" else upstream_dns,
        https_port=https_port,
    )
    options.check()
    if settings.advertise_addr not in ingress_bind and not {"0.0.0.0", "::"} & set(ingress_bind):
        log.warning(
            "the gateway reaches this node at %s:%d, but its routes listen on %s only: set --ingress-bind %s",
            settings.advertise_addr,
            ingress_port,
            ", ".join(ingress_bind),
            settings.advertise_addr,
        )
    return options


def bind_mount_folders(paths: tuple[str, ...]) -> list[str]:
    """``--allow-bind-mount`` values: absolute paths, never ``/`` itself (that would allow everything)."""
    folders = []
    for path in paths:
        if not path.startswith("/") or "\0" in path:
            raise click.BadParameter(f"{path!r} is not an absolute path", param_hint="--allow-bind-mount")
        if os.path.realpath(path) == "/":
            raise click.BadParameter(f"{path!r} is the whole host; name a folder", param_hint="--allow-bind-mount")
        folders.append(path)
    return folders


@click.group()
def agent() -> None:
    """The node agent: keeps this node's containers equal to its assignments."""


@agent.command("run")
@click.option("--node", required=True, envvar="MESHOP_NODE", help="This node's name (RFC 1123 label).")
@click.option(
    "--advertise-addr",
    required=True,
    metavar="ADDR|tailscale",
    help="Address other nodes and Consul reach us at; 'tailscale': this machine's tailnet address (tailscale CLI).",
)
@click.option("--publish-addr", metavar="ADDR", help="Host address ports are published on [advertise address].")
@click.option("--labels", default="", metavar="K=V,...", help="Node labels for placement.")
@click.option("--docker-host", metavar="URL", envvar="DOCKER_HOST", help="Docker engine [env: DOCKER_HOST].")
@click.option(
    "--state-dir",
    default="/var/lib/meshop/agent",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the last good assignments are kept.",
)
@click.option(
    "--metrics-addr",
    default="127.0.0.1:9464",
    show_default=True,
    metavar="HOST:PORT",
    help="/metrics, /healthz, /readyz (port 0: any free port).",
)
@click.option(
    "--resync", default=30.0, show_default=True, type=click.FloatRange(0.1), help="Seconds between full resyncs."
)
@click.option(
    "--drain",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds a replaced replica keeps serving after its registration moved (start-first).",
)
@click.option(
    "--stop-grace",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds between SIGTERM and SIGKILL when removing a container.",
)
@click.option("--allow-privileged", is_flag=True, help="Run privileged containers.")
@click.option("--allow-host-network", is_flag=True, help="Run containers with host networking.")
@click.option(
    "--allow-bind-mount",
    "bind_mounts",
    multiple=True,
    metavar="PATH",
    help="Host folder whose contents (after resolving symlinks and '..') may be bind-mounted (repeat).",
)
@click.option(
    "--caddy-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run the node's Caddy for routes, with its state here (admin API on DIR/admin.sock).",
)
@click.option("--caddy-admin", metavar="ADDR", help="A Caddy you run: its admin API (unix//PATH or 127.0.0.1:PORT).")
@click.option(
    "--caddy-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A Caddy you run: its Caddyfile, which imports --caddy-snippets/*.caddy.",
)
@click.option(
    "--caddy-snippets",
    type=click.Path(file_okay=False, path_type=Path),
    help="A Caddy you run: the folder the agent writes route snippets into.",
)
@click.option("--caddy-bin", default="caddy", show_default=True, help="Caddy binary for --caddy-dir.")
@click.option(
    "--ingress-port",
    type=click.IntRange(1, 65535),
    help="The node Caddy's HTTP port for routes (required with a Caddy; the gateway proxies to it).",
)
@click.option(
    "--ingress-https-port",
    type=click.IntRange(1, 65535),
    help="Also serve the routes of local replicas over HTTPS on this port (TLS mode of the Gateway "
    "document), for clients DNS sends straight to this node when no gateway is healthy. Off by default.",
)
@click.option(
    "--ingress-bind",
    "ingress_bind",
    multiple=True,
    default=["127.0.0.1"],
    show_default=True,
    help="Address the routes listen on (repeat); production: the tailnet address.",
)
@click.option(
    "--ingress-trusted-proxy",
    "trusted_proxies",
    multiple=True,
    default=list(TRUSTED_PROXIES),
    show_default=True,
    metavar="CIDR",
    help="Peers whose X-Forwarded-* headers reach the containers unchanged (repeat; the gateway's network).",
)
@click.option(
    "--caddy-upstream-dns",
    "caddy_upstream_dns",
    default="127.0.0.1:0",
    show_default=True,
    metavar="IP:PORT|off",
    help="Loopback UDP address of the DNS responder that hands the node Caddy each route's local replicas "
    "(port 0: any free port), so replica changes need no Caddy reload; 'off': replicas in the snippet files.",
)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
@click.pass_obj
def run(
    obj: CliContext,
    node: str,
    advertise_addr: str,
    publish_addr: str | None,
    labels: str,
    docker_host: str | None,
    state_dir: Path,
    metrics_addr: str,
    resync: float,
    drain: float,
    stop_grace: float,
    allow_privileged: bool,
    allow_host_network: bool,
    bind_mounts: tuple[str, ...],
    caddy_dir: Path | None,
    caddy_admin: str | None,
    caddy_config: Path | None,
    caddy_snippets: Path | None,
    caddy_bin: str,
    ingress_port: int | None,
    ingress_https_port: int | None,
    ingress_bind: tuple[str, ...],
    trusted_proxies: tuple[str, ...],
    caddy_upstream_dns: str,
    log_format: str,
    log_level: str,
) -> None:
    """Run the node agent until SIGTERM or SIGINT (containers keep running after it stops)."""
    if not is_label(node):
        raise click.BadParameter(f"{node!r} is not an RFC 1123 label (a-z, 0-9, '-')", param_hint="--node")
    if not advertise_addr.strip():
        raise click.BadParameter("must not be empty", param_hint="--advertise-addr")
    advertise_addr = resolve_advertise(advertise_addr)
    setup_logging(log_level, log_format)
    settings = AgentSettings(
        node=node,
        advertise_addr=advertise_addr.strip(),
        publish_addr=(publish_addr or "").strip(),
        labels=parse_labels(labels),
        policy=Policy(
            allow_bind_mounts=bool(bind_mounts),
            allow_privileged=allow_privileged,
            allow_host_network=allow_host_network,
        ),
        bind_mounts=tuple(bind_mount_folders(bind_mounts)),
        drain=drain,
        stop_grace=stop_grace,
    )
    caddy = caddy_options(
        caddy_dir,
        caddy_admin,
        caddy_config,
        caddy_snippets,
        caddy_bin,
        ingress_port,
        ingress_bind,
        trusted_proxies,
        settings,
        caddy_upstream_dns,
        ingress_https_port,
    )
    from meshop.agent.daemon import AgentDaemon, DaemonOptions  # the Docker SDK: only when an agent runs

    options = DaemonOptions(
        settings=settings,
        caddy=caddy,
        consul=obj.consul,
        docker_host=docker_host or None,
        state_dir=state_dir,
        metrics_addr=metrics_addr,
        resync=resync,
    )
    daemon = AgentDaemon(options)
    run_daemon(
        "agent",
        daemon.loop,
        metrics_addr=metrics_addr,
        ready=daemon.ready,
        on_start=daemon.start,
        on_stop=daemon.shutdown,
    )
