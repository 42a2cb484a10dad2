"""Node readiness over time with an injected clock: grace period, NodeLost / NodeReady transitions."""

from __future__ import annotations

import pytest

from meshop.operator.nodes import NodeHealth, assess, next_deadline, problems_of, stable_for
from meshop.operator.view import NodeState

READY, SUSPECT, NOT_READY = NodeState.READY, NodeState.SUSPECT, NodeState.NOT_READY
GRACE = 30.0
WALL = 1_700_000_000.0  # the wall clock at monotonic 0: the two clocks differ, as they do


@pytest.mark.parametrize(
    ("known", "records", "agents", "expected"),
    [
        pytest.param({"n1"}, {"n1"}, {"n1": "passing"}, {"n1": None}, id="healthy"),
        pytest.param({"n1"}, {"n1"}, {"n1": "warning"}, {"n1": None}, id="warning-counts-as-alive"),
        pytest.param({"n1"}, {"n1"}, {"n1": "critical"}, {"n1": "agent check critical"}, id="check-critical"),
        pytest.param({"n1"}, {"n1"}, {}, {"n1": "agent not registered"}, id="no-agent-registration"),
        pytest.param({"n1"}, set(), {"n1": "passing"}, {"n1": "node record missing"}, id="record-gone"),
    ],
)
def test_problems_of(known: set[str], records: set[str], agents: dict[str, str], expected: dict) -> None:
    assert problems_of(known, dict.fromkeys(records), agents) == expected


def test_unhealthy_node_is_suspect_until_the_grace_period_ends_then_not_ready() -> None:
    health, events = assess({}, {"n1": None, "n2": None}, now=100.0, wall=WALL + 100.0, grace=GRACE)
    assert {k: h.state for k, h in health.items()} == {"n1": READY, "n2": READY}
    assert events == []

    health, events = assess(
        health, {"n1": "agent check critical", "n2": None}, now=110.0, wall=WALL + 110.0, grace=GRACE
    )
    assert health["n1"] == NodeHealth(SUSPECT, 110.0, "agent check critical", WALL + 110.0)
    assert events == []
    assert next_deadline(health, 110.0, GRACE) == pytest.approx(30.0)

    health, events = assess(
        health, {"n1": "agent check critical", "n2": None}, now=139.9, wall=WALL + 139.9, grace=GRACE
    )
    assert health["n1"].state is SUSPECT
    assert next_deadline(health, 139.9, GRACE) == pytest.approx(0.1)

    health, events = assess(
        health, {"n1": "agent check critical", "n2": None}, now=140.0, wall=WALL + 140.0, grace=GRACE
    )
    assert health["n1"].state is NOT_READY
    assert [(e.node, e.kind) for e in events] == [("n1", "NodeLost")]
    assert "agent check critical for 30s" in events[0].message
    assert next_deadline(health, 140.0, GRACE) is None

    health, events = assess(
        health, {"n1": "agent check critical", "n2": None}, now=200.0, wall=WALL + 200.0, grace=GRACE
    )
    assert events == []  # reported once

    health, events = assess(health, {"n1": None, "n2": None}, now=210.0, wall=WALL + 210.0, grace=GRACE)
    assert health["n1"] == NodeHealth(READY, ready_since=210.0)  # stable from now on, for rebalancing
    assert [(e.node, e.kind) for e in events] == [("n1", "NodeReady")]


def test_a_blip_shorter_than_the_grace_period_resets() -> None:
    health, _ = assess({}, {"n1": "agent check critical"}, now=0.0, wall=WALL + 0.0, grace=GRACE)
    health, _ = assess(health, {"n1": None}, now=20.0, wall=WALL + 20.0, grace=GRACE)
    health, _ = assess(health, {"n1": "agent check critical"}, now=40.0, wall=WALL + 40.0, grace=GRACE)
    assert health["n1"].state is SUSPECT and health["n1"].unhealthy_since == 40.0
    assert health["n1"].unhealthy_at == WALL + 40.0
    health, events = assess(health, {"n1": "agent check critical"}, now=60.0, wall=WALL + 60.0, grace=GRACE)
    assert health["n1"].state is SUSPECT and events == []


