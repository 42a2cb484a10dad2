"""The controller and ``requests/<service>/move`` (``meshop volume restore --to-node``), real Consul,
simulated nodes: the request alone wakes the controller, which moves the stateful service stop-first to
the named node; a hostile record moves nothing; the controller consumes the request once the target's
lock record is settled, and the service stays there."""

from __future__ import annotations

import json
from collections.abc import Callable

from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import MoveRequest, dumps
from meshop.operator.controller import Controller
from tests.integration.operator.sim import SimNode, events_of, service_doc
from tests.support.procs import wait_until


def test_a_move_request_relocates_a_stateful_service_and_a_hostile_one_does_not(
    store: KVStore, sim_nodes: Callable[..., SimNode], controllers: Callable[..., Controller]
) -> None:
    n1 = sim_nodes("n1")
    ctl = controllers()
    wait_until(lambda: ctl.election.is_leader and ctl.loop.passes > 0, 15, what="the controller to lead")
    volumes = [{"name": "data", "mountPath": "/data", "stateful": {}}]
    store.put(keys.desired_service("db"), service_doc("db", replicas=1, volumes=volumes))
    wait_until(lambda: n1.assignment("db"), 5, what="the assignment on n1")
    n1.report("db")
    n2 = sim_nodes("n2")
    for hostile in (
        dumps(MoveRequest("1-a", "../" + n2.name, "latest", 1.0)),
        dumps(MoveRequest("1-a", n2.name, "latest; rm -rf /", 1.0)),
        b'{"id": "1-a", "node": 7}',
    ):
        passes = ctl.loop.passes
        store.put(keys.move_request("db"), hostile)
        wait_until(lambda p=passes: ctl.loop.passes > p, 5, what="a pass on the request")  # type: ignore[misc]
        assert n1.assignment("db") is not None and n2.assignment("db") is None
    store.put(keys.move_request("db"), dumps(MoveRequest("1-b", n2.name, "latest", 1.0)))
    wait_until(lambda: n2.assignment("db") and n1.assignment("db") is None, 5, what="the move to n2")
    # n2's agent takes the lock (pending while it restores): the request stays until it settled
    lock = {"node": n2.name, "volume": f"meshop-{n2.name}-db-data", "since": 1.0, "pending": True}
    passes = ctl.loop.passes
    store.put(keys.volume_lock("db", "data"), json.dumps(lock))
    wait_until(lambda: ctl.loop.passes > passes, 5, what="a pass on the lock record")
    assert store.get(keys.move_request("db")) is not None
    store.put(keys.volume_lock("db", "data"), json.dumps({**lock, "pending": False}))
    wait_until(lambda: store.get(keys.move_request("db")) is None, 5, what="the controller to consume the move")
    moved = wait_until(lambda: events_of(store, "Moved"), 5, what="the Moved event")
    assert isinstance(moved, list) and moved[0].object == "service/db" and n2.name in moved[0].message
    passes = ctl.loop.passes
    n2.report("db")  # a change: the controller plans again without the request
    wait_until(lambda: ctl.loop.passes > passes, 5, what="a pass after the request is gone")
    assert n2.assignment("db") is not None and n1.assignment("db") is None  # stateful: stays on n2
