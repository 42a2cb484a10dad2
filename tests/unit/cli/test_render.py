"""The pure renderers: ages like kubectl's, tables printed as written (no markup), one line per event."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from meshop.cli.render import event_line, format_age, nodes_table, services_table
from meshop.client.events import LoggedEvent
from meshop.client.status import NodeRow, ServiceRow
from meshop.model.records import Event


def text(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (-3, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (7199, "119m"), (7200, "2h"), (200_000, "2d")],
)
def test_format_age(seconds: float | None, shown: str) -> None:
    assert format_age(seconds) == shown


def test_services_table_prints_messages_as_written() -> None:
    rows = [
        ServiceRow("web", "Healthy", 2, 2, {"n1": 2}, "img:1", "web.example.com/", 1000.0),
        ServiceRow("api", "Failed", 0, 1, {}, "img:2", "", 0.0, "Invalid", "spec.ports[0].container: [bold]x"),
    ]
    lines = text(services_table(rows, now=1300.0)).splitlines()
    assert lines[0].split() == ["NAME", "READY", "NODES", "IMAGE", "ROUTE", "HEALTH", "AGE", "MESSAGE"]
    assert lines[1].split() == ["web", "2/2", "n1=2", "img:1", "web.example.com/", "Healthy", "5m"]
    assert lines[2].split()[:7] == ["api", "0/1", "-", "img:2", "-", "Failed", "-"]
    assert lines[2].endswith("Invalid: spec.ports[0].container: [bold]x")


def test_nodes_table() -> None:
    rows = [
        NodeRow("n1", "Ready", True, "10.0.0.1", ("web",), 500.0, {"zone": "a", "role": "web"}),
        NodeRow("n2", "NotReady", False, "10.0.0.2", (), 380.0, {}, "agent check critical for 120s"),
    ]
    lines = text(nodes_table(rows, now=500.0)).splitlines()
    assert lines[0].split() == ["NAME", "ADDRESS", "STATUS", "SERVICES", "LAST", "SEEN", "LABELS", "MESSAGE"]
    assert lines[1].split() == ["n1", "10.0.0.1", "Ready", "1", "now", "role=web,zone=a"]
    assert lines[2].split()[:6] == ["n2", "10.0.0.2", "NotReady", "0", "2m", "-"]


def test_event_line() -> None:
    line = event_line(LoggedEvent("events/1", Event(0.0, "NodeLost", "node/n1", "gone", "controller")))
    assert line.split()[2:] == ["NodeLost", "node/n1", "controller", "gone"]
