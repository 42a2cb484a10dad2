"""``relocate`` (``meshop volume restore --to-node``): a stateful service moves stop-first to one node."""

from __future__ import annotations

import pytest

from meshop.operator.placement import place
from meshop.operator.view import NodeState, NodeView, Workload


def nodes(**states: NodeState) -> dict[str, NodeView]:
    return {name: NodeView(name, state=state) for name, state in states.items()}


READY = NodeState.READY


def test_the_copy_elsewhere_is_dropped_in_the_plan_that_places_it_on_the_target() -> None:
    """Stop first: B restores only once A's copy stopped and let its lock go."""
    db = Workload("db", failover="none", home="n1", relocate="n3")
    result = place({"db": db}, nodes(n1=READY, n2=READY, n3=READY), {"db": {"n1": 1}})["db"]
    assert dict(result.nodes) == {"n3": 1} and dict(result.placed) == {"n3": 1}
    assert "meshop volume restore --to-node" in result.leaving["n1"]


def test_without_a_relocation_a_stateful_service_stays_on_its_ready_node() -> None:
    db = Workload("db", failover="none", home="n1")
    assert dict(place({"db": db}, nodes(n1=READY, n3=READY), {"db": {"n1": 1}})["db"].nodes) == {"n1": 1}


@pytest.mark.parametrize(
    ("target", "state", "why"),
    [
        ("n3", NodeState.NOT_READY, "the target is NotReady"),
        ("n3", NodeState.SUSPECT, "the target is Suspect: no new work"),
        ("nosuch", READY, "no such node"),
    ],
)
def test_a_target_that_cannot_take_it_leaves_the_copy_where_it_runs(target: str, state: NodeState, why: str) -> None:
    db = Workload("db", failover="none", home="n1", relocate=target)
    result = place({"db": db}, nodes(n1=READY, n2=READY, n3=state), {"db": {"n1": 1}})["db"]
    assert dict(result.nodes) == {"n1": 1}, why  # never stopped for nothing, never placed on n2


def test_placed_anew_it_goes_to_the_target_not_its_home() -> None:
    db = Workload("db", failover="restore-latest", home="n1", relocate="n2")
    assert dict(place({"db": db}, nodes(n1=READY, n2=READY), {})["db"].nodes) == {"n2": 1}


def test_already_on_the_target_it_stays() -> None:
    db = Workload("db", failover="none", home="n2", relocate="n2")
    assert dict(place({"db": db}, nodes(n1=READY, n2=READY), {"db": {"n2": 1}})["db"].nodes) == {"n2": 1}


def test_a_lost_target_does_not_strand_it_failover_applies_again() -> None:
    db = Workload("db", failover="restore-latest", home="n2", relocate="n2")
    result = place({"db": db}, nodes(n1=READY, n2=NodeState.NOT_READY), {"db": {"n2": 1}})["db"]
    assert dict(result.nodes) == {"n1": 1}
