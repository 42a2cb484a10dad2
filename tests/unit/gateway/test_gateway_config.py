"""The gateway's pure planning: which upstreams serve, which hosts are skipped, what gets rendered."""

from __future__ import annotations

import pytest

from meshop.caddy.dns_wire import site_name
from meshop.caddy.render import NO_SITE
from meshop.consul.services import CheckState
from meshop.gateway.config import (
    EMPTYING_HOLD,
    GatewaySettings,
    dynamic_sites,
    emptying_wait,
    hostnames,
    plan_sites,
    render_gateway,
)
from meshop.gateway.daemon import down_nodes
from meshop.model.records import RouteRecord, Upstream


def route(host: str, *upstreams: Upstream, path: str = "/", health: str = "") -> RouteRecord:
    return RouteRecord(host=host, service=host.split(".")[0], path=path, upstreams=upstreams, health_path=health)


N1 = Upstream("n1", "10.0.0.1", 8080, True)
N2 = Upstream("n2", "10.0.0.2", 8080, True)
N3_SICK = Upstream("n3", "10.0.0.3", 8080, False)


@pytest.mark.parametrize(
    ("routes", "live", "domains", "expected"),
    [
        ([route("a.example.com", N1, N2)], set(), (), {"a.example.com": ("10.0.0.1:8080", "10.0.0.2:8080")}),
        ([route("a.example.com", N1, N3_SICK)], set(), (), {"a.example.com": ("10.0.0.1:8080",)}),
        ([route("a.example.com", N1, N2)], {"n1"}, (), {"a.example.com": ("10.0.0.2:8080",)}),
        ([route("a.example.com", N1)], {"n1"}, (), {"a.example.com": ("10.0.0.1:8080",)}),
        ([route("a.example.com", N1, N2)], {"n1", "n2"}, (), {"a.example.com": ("10.0.0.1:8080", "10.0.0.2:8080")}),
        ([route("a.example.com", N3_SICK)], {"n3"}, (), {"a.example.com": ()}),
        ([route("a.example.com", N1, N3_SICK)], {"n1"}, (), {"a.example.com": ("10.0.0.1:8080",)}),
        ([route("a.example.com")], {"n1"}, (), {"a.example.com": ()}),
        (
            [route("a.example.com", N1), route("b.other.org", N2)],
            set(),
            ("example.com",),
            {"a.example.com": ("10.0.0.1:8080",)},
        ),
    ],
    ids=[
        "all-healthy",
        "unhealthy-dropped",
        "down-node-dropped",
        "only-node-down-fails-open",
        "every-agent-down-keeps-all",
        "unhealthy-upstream-never-revived",
        "fail-open-keeps-only-healthy-ones",
        "no-upstream-stays-empty",
        "outside-domains-skipped",
    ],
)
def test_plan_sites(routes, live, domains, expected) -> None:
    plan = plan_sites(routes, live, domains)
    assert {site.host: site.upstreams for site in plan.sites} == expected


def test_fail_open_hosts_are_reported() -> None:
    plan = plan_sites([route("a.example.com", N1), route("b.example.com", N1, N2)], {"n1"}, ())
    assert plan.fail_open == ("a.example.com",)
    assert plan_sites([route("a.example.com", N1)], set(), ()).fail_open == ()


def test_skipped_hosts_are_reported() -> None:
    plan = plan_sites([route("b.other.org", N1)], set(), ("example.com",))
    assert plan.sites == ()
    assert plan.skipped == ("b.other.org",)


def test_down_nodes_from_agent_checks() -> None:
    checks = [
        CheckState("consul", "meshop-agent-n1:ttl", "meshop-agent-n1", "meshop-agent-n1", "passing"),
        CheckState("consul", "meshop-agent-n2:ttl", "meshop-agent-n2", "meshop-agent-n2", "critical"),
        CheckState("consul", "serfHealth", "", "", "passing"),
    ]
    assert down_nodes(checks) == {"n2"}
    assert down_nodes(None) == set()


