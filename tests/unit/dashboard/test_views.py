"""The dashboard's pure rendering: hostile text from Consul is shown, never parsed as markup."""

from __future__ import annotations

import html
import html.parser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshop.client.cluster import Leader
from meshop.client.describe import ServiceDescription
from meshop.client.status import NodeRow, ServiceRow, StatusReport
from meshop.dashboard import pages, views
from meshop.dashboard.html import esc, url_part
from meshop.model.records import Condition, Event, RouteRecord, ServiceStatus, Upstream

NOW = 1_800_000_000.0
HOSTILE = "<img src=x onerror=alert(1)>\"'&\u202e\x1b[2J"


class Tags(html.parser.HTMLParser):
    """Every start tag of a document, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(text: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(text)
    return parser.tags


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("web", "web"),
        ("<b>", "&lt;b&gt;"),
        ('a"b', "a&quot;b"),
        ("it's", "it&#x27;s"),
        ("a&b", "a&amp;b"),
        ("\u202eevil", "\\u202eevil"),
        ("\x1b[31m", "\\x1b[31m"),
        ("line\nbreak", "line\nbreak"),  # kept: documents are shown in <pre>
    ],
    ids=["plain", "tag", "double-quote", "single-quote", "ampersand", "bidi-override", "escape", "newline"],
)
def test_esc(raw: str, shown: str) -> None:
    assert esc(raw) == shown


def test_url_part_cannot_leave_its_segment() -> None:
    assert url_part('../a b/"<') == "..%2Fa%20b%2F%22%3C"


def report(**kw: object) -> StatusReport:
    service = ServiceRow(
        name=HOSTILE,
        health="Degraded",
        ready=1,
        desired=2,
        nodes={"n1": 2},
        image=HOSTILE,
        route=HOSTILE,
        reason="RouteConflict",
        message=HOSTILE,
    )
    node = NodeRow(
        name="n1",
        status="Ready",
        ready=True,
        address="10.0.0.1",
        services=("web",),
        last_seen=NOW,
        labels={"zone": HOSTILE},
        message=HOSTILE,
    )
    return StatusReport(NOW, (service,), (node,), Leader("c1", HOSTILE, NOW - 30))


def overview(actions: bool = False) -> str:
    route = RouteRecord(host="web.example.com", service="web", upstreams=(Upstream("n1", "10.0.0.1", 80, True),))
    event = Event(NOW - 5, "Hostile", "service/web", HOSTILE, "agent/n1")
    view = views.Overview(report(), (route,), (event,))
    return views.overview(view, views.Viewer(actions=actions, csrf="tok"))


def test_overview_shows_hostile_text_as_text_only() -> None:
    text = overview()
    assert {tag for tag, _ in tags_of(text)} <= {
        "p",
        "h2",
        "span",
        "div",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "a",
    }
    assert "<img" not in text and "\x1b" not in text and "\u202e" not in text
    assert text.count(esc(HOSTILE)) >= 6  # name, image, route, message, label, event message, leader host
    links = [a["href"] for tag, a in tags_of(text) if tag == "a"]
    assert links == [f"/service/{url_part(HOSTILE)}", "/node/n1", "/service/web"]


@pytest.mark.parametrize(
    ("status", "actions", "links"),
    [
        ("Ready", False, []),
        ("Ready", True, ["/nodes/n1/cordon", "/nodes/n1/drain"]),
        ("Cordoned", True, ["/nodes/n1/uncordon"]),
        ("NotReady,Draining", True, ["/nodes/n1/uncordon"]),
    ],
    ids=["read-only", "ready", "cordoned", "draining"],
)
def test_node_actions_only_when_allowed(status: str, actions: bool, links: list[str]) -> None:
    row = NodeRow(name="n1", status=status, ready=True)
    got = [a["href"] for tag, a in tags_of(views.node_actions(row, views.Viewer(actions=actions))) if tag == "a"]
    assert got == links


@pytest.mark.parametrize(
    ("health", "css"),
    [
        ("Healthy", "ok"),
        ("Degraded", "warn"),
        ("Failed", "bad"),
        ("Pending", "wait"),
        ("Progressing", "wait"),
        (HOSTILE, ""),
    ],
    ids=["healthy", "degraded", "failed", "pending", "progressing", "unknown-word"],
)
def test_health_class_is_a_fixed_word(health: str, css: str) -> None:
    assert views.health_class(health) == css


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (5, "5s"), (119, "119s"), (600, "10m"), (3 * 3600, "3h"), (5 * 86400, "5d")],
    ids=["unknown", "seconds", "under-two-minutes", "minutes", "hours", "days"],
)
def test_age(seconds: float | None, text: str) -> None:
    assert views.age(seconds) == text


def test_service_page_escapes_document_conditions_and_events() -> None:
    status = ServiceStatus.from_dict(
        {
            "name": "x",
            "observedGeneration": 3,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "Unhealthy",
                    "message": HOSTILE,
                    "lastTransitionTime": NOW - 60,
                }
            ],
        }
    )
    desc = ServiceDescription(
        row=report().services[0],
        document={"metadata": {"name": HOSTILE}},
        status=status,
        events=(Event(NOW, "Crashed", "service/x", HOSTILE),),
    )
    text = views.service(desc, NOW)
    assert "<img" not in text and "\u202e" not in text
    assert "Unhealthy" in text and "60s" in text
    assert {tag for tag, _ in tags_of(text)} <= {
        "h2",
        "h3",
        "dl",
        "dt",
        "dd",
        "span",
        "p",
        "div",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "pre",
    }


def test_shell_loads_only_our_script_and_confirm_posts_the_csrf_token() -> None:
    viewer = views.Viewer(actions=True, csrf='"><script>', user=HOSTILE)
    page = pages.confirm("cordon", "node", HOSTILE, viewer)
    found = tags_of(page)
    assert [a for tag, a in found if tag == "script"] == [{"src": "/static/app.js"}]
    (form,) = [a for tag, a in found if tag == "form" and a.get("action", "").startswith("/nodes/")]
    assert form == {"method": "post", "action": f"/nodes/{url_part(HOSTILE)}/cordon".replace("&amp;", "&")}
    assert {"type": "hidden", "name": "csrf", "value": '"><script>'} in [a for tag, a in found if tag == "input"]
    assert "<img" not in page


def test_login_page_offers_password_only_when_configured() -> None:
    names = lambda text: [a.get("name") for tag, a in tags_of(text) if tag == "input"]  # noqa: E731
    assert names(pages.login()) == ["method", "token"]
    assert names(pages.login("wrong password", password=True)) == ["method", "password", "method", "token"]
    assert "Condition" not in pages.login()  # sanity: nothing from the cluster on the login page
    _ = Condition


@pytest.mark.parametrize(
    ("actions", "document", "links"),
    [(False, {"spec": {}}, []), (True, {"spec": {}}, ["/service/web/restart"]), (True, None, [])],
    ids=["read-only", "actions", "deleted"],
)
def test_service_page_offers_restart_only_when_allowed(actions: bool, document: dict | None, links: list[str]) -> None:
    row = ServiceRow(name="web", health="Healthy", ready=1, desired=1)
    desc = ServiceDescription(row=row, document=document, status=None)
    text = views.service(desc, NOW, views.Viewer(actions=actions))
    assert [a["href"] for tag, a in tags_of(text) if tag == "a" and "act" in (a.get("class") or "")] == links


def test_gateways_dns_and_a_consul_problem_are_shown_escaped() -> None:
    from meshop.client.gateways import GatewayRow
    from meshop.model.records import DnsStatus

    gateways = (
        GatewayRow("gw1", "10.0.0.2", "passing", True),
        GatewayRow("gw2", "10.0.0.3", "critical", False, HOSTILE),
    )
    dns = DnsStatus(
        provider="rfc2136",
        zone="example.com",
        mode="gateways",
        gateways=("gw1",),
        names=3,
        last_update=NOW - 30,
        last_change="A web.example.com -> gw1",
        last_error=HOSTILE,
    )
    base = report()
    rep = StatusReport(base.now, base.services, base.nodes, base.leader, gateways, dns)
    text = views.overview(views.Overview(rep, problem=HOSTILE), views.Viewer())
    assert "<img" not in text and "\u202e" not in text
    assert text.startswith(f'<p class="problem bad">Consul: {esc(HOSTILE)} (retrying')
    assert '<span class="badge ok">passing</span>' in text and '<span class="badge bad">critical</span>' in text
    assert "DNS (rfc2136, zone example.com): 3 name(s) → gateways gw1; last update 30s ago" in text
    assert f'<span class="msg">DNS error: {esc(HOSTILE)}</span>' in text


@pytest.mark.parametrize(
    ("dns", "shown"),
    [
        (None, "DNS: not managed"),
        ({"provider": "none"}, "DNS: not managed"),
        (
            {"provider": "rfc2136", "zone": "z", "mode": "direct", "names": 1},
            "1 name(s) → no gateway is healthy: direct to the nodes",
        ),
        (
            {"provider": "rfc2136", "zone": "z", "mode": "gateways", "conflicts": ["a", "b"]},
            "2 name(s) held by records meshop does not own",
        ),
    ],
    ids=["none", "provider-none", "direct", "conflicts"],
)
def test_dns_line(dns: dict | None, shown: str) -> None:
    from meshop.model.records import DnsStatus

    assert shown in views.dns_line(None if dns is None else DnsStatus.from_dict(dns), NOW)


@given(st.text())
def test_esc_never_yields_markup_and_shows_the_text(text: str) -> None:
    shown = esc(text)
    assert tags_of(f"<p>{shown}</p>") == [("p", {})]
    assert tags_of(f"<a title=\"{shown}\" class='{shown}'>x</a>") == [
        ("a", {"title": html.unescape(shown), "class": html.unescape(shown)})
    ]
    visible = html.unescape(shown)
    assert not any(ch in visible for ch in "\x1b\u202e\u200b\x00")  # shown as escapes instead
    if all(ch.isprintable() or ch in "\n\t" for ch in text) and not any("\u200b" <= ch <= "\u206f" for ch in text):
        assert visible == text  # ordinary text comes back unchanged


def test_node_page_lists_its_containers_and_events_escaped() -> None:
    from meshop.model.records import ContainerState, Observed

    container = ContainerState(
        id="c1",
        name=HOSTILE,
        replica=0,
        image=HOSTILE,
        state="running",
        health="passing",
        spec_hash="h",
        phase="Ready",
        restart_count=2,
    )
    observed = {
        "web": Observed(service="web", node="n1", spec_hash="h", generation=1, ready=1, containers=(container,))
    }
    row = report().nodes[0]
    events = (Event(NOW - 3, "Cordoned", "node/n1", HOSTILE, "dashboard"),)
    text = views.node(row, observed, events, NOW, views.Viewer(actions=True))
    assert "<img" not in text and "\u202e" not in text
    found = tags_of(text)
    assert [a["href"] for tag, a in found if tag == "a"] == ["/nodes/n1/cordon", "/nodes/n1/drain", "/service/web"]
    assert '<td data-label="Phase">Ready</td>' in text and '<td data-label="Restarts">2</td>' in text
    assert text.count(esc(HOSTILE)) >= 4  # label, message, container name and image, event message


def test_an_unpublished_dashboard_host_is_said_with_its_reason_as_text() -> None:
    from meshop.client.status import DashboardUnpublished, StatusReport

    hostile = DashboardUnpublished("gw1", "dash.example.com", "NoLogin", '<img src=x onerror="1">', 40.0)
    report = StatusReport(now=100.0, services=(), nodes=(), leader=None, dashboard_unpublished=(hostile,))
    line = views.dashboard_lines(report)
    assert line.startswith('<p class="problem warn">Dashboard dash.example.com not published by gateway gw1 for 60s')
    assert "(NoLogin): &lt;img src=x onerror=&quot;1&quot;&gt;</p>" in line and "<img" not in line
    assert views.dashboard_lines(StatusReport(now=1.0, services=(), nodes=(), leader=None)) == ""
