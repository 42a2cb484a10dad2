"""Assignment to running container, the node's registration, replica registrations, observed state, metrics."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import NodeRecord, loads_json
from tests.integration.agent.helpers import (
    SLEEPER,
    AgentFactory,
    Engine,
    assign,
    consul_get,
    http_spec,
    http_status,
    observed,
    passing,
    registrations,
    run_passes,
)
from tests.support.procs import wait_until


def test_assignment_runs_with_its_labels(start_agent: AgentFactory, store: KVStore, engine: Engine, node: str) -> None:
    start_agent()
    assignment = assign(store, node, "web", http_spec(replicas=2), generation=42)
    # how fast is a figure of benchmarks/agent_converge.py; here: it runs, as assigned
    wait_until(lambda: len(engine.running("web")) == 2, 10.0, what="two running replicas")
    labels = sorted((c.labels for c in engine.running("web")), key=lambda lab: lab["meshop.replica"])
    assert [lab["meshop.replica"] for lab in labels] == ["0", "1"]
    for lab in labels:
        assert lab["meshop.managed"] == "true"
        assert lab["meshop.node"] == node
        assert lab["meshop.service"] == "web"
        assert lab["meshop.spec-hash"] == assignment.spec_hash
        assert lab["meshop.config-hash"] == assignment.spec_hash  # no secrets: the same
        assert lab["meshop.generation"] == "42"
    names = {c.name for c in engine.running("web")}
    assert names == {f"meshop-{node}-web-{r}-{assignment.spec_hash}" for r in (0, 1)}


def test_observed_state_and_replica_registrations(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, consul_server: Any
) -> None:
    start_agent()
    assignment = assign(store, node, "web", http_spec(replicas=2), generation=7)
    record = wait_until(lambda: (o := observed(store, node, "web")) and o.ready == 2 and o, 10, what="observed ready=2")
    assert record.spec_hash == assignment.spec_hash
    assert record.generation == 7
    assert record.reason == "" and record.error == ""
    assert {c.state for c in record.containers} == {"running"}
    assert {c.health for c in record.containers} == {"passing"}
    ports = sorted(c.host_ports["8080/tcp"] for c in record.containers)
    # each running replica is a healthy Consul service at advertise address + host port, with its meta
    found = wait_until(
        lambda: sorted(passing(consul_server.addr, "web", node)) == [("127.0.0.1", p) for p in ports],
        10,
        what="both replicas passing in Consul",
    )
    assert found
    regs = registrations(consul_server.addr, node)
    ids = {sid for sid, body in regs.items() if body["Service"] == "web"}
    assert ids == {f"meshop-{node}-web-0", f"meshop-{node}-web-1"}
    meta = regs[f"meshop-{node}-web-0"]["Meta"]
    assert meta["node"] == node and meta["service"] == "web" and meta["replica"] == "0"
    assert meta["generation"] == "7" and meta["specHash"] == assignment.spec_hash
    for port in ports:
        assert http_status(f"http://127.0.0.1:{port}/") == 200
    # written only when it changes: a quiet resync does not rewrite it
    index = store.get(keys.observed(node, "web")).modify_index
    run_passes(start_agent.started[0], 3)
    assert store.get(keys.observed(node, "web")).modify_index == index


def test_node_record_heartbeat_and_clean_shutdown(
    start_agent: AgentFactory, store: KVStore, engine: Engine, node: str, consul_server: Any
) -> None:
    agent = start_agent()
    entry = wait_until(lambda: store.get(keys.node(node)), 5, what="nodes/<node>")
    record = NodeRecord.from_dict(loads_json(entry.value))
    assert record.address == "127.0.0.1"
    assert record.labels == {"zone": "test"}
    assert record.capacity.cpus >= 1 and record.capacity.memory > 100 * 2**20
    assert record.metrics_addr == agent.daemon.status.address
    assert abs(record.started_at - time.time()) < 60
    checks = wait_until(  # passing once the first pass acted (presence.py)
        lambda: [
            c
            for c in consul_get(consul_server.addr, f"/v1/health/checks/meshop-agent-{node}")
            if c["ServiceID"] == f"meshop-agent-{node}" and c["Status"] == "passing"
        ],
        5,
        what="the agent's TTL check passing",
    )
    assert checks[0]["CheckID"] == f"meshop-agent-{node}:ttl"
    assert checks[0]["Status"] == "passing"
    service = registrations(consul_server.addr, node)[f"meshop-agent-{node}"]
    assert service["Service"] == f"meshop-agent-{node}" and service["Meta"]["node"] == node
    scrape = registrations(consul_server.addr, node)[f"meshop-metrics-agent-{node}.{node}"]  # Prometheus
    assert (scrape["Service"], f"{scrape['Address']}:{scrape['Port']}") == (
        f"meshop-metrics-agent-{node}",
        record.metrics_addr,
    )
    assert scrape["Meta"]["component"] == "agent"
    assign(store, node, "sleeper", SLEEPER)
    wait_until(lambda: engine.running("sleeper"), 5, what="sleeper running")
    container_id = engine.running("sleeper")[0].id
    agent.stop()
    assert not {f"meshop-agent-{node}", f"meshop-metrics-agent-{node}.{node}"} & set(
        registrations(consul_server.addr, node)
    )
    assert [c.id for c in engine.running("sleeper")] == [container_id]  # containers keep running


def test_heartbeat_keeps_passing_while_a_pass_is_slow(
    start_agent: AgentFactory, store: KVStore, node: str, consul_server: Any
) -> None:
    agent = start_agent(heartbeat=0.3, ttl=1.5)
    runtime = agent.daemon.runtime
    original = runtime.list_managed
    slow_started: list[float] = []
    slow_ended: list[float] = []

    def slow_list() -> list:
        slow_started.append(time.monotonic())
        time.sleep(4.0)  # a pass stuck far longer than the TTL
        try:
            return original()
        finally:
            slow_ended.append(time.monotonic())

    runtime.list_managed = slow_list  # type: ignore[method-assign]
    statuses: list[str] = []

    def sample_until_slow_pass_done() -> bool:
        checks = consul_get(consul_server.addr, f"/v1/health/checks/meshop-agent-{node}")
        statuses.extend(c["Status"] for c in checks if c["ServiceID"] == f"meshop-agent-{node}")
        return bool(slow_ended)

    try:
        agent.daemon.wakeup.notify("test")
        wait_until(lambda: slow_started, 5, what="the slow pass to begin")
        # sample the TTL check for the whole 4 s pass (more than twice the 1.5 s TTL)
        wait_until(sample_until_slow_pass_done, 10, interval=0.1, what="the slow pass to end")
        assert slow_ended[0] - slow_started[0] >= 4.0
        assert len(statuses) > 20
        assert set(statuses) == {"passing"}
    finally:
        runtime.list_managed = original  # type: ignore[method-assign]


def test_metrics_and_readiness(start_agent: AgentFactory, store: KVStore, engine: Engine, node: str) -> None:
    agent = start_agent()
    assign(store, node, "sleeper", SLEEPER)
    wait_until(lambda: engine.running("sleeper"), 5, what="sleeper running")
    wait_until(lambda: http_status(f"{agent.status_url}/readyz") == 200, 10, what="/readyz 200")
    with urllib.request.urlopen(f"{agent.status_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'meshop_actions_total{component="agent",kind="create",result="ok"}' in text
    assert 'meshop_reconcile_total{component="agent",result="ok"}' in text
    assert 'meshop_managed_containers{state="running"}' in text
    assert http_status(f"{agent.status_url}/healthz") == 200
