"""Table tests for the agent's planner: for each situation, exactly which actions it plans."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from meshop.agent.planning.plan import (
    Container,
    Create,
    NodePlan,
    Note,
    Pull,
    Remove,
    Replace,
    ServiceTarget,
    Start,
    World,
)
from meshop.agent.planning.planner import plan

IMG = "app:1"
LOCKED = Note("VolumeLocked", "volume data is locked by node n2; it runs there")
NOW = 1000.0


def svc(name: str = "web", **kw: object) -> ServiceTarget:
    base: dict[str, object] = dict(
        name=name,
        replicas=1,
        spec_hash="h1",
        generation=5,
        image=IMG,
        config_hash="c1",
        strategy="stop-first",
        health_timeout=10.0,
        auto_rollback=True,
        has_health=False,
        restart="unless-stopped",
    )
    base.update(kw)
    return ServiceTarget(**base)  # type: ignore[arg-type]


def ctr(cid: str, service: str = "web", replica: int = 0, config_hash: str = "c1", **kw: object) -> Container:
    base: dict[str, object] = dict(
        id=cid,
        name=f"{service}-{replica}-{config_hash}-{cid}",
        service=service,
        replica=replica,
        spec_hash="h1",
        config_hash=config_hash,
        generation=5,
        image=IMG,
        state="running",
        created_at=NOW - 100,
        started_at=NOW - 100,
    )
    base.update(kw)
    return Container(**base)  # type: ignore[arg-type]


def world(**kw: object) -> World:
    base: dict[str, object] = dict(now=NOW, images=frozenset({IMG, "app:2"}))
    base.update(kw)
    return World(**base)  # type: ignore[arg-type]


@dataclass
class Case:
    id: str
    desired: list[ServiceTarget]
    containers: list[Container]
    world: World
    expect: NodePlan
    check_serving: bool = False
    extra: dict[str, object] = field(default_factory=dict)


OLD = ctr("old", config_hash="c0", spec_hash="h0")
NEW_HEALTHY = ctr("new", created_at=NOW - 2, started_at=NOW - 2)
START_FIRST = dict(strategy="start-first", has_health=True)

CASES = [
    Case("nothing-to-do", [], [], world(), NodePlan()),
    Case(
        "new-assignment-creates-every-replica",
        [svc(replicas=3)],
        [],
        world(),
        NodePlan(create=tuple(Create("web", r, "c1", "missing") for r in range(3))),
    ),
    Case(
        "image-missing-pulls-first-and-creates-nothing",
        [svc(replicas=2)],
        [],
        world(images=frozenset()),
        NodePlan(pull=(Pull("web", IMG),), notes={"web": Note("Pulling", f"pulling image {IMG}")}),
    ),
    Case(
        "running-current-is-left-alone-and-served",
        [svc()],
        [ctr("a")],
        world(),
        NodePlan(serving={("web", 0): "a"}),
        check_serving=True,
    ),
    Case(
        "exited-is-started",
        [svc()],
        [ctr("a", state="exited", exit_code=137)],
        world(),
        NodePlan(start=(Start(ctr("a", state="exited", exit_code=137), "stopped"),)),
    ),
    Case(
        "exited-with-restart-no-stays",
        [svc(restart="no")],
        [ctr("a", state="exited", exit_code=1)],
        world(),
        NodePlan(),
    ),
    Case(
        "on-failure-clean-exit-stays",
        [svc(restart="on-failure")],
        [ctr("a", state="exited", exit_code=0)],
        world(),
        NodePlan(),
    ),
    Case(
        "on-failure-crash-is-started",
        [svc(restart="on-failure")],
        [ctr("a", state="exited", exit_code=2)],
        world(),
        NodePlan(start=(Start(ctr("a", state="exited", exit_code=2), "stopped"),)),
    ),
    Case(
        "crash-loop-waits-for-its-restart-backoff",
        [svc()],
        [ctr("a", state="exited", exit_code=1)],
        world(restart_hold=frozenset({"a"})),
        NodePlan(),
    ),
    Case("restarting-by-docker-is-left-alone", [svc()], [ctr("a", state="restarting")], world(), NodePlan()),
    Case(
        "created-leftover-is-replaced",
        [svc()],
        [ctr("a", state="created")],
        world(),
        NodePlan(replace=(Replace((ctr("a", state="created"),), "web", 0, "c1", "created-leftover"),)),
    ),
    Case(
        "created-leftover-is-replaced-even-from-cache",
        [svc()],
        [ctr("a", state="created")],
        world(authoritative=False),
        NodePlan(replace=(Replace((ctr("a", state="created"),), "web", 0, "c1", "created-leftover"),)),
    ),
    Case(
        "dead-is-replaced",
        [svc()],
        [ctr("a", state="dead")],
        world(),
        NodePlan(replace=(Replace((ctr("a", state="dead"),), "web", 0, "c1", "dead"),)),
    ),
    Case(
        "unassigned-service-is-removed",
        [svc()],
        [ctr("a"), ctr("x", service="gone")],
        world(),
        NodePlan(remove=(Remove(ctr("x", service="gone"), "orphan"),)),
    ),
    Case(
        "unassigned-service-kept-when-assignments-from-cache",
        [],
        [ctr("x", service="gone")],
        world(authoritative=False),
        NodePlan(),
    ),
    Case(
        "unreadable-assignment-keeps-its-containers",
        [],
        [ctr("x", service="broken")],
        world(protected=frozenset({"broken"})),
        NodePlan(),
    ),
    Case(
        "scale-down-removes-high-replicas",
        [svc(replicas=1)],
        [ctr("a"), ctr("b", replica=1), ctr("c", replica=-1)],
        world(),
        NodePlan(remove=(Remove(ctr("c", replica=-1), "scale-down"), Remove(ctr("b", replica=1), "scale-down"))),
    ),
    Case(
        "scale-down-waits-for-consul",
        [svc(replicas=1)],
        [ctr("a"), ctr("b", replica=1)],
        world(authoritative=False),
        NodePlan(),
    ),
    Case(
        "replicas-zero-removes-all",
        [svc(replicas=0)],
        [ctr("a")],
        world(),
        NodePlan(remove=(Remove(ctr("a"), "scale-down"),)),
    ),
    Case(
        "stop-first-update-replaces",
        [svc()],
        [OLD],
        world(),
        NodePlan(replace=(Replace((OLD,), "web", 0, "c1", "update"),)),
    ),
    Case(
        "start-first-update-starts-new-next-to-old",
        [svc(**START_FIRST)],
        [OLD],
        world(),
        NodePlan(create=(Create("web", 0, "c1", "surge"),), serving={("web", 0): "old"}, requeue_after=0.25),
        check_serving=True,
    ),
    Case(
        "start-first-with-old-stopped-just-replaces",
        [svc(**START_FIRST)],
        [replace(OLD, state="exited")],
        world(),
        NodePlan(replace=(Replace((replace(OLD, state="exited"),), "web", 0, "c1", "update"),)),
    ),
    Case(
        "start-first-new-healthy-switches-serving-then-drains",
        [svc(**START_FIRST)],
        [OLD, NEW_HEALTHY],
        world(healthy={"new": True}),
        NodePlan(serving={("web", 0): "new"}, requeue_after=1.0),
        check_serving=True,
    ),
    Case(
        "start-first-old-removed-after-drain",
        [svc(**START_FIRST)],
        [OLD, NEW_HEALTHY],
        world(healthy={"new": True}, promoted={"new": NOW - 1.5}),
        NodePlan(remove=(Remove(OLD, "superseded"),), serving={("web", 0): "new"}),
        check_serving=True,
    ),
    Case(
        "start-first-not-yet-drained",
        [svc(**START_FIRST)],
        [OLD, NEW_HEALTHY],
        world(healthy={"new": True}, promoted={"new": NOW - 0.25}),
        NodePlan(serving={("web", 0): "new"}, requeue_after=0.75),
        check_serving=True,
    ),
    Case(
        "start-first-waits-for-health-old-keeps-serving",
        [svc(**START_FIRST)],
        [OLD, NEW_HEALTHY],
        world(healthy={"new": False}),
        NodePlan(serving={("web", 0): "old"}, requeue_after=0.25),
        check_serving=True,
    ),
    Case(
        "start-first-unhealthy-rolls-back",
        [svc(**START_FIRST)],
        [OLD, ctr("new", created_at=NOW - 11)],
        world(healthy={"new": False}),
        NodePlan(
            remove=(Remove(ctr("new", created_at=NOW - 11), "rollback"),),
            serving={("web", 0): "old"},
            rollbacks=("web",),
        ),
        check_serving=True,
    ),
    Case(
        "start-first-unhealthy-without-rollback-goes-ahead",
        [svc(auto_rollback=False, **START_FIRST)],
        [OLD, ctr("new", created_at=NOW - 11)],
        world(healthy={"new": False}),
        NodePlan(remove=(Remove(OLD, "superseded"),), serving={("web", 0): "new"}),
        check_serving=True,
    ),
    Case(
        "start-first-without-health-check-is-healthy-when-running",
        [svc(strategy="start-first")],
        [OLD, NEW_HEALTHY],
        world(promoted={"new": NOW - 5}),
        NodePlan(remove=(Remove(OLD, "superseded"),)),
    ),
    Case(
        "start-first-without-health-check-waits-min-ready",  # issue 12: minReadySeconds before it takes over
        [svc(strategy="start-first", min_ready=5.0)],
        [OLD, NEW_HEALTHY],  # running for 2 s only
        world(),
        NodePlan(serving={("web", 0): "old"}, requeue_after=0.25),
        check_serving=True,
    ),
    Case(
        "start-first-without-health-check-takes-over-after-min-ready",
        [svc(strategy="start-first", min_ready=1.5)],
        [OLD, NEW_HEALTHY],
        world(promoted={"new": NOW - 5}),
        NodePlan(remove=(Remove(OLD, "superseded"),), serving={("web", 0): "new"}),
        check_serving=True,
    ),
    Case(
        "start-first-new-crash-looping-never-ran-min-ready-rolls-back",
        [svc(strategy="start-first", min_ready=2.0, health_timeout=10.0)],
        [OLD, ctr("new", created_at=NOW - 11, started_at=NOW - 0.5, restart_count=6)],
        world(),
        NodePlan(
            remove=(Remove(ctr("new", created_at=NOW - 11, started_at=NOW - 0.5, restart_count=6), "rollback"),),
            rollbacks=("web",),
        ),
    ),
    Case(
        "start-first-new-crashed-within-timeout-is-started",
        [svc(**START_FIRST)],
        [OLD, ctr("new", state="exited", exit_code=1, created_at=NOW - 2)],
        world(),
        NodePlan(
            start=(Start(ctr("new", state="exited", exit_code=1, created_at=NOW - 2), "stopped"),), requeue_after=0.25
        ),
    ),
    Case(
        "stop-first-leftover-old-next-to-current-is-removed",
        [svc()],
        [OLD, ctr("new")],
        world(),
        NodePlan(remove=(Remove(OLD, "superseded"),)),
    ),
    Case(
        "update-waits-for-image-old-keeps-running",
        [svc(image="app:3")],
        [OLD],
        world(),
        NodePlan(pull=(Pull("web", "app:3"),), serving={("web", 0): "old"}),
        check_serving=True,
    ),
    Case(
        "no-update-while-assignments-from-cache",
        [svc(**START_FIRST)],
        [OLD],
        world(authoritative=False),
        NodePlan(serving={("web", 0): "old"}),
        check_serving=True,
    ),
    Case(
        "missing-replica-recreated-from-cache",
        [svc(replicas=2)],
        [ctr("a")],
        world(authoritative=False),
        NodePlan(create=(Create("web", 1, "c1", "missing"),)),
    ),
    Case(
        "service-in-backoff-gets-nothing-new",
        [svc(replicas=2)],
        [ctr("a")],
        world(service_hold=frozenset({"web"})),
        NodePlan(),
    ),
    Case(
        "update-of-service-in-backoff-waits",
        [svc(**START_FIRST)],
        [OLD],
        world(service_hold=frozenset({"web"})),
        NodePlan(),
    ),
    Case(
        "policy-refusal-keeps-old-creates-nothing",
        [svc(hold=Note("PolicyRefused", "privileged"))],
        [OLD],
        world(),
        NodePlan(),
    ),
    Case(
        "policy-refusal-fresh-service-creates-nothing",
        [svc(hold=Note("PolicyRefused", "privileged"))],
        [],
        world(),
        NodePlan(),
    ),
    Case("unknown-config-keeps-running-container", [svc(config_hash=None)], [OLD], world(), NodePlan()),
    Case(
        "unknown-config-still-restarts-stopped-container",
        [svc(config_hash=None)],
        [replace(OLD, state="exited")],
        world(),
        NodePlan(start=(Start(replace(OLD, state="exited"), "stopped"),)),
    ),
    Case(
        "duplicate-of-current-config-is-removed",
        [svc()],
        [ctr("a"), ctr("b", state="exited", created_at=NOW - 200)],
        world(),
        NodePlan(remove=(Remove(ctr("b", state="exited", created_at=NOW - 200), "duplicate"),)),
    ),
    Case(
        "container-being-removed-is-ignored",
        [svc()],
        [ctr("a"), ctr("b", replica=1, state="removing")],
        world(),
        NodePlan(),
    ),
    Case(
        "two-services-are-independent",
        [svc("a"), svc("b", image="app:9")],
        [],
        world(),
        NodePlan(pull=(Pull("b", "app:9"),), create=(Create("a", 0, "c1", "missing"),)),
    ),
    # -- stateful: without its volume lock no copy exists here, cache or not (docs/stateful.md) --------
    Case(
        "fenced-creates-nothing",
        [svc(fence=LOCKED)],
        [],
        world(),
        NodePlan(notes={"web": LOCKED}),
    ),
    Case(
        "fenced-removes-a-running-copy-even-from-the-cache",
        [svc(fence=LOCKED)],
        [ctr("a"), ctr("b", state="exited")],
        world(authoritative=False),
        NodePlan(remove=(Remove(ctr("a"), "volume-lock"), Remove(ctr("b", state="exited"), "volume-lock"))),
        check_serving=True,
    ),
    Case(
        "fenced-never-restarts-an-exited-copy",
        [svc(fence=LOCKED, restart="always")],
        [ctr("a", state="exited", exit_code=137)],
        world(),
        NodePlan(remove=(Remove(ctr("a", state="exited", exit_code=137), "volume-lock"),), notes={"web": LOCKED}),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan(case: Case) -> None:
    got = plan({s.name: s for s in case.desired}, case.containers, case.world)
    assert got.pull == case.expect.pull
    assert got.create == case.expect.create
    assert got.start == case.expect.start
    assert got.remove == case.expect.remove
    assert got.replace == case.expect.replace
    assert got.rollbacks == case.expect.rollbacks
    if case.expect.requeue_after is not None or got.requeue_after is not None:
        assert got.requeue_after == pytest.approx(case.expect.requeue_after)
    if case.check_serving:
        assert dict(got.serving) == dict(case.expect.serving)
    if case.expect.notes:
        assert dict(got.notes) == dict(case.expect.notes)


def test_plan_is_deterministic_and_leaves_inputs_alone() -> None:
    containers = [OLD, NEW_HEALTHY, ctr("x", service="gone")]
    snapshot = list(containers)
    desired = {"web": svc(**START_FIRST)}
    first = plan(desired, containers, world(healthy={"new": True}))
    second = plan(desired, containers, world(healthy={"new": True}))
    assert first == second
    assert containers == snapshot


@pytest.mark.parametrize(
    ("situation", "reason"),
    [
        ("updating", "Updating"),
        ("rollback", "UpdateFailed"),
        ("no-rollback", "Unhealthy"),
    ],
)
def test_notes_name_the_update_state(situation: str, reason: str) -> None:
    created = NOW - 2 if situation == "updating" else NOW - 11
    desired = svc(auto_rollback=situation != "no-rollback", **START_FIRST)
    got = plan({"web": desired}, [OLD, ctr("new", created_at=created)], world(healthy={"new": False}))
    assert got.notes["web"].reason == reason


# --- which removals get a stop grace: only containers this agent served (World.served) -----------------

SURGE = ctr("new", config_hash="c1", created_at=NOW - 11, started_at=NOW - 11)


@pytest.mark.parametrize(
    ("desired", "containers", "served", "expect"),
    [
        # a node back from a power loss: its engine restarted the copy at boot; the replica runs elsewhere
        ([], [ctr("stale", service="gone")], frozenset(), (Remove(ctr("stale", service="gone"), "orphan", True),)),
        # a service deleted while this agent served it: its grace to finish requests
        ([], [ctr("x", service="gone")], frozenset({"x"}), (Remove(ctr("x", service="gone"), "orphan"),)),
        # not tracked (None): every removal stops gracefully, as before
        ([], [ctr("x", service="gone")], None, (Remove(ctr("x", service="gone"), "orphan"),)),
        # scaled down: the replica this agent never registered is killed, the served one is stopped
        (
            [svc(replicas=1)],
            [ctr("a"), ctr("b", replica=1)],
            frozenset({"a"}),
            (Remove(ctr("b", replica=1), "scale-down", True),),
        ),
        (
            [svc(replicas=1)],
            [ctr("a"), ctr("b", replica=1)],
            frozenset({"a", "b"}),
            (Remove(ctr("b", replica=1), "scale-down"),),
        ),
        # a surge that never turned healthy is rolled back without a grace; the served old one stays
        (
            [svc(strategy="start-first", has_health=True)],
            [OLD, SURGE],
            frozenset({"old"}),
            (Remove(SURGE, "rollback", True),),
        ),
    ],
    ids=["stale-orphan", "served-orphan", "untracked", "scale-down-never-served", "scale-down-served", "rollback"],
)
def test_only_a_container_this_agent_served_gets_a_stop_grace(
    desired: list[ServiceTarget], containers: list[Container], served: frozenset[str] | None, expect: tuple[Remove, ...]
) -> None:
    result = plan({s.name: s for s in desired}, containers, world(served=served, healthy={"new": False}))
    assert result.remove == expect
