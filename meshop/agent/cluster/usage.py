"""Writes ``usage/<node>``: one key per node, one small transaction per write.

The sampler decides when (``planning.usage.worth_writing``: at most once per sampling interval, 10 s by
default, so at most 6 writes a minute); this only sends, and remembers what it last wrote so the
decision can compare against it.
"""

from __future__ import annotations

from meshop.agent.cluster.kv import NodeKV
from meshop.consul.store import TxnOp
from meshop.model import keys
from meshop.model.records import UsageRecord, dumps


class UsageWriter:
    def __init__(self, store: NodeKV, node: str) -> None:
        self.store = store
        self.node = node
        self.writes = 0

    def publish(self, record: UsageRecord) -> None:
        """Write the record (raises ConsulError)."""
        self.store.transact([TxnOp.set(keys.usage(self.node), dumps(record))])
        self.writes += 1
