"""The writer's packing: guard first in every transaction, a service's move never split, stop on a refused guard.

A recording in-memory store stands in for Consul here; tests/integration/operator proves the same against
a real one (a deposed leader's transaction is refused as a whole).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

import pytest

from meshop import metrics
from meshop.consul.events import EventLog
from meshop.consul.kv import full_key, txn_body
from meshop.consul.store import MAX_TXN_BYTES, Listing, TxnOp
from meshop.errors import ConflictError
from meshop.model import keys
from meshop.model.records import Assignment, RouteRecord, ServiceStatus
from meshop.operator.plan import Changes, PlannedEvent, ServiceWrite
from meshop.operator.writer import LeadershipLost, Owned, Writer, action_kind

GUARD = TxnOp.check_session("leader", "s1")


def _b64(op: TxnOp) -> str | None:
    return None if op.value is None else base64.b64encode(op.value).decode()


class RecordingStore:
    prefix = "meshop"

    def __init__(self, fail_after: int | None = None) -> None:
        self.transactions: list[list[TxnOp]] = []
        self.fail_after = fail_after

    def transact(self, ops: Sequence[TxnOp]) -> None:
        if self.fail_after is not None and len(self.transactions) >= self.fail_after:
            raise ConflictError("409 transaction rolled back: check-session failed")
        assert len(ops) <= 64
        self.transactions.append(list(ops))

    def list(self, prefix: str, index: int = 0, wait: str | None = None) -> Listing:
        return Listing(1, ())

    def keys(self, prefix: str) -> list[str]:
        return []


def a(service: str, node: str) -> Assignment:
    return Assignment(service, node, 1, 1, "h", {"image": "x"})


def move(service: str, nodes: int) -> ServiceWrite:
    return ServiceWrite(
        service,
        put=tuple(a(service, f"new{i}") for i in range(nodes)),
        delete=tuple(f"old{i}" for i in range(nodes)),
        events=(PlannedEvent("Rescheduled", f"service/{service}", "moved"),),
    )


def test_every_transaction_is_guarded_and_no_move_is_split() -> None:
    store = RecordingStore()
    changes = Changes(
        services=tuple(move(f"s{i}", 10) for i in range(7)),  # 21 ops each
        put_status=tuple(ServiceStatus(f"s{i}", 1) for i in range(100)),
    )
    owned = Owned()
    stats = Writer(store, EventLog(store, "controller")).write(changes, GUARD, owned)  # type: ignore[arg-type]
    assert all(txn[0] == GUARD and GUARD not in txn[1:] for txn in store.transactions)
    for i in range(7):
        holding = [
            t for t in store.transactions if any(op.key.endswith(f"/s{i}") and "assignments/" in op.key for op in t)
        ]
        assert len(holding) == 1, f"move of s{i} split across transactions"
        keys = [op.key for op in holding[0] if op.key.endswith(f"/s{i}")]
        assert sum(k.startswith("assignments/new") for k in keys) == 10
        assert sum(k.startswith("assignments/old") for k in keys) == 10
    assert stats.operations == 7 * 21 + 100
    assert stats.transactions == len(store.transactions) < 7 + 100  # packed
    assert set(owned.assignments) == {f"s{i}" for i in range(7)} and len(owned.statuses) == 100


def test_a_refused_guard_raises_and_caches_only_what_committed() -> None:
    store = RecordingStore(fail_after=1)
    changes = Changes(services=tuple(move(f"s{i}", 20) for i in range(3)))  # 41 ops each: one per transaction
    owned = Owned()
    with pytest.raises(LeadershipLost):
        Writer(store, EventLog(store, "controller")).write(changes, GUARD, owned)  # type: ignore[arg-type]
    assert len(store.transactions) == 1
    assert set(owned.assignments) == {"s0"}


def test_a_change_too_large_for_one_transaction_writes_new_copies_before_deleting_old_ones() -> None:
    store = RecordingStore()
    owned = Owned()
    changes = Changes(services=(move("huge", 70), move("ok", 1)))
    stats = Writer(store, EventLog(store, "controller")).write(changes, GUARD, owned)  # type: ignore[arg-type]
    assert stats.skipped == []
    ops = [op for txn in store.transactions for op in txn[1:] if op.key.endswith("/huge")]
    verbs = [(op.verb, op.key.split("/")[1][:3]) for op in ops]
    assert verbs == [("set", "new")] * 70 + [("delete", "old")] * 70  # every put lands before any delete
    assert all(txn[0] == GUARD for txn in store.transactions)
    assert len(owned.assignments["huge"]) == 70


def test_a_value_over_consuls_limit_is_skipped_and_others_still_written() -> None:
    store = RecordingStore()
    big = ServiceWrite("big", put=(Assignment("big", "n1", 1, 1, "h", {"blob": "x" * (600 * 1024)}),))
    stats = Writer(store, EventLog(store, "controller")).write(  # type: ignore[arg-type]
        Changes(services=(big, move("ok", 1))), GUARD, Owned()
    )
    assert stats.skipped == ["service/big"]
    assert [op.key for op in store.transactions[0][1:3]] == ["assignments/new0/ok", "assignments/old0/ok"]


def test_node_statuses_are_written_deleted_and_cached() -> None:
    from meshop.model.records import NodeStatus

    store = RecordingStore()
    owned = Owned(node_statuses={"gone": NodeStatus("gone", "NotReady", 1.0, "node record missing")})
    changes = Changes(put_node_status=(NodeStatus("n1", "Ready", 5.0),), delete_node_status=("gone",))
    Writer(store, EventLog(store, "controller")).write(changes, GUARD, owned)  # type: ignore[arg-type]
    assert [(op.verb, op.key) for op in store.transactions[0]] == [
        ("check-session", "leader"),
        ("delete", "status/nodes/gone"),
        ("set", "status/nodes/n1"),
    ]
    assert owned.node_statuses == {"n1": NodeStatus("n1", "Ready", 5.0)}


def test_the_rebalance_record_is_written_guarded_and_cached() -> None:
    from meshop.model.records import RebalanceMove, RebalanceStatus

    store = RecordingStore()
    owned = Owned()
    record = RebalanceStatus("auto", (RebalanceMove("web", "n1", "n3", "n1 runs 2 replicas of web, n3 0", 5.0),))
    Writer(store, EventLog(store, "controller")).write(Changes(put_rebalance=record), GUARD, owned)  # type: ignore[arg-type]
    (txn,) = store.transactions
    assert [(op.verb, op.key) for op in txn] == [("check-session", "leader"), ("set", "status/rebalance")]
    assert RebalanceStatus.from_dict(json.loads(txn[1].value or b"")) == record
    assert owned.rebalance == record
    assert action_kind(txn[1]) == "put-rebalance-status"


def test_committed_and_refused_writes_are_counted_as_controller_actions_by_kind() -> None:
    def count(kind: str, result: str) -> float:
        return metrics.actions_total.labels("controller", kind, result)._value.get()

    before = {
        (k, r): count(k, r) for k in ("put-assignment", "delete-assignment", "put-event") for r in ("ok", "error")
    }
    Writer(RecordingStore(), EventLog(RecordingStore(), "controller")).write(  # type: ignore[arg-type]
        Changes(services=(move("s", 2),)), GUARD, Owned()
    )
    assert count("put-assignment", "ok") - before[("put-assignment", "ok")] == 2
    assert count("delete-assignment", "ok") - before[("delete-assignment", "ok")] == 2
    assert count("put-event", "ok") - before[("put-event", "ok")] == 1
    with pytest.raises(LeadershipLost):
        Writer(RecordingStore(fail_after=0), EventLog(RecordingStore(), "controller")).write(  # type: ignore[arg-type]
            Changes(services=(move("s", 1),)), GUARD, Owned()
        )
    assert count("put-assignment", "error") - before[("put-assignment", "error")] == 1


@pytest.mark.parametrize(
    ("op", "kind"),
    [
        (TxnOp.set("assignments/n1/web", "{}"), "put-assignment"),
        (TxnOp.delete("assignments/n1/web"), "delete-assignment"),
        (TxnOp.set("status/services/web", "{}"), "put-status"),
        (TxnOp.delete("status/nodes/n1"), "delete-node-status"),
        (TxnOp.delete_cas("routes/a.example", 3), "delete-route"),
        (TxnOp.cas("events/c-1", "{}", 0), "put-event"),
        (TxnOp.set("elsewhere", "{}"), "put-other"),
    ],
    ids=lambda v: v if isinstance(v, str) else v.key,
)
def test_action_kind(op: TxnOp, kind: str) -> None:
    assert action_kind(op) == kind


def test_transactions_are_packed_by_encoded_size_and_one_huge_unit_blocks_nothing() -> None:
    big = "x" * (150 * 1024)  # 200 KiB base64: two fit one request, three do not
    routes = tuple(RouteRecord(f"h{i}.example.com", big) for i in range(5))
    huge = RouteRecord("huge.example.com", "y" * (400 * 1024))  # 533 KiB base64: fits no request
    store = RecordingStore()
    stats = Writer(
        store, EventLog(store, "controller")
    ).write(  # type: ignore[arg-type]
        Changes(put_routes=(*routes[:2], huge, *routes[2:])), GUARD, Owned()
    )
    assert stats.skipped == ["route/huge.example.com"]
    written = [op.key for txn in store.transactions for op in txn[1:]]
    assert written == [keys.route(r.host) for r in routes]  # every other record is written, in order
    for txn in store.transactions:
        assert (
            len(json.dumps([{"KV": txn_body(op, full_key("meshop", op.key), _b64(op))} for op in txn])) <= MAX_TXN_BYTES
        )
    assert len(store.transactions) == 3
