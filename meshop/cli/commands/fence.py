"""``meshop fence run``: the fence daemon (``meshop.agent.stateful.fence``), beside the agent on every node.

It kills a stateful copy whose lease ran out even when the agent is dead or hung (docs/stateful.md).
This module only declares the flags and runs the loop until SIGTERM or SIGINT.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from meshop.cli.flags import config_option, field_default, load_config
from meshop.config.fence import FIELDS, LOG_FORMATS, LOG_LEVELS, FenceConfig
from meshop.daemon.logs import setup_logging
from meshop.errors import DriverError

DOCKER_TIMEOUT = 10.0  # seconds per engine call: a hung engine must not stop the heartbeat for a minute


@click.group()
def fence() -> None:
    """The fence: kills stateful copies whose lease ran out, with or without the agent."""


@fence.command("run")
@config_option("/etc/meshop/agent.yaml (the agent's: the fence reads node, docker_host, lease_dir)")
@click.option("--node", envvar="MESHOP_NODE", help="This node's name (RFC 1123 label); required.")
@click.option("--docker-host", metavar="URL", envvar="DOCKER_HOST", help="Docker engine [env: DOCKER_HOST].")
@click.option(
    "--lease-dir",
    default=field_default(FIELDS, "lease_dir"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The lease folder the agent writes (root-only, on tmpfs).",
)
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default=field_default(FIELDS, "log_format"))
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default=field_default(FIELDS, "log_level"))
@click.pass_context
def run(ctx: click.Context, **_flags: object) -> None:
    """Kill every running stateful container of this node whose lease is missing, untrusted or expired."""
    config = load_config(ctx, FenceConfig.load)
    setup_logging(config.log_level, config.log_format)
    from meshop.agent.engine.docker_driver import DockerDriver  # the Docker SDK: only when a fence runs
    from meshop.agent.stateful.fence import Fence
    from meshop.agent.stateful.leases import LeaseDir

    try:
        driver = DockerDriver(config.node, config.docker_host, timeout=DOCKER_TIMEOUT)
    except DriverError as exc:
        raise click.ClickException(str(exc)) from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    try:
        Fence(LeaseDir(config.lease_dir), driver).run(stop)
    finally:
        driver.close()
