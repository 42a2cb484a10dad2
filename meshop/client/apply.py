"""``meshop apply``: validate every document first, then write each with check-and-set.

Nothing is written when any document is invalid. A document whose content equals what is stored is
"unchanged" and not rewritten (so its generation does not move); others are "created" or
"configured". Desired documents are stored as canonical JSON of what the user wrote (without the
defaults, so a default changed in a later meshop version applies to them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from meshop.client.sources import SourcedDocument
from meshop.consul.store import Entry, KVStore
from meshop.errors import ConflictError, DocumentError, MeshopError, ValidationFailed, Violation
from meshop.model import keys, load_documents, validate

Action = Literal["created", "configured", "unchanged"]


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    key: str
    action: Action
    value: str  # canonical JSON to write
    index: int  # ModifyIndex to check-and-set against (0: must not exist)
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


def key_for(doc: dict[str, Any]) -> str:
    kind = doc.get("kind")
    name = doc.get("metadata", {}).get("name", "")
    if kind == "Service":
        return keys.desired_service(name)
    if kind == "Node":
        return keys.desired_node(name)
    if kind == "Gateway":
        return keys.DESIRED_GATEWAY
    raise DocumentError(f"kind {kind!r} cannot be applied")


def canonical(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_all(documents: list[SourcedDocument], prefix: str = keys.DEFAULT_PREFIX) -> None:
    """Every violation of every document, or nothing: raises one ValidationFailed listing them all."""
    problems: list[Violation] = []
    seen: dict[str, str] = {}
    for item in documents:
        violations = validate(item.doc, prefix=prefix)
        problems.extend(Violation(f"{item.source}: {v.path}" if v.path else item.source, v.reason) for v in violations)
        if violations:
            continue
        key = key_for(item.doc)
        if key in seen:
            problems.append(Violation(item.source, f"defines {key} again (first in {seen[key]})"))
        seen[key] = item.source
    if problems:
        raise ValidationFailed(problems)


def stored_document(entry: Entry) -> dict[str, Any] | None:
    """What is stored, as a document; None when it cannot be read (then it is simply replaced)."""
    try:
        docs = load_documents(entry.value, source=entry.key)
    except MeshopError:
        return None
    return docs[0] if len(docs) == 1 else None


def plan_changes(documents: list[SourcedDocument], existing: dict[str, Entry | None]) -> list[Change]:
    """Pure: what apply would do for each (already validated) document, given what is stored."""
    changes = []
    for item in documents:
        key = key_for(item.doc)
        entry = existing.get(key)
        before = stored_document(entry) if entry else None
        if entry is None:
            action: Action = "created"
        elif before == item.doc:
            action = "unchanged"
        else:
            action = "configured"
        changes.append(
            Change(
                kind=item.doc["kind"],
                name=item.doc["metadata"]["name"],
                key=key,
                action=action,
                value=canonical(item.doc),
                index=entry.modify_index if entry else 0,
                before=before,
                after=item.doc,
            )
        )
    return changes


def read_existing(store: KVStore, documents: list[SourcedDocument]) -> dict[str, Entry | None]:
    return {key_for(item.doc): store.get(key_for(item.doc)) for item in documents}


def apply_changes(store: KVStore, changes: list[Change]) -> None:
    for change in changes:
        if change.action == "unchanged":
            continue
        if not store.cas(change.key, change.value, change.index):
            raise ConflictError(
                f"{change.kind.lower()}/{change.name} changed in Consul while applying; nothing else was "
                "written after it — run apply again"
            )
