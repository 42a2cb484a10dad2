"""Issue 14 on a real fleet: two gateways in namespaces of their own, BIND9 on the gateway, the DNS writer
in the leading controller. A gateway whose machine loses power takes its own Consul agent (the one
running its checks) with it: only Consul's failure detection of that machine (serfHealth) can take it
out of DNS, which no loopback test can show. How long the switch takes, and the failed requests, are
measured by benchmarks/fleet_gateway_failover.py, not asserted here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

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
