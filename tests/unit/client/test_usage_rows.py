"""``meshop top``'s rows from ``usage/<node>`` records: hostile records checked, stale ones marked with
their age (never zeros), sorting, JSON, and the tables as kubectl top prints them."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest
from rich.console import Console

from meshop.cli.top import nodes_table, replicas_table, services_table
from meshop.client.usage import node_rows, parse_usage, replica_rows, service_rows
from meshop.consul.kv import Entry
from meshop.model.records import ReplicaUsage, UsageRecord, dumps

NOW = 10_000.0
MI = 2**20


def text(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def _record(node: str, age: float, *replicas: ReplicaUsage, cpu: float = 50.0) -> UsageRecord:
    return UsageRecord(
        node=node,
        sampled_at=NOW - age,
        interval=10.0,
        refresh=30.0,
        cpu=cpu,
        cpus=2,
        memory=512 * MI,
        memory_total=2048 * MI,
        load1=0.5,
        disk=10,
        disk_total=100,
        replicas=replicas,
    )


def _replica(service: str, replica: int, cpu: float, memory: int, limit: int = 256 * MI) -> ReplicaUsage:
    return ReplicaUsage(service, replica, cpu=cpu, memory=memory, memory_limit=limit, rx=2048.0, tx=1024.0)


def _entry(key: str, value: str | bytes) -> Entry:
    return Entry(key, value.encode() if isinstance(value, str) else value, 1)


RECORDS = {
    "n1": _record("n1", 5, _replica("web", 0, 25.0, 100 * MI), _replica("db", 0, 80.0, 240 * MI)),
    "n2": _record("n2", 300, _replica("web", 1, 5.0, 50 * MI), cpu=10.0),  # its agent stopped 5 min ago
}


def _usage() -> dict:
    return parse_usage([_entry(f"usage/{n}", dumps(r)) for n, r in RECORDS.items()], NOW)


def test_stale_is_marked_never_zero() -> None:
    usage = _usage()
    assert not usage["n1"].stale and usage["n2"].stale
    rows = node_rows(usage)
    assert [(r.node, r.cpu, r.stale) for r in rows] == [("n1", 50.0, False), ("n2", 10.0, True)]
    lines = text(nodes_table(rows)).splitlines()
    assert lines[0].split() == ["NODE", "CPU", "CPU%", "MEMORY", "MEMORY%", "LOAD", "DISK%", "REPLICAS", "SAMPLED"]
    assert lines[1].split() == ["n1", "500m", "25%", "512Mi", "25%", "0.50", "10%", "2", "5s"]
    assert lines[2].split() == ["n2", "100m", "5%", "512Mi", "25%", "0.50", "10%", "1", "stale", "5m"]


def test_services_sum_their_replicas_across_nodes() -> None:
    rows = service_rows(_usage(), sort="cpu")
    assert [(r.service, r.replicas, r.cpu, r.nodes, r.stale) for r in rows] == [
        ("db", 1, 80.0, ("n1",), False),
        ("web", 2, 30.0, ("n1", "n2"), True),
    ]
    lines = text(services_table(rows)).splitlines()
    assert lines[1].split() == ["db", "1", "800m", "240Mi", "94%", "2.0Ki/s", "1.0Ki/s", "n1"]
    assert lines[2].split()[:2] == ["web", "(stale)"]


def test_replicas_near_their_memory_limit_are_marked() -> None:
    rows = replica_rows(_usage(), sort="memory")
    assert [(r.service, r.replica, r.near_limit) for r in rows] == [
        ("db", 0, True),
        ("web", 0, False),
        ("web", 1, False),
    ]
    lines = text(replicas_table(rows)).splitlines()
    assert lines[1].split()[:6] == ["db", "0", "n1", "800m", "240Mi", "(94%)"] and "!" in lines[1]
    assert "!" not in lines[2]
    assert [r.replica for r in replica_rows(_usage(), "web")] == [0, 1]
    as_json = json.loads(json.dumps([r.to_dict() for r in rows]))
    assert as_json[0]["nearLimit"] is True and as_json[0]["memoryLimit"] == 256 * MI and as_json[2]["stale"] is True


HOSTILE = [
    ("usage/n3", "not json"),
    ("usage/n3", json.dumps({"node": "n3", "sampledAt": "1"})),  # a string for a number
    ("usage/n3", dumps(_record("n9", 1))),  # another node's name under n3's key
    ("usage/n3", dumps(replace(_record("n3", 1), cpu=-5.0))),
    ("usage/n3", dumps(replace(_record("n3", 1), memory=10**30))),
    ("usage/<b>n3</b>", dumps(_record("<b>n3</b>", 1))),
    ("usage/n3/x", dumps(_record("n3", 1))),
]


@pytest.mark.parametrize(("key", "value"), HOSTILE, ids=[v[:40] for _, v in HOSTILE])
def test_hostile_records_are_left_out(key: str, value: str) -> None:
    assert parse_usage([_entry(key, value)], NOW) == {}


def test_hostile_replicas_are_left_out_the_rest_kept() -> None:
    record = _record(
        "n3",
        1,
        _replica("web", 0, 1.0, MI),
        _replica("<img src=x onerror=alert(1)>", 0, 1.0, MI),
        _replica("web", -1, 1.0, MI),
        _replica("web", 2, 1.0, 5 * 10**18),  # past 2**63 the codec refuses the whole record
        replace(_replica("web", 3, 1.0, MI), rx=float("1e300")),
    )
    usage = parse_usage([_entry("usage/n3", dumps(record))], NOW)
    assert [(r.service, r.replica) for r in usage["n3"].record.replicas] == [("web", 0)]
