"""What ``meshop validate`` and ``meshop apply`` do, as plain functions over the global flags and an
output callback: the click commands (``commands.documents``) and the fast path (``fast``) both call these, so
both read, check, write and print alike. No click here: the fast path must not load it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshop.cli.safe import printable
from meshop.client.checks import check_all
from meshop.client.sources import read_sources
from meshop.errors import ValidationFailed

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from meshop.cli.context import CliContext
    from meshop.client.sources import SourcedDocument
    from meshop.consul.store import KVStore

    Echo = Callable[..., None]  # echo(line) to stdout, echo(line, err=True) to stderr


def validate_documents(obj: CliContext, paths: Sequence[str], cluster: bool, echo: Echo) -> None:
    """Check documents without touching Consul (with ``cluster``: route hosts against their owners too)."""
    documents = read_sources(tuple(paths))
    check_all(documents, obj.prefix)
    if cluster:
        check_routes(documents, obj.store(), obj.prefix)
    for item in documents:
        echo(f"{item.doc['kind'].lower()}/{item.doc['metadata']['name']} valid ({printable(item.source)})")


def apply_documents(obj: CliContext, paths: Sequence[str], echo: Echo) -> None:
    """Validate every document, then write them (created / configured / unchanged)."""
    # here, not at the top: the plan's types are dataclasses, which ``meshop validate`` never loads
    from meshop.client.apply import apply_changes, plan_changes, read_existing

    documents = read_sources(tuple(paths))
    check_all(documents, obj.prefix)
    store = obj.store()
    check_routes(documents, store, obj.prefix)
    changes = plan_changes(documents, read_existing(store, documents))
    outcome = apply_changes(store, changes)
    for change in changes:
        echo(f"{change.kind.lower()}/{change.name} {change.action}")
    if outcome.batches > 1:
        echo(
            f"note: {outcome.written} documents exceed one Consul transaction (64 operations, 512 KiB): "
            f"written in {outcome.batches} transactions, each atomic on its own",
            err=True,
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
