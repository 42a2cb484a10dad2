"""Pure renderers for status, get, describe and events: plain data in, rich tables or text out.

Every cell is a ``Text`` (never markup), so a message like ``spec.ports[0]`` or a user's ``[bold]`` is
printed as written, and every string from KV passes ``printable`` (``meshop.cli.safe``): control
characters are shown as escapes, never sent to the terminal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from meshop.cli.safe import printable
from meshop.client.describe import ServiceDescription
from meshop.client.events import LoggedEvent
from meshop.client.formats import age as format_age
from meshop.client.formats import labels, placement
from meshop.client.status import CONVERGING, HEALTHY, NodeRow, ServiceRow, StatusReport

HEALTH_STYLE = {HEALTHY: "green", "Degraded": "yellow", "Failed": "bold red"}
NODE_STYLE = {"Ready": "green", "Cordoned": "yellow", "Draining": "yellow"}


def since(now: float, then: float | None) -> str:
    return format_age(now - then) if then else "-"


def timestamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def grid(*headers: str, wrap: str = "") -> Table:
    """A borderless table like kubectl's; the ``wrap`` column folds, every other one stays on one line."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    for header in headers:
        table.add_column(header, no_wrap=header != wrap, overflow="fold" if header == wrap else "ellipsis")
    return table


def cells(*values: object, styles: Mapping[int, str] | None = None) -> list[Text]:
    styles = styles or {}
    return [Text(printable(v), style=styles.get(i, "")) for i, v in enumerate(values)]


def health_style(row: ServiceRow) -> str:
    return HEALTH_STYLE.get(row.health, "yellow" if row.health in CONVERGING else "")


def services_table(rows: Iterable[ServiceRow], now: float) -> Table:
    table = grid("NAME", "READY", "NODES", "IMAGE", "ROUTE", "HEALTH", "AGE", "MESSAGE", wrap="MESSAGE")
    for row in rows:
        message = f"{row.reason}: {row.message}" if row.reason and row.message else row.reason or row.message
        table.add_row(
            *cells(
                row.name,
                f"{row.ready}/{row.desired}",
                placement(row.nodes),
                row.image or "-",
                row.route or "-",
                row.health,
                since(now, row.created_at),
                message,
                styles={5: health_style(row)},
            )
        )
    return table


def nodes_table(rows: Iterable[NodeRow], now: float) -> Table:
    table = grid("NAME", "ADDRESS", "STATUS", "SERVICES", "LAST SEEN", "LABELS", "MESSAGE", wrap="MESSAGE")
    for row in rows:
        seen = "now" if row.ready else since(now, row.last_seen)
        style = NODE_STYLE.get(row.status, "bold red")
        table.add_row(
            *cells(
                row.name,
                row.address or "-",
                row.status,
                len(row.services),
                seen,
                labels(row.labels),
                row.message,
                styles={2: style},
            )
        )
    return table


def controller_line(report: StatusReport) -> Text:
    if report.leader is None:
        return Text("Controller: none is leading; statuses may be stale (is `meshop controller run` running?)", "red")
    leader = printable(report.leader.controller_id)
    return Text(f"Controller: {leader} leads (for {since(report.now, report.leader.since)})")


def control_plane_line(report: StatusReport) -> list[RenderableType]:
    """Said only when losing one Consul server would stop failover (or the quorum is gone)."""
    plane = report.control_plane
    if plane is None or not plane.problem:
        return []
    return [Text(f"Control plane: {printable(plane.problem)}", "red" if not plane.quorum else "yellow")]


def caddy_lines(report: StatusReport) -> list[RenderableType]:
    """One red line per Caddy (gateway or node) that refused its config: the old one serves, nothing new."""
    return [
        Text(
            f"Caddy of {r.kind} {printable(r.name)} refused its config for {since(report.now, r.since)} "
            f"(the previous one serves): {printable(r.message)}",
            "red",
        )
        for r in report.caddy_refused
    ]


def dashboard_lines(report: StatusReport) -> list[RenderableType]:
    """One yellow line per gateway that does not publish the dashboard host, with the reason."""
    return [
        Text(
            f"Dashboard {printable(d.host)} not published by gateway {printable(d.gateway)} for "
            f"{since(report.now, d.since)} ({printable(d.reason)}): {printable(d.message)}",
            "yellow",
        )
        for d in report.dashboard_unpublished
    ]


def status_view(report: StatusReport) -> RenderableType:
    parts: list[RenderableType] = [controller_line(report), *control_plane_line(report), *caddy_lines(report)]
    parts += dashboard_lines(report)
    if report.rebalance:
        parts.append(Text(printable(report.rebalance), "yellow"))
    parts += [Text("")]
    parts += [Text("SERVICES", "bold"), services_table(report.services, report.now) if report.services else "none"]
    parts += [Text(""), Text("NODES", "bold"), nodes_table(report.nodes, report.now) if report.nodes else "none"]
    if report.gateways or report.dns:
        parts += [Text(""), Text("GATEWAYS", "bold"), gateways_table(report) if report.gateways else "none"]
        parts += [dns_line(report)]
    return Group(*parts)


def gateways_table(report: StatusReport) -> Table:
    table = grid("GATEWAY", "ADDRESS", "HEALTH", "IN DNS", "MESSAGE", wrap="MESSAGE")
    for row in report.gateways:
        style = "green" if row.health == "passing" else "red"
        table.add_row(
            *cells(
                row.gateway_id, row.address, row.health, "yes" if row.in_dns else "no", row.output, styles={2: style}
            )
        )
    return table


