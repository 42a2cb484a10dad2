"""The DNS writer inside real controllers: only the leader writes, and the next leader carries on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshop.consul.client import make_client
from meshop.consul.services import Services
from meshop.consul.store import KVStore
from meshop.gateway.presence import gateway_registration, presence
from meshop.model import keys
from meshop.operator.controller import Controller, ControllerOptions
from tests.integration.dns.test_writer import FakeGatewayEndpoint, gateway_doc
from tests.support.bind_server import BindServer
from tests.support.procs import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def gateways(role_config) -> Iterator[tuple[Services, list[str], list[FakeGatewayEndpoint]]]:
    config = role_config("gateway")
    services = Services(config, make_client(config))
    ids: list[str] = []
    endpoints: list[FakeGatewayEndpoint] = []
    yield services, ids, endpoints
    for endpoint in endpoints:
        endpoint.kill()
    for service_id in ids:
        services.deregister(service_id)


def test_only_the_leader_writes_and_the_next_one_carries_on(
    store: KVStore, role_config, bind: BindServer, prefix: str, gateways
) -> None:
    services, ids, endpoints = gateways
    store.put(f"{keys.SECRETS}meshop-dns/tsig", bind.secret)
    store.put(
        keys.DESIRED_GATEWAY,
        gateway_doc(bind, prefix, "secrets/meshop-dns/tsig").replace("ttl: 30", "ttl: 30\n    records: wildcard"),
    )

    def add(gid: str, address: str) -> None:
        endpoint = FakeGatewayEndpoint().start()
        target = f"127.0.0.1:{endpoint.port}"
        registration = gateway_registration(gid, address, target, target, interval=0.5)
        kept = presence(services, registration, KVStore(role_config("gateway")))
        kept.ensure()  # register, then hold the claim (the endpoint serves already)
        kept.hold()
        ids.append(f"meshop-gateway-{gid}")
        endpoints.append(endpoint)

    add("g1", "127.0.0.51")
    options = {
        "grace_period": 2.0,
        "lock_delay": 1,
        "check_ttl": 1.0,
        "resync": 30.0,
        "local_cluster": True,
        "trust_node_records": True,
    }
    c1 = Controller(role_config("controller"), ControllerOptions(f"{prefix}-c1", **options)).start()
    c2 = None
    try:
        wait_until(lambda: c1.election.confirmed, 20, what="c1 leads")
        c2 = Controller(role_config("controller"), ControllerOptions(f"{prefix}-c2", **options)).start()
        wait_until(lambda: bind.query("*", "A") == ["127.0.0.51"], 20, what="the leader's writer: *.zone -> g1")
        assert c2.dns.loop.passes > 0 and c2.dns.status.mode == ""  # the standby's writer ran, did nothing
        c1.stop()
        wait_until(lambda: c2.election.confirmed, 20, what="c2 takes over")
        add("g2", "127.0.0.52")
        wait_until(lambda: bind.query("*", "A") == ["127.0.0.51", "127.0.0.52"], 20, what="the new leader writes")
    finally:
        c1.stop()
        if c2 is not None:
            c2.stop()
