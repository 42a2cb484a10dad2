"""Issue 24, item 2: a node cannot choose the address it is dialled at.

A compromised node writes its own ``nodes/<n>`` record, and its Consul agent's token accepts a
``catalog/register`` that moves its catalog entry: before, the controller preferred the catalog address
(else the record's), so routes, DNS direct mode (which reads routes) and ``meshop logs``/``exec`` (which
read the record) went wherever the node said — here 198.51.100.1, standing for the gateway host's own
tailnet address, where Consul's HTTP API listens. Now the operator's ``inventory/nodes/<n>`` (writable by
the operator role only, not by any agent) decides. Against the real default-deny Consul, a real
controller with its role token (not ``--local-cluster``, not ``--trust-node-records``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import replace

import pytest
import requests

from meshop.client.remote import locate
from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.errors import ConsulError
from meshop.model import keys
from meshop.model.addresses import address_problem
from meshop.model.records import Capacity, NodeRecord, RouteRecord, dumps, loads_json
from meshop.operator.controller import Controller, ControllerOptions
from meshop.operator.dns import node_inventory, served_hosts
from tests.integration.operator.sim import SimNode
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until

INVENTORY = "inventory/nodes/"  # spelled here (not keys.INVENTORY_NODES) so the test also runs on main
GATEWAY_HOST = "198.51.100.1"  # the gateway host's own address: what the node wants routes to hit
HONEST, EVIL = "198.51.100.10", "198.51.100.20"  # what the operator recorded for each node


@pytest.fixture
def prefix(consul_server: ConsulServer) -> Iterator[str]:
    name = f"inv-{secrets.token_hex(4)}"
    yield name
    acl.close_everywhere(name)


def entry(*addresses: str) -> str:
    """What ``meshop nodes inventory`` / ``meshop node add`` write (``model.inventory.inventory_value``)."""
    return json.dumps({"addresses": list(addresses)})


def _record(name: str, address: str) -> str:
    return dumps(NodeRecord(name, address, {}, Capacity(4.0, 8 * 1024**3), version="sim", ingress_port=8080))


def test_an_agent_token_cannot_write_the_inventory_and_the_operator_can(
    consul_server: ConsulServer, prefix: str
) -> None:
    agent = KVStore(acl.config_for(consul_server.addr, prefix, "agent", node="n1"))
    agent.put(keys.node("n1"), _record("n1", EVIL))  # its own record: allowed
    for key in ((INVENTORY + "n1"), (INVENTORY + "n2"), "inventory/x"):
        with pytest.raises(ConsulError):
            agent.put(key, json.dumps({"addresses": [GATEWAY_HOST]}))
    operator = KVStore(acl.config_for(consul_server.addr, prefix, "operator"))
    operator.put((INVENTORY + "n1"), entry(EVIL))  # on main: 403, the operator had no such right
    for role in ("controller", "gateway", "readonly"):
        with pytest.raises(ConsulError):
            KVStore(acl.config_for(consul_server.addr, prefix, role)).put((INVENTORY + "n1"), "{}")


def test_a_forged_catalog_or_record_address_is_used_by_no_route_dns_record_or_ssh(
    consul_server: ConsulServer, prefix: str
) -> None:
    addr = consul_server.addr
    master = ConsulConfig.from_env({}, addr=addr, token=consul_server.token, prefix=prefix, timeout=5.0)
    store = KVStore(master)
    tag = secrets.token_hex(3)
    honest_name, evil_name, name = f"h{tag}", f"e{tag}", f"web{tag}"
    host = f"{name}.sec.test"
    operator = KVStore(acl.config_for(addr, prefix, "operator"))
    store.put((INVENTORY + honest_name), entry(HONEST))  # as `meshop node add` records them
    store.put((INVENTORY + evil_name), entry(EVIL))

    honest = SimNode(store, honest_name).join()
    store.put(keys.node(honest_name), _record(honest_name, HONEST))
    # the evil node: its record claims the gateway host, and its agent's registration sits on a Consul
    # node whose catalog address it chose (what its Consul agent token's catalog/register allowed)
    store.put(keys.node(evil_name), _record(evil_name, GATEWAY_HOST))
    forged = {
        "Node": f"{prefix}-{evil_name}-host",
        "Address": GATEWAY_HOST,
        "Service": {
            "ID": f"meshop-agent-{evil_name}",
            "Service": f"meshop-agent-{evil_name}",
            "Meta": {"node": evil_name},
        },
        "Check": {
            "CheckID": f"{evil_name}-alive",
            "Name": "alive",
            "Status": "passing",
            "ServiceID": f"meshop-agent-{evil_name}",  # an agent's own check, as its TTL heartbeat is
        },
    }
    headers = acl.auth_headers(addr)
    put = requests.put(f"http://{addr}/v1/catalog/register", json=forged, headers=headers, timeout=5)
    assert put.status_code == 200, put.text
    evil = SimNode(store, evil_name)  # only to read its assignment and report, as its agent would

    options = ControllerOptions(f"{prefix}-c", grace_period=30.0, lock_delay=0, check_ttl=1.0, resync=1.0)
    controller = Controller(acl.config_for(addr, prefix, "controller"), options).start()
    try:
        wait_until(lambda: controller.election.is_leader and controller.loop.passes > 0, 20, what="a leader")
        spec = {"image": "busybox:1", "replicas": 2, "ports": [{"name": "http", "container": 80}]}
        spec["route"] = {"host": host, "port": "http"}
        doc = {"apiVersion": "meshop.io/v1alpha1", "kind": "Service", "metadata": {"name": name}, "spec": spec}
        operator.put(keys.desired_service(name), json.dumps(doc))
        for node in (honest, evil):
            wait_until(lambda n=node: n.assignment(name), 20, what=f"an assignment of {name} on {node.name}")
            seen = node.report(name)
            docker_ids = tuple(replace(c, id=secrets.token_hex(32)) for c in seen.containers)  # for logs/exec
            store.put(keys.observed(node.name, name), dumps(replace(seen, containers=docker_ids)))

        def route() -> RouteRecord | None:
            entry = store.get(keys.route(host))
            record = RouteRecord.from_dict(loads_json(entry.value)) if entry else None
            return record if record and {u.node for u in record.upstreams} == {honest_name, evil_name} else None

        record = wait_until(route, 20, what="a route with both nodes")
        routed = {u.node: u.address for u in record.upstreams}
        # DNS direct mode: the records come from routes/ (the controller's upstreams), read as the writer
        # reads them, with its own second check against the inventory
        listed = node_inventory(store.list(keys.INVENTORY_NODES))
        served = served_hosts(store.list(keys.ROUTES), ("sec.test",), local_cluster=False, inventory=listed)
        direct = sorted(served[host])
        # meshop logs / exec: the address SSH would dial for each replica
        found = locate(acl.config_for(addr, prefix, "readonly"), name, node=None, replica=None, local_cluster=False)
        dialled = {r.node: r.address for r in found.replicas}
        # on main all three held 198.51.100.1 for the evil node: the catalog's (routes, DNS), the record's (SSH)
        chose = {"route": routed[evil_name], "dns": direct, "ssh": dialled.get(evil_name)}
        assert GATEWAY_HOST not in (chose["route"], chose["ssh"], *direct), f"the node's own choice is used: {chose}"
        assert routed == dialled == {honest_name: HONEST, evil_name: EVIL}
        assert direct == [HONEST, EVIL]
    finally:
        controller.stop()
        honest.close()
        requests.put(f"http://{addr}/v1/catalog/deregister", json={"Node": forged["Node"]}, headers=headers, timeout=5)


@pytest.mark.parametrize("name", ["127.1", "0", "2130706433", "0x7f.1"])
def test_numeric_host_names_are_refused_as_node_addresses(name: str) -> None:
    """On main each passed as a hostname; ssh/curl/getaddrinfo read them as 127.0.0.1 or 0.0.0.0."""
    assert address_problem(name) is not None
