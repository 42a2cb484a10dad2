"""KV values as meshop sees them: entries, listings, transaction operations and Consul's limits.

Pure data, no Consul client: the CLI plans an apply with these before (and without) loading the HTTP
client, and ``meshop.consul.store`` sends them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MAX_VALUE_BYTES = 512 * 1024
MAX_TXN_OPS = 64
MAX_TXN_BYTES = 512 * 1024  # Consul's txn_max_req_len: the whole JSON body, values in base64
_OP_OVERHEAD = 416  # a key prefix of up to 256 bytes and the JSON around key and value (Verb, Index, ...)

Verb = Literal["set", "cas", "delete", "delete-cas", "delete-tree", "check-index", "check-session", "check-not-exists"]


@dataclass(frozen=True)
class Entry:
    """One KV pair as Consul stores it; ``key`` is relative to the store's prefix."""

    key: str
    value: bytes
    modify_index: int
    create_index: int = 0
    session: str | None = None

    @property
    def text(self) -> str:
        return self.value.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Listing:
    """Everything under a prefix, with the Consul index to block on for the next change."""

    index: int
    entries: tuple[Entry, ...]

    def as_dict(self) -> dict[str, Entry]:
        return {entry.key: entry for entry in self.entries}


@dataclass(frozen=True)
class TxnOp:
    """One operation of an atomic transaction; build with the class methods."""

    verb: Verb
    key: str
    value: bytes | None = None
    index: int | None = None
    session: str | None = None

    @classmethod
    def set(cls, key: str, value: bytes | str) -> TxnOp:
        return cls("set", key, as_bytes(value))

    @classmethod
    def cas(cls, key: str, value: bytes | str, index: int) -> TxnOp:
        """Write only if the key's ModifyIndex is ``index`` (0: only if it does not exist)."""
        return cls("cas", key, as_bytes(value), index=index)

    @classmethod
    def delete(cls, key: str) -> TxnOp:
        return cls("delete", key)

    @classmethod
    def delete_cas(cls, key: str, index: int) -> TxnOp:
        return cls("delete-cas", key, index=index)

    @classmethod
    def delete_tree(cls, prefix: str) -> TxnOp:
        return cls("delete-tree", prefix)

    @classmethod
    def check_index(cls, key: str, index: int) -> TxnOp:
        return cls("check-index", key, index=index)

    @classmethod
    def check_session(cls, key: str, session: str) -> TxnOp:
        """Fail the whole transaction unless ``session`` holds the lock on ``key`` (leader guard)."""
        return cls("check-session", key, session=session)

    @classmethod
    def check_not_exists(cls, key: str) -> TxnOp:
        return cls("check-not-exists", key)


def as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def encoded_size(op: TxnOp) -> int:
    """An upper bound of the bytes ``op`` adds to a /v1/txn request body, without encoding anything: its
    value base64-encoded, its key (with a prefix of up to 256 bytes) and the JSON around them. The
    controller's writer packs with it (``KVStore.txn_size`` is the exact figure, for a store at hand)."""
    value = 0 if op.value is None else 4 * ((len(op.value) + 2) // 3)
    return value + len(op.key.encode("utf-8")) + len(op.session or "") + _OP_OVERHEAD
