"""``meshop agent ...``: the node agent daemon. Its configuration (validation, the file, the merge) is
``meshop.config.agent.AgentConfig``; this module only declares the flags and runs the daemon."""

from __future__ import annotations

from pathlib import Path

import click

from meshop.cli.context import CliContext
from meshop.cli.flags import config_option, field_default, load_config
from meshop.config.agent import FIELDS, LOG_FORMATS, LOG_LEVELS, AgentConfig
from meshop.daemon.logs import setup_logging
from meshop.daemon.run import run_daemon
from meshop.tailscale import resolve_advertise


def _default(key: str) -> object:
    return field_default(FIELDS, key)


@click.group()
def agent() -> None:
    """The node agent: keeps this node's containers equal to its assignments."""


@agent.command("run")
@config_option("/etc/meshop/agent.yaml")
@click.option("--node", envvar="MESHOP_NODE", help="This node's name (RFC 1123 label); required.")
@click.option(
    "--advertise-addr",
    metavar="ADDR|tailscale",
    help="Address other nodes and Consul reach us at; 'tailscale': this machine's tailnet address (tailscale CLI); "
    "required.",
)
@click.option("--publish-addr", metavar="ADDR", help="Host address ports are published on [advertise address].")
@click.option("--labels", default="", metavar="K=V,...", help="Node labels for placement.")
@click.option("--docker-host", metavar="URL", envvar="DOCKER_HOST", help="Docker engine [env: DOCKER_HOST].")
@click.option(
    "--state-dir",
    default=_default("state_dir"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the last good assignments are kept.",
)
@click.option(
    "--lease-dir",
    default=_default("lease_dir"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The lease folder shared with `meshop fence run` (root-only, on tmpfs): no stateful copy starts "
    "without a fence watching it.",
)
@click.option(
    "--metrics-addr",
    default=_default("metrics_addr"),
    show_default=True,
    metavar="HOST:PORT",
    help="/metrics, /healthz, /readyz (port 0: any free port).",
)
@click.option(
    "--resync", default=_default("resync"), show_default=True, type=float, help="Seconds between full resyncs (>= 0.1)."
)
@click.option(
    "--usage-interval",
    default=_default("usage_interval"),
    show_default=True,
    type=float,
    help="Seconds between usage samples (CPU, memory, network per replica; usage/<node> in KV); 0: none.",
)
@click.option(
    "--drain",
    default=_default("drain"),
    show_default=True,
    type=float,
    help="Seconds a replaced replica keeps serving after its registration moved (start-first).",
)
@click.option(
    "--stop-grace",
    default=_default("stop_grace"),
    show_default=True,
    type=float,
    help="Seconds between SIGTERM and SIGKILL when removing a container.",
)
@click.option("--allow-privileged", is_flag=True, help="Run privileged containers.")
@click.option("--allow-host-network", is_flag=True, help="Run containers with host networking.")
@click.option(
    "--allow-bind-mount",
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
@click.option("--caddy-bin", default=_default("caddy_bin"), show_default=True, help="Caddy binary for --caddy-dir.")
@click.option(
    "--ingress-port",
    type=int,
    help="The node Caddy's HTTP port for routes (required with a Caddy; the gateway proxies to it).",
)
@click.option(
    "--ingress-https-port",
    type=int,
    help="Also serve the routes of local replicas over HTTPS on this port (TLS mode of the Gateway "
    "document), for clients DNS sends straight to this node when no gateway is healthy. Off by default.",
)
@click.option(
    "--ingress-bind",
    multiple=True,
    default=_default("ingress_bind"),
    show_default=True,
    help="Address the routes listen on (repeat); production: the tailnet address.",
)
@click.option(
    "--ingress-trusted-proxy",
    multiple=True,
    default=_default("ingress_trusted_proxy"),
    show_default=True,
    metavar="CIDR|gateways",
    help="Peers whose X-Forwarded-* headers reach the containers unchanged (repeat); 'gateways': each address "
    "a gateway claimed in gateways/<id>, followed as it changes (the default, with this host).",
)
@click.option(
    "--caddy-upstream-dns",
    default=_default("caddy_upstream_dns"),
    show_default=True,
    metavar="unix|unix:PATH|IP:PORT|off",
    help="Where the DNS responder that hands the node Caddy each route's local replicas listens, so replica "
    "changes need no Caddy reload: 'unix' (default) a socket in a folder only this user can enter; "
    "'unix:PATH' that socket; IP:PORT loopback UDP (any local user may take a freed port); 'off': replicas "
    "in the snippet files.",
)
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default=_default("log_format"), show_default=True)
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default=_default("log_level"), show_default=True)
@click.pass_context
def run(ctx: click.Context, **_flags: object) -> None:
    """Run the node agent until SIGTERM or SIGINT (containers keep running after it stops)."""
    obj: CliContext = ctx.obj
    config = load_config(ctx, AgentConfig.load)
    config = config.with_advertise(resolve_advertise(config.advertise_addr))
    setup_logging(config.log_level, config.log_format)
    from meshop.agent.daemon import AgentDaemon  # the Docker SDK: only when an agent runs

    daemon = AgentDaemon(config.daemon_options(obj.consul))
    run_daemon(
        "agent",
        daemon.loop,
        metrics_addr=config.metrics_addr,
        ready=daemon.ready,
        on_start=daemon.start,
        on_stop=daemon.shutdown,
    )
