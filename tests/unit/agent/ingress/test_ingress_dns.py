"""The node Caddy's upstreams through the agent's upstream DNS: which snippets go dynamic, what the
DNS answers, and that a change of local replicas loads nothing (NodeIngress with a fake admin API and a
real responder on loopback; the real Caddy: tests/integration/routing/test_node_caddy.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshop.agent.ingress.snippets import (
    IngressSettings,
    LocalRoute,
    render_ingress,
    snippet_file,
    static_upstreams,
    upstream_table,
)
from meshop.agent.ingress.sync import NodeIngress
from meshop.caddy.apply import ConfigApplier
from meshop.caddy.dns_wire import site_name
from meshop.caddy.snippet_dir import SnippetDir
from meshop.caddy.upstream_dns import UpstreamDNS
from tests.unit.agent.ingress.test_ingress_sync import FakeAdmin

SETTINGS = IngressSettings(port=8081)
OLD = LocalRoute("web", "web.example.com", "/", (("c1", "127.0.0.1:40000"),))
NEW = LocalRoute("web", "web.example.com", "/", (("c2", "127.0.0.1:40001"),))
NAMED = LocalRoute("api", "api.example.com", "/", (("c3", "node1.tailnet.example:40002"),))


@pytest.mark.parametrize(
    ("route", "pinned", "dynamic", "static"),
    [
        (OLD, {}, True, ("127.0.0.1:40000",)),
        (NEW, {"web": ("127.0.0.1:40000",)}, True, ("127.0.0.1:40000",)),
        (NAMED, {}, False, ("node1.tailnet.example:40002",)),
    ],
    ids=["ip-dynamic", "pinned-static-kept", "hostname-static"],
)
def test_render_with_a_resolver(route: LocalRoute, pinned: dict, dynamic: bool, static: tuple) -> None:
    text = render_ingress({route.service: route}, SETTINGS, resolver="127.0.0.1:5353", pinned=pinned).files[
        snippet_file(route.service)
    ]
    assert ("dynamic srv" in text) is dynamic
    assert static_upstreams(text) == static


def test_without_a_resolver_the_snippet_is_as_before() -> None:
    assert render_ingress({"web": OLD}, SETTINGS) == render_ingress({"web": OLD}, SETTINGS, resolver=None)
    assert "dynamic" not in render_ingress({"web": OLD}, SETTINGS).files[snippet_file("web")]


def test_upstream_table_names_ip_routes_only() -> None:
    assert upstream_table({"web": OLD, "api": NAMED}) == {
        "web": (site_name("web.example.com"), (("127.0.0.1", 40000),))
    }


@pytest.fixture
def ingress(tmp_path: Path) -> Iterator[tuple[NodeIngress, FakeAdmin, UpstreamDNS]]:
    folder = tmp_path / "sites"
    admin = FakeAdmin(folder)
    dns = UpstreamDNS().start()
    node = NodeIngress(
        SETTINGS,
        SnippetDir(folder),
        ConfigApplier(admin, "agent"),
        lambda: "",
        dns=dns,
        refresh=1.0,  # type: ignore[arg-type]
    )
    yield node, admin, dns
    dns.stop()


def test_a_replica_change_publishes_and_loads_nothing(ingress) -> None:
    node, admin, dns = ingress
    node.sync({"web": OLD}, (), now=100.0)
    assert admin.loads == 1
    assert dict(dns.table) == {site_name("web.example.com"): (("127.0.0.1", 40000),)}
    node.sync({"web": NEW}, (), now=101.0)
    assert admin.loads == 1  # the file names the pinned upstream and the DNS name: unchanged
    assert static_upstreams(admin.serving[snippet_file("web")]) == ("127.0.0.1:40000",)
    assert dict(dns.table) == {site_name("web.example.com"): (("127.0.0.1", 40001),)}
    # the new container counts as routed once Caddy's cached answer (1 s) has surely expired
    assert node.gate({"c2": 101.0}) == {"c2": 102.0}


def test_a_kept_service_keeps_its_answer_until_its_containers_are_gone(ingress) -> None:
    node, _, dns = ingress
    node.sync({"web": OLD}, (), now=100.0)
    node.sync({}, {"web"}, now=101.0)  # unassigned, its container still stopping
    assert site_name("web.example.com") in dns.table
    node.sync({}, (), now=102.0)
    assert dict(dns.table) == {}


def test_a_new_site_still_loads(ingress) -> None:
    node, admin, _ = ingress
    node.sync({"web": OLD}, (), now=100.0)
    node.sync({"web": OLD, "api": NAMED}, (), now=101.0)
    assert admin.loads == 2
