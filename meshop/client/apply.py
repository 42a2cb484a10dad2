"""``meshop apply``: validate every document first, then write them all in one Consul transaction.

Nothing is written when any document is invalid. A document whose content equals what is stored is
"unchanged" and not rewritten (so its generation does not move); others are "created" or
"configured". Desired documents are stored as canonical JSON of what the user wrote (without the
defaults, so a default changed in a later meshop version applies to them).

Every write is a check-and-set against the ModifyIndex read before planning, and all of them go in one
transaction: a document changed by someone else in between fails the whole apply, naming it, and leaves
every other document as it was. Only past Consul's limits (64 operations, 512 KiB of request) is the
write cut into several transactions, each atomic, in order; ``Outcome.batches`` says how many.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from meshop.client.checks import key_for
from meshop.client.sources import SourcedDocument
from meshop.consul.kv import Entry, TxnOp
from meshop.errors import ConflictError, MeshopError, TxnConflict
from meshop.model import keys, load_documents
from meshop.model.schema import apply_defaults, load_schema

if TYPE_CHECKING:  # the HTTP client loads only when apply talks to Consul (``diff`` plans before)
    from meshop.consul.store import KVStore

Action = Literal["created", "configured", "unchanged"]


@dataclass(frozen=True)
class DocumentChange:
    kind: str
    name: str
    key: str
    action: Action
    value: str  # canonical JSON to write
    index: int  # ModifyIndex to check-and-set against (0: must not exist)
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


def canonical(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def stored_document(entry: Entry) -> dict[str, Any] | None:
    """What is stored, as a document; None when it cannot be read (then it is simply replaced)."""
    try:
        docs = load_documents(entry.value, source=entry.key)
    except MeshopError:
        return None
    return docs[0] if len(docs) == 1 else None


def is_bare_node(doc: dict[str, Any]) -> bool:
    """A Node document that says nothing but its name (what ``get node`` prints for a node nobody wrote a
    document for): storing it would change nothing, so apply and diff call it unchanged, as kubectl does
    for what the server already has."""
    if doc.get("kind") != "Node":
        return False
    schema = load_schema("Node")
    given, bare = copy.deepcopy(doc), {"apiVersion": doc.get("apiVersion"), "kind": "Node", "metadata": {}}
    bare["metadata"]["name"] = (doc.get("metadata") or {}).get("name")
    apply_defaults(given, schema, schema)
    apply_defaults(bare, schema, schema)
    return given == bare


def plan_changes(documents: list[SourcedDocument], existing: dict[str, Entry | None]) -> list[DocumentChange]:
    """Pure: what apply would do for each (already validated) document, given what is stored."""
    changes = []
    for item in documents:
        key = key_for(item.doc)
        entry = existing.get(key)
        before = stored_document(entry) if entry else None
        if entry is None:
            action: Action = "unchanged" if is_bare_node(item.doc) else "created"
        elif before == item.doc:
            action = "unchanged"
        else:
            action = "configured"
        changes.append(
            DocumentChange(
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
    """What is stored under each document's key: one GET for one document, else one listing of
    ``desired/`` (one request instead of one per document)."""
    wanted = {key_for(item.doc) for item in documents}
    if len(wanted) == 1:
        (key,) = wanted
        return {key: store.get(key)}
    stored = store.list(keys.DESIRED).as_dict()
    return {key: stored.get(key) for key in wanted}


@dataclass(frozen=True)
class Outcome:
    written: int  # documents written
    batches: int  # transactions used (1 unless Consul's limits forced a split)


def apply_changes(store: KVStore, changes: list[DocumentChange]) -> Outcome:
    """Write every changed document with check-and-set, in one transaction where Consul allows.

    Raises ConflictError naming the document that changed since it was read; with one transaction
    nothing at all was written then."""
    pending = [change for change in changes if change.action != "unchanged"]
    ops = [TxnOp.cas(change.key, change.value, change.index) for change in pending]
    batches = store.txn_batches(ops)
    done = 0
    for batch in batches:
        part = pending[done : done + len(batch)]
        try:
            if len(batch) == 1 and not store.fits_txn(batch[0]):
                if not store.cas(part[0].key, part[0].value, part[0].index):
                    raise TxnConflict("check-and-set failed", (0,))
            else:
                store.transact(batch)
        except TxnConflict as exc:
            raise ConflictError(_conflict_message(part, exc.failed, pending[:done])) from None
        done += len(batch)
    return Outcome(written=done, batches=len(batches))


def _conflict_message(part: list[DocumentChange], failed: tuple[int, ...], written: list[DocumentChange]) -> str:
    culprits = [part[i] for i in failed if 0 <= i < len(part)] or part
    names = ", ".join(f"{c.kind.lower()}/{c.name}" for c in culprits)
    what = "changed in Consul since apply read it" if len(culprits) == 1 else "changed in Consul since apply read them"
    if written:
        done = ", ".join(f"{c.kind.lower()}/{c.name}" for c in written)
        kept = f"the earlier transaction(s) had already written {done}; nothing after them was written"
    else:
        kept = "nothing was written"
    return f"{names} {what} (another apply or writer); {kept} — run apply again"
