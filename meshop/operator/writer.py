"""Writes a pass's ``Changes`` to KV: every transaction led by the leader guard, one service's move atomic.

A unit is what must land together: one service's assignment puts and deletes plus the events that
report them; a status or a route is a unit of one. Units are packed into transactions of at most
``MAX_TXN_OPS - 1`` operations after the guard (``check-session`` on ``leader``), so a deposed leader's
transaction fails as a whole, and of at most ``MAX_TXN_BYTES`` of encoded request (values count
base64-encoded, as Consul measures them): one large record never makes the transaction that carries
everyone else's changes fail. A unit too large for any transaction is skipped and logged (its service's
document is refused before that by the model's spec size cap), the others are written. A refused guard
raises ``LeadershipLost``: the caller steps down at once and writes nothing more. ``Owned`` is the
write-through cache of what KV holds under the controller's keys, updated only after a transaction
committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from meshop import metrics
from meshop.consul.events import EventLog
from meshop.consul.kv import TXN_ROOM_BYTES, fits, pack
from meshop.consul.store import MAX_TXN_OPS, MAX_VALUE_BYTES, KVStore, TxnOp, encoded_size
from meshop.errors import ConflictError
from meshop.model import keys
from meshop.model.records import (
    Assignment,
    NodeStatus,
    RebalanceStatus,
    RouteRecord,
    ServiceStatus,
    dumps,
    loads_json,
)
from meshop.operator.plan import Changes, ServiceWrite

log = logging.getLogger(__name__)

COMPONENT = "controller"


class LeadershipLost(ConflictError):
    """A guarded transaction was refused: this controller no longer holds the leader lock."""


@dataclass
class Owned:
    """What KV holds under the keys the controller owns, as of the last load plus committed writes."""

    assignments: dict[str, dict[str, Assignment]] = field(default_factory=dict)  # service -> node -> record
    statuses: dict[str, ServiceStatus] = field(default_factory=dict)
    routes: dict[str, RouteRecord] = field(default_factory=dict)
    node_statuses: dict[str, NodeStatus] = field(default_factory=dict)
    rebalance: RebalanceStatus = field(default_factory=RebalanceStatus)  # moves in flight survive a failover
    loaded_at: float | None = None  # monotonic; None: stale, reload before trusting it
    session: str | None = None  # the leadership it was loaded under

    def invalidate(self) -> None:
        self.loaded_at = None

    def load(self, store: KVStore, session: str, now: float) -> None:
        self.assignments, self.statuses, self.routes, self.node_statuses = load_assignments(store), {}, {}, {}
        for entry in store.list(keys.STATUS_SERVICES).entries:
            status = _read(entry.key, entry.value, ServiceStatus.from_dict)
            if status is not None:
                self.statuses[entry.key[len(keys.STATUS_SERVICES) :]] = status
        for entry in store.list(keys.ROUTES).entries:
            route = _read(entry.key, entry.value, RouteRecord.from_dict)
            if route is not None:
                self.routes[entry.key[len(keys.ROUTES) :]] = route
        for entry in store.list(keys.STATUS_NODES).entries:
            node = _read(entry.key, entry.value, NodeStatus.from_dict)
            if node is not None:
                self.node_statuses[entry.key[len(keys.STATUS_NODES) :]] = node
        entry = store.get(keys.STATUS_REBALANCE)
        found = None if entry is None else _read(entry.key, entry.value, RebalanceStatus.from_dict)
        self.rebalance = found if isinstance(found, RebalanceStatus) else RebalanceStatus()
        self.loaded_at, self.session = now, session


def load_assignments(store: KVStore) -> dict[str, dict[str, Assignment]]:
    """Every ``assignments/<node>/<service>`` record, indexed service -> node."""
    assignments: dict[str, dict[str, Assignment]] = {}
    specs: dict[str, Mapping[str, Any]] = {}  # one spec dict per spec hash, shared by its assignments
    for entry in store.list(keys.ASSIGNMENTS).entries:
        parts = keys.split(entry.key, keys.ASSIGNMENTS)
        record = _read(entry.key, entry.value, Assignment.from_dict)
        if len(parts) == 2 and record is not None:
            spec = specs.setdefault(record.spec_hash, record.spec)
            if spec is not record.spec and spec == record.spec:
                record = replace(record, spec=spec)
            assignments.setdefault(parts[1], {})[parts[0]] = record
    return assignments


def _read(key: str, value: bytes, factory: Callable[[dict], object]):  # type: ignore[no-untyped-def]
    try:
        return factory(loads_json(value))
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable record %s (it will be rewritten): %s", key, exc)
        metrics.refused_records_total.labels(COMPONENT, key.partition("/")[0]).inc()
        return None


@dataclass
class _Unit:
    what: str
    ops: list[TxnOp]
    commit: Callable[[], None]
    events: int = 0


@dataclass
class WriteStats:
    transactions: int = 0
    operations: int = 0
    events: int = 0
    skipped: list[str] = field(default_factory=list)  # units with a value too large to write, by name


class Writer:
    def __init__(self, store: KVStore, events: EventLog) -> None:
        self.store = store
        self.events = events

    def write(self, changes: Changes, guard: TxnOp, owned: Owned) -> WriteStats:
        """Commit ``changes``; raises LeadershipLost when the guard fails, ConsulError when Consul does."""
        stats = WriteStats()
        room, room_bytes = MAX_TXN_OPS - 1, TXN_ROOM_BYTES - self._size(guard)
        weighed = ((unit, sum(self._size(op) for op in unit.ops)) for unit in self._units(changes, owned))
        writable = (item for item in weighed if self._writable(*item, room_bytes, stats))
        for batch in pack(writable, lambda item: (len(item[0].ops), item[1]), room, room_bytes):
            self._commit([unit for unit, _ in batch], guard, stats)
        if stats.events:
            try:
                self.events.appended(stats.events, guard)
            except ConflictError as exc:
                metrics.consul_errors_total.labels(COMPONENT, "guarded-write").inc()
                raise LeadershipLost(f"guarded write refused, leadership lost: {exc}") from None
        return stats

    def _size(self, op: TxnOp) -> int:
        return encoded_size(op, self.store.prefix)

    @staticmethod
    def _writable(unit: _Unit, size: int, room_bytes: int, stats: WriteStats) -> bool:
        """False (logged, counted as skipped) for a unit no transaction can carry."""
        if size <= room_bytes and not any(op.value is not None and len(op.value) > MAX_VALUE_BYTES for op in unit.ops):
            return True
        log.error("cannot write %s: %d bytes encoded, over Consul's request limit", unit.what, size)
        stats.skipped.append(unit.what)
        return False

    def _commit(self, batch: Sequence[_Unit], guard: TxnOp, stats: WriteStats) -> None:
        if not batch:
            return
        ops = [guard, *(op for unit in batch for op in unit.ops)]
        try:
            self.store.transact(ops)
        except ConflictError as exc:
            metrics.consul_errors_total.labels(COMPONENT, "guarded-write").inc()
            _count_actions(ops[1:], "error")
            raise LeadershipLost(f"guarded write refused, leadership lost: {exc}") from None
        except Exception:
            _count_actions(ops[1:], "error")
            raise
        _count_actions(ops[1:], "ok")
        for unit in batch:
            unit.commit()
            stats.events += unit.events
        stats.transactions += 1
        stats.operations += len(ops) - 1

    def _units(self, changes: Changes, owned: Owned) -> Iterator[_Unit]:
        """The units in write order, built lazily (a first pass over thousands of services is large)."""
        for write in changes.services:
            yield from self._service_units(write, owned)
        for event in changes.events:
            op = self.events.prepare(event.kind, event.object, event.message)
            yield _Unit(f"event/{event.kind}", [op], lambda: None, 1)
        for host in changes.delete_routes:
            yield _Unit(f"route/{host}", [TxnOp.delete(keys.route(host))], _pop(owned.routes, host))
        for route in changes.put_routes:
            op = TxnOp.set(keys.route(route.host), dumps(route))
            yield _Unit(f"route/{route.host}", [op], _put(owned.routes, route.host, route))
        for name in changes.delete_status:
            yield _Unit(f"status/{name}", [TxnOp.delete(keys.service_status(name))], _pop(owned.statuses, name))
        for status in changes.put_status:
            op = TxnOp.set(keys.service_status(status.name), dumps(status))
            yield _Unit(f"status/{status.name}", [op], _put(owned.statuses, status.name, status))
        for name in changes.delete_node_status:
            op = TxnOp.delete(keys.node_status(name))
            yield _Unit(f"node-status/{name}", [op], _pop(owned.node_statuses, name))
        for node in changes.put_node_status:
            op = TxnOp.set(keys.node_status(node.name), dumps(node))
            yield _Unit(f"node-status/{node.name}", [op], _put(owned.node_statuses, node.name, node))
        if changes.put_rebalance is not None:
            record = changes.put_rebalance
            op = TxnOp.set(keys.STATUS_REBALANCE, dumps(record))
            yield _Unit("status/rebalance", [op], lambda: setattr(owned, "rebalance", record))

    def _service_units(self, write: ServiceWrite, owned: Owned) -> Iterator[_Unit]:
        """One unit for a service's change, so no agent sees half a move. A change too large for one
        transaction (a service on more than ~60 nodes) is split so that every new copy is written
        before any old copy is deleted: agents may then briefly run more copies, never fewer."""
        puts = [(a, TxnOp.set(keys.assignment(a.node, a.service), dumps(a))) for a in write.put]
        deletes = [(node, TxnOp.delete(keys.assignment(node, write.service))) for node in write.delete]
        events = [self.events.prepare(e.kind, e.object, e.message) for e in write.events]
        room = MAX_TXN_OPS - 1
        room_bytes = TXN_ROOM_BYTES - 1024  # the guard's share, generously
        what = f"service/{write.service}"
        ops = [op for _, op in puts] + [op for _, op in deletes] + events
        if fits(len(ops), sum(self._size(op) for op in ops), room, room_bytes):
            yield _Unit(what, ops, _assign(owned, write.service, write.put, write.delete), len(events))
            return
        log.warning("%s: %d changes exceed one transaction; writing new copies first", what, len(puts) + len(deletes))

        def weight(item: tuple[object, TxnOp]) -> tuple[int, int]:
            return 1, self._size(item[1])

        for chunk in pack(puts, weight, room, room_bytes):
            yield _Unit(what, [op for _, op in chunk], _assign(owned, write.service, [a for a, _ in chunk], ()))
        for chunk_d in pack(deletes, weight, room, room_bytes):
            yield _Unit(what, [op for _, op in chunk_d], _assign(owned, write.service, (), [n for n, _ in chunk_d]))
        if events:
            yield _Unit(what, events, lambda: None, len(events))


_KINDS = {
    keys.ASSIGNMENTS: "assignment",
    keys.STATUS_SERVICES: "status",
    keys.STATUS_NODES: "node-status",
    keys.STATUS_REBALANCE: "rebalance-status",
    keys.ROUTES: "route",
    keys.EVENTS: "event",
}


def action_kind(op: TxnOp) -> str:
    """``put-assignment``, ``delete-route``, ...: what a controller write did, for ``meshop_actions_total``."""
    verb = "delete" if op.verb.startswith("delete") else "put"
    what = next((kind for prefix, kind in _KINDS.items() if op.key.startswith(prefix)), "other")
    return f"{verb}-{what}"


def _count_actions(ops: Sequence[TxnOp], result: str) -> None:
    for op in ops:
        metrics.actions_total.labels(COMPONENT, action_kind(op), result).inc()


def _assign(owned: Owned, service: str, put: Sequence[Assignment], delete: Sequence[str]) -> Callable[[], None]:
    def commit() -> None:
        nodes = owned.assignments.setdefault(service, {})
        for node in delete:
            nodes.pop(node, None)
        for a in put:
            nodes[a.node] = a
        if not nodes:
            owned.assignments.pop(service, None)

    return commit


def _pop(table: dict, key: str) -> Callable[[], None]:  # type: ignore[type-arg]
    return lambda: table.pop(key, None) and None


def _put(table: dict, key: str, value: object) -> Callable[[], None]:  # type: ignore[type-arg]
    def commit() -> None:
        table[key] = value

    return commit
