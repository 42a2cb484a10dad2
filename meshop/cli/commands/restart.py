"""``meshop restart service NAME``: a rolling restart (``spec.restartedAt``, like ``kubectl rollout restart``)."""

from __future__ import annotations

import time

import click

from meshop.cli import complete
from meshop.cli.context import CliContext
from meshop.client.restart import restart_service


@click.command()
@click.argument("kind", type=click.Choice(["service", "svc"]))
@click.argument("name", shell_complete=complete.services)
@click.pass_obj
def restart(obj: CliContext, kind: str, name: str) -> None:
    """Replace every replica of service NAME by its update strategy (start-first keeps it serving)."""
    doc = restart_service(obj.store(), name, time.time())
    click.echo(f"service/{name} restarted (spec.restartedAt {doc['spec']['restartedAt']})")