@pytest.mark.parametrize(
    ("mode", "present", "absent"),
    [
        ("internal", ["\tlocal_certs\n", "\ttls internal\n", "a.example.com {"], ["auto_https", "email"]),
        ("acme", ["\temail ops@example.com\n", "a.example.com {"], ["tls internal", "local_certs"]),
        ("off", ["\tauto_https off\n", "http://a.example.com {"], ["tls internal"]),
    ],
    ids=["internal", "acme", "off"],
)
def test_render_gateway_tls_modes(mode: str, present: list[str], absent: list[str]) -> None:
    settings = GatewaySettings(admin="unix//tmp/gw.sock", tls_mode=mode, email="ops@example.com")
    text, refused = render_gateway(settings, plan_sites([route("a.example.com", N1, health="/healthz")], set(), ()))
    assert refused == []
    for snippet in present:
        assert snippet in text
    for snippet in absent:
        assert snippet not in text
    assert "\thealth_uri /healthz\n" in text
    # every other host on the HTTP port: a 404 saying so, bound like the sites (also with no site at all)
    assert text.endswith(f'http://:80 {{\n\tbind 127.0.0.1\n\trespond "{NO_SITE}" 404\n}}\n')
    assert render_gateway(settings, plan_sites([], set(), ()))[0].endswith(f'\trespond "{NO_SITE}" 404\n}}\n')


def test_a_corrupted_route_is_left_out_and_the_others_still_render() -> None:
    settings = GatewaySettings(admin="unix//tmp/gw.sock")
    bad = RouteRecord(host="evil.example.com {\n}", service="x", upstreams=(N1,))
    text, refused = render_gateway(settings, plan_sites([bad, route("good.example.com", N2)], set(), ()))
    assert "good.example.com {" in text
    assert "evil" not in text
    assert len(refused) == 1 and refused[0].startswith("'evil.example.com {\\n}': not a hostname")


@pytest.mark.parametrize(
    ("upstream", "local", "served"),
    [
        pytest.param(Upstream("evil", "127.0.0.1", 8500, True), False, False, id="loopback-refused-in-a-fleet"),
        pytest.param(Upstream("evil", "127.0.0.1", 8500, True), True, True, id="loopback-ok-in-a-local-cluster"),
        pytest.param(Upstream("evil", "169.254.169.254", 80, True), False, False, id="link-local-metadata"),
        pytest.param(Upstream("evil", "fe80::1%x\n}\nevil.example {", 80, True), True, False, id="zone-injection"),
        pytest.param(Upstream("evil", "10.0.0.9", 70000, True), True, False, id="port-out-of-range"),
        pytest.param(Upstream("v6", "2001:db8::9", 8080, True), False, True, id="ipv6-served-bracketed"),
    ],
)
def test_upstreams_from_node_records_are_checked_again(upstream: Upstream, local: bool, served: bool) -> None:
    plan = plan_sites([route("a.example.com", N1, upstream)], set(), (), local_cluster=local)
    site = plan.sites[0]
    assert "10.0.0.1:8080" in site.upstreams  # the honest node keeps serving either way
    assert (len(site.upstreams) == 2) is served
    assert bool(plan.refused) is not served
    if not served:
        assert repr(upstream.node) in plan.refused[0]
    text, refused = render_gateway(GatewaySettings(admin="unix//tmp/gw.sock"), plan)
    assert refused == [] and "evil.example" not in text
    if upstream.node == "v6":
        assert "[2001:db8::9]:8080" in text


