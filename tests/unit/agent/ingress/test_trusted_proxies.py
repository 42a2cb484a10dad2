"""Whose X-Forwarded-* the node Caddy keeps (issue 24, item 6): this host and the gateways' claimed
addresses, followed as ``gateways/`` changes; never the whole tailnet by default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshop.agent.ingress.node_caddy import CaddyOptions, NodeCaddy
from meshop.agent.ingress.snippets import GATEWAYS, LOCAL_PROXIES, trusted_cidrs
from meshop.consul.kv import Entry, Listing


@pytest.mark.parametrize(
    ("configured", "gateways", "expected"),
    [
        ((*LOCAL_PROXIES, GATEWAYS), (), LOCAL_PROXIES),
        ((*LOCAL_PROXIES, GATEWAYS), ("100.64.0.1", "fd7a::1"), (*LOCAL_PROXIES, "100.64.0.1/32", "fd7a::1/128")),
        ((*LOCAL_PROXIES, GATEWAYS), ("not-an-ip", "127.0.0.1\n}"), LOCAL_PROXIES),
        (("10.0.0.0/8",), ("100.64.0.1",), ("10.0.0.0/8",)),  # explicit CIDRs: exactly those
    ],
)
def test_trusted_cidrs(configured: tuple[str, ...], gateways: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert trusted_cidrs(configured, gateways) == expected


def claims(**addresses: object) -> Listing:
    entries = tuple(Entry(f"gateways/{g}", json.dumps({"address": a}).encode(), 1) for g, a in addresses.items())
    return Listing(1, (*entries, Entry("gateways/broken", b"{not json", 1)))


def test_the_node_caddy_follows_the_gateways_claims(tmp_path: Path) -> None:
    caddy = NodeCaddy(CaddyOptions(ingress_port=8080, directory=tmp_path, upstream_dns=None), "127.0.0.1", "127.0.0.1")
    assert caddy.follows_gateways
    assert caddy.ingress.settings.proxy.trusted_proxies == LOCAL_PROXIES  # no gateway known yet: this host only
    assert caddy.follow_gateways(claims(gw1="100.64.0.1", gw2=["x"]))
    assert caddy.ingress.settings.proxy.trusted_proxies == (*LOCAL_PROXIES, "100.64.0.1/32")
    assert not caddy.follow_gateways(claims(gw1="100.64.0.1"))  # unchanged: nothing to reload
    assert caddy.follow_gateways(Listing(2, ()))  # the gateway withdrew its claim
    assert caddy.ingress.settings.proxy.trusted_proxies == LOCAL_PROXIES


def test_explicit_cidrs_do_not_follow_gateways(tmp_path: Path) -> None:
    options = CaddyOptions(ingress_port=8080, directory=tmp_path, upstream_dns=None, trusted_proxies=("10.0.0.0/8",))
    caddy = NodeCaddy(options, "127.0.0.1", "127.0.0.1")
    assert not caddy.follows_gateways
    caddy.follow_gateways(claims(gw1="100.64.0.1"))
    assert caddy.ingress.settings.proxy.trusted_proxies == ("10.0.0.0/8",)
