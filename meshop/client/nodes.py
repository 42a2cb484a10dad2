"""Cordon, uncordon and drain: edit ``desired/nodes/<node>`` with check-and-set (never clobber)."""

from __future__ import annotations

import difflib
from typing import Any

from meshop.client.apply import canonical, stored_document
from meshop.consul.store import KVStore
from meshop.errors import ConflictError, DocumentError, NotFound
from meshop.model import API_VERSION, keys
from meshop.model.addresses import address_problem
from meshop.model.inventory import MAX_ADDRESSES, inventory_value, parse_inventory
from meshop.model.names import is_dns_label

MODES = {
    "cordon": {"cordon": True},
    "uncordon": {"cordon": False, "drain": False},
    "drain": {"cordon": True, "drain": True},
}


def known_nodes(store: KVStore) -> set[str]:
    """Nodes meshop knows: an agent's registration (``nodes/<n>``) or a Node document (``desired/nodes/<n>``)."""
    found = set()
    for prefix in (keys.NODES, keys.DESIRED_NODES):
        for entry in store.list(prefix).entries:
            name = entry.key[len(prefix) :]
            if name and "/" not in name:
                found.add(name)
    return found


def unknown_node_hint(node: str, known: set[str]) -> str:
    """The message for a node nobody registered: the closest names, else every known one."""
    close = difflib.get_close_matches(node, sorted(known), n=3)
    if close:
        return f"node/{node} not found; did you mean {', '.join(close)}? (meshop get nodes lists them)"
    listed = ", ".join(sorted(known)[:10]) or "none yet"
    return f"node/{node} not found (known nodes: {listed}); a node appears once its agent registers"


def set_node_mode(store: KVStore, node: str, mode: str, attempts: int = 5) -> tuple[dict[str, Any], bool]:
    """Apply ``mode`` to the node's document; returns (document, changed). A node that neither an agent
    registered nor a Node document describes is refused (``NotFound``): a typo must not create a phantom."""
    if not is_dns_label(node):
        raise DocumentError(f"node name {node!r}: must be an RFC 1123 label (a-z, 0-9, '-')")
    if store.get(keys.node(node)) is None and store.get(keys.desired_node(node)) is None:
        raise NotFound(unknown_node_hint(node, known_nodes(store)))
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


def inventory_entry(node: str, addresses: tuple[str, ...], *, local_cluster: bool = False) -> tuple[str, str]:
    """(key, value) of ``inventory/nodes/<node>`` listing ``addresses``, each checked by the address rule
    first (a numeric-looking name, loopback, a zone id are refused here, not only when dialled)."""
    if not is_dns_label(node):
        raise DocumentError(f"node name {node!r}: must be an RFC 1123 label (a-z, 0-9, '-')")
    if not 0 < len(addresses) <= MAX_ADDRESSES:
        raise DocumentError(f"node/{node}: give 1 to {MAX_ADDRESSES} addresses")
    for address in addresses:
        problem = address_problem(address, local_cluster=local_cluster)
        if problem is not None:
            raise DocumentError(f"node/{node}: {problem}")
    return keys.inventory_node(node), inventory_value(list(dict.fromkeys(addresses)))


def set_inventory(
    store: KVStore, node: str, addresses: tuple[str, ...], *, local_cluster: bool = False
) -> tuple[tuple[str, ...] | None, bool]:
    """Record the addresses ``node`` may be dialled at (the operator's token: no agent may write there);
    returns (the entry before, changed)."""
    key, value = inventory_entry(node, addresses, local_cluster=local_cluster)
    entry = store.get(key)
    before = parse_inventory(entry.value) if entry else None
    if entry is not None and parse_inventory(value) == before:
        return before, False
    store.put(key, value)
    return before, True
