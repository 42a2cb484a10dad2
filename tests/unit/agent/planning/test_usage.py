"""The usage rule (``planning/usage.py``): hostile stats answers give no sample, rates as `docker stats`
computes them, /proc parsed strictly, and a record written only when something moved."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from meshop.agent.planning.usage import (
    MAX_COUNTER,
    ContainerSample,
    HostSample,
    host_cpu,
    node_record,
    parse_docker_stats,
    parse_loadavg,
    parse_meminfo,
    parse_proc_stat,
    replica_usage,
    worth_writing,
)
from meshop.model.records import ReplicaUsage

GOOD: dict[str, Any] = {
    "cpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000}, "system_cpu_usage": 40_000_000_000, "online_cpus": 2},
    "memory_stats": {"usage": 60 * 2**20, "limit": 256 * 2**20, "stats": {"total_inactive_file": 10 * 2**20}},
    "networks": {"eth0": {"rx_bytes": 1000, "tx_bytes": 500}, "eth1": {"rx_bytes": 24, "tx_bytes": 0}},
    "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 4096}, {"op": "Write", "value": 8192}]},
}


def _with(path: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    *head, last = path.split(".")
    node = data
    for part in head:
        node = node[part]
    node[last] = value
    return data


def test_a_good_answer() -> None:
    sample = parse_docker_stats(GOOD)
    assert sample == ContainerSample(
        cpu_total=2_000_000_000,
        system_total=40_000_000_000,
        online_cpus=2,
        memory=50 * 2**20,  # usage without the inactive page cache, as docker stats shows it
        memory_limit=256 * 2**20,
        rx=1024,
        tx=500,
        read=4096,
        write=8192,
    )


def test_cgroup_v2_cache_and_percpu_fallback() -> None:
    data = _with("memory_stats.stats", {"inactive_file": 2**20})
    data["cpu_stats"] = {"cpu_usage": {"total_usage": 5, "percpu_usage": [1, 2, 2]}, "system_cpu_usage": 9}
    sample = parse_docker_stats(data)
    assert sample is not None and sample.memory == 59 * 2**20 and sample.online_cpus == 3


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("cpu_stats.cpu_usage.total_usage", True),
        ("cpu_stats.cpu_usage.total_usage", "2000"),
        ("cpu_stats.cpu_usage.total_usage", 1.5),
        ("cpu_stats.cpu_usage.total_usage", -1),
        ("cpu_stats.cpu_usage.total_usage", 10**30),
        ("memory_stats.usage", None),
        ("memory_stats.limit", [1]),
        ("memory_stats", "<b>x</b>"),
        ("cpu_stats", []),
    ],
    ids=repr,
)
def test_hostile_needed_counters_give_no_sample(path: str, value: object) -> None:
    assert parse_docker_stats(_with(path, value)) is None


@pytest.mark.parametrize("data", [None, [], "x", 3, {}], ids=repr)
def test_not_an_object(data: object) -> None:
    assert parse_docker_stats(data) is None


def test_hostile_optional_counters_count_as_nothing() -> None:
    data = _with("networks", {"eth0": {"rx_bytes": 10**40, "tx_bytes": "9"}, "x": "y", "<script>": {"rx_bytes": 7}})
    data["blkio_stats"] = {"io_service_bytes_recursive": [{"op": 1, "value": 5}, "junk", {"op": "read", "value": -3}]}
    data["cpu_stats"]["online_cpus"] = 10**9
    data["memory_stats"]["stats"] = {"total_inactive_file": 10**12}  # more cache than usage: ignored
    sample = parse_docker_stats(data)
    assert sample is not None
    assert (sample.rx, sample.tx, sample.read, sample.write) == (7, 0, 0, 0)
    assert sample.online_cpus == 4096 and sample.memory == 60 * 2**20


def _sample(cpu: int, system: int, rx: int = 0, memory: int = 100, limit: int = 1000) -> ContainerSample:
    return ContainerSample(cpu, system, 2, memory, limit, rx, 0, 0, 0)


@pytest.mark.parametrize(
    ("before", "after", "seconds", "cpu", "rx"),
    [
        # half a core: 0.5 s of CPU in 1 s on a 2-CPU host (2 s of host CPU time)
        (_sample(0, 10**10), _sample(5 * 10**8, 10**10 + 2 * 10**9, rx=1000), 1.0, 50.0, 1000.0),
        # two cores busy
        (_sample(0, 10**10), _sample(4 * 10**9, 10**10 + 4 * 10**9), 2.0, 200.0, 0.0),
        # no system counter: the interval's seconds instead
        (_sample(0, 0), _sample(25 * 10**7, 0, rx=10), 10.0, 2.5, 1.0),
    ],
)
def test_rates(before: ContainerSample, after: ContainerSample, seconds: float, cpu: float, rx: float) -> None:
    usage = replica_usage("web", 0, before, after, seconds)
    assert usage is not None and usage.cpu == pytest.approx(cpu) and usage.rx == pytest.approx(rx)
    assert (usage.memory, usage.memory_limit) == (after.memory, after.memory_limit)


def test_a_counter_that_went_back_gives_no_rate() -> None:
    assert replica_usage("web", 0, _sample(10**9, 10**10), _sample(10, 2 * 10**10), 10.0) is None
    assert replica_usage("web", 0, _sample(0, 0, rx=10), _sample(1, 1, rx=5), 10.0) is None


PROC_STAT = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 50 0 50 350 50 0 0 0 0 0\ncpu1 50 0 50 350 50 0 0 0 0 0\nintr 1\n"


def test_proc_stat() -> None:
    assert parse_proc_stat(PROC_STAT) == (200, 1000, 2)


@pytest.mark.parametrize(
    "text", ["", "cpu 1 2\n", "cpu 1 2 ² 4 5\n", "cpu 1 2 3 -4 5\n", "cpu " + "9" * 5000 + " 1 1 1\n"]
)
def test_proc_stat_refused(text: str) -> None:
    assert parse_proc_stat(text) is None


def test_meminfo_and_loadavg() -> None:
    assert parse_meminfo("MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 400 kB\n") == (600 * 1024, 1000 * 1024)
    assert parse_meminfo("MemTotal: ² kB\nMemAvailable: 1 kB\n") is None
    assert parse_loadavg("0.50 1.25 2.00 1/100 42\n") == (0.5, 1.25, 2.0)
    assert parse_loadavg("nan 1 1") == (0.0, 0.0, 0.0)
    assert parse_loadavg("garbage") == (0.0, 0.0, 0.0)


def _host(busy: int, every: int) -> HostSample:
    return HostSample(busy, every, 2, 600, 1000, (0.5, 0.4, 0.3), 10, 100)


def test_host_cpu_is_percent_of_one_core() -> None:
    assert host_cpu(_host(0, 0), _host(50, 100)) == 100.0  # half of 2 CPUs = one core
    assert host_cpu(_host(50, 100), _host(40, 100)) == 0.0


def _replica(cpu: float = 10.0, memory: int = 100 * 2**20, service: str = "web") -> ReplicaUsage:
    return ReplicaUsage(service=service, replica=0, cpu=cpu, memory=memory, memory_limit=2**30)


BASE = node_record("n1", 1000.0, 10.0, 30.0, (_host(0, 0), _host(50, 100)), [_replica()])


@pytest.mark.parametrize(
    ("new", "since", "expected"),
    [
        (BASE, 5.0, False),  # nothing moved
        (BASE, 30.0, True),  # refresh: readers must see the agent alive
        (replace(BASE, replicas=(_replica(cpu=13.0),)), 5.0, False),  # 3 points: noise
        (replace(BASE, replicas=(_replica(cpu=16.0),)), 5.0, True),  # 6 points
        (replace(BASE, replicas=(_replica(memory=105 * 2**20),)), 5.0, False),  # 5 MiB of 100
        (replace(BASE, replicas=(_replica(memory=120 * 2**20),)), 5.0, True),
        (replace(BASE, replicas=(_replica(), _replica(service="api"))), 5.0, True),  # a new replica
        (replace(BASE, replicas=()), 5.0, True),  # a replica went
        (replace(BASE, load1=BASE.load1 + 1), 5.0, True),
    ],
)
def test_worth_writing(new: Any, since: float, expected: bool) -> None:
    assert worth_writing(BASE, new, since) is expected


def test_first_record_is_written_and_replicas_are_sorted_and_bounded() -> None:
    assert worth_writing(None, BASE, 0.0)
    many = [replace(_replica(), service=f"s{i:04d}") for i in range(1500, 0, -1)]
    record = node_record("n1", 1.0, 10.0, 30.0, None, many)
    assert len(record.replicas) == 1000 and record.replicas[0].service == "s0001"
    assert MAX_COUNTER < 2**63
