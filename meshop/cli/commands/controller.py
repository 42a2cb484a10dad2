"""``meshop controller ...``: the controller daemon."""

from __future__ import annotations

import logging
import socket

import click

from meshop.cli.context import CliContext
from meshop.cli.flags import LOCAL_CLUSTER, TRUST_NODE_RECORDS
from meshop.daemon.logs import setup_logging
from meshop.daemon.run import run_daemon
from meshop.daemon.status_server import StatusServer
from meshop.operator.controller import COMPONENT, Controller, ControllerOptions
from meshop.operator.rebalance import MANUAL, POLICIES, RebalanceSettings

log = logging.getLogger("meshop.controller")


@click.group()
def controller() -> None:
    """The controller: validates desired state, places services, rolls up status."""


@controller.command("run")
@click.option(
    "--id",
    "controller_id",
    envvar="MESHOP_CONTROLLER_ID",
    default=socket.gethostname,
    show_default="hostname",
    help="This controller's id; `meshop init` and `node add --server` set the node's name (two hosts with one "
    "host name would fight for it).",
)
@click.option(
    "--grace-period", type=click.FloatRange(min=0), default=30.0, show_default=True, help="Seconds before NotReady."
)
@click.option(
    "--resync", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="Seconds between resyncs."
)
@click.option(
    "--lock-delay", type=click.IntRange(0, 60), default=1, show_default=True, help="Leader lock-delay in seconds."
)
@click.option(
    "--check-ttl",
    type=click.FloatRange(min=0.5),
    default=3.0,
    show_default=True,
    help="TTL of the heartbeat check the leader session is tied to (seconds).",
)
@click.option(
    "--metrics-addr",
    default="127.0.0.1:9465",
    show_default=True,
    metavar="HOST:PORT",
    help="/metrics, /healthz, /readyz (port 0: any free port).",
)
@click.option(
    "--rebalance",
    type=click.Choice(POLICIES),
    default=MANUAL,
    show_default=True,
    help="Cluster-wide rebalancing for services without spec.placement.rebalance: off | manual "
    "(on `meshop rebalance`) | auto.",
)
@click.option(
    "--rebalance-stable",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds a node must have been Ready without a flap before replicas move onto it.",
)
@click.option(
    "--rebalance-interval",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds between two rebalancing moves starting, cluster-wide.",
)
@click.option(
    "--rebalance-max-moves",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="Rebalancing moves running at once, cluster-wide.",
)
@click.option(
    "--rebalance-timeout",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Seconds after which a move whose new replica is not Ready and routed is undone.",
)
@LOCAL_CLUSTER
@TRUST_NODE_RECORDS
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info")
@click.pass_obj
def run(
    obj: CliContext,
    controller_id: str,
    grace_period: float,
    resync: float,
    lock_delay: int,
    check_ttl: float,
    metrics_addr: str,
    rebalance: str,
    rebalance_stable: float,
    rebalance_interval: float,
    rebalance_max_moves: int,
    rebalance_timeout: float,
    local_cluster: bool,
    trust_node_records: bool,
    log_format: str,
    log_level: str,
) -> None:
    """Run the controller (leader or hot standby) until SIGTERM/SIGINT."""
    setup_logging(log_level, log_format)
    options = ControllerOptions(
        controller_id=controller_id,
        grace_period=grace_period,
        resync=resync,
        lock_delay=lock_delay,
        check_ttl=check_ttl,
        local_cluster=local_cluster,
        trust_node_records=trust_node_records,
        rebalance=RebalanceSettings(
            rebalance, rebalance_stable, rebalance_interval, rebalance_max_moves, rebalance_timeout
        ),
    )
    ctl = Controller(obj.consul, options)

    def start(server: StatusServer) -> None:
        ctl.start_services(metrics_listen=server.address)
        log.info("controller %s started (consul %s, prefix %s)", controller_id, obj.consul.address, obj.consul.prefix)

    def stop() -> None:
        log.info("releasing the leader lock and deregistering")
        ctl.stop()

    run_daemon(COMPONENT, ctl.loop, metrics_addr=metrics_addr, ready=ctl.ready, on_start=start, on_stop=stop)
