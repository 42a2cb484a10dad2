"""The dashboard's usage: sparklines as inert SVG, a bounded history, and the usage section (stale shown
with its age, never as zero; hostile text escaped)."""

from __future__ import annotations

import re
from dataclasses import replace

from meshop.client.status import StatusReport
from meshop.client.usage import NodeUsage
from meshop.dashboard.charts import sparkline
from meshop.dashboard.history import UsageHistory
from meshop.dashboard.views import Overview, usage_section
from meshop.model.records import ReplicaUsage, UsageRecord

NOW = 100_000.0


def _points(svg: str) -> list[tuple[float, float]]:
    found = re.search(r'points="([^"]*)"', svg)
    return [tuple(map(float, p.split(","))) for p in found.group(1).split()] if found else []  # type: ignore[misc]


def test_sparkline_scales_time_and_value() -> None:
    svg = sparkline([(NOW - 3600, 0.0), (NOW - 1800, 50.0), (NOW, 100.0)], NOW - 3600, NOW, "CPU of web")
    assert svg.startswith('<svg class="spark"') and "<script" not in svg
    xs, ys = zip(*_points(svg), strict=True)
    assert xs == (2.0, 80.0, 158.0) and ys[0] > ys[1] > ys[2]  # later right, higher up


def test_sparkline_escapes_its_label_and_ignores_bad_values() -> None:
    svg = sparkline([(NOW, float("nan")), (NOW, -1.0), (NOW - 10, 5.0)], NOW - 3600, NOW, '<img onerror="x">')
    assert "<img" not in svg and "&lt;img onerror=&quot;x&quot;&gt;" in svg
    assert len(_points(svg)) == 2  # one sample: a level line to the right edge
    assert "points" not in sparkline([], NOW - 3600, NOW, "empty")


def _usage(node: str, sampled: float, cpu: float, stale: bool = False, service: str = "web") -> NodeUsage:
    record = UsageRecord(
        node=node,
        sampled_at=sampled,
        refresh=30.0,
        cpu=cpu,
        cpus=2,
        memory=2**20,
        memory_total=2**30,
        replicas=(ReplicaUsage(service, 0, cpu=cpu, memory=2**20, memory_limit=2**21),),
    )
    return NodeUsage(record, NOW - sampled, stale)


def test_history_follows_new_records_only_and_is_bounded() -> None:
    history = UsageHistory(window=100.0, max_points=3, max_series=3)
    assert history.add({"n1": _usage("n1", NOW - 5, 10.0)}, NOW)
    assert not history.add({"n1": _usage("n1", NOW - 5, 10.0)}, NOW)  # the same record again: no point
    for i in range(5):
        history.add({"n1": _usage("n1", NOW + i, 20.0 + i)}, NOW + i)
    assert [p.cpu for p in history.node("n1")] == [22.0, 23.0, 24.0]  # at most 3 points
    assert history.service("web")[-1].cpu == 24.0
    history.add({"n2": _usage("n2", NOW + 10, 1.0, service="api"), "n3": _usage("n3", NOW + 10, 1.0)}, NOW + 10)
    assert history.sizes()[0] == 3  # n1, web, n2: a fourth series is not followed
    history.add({"n2": _usage("n2", NOW + 500, 1.0)}, NOW + 500)
    assert history.node("n1") == () and history.sizes()[0] <= 3  # out of the window: dropped


def _overview(usage: dict[str, NodeUsage], history: UsageHistory) -> Overview:
    return Overview(StatusReport(now=NOW, services=[], nodes=[], leader=None), usage=usage, history=history)


def test_usage_section_marks_stale_and_escapes() -> None:
    history = UsageHistory()
    fresh, stale = _usage("n1", NOW - 2, 50.0), _usage("n2", NOW - 600, 25.0, stale=True)
    history.add({"n1": replace(fresh, record=replace(fresh.record, sampled_at=NOW - 60))}, NOW - 60)
    history.add({"n1": fresh, "n2": stale}, NOW)
    page = usage_section(_overview({"n1": fresh, "n2": stale}, history))
    assert 'class="usage-nodes"' in page and 'class="usage-services"' in page
    assert "stale: 10m ago" in page and "250m (12%)" in page
    assert page.count('<svg class="spark"') == 6  # CPU and memory for two nodes and one service
    assert "points=" in page
    hostile = _usage("n3", NOW - 1, 1.0)
    hostile = replace(hostile, record=replace(hostile.record, node="<b>n3</b>"))
    page = usage_section(_overview({"<b>n3</b>": hostile}, UsageHistory()))
    assert "<b>" not in page and "&lt;b&gt;n3&lt;/b&gt;" in page
    assert "No usage yet" in usage_section(_overview({}, UsageHistory()))
