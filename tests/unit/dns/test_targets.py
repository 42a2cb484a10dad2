"""Which addresses each name should hold: healthy gateways, else the nodes serving each host."""

from __future__ import annotations

import pytest

from meshop.dns.targets import DIRECT, GATEWAYS, GatewayInstance, desired_records

G1 = GatewayInstance("g1", "192.0.2.1", True)
G2 = GatewayInstance("g2", "2001:db8::2", True)
G1_DOWN = GatewayInstance("g1", "192.0.2.1", False)
G_NAMED = GatewayInstance("g3", "gw.example.com", True)
HOSTS = {"web.example.com": ["10.0.0.1", "10.0.0.2"], "api.example.com": ["10.0.0.2"], "x.other.org": ["10.0.0.3"]}


@pytest.mark.parametrize(
    ("gateways", "wildcard", "records", "mode", "pointed"),
    [
        (
            [G1],
            False,
            {"web.example.com": ("192.0.2.1",), "api.example.com": ("192.0.2.1",)},
            GATEWAYS,
            ("g1",),
        ),
        (
            [G1, G2],
            False,
            {"web.example.com": ("192.0.2.1", "2001:db8::2"), "api.example.com": ("192.0.2.1", "2001:db8::2")},
            GATEWAYS,
            ("g1", "g2"),
        ),
        (
            [G1_DOWN, G2],
            False,
            {"web.example.com": ("2001:db8::2",), "api.example.com": ("2001:db8::2",)},
            GATEWAYS,
            ("g2",),
        ),
        (
            [G1_DOWN],
            False,
            {"web.example.com": ("10.0.0.1", "10.0.0.2"), "api.example.com": ("10.0.0.2",)},
            DIRECT,
            (),
        ),
        ([], False, {"web.example.com": ("10.0.0.1", "10.0.0.2"), "api.example.com": ("10.0.0.2",)}, DIRECT, ()),
        ([G_NAMED], False, {"web.example.com": ("10.0.0.1", "10.0.0.2"), "api.example.com": ("10.0.0.2",)}, DIRECT, ()),
        ([G1], True, {"*.example.com": ("192.0.2.1",)}, GATEWAYS, ("g1",)),
        ([], True, {"*.example.com": ("10.0.0.1", "10.0.0.2")}, DIRECT, ()),
    ],
    ids=[
        "one-gateway",
        "two-gateways-dual-stack",
        "one-down",
        "all-down-direct",
        "none-registered-direct",
        "hostname-gateway-skipped",
        "wildcard",
        "wildcard-direct",
    ],
)
def test_desired_records(gateways, wildcard, records, mode, pointed) -> None:
    targets = desired_records(
        HOSTS, gateways, zone="example.com.", wildcard=wildcard, domains=["example.com", "other.org"]
    )
    assert dict(targets.records) == records
    assert targets.mode == mode
    assert targets.gateways == pointed
    assert any("x.other.org" in s for s in targets.skipped)


def test_bad_node_address_is_skipped_not_published() -> None:
    targets = desired_records({"web.example.com": ["10.0.0.1", "node-1"]}, [], zone="example.com")
    assert dict(targets.records) == {"web.example.com": ("10.0.0.1",)}
    assert targets.skipped == ("web.example.com: node address 'node-1' is not an IP address",)
