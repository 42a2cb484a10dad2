"""Issue 24 item 1: one node must not become the fleet's front door through Consul service names.

Before, ``acl sync`` turned what a node reports in its own ``observed/<node>/`` into service-registration
rights and did not filter ``meshop-*``: with only its agent token a node registered
``meshop-gateway-evil`` and the leader's DNS writer pointed every managed name at it. Now agent rights
come from ``assignments/<node>/`` (the controller's) only, never a ``meshop-*`` name; and the readers
check again whatever Consul says: the DNS writer follows a gateway registration only with a claim
(``gateways/<id>``) that only the gateway role can write, and a replica's Consul check counts only from
the Consul node the meshop node's agent is registered on.

Real default-deny Consul; the forged registrations of the reader tests are made with the master token,
as if ACLs were misconfigured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import requests

from meshop.consul.client import make_client
from meshop.consul.services import CheckSpec, Registration, Services
from meshop.consul.store import KVStore
from meshop.errors import ConsulAccessDenied
from meshop.gateway.presence import gateway_registration
from meshop.model import keys
from meshop.operator import replicas
from meshop.operator.controller import agent_instances
from meshop.operator.routes import upstreams
from meshop.operator.view import NodeState, RouteSpec
from tests.integration.dns.conftest import bind  # noqa: F401 - fixture
from tests.integration.dns.test_writer import FakeGatewayEndpoint, add_gateway, cluster, expect, records  # noqa: F401
from tests.support import acl
from tests.support.bind_server import BindServer
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until
from tests.unit.operator.helpers import assignment, node, observed, service


def denied(call: Callable[[], object]) -> None:
    with pytest.raises(ConsulAccessDenied):
        call()


@pytest.fixture
def agent_services(consul_server: ConsulServer, prefix: str) -> Callable[[str], Services]:
    def make(name: str) -> Services:
        config = acl.config_for(consul_server.addr, prefix, "agent", name)
        return Services(config, make_client(config))

    return make


def test_an_agent_token_registers_no_meshop_name_and_no_unassigned_service(
    store: KVStore, consul_server: ConsulServer, prefix: str, agent_services
) -> None:
    n1 = f"{prefix}-n1"
    services = agent_services(n1)
    web, db = f"{prefix}-web", f"{prefix}-db"
    store.put(keys.assignment(n1, web), "{}")
    store.put(keys.assignment(n1, "meshop-gateway"), "{}")  # even the controller's word grants no meshop-* name
    for reported in ("meshop-gateway", "meshop-controller", "meshop-metrics", db):  # n1's own word
        store.put(keys.observed(n1, reported), "{}")
    roles = acl.roles(consul_server.addr, prefix)
    assert roles is not None
    roles.sync()
    evil = Registration("meshop-gateway-evil", "meshop-gateway", "203.0.113.66", 443, meta={"id": "evil"})
    denied(lambda: services.register(evil))  # on main: accepted, and DNS pointed at 203.0.113.66
    denied(lambda: services.register(Registration("meshop-controller-x", "meshop-controller", "203.0.113.66", 9)))
    denied(lambda: services.register(Registration(f"meshop-{n1}-{db}-0", db, "127.0.0.1", 2)))  # never assigned
    own = Registration(f"meshop-{n1}-{web}-0", web, "127.0.0.1", 2, meta={"node": n1})
    services.register(own)  # what is assigned to it still works
    services.deregister(own.service_id)


def test_a_moved_service_stays_deregistrable_while_the_node_runs_it(
    store: KVStore, consul_server: ConsulServer, prefix: str, agent_services
) -> None:
    n1, web = f"{prefix}-n1", f"{prefix}-web"
    services = agent_services(n1)
    roles = acl.roles(consul_server.addr, prefix)
    assert roles is not None
    store.put(keys.observed(n1, web), "{}")  # reported first: no sync (the watch runs too) sees it unreported
    store.put(keys.assignment(n1, web), "{}")
    roles.sync()
    replica = Registration(f"meshop-{n1}-{web}-0", web, "127.0.0.1", 2, meta={"node": n1})
    services.register(replica)
    store.delete(keys.assignment(n1, web))  # moved away; n1 still reports it running
    roles.sync()
    services.deregister(replica.service_id)  # granted before, still running: kept
    store.delete(keys.observed(n1, web))
    roles.sync()
    denied(lambda: services.register(replica))  # gone from both: the right went with it


def test_the_dns_writer_ignores_a_forged_gateway_registration(
    cluster: dict,  # noqa: F811 - fixture
    bind: BindServer,  # noqa: F811 - fixture
    consul_config,
    caplog,
) -> None:
    g1 = add_gateway(cluster, "g1", "127.0.0.21")  # the real one: claim (gateway token), then registration
    expect(bind, {"web": ["127.0.0.21"], "api": ["127.0.0.21"]}, "the real gateway")
    master = Services(consul_config, make_client(consul_config))
    endpoint = FakeGatewayEndpoint().start()  # its checks pass: a healthy forgery
    target = f"127.0.0.1:{endpoint.port}"
    forged = gateway_registration("evil", "127.0.0.66", target, target, interval=0.5)
    caplog.set_level(logging.WARNING, logger="meshop")
    master.register(forged)
    try:
        wait_until(
            lambda: "127.0.0.66" in str(records(bind)) or "gateway evil: no claim" in caplog.text,
            timeout=20,
            what="the writer's pass over the forged registration",
        )
        assert records(bind) == {"web": ["127.0.0.21"], "api": ["127.0.0.21"]}  # on main: 127.0.0.66 added
    finally:
        master.deregister(forged.service_id)
        endpoint.kill()
        g1.kill()


def test_routes_ignore_replica_checks_registered_from_another_consul_node(
    consul_server: ConsulServer, consul_config, role_config, prefix: str
) -> None:
    """n1 (its own Consul agent: Consul node ``evil-host``) registers a failing check for n2's replica;
    n2's agent, Suspect for a moment, must not lose its route over it."""
    n2, web_name = f"{prefix}-n2", f"{prefix}-web"
    master = Services(consul_config, make_client(consul_config))
    beat = CheckSpec(f"meshop-agent-{n2}:ttl", "heartbeat", ttl="600s", initial_status="passing")
    agent = Registration(f"meshop-agent-{n2}", f"meshop-agent-{n2}", "127.0.0.1", 1, meta={"node": n2}, checks=(beat,))
    master.register(agent)  # n2's own agent, on the session's Consul node
    forged = {
        "Node": f"{prefix}-evil-host",
        "Address": "127.0.0.77",
        "Service": {"ID": f"meshop-{n2}-{web_name}-0", "Service": web_name, "Address": "127.0.0.77", "Port": 80},
        "Check": {
            "CheckID": "forged",
            "Name": "forged",
            "Status": "critical",
            "ServiceID": f"meshop-{n2}-{web_name}-0",
        },
    }
    put = requests.put(
        f"http://{consul_server.addr}/v1/catalog/register",
        json=forged,
        headers=acl.auth_headers(consul_server.addr),
        timeout=5,
    )
    assert put.status_code == 200, put.text
    try:
        controller = Services(role_config("controller"), make_client(role_config("controller")))
        checks = wait_until(
            lambda: [c for c in controller.all_checks()[1] if c.service_name == web_name] or None,
            timeout=5,
            what="the forged check in Consul",
        )
        hosts = {name: inst.node for name, inst in agent_instances(controller.agents()[1])}
        assert hosts.get(n2), "n2's agent registration"
        health = replicas.replica_health(checks, hosts)
        web = service(web_name, route=RouteSpec("web.example.com", "/", 80))
        seen = {n2: observed(assignment(web, n2), port=31000)}
        found, _ = upstreams(
            web, {n2: assignment(web, n2)}, seen, {n2: node(n2, NodeState.SUSPECT, address="10.0.0.2")}, health
        )
        assert [u.node for u in found] == [n2]  # on main: [] (the forged critical check dropped n2)
    finally:
        master.deregister(agent.service_id)
        requests.put(
            f"http://{consul_server.addr}/v1/catalog/deregister",
            json={"Node": f"{prefix}-evil-host"},
            headers=acl.auth_headers(consul_server.addr),
            timeout=5,
        )
