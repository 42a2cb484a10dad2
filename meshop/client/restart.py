"""A rolling restart of a service: set ``spec.restartedAt`` in its document (check-and-set, like
``kubectl rollout restart``). The field is part of the spec hash, so the controller hands every node a
new spec and the agents replace the replicas by the service's update strategy (start-first by default),
keeping the service up; nothing else of the document changes."""

from __future__ import annotations

from typing import Any

from meshop.client.apply import canonical, stored_document
from meshop.client.events import iso_time
from meshop.consul.store import KVStore
from meshop.errors import ConflictError, DocumentError, NotFound
from meshop.model import keys
from meshop.model.names import is_dns_label


def restarted(doc: dict[str, Any], now: float) -> dict[str, Any]:
    """Pure: ``doc`` with ``spec.restartedAt`` set to ``now`` (ISO 8601 UTC)."""
    return {**doc, "spec": {**dict(doc.get("spec") or {}), "restartedAt": iso_time(now)}}


def restart_service(store: KVStore, name: str, now: float, attempts: int = 5) -> dict[str, Any]:
    """Ask for a rolling restart of service ``name``; returns the document written."""
    if not is_dns_label(name):
        raise DocumentError(f"service name {name!r}: must be an RFC 1123 label (a-z, 0-9, '-')")
    key = keys.desired_service(name)
    for _ in range(attempts):
        entry = store.get(key)
        if entry is None:
            raise NotFound(f"service/{name} not found: no {store.full_key(key)}")
        doc = stored_document(entry)
        if doc is None:
            raise DocumentError(f"{store.full_key(key)} holds an unreadable document; fix or delete it first")
        new = restarted(doc, now)
        if store.cas(key, canonical(new), entry.modify_index):
            return new
    raise ConflictError(f"service/{name} kept changing while being restarted; try again")
