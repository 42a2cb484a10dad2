"""``meshop top`` and the dashboard's usage: the agents' ``usage/<node>`` records as rows. Pure but ``read_usage``.

A usage record is written by a node (hostile, docs/security.md): it is decoded by the strict codec and
then checked: the record's node must be its key's, service names RFC 1123 labels, replica numbers and
every number within bounds (a wrong one drops that replica, or the whole record when it is the node's
own); a refused record is left out, as a missing one. A record older than about twice its ``refresh``
is **stale**: shown with its age, never as zero usage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from meshop.consul.store import Entry, KVStore
from meshop.model import keys
from meshop.model.names import is_dns_label
from meshop.model.records import RecordError, ReplicaUsage, UsageRecord, loads_json

MAX_NUMBER = 1e18  # bytes, bytes per second, percent: anything above is a broken or hostile counter
MAX_REPLICA = 10_000
MIN_STALE = 30.0  # seconds; a record is stale after max(MIN_STALE, 2 x refresh + interval)
NEAR_LIMIT = 0.9  # a replica using this share of its memory limit is marked


@dataclass(frozen=True)
class NodeUsage:
    record: UsageRecord
    age: float  # seconds since it was sampled (may be negative with a skewed clock: shown as 0)
    stale: bool


def _sane(value: float) -> bool:
    return math.isfinite(value) and 0 <= value <= MAX_NUMBER


def _replica_ok(r: ReplicaUsage) -> bool:
    numbers = (r.cpu, r.memory, r.memory_limit, r.rx, r.tx, r.read, r.write)
    return is_dns_label(r.service) and 0 <= r.replica <= MAX_REPLICA and all(_sane(n) for n in numbers)


def check_record(node: str, record: UsageRecord) -> UsageRecord:
    """The record with its doubtful replicas left out; RecordError when the node's own part is wrong."""
    if record.node != node or not is_dns_label(node):
        raise RecordError(f"usage record of {node!r} names node {record.node!r}")
    numbers = (record.sampled_at, record.interval, record.refresh, record.cpu, record.memory, record.memory_total)
    numbers += (record.load1, record.load5, record.load15, record.disk, record.disk_total, record.cpus)
    if not all(_sane(n) for n in numbers):
        raise RecordError(f"usage record of {node}: a number out of bounds")
    kept = tuple(r for r in record.replicas if _replica_ok(r))
    return record if len(kept) == len(record.replicas) else _with_replicas(record, kept)


def _with_replicas(record: UsageRecord, replicas: tuple[ReplicaUsage, ...]) -> UsageRecord:
    return replace(record, replicas=replicas)


def stale_after(record: UsageRecord) -> float:
    return max(MIN_STALE, 2 * record.refresh + record.interval)


def parse_usage(entries: Iterable[Entry], now: float) -> dict[str, NodeUsage]:
    """Node -> its checked usage, from the entries of a ``usage/`` listing; refused records left out."""
    found: dict[str, NodeUsage] = {}
    for entry in entries:
        rest = entry.key[len(keys.USAGE) :] if entry.key.startswith(keys.USAGE) else ""
        if not rest or "/" in rest:
            continue
        try:
            record = check_record(rest, UsageRecord.from_dict(loads_json(entry.value)))
        except (RecordError, ValueError):
            continue
        age = now - record.sampled_at
        found[rest] = NodeUsage(record, age, age > stale_after(record))
    return found


def read_usage(store: KVStore, now: float) -> dict[str, NodeUsage]:
    return parse_usage(store.list(keys.USAGE).entries, now)


# -- rows ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeUsageRow:
    node: str
    cpu: float  # percent of one core
    cpus: int
    memory: int
    memory_total: int
    load1: float
    disk: int
    disk_total: int
    replicas: int
    age: float
    stale: bool

    def to_dict(self) -> dict[str, Any]:
        return {**_plain(self), "age": round(max(self.age, 0.0), 1)}


