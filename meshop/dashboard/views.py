"""The dashboard's live fragments: the fleet overview and one service, as HTML from plain data. Pure.

Every string that came from Consul passes ``esc``; CSS classes and links are built only from fixed
words (health, node status) or percent-encoded names. The same rows as ``meshop status`` (``client.status``)
and ``meshop describe`` (``client.describe``) are shown, so the page and the CLI never disagree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import yaml

from meshop.client.describe import ServiceDescription
from meshop.client.formats import age, labels, placement
from meshop.client.gateways import GatewayRow
from meshop.client.status import CONVERGING, NodeRow, ServiceRow, StatusReport
from meshop.client.usage import NodeUsage, cpu_text, human_bytes, human_rate, node_rows, percent, service_rows
from meshop.dashboard.charts import sparkline
from meshop.dashboard.history import Point, UsageHistory
from meshop.dashboard.html import esc, tag, url_part
from meshop.model.records import DnsStatus, Event, Observed, RouteRecord

HEALTH_CLASS = {"Healthy": "ok", "Degraded": "warn", "Failed": "bad"}
NODE_CLASS = {"Ready": "ok", "Cordoned": "warn", "Draining": "warn"}
EVENTS_SHOWN = 25


@dataclass(frozen=True)
class Overview:
    """What the overview shows, all read at ``report.now``."""

    report: StatusReport
    routes: tuple[RouteRecord, ...] = ()
    events: tuple[Event, ...] = ()
    problem: str = ""  # Consul cannot be read right now: what is shown is the last answer
    usage: Mapping[str, NodeUsage] = field(default_factory=dict)  # the agents' usage/<node> records, checked
    history: UsageHistory | None = None  # the last hour of them, for the charts


@dataclass(frozen=True)
class Viewer:
    """Who looks: whether the page offers actions, and the CSRF token its forms carry."""

    actions: bool = False
    csrf: str = ""
    user: str = ""


def clock(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def health_class(health: str) -> str:
    return HEALTH_CLASS.get(health, "wait" if health in CONVERGING else "")


def node_class(status: str) -> str:
    return NODE_CLASS.get(status, "bad" if status.startswith("NotReady") or "Held" in status else "")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table whose cells are already HTML; each cell carries its header (the phone layout shows it)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td data-label="{esc(h)}">{c}</td>' for h, c in zip(headers, row, strict=True)) + "</tr>"
        for row in rows
    )
    attr = f' class="{cls}"' if cls else ""
    return f'<div class="scroll"><table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def message(row: ServiceRow) -> str:
    return f"{row.reason}: {row.message}" if row.reason and row.message else row.reason or row.message


def service_cells(row: ServiceRow, now: float) -> list[str]:
    return [
        f'<a href="/service/{url_part(row.name)}">{esc(row.name)}</a>',
        esc(f"{row.ready}/{row.desired}"),
        esc(placement(row.nodes)),
        esc(row.image or "-"),
        esc(row.route or "-"),
        tag("span", row.health, f"badge {health_class(row.health)}".strip()),
        esc(age(now - row.created_at) if row.created_at else "-"),
        tag("span", message(row), "msg"),
    ]


def node_actions(row: NodeRow, viewer: Viewer) -> str:
    if not viewer.actions:
        return ""
    modes = ["uncordon"] if ("Cordoned" in row.status or "Draining" in row.status) else ["cordon", "drain"]
    return " ".join(f'<a class="act" href="/nodes/{url_part(row.name)}/{m}">{m}</a>' for m in modes)


def node_cells(row: NodeRow, now: float, viewer: Viewer) -> list[str]:
    seen = (
        "now"
        if row.ready and row.last_seen is not None and now - row.last_seen < 1
        else age(None if row.last_seen is None else now - row.last_seen)
    )
    cells = [
        f'<a href="/node/{url_part(row.name)}">{esc(row.name)}</a>',
        esc(row.address or "-"),
        tag("span", row.status, f"badge {node_class(row.status)}".strip()),
        esc(", ".join(row.services) or "-"),
        esc(seen),
        esc(labels(row.labels)),
        tag("span", row.message, "msg"),
    ]
    return [*cells, node_actions(row, viewer)] if viewer.actions else cells


SERVICE_HEADERS = ("Name", "Ready", "Nodes", "Image", "Route", "Health", "Age", "Message")
NODE_HEADERS = ("Name", "Address", "Status", "Services", "Last seen", "Labels", "Message")


def leader_line(report: StatusReport) -> str:
    if report.leader is None:
        return '<p class="leader bad">No controller is leading: statuses may be stale.</p>'
    lead = report.leader
    host = f" on {lead.host}" if lead.host else ""
    since = f" for {age(report.now - lead.since)}" if lead.since else ""
    return f'<p class="leader">Controller {esc(lead.controller_id + host)} leads{esc(since)}.</p>'


def control_plane_line(report: StatusReport) -> str:
    """As ``meshop status``: only when losing one Consul server would stop failover, or nothing leads."""
    plane = report.control_plane
    if plane is None or not plane.problem:
        return ""
    return f'<p class="leader {"bad" if not plane.quorum else "warn"}">Control plane: {esc(plane.problem)}</p>'


def route_cells(route: RouteRecord) -> list[str]:
    healthy = sum(1 for u in route.upstreams if u.healthy)
    ups = ", ".join(f"{u.node} {u.address}:{u.port}{'' if u.healthy else ' (down)'}" for u in route.upstreams)
    return [
        esc(route.host + route.path),
        f'<a href="/service/{url_part(route.service)}">{esc(route.service)}</a>',
        esc(f"{healthy}/{len(route.upstreams)}"),
        esc(ups or "-"),
    ]


def event_rows(events: Sequence[Event], now: float) -> list[list[str]]:
    return [
        [esc(age(now - e.time)), esc(e.kind), esc(e.object), esc(e.component), tag("span", e.message, "msg")]
        for e in reversed(events[-EVENTS_SHOWN:])
    ]


def gateway_cells(row: GatewayRow) -> list[str]:
    css = "ok" if row.health == "passing" else "bad"
    return [
        esc(row.gateway_id),
        esc(row.address or "-"),
        tag("span", row.health, f"badge {css}"),
        esc("yes" if row.in_dns else "no"),
        tag("span", row.output, "msg"),
    ]


def dns_line(dns: DnsStatus | None, now: float) -> str:
    """Where the DNS writer points the records and how its last update went (as ``meshop status``)."""
    if dns is None or dns.provider == "none":
        return '<p class="empty">DNS: not managed (the Gateway document has no dns provider).</p>'
    if dns.mode == "direct":
        target = "no gateway is healthy: direct to the nodes serving each host"
    else:
        target = "gateways " + (", ".join(dns.gateways) or "none")
    text = f"DNS ({dns.provider}, zone {dns.zone}): {dns.names} name(s) → {target}"
    if dns.last_update:
        text += f"; last update {age(now - dns.last_update)} ago: {dns.last_change}"
    if dns.conflicts:
        text += f"; {len(dns.conflicts)} name(s) held by records meshop does not own"
    css = "bad" if dns.last_error else "warn" if dns.mode == "direct" else ""
    error = f'<br><span class="msg">DNS error: {esc(dns.last_error)}</span>' if dns.last_error else ""
    return f'<p class="dns {css}">{esc(text)}{error}</p>'


CHART_WINDOW = 3600.0


MIN_SPAN = 120.0  # a history younger than this is drawn over this span, so a new cluster's points spread out


def _charts(points: tuple[Point, ...], now: float, name: str, memory_top: float = 0.0) -> tuple[str, str]:
    """CPU and memory from the oldest point kept (at most an hour ago) to now: a series whose agent
    stopped ends before the right edge."""
    start = max(now - CHART_WINDOW, min((p.t for p in points), default=now))
    start = min(start, now - MIN_SPAN)
    cpu = sparkline([(p.t, p.cpu) for p in points], start, now, f"CPU of {name}, last hour")
    memory = sparkline([(p.t, p.memory) for p in points], start, now, f"Memory of {name}, last hour", memory_top)
    return cpu, memory


def _sampled(row_age: float, stale: bool) -> str:
    text = age(max(row_age, 0.0))
    return tag("span", f"stale: {text} ago", "stale") if stale else esc(f"{text} ago")


def usage_section(view: Overview) -> str:
    """Usage per node and per service (``meshop top``'s rows) with the last hour as sparklines."""
    now = view.report.now
    if not view.usage:
        return '<h2>Usage</h2><p class="empty">No usage yet: agents write it every 10-30 s.</p>'
    history = view.history or UsageHistory()
    node_table = []
    for r in node_rows(view.usage):
        cpu, memory = _charts(history.node(r.node), now, r.node, float(r.memory_total))
        node_table.append(
            [
                f'<a href="/node/{url_part(r.node)}">{esc(r.node)}</a>',
                esc(f"{cpu_text(r.cpu)} ({percent(r.cpu, 100.0 * r.cpus)})"),
                esc(f"{human_bytes(r.memory)} ({percent(r.memory, r.memory_total)})"),
                esc(f"{r.load1:.2f}"),
                _sampled(r.age, r.stale),
                cpu,
                memory,
            ]
        )
    service_table = []
    for s in service_rows(view.usage):
        cpu, memory = _charts(history.service(s.service), now, s.service, float(s.memory_limit))
        service_table.append(
            [
                f'<a href="/service/{url_part(s.service)}">{esc(s.service)}</a>',
                esc(s.replicas),
                esc(cpu_text(s.cpu)),
                esc(f"{human_bytes(s.memory)} ({percent(s.memory, s.memory_limit)})"),
                esc(f"{human_rate(s.rx)} / {human_rate(s.tx)}"),
                tag("span", "stale", "stale") if s.stale else esc("-"),
                cpu,
                memory,
            ]
        )
    return "\n".join(
        [
            '<h2>Usage <span class="count">last hour</span></h2>',
            table(("Node", "CPU", "Memory", "Load", "Sampled", "CPU, 1 h", "Memory, 1 h"), node_table, "usage-nodes"),
            table(
                ("Service", "Replicas", "CPU", "Memory", "Net rx / tx", "Stale", "CPU, 1 h", "Memory, 1 h"),
                service_table,
                "usage-services",
            )
            if service_table
            else '<p class="empty">No replica is running.</p>',
        ]
    )


def caddy_lines(report: StatusReport) -> str:
    """As ``meshop status``: one line per Caddy (gateway or node) that refused its config."""
    return "".join(
        f'<p class="problem bad">Caddy of {esc(r.kind)} {esc(r.name)} refused its config for '
        f"{esc(age(report.now - r.since))} (the previous one serves): {esc(r.message)}</p>"
        for r in report.caddy_refused
    )


def dashboard_lines(report: StatusReport) -> str:
    """As ``meshop status``: one line per gateway that does not publish the dashboard host, and why."""
    return "".join(
        f'<p class="problem warn">Dashboard {esc(d.host)} not published by gateway {esc(d.gateway)} for '
        f"{esc(age(report.now - d.since))} ({esc(d.reason)}): {esc(d.message)}</p>"
        for d in report.dashboard_unpublished
    )


def overview(view: Overview, viewer: Viewer) -> str:
    """The overview's live part: leader, services, nodes, routes (what the gateways serve), events."""
    report, now = view.report, view.report.now
    node_headers = (*NODE_HEADERS, "Actions") if viewer.actions else NODE_HEADERS
    parts = [
        f'<p class="problem bad">Consul: {esc(view.problem)} (retrying; showing the last answer)</p>'
        if view.problem
        else "",
        leader_line(report),
        control_plane_line(report),
        caddy_lines(report),
        dashboard_lines(report),
        f'<h2>Services <span class="count">{len(report.services)}</span></h2>',
        table(SERVICE_HEADERS, (service_cells(r, now) for r in report.services), "services")
        if report.services
        else '<p class="empty">No services yet: <code>meshop apply -f</code> a Service document.</p>',
        f'<h2>Nodes <span class="count">{len(report.nodes)}</span></h2>',
        table(node_headers, (node_cells(r, now, viewer) for r in report.nodes), "nodes")
        if report.nodes
        else '<p class="empty">No node has registered.</p>',
        usage_section(view),
        "<h2>Gateways and DNS</h2>",
        table(("Gateway", "Address", "Health", "In DNS", "Message"), (gateway_cells(g) for g in report.gateways), "gw")
        if report.gateways
        else '<p class="empty">No gateway registered.</p>',
        dns_line(report.dns, now),
        "<h2>Routes</h2>",
        table(("Host", "Service", "Healthy", "Upstreams"), (route_cells(r) for r in view.routes), "routes")
        if view.routes
        else '<p class="empty">No routes.</p>',
        "<h2>Events</h2>",
        table(("Age", "Kind", "Object", "By", "Message"), event_rows(view.events, now), "events")
        if view.events
        else '<p class="empty">No events.</p>',
        f'<p class="time">As of {esc(clock(now))}.</p>',
    ]
    return "\n".join(parts)


def service(desc: ServiceDescription, now: float, viewer: Viewer | None = None) -> str:
    """One service: facts, conditions with reasons, placement and containers per node, events, document;
    a rolling restart when the viewer may act and the document exists."""
    row = desc.row
    facts = [
        ("Health", tag("span", row.health, f"badge {health_class(row.health)}".strip())),
        ("Replicas", esc(f"{row.desired} desired, {row.ready} ready")),
        ("Nodes", esc(placement(row.nodes))),
        ("Image", esc(row.image or "-")),
        ("Route", esc(row.route or "-")),
        ("Message", tag("span", message(row) or "-", "msg")),
        ("Generation", esc(f"{row.generation} (observed {row.observed_generation})")),
    ]
    restart = viewer is not None and viewer.actions and desc.document
    parts = [
        f"<h2>{esc(row.name)}</h2>",
        f'<p><a class="act" href="/service/{url_part(row.name)}/restart">restart</a></p>' if restart else "",
        '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>",
        "<h3>Conditions</h3>",
    ]
    conditions = desc.status.conditions if desc.status else ()
    parts.append(
        table(
            ("Type", "Status", "Reason", "Since", "Message"),
            (
                [
                    esc(c.type),
                    esc(c.status),
                    esc(c.reason or "-"),
                    esc(age(now - c.last_transition)),
                    tag("span", c.message, "msg"),
                ]
                for c in conditions
            ),
            "conditions",
        )
        if conditions
        else '<p class="empty">No status yet.</p>'
    )
    parts.append("<h3>Containers</h3>")
    rows = [
        [
            f'<a href="/node/{url_part(node)}">{esc(node)}</a>',
            esc(c.replica),
            esc(c.phase or c.state),
            esc(c.health or "-"),
            esc(c.restart_count),
            tag("span", c.name, "mono"),
        ]
        for node, obs in sorted(desc.observed.items())
        for c in obs.containers
    ]
    parts.append(
        table(("Node", "Replica", "Phase", "Health", "Restarts", "Container"), rows, "containers")
        if rows
        else '<p class="empty">No containers reported.</p>'
    )
    parts.append("<h3>Events</h3>")
    parts.append(
        table(("Age", "Kind", "Object", "By", "Message"), event_rows(desc.events, now), "events")
        if desc.events
        else '<p class="empty">No events.</p>'
    )
    document = yaml.safe_dump(dict(desc.document), sort_keys=False) if desc.document else "(deleted)"
    parts += ["<h3>Document</h3>", tag("pre", document, "doc"), f'<p class="time">As of {esc(clock(now))}.</p>']
    return "\n".join(parts)


def node(row: NodeRow, observed: Mapping[str, Observed], events: Sequence[Event], now: float, viewer: Viewer) -> str:
    """One node: its row as ``meshop status`` has it, its containers per service as its agent reports
    them (``observed/<node>/``), and the events about it."""
    seen = node_cells(row, now, viewer)
    facts = [
        ("Status", seen[2]),
        ("Address", esc(row.address or "-")),
        ("Last seen", seen[4]),
        ("Labels", esc(labels(row.labels))),
        ("Version", esc(row.version or "-")),
        ("Message", tag("span", row.message or "-", "msg")),
    ]
    containers = [
        [
            f'<a href="/service/{url_part(service)}">{esc(service)}</a>',
            esc(c.replica),
            esc(c.phase or c.state),
            esc(c.health or "-"),
            esc(c.restart_count),
            esc(c.image),
            tag("span", c.name, "mono"),
        ]
        for service, obs in observed.items()
        for c in obs.containers
    ]
    actions = node_actions(row, viewer)
    parts = [
        f"<h2>Node {esc(row.name)}</h2>",
        f"<p>{actions}</p>" if actions else "",
        '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>",
        f'<h3>Containers <span class="count">{len(containers)}</span></h3>',
        table(("Service", "Replica", "Phase", "Health", "Restarts", "Image", "Container"), containers, "containers")
        if containers
        else '<p class="empty">No containers reported.</p>',
        "<h3>Events</h3>",
        table(("Age", "Kind", "Object", "By", "Message"), event_rows(events, now), "events")
        if events
        else '<p class="empty">No events.</p>',
        f'<p class="time">As of {esc(clock(now))}.</p>',
    ]
    return "\n".join(parts)
