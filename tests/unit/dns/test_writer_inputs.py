"""What the DNS writer takes from Consul before it plans records: gateway registrations and routes are
hostile input (a registration by another token, a hand-edited route). Pure functions of the writer."""

from __future__ import annotations

import json

import pytest

from meshop.consul.kv import Entry, Listing
from meshop.consul.services import InstanceHealth
from meshop.dns.targets import Claim, GatewayInstance, claim_value, desired_records, gateway_claims
from meshop.operator.dns import gateway_instances, served_hosts


def gw(service_id: str, address: str = "203.0.113.7", meta_id: str | None = None, status: str = "passing"):
    meta = {} if meta_id is None else {"id": meta_id}
    return InstanceHealth("n", service_id, meta, status, address="198.51.100.1", service_address=address)


@pytest.mark.parametrize(
    ("instance", "found", "why"),
    [
        (gw("meshop-gateway-gw1"), GatewayInstance("gw1", "203.0.113.7", True), ""),
        (gw("meshop-gateway-gw1", status="critical"), GatewayInstance("gw1", "203.0.113.7", False), ""),
        (gw("meshop-gateway-gw1", address=""), GatewayInstance("gw1", "198.51.100.1", True), ""),
        (gw("web-1"), None, "is not a gateway's own"),
        (gw("meshop-gateway-GW_1"), None, "is not a gateway's own"),
        (gw("meshop-gateway-gw1", meta_id="gw2"), None, "is not a gateway's own"),
        (gw("meshop-gateway-gw1", address="127.0.0.1"), None, "loopback"),
        (gw("meshop-gateway-gw1", address="::ffff:127.0.0.1"), None, "loopback"),
        (gw("meshop-gateway-gw1", address="169.254.169.254"), None, "link-local"),
        (gw("meshop-gateway-gw1", address="0.0.0.0"), None, "unspecified"),
        (gw("meshop-gateway-gw1", address="10.0.0.1%eth0"), None, "zone id"),
        (gw("meshop-gateway-evil"), None, "no claim in gateways/"),  # issue 24: no gateway vouched for it
        (gw("meshop-gateway-gw1", address="203.0.113.66"), None, "no claim in gateways/"),  # another address
    ],
    ids=[
        "own",
        "critical-kept-unhealthy",
        "node-address",
        "other-service",
        "bad-label",
        "meta-id-differs",
        "loopback",
        "mapped-loopback",
        "metadata-service",
        "unspecified",
        "zone-id",
        "unclaimed-id",
        "claimed-for-another-address",
    ],
)
def test_only_a_gateways_own_registration_with_a_dialable_address_counts(instance, found, why) -> None:
    advertised = instance.service_address or instance.address
    claims = {"gw1": Claim("203.0.113.7" if advertised == "203.0.113.66" else advertised)}  # gw1 claimed what it shows
    gateways, refused = gateway_instances([instance], claims, local_cluster=False)
    assert gateways == ([found] if found else [])
    assert (why in refused[0]) if why else refused == []


def test_claims_are_read_strictly() -> None:
    entries = [
        ("gateways/gw1", b'{"address": "203.0.113.7"}', None),
        ("gateways/gw2", b'{"address": 7}', None),
        ("gateways/gw3", b"not json", None),
        ("gateways/a/b", b'{"address": "203.0.113.8"}', None),
        ("gateways/GW4", b'{"address": "203.0.113.9"}', None),
        ("other/gw5", b'{"address": "203.0.113.10"}', None),
    ]
    assert gateway_claims(entries, "gateways/") == {"gw1": Claim("203.0.113.7")}


@pytest.mark.parametrize(
    ("value", "session", "live"),
    [
        (claim_value("203.0.113.7", held=True), "s-1", True),  # held by its machine's session
        (claim_value("203.0.113.7", held=True), None, False),  # released: the machine went down
        (claim_value("203.0.113.7", held=True), "", False),
        (claim_value("203.0.113.7"), None, True),  # a plain claim of an older gateway
        ('{"address": "203.0.113.7", "held": "yes"}', None, True),  # only a true "held" asks for a session
    ],
)
def test_a_claim_that_says_held_is_live_only_while_a_session_holds_it(
    value: str, session: str | None, live: bool
) -> None:
    assert gateway_claims([("gateways/gw1", value, session)], "gateways/") == {"gw1": Claim("203.0.113.7", live)}


