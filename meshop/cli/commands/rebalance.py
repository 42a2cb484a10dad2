"""``meshop rebalance [--dry-run]``: show the moves that would even out the placement; ask for them."""

from __future__ import annotations

import time

import click

from meshop.cli.context import CliContext


@click.command()
@click.option("--dry-run", is_flag=True, help="Only show the moves (exit code 1 when some are pending).")
@click.pass_obj
def rebalance(obj: CliContext, dry_run: bool) -> None:
    """Move replicas back onto returning or new nodes: start-first, one replica of a service at a time.

    Shows the moves the controller planned (service: before -> after, and why), then asks it to run
    those of services whose policy is manual (auto ones run by themselves; off never)."""
    from meshop.client.rebalance import format_plan, needs_request, read_state, request

    store = obj.store()
    record, placements = read_state(store)
    click.echo(format_plan(record, placements, time.time()), nl=False)
    if dry_run:
        if record.pending:
            raise SystemExit(1)
        return
    if needs_request(record):
        request(store, time.time())
        click.echo("requested: the controller runs the moves one at a time (see `meshop events`)")
    elif record.pending:
        click.echo("nothing to request: the pending moves run by themselves (policy auto)")
