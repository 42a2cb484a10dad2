"""Never delete on uncertainty: with Consul stopped the containers keep running, the agent keeps
repairing them from its last good assignments (also across its own restart) and recovers when Consul
returns.

The issue's figure is a 60 s outage; these tests stop Consul for as long as it takes the agent to go
through at least five resync periods (1 s each here) plus a repair, which exercises the same code
paths: nothing in the agent depends on how long Consul has been gone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from tests.integration.agent.helpers import (
    SLEEPER,
    AgentFactory,
    Engine,
    assign,
    http_spec,
    http_status,
    observed,
    passing,
    registrations,
)
from tests.support.consul_server import ConsulServer
from tests.support.procs import free_port, wait_until


@pytest.fixture
def own_consul(tmp_path: Path) -> Iterator[ConsulServer]:
    server = ConsulServer(tmp_path / "consul", persistent=True).start()  # KV survives a restart
    try:
        yield server
    finally:
        server.stop()


RESYNC = 1.0
OUTAGE = 60.0  # the figure: a minute without Consul, longer than every backoff ceiling


def _config(server_addr: str) -> ConsulConfig:
    return ConsulConfig.from_env({}, addr=server_addr, prefix="outage", timeout=2.0)


def test_consul_outage_keeps_containers_running_and_the_agent_recovers(
    own_consul: ConsulServer, start_agent: AgentFactory, engine: Engine, node: str
) -> None:
    config = _config(own_consul.addr)
    store = KVStore(config)
    agent = start_agent(config=config, resync=RESYNC)
    assign(store, node, "web", http_spec(), replicas=2)
    assign(store, node, "sleeper", SLEEPER)
    wait_until(lambda: len(engine.running()) == 3, 10, what="three containers")
    wait_until(lambda: http_status(f"{agent.status_url}/readyz") == 200, 10, what="ready")
    web = {c.id for c in engine.running("web")}

    own_consul.stop()
    down_since = time.monotonic()
    wait_until(lambda: http_status(f"{agent.status_url}/readyz") == 503, 15, what="/readyz to report Consul gone")
    passes = agent.daemon.loop.passes
    # drift is still repaired from the last good assignments while Consul is away
    victim = engine.running("sleeper")[0]
    victim.remove(force=True)
    wait_until(
        lambda: [c.id for c in engine.running("sleeper")] not in ([], [victim.id]),
        5,
        what="the removed container restored without Consul",
    )
    wait_until(
        lambda: agent.daemon.loop.passes >= passes + 4 and time.monotonic() - down_since >= OUTAGE,
        OUTAGE + 20,
        what="a whole outage with Consul down and at least four more passes",
    )
    assert agent.thread.is_alive()
    assert not agent.daemon.reconciler.authoritative
    assert {c.id for c in engine.running("web")} == web  # untouched all along
    assert len(engine.containers()) == 3

    own_consul.start()
    wait_until(lambda: http_status(f"{agent.status_url}/readyz") == 200, 20, what="ready again")
    assert agent.daemon.reconciler.authoritative
    assign(store, node, "after", SLEEPER)
    wait_until(lambda: engine.running("after"), 5, what="a new assignment applied after the outage")
    wait_until(lambda: (o := observed(store, node, "web")) and o.ready == 2, 10, what="observed written again")
    wait_until(lambda: len(passing(own_consul.addr, "web", node)) == 2, 15, what="replicas passing in Consul")
    assert f"meshop-agent-{node}" in registrations(own_consul.addr, node)
    assert {c.id for c in engine.running("web")} == web


def test_agent_restarted_while_consul_is_down_keeps_and_repairs_its_containers(
    own_consul: ConsulServer, start_agent: AgentFactory, engine: Engine, node: str, tmp_path: Path
) -> None:
    config = _config(own_consul.addr)
    store = KVStore(config)
    first = start_agent(config=config, resync=1.0)
    assign(store, node, "web", http_spec())
    assign(store, node, "sleeper", SLEEPER, replicas=2)
    wait_until(lambda: len(engine.running()) == 3, 10, what="three containers")
    state_file = tmp_path / "state" / f"assignments-{node}.json"
    wait_until(state_file.exists, 5, what="the state file")
    ids = {c.id for c in engine.running()}

    own_consul.stop()
    first.stop()  # clean shutdown with Consul gone: deregistration fails, containers stay
    assert {c.id for c in engine.running()} == ids

    second = start_agent(config=config, resync=1.0, wait_ready=False)
    wait_until(lambda: second.daemon.loop.passes >= 3, 15, what="three passes of the restarted agent")
    assert set(second.daemon.assignments.cached or {}) == {"web", "sleeper"}
    assert {c.id for c in engine.running()} == ids
    victim = engine.running("sleeper")[0]
    victim.remove(force=True)
    wait_until(lambda: len(engine.running("sleeper")) == 2, 5, what="the restarted agent repairing from its state file")
    assert len(engine.containers()) == 3

    own_consul.start()
    wait_until(lambda: http_status(f"{second.status_url}/readyz") == 200, 20, what="ready again")
    wait_until(lambda: (o := observed(store, node, "sleeper")) and o.ready == 2, 10, what="observed written")
    assert len(engine.containers()) == 3


def test_agent_without_any_known_assignments_touches_nothing_while_consul_is_unreachable(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, tmp_path: Path
) -> None:
    agent = start_agent()
    assign(store, node, "sleeper", SLEEPER)
    wait_until(lambda: engine.running("sleeper"), 5, what="the container")
    container_id = engine.running("sleeper")[0].id
    agent.stop()
    dead = _config(f"127.0.0.1:{free_port()}")  # nothing listens there
    fresh = start_agent(config=dead, resync=0.5, state_dir=tmp_path / "empty-state", wait_ready=False)
    wait_until(lambda: fresh.daemon.loop.passes >= 3, 15, what="three passes against a dead Consul")
    assert fresh.daemon.loop.last_error and "unreachable" in fresh.daemon.loop.last_error
    assert [c.id for c in engine.running("sleeper")] == [container_id]
