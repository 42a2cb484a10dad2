"""The gateway's dashboard host: the verdict on the dashboard's answer, the site it renders, and the host
no route may take. Pure (the check's thread is driven with a stand-in asker; the real one is in
tests/integration/dashboard/test_dashboard_gateway.py)."""

from __future__ import annotations

import threading

import pytest

from meshop.caddy.render import UnsafeValue, render_site
from meshop.gateway.config import GatewaySettings, plan_sites, render_gateway
from meshop.gateway.dashboard import NOT_CHECKED, DashboardCheck, Verdict, dashboard_site, judge
from meshop.model.gateway import GatewayDashboard
from meshop.model.records import RouteRecord, Upstream
from tests.support.procs import wait_until

DASH = GatewayDashboard("dashboard.example.com", "127.0.0.1:8080")


@pytest.mark.parametrize(
    ("status", "published", "reason"),
    [
        (401, True, "LoginRequired"),
        (200, False, "NoLogin"),
        (303, False, "NoLogin"),
        (403, False, "NoLogin"),
        (421, False, "HostRefused"),
        (None, False, "Unreachable"),
        (500, False, "Unexpected"),
        (404, False, "Unexpected"),
    ],
)
def test_only_a_dashboard_that_refuses_an_anonymous_request_is_published(
    status: int | None, published: bool, reason: str
) -> None:
    verdict = judge(status, DASH, "ConnectionRefusedError")
    assert (verdict.published, verdict.reason) == (published, reason)
    assert DASH.upstream in verdict.message


def test_the_site_proxies_once_published_and_answers_a_fixed_503_otherwise() -> None:
    served = render_site(
        dashboard_site(DASH, judge(401, DASH)),
        scheme="https",
        bind=(),
        tls="internal",
        proxy=GatewaySettings("x").proxy,
    )
    assert "dashboard.example.com {" in served and "reverse_proxy 127.0.0.1:8080 {" in served
    assert "transport http {\n\t\t\t\tkeepalive off\n\t\t\t}" in served  # no pooled connection for a sign-in POST
    for verdict in (judge(200, DASH), judge(None, DASH, "x"), NOT_CHECKED):
        text = render_site(
            dashboard_site(DASH, verdict), scheme="https", bind=(), tls="internal", proxy=GatewaySettings("x").proxy
        )
        assert "reverse_proxy" not in text
        assert f'respond "meshop: the dashboard is not published ({verdict.reason}); see meshop status" 503' in text


@pytest.mark.parametrize("text", ['a" 200\n}', "x{", "new\nline", ""])
def test_a_503_text_with_caddyfile_syntax_is_refused(text: str) -> None:
    from meshop.caddy.render import Site

    with pytest.raises(UnsafeValue):
        render_site(
            Site("a.example.com", "/", (), unavailable=text),
            scheme="https",
            bind=(),
            tls=None,
            proxy=GatewaySettings("x").proxy,
        )


def test_a_route_claiming_the_dashboard_host_is_left_out() -> None:
    up = Upstream("n1", "10.0.0.1", 8080, True)
    routes = [
        RouteRecord(DASH.host, "phish", "/", (up,)),
        RouteRecord(DASH.host, "phish", "/login", (up,)),
        RouteRecord("web.example.com", "web", "/", (up,)),
    ]
    plan = plan_sites(routes, set(), ("example.com",), reserved=frozenset({DASH.host}))
    assert [s.host for s in plan.sites] == ["web.example.com"]
    assert plan.taken == (DASH.host, DASH.host)
    settings = GatewaySettings("127.0.0.1:2019", tls_mode="internal", dashboard=DASH)
    text, refused = render_gateway(settings, plan, dashboard_site(DASH, judge(401, DASH)))
    assert refused == [] and text.count("dashboard.example.com {") == 1
    assert "10.0.0.1:8080" in text.split("dashboard.example.com {")[0]  # web's site, before the dashboard's
    assert "10.0.0.1" not in text.split("dashboard.example.com {")[1]


def test_the_dashboard_is_never_rendered_without_tls() -> None:
    settings = GatewaySettings("127.0.0.1:2019", tls_mode="off", dashboard=DASH)
    text, _ = render_gateway(settings, plan_sites([], set(), ()), dashboard_site(DASH, judge(401, DASH)))
    assert "dashboard.example.com" not in text


def test_the_check_asks_a_new_target_at_once_and_reports_changes() -> None:
    answers = {"a.example.com": judge(401, GatewayDashboard("a.example.com"))}
    asked: list[str] = []
    changed = threading.Event()

    def asker(target: GatewayDashboard) -> Verdict:
        asked.append(target.host)
        return answers.get(target.host, judge(200, target))

    check = DashboardCheck(changed.set, interval=60.0, asker=asker)
    check.start()
    try:
        first = GatewayDashboard("a.example.com")
        assert check.verdict(first) == NOT_CHECKED  # not asked yet: not published
        wait_until(changed.is_set, 5, what="the first answer")
        assert check.verdict(first).published
        changed.clear()
        other = GatewayDashboard("b.example.com")
        assert check.verdict(other) == NOT_CHECKED  # a new target starts unpublished, whatever came before
        wait_until(changed.is_set, 5, what="the new target's answer")
        assert check.verdict(other).reason == "NoLogin"
        assert asked == ["a.example.com", "b.example.com"]  # asked once each: the interval is a minute
    finally:
        check.stop()
