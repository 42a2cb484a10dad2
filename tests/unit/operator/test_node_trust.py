"""Node records and agent registrations as untrusted input for the controller."""

from __future__ import annotations

import pytest

from meshop.consul.services import CheckState, InstanceHealth
from meshop.consul.services import agent_instances as services_agent_instances
from meshop.model.agents import agent_node, upgraded_agent_nodes
from meshop.model.records import NodeRecord
from meshop.operator.controller import agent_instances, catalog_addresses
from meshop.operator.desired import node_address


def instance(service_id: str, name: str = "", address: str = "", status: str = "passing") -> InstanceHealth:
    name = name or service_id  # an agent of this release: id and name alike
    return InstanceHealth("consul-node", service_id, {}, status, address=address, service_name=name)


@pytest.mark.parametrize(
    ("service_id", "name", "node"),
    [
        pytest.param("meshop-agent-n1", "meshop-agent-n1", ("n1", False), id="the-agent-itself"),
        pytest.param("meshop-agent-n1", "meshop-agent", ("n1", True), id="an-agent-not-upgraded-yet"),
        pytest.param("meshop-agent-n1", "meshop-agent-n2", None, id="name-of-another-node"),
        pytest.param("meshop-agent-n2", "meshop-agent-n1", None, id="id-of-another-node"),
        pytest.param("meshop-n1-meshop-agent-0", "meshop-agent", None, id="a-replica-of-a-service-named-meshop-agent"),
        pytest.param("web-1", "meshop-agent", None, id="foreign-instance"),
        pytest.param("meshop-agent-N1!", "meshop-agent-N1!", None, id="not-a-node-name"),
        pytest.param("meshop-agent", "meshop-agent", None, id="bare-service-name"),
        pytest.param("meshop-metrics-agent-n1", "meshop-metrics-agent-n1", None, id="the-agent-metrics-name"),
    ],
)
def test_only_agents_own_registrations_are_agent_health(service_id: str, name: str, node: object) -> None:
    assert agent_node(name, service_id) == node


def test_a_per_node_entry_outranks_the_shared_name() -> None:
    """n1 (holding the shared name's grant while its agent is not upgraded) forges a critical
    shared-name entry for n2, whose agent registered ``meshop-agent-n2``: ignored. n3 has only its
    shared-name entry (an older agent): it counts, so a mixed fleet keeps its old nodes."""
    own = instance("meshop-agent-n2")
    forged = instance("meshop-agent-n2", "meshop-agent", status="critical")
    old = instance("meshop-agent-n3", "meshop-agent")
    assert agent_instances([forged, own, old]) == [("n2", own), ("n3", old)]
    assert upgraded_agent_nodes([forged, own, old]) == {"n2"}


def test_catalog_address_only_when_unambiguous() -> None:
    agents = agent_instances(
        [
            instance("meshop-agent-n1", address="10.0.0.1"),
            instance("meshop-agent-n2", address="10.0.0.2"),
            instance("meshop-agent-n2", address="10.0.0.99"),  # a second registration claiming n2
            instance("meshop-agent-n3", address=""),
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


def test_agent_health_is_built_from_every_check_with_the_consul_nodes_own() -> None:
    """One name per node, so agent health comes from ``/v1/health/state/any``: an agent's worst check
    and its Consul node's (a machine gone takes its agent with it), the catalog address of that node;
    a replica's check, another service's or a node check alone is no agent entry."""
    checks = [
        CheckState("c1", "serfHealth", "", "", "passing"),
        CheckState("c1", "meshop-agent-n1:ttl", "meshop-agent-n1", "meshop-agent-n1", "passing"),
        CheckState("c2", "serfHealth", "", "", "critical", "Agent not live"),
        CheckState("c2", "meshop-agent-n2:ttl", "meshop-agent-n2", "meshop-agent-n2", "passing"),
        CheckState("c1", "meshop-n1-web-0:tcp", "meshop-n1-web-0", "web", "critical"),
        CheckState("c1", "forged", "meshop-agent-n2", "web", "critical"),  # n2's id under another name
    ]
    found = agent_instances(services_agent_instances(checks, {"c1": "10.0.0.1", "c2": "10.0.0.2"}))
    assert [(n, i.node, i.status, i.output, i.address) for n, i in found] == [
        ("n1", "c1", "passing", "", "10.0.0.1"),
        ("n2", "c2", "critical", "Agent not live", "10.0.0.2"),
    ]
