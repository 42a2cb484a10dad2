"""Node records and agent registrations as untrusted input for the controller."""

from __future__ import annotations

import pytest

from meshop.consul.services import InstanceHealth
from meshop.model.records import NodeRecord
from meshop.operator.controller import agent_instances, agent_node, catalog_addresses
from meshop.operator.desired import node_address


def instance(service_id: str, node_meta: str | None = None, address: str = "") -> InstanceHealth:
    meta = {} if node_meta is None else {"node": node_meta}
    return InstanceHealth(node="consul-node", service_id=service_id, meta=meta, status="passing", address=address)


@pytest.mark.parametrize(
    ("service_id", "meta", "node"),
    [
        pytest.param("meshop-agent-n1", "n1", "n1", id="the-agent-itself"),
        pytest.param("meshop-agent-n1", None, "n1", id="no-meta-id-speaks"),
        pytest.param("meshop-n1-meshop-agent-0", "n1", None, id="a-replica-of-a-service-named-meshop-agent"),
        pytest.param("meshop-agent-n1", "n2", None, id="meta-and-id-disagree"),
        pytest.param("web-1", "n1", None, id="foreign-instance-with-node-meta"),
        pytest.param("meshop-agent-N1!", None, None, id="not-a-node-name"),
        pytest.param("meshop-agent", None, None, id="bare-service-name"),
    ],
)
def test_only_agents_own_registrations_are_agent_health(service_id: str, meta: str | None, node: str | None) -> None:
    assert agent_node(instance(service_id, meta)) == node


def test_catalog_address_only_when_unambiguous() -> None:
    agents = agent_instances(
        [
            instance("meshop-agent-n1", "n1", "10.0.0.1"),
            instance("meshop-agent-n2", "n2", "10.0.0.2"),
            instance("meshop-agent-n2", "n2", "10.0.0.99"),  # a second registration claiming n2
            instance("meshop-agent-n3", "n3", ""),
        ]
    )
    assert catalog_addresses(agents) == {"n1": "10.0.0.1"}


def record(address: str, ingress: int = 0) -> NodeRecord:
    return NodeRecord(name="n1", address=address, ingress_port=ingress)


@pytest.mark.parametrize(
    ("rec", "catalog", "local", "expected"),
    [
        pytest.param(record("10.0.0.1"), "", False, "10.0.0.1", id="record-address"),
        pytest.param(record("10.0.0.1"), "100.64.0.1", False, "100.64.0.1", id="catalog-preferred"),
        pytest.param(record("127.0.0.1", 8500), "100.64.0.1", False, "100.64.0.1", id="catalog-beats-loopback-claim"),
        pytest.param(record("127.0.0.1", 8500), "", False, "", id="loopback-refused"),
        pytest.param(record("127.0.0.1", 8080), "", True, "127.0.0.1", id="loopback-in-local-cluster"),
        pytest.param(record("10.0.0.1"), "127.0.0.1", False, "10.0.0.1", id="unacceptable-catalog-ignored"),
        pytest.param(record("fe80::1%x\n}\nevil {"), "", True, "", id="zone-injection"),
        pytest.param(record("10.0.0.1", 70000), "", False, "", id="ingress-port-out-of-range"),
        pytest.param(record("10.0.0.1", -1), "10.0.0.2", False, "", id="bad-port-even-with-catalog"),
        pytest.param(None, "10.0.0.2", False, "", id="no-record"),
    ],
)
def test_node_address_trusting_records(rec: NodeRecord | None, catalog: str, local: bool, expected: str) -> None:
    """``--trust-node-records``: a node without an inventory entry keeps the rule from before issue 24."""
    assert node_address("n1", rec, catalog, trust_records=True, local_cluster=local) == expected


INVENTORY = ("100.64.0.11", "fd7a::11")


@pytest.mark.parametrize(
    ("rec", "catalog", "allowed", "expected"),
    [
        pytest.param(record("100.64.0.11"), "", INVENTORY, "100.64.0.11", id="listed-record"),
        pytest.param(record("fd7a::11"), "100.64.0.11", INVENTORY, "fd7a::11", id="record-picks-among-listed"),
        pytest.param(record("100.64.0.99"), "", INVENTORY, "100.64.0.11", id="record-outside-entry-ignored"),
        pytest.param(record("100.64.0.99"), "fd7a::11", INVENTORY, "fd7a::11", id="listed-catalog"),
        pytest.param(record("100.64.0.1"), "100.64.0.1", INVENTORY, "100.64.0.11", id="forged-record-and-catalog"),
        pytest.param(record("127.1"), "0", INVENTORY, "100.64.0.11", id="numeric-names-never-dialled"),
        pytest.param(record("100.64.0.11"), "", None, "", id="no-entry-no-route"),
        pytest.param(record("100.64.0.11"), "100.64.0.11", None, "", id="no-entry-catalog-alone-is-no-proof"),
        pytest.param(record("127.0.0.1"), "", ("127.0.0.1",), "", id="listed-loopback-still-refused"),
        pytest.param(record("100.64.0.11", 70000), "", INVENTORY, "", id="bad-ingress-port"),
    ],
)
def test_node_address_from_the_inventory(
    rec: NodeRecord, catalog: str, allowed: tuple[str, ...] | None, expected: str
) -> None:
    assert node_address("n1", rec, catalog, allowed=allowed) == expected
