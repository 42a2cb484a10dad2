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


def test_one_host_one_service_first_by_name() -> None:
    other = service("aaa", route=RouteSpec("web.example.com", "/other"))
    plain = service("plain")
    routes, conflicts = build_routes({"web": WEB, "aaa": other, "plain": plain}, {}, {}, {})
    assert routes == {"web.example.com": RouteRecord("web.example.com", "aaa", "/other", ())}
    assert conflicts == {"web": "host web.example.com is already routed to service aaa"}


def test_route_record_carries_the_health_path_for_the_gateway_checks() -> None:
    web = service("web", route=RouteSpec("web.example.com", "/", 80, "/healthz"))
    routes, _ = build_routes({"web": web}, {}, {}, {})
    assert routes["web.example.com"].health_path == "/healthz"
