"""Usage: raw counters from Docker's stats API and /proc in, the ``usage/<node>`` record out. Pure.

The rule:

* What the engine and the kernel return is hostile input (a container controls much of its cgroup's
  numbers, a broken engine may send anything): every counter must be a JSON integer (never a bool, a
  float or a string) between 0 and ``MAX_COUNTER``; a stats answer without one is no sample at all
  (``parse_docker_stats`` returns None), never a zero.
* Rates come from two samples of the same container: CPU as `docker stats` computes it (container CPU
  time over host CPU time, times the online CPUs: percent of one core), network and block I/O over the
  interval's seconds. A counter that went backwards (the container restarted) gives no rate this time.
* Memory is usage minus the inactive page cache (cgroup v1 ``total_inactive_file``, v2
  ``inactive_file``), as `docker stats` shows it.
* A record is written when something moved enough to matter (``worth_writing``: the replica set, a CPU
  change of 5 points of a core or a quarter, memory by 8 MiB or 10 %, node load), at most every sampling
  interval, and at least every ``refresh`` seconds so readers can tell a quiet node from a dead one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from meshop.model.digits import parse_uint
from meshop.model.records import ReplicaUsage, UsageRecord

MAX_COUNTER = 2**62  # bytes or nanoseconds: far above any real value, far below what breaks a float or a metric
MAX_CPUS = 4096
MAX_NETWORKS = 64  # interfaces summed per container; more is not a container meshop made
MAX_RATE = 1e15  # per second: bytes or percent; more is a broken counter
MAX_REPLICAS = 1000  # replicas in one record (UsageRecord.replicas is capped at the same)


@dataclass(frozen=True)
class ContainerSample:
    """One read of one container's counters (Docker's stats API, one-shot)."""

    cpu_total: int  # ns of CPU time the container used
    system_total: int  # ns of CPU time the host used (all CPUs); 0 when the engine did not say
    online_cpus: int
    memory: int  # bytes, without the inactive page cache
    memory_limit: int
    rx: int
    tx: int
    read: int
    write: int


@dataclass(frozen=True)
class HostSample:
    """One read of the host's counters (/proc/stat, /proc/meminfo, /proc/loadavg, statvfs)."""

    cpu_busy: int  # jiffies spent not idle, all CPUs
    cpu_all: int  # jiffies, all CPUs
    cpus: int
    memory: int  # MemTotal - MemAvailable, bytes
    memory_total: int
    load: tuple[float, float, float]
    disk: int
    disk_total: int


def _count(value: object) -> int | None:
    if type(value) is not int or not 0 <= value <= MAX_COUNTER:
        return None
    return value


def _get(data: object, *path: str) -> object:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def parse_docker_stats(data: object) -> ContainerSample | None:
    """The counters of one stats answer, or None when a needed one is missing or not a sane integer."""
    cpu = _count(_get(data, "cpu_stats", "cpu_usage", "total_usage"))
    usage = _count(_get(data, "memory_stats", "usage"))
    limit = _count(_get(data, "memory_stats", "limit"))
    if cpu is None or usage is None or limit is None:
        return None
    system = _count(_get(data, "cpu_stats", "system_cpu_usage")) or 0
    online = _count(_get(data, "cpu_stats", "online_cpus"))
    if not online:
        percpu = _get(data, "cpu_stats", "cpu_usage", "percpu_usage")
        online = len(percpu) if isinstance(percpu, list) else 1
    online = min(max(online, 1), MAX_CPUS)
    cache = _count(_get(data, "memory_stats", "stats", "total_inactive_file"))
    if cache is None:
        cache = _count(_get(data, "memory_stats", "stats", "inactive_file"))
    memory = usage - cache if cache is not None and cache < usage else usage
    rx = tx = 0
    networks = _get(data, "networks")
    if isinstance(networks, dict):
        for counters in list(networks.values())[:MAX_NETWORKS]:
            rx += _count(_get(counters, "rx_bytes")) or 0
            tx += _count(_get(counters, "tx_bytes")) or 0
    read = write = 0
    entries = _get(data, "blkio_stats", "io_service_bytes_recursive")
    if isinstance(entries, list):
        for entry in entries[:256]:
            op = _get(entry, "op")
            value = _count(_get(entry, "value")) or 0
            if isinstance(op, str) and op.lower() == "read":
                read += value
            elif isinstance(op, str) and op.lower() == "write":
                write += value
    return ContainerSample(
        cpu_total=cpu,
        system_total=system,
        online_cpus=online,
        memory=memory,
        memory_limit=limit,
        rx=min(rx, MAX_COUNTER),
        tx=min(tx, MAX_COUNTER),
        read=min(read, MAX_COUNTER),
        write=min(write, MAX_COUNTER),
    )


def _rate(delta: float, seconds: float) -> float:
    if seconds <= 0 or delta < 0:
        return 0.0
    rate = delta / seconds
    return round(rate, 1) if math.isfinite(rate) and rate <= MAX_RATE else 0.0


def replica_usage(
    service: str, replica: int, before: ContainerSample, after: ContainerSample, seconds: float
) -> ReplicaUsage | None:
    """What the replica used between two samples ``seconds`` apart; None when a counter went backwards."""
    if (
        after.cpu_total < before.cpu_total
        or after.rx < before.rx
        or after.tx < before.tx
        or after.read < before.read
        or after.write < before.write
    ):
        return None  # restarted (new cgroup) or a broken counter: no rate this time
    system = after.system_total - before.system_total
    used = after.cpu_total - before.cpu_total
    if system > 0 and before.system_total > 0:
        cpu = used / system * after.online_cpus * 100.0
    else:
        cpu = _rate(used, seconds) / 1e7  # ns per second -> percent of a core
    cpu = round(min(max(cpu, 0.0), 100.0 * MAX_CPUS), 2)
    return ReplicaUsage(
        service=service,
        replica=replica,
        cpu=cpu,
        memory=after.memory,
        memory_limit=after.memory_limit,
        rx=_rate(after.rx - before.rx, seconds),
        tx=_rate(after.tx - before.tx, seconds),
        read=_rate(after.read - before.read, seconds),
        write=_rate(after.write - before.write, seconds),
    )


