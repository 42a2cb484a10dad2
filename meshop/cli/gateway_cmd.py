"""``meshop gateway run``: the gateway's Caddy, rendered from Consul routes."""

from __future__ import annotations

import socket
from pathlib import Path

import click

from meshop.caddy.admin import CaddyAdmin
from meshop.caddy.apply import ConfigApplier
from meshop.caddy.process import ManagedCaddy
from meshop.caddy.render import render_global
from meshop.cli.context import LOCAL_CLUSTER, CliContext
from meshop.daemon import run_daemon
from meshop.errors import MeshopError
from meshop.gateway.config import GatewaySettings
from meshop.gateway.daemon import COMPONENT, GatewayDaemon
from meshop.gateway.upstream_dns import UpstreamDNS
from meshop.httpserver import StatusServer
from meshop.logs import setup_logging


@click.group()
def gateway() -> None:
    """The gateway: TLS termination and routing to nodes, from Consul routes."""


@gateway.command("run")
@click.option("--caddy-dir", type=click.Path(path_type=Path), help="Run a Caddy of meshop's own with its state here.")
@click.option(
    "--caddy-admin", metavar="ADDR", help="Use a running Caddy: its admin API (unix//PATH or 127.0.0.1:PORT)."
)
@click.option("--caddy-bin", default="caddy", show_default=True, help="Caddy binary for --caddy-dir.")
@click.option("--http-port", default=80, show_default=True, type=click.IntRange(1, 65535))
@click.option("--https-port", default=443, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--bind", "binds", multiple=True, default=["127.0.0.1"], show_default=True, help="Listen address (repeat)."
)
@click.option(
    "--tls",
    "tls_mode",
    type=click.Choice(["internal", "acme", "off"]),
    default="internal",
    show_default=True,
    help="TLS when no Gateway document says otherwise.",
)
@click.option(
    "--metrics-addr",
    default="127.0.0.1:9466",
    show_default=True,
    metavar="HOST:PORT",
    help="/metrics, /healthz, /readyz (port 0: any free port); registered as meshop-metrics.",
)
@click.option(
    "--id", "gateway_id", default=socket.gethostname, show_default="hostname", help="This gateway's id (metrics)."
)
@click.option(
    "--upstream-dns",
    default="127.0.0.1:0",
    show_default=True,
    metavar="IP:PORT|off",
    help="Loopback UDP address of the DNS responder that hands Caddy each route's upstreams (port 0: any "
    "free port), so upstream changes need no Caddy reload; 'off': upstreams in the Caddyfile.",
)
@click.option("--resync", default=30.0, show_default=True, help="Seconds between full passes.")
@LOCAL_CLUSTER
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def run(
    obj: CliContext,
    caddy_dir: Path | None,
    caddy_admin: str | None,
    caddy_bin: str,
    http_port: int,
    https_port: int,
    binds: tuple[str, ...],
    tls_mode: str,
    metrics_addr: str,
    gateway_id: str,
    upstream_dns: str,
    resync: float,
    local_cluster: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Keep the gateway's Caddy equal to routes/ and the Gateway document."""
    setup_logging(log_level, log_format)
    if bool(caddy_dir) == bool(caddy_admin):
        raise MeshopError("give exactly one of --caddy-dir (meshop runs Caddy) or --caddy-admin (use a running Caddy)")
    managed = None
    if caddy_dir:
        caddy_dir = caddy_dir.resolve()
        caddy_dir.mkdir(parents=True, exist_ok=True)
        caddy_admin = f"unix/{caddy_dir / 'admin.sock'}"
    admin = CaddyAdmin(caddy_admin or "")
    settings = GatewaySettings(
        admin=admin.address,
        http_port=http_port,
        https_port=https_port,
        bind=binds,
        tls_mode=tls_mode,
        local_cluster=local_cluster,
    )
    if caddy_dir:
        managed = ManagedCaddy(
            caddy_dir, render_global(admin=admin.address, http_port=http_port, https_port=https_port), caddy_bin
        )
    dns = None if upstream_dns == "off" else UpstreamDNS(upstream_dns)
    daemon = GatewayDaemon(obj.consul, settings, ConfigApplier(admin, "gateway", managed), resync=resync, dns=dns)

    def start(server: StatusServer) -> None:
        if managed is not None:
            managed.start(admin)
        daemon.start_watches(metrics_listen=server.address, instance=gateway_id)

    def stop() -> None:
        daemon.stop()
        if managed is not None:
            managed.stop()

    run_daemon(COMPONENT, daemon.loop, metrics_addr=metrics_addr, ready=daemon.ready, on_start=start, on_stop=stop)