def dns_line(report: StatusReport) -> Text:
    dns = report.dns
    if dns is None or dns.provider == "none":
        return Text("DNS: not managed (the Gateway document has no dns provider)", "dim")
    if dns.mode == "direct":
        target = "no gateway is healthy: direct to the nodes serving each host"
    else:
        target = "gateways " + (", ".join(printable(g) for g in dns.gateways) or "none")
    text = f"DNS ({printable(dns.provider)}, zone {printable(dns.zone)}): {dns.names} name(s) -> {target}"
    if dns.last_update:
        text += f"; last update {since(report.now, dns.last_update)} ago: {printable(dns.last_change)}"
    if dns.conflicts:
        text += f"; {len(dns.conflicts)} name(s) held by records meshop does not own"
    if dns.last_error:
        return Text(f"{text}\nDNS error: {printable(dns.last_error)}", "red")
    return Text(text, "yellow" if dns.mode == "direct" else "")


def describe_view(desc: ServiceDescription, spec_yaml: str, now: float) -> RenderableType:
    row = desc.row
    status = desc.status
    facts = grid("", "")
    facts.show_header = False
    generation = f"{row.generation} (status is of {row.observed_generation})" if status else f"{row.generation}"
    created = f"{since(now, row.created_at)} ago ({timestamp(row.created_at)})" if row.created_at else "-"
    doc_labels = (desc.document or {}).get("metadata", {}).get("labels") or {}
    for key, value in (
        ("Name:", row.name),
        ("Labels:", labels(doc_labels)),
        ("Health:", row.health + (f" ({row.reason})" if row.reason else "")),
        ("Replicas:", f"{row.desired} desired, {row.ready} ready"),
        ("Image:", row.image or "-"),
        ("Route:", row.route or "-"),
        ("Generation:", generation),
        ("Created:", created),
    ):
        facts.add_row(*cells(key, value))
    parts: list[RenderableType] = [facts]
    if row.message:
        parts += [Text(""), Text("Message:", "bold"), Text("  " + printable(row.message))]
    spec = _indent(printable(spec_yaml, multiline=True)) if spec_yaml else "  (document deleted)"
    parts += [Text(""), Text("Spec:", "bold"), Text(spec)]
    parts += [Text(""), Text("Conditions:", "bold"), _indented(_conditions(status, now))]
    parts += [Text(""), Text("Placement:", "bold"), _indented(_placement(desc))]
    parts += [Text(""), Text("Containers:", "bold"), _indented(_containers(desc))]
    events = events_table(desc.events, now) if desc.events else Text("none")
    parts += [Text(""), Text("Events:", "bold"), _indented(events)]
    return Group(*parts)


def _indented(renderable: RenderableType) -> RenderableType:
    return Padding(renderable, (0, 0, 0, 2))


def _conditions(status: Any, now: float) -> RenderableType:
    if status is None or not status.conditions:
        return Text("none yet")
    table = grid("TYPE", "STATUS", "REASON", "SINCE", "MESSAGE", wrap="MESSAGE")
    for c in status.conditions:
        table.add_row(*cells(c.type, c.status, c.reason or "-", since(now, c.last_transition), c.message))
    return table


def _placement(desc: ServiceDescription) -> RenderableType:
    summary = desc.status.nodes if desc.status else {}
    nodes = sorted(set(summary) | set(desc.assignments))
    if not nodes:
        return Text("not placed")
    table = grid("NODE", "REPLICAS", "READY", "NODE STATE", "GENERATION", "REASON", "ERROR", wrap="ERROR")
    for node in nodes:
        info, a = summary.get(node, {}), desc.assignments.get(node)
        replicas = a.replicas if a else info.get("replicas", 0)
        table.add_row(
            *cells(
                node,
                replicas,
                info.get("ready", 0),
                info.get("state", "Unknown"),
                a.generation if a else "-",
                info.get("reason") or "-",
                info.get("error", ""),
            )
        )
    return table


def _containers(desc: ServiceDescription) -> RenderableType:
    rows = [(node, c) for node, seen in sorted(desc.observed.items()) for c in seen.containers]
    if not rows:
        return Text("none reported")
    table = grid("NODE", "REPLICA", "CONTAINER", "ID", "STATE", "HEALTH", "PORTS", "RESTARTS")
    for node, c in rows:
        ports = ",".join(f"{k}->{v}" for k, v in sorted(c.host_ports.items())) or "-"
        table.add_row(*cells(node, c.replica, c.name, c.id, c.state, c.health, ports, c.restart_count))
    return table


def events_table(events: Sequence[Any], now: float) -> Table:
    table = grid("AGE", "KIND", "FROM", "MESSAGE", wrap="MESSAGE")
    for e in events:
        table.add_row(*cells(since(now, e.time), e.kind, e.component or "-", e.message))
    return table


def event_line(logged: LoggedEvent) -> str:
    e = logged.event
    kind, obj, component = printable(e.kind), printable(e.object), printable(e.component or "-")
    return f"{timestamp(e.time)}  {kind:<13} {obj:<24} {component:<12} {printable(e.message)}"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.rstrip("\n").splitlines())
