"""``meshop gateway run``: the gateway's Caddy, rendered from Consul routes. Its configuration (validation,
the file, the merge) is ``meshop.config.gateway.GatewayConfig``; this module declares the flags and wires
the daemon's parts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from meshop.caddy.admin import CaddyAdmin
from meshop.caddy.apply import ConfigApplier
from meshop.caddy.process import ManagedCaddy
from meshop.caddy.render import render_global
from meshop.caddy.upstream_dns import UpstreamDNS
from meshop.cli.context import CliContext
from meshop.cli.flags import LOCAL_CLUSTER, config_option, field_default, load_config, usage_error
from meshop.config.gateway import FIELDS, LOG_FORMATS, LOG_LEVELS, TLS_MODES, GatewayConfig
from meshop.daemon.logs import setup_logging
from meshop.daemon.run import run_daemon
from meshop.daemon.status_server import StatusServer
from meshop.errors import ConfigError
from meshop.gateway.certs import CertSync, safe_sync
from meshop.gateway.daemon import COMPONENT, GatewayDaemon
from meshop.gateway.presence import gateway_registration, presence
from meshop.tailscale import resolve_advertise


def _default(key: str) -> object:
    return field_default(FIELDS, key)


@click.group()
def gateway() -> None:
    """The gateway: TLS termination and routing to nodes, from Consul routes."""


@gateway.command("run")
@config_option("/etc/meshop/gateway.yaml")
@click.option("--caddy-dir", type=click.Path(path_type=Path), help="Run a Caddy of meshop's own with its state here.")
@click.option(
    "--caddy-admin", metavar="ADDR", help="Use a running Caddy: its admin API (unix//PATH or 127.0.0.1:PORT)."
)
@click.option("--caddy-bin", default=_default("caddy_bin"), show_default=True, help="Caddy binary for --caddy-dir.")
@click.option("--http-port", default=_default("http_port"), show_default=True, type=int)
@click.option("--https-port", default=_default("https_port"), show_default=True, type=int)
@click.option("--bind", multiple=True, default=_default("bind"), show_default=True, help="Listen address (repeat).")
@click.option(
    "--tls",
    type=click.Choice(TLS_MODES),
    default=_default("tls"),
    show_default=True,
    help="TLS when no Gateway document says otherwise.",
)
@click.option(
    "--metrics-addr",
    default=_default("metrics_addr"),
    show_default=True,
    metavar="HOST:PORT",
    help="/metrics, /healthz, /readyz (port 0: any free port); registered as meshop-metrics-gateway.",
)
@click.option("--id", show_default="hostname", help="This gateway's id (metrics, its meshop-gateway registration).")
@click.option(
    "--upstream-dns",
    default=_default("upstream_dns"),
    show_default=True,
    metavar="unix|unix:PATH|IP:PORT|off",
    help="Where the DNS responder that hands Caddy each route's upstreams listens, so upstream changes need "
    "no Caddy reload: 'unix' (default) a socket in a folder only this user can enter; 'unix:PATH' that socket "
    "(its folder private to this user); IP:PORT loopback UDP (any local user may take a freed port: only for "
    "a Caddy of another user); 'off': upstreams in the Caddyfile.",
)
@click.option(
    "--resync", default=_default("resync"), show_default=True, type=float, help="Seconds between full passes."
)
@click.option(
    "--advertise-addr",
    metavar="IP|tailscale",
    help="Register this gateway as meshop-gateway with this address (what DNS records hold); "
    "'tailscale': the tailnet address from the tailscale CLI. Without it DNS never points here.",
)
@click.option(
    "--check-interval",
    default=_default("check_interval"),
    show_default=True,
    type=float,
    help="Health check seconds (0.5 to 60).",
)
@click.option(
    "--drain",
    default=_default("drain"),
    show_default=True,
    type=float,
    help="On a planned stop: leave DNS first, keep serving this many seconds (record TTL + margin; at most "
    "3600), then stop.",
)
@click.option(
    "--share-certs/--no-share-certs",
    default=_default("share_certs"),
    show_default=True,
    help="With --caddy-dir: share the CA and certificates with the other gateways through Consul KV "
    "(secrets/meshop-gateway/certs/), so a standby serves valid certificates before it takes traffic.",
)
@click.option("--certs-interval", default=_default("certs_interval"), show_default=True, type=float, hidden=True)
@LOCAL_CLUSTER
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default=_default("log_level"), show_default=True)
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default=_default("log_format"), show_default=True)
@click.pass_context
def run(ctx: click.Context, **_flags: object) -> None:
    """Keep the gateway's Caddy equal to routes/ and the Gateway document."""
    obj: CliContext = ctx.obj
    config = load_config(ctx, GatewayConfig.load)
    setup_logging(config.log_level, config.log_format)
    if config.advertise_addr is not None:
        try:
            config = config.with_advertise(resolve_advertise(config.advertise_addr))
        except ConfigError as exc:
            raise usage_error(ctx, exc) from None
    managed = None
    caddy_dir = config.caddy_dir.resolve() if config.caddy_dir else None
    if caddy_dir:
        caddy_dir.mkdir(parents=True, exist_ok=True)
        config = replace(config, caddy_dir=caddy_dir)
    admin = CaddyAdmin(config.admin_address())
    settings = config.settings(admin.address)
    if caddy_dir:
        managed = ManagedCaddy(
            caddy_dir,
            render_global(admin=admin.address, http_port=config.http_port, https_port=config.https_port),
            config.caddy_bin,
        )
    dns = None if config.upstream_dns == "off" else UpstreamDNS(config.upstream_dns, caddy_dir)
    applier = ConfigApplier(admin, "gateway", managed)
    daemon = GatewayDaemon(obj.consul, settings, applier, resync=config.resync, dns=dns, gateway_id=config.id)

    certs = CertSync(daemon.store, caddy_dir / "data" / "caddy") if caddy_dir and config.share_certs else None
    advertise = config.advertise_addr

    def start(server: StatusServer) -> None:
        if certs is not None:
            safe_sync(certs, at_start=True)  # the fleet's CA and certificates before Caddy starts
        if managed is not None:
            managed.start(admin)
        if certs is not None:
            certs.start(config.certs_interval)
        if advertise is not None:
            serve = f"{config.bind[0]}:{config.http_port if config.tls == 'off' else config.https_port}"
            registration = gateway_registration(config.id, advertise, serve, server.address, config.check_interval)
            daemon.presence = presence(daemon.services, registration, daemon.store)
            daemon.presence.sweep()  # an earlier run's session must not keep vouching for this one
            daemon.presence.ensure()
        daemon.start_watches(metrics_listen=server.address, instance=config.id)

    def stop() -> None:
        if daemon.presence is not None:
            daemon.presence.drain(config.drain)
        daemon.stop()
        if certs is not None:
            certs.stop()
        if daemon.presence is not None:
            daemon.presence.let_go()
            daemon.presence.withdraw()
        if managed is not None:
            managed.stop()

    run_daemon(
        COMPONENT, daemon.loop, metrics_addr=config.metrics_addr, ready=daemon.ready, on_start=start, on_stop=stop
    )
