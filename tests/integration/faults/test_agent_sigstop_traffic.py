"""A hung agent must not take healthy containers out of traffic (issue 12 item 3).

One-node fleet, all real: ``meshop agent run --caddy-dir`` (Docker container behind the node's Caddy),
``meshop gateway run`` (HTTPS, tls internal) and a controller with a 5 s grace period. The agent is
SIGSTOPped for 30 s: its TTL check goes critical (the gateway sees the agent down), the node turns
NotReady (the controller would drop it from the route), yet the container, its Consul check and the
node's Caddy all keep serving. Before: 503 from about 8 s on. Now: the gateway and the controller fail
open, and not one request fails — no request is sent twice.
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import NodeRecord, NodeStatus, ServiceStatus, loads_json
from meshop.operator.controller import Controller, ControllerOptions
from tests.integration.routing.helpers import (
    Gateway,
    NodeAgent,
    cleanup_node,
    env_of,
    httpd_spec,
    route_of,
    service_doc,
    start_agent_process,
    start_gateway,
    stop_caddy_dir,
)
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until

HOST = "stopped.test"
PAUSE = 30.0


@dataclass
class OneNode:
    store: KVStore
    agent: NodeAgent
    gateway: Gateway
    controller: Controller


@pytest.fixture
def one_node(consul_server: ConsulServer, docker_client: Any, tmp_path: Path) -> Iterator[OneNode]:
    prefix = f"t-{secrets.token_hex(4)}"
    config = ConsulConfig.from_env({}, addr=consul_server.addr, token=consul_server.token, prefix=prefix, timeout=5.0)
    store = KVStore(config)  # the test's own reads and writes: the master token
    agent = start_agent_process(consul_server.addr, prefix, f"sa{secrets.token_hex(3)}", tmp_path)  # role tokens
    gateway = start_gateway(consul_server.addr, prefix, tmp_path)
    options = ControllerOptions(
        f"{prefix}-c1", grace_period=5.0, lock_delay=1, check_ttl=1.0, local_cluster=True, trust_node_records=True
    )
    controller = Controller(acl.config_for(consul_server.addr, prefix, "controller"), options).start()
    try:
        yield OneNode(store, agent, gateway, controller)
    finally:
        agent.process.signal(signal.SIGCONT)
        controller.stop()
        gateway.process.stop()
        stop_caddy_dir(gateway.caddy_dir)
        agent.process.stop()
        stop_caddy_dir(agent.caddy_dir)
        cleanup_node(docker_client, store, agent.name)
        acl.close(consul_server.addr, prefix)


class StrictLoop:
    """GETs through the gateway back to back; EVERY request that is not a 200 is a failure (no resend)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.ok = 0
        self.failures: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StrictLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = self.gateway.get(HOST, "/cgi-bin/env", timeout=10)
            except OSError as exc:
                self.failures.append((time.monotonic(), repr(exc)))
                continue
            if status == 200 and env_of(body).get("HOSTNAME"):
                self.ok += 1
            else:
                self.failures.append((time.monotonic(), f"HTTP {status}: {body[:120]}"))


def node_state(store: KVStore, node: str) -> str:
    entry = store.get(keys.node_status(node))
    return NodeStatus.from_dict(loads_json(entry.value)).state if entry else ""


def degraded_reason(store: KVStore, service: str) -> str:
    entry = store.get(keys.service_status(service))
    if entry is None:
        return ""
    cond = ServiceStatus.from_dict(loads_json(entry.value)).condition("Degraded")
    return cond.reason if cond is not None and cond.status == "True" else ""


def test_a_stopped_agent_on_a_one_node_fleet_costs_no_request_for_30_seconds(one_node: OneNode) -> None:
    store, agent, gateway = one_node.store, one_node.agent, one_node.gateway
    wait_until(lambda: store.get(keys.node(agent.name)) is not None, 30, what="the agent's node record")
    entry = store.get(keys.node(agent.name))
    assert entry is not None and NodeRecord.from_dict(loads_json(entry.value)).ingress_port == agent.ingress_port
    store.put(keys.desired_service("web"), service_doc("web", httpd_spec(route={"host": HOST, "port": "http"})))
    wait_until(lambda: gateway.get(HOST, "/cgi-bin/env", timeout=5)[0] == 200, 60, what="the route through the gateway")

    with StrictLoop(gateway) as loop:
        wait_until(lambda: loop.ok >= 20, 20, what="requests before the pause")
        agent.process.signal(signal.SIGSTOP)
        stopped = time.monotonic()
        seen: set[tuple[str, str, bool]] = set()  # (node state, Degraded reason, route fails open)
        try:
            while time.monotonic() - stopped < PAUSE:
                route = route_of(store, HOST)
                fail_open = (
                    route is not None
                    and getattr(route, "fail_open", False)
                    and [u.node for u in route.upstreams] == [agent.name]
                )
                seen.add((node_state(store, agent.name), degraded_reason(store, "web"), fail_open))
                time.sleep(0.2)
        finally:
            agent.process.signal(signal.SIGCONT)
        during = loop.ok
        wait_until(lambda: node_state(store, agent.name) == "Ready", 30, what="the node Ready again")
        wait_until(lambda: degraded_reason(store, "web") == "", 10, what="the fail-open note gone")
        wait_until(lambda: loop.ok >= during + 20, 20, what="requests after the pause")
    assert not loop.failures, f"{len(loop.failures)} of {loop.ok + len(loop.failures)} failed: {loop.failures[:5]}"
    assert during > 50
    # The pause did what it should: the node went NotReady (grace 5 s) and the controller kept the route
    # open and said so in the service's status.
    assert ("NotReady", "RouteFailOpen", True) in seen, seen
    print(f"agent stopped {PAUSE:.0f} s: {loop.ok} requests answered 200, {len(loop.failures)} failed")
