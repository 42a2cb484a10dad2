"""Status roll-up: conditions with reasons, transition times, observedGeneration, per-node summary."""

from __future__ import annotations

import pytest

from meshop.errors import Violation
from meshop.model.records import Condition, ServiceStatus
from meshop.operator.placement import INSUFFICIENT_CAPACITY, NODE_LOST, ServicePlacement
from meshop.operator.status import roll_up
from meshop.operator.view import NodeState, RouteSpec
from tests.unit.operator.helpers import assignment, invalid, node, observed, service

NOW = 1000.0
WEB = service("web", 42, replicas=2, route=RouteSpec("web.example.com", "/api"))
NODES = {"n1": node("n1"), "n2": node("n2"), "n3": node("n3", NodeState.NOT_READY)}


def placed(*nodes: str, reason: str = "", message: str = "", wanted: int = 2) -> ServicePlacement:
    counts = dict.fromkeys(nodes, 1)
    return ServicePlacement("web", wanted, counts, counts, reason=reason, message=message)


def conds(status: ServiceStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


A1, A2, A3 = assignment(WEB, "n1"), assignment(WEB, "n2"), assignment(WEB, "n3")

CASES = [
    pytest.param(
        placed("n1", "n2"),
        {"n1": A1, "n2": A2},
        {"n1": observed(A1), "n2": observed(A2)},
        {
            "Valid": ("True", "Valid"),
            "Scheduled": ("True", "Scheduled"),
            "Ready": ("True", "Ready"),
            "Degraded": ("False", ""),
        },
        2,
        id="all-ready",
    ),
    pytest.param(
        placed("n1", "n2"),
        {"n1": A1, "n2": A2},
        {},
        {"Scheduled": ("True", "Scheduled"), "Ready": ("False", "Progressing"), "Degraded": ("False", "")},
        0,
        id="nothing-reported-yet-is-progressing",
    ),
    pytest.param(
        placed("n1", "n2"),
        {"n1": A1, "n2": A2},
        {"n1": observed(A1), "n2": observed(A2, 0, reason="ImagePullFailed", error="pull access denied")},
        {"Ready": ("False", "ImagePullFailed"), "Degraded": ("True", "ImagePullFailed")},
        1,
        id="observed-error-reason",
    ),
    pytest.param(
        placed("n1", "n2"),
        {"n1": A1, "n2": A2},
        {"n1": observed(A1), "n2": observed(A2, 0)},
        {"Ready": ("False", "Progressing"), "Degraded": ("True", "Progressing")},
        1,
        id="running-not-ready-without-a-health-check",
    ),
    pytest.param(
        placed("n1", "n2"),
        {"n1": A1, "n2": A2},
        {"n1": observed(A1, spec_hash="old"), "n2": observed(A2, spec_hash="old")},
        {"Ready": ("False", "Progressing")},
        0,
        id="old-spec-running-does-not-count",
    ),
    pytest.param(
        ServicePlacement(
            "web",
            2,
            {"n1": 1, "n3": 1},
            {"n1": 1},
            stranded={"n3": 1},
            reason=INSUFFICIENT_CAPACITY,
            message="1/2 replicas placed; no room",
        ),
        {"n1": A1, "n3": A3},
        {"n1": observed(A1), "n3": observed(A3)},
        {"Scheduled": ("False", INSUFFICIENT_CAPACITY), "Ready": ("False", NODE_LOST), "Degraded": ("True", NODE_LOST)},
        1,
        id="copy-on-a-lost-node-is-not-ready",
    ),
    pytest.param(
        placed("n1", reason="NoMatchingNode", message="1/2 replicas placed; 0/3 nodes fit"),
        {"n1": A1},
        {"n1": observed(A1)},
        {"Scheduled": ("False", "NoMatchingNode"), "Ready": ("False", "NoMatchingNode")},
        1,
        id="scheduling-failure-explains-not-ready",
    ),
]


@pytest.mark.parametrize(("placement", "assignments", "seen", "expected", "ready"), CASES)
def test_conditions(placement, assignments, seen, expected, ready) -> None:  # type: ignore[no-untyped-def]
    status = roll_up(WEB, placement, assignments, seen, NODES, None, NOW)
    got = conds(status)
    for kind, value in expected.items():
        assert got[kind] == value, (kind, status.condition(kind))
    assert status.ready_replicas == ready
    assert status.observed_generation == 42
    assert all(c.observed_generation == 42 for c in status.conditions)


def test_summary_placement_and_facts() -> None:
    seen = {"n1": observed(A1), "n2": observed(A2, 0, reason="ImagePullFailed", error="pull access denied")}
    status = roll_up(WEB, placed("n1", "n2"), {"n1": A1, "n2": A2}, seen, NODES, None, NOW)
    assert status.placement == {"n1": 1, "n2": 1}
    assert status.nodes == {
        "n1": {"replicas": 1, "ready": 1, "state": "Ready", "reason": "", "error": ""},
        "n2": {"replicas": 1, "ready": 0, "state": "Ready", "reason": "ImagePullFailed", "error": "pull access denied"},
    }
    assert (status.replicas, status.image, status.route, status.spec_hash) == (
        2,
        "img:1",
        "web.example.com/api",
        WEB.spec_hash,
    )
    assert status.condition("Ready").message == "1/2 replicas ready; n2: pull access denied"


def test_transition_time_changes_only_when_the_status_changes() -> None:
    a = {"n1": A1, "n2": A2}
    first = roll_up(WEB, placed("n1", "n2"), a, {}, NODES, None, NOW)
    assert first.condition("Ready") == Condition(
        "Ready", "False", "Progressing", first.condition("Ready").message, NOW, 42
    )

    # same statuses later (message may differ): times kept
    later = roll_up(WEB, placed("n1", "n2"), a, {"n1": observed(A1)}, NODES, first, NOW + 10)
    assert later.condition("Ready").status == "False"
    assert later.condition("Ready").last_transition == NOW
    assert later.condition("Degraded").status == "True"
    assert later.condition("Degraded").last_transition == NOW + 10  # False -> True
    assert later.condition("Valid").last_transition == NOW

    ready = roll_up(WEB, placed("n1", "n2"), a, {"n1": observed(A1), "n2": observed(A2)}, NODES, later, NOW + 20)
    assert ready.condition("Ready").last_transition == NOW + 20
    assert ready.condition("Scheduled").last_transition == NOW


def test_invalid_document_lists_every_error_and_reports_the_running_version() -> None:
    v1 = Violation("spec.replicas", "must be at least 0")
    v2 = Violation("spec.ports[0].container", "must be at most 65535")
    bad = invalid("web", 50, v1, v2, running=WEB)
    previous = roll_up(
        WEB, placed("n1", "n2"), {"n1": A1, "n2": A2}, {"n1": observed(A1), "n2": observed(A2)}, NODES, None, NOW
    )
    status = roll_up(
        bad, None, {"n1": A1, "n2": A2}, {"n1": observed(A1), "n2": observed(A2)}, NODES, previous, NOW + 5
    )
    valid = status.condition("Valid")
    assert (valid.status, valid.reason) == ("False", "Invalid")
    assert valid.message == (
        "spec.replicas: must be at least 0; spec.ports[0].container: must be at most 65535 "
        "(the last valid version keeps running)"
    )
    assert valid.last_transition == NOW + 5
    assert status.observed_generation == 50
    assert status.condition("Scheduled").status == "True"  # the running version stays scheduled
    assert status.condition("Scheduled").last_transition == NOW
    assert conds(status)["Ready"] == ("True", "Ready")
    assert status.spec_hash == WEB.spec_hash


def test_invalid_document_that_never_ran() -> None:
    status = roll_up(invalid("new", 7, Violation("spec.image", "is required")), None, {}, {}, NODES, None, NOW)
    assert conds(status) == {
        "Valid": ("False", "Invalid"),
        "Scheduled": ("Unknown", "Invalid"),
        "Ready": ("False", "Invalid"),
        "Degraded": ("False", ""),
    }
    assert status.condition("Valid").message == "spec.image: is required"


def test_route_conflict_degrades() -> None:
    status = roll_up(
        WEB,
        placed("n1", "n2"),
        {"n1": A1, "n2": A2},
        {"n1": observed(A1), "n2": observed(A2)},
        NODES,
        None,
        NOW,
        route_problem=("RouteConflict", "host web.example.com belongs to service api"),
    )
    assert conds(status)["Degraded"] == ("True", "RouteConflict")
    assert conds(status)["Ready"] == ("True", "Ready")


def test_created_at_is_kept_from_the_previous_status() -> None:
    a = {"n1": A1, "n2": A2}
    first = roll_up(WEB, placed("n1", "n2"), a, {}, NODES, None, NOW)
    assert first.created_at == NOW
    assert roll_up(WEB, placed("n1", "n2"), a, {"n1": observed(A1)}, NODES, first, NOW + 50).created_at == NOW
    legacy = ServiceStatus("web", 42, (Condition("Valid", "True", last_transition=NOW - 99),))  # no createdAt
    assert roll_up(WEB, placed("n1", "n2"), a, {}, NODES, legacy, NOW).created_at == NOW - 99


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        pytest.param(["a", "b"], "a; b", id="short"),
        pytest.param([str(i) for i in range(12)], "0; 1; 2; 3; 4; 5; 6; 7; 8; 9 and 2 more", id="capped"),
        pytest.param(["x" * 1000], "x" * 297 + "...", id="one-long-item-clipped"),
    ],
)
def test_bounded_lists_of_problems(items: list[str], expected: str) -> None:
    from meshop.operator.status import bounded

    assert bounded(items) == expected


def test_not_ready_blames_a_health_check_only_when_there_is_one() -> None:
    """Issue 12: a service without a health check was said to fail "their health check"."""
    from dataclasses import replace

    checked = replace(WEB, spec={**WEB.spec, "health": {"tcp": {"port": 80}}})
    for svc, reason, text in ((WEB, "Progressing", "replicas ready"), (checked, "Unhealthy", "health check")):
        status = roll_up(
            svc, placed("n1", "n2"), {"n1": A1, "n2": A2}, {"n1": observed(A1), "n2": observed(A2, 0)}, NODES, None, NOW
        )
        ready = status.condition("Ready")
        assert ready is not None and ready.reason == reason and text in ready.message
        assert (svc is checked) == ("health check" in ready.message)
