"""``meshop status`` rows from a snapshot: converging is told from failed; nodes are judged live. Pure."""

from __future__ import annotations

import pytest

from meshop.client.cluster import Leader, Snapshot
from meshop.client.status import build_report, classify, node_rows, service_rows
from meshop.errors import Violation
from meshop.model.node import NodeDoc
from meshop.model.records import Condition, NodeRecord, NodeStatus, ServiceStatus
from meshop.operator.desired import ParsedNode, ParsedService
from meshop.operator.view import DesiredService, Workload

NOW = 10_000.0
LEADER = Leader("c1", since=NOW - 600)


def parsed(name: str = "web", generation: int = 7, health_timeout: float = 60.0) -> ParsedService:
    spec = {"image": "img:1", "replicas": 2, "update": {"healthTimeout": health_timeout}}
    desired = DesiredService(name, generation, workload=Workload(name, replicas=2), spec=spec, image="img:1")
    return ParsedService(name, generation, desired)


def status(
    ready: tuple[str, str, str] = ("True", "Ready", "2/2 replicas ready"),
    *,
    generation: int = 7,
    ready_replicas: int = 2,
    since: float = NOW - 100,
    valid: tuple[str, str, str] = ("True", "Valid", ""),
    degraded: tuple[str, str, str] = ("False", "", ""),
) -> ServiceStatus:
    conditions = (
        Condition("Valid", *valid, last_transition=since),
        Condition("Ready", *ready, last_transition=since),
        Condition("Degraded", *degraded, last_transition=since),
    )
    return ServiceStatus(
        "web", generation, conditions, {"n1": 2}, 2, ready_replicas, image="img:1", created_at=NOW - 900
    )


def snap(**kw: object) -> Snapshot:
    return Snapshot(now=NOW, leader=kw.pop("leader", LEADER), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("doc", "st", "expected"),
    [
        pytest.param(parsed(), status(), ("Healthy", "", ""), id="ready"),
        pytest.param(parsed(), None, ("Pending", "Pending"), id="no-status-yet"),
        pytest.param(parsed(generation=9), status(), ("Pending", "Pending"), id="older-generation"),
        pytest.param(
            parsed(),
            status(("False", "Progressing", "0/2 replicas ready; waiting"), ready_replicas=0),
            ("Progressing", "Progressing"),
            id="agents-not-there-yet",
        ),
        pytest.param(
            parsed(),
            status(("False", "Pulling", "pulling"), ready_replicas=0),
            ("Progressing", "Pulling"),
            id="pulling",
        ),
        pytest.param(
            parsed(health_timeout=60),
            status(("False", "Unhealthy", "n1: 0/2 pass"), ready_replicas=0, since=NOW - 10),
            ("Progressing", "Unhealthy"),
            id="unhealthy-within-the-health-timeout-is-still-starting",
        ),
        pytest.param(
            parsed(health_timeout=5),
            status(("False", "Unhealthy", "n1: 0/2 pass"), ready_replicas=0, since=NOW - 10),
            ("Failed", "Unhealthy"),
            id="unhealthy-past-the-health-timeout-failed",
        ),
        pytest.param(
            parsed(),
            status(("False", "ImagePullFailed", "n1: pull access denied"), ready_replicas=0),
            ("Failed", "ImagePullFailed", "n1: pull access denied"),
            id="image-pull-failed",
        ),
        pytest.param(
            parsed(),
            status(("False", "NoMatchingNode", "0/2 placed"), ready_replicas=1),
            ("Degraded", "NoMatchingNode"),
            id="some-serve",
        ),
        pytest.param(
            parsed(),
            status(valid=("False", "Invalid", "spec.ports[0].container: 70000 is too big")),
            ("Failed", "Invalid", "spec.ports[0].container: 70000 is too big"),
            id="invalid-even-while-the-last-version-runs",
        ),
        pytest.param(
            parsed(),
            status(degraded=("True", "RouteConflict", "host taken by api")),
            ("Degraded", "RouteConflict"),
            id="route-conflict",
        ),
        pytest.param(None, status(), ("Terminating", "Deleted"), id="document-deleted"),
    ],
)
def test_health_tells_converging_from_failed(doc, st, expected) -> None:  # type: ignore[no-untyped-def]
    got = classify(doc, st, snap())
    assert got[: len(expected)] == expected


