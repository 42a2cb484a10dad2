"""Issue 14 on a real fleet: two gateways in namespaces of their own, BIND9 on the gateway, the DNS writer
in the leading controller. A gateway whose machine loses power takes its own Consul agent (the one
running its checks) with it: only Consul's failure detection of that machine (serfHealth) can take it
out of DNS, which no loopback test can show. How long the switch takes, and the failed requests, are
measured by benchmarks/fleet_gateway_failover.py, not asserted here.

The fleet runs with default-deny ACLs and per-role tokens (tests/support/fleet.py), so the attack of
issue 24 item 1 is tried here as a compromised node would: with n1's own agent token, on n1's own Consul
agent.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
from collections.abc import Callable, Iterator

import pytest

from tests.support.fleet import DNS_ZONE, GATEWAY_PORT, Fleet, http_get, scratch_fleet, service_doc, wait_for

pytestmark = pytest.mark.slow

HOST = f"web.{DNS_ZONE}"


@pytest.fixture(scope="module")
def dns_fleet() -> Iterator[Fleet]:
    if os.geteuid() != 0:
        pytest.skip("the fleet needs root (network namespaces, its own Docker engines)")
    with scratch_fleet("mfdns-", nodes=1, gateways=2, dns=True) as fleet:
        yield fleet


def status_of(call: Callable[[], object]) -> int:
    """The HTTP status ``call`` (a Consul PUT) got: 200 when it went through."""
    try:
        call()
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


def test_a_node_token_registers_no_gateway_and_writes_no_other_node(dns_fleet: Fleet) -> None:
    """n1's agent token, on n1's Consul agent: a ``meshop-gateway`` registration at n1's address (under
    its own name and under the gateways' service name) and a PUT into ``observed/n2/`` are refused (403),
    and BIND's answer for the routed name stays what the real gateways make it."""
    fleet, n1 = dns_fleet, dns_fleet.node("n1")
    fleet.apply(service_doc("web", 1, HOST))
    wait_for(lambda: fleet.service_ready("web", 1), 90, "web Ready", interval=0.25)
    gateways = sorted(m.addr for m in fleet.gateway_members)
    wait_for(lambda: fleet.dns_query(HOST) == gateways, 60, f"{HOST} -> both gateways")
    token = fleet.token_file("agent", "n1").read_text().strip()
    at = f"{n1.addr}:8500"
    for name in ("meshop-gateway-x", "meshop-gateway"):
        forged = json.dumps({"ID": "meshop-gateway-x", "Name": name, "Address": n1.addr, "Port": 80})
        assert status_of(lambda f=forged: fleet.consul_put("/v1/agent/service/register", f, at, token)) == 403, name
    observed = f"/v1/kv/{fleet.prefix}/observed/n2/web"
    assert status_of(lambda: fleet.consul_put(observed, "{}", at, token)) == 403
    assert fleet.kv("observed/n2/web") is None
    catalog = fleet.consul_get("/v1/catalog/services")
    assert "meshop-gateway-x" not in catalog
    assert {e["ServiceAddress"] for e in fleet.consul_get("/v1/catalog/service/meshop-gateway")} == set(gateways)
    deadline = time.monotonic() + fleet.dns_ttl  # a window: the writer follows the catalog within a second
    while time.monotonic() < deadline:
        assert fleet.dns_query(HOST) == gateways
        time.sleep(0.5)


def test_powered_off_gateway_leaves_dns_and_the_other_serves(dns_fleet: Fleet) -> None:
    fleet, gw, g2 = dns_fleet, dns_fleet.gateway, dns_fleet.gateway2
    fleet.apply(service_doc("web", 1, HOST))
    wait_for(lambda: fleet.service_ready("web", 1), 90, "web Ready", interval=0.25)
    wait_for(lambda: fleet.dns_query(HOST) == sorted([gw.addr, g2.addr]), 60, f"{HOST} -> both gateways")
    for member in (gw, g2):  # each address DNS holds answers for the host
        assert http_get(member.addr, GATEWAY_PORT, HOST, "/", 2)[0] == 200

    fleet.power_off("g2")  # its gateway, Caddy and Consul agent (which ran its checks) die at once

    wait_for(lambda: fleet.dns_query(HOST) == [gw.addr], 30, "g2 withdrawn by its machine's serfHealth", 0.1)
    assert http_get(gw.addr, GATEWAY_PORT, HOST, "/", 2)[0] == 200
    assert http_get(g2.addr, GATEWAY_PORT, HOST, "/", 1)[0] == 0  # really gone: the record followed a dead host
    wait_for(lambda: (fleet.kv("status/dns") or {}).get("gateways") == ["gw"], 10, "status/dns: only gw")
    status = fleet.kv("status/dns")
    assert (status["mode"], status["lastError"]) == ("gateways", ""), status
