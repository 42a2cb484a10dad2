"""Key/value access under meshop's prefix: get, list, put, check-and-set, delete, transactions.

Keys given to and returned by ``KVStore`` are relative to the configured prefix (``meshop/`` by
default), so the rest of meshop never spells the prefix. Limits are checked before anything is sent:
a value over 512 KiB or a transaction over 64 operations is a ``ValueTooLarge`` error naming the key,
never a silent truncation or a split that would break atomicity.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import consul
from consul.exceptions import ClientError as ConsulClientError

from meshop.consul.client import consul_errors, make_client
from meshop.consul.config import ConsulConfig
from meshop.errors import ConflictError, ValueTooLarge

MAX_VALUE_BYTES = 512 * 1024
MAX_TXN_OPS = 64
MAX_TXN_BYTES = 512 * 1024  # Consul refuses a /v1/txn request body over this (413), values base64-encoded
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
        return cls("set", key, _as_bytes(value))

    @classmethod
    def cas(cls, key: str, value: bytes | str, index: int) -> TxnOp:
        """Write only if the key's ModifyIndex is ``index`` (0: only if it does not exist)."""
        return cls("cas", key, _as_bytes(value), index=index)

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


class KVStore:
    """The only door to Consul's KV for meshop; every call has a timeout and clear errors."""

    def __init__(self, config: ConsulConfig, client: consul.Consul | None = None) -> None:
        self.config = config
        self.client = client or make_client(config)
        self.prefix = config.prefix

    def full_key(self, key: str) -> str:
        key = key.lstrip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def relative_key(self, full: str) -> str:
        if self.prefix and full.startswith(self.prefix + "/"):
            return full[len(self.prefix) + 1 :]
        return full

    def get(self, key: str) -> Entry | None:
        with consul_errors(self.config, f"reading {self.full_key(key)}"):
            _, raw = self.client.kv.get(self.full_key(key))
        return self._entry(raw) if raw else None

    def get_blocking(self, key: str, index: int = 0, wait: str | None = None) -> tuple[int, Entry | None]:
        """One key and the Consul index to block on; with ``index`` > 0 a blocking query up to ``wait``."""
        with consul_errors(self.config, f"reading {self.full_key(key)}"):
            new_index, raw = self.client.kv.get(self.full_key(key), index=index or None, wait=wait)
        return int(new_index or 0), (self._entry(raw) if raw else None)

    def list(self, prefix: str, index: int = 0, wait: str | None = None) -> Listing:
        """All entries under ``prefix``; with ``index`` > 0 this is a blocking query up to ``wait``."""
        full = self.full_key(prefix)
        with consul_errors(self.config, f"listing {full}"):
            new_index, raw = self.client.kv.get(full, recurse=True, index=index or None, wait=wait)
        entries = tuple(self._entry(item) for item in (raw or ()) if not item["Key"].endswith("/"))
        return Listing(int(new_index or 0), entries)

    def put(self, key: str, value: bytes | str) -> None:
        data = self._checked(key, value)
        with consul_errors(self.config, f"writing {self.full_key(key)}"):
            self.client.kv.put(self.full_key(key), data)

    def cas(self, key: str, value: bytes | str, index: int) -> bool:
        """Check-and-set: write only if ModifyIndex is ``index`` (0 = create only). False if beaten."""
        data = self._checked(key, value)
        with consul_errors(self.config, f"writing {self.full_key(key)}"):
            return bool(self.client.kv.put(self.full_key(key), data, cas=index))

    def delete(self, key: str, cas: int | None = None) -> bool:
        with consul_errors(self.config, f"deleting {self.full_key(key)}"):
            return bool(self.client.kv.delete(self.full_key(key), cas=cas))

    def delete_tree(self, prefix: str) -> None:
        with consul_errors(self.config, f"deleting {self.full_key(prefix)}"):
            self.client.kv.delete(self.full_key(prefix), recurse=True)

    def transact(self, ops: Sequence[TxnOp]) -> None:
        """Apply ``ops`` atomically; any failed check rolls everything back and raises ``ConflictError``."""
        if not ops:
            return
        if len(ops) > MAX_TXN_OPS:
            raise ValueTooLarge(
                f"a transaction holds at most {MAX_TXN_OPS} operations; this one has {len(ops)} "
                f"(first key {self.full_key(ops[0].key)})"
            )
        size = sum(encoded_size(op) for op in ops)
        if size > MAX_TXN_BYTES:
            raise ValueTooLarge(
                f"a transaction's request is at most {MAX_TXN_BYTES} bytes; this one is about {size} "
                f"(first key {self.full_key(ops[0].key)})"
            )
        payload = [{"KV": self._txn_op(op)} for op in ops]
        with consul_errors(self.config, f"a transaction of {len(ops)} operation(s)"):
            try:
                self.client.txn.put(payload)
            except ConsulClientError as exc:
                if str(exc).startswith("409"):
                    raise ConflictError(f"transaction rolled back: {' '.join(str(exc).split())[:300]}") from None
                raise

    def _txn_op(self, op: TxnOp) -> dict[str, object]:
        body: dict[str, object] = {"Verb": op.verb, "Key": self.full_key(op.key)}
        if op.value is not None:
            body["Value"] = base64.b64encode(self._checked(op.key, op.value)).decode("ascii")
        if op.index is not None:
            body["Index"] = op.index
        if op.session is not None:
            body["Session"] = op.session
        return body

    def _checked(self, key: str, value: bytes | str) -> bytes:
        data = _as_bytes(value)
        if len(data) > MAX_VALUE_BYTES:
            raise ValueTooLarge(
                f"{self.full_key(key)}: value is {len(data)} bytes; Consul stores at most {MAX_VALUE_BYTES}"
            )
        return data

    def _entry(self, raw: dict) -> Entry:
        value = raw.get("Value") or b""
        return Entry(
            key=self.relative_key(raw["Key"]),
            value=value if isinstance(value, bytes) else str(value).encode("utf-8"),
            modify_index=int(raw.get("ModifyIndex", 0)),
            create_index=int(raw.get("CreateIndex", 0)),
            session=raw.get("Session"),
        )


def encoded_size(op: TxnOp) -> int:
    """An upper bound of the bytes ``op`` adds to a /v1/txn request body: its value base64-encoded, its key
    (with a prefix of up to 256 bytes) and the JSON around them."""
    value = 0 if op.value is None else 4 * ((len(op.value) + 2) // 3)
    return value + len(op.key.encode("utf-8")) + len(op.session or "") + _OP_OVERHEAD


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value
