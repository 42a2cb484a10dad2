"""Writes ``observed/<node>/<service>`` only when a record's content changes.

Content is compared as canonical JSON (``records.dumps``) without ``lastReconcile``, which is set to
the time of the pass that produced new content; unchanged state costs no write. Changed records go
in transactions of up to 64 operations. The cache is seeded from Consul at start, so a restarted
agent does not rewrite everything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace

from meshop.agent.cluster.kv import NodeKV
from meshop.consul.store import MAX_TXN_OPS, TxnOp
from meshop.model import keys
from meshop.model.records import Observed, dumps, loads_json

log = logging.getLogger(__name__)


def _content(record: Observed) -> str:
    return dumps(replace(record, last_reconcile=0.0))


class ObservedWriter:
    def __init__(self, store: NodeKV, node: str) -> None:
        self.store = store
        self.node = node
        self._written: dict[str, str] = {}  # service -> content last written
        self._loaded = False
        self.writes = 0

    @property
    def services(self) -> set[str]:
        return set(self._written)

    def load(self) -> None:
        """Seed the cache from what Consul holds (raises ConsulError)."""
        listing = self.store.list(keys.node_observed(self.node))
        written: dict[str, str] = {}
        for entry in listing.entries:
            parts = keys.split(entry.key, keys.node_observed(self.node))
            if len(parts) != 1:
                continue
            try:
                written[parts[0]] = _content(Observed.from_dict(loads_json(entry.value)))
            except (ValueError, KeyError, TypeError):
                written[parts[0]] = ""  # unreadable: rewrite it
        self._written = written
        self._loaded = True

    def forget(self) -> None:
        """Drop the cache; the next ``publish`` re-reads Consul first."""
        self._loaded = False
        self._written = {}

    def publish(self, records: Mapping[str, Observed], delete: Iterable[str] = ()) -> int:
        """Write changed records and delete the given services' records; returns the operations sent."""
        if not self._loaded:
            self.load()
        ops: list[tuple[str, TxnOp, str | None]] = []
        for service, record in sorted(records.items()):
            content = _content(record)
            if self._written.get(service) != content:
                ops.append((service, TxnOp.set(keys.observed(self.node, service), dumps(record)), content))
        for service in sorted(set(delete)):
            if service in self._written and service not in records:
                ops.append((service, TxnOp.delete(keys.observed(self.node, service)), None))
        for start in range(0, len(ops), MAX_TXN_OPS):
            chunk = ops[start : start + MAX_TXN_OPS]
            self.store.transact([op for _, op, _ in chunk])
            for service, _, content in chunk:
                if content is None:
                    self._written.pop(service, None)
                else:
                    self._written[service] = content
        self.writes += len(ops)
        return len(ops)
