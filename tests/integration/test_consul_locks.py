"""Sessions and locks against a real Consul: exclusivity, take-over, lock-delay, the write guard."""

from __future__ import annotations

import time

import pytest

from meshop.consul.sessions import Sessions
from meshop.consul.store import KVStore, TxnOp
from meshop.errors import ConflictError


def test_second_holder_waits_until_the_lock_is_released(store: KVStore) -> None:
    sessions = Sessions(store)
    first = sessions.create("first", lock_delay=0)
    second = sessions.create("second", lock_delay=0)

    lock = sessions.acquire("leader", first, "first")
    assert lock is not None
    assert sessions.acquire("leader", second, "second") is None
    assert sessions.holder("leader") == first

    sessions.release(lock)
    taken = sessions.acquire("leader", second, "second")
    assert taken is not None
    assert sessions.holder("leader") == second
    assert store.get("leader").value == b"second"


def test_lock_delay_holds_off_takeover_after_invalidation(store: KVStore) -> None:
    sessions = Sessions(store)
    first = sessions.create("first", lock_delay=2)
    second = sessions.create("second", lock_delay=0)
    assert sessions.acquire("leader", first) is not None

    sessions.destroy(first)  # as if the holder died: Consul applies lock-delay
    invalidated = time.monotonic()
    assert sessions.holder("leader") is None
    assert sessions.acquire("leader", second) is None  # within lock-delay

    while sessions.acquire("leader", second) is None:
        assert time.monotonic() - invalidated < 5, "lock-delay never ended"
        time.sleep(0.1)
    assert time.monotonic() - invalidated >= 1.5


def test_guarded_write_fails_once_the_lock_is_lost(store: KVStore) -> None:
    sessions = Sessions(store)
    holder = sessions.create("holder", lock_delay=0)
    lock = sessions.acquire("leader", holder)
    assert lock is not None
    store.transact([lock.guard(), TxnOp.set("status/a", "by leader")])
    assert store.get("status/a").value == b"by leader"

    sessions.destroy(holder)
    with pytest.raises(ConflictError):
        store.transact([lock.guard(), TxnOp.set("status/a", "by ex-leader")])
    assert store.get("status/a").value == b"by leader"


def test_session_tied_to_a_ttl_check_dies_with_it(store: KVStore) -> None:
    from meshop.consul.services import CheckSpec, Registration, Services

    services = Services(store.config, store.client)
    service_id = f"{store.prefix}-holder"
    check_id = f"{service_id}:ttl"
    services.register(
        Registration(service_id, "meshop-test-holder", "127.0.0.1", 1, checks=(CheckSpec(check_id, "alive", ttl="1s"),))
    )
    try:
        services.ttl_pass(check_id)
        sessions = Sessions(store)
        session = sessions.create("holder", checks=[check_id], lock_delay=0)
        assert sessions.acquire("leader", session) is not None
        # stop heartbeating: the check goes critical after its TTL and takes the session with it
        deadline = time.monotonic() + 10
        while sessions.alive(session):
            assert time.monotonic() < deadline, "session survived its critical check"
            time.sleep(0.1)
        assert sessions.holder("leader") is None
    finally:
        services.deregister(service_id)
