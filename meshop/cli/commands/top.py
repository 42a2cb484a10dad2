"""``meshop top [nodes|services|replicas [SERVICE]] [--sort name|cpu|memory] [-o table|json]``: usage
from the agents' ``usage/<node>`` records, like ``kubectl top``; reads only."""

from __future__ import annotations

import json
import time

import click

from meshop.cli.context import CliContext
from meshop.cli.output import show
from meshop.client.usage import SORT_KEYS, node_rows, read_usage, replica_rows, service_rows

KINDS = {"nodes": "nodes", "node": "nodes", "no": "nodes", "services": "services", "service": "services"}
KINDS |= {"svc": "services", "replicas": "replicas", "replica": "replicas"}


@click.command()
@click.argument("kind", metavar="[nodes|services|replicas]", required=False, default="nodes")
@click.argument("service", metavar="[SERVICE]", required=False)
@click.option("--sort", type=click.Choice(SORT_KEYS), default="name", show_default=True, help="Order of the rows.")
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def top(obj: CliContext, kind: str, service: str | None, sort: str, fmt: str) -> None:
    """CPU (millicores: 1000m = one core), memory and network per node, service or replica.

    The agents sample every 10 s and write when usage moved (at least every 30 s); a node whose agent
    stopped shows "stale" and the age of its last sample. A replica at 90 % of its memory limit is marked !.
    """
    from meshop.cli import top as render  # rich: only when a table is drawn

    which = KINDS.get(kind)
    if which is None:
        raise click.UsageError(f"unknown kind {kind!r}: nodes, services or replicas")
    if service is not None and which != "replicas":
        raise click.UsageError("a SERVICE goes with 'top replicas' only")
    usage = read_usage(obj.store(), time.time())
    if which == "nodes":
        rows: list = node_rows(usage, sort)
        table = render.nodes_table
    elif which == "services":
        rows = service_rows(usage, sort)
        table = render.services_table
    else:
        rows = replica_rows(usage, service, sort)
        table = render.replicas_table
    if fmt == "json":
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    if not rows:
        click.echo("no usage yet: agents write usage/<node> about 10 s after they start", err=True)
        return
    show(table(rows))
