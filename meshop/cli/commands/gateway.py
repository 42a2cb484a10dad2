"""``meshop gateway run``: the gateway's Caddy, rendered from Consul routes."""

from __future__ import annotations

import socket
from pathlib import Path

import click

from meshop.caddy.admin import CaddyAdmin
from meshop.caddy.apply import ConfigApplier
from meshop.caddy.process import ManagedCaddy
from meshop.caddy.render import render_global
from meshop.caddy.upstream_dns import UpstreamDNS
from meshop.cli.context import CliContext
from meshop.cli.flags import LOCAL_CLUSTER
from meshop.daemon.logs import setup_logging
from meshop.daemon.run import run_daemon
from meshop.daemon.status_server import StatusServer
from meshop.errors import MeshopError
from meshop.gateway.certs import CertSync, safe_sync
from meshop.gateway.config import GatewaySettings
from meshop.gateway.daemon import COMPONENT, GatewayDaemon
from meshop.gateway.presence import Presence, gateway_registration, presence
from meshop.model.addresses import address_problem
from meshop.model.names import is_dns_label
from meshop.tailscale import resolve_advertise


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
@click.option(
    "--advertise-addr",
    metavar="IP|tailscale",
    help="Register this gateway as meshop-gateway with this address (what DNS records hold); "
    "'tailscale': the tailnet address from the tailscale CLI. Without it DNS never points here.",
)
@click.option(
    "--check-interval", default=2.0, show_default=True, type=click.FloatRange(0.5, 60), help="Health check seconds."
)
@click.option(
    "--drain",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="On a planned stop: leave DNS first, keep serving this many seconds (record TTL + margin), then stop.",
)
@click.option(
    "--share-certs/--no-share-certs",
    default=True,
    show_default=True,
    help="With --caddy-dir: share the CA and certificates with the other gateways through Consul KV "
    "(secrets/meshop-gateway/certs/), so a standby serves valid certificates before it takes traffic.",
)
@click.option("--certs-interval", default=10.0, show_default=True, type=click.FloatRange(1, 3600), hidden=True)
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
    advertise_addr: str | None,
    check_interval: float,
    drain: float,
    share_certs: bool,
    certs_interval: float,
    local_cluster: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Keep the gateway's Caddy equal to routes/ and the Gateway document."""
    setup_logging(log_level, log_format)
    if bool(caddy_dir) == bool(caddy_admin):
        raise MeshopError("give exactly one of --caddy-dir (meshop runs Caddy) or --caddy-admin (use a running Caddy)")
    advertise = resolve_advertise(advertise_addr) if advertise_addr else None
    if advertise is not None:
        problem = address_problem(advertise, local_cluster=local_cluster)
        if problem:
            raise click.BadParameter(problem, param_hint="--advertise-addr")
        if not is_dns_label(gateway_id):
            raise click.BadParameter("must be an RFC 1123 label to register the gateway", param_hint="--id")
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

    certs = CertSync(daemon.store, caddy_dir / "data" / "caddy") if caddy_dir and share_certs else None

    def start(server: StatusServer) -> None:
        if certs is not None:
            safe_sync(certs, at_start=True)  # the fleet's CA and certificates before Caddy starts
        if managed is not None:
            managed.start(admin)
        if certs is not None:
            certs.start(certs_interval)
        if advertise is not None:
            serve = f"{binds[0]}:{http_port if tls_mode == 'off' else https_port}"
            registration = gateway_registration(gateway_id, advertise, serve, server.address, check_interval)
            daemon.presence = presence(daemon.services, registration)
            daemon.presence.ensure()
        daemon.start_watches(metrics_listen=server.address, instance=gateway_id)

    def stop() -> None:
        if isinstance(daemon.presence, Presence):
            daemon.presence.drain(drain)
        daemon.stop()
        if certs is not None:
            certs.stop()
        if daemon.presence is not None:
            daemon.presence.withdraw()
        if managed is not None:
            managed.stop()

    run_daemon(COMPONENT, daemon.loop, metrics_addr=metrics_addr, ready=daemon.ready, on_start=start, on_stop=stop)
