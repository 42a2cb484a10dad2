"""``meshop controller ...``: the controller daemon."""

from __future__ import annotations

import logging
import signal
import socket
import threading

import click

from meshop import metrics
from meshop.cli.context import CliContext
from meshop.httpserver import StatusServer
from meshop.logs import setup_logging
from meshop.operator.controller import Controller, ControllerOptions

log = logging.getLogger("meshop.controller")


@click.group()
def controller() -> None:
    """The controller: validates desired state, places services, rolls up status."""


@controller.command("run")
@click.option(
    "--id", "controller_id", default=socket.gethostname, show_default="hostname", help="This controller's id."
)
@click.option(
    "--grace-period", type=click.FloatRange(min=0), default=30.0, show_default=True, help="Seconds before NotReady."
)
@click.option(
    "--resync", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="Seconds between resyncs."
)
@click.option(
    "--lock-delay", type=click.IntRange(0, 60), default=5, show_default=True, help="Leader lock-delay in seconds."
)
@click.option(
    "--check-ttl",
    type=click.FloatRange(min=0.5),
    default=3.0,
    show_default=True,
    help="TTL of the heartbeat check the leader session is tied to (seconds).",
)
@click.option("--metrics-addr", metavar="HOST:PORT", help="Serve /metrics, /healthz and /readyz here.")
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
    metrics_addr: str | None,
    log_format: str,
    log_level: str,
) -> None:
    """Run the controller (leader or hot standby) until SIGTERM/SIGINT."""
    setup_logging(log_level, log_format)
    metrics.set_build_info("controller")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = StatusServer(metrics_addr, lambda: ctl.ready()) if metrics_addr else None
    options = ControllerOptions(
        controller_id=controller_id,
        grace_period=grace_period,
        resync=resync,
        lock_delay=lock_delay,
        check_ttl=check_ttl,
        port=server.port if server else 0,
    )
    ctl = Controller(obj.consul, options)
    if server is not None:
        server.start()
        log.info("serving /metrics and /readyz on %s", server.address)
    ctl.start()
    log.info("controller %s started (consul %s, prefix %s)", controller_id, obj.consul.address, obj.consul.prefix)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        log.info("stopping: releasing the leader lock and deregistering")
        ctl.stop()
        if server is not None:
            server.stop()
