"""`meshop rebalance`'s plan text and `meshop status`'s rebalancing line, from the controller's record."""

from __future__ import annotations

from meshop.client.rebalance import after_moves, format_plan, needs_request, status_line
from meshop.model.records import RebalanceMove, RebalanceStatus

PENDING = (
    RebalanceMove("a", "n1", "n3", "n1 runs 2 replicas of a, n3 0", policy="manual"),
    RebalanceMove("b", "n2", "n3", "n2 runs 2 replicas of b, n3 0", policy="auto"),
)
PLACEMENTS = {"a": {"n1": 2, "n2": 1}, "b": {"n1": 1, "n2": 2}}


def test_the_plan_shows_each_service_before_and_after_like_diff() -> None:
    text = format_plan(RebalanceStatus("manual", pending=PENDING), PLACEMENTS, 1000.0)
    assert text.splitlines() == [
        "rebalance (as the controller planned it at its last pass; cluster policy manual):",
        "  service/a: n1=2, n2=1 -> n1=1, n2=1, n3=1 (waits for `meshop rebalance`)",
        "    n1 -> n3: n1 runs 2 replicas of a, n3 0",
        "  service/b: n1=1, n2=2 -> n1=1, n2=1, n3=1",
        "    n2 -> n3: n2 runs 2 replicas of b, n3 0",
    ]


def test_balanced_in_flight_held_and_waiting_are_said() -> None:
    record = RebalanceStatus(
        "auto",
        moves=(RebalanceMove("c", "n1", "n3", "", 990.0, "auto"),),
        held={"d": "2/3 replicas Ready"},
        waiting={"n4": "not yet stable (Ready for less than 60s)"},
    )
    text = format_plan(record, {}, 1000.0)
    assert "nothing to move: the placement is balanced" in text
    assert "in flight: service/c n1 -> n3 (start-first, started 10s ago)" in text
    assert "held: service/d: 2/3 replicas Ready" in text
    assert "waiting: node n4: not yet stable" in text


def test_status_line_only_when_out_of_balance_and_says_what_rebalance_would_do() -> None:
    assert status_line(None) is None
    assert status_line(RebalanceStatus("auto", held={"d": "x"})) is None  # balanced as far as it can be
    line = status_line(RebalanceStatus("manual", pending=PENDING))
    assert line == (
        "Rebalance: placement out of balance: 2 move(s) pending (a n1 -> n3, b n2 -> n3); `meshop rebalance` runs them"
    )
    assert needs_request(RebalanceStatus("manual", pending=PENDING))
    assert not needs_request(RebalanceStatus("auto", pending=PENDING[1:]))


def test_after_moves() -> None:
    assert after_moves({"n1": 3}, (PENDING[0], RebalanceMove("a", "n1", "n2"))) == {"n1": 1, "n2": 1, "n3": 1}
