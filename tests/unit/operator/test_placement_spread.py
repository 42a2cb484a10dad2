"""Placement spreads services that request no resources, and never moves what already runs (issue 12).

Before: the tie-break among equally loaded nodes was the node's name, so 200 services without
requests on 3 nodes all landed on the first node (200/0/0).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshop.operator.placement import place
from meshop.operator.view import NodeState, NodeView, Workload

GiB = 1024**3


def per_node(result: Mapping[str, object]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for placement in result.values():
        counts.update(placement.nodes)  # type: ignore[attr-defined]
    return counts


def nodes(*names: str, **kw: object) -> dict[str, NodeView]:
    return {name: NodeView(name, **kw) for name in names}  # type: ignore[arg-type]


def services(count: int, **kw: object) -> dict[str, Workload]:
    return {f"s{i:03d}": Workload(f"s{i:03d}", **kw) for i in range(count)}  # type: ignore[arg-type]


def test_two_hundred_services_without_requests_spread_over_three_nodes_within_ten_percent() -> None:
    counts = per_node(place(services(200), nodes("n1", "n2", "n3"), {}))
    assert sum(counts.values()) == 200
    for node in ("n1", "n2", "n3"):
        assert abs(counts[node] - 200 / 3) <= 0.1 * 200 / 3, counts
    assert max(counts.values()) - min(counts.values()) <= 1, counts


CASES = [
    pytest.param(
        services(6),
        nodes("n1", "n2", "n3"),
        {},
        {"n1": 2, "n2": 2, "n3": 2},
        id="no-requests-round-robin",
    ),
    pytest.param(
        {**services(6), "big": Workload("big", memory=GiB // 100)},
        nodes("n1", "n2", "n3", memory=8 * GiB),
        {"big": {"n1": 1}},
        {"n1": 2, "n2": 3, "n3": 2},  # n1's 1 % only breaks the tie at equal counts
        id="a-small-request-does-not-turn-its-node-away",
    ),
    pytest.param(
        {**services(3), "heavy": Workload("heavy", memory=4 * GiB)},
        nodes("n1", "n2", "n3", memory=8 * GiB),
        {"heavy": {"n1": 1}},
        {"n1": 1, "n2": 2, "n3": 1},
        id="requests-weigh-before-counts",
    ),
    pytest.param(
        services(9),
        nodes("n1", "n2", "n3"),
        {f"s{i:03d}": {"n1": 1} for i in range(6)},
        {"n1": 6, "n2": 2, "n3": 1},
        id="sticky-work-stays-new-work-fills-the-emptier-nodes",
    ),
    pytest.param(
        services(4, replicas=2),
        nodes("n1", "n2", "n3"),
        {},
        {"n1": 3, "n2": 3, "n3": 2},
        id="replicas-count-not-services",
    ),
    pytest.param(
        services(4),
        {**nodes("n1", "n2"), "n3": NodeView("n3", cordon=True)},
        {},
        {"n1": 2, "n2": 2},
        id="cordoned-node-gets-nothing",
    ),
]


@pytest.mark.parametrize(("workloads", "views", "current", "expect"), CASES)
def test_spread_table(
    workloads: dict[str, Workload],
    views: dict[str, NodeView],
    current: dict[str, dict[str, int]],
    expect: dict[str, int],
) -> None:
    result = place(workloads, views, current)
    assert dict(per_node(result)) == expect
    for name, where in current.items():
        assert dict(result[name].nodes) == where  # sticky


node_names = st.lists(st.sampled_from(["n1", "n2", "n3", "n4", "n5"]), min_size=1, max_size=5, unique=True)


@settings(max_examples=150, deadline=None)
@given(node_names, st.lists(st.integers(1, 3), min_size=1, max_size=60))
def test_adding_services_one_by_one_keeps_what_runs_and_stays_balanced(names: list[str], replicas: list[int]) -> None:
    """Services without requests arrive one at a time, each pass starting from the last one's result:
    nothing placed before moves, and replica counts per node never differ by more than one."""
    views = nodes(*names)
    workloads: dict[str, Workload] = {}
    current: dict[str, dict[str, int]] = {}
    for i, count in enumerate(replicas):
        workloads[f"s{i}"] = Workload(f"s{i}", replicas=count, spread=False)
        result = place(workloads, views, current)
        for name, where in current.items():
            assert dict(result[name].nodes) == where
        current = {name: dict(p.nodes) for name, p in result.items()}
        counts = per_node(result)
        spread = [counts.get(n, 0) for n in names]
        assert max(spread) - min(spread) <= 1, counts


@settings(max_examples=150, deadline=None)
@given(
    node_names,
    st.dictionaries(
        st.sampled_from([f"s{i}" for i in range(12)]),
        st.dictionaries(st.sampled_from(["n1", "n2", "n3", "n4", "n5"]), st.just(1), min_size=1, max_size=3),
        max_size=12,
    ),
)
def test_replanning_keeps_every_replica_that_runs_where_it_may(
    names: list[str], running: dict[str, dict[str, int]]
) -> None:
    """Whatever runs on a Ready node that suits its service stays exactly where it is."""
    views = nodes(*names)
    current = {svc: {n: c for n, c in where.items() if n in views} for svc, where in running.items()}
    current = {svc: where for svc, where in current.items() if where}
    workloads = {svc: Workload(svc, replicas=len(where)) for svc, where in current.items()}
    result = place(workloads, views, current)
    for svc, where in current.items():
        assert dict(result[svc].nodes) == where


def test_not_ready_nodes_lose_their_work_to_the_emptiest_ready_node() -> None:
    views = {**nodes("n1", "n2"), "n3": NodeView("n3", state=NodeState.NOT_READY)}
    current = {"a": {"n1": 1}, "b": {"n1": 1}, "c": {"n3": 1}}
    result = place(services(0) | {k: Workload(k) for k in current}, views, current)
    assert dict(result["c"].nodes) == {"n2": 1}
