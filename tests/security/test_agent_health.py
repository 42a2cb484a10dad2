"""Issue 24 (High): a node's agent health is an entry only that node can register.

Before, every agent token could register the shared service name ``meshop-agent``, and Consul ties a
registration to its service *name* only, never to its id or Consul node. So node A, with its own agent
token, registered ``meshop-agent-B`` (the id) under ``meshop-agent`` with a critical check — through its
own Consul agent, or with ``/v1/catalog/register`` and ``SkipNodeUpdate`` on B's Consul node — and the
controller declared B lost after the grace period, moved B's service onto A (whose policy, after ``acl
sync``, then read that service's secrets), and the gateway dropped B from every pool at once.

Now B's agent registers ``meshop-agent-B``, a name only B's token may write, and every reader counts an
entry for B only under that name (or, for an agent not upgraded yet, the shared name when B has no
entry of its own). Real default-deny Consul, every daemon and node on its role token, a real controller.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from meshop.consul.client import make_client
from meshop.consul.config import ConsulConfig
from meshop.consul.services import CheckSpec, Registration, Services
from meshop.consul.store import KVStore
from meshop.errors import ConsulAccessDenied, ConsulError
from meshop.gateway.daemon import down_nodes
from meshop.model import acl as policies
from meshop.model import keys
from meshop.model.agents import LEGACY_AGENT_SERVICE
from meshop.model.records import NodeRecord, NodeStatus, dumps, loads_json
from meshop.operator.controller import Controller, ControllerOptions
from tests.integration.operator.sim import SimNode
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until

GRACE = 3.0


def node_state(store: KVStore, node: str) -> str:
    entry = store.get(keys.STATUS_NODES + node)
    return NodeStatus.from_dict(loads_json(entry.value)).state if entry else ""


def stays_ready(store: KVStore, nodes: list[str], seconds: float) -> None:
    """Every node in ``nodes`` is Ready at every look for ``seconds`` (longer than the grace period: a
    node the controller took for unhealthy would be Suspect at once, then NotReady)."""
    deadline = time.monotonic() + seconds
    tick = threading.Event()
    while time.monotonic() < deadline:
        states = {n: node_state(store, n) for n in nodes}
        assert set(states.values()) == {"Ready"}, states
        tick.wait(0.2)


def forged_check(node: str) -> CheckSpec:
    return CheckSpec(f"forged-{node}", "forged", ttl="600s", initial_status="critical")


def catalog_forgery(addr: str, token: str, consul_node: dict, service_id: str, name: str) -> requests.Response:
    """A registration on another Consul node's entry, leaving the node itself as it is (what an agent
    token's service right allows through the catalog API, without any right on that node)."""
    body = {
        "Node": consul_node["Node"],
        "Address": consul_node["Address"],
        "ID": consul_node["ID"],
        "Datacenter": consul_node["Datacenter"],
        "Service": {"ID": service_id, "Service": name, "Address": "127.0.0.1", "Port": 1, "Meta": {}},
        "Check": {"CheckID": f"forged-{service_id}", "Name": "forged", "Status": "critical", "ServiceID": service_id},
        "SkipNodeUpdate": True,
    }
    return requests.put(f"http://{addr}/v1/catalog/register", json=body, headers={"X-Consul-Token": token}, timeout=5)


@pytest.fixture
def controller(consul_server: ConsulServer, prefix: str, store: KVStore) -> Iterator[Controller]:
    options = ControllerOptions(f"{prefix}-c", grace_period=GRACE, lock_delay=0, check_ttl=1.0, resync=1.0)
    ctl = Controller(acl.config_for(consul_server.addr, prefix, "controller"), options).start()
    try:
        wait_until(lambda: ctl.election.is_leader and ctl.loop.passes > 0, 20, what="a leading controller")
        yield ctl
    finally:
        ctl.stop()


def gateway_down(addr: str, prefix: str) -> set[str]:
    """What the gateway reads (on its own token) to drop nodes from its pools."""
    config = acl.config_for(addr, prefix, "gateway")
    return down_nodes(Services(config, make_client(config)).all_checks()[1])


