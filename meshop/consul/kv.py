"""KV values as meshop sees them: entries, listings, transaction operations and Consul's limits.

Pure data, no Consul client: the CLI plans an apply with these before (and without) loading the HTTP
client, and ``meshop.consul.store`` sends them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeVar

from meshop.errors import DocumentError

MAX_VALUE_BYTES = 512 * 1024
MAX_TXN_OPS = 64
MAX_TXN_BYTES = 512 * 1024  # Consul's txn_max_req_len: the whole JSON body, values in base64
TXN_ROOM_BYTES = MAX_TXN_BYTES - 2  # what the operations may take: the body is "[" op, op, ... "]"
T = TypeVar("T")

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


def full_key(prefix: str, key: str) -> str:
    """``key`` under meshop's KV ``prefix`` (``KVStore.full_key``)."""
    key = key.lstrip("/")
    return f"{prefix}/{key}" if prefix else key


def url_key(prefix: str, key: str) -> str:
    """``full_key`` for a key that goes into a request's URL (``/v1/kv/<key>``). A ``.`` or ``..`` segment
    is refused there: Consul's HTTP server cleans the path and redirects, and py-consul follows, so
    ``desired/services/../../secrets/x`` read ``secrets/x`` (a name taken from a URL or a document would
    read, with the reader's token, a key it never meant). Transactions carry keys in their body, taken
    literally: a hostile literal key (an agent may write ``events/..``) is still deleted there."""
    full = full_key(prefix, key)
    if "." in full and any(part in (".", "..") for part in full.split("/")):
        raise DocumentError(f"Consul key {full!r} has a '.' or '..' segment; refused")
    return full


def txn_body(op: TxnOp, key: str, value: str | None) -> dict[str, object]:
    """The ``KV`` object of ``op`` in a /v1/txn request: ``key`` in full, ``value`` base64-encoded."""
    body: dict[str, object] = {"Verb": op.verb, "Key": key}
    if value is not None:
        body["Value"] = value
    if op.index is not None:
        body["Index"] = op.index
    if op.session is not None:
        body["Session"] = op.session
    return body


def encoded_size(op: TxnOp, prefix: str = "") -> int:
    """Exactly the bytes ``op`` adds to a /v1/txn request body as ``KVStore.transact`` encodes it (its key
    under ``prefix``, its value base64-encoded), plus two for the ``", "`` between operations; without
    encoding the value (the base64 length is arithmetic), so the controller can weigh thousands cheaply.
    The one measure of Consul's request limit, for ``pack`` (tests/unit/test_consul_pack.py holds it to
    the encoded request)."""
    value = None if op.value is None else ""
    skeleton = json.dumps({"KV": txn_body(op, full_key(prefix, op.key), value)})
    return len(skeleton) + (0 if op.value is None else 4 * ((len(op.value) + 2) // 3)) + 2


def pack(
    items: Iterable[T],
    weight: Callable[[T], tuple[int, int]],
    room: int = MAX_TXN_OPS,
    room_bytes: int = TXN_ROOM_BYTES,
) -> Iterator[list[T]]:
    """``items`` in order, cut into the fewest consecutive batches of at most ``room`` operations and
    ``room_bytes`` of request, ``weight(item)`` being its (operations, ``encoded_size`` bytes). Lazy: a
    batch is yielded when the next item no longer fits it. An item heavier than a whole batch is a batch
    of its own; the caller tells (``fits``) and writes it some other way or skips it. Used by ``meshop
    apply`` (``KVStore.txn_batches``) and the controller's writer alike."""
    batch: list[T] = []
    ops = size = 0
    for item in items:
        n, b = weight(item)
        if batch and (ops + n > room or size + b > room_bytes):
            yield batch
            batch, ops, size = [], 0, 0
        batch.append(item)
        ops, size = ops + n, size + b
    if batch:
        yield batch


def fits(ops: int, size: int, room: int = MAX_TXN_OPS, room_bytes: int = TXN_ROOM_BYTES) -> bool:
    """Whether ``ops`` operations of ``size`` encoded bytes fit one transaction."""
    return ops <= room and size <= room_bytes
