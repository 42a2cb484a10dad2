"""Key/value access under meshop's prefix: get, list, put, check-and-set, delete, transactions.

Keys given to and returned by ``KVStore`` are relative to the configured prefix (``meshop/`` by
default), so the rest of meshop never spells the prefix. Limits are checked before anything is sent:
a value over 512 KiB or a transaction over 64 operations (or a request body over 512 KiB, values
base64-encoded) is a ``ValueTooLarge`` error naming the key, never a silent truncation or a split that
would break atomicity. A caller that may split says so itself: ``txn_batches`` cuts a list of
operations into the fewest transactions that fit, in order.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from meshop.consul.config import ConsulConfig
from meshop.consul.kv import (
    MAX_TXN_BYTES,
    MAX_TXN_OPS,
    MAX_VALUE_BYTES,
    TXN_ROOM_BYTES,
    Entry,
    Listing,
    TxnOp,
    as_bytes,
    encoded_size,
    fits,
    full_key,
    pack,
    txn_body,
    url_key,
)
from meshop.errors import ConflictError, ConsulAccessDenied, ConsulError, TxnConflict, ValueTooLarge

if TYPE_CHECKING:  # py-consul (requests, urllib3) loads only for a store over it, not for ``over_http``
    import consul

__all__ = [
    "MAX_TXN_BYTES",
    "MAX_TXN_OPS",
    "MAX_VALUE_BYTES",
    "TXN_ROOM_BYTES",
    "Entry",
    "KVStore",
    "Listing",
    "TxnOp",
    "encoded_size",
    "fits",
    "pack",
]

_OP_INDEX = re.compile(r'"OpIndex"\s*:\s*(\d+)')


class Backend(Protocol):
    """The KV primitives a store sends through: ``client.ClientKV`` (py-consul) or ``http.HTTPKV``.
    Each raises meshop errors; ``what`` names the operation in them."""

    def get(
        self,
        full: str,
        what: str,
        *,
        recurse: bool = False,
        keys: bool = False,
        index: int | None = None,
        wait: str | None = None,
        stale: bool = False,
    ) -> tuple[int, Any]: ...

    def put(self, full: str, data: bytes, what: str, *, cas: int | None = None) -> bool: ...

    def delete(self, full: str, what: str, *, cas: int | None = None, recurse: bool = False) -> bool: ...

    def txn(self, body: str, what: str, *, consistent: bool = False) -> tuple[int, str]: ...


class KVStore:
    """The only door to Consul's KV for meshop; every call has a timeout and clear errors.

    ``KVStore(config)`` goes through py-consul (the daemons, which need its client for sessions and
    health anyway: ``.client``); ``KVStore.over_http(config)`` through the standard library only (the
    CLI: no ``requests`` to import). Same requests, same answers, same errors."""

    def __init__(self, config: ConsulConfig, client: consul.Consul | None = None, *, backend: Backend | None = None):
        self.config = config
        self.prefix = config.prefix
        self._client = client
        if backend is None:
            from meshop.consul.client import ClientKV, make_client

            self._client = client or make_client(config)
            backend = ClientKV(self._client, config)
        self.backend = backend

    @classmethod
    def over_http(cls, config: ConsulConfig) -> KVStore:
        """A store that needs no py-consul: the CLI's (``client`` is still there, made on first use)."""
        from meshop.consul.http import HTTPKV

        return cls(config, backend=HTTPKV(config))

    @property
    def client(self) -> consul.Consul:
        """The py-consul client, for callers that need more than the KV (sessions, catalog, health)."""
        if self._client is None:
            from meshop.consul.client import make_client

            self._client = make_client(self.config)
        return self._client

    def full_key(self, key: str) -> str:
        return full_key(self.prefix, key)

    def _url_key(self, key: str) -> str:
        return url_key(self.prefix, key)

    def relative_key(self, full: str) -> str:
        if self.prefix and full.startswith(self.prefix + "/"):
            return full[len(self.prefix) + 1 :]
        return full

    def get(self, key: str) -> Entry | None:
        full = self._url_key(key)
        _, raw = self.backend.get(full, f"reading {full}")
        return self._entry(raw) if raw else None

    def get_blocking(
        self, key: str, index: int = 0, wait: str | None = None, *, stale: bool = False
    ) -> tuple[int, Entry | None]:
        """One key and the Consul index to block on; with ``index`` > 0 a blocking query up to ``wait``.

        ``stale``: a wake-up only, never a decision. A consistent (or default) read is forwarded to the
        Raft leader; one in flight when the leader's host loses power hangs until the dead connection is
        noticed (~10 s on the fleet), long after a new leader was elected. A stale read is answered by the
        local server's own replica, so it wakes on a change as soon as that server applies it."""
        full = self._url_key(key)
        mode = {"stale": True} if stale else {}
        new_index, raw = self.backend.get(full, f"reading {full}", index=index or None, wait=wait, **mode)
        return new_index, (self._entry(raw) if raw else None)

    def list(self, prefix: str, index: int = 0, wait: str | None = None) -> Listing:
        """All entries under ``prefix``; with ``index`` > 0 this is a blocking query up to ``wait``."""
        full = self._url_key(prefix)
        new_index, raw = self.backend.get(full, f"listing {full}", recurse=True, index=index or None, wait=wait)
        entries = tuple(self._entry(item) for item in (raw or ()) if not item["Key"].endswith("/"))
        return Listing(new_index, entries)

    def list_together(self, prefixes: Sequence[str]) -> tuple[Listing, ...]:
        """Several prefixes read in one transaction: one consistent moment of the KV for all of them.

        (Two plain reads can straddle a change: e.g. a restarted Consul server replaying its log.)
        ``index`` of each listing is 0: a transaction reports none. Read in consistent mode, like every
        read of this store (``client.make_client``).
        """
        if len(prefixes) > MAX_TXN_OPS:
            raise ValueTooLarge(f"a transaction holds at most {MAX_TXN_OPS} operations; got {len(prefixes)}")
        payload = [{"KV": {"Verb": "get-tree", "Key": self.full_key(p)}} for p in prefixes]
        what = f"reading {', '.join(self.full_key(p) for p in prefixes)}"
        status, text = self.backend.txn(json.dumps(payload), what, consistent=True)
        if status != 200:  # rolled back: as ``client.consul_errors`` says of any 409
            raise ConflictError(f"{what} lost against a concurrent writer: {' '.join(f'409 {text}'.split())[:300]}")
        try:
            response = json.loads(text) if text else {}
        except ValueError:
            raise ConsulError(f"Consul at {self.config.address} failed {what}: the answer is not JSON") from None
        found: list[list[Entry]] = [[] for _ in prefixes]
        for result in (response or {}).get("Results") or ():
            raw = dict((result or {}).get("KV") or {})
            if not raw or str(raw.get("Key", "")).endswith("/"):
                continue
            value = raw.get("Value")
            raw["Value"] = base64.b64decode(value) if value else b""
            entry = self._entry(raw)
            for i, prefix in enumerate(prefixes):
                if entry.key.startswith(prefix):
                    found[i].append(entry)
                    break
        return tuple(Listing(0, tuple(sorted(entries, key=lambda e: e.key))) for entries in found)

    def keys(self, prefix: str) -> list[str]:
        """The keys under ``prefix`` (relative to meshop's prefix, sorted), without their values."""
        full = self._url_key(prefix)
        _, raw = self.backend.get(full, f"listing keys of {full}", keys=True)
        base = self.full_key("")
        return sorted(k[len(base) :] for k in raw or () if k.startswith(base) and not k.endswith("/"))

    def put(self, key: str, value: bytes | str) -> None:
        data = self._checked(key, value)
        full = self._url_key(key)
        self.backend.put(full, data, f"writing {full}")

    def cas(self, key: str, value: bytes | str, index: int) -> bool:
        """Check-and-set: write only if ModifyIndex is ``index`` (0 = create only). False if beaten."""
        data = self._checked(key, value)
        full = self._url_key(key)
        return self.backend.put(full, data, f"writing {full}", cas=index)

    def delete(self, key: str, cas: int | None = None) -> bool:
        full = self._url_key(key)
        return self.backend.delete(full, f"deleting {full}", cas=cas)

    def delete_tree(self, prefix: str) -> None:
        full = self._url_key(prefix)
        self.backend.delete(full, f"deleting {full}", recurse=True)

    def transact(self, ops: Sequence[TxnOp]) -> None:
        """Apply ``ops`` atomically; any failed check rolls everything back and raises ``TxnConflict``
        (a ``ConflictError``) naming the positions of the operations that failed."""
        if not ops:
            return
        if len(ops) > MAX_TXN_OPS:
            raise ValueTooLarge(
                f"a transaction holds at most {MAX_TXN_OPS} operations; this one has {len(ops)} "
                f"(first key {self.full_key(ops[0].key)})"
            )
        payload = [{"KV": self._txn_op(op)} for op in ops]
        body = json.dumps(payload)
        if len(body) > MAX_TXN_BYTES:
            raise ValueTooLarge(
                f"a transaction's request is at most {MAX_TXN_BYTES} bytes; this one has {len(body)} "
                f"(first key {self.full_key(ops[0].key)})"
            )
        what = f"a transaction of {len(ops)} operation(s)"
        status, text = self.backend.txn(body, what)
        if status == 200:
            return
        short = " ".join(f"409 {text}".split())[:300]
        if "permission denied" in text.lower():
            raise ConsulAccessDenied(
                f"Consul at {self.config.address} denied {what}: "
                f"ACL permission denied; set CONSUL_HTTP_TOKEN / --token to a token with access ({short})"
            )
        failed = tuple(int(i) for i in _OP_INDEX.findall(text))
        raise TxnConflict(f"transaction rolled back: {short}", failed)

    def txn_size(self, op: TxnOp) -> int:
        """Bytes ``op`` adds to a transaction's request body (``kv.encoded_size`` under this prefix)."""
        return encoded_size(op, self.prefix)

    def txn_batches(self, ops: Sequence[TxnOp]) -> list[list[TxnOp]]:
        """``ops`` cut, in order, into the fewest transactions within Consul's limits (one when they fit).

        An operation too large for any transaction (a value near 512 KiB grows by a third in base64)
        is a batch of its own, for a plain check-and-set write (``fits_txn`` tells)."""
        return list(pack(ops, lambda op: (1, self.txn_size(op))))

    def fits_txn(self, op: TxnOp) -> bool:
        return fits(1, self.txn_size(op))

    def _txn_op(self, op: TxnOp) -> dict[str, object]:
        value = None if op.value is None else base64.b64encode(self._checked(op.key, op.value)).decode("ascii")
        return txn_body(op, self.full_key(op.key), value)

    def _checked(self, key: str, value: bytes | str) -> bytes:
        data = as_bytes(value)
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
