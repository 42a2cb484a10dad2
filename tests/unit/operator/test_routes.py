"""Routes: which upstreams (address, port) each route host gets."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshop.model.records import RouteRecord, Upstream
from meshop.operator.routes import build_routes
from meshop.operator.view import NodeState, RouteSpec
from tests.unit.operator.helpers import assignment, node, observed, service

WEB = service("web", replicas=2, spread=False, route=RouteSpec("web.example.com", "/", 80))
A1, A2 = assignment(WEB, "n1", 2), assignment(WEB, "n2")


@pytest.mark.parametrize(
    ("nodes", "seen", "expected"),
    [
        pytest.param(
            {"n1": node("n1"), "n2": node("n2")},
            {"n1": observed(A1, port=30000), "n2": observed(A2, port=31000)},
            [("n1", "10.0.0.1", 30000), ("n1", "10.0.0.1", 30001), ("n2", "10.0.0.2", 31000)],
            id="each-ready-container-by-its-host-port",
        ),
        pytest.param(
            {"n1": node("n1", ingress_port=8080), "n2": node("n2")},
            {"n1": observed(A1, port=30000), "n2": observed(A2, port=31000)},
            [("n1", "10.0.0.1", 8080), ("n2", "10.0.0.2", 31000)],
            id="node-local-caddy-is-one-upstream-per-node",
        ),
        pytest.param(
            {"n1": node("n1"), "n2": node("n2")},
            {"n1": observed(A1, 1, port=30000), "n2": observed(A2, 0, port=31000)},
            [("n1", "10.0.0.1", 30000)],
            id="unhealthy-containers-are-left-out",
        ),
        pytest.param(
            {"n1": node("n1", NodeState.NOT_READY), "n2": node("n2", NodeState.SUSPECT)},
            {"n1": observed(A1, port=30000), "n2": observed(A2, port=31000)},
            [("n2", "10.0.0.2", 31000)],
            id="not-ready-nodes-are-left-out",
        ),
        pytest.param(
            {"n1": node("n1"), "n2": node("n2")},
            {"n2": observed(A2, port=31000)},
            [("n2", "10.0.0.2", 31000)],
            id="nodes-that-report-nothing-are-left-out",
        ),
        pytest.param(
            {"n1": node("n1", ingress_port=8080), "n2": node("n2", ingress_port=8080)},
            {"n1": observed(A1, 0), "n2": observed(A2, 0)},
            [],
            id="no-ready-replica-no-upstream",
        ),
    ],
)
def test_upstreams(nodes, seen, expected) -> None:  # type: ignore[no-untyped-def]
    routes, conflicts = build_routes({"web": WEB}, {"web": {"n1": A1, "n2": A2}}, {"web": seen}, nodes)
    assert conflicts == {}
    record = routes["web.example.com"]
    assert (record.host, record.service, record.path) == ("web.example.com", "web", "/")
    assert [(u.node, u.address, u.port) for u in record.upstreams] == expected
    assert all(u.healthy for u in record.upstreams)


def test_route_port_selects_the_published_port() -> None:
    api = service("api", route=RouteSpec("api.example.com", "/", 8080))
    a = assignment(api, "n1")
    seen = observed(a)
    seen = replace(seen, containers=(replace(seen.containers[0], host_ports={"80/tcp": 1, "8080/tcp": 40000}),))
    routes, _ = build_routes({"api": api}, {"api": {"n1": a}}, {"api": {"n1": seen}}, {"n1": node("n1")})
    assert routes["api.example.com"].upstreams == (Upstream("n1", "10.0.0.1", 40000, True),)


def claimant(name: str, created: int, host: str = "web.example.com", path: str = "/"):  # type: ignore[no-untyped-def]
    return replace(service(name, route=RouteSpec(host, path)), created=created)


@pytest.mark.parametrize(
    ("claimants", "held_by", "owner"),
    [
        pytest.param([("web", 5), ("aaa", 9)], None, "web", id="no-record-first-created-wins-not-first-by-name"),
        pytest.param([("web", 5), ("aaa", 5)], None, "aaa", id="same-create-index-then-by-name"),
        pytest.param([("web", 0), ("aaa", 3)], None, "aaa", id="unknown-create-index-comes-last"),
        pytest.param([("web", 5), ("aaa", 1)], "web", "web", id="the-record-holder-keeps-it-against-an-older-doc"),
        pytest.param([("web", 5), ("aaa", 9)], "gone", "web", id="record-of-a-deleted-service-is-free-again"),
        pytest.param([("aaa", 9)], "web", "aaa", id="holder-deleted-the-claimant-takes-over"),
    ],
)
def test_a_host_belongs_to_who_claimed_it_first(claimants, held_by, owner) -> None:  # type: ignore[no-untyped-def]
    services = {name: claimant(name, created) for name, created in claimants}
    previous = {"web.example.com": RouteRecord("web.example.com", held_by)} if held_by else {}
    routes, problems = build_routes(services, {}, {}, {}, previous=previous)
    assert routes["web.example.com"].service == owner
    for name in services:
        if name == owner:
            assert name not in problems
        else:
            reason, message = problems[name]
            assert reason == "RouteConflict"
            assert f"belongs to service {owner}" in message


def test_an_owner_that_routes_another_host_releases_its_old_one() -> None:
    services = {"web": claimant("web", 1, host="new.example.com"), "aaa": claimant("aaa", 9)}
    previous = {"web.example.com": RouteRecord("web.example.com", "web")}
    routes, problems = build_routes(services, {}, {}, {}, previous=previous)
    assert {h: r.service for h, r in routes.items()} == {"web.example.com": "aaa", "new.example.com": "web"}
    assert problems == {}


def test_other_services_without_routes_are_untouched() -> None:
    services = {"web": claimant("web", 1), "plain": service("plain")}
    routes, problems = build_routes(services, {}, {}, {})
    assert list(routes) == ["web.example.com"] and problems == {}


@pytest.mark.parametrize(
    ("host", "domains", "outside"),
    [
        pytest.param("web.example.com", (), False, id="no-domains-serves-every-host"),
        pytest.param("web.example.com", ("example.com",), False, id="inside"),
        pytest.param("web.example.org", ("example.com", "corp.net"), True, id="outside"),
        pytest.param("badexample.com", ("example.com",), True, id="suffix-is-not-a-subdomain"),
    ],
)
def test_a_host_outside_the_gateway_domains_is_reported(host, domains, outside) -> None:  # type: ignore[no-untyped-def]
    routes, problems = build_routes({"web": claimant("web", 1, host=host)}, {}, {}, {}, domains=domains)
    assert host in routes  # the record stays: the gateway decides what it serves
    if outside:
        assert problems["web"][0] == "OutsideDomains" and host in problems["web"][1]
    else:
        assert problems == {}


def test_an_out_of_range_host_port_reported_by_an_agent_is_no_upstream() -> None:
    api = service("api", route=RouteSpec("api.example.com", "/", 8080))
    a = assignment(api, "n1")
    seen = observed(a)
    seen = replace(seen, containers=(replace(seen.containers[0], host_ports={"8080/tcp": 70000}),))
    routes, _ = build_routes({"api": api}, {"api": {"n1": a}}, {"api": {"n1": seen}}, {"n1": node("n1")})
    assert routes["api.example.com"].upstreams == ()


def test_route_record_carries_the_health_path_for_the_gateway_checks() -> None:
    web = service("web", route=RouteSpec("web.example.com", "/", 80, "/healthz"))
    routes, _ = build_routes({"web": web}, {}, {}, {})
    assert routes["web.example.com"].health_path == "/healthz"


def test_the_dashboard_host_is_nobodys_route_even_a_record_holders() -> None:
    """The Gateway document's dashboard host wins over every service, the one holding the record too."""
    services = {"phish": claimant("phish", 1, host="dash.example.com"), "web": claimant("web", 2)}
    previous = {"dash.example.com": RouteRecord("dash.example.com", "phish")}
    routes, problems = build_routes(services, {}, {}, {}, previous=previous, reserved="dash.example.com")
    assert list(routes) == ["web.example.com"]
    reason, message = problems["phish"]
    assert reason == "RouteConflict" and "dashboard" in message and "spec.dashboard.host" in message
    assert "web" not in problems
