"""A node back from a power loss (real Consul, real Docker): its agent removes the stale copy the engine
restarted at boot before its heartbeat check passes (before the controller can count the node Ready),
and kills it instead of waiting its stop grace, since this agent never sent it anything.

The power loss is staged on one engine: an agent runs a replica and stops; while it is away the replica's
assignment is deleted (the controller placed it elsewhere) and the agent's check is registered passing,
as a restarted Consul agent restores a check registered passing. The replica, ``sleep`` as PID 1, ignores
SIGTERM: a graceful stop would last the whole grace.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

from meshop.consul.store import KVStore
from meshop.model import keys
from tests.integration.agent.helpers import SLEEPER, AgentFactory, Engine, assign, consul_get
from tests.support import acl
from tests.support.procs import wait_until

GRACE = 30.0  # the agent's stop grace: a graceful stop of the stale copy would take all of it


def agent_check(addr: str, node: str) -> str:
    checks = consul_get(addr, f"/v1/health/checks/meshop-agent-{node}?node={node}") or []
    ours = [c["Status"] for c in checks if c["ServiceID"] == f"meshop-agent-{node}"]
    return ours[0] if ours else "absent"


def register_passing(addr: str, node: str) -> None:
    """The agent's registration as a restarted Consul agent restores it: its TTL check passing."""
    body = {
        "ID": f"meshop-agent-{node}",
        "Name": f"meshop-agent-{node}",
        "Address": "127.0.0.1",
        "Meta": {"node": node},
        "Check": {"CheckID": f"meshop-agent-{node}:ttl", "Name": "meshop agent heartbeat", "TTL": "60s",
                  "Status": "passing"},
    }  # fmt: skip
    request = urllib.request.Request(
        f"http://{addr}/v1/agent/service/register",
        data=json.dumps(body).encode(),
        method="PUT",
        headers=acl.auth_headers(addr),
    )
    urllib.request.urlopen(request, timeout=5).close()


def test_returning_node_removes_its_stale_copy_before_its_check_passes(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, consul_server: Any
) -> None:
    first = start_agent(stop_grace=GRACE)
    assign(store, node, "old", SLEEPER)
    wait_until(lambda: engine.running("old"), 10, what="the replica running")
    stale = engine.running("old")[0].id
    first.stop()  # the containers keep running, as an engine restarts them after a power loss
    store.delete(keys.assignment(node, "old"))  # placed elsewhere while the node was away
    register_passing(consul_server.addr, node)
    assert agent_check(consul_server.addr, node) == "passing"

    samples: list[tuple[float, str, bool]] = []  # (when, the check, the stale copy still there)
    done = threading.Event()

    def present() -> bool:
        """Whether the stale copy exists (sparse: a plain list never inspects a container being removed)."""
        found = engine.client.containers.list(all=True, sparse=True, filters={"label": [f"meshop.node={node}"]})
        return any(c.id == stale for c in found)

    def sample() -> None:
        while not done.is_set():
            try:
                check = agent_check(consul_server.addr, node)
                samples.append((time.monotonic(), check, present()))
            except OSError:  # a slow answer on a loaded machine (Docker's errors are OSErrors too): again
                pass
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        start_agent(stop_grace=GRACE, wait_ready=False)
        wait_until(
            lambda: samples and samples[-1][1] == "passing" and not samples[-1][2],
            GRACE / 2,
            interval=0.05,
            what="the check passing and the stale copy gone",
        )
    finally:
        done.set()
        sampler.join(timeout=5)
    # the order: while the stale copy was there, the check never passed (after the agent's first beat)
    held = [s for s in samples if s[1] == "critical"]
    assert held, "the check restored passing was never held critical"
    after_first_hold = [s for s in samples if s[0] >= held[0][0]]
    assert not [s for s in after_first_hold if s[1] == "passing" and s[2]], "Ready while the stale copy ran"
    gone = next(s[0] for s in samples if not s[2])
    assert gone - started < GRACE / 3  # killed, not stopped with its 30 s grace
    assert engine.containers("old") == []
