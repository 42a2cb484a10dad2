"""Cordon, uncordon and drain: edit ``desired/nodes/<node>`` with check-and-set (never clobber)."""

from __future__ import annotations

from typing import Any

from meshop.client.apply import canonical, stored_document
from meshop.consul.store import KVStore
from meshop.errors import ConflictError, DocumentError
from meshop.model import API_VERSION, keys
from meshop.model.names import is_dns_label

MODES = {
    "cordon": {"cordon": True},
    "uncordon": {"cordon": False, "drain": False},
    "drain": {"cordon": True, "drain": True},
}


def set_node_mode(store: KVStore, node: str, mode: str, attempts: int = 5) -> tuple[dict[str, Any], bool]:
    """Apply ``mode`` to the node's document; returns (document, changed)."""
    if not is_dns_label(node):
        raise DocumentError(f"node name {node!r}: must be an RFC 1123 label (a-z, 0-9, '-')")
    for _ in range(attempts):
        entry = store.get(keys.desired_node(node))
        doc = stored_document(entry) if entry else None
        if entry is not None and doc is None:
            raise DocumentError(f"{keys.desired_node(node)} holds an unreadable document; fix or delete it first")
        doc = doc or {"apiVersion": API_VERSION, "kind": "Node", "metadata": {"name": node}, "spec": {}}
        spec = dict(doc.get("spec") or {})
        wanted = {**spec, **MODES[mode]}
        if wanted == spec:
            return doc, False
        doc = {**doc, "spec": wanted}
        if store.cas(keys.desired_node(node), canonical(doc), entry.modify_index if entry else 0):
            return doc, True
    raise ConflictError(f"node/{node} kept changing while being updated; try again")
