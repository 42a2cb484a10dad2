"""The rebalance planner: which moves balance a placement, who may move, where to, how fast. Tables."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshop.operator.rebalance import (
    AUTO,
    MANUAL,
    NOT_SETTLED,
    OFF,
    Candidate,
    Decision,
    Move,
    RebalanceSettings,
    choose,
    effective_policy,
    has_stateful_volume,
    propose,
)
from meshop.operator.view import NodeState, NodeView, Workload

SETTINGS = RebalanceSettings(policy=AUTO, stable_for=30.0, interval=5.0, max_in_flight=1)
STABLE = {"n1": 600.0, "n2": 600.0, "n3": 600.0}
NODES = {n: NodeView(n) for n in ("n1", "n2", "n3")}
LOST_N3 = {"a": {"n1": 2, "n2": 1}, "b": {"n1": 1, "n2": 2}, "c": {"n1": 2, "n2": 1}}  # 9 replicas on n1/n2


def cands(counts: dict[str, dict[str, int]], policy: str = AUTO, **workload: object) -> dict[str, Candidate]:
    return {
        name: Candidate(Workload(name, replicas=sum(per.values()), spread=False, **workload), policy, sum(per.values()))  # type: ignore[arg-type]
        for name, per in counts.items()
    }


def moves(decision: Decision) -> list[tuple[str, str, str]]:
    return [(m.service, m.source, m.target) for m in decision.proposal]


def test_a_returning_node_gets_its_share_back_one_move_per_service() -> None:
    decision = propose(cands(LOST_N3), NODES, LOST_N3, STABLE, SETTINGS)
    assert moves(decision) == [("a", "n1", "n3"), ("b", "n2", "n3"), ("c", "n1", "n3")]
    assert "n1 runs 2 replicas of a, n3 0" in decision.proposal[0].reason
    after = Counter[str]()
    for per in LOST_N3.values():
        after.update(per)
    for m in decision.proposal:
        after[m.source] -= 1
        after[m.target] += 1
    assert after == Counter({"n1": 3, "n2": 3, "n3": 3})


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        pytest.param({"a": {"n1": 1, "n2": 1, "n3": 1}}, [], id="balanced"),
        pytest.param({"a": {"n1": 2, "n2": 1, "n3": 1}}, [], id="skew-1-and-totals-within-1"),
        pytest.param({"a": {"n1": 3}}, [("a", "n1", "n2"), ("a", "n1", "n3")], id="all-on-one-node"),
        pytest.param(  # each service skewed by one, but n1 runs 3 in all and n3 none: the node skew moves one
            {"a": {"n1": 1, "n2": 1}, "b": {"n1": 1, "n2": 1}, "c": {"n1": 1}},
            [("a", "n1", "n3")],
            id="node-skew-moves-without-worsening-a-service",
        ),
    ],
)
def test_moves_table(counts: dict[str, dict[str, int]], expected: list[tuple[str, str, str]]) -> None:
    assert moves(propose(cands(counts), NODES, counts, STABLE, SETTINGS)) == expected


@pytest.mark.parametrize(
    ("nodes", "stable", "expected_wait"),
    [
        pytest.param({**NODES, "n3": NodeView("n3", NodeState.SUSPECT)}, STABLE, "Suspect", id="suspect"),
        pytest.param({**NODES, "n3": NodeView("n3", NodeState.NOT_READY)}, STABLE, "NotReady", id="not-ready"),
        pytest.param({**NODES, "n3": NodeView("n3", cordon=True)}, STABLE, "cordoned", id="cordoned"),
        pytest.param({**NODES, "n3": NodeView("n3", drain=True)}, STABLE, "draining", id="draining"),
        pytest.param(NODES, {**STABLE, "n3": 29.0}, "not yet stable", id="returned-29s-ago"),
        pytest.param(NODES, {"n1": 600.0, "n2": 600.0}, "not yet stable", id="flapped-no-stability"),
    ],
)
def test_no_moves_onto_a_node_that_is_not_ready_and_stable(
    nodes: dict[str, NodeView], stable: dict[str, float], expected_wait: str
) -> None:
    decision = propose(cands(LOST_N3), nodes, LOST_N3, stable, SETTINGS)
    assert decision.proposal == ()
    if expected_wait == "not yet stable":  # only a node that would receive moves is reported waiting
        assert expected_wait in decision.waiting["n3"]


def test_a_node_stable_for_exactly_the_window_receives_moves() -> None:
    decision = propose(cands(LOST_N3), NODES, LOST_N3, {**STABLE, "n3": 30.0}, SETTINGS)
    assert {m.target for m in decision.proposal} == {"n3"} and decision.waiting == {}


@pytest.mark.parametrize(
    ("workload", "policy"),
    [
        pytest.param({"node": "n1"}, AUTO, id="pinned"),
        pytest.param({"group": "g"}, AUTO, id="group"),
        pytest.param({"stateful": True}, AUTO, id="stateful"),
        pytest.param({}, OFF, id="policy-off"),
    ],
)
def test_never_moved(workload: dict[str, object], policy: str) -> None:
    counts = {"a": {"n1": 3}}
    decision = propose(cands(counts, policy, **workload), NODES, counts, STABLE, SETTINGS)
    assert decision.proposal == () and decision.held == {}


@pytest.mark.parametrize(
    ("change", "held"),
    [
        pytest.param({"ready": 2}, NOT_SETTLED, id="not-all-ready"),
        pytest.param({"settled": False}, NOT_SETTLED, id="moving-stranded-or-updating"),
        pytest.param({"in_flight": True}, "a move is in flight", id="one-move-per-service"),
    ],
)
def test_a_service_not_settled_is_held(change: dict[str, object], held: str) -> None:
    counts = {"a": {"n1": 3}}
    base = cands(counts)["a"]
    c = Candidate(base.workload, base.policy, **{"ready": base.ready, **change})  # type: ignore[arg-type]
    decision = propose({"a": c}, NODES, counts, STABLE, SETTINGS)
    assert decision.proposal == () and decision.held == {"a": held}


def test_targets_satisfy_nodeselector_and_spread() -> None:
    nodes = {**NODES, "n1": NodeView("n1", labels={"disk": "ssd"}), "n4": NodeView("n4", labels={"disk": "ssd"})}
    stable = {**STABLE, "n4": 600.0}
    counts = {"a": {"n1": 3}}
    c = {"a": Candidate(Workload("a", replicas=3, spread=False, node_selector={"disk": "ssd"}), AUTO, 3)}
    assert moves(propose(c, nodes, counts, stable, SETTINGS)) == [("a", "n1", "n4")]  # n2, n3 do not match
    spread = {"a": Candidate(Workload("a", replicas=2), AUTO, 2)}
    assert moves(propose(spread, NODES, {"a": {"n1": 1, "n2": 1}}, STABLE, SETTINGS)) == []


def test_capacity_and_host_ports_are_respected() -> None:
    nodes = {**NODES, "n3": NodeView("n3", memory=100)}
    counts = {"a": {"n1": 2, "n2": 1}}
    big = {"a": Candidate(Workload("a", replicas=3, spread=False, memory=200), AUTO, 3)}
    assert moves(propose(big, nodes, counts, STABLE, SETTINGS)) == []
    ports = {"a": Candidate(Workload("a", replicas=3, spread=False, host_ports=frozenset({"80/tcp"})), AUTO, 3)}
    other = {"b": Workload("b", host_ports=frozenset({"80/tcp"}))}
    taken = {**counts, "b": {"n3": 1}}
    assert moves(propose(ports, NODES, taken, STABLE, SETTINGS, other)) == []


def test_choose_rate_limits_and_runs_one_move_per_service() -> None:
    counts = {"a": {"n1": 3}, "b": {"n2": 3}}
    c = cands(counts)
    decision = propose(c, NODES, counts, STABLE, SETTINGS)
    assert [m.service for m in decision.proposal].count("a") == 2
    wide = RebalanceSettings(AUTO, 30.0, 5.0, max_in_flight=3)
    started = choose(decision, c, 0, None, False, wide).start
    assert sorted(m.service for m in started) == ["a", "b"]  # the second move of each waits for the first
    assert choose(decision, c, 0, 4.9, False, SETTINGS).start == ()  # 4.9 s after the last start: too soon
    assert len(choose(decision, c, 0, 5.0, False, SETTINGS).start) == 1
    assert choose(decision, c, 1, 60.0, False, SETTINGS).start == ()  # one in flight: the limit is reached


def test_manual_moves_only_on_request_and_off_never() -> None:
    c = cands(LOST_N3, MANUAL)
    decision = propose(c, NODES, LOST_N3, STABLE, SETTINGS)
    assert len(decision.proposal) == 3  # shown as pending
    assert choose(decision, c, 0, None, False, SETTINGS).start == ()
    assert choose(decision, c, 0, None, True, SETTINGS).start == (decision.proposal[0],)


def test_effective_policy_and_stateful_spec() -> None:
    assert effective_policy(Workload("a"), MANUAL) == MANUAL
    assert effective_policy(Workload("a", rebalance=OFF), AUTO) == OFF
    assert has_stateful_volume({"volumes": [{"name": "d", "mountPath": "/d", "stateful": True}]})
    assert not has_stateful_volume({"volumes": [{"name": "d", "mountPath": "/d"}]})
    assert not has_stateful_volume({"volumes": "garbage"})


counts_strategy = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d"]),
    st.dictionaries(st.sampled_from(["n1", "n2", "n3", "n4"]), st.integers(1, 4), min_size=1),
    min_size=1,
)


@settings(max_examples=150, deadline=None)
@given(counts_strategy, st.booleans())
def test_moves_end_balanced_and_replaying_them_proposes_nothing(
    counts: dict[str, dict[str, int]], spread: bool
) -> None:
    """Convergence: after the proposed moves no move is left, no service's count changed, and with
    spread no node runs two copies of a service that did not already."""
    nodes = {n: NodeView(n) for n in ("n1", "n2", "n3", "n4")}
    stable = dict.fromkeys(nodes, 600.0)
    if spread:
        counts = {s: dict.fromkeys(per, 1) for s, per in counts.items()}
    c = {
        s: Candidate(Workload(s, replicas=sum(per.values()), spread=spread), AUTO, sum(per.values()))
        for s, per in counts.items()
    }
    decision = propose(c, nodes, counts, stable, SETTINGS)
    after = {s: Counter(per) for s, per in counts.items()}
    for m in decision.proposal:
        assert isinstance(m, Move) and after[m.service][m.source] > 0
        after[m.service][m.source] -= 1
        after[m.service][m.target] += 1
    assert all(sum(after[s].values()) == sum(counts[s].values()) for s in counts)
    if spread:
        assert all(v <= 1 for per in after.values() for v in per.values())
    again = {s: {n: v for n, v in per.items() if v > 0} for s, per in after.items()}
    assert propose(c, nodes, again, stable, SETTINGS).proposal == ()