@dataclass(frozen=True)
class ServiceUsageRow:
    service: str
    replicas: int
    nodes: tuple[str, ...]
    cpu: float
    memory: int
    memory_limit: int  # summed over its replicas
    rx: float
    tx: float
    stale: bool  # a node it runs on has a stale record

    def to_dict(self) -> dict[str, Any]:
        return {**_plain(self), "nodes": list(self.nodes)}


@dataclass(frozen=True)
class ReplicaRow:
    service: str
    replica: int
    node: str
    cpu: float
    memory: int
    memory_limit: int
    rx: float
    tx: float
    read: float
    write: float
    age: float
    stale: bool

    @property
    def near_limit(self) -> bool:
        return self.memory_limit > 0 and self.memory >= NEAR_LIMIT * self.memory_limit

    def to_dict(self) -> dict[str, Any]:
        return {**_plain(self), "age": round(max(self.age, 0.0), 1), "nearLimit": self.near_limit}


def _plain(row: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in vars(row).items():
        parts = name.split("_")
        out[parts[0] + "".join(p.title() for p in parts[1:])] = value
    return out


SORT_KEYS = ("name", "cpu", "memory")


def _order(rows: list[Any], sort: str, name: Any) -> list[Any]:
    if sort == "cpu":
        return sorted(rows, key=lambda r: (-r.cpu, name(r)))
    if sort == "memory":
        return sorted(rows, key=lambda r: (-r.memory, name(r)))
    return sorted(rows, key=name)


def node_rows(usage: Mapping[str, NodeUsage], sort: str = "name") -> list[NodeUsageRow]:
    rows = [
        NodeUsageRow(
            node=node,
            cpu=u.record.cpu,
            cpus=u.record.cpus,
            memory=u.record.memory,
            memory_total=u.record.memory_total,
            load1=u.record.load1,
            disk=u.record.disk,
            disk_total=u.record.disk_total,
            replicas=len(u.record.replicas),
            age=u.age,
            stale=u.stale,
        )
        for node, u in usage.items()
    ]
    return _order(rows, sort, lambda r: r.node)


def replica_rows(usage: Mapping[str, NodeUsage], service: str | None = None, sort: str = "name") -> list[ReplicaRow]:
    rows = [
        ReplicaRow(
            service=r.service,
            replica=r.replica,
            node=node,
            cpu=r.cpu,
            memory=r.memory,
            memory_limit=r.memory_limit,
            rx=r.rx,
            tx=r.tx,
            read=r.read,
            write=r.write,
            age=u.age,
            stale=u.stale,
        )
        for node, u in usage.items()
        for r in u.record.replicas
        if service is None or r.service == service
    ]
    return _order(rows, sort, lambda r: (r.service, r.replica, r.node))


def service_rows(usage: Mapping[str, NodeUsage], sort: str = "name") -> list[ServiceUsageRow]:
    grouped: dict[str, list[ReplicaRow]] = {}
    for row in replica_rows(usage):
        grouped.setdefault(row.service, []).append(row)
    rows = [
        ServiceUsageRow(
            service=service,
            replicas=len(members),
            nodes=tuple(sorted({m.node for m in members})),
            cpu=round(sum(m.cpu for m in members), 2),
            memory=sum(m.memory for m in members),
            memory_limit=sum(m.memory_limit for m in members),
            rx=sum(m.rx for m in members),
            tx=sum(m.tx for m in members),
            stale=any(m.stale for m in members),
        )
        for service, members in grouped.items()
    ]
    return _order(rows, sort, lambda r: r.service)


def human_bytes(value: float) -> str:
    """``512Mi``-style, as kubectl top prints memory."""
    for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= size:
            return f"{value / size:.1f}{unit}" if value < 10 * size else f"{value / size:.0f}{unit}"
    return f"{value:.0f}B"


def human_rate(value: float) -> str:
    return f"{human_bytes(value)}/s"


def percent(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.0f}%" if whole > 0 else "-"


def cpu_text(value: float) -> str:
    """Percent of one core as kubectl's millicores: 25 % of a core -> ``250m``."""
    return f"{value * 10:.0f}m"
