"""Table tests for each container's phase and the crash a service reports (meshop/agent/planning/phases.py)."""

from __future__ import annotations

from typing import Any

import pytest

from meshop.agent.planning.phases import FAIL_RESTARTS, Assigned, CrashInfo, Exit, container_phases
from meshop.agent.planning.plan import Container
from meshop.model import ServiceSpec

NOW = 1000.0
STABLE = 10.0
HEALTH = {"http": {"path": "/", "port": "http"}, "interval": "1s"}


def spec(**extra: Any) -> ServiceSpec:
    return ServiceSpec.from_dict({"image": "img:1", "ports": [{"name": "http", "container": 80}], **extra})


def box(cid: str = "c1", state: str = "running", started: float = NOW - 100, code: int = 0, **kw: Any) -> Container:
    return Container(
        id=cid, name=f"web-{cid}", service="web", replica=kw.pop("replica", 0), spec_hash=kw.pop("hash", "h1"),
        config_hash="c", generation=1, image="img:1", state=state, started_at=started, exit_code=code, **kw,
    )  # fmt: skip


def run(containers: list[Container], *, svc: ServiceSpec | None = None, **kw: Any) -> Any:
    assigned = {"web": Assigned(svc or spec(), "h1")}
    serving = kw.pop("serving", {(c.service, c.replica): c.id for c in containers})
    return container_phases(
        "n1",
        assigned,
        serving,
        containers,
        kw.pop("healthy", {}),
        kw.pop("checks", {}),
        kw.pop("infos", {}),
        NOW,
        STABLE,
    )


LOOPING = CrashInfo(last_exit=Exit(3, NOW - 1), restarts=2, loop_since=NOW, loop_restarts=0)


@pytest.mark.parametrize(
    ("container", "kw", "phase"),
    [
        (box(), {}, "Ready"),  # no health check: running past minReadySeconds
        (box(started=NOW - 0.5), {}, "Starting"),  # within minReadySeconds (default 2 s)
        (box(), {"svc": spec(health=HEALTH), "healthy": {"c1": True}}, "Starting"),  # Consul check unknown
        (
            box(),
            {"svc": spec(health=HEALTH), "healthy": {"c1": True}, "checks": {"meshop-n1-web-0": "passing"}},
            "Ready",
        ),
        (
            box(),  # the check passes but another container serves the replica: not this one's readiness
            {
                "svc": spec(health=HEALTH),
                "healthy": {"c1": True},
                "checks": {"meshop-n1-web-0": "passing"},
                "serving": {("web", 0): "other"},
            },
            "Starting",
        ),
        (box(), {"svc": spec(health=HEALTH), "healthy": {"c1": False}}, "Unhealthy"),
        (box(state="restarting"), {}, "CrashLoopBackOff"),
        (box(state="exited", code=3), {"svc": spec(restart="no")}, "Failed"),
        (box(state="exited", code=0), {"svc": spec(restart="no")}, "Completed"),
        (box(state="created"), {}, "NotRunning"),
        (
            box(state="restarting"),
            {"infos": {"c1": CrashInfo(Exit(3, NOW), FAIL_RESTARTS + 1, NOW - 5, FAIL_RESTARTS)}},
            "Failed",
        ),
    ],
    ids=[
        "no-check-ready",
        "no-check-min-ready",
        "probe-only",
        "probe-and-consul",
        "not-serving",
        "unhealthy",
        "restarting",
        "exited-no-restart",
        "completed",
        "created",
        "loop-too-long",
    ],
)
def test_phase_of_each_container(container: Container, kw: dict[str, Any], phase: str) -> None:
    assert run([container], **kw).by_container == {"c1": phase}


def test_a_crash_loop_that_begins_now_is_reported_once_with_its_exit_code() -> None:
    found = run([box(state="restarting")], infos={"c1": LOOPING})
    assert found.crashed == (
        ("service/web", "replica 0 exited with code 3, restarted 2 time(s); restarting with a growing delay"),
    )
    assert found.notes["web"].reason == "CrashLoopBackOff"
    assert "health" not in found.notes["web"].message  # no check exists: never blame one
    later = run(
        [box(state="restarting")], infos={"c1": LOOPING.__class__(**{**LOOPING.__dict__, "loop_since": NOW - 1})}
    )
    assert later.crashed == ()


def test_an_old_spec_crashing_during_an_update_is_not_the_service_failing() -> None:
    found = run([box(state="restarting", hash="old")], infos={"c1": LOOPING})
    assert found.by_container == {"c1": "CrashLoopBackOff"}
    assert found.notes == {} and found.crashed == ()


def test_the_worst_replica_is_what_the_service_reports() -> None:
    failed = box("c2", state="exited", code=4, replica=1)
    looping = box("c1", state="restarting")
    found = run(
        [looping, failed],
        svc=spec(restart="on-failure"),
        infos={"c2": CrashInfo(Exit(4, NOW), 11, NOW - 200, 11), "c1": LOOPING},
    )
    assert found.notes["web"].reason == "Failed"


def test_unassigned_containers_have_no_phase() -> None:
    stray = Container("x", "x", "gone", 0, "h", "c", 1, "img:1", "running")
    assert run([stray]).by_container == {}


@pytest.mark.parametrize(
    ("container", "kw", "requeue"),
    [
        (box(started=NOW - 0.5), {}, 1.5),  # minReadySeconds 2 s elapse in 1.5 s
        (box(started=NOW - 1), {"svc": spec(health=HEALTH)}, 0.25),  # a check about to pass
        (box(), {}, None),  # Ready: nothing changes by itself
        (box(started=NOW - 4), {"infos": {"c1": LOOPING}}, 6.0),  # stable 10 s after its last start
    ],
    ids=["min-ready", "check-pending", "settled", "becoming-stable"],
)
def test_when_to_look_again(container: Container, kw: dict[str, Any], requeue: float | None) -> None:
    found = run([container], **kw).requeue
    assert found == (pytest.approx(requeue) if requeue is not None else None)
