"""KVStore against a real Consul: round trips, check-and-set, transactions, limits, errors.

Every test runs over both backends: py-consul (the daemons') and the standard library's HTTP client
(``KVStore.over_http``, the CLI's): same answers, same errors."""

from __future__ import annotations

import re

import pytest

from meshop.consul.config import ConsulConfig
from meshop.consul.events import EventLog
from meshop.consul.store import MAX_TXN_OPS, MAX_VALUE_BYTES, KVStore, TxnOp
from meshop.errors import ConflictError, ConsulUnavailable, DocumentError, ValueTooLarge
from tests.support.procs import free_port

BACKENDS = {"py-consul": KVStore, "http": KVStore.over_http}


@pytest.fixture(params=list(BACKENDS))
def make_store(request: pytest.FixtureRequest):
    return BACKENDS[request.param]


@pytest.fixture
def store(make_store, consul_config: ConsulConfig) -> KVStore:
    return make_store(consul_config)


def test_put_get_list_delete_round_trip(store: KVStore) -> None:
    store.put("desired/services/a", "one")
    store.put("desired/services/b", b"two")
    store.put("nodes/n1", "{}")

    assert store.get("desired/services/a").value == b"one"
    listing = store.list("desired/services/")
    assert [e.key for e in listing.entries] == ["desired/services/a", "desired/services/b"]
    assert listing.index >= 1

    assert store.delete("desired/services/a")
    assert store.get("desired/services/a") is None
    store.delete_tree("desired/")
    assert store.list("desired/").entries == ()
    assert store.get("nodes/n1") is not None


def test_prefix_keeps_stores_apart(make_store, consul_config: ConsulConfig) -> None:
    mine = make_store(consul_config)
    other = make_store(consul_config.with_prefix(consul_config.prefix + "-other"))
    mine.put("k", "mine")
    other.put("k", "other")
    assert mine.get("k").value == b"mine"
    assert other.get("k").value == b"other"
    assert mine.client.kv.get(f"{consul_config.prefix}/k")[1]["Value"] == b"mine"


def test_check_and_set_loses_against_a_concurrent_writer(store: KVStore) -> None:
    assert store.cas("status/x", "v1", 0)  # create-only
    assert not store.cas("status/x", "again", 0)  # exists now
    first = store.get("status/x")
    store.put("status/x", "someone else")
    assert not store.cas("status/x", "stale", first.modify_index)
    assert store.get("status/x").value == b"someone else"
    current = store.get("status/x")
    assert store.cas("status/x", "fresh", current.modify_index)
    assert store.get("status/x").value == b"fresh"


def test_transaction_applies_all_or_nothing(store: KVStore) -> None:
    store.put("a", "old-a")
    a = store.get("a")
    store.transact([TxnOp.cas("a", "new-a", a.modify_index), TxnOp.set("b", "new-b")])
    assert store.get("a").value == b"new-a"
    assert store.get("b").value == b"new-b"

    stale = a.modify_index  # a has moved on since
    with pytest.raises(ConflictError, match="rolled back"):
        store.transact([TxnOp.set("c", "must-not-appear"), TxnOp.check_index("a", stale), TxnOp.delete("b")])
    assert store.get("c") is None
    assert store.get("b").value == b"new-b"


def test_transaction_delete_tree_and_check_not_exists(store: KVStore) -> None:
    store.put("assignments/n1/a", "1")
    store.put("assignments/n1/b", "2")
    store.transact([TxnOp.delete_tree("assignments/n1/"), TxnOp.check_not_exists("assignments/n2/a")])
    assert store.list("assignments/").entries == ()
    store.put("exists", "x")
    with pytest.raises(ConflictError):
        store.transact([TxnOp.set("y", "y"), TxnOp.check_not_exists("exists")])
    assert store.get("y") is None


def test_oversize_value_and_transaction_are_refused_before_sending(store: KVStore) -> None:
    with pytest.raises(ValueTooLarge, match=rf"{store.prefix}/big: value is {MAX_VALUE_BYTES + 1} bytes"):
        store.put("big", b"x" * (MAX_VALUE_BYTES + 1))
    assert store.get("big") is None
    store.put("exact", b"x" * MAX_VALUE_BYTES)
    assert len(store.get("exact").value) == MAX_VALUE_BYTES

    ops = [TxnOp.set(f"many/{i}", "v") for i in range(MAX_TXN_OPS + 1)]
    with pytest.raises(ValueTooLarge, match=f"at most {MAX_TXN_OPS} operations; this one has {MAX_TXN_OPS + 1}"):
        store.transact(ops)
    assert store.list("many/").entries == ()
    store.transact(ops[:MAX_TXN_OPS])
    assert len(store.list("many/").entries) == MAX_TXN_OPS


def test_unreachable_consul_names_the_address(make_store) -> None:
    port = free_port()  # nothing listens here
    store = make_store(ConsulConfig.from_env({}, addr=f"127.0.0.1:{port}", timeout=2))
    with pytest.raises(ConsulUnavailable, match=rf"Consul at http://127.0.0.1:{port} is unreachable.*CONSUL_HTTP_ADDR"):
        store.get("anything")


def test_list_together_reads_several_prefixes_in_one_transaction(store: KVStore) -> None:
    store.put("a/x", "1")
    store.put("a/y", b"\x00two")
    store.put("fence/n1", "f")
    store.put("fence/n10", "other")  # shares the prefix: the caller picks the exact key
    a, fence, none = store.list_together(["a/", "fence/n1", "nothing/"])
    assert [(e.key, e.value) for e in a.entries] == [("a/x", b"1"), ("a/y", b"\x00two")]
    assert [e.key for e in fence.entries] == ["fence/n1", "fence/n10"]
    assert none.entries == () and all(e.modify_index > 0 for e in a.entries)


def test_dot_segments_are_refused_in_urls_and_taken_literally_in_transactions(store: KVStore) -> None:
    """A URL key with ``..`` is cleaned by Consul and redirected (py-consul follows: another key is read),
    so it is refused. An agent may write ``events/agent-N/..`` literally (a transaction, in its own folder);
    the event log, which deletes its oldest keys in transactions, must still trim it and keep appending."""
    store.put("secrets/app/pw", b"hunter2")
    for backend in (store, KVStore.over_http(store.config)):
        for key in ("desired/services/../../secrets/app/pw", "./x", "a/."):
            with pytest.raises(DocumentError, match=re.escape("'.' or '..' segment")):
                backend.get(key)
    log = EventLog(store, "test", max_events=2)
    store.transact([TxnOp.set(f"{log.folder}..", "{}")])  # the oldest key there ('.' sorts before digits)
    for n in range(3):
        log.append("Test", "object/x", f"event {n}")
    remaining = store.keys(log.folder)
    assert f"{log.folder}.." not in remaining and len(remaining) == 2