def test_recovering_from_suspect_is_not_an_event_and_forgotten_nodes_drop_out() -> None:
    health, _ = assess({}, {"n1": "node record missing", "n2": None}, now=0.0, wall=WALL + 0.0, grace=GRACE)
    health, events = assess(health, {"n1": None}, now=5.0, wall=WALL + 5.0, grace=GRACE)
    assert events == []
    assert set(health) == {"n1"}


def test_node_status_records_move_their_time_only_on_a_state_change() -> None:
    from meshop.model.records import NodeStatus
    from meshop.operator.nodes import node_statuses
    from meshop.operator.view import NodeView

    first = node_statuses({"n1": NodeView("n1")}, {}, now=100.0)
    assert first == {"n1": NodeStatus("n1", "Ready", 100.0)}
    assert node_statuses({"n1": NodeView("n1")}, first, now=150.0) == first  # idle: nothing to rewrite

    suspect = NodeView("n1", SUSPECT, unhealthy_since=160.0, problem="agent check critical")
    second = node_statuses({"n1": suspect}, first, now=170.0)
    assert second == {"n1": NodeStatus("n1", "Suspect", 160.0, "agent check critical")}
    lost = NodeView("n1", NOT_READY, unhealthy_since=160.0, problem="agent check critical")
    assert node_statuses({"n1": lost}, second, now=200.0)["n1"] == NodeStatus(
        "n1", "NotReady", 160.0, "agent check critical"
    )  # since stays "first seen unhealthy", i.e. last seen healthy
    assert node_statuses({"n1": NodeView("n1")}, second, now=210.0)["n1"] == NodeStatus("n1", "Ready", 210.0)
    assert node_statuses({}, second, now=220.0) == {}  # a forgotten node has no record


def test_agent_status_keeps_the_worst_check_per_node() -> None:
    from meshop.operator.nodes import agent_status

    pairs = [("n1", "passing"), ("n1", "critical"), ("n2", "warning"), ("n2", "passing"), ("n3", "bogus")]
    assert agent_status(pairs) == {"n1": "critical", "n2": "warning", "n3": "bogus"}


@pytest.mark.parametrize("step", [3600.0, -3600.0, 10.0, -10.0], ids=["+1h", "-1h", "+10s", "-10s"])
def test_a_wall_clock_step_moves_no_grace_period(step: float) -> None:
    """The grace period runs on the monotonic clock: an NTP step of the wall clock neither ends it early
    nor stretches it, and the wall stamp people read stays the one first taken."""
    health, _ = assess({}, {"n1": "agent check critical", "n2": None}, now=0.0, wall=WALL, grace=GRACE)
    health, events = assess(
        health, {"n1": "agent check critical", "n2": None}, now=5.0, wall=WALL + 5.0 + step, grace=GRACE
    )
    assert (health["n1"].state, health["n2"].state, events) == (SUSPECT, READY, [])
    assert health["n1"].unhealthy_at == WALL
    assert next_deadline(health, 5.0, GRACE) == pytest.approx(25.0)
    health, events = assess(
        health, {"n1": "agent check critical", "n2": None}, now=30.0, wall=WALL + 30.0 + step, grace=GRACE
    )
    assert health["n1"].state is NOT_READY and [(e.node, e.kind) for e in events] == [("n1", "NodeLost")]
    assert health["n2"].state is READY


# --- a lost node comes back by reporting back: its record written since it turned unhealthy -------------

BAD = {"n1": "agent check critical"}
GOOD: dict[str, str | None] = {"n1": None}


def lost(record_index: int = 7) -> dict[str, NodeHealth]:
    """n1 unhealthy from t=100 (its record then at ``record_index``), NotReady at t=130."""
    health, _ = assess({}, BAD, now=100.0, wall=WALL + 100.0, grace=GRACE, indexes={"n1": record_index})
    health, events = assess(health, BAD, now=130.0, wall=WALL + 130.0, grace=GRACE, indexes={"n1": record_index})
    assert health["n1"].state is NOT_READY and health["n1"].record_index == record_index
    assert [e.kind for e in events] == ["NodeLost"]
    return health