@pytest.mark.parametrize(
    ("served", "planned", "since", "now", "wait"),
    [
        (0, 0, 100.0, 100.0, 0.0),  # nothing served yet: an empty config costs nothing
        (3, 2, 100.0, 100.0, 0.0),  # a plan that still serves sites loads at once
        (3, 0, 100.0, 100.0, EMPTYING_HOLD),  # everything would go: hold the whole time
        (3, 0, 100.0, 103.0, EMPTYING_HOLD - 3.0),
        (3, 0, 100.0, 100.0 + EMPTYING_HOLD, 0.0),  # still empty after the hold: deliberate, load it
        (3, 0, 100.0, 200.0, 0.0),
    ],
    ids=["never-served", "shrinks", "empties-now", "empties-mid-hold", "hold-over", "long-after"],
)
def test_a_plan_that_serves_nothing_waits_for_the_hold(
    served: int, planned: int, since: float, now: float, wait: float
) -> None:
    assert emptying_wait(served, planned, since, now) == pytest.approx(wait)


NAMED = Upstream("named", "app.nodes.example", 8080, True)


@pytest.mark.parametrize(
    ("resolved", "local", "served", "refused"),
    [
        pytest.param({"app.nodes.example": ("10.0.0.7",)}, False, ("10.0.0.7:8080",), 0, id="public-address-served"),
        pytest.param({"app.nodes.example": ("127.0.0.1",)}, False, (), 1, id="resolves-to-loopback-refused"),
        pytest.param({"app.nodes.example": ("127.0.0.1",)}, True, ("127.0.0.1:8080",), 0, id="loopback-ok-locally"),
        pytest.param({"app.nodes.example": ("169.254.169.254",)}, False, (), 1, id="resolves-to-metadata"),
        pytest.param({"app.nodes.example": ("::1", "::ffff:127.0.0.1")}, False, (), 2, id="v6-loopback-and-mapped"),
        pytest.param({"app.nodes.example": ("0.0.0.0",)}, False, (), 1, id="resolves-to-unspecified"),
        pytest.param(
            {"app.nodes.example": ("10.0.0.7", "127.0.0.1")}, False, ("10.0.0.7:8080",), 1, id="mixed-keeps-good-ones"
        ),
        pytest.param({"app.nodes.example": ("2001:db8::7",)}, False, ("[2001:db8::7]:8080",), 0, id="ipv6-bracketed"),
        pytest.param({"app.nodes.example": ()}, False, (), 1, id="resolves-to-nothing"),
        pytest.param({}, False, (), 1, id="not-resolved"),
        pytest.param({"app.nodes.example": ("not-an-ip\n}",)}, True, (), 1, id="garbage-answer"),
    ],
)
def test_hostname_upstreams_are_served_as_their_checked_addresses(resolved, local, served, refused) -> None:
    plan = plan_sites([route("a.example.com", N1, NAMED)], set(), (), local_cluster=local, resolved=resolved)
    assert plan.sites[0].upstreams == tuple(sorted(("10.0.0.1:8080", *served)))  # never the name itself
    assert len(plan.refused) == refused
    assert all("'named'" in r and "app.nodes.example" in r for r in plan.refused)
    text, problems = render_gateway(GatewaySettings(admin="unix//tmp/gw.sock"), plan)
    assert problems == [] and "app.nodes.example" not in text
    assert local or "127.0.0.1:8080" not in text
    dynamic = dynamic_sites(plan, {}, "127.0.0.1:5353")  # served through the upstream DNS like IP upstreams
    assert dynamic.plan.sites[0].dynamic is not None
    assert {f"{a}:{p}" if ":" not in a else f"[{a}]:{p}" for a, p in dynamic.table[site_name("a.example.com")]} == {
        *served,
        "10.0.0.1:8080",
    }


def test_a_down_node_leaves_with_every_address_its_name_resolved_to() -> None:
    resolved = {"app.nodes.example": ("10.0.0.7", "10.0.0.8")}
    plan = plan_sites([route("a.example.com", N1, NAMED)], {"named"}, (), resolved=resolved)
    assert plan.sites[0].upstreams == ("10.0.0.1:8080",)


def test_hostnames_to_resolve() -> None:
    routes = [route("a.example.com", N1, NAMED, Upstream("lo", "localhost", 80, True))]
    assert hostnames(routes) == {"app.nodes.example"}  # localhost is refused before any lookup
    assert hostnames(routes, local_cluster=True) == {"app.nodes.example", "localhost"}
