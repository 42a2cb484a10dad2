"""The parts of the Consul KV store the node's cluster side uses, as a protocol.

``meshop.consul.store.KVStore`` is the one implementation; naming only what is used keeps the
cluster classes testable with a plain in-memory fake.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from meshop.consul.config import ConsulConfig
from meshop.consul.store import Listing, TxnOp


class NodeKV(Protocol):
    @property
    def config(self) -> ConsulConfig: ...

    def list(self, prefix: str, /) -> Listing: ...

    def list_together(self, prefixes: Sequence[str], /) -> tuple[Listing, ...]: ...

    def cas(self, key: str, value: bytes | str, index: int, /) -> bool: ...

    def transact(self, ops: Sequence[TxnOp], /) -> None: ...