def test_a_lost_node_healthy_again_waits_for_its_record_then_is_ready() -> None:
    """Power-on: the catalog may show the old passing check before the agent runs; only the record its
    agent writes after its first pass (stale copies gone) brings the node back."""
    health = lost()
    health, events = assess(health, GOOD, now=140.0, wall=WALL + 140.0, grace=GRACE, indexes={"n1": 7})
    assert health["n1"].state is NOT_READY and health["n1"].problem.startswith("healthy again, but")
    assert health["n1"].back_since == 140.0 and events == []
    assert next_deadline(health, 140.0, GRACE) == pytest.approx(GRACE)  # the catch-all below
    health, events = assess(health, GOOD, now=141.0, wall=WALL + 141.0, grace=GRACE, indexes={"n1": 9})
    assert health["n1"] == NodeHealth(READY, ready_since=141.0)  # stable from the report, not from 140
    assert [e.kind for e in events] == ["NodeReady"]


def test_a_record_written_while_suspect_counts() -> None:
    """The agent reported back while the node was still Suspect (the catalog lagged): the index noted is
    the one from when it turned unhealthy, so the node is not stuck."""
    health, _ = assess({}, BAD, now=100.0, wall=WALL, grace=GRACE, indexes={"n1": 7})
    health, _ = assess(health, BAD, now=130.0, wall=WALL, grace=GRACE, indexes={"n1": 9})
    assert health["n1"].state is NOT_READY and health["n1"].record_index == 7
    health, events = assess(health, GOOD, now=131.0, wall=WALL, grace=GRACE, indexes={"n1": 9})
    assert health["n1"].state is READY and [e.kind for e in events] == ["NodeReady"]


def test_a_node_healthy_for_a_grace_period_without_reporting_back_is_ready_all_the_same() -> None:
    health = lost()
    health, _ = assess(health, GOOD, now=140.0, wall=WALL, grace=GRACE, indexes={"n1": 7})
    health, _ = assess(health, GOOD, now=169.0, wall=WALL, grace=GRACE, indexes={"n1": 7})
    assert health["n1"].state is NOT_READY
    health, events = assess(health, GOOD, now=170.0, wall=WALL, grace=GRACE, indexes={"n1": 7})
    assert health["n1"].state is READY and [e.kind for e in events] == ["NodeReady"]


def test_unhealthy_again_before_reporting_back_restarts_the_wait() -> None:
    health = lost()
    health, _ = assess(health, GOOD, now=140.0, wall=WALL, grace=GRACE, indexes={"n1": 7})
    health, _ = assess(health, BAD, now=150.0, wall=WALL, grace=GRACE, indexes={"n1": 7})
    assert health["n1"].state is NOT_READY and health["n1"].back_since is None
    health, _ = assess(health, GOOD, now=175.0, wall=WALL, grace=GRACE, indexes={"n1": 7})
    assert health["n1"].state is NOT_READY and health["n1"].back_since == 175.0


def test_without_indexes_health_alone_decides() -> None:
    health = lost()
    health, events = assess(health, GOOD, now=140.0, wall=WALL, grace=GRACE)
    assert health["n1"].state is READY and [e.kind for e in events] == ["NodeReady"]


def test_stability_counts_from_the_last_return_and_a_flap_starts_it_again() -> None:
    """Rebalancing moves go only to nodes Ready for a while: a blip (Suspect for one pass) resets the count."""
    health, _ = assess({}, {"n1": None}, now=100.0, wall=WALL, grace=GRACE)
    health, _ = assess(health, {"n1": None}, now=150.0, wall=WALL, grace=GRACE)
    assert stable_for(health, 160.0) == {"n1": 60.0}
    health, _ = assess(health, {"n1": "agent check critical"}, now=161.0, wall=WALL, grace=GRACE)
    assert stable_for(health, 162.0) == {}  # Suspect: no stability at all
    health, _ = assess(health, {"n1": None}, now=170.0, wall=WALL, grace=GRACE)
    assert stable_for(health, 175.0) == {"n1": 5.0}  # back, counted from its return
