"""The node's side of backups in Consul: ``backups/<node>/<service>`` written, ``requests/<s>/backup`` read.

A request is written by an operator (``meshop volume backup``); it is read as untrusted (strict codec,
an id of safe characters) and an unreadable one is ignored, never fatal. A record is written only when
its content changed (``writtenAt`` aside), and deleted when the node no longer runs the service.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Protocol

from meshop.consul.store import Entry, TxnOp
from meshop.model import keys
from meshop.model.codec import RecordError
from meshop.model.moves import parse_move
from meshop.model.records import BackupRecord, BackupRequest, MoveRequest, RestoreRequest, dumps, loads_json

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class BackupKV(Protocol):
    def get(self, key: str, /) -> Entry | None: ...

    def keys(self, prefix: str, /) -> list[str]: ...

    def delete(self, key: str, cas: int | None = None, /) -> bool: ...

    def transact(self, ops: list[TxnOp], /) -> None: ...


def parse_request(entry: Entry | None) -> str:
    """The pending request's id, or "" (none, or not a request meshop wrote)."""
    if entry is None:
        return ""
    try:
        request = BackupRequest.from_dict(loads_json(entry.value))
    except RecordError as exc:
        log.warning("ignoring %s: %s", entry.key, exc)
        return ""
    return request.id if _REQUEST_ID.fullmatch(request.id) else ""


_SNAPSHOT = re.compile(r"latest|[0-9a-f]{8,64}")
_VOLUME = re.compile(r"|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def parse_restore(entry: Entry | None) -> RestoreRequest | None:
    """A pending restore request, or None (none, or not one meshop wrote: every field checked)."""
    if entry is None:
        return None
    try:
        request = RestoreRequest.from_dict(loads_json(entry.value))
    except RecordError as exc:
        log.warning("ignoring %s: %s", entry.key, exc)
        return None
    fields = ((_REQUEST_ID, request.id), (_SNAPSHOT, request.snapshot), (_VOLUME, request.volume))
    return request if all(pattern.fullmatch(value) for pattern, value in fields) else None


class MoveStore:
    """``requests/<service>/move`` for the restorer: read strictly (only the operator writes it, the
    controller deletes it once the target restored)."""

    def __init__(self, store: BackupKV) -> None:
        self.store = store

    def move(self, service: str) -> MoveRequest | None:
        """The pending move. Raises ConsulError."""
        entry = self.store.get(keys.move_request(service))
        return parse_move(entry.value if entry is not None else None)


class BackupStore:
    def __init__(self, store: BackupKV, node: str) -> None:
        self.store = store
        self.node = node
        self._written: dict[str, str] = {}  # service -> the JSON last written, without writtenAt

    def request(self, service: str) -> str:
        """Raises ConsulError."""
        return parse_request(self.store.get(keys.backup_request(service)))

    def restore(self, service: str) -> tuple[RestoreRequest, int] | None:
        """The pending restore request and its ModifyIndex. Raises ConsulError."""
        entry = self.store.get(keys.restore_request(service))
        request = parse_restore(entry)
        return (request, entry.modify_index) if request is not None and entry is not None else None

    def consume_restore(self, service: str, index: int) -> None:
        """Delete the request carried out, unless a newer one replaced it meanwhile. Raises ConsulError."""
        self.store.delete(keys.restore_request(service), index)

    def publish(self, record: BackupRecord) -> bool:
        """Write the record when it changed; True when written. Raises ConsulError."""
        same = dumps(BackupRecord(record.service, record.node, record.volumes, restore=record.restore))
        if self._written.get(record.service) == same:
            return False
        self.store.transact([TxnOp.set(keys.backups(self.node, record.service), dumps(record))])
        self._written[record.service] = same
        return True

    def delete(self, services: Iterable[str]) -> None:
        """Remove the records of services this node no longer backs up. Raises ConsulError."""
        gone = list(services)
        if gone:
            self.store.transact([TxnOp.delete(keys.backups(self.node, s)) for s in gone])
            for service in gone:
                self._written.pop(service, None)

    def adopt(self) -> None:
        """Take the records a previous run of this agent left as written (so they go when stale)."""
        folder = keys.backups(self.node, "")
        for key in self.store.keys(folder):
            service = key.removeprefix(folder)
            if service and "/" not in service:
                self._written.setdefault(service, "")

    @property
    def services(self) -> set[str]:
        return set(self._written)
