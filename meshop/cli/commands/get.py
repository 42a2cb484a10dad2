"""``meshop get services|nodes|gateway [NAME]`` and ``meshop describe service NAME``; both read only."""

from __future__ import annotations

import time
from typing import Any

import click

from meshop.cli import complete
from meshop.cli.context import CliContext
from meshop.cli.output import OUTPUT, dump, show
from meshop.cli.render import cells, describe_view, grid, nodes_table, services_table
from meshop.cli.views import documents_text, to_yaml
from meshop.client.cluster import read_snapshot
from meshop.client.describe import (
    describe_service,
    gateway_objects,
    node_objects,
    node_summaries,
    service_objects,
    service_summaries,
)
from meshop.model import keys

KINDS = {
    **{"services": "services", "service": "services", "svc": "services", "nodes": "nodes", "node": "nodes"},
    **{"gateway": "gateway", "gateways": "gateway", "gw": "gateway"},
}


@click.command()
@click.argument("kind", type=click.Choice(sorted(KINDS)), metavar="services|nodes|gateway")
@click.argument("name", required=False, shell_complete=complete.by_kind)
@OUTPUT
@click.pass_obj
def get(obj: CliContext, kind: str, name: str | None, fmt: str) -> None:
    """List services or nodes (or one by NAME), or show the Gateway; -o json|yaml prints their documents,
    which apply -f - takes back (the server's view is under status:, which apply ignores)."""
    snapshot = read_snapshot(obj.consul)
    if KINDS[kind] == "gateway":
        items = gateway_objects(snapshot, obj.store().get(keys.DESIRED_GATEWAY), name)
        if fmt != "table":
            click.echo(documents_text(items, fmt, one=True), nl=False)
        else:
            show(_gateway_table(items[0]))
        return
    services = KINDS[kind] == "services"
    if fmt != "table":
        items = service_objects(snapshot, name) if services else node_objects(snapshot, name)
        click.echo(documents_text(items, fmt, one=name is not None), nl=False)
    elif services:
        show(services_table(service_summaries(snapshot, name), snapshot.now))
    else:
        show(nodes_table(node_summaries(snapshot, name), snapshot.now))


@click.command()
@click.argument("kind", type=click.Choice(["service"]))
@click.argument("name", shell_complete=complete.services)
@OUTPUT
@click.pass_obj
def describe(obj: CliContext, kind: str, name: str, fmt: str) -> None:
    """Spec, conditions (reasons, messages, since when), placement, containers and recent events of NAME."""
    desc = describe_service(obj.store(), name)
    if fmt != "table":
        click.echo(dump(desc.to_dict(), fmt), nl=False)
        return
    spec = to_yaml((desc.document or {}).get("spec"), sort_keys=True) if desc.document else ""
    show(describe_view(desc, spec, time.time()))


def _gateway_table(item: dict[str, Any]) -> Any:
    """One row: the Gateway's name, domains, TLS mode and how many gateways are registered / passing."""
    spec, status = item.get("spec") or {}, item["status"]
    running = status["gateways"]
    passing = sum(1 for row in running if row["health"] == "passing")
    table = grid("NAME", "DOMAINS", "TLS", "GATEWAYS")
    domains = ",".join(str(d) for d in spec.get("domains") or []) or "-"
    tls = str((spec.get("tls") or {}).get("mode", "acme"))
    table.add_row(*cells(item["metadata"]["name"], domains, tls, f"{passing}/{len(running)} passing"))
    return table