def test_pending_says_when_no_controller_leads() -> None:
    _, _, message = classify(parsed(), None, snap(leader=None))
    assert message == "generation 7 not rolled up yet: no controller is leading"


def test_service_row_and_check() -> None:
    n1 = {"records": {"n1": record("n1")}, "agents": {"n1": "passing"}}
    report = build_report(snap(services={"web": parsed()}, statuses={"web": status()}, **n1))
    (row,) = report.services
    assert (row.name, row.ready, row.desired, dict(row.nodes), row.image, row.health) == (
        "web",
        2,
        2,
        {"n1": 2},
        "img:1",
        "Healthy",
    )
    assert row.created_at == NOW - 900
    assert report.all_ready
    assert not build_report(snap(services={"web": parsed()}, statuses={"web": status()})).all_ready  # n1 unknown
    pending = build_report(snap(services={"web": parsed(), "new": parsed("new", 3)}, statuses={"web": status()}, **n1))
    assert [(r.name, r.health, r.desired) for r in pending.services] == [("new", "Pending", 2), ("web", "Healthy", 2)]
    assert not pending.all_ready


def record(name: str, **labels: str) -> NodeRecord:
    return NodeRecord(name, f"10.0.0.{name[-1]}", labels, version="0.1.0")


def test_nodes_are_judged_live_and_the_controllers_verdict_says_since_when() -> None:
    docs = {
        "n2": ParsedNode(NodeDoc("n2", cordon=True)),
        "n3": ParsedNode(NodeDoc("n3", cordon=True, drain=True)),
        "n5": ParsedNode(None, (Violation("spec.cordon", "must be a boolean"),)),
        "n6": ParsedNode(NodeDoc("n6")),
    }
    snapshot = snap(
        records={n: record(n, zone="a") for n in ("n1", "n2", "n3", "n4", "n5")},
        node_docs=docs,
        agents={"n1": "passing", "n2": "warning", "n3": "passing", "n4": "critical", "n5": "passing"},
        node_statuses={
            "n1": NodeStatus("n1", "Ready", NOW - 50),
            "n4": NodeStatus("n4", "NotReady", NOW - 40, "agent check critical"),
        },
        statuses={"web": status()},
    )
    rows = {row.name: row for row in node_rows(snapshot)}
    assert {n: (r.status, r.ready) for n, r in rows.items()} == {
        "n1": ("Ready", True),
        "n2": ("Cordoned", True),
        "n3": ("Draining", True),
        "n4": ("NotReady", False),
        "n5": ("Cordoned", True),
        "n6": ("NotReady", False),
    }
    assert rows["n1"].services == ("web",) and rows["n1"].last_seen == NOW
    assert rows["n1"].labels == {"zone": "a"} and rows["n1"].address == "10.0.0.1"
    assert rows["n4"].last_seen == NOW - 40
    assert rows["n4"].message == "agent check critical for 40s; its work is placed elsewhere"
    assert rows["n5"].message.startswith("invalid Node document (cordoned until fixed): spec.cordon: must be")
    assert rows["n6"].message == "node record missing" and rows["n6"].last_seen is None


def test_a_node_unhealthy_within_the_grace_period_keeps_its_work() -> None:
    snapshot = snap(
        records={"n1": record("n1")},
        agents={},  # the agent deregistered
        node_statuses={"n1": NodeStatus("n1", "Suspect", NOW - 3, "agent not registered")},
    )
    (row,) = node_rows(snapshot)
    assert row.status == "NotReady"
    assert row.message == "agent not registered for 3s; keeps its work until the grace period ends"


def test_fingerprint_ignores_the_passage_of_time() -> None:
    snapshot = snap(records={"n1": record("n1")}, agents={"n1": "passing"}, statuses={"web": status()})
    later = Snapshot(**{**snapshot.__dict__, "now": NOW + 30})
    assert build_report(snapshot).fingerprint() == build_report(later).fingerprint()
    assert service_rows(later) == service_rows(snapshot)