def test_a_node_cannot_fail_another_nodes_agent_health(
    consul_server: ConsulServer, prefix: str, store: KVStore, controller: Controller
) -> None:
    addr = consul_server.addr
    a_name, b_name, web = f"{prefix}-a", f"{prefix}-b", f"{prefix}-web"
    nodes = [SimNode(KVStore(acl.config_for(addr, prefix, "agent", n)), n).join() for n in (a_name, b_name)]
    try:
        store.put(keys.desired_service(web), json.dumps(_service(web)))
        victim = wait_until(lambda: next((n for n in nodes if n.assignment(web)), None), 20, what="web placed")
        evil = next(n for n in nodes if n is not victim)
        store.put(f"secrets/{web}/password", "hunter2")
        victim.report(web)
        roles = acl.roles(addr, prefix)
        assert roles is not None
        roles.sync()
        wait_until(lambda: {node_state(store, n.name) for n in nodes} == {"Ready"}, 20, what="both nodes Ready")
        evil_config = acl.config_for(addr, prefix, "agent", evil.name)
        evil_services = Services(evil_config, make_client(evil_config))
        vid = f"meshop-agent-{victim.name}"
        accepted = []  # the forgeries Consul took: each is asserted refused once its effect was looked for
        # 1. through its own Consul agent: the victim's per-node name, and the shared name of old agents
        for name in (vid, LEGACY_AGENT_SERVICE):
            try:
                evil_services.register(Registration(vid, name, "127.0.0.1", 0, checks=(forged_check(victim.name),)))
                accepted.append(f"agent API: {name}")
            except ConsulAccessDenied:
                pass
        # 2. through the catalog, on the Consul node the victim's agent is registered on
        headers = acl.auth_headers(addr)
        host = requests.get(f"http://{addr}/v1/agent/self", headers=headers, timeout=5).json()["Config"]["NodeName"]
        found = requests.get(f"http://{addr}/v1/catalog/node/{host}", headers=headers, timeout=5).json()
        assert vid in found["Services"], "the victim's agent is registered on this Consul node"
        consul_node = found["Node"]
        for name in (vid, LEGACY_AGENT_SERVICE):
            answer = catalog_forgery(addr, evil_config.token or "", consul_node, vid, name)
            if answer.status_code != 403:
                accepted.append(f"catalog/register: {name}: {answer.status_code}")
        # nothing of it counts: the victim stays Ready past the grace period, keeps its service (so the
        # forger never gets its secret) and stays in the gateway's pools
        stays_ready(store, [victim.name, evil.name], GRACE + 1.5)
        assert victim.assignment(web) is not None and evil.assignment(web) is None
        with pytest.raises(ConsulError):
            KVStore(evil_config).get(f"secrets/{web}/password")
        assert victim.name not in gateway_down(addr, prefix)
        assert accepted == []
    finally:
        for n in nodes:
            n.close()


def test_a_mixed_fleet_keeps_its_old_agents_and_ignores_a_shared_name_forgery(
    consul_server: ConsulServer, prefix: str, store: KVStore, controller: Controller
) -> None:
    """Upgrade path: ``old`` still runs an agent of the previous release (its policy grants the shared
    ``meshop-agent`` name, which it registers); ``new`` runs this one. ``old`` stays Ready, a shared-name
    entry forged for ``new`` is ignored by the controller and the gateway, and once ``old`` is upgraded
    ``acl sync`` takes the shared name away from it."""
    addr = consul_server.addr
    old_name, new_name = f"{prefix}-old", f"{prefix}-new"
    roles = acl.roles(addr, prefix)
    assert roles is not None
    old_config = acl.config_for(addr, prefix, "agent", old_name)
    previous = policies.render("agent", prefix, old_name, legacy=True)
    roles.admin.api.upsert_policy(previous.name, previous.description, previous.rules)
    old = Services(old_config, make_client(old_config))
    old_id = f"meshop-agent-{old_name}"
    beat = CheckSpec(f"{old_id}:ttl", "meshop agent heartbeat", ttl="600s", initial_status="passing")
    old.register(Registration(old_id, LEGACY_AGENT_SERVICE, "127.0.0.1", 0, meta={"node": old_name}, checks=(beat,)))
    KVStore(old_config).put(keys.node(old_name), dumps(NodeRecord(old_name, "127.0.0.1", version="old")))
    new = SimNode(KVStore(acl.config_for(addr, prefix, "agent", new_name)), new_name).join()
    master = Services(_master(consul_server, prefix), store.client)
    try:
        roles.sync()
        assert policies.grants_legacy_agent_name(roles.admin.api.policy(previous.name).rules), "kept while in use"
        wait_until(lambda: {node_state(store, n) for n in (old_name, new_name)} == {"Ready"}, 20, what="both Ready")
        # a shared-name entry for `new` on another Consul node (what `old`'s token may register through its
        # own Consul agent on a fleet; one Consul agent here, so made with the master token)
        host = {"Node": f"{prefix}-old-host", "Address": "127.0.0.9", "ID": "", "Datacenter": "dc1"}
        answer = catalog_forgery(addr, consul_server.token or "", host, f"meshop-agent-{new_name}", "meshop-agent")
        assert answer.status_code == 200, answer.text
        wait_until(
            lambda: any(i.node == host["Node"] for i in master.agents()[1]), 10, what="the forged entry in Consul"
        )
        stays_ready(store, [old_name, new_name], GRACE + 1.5)
        assert new_name not in gateway_down(addr, prefix)
        # `old` is upgraded: its agent re-registers under its own name (its policy still allows replacing
        # the shared-name entry), and the next sync takes the shared name away
        old.register(Registration(old_id, old_id, "127.0.0.1", 0, meta={"node": old_name}, checks=(beat,)))
        wait_until(lambda: old_name in roles.admin.upgraded_agents(), 10, what="old's own name in the catalog")
        roles.sync()
        assert not policies.grants_legacy_agent_name(roles.admin.api.policy(previous.name).rules)
        with pytest.raises(ConsulAccessDenied):
            old.register(Registration(f"meshop-agent-{new_name}", LEGACY_AGENT_SERVICE, "127.0.0.1", 0))
        stays_ready(store, [old_name], 1.0)
    finally:
        requests.put(
            f"http://{addr}/v1/catalog/deregister",
            json={"Node": f"{prefix}-old-host"},
            headers=acl.auth_headers(addr),
            timeout=5,
        )
        master.deregister(old_id)
        new.close()


def _master(consul_server: ConsulServer, prefix: str) -> ConsulConfig:
    return ConsulConfig.from_env({}, addr=consul_server.addr, token=consul_server.token, prefix=prefix, timeout=5.0)


def _service(name: str) -> dict:
    return {
        "apiVersion": "meshop.io/v1alpha1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"image": "busybox:1", "replicas": 1},
    }