# -- /proc ---------------------------------------------------------------------------------------------


def parse_proc_stat(text: str) -> tuple[int, int, int] | None:
    """``(busy, all, cpus)`` jiffies from /proc/stat's ``cpu`` line and its ``cpuN`` lines."""
    busy = total = None
    cpus = 0
    for line in text.splitlines()[: MAX_CPUS + 2]:
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "cpu":
            parsed = [parse_uint(f, limit=MAX_COUNTER) for f in fields[1:11]]
            values = [v for v in parsed if v is not None]
            if len(values) < 4 or len(values) != len(parsed):
                return None
            idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
            total = sum(values[:8])  # guest time is already counted in user
            busy = total - idle
        elif fields[0].startswith("cpu"):
            cpus += 1
    if busy is None or total is None:
        return None
    return busy, total, max(cpus, 1)


def parse_meminfo(text: str) -> tuple[int, int] | None:
    """``(used, total)`` bytes from /proc/meminfo: MemTotal - MemAvailable."""
    found: dict[str, int] = {}
    for line in text.splitlines()[:100]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        kib = parse_uint(parts[0], limit=MAX_COUNTER // 1024) if parts else None
        if name in ("MemTotal", "MemAvailable") and kib is not None:
            found[name] = kib * 1024
    if "MemTotal" not in found or "MemAvailable" not in found:
        return None
    total = found["MemTotal"]
    return max(total - found["MemAvailable"], 0), total


def parse_loadavg(text: str) -> tuple[float, float, float]:
    parts = text.split()[:3]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return (0.0, 0.0, 0.0)
    if len(values) != 3 or not all(math.isfinite(v) and 0 <= v < 1e6 for v in values):
        return (0.0, 0.0, 0.0)
    return (values[0], values[1], values[2])


def host_cpu(before: HostSample, after: HostSample) -> float:
    """Percent of one core the whole host used between two samples (up to 100 x cpus)."""
    total = after.cpu_all - before.cpu_all
    busy = after.cpu_busy - before.cpu_busy
    if total <= 0 or busy < 0:
        return 0.0
    return round(min(busy / total, 1.0) * 100.0 * after.cpus, 2)


def node_record(
    node: str,
    wall: float,
    seconds: float,
    refresh: float,
    host: tuple[HostSample, HostSample] | None,
    replicas: Sequence[ReplicaUsage],
) -> UsageRecord:
    """The ``usage/<node>`` record; replicas sorted by service and replica, at most ``MAX_REPLICAS``."""
    ordered = tuple(sorted(replicas, key=lambda r: (r.service, r.replica))[:MAX_REPLICAS])
    if host is None:
        return UsageRecord(node=node, sampled_at=wall, interval=seconds, refresh=refresh, replicas=ordered)
    before, after = host
    return UsageRecord(
        node=node,
        sampled_at=wall,
        interval=round(seconds, 3),
        refresh=refresh,
        cpu=host_cpu(before, after),
        cpus=after.cpus,
        memory=after.memory,
        memory_total=after.memory_total,
        load1=after.load[0],
        load5=after.load[1],
        load15=after.load[2],
        disk=after.disk,
        disk_total=after.disk_total,
        replicas=ordered,
    )


# -- when to write -------------------------------------------------------------------------------------

CPU_POINTS = 5.0  # percent of one core
MEMORY_BYTES = 8 * 2**20
RELATIVE = 0.25  # CPU and I/O: a quarter of the last written value
MEMORY_RELATIVE = 0.10
IO_BYTES = 64 * 1024.0  # per second


def _moved(old: float, new: float, absolute: float, relative: float) -> bool:
    return abs(new - old) >= max(absolute, relative * abs(old))


def _replica_moved(old: ReplicaUsage, new: ReplicaUsage) -> bool:
    if old.memory_limit != new.memory_limit:
        return True
    if _moved(old.cpu, new.cpu, CPU_POINTS, RELATIVE) or _moved(old.memory, new.memory, MEMORY_BYTES, MEMORY_RELATIVE):
        return True
    return any(_moved(getattr(old, f), getattr(new, f), IO_BYTES, RELATIVE) for f in ("rx", "tx", "read", "write"))


def worth_writing(written: UsageRecord | None, new: UsageRecord, since_written: float) -> bool:
    """Write ``new`` when nothing was written yet, ``refresh`` has passed, or something moved enough."""
    if written is None or since_written >= new.refresh:
        return True
    old: Mapping[tuple[str, int], ReplicaUsage] = {(r.service, r.replica): r for r in written.replicas}
    if set(old) != {(r.service, r.replica) for r in new.replicas}:
        return True
    if any(_replica_moved(old[(r.service, r.replica)], r) for r in new.replicas):
        return True
    return (
        _moved(written.cpu, new.cpu, CPU_POINTS, RELATIVE)
        or _moved(written.memory, new.memory, 4 * MEMORY_BYTES, MEMORY_RELATIVE)
        or _moved(written.load1, new.load1, 0.5, RELATIVE)
        or written.memory_total != new.memory_total
        or written.cpus != new.cpus
    )
