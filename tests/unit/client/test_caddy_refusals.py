"""A refused Caddy load (gateway or node) in ``meshop status`` and the dashboard: read from hostile KV
records, one red line each, never a ready report. Pure."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from meshop.caddy.loadstate import MAX_MESSAGE, LoadState
from meshop.cli.render import status_view
from meshop.client.cluster import Leader, Snapshot
from meshop.client.status import CaddyRefusal, build_report
from meshop.consul.kv import Entry, Listing
from meshop.dashboard.views import caddy_lines
from meshop.model import keys
from meshop.model.records import CaddyLoad, NodeRecord, dumps

NOW = 10_000.0
LEADER = Entry(keys.LEADER, json.dumps({"id": "c1", "since": NOW - 60}).encode(), 1, session="s")
REFUSED = dumps(CaddyLoad(loaded=False, message="listen tcp :443: address already in use", since=NOW - 30))
LOADED = dumps(CaddyLoad(loaded=True, since=NOW - 30))


def snapshot(*entries: tuple[str, str | bytes]) -> Snapshot:
    listing = Listing(1, tuple(Entry(k, v.encode() if isinstance(v, str) else v, 1) for k, v in entries))
    return Snapshot.build([listing], [], LEADER, NOW)


def node(name: str, caddy: CaddyLoad | None) -> tuple[str, str]:
    return keys.node(name), dumps(NodeRecord(name, address="10.0.0.1", caddy=caddy))


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        pytest.param([("gateways/g1/caddy", REFUSED)], [("gateway", "g1")], id="gateway-refused"),
        pytest.param([("gateways/g1/caddy", LOADED)], [], id="gateway-loaded"),
        pytest.param([("gateways/g1", json.dumps({"address": "10.0.0.9"}))], [], id="a-claim-is-no-load-state"),
        pytest.param([("gateways/G_1/caddy", REFUSED)], [], id="id-not-a-label"),
        pytest.param([("gateways/a/b/caddy", REFUSED)], [], id="too-deep"),
        pytest.param([("gateways/g1/caddy", '{"loaded": "no"}')], [], id="wrong-type-skipped"),
        pytest.param([("gateways/g1/caddy", "[" * 100000)], [], id="not-json-skipped"),
        pytest.param([("gateways/g1/caddy", '{"loaded": false, "since": NaN}')], [], id="nan-skipped"),
        pytest.param([node("n1", CaddyLoad(False, "refused", NOW - 5))], [("node", "n1")], id="node-refused"),
        pytest.param([node("n1", CaddyLoad(True, "", NOW - 5))], [], id="node-loaded"),
        pytest.param([node("n1", None)], [], id="node-without-caddy"),
        pytest.param(
            [node("n2", CaddyLoad(False, "x", NOW)), ("gateways/g2/caddy", REFUSED)],
            [("gateway", "g2"), ("node", "n2")],
            id="both",
        ),
    ],
)
def test_refusals_from_kv(entries: list[tuple[str, str]], expected: list[tuple[str, str]]) -> None:
    report = build_report(snapshot(*entries))
    assert [(r.kind, r.name) for r in report.caddy_refused] == expected
    data = report.to_dict()
    assert [(r["kind"], r["name"]) for r in data.get("caddyRefused", [])] == expected
    if expected:
        assert not report.all_ready and not data["ready"]


def test_a_refused_node_says_so_in_its_row_and_a_long_message_is_cut() -> None:
    record = {"name": "n1", "caddy": {"loaded": False, "message": "m" * 5000, "since": NOW - 5}}
    report = build_report(snapshot((keys.node("n1"), json.dumps(record))))
    (refusal,) = report.caddy_refused
    assert len(refusal.message) == 500
    assert "its Caddy refused its config" in report.nodes[0].message


def test_an_unchanged_node_record_keeps_its_bytes() -> None:
    assert "caddy" not in json.loads(dumps(NodeRecord("n1")))


def test_status_and_dashboard_lines_are_text_safe() -> None:
    refusal = CaddyRefusal("gateway", "g1", "bad \x1b[31m[bold]<script>", NOW - 90)
    report = build_report(Snapshot(now=NOW, leader=Leader("c1")))
    report = type(report)(**{**report.__dict__, "caddy_refused": (refusal,)})
    out = io.StringIO()
    Console(file=out, width=300, color_system=None).print(status_view(report))
    shown = out.getvalue()
    assert "Caddy of gateway g1 refused its config for 90s" in shown
    assert "\x1b" not in shown and "[bold]" in shown
    html = caddy_lines(report)
    assert "<script>" not in html and "&lt;script&gt;" in html and 'class="problem bad"' in html


def test_load_state_keeps_the_start_of_a_refusal_streak() -> None:
    times = iter([1.0, 2.0, 3.0, 4.0])
    state = LoadState(lambda: next(times))
    assert state.refused("a") == CaddyLoad(False, "a", 1.0)
    assert state.refused("b" * 1000) == CaddyLoad(False, "b" * MAX_MESSAGE, 1.0)
    assert state.accepted() == CaddyLoad(True, "", 2.0)
    assert state.accepted() == CaddyLoad(True, "", 2.0)
    assert state.refused("c") == CaddyLoad(False, "c", 3.0)
