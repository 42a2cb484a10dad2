"""Node commands and ``status --check`` tell the truth (issue 12 item 8), against a real Consul.

Before: ``meshop nodes cordon <typo>`` created a phantom ``desired/nodes/<typo>`` and exited 0, and
``meshop status --check`` exited 0 while no controller led.
"""

from __future__ import annotations

import pytest

from meshop.consul.sessions import Sessions
from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import Capacity, NodeRecord, dumps
from tests.integration.faults.conftest import Cli


def register(store: KVStore, name: str) -> None:
    store.put(keys.node(name), dumps(NodeRecord(name, "127.0.0.1", {}, Capacity(2.0, 2 * 1024**3), version="test")))


@pytest.mark.parametrize("mode", ["cordon", "drain", "uncordon"])
def test_a_node_command_on_an_unknown_node_fails_with_a_hint_and_writes_nothing(
    meshop: Cli, store: KVStore, mode: str
) -> None:
    register(store, "worker-1")
    register(store, "worker-2")
    code, out, err = meshop("nodes", mode, "worker-l")  # a typo
    assert code == 1, (out, err)
    assert "node/worker-l not found" in err and "worker-1" in err, err
    assert "Traceback" not in err + out
    assert store.get(keys.desired_node("worker-l")) is None  # no phantom node document
    assert store.list(keys.DESIRED_NODES).entries == ()


def test_a_node_command_with_no_node_at_all_says_none_is_known(meshop: Cli, store: KVStore) -> None:
    code, _, err = meshop("nodes", "cordon", "n1")
    assert code == 1 and "known nodes: none yet" in err, err
    assert store.get(keys.desired_node("n1")) is None


def test_known_nodes_still_work_by_record_or_by_document(meshop: Cli, store: KVStore) -> None:
    register(store, "n1")
    assert meshop("nodes", "cordon", "n1")[:2] == (0, "node/n1 cordoned\n")
    store.delete(keys.node("n1"))  # its agent is gone, its document stays: uncordon must still work
    assert meshop("nodes", "uncordon", "n1")[:2] == (0, "node/n1 uncordoned\n")


def test_status_check_fails_while_no_controller_leads(meshop: Cli, store: KVStore) -> None:
    code, _, err = meshop("status", "--check")
    assert code == 1, err
    assert "no controller is leading" in err
    sessions = Sessions(store)
    session = sessions.create("test-leader", lock_delay=0)
    try:
        assert sessions.acquire(keys.LEADER, session, '{"id": "c1"}') is not None
        assert meshop("status", "--check")[0] == 0  # nothing else wrong: a leader is all it needed
    finally:
        sessions.destroy(session)
    assert meshop("status", "--check")[0] == 1