def test_a_passing_gateway_whose_held_claim_was_released_is_not_healthy() -> None:
    """The rebooted gateway host: serfHealth passes again and the catalog still shows the checks synced
    before the power went, passing; only the released claim says its Caddy does not serve yet."""
    instance = InstanceHealth("gw", "meshop-gateway-gw1", {"id": "gw1"}, "passing", "", "203.0.113.7", "203.0.113.7")
    for live, healthy in ((False, False), (True, True)):
        gateways, refused = gateway_instances([instance], {"gw1": Claim("203.0.113.7", live)}, local_cluster=False)
        assert gateways == [GatewayInstance("gw1", "203.0.113.7", healthy)] and refused == []


def route(key_host: str, host: str, *upstreams: tuple[str, bool]) -> Entry:
    body = {
        "host": host,
        "service": "web",
        "path": "/",
        "upstreams": [{"node": "n", "address": a, "port": 8080, "healthy": h} for a, h in upstreams],
    }
    return Entry(f"routes/{key_host}", json.dumps(body).encode(), 1)


def test_served_hosts_keep_hosts_in_the_gateway_domains_and_dialable_healthy_upstreams() -> None:
    listing = Listing(
        1,
        (
            route("a.apps.example.com", "a.apps.example.com", ("203.0.113.1", True), ("203.0.113.2", False)),
            route("b.apps.example.com", "b.apps.example.com", ("127.0.0.1", True), ("203.0.113.3", True)),
            route("mail.example.com", "mail.example.com", ("203.0.113.4", True)),  # outside the domains
            route("c.apps.example.com", "e.apps.example.com", ("203.0.113.5", True)),  # key and host disagree
            Entry("routes/d.apps.example.com", b"{not json", 1),
            route("*.apps.example.com", "*.apps.example.com", ("203.0.113.6", True)),  # a hand-written wildcard
            route("_x.apps.example.com", "_x.apps.example.com", ("203.0.113.7", True)),
        ),
    )
    hosts = served_hosts(listing, ("apps.example.com",), local_cluster=False)
    assert hosts == {"a.apps.example.com": ["203.0.113.1"], "b.apps.example.com": ["203.0.113.3"]}


def test_direct_mode_names_only_inventory_addresses() -> None:
    """Issue 24: a route naming an address outside its node's inventory entry (a forged record that got
    past the controller, or a routes/ write) never becomes a record; a node without an entry only with
    ``--trust-node-records``."""
    listing = Listing(1, (route("a.apps.example.com", "a.apps.example.com", ("203.0.113.1", True)),))
    for inventory, trust, expected in [
        ({"n": ("203.0.113.1",)}, False, ["203.0.113.1"]),
        ({"n": ("203.0.113.9",)}, False, []),  # the node claimed an address the operator did not list
        ({"n": ("203.0.113.9",)}, True, []),  # an entry wins over the flag
        ({}, False, []),
        ({}, True, ["203.0.113.1"]),
    ]:
        hosts = served_hosts(
            listing, ("apps.example.com",), local_cluster=False, inventory=inventory, trust_records=trust
        )
        assert hosts == {"a.apps.example.com": expected}, (inventory, trust)


def test_the_dashboard_host_points_at_the_gateways_only() -> None:
    """The dashboard host has no route (no service may have it) yet must resolve to the gateways; a route
    record naming it (hand-written) never puts a node's address there."""
    listing = Listing(1, (route("dash.apps.example.com", "dash.apps.example.com", ("203.0.113.1", True)),))
    hosts = served_hosts(listing, ("apps.example.com",), local_cluster=False, dashboard_host="dash.apps.example.com")
    assert hosts == {"dash.apps.example.com": []}
    gateways = [GatewayInstance("g1", "198.51.100.1", True)]
    with_gateway = desired_records(hosts, gateways, zone="example.com.")
    assert with_gateway.records == {"dash.apps.example.com": ("198.51.100.1",)}
    assert desired_records(hosts, [], zone="example.com.").records == {"dash.apps.example.com": ()}
    outside = served_hosts(Listing(1, ()), ("apps.example.com",), local_cluster=False, dashboard_host="dash.other.org")
    assert outside == {}
