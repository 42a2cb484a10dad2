"""``meshop export`` / ``meshop import`` and ``meshop cluster adopt``: the way back from a lost KV.

``export`` reads every desired document (``desired/``) and returns them as documents ``apply -f``
takes (gateway, nodes, services; each sorted by name), so a backup is plain YAML to keep in git.
``import`` is ``apply`` of such a file: validate all, then write with check-and-set; importing an
export into the KV it came from changes nothing, and export → import → export gives the same text.

``adopt`` tells a node's agent that the KV as it is now is the right one: it writes
``fences/<node>`` with ``adopt: true`` (check-and-set); the agent then writes a fresh token and acts
on the assignments it reads (see ``meshop.agent.cluster.fence``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshop.client.apply import stored_document
from meshop.consul.store import KVStore
from meshop.errors import ConflictError, DocumentError, NotFound
from meshop.model import keys
from meshop.model.names import is_dns_label
from meshop.model.records import Fence, NodeRecord, dumps, loads_json

KIND_ORDER = {"Gateway": 0, "Node": 1, "Service": 2}


@dataclass(frozen=True)
class Export:
    documents: tuple[dict[str, Any], ...]
    skipped: tuple[str, ...] = ()  # keys whose content is not a readable document


def export_documents(store: KVStore) -> Export:
    """Every readable desired document, gateway first, then nodes and services by name."""
    documents, skipped = [], []
    for entry in store.list(keys.DESIRED).entries:
        doc = stored_document(entry)
        if doc is None or doc.get("kind") not in KIND_ORDER:
            skipped.append(entry.key)
            continue
        documents.append(doc)
    documents.sort(key=lambda d: (KIND_ORDER[d["kind"]], str(d.get("metadata", {}).get("name", ""))))
    return Export(tuple(documents), tuple(sorted(skipped)))


def nodes_to_adopt(store: KVStore, names: tuple[str, ...], every: bool) -> list[str]:
    """The named nodes (each checked), or with ``every`` all nodes that have a ``nodes/<n>`` record."""
    if bool(names) == every:
        raise DocumentError("name the nodes to adopt, or give --all (not both)")
    for name in names:
        if not is_dns_label(name):
            raise DocumentError(f"node name {name!r}: must be an RFC 1123 label (a-z, 0-9, '-')")
    if names:
        return sorted(set(names))
    found = sorted(keys.split(e.key, keys.NODES)[0] for e in store.list(keys.NODES).entries)
    found = [n for n in found if is_dns_label(n)]
    if not found:
        raise NotFound("no node has reported to this KV yet (no nodes/ records); start the agents first")
    return found


def node_problem(store: KVStore, node: str) -> str | None:
    """What the node's agent reports (``problem`` of ``nodes/<node>``); None when there is no record."""
    entry = store.get(keys.node(node))
    if entry is None:
        return None
    try:
        return NodeRecord.from_dict(loads_json(entry.value)).problem
    except (ValueError, KeyError, TypeError):
        return ""


def adopt(store: KVStore, node: str, now: float) -> None:
    """Mark ``fences/<node>`` adopted (check-and-set; the epoch is kept for the record)."""
    key = keys.fence(node)
    entry = store.get(key)
    epoch = 0
    if entry is not None:
        try:
            epoch = Fence.from_dict(loads_json(entry.value)).epoch
        except (ValueError, KeyError, TypeError):
            epoch = 0
    value = dumps(Fence(node, "", epoch, now, adopt=True))
    if not store.cas(key, value, entry.modify_index if entry else 0):
        raise ConflictError(f"{store.full_key(key)} changed while adopting; run the command again")
