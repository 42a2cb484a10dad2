"""``meshop apply | diff | validate | delete``: desired documents in and out of Consul."""

from __future__ import annotations

import click

from meshop.cli.context import CliContext
from meshop.cli.safe import printable
from meshop.cli.views import format_diff, format_placement
from meshop.client.apply import apply_changes, check_all, plan_changes, read_existing
from meshop.client.ownership import Claims, read_claims, route_violations
from meshop.client.preview import preview, read_cluster
from meshop.client.sources import SourcedDocument, read_sources
from meshop.errors import ConsulError, DocumentError, ValidationFailed
from meshop.model import keys

FILES = click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    metavar="FILE|DIR|-",
    help="Document file, a directory of *.yaml/*.yml/*.json, or - for stdin (repeatable).",
)


def check_routes(documents: list[SourcedDocument], claims: Claims, prefix: str) -> None:
    """Refuse (nothing written) when a route host of these documents belongs to another service."""
    violations = route_violations(documents, claims, prefix)
    if violations:
        raise ValidationFailed(violations)


@click.command()
@FILES
@click.pass_obj
def validate(obj: CliContext, paths: tuple[str, ...]) -> None:
    """Check documents; every error is printed with its path. Route hosts are checked against the
    cluster (who owns each host) when Consul answers; without it, the rest is still checked."""
    documents = read_sources(paths)
    check_all(documents, obj.consul.prefix)
    try:
        claims = read_claims(obj.store())
    except ConsulError as exc:
        click.echo(f"warning: route hosts not checked against the cluster: {printable(exc)}", err=True)
    else:
        check_routes(documents, claims, obj.consul.prefix)
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
    check_routes(documents, read_claims(store), obj.consul.prefix)
    changes = plan_changes(documents, read_existing(store, documents))
    apply_changes(store, changes)
    for change in changes:
        click.echo(f"{change.kind.lower()}/{change.name} {change.action}")


@click.command()
@FILES
@click.pass_obj
def diff(obj: CliContext, paths: tuple[str, ...]) -> None:
    """Show what apply would change: each document's diff and the placement it would get.

    Exit code 0: no changes, 1: changes."""
    documents = read_sources(paths)
    check_all(documents, obj.consul.prefix)
    check_routes(documents, read_claims(obj.store()), obj.consul.prefix)
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
