"""``meshop apply | diff | validate | delete``: desired documents in and out of Consul."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from meshop.cli.context import CliContext
from meshop.client.apply import apply_changes, check_all, plan_changes, read_existing
from meshop.client.sources import SourcedDocument, read_sources
from meshop.errors import DocumentError, ValidationFailed
from meshop.model import keys

if TYPE_CHECKING:
    from meshop.consul.store import KVStore

FILES = click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    metavar="FILE|DIR|-",
    help="Document file, a directory of *.yaml/*.yml/*.json, or - for stdin (repeatable).",
)


def check_routes(documents: list[SourcedDocument], store: KVStore, prefix: str) -> None:
    """Refuse (nothing written) when a route host of these documents belongs to another service.
    Reads the cluster only when a document has a route."""
    if not any(item.doc.get("kind") == "Service" and item.doc["spec"].get("route") for item in documents):
        return
    # here, not at the top: the ownership rule is the controller's planner code (start-up time)
    from meshop.client.ownership import read_claims, route_hosts, route_violations

    hosts = route_hosts(documents)
    violations = route_violations(documents, read_claims(store, hosts), prefix)
    if violations:
        raise ValidationFailed(violations)


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
    documents = read_sources(paths)
    check_all(documents, obj.consul.prefix)
    if cluster:
        check_routes(documents, obj.store(), obj.consul.prefix)
    for item in documents:
        click.echo(f"{item.doc['kind'].lower()}/{item.doc['metadata']['name']} valid ({item.source})")


@click.command()
@FILES
@click.pass_obj
def apply(obj: CliContext, paths: tuple[str, ...]) -> None:
    """Validate every document, then write them (created / configured / unchanged)."""
    documents = read_sources(paths)
    check_all(documents, obj.consul.prefix)
    store = obj.store()
    check_routes(documents, store, obj.consul.prefix)
    changes = plan_changes(documents, read_existing(store, documents))
    outcome = apply_changes(store, changes)
    for change in changes:
        click.echo(f"{change.kind.lower()}/{change.name} {change.action}")
    if outcome.batches > 1:
        click.echo(
            f"note: {outcome.written} documents exceed one Consul transaction (64 operations, 512 KiB): "
            f"written in {outcome.batches} transactions, each atomic on its own",
            err=True,
        )


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
@click.argument("name")
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
