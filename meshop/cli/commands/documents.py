"""``meshop apply | diff | validate | delete``: desired documents in and out of Consul."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from meshop.cli import complete
from meshop.cli.docs import apply_documents, check_routes, validate_documents
from meshop.client.apply import plan_changes, read_existing
from meshop.client.checks import check_all
from meshop.client.sources import read_sources
from meshop.errors import DocumentError
from meshop.model import keys

if TYPE_CHECKING:
    from meshop.cli.context import CliContext

FILES = click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    metavar="FILE|DIR|-",
    shell_complete=complete.files,
    help="Document file, a directory of *.yaml/*.yml/*.json, or - for stdin (repeatable).",
)


@click.command()
@FILES
@click.option(
    "--cluster",
    is_flag=True,
    help="Also check what only the cluster knows: that no other service owns a route host (diff and apply always do).",
)
@click.pass_obj
def validate(obj: CliContext, paths: tuple[str, ...], cluster: bool) -> None:
    """Check documents without touching Consul (with --cluster: route hosts against their owners too);
    every error is printed with its path."""
    validate_documents(obj, paths, cluster, click.echo)


@click.command()
@FILES
@click.pass_obj
def apply(obj: CliContext, paths: tuple[str, ...]) -> None:
    """Validate every document, then write them (created / configured / unchanged)."""
    apply_documents(obj, paths, click.echo)


@click.command()
@FILES
@click.pass_obj
def diff(obj: CliContext, paths: tuple[str, ...]) -> None:
    """Show what apply would change: each document's diff and the placement it would get.

    Exit code 0: no changes, 1: changes."""
    # here, not at the top: the placement preview runs the controller's planner, which apply and
    # validate never need (start-up time)
    from meshop.cli.views import format_diff, format_placement
    from meshop.client.preview import preview, read_cluster

    documents = read_sources(paths)
    check_all(documents, obj.consul.prefix)
    check_routes(documents, obj.store(), obj.consul.prefix)
    changes = plan_changes(documents, read_existing(obj.store(), documents))
    click.echo(format_diff(changes), nl=False)
    click.echo(format_placement(preview(read_cluster(obj.consul), changes, prefix=obj.consul.prefix)), nl=False)
    if any(change.action != "unchanged" for change in changes):
        raise SystemExit(1)


@click.command()
@click.argument("kind", type=click.Choice(["service", "node"]))
@click.argument("name", shell_complete=complete.by_kind)
@click.pass_obj
def delete(obj: CliContext, kind: str, name: str) -> None:
    """Delete a desired document; the controller then removes what it placed."""
    key = keys.desired_service(name) if kind == "service" else keys.desired_node(name)
    store = obj.store()
    entry = store.get(key)
    if entry is None:
        raise DocumentError(f"{kind}/{name} not found (no {store.full_key(key)})")
    store.delete(key, cas=entry.modify_index)
    click.echo(f"{kind}/{name} deleted")
