"""``meshop export``, ``meshop import`` and ``meshop cluster adopt``: back up and restore the desired
state, and tell agents that a restored KV is the right one (docs/agent.md, "When Consul comes back empty")."""

from __future__ import annotations

import time

import click

from meshop.cli import complete
from meshop.cli.context import CliContext
from meshop.cli.docs import check_routes
from meshop.cli.output import dump
from meshop.cli.views import to_yaml
from meshop.client.apply import apply_changes, plan_changes, read_existing
from meshop.client.backup import adopt, export_documents, node_problem, nodes_to_adopt
from meshop.client.checks import check_all
from meshop.client.sources import read_sources


@click.command(name="export")
@click.option("-o", "--output", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.pass_obj
def export(obj: CliContext, fmt: str) -> None:
    """Print every desired document (gateway, nodes, services) for `meshop import -f` / `apply -f`."""
    result = export_documents(obj.store())
    if fmt == "json":
        click.echo(dump(list(result.documents), "json"), nl=False)
    else:
        click.echo("".join("---\n" + to_yaml(doc) for doc in result.documents), nl=False)
    for key in result.skipped:
        click.echo(f"Warning: skipped {key}: not a readable meshop document", err=True)


@click.command(name="import")
@click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    metavar="FILE|DIR|-",
    shell_complete=complete.files,
    help="An export (repeatable).",
)
@click.pass_obj
def import_(obj: CliContext, paths: tuple[str, ...]) -> None:
    """Restore desired documents from an export: checked first as apply checks them (each document, and
    no route host another service owns), written with check-and-set like apply."""
    documents = read_sources(paths)
    check_all(documents, obj.prefix)
    store = obj.store()
    check_routes(documents, store, obj.prefix)
    changes = plan_changes(documents, read_existing(store, documents))
    apply_changes(store, changes)
    for change in changes:
        click.echo(f"{change.kind.lower()}/{change.name} {change.action}")


@click.group()
def cluster() -> None:
    """The KV as the agents know it: adopt a restored or emptied KV."""


@cluster.command(name="adopt")
@click.argument("names", nargs=-1, metavar="[NODE]...")
@click.option("--all", "every", is_flag=True, help="Every node that has reported to this KV (nodes/ records).")
@click.pass_obj
def adopt_cmd(obj: CliContext, names: tuple[str, ...], every: bool) -> None:
    """Tell the nodes' agents that the KV as it is now is right: they act on its assignments again.

    Restore the desired state first (meshop import): an agent removes what its assignments no longer name."""
    store = obj.store()
    for node in nodes_to_adopt(store, names, every):
        problem = node_problem(store, node)
        adopt(store, node, time.time())
        note = " (no nodes/ record yet)" if problem is None else "" if problem else " (its agent reported no problem)"
        click.echo(f"node/{node} adopted{note}")
